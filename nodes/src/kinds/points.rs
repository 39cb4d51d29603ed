//! `points`: labelled reference points from a vector file (GeoJSON, GeoPackage, Shapefile, CSV
//! with x/y columns) into a `Points` artifact: id, x, y, class code, the label year and the
//! layer's CRS (`docs/method.md`, "Reference data and migration").
//!
//! Bad rows are data, not crashes: a point without a usable geometry (no geometry, empty or
//! non-numeric coordinates), without an integer id, or with a missing or invalid class is
//! dropped, and the step warns with the counts by reason (metrics `read`, `dropped`). No point
//! left is an error naming the file. Two points with the same id are an error (ids are how
//! `migrate` and `assess` match points).
//!
//! ## Ports
//! - in `catalog` (`Catalog`, optional): when connected, `path` is a file of this catalog (the
//!   simulator writes `reference/points_2020.gpkg` and `validation/points_<year>.geojson`).
//!   A catalog is content-addressed: editing the points re-runs the step.
//! - out `points` (`Points`, see [`crate::samples::PointSet`]): rows sorted by id.
//!
//! ## Params (defaults in brackets)
//! - `path` (required): the vector file, inside the `catalog` input when it is connected, else
//!   relative to the spec's folder (then its content enters the step key: edit it, the step re-runs).
//!   `${year}` is substituted before the node runs (`validation/points_${year}.geojson`).
//! - `class_field` [`class`]: the attribute holding the class: an integer code 1..=255 or a
//!   class name of the legend (`Rice`, case-insensitive). 0, other numbers and unknown names are
//!   invalid.
//! - `id_field` [`id`]: the integer id attribute; OGR's feature id when the layer has no such
//!   field.
//! - `year` [none]: the year the labels were interpreted for. When set, points whose
//!   `year_field` attribute holds another year are dropped (one file can hold several years).
//!   When unset, the common value of `year_field` (an error if the points disagree), or none.
//! - `year_field` [`year`]: the attribute holding a point's label year, when the file has it.
//! - `layer` [first]: the layer to read.
//! - `crs` [none]: the CRS of the coordinates when the file does not say (CSV), any GDAL
//!   definition (`EPSG:32648`). The layer's CRS (as WKT) is recorded in the output; `sample`
//!   reprojects the points onto the features' grid when it differs.
//! - `x_field`, `y_field` [none]: CSV only, the coordinate columns (default: `x`/`lon`/
//!   `longitude`/`easting`, `y`/`lat`/`latitude`/`northing`).
//!
//! ```yaml
//! nodes:
//!   reference:
//!     kind: points
//!     inputs: { catalog: aoi }
//!     params: { path: reference/points_2020.gpkg, year: 2020 }
//!   validation:
//!     kind: points
//!     for_each: { year: years }
//!     inputs: { catalog: aoi }
//!     params: { path: "validation/points_${year}.geojson", year: "${year}" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lulc_engine::{Inputs, Node, NodeError, Port, RunCtx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::artifacts::{CATALOG, POINTS};
use crate::classes::Legend;
use crate::samples::{Point, PointSet};
use crate::vector::{self, ReadOptions};

pub struct Points;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PointsParams {
    pub path: String,
    pub class_field: String,
    pub id_field: String,
    pub year: Option<i64>,
    pub year_field: String,
    pub layer: Option<String>,
    pub crs: Option<String>,
    pub x_field: Option<String>,
    pub y_field: Option<String>,
}

impl Default for PointsParams {
    fn default() -> Self {
        PointsParams {
            path: String::new(),
            class_field: "class".to_string(),
            id_field: "id".to_string(),
            year: None,
            year_field: "year".to_string(),
            layer: None,
            crs: None,
            x_field: None,
            y_field: None,
        }
    }
}

/// A class attribute as a code: an integer 1..=255 (or an integral real, or a numeric string),
/// or a legend class name (case-insensitive).
pub(crate) fn class_code(v: &Value, legend: &Legend) -> Result<u8, String> {
    let int = match v {
        Value::Null => return Err("no class".to_string()),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Err("no class".to_string());
            }
            match (t.parse::<i64>(), t.parse::<f64>()) {
                (Ok(i), _) => Some(i),
                (_, Ok(f)) if f.fract() == 0.0 && f.abs() < 1e15 => Some(f as i64),
                (_, Ok(_)) => None,
                _ => {
                    return legend
                        .0
                        .iter()
                        .find(|c| c.name.eq_ignore_ascii_case(t))
                        .map(|c| c.code)
                        .ok_or_else(|| format!("unknown class `{t}`"));
                }
            }
        }
        other => return Err(format!("class is not a code: {other}")),
    };
    match int {
        Some(i) if (1..=255).contains(&i) => Ok(i as u8),
        Some(i) => Err(format!("class {i} is outside 1..255")),
        None => Err(format!("class {v} is not an integer")),
    }
}

fn year_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Counts of dropped points by reason, in a stable order.
#[derive(Default)]
struct Dropped(BTreeMap<String, usize>);

impl Dropped {
    fn add(&mut self, reason: impl Into<String>) {
        *self.0.entry(reason.into()).or_insert(0) += 1;
    }

    fn total(&self) -> usize {
        self.0.values().sum()
    }

    fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Collapse per-feature messages into reason classes (the value varies, the reason does not).
fn reason_class(msg: &str) -> String {
    if msg.starts_with("unknown class") {
        "with an unknown class name".to_string()
    } else if msg.contains("outside 1..255") {
        "with a class outside 1..255".to_string()
    } else if msg == "no class" {
        "without a class".to_string()
    } else if msg.contains("class") {
        "with a class that is not an integer".to_string()
    } else if msg.contains("not an integer id") || msg.contains("no id field") {
        "without an integer id".to_string()
    } else {
        "without valid coordinates".to_string()
    }
}

impl Node for Points {
    const KIND: &'static str = "points";
    const VERSION: u32 = 1;
    type Params = PointsParams;

    fn inputs() -> Vec<Port> {
        vec![Port::one("catalog", CATALOG).optional()]
    }

    fn outputs() -> Vec<Port> {
        vec![Port::one("points", POINTS)]
    }

    fn summary() -> &'static str {
        "labelled reference points from a vector file (GeoJSON, GPKG, Shapefile, CSV)"
    }

    fn files(p: &Self::Params, connected: &[&str]) -> Vec<(&'static str, String)> {
        if connected.contains(&"catalog") {
            Vec::new()
        } else {
            vec![("path", p.path.clone())]
        }
    }

    fn check(p: &PointsParams) -> Result<(), Vec<(String, String)>> {
        let mut errs = Vec::new();
        if p.path.trim().is_empty() {
            errs.push((
                "path".to_string(),
                "required: the points' vector file".to_string(),
            ));
        }
        for (name, v) in [
            ("class_field", &p.class_field),
            ("id_field", &p.id_field),
            ("year_field", &p.year_field),
        ] {
            if v.trim().is_empty() {
                errs.push((name.to_string(), "empty field name".to_string()));
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    fn run(&self, ctx: &mut RunCtx, p: &PointsParams, inputs: &Inputs) -> Result<(), NodeError> {
        // A file the spec names (not one inside a stored catalog) is checked against the
        // spec folder's confinement.
        let from_spec = inputs.all("catalog").is_empty();
        let path: PathBuf = match inputs.all("catalog") {
            [] => ctx.input_path("path", &p.path)?,
            [cat] => cat.files.get(&p.path).cloned().ok_or_else(|| {
                let mut near: Vec<&str> = cat
                    .files
                    .keys()
                    .filter(|k| {
                        let ext = |s: &str| Path::new(s).extension().map(|e| e.to_os_string());
                        ext(k) == ext(&p.path) || k.starts_with("reference/")
                    })
                    .map(String::as_str)
                    .collect();
                near.truncate(12);
                NodeError::new(format!(
                    "the `catalog` input (from `{}`) has no file `{}`",
                    cat.step_id, p.path
                ))
                .with_help(if near.is_empty() {
                    "`path` is relative to the catalog when `catalog` is connected".to_string()
                } else {
                    format!("files of the catalog like it: {}", near.join(", "))
                })
            })?,
            many => {
                return Err(NodeError::new(format!(
                    "input `catalog` has {} artifacts, expected one",
                    many.len()
                )));
            }
        };
        let shown = p.path.as_str();
        let opts = ReadOptions {
            layer: p.layer.clone(),
            id_field: p.id_field.clone(),
            x_field: p.x_field.clone(),
            y_field: p.y_field.clone(),
            crs: p.crs.clone(),
        };
        let unreadable = |e: vector::VectorError| {
            NodeError::new(format!("points `{shown}`: {e}"))
                .with_help("supported: GeoJSON, GeoPackage, Shapefile, CSV with x/y columns")
        };
        let file = vector::open(&path, &opts).map_err(unreadable)?;
        if from_spec {
            // A file the spec names may be a VRT naming other files: check those too.
            super::confine_dataset(&ctx.confinement(), shown, &file.driver(), &file.file_list())?;
        }
        let layer = file.points().map_err(unreadable)?;
        // Metres read as degrees fail much later, in a reprojection, naming no point.
        let geojson = Path::new(&p.path)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("geojson") || e.eq_ignore_ascii_case("json"));
        let why = if geojson {
            " (a GeoJSON file without a `crs` member is WGS 84)"
        } else {
            ""
        };
        vector::check_lon_lat(&layer.features, &layer.crs_wkt, why).map_err(|e| {
            let mut err = NodeError::from_diagnostic(&e);
            err.message = format!("points `{shown}`: {}", err.message);
            err
        })?;
        let total = layer.features.len() + layer.skipped.len();
        let mut dropped = Dropped::default();
        for s in &layer.skipped {
            dropped.add(reason_class(&s.reason));
        }
        let has_class = layer
            .features
            .iter()
            .any(|f| f.attrs.contains_key(&p.class_field));
        if !layer.features.is_empty() && !has_class {
            let mut fields: Vec<&str> = layer
                .features
                .iter()
                .flat_map(|f| f.attrs.keys())
                .map(String::as_str)
                .collect();
            fields.sort();
            fields.dedup();
            return Err(NodeError::new(format!(
                "points `{shown}` have no field `{}`",
                p.class_field
            ))
            .with_help(format!(
                "set `class_field`; the points have: {}",
                fields.join(", ")
            )));
        }
        let legend = Legend::default();
        let mut points = Vec::with_capacity(layer.features.len());
        let mut years: BTreeMap<i64, usize> = BTreeMap::new();
        let mut other_year = 0usize;
        for f in &layer.features {
            let class =
                match class_code(f.attrs.get(&p.class_field).unwrap_or(&Value::Null), &legend) {
                    Ok(c) => c,
                    Err(msg) => {
                        dropped.add(reason_class(&msg));
                        continue;
                    }
                };
            let fy = f.attrs.get(&p.year_field).and_then(year_of);
            if let (Some(want), Some(fy)) = (p.year, fy)
                && fy != want
            {
                other_year += 1;
                continue;
            }
            if let Some(fy) = fy {
                *years.entry(fy).or_insert(0) += 1;
            }
            points.push(Point {
                id: f.id.to_string(),
                x: f.x,
                y: f.y,
                class,
            });
        }
        let mut ids: Vec<&str> = points.iter().map(|pt| pt.id.as_str()).collect();
        ids.sort_unstable();
        let mut dups: Vec<&str> = ids
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        dups.dedup();
        if !dups.is_empty() {
            let n = dups.len();
            dups.truncate(10);
            return Err(NodeError::new(format!(
                "points `{shown}`: {n} id(s) occur more than once in `{}`: {}",
                p.id_field,
                dups.join(", ")
            ))
            .with_help("ids must be unique; set `id_field` to a unique attribute"));
        }
        let year = match p.year {
            Some(y) => Some(y),
            None if years.len() > 1 => {
                let list: Vec<String> = years.iter().map(|(y, n)| format!("{y} ({n})")).collect();
                return Err(NodeError::new(format!(
                    "points `{shown}` hold several label years in `{}`: {}",
                    p.year_field,
                    list.join(", ")
                ))
                .with_help("set `year` to keep the points of one year"));
            }
            None => years.keys().next().copied(),
        };
        if dropped.total() > 0 {
            ctx.warn(format!(
                "points `{shown}`: dropped {} of {total} point(s): {}",
                dropped.total(),
                dropped.describe()
            ));
        }
        if other_year > 0 {
            ctx.warn(format!(
                "points `{shown}`: left out {other_year} point(s) whose `{}` is not {}",
                p.year_field,
                year.unwrap_or_default()
            ));
        }
        if points.is_empty() {
            return Err(NodeError::new(format!(
                "no valid point in `{shown}` ({total} feature(s) read{}{})",
                if dropped.total() > 0 {
                    format!("; dropped {}", dropped.describe())
                } else {
                    String::new()
                },
                if other_year > 0 {
                    format!(
                        "; {other_year} of other years than {}",
                        year.unwrap_or_default()
                    )
                } else {
                    String::new()
                }
            )));
        }
        ctx.metric("read", total as u64);
        ctx.metric("points", points.len() as u64);
        ctx.metric("dropped", dropped.total() as u64);
        let crs = (!layer.crs_wkt.trim().is_empty()).then(|| layer.crs_wkt.clone());
        PointSet { year, crs, points }.write(ctx, "points")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::raster::crs_to_wkt;
    use crate::vector::{PointFeature, write_points_geojson, write_points_gpkg};
    use lulc_engine::{ArtifactIn, erase};
    use serde_json::json;
    use tempfile::TempDir;

    fn pf(id: i64, x: f64, y: f64, attrs: Value) -> PointFeature {
        PointFeature {
            id,
            x,
            y,
            attrs: serde_json::from_value(attrs).unwrap(),
        }
    }

    fn utm() -> String {
        crs_to_wkt("EPSG:32648").unwrap()
    }

    fn run_with(
        params: Value,
        catalog: Option<ArtifactIn>,
        dir: &Path,
    ) -> Result<(RunCtx, PointSet), NodeError> {
        let node = erase(Points);
        let params = node
            .check_params(&params)
            .map_err(|e| NodeError::new(format!("{}: {}", e[0].path, e[0].message)))?;
        let out = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx = RunCtx::for_test("points", Points::outputs(), &out).with_spec_dir(dir);
        let mut ports = BTreeMap::new();
        if let Some(c) = catalog {
            ports.insert("catalog".to_string(), vec![c]);
        }
        node.run(&mut ctx, &params, &Inputs { ports })?;
        let o = &ctx.outputs()["points"];
        let art = ArtifactIn {
            step_id: "points".into(),
            dims: BTreeMap::new(),
            ty: POINTS.into(),
            digest: String::new(),
            files: o.files.clone(),
            meta: o.meta.clone(),
        };
        let set = PointSet::read(&art).unwrap();
        Ok((ctx, set))
    }

    fn err_of<T>(r: Result<T, NodeError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => format!("{} | help: {}", e.message, e.help.unwrap_or_default()),
        }
    }

    #[test]
    fn metres_in_a_geojson_without_crs_are_refused_naming_the_point() {
        let dir = TempDir::new().unwrap();
        let pf = |id: i64, x: f64, y: f64| PointFeature {
            id,
            x,
            y,
            attrs: BTreeMap::from([("class".to_string(), json!(1))]),
        };
        let pts = vec![pf(1, 105.0, 21.0), pf(2, 580_123.5, 1_234_567.0)];
        write_points_geojson(dir.path().join("utm.geojson"), &pts, "").unwrap();
        let Err(e) = run_with(json!({"path": "utm.geojson"}), None, dir.path()) else {
            panic!("metres read as degrees");
        };
        assert!(
            e.message.contains("point 2 is at (580123.5, 1234567)")
                && e.message.contains("without a `crs` member is WGS 84"),
            "{}",
            e.message
        );
        assert!(e.message.len() < 300, "{}", e.message);
        assert!(e.help.as_deref().unwrap_or("").contains("ogr2ogr -a_srs"));
    }

    #[test]
    fn points_reads_a_geopackage_with_crs_year_and_sorted_ids() {
        let dir = TempDir::new().unwrap();
        let pts = vec![
            pf(3, 600_015.0, 1_199_985.0, json!({"class": 3, "year": 2020})),
            pf(1, 600_005.0, 1_199_995.0, json!({"class": 1, "year": 2020})),
            pf(
                2,
                600_025.5,
                1_199_975.25,
                json!({"class": 14, "year": 2020}),
            ),
        ];
        write_points_gpkg(dir.path().join("ref.gpkg"), &pts, &utm()).unwrap();
        let (ctx, set) = run_with(json!({"path": "ref.gpkg"}), None, dir.path()).unwrap();
        assert!(ctx.warnings().is_empty(), "{:?}", ctx.warnings());
        assert_eq!(set.year, Some(2020));
        assert!(crate::raster::crs_equivalent(
            set.crs.as_deref().unwrap(),
            &utm()
        ));
        let ids: Vec<&str> = set.points.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["1", "2", "3"]);
        assert_eq!(set.points[1].class, 14);
        assert_eq!(
            (set.points[1].x, set.points[1].y),
            (600_025.5, 1_199_975.25)
        );
        let meta = &ctx.outputs()["points"].meta;
        assert_eq!(meta["n"], 3);
        assert_eq!(meta["class_counts"]["3"], 1);
    }

    #[test]
    fn points_bad_classes_and_coordinates_are_dropped_with_counts() {
        let dir = TempDir::new().unwrap();
        let pts = vec![
            pf(1, 1.0, 2.0, json!({"class": 3})),
            pf(2, 1.0, 2.0, json!({"class": "Rice"})),
            pf(3, 1.0, 2.0, json!({"class": null})),
            pf(4, 1.0, 2.0, json!({"class": 0})),
            pf(5, 1.0, 2.0, json!({"class": 300})),
            pf(6, 1.0, 2.0, json!({"class": "Swamp"})),
            pf(7, 1.0, 2.0, json!({"class": 2.5})),
            pf(8, 1.0, 2.0, json!({"class": "5"})),
        ];
        write_points_geojson(dir.path().join("p.geojson"), &pts, "").unwrap();
        // Plus a CSV with an empty coordinate: the reader skips it, the node counts it.
        std::fs::write(
            dir.path().join("p.csv"),
            "id,x,y,class\n1,10,20,4\n2,,20,4\n3,abc,20,4\n4,11,21,7\n",
        )
        .unwrap();
        let (ctx, set) = run_with(json!({"path": "p.geojson"}), None, dir.path()).unwrap();
        let got: Vec<(&str, u8)> = set
            .points
            .iter()
            .map(|p| (p.id.as_str(), p.class))
            .collect();
        assert_eq!(got, [("1", 3), ("2", 3), ("8", 5)]);
        let w = ctx.warnings().join("\n");
        assert!(w.contains("dropped 5 of 8 point(s)"), "{w}");
        assert!(w.contains("2 with a class outside 1..255"), "{w}");
        assert!(w.contains("1 with an unknown class name"), "{w}");
        assert!(w.contains("1 without a class"), "{w}");
        assert!(w.contains("1 with a class that is not an integer"), "{w}");
        // A GeoJSON file without a `crs` member is WGS 84 (RFC 7946).
        assert!(crate::raster::crs_equivalent(
            set.crs.as_deref().unwrap(),
            &crs_to_wkt("EPSG:4326").unwrap()
        ));
        assert_eq!(set.year, None);

        let (ctx, set) = run_with(
            json!({"path": "p.csv", "crs": "EPSG:32648", "year": 2021}),
            None,
            dir.path(),
        )
        .unwrap();
        assert_eq!(set.points.len(), 2);
        assert_eq!(set.year, Some(2021));
        assert!(crate::raster::crs_equivalent(
            set.crs.as_deref().unwrap(),
            &utm()
        ));
        let w = ctx.warnings().join("\n");
        assert!(w.contains("dropped 2 of 4"), "{w}");
        assert!(w.contains("2 without valid coordinates"), "{w}");
    }

    /// The points file's content is in the key only when it is read from the spec's folder.
    #[test]
    fn the_path_is_a_keyed_file_unless_a_catalog_is_connected() {
        let p = PointsParams {
            path: "ref.gpkg".into(),
            ..PointsParams::default()
        };
        assert_eq!(
            Points::files(&p, &[]),
            vec![("path", "ref.gpkg".to_string())]
        );
        assert!(Points::files(&p, &["catalog"]).is_empty());
    }

    #[test]
    fn points_from_a_catalog_and_year_filter() {
        let dir = TempDir::new().unwrap();
        let pts = vec![
            pf(1, 1.0, 2.0, json!({"class": 3, "year": 2019})),
            pf(2, 1.0, 2.0, json!({"class": 4, "year": 2020})),
            pf(3, 1.0, 2.0, json!({"class": 5, "year": 2020})),
        ];
        // In the store a catalog file is a blob without an extension: GDAL must go by content.
        let named = dir.path().join("v.geojson");
        write_points_geojson(&named, &pts, &utm()).unwrap();
        let blob = dir.path().join("0123abcd");
        std::fs::rename(&named, &blob).unwrap();
        let named = blob;
        let catalog = ArtifactIn {
            step_id: "aoi".into(),
            dims: BTreeMap::new(),
            ty: CATALOG.into(),
            digest: "blake3:cat".into(),
            files: BTreeMap::from([("validation/points_2020.geojson".to_string(), named)]),
            meta: Value::Null,
        };
        let (ctx, set) = run_with(
            json!({"path": "validation/points_2020.geojson", "year": 2020}),
            Some(catalog.clone()),
            dir.path(),
        )
        .unwrap();
        assert_eq!(set.points.len(), 2);
        assert_eq!(set.year, Some(2020));
        assert!(ctx.warnings()[0].contains("left out 1 point(s) whose `year` is not 2020"));
        // Without `year`, several years are an error.
        let e = err_of(run_with(
            json!({"path": "validation/points_2020.geojson"}),
            Some(catalog.clone()),
            dir.path(),
        ));
        assert!(
            e.contains("several label years in `year`: 2019 (1), 2020 (2)"),
            "{e}"
        );
        let e = err_of(run_with(
            json!({"path": "validation/points_2021.geojson"}),
            Some(catalog),
            dir.path(),
        ));
        assert!(
            e.contains("`catalog` input (from `aoi`) has no file `validation/points_2021.geojson`"),
            "{e}"
        );
        assert!(e.contains("validation/points_2020.geojson"), "{e}");
    }

    #[test]
    fn points_from_a_geopackage_blob_without_extension() {
        let dir = TempDir::new().unwrap();
        let pts = vec![
            pf(2, 600_005.0, 1_199_995.0, json!({"class": 8, "year": 2020})),
            pf(
                1,
                600_015.0,
                1_199_985.0,
                json!({"class": 12, "year": 2020}),
            ),
        ];
        let gpkg = dir.path().join("r.gpkg");
        write_points_gpkg(&gpkg, &pts, &utm()).unwrap();
        let blob = dir.path().join("9f8e7d");
        std::fs::rename(&gpkg, &blob).unwrap();
        let catalog = ArtifactIn {
            step_id: "aoi".into(),
            dims: BTreeMap::new(),
            ty: CATALOG.into(),
            digest: "blake3:cat".into(),
            files: BTreeMap::from([("reference/points_2020.gpkg".to_string(), blob)]),
            meta: Value::Null,
        };
        let (_, set) = run_with(
            json!({"path": "reference/points_2020.gpkg"}),
            Some(catalog),
            dir.path(),
        )
        .unwrap();
        let got: Vec<(&str, u8)> = set
            .points
            .iter()
            .map(|p| (p.id.as_str(), p.class))
            .collect();
        assert_eq!(got, [("1", 12), ("2", 8)]);
        assert_eq!(set.year, Some(2020));
    }

    #[test]
    fn points_errors_name_the_file() {
        let dir = TempDir::new().unwrap();
        let e = err_of(run_with(json!({"path": "missing.gpkg"}), None, dir.path()));
        assert!(e.contains("points `missing.gpkg`"), "{e}");
        assert!(e.contains("no such file"), "{e}");
        let pts = vec![pf(1, 1.0, 2.0, json!({"class": 0}))];
        write_points_geojson(dir.path().join("zero.geojson"), &pts, "").unwrap();
        let e = err_of(run_with(json!({"path": "zero.geojson"}), None, dir.path()));
        assert!(
            e.contains("no valid point in `zero.geojson` (1 feature(s) read; dropped 1 with a class outside 1..255)"),
            "{e}"
        );
        let pts = vec![pf(1, 1.0, 2.0, json!({"label": 2}))];
        write_points_geojson(dir.path().join("l.geojson"), &pts, "").unwrap();
        let e = err_of(run_with(json!({"path": "l.geojson"}), None, dir.path()));
        assert!(e.contains("have no field `class`"), "{e}");
        assert!(e.contains("the points have: label"), "{e}");
        let (_, set) = run_with(
            json!({"path": "l.geojson", "class_field": "label"}),
            None,
            dir.path(),
        )
        .unwrap();
        assert_eq!(set.points[0].class, 2);
        std::fs::write(dir.path().join("d.csv"), "id,x,y,class\n7,1,2,3\n7,3,4,3\n").unwrap();
        let e = err_of(run_with(json!({"path": "d.csv"}), None, dir.path()));
        assert!(e.contains("1 id(s) occur more than once in `id`: 7"), "{e}");
        let e = err_of(run_with(json!({}), None, dir.path()));
        assert!(e.contains("path: required"), "{e}");
        let e = err_of(run_with(
            json!({"path": "x", "clas_field": "c"}),
            None,
            dir.path(),
        ));
        assert!(e.contains("clas_field"), "{e}");
    }
}
