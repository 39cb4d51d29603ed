//! `mask`: cloud (and shadow, cirrus, optionally snow) masking of the scenes of one partition,
//! as a `Scenes` artifact in which every masked pixel is nodata in every band
//! (`docs/method.md`, "Cloud masks (Sentinel-2)").
//!
//! Why it is its own step: compositing ([`super::composite`]) only sees valid observations and
//! picks the "clearest" scenes by their `valid_fraction`, so masking decides both what is
//! composited and which scenes the gap-filling window chooses. Keeping it apart lets a change of
//! mask params re-run masking and compositing while acquisition stays cached.
//!
//! ## Ports
//! - in `scenes` (`Scenes`): one partition (a year, a tile), e.g. from `acquire`.
//! - out `scenes` (`Scenes`, see [`crate::artifacts::ScenesMeta`]): the same files (names, band
//!   order, data type, nodata, scale) with masked pixels set to the scene's nodata in **every**
//!   band (the mask band too), and each scene's `valid_fraction` replaced by the share of
//!   pixels that are not masked and have data in every band but the mask band.
//!
//! ## Params (defaults in brackets)
//! - `method` [`scl`]: `scl` (Sentinel-2 L2A Scene Classification Layer), `qa60` (L1C QA60
//!   bits) or `cloud_prob` (a cloud probability band and a threshold).
//! - `scl_classes` [`[0, 1, 3, 8, 9, 10]`]: SCL classes masked: no data, saturated or
//!   defective, cloud shadow, cloud medium and high probability, thin cirrus (`docs/method.md`).
//!   `snow` [false]: also mask class 11 (snow or ice). `scl_band` [the scene's `qa_band`, else
//!   `SCL`]. A pixel whose SCL value is the band's nodata counts as class 0.
//! - `qa60_bits` [`[10, 11]`]: QA60 bits masked (10 opaque cloud, 11 cirrus); `qa60_band`
//!   [`QA60`]. Raw values are tested (QA60 0 is clear even when 0 is the scene's nodata).
//! - `cloud_prob_band` [`CLD`] and `threshold` [50]: mask where probability > threshold
//!   (and where the probability band is NaN).
//! - `dilate_px` [0]: grow the mask by this many pixels (a square of side `2 dilate_px + 1`),
//!   to catch cloud edges. Only the mask band's flags are dilated, not the input's nodata.
//!
//! Bounded memory: scenes are processed in 256 x 256 blocks; the mask band is read with a halo
//! of `dilate_px` pixels so that dilation across block edges equals dilating the whole scene.
//! Rayon over scenes; output bytes do not depend on the number of threads. A mask band that
//! does not exist fails the step, naming the scene, the file and the band.
//!
//! ```yaml
//! nodes:
//!   clear:
//!     kind: mask
//!     for_each: { year: { param: years, pad: 1 } }
//!     inputs: { scenes: s2 }
//!     params: { method: scl, dilate_px: 2 }
//! ```

use std::path::Path;

use lulc_engine::{Inputs, Node, NodeError, Port, RunCtx};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::artifacts::{SCENES, SceneMeta, ScenesMeta};
use crate::raster::{
    DType, Grid, RasterError, RasterMeta, RasterReader, RasterWriter, TILE, Window, WriteOptions,
};
use crate::season::scenes_meta;

pub struct Mask;

/// Which quality information decides the mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskMethod {
    #[default]
    Scl,
    Qa60,
    CloudProb,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskParams {
    pub method: MaskMethod,
    /// `None`: the scene's `qa_band`, else `SCL`.
    pub scl_band: Option<String>,
    pub scl_classes: Vec<u8>,
    pub snow: bool,
    pub qa60_band: String,
    pub qa60_bits: Vec<u8>,
    pub cloud_prob_band: String,
    pub threshold: f64,
    pub dilate_px: usize,
}

impl Default for MaskParams {
    fn default() -> Self {
        MaskParams {
            method: MaskMethod::Scl,
            scl_band: None,
            scl_classes: vec![0, 1, 3, 8, 9, 10],
            snow: false,
            qa60_band: "QA60".to_string(),
            qa60_bits: vec![10, 11],
            cloud_prob_band: "CLD".to_string(),
            threshold: 50.0,
            dilate_px: 0,
        }
    }
}

/// SCL class 11, snow or ice.
const SCL_SNOW: u8 = 11;
/// Largest accepted `dilate_px` (the halo is read around every block).
const MAX_DILATE: usize = 256;

/// The mask rule, resolved from the params.
#[derive(Clone, Debug)]
enum Rule {
    /// Masked SCL classes as a bit set (bit `c` for class `c`, 0..11).
    Scl {
        classes: u64,
    },
    Qa60 {
        bits: u64,
    },
    CloudProb {
        threshold: f64,
    },
}

impl Rule {
    fn new(p: &MaskParams) -> Rule {
        match p.method {
            MaskMethod::Scl => {
                let mut classes = p
                    .scl_classes
                    .iter()
                    .filter(|&&c| c <= SCL_SNOW)
                    .fold(0u64, |m, &c| m | (1u64 << c));
                if p.snow {
                    classes |= 1u64 << SCL_SNOW;
                }
                Rule::Scl { classes }
            }
            MaskMethod::Qa60 => Rule::Qa60 {
                bits: p.qa60_bits.iter().fold(0u64, |m, &b| m | (1u64 << b)),
            },
            MaskMethod::CloudProb => Rule::CloudProb {
                threshold: p.threshold,
            },
        }
    }

    /// Whether raw mask-band value `v` is masked (`nodata`: the band's nodata value).
    fn masked(&self, v: f64, nodata: f64) -> bool {
        match self {
            Rule::Scl { classes } => {
                let class = if v.is_nan() || v == nodata { 0.0 } else { v };
                (0.0..=f64::from(SCL_SNOW)).contains(&class)
                    && class.fract() == 0.0
                    && classes & (1u64 << class as u64) != 0
            }
            Rule::Qa60 { bits } => v.is_finite() && v >= 0.0 && (v as u64) & bits != 0,
            Rule::CloudProb { threshold } => v.is_nan() || v > *threshold,
        }
    }
}

impl MaskParams {
    /// The mask band of a scene.
    fn band_for(&self, scene: &SceneMeta) -> (String, &'static str) {
        match self.method {
            MaskMethod::Scl => (
                self.scl_band
                    .clone()
                    .or_else(|| scene.qa_band.clone())
                    .unwrap_or_else(|| "SCL".to_string()),
                "scl_band",
            ),
            MaskMethod::Qa60 => (self.qa60_band.clone(), "qa60_band"),
            MaskMethod::CloudProb => (self.cloud_prob_band.clone(), "cloud_prob_band"),
        }
    }
}

impl Node for Mask {
    const KIND: &'static str = "mask";
    const VERSION: u32 = 1;
    type Params = MaskParams;

    fn inputs() -> Vec<Port> {
        vec![Port::one("scenes", SCENES)]
    }

    fn outputs() -> Vec<Port> {
        vec![Port::one("scenes", SCENES)]
    }

    fn summary() -> &'static str {
        "cloud masking (SCL classes, QA60 bits or a cloud probability), optional dilation"
    }

    fn check(p: &MaskParams) -> Result<(), Vec<(String, String)>> {
        let mut errs = Vec::new();
        if let Some(c) = p.scl_classes.iter().find(|&&c| c > SCL_SNOW) {
            errs.push((
                "scl_classes".to_string(),
                format!("SCL classes are 0..11, got {c}"),
            ));
        }
        if let Some(b) = p.qa60_bits.iter().find(|&&b| b > 15) {
            errs.push((
                "qa60_bits".to_string(),
                format!("QA60 is a 16-bit band: bits are 0..15, got {b}"),
            ));
        }
        if !p.threshold.is_finite() {
            errs.push((
                "threshold".to_string(),
                format!("must be a number, got {}", p.threshold),
            ));
        }
        if p.dilate_px > MAX_DILATE {
            errs.push((
                "dilate_px".to_string(),
                format!("at most {MAX_DILATE} pixels, got {}", p.dilate_px),
            ));
        }
        for (name, v) in [
            ("scl_band", p.scl_band.as_deref().unwrap_or("SCL")),
            ("qa60_band", p.qa60_band.as_str()),
            ("cloud_prob_band", p.cloud_prob_band.as_str()),
        ] {
            if v.trim().is_empty() {
                errs.push((name.to_string(), "empty band name".to_string()));
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    fn run(&self, ctx: &mut RunCtx, p: &MaskParams, inputs: &Inputs) -> Result<(), NodeError> {
        let art = inputs.one("scenes")?;
        let meta = scenes_meta("scenes", art)?;
        let rule = Rule::new(p);
        let mut jobs = Vec::with_capacity(meta.scenes.len());
        for s in &meta.scenes {
            let src = art.file(&s.file)?.to_path_buf();
            let dst = ctx.output_file("scenes", &s.file)?;
            jobs.push((s, src, dst));
        }
        let results: Vec<Result<usize, NodeError>> = jobs
            .par_iter()
            .map(|(s, src, dst)| {
                let (band, param) = p.band_for(s);
                mask_scene(s, src, dst, &meta.grid, &band, param, &rule, p.dilate_px)
            })
            .collect();
        let npix = meta.grid.pixel_count() as f64;
        let mut scenes = Vec::with_capacity(meta.scenes.len());
        let (mut vin, mut vout) = (0.0, 0.0);
        for (s, res) in meta.scenes.iter().zip(results) {
            let valid = res?;
            let mut s = s.clone();
            vin += s.valid_fraction;
            s.valid_fraction = valid as f64 / npix;
            vout += s.valid_fraction;
            scenes.push(s);
        }
        let n = scenes.len().max(1) as f64;
        ctx.metric("scenes", scenes.len() as u64);
        ctx.metric("valid_fraction_in_mean", vin / n);
        ctx.metric("valid_fraction_out_mean", vout / n);
        let out = ScenesMeta {
            sensor: meta.sensor.clone(),
            grid: meta.grid.clone(),
            scenes,
            values: meta.values.clone(),
        };
        ctx.set_meta(
            "scenes",
            serde_json::to_value(&out).map_err(|e| NodeError::new(e.to_string()))?,
        )
    }
}

/// GeoTIFF metadata items `acquire` writes, copied to the masked file.
const COPIED_ITEMS: [&str; 4] = ["LULC_SENSOR", "LULC_SCENE_ID", "LULC_DATE", "LULC_SCALE"];

/// Mask one scene from `src` into `dst`; returns its number of valid pixels.
#[allow(clippy::too_many_arguments)]
fn mask_scene(
    s: &SceneMeta,
    src: &Path,
    dst: &Path,
    grid: &Grid,
    band: &str,
    param: &str,
    rule: &Rule,
    dilate: usize,
) -> Result<usize, NodeError> {
    let label = format!("scene `{}` ({})", s.id, s.date);
    let err = |e: RasterError| NodeError::new(format!("{label}: {e}"));
    let reader = RasterReader::open(src).map_err(err)?;
    grid.ensure_same(reader.grid(), src).map_err(err)?;
    let mask_band = reader.band_index(band).map_err(|e| {
        err(e).with_help(format!(
            "the mask band is set by `{param}`; choose the `method` that matches the scenes \
             (L2A: `scl`, L1C: `qa60`)"
        ))
    })?;
    let nbands = reader.band_count();
    let out_meta = RasterMeta {
        grid: grid.clone(),
        dtype: reader.meta().dtype,
        nodata: Some(s.nodata),
        band_names: reader.meta().band_names.clone(),
    };
    let mut writer = RasterWriter::create(dst, &out_meta, &WriteOptions::default()).map_err(err)?;
    for key in COPIED_ITEMS {
        if let Some(v) = reader.metadata_item(key) {
            writer.set_metadata_item(key, &v).map_err(err)?;
        }
    }
    let nd = s.nodata as f32;
    let mut valid_px = 0;
    for win in grid.blocks(TILE) {
        let mask =
            block_mask(&reader, mask_band, &win, grid, rule, s.nodata, dilate).map_err(err)?;
        let mut valid = vec![true; win.len()];
        for (i, m) in mask.iter().enumerate() {
            if *m {
                valid[i] = false;
            }
        }
        let mut planes = Vec::with_capacity(nbands);
        for b in 1..=nbands {
            let mut v = reader.read_window_f32(b, &win).map_err(err)?;
            for (x, &m) in v.iter_mut().zip(&mask) {
                if m || *x == nd {
                    *x = f32::NAN;
                }
            }
            if b != mask_band {
                for (ok, x) in valid.iter_mut().zip(&v) {
                    if x.is_nan() {
                        *ok = false;
                    }
                }
            }
            planes.push(v);
        }
        valid_px += valid.iter().filter(|&&v| v).count();
        for (b, v) in planes.iter().enumerate() {
            writer.write_window_f32(b + 1, &win, v).map_err(err)?;
        }
    }
    writer.finish().map_err(err)?;
    Ok(valid_px)
}

/// The (dilated) mask of block `win`: the mask band is read over `win` grown by `dilate`
/// pixels (clipped to the grid), flagged, dilated, and cropped back to `win`.
fn block_mask(
    reader: &RasterReader,
    band: usize,
    win: &Window,
    grid: &Grid,
    rule: &Rule,
    nodata: f64,
    dilate: usize,
) -> Result<Vec<bool>, RasterError> {
    let x0 = win.x.saturating_sub(dilate);
    let y0 = win.y.saturating_sub(dilate);
    let x1 = (win.x + win.w + dilate).min(grid.width);
    let y1 = (win.y + win.h + dilate).min(grid.height);
    let halo = Window::new(x0, y0, x1 - x0, y1 - y0);
    let raw = read_raw(reader, band, &halo)?;
    let flags: Vec<bool> = raw.iter().map(|&v| rule.masked(v, nodata)).collect();
    let flags = dilate_square(&flags, halo.w, halo.h, dilate);
    let (dx, dy) = (win.x - x0, win.y - y0);
    let mut out = Vec::with_capacity(win.len());
    for row in 0..win.h {
        let start = (row + dy) * halo.w + dx;
        out.extend_from_slice(&flags[start..start + win.w]);
    }
    Ok(out)
}

/// Raw values of a band (no nodata conversion for integer types), as f64.
fn read_raw(reader: &RasterReader, band: usize, win: &Window) -> Result<Vec<f64>, RasterError> {
    Ok(match reader.meta().dtype {
        DType::U8 | DType::U16 => reader
            .read_window_u16(band, win)?
            .into_iter()
            .map(f64::from)
            .collect(),
        DType::I16 => reader
            .read_window_i16(band, win)?
            .into_iter()
            .map(f64::from)
            .collect(),
        _ => reader
            .read_window_f32(band, win)?
            .into_iter()
            .map(f64::from)
            .collect(),
    })
}

/// Square dilation (side `2 r + 1`) of a `w x h` row-major mask: a pixel is set when any pixel
/// within Chebyshev distance `r` is. Separable, with sliding counts: O(w h) whatever `r`.
pub fn dilate_square(mask: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    assert_eq!(mask.len(), w * h);
    if r == 0 || mask.is_empty() {
        return mask.to_vec();
    }
    // One pass along a line of `len` values read with `get(k)`, written with `set(k, v)`.
    fn pass(len: usize, r: usize, get: impl Fn(usize) -> bool, mut set: impl FnMut(usize, bool)) {
        let mut count: usize = (0..r.min(len)).map(|k| usize::from(get(k))).sum();
        for k in 0..len {
            if k + r < len {
                count += usize::from(get(k + r));
            }
            if k > r {
                count -= usize::from(get(k - r - 1));
            }
            set(k, count > 0);
        }
    }
    let mut rows = vec![false; w * h];
    for y in 0..h {
        let line = &mask[y * w..(y + 1) * w];
        let out = &mut rows[y * w..(y + 1) * w];
        pass(w, r, |k| line[k], |k, v| out[k] = v);
    }
    let mut out = vec![false; w * h];
    for x in 0..w {
        pass(h, r, |k| rows[k * w + x], |k, v| out[k * w + x] = v);
    }
    out
}

/// Fixtures shared with the `composite` tests (the real-data chain mask -> composite).
#[cfg(test)]
pub(crate) mod tests_support {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use lulc_engine::{ArtifactIn, DimValue, erase};
    use serde_json::Value;
    use tempfile::TempDir;

    use super::*;
    use crate::raster::{Resampling, warp_to_grid};

    pub struct MaskRun {
        pub ctx: RunCtx,
        pub _out: TempDir,
    }

    impl MaskRun {
        pub fn meta(&self) -> ScenesMeta {
            serde_json::from_value(self.ctx.outputs()["scenes"].meta.clone()).unwrap()
        }

        pub fn file(&self, name: &str) -> PathBuf {
            self.ctx.outputs()["scenes"].files[name].clone()
        }

        /// The output as an input artifact of a downstream step.
        pub fn artifact(&self, step_id: &str, year: i64) -> ArtifactIn {
            let out = &self.ctx.outputs()["scenes"];
            ArtifactIn {
                step_id: step_id.to_string(),
                dims: BTreeMap::from([("year".to_string(), DimValue::Int(year))]),
                ty: SCENES.into(),
                digest: format!("blake3:{step_id}"),
                files: out.files.clone(),
                meta: out.meta.clone(),
            }
        }
    }

    pub fn run_mask(params: Value, art: ArtifactIn) -> Result<MaskRun, NodeError> {
        let out = TempDir::new().unwrap();
        let node = erase(Mask);
        let canon = node.check_params(&params).map_err(|errs| {
            NodeError::new(
                errs.iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let mut ctx = RunCtx::for_test("mask", Mask::outputs(), out.path())
            .with_dims([("year".to_string(), DimValue::Int(2020))]);
        let inputs = Inputs {
            ports: BTreeMap::from([("scenes".to_string(), vec![art])]),
        };
        node.run(&mut ctx, &canon, &inputs)?;
        Ok(MaskRun { ctx, _out: out })
    }

    /// The sen2rts data folder, or `None` (with a note) when it is not there.
    pub fn sen2rts_dir() -> Option<PathBuf> {
        let data = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/sen2rts-s2-ndvi-scl/mincrops");
        if data.is_dir() {
            Some(data)
        } else {
            eprintln!(
                "note: {} not found; skipping the real-data test",
                data.display()
            );
            None
        }
    }

    /// The real sen2rts series as a `Scenes` artifact: per date one Int16 GeoTIFF with bands
    /// `NDVI` (x 1e4, nodata -32768) and `SCL` (20 m warped nearest onto the 10 m NDVI grid
    /// with `raster::warp_to_grid`; SCL nodata written as class 0).
    pub fn sen2rts_scenes() -> Option<(TempDir, ArtifactIn)> {
        let data = sen2rts_dir()?;
        let mut ndvi: Vec<PathBuf> = std::fs::read_dir(data.join("NDVI"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "tif"))
            .collect();
        ndvi.sort();
        assert_eq!(ndvi.len(), 60);
        let dir = TempDir::new().unwrap();
        let grid = RasterReader::open(&ndvi[0]).unwrap().grid().clone();
        let mut files = BTreeMap::new();
        let mut scenes = Vec::new();
        for path in &ndvi {
            // S2A2A_20200109_022_mincrops_NDVI_10.tif
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let d = name.split('_').nth(1).unwrap();
            let date = format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8]);
            let scl_path = data.join("SCL").join(name.replace("_NDVI_", "_SCL_"));
            let r = RasterReader::open(path).unwrap();
            let v = r.read_window_i16(1, &grid.full_window()).unwrap();
            let scl = warp_to_grid(&scl_path, 1, &grid, Resampling::Nearest)
                .unwrap()
                .read_window_f32(&grid.full_window())
                .unwrap();
            let scl: Vec<i16> = scl
                .iter()
                .map(|&c| if c.is_nan() { 0 } else { c as i16 })
                .collect();
            let id = name.trim_end_matches(".tif").to_string();
            let file = format!("{d}_{id}.tif");
            let out = dir.path().join(&file);
            let meta = RasterMeta {
                grid: grid.clone(),
                dtype: DType::I16,
                nodata: Some(-32768.0),
                band_names: vec!["NDVI".into(), "SCL".into()],
            };
            let mut w = RasterWriter::create(&out, &meta, &WriteOptions::default()).unwrap();
            w.write_window_i16(1, &grid.full_window(), &v).unwrap();
            w.write_window_i16(2, &grid.full_window(), &scl).unwrap();
            w.finish().unwrap();
            let valid = v
                .iter()
                .zip(&scl)
                .filter(|&(&x, &c)| x != -32768 && c != 0)
                .count();
            files.insert(file.clone(), out);
            scenes.push(SceneMeta {
                id,
                date,
                file,
                bands: vec!["NDVI".into(), "SCL".into()],
                qa_band: Some("SCL".into()),
                scale: 1e-4,
                offset: 0.0,
                nodata: -32768.0,
                valid_fraction: valid as f64 / grid.pixel_count() as f64,
                cloud_cover: None,
            });
        }
        let meta = ScenesMeta {
            sensor: "sentinel-2-l2a".into(),
            grid,
            scenes,
            values: None,
        };
        let art = ArtifactIn {
            step_id: "s2[year=2020]".into(),
            dims: BTreeMap::from([("year".to_string(), DimValue::Int(2020))]),
            ty: SCENES.into(),
            digest: "blake3:sen2rts".into(),
            files,
            meta: serde_json::to_value(meta).unwrap(),
        };
        Some((dir, art))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use lulc_engine::{ArtifactIn, DimValue};
    use serde_json::json;
    use tempfile::TempDir;

    use super::tests_support::{run_mask, sen2rts_scenes};
    use super::*;
    use crate::raster::BBox;

    fn grid(w: usize, h: usize) -> Grid {
        Grid::from_bbox(
            "EPSG:32648",
            BBox {
                min_x: 600_000.0,
                min_y: 1_200_000.0 - 10.0 * h as f64,
                max_x: 600_000.0 + 10.0 * w as f64,
                max_y: 1_200_000.0,
            },
            10.0,
        )
        .unwrap()
    }

    /// A UInt16 Sentinel-2-like `Scenes` artifact with one scene per entry of `scenes`
    /// (`(band names, planes)`), nodata 0, scale 1e-4, qa band `qa`.
    fn s2_art(
        dir: &Path,
        g: &Grid,
        qa: Option<&str>,
        scenes: &[(&[&str], Vec<Vec<u16>>)],
    ) -> ArtifactIn {
        let mut files = BTreeMap::new();
        let mut metas = Vec::new();
        for (k, (names, planes)) in scenes.iter().enumerate() {
            let file = format!("2020010{}_s{k}.tif", k + 1);
            let path = dir.join(&file);
            let m = RasterMeta {
                grid: g.clone(),
                dtype: DType::U16,
                nodata: Some(0.0),
                band_names: names.iter().map(|s| s.to_string()).collect(),
            };
            let mut w = RasterWriter::create(&path, &m, &WriteOptions::default()).unwrap();
            w.set_metadata_item("LULC_SCENE_ID", &format!("s{k}"))
                .unwrap();
            for (b, v) in planes.iter().enumerate() {
                w.write_window_u16(b + 1, &g.full_window(), v).unwrap();
            }
            w.finish().unwrap();
            files.insert(file.clone(), path);
            metas.push(SceneMeta {
                id: format!("s{k}"),
                date: format!("2020-01-0{}", k + 1),
                file,
                bands: names.iter().map(|s| s.to_string()).collect(),
                qa_band: qa.map(str::to_string),
                scale: 1e-4,
                offset: 0.0,
                nodata: 0.0,
                valid_fraction: 1.0,
                cloud_cover: None,
            });
        }
        ArtifactIn {
            step_id: "s2[year=2020]".into(),
            dims: BTreeMap::from([("year".to_string(), DimValue::Int(2020))]),
            ty: SCENES.into(),
            digest: "blake3:s2".into(),
            files,
            meta: serde_json::to_value(ScenesMeta {
                sensor: "sentinel-2-l2a".into(),
                grid: g.clone(),
                scenes: metas,
                values: None,
            })
            .unwrap(),
        }
    }

    fn band_u16(path: &Path, band: usize) -> Vec<u16> {
        let r = RasterReader::open(path).unwrap();
        r.read_window_u16(band, &r.grid().full_window()).unwrap()
    }

    fn err_of(r: Result<tests_support::MaskRun, NodeError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => format!("{} | help: {}", e.message, e.help.unwrap_or_default()),
        }
    }

    /// A 4 x 3 scene whose SCL runs through classes 0..11; B02 = 100 + i, B03 = 200 + i, with
    /// B02 nodata at the pixel of class 4 (vegetation).
    fn scl_scene() -> (&'static [&'static str], Vec<Vec<u16>>) {
        let scl: Vec<u16> = (0..12).collect();
        let b02: Vec<u16> = (0..12).map(|i| if i == 4 { 0 } else { 100 + i }).collect();
        let b03: Vec<u16> = (0..12).map(|i| 200 + i).collect();
        (&["B02", "B03", "SCL"], vec![b02, b03, scl])
    }

    #[test]
    fn mask_scl_default_classes_and_snow() {
        let dir = TempDir::new().unwrap();
        let g = grid(4, 3);
        let art = s2_art(dir.path(), &g, Some("SCL"), &[scl_scene()]);
        let r = run_mask(json!({}), art.clone()).unwrap();
        let out = r.file("20200101_s0.tif");
        let (b02, b03, scl) = (band_u16(&out, 1), band_u16(&out, 2), band_u16(&out, 3));
        let masked = [0u16, 1, 3, 8, 9, 10];
        for i in 0..12u16 {
            let iu = i as usize;
            if masked.contains(&i) {
                assert_eq!((b02[iu], b03[iu], scl[iu]), (0, 0, 0), "class {i}");
            } else {
                let want_b02 = if i == 4 { 0 } else { 100 + i };
                assert_eq!(
                    (b02[iu], b03[iu], scl[iu]),
                    (want_b02, 200 + i, i),
                    "class {i}"
                );
            }
        }
        // Valid: classes 2, 5, 6, 7, 11 (class 4 has no B02): 5 of 12.
        let m = r.meta();
        assert!((m.scenes[0].valid_fraction - 5.0 / 12.0).abs() < 1e-12);
        assert_eq!(m.scenes[0].file, "20200101_s0.tif");
        assert_eq!(m.grid, g);
        // The file keeps type, nodata, band names and the scene metadata item.
        let rd = RasterReader::open(&out).unwrap();
        assert_eq!(rd.meta().dtype, DType::U16);
        assert_eq!(rd.meta().nodata, Some(0.0));
        assert_eq!(rd.meta().band_names, ["B02", "B03", "SCL"]);
        assert_eq!(rd.metadata_item("LULC_SCENE_ID").as_deref(), Some("s0"));

        // snow: true adds class 11.
        let r = run_mask(json!({"snow": true}), art.clone()).unwrap();
        let b03 = band_u16(&r.file("20200101_s0.tif"), 2);
        assert_eq!(b03[11], 0);
        assert_eq!(b03[2], 202);
        assert!((r.meta().scenes[0].valid_fraction - 4.0 / 12.0).abs() < 1e-12);

        // Custom classes.
        let r = run_mask(json!({"scl_classes": [2, 7]}), art).unwrap();
        let b03 = band_u16(&r.file("20200101_s0.tif"), 2);
        let zero: Vec<usize> = (0..12).filter(|&i| b03[i] == 0).collect();
        assert_eq!(zero, [2, 7]);
    }

    #[test]
    fn mask_scl_with_dilation_across_blocks() {
        // 300 x 290 px (4 blocks of 256): clouds at the corner of 4 blocks, at a border and
        // a shadow at the far corner; dilation by 2 must equal a brute-force Chebyshev check.
        let dir = TempDir::new().unwrap();
        let (w, h) = (300usize, 290usize);
        let g = grid(w, h);
        let clouds = [
            (255usize, 255usize, 9u16),
            (0, 100, 8),
            (299, 289, 3),
            (258, 3, 10),
        ];
        let mut scl = vec![4u16; w * h];
        for &(x, y, c) in &clouds {
            scl[y * w + x] = c;
        }
        // A snow pixel is not masked (snow: false) and not dilated.
        scl[50 * w + 50] = 11;
        let b02: Vec<u16> = (0..w * h).map(|i| 1 + (i % 5000) as u16).collect();
        let art = s2_art(
            dir.path(),
            &g,
            Some("SCL"),
            &[(&["B02", "SCL"], vec![b02.clone(), scl])],
        );
        let r = run_mask(json!({"dilate_px": 2}), art.clone()).unwrap();
        let out = band_u16(&r.file("20200101_s0.tif"), 1);
        let mut n_masked = 0;
        for y in 0..h {
            for x in 0..w {
                let near = clouds
                    .iter()
                    .any(|&(cx, cy, _)| cx.abs_diff(x) <= 2 && cy.abs_diff(y) <= 2);
                let i = y * w + x;
                if near {
                    n_masked += 1;
                    assert_eq!(out[i], 0, "({x}, {y}) should be masked");
                } else {
                    assert_eq!(out[i], b02[i], "({x}, {y}) should be kept");
                }
            }
        }
        // 25 + 15 (left border) + 9 (corner) + 25.
        assert_eq!(n_masked, 25 + 15 + 9 + 25);
        let vf = r.meta().scenes[0].valid_fraction;
        assert!((vf - (w * h - n_masked) as f64 / (w * h) as f64).abs() < 1e-12);

        // Same bytes twice (rayon, blocks, halos).
        let again = run_mask(json!({"dilate_px": 2}), art).unwrap();
        assert_eq!(
            std::fs::read(r.file("20200101_s0.tif")).unwrap(),
            std::fs::read(again.file("20200101_s0.tif")).unwrap()
        );
    }

    #[test]
    fn mask_dilate_square_matches_brute_force() {
        let (w, h) = (17, 11);
        let mask: Vec<bool> = (0..w * h).map(|i| (i * 37 + i / 7) % 23 == 0).collect();
        for r in 0..5 {
            let got = dilate_square(&mask, w, h, r);
            for y in 0..h {
                for x in 0..w {
                    let want = (0..h).any(|yy| {
                        (0..w).any(|xx| {
                            mask[yy * w + xx] && xx.abs_diff(x) <= r && yy.abs_diff(y) <= r
                        })
                    });
                    assert_eq!(got[y * w + x], want, "r={r} ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn mask_qa60_bits() {
        let dir = TempDir::new().unwrap();
        let g = grid(4, 1);
        // Clear (0), opaque cloud (bit 10), cirrus (bit 11), another bit (5).
        let qa = vec![0u16, 1 << 10, 1 << 11, 1 << 5];
        let b02 = vec![10u16, 20, 30, 40];
        let art = s2_art(
            dir.path(),
            &g,
            Some("QA60"),
            &[(&["B02", "QA60"], vec![b02, qa])],
        );
        let r = run_mask(json!({"method": "qa60"}), art.clone()).unwrap();
        let f = r.file("20200101_s0.tif");
        assert_eq!(band_u16(&f, 1), [10, 0, 0, 40]);
        assert!((r.meta().scenes[0].valid_fraction - 0.5).abs() < 1e-12);
        let r = run_mask(json!({"method": "qa60", "qa60_bits": [10]}), art.clone()).unwrap();
        assert_eq!(band_u16(&r.file("20200101_s0.tif"), 1), [10, 0, 30, 40]);
        let r = run_mask(json!({"method": "qa60", "qa60_bits": [5]}), art).unwrap();
        assert_eq!(band_u16(&r.file("20200101_s0.tif"), 1), [10, 20, 30, 0]);
    }

    #[test]
    fn mask_cloud_probability_threshold() {
        let dir = TempDir::new().unwrap();
        let g = grid(4, 1);
        let art = s2_art(
            dir.path(),
            &g,
            None,
            &[(
                &["B02", "CLD"],
                vec![vec![1, 2, 3, 4], vec![10, 50, 51, 90]],
            )],
        );
        let r = run_mask(json!({"method": "cloud_prob"}), art.clone()).unwrap();
        assert_eq!(band_u16(&r.file("20200101_s0.tif"), 1), [1, 2, 0, 0]);
        let r = run_mask(json!({"method": "cloud_prob", "threshold": 20}), art).unwrap();
        assert_eq!(band_u16(&r.file("20200101_s0.tif"), 1), [1, 0, 0, 0]);
    }

    #[test]
    fn mask_unknown_band_names_file_and_band() {
        let dir = TempDir::new().unwrap();
        let g = grid(4, 3);
        let art = s2_art(dir.path(), &g, Some("SCL"), &[scl_scene()]);
        let e = err_of(run_mask(json!({"method": "qa60"}), art.clone()));
        assert!(
            e.contains("band `QA60` not found")
                && e.contains("20200101_s0.tif")
                && e.contains("scene `s0`")
                && e.contains("`SCL`")
                && e.contains("qa60_band"),
            "{e}"
        );
        let e = err_of(run_mask(json!({"scl_band": "MSK"}), art.clone()));
        assert!(e.contains("band `MSK` not found"), "{e}");
        // Bad params are spec errors.
        let e = err_of(run_mask(json!({"scl_classes": [12]}), art.clone()));
        assert!(
            e.contains("scl_classes: SCL classes are 0..11, got 12"),
            "{e}"
        );
        let e = err_of(run_mask(json!({"qa60_bits": [16]}), art.clone()));
        assert!(e.contains("qa60_bits"), "{e}");
        let e = err_of(run_mask(json!({"method": "fmask"}), art.clone()));
        assert!(e.contains("fmask"), "{e}");
        let e = err_of(run_mask(json!({"dilate": 2}), art));
        assert!(e.contains("unknown param `dilate`"), "{e}");
    }

    #[test]
    fn mask_is_deterministic_over_many_scenes() {
        let dir = TempDir::new().unwrap();
        let g = grid(4, 3);
        let scenes: Vec<_> = (0..6).map(|_| scl_scene()).collect();
        let art = s2_art(dir.path(), &g, Some("SCL"), &scenes);
        let a = run_mask(json!({"dilate_px": 1}), art.clone()).unwrap();
        let b = run_mask(json!({"dilate_px": 1}), art).unwrap();
        assert_eq!(a.meta(), b.meta());
        assert_eq!(a.meta().scenes.len(), 6);
        for s in a.meta().scenes {
            assert_eq!(
                std::fs::read(a.file(&s.file)).unwrap(),
                std::fs::read(b.file(&s.file)).unwrap()
            );
        }
    }

    #[test]
    fn mask_real_sen2rts_ndvi_with_scl() {
        let Some((_dir, art)) = sen2rts_scenes() else {
            return;
        };
        let input: ScenesMeta = serde_json::from_value(art.meta.clone()).unwrap();
        let r = run_mask(json!({}), art.clone()).unwrap();
        let out = r.meta();
        assert_eq!(out.scenes.len(), 60);
        let masked_classes = [0i16, 1, 3, 8, 9, 10];
        let (mut masked_total, mut kept_total) = (0, 0);
        for (si, so) in input.scenes.iter().zip(&out.scenes) {
            assert_eq!(si.id, so.id);
            let src = RasterReader::open(art.file(&si.file).unwrap()).unwrap();
            let win = src.grid().full_window();
            let (ndvi, scl) = (
                src.read_window_i16(1, &win).unwrap(),
                src.read_window_i16(2, &win).unwrap(),
            );
            let dst = RasterReader::open(r.file(&so.file)).unwrap();
            let masked_ndvi = dst.read_window_i16(1, &win).unwrap();
            let mut valid = 0;
            for i in 0..ndvi.len() {
                if masked_classes.contains(&scl[i]) {
                    assert_eq!(masked_ndvi[i], -32768, "{} pixel {i}", si.id);
                    masked_total += 1;
                } else {
                    assert_eq!(masked_ndvi[i], ndvi[i], "{} pixel {i}", si.id);
                    kept_total += 1;
                    if ndvi[i] != -32768 {
                        valid += 1;
                    }
                }
            }
            assert!((so.valid_fraction - valid as f64 / 175.0).abs() < 1e-12);
            assert!(so.valid_fraction <= si.valid_fraction);
        }
        // The series has clouds (classes 3, 8, 9, 10 occur) and clear pixels.
        assert!(
            masked_total > 0 && kept_total > 0,
            "{masked_total} {kept_total}"
        );
    }
}
