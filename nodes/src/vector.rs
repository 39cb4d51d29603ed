//! Vector I/O through GDAL/OGR: reference points (GeoJSON, GeoPackage, Shapefile, CSV with x/y
//! columns) and lines (roads), plus deterministic writers. Architecture invariant: together with
//! [`crate::raster`] this is the only module that imports `gdal`; callers see plain Rust values
//! ([`PointFeature`], [`LineFeature`]) with attributes as `serde_json::Value`s in sorted maps.
//!
//! Why it looks the way it does:
//!
//! - **Bad rows are data, not crashes.** Reference data sets of 170,000 hand-labelled points
//!   always contain a few rows with empty or non-numeric coordinates. Readers skip them and
//!   report each one ([`SkippedFeature`]: which feature, why), so a node can warn with a count
//!   instead of failing the run or panicking.
//! - **Deterministic output, for early cutoff.** The engine compares artifacts by content digest,
//!   so writing the same features twice must give the same bytes: fixed layer names (`points`,
//!   `lines`, never the file name), fields in sorted order with types inferred from the values,
//!   features in the given order, and for GeoPackage a fixed `gpkg_contents.last_change`
//!   (GDAL's `OGR_CURRENT_DATE`), which would otherwise be the wall-clock time.
//! - **Errors name the file** (`vector::open`, `vector::layer`, `vector::write`, ...).
//!
//! - **One process, two SQLites.** The workspace links rusqlite's bundled SQLite, which
//!   interposes on the system `libsqlite3` that GDAL uses. That copy enforces foreign keys by
//!   default, which GDAL's GPKG writer does not expect, so writers switch them off (SQLite's usual
//!   default); [`crate::raster::gdal_config_quiet`] keeps SpatiaLite from loading. Linking the
//!   system SQLite in rusqlite (no `bundled` feature) would remove both workarounds' reasons.
//!
//! Feature ids: the `id_field` attribute (default `id`) when the layer has it, else OGR's FID.
//! Multi-part lines are split into one [`LineFeature`] per part (sharing the attributes).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gdal::errors::GdalError;
use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use gdal::vector::sql::Dialect;
use gdal::vector::{
    Feature, FieldValue, Geometry, LayerAccess, LayerOptions, OGRFieldType, OGRwkbGeometryType,
    geometry_type_flatten, geometry_type_to_name,
};
use gdal::{Dataset, DatasetOptions, DriverManager, GdalOpenFlags};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::raster::{crs_to_wkt, gdal_config_quiet, gdal_detail};

/// Name of the layer every writer creates (never derived from the file name).
pub const POINTS_LAYER: &str = "points";
/// Name of the layer [`write_lines_geojson`] creates.
pub const LINES_LAYER: &str = "lines";

/// Column names OGR's CSV driver tries for coordinates (case-insensitive), unless
/// [`ReadOptions::x_field`] / [`ReadOptions::y_field`] say otherwise.
const X_NAMES: &str = "x,lon,long,lng,longitude,easting";
const Y_NAMES: &str = "y,lat,latitude,northing";

/// Timestamp written into GeoPackage `gpkg_contents.last_change` (the spec requires one; any
/// fixed value keeps the file deterministic).
const GPKG_FIXED_DATE: &str = "2000-01-01T00:00:00.000Z";

/// Everything that can go wrong in vector I/O; every variant names the file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum VectorError {
    #[error("cannot open vector file `{}`: {detail}", .path.display())]
    #[diagnostic(code(vector::open))]
    Open { path: PathBuf, detail: String },

    #[error("layer `{layer}` not found in `{}` (available: {available})", .path.display())]
    #[diagnostic(code(vector::layer))]
    LayerNotFound {
        path: PathBuf,
        layer: String,
        available: String,
    },

    #[error("cannot read `{}`: {detail}", .path.display())]
    #[diagnostic(code(vector::read))]
    Read { path: PathBuf, detail: String },

    #[error("cannot write `{}`: {detail}", .path.display())]
    #[diagnostic(code(vector::write))]
    Write { path: PathBuf, detail: String },

    #[error("cannot reproject points from {from} to {to}: {detail}")]
    #[diagnostic(code(vector::reproject))]
    Reproject {
        from: String,
        to: String,
        detail: String,
    },

    /// Coordinates said to be longitude/latitude that cannot be: usually metres in a GeoJSON
    /// file without a `crs` member, which RFC 7946 makes WGS 84.
    #[error(
        "point {id} is at ({x}, {y}), which is no longitude/latitude, yet its crs is {crs}{why}"
    )]
    #[diagnostic(
        code(vector::not_lon_lat),
        help(
            "the coordinates look like metres of a projected crs: give the file its crs \
             (`ogr2ogr -a_srs EPSG:<code> fixed.gpkg FILE`; a GeoPackage keeps it), or write \
             longitudes and latitudes"
        )
    )]
    NotLonLat {
        id: i64,
        x: f64,
        y: f64,
        crs: String,
        why: String,
    },
}

/// `NotLonLat` for the first point outside longitude -180..180 / latitude -90..90 when `crs`
/// is geographic. `why` is added to the message (how the crs was decided).
pub fn check_lon_lat(points: &[PointFeature], crs: &str, why: &str) -> Result<(), VectorError> {
    match SpatialRef::from_definition(crs) {
        Ok(srs) => check_lon_lat_in(points, &srs, crs, why),
        Err(_) => Ok(()),
    }
}

/// [`check_lon_lat`] with `crs` already parsed as `srs`.
fn check_lon_lat_in(
    points: &[PointFeature],
    srs: &SpatialRef,
    crs: &str,
    why: &str,
) -> Result<(), VectorError> {
    if !srs.is_geographic() {
        return Ok(());
    }
    match points
        .iter()
        .find(|p| !(-180.0..=180.0).contains(&p.x) || !(-90.0..=90.0).contains(&p.y))
    {
        Some(p) => Err(VectorError::NotLonLat {
            id: p.id,
            x: p.x,
            y: p.y,
            crs: crate::raster::crs_label(crs),
            why: why.to_string(),
        }),
        None => Ok(()),
    }
}

/// A point with an integer id and its attributes (the id column itself is not repeated there).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointFeature {
    pub id: i64,
    pub x: f64,
    pub y: f64,
    pub attrs: BTreeMap<String, Value>,
}

/// A polyline (one part) and its attributes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineFeature {
    pub coords: Vec<(f64, f64)>,
    pub attrs: BTreeMap<String, Value>,
}

/// A feature the reader left out, and why (no geometry, NaN coordinate, wrong type, bad id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFeature {
    /// OGR's feature id (for CSV the line number), when it has one.
    pub fid: Option<u64>,
    pub reason: String,
}

/// The points of a layer, the features that were skipped, and the layer's CRS (WKT, empty if
/// none).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PointLayer {
    pub features: Vec<PointFeature>,
    pub skipped: Vec<SkippedFeature>,
    pub crs_wkt: String,
}

/// The lines of a layer, the features that were skipped, and the layer's CRS.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LineLayer {
    pub features: Vec<LineFeature>,
    pub skipped: Vec<SkippedFeature>,
    pub crs_wkt: String,
}

/// How to read a vector file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadOptions {
    /// Layer name; default the first layer.
    pub layer: Option<String>,
    /// Attribute holding the integer feature id; when the layer has no such field, OGR's FID.
    pub id_field: String,
    /// CSV only: the x (easting/longitude) column; default one of `x, lon, long, lng,
    /// longitude, easting`.
    pub x_field: Option<String>,
    /// CSV only: the y (northing/latitude) column; default one of `y, lat, latitude, northing`.
    pub y_field: Option<String>,
    /// CRS of the coordinates when the file does not say (CSV), any GDAL definition.
    pub crs: Option<String>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            layer: None,
            id_field: "id".to_string(),
            x_field: None,
            y_field: None,
            crs: None,
        }
    }
}

fn is_csv(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| e == "csv" || e == "tsv")
}

/// An opened vector file: ask it which driver and files GDAL reads for it (to check them
/// before reading a feature), then read its points or lines, all from one open.
pub struct VectorFile {
    path: PathBuf,
    ds: Dataset,
    opts: ReadOptions,
}

/// Opens the vector file at `path` (CSV with the x/y column names of `opts`).
pub fn open(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<VectorFile, VectorError> {
    let path = path.as_ref();
    Ok(VectorFile {
        ds: open_vector(path, opts)?,
        path: path.to_path_buf(),
        opts: opts.clone(),
    })
}

impl VectorFile {
    /// GDAL's short driver name (`GPKG`, `OGR_VRT`, ...).
    pub fn driver(&self) -> String {
        self.ds.driver().short_name()
    }

    /// Every file GDAL reads for this dataset (sidecars, a VRT's sources).
    pub fn file_list(&self) -> Vec<String> {
        crate::raster::file_list(&self.ds)
    }

    /// The points of the layer `opts` names (or the first); see [`read_points`].
    pub fn points(&self) -> Result<PointLayer, VectorError> {
        points_of(&self.path, &self.ds, &self.opts)
    }

    /// The lines of the layer `opts` names (or the first); see [`read_lines_with`].
    pub fn lines(&self) -> Result<LineLayer, VectorError> {
        lines_of_layer(&self.path, &self.ds, &self.opts)
    }
}

fn open_vector(path: &Path, opts: &ReadOptions) -> Result<Dataset, VectorError> {
    gdal_config_quiet();
    let open_err = |detail: String| VectorError::Open {
        path: path.to_path_buf(),
        detail,
    };
    if !path.to_string_lossy().starts_with("/vsi") && !path.exists() {
        return Err(open_err("no such file".to_string()));
    }
    let csv_options: Vec<String> = if is_csv(path) {
        vec![
            format!(
                "X_POSSIBLE_NAMES={}",
                opts.x_field.as_deref().unwrap_or(X_NAMES)
            ),
            format!(
                "Y_POSSIBLE_NAMES={}",
                opts.y_field.as_deref().unwrap_or(Y_NAMES)
            ),
            "KEEP_GEOM_COLUMNS=NO".to_string(),
            "AUTODETECT_TYPE=YES".to_string(),
        ]
    } else {
        Vec::new()
    };
    let csv_refs: Vec<&str> = csv_options.iter().map(String::as_str).collect();
    let options = DatasetOptions {
        open_flags: GdalOpenFlags::GDAL_OF_VECTOR | GdalOpenFlags::GDAL_OF_VERBOSE_ERROR,
        open_options: (!csv_refs.is_empty()).then_some(csv_refs.as_slice()),
        ..Default::default()
    };
    Dataset::open_ex(path, options).map_err(|e| open_err(gdal_detail(e)))
}

/// Run `f` on the requested layer (or the first) of `ds`, with the layer's CRS as WKT.
fn with_layer<T>(
    path: &Path,
    ds: &Dataset,
    opts: &ReadOptions,
    f: impl FnOnce(&mut gdal::vector::Layer<'_>, String) -> Result<T, VectorError>,
) -> Result<T, VectorError> {
    let names: Vec<String> = ds.layers().map(|l| l.name()).collect();
    let mut layer = match &opts.layer {
        Some(name) => ds
            .layer_by_name(name)
            .map_err(|_| VectorError::LayerNotFound {
                path: path.to_path_buf(),
                layer: name.clone(),
                available: names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?,
        None => ds.layer(0).map_err(|e| VectorError::Read {
            path: path.to_path_buf(),
            detail: format!("no layer: {}", gdal_detail(e)),
        })?,
    };
    let mut crs_wkt = layer
        .spatial_ref()
        .and_then(|s| s.to_wkt().ok())
        .unwrap_or_default();
    if crs_wkt.is_empty()
        && let Some(def) = &opts.crs
    {
        crs_wkt = crs_to_wkt(def).map_err(|e| VectorError::Read {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    }
    f(&mut layer, crs_wkt)
}

/// Read the points of a vector file. Features without a usable point (no or empty geometry,
/// non-finite coordinates, a non-point geometry, a missing or non-integer id) are listed in
/// [`PointLayer::skipped`]. A multipoint with exactly one point counts as that point.
pub fn read_points(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<PointLayer, VectorError> {
    open(path, opts)?.points()
}

fn points_of(path: &Path, ds: &Dataset, opts: &ReadOptions) -> Result<PointLayer, VectorError> {
    with_layer(path, ds, opts, |layer, crs_wkt| {
        let id_idx = layer.defn().field_index(&opts.id_field).ok();
        let no_geometry = if is_csv(path) {
            "no point: x or y is empty or not a number"
        } else {
            "no geometry"
        };
        let mut out = PointLayer {
            crs_wkt,
            ..Default::default()
        };
        for feature in layer.features() {
            let fid = feature.fid();
            let skip = |reason: String| SkippedFeature { fid, reason };
            let point = match feature.geometry() {
                Some(g) if !is_null(g) => point_of(g),
                _ => Err(no_geometry.to_string()),
            };
            let (x, y) = match point {
                Ok(p) => p,
                Err(reason) => {
                    out.skipped.push(skip(reason));
                    continue;
                }
            };
            let id = match id_idx {
                Some(i) => match feature.field(i) {
                    Ok(v) => match v.as_ref().and_then(integer_of) {
                        Some(id) => id,
                        None => {
                            out.skipped.push(skip(format!(
                                "`{}` is not an integer id ({})",
                                opts.id_field,
                                v.as_ref().map_or("empty".to_string(), value_in_words)
                            )));
                            continue;
                        }
                    },
                    Err(e) => {
                        out.skipped.push(skip(gdal_detail(e)));
                        continue;
                    }
                },
                None => match fid {
                    Some(fid) => fid as i64,
                    None => {
                        out.skipped
                            .push(skip("no id field and no feature id".to_string()));
                        continue;
                    }
                },
            };
            let mut attrs = attributes(&feature);
            if id_idx.is_some() {
                attrs.remove(&opts.id_field);
            }
            out.features.push(PointFeature { id, x, y, attrs });
        }
        Ok(out)
    })
}

/// Read the lines of a vector file (first layer); see [`read_lines_with`].
pub fn read_lines(path: impl AsRef<Path>) -> Result<LineLayer, VectorError> {
    read_lines_with(path, &ReadOptions::default())
}

/// Read the lines of a vector file: each LineString, and each part of a MultiLineString, is
/// one [`LineFeature`]. Other geometries, empty lines and non-finite coordinates are skipped.
pub fn read_lines_with(
    path: impl AsRef<Path>,
    opts: &ReadOptions,
) -> Result<LineLayer, VectorError> {
    open(path, opts)?.lines()
}

fn lines_of_layer(path: &Path, ds: &Dataset, opts: &ReadOptions) -> Result<LineLayer, VectorError> {
    with_layer(path, ds, opts, |layer, crs_wkt| {
        let mut out = LineLayer {
            crs_wkt,
            ..Default::default()
        };
        for feature in layer.features() {
            let fid = feature.fid();
            let parts = match feature.geometry() {
                None => Err("no geometry".to_string()),
                Some(g) => lines_of(g),
            };
            match parts {
                Ok(parts) => {
                    let attrs = attributes(&feature);
                    for coords in parts {
                        out.features.push(LineFeature {
                            coords,
                            attrs: attrs.clone(),
                        });
                    }
                }
                Err(reason) => out.skipped.push(SkippedFeature { fid, reason }),
            }
        }
        Ok(out)
    })
}

/// A feature without geometry hands out a `Geometry` around a null pointer; GDAL reports its
/// type as `wkbUnknown`, which no real geometry has.
fn is_null(g: &Geometry) -> bool {
    g.geometry_type() == OGRwkbGeometryType::wkbUnknown
}

fn point_of(g: &Geometry) -> Result<(f64, f64), String> {
    if is_null(g) {
        return Err("no geometry".to_string());
    }
    if g.is_empty() {
        return Err("empty geometry".to_string());
    }
    let t = geometry_type_flatten(g.geometry_type());
    let (x, y) = if t == OGRwkbGeometryType::wkbPoint {
        let (x, y, _) = g.get_point(0);
        (x, y)
    } else if t == OGRwkbGeometryType::wkbMultiPoint && g.geometry_count() == 1 {
        let (x, y, _) = g.get_geometry(0).get_point(0);
        (x, y)
    } else {
        return Err(format!(
            "geometry is {}, not a point",
            geometry_type_to_name(t)
        ));
    };
    if !(x.is_finite() && y.is_finite()) {
        return Err(format!("non-finite coordinates ({x}, {y})"));
    }
    Ok((x, y))
}

fn coords_of(g: &Geometry) -> Result<Vec<(f64, f64)>, String> {
    let mut pts = Vec::new();
    g.get_points(&mut pts);
    if pts.len() < 2 {
        return Err(format!("line with {} point(s)", pts.len()));
    }
    if let Some((x, y, _)) = pts
        .iter()
        .find(|(x, y, _)| !(x.is_finite() && y.is_finite()))
    {
        return Err(format!("non-finite coordinates ({x}, {y})"));
    }
    Ok(pts.into_iter().map(|(x, y, _)| (x, y)).collect())
}

fn lines_of(g: &Geometry) -> Result<Vec<Vec<(f64, f64)>>, String> {
    if is_null(g) {
        return Err("no geometry".to_string());
    }
    if g.is_empty() {
        return Err("empty geometry".to_string());
    }
    let t = geometry_type_flatten(g.geometry_type());
    if t == OGRwkbGeometryType::wkbLineString {
        Ok(vec![coords_of(g)?])
    } else if t == OGRwkbGeometryType::wkbMultiLineString {
        (0..g.geometry_count())
            .map(|i| coords_of(&g.get_geometry(i)))
            .collect()
    } else {
        Err(format!(
            "geometry is {}, not a line",
            geometry_type_to_name(t)
        ))
    }
}

/// A field value as a user would write it, for messages (`1e+20`, `"abc"`); with a note
/// where a number is too large to be an exact id.
fn value_in_words(v: &FieldValue) -> String {
    let clamped = |i: i64| {
        format!(
            "{i}: the end of the 64-bit range, to which GDAL clamps every id beyond it; \
             renumber the ids"
        )
    };
    match v {
        FieldValue::Integer64Value(i) if *i == i64::MAX || *i == i64::MIN => clamped(*i),
        FieldValue::RealValue(f) if f.fract() == 0.0 && f.abs() >= MAX_EXACT_ID => format!(
            "{f:e}: beyond the largest id a file's number can hold exactly, {MAX_EXACT_ID:e}"
        ),
        FieldValue::StringValue(s) => match s.trim().parse::<i64>() {
            Ok(i @ (i64::MAX | i64::MIN)) => clamped(i),
            _ => {
                let cut: String = s.chars().take(40).collect();
                let more = if cut.len() < s.len() { "..." } else { "" };
                format!("text \"{cut}{more}\"")
            }
        },
        other => match json_of(other.clone()) {
            Value::Null => "not a number".to_string(),
            j => j.to_string(),
        },
    }
}

/// Ids stored as floating-point numbers (GDAL makes a column real when one value does not fit
/// 64 bits) are exact up to here; beyond, distinct ids may read as equal.
const MAX_EXACT_ID: f64 = 9.0e15;

/// The integer id in `v`. The two ends of the 64-bit range are no ids: GDAL clamps every
/// larger (smaller) number to them, so distinct ids in the file would read as one.
fn integer_of(v: &FieldValue) -> Option<i64> {
    let id = match v {
        FieldValue::IntegerValue(i) => Some(i64::from(*i)),
        FieldValue::Integer64Value(i) => Some(*i),
        FieldValue::RealValue(f) if f.fract() == 0.0 && f.abs() < MAX_EXACT_ID => Some(*f as i64),
        FieldValue::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    };
    id.filter(|i| *i != i64::MAX && *i != i64::MIN)
}

fn json_of(v: FieldValue) -> Value {
    let num = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
    match v {
        FieldValue::IntegerValue(i) => Value::from(i),
        FieldValue::Integer64Value(i) => Value::from(i),
        FieldValue::RealValue(f) => num(f),
        FieldValue::StringValue(s) => Value::String(s),
        FieldValue::IntegerListValue(l) => Value::from(l),
        FieldValue::Integer64ListValue(l) => Value::from(l),
        FieldValue::RealListValue(l) => Value::Array(l.into_iter().map(num).collect()),
        FieldValue::StringListValue(l) => Value::from(l),
        // chrono's Debug output is ISO 8601 (`2020-01-09`, `2020-01-09T10:30:00+07:00`).
        FieldValue::DateValue(d) => Value::String(format!("{d:?}")),
        FieldValue::DateTimeValue(d) => Value::String(format!("{d:?}")),
    }
}

/// All fields of a feature; null/unset fields become `Value::Null` (every feature of a layer
/// has the same keys).
fn attributes(feature: &Feature<'_>) -> BTreeMap<String, Value> {
    feature
        .fields()
        .map(|(name, v)| (name, v.map_or(Value::Null, json_of)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------------------------

/// The OGR type of an attribute column: integers (and booleans, as 0/1) -> Integer64, other
/// numbers -> Real, strings -> String; anything else (mixed, arrays, objects) -> String holding
/// JSON.
fn column_type<'a>(values: impl Iterator<Item = &'a Value>) -> OGRFieldType::Type {
    let (mut ints, mut reals, mut strings, mut other) = (0, 0, 0, 0);
    for v in values {
        match v {
            Value::Null => {}
            Value::Bool(_) => ints += 1,
            Value::Number(n) if n.is_i64() => ints += 1,
            Value::Number(_) => reals += 1,
            Value::String(_) => strings += 1,
            _ => other += 1,
        }
    }
    if other > 0 || strings > 0 {
        OGRFieldType::OFTString
    } else if reals > 0 {
        OGRFieldType::OFTReal
    } else if ints > 0 {
        OGRFieldType::OFTInteger64
    } else {
        OGRFieldType::OFTString // only nulls
    }
}

fn set_value(
    f: &mut Feature<'_>,
    idx: usize,
    ty: OGRFieldType::Type,
    v: &Value,
) -> Result<(), GdalError> {
    match (ty, v) {
        (_, Value::Null) => f.set_field_null(idx),
        (OGRFieldType::OFTInteger64, Value::Bool(b)) => f.set_field_integer64(idx, i64::from(*b)),
        (OGRFieldType::OFTInteger64, Value::Number(n)) => {
            f.set_field_integer64(idx, n.as_i64().unwrap_or_default())
        }
        (OGRFieldType::OFTReal, Value::Number(n)) => {
            f.set_field_double(idx, n.as_f64().unwrap_or(f64::NAN))
        }
        (_, Value::String(s)) => f.set_field_string(idx, s),
        (_, other) => f.set_field_string(idx, &other.to_string()),
    }
}

/// Columns of a set of attribute maps: sorted names with their OGR types.
fn schema<'a>(
    attrs: impl Iterator<Item = &'a BTreeMap<String, Value>> + Clone,
) -> Vec<(String, OGRFieldType::Type)> {
    let names: BTreeSet<&String> = attrs.clone().flat_map(|a| a.keys()).collect();
    names
        .into_iter()
        .map(|name| {
            let ty = column_type(attrs.clone().filter_map(|a| a.get(name)));
            (name.clone(), ty)
        })
        .collect()
}

struct Out<'a> {
    path: &'a Path,
    driver: &'static str,
    layer: &'static str,
    geom: OGRwkbGeometryType::Type,
    crs_wkt: &'a str,
    layer_options: &'static [&'static str],
}

/// Create `out.path` with one layer, an optional leading Integer64 `id` column, the attribute
/// columns of `schema`, and the features `fill` adds.
fn write_layer(
    out: &Out<'_>,
    id_column: bool,
    schema: &[(String, OGRFieldType::Type)],
    fill: impl FnOnce(&gdal::vector::Layer<'_>, &[usize]) -> Result<(), GdalError>,
) -> Result<(), VectorError> {
    gdal_config_quiet();
    let path = out.path;
    let err = |detail: String| VectorError::Write {
        path: path.to_path_buf(),
        detail,
    };
    if id_column && schema.iter().any(|(n, _)| n == "id") {
        return Err(err(
            "attribute `id` clashes with the feature id column".to_string()
        ));
    }
    if path.exists() {
        std::fs::remove_file(path).map_err(|e| err(e.to_string()))?;
    }
    let srs = if out.crs_wkt.trim().is_empty() {
        None
    } else {
        let mut srs = SpatialRef::from_definition(out.crs_wkt).map_err(|e| err(gdal_detail(e)))?;
        srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        Some(srs)
    };
    let driver = DriverManager::get_driver_by_name(out.driver).map_err(|e| err(gdal_detail(e)))?;
    let mut ds = driver
        .create_vector_only(path)
        .map_err(|e| err(gdal_detail(e)))?;
    let build = |ds: &mut Dataset| -> Result<(), GdalError> {
        let layer = ds.create_layer(LayerOptions {
            name: out.layer,
            srs: srs.as_ref(),
            ty: out.geom,
            options: Some(out.layer_options),
        })?;
        let mut fields: Vec<(&str, OGRFieldType::Type)> = Vec::new();
        if id_column {
            fields.push(("id", OGRFieldType::OFTInteger64));
        }
        fields.extend(schema.iter().map(|(n, t)| (n.as_str(), *t)));
        layer.create_defn_fields(&fields)?;
        let indices = fields
            .iter()
            .map(|(n, _)| layer.defn().field_index(n))
            .collect::<Result<Vec<_>, _>>()?;
        fill(&layer, &indices)
    };
    let result = if out.driver == "GPKG" {
        // One transaction instead of one per feature; a fixed last_change date.
        gdal::config::set_thread_local_config_option("OGR_CURRENT_DATE", GPKG_FIXED_DATE)
            .map_err(|e| err(gdal_detail(e)))?;
        let r = (|| {
            // SQLite's default, stated explicitly: a SQLite built with foreign keys on by
            // default (rusqlite's `bundled` build, which shares the process with GDAL) makes
            // GDAL's GPKG writer fail on its own insert order.
            ds.execute_sql("PRAGMA foreign_keys = OFF", None, Dialect::DEFAULT)?;
            let mut txn = ds.start_transaction()?;
            build(&mut txn)?;
            txn.commit()
        })();
        let r = r.and_then(|()| ds.close());
        let _ = gdal::config::clear_thread_local_config_option("OGR_CURRENT_DATE");
        r
    } else {
        build(&mut ds).and_then(|()| ds.close())
    };
    result.map_err(|e| {
        let _ = std::fs::remove_file(path);
        err(gdal_detail(e))
    })
}

fn point_geometry(x: f64, y: f64) -> Result<Geometry, GdalError> {
    let mut g = Geometry::empty(OGRwkbGeometryType::wkbPoint)?;
    g.add_point_2d((x, y));
    Ok(g)
}

fn write_points(
    path: &Path,
    driver: &'static str,
    layer_options: &'static [&'static str],
    points: &[PointFeature],
    crs_wkt: &str,
) -> Result<(), VectorError> {
    if let Some(p) = points
        .iter()
        .find(|p| !(p.x.is_finite() && p.y.is_finite()))
    {
        return Err(VectorError::Write {
            path: path.to_path_buf(),
            detail: format!(
                "point {} has non-finite coordinates ({}, {})",
                p.id, p.x, p.y
            ),
        });
    }
    let schema = schema(points.iter().map(|p| &p.attrs));
    let out = Out {
        path,
        driver,
        layer: POINTS_LAYER,
        geom: OGRwkbGeometryType::wkbPoint,
        crs_wkt,
        layer_options,
    };
    write_layer(&out, true, &schema, |layer, idx| {
        for p in points {
            let mut f = Feature::new(layer.defn())?;
            f.set_field_integer64(idx[0], p.id)?;
            for ((name, ty), &i) in schema.iter().zip(&idx[1..]) {
                set_value(&mut f, i, *ty, p.attrs.get(name).unwrap_or(&Value::Null))?;
            }
            f.set_geometry(point_geometry(p.x, p.y)?)?;
            f.create(layer)?;
        }
        Ok(())
    })
}

/// GeoJSON layer options: full double precision, so coordinates round-trip exactly.
const GEOJSON_OPTIONS: &[&str] = &["SIGNIFICANT_FIGURES=17", "RFC7946=NO"];

/// Write points as GeoJSON (layer `points`; properties `id` then the attributes, sorted).
/// `crs_wkt` may be empty (no CRS); a non-WGS 84 CRS is recorded in the legacy `crs` member.
pub fn write_points_geojson(
    path: impl AsRef<Path>,
    points: &[PointFeature],
    crs_wkt: &str,
) -> Result<(), VectorError> {
    write_points(path.as_ref(), "GeoJSON", GEOJSON_OPTIONS, points, crs_wkt)
}

/// Write points as a GeoPackage (table `points`; columns `id` then the attributes, sorted).
pub fn write_points_gpkg(
    path: impl AsRef<Path>,
    points: &[PointFeature],
    crs_wkt: &str,
) -> Result<(), VectorError> {
    write_points(path.as_ref(), "GPKG", &[], points, crs_wkt)
}

/// Write lines as GeoJSON (layer `lines`; properties are the attributes, sorted).
pub fn write_lines_geojson(
    path: impl AsRef<Path>,
    lines: &[LineFeature],
    crs_wkt: &str,
) -> Result<(), VectorError> {
    let path = path.as_ref();
    if let Some((i, _)) = lines.iter().enumerate().find(|(_, l)| {
        l.coords.len() < 2
            || l.coords
                .iter()
                .any(|(x, y)| !(x.is_finite() && y.is_finite()))
    }) {
        return Err(VectorError::Write {
            path: path.to_path_buf(),
            detail: format!("line {i} has fewer than 2 points or non-finite coordinates"),
        });
    }
    let schema = schema(lines.iter().map(|l| &l.attrs));
    let out = Out {
        path,
        driver: "GeoJSON",
        layer: LINES_LAYER,
        geom: OGRwkbGeometryType::wkbLineString,
        crs_wkt,
        layer_options: GEOJSON_OPTIONS,
    };
    write_layer(&out, false, &schema, |layer, idx| {
        for l in lines {
            let mut f = Feature::new(layer.defn())?;
            for ((name, ty), &i) in schema.iter().zip(idx) {
                set_value(&mut f, i, *ty, l.attrs.get(name).unwrap_or(&Value::Null))?;
            }
            let mut g = Geometry::empty(OGRwkbGeometryType::wkbLineString)?;
            for &(x, y) in &l.coords {
                g.add_point_2d((x, y));
            }
            f.set_geometry(g)?;
            f.create(layer)?;
        }
        Ok(())
    })
}

/// Transform points in place from one CRS to another (any GDAL definitions; x is easting or
/// longitude, y northing or latitude, whatever the CRS's official axis order).
pub fn reproject_points(
    points: &mut [PointFeature],
    from: &str,
    to: &str,
) -> Result<(), VectorError> {
    gdal_config_quiet();
    let err = |detail: String| VectorError::Reproject {
        from: crate::raster::crs_label(from),
        to: crate::raster::crs_label(to),
        detail,
    };
    if points.is_empty() || crate::raster::crs_equivalent(from, to) {
        return Ok(());
    }

    let srs = |def: &str| {
        SpatialRef::from_definition(def).map(|mut s| {
            s.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
            s
        })
    };
    let (a, b) = (
        srs(from).map_err(|e| err(gdal_detail(e)))?,
        srs(to).map_err(|e| err(gdal_detail(e)))?,
    );
    check_lon_lat_in(points, &a, from, "")?;
    let t = CoordTransform::new(&a, &b).map_err(|e| err(gdal_detail(e)))?;
    let mut xs: Vec<f64> = points.iter().map(|p| p.x).collect();
    let mut ys: Vec<f64> = points.iter().map(|p| p.y).collect();
    t.transform_coords(&mut xs, &mut ys, &mut [])
        .map_err(|e| err(gdal_detail(e)))?;
    for (p, (x, y)) in points.iter_mut().zip(xs.into_iter().zip(ys)) {
        p.x = x;
        p.y = y;
    }
    Ok(())
}

/// The extent of `grid` in the CRS `to`: the bounding box of its edges, each sampled at
/// `1 + steps` points and reprojected (a UTM square is no square in another zone or in degrees).
pub fn grid_footprint(
    grid: &crate::raster::Grid,
    to: &str,
    steps: usize,
) -> Result<crate::raster::BBox, VectorError> {
    let (w, h) = (grid.width as f64, grid.height as f64);
    let steps = steps.max(1);
    let mut pts = Vec::with_capacity(4 * (steps + 1));
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        for (c, r) in [(t * w, 0.0), (t * w, h), (0.0, t * h), (w, t * h)] {
            let (x, y) = grid.pixel_to_geo(c, r);
            pts.push(PointFeature {
                id: pts.len() as i64,
                x,
                y,
                attrs: BTreeMap::new(),
            });
        }
    }
    reproject_points(&mut pts, &grid.crs_wkt, to)?;
    let mut b = crate::raster::BBox {
        min_x: f64::INFINITY,
        min_y: f64::INFINITY,
        max_x: f64::NEG_INFINITY,
        max_y: f64::NEG_INFINITY,
    };
    for p in &pts {
        b.min_x = b.min_x.min(p.x);
        b.min_y = b.min_y.min(p.y);
        b.max_x = b.max_x.max(p.x);
        b.max_y = b.max_y.max(p.y);
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tempfile::TempDir;

    fn sample_points() -> Vec<PointFeature> {
        let mk = |id: i64, x: f64, y: f64, class: i64, name: &str, conf: Value| PointFeature {
            id,
            x,
            y,
            attrs: BTreeMap::from([
                ("class".to_string(), json!(class)),
                ("name".to_string(), json!(name)),
                ("confidence".to_string(), conf),
                ("year".to_string(), json!(2020)),
            ]),
        };
        vec![
            mk(
                7,
                580_123.456_789_012_3,
                1_234_567.891_234_5,
                3,
                "rice",
                json!(0.9),
            ),
            mk(8, 580_200.0, 1_234_600.25, 1, "water, deep", json!(0.75)),
            mk(
                12,
                581_000.125,
                1_235_000.0,
                14,
                "solar \"farm\"",
                Value::Null,
            ),
        ]
    }

    fn utm48() -> String {
        crs_to_wkt("EPSG:32648").unwrap()
    }

    #[test]
    fn ids_too_large_for_a_file_are_skipped_not_merged_into_one() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("ids.geojson");
        let feature = |id: &str, x: f64| {
            format!(
                "{{\"type\":\"Feature\",\"properties\":{{\"id\":{id},\"class\":1}},                 \"geometry\":{{\"type\":\"Point\",\"coordinates\":[{x},21.0]}}}}"
            )
        };
        let features = [
            feature("1", 105.0),
            feature("9223372036854775807", 105.1),
            feature("18446744073709551615", 105.2),
            feature("1e20", 105.3),
            feature("\"abc\"", 105.4),
        ];
        std::fs::write(
            &path,
            format!(
                "{{\"type\":\"FeatureCollection\",\"features\":[{}]}}",
                features.join(",")
            ),
        )
        .unwrap();
        let layer = read_points(&path, &ReadOptions::default()).unwrap();
        let ids: Vec<i64> = layer.features.iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![1], "{:?}", layer.skipped);
        assert_eq!(layer.skipped.len(), 4);
        // Without the text id GDAL reads the column as real numbers.
        std::fs::write(
            &path,
            format!(
                "{{\"type\":\"FeatureCollection\",\"features\":[{}]}}",
                features[..4].join(",")
            ),
        )
        .unwrap();
        let real = read_points(&path, &ReadOptions::default()).unwrap();
        assert_eq!(real.features.len(), 1, "{:?}", real.skipped);
        assert!(
            real.skipped[2]
                .reason
                .contains("1e20: beyond the largest id"),
            "{:?}",
            real.skipped
        );
        let reasons: Vec<&str> = layer.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert!(
            reasons[0].contains("the end of the 64-bit range"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("the end of the 64-bit range"),
            "{reasons:?}"
        );
        for r in &reasons {
            assert!(!r.contains("Value("), "a type name in {r}");
        }
    }

    #[test]
    fn points_round_trip_geojson() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("ref.geojson");
        let pts = sample_points();
        write_points_geojson(&path, &pts, &utm48()).unwrap();
        let back = read_points(&path, &ReadOptions::default()).unwrap();
        assert_eq!(back.features, pts);
        assert!(back.skipped.is_empty());
        assert!(crate::raster::crs_equivalent(&back.crs_wkt, "EPSG:32648"));
        // Determinism: the same points give the same bytes, whatever the file is called.
        let other = dir.path().join("other.geojson");
        write_points_geojson(&other, &pts, &utm48()).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(&other).unwrap()
        );
        // Writing again over an existing file works.
        write_points_geojson(&path, &pts[..1], &utm48()).unwrap();
        assert_eq!(
            read_points(&path, &ReadOptions::default())
                .unwrap()
                .features
                .len(),
            1
        );
    }

    #[test]
    fn points_round_trip_gpkg_deterministically() {
        let dir = TempDir::new().unwrap();
        let a = dir.path().join("a.gpkg");
        let b = dir.path().join("b.gpkg");
        let pts = sample_points();
        write_points_gpkg(&a, &pts, &utm48()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        write_points_gpkg(&b, &pts, &utm48()).unwrap();
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "two writes of the same points differ"
        );
        let back = read_points(&a, &ReadOptions::default()).unwrap();
        assert_eq!(back.features, pts);
        assert!(crate::raster::crs_equivalent(&back.crs_wkt, "EPSG:32648"));
        let opts = ReadOptions {
            layer: Some("nope".to_string()),
            ..Default::default()
        };
        let e = read_points(&a, &opts).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("a.gpkg") && msg.contains("`nope`") && msg.contains("`points`"),
            "{msg}"
        );
    }

    #[test]
    fn points_from_csv_with_bad_rows_are_skipped_not_fatal() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("ref.csv");
        std::fs::write(
            &path,
            "id,lon,lat,class,note\n\
             1,105.85,21.03,2,hanoi\n\
             2,,21.10,3,missing lon\n\
             3,106.70,10.78,2,saigon\n\
             4,nan,10.0,1,nan lon\n\
             5,abc,10.0,1,text lon\n",
        )
        .unwrap();
        let opts = ReadOptions {
            crs: Some("EPSG:4326".to_string()),
            ..Default::default()
        };
        let layer = read_points(&path, &opts).unwrap();
        let ids: Vec<i64> = layer.features.iter().map(|p| p.id).collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!((layer.features[0].x, layer.features[0].y), (105.85, 21.03));
        assert_eq!(layer.features[0].attrs["class"], json!(2));
        assert_eq!(layer.features[1].attrs["note"], json!("saigon"));
        // x/y columns are coordinates, not attributes.
        assert!(!layer.features[0].attrs.contains_key("lon"));
        assert_eq!(
            layer.skipped.iter().map(|s| s.fid).collect::<Vec<_>>(),
            [Some(2), Some(4), Some(5)]
        );
        assert!(
            layer.skipped[0].reason.contains("not a number"),
            "{:?}",
            layer.skipped
        );
        assert!(crate::raster::crs_equivalent(&layer.crs_wkt, "EPSG:4326"));

        // Custom column names.
        let path2 = dir.path().join("utm.csv");
        std::fs::write(&path2, "pid,E,N\n10,500000.5,1200000.25\n").unwrap();
        let opts = ReadOptions {
            id_field: "pid".to_string(),
            x_field: Some("E".to_string()),
            y_field: Some("N".to_string()),
            ..Default::default()
        };
        let layer = read_points(&path2, &opts).unwrap();
        assert_eq!(layer.features.len(), 1);
        assert_eq!(
            (
                layer.features[0].id,
                layer.features[0].x,
                layer.features[0].y
            ),
            (10, 500_000.5, 1_200_000.25)
        );
        assert!(layer.crs_wkt.is_empty());
    }

    #[test]
    fn points_from_shapefile_and_fid_fallback() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("ref.shp");
        let pts: Vec<PointFeature> = sample_points()
            .into_iter()
            .map(|mut p| {
                p.attrs.remove("confidence");
                p
            })
            .collect();
        write_points(&path, "ESRI Shapefile", &[], &pts, &utm48()).unwrap();
        let back = read_points(&path, &ReadOptions::default()).unwrap();
        assert_eq!(back.features.len(), 3);
        assert_eq!(back.features[2].id, 12);
        assert_eq!(back.features[2].attrs["name"], json!("solar \"farm\""));
        assert_eq!(back.features[0].x, pts[0].x);
        // Without an id column, OGR's FID is the id.
        let opts = ReadOptions {
            id_field: "no_such_field".to_string(),
            ..Default::default()
        };
        let back = read_points(&path, &opts).unwrap();
        assert_eq!(
            back.features.iter().map(|p| p.id).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(back.features[0].attrs["id"], json!(7));
    }

    #[test]
    fn non_point_and_empty_geometries_are_reported() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("mixed.geojson");
        std::fs::write(
            &path,
            r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"id":1},"geometry":{"type":"Point","coordinates":[1.5,2.5]}},
            {"type":"Feature","properties":{"id":2},"geometry":null},
            {"type":"Feature","properties":{"id":3},"geometry":{"type":"LineString","coordinates":[[0,0],[1,1]]}},
            {"type":"Feature","properties":{"id":"x"},"geometry":{"type":"Point","coordinates":[3,4]}},
            {"type":"Feature","properties":{"id":5},"geometry":{"type":"MultiPoint","coordinates":[[5,6]]}}
            ]}"#,
        )
        .unwrap();
        let layer = read_points(&path, &ReadOptions::default()).unwrap();
        assert_eq!(
            layer
                .features
                .iter()
                .map(|p| (p.id, p.x, p.y))
                .collect::<Vec<_>>(),
            [(1, 1.5, 2.5), (5, 5.0, 6.0)]
        );
        let reasons: Vec<&str> = layer.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].contains("no geometry"));
        assert!(reasons[1].contains("not a point"));
        assert!(reasons[2].contains("not an integer id"));
    }

    #[test]
    fn lines_round_trip_geojson_and_multilines_split() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("roads.geojson");
        let lines = vec![
            LineFeature {
                coords: vec![
                    (500_000.0, 1_000_000.0),
                    (500_010.5, 1_000_020.25),
                    (500_030.0, 1_000_021.0),
                ],
                attrs: BTreeMap::from([
                    ("highway".to_string(), json!("primary")),
                    ("lanes".to_string(), json!(2)),
                ]),
            },
            LineFeature {
                coords: vec![(1.0, 2.0), (3.0, 4.0)],
                attrs: BTreeMap::from([
                    ("highway".to_string(), json!("track")),
                    ("lanes".to_string(), Value::Null),
                ]),
            },
        ];
        write_lines_geojson(&path, &lines, &utm48()).unwrap();
        let back = read_lines(&path).unwrap();
        assert_eq!(back.features, lines);
        let again = dir.path().join("again.geojson");
        write_lines_geojson(&again, &lines, &utm48()).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(&again).unwrap()
        );

        let multi = dir.path().join("multi.geojson");
        std::fs::write(
            &multi,
            r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"name":"a"},"geometry":{"type":"MultiLineString","coordinates":[[[0,0],[1,0]],[[2,2],[3,3],[4,4]]]}},
            {"type":"Feature","properties":{"name":"b"},"geometry":{"type":"Point","coordinates":[0,0]}}
            ]}"#,
        )
        .unwrap();
        let back = read_lines(&multi).unwrap();
        assert_eq!(back.features.len(), 2);
        assert_eq!(
            back.features[1].coords,
            [(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]
        );
        assert_eq!(back.features[1].attrs["name"], json!("a"));
        assert_eq!(back.skipped.len(), 1);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("missing.gpkg");
        let e = read_points(&missing, &ReadOptions::default()).unwrap_err();
        assert!(e.to_string().contains("missing.gpkg"), "{e}");
        assert_eq!(
            miette::Diagnostic::code(&e).unwrap().to_string(),
            "vector::open"
        );
        let garbage = dir.path().join("garbage.geojson");
        std::fs::write(&garbage, "{ not json").unwrap();
        let e = read_points(&garbage, &ReadOptions::default()).unwrap_err();
        assert!(e.to_string().contains("garbage.geojson"), "{e}");
        // Writers refuse NaN coordinates and an attribute that clashes with the id column.
        let mut pts = sample_points();
        pts[1].x = f64::NAN;
        let out = dir.path().join("out.geojson");
        let e = write_points_geojson(&out, &pts, "").unwrap_err();
        assert!(e.to_string().contains("out.geojson") && e.to_string().contains("point 8"));
        let mut pts = sample_points();
        pts[0].attrs.insert("id".to_string(), json!(1));
        assert!(write_points_gpkg(dir.path().join("x.gpkg"), &pts, "").is_err());
    }

    #[test]
    fn reproject_points_between_wgs84_and_utm() {
        let mut pts = vec![PointFeature {
            id: 1,
            x: 105.0, // the central meridian of UTM zone 48
            y: 0.0,
            attrs: BTreeMap::new(),
        }];
        reproject_points(&mut pts, "EPSG:4326", "EPSG:32648").unwrap();
        assert!((pts[0].x - 500_000.0).abs() < 1e-6, "{}", pts[0].x);
        assert!(pts[0].y.abs() < 1e-6, "{}", pts[0].y);
        reproject_points(&mut pts, "EPSG:32648", "EPSG:4326").unwrap();
        assert!((pts[0].x - 105.0).abs() < 1e-9 && pts[0].y.abs() < 1e-9);
    }
}
