//! Scenes as GeoTIFF/COG files on disk, described by a manifest.
//!
//! Why a manifest rather than file-name parsing: archives name files in many ways (SAFE
//! folders, sen2r, Earth Engine exports); a small table saying which file is which band of which
//! scene on which date works for all of them, and it is where per-scene facts that file names do
//! not carry (processing baseline, cloud cover) go.
//!
//! ## Where the manifest is
//! `catalog:` (relative to the spec's folder) is one of
//! - a manifest file, `.json` or `.csv`;
//! - a directory holding `manifest.json` or `manifest.csv`;
//! - a glob over manifest files, e.g. `archive/*/manifest.json` (`*` and `?` within a path
//!   component); every match is read and the scenes are merged.
//!
//! File paths inside a manifest are relative to the manifest's folder (absolute paths and URLs,
//! e.g. `https://...` read through `/vsicurl/`, work too). `acquire` checks each one, like every
//! path a spec leads to, against the spec's folder and `--allow-path` folders.
//!
//! ## JSON manifest
//! ```json
//! { "scenes": [
//!     { "id": "S2A_20200115_48PXS",
//!       "date": "2020-01-15",
//!       "sensor": "sentinel-2-l2a",
//!       "bands": { "B04": "S2A_20200115/B04.tif",
//!                  "B08": { "file": "S2A_20200115/stack.tif", "band": 2 } },
//!       "cloud_cover": 12.5, "processing_baseline": "04.00", "boa_add_offset": -1000,
//!       "platform": "sentinel-2a", "tile": "48PXS", "bbox": [105.0, 10.0, 106.0, 11.0] } ] }
//! ```
//! A bare array of scenes is accepted too. Required: `date` (`YYYY-MM-DD`, `YYYYMMDD` or an
//! RFC 3339 date-time), `sensor` (the collection: `sentinel-2-l2a`, `sentinel-1-grd`,
//! `alos-palsar2-scansar`, `dsm`, or any id the `acquire` step names), `bands` (band name ->
//! file, or `{file, band}` for a band of a multi-band file, 1-based). Optional: `id` (default: the
//! date as `YYYYMMDD`), `cloud_cover` (percent), `processing_baseline`, `boa_add_offset` (DN;
//! Sentinel-2 L2A: when absent it is derived from the baseline, -1000 from `04.00`),
//! `platform`, `tile` (MGRS), `bbox` (lon/lat footprint). Unknown keys are errors.
//!
//! ## CSV manifest
//! One row per band file, a header row naming the columns (any order, case-insensitive):
//! ```text
//! date,sensor,band,file,id,cloud_cover,processing_baseline
//! 2020-01-15,sentinel-2-l2a,B04,S2A_20200115/B04.tif,S2A_20200115,12.5,04.00
//! 2020-01-15,sentinel-2-l2a,SCL,S2A_20200115/SCL.tif,S2A_20200115,12.5,04.00
//! ```
//! Required columns: `date`, `sensor`, `band`, `file`. Optional: `id`, `band_index` (1-based band
//! in the file), `cloud_cover`, `processing_baseline`, `boa_add_offset`, `platform`, `tile`.
//! Rows with the same `sensor` and `id` (default: the date) form one scene; a scene-level value
//! given on several rows must agree. Fields may be double-quoted; empty lines and lines starting
//! with `#` are skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use lulc_engine::datasets::glob;

use super::{
    AssetRef, BoaOffset, Location, SceneItem, SceneProps, SceneQuery, Source, SourceError,
    parse_date, sort_and_dedup,
};

/// Scenes on disk listed by one or more manifests.
#[derive(Clone, Debug)]
pub struct LocalSource {
    /// As the user gave it (resolved against the spec folder), for messages.
    pattern: PathBuf,
    manifests: Vec<PathBuf>,
}

impl LocalSource {
    /// Find the manifest(s) at `path`: a file, a directory with `manifest.json`/`.csv`, or a glob.
    pub fn open(path: &Path) -> Result<LocalSource, SourceError> {
        let text = path.to_string_lossy();
        let manifests = if text.contains(['*', '?']) {
            let found = glob(path);
            if found.is_empty() {
                return Err(SourceError::NotFound {
                    location: text.into_owned(),
                    context: " (no file matches this pattern)".to_string(),
                });
            }
            found
                .into_iter()
                .map(|p| manifest_in(&p))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![manifest_in(path)?]
        };
        Ok(LocalSource {
            pattern: path.to_path_buf(),
            manifests,
        })
    }

    /// The manifest files this source reads.
    pub fn manifests(&self) -> &[PathBuf] {
        &self.manifests
    }
}

/// `path` itself if it is a file, else its `manifest.json` / `manifest.csv`.
fn manifest_in(path: &Path) -> Result<PathBuf, SourceError> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if path.is_dir() {
        for name in ["manifest.json", "manifest.csv"] {
            let m = path.join(name);
            if m.is_file() {
                return Ok(m);
            }
        }
        return Err(SourceError::NotFound {
            location: path.join("manifest.json").display().to_string(),
            context: " (a scene directory needs a `manifest.json` or `manifest.csv`)".to_string(),
        });
    }
    Err(SourceError::NotFound {
        location: path.display().to_string(),
        context: String::new(),
    })
}

impl Source for LocalSource {
    fn describe(&self) -> String {
        format!("local manifest `{}`", self.pattern.display())
    }

    fn list(&self, query: &SceneQuery) -> Result<Vec<SceneItem>, SourceError> {
        let mut items = Vec::new();
        for m in &self.manifests {
            items.extend(read_manifest(m)?.into_iter().filter(|i| query.keep(i)));
        }
        sort_and_dedup(&mut items);
        Ok(items)
    }

    fn resolve(&self, _item: &SceneItem, asset: &AssetRef) -> Result<String, SourceError> {
        match &asset.location {
            Location::Path(p) => {
                let s = p.to_string_lossy();
                if !s.starts_with("/vsi") && !p.is_file() {
                    return Err(SourceError::NotFound {
                        location: s.into_owned(),
                        context: format!(" (listed as `{}`)", asset.href),
                    });
                }
                Ok(s.into_owned())
            }
            Location::Url(_) => Ok(asset.location.gdal_path().expect("urls have a gdal path")),
            Location::Key(k) => Err(SourceError::Unsupported {
                location: k.clone(),
                detail: "a local manifest cannot refer to files of a catalog artifact".into(),
            }),
        }
    }
}

/// Every scene of one manifest (no filtering), in file order.
pub fn read_manifest(path: &Path) -> Result<Vec<SceneItem>, SourceError> {
    let bytes = std::fs::read(path).map_err(|e| SourceError::Read {
        location: path.display().to_string(),
        detail: e.to_string(),
    })?;
    let is_json = match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("json") => true,
        Some(e) if e.eq_ignore_ascii_case("csv") => false,
        _ => bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| matches!(b, b'{' | b'[')),
    };
    if is_json {
        read_json_manifest(path, &bytes)
    } else {
        read_csv_manifest(path, &bytes)
    }
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonManifest {
    scenes: Vec<JsonScene>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonScene {
    id: Option<String>,
    date: String,
    sensor: String,
    bands: BTreeMap<String, JsonBand>,
    cloud_cover: Option<f64>,
    processing_baseline: Option<Value>,
    boa_add_offset: Option<f64>,
    platform: Option<String>,
    tile: Option<String>,
    bbox: Option<[f64; 4]>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonBand {
    File(String),
    Spec(JsonBandSpec),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBandSpec {
    file: String,
    band: Option<usize>,
}

fn read_json_manifest(path: &Path, bytes: &[u8]) -> Result<Vec<SceneItem>, SourceError> {
    let parse_err = |detail: String| SourceError::Parse {
        what: "manifest",
        location: path.display().to_string(),
        detail,
    };
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let scenes: Vec<JsonScene> = if first == Some(&b'[') {
        serde_json::from_slice(bytes).map_err(|e| parse_err(e.to_string()))?
    } else {
        serde_json::from_slice::<JsonManifest>(bytes)
            .map_err(|e| parse_err(e.to_string()))?
            .scenes
    };
    let base = Location::Path(path.to_path_buf());
    let mut out = Vec::with_capacity(scenes.len());
    for (i, s) in scenes.into_iter().enumerate() {
        let at = |detail: String| parse_err(format!("scene {} ({detail})", i + 1));
        let date = parse_date(&s.date).ok_or_else(|| at(format!("bad date `{}`", s.date)))?;
        if s.bands.is_empty() {
            return Err(at("`bands` is empty".into()));
        }
        let baseline = match s.processing_baseline {
            None | Some(Value::Null) => None,
            Some(Value::String(b)) => Some(b),
            Some(Value::Number(n)) => Some(format!("{:05.2}", n.as_f64().unwrap_or(0.0))),
            Some(other) => return Err(at(format!("bad processing_baseline `{other}`"))),
        };
        let mut assets = BTreeMap::new();
        for (band, spec) in s.bands {
            let (file, index) = match spec {
                JsonBand::File(f) => (f, None),
                JsonBand::Spec(JsonBandSpec { file, band }) => (file, band),
            };
            if index == Some(0) {
                return Err(at(format!("band `{band}`: band numbers start at 1")));
            }
            assets.insert(
                band,
                AssetRef {
                    location: base.join(&file),
                    href: file,
                    band: index,
                    band_names: Vec::new(),
                    scaling: Vec::new(),
                },
            );
        }
        out.push(SceneItem {
            id: s.id.unwrap_or_else(|| date.replace('-', "")),
            date,
            collection: Some(s.sensor),
            origin: path.display().to_string(),
            props: SceneProps {
                cloud_cover: s.cloud_cover,
                processing_baseline: baseline,
                boa_add_offset: s.boa_add_offset.map(BoaOffset::Uniform),
                boa_offset_applied: None,
                platform: s.platform,
                tile: s.tile,
                bbox: s.bbox,
            },
            assets,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

const CSV_COLUMNS: [&str; 11] = [
    "date",
    "sensor",
    "band",
    "file",
    "id",
    "band_index",
    "cloud_cover",
    "processing_baseline",
    "boa_add_offset",
    "platform",
    "tile",
];

fn read_csv_manifest(path: &Path, bytes: &[u8]) -> Result<Vec<SceneItem>, SourceError> {
    let text = String::from_utf8_lossy(bytes);
    let err = |line: usize, detail: String| SourceError::Parse {
        what: "manifest",
        location: format!("{}:{line}", path.display()),
        detail,
    };
    let mut rows = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((header_line, header)) = rows.next() else {
        return Err(err(1, "empty manifest (no header row)".into()));
    };
    let header: Vec<String> = split_csv(header)
        .map_err(|e| err(header_line, e))?
        .into_iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let mut col = BTreeMap::new();
    for (i, h) in header.iter().enumerate() {
        if !CSV_COLUMNS.contains(&h.as_str()) {
            return Err(err(
                header_line,
                format!("unknown column `{h}` (columns: {})", CSV_COLUMNS.join(", ")),
            ));
        }
        if col.insert(h.clone(), i).is_some() {
            return Err(err(header_line, format!("column `{h}` appears twice")));
        }
    }
    for required in ["date", "sensor", "band", "file"] {
        if !col.contains_key(required) {
            return Err(err(
                header_line,
                format!("missing required column `{required}`"),
            ));
        }
    }
    let base = Location::Path(path.to_path_buf());
    // Scenes in order of first appearance, keyed by (sensor, id).
    let mut order: Vec<(String, String)> = Vec::new();
    let mut scenes: BTreeMap<(String, String), SceneItem> = BTreeMap::new();
    for (line, row) in rows {
        let fields = split_csv(row).map_err(|e| err(line, e))?;
        if fields.len() != header.len() {
            return Err(err(
                line,
                format!("{} fields, the header has {}", fields.len(), header.len()),
            ));
        }
        let get = |name: &str| {
            col.get(name)
                .map(|&i| fields[i].trim())
                .filter(|v| !v.is_empty())
        };
        let num = |name: &str| -> Result<Option<f64>, SourceError> {
            get(name)
                .map(|v| {
                    v.parse::<f64>()
                        .map_err(|_| err(line, format!("`{name}` is not a number: `{v}`")))
                })
                .transpose()
        };
        let need = |name: &str| get(name).ok_or_else(|| err(line, format!("empty `{name}`")));
        let raw_date = need("date")?;
        let date =
            parse_date(raw_date).ok_or_else(|| err(line, format!("bad date `{raw_date}`")))?;
        let sensor = need("sensor")?.to_string();
        let band = need("band")?.to_string();
        let file = need("file")?.to_string();
        let id = get("id").map_or_else(|| date.replace('-', ""), str::to_string);
        let band_index = match get("band_index") {
            None => None,
            Some(v) => match v.parse::<usize>() {
                Ok(b) if b >= 1 => Some(b),
                _ => return Err(err(line, format!("bad `band_index` `{v}` (1-based)"))),
            },
        };
        let props = SceneProps {
            cloud_cover: num("cloud_cover")?,
            processing_baseline: get("processing_baseline").map(str::to_string),
            boa_add_offset: num("boa_add_offset")?.map(BoaOffset::Uniform),
            boa_offset_applied: None,
            platform: get("platform").map(str::to_string),
            tile: get("tile").map(str::to_string),
            bbox: None,
        };
        let key = (sensor.clone(), id.clone());
        match scenes.get_mut(&key) {
            Some(s) => {
                if s.date != date {
                    return Err(err(
                        line,
                        format!("scene `{id}` has dates {} and {date}", s.date),
                    ));
                }
                merge_props(&mut s.props, props)
                    .map_err(|what| err(line, format!("scene `{id}`: {what} disagrees")))?;
            }
            None => {
                order.push(key.clone());
                scenes.insert(
                    key.clone(),
                    SceneItem {
                        id: id.clone(),
                        date,
                        collection: Some(sensor),
                        origin: path.display().to_string(),
                        props,
                        assets: BTreeMap::new(),
                    },
                );
            }
        }
        let scene = scenes.get_mut(&key).expect("inserted above");
        let asset = AssetRef {
            location: base.join(&file),
            href: file,
            band: band_index,
            band_names: Vec::new(),
            scaling: Vec::new(),
        };
        if scene.assets.insert(band.clone(), asset).is_some() {
            return Err(err(
                line,
                format!("band `{band}` of scene `{id}` is listed twice"),
            ));
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|k| scenes.remove(&k))
        .collect())
}

/// Fill `into` from `from`; `Err(field)` when both have different values.
fn merge_props(into: &mut SceneProps, from: SceneProps) -> Result<(), &'static str> {
    fn merge<T: PartialEq>(
        a: &mut Option<T>,
        b: Option<T>,
        name: &'static str,
    ) -> Result<(), &'static str> {
        match (a.as_ref(), b) {
            (Some(x), Some(y)) if *x != y => Err(name),
            (None, Some(y)) => {
                *a = Some(y);
                Ok(())
            }
            _ => Ok(()),
        }
    }
    merge(&mut into.cloud_cover, from.cloud_cover, "`cloud_cover`")?;
    merge(
        &mut into.processing_baseline,
        from.processing_baseline,
        "`processing_baseline`",
    )?;
    merge(
        &mut into.boa_add_offset,
        from.boa_add_offset,
        "`boa_add_offset`",
    )?;
    merge(&mut into.platform, from.platform, "`platform`")?;
    merge(&mut into.tile, from.tile, "`tile`")
}

/// Split one CSV line; fields may be double-quoted with `""` for a quote.
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                c => field.push(c),
            }
        } else {
            match c {
                ',' => {
                    out.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                '"' if field.trim().is_empty() && !was_quoted => {
                    field.clear();
                    quoted = true;
                    was_quoted = true;
                }
                c => field.push(c),
            }
        }
    }
    if quoted {
        return Err("unterminated quoted field".to_string());
    }
    out.push(field);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Glob
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn query(collection: &str) -> SceneQuery {
        SceneQuery {
            collection: collection.into(),
            ..SceneQuery::default()
        }
    }

    #[test]
    fn source_local_json_manifest_lists_sorted_filtered_scenes() {
        let dir = TempDir::new().unwrap();
        let m = dir.path().join("manifest.json");
        std::fs::write(
            &m,
            r#"{"scenes": [
              {"id": "b", "date": "2020-03-10", "sensor": "sentinel-2-l2a", "cloud_cover": 50,
               "processing_baseline": "04.00",
               "bands": {"B04": "b/B04.tif", "B08": {"file": "/abs/stack.tif", "band": 2}}},
              {"date": "20200305", "sensor": "sentinel-2-l2a", "cloud_cover": 10,
               "processing_baseline": 2.14, "bands": {"B04": "a/B04.tif"}},
              {"id": "s1", "date": "2020-03-01", "sensor": "sentinel-1-grd",
               "bands": {"VV": "s1/vv.tif"}},
              {"id": "old", "date": "2019-12-31", "sensor": "sentinel-2-l2a",
               "bands": {"B04": "old/B04.tif"}}
            ]}"#,
        )
        .unwrap();
        let src = LocalSource::open(dir.path()).unwrap();
        assert_eq!(src.manifests(), std::slice::from_ref(&m));
        let mut q = query("sentinel-2-l2a");
        q.year = Some(2020);
        let items = src.list(&q).unwrap();
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            ids,
            ["20200305", "b"],
            "sorted by date, s1 and 2019 left out"
        );
        assert_eq!(items[0].props.processing_baseline.as_deref(), Some("02.14"));
        assert_eq!(items[1].boa_add_offset("B04"), -1000.0);
        let b04 = &items[1].assets["B04"];
        assert_eq!(b04.location, Location::Path(dir.path().join("b/B04.tif")));
        let b08 = &items[1].assets["B08"];
        assert_eq!(
            (b08.location.clone(), b08.band),
            (Location::Path("/abs/stack.tif".into()), Some(2))
        );
        q.max_cloud_cover = Some(20.0);
        assert_eq!(src.list(&q).unwrap().len(), 1);
        // Resolving a file that is not there names it and how the manifest wrote it.
        let e = src.resolve(&items[1], b04).unwrap_err().to_string();
        assert!(
            e.contains("b/B04.tif") && e.contains("listed as `b/B04.tif`"),
            "{e}"
        );
    }

    #[test]
    fn source_local_csv_manifest_groups_rows_into_scenes() {
        let dir = TempDir::new().unwrap();
        let m = dir.path().join("scenes.csv");
        std::fs::write(
            &m,
            "# a comment\n\
             Date,Sensor,Band,File,id,cloud_cover,processing_baseline\n\
             2020-01-15,sentinel-2-l2a,B04,x/B04.tif,S2A_X,12.5,04.00\n\
             \n\
             2020-01-15,sentinel-2-l2a,SCL,\"x/S C L,1.tif\",S2A_X,,\n\
             2020-01-10,sentinel-2-l2a,B04,y/B04.tif,,3,02.14\n",
        )
        .unwrap();
        let src = LocalSource::open(&m).unwrap();
        let items = src.list(&query("sentinel-2-l2a")).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[0].id.as_str(), items[0].date.as_str()),
            ("20200110", "2020-01-10")
        );
        let x = &items[1];
        assert_eq!(x.id, "S2A_X");
        assert_eq!(x.props.cloud_cover, Some(12.5));
        assert_eq!(x.boa_add_offset("B04"), -1000.0);
        assert_eq!(
            x.assets["SCL"].location,
            Location::Path(dir.path().join("x/S C L,1.tif"))
        );
        assert!(x.origin.ends_with("scenes.csv"));
    }

    #[test]
    fn source_local_manifest_errors_name_file_and_line() {
        let dir = TempDir::new().unwrap();
        let cases: [(&str, &str, &str); 6] = [
            (
                "a.csv",
                "date,sensor,file\n",
                "missing required column `band`",
            ),
            (
                "b.csv",
                "date,sensor,band,file\n2020-01-01,s,B04\n",
                "b.csv:2",
            ),
            (
                "c.csv",
                "date,sensor,band,file,cloud_cover\n2020-01-01,s,B04,f.tif,cloudy\n",
                "`cloud_cover` is not a number: `cloudy`",
            ),
            (
                "d.csv",
                "date,sensor,band,file\n2020-01-01,s,B04,f.tif\n2020-01-01,s,B04,g.tif\n",
                "band `B04` of scene `20200101` is listed twice",
            ),
            (
                "e.json",
                r#"{"scenes": [{"date": "2020-01-01", "sensor": "s", "bands": {}, "colour": 1}]}"#,
                "unknown field `colour`",
            ),
            (
                "f.json",
                r#"[{"date": "2020-02-31x", "sensor": "s", "bands": {"B04": "f.tif"}}]"#,
                "bad date `2020-02-31x`",
            ),
        ];
        for (name, text, want) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            let e = LocalSource::open(&p)
                .unwrap()
                .list(&query("s"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(name) && e.contains(want), "{name}: {e}");
        }
        let e = LocalSource::open(&dir.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let e = LocalSource::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("manifest.json"), "{e}");
    }

    #[test]
    fn source_local_glob_merges_manifests() {
        let dir = TempDir::new().unwrap();
        for (tile, date) in [("48PXS", "2020-05-01"), ("48PYS", "2020-04-01")] {
            let d = dir.path().join(tile);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("manifest.csv"),
                format!("date,sensor,band,file,tile\n{date},dsm,elevation,dem.tif,{tile}\n"),
            )
            .unwrap();
        }
        std::fs::create_dir_all(dir.path().join("other")).unwrap();
        let src = LocalSource::open(&dir.path().join("48P?S/manifest.*")).unwrap();
        assert_eq!(src.manifests().len(), 2);
        let mut q = query("dsm");
        let items = src.list(&q).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].props.tile.as_deref(), Some("48PYS"));
        q.tile = Some("T48PXS".into());
        let items = src.list(&q).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].assets["elevation"].location,
            Location::Path(dir.path().join("48PXS/dem.tif"))
        );
        assert!(LocalSource::open(&dir.path().join("*/none.json")).is_err());
    }
}
