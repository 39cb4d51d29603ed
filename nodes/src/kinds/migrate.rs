//! `migrate`: reference labels of one year carried to another year where the spectrum did not
//! change (Huang et al. 2020, ISPRS J. 162; `docs/method.md`, "Reference data and migration").
//!
//! The same points are sampled twice: on the features of the reference year (labels interpreted
//! for that year, e.g. 2020) and on those of the target year. For each point in both (matched by
//! id) the spectrum X (reference) and Y (target), N values each, give
//! - SAD = sum(X Y) / sqrt(sum(X^2) sum(Y^2))  (cosine of the spectral angle; 1 = same shape),
//! - ED  = sqrt(sum((X - Y)^2))                 (0 = same values).
//!
//! The label is kept for the target year when ED < `ed` and SAD > `sad`. (A zero spectrum has
//! no angle: SAD is then 1 when both spectra are zero, else 0.) Points in only one input are
//! left out with a warning. A class with no point kept is a warning naming it; no point kept
//! at all is an error naming the thresholds. Metrics: `kept`, `dropped`, `kept_share`.
//!
//! ## Ports
//! - in `reference` (`Samples`): the samples of the reference year, whose labels are kept.
//! - in `target` (`Samples`): the same points sampled on the target year's features.
//! - out `samples` (`Samples`): the kept points with the *target* year's matrices (all its
//!   seasons and features) and the reference labels; `year` = the target's year, `label_year`
//!   stays the reference's label year.
//! - out `points` (`Points`): the kept points with the reference labels (`year` = the reference
//!   label year, as in `samples`); for sampling other features of the target year.
//! - out `table` (`Table`): `migration.csv` with per class `class,name,kept,dropped,kept_share`
//!   (classes of the matched points, legend names), and JSON metadata with the thresholds and
//!   totals (`matched`, `kept`, `dropped`, `kept_share`, `reference_only`, `target_only`).
//!
//! ## Params (defaults in brackets)
//! - `ed` [0.1]: keep when ED is below (reflectance units, 0..1 bands).
//! - `sad` [0.95]: keep when SAD is above (-1..1).
//! - `spectrum_features` [`[B02, B03, B04, B08, B11, B12]`]: the features of the spectrum,
//!   which both inputs must have (an error lists the ones they have).
//! - `temporal` [`mean`]: `mean` averages each feature over the seasons of the year (N = the
//!   number of features); `concat` puts the seasons one after another (N = seasons x features;
//!   both inputs must have the same seasons).
//!
//! ```yaml
//! sweep:
//!   migrate.ed: [0.05, 0.1, 0.15]
//! nodes:
//!   migrate:
//!     kind: migrate
//!     for_each: { year: years }
//!     inputs:
//!       reference: { from: samples, year: 2020 }
//!       target: samples
//!     params: { ed: 0.1, sad: 0.95 }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use lulc_engine::{Inputs, Node, NodeError, Port, RunCtx};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::artifacts::{POINTS, SAMPLES, TABLE};
use crate::classes::Legend;
use crate::samples::{Point, PointSet, Samples};

pub struct Migrate;

/// File of the `table` output.
pub const MIGRATION_CSV: &str = "migration.csv";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Temporal {
    /// Each feature averaged over the seasons.
    Mean,
    /// The seasons one after another.
    Concat,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrateParams {
    pub ed: f64,
    pub sad: f64,
    pub spectrum_features: Vec<String>,
    pub temporal: Temporal,
}

impl Default for MigrateParams {
    fn default() -> Self {
        MigrateParams {
            ed: 0.1,
            sad: 0.95,
            spectrum_features: ["B02", "B03", "B04", "B08", "B11", "B12"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            temporal: Temporal::Mean,
        }
    }
}

/// `(ED, SAD)` of two spectra of the same length.
pub fn ed_sad(x: &[f64], y: &[f64]) -> (f64, f64) {
    let (mut xy, mut xx, mut yy, mut d2) = (0.0, 0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        xy += a * b;
        xx += a * a;
        yy += b * b;
        d2 += (a - b) * (a - b);
    }
    let sad = if xx == 0.0 || yy == 0.0 {
        if xx == yy { 1.0 } else { 0.0 }
    } else {
        // Rounding can push the cosine of identical shapes a hair above 1.
        (xy / (xx * yy).sqrt()).min(1.0)
    };
    (d2.sqrt(), sad)
}

/// Extracts a spectrum from the rows of one `Samples`.
struct Spectrum {
    /// Positions of the spectrum's features in the samples' feature list.
    idx: Vec<usize>,
    seasons: usize,
    features: usize,
    temporal: Temporal,
}

impl Spectrum {
    fn new(s: &Samples, p: &MigrateParams, port: &str, step: &str) -> Result<Spectrum, NodeError> {
        let missing: Vec<&str> = p
            .spectrum_features
            .iter()
            .filter(|f| !s.features.contains(f))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(NodeError::new(format!(
                "spectrum feature(s) {} not in the `{port}` samples (from `{step}`)",
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .with_help(format!(
                "the samples have: {}; set `spectrum_features`, or keep these features in \
                 the `stack` step the samples come from",
                s.features.join(", ")
            )));
        }
        Ok(Spectrum {
            idx: p
                .spectrum_features
                .iter()
                .map(|f| s.features.iter().position(|g| g == f).expect("checked"))
                .collect(),
            seasons: s.seasons.len(),
            features: s.features.len(),
            temporal: p.temporal,
        })
    }

    fn of(&self, row: &[f32]) -> Vec<f64> {
        let at = |t: usize, k: usize| f64::from(row[t * self.features + k]);
        match self.temporal {
            Temporal::Mean => self
                .idx
                .iter()
                .map(|&k| (0..self.seasons).map(|t| at(t, k)).sum::<f64>() / self.seasons as f64)
                .collect(),
            Temporal::Concat => (0..self.seasons)
                .flat_map(|t| self.idx.iter().map(move |&k| at(t, k)))
                .collect(),
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Node for Migrate {
    const KIND: &'static str = "migrate";
    const VERSION: u32 = 1;
    type Params = MigrateParams;

    fn inputs() -> Vec<Port> {
        vec![
            Port::one("reference", SAMPLES),
            Port::one("target", SAMPLES),
        ]
    }

    fn outputs() -> Vec<Port> {
        vec![
            Port::one("samples", SAMPLES),
            Port::one("points", POINTS),
            Port::one("table", TABLE),
        ]
    }

    fn summary() -> &'static str {
        "reference labels kept for another year where ED and SAD of the spectra say no change"
    }

    fn check(p: &MigrateParams) -> Result<(), Vec<(String, String)>> {
        let mut errs = Vec::new();
        if !(p.ed.is_finite() && p.ed > 0.0) {
            errs.push(("ed".to_string(), format!("must be > 0, got {}", p.ed)));
        }
        if !(p.sad.is_finite() && (-1.0..1.0).contains(&p.sad)) {
            errs.push((
                "sad".to_string(),
                format!("must be in -1 ..< 1 (a cosine), got {}", p.sad),
            ));
        }
        if p.spectrum_features.is_empty() {
            errs.push((
                "spectrum_features".to_string(),
                "needs at least one feature".to_string(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &p.spectrum_features {
            if !seen.insert(f) {
                errs.push((
                    "spectrum_features".to_string(),
                    format!("`{f}` is listed twice"),
                ));
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    fn run(&self, ctx: &mut RunCtx, p: &MigrateParams, inputs: &Inputs) -> Result<(), NodeError> {
        let ref_art = inputs.one("reference")?;
        let tgt_art = inputs.one("target")?;
        let reference = Samples::read(ref_art)?;
        let target = Samples::read(tgt_art)?;
        let sx = Spectrum::new(&reference, p, "reference", &ref_art.step_id)?;
        let sy = Spectrum::new(&target, p, "target", &tgt_art.step_id)?;
        if p.temporal == Temporal::Concat && reference.seasons != target.seasons {
            return Err(NodeError::new(format!(
                "`temporal: concat` needs the same seasons in both inputs: the reference has \
                 {}, the target {}",
                reference.seasons.join(" "),
                target.seasons.join(" ")
            ))
            .with_help("use `temporal: mean`"));
        }
        let label_year = reference.label_year.or(reference.year);
        let by_id: HashMap<&str, usize> = target
            .points
            .iter()
            .enumerate()
            .map(|(i, pt)| (pt.id.as_str(), i))
            .collect();

        let width = target.width();
        let mut kept_points: Vec<Point> = Vec::new();
        let mut data: Vec<f32> = Vec::new();
        // Class -> (kept, dropped).
        let mut per_class: BTreeMap<u8, (usize, usize)> = BTreeMap::new();
        let (mut eds, mut sads) = (Vec::new(), Vec::new());
        let mut matched = 0usize;
        for (i, rp) in reference.points.iter().enumerate() {
            let Some(&j) = by_id.get(rp.id.as_str()) else {
                continue;
            };
            matched += 1;
            let (ed, sad) = ed_sad(&sx.of(reference.row(i)), &sy.of(target.row(j)));
            eds.push(ed);
            sads.push(sad);
            let entry = per_class.entry(rp.class).or_insert((0, 0));
            if ed < p.ed && sad > p.sad {
                entry.0 += 1;
                let tp = &target.points[j];
                kept_points.push(Point {
                    id: rp.id.clone(),
                    x: tp.x,
                    y: tp.y,
                    class: rp.class,
                });
                data.extend_from_slice(&target.data[j * width..(j + 1) * width]);
            } else {
                entry.1 += 1;
            }
        }
        let reference_only = reference.len() - matched;
        let target_only = target.len() - matched;
        if reference_only + target_only > 0 {
            ctx.warn(format!(
                "{matched} point(s) in both inputs; left out {reference_only} only in the \
                 reference (`{}`) and {target_only} only in the target (`{}`)",
                ref_art.step_id, tgt_art.step_id
            ));
        }
        if matched == 0 {
            return Err(NodeError::new(format!(
                "no point id in both the reference (`{}`, {} points) and the target (`{}`, {} \
                 points)",
                ref_art.step_id,
                reference.len(),
                tgt_art.step_id,
                target.len()
            ))
            .with_help("sample the same `points` on the features of both years"));
        }
        let kept = kept_points.len();
        let dropped = matched - kept;
        let share = kept as f64 / matched as f64;
        ctx.metric("kept", kept as u64);
        ctx.metric("dropped", dropped as u64);
        ctx.metric("kept_share", share);
        if kept == 0 {
            return Err(NodeError::new(format!(
                "no sample kept with ed < {} and sad > {} (of {matched} point(s) in both the \
                 reference `{}` and the target `{}`; median ED {:.4}, median SAD {:.4})",
                p.ed,
                p.sad,
                ref_art.step_id,
                tgt_art.step_id,
                median(eds),
                median(sads)
            ))
            .with_help(
                "check that both inputs hold the spectrum in the same units (reflectance 0..1), \
                 or relax `ed` / `sad`",
            ));
        }
        let legend = Legend::default();
        for (class, (k, d)) in &per_class {
            if *k == 0 {
                ctx.warn(format!(
                    "class {class} ({}): no sample kept of {d} (ed < {}, sad > {})",
                    legend.name(*class),
                    p.ed,
                    p.sad
                ));
            }
        }

        let mut csv = String::from("class,name,kept,dropped,kept_share\n");
        for (class, (k, d)) in &per_class {
            let name = legend.name(*class);
            let name = if name.contains([',', '"']) {
                format!("\"{}\"", name.replace('"', "\"\""))
            } else {
                name
            };
            let _ = writeln!(
                csv,
                "{class},{name},{k},{d},{:.4}",
                *k as f64 / (k + d) as f64
            );
        }
        ctx.write_output("table", MIGRATION_CSV, csv.as_bytes())?;
        ctx.set_meta(
            "table",
            json!({
                "file": MIGRATION_CSV,
                "reference_year": reference.year,
                "target_year": target.year,
                "label_year": label_year,
                "ed": p.ed,
                "sad": p.sad,
                "spectrum_features": p.spectrum_features,
                "temporal": p.temporal,
                "matched": matched,
                "kept": kept,
                "dropped": dropped,
                "kept_share": share,
                "reference_only": reference_only,
                "target_only": target_only,
            }),
        )?;
        PointSet {
            year: label_year,
            crs: target.crs.clone(),
            points: kept_points.clone(),
        }
        .write(ctx, "points")?;
        Samples {
            year: target.year,
            label_year,
            crs: target.crs,
            seasons: target.seasons,
            features: target.features,
            points: kept_points,
            data,
        }
        .write(ctx, "samples")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use lulc_engine::{ArtifactIn, erase};
    use serde_json::{Value, json};
    use tempfile::TempDir;

    const NAMES: [&str; 7] = ["B02", "B03", "B04", "NDVI", "B08", "B11", "B12"];

    /// Samples with two seasons whose mean of the six bands is `spec` (season 1 = spec - 0.01,
    /// season 2 = spec + 0.01); NDVI is `ndvi` in both seasons.
    fn samples(year: i64, rows: &[(&str, u8, [f32; 6], f32)]) -> Samples {
        let mut data = Vec::new();
        for (_, _, spec, ndvi) in rows {
            for delta in [-0.01f32, 0.01] {
                let mut b = spec.iter().map(|v| v + delta);
                for n in NAMES {
                    data.push(if n == "NDVI" {
                        *ndvi
                    } else {
                        b.next().unwrap()
                    });
                }
            }
        }
        Samples {
            year: Some(year),
            label_year: Some(2020),
            crs: Some("EPSG:32648".into()),
            seasons: vec!["S1".into(), "S2".into()],
            features: NAMES.iter().map(|s| s.to_string()).collect(),
            points: rows
                .iter()
                .enumerate()
                .map(|(i, (id, class, _, _))| Point {
                    id: id.to_string(),
                    x: 600_000.0 + i as f64 * 10.0,
                    y: 1_200_000.0 + year as f64,
                    class: *class,
                })
                .collect(),
            data,
        }
    }

    fn art(dir: &std::path::Path, s: Samples, step: &str) -> ArtifactIn {
        let out = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx = RunCtx::for_test(step, vec![Port::one("samples", SAMPLES)], &out);
        s.write(&mut ctx, "samples").unwrap();
        let o = &ctx.outputs()["samples"];
        ArtifactIn {
            step_id: step.into(),
            dims: BTreeMap::new(),
            ty: SAMPLES.into(),
            digest: String::new(),
            files: o.files.clone(),
            meta: o.meta.clone(),
        }
    }

    fn out_art(ctx: &RunCtx, port: &str, ty: &str) -> ArtifactIn {
        let o = &ctx.outputs()[port];
        ArtifactIn {
            step_id: "migrate".into(),
            dims: BTreeMap::new(),
            ty: ty.into(),
            digest: String::new(),
            files: o.files.clone(),
            meta: o.meta.clone(),
        }
    }

    fn run(
        params: Value,
        r: &ArtifactIn,
        t: &ArtifactIn,
        dir: &std::path::Path,
    ) -> Result<RunCtx, NodeError> {
        let node = erase(Migrate);
        let params = node
            .check_params(&params)
            .map_err(|e| NodeError::new(format!("{}: {}", e[0].path, e[0].message)))?;
        let out = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx = RunCtx::for_test("migrate", Migrate::outputs(), &out);
        let inputs = Inputs {
            ports: BTreeMap::from([
                ("reference".to_string(), vec![r.clone()]),
                ("target".to_string(), vec![t.clone()]),
            ]),
        };
        node.run(&mut ctx, &params, &inputs)?;
        Ok(ctx)
    }

    const BASE: [f32; 6] = [0.05; 6];

    /// Reference 2020 and target 2021: `same` unchanged; `scaled` 1.5 x brighter (SAD 1, ED
    /// 0.05 sqrt(6) = 0.1225); `shape` changed shape (ED 0.0735, SAD 0.8575); `other` a class
    /// of its own that changed; `r_only` / `t_only` in one input only.
    fn pair(dir: &std::path::Path) -> (ArtifactIn, ArtifactIn) {
        let r = samples(
            2020,
            &[
                ("same", 3, BASE, 0.5),
                ("scaled", 3, [0.1; 6], 0.6),
                ("shape", 5, BASE, 0.7),
                ("r_only", 3, BASE, 0.1),
            ],
        );
        let t = samples(
            2021,
            &[
                ("same", 3, BASE, 0.9),
                ("scaled", 3, [0.15; 6], 0.9),
                ("shape", 5, [0.08, 0.02, 0.08, 0.02, 0.08, 0.02], 0.9),
                ("t_only", 1, BASE, 0.9),
            ],
        );
        (
            art(dir, r, "sample[year=2020]"),
            art(dir, t, "sample[year=2021]"),
        )
    }

    #[test]
    fn migrate_ed_and_sad_by_hand() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let (ed, sad) = ed_sad(&[1.0, 0.0], &[0.0, 1.0]);
        assert!(close(ed, 2f64.sqrt()) && close(sad, 0.0), "{ed} {sad}");
        let (ed, sad) = ed_sad(&[3.0, 4.0], &[6.0, 8.0]);
        assert!(close(ed, 5.0) && close(sad, 1.0), "{ed} {sad}");
        let (ed, sad) = ed_sad(&[1.0, 2.0, 2.0], &[2.0, 1.0, 2.0]);
        assert!(
            close(ed, 2f64.sqrt()) && close(sad, 8.0 / 9.0),
            "{ed} {sad}"
        );
        // The test data's `scaled` and `shape` points.
        let (ed, sad) = ed_sad(&[0.1; 6], &[0.15; 6]);
        assert!(
            close(ed, 0.05 * 6f64.sqrt()) && close(sad, 1.0),
            "{ed} {sad}"
        );
        let x = [0.05; 6];
        let y = [0.08, 0.02, 0.08, 0.02, 0.08, 0.02];
        let (ed, sad) = ed_sad(&x, &y);
        assert!(close(ed, 0.0054f64.sqrt()), "{ed}");
        assert!(close(sad, 0.015 / (0.015f64 * 0.0204).sqrt()), "{sad}");
        assert!((sad - 0.857_492_9).abs() < 1e-6, "{sad}");
        assert_eq!(ed_sad(&[0.0, 0.0], &[0.0, 0.0]), (0.0, 1.0));
        assert_eq!(ed_sad(&[0.0, 0.0], &[3.0, 4.0]), (5.0, 0.0));
    }

    #[test]
    fn migrate_default_thresholds_keep_only_the_unchanged_point() {
        let dir = TempDir::new().unwrap();
        let (r, t) = pair(dir.path());
        let ctx = run(json!({}), &r, &t, dir.path()).unwrap();
        let s = Samples::read(&out_art(&ctx, "samples", SAMPLES)).unwrap();
        assert_eq!(s.points.len(), 1);
        assert_eq!(s.points[0].id, "same");
        assert_eq!(s.points[0].class, 3);
        // The target's matrix (its NDVI is 0.9), year and coordinates; the reference label year.
        assert_eq!(s.row(0)[3], 0.9);
        assert_eq!(s.width(), 14);
        assert_eq!((s.year, s.label_year), (Some(2021), Some(2020)));
        assert_eq!(s.points[0].y, 1_200_000.0 + 2021.0);
        let pts = PointSet::read(&out_art(&ctx, "points", POINTS)).unwrap();
        assert_eq!(pts.points, s.points);
        assert_eq!(pts.year, Some(2020));
        let table = &ctx.outputs()["table"];
        assert_eq!(
            std::fs::read_to_string(&table.files[MIGRATION_CSV]).unwrap(),
            "class,name,kept,dropped,kept_share\n3,Rice,1,1,0.5000\n5,Grass/Shrub,0,1,0.0000\n"
        );
        assert_eq!(table.meta["matched"], 3);
        assert_eq!(table.meta["kept"], 1);
        assert_eq!(table.meta["dropped"], 2);
        assert_eq!(table.meta["reference_only"], 1);
        assert_eq!(table.meta["target_only"], 1);
        assert_eq!(table.meta["temporal"], "mean");
        let w = ctx.warnings().join("\n");
        assert!(
            w.contains("class 5 (Grass/Shrub): no sample kept of 1"),
            "{w}"
        );
        assert!(
            w.contains(
                "left out 1 only in the reference (`sample[year=2020]`) and 1 only in the target"
            ),
            "{w}"
        );
    }

    #[test]
    fn migrate_each_threshold_decides_its_point() {
        let dir = TempDir::new().unwrap();
        let (r, t) = pair(dir.path());
        let kept = |params: Value| {
            let ctx = run(params, &r, &t, dir.path()).unwrap();
            let s = Samples::read(&out_art(&ctx, "samples", SAMPLES)).unwrap();
            s.points.iter().map(|p| p.id.clone()).collect::<Vec<_>>()
        };
        // `scaled` (ED 0.1225, SAD 1) passes once ed > 0.1225 and not at 0.12.
        assert_eq!(kept(json!({"ed": 0.13})), ["same", "scaled"]);
        assert_eq!(kept(json!({"ed": 0.12})), ["same"]);
        // `shape` (ED 0.0735, SAD 0.8575) passes once sad < 0.8575 and not at 0.86.
        assert_eq!(kept(json!({"sad": 0.85})), ["same", "shape"]);
        assert_eq!(kept(json!({"sad": 0.86})), ["same"]);
        // ... and fails the ED threshold below 0.0735.
        assert_eq!(kept(json!({"sad": 0.85, "ed": 0.07})), ["same"]);
        // Concatenated seasons: `same` has the same values, `scaled` differs by 0.05 in 12
        // values (ED 0.05 sqrt(12) = 0.173).
        assert_eq!(kept(json!({"temporal": "concat", "ed": 0.17})), ["same"]);
        assert_eq!(
            kept(json!({"temporal": "concat", "ed": 0.18})),
            ["same", "scaled"]
        );
        // NDVI alone: same shape (one value), ED |0.9 - 0.5| etc.
        assert_eq!(
            kept(json!({"spectrum_features": ["NDVI"], "ed": 0.35, "sad": 0.5})),
            ["scaled", "shape"]
        );
    }

    #[test]
    fn migrate_same_year_keeps_everything() {
        let dir = TempDir::new().unwrap();
        let (r, _) = pair(dir.path());
        let ctx = run(json!({"ed": 1e-9, "sad": 0.999_999}), &r, &r, dir.path()).unwrap();
        let s = Samples::read(&out_art(&ctx, "samples", SAMPLES)).unwrap();
        assert_eq!(s.len(), 4);
        assert!(ctx.warnings().is_empty(), "{:?}", ctx.warnings());
        let table = &ctx.outputs()["table"];
        assert_eq!(table.meta["kept_share"], 1.0);
        assert_eq!(table.meta["dropped"], 0);
        let orig = Samples::read(&r).unwrap();
        assert_eq!(s.data, orig.data);
    }

    #[test]
    fn migrate_errors_name_thresholds_and_features() {
        let dir = TempDir::new().unwrap();
        let (r, t) = pair(dir.path());
        // Every point changed a little: `same` is 0.02 brighter in each band (ED 0.049).
        let changed = art(
            dir.path(),
            samples(
                2021,
                &[
                    ("same", 3, [0.07; 6], 0.9),
                    ("scaled", 3, [0.15; 6], 0.9),
                    ("shape", 5, [0.08, 0.02, 0.08, 0.02, 0.08, 0.02], 0.9),
                ],
            ),
            "sample[year=2021]",
        );
        let e = run(json!({"ed": 0.01}), &r, &changed, dir.path())
            .err()
            .unwrap();
        assert!(
            e.message.contains(
                "no sample kept with ed < 0.01 and sad > 0.95 (of 3 point(s) in both the \
                 reference `sample[year=2020]` and the target `sample[year=2021]`"
            ),
            "{}",
            e.message
        );
        assert!(e.message.contains("median ED 0.0735"), "{}", e.message);
        let e = run(
            json!({"spectrum_features": ["B02", "B05", "VV"]}),
            &r,
            &t,
            dir.path(),
        )
        .err()
        .unwrap();
        assert!(
            e.message.contains(
                "spectrum feature(s) `B05`, `VV` not in the `reference` samples (from \
                 `sample[year=2020]`)"
            ),
            "{}",
            e.message
        );
        assert!(
            e.help
                .unwrap()
                .contains("the samples have: B02, B03, B04, NDVI, B08, B11, B12"),
        );
        let node = erase(Migrate);
        let errs = node
            .check_params(&json!({"ed": 0, "sad": 1.5, "spectrum_features": []}))
            .unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["ed", "sad", "spectrum_features"]);
        assert!(node.check_params(&json!({"temporal": "median"})).is_err());
        assert_eq!(
            node.check_params(&json!({})).unwrap(),
            json!({"ed": 0.1, "sad": 0.95, "spectrum_features":
                ["B02", "B03", "B04", "B08", "B11", "B12"], "temporal": "mean"})
        );
        // No common id.
        let other = art(
            dir.path(),
            samples(2021, &[("zzz", 1, BASE, 0.1)]),
            "sample[year=2021]",
        );
        let e = run(json!({}), &r, &other, dir.path()).err().unwrap();
        assert!(e.message.contains("no point id in both"), "{}", e.message);
    }

    /// A stand-in for `stack`, so a plan can be lowered without the raster steps.
    struct FakeFeatures;

    #[derive(Clone, Debug, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct NoParams {}

    impl Node for FakeFeatures {
        const KIND: &'static str = "fake_features";
        const VERSION: u32 = 1;
        type Params = NoParams;
        fn inputs() -> Vec<Port> {
            vec![]
        }
        fn outputs() -> Vec<Port> {
            vec![Port::one("features", crate::artifacts::FEATURES)]
        }
        fn run(&self, _: &mut RunCtx, _: &NoParams, _: &Inputs) -> Result<(), NodeError> {
            Ok(())
        }
    }

    #[test]
    fn migrate_documented_wiring_lowers_to_one_reference_per_year() {
        use lulc_engine::DimValue;
        use lulc_engine::plan::{LowerOptions, lower};
        let registry = lulc_engine::Registry::new(vec![
            erase(FakeFeatures),
            erase(crate::kinds::simulate::Simulate),
            erase(crate::kinds::points::Points),
            erase(crate::kinds::sample::Sample),
            erase(Migrate),
        ]);
        let spec = r#"
name: migration
params: { years: 2019..2021 }
nodes:
  aoi: { kind: simulate }
  stack: { kind: fake_features, for_each: { year: years } }
  reference:
    kind: points
    inputs: { catalog: aoi }
    params: { path: reference/points_2020.gpkg, year: 2020 }
  samples:
    kind: sample
    for_each: { year: years }
    inputs: { features: stack, points: reference }
  migrate:
    kind: migrate
    for_each: { year: years }
    inputs:
      reference: { from: samples, year: 2020 }
      target: samples
    params: { ed: 0.1, sad: 0.95 }
"#;
        let plan = lower(
            std::path::Path::new("migration.yaml"),
            spec.to_string(),
            &LowerOptions {
                registry: &registry,
                overrides: &[],
            },
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let migrate: Vec<_> = plan.steps.iter().filter(|s| s.node == "migrate").collect();
        assert_eq!(migrate.len(), 3);
        for m in migrate {
            let r = &plan.steps[m.inputs.get("reference").unwrap()[0].step];
            let t = &plan.steps[m.inputs.get("target").unwrap()[0].step];
            assert_eq!(r.node, "samples");
            assert_eq!(r.dims.get("year"), Some(&DimValue::Int(2020)));
            assert_eq!(t.dims, m.dims);
        }
        // A threshold out of range is a spec error before anything runs.
        let bad = spec.replace("sad: 0.95", "sad: 1.5");
        let errs = lower(
            std::path::Path::new("migration.yaml"),
            bad,
            &LowerOptions {
                registry: &registry,
                overrides: &[],
            },
        )
        .err()
        .expect("sad 1.5 must not lower");
        assert!(format!("{errs:?}").contains("a cosine"), "{errs:?}");
    }
}
