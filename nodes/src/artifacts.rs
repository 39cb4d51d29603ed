//! Artifact types that flow between the domain nodes, and the layout of their files.
//!
//! An artifact is a set of files plus JSON metadata (the engine stores both; the metadata's
//! serialisation is part of the artifact's digest, so it must be deterministic: no clock, no
//! absolute paths, sorted maps). Port types are compared by name only: keep the names here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::classes::Legend;
use crate::raster::Grid;

/// Dated rasters of one sensor on one grid (one partition: a year, a tile).
pub const SCENES: &str = "Scenes";
/// Season x band stack.
pub const COMPOSITE: &str = "Composite";
/// Season x feature stack with named features.
pub const FEATURES: &str = "Features";
/// Reference points: id, x, y, class, year.
pub const POINTS: &str = "Points";
/// Per point a T x F matrix + label.
pub const SAMPLES: &str = "Samples";
/// CNN weights + config + normalisation + class legend.
pub const MODEL: &str = "Model";
/// UInt8 class map with colour table.
pub const MAP: &str = "Map";
/// Confusion matrix, OA/UA/PA, area estimates.
pub const ASSESSMENT: &str = "Assessment";
/// A table (CSV + JSON).
pub const TABLE: &str = "Table";
/// Vector lines (roads).
pub const LINES: &str = "Lines";
/// A folder of files (a STAC catalog with its assets and vectors), keyed by relative path;
/// written by `simulate`, read by `acquire` and `index`.
pub const CATALOG: &str = "Catalog";

/// Metadata of a `Scenes` artifact.
///
/// Each scene is one multi-band GeoTIFF file of the artifact (named by `SceneMeta::file`), on
/// `grid`, with the bands listed in `SceneMeta::bands` in band order. Values are *physical*:
/// - Sentinel-2 L2A: surface reflectance x 10000 as UInt16, with `BOA_ADD_OFFSET` already
///   applied (so `value / 10000` is reflectance 0..1 for every processing baseline); nodata 0.
///   The SCL band, when present, is the last band (same UInt16 type, nearest-resampled).
/// - Sentinel-1 GRD: sigma0 in dB x 100 as Int16 (VV, VH); nodata -32768.
/// - PALSAR-2 ScanSAR: gamma0 in dB x 100 as Int16 (HH, HV); nodata -32768.
/// - DSM: metres as Float32; nodata NaN.
///
/// `scale` and `offset` turn stored values into physical ones: `physical = stored * scale + offset`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenesMeta {
    /// `sentinel-2-l2a`, `sentinel-1-grd`, `sentinel-1-rtc`, `alos-palsar2-scansar`, `dsm`.
    pub sensor: String,
    pub grid: Grid,
    /// Sorted by date, then id.
    pub scenes: Vec<SceneMeta>,
    /// What the stored values are and how they were derived from the source's (e.g.
    /// `sentinel-1-rtc`: dB from linear gamma0), as `acquire` writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneMeta {
    pub id: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// File name inside the artifact.
    pub file: String,
    pub bands: Vec<String>,
    /// Name of the quality band (e.g. `SCL`), if any.
    pub qa_band: Option<String>,
    pub scale: f64,
    pub offset: f64,
    /// NaN (float rasters) is written as JSON `null` and read back as NaN.
    #[serde(with = "nan_as_null")]
    pub nodata: f64,
    /// Share of pixels with data (0..1), for "clearest scene" selection.
    pub valid_fraction: f64,
    /// Cloud cover from the catalog (percent), when known.
    pub cloud_cover: Option<f64>,
}

/// Metadata of a `Composite` artifact: one partition (a year, optionally a tile) of one sensor,
/// six bi-monthly seasons.
///
/// Files: one GeoTIFF per season named `<season>.tif` (`S1.tif` .. `S6.tif`), Float32, on `grid`,
/// bands = `bands` in order (physical units: reflectance 0..1 for Sentinel-2, dB for SAR, metres
/// for a DSM) followed by one last band `valid_count` (number of valid observations used);
/// nodata NaN (a pixel with no valid observation in the season is NaN in every band and 0 in
/// `valid_count`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositeMeta {
    pub sensor: String,
    pub grid: Grid,
    pub year: i64,
    pub bands: Vec<String>,
    pub seasons: Vec<SeasonMeta>,
    /// `own` or `gap_fill` (or a custom policy name) and the statistic (`median`, ...).
    pub window: String,
    pub statistic: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeasonMeta {
    /// `S1` .. `S6`.
    pub name: String,
    /// File name inside the artifact.
    pub file: String,
    /// Ids of the scenes that entered this season's composite, with their window weight.
    pub scenes: Vec<(String, f64)>,
    /// Share of pixels with no valid observation (0..1).
    pub nodata_share: f64,
}

/// Metadata of a `Features` artifact: season x feature stack with named features.
///
/// Files: one GeoTIFF per season named `<season>.tif`, Float32, on `grid`, one band per feature
/// in `features` order (static features such as DSM, slope or road distance repeated in every
/// season); nodata NaN, never Inf.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesMeta {
    pub grid: Grid,
    pub year: i64,
    /// Season names in order (`S1` .. `S6`).
    pub seasons: Vec<String>,
    /// Feature names in band order (`B02`, ..., `NDVI`, `VV_savg`, `DSM`, `road_dist`).
    pub features: Vec<String>,
    /// Season name -> file name inside the artifact.
    pub files: Vec<(String, String)>,
}

/// Metadata of a `Map` artifact (written by `infer`).
///
/// Files: `map.tif` (UInt8, one band `class`, codes of `legend`, 0 = nodata, colour table and
/// category names embedded), `map.qml` (QGIS paletted style beside it) and, when confidence is
/// on, `confidence.tif` (Float32, max softmax probability 0..1, NaN where the map is nodata).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapMeta {
    pub grid: Grid,
    pub year: Option<i64>,
    pub legend: Legend,
    /// Pixels per class code (mapped areas; the strata weights of `assess`).
    pub class_pixels: BTreeMap<u8, u64>,
    pub nodata_pixels: u64,
    /// Whether `confidence.tif` is present.
    pub confidence: bool,
    /// Area per class code in km2 when it is not `class_pixels` times the grid's pixel area:
    /// a `mosaic` measures each pixel in the CRS of the tile it comes from (see
    /// [`crate::kinds::mosaic`]). Absent from `infer`'s maps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_km2: Option<BTreeMap<u8, f64>>,
}

impl MapMeta {
    /// Mapped area per class code in km2 (`class_km2`, else `class_pixels` times the grid's
    /// pixel area); `None` when the grid's CRS is not projected.
    pub fn class_areas_km2(&self) -> Option<BTreeMap<u8, f64>> {
        if let Some(a) = &self.class_km2 {
            return Some(a.clone());
        }
        let k = self.grid.pixel_km2()?;
        Some(
            self.class_pixels
                .iter()
                .map(|(c, n)| (*c, *n as f64 * k))
                .collect(),
        )
    }
}

/// A confusion matrix of one train/validation split, as `train` records it in its `Model`
/// metadata (`holdout`): `matrix[i][j]` = samples predicted as legend class `i` (map) whose
/// reference is legend class `j`; indices follow the model's legend order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holdout {
    pub repeat: usize,
    pub seed: u64,
    pub matrix: Vec<Vec<u64>>,
}

/// JSON has no NaN: store it as `null`.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() {
            s.serialize_none()
        } else {
            s.serialize_f64(*v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_nodata_round_trips_through_json() {
        let scene = SceneMeta {
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
        };
        let json = serde_json::to_string(&scene).unwrap();
        assert!(json.contains("\"nodata\":null"), "{json}");
        let back: SceneMeta = serde_json::from_str(&json).unwrap();
        assert!(back.nodata.is_nan());
        let mut s2 = scene.clone();
        s2.nodata = 0.0;
        let back: SceneMeta = serde_json::from_str(&serde_json::to_string(&s2).unwrap()).unwrap();
        assert_eq!(back.nodata, 0.0);
    }
}
