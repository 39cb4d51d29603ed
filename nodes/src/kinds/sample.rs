//! `sample`: for every labelled point, its season x feature matrix from a `Features` artifact:
//! the training (and migration, and assessment) samples of the method (`docs/method.md`,
//! "Reference data and migration").
//!
//! A point takes the values of the pixel it falls in (no interpolation: the pixel whose area
//! holds the point; a point on a pixel's left or top edge belongs to that pixel). Points in
//! another CRS than the features' grid are reprojected first (a point set without a CRS is
//! taken to be in the grid's CRS, with a warning). A point outside the grid, or whose matrix
//! holds a NaN (nodata in any season or feature), is dropped; the step warns with the counts per
//! class and records the metrics `kept`, `dropped_outside` and `dropped_nodata`. No sample kept
//! is an error that gives both extents. In a step of a `tile` partition (one tile of a
//! country's points) points outside the tile are expected: counted, not warned about.
//!
//! Memory is bounded by the points, never by their matrices: points are grouped by 256 x 256
//! block of the grid and, per block, only the window around that block's points is read, one
//! band at a time (blocks in parallel); each block writes its points' rows straight into
//! `samples.f32` at their rows in id order, and the rows on nodata are then taken out in place,
//! 4 MiB at a time. A million points of 6 seasons x 27 features (a 648 MB output) peak at the
//! size of the point table, not of the output (benches/README.md, "Large inputs"). Progress is
//! said by block.
//!
//! ## Ports
//! - in `features` (`Features`): one Float32 GeoTIFF per season, bands = features, nodata NaN.
//! - in `points` (`Points`): labelled points (from `points`, or `migrate`).
//! - out `samples` (`Samples`, see [`crate::samples`]): per kept point its matrix (seasons and
//!   features in the input's order) and class; `x`, `y` in the grid's CRS; `year` = the
//!   features' year, `label_year` = the points' year.
//!
//! ## Params
//! None.
//!
//! ```yaml
//! nodes:
//!   train_samples:
//!     kind: sample
//!     inputs: { features: { from: stack, year: 2020 }, points: reference }
//!   target_samples:
//!     kind: sample
//!     for_each: { year: years }
//!     inputs: { features: stack, points: reference }
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::FileExt;

use lulc_engine::{Inputs, Node, NodeError, Port, RunCtx};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::artifacts::{FEATURES, FeaturesMeta, POINTS, SAMPLES};
use crate::classes::Legend;
use crate::raster::{Grid, RasterReader, TILE, Window, crs_equivalent, crs_label};
use crate::samples::{Point, PointSet, SAMPLES_DATA, SamplesMeta, class_counts, write_samples_csv};
use crate::vector::{PointFeature, reproject_points};

pub struct Sample;

/// A point inside the grid: its index in the point set, its pixel's column and row.
type Located = (usize, usize, usize);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleParams {}

/// Bytes of rows moved at a time when the rows on nodata are taken out (a few rows in unit
/// tests, so that rows cross chunks).
const CHUNK_BYTES: usize = if cfg!(test) { 100 } else { 4 << 20 };

/// The pixel `(col, row)` holding map coordinates `(x, y)`, or `None` outside the grid.
pub(crate) fn pixel_of(grid: &Grid, x: f64, y: f64) -> Option<(usize, usize)> {
    let [a, b, c, d, e, f] = grid.geo_transform;
    let det = b * f - c * e;
    if det == 0.0 || !det.is_finite() {
        return None;
    }
    let (dx, dy) = (x - a, y - d);
    let col = (f * dx - c * dy) / det;
    let row = (b * dy - e * dx) / det;
    if !(col.is_finite() && row.is_finite()) {
        return None;
    }
    let (col, row) = (col.floor(), row.floor());
    if col < 0.0 || row < 0.0 || col >= grid.width as f64 || row >= grid.height as f64 {
        return None;
    }
    Some((col as usize, row as usize))
}

/// `class 3 (Rice): 2, class 5 (Grass/Shrub): 1`.
fn per_class(counts: &BTreeMap<u8, usize>, legend: &Legend) -> String {
    counts
        .iter()
        .map(|(c, n)| format!("class {c} ({}): {n}", legend.name(*c)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_bbox(b: (f64, f64, f64, f64)) -> String {
    format!("x {} .. {}, y {} .. {}", b.0, b.2, b.1, b.3)
}

impl Node for Sample {
    const KIND: &'static str = "sample";
    const VERSION: u32 = 1;
    type Params = SampleParams;

    fn inputs() -> Vec<Port> {
        vec![Port::one("features", FEATURES), Port::one("points", POINTS)]
    }

    fn outputs() -> Vec<Port> {
        vec![Port::one("samples", SAMPLES)]
    }

    fn summary() -> &'static str {
        "per labelled point its season x feature matrix (points outside or on nodata dropped)"
    }

    fn run(&self, ctx: &mut RunCtx, _: &SampleParams, inputs: &Inputs) -> Result<(), NodeError> {
        let art = inputs.one("features")?;
        let meta: FeaturesMeta = serde_json::from_value(art.meta.clone()).map_err(|e| {
            NodeError::new(format!(
                "input `features` (from `{}`) is not a Features artifact: {e}",
                art.step_id
            ))
        })?;
        let pts_art = inputs.one("points")?;
        let set = PointSet::read(pts_art)?;
        let grid = &meta.grid;
        let (nt, nf) = (meta.seasons.len(), meta.features.len());
        if meta.files.len() != nt || nf == 0 {
            return Err(NodeError::new(format!(
                "features from `{}` list {} season(s), {} file(s) and {} feature(s)",
                art.step_id,
                nt,
                meta.files.len(),
                nf
            )));
        }

        // Points in the grid's CRS.
        let mut coords: Vec<PointFeature> = set
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| PointFeature {
                id: i as i64,
                x: p.x,
                y: p.y,
                attrs: BTreeMap::new(),
            })
            .collect();
        match &set.crs {
            Some(crs) if !grid.crs_wkt.trim().is_empty() && !crs_equivalent(crs, &grid.crs_wkt) => {
                reproject_points(&mut coords, crs, &grid.crs_wkt).map_err(|e| {
                    NodeError::new(format!("points from `{}`: {e}", pts_art.step_id))
                })?;
            }
            None if !grid.crs_wkt.trim().is_empty() => ctx.warn(format!(
                "points from `{}` have no CRS; taken to be in the features' CRS {}",
                pts_art.step_id,
                crs_label(&grid.crs_wkt)
            )),
            _ => {}
        }

        // Points by block of the grid.
        let mut by_block: BTreeMap<(usize, usize), Vec<Located>> = BTreeMap::new();
        let mut outside: BTreeMap<u8, usize> = BTreeMap::new();
        let mut inside = vec![false; coords.len()];
        for (i, c) in coords.iter().enumerate() {
            match pixel_of(grid, c.x, c.y) {
                Some((col, row)) => {
                    inside[i] = true;
                    by_block
                        .entry((row / TILE, col / TILE))
                        .or_default()
                        .push((i, col, row));
                }
                None => *outside.entry(set.points[i].class).or_insert(0) += 1,
            }
        }

        // Open every season once to check it against the metadata.
        let paths = meta
            .files
            .iter()
            .map(|(season, file)| {
                let path = art.file(file)?.to_path_buf();
                let r = RasterReader::open(&path).map_err(|e| NodeError::new(e.to_string()))?;
                grid.ensure_same(r.grid(), &path)
                    .map_err(|e| NodeError::new(e.to_string()))?;
                if r.band_count() != nf {
                    return Err(NodeError::new(format!(
                        "season `{season}` (`{file}`) has {} bands, the metadata lists {nf} \
                         features",
                        r.band_count()
                    )));
                }
                Ok(path)
            })
            .collect::<Result<Vec<_>, NodeError>>()?;

        // Every point inside the grid gets its row of the output in artifact order (by id);
        // blocks write their rows straight into the output file at those rows, so no matrix
        // stays in memory after its block.
        let width = nt * nf;
        let row_bytes = (width * 4) as u64;
        let mut order: Vec<usize> = (0..set.points.len()).collect();
        if !set.points.is_sorted_by(|a, b| a.id <= b.id) {
            order.sort_by(|&a, &b| set.points[a].id.cmp(&set.points[b].id));
        }
        let mut rank = vec![u32::MAX; set.points.len()];
        let mut by_rank: Vec<u32> = Vec::new();
        for &i in &order {
            if inside[i] {
                rank[i] = by_rank.len() as u32;
                by_rank.push(i as u32);
            }
        }
        let data_path = ctx.output_file("samples", SAMPLES_DATA)?;
        let io_err = |e: std::io::Error| {
            NodeError::new(format!("cannot write `{}`: {e}", data_path.display()))
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&data_path)
            .map_err(io_err)?;
        file.set_len(by_rank.len() as u64 * row_bytes)
            .map_err(io_err)?;

        // Read, per block, the window around its points, band by band.
        let blocks: Vec<&Vec<Located>> = by_block.values().collect();
        let progress = ctx.progress(blocks.len() as u64, "blocks of 256 x 256 px");
        let read: Vec<Result<Vec<(u32, bool)>, NodeError>> = blocks
            .par_iter()
            .map_init(
                || {
                    paths
                        .iter()
                        .map(|p| RasterReader::open(p).map_err(|e| NodeError::new(e.to_string())))
                        .collect::<Result<Vec<_>, _>>()
                },
                |readers, pts| {
                    let readers = readers.as_ref().map_err(Clone::clone)?;
                    let c0 = pts.iter().map(|p| p.1).min().expect("non-empty block");
                    let c1 = pts.iter().map(|p| p.1).max().expect("non-empty block");
                    let r0 = pts.iter().map(|p| p.2).min().expect("non-empty block");
                    let r1 = pts.iter().map(|p| p.2).max().expect("non-empty block");
                    let win = Window::new(c0, r0, c1 - c0 + 1, r1 - r0 + 1);
                    let mut rows = vec![f32::NAN; pts.len() * width];
                    for (t, reader) in readers.iter().enumerate() {
                        for f in 0..nf {
                            let plane = reader
                                .read_window_f32(f + 1, &win)
                                .map_err(|e| NodeError::new(e.to_string()))?;
                            for (k, &(_, col, row)) in pts.iter().enumerate() {
                                rows[k * width + t * nf + f] =
                                    plane[(row - r0) * win.w + (col - c0)];
                            }
                        }
                    }
                    let mut bytes = Vec::with_capacity(width * 4);
                    let mut status = Vec::with_capacity(pts.len());
                    for (k, &(i, _, _)) in pts.iter().enumerate() {
                        let m = &rows[k * width..(k + 1) * width];
                        let finite = m.iter().all(|v| v.is_finite());
                        if finite {
                            bytes.clear();
                            for v in m {
                                bytes.extend_from_slice(&v.to_le_bytes());
                            }
                            file.write_all_at(&bytes, rank[i] as u64 * row_bytes)
                                .map_err(io_err)?;
                        }
                        status.push((rank[i], finite));
                    }
                    progress.add(1);
                    Ok(status)
                },
            )
            .collect();
        let mut finite = vec![false; by_rank.len()];
        for block in read {
            for (r, ok) in block? {
                finite[r as usize] = ok;
            }
        }

        // Rows on nodata out: the kept rows move up in place, a chunk of rows at a time (a
        // chunk is read before anything is written over it; writes never pass the chunk's end),
        // and the file is cut after the last.
        let mut nodata: BTreeMap<u8, usize> = BTreeMap::new();
        let mut points = Vec::new();
        for (r, &i) in by_rank.iter().enumerate() {
            let p = &set.points[i as usize];
            if finite[r] {
                points.push(Point {
                    id: p.id.clone(),
                    x: coords[i as usize].x,
                    y: coords[i as usize].y,
                    class: p.class,
                });
            } else {
                *nodata.entry(p.class).or_insert(0) += 1;
            }
        }
        let row = row_bytes as usize;
        let chunk = (CHUNK_BYTES / row).max(1);
        let mut buf = Vec::new();
        let mut kept = 0usize;
        for start in (0..by_rank.len()).step_by(chunk) {
            let end = (start + chunk).min(by_rank.len());
            let all_kept = finite[start..end].iter().all(|&f| f);
            if all_kept && kept == start {
                kept = end;
                continue;
            }
            buf.resize((end - start) * row, 0);
            file.read_exact_at(&mut buf, (start * row) as u64)
                .map_err(io_err)?;
            let mut w = 0;
            for (k, _) in finite[start..end].iter().enumerate().filter(|(_, f)| **f) {
                buf.copy_within(k * row..(k + 1) * row, w * row);
                w += 1;
            }
            file.write_all_at(&buf[..w * row], (kept * row) as u64)
                .map_err(io_err)?;
            kept += w;
        }
        debug_assert_eq!(kept, points.len());
        file.set_len(points.len() as u64 * row_bytes)
            .map_err(io_err)?;
        drop(file);
        let n_out: usize = outside.values().sum();
        let n_nodata: usize = nodata.values().sum();
        let legend = Legend::default();
        let mut report = String::new();
        if n_out > 0 {
            let _ = write!(
                report,
                "{n_out} outside the features' grid ({})",
                per_class(&outside, &legend)
            );
        }
        if n_nodata > 0 {
            if !report.is_empty() {
                report.push_str("; ");
            }
            let _ = write!(
                report,
                "{n_nodata} on nodata in some season or feature ({})",
                per_class(&nodata, &legend)
            );
        }
        ctx.metric("kept", points.len() as u64);
        ctx.metric("dropped_outside", n_out as u64);
        ctx.metric("dropped_nodata", n_nodata as u64);
        if points.is_empty() {
            let b = grid.bbox();
            let (mut pb, mut any) = ((f64::MAX, f64::MAX, f64::MIN, f64::MIN), false);
            for c in coords.iter().filter(|c| c.x.is_finite() && c.y.is_finite()) {
                any = true;
                pb = (pb.0.min(c.x), pb.1.min(c.y), pb.2.max(c.x), pb.3.max(c.y));
            }
            return Err(NodeError::new(format!(
                "no sample kept from {} point(s) of `{}` on the features of `{}`: {report}",
                set.points.len(),
                pts_art.step_id,
                art.step_id
            ))
            .with_help(format!(
                "the features cover {} ({}); the points {}",
                fmt_bbox((b.min_x, b.min_y, b.max_x, b.max_y)),
                crs_label(&grid.crs_wkt),
                if any {
                    fmt_bbox(pb)
                } else {
                    "have no coordinates".to_string()
                }
            )));
        }
        // A step of a `tile` partition samples the country's points that fall on its tile:
        // the others are outside by design, counted but not warned about.
        let per_tile = ctx.dims().contains_key("tile");
        let warned = if per_tile { n_nodata } else { n_out + n_nodata };
        if warned > 0 {
            if per_tile {
                report = format!(
                    "{n_nodata} on nodata in some season or feature ({})",
                    per_class(&nodata, &legend)
                );
            }
            ctx.warn(format!(
                "dropped {warned} of {} point(s) of `{}`: {report}",
                set.points.len(),
                pts_art.step_id
            ));
        }
        let crs = (!grid.crs_wkt.trim().is_empty())
            .then(|| grid.crs_wkt.clone())
            .or(set.crs.clone());
        write_samples_csv(ctx, "samples", &points)?;
        let meta = SamplesMeta {
            year: Some(meta.year),
            label_year: set.year,
            crs,
            seasons: meta.seasons.clone(),
            features: meta.features.clone(),
            n: points.len(),
            class_counts: class_counts(&points),
        };
        let meta = serde_json::to_value(meta).map_err(|e| NodeError::new(e.to_string()))?;
        ctx.set_meta("samples", meta)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::raster::{DType, RasterMeta, RasterWriter, WriteOptions, crs_to_wkt};
    use crate::samples::Samples;
    use lulc_engine::{ArtifactIn, erase};
    use serde_json::json;
    use tempfile::TempDir;

    // Wider and taller than one 256 block, so points fall into several blocks.
    const W: usize = 300;
    const H: usize = 270;
    const NAMES: [&str; 3] = ["B02", "NDVI", "VV"];

    fn grid() -> Grid {
        Grid {
            crs_wkt: crs_to_wkt("EPSG:32648").unwrap(),
            geo_transform: [600000.0, 10.0, 0.0, 1200000.0, 0.0, -10.0],
            width: W,
            height: H,
        }
    }

    /// Feature `k` of season `s` at pixel (col, row); NaN at (7, 3) in season 1 only, and in
    /// feature 2 at (280, 260) in every season.
    fn value(k: usize, s: usize, col: usize, row: usize) -> f32 {
        if (s == 1 && (col, row) == (7, 3)) || (k == 2 && (col, row) == (280, 260)) {
            f32::NAN
        } else {
            (k * 1000 + s * 100) as f32 + col as f32 * 0.25 + row as f32 * 0.5
        }
    }

    fn features_art(dir: &Path) -> ArtifactIn {
        let mut files = BTreeMap::new();
        let mut meta_files = Vec::new();
        for (s, season) in ["S1", "S2"].iter().enumerate() {
            let file = format!("{season}.tif");
            let path = dir.join(&file);
            let meta = RasterMeta {
                grid: grid(),
                dtype: DType::F32,
                nodata: Some(f64::NAN),
                band_names: NAMES.iter().map(|f| f.to_string()).collect(),
            };
            let mut w = RasterWriter::create(&path, &meta, &WriteOptions::default()).unwrap();
            for k in 0..NAMES.len() {
                let v: Vec<f32> = (0..W * H).map(|i| value(k, s, i % W, i / W)).collect();
                w.write_window_f32(k + 1, &grid().full_window(), &v)
                    .unwrap();
            }
            w.finish().unwrap();
            files.insert(file.clone(), path);
            meta_files.push((season.to_string(), file));
        }
        let meta = FeaturesMeta {
            grid: grid(),
            year: 2021,
            seasons: vec!["S1".into(), "S2".into()],
            features: NAMES.iter().map(|f| f.to_string()).collect(),
            files: meta_files,
        };
        ArtifactIn {
            step_id: "stack[year=2021]".into(),
            dims: BTreeMap::new(),
            ty: FEATURES.into(),
            digest: "blake3:f".into(),
            files,
            meta: serde_json::to_value(meta).unwrap(),
        }
    }

    fn points_art(dir: &Path, set: PointSet) -> ArtifactIn {
        let out = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx = RunCtx::for_test("points", vec![Port::one("points", POINTS)], &out);
        set.write(&mut ctx, "points").unwrap();
        let o = &ctx.outputs()["points"];
        ArtifactIn {
            step_id: "reference".into(),
            dims: BTreeMap::new(),
            ty: POINTS.into(),
            digest: "blake3:p".into(),
            files: o.files.clone(),
            meta: o.meta.clone(),
        }
    }

    /// Centre of pixel (col, row) in the grid's CRS.
    fn centre(col: usize, row: usize) -> (f64, f64) {
        grid().pixel_to_geo(col as f64 + 0.5, row as f64 + 0.5)
    }

    fn pt(id: &str, (x, y): (f64, f64), class: u8) -> Point {
        Point {
            id: id.into(),
            x,
            y,
            class,
        }
    }

    fn run(
        features: &ArtifactIn,
        points: &ArtifactIn,
        dir: &Path,
    ) -> Result<(RunCtx, Samples), NodeError> {
        run_with(features, points, dir, None, None)
    }

    fn run_with(
        features: &ArtifactIn,
        points: &ArtifactIn,
        dir: &Path,
        live: Option<lulc_engine::LiveLog>,
        tile: Option<&str>,
    ) -> Result<(RunCtx, Samples), NodeError> {
        let node = erase(Sample);
        let params = node.check_params(&json!({})).unwrap();
        let out = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx = RunCtx::for_test("sample", Sample::outputs(), &out);
        if let Some(t) = tile {
            ctx = ctx.with_dims([("tile".to_string(), lulc_engine::DimValue::Str(t.into()))]);
        }
        if let Some(live) = live {
            ctx = ctx.with_live_log(live);
        }
        let inputs = Inputs {
            ports: BTreeMap::from([
                ("features".to_string(), vec![features.clone()]),
                ("points".to_string(), vec![points.clone()]),
            ]),
        };
        node.run(&mut ctx, &params, &inputs)?;
        let o = &ctx.outputs()["samples"];
        let art = ArtifactIn {
            step_id: "sample".into(),
            dims: BTreeMap::new(),
            ty: SAMPLES.into(),
            digest: String::new(),
            files: o.files.clone(),
            meta: o.meta.clone(),
        };
        let s = Samples::read(&art).unwrap();
        Ok((ctx, s))
    }

    fn expected(col: usize, row: usize) -> Vec<f32> {
        (0..2)
            .flat_map(|s| (0..3).map(move |k| value(k, s, col, row)))
            .collect()
    }

    #[test]
    fn rows_are_written_in_id_order_across_blocks_with_nodata_rows_taken_out_and_progress_said() {
        let dir = TempDir::new().unwrap();
        let features = features_art(dir.path());
        // Every 9th pixel, plus both nodata pixels; ids run against the blocks' order.
        let mut pixels: Vec<(usize, usize)> = (0..W * H)
            .step_by(9)
            .map(|i| (i % W, i / W))
            .filter(|&p| p != (7, 3) && p != (280, 260))
            .collect();
        pixels.insert(pixels.len() / 3, (7, 3));
        pixels.push((280, 260));
        let n = pixels.len();
        let id = |k: usize| format!("p{:06}", n - k);
        let set = PointSet {
            year: Some(2020),
            crs: Some(grid().crs_wkt),
            points: pixels
                .iter()
                .enumerate()
                .map(|(k, &(c, r))| pt(&id(k), centre(c, r), 1 + (k % 3) as u8))
                .collect(),
        };
        let points = points_art(dir.path(), set);
        let (live, lines) = lulc_engine::LiveLog::collecting(std::time::Duration::ZERO);
        let (ctx, s) = run_with(&features, &points, dir.path(), Some(live), None).unwrap();
        assert_eq!(s.len(), n - 2);
        assert!(s.points.is_sorted_by(|a, b| a.id < b.id));
        for (i, p) in s.points.iter().enumerate() {
            let k = n - p.id[1..].parse::<usize>().unwrap();
            let (c, r) = pixels[k];
            assert!((c, r) != (7, 3) && (c, r) != (280, 260), "{}", p.id);
            assert_eq!(s.row(i), expected(c, r).as_slice(), "{}", p.id);
            assert_eq!(p.class, 1 + (k % 3) as u8);
        }
        assert_eq!(ctx.metrics()["dropped_nodata"], json!(2));
        let lines = lines.lock().unwrap();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("progress: sample: 1 of 4 blocks of 256 x 256 px")),
            "{lines:?}"
        );
    }

    #[test]
    fn sample_reads_each_points_matrix_and_drops_outside_and_nodata_with_counts() {
        let dir = TempDir::new().unwrap();
        let features = features_art(dir.path());
        let (x0, y0) = grid().pixel_to_geo(0.0, 0.0);
        let set = PointSet {
            year: Some(2020),
            crs: Some(grid().crs_wkt),
            points: vec![
                pt("a", centre(0, 0), 1),
                pt("b", centre(299, 269), 3),
                pt("c", centre(260, 10), 3),
                pt("d", centre(10, 260), 5),
                // The top-left corner of pixel (12, 20) belongs to it.
                pt("e", grid().pixel_to_geo(12.0, 20.0), 2),
                // Outside: left of the grid, below it, and just past the right edge.
                pt("o1", (x0 - 1.0, y0 - 5.0), 3),
                pt("o2", centre(5, 270), 3),
                pt("o3", grid().pixel_to_geo(300.0, 5.5), 5),
                // Nodata in one season of one pixel, in one feature of another.
                pt("n1", centre(7, 3), 3),
                pt("n2", centre(280, 260), 14),
            ],
        };
        let points = points_art(dir.path(), set);
        let (ctx, s) = run(&features, &points, dir.path()).unwrap();
        let ids: Vec<&str> = s.points.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d", "e"]);
        for (i, (col, row)) in [(0, 0), (299, 269), (260, 10), (10, 260), (12, 20)]
            .into_iter()
            .enumerate()
        {
            assert_eq!(s.row(i), expected(col, row).as_slice(), "{}", ids[i]);
        }
        assert_eq!(s.year, Some(2021));
        assert_eq!(s.label_year, Some(2020));
        assert_eq!(s.seasons, ["S1", "S2"]);
        assert_eq!(s.features, NAMES);
        assert_eq!(s.points[2].class, 3);
        let w = ctx.warnings().join("\n");
        assert!(w.contains("dropped 5 of 10 point(s) of `reference`"), "{w}");
        assert!(
            w.contains(
                "3 outside the features' grid (class 3 (Rice): 2, class 5 (Grass/Shrub): 1)"
            ),
            "{w}"
        );
        assert!(
            w.contains("2 on nodata in some season or feature (class 3 (Rice): 1, class 14 (Solar panel): 1)"),
            "{w}"
        );

        // One tile of a country: the points off the tile are expected, counted, not warned.
        let (ctx, s) = run_with(&features, &points, dir.path(), None, Some("48A1")).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(ctx.metrics()["dropped_outside"], json!(3));
        let w = ctx.warnings().join("\n");
        assert!(
            w.contains("dropped 2 of 10 point(s) of `reference`: 2 on nodata"),
            "{w}"
        );
        assert!(!w.contains("outside"), "{w}");
    }

    #[test]
    fn sample_reprojects_points_in_another_crs() {
        let dir = TempDir::new().unwrap();
        let features = features_art(dir.path());
        let pixels = [(3, 4), (150, 200), (290, 100)];
        let mut geo: Vec<PointFeature> = pixels
            .iter()
            .enumerate()
            .map(|(i, &(c, r))| {
                let (x, y) = centre(c, r);
                PointFeature {
                    id: i as i64,
                    x,
                    y,
                    attrs: BTreeMap::new(),
                }
            })
            .collect();
        let wgs84 = crs_to_wkt("EPSG:4326").unwrap();
        reproject_points(&mut geo, &grid().crs_wkt, &wgs84).unwrap();
        assert!(geo[0].x > 100.0 && geo[0].x < 110.0, "lon {}", geo[0].x);
        let set = PointSet {
            year: None,
            crs: Some(wgs84),
            points: geo
                .iter()
                .map(|g| pt(&format!("p{}", g.id), (g.x, g.y), 4))
                .collect(),
        };
        let (ctx, s) = run(&features, &points_art(dir.path(), set), dir.path()).unwrap();
        assert!(ctx.warnings().is_empty(), "{:?}", ctx.warnings());
        assert_eq!(s.len(), 3);
        for (i, &(c, r)) in pixels.iter().enumerate() {
            assert_eq!(s.row(i), expected(c, r).as_slice());
            let (x, y) = centre(c, r);
            assert!((s.points[i].x - x).abs() < 1e-3 && (s.points[i].y - y).abs() < 1e-3);
        }
        assert!(crs_equivalent(s.crs.as_deref().unwrap(), &grid().crs_wkt));
        assert_eq!(s.label_year, None);
    }

    #[test]
    fn sample_without_any_kept_point_is_an_error_with_both_extents() {
        let dir = TempDir::new().unwrap();
        let features = features_art(dir.path());
        let set = PointSet {
            year: Some(2020),
            crs: None,
            points: vec![pt("1", (10.0, 20.0), 3), pt("2", centre(7, 3), 3)],
        };
        let e = run(&features, &points_art(dir.path(), set), dir.path())
            .err()
            .expect("no sample");
        assert!(
            e.message.contains(
                "no sample kept from 2 point(s) of `reference` on the features of `stack[year=2021]`: \
                 1 outside the features' grid (class 3 (Rice): 1); 1 on nodata"
            ),
            "{}",
            e.message
        );
        let help = e.help.unwrap();
        assert!(
            help.contains("the features cover x 600000 .. 603000, y 1197300 .. 1200000"),
            "{help}"
        );
        assert!(help.contains("the points x 10 .. "), "{help}");
    }

    #[test]
    fn sample_single_kept_point_and_pixel_lookup_on_a_rotated_grid() {
        let dir = TempDir::new().unwrap();
        let features = features_art(dir.path());
        let set = PointSet {
            year: Some(2020),
            crs: Some(grid().crs_wkt),
            points: vec![
                pt("1", centre(1, 1), 3),
                pt("2", centre(7, 3), 3),
                pt("3", (0.0, 0.0), 1),
            ],
        };
        let (ctx, s) = run(&features, &points_art(dir.path(), set), dir.path()).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s.meta().class_counts, BTreeMap::from([(3, 1)]));
        assert_eq!(ctx.warnings().len(), 1);
        // A rotated grid maps back exactly.
        let g = Grid {
            crs_wkt: String::new(),
            geo_transform: [100.0, 8.0, 6.0, 500.0, 6.0, -8.0],
            width: 10,
            height: 10,
        };
        let (x, y) = g.pixel_to_geo(3.5, 7.5);
        assert_eq!(pixel_of(&g, x, y), Some((3, 7)));
        assert_eq!(pixel_of(&g, f64::NAN, y), None);
        let (x, y) = g.pixel_to_geo(10.2, 1.0);
        assert_eq!(pixel_of(&g, x, y), None);
    }
}
