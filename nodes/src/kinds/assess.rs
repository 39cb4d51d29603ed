//! `assess`: the accuracy of a class map against independent validation points (`docs/method.md`,
//! "Accuracy"): the confusion matrix, OA / UA / PA / F1 from the counts, the area-weighted
//! estimates of Olofsson et al. (2014) with 95 % confidence intervals and the area of every
//! class, and, when the model is connected, OA / UA / PA as mean +/- sd over the model's
//! repeated train/validation splits (the seed's "92.3 +/- 0.2"). The arithmetic is
//! [`crate::accuracy`].
//!
//! Each point takes the map's class at its location (the pixel that contains it). Points in
//! another CRS than the map are reprojected first; a `Points` artifact without a CRS is taken to
//! be in the map's CRS. Points outside the map or on its nodata (0) are dropped and counted
//! (`points.dropped_outside`, `points.dropped_nodata`; a warning says how many): a tile's map is assessed with
//! the points that fall on it. No point left is an error. A point whose class the map's legend
//! lacks is an error naming the point and the class.
//!
//! Area-weighted estimates use the map classes as strata, with the weights W_i = the mapped
//! pixel counts of the map's metadata (`class_pixels`), or for a mosaic its mapped areas
//! (`class_km2`: each pixel measured in the CRS of the tile it comes from). A class that is mapped but has no point
//! mapped as it cannot be estimated (its stratum has no sample): it is left out of the strata
//! (the estimates then cover the mapped area of the other classes), listed under
//! `area_weighted.unsampled` and warned about. A stratum with a single point contributes no
//! variance (listed under `area_weighted.single_sample`). Areas are in km2: a mosaic's
//! `class_km2`, else the pixel counts times the map grid's pixel area for a projected CRS in
//! metres; with a geographic CRS the areas are `null` (warned).
//!
//! ## Ports
//! - in `map` (`Map`, see [`crate::artifacts::MapMeta`]): `map.tif`, class codes, 0 nodata.
//! - in `points` (`Points`, see [`crate::samples::PointSet`]): validation points (id, x, y,
//!   class) independent of the training data, for the map's year.
//! - in `model` (`Model`, optional): its metadata's `holdout` list (confusion matrices of the
//!   repeated splits, [`crate::artifacts::Holdout`], in the model's `legend` order).
//! - out `assessment` (`Assessment`), files:
//!   - `assessment.json`: everything below, fractions 0..1 (not percent);
//!   - `assessment.md`: the same as Markdown tables (percent), for a person;
//!   - `confusion.png`: the confusion matrix as a heatmap (rows map, columns reference, class
//!     names on the axes, counts in the cells, cells shaded by their share of the row: blue on
//!     the diagonal, red off it). Text is drawn with the DejaVu Sans font bundled in
//!     `nodes/assets/` (never a system font), so the same input gives the same bytes.
//!
//!   Metadata ([`AssessmentMeta`]): the headline numbers (`n`, `oa`, `oa_ci95`, `oa_area`,
//!   `oa_area_ci95`, per-class `ua` / `pa`, `holdout_oa`), for `lulc show` and `lulc results`.
//!
//! ## Metrics
//! `oa` and `oa_area` (0..1), `n_points` (points used), `n_dropped`; with a model `oa_mean` and
//! `oa_sd` (over its holdout repeats).
//!
//! ## Params (defaults in brackets)
//! - `allow_year_mismatch` [false]: when the map and the points both carry a year and the years
//!   differ, the step fails (a 2020 point set against the 2019 map is usually a wiring
//!   mistake); set true to assess across years on purpose.
//!
//! `oa_ci95` is 1.96 sqrt(OA (1 - OA) / (n - 1)), the interval of OA for a simple random sample
//! of points; `oa_area_ci95` is the stratified one of Olofsson et al. (2014).
//!
//! ```yaml
//! nodes:
//!   assess:
//!     kind: assess
//!     for_each: { year: years }
//!     inputs:
//!       map: infer
//!       points: validation
//!       model: train        # optional: OA/UA/PA mean +/- sd over the repeated splits
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lulc_engine::{ArtifactIn, Inputs, Node, NodeError, Port, RunCtx};
use serde::{Deserialize, Serialize};

use crate::accuracy::{self, AreaWeighted, Confusion, MeanSd, Metrics, RepeatSummary};
use crate::artifacts::{ASSESSMENT, Holdout, MAP, MODEL, MapMeta, POINTS};
use crate::classes::Legend;
use crate::kinds::raster_err;
use crate::plot::{FONT_FAMILY, encode_png, register_font};
use crate::raster::{Grid, RasterReader, TILE, Window, crs_equivalent, crs_label};
use crate::samples::{Point, PointSet};
use crate::vector::{PointFeature, reproject_points};

pub struct Assess;

/// Params of `assess`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssessParams {
    pub allow_year_mismatch: bool,
}

pub const ASSESSMENT_JSON: &str = "assessment.json";
pub const ASSESSMENT_MD: &str = "assessment.md";
pub const CONFUSION_PNG: &str = "confusion.png";
const MAP_TIF: &str = "map.tif";

/// z of a two-sided 95 % interval.
const Z95: f64 = 1.96;

/// Metadata of an `Assessment` artifact: the headline numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentMeta {
    pub year: Option<i64>,
    /// Points used (on the map's data).
    pub n: u64,
    /// Points dropped (outside the map or on nodata).
    pub n_dropped: u64,
    pub oa: f64,
    pub oa_ci95: Option<f64>,
    pub oa_area: f64,
    pub oa_area_ci95: f64,
    pub classes: Vec<ClassHeadline>,
    /// OA mean +/- sd over the model's holdout repeats, when the model is connected.
    pub holdout_oa: Option<MeanSd>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassHeadline {
    pub code: u8,
    pub name: String,
    pub ua: Option<f64>,
    pub pa: Option<f64>,
}

/// `assessment.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub year: Option<i64>,
    pub points: PointCounts,
    /// Rows are map classes, columns reference classes, both in `codes` order (the map's legend).
    pub confusion: ConfusionTable,
    pub oa: f64,
    pub oa_ci95: Option<f64>,
    pub area_weighted: AreaSummary,
    pub classes: Vec<ClassReport>,
    pub holdout: Option<HoldoutReport>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointCounts {
    /// Points in the input.
    pub total: u64,
    /// Points used.
    pub used: u64,
    pub dropped_outside: u64,
    pub dropped_nodata: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfusionTable {
    pub codes: Vec<u8>,
    pub names: Vec<String>,
    pub matrix: Vec<Vec<u64>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaSummary {
    pub oa: f64,
    pub oa_ci95: f64,
    /// Area of one pixel (km2); `None` for a geographic CRS.
    pub pixel_km2: Option<f64>,
    /// Mapped area of all classes (km2).
    pub mapped_km2: Option<f64>,
    /// Mapped area of the strata the estimates cover (km2): `mapped_km2` minus unsampled ones.
    pub strata_km2: Option<f64>,
    /// Codes of mapped classes without any point mapped as them (left out of the strata).
    pub unsampled: Vec<u8>,
    /// Codes of strata with a single point (no variance estimate).
    pub single_sample: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassReport {
    pub code: u8,
    pub name: String,
    /// Points mapped as this class (row total).
    pub n_map: u64,
    /// Points whose reference is this class (column total).
    pub n_reference: u64,
    pub ua: Option<f64>,
    pub pa: Option<f64>,
    pub f1: Option<f64>,
    pub ua_area: Option<f64>,
    pub ua_area_ci95: Option<f64>,
    pub pa_area: Option<f64>,
    pub pa_area_ci95: Option<f64>,
    pub mapped_pixels: u64,
    pub mapped_km2: Option<f64>,
    /// Estimated area (km2) of the class in reality, A p_+j, and its 95 % interval half-width.
    pub area_km2: Option<f64>,
    pub area_km2_ci95: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldoutReport {
    pub repeats: usize,
    pub oa: MeanSd,
    pub classes: Vec<HoldoutClass>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldoutClass {
    pub code: u8,
    pub name: String,
    pub ua: Option<MeanSd>,
    pub pa: Option<MeanSd>,
}

/// The fields of a `Model`'s metadata that `assess` reads (the rest is ignored).
#[derive(Deserialize)]
struct ModelHoldout {
    legend: Legend,
    #[serde(default)]
    holdout: Vec<Holdout>,
}

fn acc_err(what: &str) -> impl Fn(accuracy::AccuracyError) -> NodeError + '_ {
    move |e| NodeError::new(format!("{what}: {e}"))
}

impl Node for Assess {
    const KIND: &'static str = "assess";
    const VERSION: u32 = 1;
    type Params = AssessParams;

    fn inputs() -> Vec<Port> {
        vec![
            Port::one("map", MAP),
            Port::one("points", POINTS),
            Port::one("model", MODEL).optional(),
        ]
    }

    fn outputs() -> Vec<Port> {
        vec![Port::one("assessment", ASSESSMENT)]
    }

    fn summary() -> &'static str {
        "confusion matrix, OA/UA/PA/F1, area-weighted accuracy and areas with 95 % CI \
         (Olofsson et al. 2014), holdout mean +/- sd"
    }

    fn run(&self, ctx: &mut RunCtx, p: &AssessParams, inputs: &Inputs) -> Result<(), NodeError> {
        let map_art = inputs.one("map")?;
        let map = read_map_meta(map_art)?;
        let points = PointSet::read(inputs.one("points")?)?;
        if let (Some(my), Some(py)) = (map.year, points.year)
            && my != py
            && !p.allow_year_mismatch
        {
            return Err(NodeError::new(format!(
                "the map is of {my} but the validation points are of {py}"
            ))
            .with_help(
                "connect the points of the map's year, or set `allow_year_mismatch: true`",
            ));
        }
        let legend = &map.legend;
        if legend.is_empty() {
            return Err(NodeError::new(format!(
                "the map from `{}` has an empty legend",
                map_art.step_id
            )));
        }
        // Every reference class must be in the legend (checked for all points, used or not).
        let mut ref_idx = Vec::with_capacity(points.points.len());
        for pt in &points.points {
            ref_idx.push(legend.index_of(pt.class).ok_or_else(|| {
                NodeError::new(format!(
                    "validation point `{}` has class {}, which the map's legend lacks",
                    pt.id, pt.class
                ))
                .with_help(format!(
                    "the legend's codes: {}",
                    legend
                        .0
                        .iter()
                        .map(|c| c.code.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?);
        }
        let sampled = sample_map(map_art, &map.grid, &points)?;
        let mut confusion = Confusion::zeros(legend.len()).map_err(acc_err("confusion"))?;
        let (mut outside, mut nodata) = (0u64, 0u64);
        for (k, v) in sampled.iter().enumerate() {
            match v {
                None => outside += 1,
                Some(0) => nodata += 1,
                Some(code) => {
                    let i = legend.index_of(*code).ok_or_else(|| {
                        NodeError::new(format!(
                            "`{MAP_TIF}` of `{}` has class code {code} at validation point \
                             `{}`, which the map's legend lacks",
                            map_art.step_id, points.points[k].id
                        ))
                    })?;
                    confusion.add(i, ref_idx[k]);
                }
            }
        }
        let dropped = outside + nodata;
        if confusion.n() == 0 {
            return Err(NodeError::new(format!(
                "none of the {} validation points falls on the map's data ({outside} outside \
                 the map, {nodata} on nodata)",
                points.points.len()
            ))
            .with_help(format!(
                "the map is in {}, the points say {}; check that they cover the same area",
                crs_label(&map.grid.crs_wkt),
                points
                    .crs
                    .as_deref()
                    .map_or("no CRS (taken as the map's)".into(), |c| { crs_label(c) })
            )));
        }
        if dropped > 0 {
            ctx.warn(format!(
                "{dropped} of {} validation points dropped: {outside} outside the map, {nodata} \
                 on nodata",
                points.points.len()
            ));
        }
        let metrics = confusion.metrics().map_err(acc_err("accuracy"))?;

        // Strata: mapped pixels per legend class; mapped classes without a point are left out.
        for (&code, &px) in &map.class_pixels {
            if px > 0 && legend.index_of(code).is_none() {
                return Err(NodeError::new(format!(
                    "the map's metadata counts {px} pixels of class code {code}, which its \
                     legend lacks"
                )));
            }
        }
        let pixels: Vec<u64> = legend
            .0
            .iter()
            .map(|c| map.class_pixels.get(&c.code).copied().unwrap_or(0))
            .collect();
        let unsampled: Vec<usize> = (0..legend.len())
            .filter(|&i| pixels[i] > 0 && confusion.row_total(i) == 0)
            .collect();
        // Mapped areas: pixels times the pixel's area, or a mosaic's areas measured per tile.
        let class_km2: Option<Vec<f64>> = map.class_areas_km2().map(|a| {
            legend
                .0
                .iter()
                .map(|c| a.get(&c.code).copied().unwrap_or(0.0))
                .collect()
        });
        let weights: Vec<f64> = (0..legend.len())
            .map(|i| {
                if unsampled.contains(&i) {
                    0.0
                } else {
                    match (&map.class_km2, &class_km2) {
                        (Some(_), Some(a)) => a[i],
                        _ => pixels[i] as f64,
                    }
                }
            })
            .collect();
        let area = accuracy::area_weighted(&confusion, &weights).map_err(|e| {
            NodeError::new(format!(
                "area-weighted accuracy of the map from `{}`: {e}",
                map_art.step_id
            ))
        })?;
        if !unsampled.is_empty() {
            ctx.warn(format!(
                "no validation point is mapped as {}: left out of the area-weighted estimates",
                unsampled
                    .iter()
                    .map(|&i| format!("`{}` ({} px)", legend.0[i].name, pixels[i]))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let pixel_km2 = map.grid.pixel_km2();
        if class_km2.is_none() {
            ctx.warn(format!(
                "the map's CRS ({}) is not projected: areas in km2 are not reported",
                crs_label(&map.grid.crs_wkt)
            ));
        }

        let holdout = match inputs.all("model") {
            [] => None,
            [model] => holdout_report(model, ctx)?,
            many => {
                return Err(NodeError::new(format!(
                    "input `model` has {} artifacts, expected one",
                    many.len()
                )));
            }
        };

        let report = build_report(
            map.year,
            legend,
            &confusion,
            &metrics,
            &area,
            &pixels,
            class_km2.as_deref(),
            &unsampled,
            pixel_km2,
            PointCounts {
                total: points.points.len() as u64,
                used: confusion.n(),
                dropped_outside: outside,
                dropped_nodata: nodata,
            },
            holdout,
        );

        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| NodeError::new(e.to_string()))?
            + "\n";
        ctx.write_output("assessment", ASSESSMENT_JSON, json.as_bytes())?;
        ctx.write_output("assessment", ASSESSMENT_MD, markdown(&report).as_bytes())?;
        let png = confusion_png(&report.confusion, legend)?;
        ctx.write_output("assessment", CONFUSION_PNG, &png)?;

        for (name, value) in metrics_of(&report) {
            ctx.metric(name, value);
        }
        let meta = AssessmentMeta {
            year: report.year,
            n: report.points.used,
            n_dropped: dropped,
            oa: report.oa,
            oa_ci95: report.oa_ci95,
            oa_area: report.area_weighted.oa,
            oa_area_ci95: report.area_weighted.oa_ci95,
            classes: report
                .classes
                .iter()
                .map(|c| ClassHeadline {
                    code: c.code,
                    name: c.name.clone(),
                    ua: c.ua,
                    pa: c.pa,
                })
                .collect(),
            holdout_oa: report.holdout.as_ref().map(|h| h.oa),
        };
        ctx.set_meta(
            "assessment",
            serde_json::to_value(meta).map_err(|e| NodeError::new(e.to_string()))?,
        )
    }
}

/// The step's metrics: `oa`, `oa_area`, `n_points`, `n_dropped`, and with a model's holdout
/// `oa_mean` and `oa_sd`.
fn metrics_of(r: &Report) -> Vec<(&'static str, serde_json::Value)> {
    let mut m = vec![
        ("oa", r.oa.into()),
        ("oa_area", r.area_weighted.oa.into()),
        ("n_points", r.points.used.into()),
        (
            "n_dropped",
            (r.points.dropped_outside + r.points.dropped_nodata).into(),
        ),
    ];
    if let Some(h) = &r.holdout {
        m.push(("oa_mean", h.oa.mean.into()));
        if let Some(sd) = h.oa.sd {
            m.push(("oa_sd", sd.into()));
        }
    }
    m
}

fn read_map_meta(art: &ArtifactIn) -> Result<MapMeta, NodeError> {
    if art.ty != MAP {
        return Err(NodeError::new(format!(
            "input from `{}` is a {} artifact, not {MAP}",
            art.step_id, art.ty
        )));
    }
    serde_json::from_value(art.meta.clone()).map_err(|e| {
        NodeError::new(format!(
            "input `map` (from `{}`) has no valid Map metadata: {e}",
            art.step_id
        ))
    })
}

/// The map's value at every point (`None` outside the map), reading each 256 x 256 block that
/// holds points once.
fn sample_map(
    art: &ArtifactIn,
    grid: &Grid,
    points: &PointSet,
) -> Result<Vec<Option<u8>>, NodeError> {
    let path = art.file(MAP_TIF)?;
    let reader = RasterReader::open(path).map_err(raster_err)?;
    grid.ensure_same(reader.grid(), path).map_err(raster_err)?;
    let coords = map_coords(&points.points, points.crs.as_deref(), &grid.crs_wkt)?;
    let g = &grid.geo_transform;
    let det = g[1] * g[5] - g[2] * g[4];
    if det == 0.0 || !det.is_finite() {
        return Err(NodeError::new(format!(
            "the map's geotransform {g:?} is not invertible"
        )));
    }
    let mut out = vec![None; coords.len()];
    // Block (row, column) -> the points in it: (point index, pixel column, pixel row).
    type InBlock = Vec<(usize, usize, usize)>;
    let mut by_block: BTreeMap<(usize, usize), InBlock> = BTreeMap::new();
    for (k, &(x, y)) in coords.iter().enumerate() {
        let (dx, dy) = (x - g[0], y - g[3]);
        let col = (g[5] * dx - g[2] * dy) / det;
        let row = (g[1] * dy - g[4] * dx) / det;
        if !(col.is_finite() && row.is_finite()) || col < 0.0 || row < 0.0 {
            continue;
        }
        let (c, r) = (col.floor() as usize, row.floor() as usize);
        if c >= grid.width || r >= grid.height {
            continue;
        }
        by_block
            .entry((r / TILE, c / TILE))
            .or_default()
            .push((k, c, r));
    }
    for ((by, bx), pts) in by_block {
        let (x0, y0) = (bx * TILE, by * TILE);
        let w = Window::new(
            x0,
            y0,
            TILE.min(grid.width - x0),
            TILE.min(grid.height - y0),
        );
        let buf = reader.read_window_u8(1, &w).map_err(raster_err)?;
        for (k, c, r) in pts {
            out[k] = Some(buf[(r - y0) * w.w + (c - x0)]);
        }
    }
    Ok(out)
}

/// Point coordinates in the map's CRS.
fn map_coords(
    points: &[Point],
    crs: Option<&str>,
    map_crs: &str,
) -> Result<Vec<(f64, f64)>, NodeError> {
    let plain: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.y)).collect();
    let Some(from) = crs.filter(|c| !c.trim().is_empty()) else {
        return Ok(plain);
    };
    if map_crs.trim().is_empty() || crs_equivalent(from, map_crs) {
        return Ok(plain);
    }
    let mut feats: Vec<PointFeature> = points
        .iter()
        .enumerate()
        .map(|(i, p)| PointFeature {
            id: i as i64,
            x: p.x,
            y: p.y,
            attrs: BTreeMap::new(),
        })
        .collect();
    reproject_points(&mut feats, from, map_crs).map_err(|e| {
        NodeError::new(format!(
            "cannot reproject the validation points to the map's CRS: {e}"
        ))
    })?;
    Ok(feats.iter().map(|f| (f.x, f.y)).collect())
}

fn holdout_report(
    model: &ArtifactIn,
    ctx: &mut RunCtx,
) -> Result<Option<HoldoutReport>, NodeError> {
    let m: ModelHoldout = serde_json::from_value(model.meta.clone()).map_err(|e| {
        NodeError::new(format!(
            "input `model` (from `{}`) has no legend / holdout in its metadata: {e}",
            model.step_id
        ))
    })?;
    if m.holdout.is_empty() {
        ctx.warn(format!(
            "the model from `{}` records no holdout repeats: no mean +/- sd reported",
            model.step_id
        ));
        return Ok(None);
    }
    let what = format!("holdout of the model from `{}`", model.step_id);
    let mut matrices = Vec::with_capacity(m.holdout.len());
    for h in &m.holdout {
        let c = Confusion::new(h.matrix.clone())
            .map_err(|e| NodeError::new(format!("{what}, repeat {}: {e}", h.repeat)))?;
        if c.k() != m.legend.len() {
            return Err(NodeError::new(format!(
                "{what}, repeat {}: a {} x {} matrix for a legend of {} classes",
                h.repeat,
                c.k(),
                c.k(),
                m.legend.len()
            )));
        }
        matrices.push(c);
    }
    let s: RepeatSummary = accuracy::summarize(&matrices).map_err(acc_err(&what))?;
    Ok(Some(HoldoutReport {
        repeats: s.repeats,
        oa: s.oa,
        classes: m
            .legend
            .0
            .iter()
            .enumerate()
            .map(|(i, c)| HoldoutClass {
                code: c.code,
                name: c.name.clone(),
                ua: s.ua[i],
                pa: s.pa[i],
            })
            .collect(),
    }))
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    year: Option<i64>,
    legend: &Legend,
    confusion: &Confusion,
    m: &Metrics,
    a: &AreaWeighted,
    pixels: &[u64],
    class_km2: Option<&[f64]>,
    unsampled: &[usize],
    pixel_km2: Option<f64>,
    points: PointCounts,
    holdout: Option<HoldoutReport>,
) -> Report {
    let code = |i: usize| legend.0[i].code;
    let mapped_km2 = class_km2.map(|a| a.iter().sum::<f64>());
    let strata_km2 = class_km2.map(|a| {
        (0..a.len())
            .filter(|i| !unsampled.contains(i))
            .map(|i| a[i])
            .sum::<f64>()
    });
    let classes = legend
        .0
        .iter()
        .enumerate()
        .map(|(i, c)| ClassReport {
            code: c.code,
            name: c.name.clone(),
            n_map: confusion.row_total(i),
            n_reference: confusion.col_total(i),
            ua: m.ua[i],
            pa: m.pa[i],
            f1: m.f1[i],
            ua_area: a.ua[i],
            ua_area_ci95: a.ua_se[i].map(|s| Z95 * s),
            pa_area: a.pa[i],
            pa_area_ci95: a.pa_se[i].map(|s| Z95 * s),
            mapped_pixels: pixels[i],
            mapped_km2: class_km2.map(|a| a[i]),
            area_km2: strata_km2.map(|t| t * a.share[i]),
            area_km2_ci95: strata_km2.map(|t| Z95 * t * a.share_se[i]),
        })
        .collect();
    Report {
        year,
        points,
        confusion: ConfusionTable {
            codes: legend.0.iter().map(|c| c.code).collect(),
            names: legend.0.iter().map(|c| c.name.clone()).collect(),
            matrix: confusion.matrix().to_vec(),
        },
        oa: m.oa,
        oa_ci95: m.oa_se.map(|s| Z95 * s),
        area_weighted: AreaSummary {
            oa: a.oa,
            oa_ci95: Z95 * a.oa_se,
            pixel_km2,
            mapped_km2,
            strata_km2,
            unsampled: unsampled.iter().map(|&i| code(i)).collect(),
            single_sample: a.single_sample.iter().map(|&i| code(i)).collect(),
        },
        classes,
        holdout,
    }
}

// ---------------------------------------------------------------------------------------------
// Markdown
// ---------------------------------------------------------------------------------------------

fn pct(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{:.1}", 100.0 * v))
}

fn pct_ci(v: Option<f64>, ci: Option<f64>) -> String {
    match (v, ci) {
        (Some(v), Some(ci)) => format!("{:.1} ± {:.1}", 100.0 * v, 100.0 * ci),
        (Some(v), None) => format!("{:.1}", 100.0 * v),
        _ => "–".to_string(),
    }
}

fn mean_sd(v: Option<MeanSd>) -> String {
    match v {
        Some(MeanSd {
            mean, sd: Some(sd), ..
        }) => {
            format!("{:.1} ± {:.1}", 100.0 * mean, 100.0 * sd)
        }
        Some(MeanSd { mean, sd: None, .. }) => format!("{:.1}", 100.0 * mean),
        None => "–".to_string(),
    }
}

/// km2 with a precision that suits the size (a country, a tile, a test map).
fn km2_text(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn km2(v: Option<f64>) -> String {
    v.map_or("–".to_string(), km2_text)
}

/// Table cell text: `|` would split the cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let year = r.year.map_or(String::new(), |y| format!(" ({y})"));
    let _ = writeln!(s, "# Accuracy assessment{year}\n");
    let _ = writeln!(
        s,
        "- Overall accuracy (OA): {} % (95 % CI, simple random sample), n = {} points",
        pct_ci(Some(r.oa), r.oa_ci95),
        r.points.used
    );
    let _ = writeln!(
        s,
        "- Area-weighted OA (Olofsson et al. 2014): {} % (95 % CI)",
        pct_ci(Some(r.area_weighted.oa), Some(r.area_weighted.oa_ci95))
    );
    if let Some(h) = &r.holdout {
        let _ = writeln!(
            s,
            "- OA over {} train/validation splits of the model: {} % (mean ± sd)",
            h.repeats,
            mean_sd(Some(h.oa))
        );
    }
    let _ = writeln!(
        s,
        "- Points: {} in the input, {} used, {} dropped outside the map, {} dropped on nodata",
        r.points.total, r.points.used, r.points.dropped_outside, r.points.dropped_nodata
    );
    if let Some(m) = r.area_weighted.mapped_km2 {
        let _ = writeln!(s, "- Mapped area: {} km²", km2_text(m));
    }
    let name_of = |code: &u8| {
        r.classes
            .iter()
            .find(|c| c.code == *code)
            .map_or(code.to_string(), |c| c.name.clone())
    };
    if !r.area_weighted.unsampled.is_empty() {
        let _ = writeln!(
            s,
            "- Mapped but no point mapped as them (left out of the area-weighted strata): {}",
            r.area_weighted
                .unsampled
                .iter()
                .map(name_of)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !r.area_weighted.single_sample.is_empty() {
        let _ = writeln!(
            s,
            "- One point only (no variance estimate, intervals too narrow): {}",
            r.area_weighted
                .single_sample
                .iter()
                .map(name_of)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let _ = writeln!(s, "\n## Per class (%)\n");
    let _ = writeln!(
        s,
        "| code | class | n map | n ref | UA | PA | F1 | UA area-w. | PA area-w. | mapped km² | \
         estimated km² |"
    );
    let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in &r.classes {
        let est = match (c.area_km2, c.area_km2_ci95) {
            (Some(a), Some(ci)) => format!("{} ± {}", km2_text(a), km2_text(ci)),
            _ => "–".to_string(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.code,
            cell(&c.name),
            c.n_map,
            c.n_reference,
            pct(c.ua),
            pct(c.pa),
            pct(c.f1),
            pct_ci(c.ua_area, c.ua_area_ci95),
            pct_ci(c.pa_area, c.pa_area_ci95),
            km2(c.mapped_km2),
            est
        );
    }

    let _ = writeln!(s, "\n## Confusion matrix (rows: map, columns: reference)\n");
    let t = &r.confusion;
    let mut head = "| map \\ reference |".to_string();
    let mut rule = "|---|".to_string();
    for code in &t.codes {
        let _ = write!(head, " {code} |");
        rule.push_str("---:|");
    }
    let _ = writeln!(s, "{head} total |\n{rule}---:|");
    for (i, row) in t.matrix.iter().enumerate() {
        let _ = write!(s, "| {} {} |", t.codes[i], cell(&t.names[i]));
        for v in row {
            let _ = write!(s, " {v} |");
        }
        let _ = writeln!(s, " {} |", row.iter().sum::<u64>());
    }
    let _ = write!(s, "| total |");
    for j in 0..t.codes.len() {
        let _ = write!(s, " {} |", t.matrix.iter().map(|r| r[j]).sum::<u64>());
    }
    let _ = writeln!(s, " {} |", r.points.used);

    if let Some(h) = &r.holdout {
        let _ = writeln!(
            s,
            "\n## Model holdout: {} repeated splits (%, mean ± sd)\n",
            h.repeats
        );
        let _ = writeln!(s, "OA: {}\n", mean_sd(Some(h.oa)));
        let _ = writeln!(s, "| code | class | UA | PA |\n|---:|---|---:|---:|");
        for c in &h.classes {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                c.code,
                cell(&c.name),
                mean_sd(c.ua),
                mean_sd(c.pa)
            );
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// PNG heatmap
// ---------------------------------------------------------------------------------------------

fn draw_err(e: impl std::fmt::Display) -> NodeError {
    NodeError::new(format!("cannot draw `{CONFUSION_PNG}`: {e}"))
}

/// The confusion matrix as a heatmap PNG (RGB, deterministic bytes).
fn confusion_png(t: &ConfusionTable, legend: &Legend) -> Result<Vec<u8>, NodeError> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};

    register_font().map_err(NodeError::new)?;
    let k = t.codes.len();
    let font = |size: f64| FontDesc::new(FontFamily::Name(FONT_FAMILY), size, FontStyle::Normal);
    let label_font = font(13.0);
    let count_font = font(12.0);
    let title_font = font(15.0);
    let labels: Vec<String> = t
        .codes
        .iter()
        .zip(&t.names)
        .map(|(c, n)| format!("{n} ({c})"))
        .collect();
    let mut label_w = 0u32;
    for l in &labels {
        label_w = label_w.max(label_font.box_size(l).map_err(draw_err)?.0);
    }
    let title = "Confusion matrix (rows: map, columns: reference)";
    let title_w = title_font.box_size(title).map_err(draw_err)?.0;
    let (cell_px, margin, swatch, gap) = (44i32, 12i32, 10i32, 6i32);
    let label_w = label_w as i32;
    let left = margin + label_w + gap + swatch + gap;
    let top = margin + 24 + gap;
    let side = cell_px * k as i32;
    let width = (left + side + margin).max(margin * 2 + title_w as i32);
    let height = top + side + gap + swatch + gap + label_w + margin;
    let (w, h) = (width as u32, height as u32);
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        root.draw(&Text::new(
            title,
            (margin, margin),
            TextStyle::from(title_font.clone())
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Top)),
        ))
        .map_err(draw_err)?;
        let rows: Vec<u64> = t.matrix.iter().map(|r| r.iter().sum()).collect();
        let grid_line = ShapeStyle {
            color: RGBColor(190, 190, 190).to_rgba(),
            filled: false,
            stroke_width: 1,
        };
        for (i, row) in t.matrix.iter().enumerate() {
            let y0 = top + cell_px * i as i32;
            for (j, &v) in row.iter().enumerate() {
                let x0 = left + cell_px * j as i32;
                let share = if rows[i] > 0 {
                    v as f64 / rows[i] as f64
                } else {
                    0.0
                };
                let ink = if i == j { (8, 69, 148) } else { (178, 24, 43) };
                let mix = |to: u8| (255.0 - (255.0 - f64::from(to)) * share).round() as u8;
                let fill = RGBColor(mix(ink.0), mix(ink.1), mix(ink.2));
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell_px, y0 + cell_px)],
                    fill.filled(),
                ))
                .map_err(draw_err)?;
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell_px, y0 + cell_px)],
                    grid_line,
                ))
                .map_err(draw_err)?;
                let colour = if v == 0 {
                    RGBColor(170, 170, 170)
                } else if share > 0.55 {
                    WHITE
                } else {
                    BLACK
                };
                root.draw(&Text::new(
                    v.to_string(),
                    (x0 + cell_px / 2, y0 + cell_px / 2),
                    TextStyle::from(count_font.clone())
                        .color(&colour)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))
                .map_err(draw_err)?;
            }
        }
        for (i, label) in labels.iter().enumerate() {
            let [r, g, b] = legend.rgb(t.codes[i]);
            let swatch_style = RGBColor(r, g, b).filled();
            let mid = top + cell_px * i as i32 + cell_px / 2;
            // Row label (map class) left of the matrix.
            root.draw(&Text::new(
                label.as_str(),
                (margin + label_w, mid),
                TextStyle::from(label_font.clone())
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(draw_err)?;
            let sx = margin + label_w + gap;
            root.draw(&Rectangle::new(
                [(sx, mid - swatch / 2), (sx + swatch, mid + swatch / 2)],
                swatch_style,
            ))
            .map_err(draw_err)?;
            // Column label (reference class) under the matrix, reading upwards.
            let cx = left + cell_px * i as i32 + cell_px / 2;
            let sy = top + side + gap;
            root.draw(&Rectangle::new(
                [(cx - swatch / 2, sy), (cx + swatch / 2, sy + swatch)],
                swatch_style,
            ))
            .map_err(draw_err)?;
            root.draw(&Text::new(
                label.as_str(),
                (cx, sy + swatch + gap),
                TextStyle::from(label_font.clone())
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Right, VPos::Center))
                    .transform(FontTransform::Rotate270),
            ))
            .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    encode_png(&rgb, w, h)
        .map_err(|e| NodeError::new(format!("cannot encode `{CONFUSION_PNG}`: {e}")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::raster::{DType, RasterMeta, RasterWriter, WriteOptions, crs_to_wkt};
    use lulc_engine::erase;
    use serde_json::{Value, json};
    use tempfile::TempDir;

    const W: usize = 30;
    const H: usize = 20;
    const X0: f64 = 600_000.0;
    const Y0: f64 = 1_200_000.0;

    fn grid() -> Grid {
        Grid {
            crs_wkt: crs_to_wkt("EPSG:32648").unwrap(),
            geo_transform: [X0, 10.0, 0.0, Y0, 0.0, -10.0],
            width: W,
            height: H,
        }
    }

    /// Columns 0..10 class 1, 10..20 class 2, 20..30 class 3; rows 0..3 of columns 25..30
    /// nodata. Mapped: 200, 200 and 185 px.
    fn pattern(c: usize, r: usize) -> u8 {
        if c >= 25 && r < 3 {
            0
        } else {
            (c / 10) as u8 + 1
        }
    }

    fn legend(n: u8) -> Legend {
        Legend(Legend::default().0.into_iter().take(n as usize).collect())
    }

    /// A `Map` artifact: a real `map.tif` written with `RasterWriter` and its `MapMeta`.
    fn map_art(dir: &Path, legend: Legend, f: impl Fn(usize, usize) -> u8) -> ArtifactIn {
        let path = dir.join("map.tif");
        let meta = RasterMeta {
            grid: grid(),
            dtype: DType::U8,
            nodata: Some(0.0),
            band_names: vec!["class".into()],
        };
        let mut w = RasterWriter::create(&path, &meta, &WriteOptions::default()).unwrap();
        let mut px = vec![0u8; W * H];
        let mut class_pixels = BTreeMap::new();
        let mut nodata = 0;
        for r in 0..H {
            for c in 0..W {
                let v = f(c, r);
                px[r * W + c] = v;
                if v == 0 {
                    nodata += 1;
                } else {
                    *class_pixels.entry(v).or_insert(0u64) += 1;
                }
            }
        }
        w.write_window_u8(1, &grid().full_window(), &px).unwrap();
        w.finish().unwrap();
        let meta = MapMeta {
            grid: grid(),
            year: Some(2020),
            legend,
            class_pixels,
            nodata_pixels: nodata,
            confidence: false,
            class_km2: None,
        };
        ArtifactIn {
            step_id: "infer[year=2020]".into(),
            dims: BTreeMap::new(),
            ty: MAP.into(),
            digest: "blake3:map".into(),
            files: BTreeMap::from([(MAP_TIF.to_string(), path)]),
            meta: serde_json::to_value(meta).unwrap(),
        }
    }

    /// Centre of pixel (c, r) in the map's CRS.
    fn centre(c: usize, r: usize) -> (f64, f64) {
        (X0 + (c as f64 + 0.5) * 10.0, Y0 - (r as f64 + 0.5) * 10.0)
    }

    fn pt(id: &str, (x, y): (f64, f64), class: u8) -> Point {
        Point {
            id: id.into(),
            x,
            y,
            class,
        }
    }

    /// 12 points: 10 on data, one outside the map, one on nodata.
    /// Map 1 (cols 0..10): references 1, 1, 1, 2; map 2: 2, 2, 3; map 3: 3, 3, 3.
    fn points() -> Vec<Point> {
        vec![
            pt("a1", centre(0, 0), 1),
            pt("a2", centre(5, 10), 1),
            pt("a3", centre(9, 19), 1),
            pt("a4", centre(3, 7), 2),
            pt("b1", centre(10, 0), 2),
            pt("b2", centre(15, 15), 2),
            pt("b3", centre(19, 4), 3),
            pt("c1", centre(20, 0), 3),
            pt("c2", centre(29, 19), 3),
            pt("c3", centre(24, 2), 3),
            pt("out", (X0 - 5.0, Y0 - 5.0), 1),
            pt("nodata", centre(27, 1), 3),
        ]
    }

    fn points_art(dir: &Path, pts: Vec<Point>, crs: Option<&str>, year: i64) -> ArtifactIn {
        let sub = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx = RunCtx::for_test("validation", vec![Port::one("points", POINTS)], &sub);
        PointSet {
            year: Some(year),
            crs: crs.map(str::to_string),
            points: pts,
        }
        .write(&mut ctx, "points")
        .unwrap();
        let out = &ctx.outputs()["points"];
        ArtifactIn {
            step_id: "validation[year=2020]".into(),
            dims: BTreeMap::new(),
            ty: POINTS.into(),
            digest: "blake3:points".into(),
            files: out.files.clone(),
            meta: out.meta.clone(),
        }
    }

    fn model_art(meta: Value) -> ArtifactIn {
        ArtifactIn {
            step_id: "train".into(),
            dims: BTreeMap::new(),
            ty: MODEL.into(),
            digest: "blake3:model".into(),
            files: BTreeMap::new(),
            meta,
        }
    }

    fn run_with(
        dir: &Path,
        params: Value,
        map: &ArtifactIn,
        points: &ArtifactIn,
        model: Option<&ArtifactIn>,
    ) -> Result<RunCtx, NodeError> {
        let node = erase(Assess);
        let params = node
            .check_params(&params)
            .map_err(|e| NodeError::new(e[0].message.clone()))?;
        let out = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx = RunCtx::for_test("assess", Assess::outputs(), &out);
        let mut ports = BTreeMap::from([
            ("map".to_string(), vec![map.clone()]),
            ("points".to_string(), vec![points.clone()]),
        ]);
        if let Some(m) = model {
            ports.insert("model".to_string(), vec![m.clone()]);
        }
        node.run(&mut ctx, &params, &Inputs { ports })?;
        Ok(ctx)
    }

    fn report(ctx: &RunCtx) -> Report {
        let out = &ctx.outputs()["assessment"];
        serde_json::from_slice(&std::fs::read(&out.files[ASSESSMENT_JSON]).unwrap()).unwrap()
    }

    fn file(ctx: &RunCtx, name: &str) -> Vec<u8> {
        std::fs::read(&ctx.outputs()["assessment"].files[name]).unwrap()
    }

    fn err_of(r: Result<RunCtx, NodeError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => format!("{} | help: {}", e.message, e.help.unwrap_or_default()),
        }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    /// A mosaic's areas (each pixel measured on its own tile's grid) are the strata weights
    /// and the mapped areas, not its pixel counts: W = 0.03, 0.02, 0.0185 km2 of 0.0685.
    #[test]
    fn a_mosaic_s_class_areas_weigh_the_strata() {
        let dir = TempDir::new().unwrap();
        let mut map = map_art(dir.path(), legend(3), pattern);
        map.meta["class_km2"] = json!({"1": 0.03, "2": 0.02, "3": 0.0185});
        let pts = points_art(dir.path(), points(), Some("EPSG:32648"), 2020);
        let r = report(&run_with(dir.path(), json!({}), &map, &pts, None).unwrap());
        close(
            r.area_weighted.oa,
            (0.03 * 0.75 + 0.02 * 2.0 / 3.0 + 0.0185) / 0.0685,
        );
        close(r.area_weighted.mapped_km2.unwrap(), 0.0685);
        close(r.area_weighted.strata_km2.unwrap(), 0.0685);
        close(r.classes[0].mapped_km2.unwrap(), 0.03);
        assert_eq!(r.classes[0].mapped_pixels, 200);
    }

    /// Confusion (rows map): [[3, 1, 0], [0, 2, 1], [0, 0, 3]], n = 10, OA = 0.8.
    /// W = 200/585, 200/585, 185/585; area-weighted OA = (200*3/4 + 200*2/3 + 185*1) / 585.
    /// A pixel is 100 m2 = 1e-4 km2; the class-2 area estimate is 585e-4 km2 * p_+2 =
    /// 1e-4 * (200/4 + 200*2/3) km2.
    #[test]
    fn assess_end_to_end_with_dropped_points() {
        let dir = TempDir::new().unwrap();
        let map = map_art(dir.path(), legend(3), pattern);
        let pts = points_art(dir.path(), points(), Some("EPSG:32648"), 2020);
        let ctx = run_with(dir.path(), json!({}), &map, &pts, None).unwrap();
        let r = report(&ctx);
        assert_eq!(
            r.points,
            PointCounts {
                total: 12,
                used: 10,
                dropped_outside: 1,
                dropped_nodata: 1
            }
        );
        assert_eq!(r.confusion.codes, vec![1, 2, 3]);
        assert_eq!(r.confusion.names[1], "Urban/Built-up");
        assert_eq!(
            r.confusion.matrix,
            vec![vec![3, 1, 0], vec![0, 2, 1], vec![0, 0, 3]]
        );
        close(r.oa, 0.8);
        close(r.oa_ci95.unwrap(), 1.96 * (0.8f64 * 0.2 / 9.0).sqrt());
        close(
            r.area_weighted.oa,
            (200.0 * 0.75 + 200.0 * 2.0 / 3.0 + 185.0) / 585.0,
        );
        close(r.area_weighted.pixel_km2.unwrap(), 1e-4);
        close(r.area_weighted.mapped_km2.unwrap(), 0.0585);
        assert!(r.area_weighted.unsampled.is_empty());
        let c2 = &r.classes[1];
        assert_eq!((c2.code, c2.n_map, c2.n_reference), (2, 3, 3));
        close(c2.ua.unwrap(), 2.0 / 3.0);
        close(c2.pa.unwrap(), 2.0 / 3.0);
        close(c2.f1.unwrap(), 2.0 / 3.0);
        assert_eq!(c2.mapped_pixels, 200);
        close(c2.mapped_km2.unwrap(), 0.02);
        close(c2.area_km2.unwrap(), 1e-4 * (50.0 + 400.0 / 3.0));
        let c3 = &r.classes[2];
        assert_eq!(c3.mapped_pixels, 185);
        close(c3.ua.unwrap(), 1.0);
        close(c3.pa.unwrap(), 0.75);
        assert!(r.holdout.is_none());
        // Headline metadata and metrics.
        let out = &ctx.outputs()["assessment"];
        let meta: AssessmentMeta = serde_json::from_value(out.meta.clone()).unwrap();
        assert_eq!((meta.n, meta.n_dropped, meta.year), (10, 2, Some(2020)));
        close(meta.oa, 0.8);
        assert_eq!(meta.classes.len(), 3);
        assert_eq!(meta.classes[2].pa, Some(0.75));
        assert_eq!(meta.holdout_oa, None);
        let metrics: BTreeMap<&str, Value> = metrics_of(&r).into_iter().collect();
        assert_eq!(metrics["oa"], json!(0.8));
        assert_eq!(metrics["n_points"], json!(10));
        assert_eq!(metrics["n_dropped"], json!(2));
        assert!(metrics.contains_key("oa_area"));
        assert!(!metrics.contains_key("oa_mean"));
        assert!(
            ctx.warnings()
                .iter()
                .any(|w| w
                    .contains("2 of 12 validation points dropped: 1 outside the map, 1 on nodata")),
            "{:?}",
            ctx.warnings()
        );
        // The Markdown a person reads.
        let md = String::from_utf8(file(&ctx, ASSESSMENT_MD)).unwrap();
        assert!(
            md.contains("- Overall accuracy (OA): 80.0 ± 26.1 % (95 % CI, simple random sample), n = 10 points"),
            "{md}"
        );
        assert!(
            md.contains("| 2 | Urban/Built-up | 3 | 3 | 66.7 | 66.7 | 66.7 |"),
            "{md}"
        );
        assert!(md.contains("| 1 Water | 3 | 1 | 0 | 4 |"), "{md}");
        assert!(md.contains("| total | 3 | 3 | 4 | 10 |"), "{md}");
        assert!(
            md.contains("1 dropped outside the map, 1 dropped on nodata"),
            "{md}"
        );
    }

    #[test]
    fn assess_reprojects_points_in_another_crs() {
        let dir = TempDir::new().unwrap();
        let map = map_art(dir.path(), legend(3), pattern);
        let utm = points();
        let mut feats: Vec<PointFeature> = utm
            .iter()
            .enumerate()
            .map(|(i, p)| PointFeature {
                id: i as i64,
                x: p.x,
                y: p.y,
                attrs: BTreeMap::new(),
            })
            .collect();
        reproject_points(&mut feats, "EPSG:32648", "EPSG:4326").unwrap();
        assert!(feats[0].x > 100.0 && feats[0].x < 110.0, "{:?}", feats[0]);
        let lonlat: Vec<Point> = utm
            .iter()
            .zip(&feats)
            .map(|(p, f)| pt(&p.id, (f.x, f.y), p.class))
            .collect();
        let a = run_with(
            dir.path(),
            json!({}),
            &map,
            &points_art(dir.path(), lonlat, Some("EPSG:4326"), 2020),
            None,
        )
        .unwrap();
        let b = run_with(
            dir.path(),
            json!({}),
            &map,
            &points_art(dir.path(), utm.clone(), None, 2020),
            None,
        )
        .unwrap();
        assert_eq!(report(&a), report(&b));
        assert_eq!(report(&a).points.used, 10);
        // Same input, same bytes (JSON, Markdown and PNG).
        for f in [ASSESSMENT_JSON, ASSESSMENT_MD, CONFUSION_PNG] {
            assert!(file(&a, f) == file(&b, f), "{f} differs");
        }
    }

    /// Model holdout: OA 0.9, 0.8 and 0.7 over three repeats -> 0.8 +/- 0.1.
    #[test]
    fn assess_reports_the_model_holdout_as_mean_and_sd() {
        let dir = TempDir::new().unwrap();
        let map = map_art(dir.path(), legend(3), pattern);
        let pts = points_art(dir.path(), points(), None, 2020);
        let model = model_art(json!({
            "legend": legend(2),
            "features": ["NDVI"],
            "holdout": [
                {"repeat": 0, "seed": 1, "matrix": [[5, 0], [1, 4]]},
                {"repeat": 1, "seed": 2, "matrix": [[4, 1], [1, 4]]},
                {"repeat": 2, "seed": 3, "matrix": [[7, 3], [0, 0]]},
            ],
        }));
        let ctx = run_with(dir.path(), json!({}), &map, &pts, Some(&model)).unwrap();
        let h = report(&ctx).holdout.unwrap();
        assert_eq!(h.repeats, 3);
        assert!((h.oa.mean - 0.8).abs() < 1e-12);
        assert!((h.oa.sd.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(h.classes[1].name, "Urban/Built-up");
        assert_eq!(h.classes[1].ua.unwrap().n, 2);
        let metrics: BTreeMap<&str, Value> = metrics_of(&report(&ctx)).into_iter().collect();
        assert!((metrics["oa_mean"].as_f64().unwrap() - 0.8).abs() < 1e-12);
        assert!((metrics["oa_sd"].as_f64().unwrap() - 0.1).abs() < 1e-12);
        let meta: AssessmentMeta =
            serde_json::from_value(ctx.outputs()["assessment"].meta.clone()).unwrap();
        assert_eq!(meta.holdout_oa.unwrap().n, 3);
        let md = String::from_utf8(file(&ctx, ASSESSMENT_MD)).unwrap();
        assert!(
            md.contains(
                "- OA over 3 train/validation splits of the model: 80.0 ± 10.0 % (mean ± sd)"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 2 | Urban/Built-up | 80.0 ± 0.0 | 60.0 ± 52.9 |"),
            "{md}"
        );

        // A holdout matrix that does not fit the model's legend is an error.
        let bad = model_art(json!({
            "legend": legend(3),
            "holdout": [{"repeat": 0, "seed": 1, "matrix": [[5, 0], [1, 4]]}],
        }));
        let e = err_of(run_with(dir.path(), json!({}), &map, &pts, Some(&bad)));
        assert!(
            e.contains("repeat 0: a 2 x 2 matrix for a legend of 3 classes"),
            "{e}"
        );
        // No holdout: a warning, no summary.
        let none = model_art(json!({"legend": legend(3)}));
        let ctx = run_with(dir.path(), json!({}), &map, &pts, Some(&none)).unwrap();
        assert!(report(&ctx).holdout.is_none());
        assert!(
            ctx.warnings()
                .iter()
                .any(|w| w.contains("no holdout repeats"))
        );
    }

    /// Class 4 is mapped (column 29 of the lower half) but no point is mapped as it: it is left
    /// out of the strata, named in the report and warned about.
    #[test]
    fn a_mapped_class_without_points_is_left_out_of_the_strata() {
        let dir = TempDir::new().unwrap();
        let map = map_art(dir.path(), legend(4), |c, r| {
            if c == 28 && r >= 10 { 4 } else { pattern(c, r) }
        });
        let pts = points_art(dir.path(), points(), None, 2020);
        let ctx = run_with(dir.path(), json!({}), &map, &pts, None).unwrap();
        let r = report(&ctx);
        assert_eq!(r.area_weighted.unsampled, vec![4]);
        assert_eq!(r.classes[3].mapped_pixels, 10);
        assert_eq!(r.classes[3].ua, None);
        // Strata: 200, 200, 175 px.
        close(
            r.area_weighted.oa,
            (200.0 * 0.75 + 200.0 * 2.0 / 3.0 + 175.0) / 575.0,
        );
        close(r.area_weighted.strata_km2.unwrap(), 0.0575);
        close(r.area_weighted.mapped_km2.unwrap(), 0.0585);
        assert!(
            ctx.warnings()
                .iter()
                .any(|w| w.contains("no validation point is mapped as `Other crops` (10 px)")),
            "{:?}",
            ctx.warnings()
        );
    }

    #[test]
    fn confusion_png_is_a_valid_deterministic_png() {
        let dir = TempDir::new().unwrap();
        let map = map_art(dir.path(), Legend::default(), pattern);
        let pts = points_art(dir.path(), points(), None, 2020);
        let a = run_with(dir.path(), json!({}), &map, &pts, None).unwrap();
        let b = run_with(dir.path(), json!({}), &map, &pts, None).unwrap();
        let png_a = file(&a, CONFUSION_PNG);
        assert_eq!(&png_a[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png_a[12..16], b"IHDR");
        let w = u32::from_be_bytes(png_a[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(png_a[20..24].try_into().unwrap());
        // 14 classes of 44 px, plus the labels.
        assert!(w > 14 * 44 + 100 && w < 1400, "{w}");
        assert!(h > 14 * 44 + 100 && h < 1400, "{h}");
        assert!(
            png_a == file(&b, CONFUSION_PNG),
            "same input, different PNG bytes"
        );
        // It decodes, and it is not blank: the diagonal cell of Water (3 of 4) is dark blue.
        let dec = png::Decoder::new(std::io::Cursor::new(&png_a));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (w, h));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let distinct: std::collections::BTreeSet<[u8; 3]> = buf[..info.buffer_size()]
            .chunks(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        assert!(distinct.len() > 20, "{} colours", distinct.len());
        // Water's row is 3 of 4 on the diagonal: 255 - (255 - c) * 0.75 of (8, 69, 148).
        assert!(distinct.contains(&[70, 116, 175]), "no 75 % blue cell");
        // The 14-class legend gives 14 rows in the Markdown matrix, all present.
        let md = String::from_utf8(file(&a, ASSESSMENT_MD)).unwrap();
        assert!(md.contains("| 14 Solar panel | 0 |"), "{md}");
    }

    #[test]
    fn reference_class_missing_from_the_legend_is_an_error_naming_it() {
        let dir = TempDir::new().unwrap();
        let map = map_art(dir.path(), legend(3), pattern);
        let mut pts = points();
        pts.push(pt("z9", centre(1, 1), 9));
        let e = err_of(run_with(
            dir.path(),
            json!({}),
            &map,
            &points_art(dir.path(), pts, None, 2020),
            None,
        ));
        assert!(
            e.contains("validation point `z9` has class 9, which the map's legend lacks"),
            "{e}"
        );
        assert!(e.contains("the legend's codes: 1, 2, 3"), "{e}");
    }

    #[test]
    fn map_code_missing_from_the_legend_is_an_error() {
        let dir = TempDir::new().unwrap();
        // The map holds code 5 where the legend has 1..3.
        let mut map = map_art(dir.path(), legend(3), |c, r| {
            if c == 0 && r == 0 { 5 } else { pattern(c, r) }
        });
        map.meta["class_pixels"] = json!({"1": 199, "2": 200, "3": 185});
        let pts = points_art(dir.path(), points(), None, 2020);
        let e = err_of(run_with(dir.path(), json!({}), &map, &pts, None));
        assert!(e.contains("class code 5 at validation point `a1`"), "{e}");
    }

    #[test]
    fn no_point_on_the_map_is_an_error() {
        let dir = TempDir::new().unwrap();
        let map = map_art(dir.path(), legend(3), pattern);
        let far: Vec<Point> = points()
            .into_iter()
            .map(|p| pt(&p.id, (p.x + 1e5, p.y), p.class))
            .collect();
        let e = err_of(run_with(
            dir.path(),
            json!({}),
            &map,
            &points_art(dir.path(), far, None, 2020),
            None,
        ));
        assert!(
            e.contains("none of the 12 validation points falls on the map's data (12 outside"),
            "{e}"
        );
        assert!(e.contains("EPSG:32648"), "{e}");
    }

    #[test]
    fn year_mismatch_is_an_error_unless_allowed() {
        let dir = TempDir::new().unwrap();
        let map = map_art(dir.path(), legend(3), pattern);
        let pts = points_art(dir.path(), points(), None, 2019);
        let e = err_of(run_with(dir.path(), json!({}), &map, &pts, None));
        assert!(
            e.contains("the map is of 2020 but the validation points are of 2019"),
            "{e}"
        );
        assert!(e.contains("allow_year_mismatch"), "{e}");
        let ctx = run_with(
            dir.path(),
            json!({"allow_year_mismatch": true}),
            &map,
            &pts,
            None,
        )
        .unwrap();
        assert_eq!(report(&ctx).points.used, 10);
        let e = err_of(run_with(dir.path(), json!({"z": 2}), &map, &pts, None));
        assert!(e.contains("`z`"), "{e}");
    }

    #[test]
    fn wrong_input_types_are_errors() {
        let dir = TempDir::new().unwrap();
        let map = map_art(dir.path(), legend(3), pattern);
        let pts = points_art(dir.path(), points(), None, 2020);
        let mut not_map = map.clone();
        not_map.ty = "Features".into();
        let e = err_of(run_with(dir.path(), json!({}), &not_map, &pts, None));
        assert!(e.contains("is a Features artifact, not Map"), "{e}");
        let e = err_of(run_with(
            dir.path(),
            json!({}),
            &map,
            &pts,
            Some(&model_art(json!({"holdout": []}))),
        ));
        assert!(e.contains("no legend / holdout"), "{e}");
    }

    #[test]
    fn pixel_area_needs_a_projected_crs() {
        let mut g = grid();
        close(g.pixel_km2().unwrap(), 1e-4);
        g.crs_wkt = crs_to_wkt("EPSG:4326").unwrap();
        assert_eq!(g.pixel_km2(), None);
        g.crs_wkt = String::new();
        assert_eq!(g.pixel_km2(), None);
    }
}
