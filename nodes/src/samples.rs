//! Labelled samples (`Samples`) and reference points (`Points`) as artifacts.
//!
//! `Samples`: per point a season x feature matrix and a label (the input of `train`, `migrate`
//! and `assess`). Files:
//! - `samples.csv`: `id,x,y,label`, one row per sample, in artifact order;
//! - `samples.f32`: little-endian f32, row-major `[n][seasons][features]` (never NaN: `sample`
//!   drops points on nodata).
//!
//! `Points`: labelled locations without features. File `points.csv`: `id,x,y,class`.
//!
//! Both keep their rows sorted by id (a stable, deterministic order; equal inputs give
//! byte-identical files, so early cutoff works).

use std::collections::BTreeMap;
use std::path::Path;

use lulc_engine::{ArtifactIn, NodeError, RunCtx};
use serde::{Deserialize, Serialize};

use crate::artifacts::{POINTS, SAMPLES};

pub const SAMPLES_CSV: &str = "samples.csv";
pub const SAMPLES_DATA: &str = "samples.f32";
pub const POINTS_CSV: &str = "points.csv";

/// Metadata of a `Samples` artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplesMeta {
    /// Year of the features (`None` for samples imported without one).
    pub year: Option<i64>,
    /// Year the labels were interpreted for (2020 for migrated reference labels).
    pub label_year: Option<i64>,
    /// CRS of `x`, `y` (WKT or `EPSG:n`), when known.
    pub crs: Option<String>,
    pub seasons: Vec<String>,
    pub features: Vec<String>,
    pub n: usize,
    /// Class code -> number of samples.
    pub class_counts: BTreeMap<u8, usize>,
}

/// Metadata of a `Points` artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointsMeta {
    pub year: Option<i64>,
    pub crs: Option<String>,
    pub n: usize,
    pub class_counts: BTreeMap<u8, usize>,
}

/// A labelled point.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub id: String,
    pub x: f64,
    pub y: f64,
    pub class: u8,
}

/// Samples in memory: `data[i * seasons.len() * features.len() + t * features.len() + f]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Samples {
    pub year: Option<i64>,
    pub label_year: Option<i64>,
    pub crs: Option<String>,
    pub seasons: Vec<String>,
    pub features: Vec<String>,
    pub points: Vec<Point>,
    pub data: Vec<f32>,
}

impl Samples {
    /// Values per sample (`seasons x features`).
    pub fn width(&self) -> usize {
        self.seasons.len() * self.features.len()
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The `seasons x features` matrix of sample `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        let w = self.width();
        &self.data[i * w..(i + 1) * w]
    }

    pub fn class_counts(&self) -> BTreeMap<u8, usize> {
        class_counts(&self.points)
    }

    pub fn meta(&self) -> SamplesMeta {
        SamplesMeta {
            year: self.year,
            label_year: self.label_year,
            crs: self.crs.clone(),
            seasons: self.seasons.clone(),
            features: self.features.clone(),
            n: self.points.len(),
            class_counts: self.class_counts(),
        }
    }

    /// Sort rows by id (the artifact order); ids must be unique.
    pub fn sort_by_id(&mut self) {
        let w = self.width();
        let mut order: Vec<usize> = (0..self.points.len()).collect();
        order.sort_by(|&a, &b| self.points[a].id.cmp(&self.points[b].id));
        let points = order.iter().map(|&i| self.points[i].clone()).collect();
        let mut data = Vec::with_capacity(self.data.len());
        for &i in &order {
            data.extend_from_slice(&self.data[i * w..(i + 1) * w]);
        }
        self.points = points;
        self.data = data;
    }

    /// Write as output `port` of the running step (rows sorted by id).
    pub fn write(mut self, ctx: &mut RunCtx, port: &str) -> Result<(), NodeError> {
        self.sort_by_id();
        write_samples_csv(ctx, port, &self.points)?;
        let mut bytes = Vec::with_capacity(self.data.len() * 4);
        for v in &self.data {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        ctx.write_output(port, SAMPLES_DATA, &bytes)?;
        let meta = serde_json::to_value(self.meta()).map_err(|e| NodeError::new(e.to_string()))?;
        ctx.set_meta(port, meta)
    }

    /// Read a `Samples` artifact (checks that the files agree with the metadata).
    pub fn read(art: &ArtifactIn) -> Result<Samples, NodeError> {
        if art.ty != SAMPLES {
            return Err(NodeError::new(format!(
                "input from `{}` is a {} artifact, not {SAMPLES}",
                art.step_id, art.ty
            )));
        }
        let meta: SamplesMeta = serde_json::from_value(art.meta.clone()).map_err(|e| {
            NodeError::new(format!(
                "input from `{}` has no valid Samples metadata: {e}",
                art.step_id
            ))
        })?;
        let points = read_points_csv(art.file(SAMPLES_CSV)?, "label")?;
        let path = art.file(SAMPLES_DATA)?;
        let bytes = std::fs::read(path)
            .map_err(|e| NodeError::new(format!("cannot read `{}`: {e}", path.display())))?;
        let width = meta.seasons.len() * meta.features.len();
        if points.len() != meta.n || bytes.len() != meta.n * width * 4 {
            return Err(NodeError::new(format!(
                "samples from `{}` are inconsistent: metadata says {} samples of {} x {} \
                 values, `{SAMPLES_CSV}` has {} rows and `{SAMPLES_DATA}` {} bytes",
                art.step_id,
                meta.n,
                meta.seasons.len(),
                meta.features.len(),
                points.len(),
                bytes.len()
            )));
        }
        let data = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Samples {
            year: meta.year,
            label_year: meta.label_year,
            crs: meta.crs,
            seasons: meta.seasons,
            features: meta.features,
            points,
            data,
        })
    }
}

/// The samples of several artifacts (the tiles of one year) as one set: same seasons and
/// features required; a point (by id) sampled in several of them, as a point in the overlap of
/// two tiles is, is kept once, from the artifact whose `tile` partition value (else step id)
/// sorts first: the tile a `mosaic` takes that pixel from. Rows sorted by id. Returns the
/// samples and how many duplicates were left out.
pub fn gather(arts: &[ArtifactIn]) -> Result<(Samples, usize), NodeError> {
    let mut order: Vec<&ArtifactIn> = arts.iter().collect();
    let name = |a: &ArtifactIn| {
        a.dims
            .get("tile")
            .map_or_else(|| a.step_id.clone(), ToString::to_string)
    };
    order.sort_by_cached_key(|a| (name(a), a.step_id.clone()));
    let Some((first, rest)) = order.split_first() else {
        return Err(NodeError::new("no samples are connected"));
    };
    let mut all = Samples::read(first)?;
    if rest.is_empty() {
        return Ok((all, 0));
    }
    let mut seen: std::collections::BTreeSet<String> =
        all.points.iter().map(|p| p.id.clone()).collect();
    let mut duplicates = 0;
    for art in rest {
        let s = Samples::read(art)?;
        if s.seasons != all.seasons || s.features != all.features {
            return Err(NodeError::new(format!(
                "the samples from `{}` and `{}` have different seasons or features",
                first.step_id, art.step_id
            ))
            .with_help("gather samples made from one feature stack"));
        }
        if s.year != all.year {
            all.year = None;
        }
        if s.label_year != all.label_year {
            all.label_year = None;
        }
        for i in 0..s.len() {
            if !seen.insert(s.points[i].id.clone()) {
                duplicates += 1;
                continue;
            }
            all.points.push(s.points[i].clone());
            all.data.extend_from_slice(s.row(i));
        }
    }
    all.sort_by_id();
    Ok((all, duplicates))
}

/// Points in memory, as a `Points` artifact holds them.
#[derive(Clone, Debug, PartialEq)]
pub struct PointSet {
    pub year: Option<i64>,
    pub crs: Option<String>,
    pub points: Vec<Point>,
}

impl PointSet {
    pub fn write(mut self, ctx: &mut RunCtx, port: &str) -> Result<(), NodeError> {
        self.points.sort_by(|a, b| a.id.cmp(&b.id));
        write_csv_output(ctx, port, POINTS_CSV, "class", &self.points)?;
        let meta = PointsMeta {
            year: self.year,
            crs: self.crs.clone(),
            n: self.points.len(),
            class_counts: class_counts(&self.points),
        };
        let meta = serde_json::to_value(meta).map_err(|e| NodeError::new(e.to_string()))?;
        ctx.set_meta(port, meta)
    }

    pub fn read(art: &ArtifactIn) -> Result<PointSet, NodeError> {
        if art.ty != POINTS {
            return Err(NodeError::new(format!(
                "input from `{}` is a {} artifact, not {POINTS}",
                art.step_id, art.ty
            )));
        }
        let meta: PointsMeta = serde_json::from_value(art.meta.clone()).map_err(|e| {
            NodeError::new(format!(
                "input from `{}` has no valid Points metadata: {e}",
                art.step_id
            ))
        })?;
        let points = read_points_csv(art.file(POINTS_CSV)?, "class")?;
        Ok(PointSet {
            year: meta.year,
            crs: meta.crs,
            points,
        })
    }
}

pub fn class_counts(points: &[Point]) -> BTreeMap<u8, usize> {
    let mut m = BTreeMap::new();
    for p in points {
        *m.entry(p.class).or_insert(0) += 1;
    }
    m
}

/// `id,x,y,<label>` rows; ids are quoted when they hold a comma or a quote. Coordinates use
/// Rust's shortest round-trip formatting, so reading gives back the same f64.
fn write_points_csv(
    mut w: impl std::io::Write,
    label: &str,
    points: &[Point],
) -> std::io::Result<()> {
    writeln!(w, "id,x,y,{label}")?;
    for p in points {
        if p.id.contains([',', '"', '\n']) {
            write!(w, "\"{}\"", p.id.replace('"', "\"\""))?;
        } else {
            w.write_all(p.id.as_bytes())?;
        }
        writeln!(w, ",{},{},{}", p.x, p.y, p.class)?;
    }
    w.flush()
}

/// Write `points` (in artifact order) as file `name` of output `port`, streamed to disk.
fn write_csv_output(
    ctx: &mut RunCtx,
    port: &str,
    name: &str,
    label: &str,
    points: &[Point],
) -> Result<(), NodeError> {
    let path = ctx.output_file(port, name)?;
    let err = |e: std::io::Error| NodeError::new(format!("cannot write `{}`: {e}", path.display()));
    let file = std::fs::File::create(&path).map_err(err)?;
    write_points_csv(std::io::BufWriter::new(file), label, points).map_err(err)
}

/// Write the `samples.csv` of a `Samples` output from its points, already in artifact order
/// (for a node that writes `samples.f32` itself, row by row).
pub fn write_samples_csv(ctx: &mut RunCtx, port: &str, points: &[Point]) -> Result<(), NodeError> {
    write_csv_output(ctx, port, SAMPLES_CSV, "label", points)
}

fn read_points_csv(path: &Path, label: &str) -> Result<Vec<Point>, NodeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| NodeError::new(format!("cannot read `{}`: {e}", path.display())))?;
    let mut lines = text.lines();
    let header = format!("id,x,y,{label}");
    if lines.next() != Some(header.as_str()) {
        return Err(NodeError::new(format!(
            "`{}` does not start with `{header}`",
            path.display()
        )));
    }
    let bad = |n: usize, what: &str| {
        NodeError::new(format!("`{}` line {}: {what}", path.display(), n + 2))
    };
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        // The id may be quoted; the last three fields never are.
        let mut parts = line.rsplitn(4, ',');
        let class = parts.next().ok_or_else(|| bad(n, "missing class"))?;
        let y = parts.next().ok_or_else(|| bad(n, "missing y"))?;
        let x = parts.next().ok_or_else(|| bad(n, "missing x"))?;
        let id = parts.next().ok_or_else(|| bad(n, "missing id"))?;
        let id = match id.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(q) => q.replace("\"\"", "\""),
            None => id.to_string(),
        };
        out.push(Point {
            id,
            x: x.parse().map_err(|_| bad(n, "x is not a number"))?,
            y: y.parse().map_err(|_| bad(n, "y is not a number"))?,
            class: class
                .parse()
                .map_err(|_| bad(n, "class is not an integer 0..255"))?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use lulc_engine::Port;

    use super::*;

    fn art_from(ctx: &RunCtx, port: &str, ty: &str) -> ArtifactIn {
        let out = &ctx.outputs()[port];
        ArtifactIn {
            step_id: "s".into(),
            dims: BTreeMap::new(),
            ty: ty.into(),
            digest: String::new(),
            files: out.files.clone(),
            meta: out.meta.clone(),
        }
    }

    #[test]
    fn samples_round_trip_sorted_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = RunCtx::for_test("s", vec![Port::one("samples", SAMPLES)], dir.path());
        let s = Samples {
            year: Some(2019),
            label_year: Some(2020),
            crs: Some("EPSG:32648".into()),
            seasons: vec!["S1".into(), "S2".into()],
            features: vec!["NDVI".into(), "VV".into(), "DSM".into()],
            points: vec![
                Point {
                    id: "b,2".into(),
                    x: 1.5,
                    y: -2.25,
                    class: 3,
                },
                Point {
                    id: "a1".into(),
                    x: 0.1 + 0.2,
                    y: 7.0,
                    class: 14,
                },
            ],
            data: (0..12).map(|v| v as f32 * 0.5).collect(),
        };
        s.clone().write(&mut ctx, "samples").unwrap();
        let back = Samples::read(&art_from(&ctx, "samples", SAMPLES)).unwrap();
        assert_eq!(back.points[0].id, "a1");
        assert_eq!(back.points[0].x, 0.1 + 0.2);
        assert_eq!(back.points[1].id, "b,2");
        assert_eq!(back.row(0), &s.data[6..12]);
        assert_eq!(back.row(1), &s.data[0..6]);
        assert_eq!(back.class_counts(), BTreeMap::from([(3, 1), (14, 1)]));
        assert_eq!(back.meta().n, 2);
    }

    #[test]
    fn inconsistent_samples_are_an_error_naming_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = RunCtx::for_test("s", vec![Port::one("samples", SAMPLES)], dir.path());
        let s = Samples {
            year: None,
            label_year: None,
            crs: None,
            seasons: vec!["S1".into()],
            features: vec!["NDVI".into()],
            points: vec![Point {
                id: "p".into(),
                x: 0.0,
                y: 0.0,
                class: 1,
            }],
            data: vec![0.5],
        };
        s.write(&mut ctx, "samples").unwrap();
        let mut art = art_from(&ctx, "samples", SAMPLES);
        art.meta["n"] = 2.into();
        let e = Samples::read(&art).unwrap_err();
        assert!(e.to_string().contains("inconsistent"), "{e}");
    }

    #[test]
    fn points_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = RunCtx::for_test("p", vec![Port::one("points", POINTS)], dir.path());
        let set = PointSet {
            year: Some(2020),
            crs: None,
            points: vec![
                Point {
                    id: "2".into(),
                    x: 3.0,
                    y: 4.0,
                    class: 2,
                },
                Point {
                    id: "1".into(),
                    x: 1.0,
                    y: 2.0,
                    class: 1,
                },
            ],
        };
        set.write(&mut ctx, "points").unwrap();
        let back = PointSet::read(&art_from(&ctx, "points", POINTS)).unwrap();
        assert_eq!(back.points.len(), 2);
        assert_eq!(back.points[0].id, "1");
        assert_eq!(back.year, Some(2020));
    }
}
