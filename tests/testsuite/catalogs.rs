//! `acquire` against a real STAC API: stac-fastapi-pgstac (pgstac on PostgreSQL + PostGIS), with
//! items in the shapes of the three public Sentinel-2 L2A catalogs (Earth Search v1, Planetary
//! Computer, Copernicus Data Space; docs/catalogs.md names the source of each field) and their
//! band files served by nginx with HTTP Range. `scripts/stac-local.sh start` starts all three
//! (CI does); where none answers, each test prints why it is skipped.
//!
//! Every catalog serves the same reflectance field, each in its own DN convention (offset applied
//! or not, stated in `raster:bands` or by the baseline), so every acquired scene must hold the same
//! values, and those of its 10 m bands and SCL must be the field exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lulc_nodes::raster::{DType, Grid, RasterMeta, RasterReader, RasterWriter, WriteOptions};
use serde_json::{Value, json};

use crate::support::Project;

/// The servers `scripts/stac-local.sh start` runs.
struct Stac {
    api: String,
    asset_dir: PathBuf,
    asset_url: String,
    asset_log: PathBuf,
}

/// The STAC API and asset server of this machine, or `None` (and a printed reason).
fn stac(test: &str) -> Option<Stac> {
    let mut vars: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("LULC_TEST_"))
        .collect();
    if !vars.contains_key("LULC_TEST_STAC_API") {
        // A server started by hand (`scripts/stac-local.sh start`) without its exports.
        if let Ok(text) = std::fs::read_to_string("/tmp/lulc-stac/env") {
            for line in text.lines() {
                if let Some((k, v)) = line.trim_start_matches("export ").split_once('=') {
                    vars.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    let get = |k: &str| vars.get(k).cloned();
    let (Some(api), Some(dir), Some(url), Some(log)) = (
        get("LULC_TEST_STAC_API"),
        get("LULC_TEST_ASSET_DIR"),
        get("LULC_TEST_ASSET_URL"),
        get("LULC_TEST_ASSET_LOG"),
    ) else {
        eprintln!(
            "skipped {test}: no STAC API server (start one with scripts/stac-local.sh start)"
        );
        return None;
    };
    match agent().get(&format!("{api}/")).call() {
        Ok(r) if r.status() == 200 => Some(Stac {
            api,
            asset_dir: PathBuf::from(dir),
            asset_url: url,
            asset_log: PathBuf::from(log),
        }),
        Ok(r) => {
            eprintln!(
                "skipped {test}: the STAC API at {api} answered {}",
                r.status()
            );
            None
        }
        Err(e) => {
            eprintln!("skipped {test}: the STAC API at {api} does not answer ({e})");
            None
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// POST `body` to the API's `path` (the Transactions extension), failing the test on an error.
fn post(stac: &Stac, path: &str, body: &Value) {
    let r = agent()
        .post(&format!("{}{path}", stac.api))
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(body).unwrap());
    match r {
        Ok(resp) if resp.status().is_success() => {}
        Ok(mut resp) => panic!(
            "POST {path}: {} {}",
            resp.status(),
            resp.body_mut().read_to_string().unwrap_or_default()
        ),
        Err(e) => panic!("POST {path}: {e}"),
    }
}

/// A name no earlier run of this suite used: collections and asset folders of one test.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

// ---------------------------------------------------------------------------------------------
// The field every catalog serves
// ---------------------------------------------------------------------------------------------

const X0: f64 = 600_000.0;
const Y0: f64 = 1_200_080.0;
const BANDS_10M: [&str; 4] = ["B02", "B03", "B04", "B08"];
const BANDS_20M: [&str; 6] = ["B05", "B06", "B07", "B8A", "B11", "B12"];
/// The bands `acquire` writes, in its order.
const ACQUIRED: [&str; 11] = [
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL",
];

fn grid(res: f64, px: usize) -> Grid {
    Grid {
        crs_wkt: lulc_nodes::raster::crs_to_wkt("EPSG:32648").unwrap(),
        geo_transform: [X0, res, 0.0, Y0, 0.0, -res],
        width: px,
        height: px,
    }
}

/// Reflectance x 10000 of `band` at native pixel (col, row): 10 m bands on 8 x 8 px, 20 m on
/// 4 x 4, all different.
fn reflectance(band: &str, col: usize, row: usize) -> f64 {
    let k = ACQUIRED.iter().position(|b| *b == band).unwrap() as f64;
    if BANDS_10M.contains(&band) {
        500.0 + 300.0 * k + col as f64 + 10.0 * row as f64
    } else {
        500.0 + 300.0 * k + 20.0 * col as f64 + 200.0 * row as f64
    }
}

/// SCL at 20 m pixel (col, row): vegetation, one cloud pixel.
fn scl(col: usize, row: usize) -> f64 {
    if (col, row) == (2, 1) { 9.0 } else { 4.0 }
}

fn write_tif(path: &Path, g: &Grid, dtype: DType, name: &str, f: impl Fn(usize, usize) -> f64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let meta = RasterMeta {
        grid: g.clone(),
        dtype,
        nodata: Some(0.0),
        band_names: vec![name.to_string()],
    };
    let mut w = RasterWriter::create(path, &meta, &WriteOptions::default()).unwrap();
    let v: Vec<f32> = (0..g.width * g.height)
        .map(|i| f(i % g.width, i / g.width) as f32)
        .collect();
    w.write_window_f32(1, &g.full_window(), &v).unwrap();
    w.finish().unwrap();
}

/// Write the band files of one scene under `dir`: `file(band)` names each file, DN = reflectance
/// + `dn_offset`. Returns nothing: the item's hrefs are built the same way.
fn write_scene(dir: &Path, dn_offset: f64, file: impl Fn(&str) -> String) {
    for b in BANDS_10M {
        write_tif(&dir.join(file(b)), &grid(10.0, 8), DType::U16, b, |c, r| {
            reflectance(b, c, r) + dn_offset
        });
    }
    for b in BANDS_20M {
        write_tif(&dir.join(file(b)), &grid(20.0, 4), DType::U16, b, |c, r| {
            reflectance(b, c, r) + dn_offset
        });
    }
    write_tif(
        &dir.join(file("SCL")),
        &grid(20.0, 4),
        DType::U8,
        "SCL",
        scl,
    );
}

/// The item's footprint in lon/lat: around the 80 m square at UTM 48N (600000, 1200000), which
/// is (105.91490, 10.85412) .. (105.91563, 10.85484).
fn footprint() -> (Value, Value) {
    let (w, s, e, n) = (105.91, 10.85, 105.92, 10.86);
    (
        json!([w, s, e, n]),
        json!({"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}),
    )
}

fn feature(collection: &str, id: &str, stac_version: &str, props: Value, assets: Value) -> Value {
    let (bbox, geometry) = footprint();
    json!({"type": "Feature", "stac_version": stac_version, "id": id, "collection": collection,
           "bbox": bbox, "geometry": geometry, "properties": props, "assets": assets,
           "links": []})
}

fn collection(id: &str) -> Value {
    json!({"type": "Collection", "id": id, "stac_version": "1.0.0", "description": id,
           "license": "proprietary", "links": [],
           "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                      "temporal": {"interval": [[null, null]]}}})
}

/// `raster:bands` of one uint16 reflectance band, as Earth Search and Copernicus Data Space
/// write it.
fn raster_bands(offset: f64) -> Value {
    json!([{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": offset}])
}

// ---------------------------------------------------------------------------------------------
// The three catalogs
// ---------------------------------------------------------------------------------------------

/// One scene of a catalog: item id, date, DN offset of its files, and its item's extra
/// properties.
struct Scene {
    id: String,
    datetime: &'static str,
    dn_offset: f64,
    props: Value,
}

/// Earth Search v1 (`sentinel-2-l2a`): assets `blue` .. `scl`, `raster:bands` with offset -0.1 on
/// every item whether or not its DNs have the offset, `earthsearch:boa_offset_applied`, `s2:processing_baseline`,
/// `grid:code` and `mgrs:*`, `proj:epsg`. Absolute hrefs to COGs.
fn earth_search(stac: &Stac, coll: &str, scenes: &[Scene]) -> Vec<Value> {
    let keys = [
        ("B02", "blue"),
        ("B03", "green"),
        ("B04", "red"),
        ("B05", "rededge1"),
        ("B06", "rededge2"),
        ("B07", "rededge3"),
        ("B08", "nir"),
        ("B8A", "nir08"),
        ("B11", "swir16"),
        ("B12", "swir22"),
        ("SCL", "scl"),
    ];
    scenes
        .iter()
        .map(|s| {
            let dir = format!("{coll}/{}", s.id);
            write_scene(&stac.asset_dir.join(&dir), s.dn_offset, |b| format!("{b}.tif"));
            let mut assets = serde_json::Map::new();
            for (band, key) in keys {
                let mut a = json!({"href": format!("{}/{dir}/{band}.tif", stac.asset_url),
                                   "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                                   "roles": ["data"]});
                if band != "SCL" {
                    a["raster:bands"] = raster_bands(-0.1);
                    a["eo:bands"] = json!([{"name": band}]);
                }
                assets.insert(key.to_string(), a);
            }
            let mut props = json!({"datetime": s.datetime, "platform": "sentinel-2b",
                "constellation": "sentinel-2", "proj:epsg": 32648, "mgrs:utm_zone": 48,
                "mgrs:latitude_band": "P", "mgrs:grid_square": "XS", "grid:code": "MGRS-48PXS"});
            merge(&mut props, &s.props);
            feature(coll, &s.id, "1.0.0", props, Value::Object(assets))
        })
        .collect()
}

/// Planetary Computer (`sentinel-2-l2a`): assets `B02` .. `SCL`, `s2:mgrs_tile`,
/// `s2:processing_baseline`, `proj:epsg`, no scale or offset stated.
fn planetary_computer(stac: &Stac, coll: &str, scenes: &[Scene]) -> Vec<Value> {
    scenes
        .iter()
        .map(|s| {
            let dir = format!("{coll}/{}", s.id);
            write_scene(&stac.asset_dir.join(&dir), s.dn_offset, |b| format!("IMG_{b}.tif"));
            let mut assets = serde_json::Map::new();
            for band in ACQUIRED {
                assets.insert(
                    band.to_string(),
                    json!({"href": format!("{}/{dir}/IMG_{band}.tif", stac.asset_url),
                           "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                           "roles": ["data"], "gsd": if BANDS_20M.contains(&band) || band == "SCL" { 20 } else { 10 }}),
                );
            }
            let mut props = json!({"datetime": s.datetime, "platform": "Sentinel-2B",
                "s2:mgrs_tile": "48PXS", "proj:epsg": 32648, "s2:product_type": "S2MSI2A"});
            merge(&mut props, &s.props);
            feature(coll, &s.id, "1.0.0", props, Value::Object(assets))
        })
        .collect()
}

/// Copernicus Data Space (`sentinel-2-l2a`, STAC 1.1): one asset per band and resolution
/// (`B04_10m`, `B04_20m`, `SCL_20m`, ...), `processing:version`, `raster:bands` offset -0.1 from
/// baseline 04.00 on (Collection 1 reprocessing has 05.00 for the older dates), `grid:code`,
/// `proj:code`. Its coarser copies of a band hold other values, so reading one is seen.
fn copernicus(stac: &Stac, coll: &str, scenes: &[Scene]) -> Vec<Value> {
    scenes
        .iter()
        .map(|s| {
            let dir = format!("{coll}/{}", s.id);
            let root = stac.asset_dir.join(&dir);
            write_scene(&root, s.dn_offset, |b| {
                let res = if BANDS_10M.contains(&b) { 10 } else { 20 };
                format!("{b}_{res}m.tif")
            });
            let mut assets = serde_json::Map::new();
            let mut add = |key: String, file: String, offset: Option<f64>| {
                let mut a = json!({"href": format!("{}/{dir}/{file}", stac.asset_url),
                                   "type": "image/tiff; application=geotiff", "roles": ["data"]});
                if let Some(o) = offset {
                    a["raster:bands"] = raster_bands(o);
                }
                assets.insert(key, a);
            };
            let offset = if s.dn_offset == 0.0 { 0.0 } else { -0.1 };
            for b in BANDS_10M.iter().chain(&BANDS_20M) {
                let res = if BANDS_10M.contains(b) { 10 } else { 20 };
                add(
                    format!("{b}_{res}m"),
                    format!("{b}_{res}m.tif"),
                    Some(offset),
                );
                // The 60 m copy: another file, other values.
                add(format!("{b}_60m"), format!("{b}_60m.tif"), Some(offset));
                write_tif(
                    &root.join(format!("{b}_60m.tif")),
                    &grid(60.0, 2),
                    DType::U16,
                    b,
                    |_, _| 7.0,
                );
            }
            add("SCL_20m".into(), "SCL_20m.tif".into(), None);
            add("SCL_60m".into(), "SCL_60m.tif".into(), None);
            write_tif(
                &root.join("SCL_60m.tif"),
                &grid(60.0, 2),
                DType::U8,
                "SCL",
                |_, _| 8.0,
            );
            let mut props = json!({"datetime": s.datetime, "platform": "sentinel-2b",
                "grid:code": "MGRS-48PXS", "proj:code": "EPSG:32648", "product:type": "S2MSI2A"});
            merge(&mut props, &s.props);
            feature(coll, &s.id, "1.1.0", props, Value::Object(assets))
        })
        .collect()
}

fn merge(into: &mut Value, extra: &Value) {
    if let (Some(a), Some(b)) = (into.as_object_mut(), extra.as_object()) {
        a.extend(b.clone());
    }
}

/// Items that must never be read: a cloudy scene, a scene of another tile, and `fillers` scenes
/// of months the spec does not ask for (so that a year has more than one search page). Their
/// hrefs lead nowhere: a step that read one would fail.
fn decoys(
    stac: &Stac,
    coll: &str,
    fillers: usize,
    tile_props: impl Fn(&str) -> Value,
) -> Vec<Value> {
    let asset = |name: &str| json!({name: {"href": format!("{}/{coll}/missing/{name}.tif", stac.asset_url)}});
    let mut out = Vec::new();
    let mut cloudy = tile_props("48PXS");
    merge(
        &mut cloudy,
        &json!({"datetime": "2020-03-20T03:25:39Z", "eo:cloud_cover": 95.0}),
    );
    out.push(feature(coll, "cloudy", "1.0.0", cloudy, asset("B04")));
    let mut other = tile_props("48PYS");
    merge(
        &mut other,
        &json!({"datetime": "2020-03-21T03:25:39Z", "eo:cloud_cover": 1.0}),
    );
    out.push(feature(coll, "other-tile", "1.0.0", other, asset("B04")));
    for i in 0..fillers {
        let mut p = tile_props("48PXS");
        let day = 1 + i % 28;
        let month = 6 + i / 28 % 6;
        merge(
            &mut p,
            &json!({"datetime": format!("2020-{month:02}-{day:02}T03:25:{:02}Z", i % 60),
                              "eo:cloud_cover": 5.0}),
        );
        out.push(feature(
            coll,
            &format!("filler-{i:03}"),
            "1.0.0",
            p,
            asset("B04"),
        ));
    }
    out
}

fn es_tile(t: &str) -> Value {
    json!({"grid:code": format!("MGRS-{t}"), "mgrs:utm_zone": 48,
           "mgrs:latitude_band": &t[2..3], "mgrs:grid_square": &t[3..]})
}

/// Load the three catalogs into the API; returns their collection ids (ES, PC, CDSE).
fn load(stac: &Stac) -> [String; 3] {
    let (es, pc, cdse) = (unique("es-s2"), unique("pc-s2"), unique("cdse-s2"));
    let es_scenes = [
        Scene {
            id: "S2B_48PXS_20200305_0_L2A".into(),
            datetime: "2020-03-05T03:25:39Z",
            dn_offset: 0.0,
            props: json!({"s2:processing_baseline": "02.14", "earthsearch:boa_offset_applied": false, "eo:cloud_cover": 10.2}),
        },
        Scene {
            id: "S2B_48PXS_20220310_0_L2A".into(),
            datetime: "2022-03-10T03:25:39Z",
            dn_offset: 0.0,
            props: json!({"s2:processing_baseline": "04.00", "earthsearch:boa_offset_applied": true, "eo:cloud_cover": 3.0}),
        },
        Scene {
            id: "S2A_48PXS_20220315_0_L2A".into(),
            datetime: "2022-03-15T03:25:39Z",
            dn_offset: 1000.0,
            props: json!({"s2:processing_baseline": "04.00", "earthsearch:boa_offset_applied": false, "eo:cloud_cover": 7.5}),
        },
    ];
    let pc_scenes = [
        Scene {
            id: "S2B_MSIL2A_20200305T032539_R018_T48PXS_20201001T034830".into(),
            datetime: "2020-03-05T03:25:39Z",
            dn_offset: 0.0,
            props: json!({"s2:processing_baseline": "02.12", "eo:cloud_cover": 10.2}),
        },
        Scene {
            id: "S2B_MSIL2A_20220310T032539_R018_T48PXS_20220310T060000".into(),
            datetime: "2022-03-10T03:25:39Z",
            dn_offset: 1000.0,
            props: json!({"s2:processing_baseline": "04.00", "eo:cloud_cover": 3.0}),
        },
    ];
    let cdse_scenes = [
        Scene {
            id: "S2B_MSIL2A_20200305T032539_N0500_R018_T48PXS_20230405T120000".into(),
            datetime: "2020-03-05T03:25:39Z",
            dn_offset: 1000.0,
            props: json!({"processing:version": "05.00", "eo:cloud_cover": 10.2}),
        },
        Scene {
            id: "S2B_MSIL2A_20220310T032539_N0400_R018_T48PXS_20220310T060000".into(),
            datetime: "2022-03-10T03:25:39Z",
            dn_offset: 1000.0,
            props: json!({"processing:version": "04.00", "eo:cloud_cover": 3.0}),
        },
    ];
    let mut es_items = earth_search(stac, &es, &es_scenes);
    es_items.extend(decoys(stac, &es, 120, es_tile));
    let mut pc_items = planetary_computer(stac, &pc, &pc_scenes);
    pc_items.extend(decoys(stac, &pc, 0, |t| json!({"s2:mgrs_tile": t})));
    let mut cdse_items = copernicus(stac, &cdse, &cdse_scenes);
    cdse_items.extend(decoys(
        stac,
        &cdse,
        0,
        |t| json!({"grid:code": format!("MGRS-{t}")}),
    ));
    for (coll, items) in [(&es, es_items), (&pc, pc_items), (&cdse, cdse_items)] {
        post(stac, "/collections", &collection(coll));
        post(
            stac,
            &format!("/collections/{coll}/items"),
            &json!({"type": "FeatureCollection", "features": items}),
        );
    }
    [es, pc, cdse]
}

fn spec(api: &str, colls: &[String; 3]) -> String {
    let node = |name: &str, coll: &str| {
        format!(
            r#"  {name}:
    kind: acquire
    for_each: {{ year: [2020, 2022], tile: [48PXS] }}
    params:
      catalog: "{api}"
      collection: sentinel-2-l2a
      collection_id: {coll}
      grid: {{ crs: "EPSG:32648", bbox: [600000, 1200000, 600080, 1200080], res: 10 }}
      months: [3]
      max_cloud_cover: 80
"#
        )
    };
    format!(
        "name: catalogs\nnodes:\n{}{}{}",
        node("es", &colls[0]),
        node("pc", &colls[1]),
        node("cdse", &colls[2])
    )
}

/// Every exported GeoTIFF under `dir`, by path relative to it.
fn tifs(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "tif") {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), p);
            }
        }
    }
    out
}

/// Lines of the asset server's log so far (the next run's requests start after them).
fn log_len(stac: &Stac) -> usize {
    std::fs::read_to_string(&stac.asset_log)
        .unwrap_or_default()
        .lines()
        .count()
}

/// `(METHOD path, status, range)` of the asset requests for collection `coll` logged after
/// line `from`.
fn asset_requests(stac: &Stac, coll: &str, from: usize) -> Vec<(String, String, String)> {
    std::fs::read_to_string(&stac.asset_log)
        .unwrap_or_default()
        .lines()
        .skip(from)
        .filter_map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (method, uri, status, range) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            uri.starts_with(&format!("/{coll}/")).then(|| {
                (
                    format!("{method} {uri}"),
                    status.to_string(),
                    range.to_string(),
                )
            })
        })
        .collect()
}

/// Runs of the spec, each into a fresh store: `LULC_STAC_REPEATS` (default 2, so that two runs'
/// outputs are compared; `benches/stac_repeat.sh` asks for 20).
fn repeats() -> usize {
    std::env::var("LULC_STAC_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
        .max(1)
}

#[test]
fn acquire_reads_three_catalog_conventions_from_a_real_stac_api() {
    let Some(stac) = stac("acquire_reads_three_catalog_conventions_from_a_real_stac_api") else {
        return;
    };
    let colls = load(&stac);
    let mut outputs_of_first_run = None;
    for i in 0..repeats() {
        let from = log_len(&stac);
        let outputs = run_once(&stac, &colls, from);
        match &outputs_of_first_run {
            None => outputs_of_first_run = Some(outputs),
            Some(first) => assert_eq!(first, &outputs, "run {} differs from run 1", i + 1),
        }
        eprintln!("catalogs: run {} of {} ok", i + 1, repeats());
    }
}

/// One run into a fresh store with `--jobs 2`, every check; returns the steps' output digests.
fn run_once(stac: &Stac, colls: &[String; 3], log_from: usize) -> BTreeMap<String, String> {
    let p = Project::new(&spec(&stac.api, colls));
    let run = p.run(&["--jobs", "2"]);
    run.assert_ok();
    assert_eq!(run.steps_with("ran").len(), 6, "{}", run.stdout);
    // Search paging: Earth Search's 2020 has 123 items of the tile, more than one page of 100;
    // the cloudy scene and the other tile's are left out by the server (their files are missing).
    let listed = |id: &str| run.step(id)["metrics"]["listed"].as_u64();
    assert_eq!(
        listed("es[tile=48PXS,year=2020]"),
        Some(1),
        "{}",
        run.stdout
    );
    assert_eq!(listed("es[tile=48PXS,year=2022]"), Some(2));
    for n in ["pc", "cdse"] {
        for y in [2020, 2022] {
            assert_eq!(
                listed(&format!("{n}[tile=48PXS,year={y}]")),
                Some(1),
                "{n} {y}"
            );
        }
    }
    let out = p.path().join("export");
    for n in ["es", "pc", "cdse"] {
        p.export(n, &out).assert_ok();
    }
    let files = tifs(&out);
    assert_eq!(files.len(), 7, "{files:#?}");
    let grid10 = grid(10.0, 8);
    let mut first: Option<(String, Vec<Vec<f32>>)> = None;
    for (name, path) in &files {
        let r = RasterReader::open(path).unwrap();
        assert!(r.grid().same_as(&grid10, 1e-6), "{name}");
        let bands: Vec<Vec<f32>> = (1..=ACQUIRED.len())
            .map(|b| r.read_window_f32(b, &grid10.full_window()).unwrap())
            .collect();
        // 10 m bands are the field exactly; SCL is its 20 m pixel, nearest.
        for (i, band) in ACQUIRED.iter().enumerate() {
            for row in 0..8 {
                for col in 0..8 {
                    let got = f64::from(bands[i][row * 8 + col]);
                    let want = if BANDS_10M.contains(band) {
                        reflectance(band, col, row)
                    } else if *band == "SCL" {
                        scl(col / 2, row / 2)
                    } else {
                        continue;
                    };
                    assert_eq!(got, want, "{name} {band} at ({col}, {row})");
                }
            }
        }
        // Every convention gives the same values in every band (20 m bands warped alike).
        match &first {
            None => first = Some((name.clone(), bands)),
            Some((n0, b0)) => assert!(b0 == &bands, "{name} differs from {n0}"),
        }
    }
    // Copernicus Data Space: the finest copy of each band was read, never the 60 m one.
    let cdse = asset_requests(stac, &colls[2], log_from);
    assert!(!cdse.is_empty());
    assert!(
        cdse.iter().all(|(r, _, _)| !r.contains("_60m")),
        "{cdse:#?}"
    );
    // What each scene cost on the asset server: only its band files, no sidecar probes
    // (.aux.xml, .ovr, .msk, folder listings), nothing that failed, and per file one size probe
    // (HEAD, GDAL's /vsicurl/ open) and one ranged read (these files are smaller than GDAL's
    // first read of 16 KiB, so header and pixels come in one).
    for coll in colls {
        let reqs = asset_requests(stac, coll, log_from);
        let mut per_file: BTreeMap<&str, usize> = BTreeMap::new();
        for (req, status, range) in &reqs {
            assert!(req.ends_with(".tif"), "not a band file: {req}");
            assert!(matches!(status.as_str(), "200" | "206"), "{req}: {status}");
            if req.starts_with("GET") {
                assert!(
                    range.starts_with("\"bytes="),
                    "a GET without a range: {req}"
                );
            }
            *per_file.entry(req.as_str()).or_default() += 1;
        }
        assert!(!per_file.is_empty());
        for (req, n) in &per_file {
            assert_eq!(*n, 1, "{req}: {n} times ({reqs:#?})");
        }
    }
    crate::support::step_outputs(&run.json())
}
