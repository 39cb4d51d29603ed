//! `index`: every feature of the method (`docs/method.md`, "Features") computed from the season
//! composites of one partition, as a `Features` artifact (one GeoTIFF per season, one band per
//! feature, static layers repeated in every season).
//!
//! Why one node computes everything it can: most features are cheap next to reading the
//! composites, so each block of each input band is read once and every feature of it is computed
//! in the same pass (rayon over blocks). Choosing features for an ablation is the `stack` node's
//! job, downstream, so a sweep over `stack.features` leaves this step cached.
//!
//! ## Ports
//! - in `s2` (`Composite`, required): Sentinel-2 season composites, reflectance 0..1.
//! - in `s1` (`Composite`, optional): Sentinel-1 composites, sigma0 dB (`VV`, `VH`).
//! - in `palsar` (`Composite`, optional): PALSAR-2 composites, gamma0 dB (`HH`, `HV`).
//! - in `dsm` (`Scenes`, optional): the static DSM (its first scene, band `elevation`, metres).
//! - in `catalog` (`Catalog`, optional): where the roads are read from when the `roads` param
//!   is not set (file `roads_file` of the catalog, e.g. the simulator's `vectors/roads.geojson`).
//! - out `features` (`Features`, see [`crate::artifacts::FeaturesMeta`]).
//!
//! ## Features (in this order, each when its input is connected)
//! - Sentinel-2: `B02 B03 B04 B05 B06 B07 B08 B8A B11 B12`, `NDVI EVI GNDVI GRVI NDWI1 NDWI2
//!   GSI` ([`crate::features::spectral::s2_indices`] has the formulas).
//! - Sentinel-1: `VV VH VV-VH VV/VH VV_savg VV_diss VH_savg VH_diss`.
//! - PALSAR-2: `HH HV HH-HV HH/HV NDI NLI HH_savg HH_diss HV_savg HV_diss`; NDI and NLI in
//!   linear power.
//! - Static: `DSM slope` (with `dsm`), `road_dist` (with roads).
//!
//! All are Float32 with nodata `NaN`: nodata in any input band of a feature gives nodata, and so
//! does a zero denominator (never `Inf`). Only the input bands the features need are read, and
//! only those must exist; a missing one fails the step with the file and the band named.
//!
//! ## Params (defaults in brackets)
//! - `features` [all computable]: a set (`s2`, `s2_s1`, `s2_s1_palsar`, `all`, `s2+dsm`, ...) or
//!   a list (see [`crate::features::sets`]); asking for a feature whose input is not connected
//!   is an error.
//! - `bands` [{}]: band names in the inputs when they differ from the feature names, e.g.
//!   `{ B08: nir, DSM: height }` (the DSM's default is `elevation`).
//! - `linear_ratio` [false]: `VV/VH` and `HH/HV` as the quotient of linear powers,
//!   `10^((co - cross) / 10)`, instead of the quotient of the dB values (**[assumed]** default,
//!   `docs/method.md`).
//! - `nli` [`HV / (HH + HV)`]: NLI's formula over `HH` and `HV` in linear power (**[assumed]**;
//!   `+ - * / ^`, parentheses, `sqrt abs ln log10 exp`).
//! - `glcm`: `radius` [4] (9x9 window, Earth Engine's default), `levels` [32], `offsets`
//!   [[[0,1],[1,1],[1,0],[1,-1]]] as (row, column), `ranges` of the quantisation in dB
//!   [`VV: [-25, 0]`, `VH: [-30, -5]`, `HH: [-25, 0]`, `HV: [-25, 0]`] (**[assumed]**).
//! - `slope_compute_edges` [true]: as `gdaldem slope -compute_edges`, so a tile's border
//!   pixels get a slope (false: plain `gdaldem slope`, border pixels nodata).
//! - `roads` [none]: a vector file of road lines (relative to the spec's folder; its content
//!   enters the step key). When both are given, `roads` is used.
//! - `roads_file` [`vectors/roads.geojson`]: the roads' file inside the `catalog` input.
//! - `road_margin` [1000]: metres around the grid in which roads are also rasterised, so that a
//!   road just outside a tile still counts. Road lines are rasterised at the grid's resolution
//!   (every pixel a line passes through) and the distance, in metres, is exact Euclidean
//!   between pixel centres. No road at all within grid + margin: `road_dist` is nodata (warned).
//!
//! GLCM textures follow Earth Engine's `glcmTexture` ([`crate::features::glcm`]); a pair counts
//! when both its pixels are inside the window (as scikit-image's `graycomatrix` on the window)
//! and neither is nodata or outside the raster. Slope is Horn's, as `gdaldem slope`
//! ([`crate::features::terrain`]), on a projected grid (metres).
//!
//! ```yaml
//! nodes:
//!   features:
//!     kind: index
//!     for_each: { year: years }
//!     inputs:
//!       s2: s2_composite
//!       s1: s1_composite
//!       palsar: palsar_composite
//!       dsm: dsm
//!       catalog: simulate
//!     params:
//!       glcm: { radius: 4, levels: 32 }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lulc_engine::{ArtifactIn, Inputs, Node, NodeError, Port, RunCtx};
use serde::{Deserialize, Serialize};

use crate::artifacts::{COMPOSITE, CompositeMeta, FEATURES, FeaturesMeta, SCENES, ScenesMeta};
use crate::features::distance::{DistanceField, distance_to_lines};
use crate::features::glcm::{self, GlcmSpec};
use crate::features::sets::{self, FeatureSelection, S2_BANDS, Sensor};
use crate::features::spectral::{
    self, Formula, S2_INDICES, S2Bands, SarRatio, palsar_indices, sar_pair,
};
use crate::features::terrain::slope_horn;
use crate::kinds::{blockwise, open_all, raster_err};
use crate::raster::{
    DType, Grid, RasterMeta, RasterReader, RasterWriter, TILE, Window, WriteOptions, crs_equivalent,
};
use crate::vector::{self, PointFeature, ReadOptions, reproject_points};

pub struct Index;

/// The Sentinel-2 bands the indices are computed from.
const S2_INDEX_INPUTS: [&str; 6] = ["B02", "B03", "B04", "B08", "B11", "B12"];

/// Variables of the NLI formula (linear power).
const NLI_VARS: [&str; 2] = ["HH", "HV"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexParams {
    /// Features to compute; `None`: all that the connected inputs allow.
    pub features: Option<FeatureSelection>,
    /// Feature band name -> band name in the input, where they differ.
    pub bands: BTreeMap<String, String>,
    pub linear_ratio: bool,
    pub nli: String,
    pub glcm: GlcmParams,
    pub slope_compute_edges: bool,
    pub roads: Option<String>,
    pub roads_file: String,
    pub road_margin: f64,
}

impl Default for IndexParams {
    fn default() -> Self {
        IndexParams {
            features: None,
            bands: BTreeMap::new(),
            linear_ratio: false,
            nli: "HV / (HH + HV)".to_string(),
            glcm: GlcmParams::default(),
            slope_compute_edges: true,
            roads: None,
            roads_file: "vectors/roads.geojson".to_string(),
            road_margin: 1000.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlcmParams {
    pub radius: usize,
    pub levels: u16,
    /// (row, column) offsets.
    pub offsets: Vec<[i32; 2]>,
    pub ranges: GlcmRanges,
}

impl Default for GlcmParams {
    fn default() -> Self {
        let s = GlcmSpec::default();
        GlcmParams {
            radius: s.radius,
            levels: s.levels,
            offsets: s.offsets.iter().map(|&(r, c)| [r, c]).collect(),
            ranges: GlcmRanges::default(),
        }
    }
}

impl GlcmParams {
    fn spec(&self) -> GlcmSpec {
        GlcmSpec {
            radius: self.radius,
            levels: self.levels,
            offsets: self.offsets.iter().map(|&[r, c]| (r, c)).collect(),
        }
    }
}

/// Quantisation range (dB) of each SAR band's GLCM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlcmRanges {
    #[serde(rename = "VV")]
    pub vv: [f32; 2],
    #[serde(rename = "VH")]
    pub vh: [f32; 2],
    #[serde(rename = "HH")]
    pub hh: [f32; 2],
    #[serde(rename = "HV")]
    pub hv: [f32; 2],
}

impl Default for GlcmRanges {
    fn default() -> Self {
        GlcmRanges {
            vv: [-25.0, 0.0],
            vh: [-30.0, -5.0],
            hh: [-25.0, 0.0],
            hv: [-25.0, 0.0],
        }
    }
}

impl GlcmRanges {
    fn get(&self, band: &str) -> [f32; 2] {
        match band {
            "VV" => self.vv,
            "VH" => self.vh,
            "HH" => self.hh,
            _ => self.hv,
        }
    }
}

/// Names the `bands` param may map: the bands read from the inputs.
fn mappable_bands() -> Vec<&'static str> {
    let mut v: Vec<&str> = S2_BANDS.to_vec();
    v.extend(["VV", "VH", "HH", "HV", "DSM"]);
    v
}

impl IndexParams {
    fn band_name<'a>(&'a self, feature_band: &'a str) -> &'a str {
        match self.bands.get(feature_band) {
            Some(b) => b,
            None if feature_band == "DSM" => "elevation",
            None => feature_band,
        }
    }
}

impl Node for Index {
    const KIND: &'static str = "index";
    const VERSION: u32 = 1;
    type Params = IndexParams;

    fn inputs() -> Vec<Port> {
        vec![
            Port::one("s2", COMPOSITE),
            Port::one("s1", COMPOSITE).optional(),
            Port::one("palsar", COMPOSITE).optional(),
            Port::one("dsm", SCENES).optional(),
            Port::one("catalog", crate::artifacts::CATALOG).optional(),
        ]
    }

    fn outputs() -> Vec<Port> {
        vec![Port::one("features", FEATURES)]
    }

    fn summary() -> &'static str {
        "every feature (S2 bands and indices, SAR, GLCM, DSM, slope, road distance) per season"
    }

    fn files(p: &IndexParams, _connected: &[&str]) -> Vec<(&'static str, String)> {
        p.roads.iter().map(|r| ("roads", r.clone())).collect()
    }

    fn check(p: &IndexParams) -> Result<(), Vec<(String, String)>> {
        let mut errs = Vec::new();
        if let Some(sel) = &p.features {
            for m in sel.problems() {
                errs.push(("features".to_string(), m));
            }
        }
        let known = mappable_bands();
        for (k, v) in &p.bands {
            if !known.contains(&k.as_str()) {
                errs.push((
                    format!("bands.{k}"),
                    format!("`{k}` is not an input band (known: {})", known.join(", ")),
                ));
            }
            if v.trim().is_empty() {
                errs.push((format!("bands.{k}"), "empty band name".to_string()));
            }
        }
        if let Err(e) = Formula::parse(&p.nli, &NLI_VARS) {
            errs.push(("nli".to_string(), e));
        }
        for m in p.glcm.spec().problems() {
            errs.push(("glcm".to_string(), m));
        }
        for (band, [lo, hi]) in [
            ("VV", p.glcm.ranges.vv),
            ("VH", p.glcm.ranges.vh),
            ("HH", p.glcm.ranges.hh),
            ("HV", p.glcm.ranges.hv),
        ] {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                errs.push((
                    format!("glcm.ranges.{band}"),
                    format!("range [{lo}, {hi}] must be finite with min < max"),
                ));
            }
        }
        if p.roads_file.trim().is_empty() {
            errs.push(("roads_file".to_string(), "empty file name".to_string()));
        }
        if !(p.road_margin.is_finite() && p.road_margin >= 0.0) {
            errs.push((
                "road_margin".to_string(),
                format!("must be a distance in metres >= 0, got {}", p.road_margin),
            ));
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    fn run(&self, ctx: &mut RunCtx, p: &IndexParams, inputs: &Inputs) -> Result<(), NodeError> {
        let plan = IndexPlan::prepare(ctx, p, inputs)?;
        let nfeat = plan.features.len();
        let meta = RasterMeta {
            grid: plan.grid.clone(),
            dtype: DType::F32,
            nodata: Some(f64::NAN),
            band_names: plan.features.iter().map(|s| s.to_string()).collect(),
        };
        let mut writers = Vec::with_capacity(plan.seasons.len());
        let mut files = Vec::with_capacity(plan.seasons.len());
        for season in &plan.seasons {
            let name = format!("{season}.tif");
            let path = ctx.output_file("features", &name)?;
            writers.push(
                RasterWriter::create(&path, &meta, &WriteOptions::default()).map_err(raster_err)?,
            );
            files.push((season.clone(), name));
        }
        // Blocks in groups, so that a 10980 x 10980 tile never holds more than a few blocks of
        // results (6 seasons x 38 features x 256 x 256 x 4 B = 60 MB per block).
        let blocks: Vec<Window> = plan.grid.blocks(TILE).collect();
        blockwise(
            &blocks,
            2,
            || plan.open_readers(),
            |readers, w| plan.compute_block(readers, w),
            |w, seasons| {
                let n = w.len();
                for (writer, data) in writers.iter_mut().zip(&seasons) {
                    for k in 0..nfeat {
                        writer
                            .write_window_f32(k + 1, w, &data[k * n..][..n])
                            .map_err(raster_err)?;
                    }
                }
                Ok(())
            },
        )?;
        for w in writers {
            w.finish().map_err(raster_err)?;
        }
        ctx.metric("features", nfeat as u64);
        ctx.metric("seasons", plan.seasons.len() as u64);
        ctx.metric("blocks", blocks.len() as u64);
        let out = FeaturesMeta {
            grid: plan.grid.clone(),
            year: plan.year,
            seasons: plan.seasons.clone(),
            features: plan.features.iter().map(|s| s.to_string()).collect(),
            files,
        };
        ctx.set_meta(
            "features",
            serde_json::to_value(&out).map_err(|e| NodeError::new(e.to_string()))?,
        )
    }
}

/// One connected composite: per season, its file and the 1-based numbers of the bands read.
struct CompositeInput {
    files: Vec<PathBuf>,
    bands: Vec<Vec<usize>>,
}

struct DsmInput {
    file: PathBuf,
    band: usize,
    scale: f32,
    offset: f32,
}

/// Everything checked and resolved before the first block is read.
struct IndexPlan {
    grid: Grid,
    year: i64,
    seasons: Vec<String>,
    /// Output features, in band order.
    features: Vec<&'static str>,
    s2: CompositeInput,
    /// The Sentinel-2 bands read (canonical names), in the order of `s2.bands`.
    s2_read: Vec<&'static str>,
    s1: Option<CompositeInput>,
    palsar: Option<CompositeInput>,
    dsm: Option<DsmInput>,
    /// Road distances on the grid extended by the margin, and that margin in pixels.
    roads: Option<(DistanceField, usize, usize)>,
    sar_ratio: SarRatio,
    nli: Formula,
    glcm: GlcmSpec,
    glcm_ranges: GlcmRanges,
    slope_edges: bool,
}

/// Open readers of one worker: per sensor, one per season.
struct Readers {
    s2: Vec<RasterReader>,
    s1: Vec<RasterReader>,
    palsar: Vec<RasterReader>,
    dsm: Option<RasterReader>,
}

fn composite_meta(port: &str, art: &ArtifactIn) -> Result<CompositeMeta, NodeError> {
    serde_json::from_value(art.meta.clone()).map_err(|e| {
        NodeError::new(format!(
            "input `{port}` (from `{}`) is not a Composite: {e}",
            art.step_id
        ))
    })
}

impl IndexPlan {
    fn prepare(ctx: &mut RunCtx, p: &IndexParams, inputs: &Inputs) -> Result<IndexPlan, NodeError> {
        let s2_art = inputs.one("s2")?;
        let s2_meta = composite_meta("s2", s2_art)?;
        let grid = s2_meta.grid.clone();
        if let Some(y) = ctx.dim_int("year")
            && y != s2_meta.year
        {
            ctx.warn(format!(
                "partition year {y} differs from the `s2` composite's year {}",
                s2_meta.year
            ));
        }
        let seasons: Vec<String> = s2_meta.seasons.iter().map(|s| s.name.clone()).collect();
        if seasons.is_empty() {
            return Err(NodeError::new("the `s2` composite has no season"));
        }

        let optional = |port: &str| -> Result<Option<&ArtifactIn>, NodeError> {
            match inputs.all(port) {
                [] => Ok(None),
                [a] => Ok(Some(a)),
                _ => inputs.one(port).map(Some),
            }
        };
        let s1_art = optional("s1")?;
        let palsar_art = optional("palsar")?;
        let dsm_art = optional("dsm")?;
        let catalog_art = optional("catalog")?;
        let has_roads = p.roads.is_some() || catalog_art.is_some();

        let mut available = vec![Sensor::Sentinel2];
        for (cond, s) in [
            (s1_art.is_some(), Sensor::Sentinel1),
            (palsar_art.is_some(), Sensor::Palsar2),
            (dsm_art.is_some(), Sensor::Dsm),
            (has_roads, Sensor::Roads),
        ] {
            if cond {
                available.push(s);
            }
        }
        let features = match &p.features {
            None => sets::features_of(&available),
            Some(sel) => {
                let names = sel.resolve().map_err(|errs| {
                    NodeError::new(
                        errs.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                })?;
                let missing: Vec<String> = names
                    .iter()
                    .filter_map(|n| sets::feature(n))
                    .filter(|f| !available.contains(&f.sensor))
                    .map(|f| {
                        format!(
                            "`{}` needs {}, but {} is not connected",
                            f.name,
                            f.sensor,
                            f.sensor.how_to_connect()
                        )
                    })
                    .collect();
                if !missing.is_empty() {
                    return Err(NodeError::new(format!(
                        "requested feature(s) cannot be computed: {}",
                        missing.join("; ")
                    ))
                    .with_help(format!(
                        "connect the input, or choose from the computable features: {}",
                        sets::features_of(&available).join(", ")
                    )));
                }
                names
            }
        };
        let needs = |sensor: Sensor| {
            features
                .iter()
                .any(|n| sets::feature(n).is_some_and(|f| f.sensor == sensor))
        };

        // Only the Sentinel-2 bands that are output or that the indices need are read (and must
        // exist in the composite).
        let any_index = S2_INDICES.iter().any(|i| features.contains(i));
        let s2_read: Vec<&'static str> = S2_BANDS
            .iter()
            .copied()
            .filter(|b| features.contains(b) || (any_index && S2_INDEX_INPUTS.contains(b)))
            .collect();
        let s2_bands: Vec<&str> = s2_read.iter().map(|b| p.band_name(b)).collect();
        let s2 = resolve_composite("s2", s2_art, &s2_meta, &grid, &seasons, &s2_bands)?;
        let sar = |port: &'static str,
                   art: Option<&ArtifactIn>,
                   co: &str,
                   cross: &str,
                   sensor: Sensor|
         -> Result<Option<CompositeInput>, NodeError> {
            let Some(art) = art.filter(|_| needs(sensor)) else {
                return Ok(None);
            };
            let meta = composite_meta(port, art)?;
            if meta.year != s2_meta.year {
                return Err(NodeError::new(format!(
                    "input `{port}` is of year {}, `s2` of year {}",
                    meta.year, s2_meta.year
                )));
            }
            let names = [p.band_name(co), p.band_name(cross)];
            resolve_composite(port, art, &meta, &grid, &seasons, &names).map(Some)
        };
        let s1 = sar("s1", s1_art, "VV", "VH", Sensor::Sentinel1)?;
        let palsar = sar("palsar", palsar_art, "HH", "HV", Sensor::Palsar2)?;

        let dsm = match dsm_art.filter(|_| needs(Sensor::Dsm)) {
            None => None,
            Some(art) => Some(resolve_dsm(ctx, art, &grid, p.band_name("DSM"))?),
        };
        let roads = if needs(Sensor::Roads) {
            Some(road_distances(ctx, p, catalog_art, &grid)?)
        } else {
            None
        };
        let nli =
            Formula::parse(&p.nli, &NLI_VARS).map_err(|e| NodeError::new(format!("`nli`: {e}")))?;
        Ok(IndexPlan {
            grid,
            year: s2_meta.year,
            seasons,
            features,
            s2,
            s2_read,
            s1,
            palsar,
            dsm,
            roads,
            sar_ratio: if p.linear_ratio {
                SarRatio::Linear
            } else {
                SarRatio::DbQuotient
            },
            nli,
            glcm: p.glcm.spec(),
            glcm_ranges: p.glcm.ranges.clone(),
            slope_edges: p.slope_compute_edges,
        })
    }

    fn slot(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| *f == name)
    }

    fn wants(&self, name: &str) -> bool {
        self.slot(name).is_some()
    }

    fn open_readers(&self) -> Result<Readers, NodeError> {
        let open = |c: &CompositeInput| open_all(&c.files);
        Ok(Readers {
            s2: open(&self.s2)?,
            s1: self.s1.as_ref().map(open).transpose()?.unwrap_or_default(),
            palsar: self
                .palsar
                .as_ref()
                .map(open)
                .transpose()?
                .unwrap_or_default(),
            dsm: self
                .dsm
                .as_ref()
                .map(|d| RasterReader::open(&d.file).map_err(raster_err))
                .transpose()?,
        })
    }

    /// Every output feature of one block, per season: `features.len()` planes of `w.len()`.
    fn compute_block(&self, readers: &Readers, w: &Window) -> Result<Vec<Vec<f32>>, NodeError> {
        let n = w.len();
        let nfeat = self.features.len();
        // Static layers, once for all seasons.
        let mut statics: Vec<(&str, Vec<f32>)> = Vec::new();
        if let (Some(d), Some(r)) = (&self.dsm, &readers.dsm) {
            let (mut buf, bw, bh, region) = read_clipped(r, d.band, w, 1, &self.grid)?;
            if d.scale != 1.0 || d.offset != 0.0 {
                for v in &mut buf {
                    *v = *v * d.scale + d.offset;
                }
            }
            if self.wants("slope") {
                let res = self.grid.pixel_size();
                statics.push((
                    "slope",
                    slope_horn(&buf, bw, bh, res, self.slope_edges, region),
                ));
            }
            statics.push(("DSM", crop(&buf, bw, &region)));
        }
        if let Some((field, mx, my)) = &self.roads {
            statics.push((
                "road_dist",
                field.window(&Window::new(w.x + mx, w.y + my, w.w, w.h)),
            ));
        }

        let mut out = Vec::with_capacity(self.seasons.len());
        for s in 0..self.seasons.len() {
            let mut planes = vec![f32::NAN; nfeat * n];
            let mut put = |name: &str, data: &[f32]| {
                if let Some(k) = self.slot(name) {
                    planes[k * n..][..n].copy_from_slice(data);
                }
            };
            // Sentinel-2: each band read once; all seven indices in one pass.
            let reader = &readers.s2[s];
            let mut bands: Vec<(&str, Vec<f32>)> = Vec::with_capacity(self.s2_read.len());
            for (name, &b) in self.s2_read.iter().zip(&self.s2.bands[s]) {
                let v = reader.read_window_f32(b, w).map_err(raster_err)?;
                put(name, &v);
                bands.push((name, v));
            }
            let band = |name: &str| {
                bands
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_slice())
                    .expect("index input bands are read")
            };
            if S2_INDICES.iter().any(|i| self.wants(i)) {
                let mut idx = vec![vec![0f32; n]; 7];
                let mut it = idx.iter_mut();
                let refs: [&mut [f32]; 7] =
                    std::array::from_fn(|_| it.next().expect("7").as_mut_slice());
                spectral::s2_indices(
                    &S2Bands {
                        blue: band("B02"),
                        green: band("B03"),
                        red: band("B04"),
                        nir: band("B08"),
                        swir1: band("B11"),
                        swir2: band("B12"),
                    },
                    refs,
                );
                for (name, v) in S2_INDICES.iter().zip(&idx) {
                    put(name, v);
                }
            }
            // SAR.
            for (input, readers, co, cross) in [
                (&self.s1, &readers.s1, "VV", "VH"),
                (&self.palsar, &readers.palsar, "HH", "HV"),
            ] {
                let Some(input) = input else { continue };
                let textures =
                    |b: &str| self.wants(&format!("{b}_savg")) || self.wants(&format!("{b}_diss"));
                let halo = if textures(co) || textures(cross) {
                    self.glcm.radius
                } else {
                    0
                };
                let reader = &readers[s];
                let mut db = Vec::with_capacity(2);
                for (name, &band) in [co, cross].iter().zip(&input.bands[s]) {
                    let (buf, bw, bh, region) = read_clipped(reader, band, w, halo, &self.grid)?;
                    let centre = crop(&buf, bw, &region);
                    put(name, &centre);
                    if textures(name) {
                        let [lo, hi] = self.glcm_ranges.get(name);
                        let q = glcm::quantize(&buf, lo, hi, self.glcm.levels);
                        let t = glcm::savg_diss(&q, bw, bh, region, &self.glcm);
                        put(&format!("{name}_savg"), &t.savg);
                        put(&format!("{name}_diss"), &t.diss);
                    }
                    db.push(centre);
                }
                let (mut diff, mut quot) = (vec![0f32; n], vec![0f32; n]);
                sar_pair(&db[0], &db[1], self.sar_ratio, &mut diff, &mut quot);
                put(&format!("{co}-{cross}"), &diff);
                put(&format!("{co}/{cross}"), &quot);
                if co == "HH" && (self.wants("NDI") || self.wants("NLI")) {
                    let (mut ndi, mut nli) = (vec![0f32; n], vec![0f32; n]);
                    palsar_indices(&db[0], &db[1], &self.nli, &mut ndi, &mut nli);
                    put("NDI", &ndi);
                    put("NLI", &nli);
                }
            }
            for (name, v) in &statics {
                put(name, v);
            }
            out.push(planes);
        }
        Ok(out)
    }
}

/// Check a composite against the grid and seasons and find its bands in every season's file.
fn resolve_composite(
    port: &'static str,
    art: &ArtifactIn,
    meta: &CompositeMeta,
    grid: &Grid,
    seasons: &[String],
    bands: &[&str],
) -> Result<CompositeInput, NodeError> {
    let mut files = Vec::with_capacity(seasons.len());
    let mut numbers = Vec::with_capacity(seasons.len());
    for season in seasons {
        let sm = meta
            .seasons
            .iter()
            .find(|s| &s.name == season)
            .ok_or_else(|| {
                NodeError::new(format!(
                    "input `{port}` has no season `{season}` (it has: {})",
                    meta.seasons
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let path = art.file(&sm.file)?.to_path_buf();
        let reader = RasterReader::open(&path).map_err(raster_err)?;
        grid.ensure_same(reader.grid(), &path)
            .map_err(|e| NodeError::new(format!("input `{port}`: {e}")))?;
        let idx = bands
            .iter()
            .map(|b| {
                reader
                    .band_index(b)
                    .map_err(|e| NodeError::new(format!("input `{port}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        files.push(path);
        numbers.push(idx);
    }
    Ok(CompositeInput {
        files,
        bands: numbers,
    })
}

fn resolve_dsm(
    ctx: &mut RunCtx,
    art: &ArtifactIn,
    grid: &Grid,
    band: &str,
) -> Result<DsmInput, NodeError> {
    let meta: ScenesMeta = serde_json::from_value(art.meta.clone()).map_err(|e| {
        NodeError::new(format!(
            "input `dsm` (from `{}`) is not a Scenes artifact: {e}",
            art.step_id
        ))
    })?;
    let scene = meta
        .scenes
        .first()
        .ok_or_else(|| NodeError::new("input `dsm` has no scene"))?;
    if meta.scenes.len() > 1 {
        ctx.warn(format!(
            "input `dsm` has {} scenes; the first (`{}`) is used",
            meta.scenes.len(),
            scene.id
        ));
    }
    let file = art.file(&scene.file)?.to_path_buf();
    let reader = RasterReader::open(&file).map_err(raster_err)?;
    grid.ensure_same(reader.grid(), &file)
        .map_err(|e| NodeError::new(format!("input `dsm`: {e}")))?;
    let band = reader
        .band_index(band)
        .map_err(|e| NodeError::new(format!("input `dsm`: {e}")))?;
    Ok(DsmInput {
        file,
        band,
        scale: scene.scale as f32,
        offset: scene.offset as f32,
    })
}

/// Read the roads, bring them onto the grid (extended by the margin) and transform.
fn road_distances(
    ctx: &mut RunCtx,
    p: &IndexParams,
    catalog: Option<&ArtifactIn>,
    grid: &Grid,
) -> Result<(DistanceField, usize, usize), NodeError> {
    let path: PathBuf = match (&p.roads, catalog) {
        (Some(r), _) => ctx.input_path("roads", r)?,
        (None, Some(cat)) => cat.files.get(&p.roads_file).cloned().ok_or_else(|| {
            NodeError::new(format!(
                "the `catalog` input (from `{}`) has no file `{}`",
                cat.step_id, p.roads_file
            ))
            .with_help(
                "set `roads_file` to the roads' path inside the catalog, or `roads` to a file",
            )
        })?,
        (None, None) => return Err(NodeError::new("no roads: set `roads` or connect `catalog`")),
    };
    let file =
        vector::open(&path, &ReadOptions::default()).map_err(|e| NodeError::new(e.to_string()))?;
    if let Some(r) = &p.roads {
        // A file the spec names may be a VRT naming other files: check those too.
        super::confine_dataset(&ctx.confinement(), r, &file.driver(), &file.file_list())?;
    }
    let layer = file.lines().map_err(|e| NodeError::new(e.to_string()))?;
    if !layer.skipped.is_empty() {
        ctx.warn(format!(
            "{} road feature(s) of `{}` skipped (no usable line)",
            layer.skipped.len(),
            display_name(&path)
        ));
    }
    let mut lines: Vec<Vec<(f64, f64)>> = layer.features.into_iter().map(|f| f.coords).collect();
    if !layer.crs_wkt.trim().is_empty()
        && !grid.crs_wkt.trim().is_empty()
        && !crs_equivalent(&layer.crs_wkt, &grid.crs_wkt)
    {
        let mut pts: Vec<PointFeature> = lines
            .iter()
            .flatten()
            .map(|&(x, y)| PointFeature {
                id: 0,
                x,
                y,
                attrs: BTreeMap::new(),
            })
            .collect();
        reproject_points(&mut pts, &layer.crs_wkt, &grid.crs_wkt)
            .map_err(|e| NodeError::new(format!("roads `{}`: {e}", display_name(&path))))?;
        let mut it = pts.into_iter();
        for line in &mut lines {
            for c in line.iter_mut() {
                let pt = it.next().expect("one point per coordinate");
                *c = (pt.x, pt.y);
            }
        }
    }
    let (px, py) = grid.pixel_size();
    let mx = (p.road_margin / px).ceil() as usize;
    let my = (p.road_margin / py).ceil() as usize;
    let g = grid.geo_transform;
    let det = g[1] * g[5] - g[2] * g[4];
    if det == 0.0 || !det.is_finite() {
        return Err(NodeError::new("the grid's geotransform cannot be inverted"));
    }
    // Map coordinates -> pixel coordinates of the extended grid.
    let to_pixel = |(x, y): (f64, f64)| {
        let (dx, dy) = (x - g[0], y - g[3]);
        let col = (g[5] * dx - g[2] * dy) / det;
        let row = (-g[4] * dx + g[1] * dy) / det;
        (col + mx as f64, row + my as f64)
    };
    let pixel_lines: Vec<Vec<(f64, f64)>> = lines
        .iter()
        .map(|l| l.iter().copied().map(to_pixel).collect())
        .collect();
    let (w, h) = (grid.width + 2 * mx, grid.height + 2 * my);
    let field = distance_to_lines(pixel_lines.iter().map(Vec::as_slice), w, h, px, py);
    ctx.metric("road_lines", pixel_lines.len() as u64);
    if !field.has_targets() {
        ctx.warn(format!(
            "no road of `{}` within the grid and {} m around it: `road_dist` is nodata",
            display_name(&path),
            p.road_margin
        ));
    }
    Ok((field, mx, my))
}

/// A file's name for messages (store paths are long and meaningless).
fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Read `window` grown by `halo` pixels and clipped to the raster: the buffer, its size, and
/// where `window` lies in it.
fn read_clipped(
    reader: &RasterReader,
    band: usize,
    window: &Window,
    halo: usize,
    grid: &Grid,
) -> Result<(Vec<f32>, usize, usize, Window), NodeError> {
    let x0 = window.x.saturating_sub(halo);
    let y0 = window.y.saturating_sub(halo);
    let x1 = (window.x + window.w + halo).min(grid.width);
    let y1 = (window.y + window.h + halo).min(grid.height);
    let outer = Window::new(x0, y0, x1 - x0, y1 - y0);
    let buf = reader.read_window_f32(band, &outer).map_err(raster_err)?;
    Ok((
        buf,
        outer.w,
        outer.h,
        Window::new(window.x - x0, window.y - y0, window.w, window.h),
    ))
}

fn crop(buf: &[f32], bw: usize, region: &Window) -> Vec<f32> {
    let mut out = Vec::with_capacity(region.len());
    for r in region.y..region.y + region.h {
        out.extend_from_slice(&buf[r * bw + region.x..][..region.w]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::{SceneMeta, SeasonMeta};
    use crate::raster::crs_to_wkt;
    use crate::vector::{LineFeature, write_lines_geojson};
    use lulc_engine::DimValue;
    use serde_json::{Value, json};
    use tempfile::TempDir;

    /// Two blocks wide, so block halos are exercised.
    const W: usize = 300;
    const H: usize = 12;
    const SEASONS: [&str; 2] = ["S1", "S2"];

    fn grid() -> Grid {
        Grid {
            crs_wkt: crs_to_wkt("EPSG:32648").unwrap(),
            geo_transform: [600000.0, 10.0, 0.0, 1200000.0, 0.0, -10.0],
            width: W,
            height: H,
        }
    }

    fn hash(c: usize, r: usize, s: usize, k: usize) -> usize {
        (c * 31 + r * 17 + s * 7 + k * 13) % 23
    }

    /// Sentinel-2 band `k` (of [`S2_BANDS`]) at (c, r) in season `s`; (5, 3) is nodata;
    /// (6, 3) has B04 = B08 = 0.
    fn s2_value(k: usize, c: usize, r: usize, s: usize) -> f32 {
        match (c, r) {
            (5, 3) => f32::NAN,
            (6, 3) if k == 2 || k == 6 => 0.0,
            _ => 0.02 + 0.03 * k as f32 + 0.004 * hash(c, r, s, k) as f32,
        }
    }

    /// SAR: co-pol in dB, cross-pol lower; (7, 4) has cross-pol 0 dB, (10, 2) co-pol nodata.
    fn sar_value(cross: bool, c: usize, r: usize, s: usize, palsar: bool) -> f32 {
        let co = -18.0 + 0.6 * hash(c, r, s, usize::from(palsar)) as f32;
        match (c, r, cross) {
            (10, 2, false) => f32::NAN,
            (7, 4, true) => 0.0,
            (_, _, false) => co,
            _ => co - 5.0 - (c % 4) as f32,
        }
    }

    fn dsm_value(c: usize, r: usize) -> f32 {
        if (c, r) == (20, 5) {
            f32::NAN
        } else {
            5.0 + 0.5 * c as f32 + 0.2 * r as f32 + ((c * r) % 7) as f32
        }
    }

    fn plane(f: impl Fn(usize, usize) -> f32) -> Vec<f32> {
        (0..W * H).map(|i| f(i % W, i / W)).collect()
    }

    fn write_tif(path: &Path, bands: &[(String, Vec<f32>)], g: &Grid) {
        let meta = RasterMeta {
            grid: g.clone(),
            dtype: DType::F32,
            nodata: Some(f64::NAN),
            band_names: bands.iter().map(|(n, _)| n.clone()).collect(),
        };
        let mut w = RasterWriter::create(path, &meta, &WriteOptions::default()).unwrap();
        for (i, (_, v)) in bands.iter().enumerate() {
            w.write_window_f32(i + 1, &g.full_window(), v).unwrap();
        }
        w.finish().unwrap();
    }

    /// A composite artifact: per season a file with `bands` and `valid_count`.
    fn composite(
        dir: &Path,
        name: &str,
        bands: &[&str],
        g: &Grid,
        value: impl Fn(usize, usize, usize, usize) -> f32,
    ) -> ArtifactIn {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let mut files = BTreeMap::new();
        let mut seasons = Vec::new();
        for (s, season) in SEASONS.iter().enumerate() {
            let mut data: Vec<(String, Vec<f32>)> = bands
                .iter()
                .enumerate()
                .map(|(k, b)| (b.to_string(), plane(|c, r| value(k, c, r, s))))
                .collect();
            data.push(("valid_count".into(), vec![3.0; W * H]));
            let file = format!("{season}.tif");
            let path = sub.join(&file);
            write_tif(&path, &data, g);
            files.insert(file.clone(), path);
            seasons.push(SeasonMeta {
                name: season.to_string(),
                file,
                scenes: vec![],
                nodata_share: 0.0,
            });
        }
        let meta = CompositeMeta {
            sensor: name.to_string(),
            grid: g.clone(),
            year: 2020,
            bands: bands.iter().map(|b| b.to_string()).collect(),
            seasons,
            window: "own".into(),
            statistic: "median".into(),
        };
        ArtifactIn {
            step_id: name.to_string(),
            dims: BTreeMap::new(),
            ty: COMPOSITE.into(),
            digest: format!("blake3:{name}"),
            files,
            meta: serde_json::to_value(meta).unwrap(),
        }
    }

    fn s2_art(dir: &Path) -> ArtifactIn {
        composite(dir, "s2", &S2_BANDS, &grid(), s2_value)
    }

    fn s1_art(dir: &Path) -> ArtifactIn {
        composite(dir, "s1", &["VV", "VH"], &grid(), |k, c, r, s| {
            sar_value(k == 1, c, r, s, false)
        })
    }

    fn palsar_art(dir: &Path) -> ArtifactIn {
        composite(dir, "palsar", &["HH", "HV"], &grid(), |k, c, r, s| {
            sar_value(k == 1, c, r, s, true)
        })
    }

    fn dsm_art(dir: &Path) -> ArtifactIn {
        let path = dir.join("dsm.tif");
        write_tif(&path, &[("elevation".into(), plane(dsm_value))], &grid());
        let meta = ScenesMeta {
            sensor: "dsm".into(),
            grid: grid(),
            scenes: vec![SceneMeta {
                id: "dsm".into(),
                date: "2020-01-01".into(),
                file: "dsm.tif".into(),
                bands: vec!["elevation".into()],
                qa_band: None,
                scale: 1.0,
                offset: 0.0,
                nodata: f64::NAN,
                valid_fraction: 1.0,
                cloud_cover: None,
            }],
            values: None,
        };
        ArtifactIn {
            step_id: "dsm".into(),
            dims: BTreeMap::new(),
            ty: SCENES.into(),
            digest: "blake3:dsm".into(),
            files: BTreeMap::from([("dsm.tif".to_string(), path)]),
            meta: serde_json::to_value(meta).unwrap(),
        }
    }

    /// A road along the centre line of row 5, from 500 m west of the grid to 500 m east.
    fn roads_file(dir: &Path) -> PathBuf {
        let path = dir.join("roads.geojson");
        let y = 1200000.0 - 55.0;
        let line = LineFeature {
            coords: vec![(599500.0, y), (600000.0 + W as f64 * 10.0 + 500.0, y)],
            attrs: BTreeMap::new(),
        };
        write_lines_geojson(&path, &[line], &grid().crs_wkt).unwrap();
        path
    }

    fn inputs(arts: Vec<(&str, ArtifactIn)>) -> Inputs {
        Inputs {
            ports: arts
                .into_iter()
                .map(|(p, a)| (p.to_string(), vec![a]))
                .collect(),
        }
    }

    fn run(params: Value, inputs: &Inputs, dir: &Path) -> Result<RunCtx, NodeError> {
        let node = lulc_engine::erase(Index);
        let params = node.check_params(&params).map_err(|e| {
            NodeError::new(
                e.iter()
                    .map(|p| format!("{}: {}", p.path, p.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let out = dir.join(format!("out{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let out = tempfile::Builder::new().tempdir_in(&out).unwrap().keep();
        let mut ctx = RunCtx::for_test("index", Index::outputs(), &out)
            .with_spec_dir(dir)
            .with_dims([("year".to_string(), DimValue::Int(2020))]);
        node.run(&mut ctx, &params, inputs)?;
        Ok(ctx)
    }

    fn err_of(r: Result<RunCtx, NodeError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => format!("{} | help: {}", e.message, e.help.unwrap_or_default()),
        }
    }

    /// Output meta and, per season, every band by name.
    fn outputs(ctx: &RunCtx) -> (FeaturesMeta, Vec<BTreeMap<String, Vec<f32>>>) {
        let out = &ctx.outputs()["features"];
        let meta: FeaturesMeta = serde_json::from_value(out.meta.clone()).unwrap();
        let mut seasons = Vec::new();
        for (_, file) in &meta.files {
            let r = RasterReader::open(&out.files[file]).unwrap();
            assert_eq!(r.meta().band_names, meta.features);
            let bands = meta
                .features
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    (
                        f.clone(),
                        r.read_window_f32(i + 1, &grid().full_window()).unwrap(),
                    )
                })
                .collect();
            seasons.push(bands);
        }
        (meta, seasons)
    }

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() <= 1e-5 * b.abs().max(1.0)
    }

    fn lin(db: f32) -> f64 {
        10f64.powf(f64::from(db) / 10.0)
    }

    #[test]
    fn index_all_sensors_every_feature_against_formulas() {
        let dir = TempDir::new().unwrap();
        let roads = roads_file(dir.path());
        let inp = inputs(vec![
            ("s2", s2_art(dir.path())),
            ("s1", s1_art(dir.path())),
            ("palsar", palsar_art(dir.path())),
            ("dsm", dsm_art(dir.path())),
        ]);
        let ctx = run(
            json!({"roads": roads.file_name().unwrap().to_str().unwrap()}),
            &inp,
            dir.path(),
        )
        .unwrap();
        let (meta, seasons) = outputs(&ctx);
        assert_eq!(meta.features, sets::features_of(&Sensor::ALL));
        assert_eq!(meta.features.len(), 38);
        assert_eq!(meta.seasons, SEASONS);
        assert_eq!(meta.year, 2020);
        assert_eq!(meta.grid, grid());
        assert_eq!(
            meta.files,
            vec![
                ("S1".into(), "S1.tif".into()),
                ("S2".into(), "S2.tif".into())
            ]
        );

        for (s, f) in seasons.iter().enumerate() {
            for (name, v) in f {
                assert!(v.iter().all(|x| !x.is_infinite()), "{name} has Inf");
            }
            for &(c, r) in &[
                (0usize, 0usize),
                (1, 1),
                (100, 7),
                (255, 11),
                (256, 0),
                (299, 11),
            ] {
                let i = r * W + c;
                let b = |k: usize| f64::from(s2_value(k, c, r, s));
                for (k, name) in S2_BANDS.iter().enumerate() {
                    assert_eq!(f[*name][i], s2_value(k, c, r, s));
                }
                let (b2, b3, b4, b8, b11, b12) = (b(0), b(1), b(2), b(6), b(8), b(9));
                assert!(close(f["NDVI"][i], (b8 - b4) / (b8 + b4)));
                assert!(close(
                    f["EVI"][i],
                    2.5 * (b8 - b4) / (b8 + 6.0 * b4 - 7.5 * b2 + 1.0)
                ));
                assert!(close(f["GNDVI"][i], (b8 - b3) / (b8 + b3)));
                assert!(close(f["GRVI"][i], (b3 - b4) / (b3 + b4)));
                assert!(close(f["NDWI1"][i], (b8 - b11) / (b8 + b11)));
                assert!(close(f["NDWI2"][i], (b8 - b12) / (b8 + b12)));
                assert!(close(f["GSI"][i], (b4 - b2) / (b2 + b3 + b4)));
                let (vv, vh) = (
                    sar_value(false, c, r, s, false),
                    sar_value(true, c, r, s, false),
                );
                assert_eq!(f["VV"][i], vv);
                assert_eq!(f["VH"][i], vh);
                assert!(close(f["VV-VH"][i], f64::from(vv - vh)));
                assert!(close(f["VV/VH"][i], f64::from(vv) / f64::from(vh)));
                let (hh, hv) = (
                    sar_value(false, c, r, s, true),
                    sar_value(true, c, r, s, true),
                );
                assert!(close(f["HH/HV"][i], f64::from(hh) / f64::from(hv)));
                assert!(close(
                    f["NDI"][i],
                    (lin(hh) - lin(hv)) / (lin(hh) + lin(hv))
                ));
                assert!(close(f["NLI"][i], lin(hv) / (lin(hh) + lin(hv))));
                assert_eq!(f["DSM"][i], dsm_value(c, r));
                assert_eq!(f["road_dist"][i], 10.0 * (r as f32 - 5.0).abs());
            }
            // Nodata in, nodata out: (5, 3) has no S2 value at all.
            let i = 3 * W + 5;
            for name in sets::features_of(&[Sensor::Sentinel2]) {
                assert!(f[name][i].is_nan(), "{name}");
            }
            assert!(!f["VV"][i].is_nan() && !f["DSM"][i].is_nan());
            // Zero denominators: B04 = B08 = 0 at (6, 3); VH = 0 dB at (7, 4).
            assert!(f["NDVI"][3 * W + 6].is_nan());
            assert!(!f["GSI"][3 * W + 6].is_nan());
            assert!(f["VV/VH"][4 * W + 7].is_nan());
            assert_eq!(f["VV-VH"][4 * W + 7], f["VV"][4 * W + 7]);
            // VV nodata at (10, 2): VV features nodata there, VH ones not.
            let i = 2 * W + 10;
            for name in ["VV", "VV-VH", "VV/VH", "VV_savg", "VV_diss"] {
                assert!(f[name][i].is_nan(), "{name}");
            }
            assert!(!f["VH_savg"][i].is_nan());

            // Textures and slope, block by block with halos, equal the whole-raster functions.
            let spec = GlcmSpec::default();
            for (band, lo, hi, palsar, cross) in [
                ("VV", -25.0, 0.0, false, false),
                ("VH", -30.0, -5.0, false, true),
                ("HH", -25.0, 0.0, true, false),
                ("HV", -25.0, 0.0, true, true),
            ] {
                let v = plane(|c, r| sar_value(cross, c, r, s, palsar));
                let q = glcm::quantize(&v, lo, hi, 32);
                let t = glcm::savg_diss(&q, W, H, grid().full_window(), &spec);
                let same = |a: &[f32], b: &[f32]| {
                    a.iter()
                        .zip(b)
                        .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
                };
                assert!(same(&f[&format!("{band}_savg")], &t.savg), "{band}_savg");
                assert!(same(&f[&format!("{band}_diss")], &t.diss), "{band}_diss");
                // A texture is in the range of the levels: savg in 2..=64, diss in 0..=31.
                assert!(
                    t.savg
                        .iter()
                        .filter(|x| !x.is_nan())
                        .all(|x| (2.0..=64.0).contains(x))
                );
            }
            let slope = slope_horn(
                &plane(dsm_value),
                W,
                H,
                (10.0, 10.0),
                true,
                grid().full_window(),
            );
            for (a, b) in f["slope"].iter().zip(&slope) {
                assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
            }
            assert!(
                f["slope"][5 * W + 20].is_nan(),
                "DSM nodata -> slope nodata"
            );
        }
        // Seasons differ (the composites do).
        assert_ne!(seasons[0]["NDVI"], seasons[1]["NDVI"]);
        // Static layers are repeated.
        assert_eq!(seasons[0]["road_dist"], seasons[1]["road_dist"]);
    }

    #[test]
    fn index_s2_only_gives_the_s2_features() {
        let dir = TempDir::new().unwrap();
        let inp = inputs(vec![("s2", s2_art(dir.path()))]);
        let ctx = run(json!({}), &inp, dir.path()).unwrap();
        let (meta, seasons) = outputs(&ctx);
        assert_eq!(meta.features, sets::features_of(&[Sensor::Sentinel2]));
        assert_eq!(seasons.len(), 2);
        // A selection keeps its order and values.
        let ctx2 = run(
            json!({"features": ["GSI", "B8A", "NDVI"]}),
            &inp,
            dir.path(),
        )
        .unwrap();
        let (meta2, seasons2) = outputs(&ctx2);
        assert_eq!(meta2.features, vec!["GSI", "B8A", "NDVI"]);
        for name in ["GSI", "B8A", "NDVI"] {
            assert_eq!(
                seasons2[1][name]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                seasons[1][name]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn index_requested_feature_without_its_sensor_errors() {
        let dir = TempDir::new().unwrap();
        let inp = inputs(vec![("s2", s2_art(dir.path()))]);
        let e = err_of(run(
            json!({"features": ["NDVI", "VV", "slope"]}),
            &inp,
            dir.path(),
        ));
        assert!(
            e.contains("`VV` needs Sentinel-1, but the `s1` input is not connected"),
            "{e}"
        );
        assert!(
            e.contains("`slope` needs a DSM, but the `dsm` input is not connected"),
            "{e}"
        );
        assert!(e.contains("computable features: B02"), "{e}");
        let e = err_of(run(json!({"features": "s2+roads"}), &inp, dir.path()));
        assert!(e.contains("`road_dist` needs roads"), "{e}");
    }

    #[test]
    fn index_missing_band_names_the_file_and_the_band() {
        let dir = TempDir::new().unwrap();
        let bands: Vec<&str> = S2_BANDS.iter().copied().filter(|b| *b != "B8A").collect();
        let art = composite(dir.path(), "s2", &bands, &grid(), s2_value);
        let e = err_of(run(json!({}), &inputs(vec![("s2", art)]), dir.path()));
        assert!(e.contains("band `B8A` not found in"), "{e}");
        assert!(e.contains("S1.tif"), "{e}");
        assert!(e.contains("input `s2`"), "{e}");
        // A band that no requested feature needs may be missing.
        let art = composite(dir.path(), "s2", &bands, &grid(), s2_value);
        let ctx = run(
            json!({"features": ["NDVI", "B12"]}),
            &inputs(vec![("s2", art)]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(outputs(&ctx).0.features, vec!["NDVI", "B12"]);
        // A renamed band through `bands`.
        let art = s1_art(dir.path());
        let inp = inputs(vec![("s2", s2_art(dir.path())), ("s1", art)]);
        let e = err_of(run(json!({"bands": {"VH": "vh"}}), &inp, dir.path()));
        assert!(
            e.contains("band `vh` not found") && e.contains("input `s1`"),
            "{e}"
        );
    }

    #[test]
    fn index_check_rejects_bad_params_before_running() {
        let bad = |v: Value| -> String {
            let node = lulc_engine::erase(Index);
            node.check_params(&v)
                .unwrap_err()
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let e = bad(json!({"features": ["NDVI", "ndwi1"]}));
        assert!(
            e.contains("features: unknown feature or set `ndwi1` (did you mean `NDWI1`?)"),
            "{e}"
        );
        let e = bad(json!({"nli": "HV / (HH + VV)"}));
        assert!(e.contains("nli: unknown name `VV`"), "{e}");
        let e = bad(json!({"glcm": {"levels": 1}}));
        assert!(e.contains("glcm: gray levels"), "{e}");
        let e = bad(json!({"glcm": {"ranges": {"VH": [0, -5]}}}));
        assert!(e.contains("glcm.ranges.VH"), "{e}");
        let e = bad(json!({"bands": {"B09": "x"}}));
        assert!(e.contains("`B09` is not an input band"), "{e}");
        let e = bad(json!({"glcm": {"window": 3}}));
        assert!(e.contains("window"), "{e}");
        // Defaults are filled in, and a partial `glcm.ranges` keeps the other defaults.
        let node = lulc_engine::erase(Index);
        let p = node
            .check_params(&json!({"glcm": {"ranges": {"VV": [-20, 0]}}}))
            .unwrap();
        assert_eq!(p["glcm"]["ranges"]["VV"], json!([-20.0, 0.0]));
        assert_eq!(p["glcm"]["ranges"]["VH"], json!([-30.0, -5.0]));
        assert_eq!(p["glcm"]["radius"], json!(4));
        assert_eq!(p["glcm"]["levels"], json!(32));
        assert_eq!(p["nli"], json!("HV / (HH + HV)"));
        assert_eq!(p["linear_ratio"], json!(false));
    }

    #[test]
    fn index_roads_from_the_catalog_input_equal_the_roads_param() {
        let dir = TempDir::new().unwrap();
        let roads = roads_file(dir.path());
        let s2 = s2_art(dir.path());
        let by_param = run(
            json!({"features": ["road_dist"], "roads": "roads.geojson"}),
            &inputs(vec![("s2", s2.clone())]),
            dir.path(),
        )
        .unwrap();
        let catalog = ArtifactIn {
            step_id: "simulate".into(),
            dims: BTreeMap::new(),
            ty: "Catalog".into(),
            digest: "blake3:cat".into(),
            files: BTreeMap::from([("vectors/roads.geojson".to_string(), roads)]),
            meta: Value::Null,
        };
        let inp = inputs(vec![("s2", s2.clone()), ("catalog", catalog.clone())]);
        let by_port = run(json!({"features": ["road_dist"]}), &inp, dir.path()).unwrap();
        assert_eq!(outputs(&by_param).1, outputs(&by_port).1);
        assert_eq!(outputs(&by_port).1[0]["road_dist"][0], 50.0);
        // With the catalog connected, road_dist is among the default features.
        let all = run(json!({}), &inp, dir.path()).unwrap();
        assert_eq!(
            outputs(&all).0.features.last().map(String::as_str),
            Some("road_dist")
        );
        let e = err_of(run(
            json!({"roads_file": "vectors/osm.gpkg"}),
            &inp,
            dir.path(),
        ));
        assert!(e.contains("has no file `vectors/osm.gpkg`"), "{e}");
    }

    #[test]
    fn index_grid_mismatch_is_an_error() {
        let dir = TempDir::new().unwrap();
        let mut g = grid();
        g.geo_transform[0] += 10.0;
        let s1 = composite(dir.path(), "s1", &["VV", "VH"], &g, |k, c, r, s| {
            sar_value(k == 1, c, r, s, false)
        });
        let e = err_of(run(
            json!({}),
            &inputs(vec![("s2", s2_art(dir.path())), ("s1", s1)]),
            dir.path(),
        ));
        assert!(e.contains("input `s1`") && e.contains("grid"), "{e}");
    }

    #[test]
    fn index_output_is_deterministic() {
        let dir = TempDir::new().unwrap();
        let inp = inputs(vec![("s2", s2_art(dir.path())), ("s1", s1_art(dir.path()))]);
        let a = run(json!({}), &inp, dir.path()).unwrap();
        let b = run(json!({}), &inp, dir.path()).unwrap();
        let (fa, fb) = (&a.outputs()["features"], &b.outputs()["features"]);
        assert_eq!(fa.meta, fb.meta);
        for (name, pa) in &fa.files {
            let (x, y) = (
                std::fs::read(pa).unwrap(),
                std::fs::read(&fb.files[name]).unwrap(),
            );
            assert!(x == y, "{name} differs between two runs");
        }
    }
}
