//! `pipelines/national.yaml` end to end on a small simulated country (6 tiles of 64 px across
//! UTM zones 48 and 49, 2 years): the national mosaic covers the union of the tiles once, every
//! validation point is assessed once, a point of two overlapping tiles trains once, the mosaic
//! is a COG with overviews, colours and class names, and adding a tile runs only that tile's
//! branch and the steps that depend on every tile.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use lulc_nodes::raster::RasterReader;
use lulc_nodes::vector::{PointFeature, reproject_points};
use serde_json::Value;

use crate::support::bin;

const FIVE: &str = "tiles=[48A1, 48B1, 48C1, 49A2, 49B2]";
const SIX: &str = "tiles=[48A1, 48B1, 48C1, 49A2, 49B2, 49C2]";

fn lulc(cmd: &str, tiles: &str, store: &Path, extra: &[&str]) -> Vec<u8> {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/national.yaml");
    let out = Command::new(bin())
        .args([cmd, spec.to_str().unwrap()])
        .args([
            "--set",
            "country={rows: 3, cols: 2, tile_px: 64, overlap_px: 8}",
            "--set",
            "years=2020..2021",
            "--set",
            "model.repeats=1",
            "--set",
            "national.blocksize=128",
            "--set",
            tiles,
            "--store",
        ])
        .arg(store)
        .args(extra)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lulc {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Step id -> (node, tile, status) of a `run --json` document.
fn statuses(doc: &[u8]) -> BTreeMap<String, (String, Option<String>, String)> {
    let doc: Value = serde_json::from_slice(doc).unwrap();
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let id = s["id"].as_str().unwrap().to_string();
            let node = id.split('[').next().unwrap().to_string();
            let tile = s["dims"]["tile"].as_str().map(str::to_string);
            (id, (node, tile, s["status"].as_str().unwrap().to_string()))
        })
        .collect()
}

/// `lulc results --format json` of one node: step id -> metrics.
fn metrics(store: &Path, node: &str) -> BTreeMap<String, Value> {
    let out = lulc("results", SIX, store, &["--node", node, "--format", "json"]);
    let doc: Value = serde_json::from_slice(&out).unwrap();
    doc.as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s["metrics"].clone()))
        .collect()
}

#[test]
fn national_mosaic_assessment_and_an_added_tile() {
    let store = tempfile::tempdir().unwrap();
    let first = statuses(&lulc("run", FIVE, store.path(), &["--json"]));
    assert!(first.values().all(|(.., s)| s == "ran"), "{first:?}");

    // Adding tile 49C2: its branch runs; of the other tiles only the maps of the new model;
    // the steps that gather every tile (train, mosaic, assess, change) run; nothing else.
    let second = statuses(&lulc("run", SIX, store.path(), &["--json"]));
    let gather = ["model", "national", "accuracy", "change"];
    for (id, (node, tile, status)) in &second {
        let expect = match tile.as_deref() {
            Some("49C2") => "ran",
            Some(_) if node == "map" => "ran",
            Some(_) => "cached",
            None if gather.contains(&node.as_str()) => "ran",
            None => "cached",
        };
        assert_eq!(status, expect, "{id}");
    }
    let new: BTreeSet<&String> = second
        .keys()
        .filter(|id| !first.contains_key(*id))
        .collect();
    assert!(new.iter().all(|id| id.contains("tile=49C2")), "{new:?}");

    // Training: a reference point in the overlap of two tiles counts once.
    let migrated = metrics(store.path(), "migrated");
    for (id, m) in metrics(store.path(), "model") {
        let year = &id["model[year=".len()..id.len() - 1];
        let kept: u64 = migrated
            .iter()
            .filter(|(mid, _)| mid.contains(&format!("year={year}]")))
            .map(|(_, m)| m["kept"].as_u64().unwrap())
            .sum();
        let dups = m["duplicate_points"].as_u64().unwrap();
        assert!(dups > 0, "the overlaps hold points: {m}");
        let trained = m["n_train"].as_u64().unwrap() + m["n_val"].as_u64().unwrap();
        assert_eq!(trained, kept - dups, "{id}: {m}");
    }

    // Every validation point is assessed once, on the national map.
    for (id, m) in metrics(store.path(), "accuracy") {
        assert_eq!(m["n_points"], 2000, "{id}: {m}");
        assert_eq!(m["n_dropped"], 0, "{id}: {m}");
    }

    // The mosaic: the union of the tiles, each pixel once.
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().to_str().unwrap();
    lulc("export", SIX, store.path(), &["national", "--out", dest]);
    let dir = out.path().join("national/year=2020");
    let national = metrics(store.path(), "national");
    let m = &national["national[year=2020]"];
    assert_eq!(m["tiles"], 6);
    assert_eq!(m["reprojected_tiles"], 3);
    let r = RasterReader::open(dir.join("map.tif")).unwrap();
    let g = r.grid().clone();
    let classes = r.read_window_u8(1, &g.full_window()).unwrap();
    let mapped = classes.iter().filter(|c| **c != 0).count() as u64;
    assert_eq!(mapped, m["pixels"].as_u64().unwrap());
    let csv = std::fs::read_to_string(dir.join("tiles.csv")).unwrap();
    let from_tiles: u64 = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(from_tiles, mapped, "{csv}");
    // Which mosaic pixels lie on some tile, from the tiles' own grids (the maps of `map`).
    lulc("export", SIX, store.path(), &["map", "--out", dest]);
    let centres: Vec<PointFeature> = (0..g.pixel_count())
        .map(|i| {
            let (x, y) = g.pixel_to_geo((i % g.width) as f64 + 0.5, (i / g.width) as f64 + 0.5);
            PointFeature {
                id: i as i64,
                x,
                y,
                attrs: BTreeMap::new(),
            }
        })
        .collect();
    let mut on_tile = vec![false; g.pixel_count()];
    for tile in ["48A1", "48B1", "48C1", "49A2", "49B2", "49C2"] {
        let t = RasterReader::open(
            out.path()
                .join(format!("map/tile={tile},year=2020/map.tif")),
        )
        .unwrap_or_else(|e| panic!("{tile}: {e}"));
        let mut pts = centres.clone();
        reproject_points(&mut pts, &g.crs_wkt, &t.grid().crs_wkt).unwrap();
        let b = t.grid().bbox();
        for (o, p) in on_tile.iter_mut().zip(&pts) {
            *o |= p.x > b.min_x && p.x < b.max_x && p.y > b.min_y && p.y < b.max_y;
        }
    }
    // The export's quick-look VRTs, one per zone, sources relative to them; the zone-48 one
    // shows what the mosaic shows where it has a class (its tiles sort before zone 49's).
    for zone in ["32648", "32649"] {
        let vrt = out
            .path()
            .join(format!("map/tiles_year=2020_EPSG-{zone}.vrt"));
        let xml = std::fs::read_to_string(&vrt).unwrap();
        assert_eq!(xml.matches("relativeToVRT=\"1\"").count(), 3, "{xml}");
    }
    let vrt = RasterReader::open(out.path().join("map/tiles_year=2020_EPSG-32648.vrt")).unwrap();
    let vg = vrt.grid().clone();
    let (dx, dy) = (
        ((vg.geo_transform[0] - g.geo_transform[0]) / 10.0).round() as usize,
        ((g.geo_transform[3] - vg.geo_transform[3]) / 10.0).round() as usize,
    );
    let vv = vrt.read_window_u8(1, &vg.full_window()).unwrap();
    let mut compared = 0;
    for (i, v) in vv.iter().enumerate().filter(|(_, v)| **v != 0) {
        let (c, r) = (i % vg.width + dx, i / vg.width + dy);
        assert_eq!(classes[r * g.width + c], *v, "pixel ({c}, {r})");
        compared += 1;
    }
    assert!(compared > 3 * 64 * 64 / 2, "{compared}");
    let off_tiles = (0..g.pixel_count())
        .filter(|&i| classes[i] != 0 && !on_tile[i])
        .count();
    assert_eq!(off_tiles, 0, "mapped pixels off every tile");
    let on = on_tile.iter().filter(|o| **o).count() as u64;
    // Inside the union, only the tiles' own nodata (pixels without a valid observation).
    assert!(
        mapped <= on && mapped as f64 >= 0.98 * on as f64,
        "{mapped} of {on}"
    );

    // National areas: each tile's pixels on its own grid, at its own pixel area, where no
    // tile before it has a class, summed; the assessment's mapped areas and the change
    // analysis's class areas are these, within 0.1 %.
    lulc(
        "export",
        SIX,
        store.path(),
        &["accuracy", "change", "--out", dest],
    );
    let areas_csv = std::fs::read_to_string(out.path().join("change/areas.csv")).unwrap();
    for year in [2020, 2021] {
        let by_tiles = areas_from_tiles(out.path(), year);
        let doc: Value = serde_json::from_slice(
            &std::fs::read(
                out.path()
                    .join(format!("accuracy/year={year}/assessment.json")),
            )
            .unwrap(),
        )
        .unwrap();
        let total: f64 = by_tiles.values().sum();
        let mapped = doc["area_weighted"]["mapped_km2"].as_f64().unwrap();
        assert!(
            (mapped / total - 1.0).abs() < 1e-3,
            "{year}: {mapped} vs {total}"
        );
        for c in doc["classes"].as_array().unwrap() {
            let code = c["code"].as_u64().unwrap() as u8;
            let want = by_tiles.get(&code).copied().unwrap_or(0.0);
            let got = c["mapped_km2"].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-3 * want,
                "{year}, class {code}: {got} vs {want} km2"
            );
            let line = areas_csv
                .lines()
                .find(|l| l.starts_with(&format!("{year},{code},")))
                .unwrap();
            let km2: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
            assert!((km2 - want).abs() <= 1e-3 * want + 1e-6, "{line} vs {want}");
        }
    }

    // A COG with overviews, the colour table and the class names.
    let info = Command::new("gdalinfo")
        .arg(dir.join("map.tif"))
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("LAYOUT=COG"), "{info}");
    assert!(info.contains("Overviews: "), "{info}");
    assert!(info.contains("Color Table"), "{info}");
    assert!(info.contains("CATEGORY_3=Rice"), "{info}");
}

/// Class areas (km2) of a year from the exported tile maps by brute force: every pixel of
/// every tile, in tile order, at its own pixel area, unless a tile before it has a class at
/// its centre.
fn areas_from_tiles(out: &Path, year: i64) -> BTreeMap<u8, f64> {
    let tiles: Vec<RasterReader> = ["48A1", "48B1", "48C1", "49A2", "49B2", "49C2"]
        .iter()
        .map(|t| RasterReader::open(out.join(format!("map/tile={t},year={year}/map.tif"))).unwrap())
        .collect();
    let mut areas = BTreeMap::new();
    for (i, t) in tiles.iter().enumerate() {
        let g = t.grid().clone();
        let v = t.read_window_u8(1, &g.full_window()).unwrap();
        let mut free: Vec<bool> = v.iter().map(|c| *c != 0).collect();
        for e in &tiles[..i] {
            let eg = e.grid().clone();
            let ev = e.read_window_u8(1, &eg.full_window()).unwrap();
            let mut pts: Vec<PointFeature> = (0..g.pixel_count())
                .map(|k| {
                    let (x, y) =
                        g.pixel_to_geo((k % g.width) as f64 + 0.5, (k / g.width) as f64 + 0.5);
                    PointFeature {
                        id: k as i64,
                        x,
                        y,
                        attrs: BTreeMap::new(),
                    }
                })
                .collect();
            reproject_points(&mut pts, &g.crs_wkt, &eg.crs_wkt).unwrap();
            let et = eg.geo_transform;
            for (k, p) in pts.iter().enumerate() {
                let (c, r) = ((p.x - et[0]) / et[1], (p.y - et[3]) / et[5]);
                if c >= 0.0 && r >= 0.0 && c < eg.width as f64 && r < eg.height as f64 {
                    free[k] &= ev[r as usize * eg.width + c as usize] == 0;
                }
            }
        }
        let px_km2 = g.pixel_km2().unwrap();
        for (c, _) in v.iter().zip(&free).filter(|(_, f)| **f) {
            *areas.entry(*c).or_insert(0.0) += px_km2;
        }
    }
    areas
}

#[test]
fn lulc_tiles_lists_the_tiles_over_an_area_in_spec_form() {
    let dir = tempfile::tempdir().unwrap();
    let aoi = dir.path().join("hanoi.geojson");
    std::fs::write(
        &aoi,
        r#"{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
          "geometry": {"type": "Polygon", "coordinates": [[[105.80, 21.00], [105.90, 21.00],
          [105.90, 21.05], [105.80, 21.05], [105.80, 21.00]]]}}]}"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(bin())
            .arg("tiles")
            .arg("--aoi")
            .arg(&aoi)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.ends_with("tiles: [48QWJ]\n"), "{text}");
    // A tiling of one's own: 10 km tiles of UTM 48N around the area.
    let out = run(&[
        "--grid",
        r#"{crs: "EPSG:32648", bbox: [560000, 2300000, 620000, 2340000], res: 10, tile_px: 1000}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("tiles of the grid"), "{text}");
    let line = text.lines().last().unwrap();
    assert!(
        line.starts_with("tiles: [r") && line.contains("c2"),
        "{text}"
    );
    // Bad input: a grid that is no tiling, an area file that is not there.
    let out = run(&["--grid", "{crs: EPSG:32648}"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--grid"));
    let out = Command::new(bin())
        .args(["tiles", "--aoi", "nowhere.geojson"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the area `nowhere.geojson`: no such file"),
        "{err}"
    );
}

#[test]
fn lulc_mosaic_joins_exported_maps_and_refuses_a_raster_without_classes() {
    use lulc_nodes::raster::{DType, Grid, RasterMeta, RasterWriter, WriteOptions, crs_to_wkt};
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, x0: f64, class: u8, named: bool| {
        let grid = Grid {
            crs_wkt: crs_to_wkt("EPSG:32648").unwrap(),
            geo_transform: [x0, 10.0, 0.0, 2_000_000.0, 0.0, -10.0],
            width: 300,
            height: 200,
        };
        let meta = RasterMeta {
            grid: grid.clone(),
            dtype: DType::U8,
            nodata: Some(0.0),
            band_names: vec!["class".into()],
        };
        let path = dir.path().join(name);
        let mut w = RasterWriter::create(&path, &meta, &WriteOptions::default()).unwrap();
        if named {
            w.set_category_names(1, &[(3, "Rice"), (8, "Forest")])
                .unwrap();
        }
        w.write_window_u8(1, &grid.full_window(), &vec![class; 300 * 200])
            .unwrap();
        w.finish().unwrap();
        path
    };
    // Two maps overlapping by 100 columns: `a.tif` sorts first and keeps the overlap.
    let a = write("a.tif", 600_000.0, 3, true);
    let b = write("b.tif", 602_000.0, 8, true);
    let out = dir.path().join("national.tif");
    let run = |maps: &[&Path]| {
        Command::new(bin())
            .arg("mosaic")
            .args(maps)
            .arg("--out")
            .arg(&out)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let o = run(&[&b, &a]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("mosaic of 2 maps (0 reprojected): 500 x 200 px"),
        "{text}"
    );
    assert!(text.contains("20000 in overlaps"), "{text}");
    assert!(text.contains("mapped area 10.000 km2"), "{text}");
    let r = RasterReader::open(&out).unwrap();
    let v = r.read_window_u8(1, &r.grid().full_window()).unwrap();
    assert_eq!(v.iter().filter(|c| **c == 3).count(), 300 * 200);
    assert_eq!(v.iter().filter(|c| **c == 8).count(), 200 * 200);
    assert_eq!(r.category_names(1).unwrap()[&8], "Forest");
    assert!(dir.path().join("national.qml").is_file());
    let csv = std::fs::read_to_string(dir.path().join("national.tiles.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");

    let plain = write("plain.tif", 604_000.0, 3, false);
    let o = run(&[&a, &plain]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("plain.tif` names no classes"), "{err}");
}
