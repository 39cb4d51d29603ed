//! Data in, end to end through the real binary: `lulc simulate` writes real files, `acquire`
//! reads them through the same STAC + GDAL code as real data, and the results are deterministic
//! whatever `--jobs`.

use std::path::Path;
use std::process::Command;

use crate::support::{Project, bin};

fn simulate(out: &Path) {
    let o = Command::new(bin())
        .args(["simulate", "--size", "64", "--years", "2019..2021", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("sentinel-2-l2a"), "{stdout}");
}

fn spec(catalog: &Path) -> String {
    format!(
        r#"
name: data-in
params:
  years: 2020..2020
nodes:
  s2:
    kind: acquire
    for_each: {{ year: years }}
    params: {{ catalog: "{c}", collection: sentinel-2-l2a, months: [1, 2, 3] }}
  s1:
    kind: acquire
    for_each: {{ year: years }}
    params: {{ catalog: "{c}", collection: sentinel-1-grd, months: [1, 2, 3] }}
  dsm:
    kind: acquire
    params: {{ catalog: "{c}", collection: dsm }}
"#,
        c = catalog.join("catalog.json").display()
    )
}

#[test]
fn simulate_then_acquire_is_deterministic_and_cached() {
    let sim = tempfile::tempdir().unwrap();
    simulate(sim.path());
    let a = Project::new(&spec(sim.path()));
    let b = Project::new(&spec(sim.path()));
    let allow = sim.path().to_str().unwrap();
    let ra = a.run(&["--jobs", "1", "--allow-path", allow]);
    let rb = b.run(&["--jobs", "3", "--allow-path", allow]);
    ra.assert_ok();
    rb.assert_ok();
    assert_eq!(ra.steps_with("ran").len(), 3);
    for id in ["s2[year=2020]", "s1[year=2020]", "dsm"] {
        assert_eq!(
            ra.step(id)["outputs"],
            rb.step(id)["outputs"],
            "{id} differs between --jobs 1 and 3"
        );
    }
    // the scenes are real GeoTIFFs on the 64 px grid, S2 with the SCL band last
    let show = a.lulc(&["show", "pipeline.yaml", "s2[year=2020]", "--json"]);
    show.assert_ok();
    let doc = show.json();
    let meta = &doc["outputs"]["scenes"]["meta"];
    assert_eq!(meta["grid"]["width"], 64);
    let scenes = meta["scenes"].as_array().unwrap();
    assert!(
        scenes.len() >= 15,
        "Jan-Mar at a 5-day revisit: {}",
        scenes.len()
    );
    assert!(
        scenes
            .iter()
            .all(|s| s["date"].as_str().unwrap().starts_with("2020-0"))
    );
    assert_eq!(
        scenes[0]["bands"].as_array().unwrap().last().unwrap(),
        "SCL"
    );
    // no-op re-run
    let again = a.run(&[]);
    again.assert_ok();
    assert_eq!(again.steps_with("cached").len(), 3);
}

#[test]
fn missing_catalog_is_a_failed_step_naming_the_file() {
    let p = Project::new(&spec(Path::new("nonexistent/sim")));
    let r = p.run(&[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("nonexistent/sim/catalog.json"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("run::step_failed"), "{}", r.stderr);
}

#[test]
fn spec_paths_cannot_leave_the_spec_dir_unless_the_user_allows_it() {
    let sim = tempfile::tempdir().unwrap();
    simulate(sim.path());
    // An absolute path elsewhere, `..` out of the project, and a symlink out of it: refused.
    let p = Project::new(&spec(sim.path()));
    let r = p.run(&[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("outside the spec's directory"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--allow-path"), "{}", r.stderr);
    assert_eq!(r.steps_with("failed").len(), 3);
    let rel = format!("../{}", sim.path().file_name().unwrap().to_str().unwrap());
    let up = Project::new(&spec(Path::new(&rel)));
    std::fs::create_dir_all(up.path()).unwrap();
    let r = up.run(&[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("outside the spec's directory"),
        "{}",
        r.stderr
    );
    let link = Project::new(&spec(Path::new("data")));
    std::os::unix::fs::symlink(sim.path(), link.path().join("data")).unwrap();
    let r = link.run(&[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("outside the spec's directory"),
        "{}",
        r.stderr
    );
    // The person running the spec allows the directory: the same spec runs.
    let r = link.run(&["--allow-path", sim.path().to_str().unwrap()]);
    r.assert_ok();
    assert_eq!(r.steps_with("ran").len(), 3);
}

/// A one-node spec acquiring the DSM from `catalog` (`local` or `stac`).
fn dsm_spec(source: &str, catalog: &str) -> String {
    format!(
        "name: confined\nnodes:\n  dsm:\n    kind: acquire\n    params: {{ source: {source}, catalog: \"{catalog}\", collection: dsm }}\n"
    )
}

fn dsm_manifest(file: &str) -> String {
    format!(
        r#"[{{"id": "dsm", "date": "2011-05-12", "sensor": "dsm", "bands": {{"DSM": "{file}"}}}}]"#
    )
}

/// A raster VRT of one band of `source` (as written, absolute or relative to the VRT).
fn vrt(source: &str) -> String {
    format!(
        r#"<VRTDataset rasterXSize="8" rasterYSize="8">
  <VRTRasterBand dataType="Float32" band="1">
    <SimpleSource><SourceFilename relativeToVRT="1">{source}</SourceFilename><SourceBand>1</SourceBand></SimpleSource>
  </VRTRasterBand>
</VRTDataset>
"#
    )
}

#[test]
fn paths_found_in_manifests_items_and_vrts_stay_in_the_spec_dir() {
    let outside = tempfile::tempdir().unwrap();
    simulate(outside.path());
    let tif = outside.path().join("dsm/data/AW3D30_48QXH_sim/DSM.tif");
    let tif_s = tif.to_str().unwrap();
    let refused = |p: &Project, needle: &str| {
        p.run(&[]).assert_fails(1, &[needle]);
        assert!(
            p.blobs().is_empty(),
            "nothing of the outside file is stored"
        );
    };
    // A manifest listing an absolute path elsewhere, and one going up with `..`.
    let p = Project::new(&dsm_spec("local", "manifest.json"));
    std::fs::write(p.path().join("manifest.json"), dsm_manifest(tif_s)).unwrap();
    refused(&p, "outside the spec's directory");
    let up = format!(
        "../{}/dsm/data/AW3D30_48QXH_sim/DSM.tif",
        outside.path().file_name().unwrap().to_str().unwrap()
    );
    assert!(p.path().join(&up).exists(), "{up}");
    std::fs::write(p.path().join("manifest.json"), dsm_manifest(&up)).unwrap();
    refused(&p, "outside the spec's directory");
    // A VRT in the folder whose source is elsewhere, directly or through a second VRT.
    std::fs::write(p.path().join("manifest.json"), dsm_manifest("dsm.vrt")).unwrap();
    std::fs::write(p.path().join("dsm.vrt"), vrt(tif_s)).unwrap();
    refused(&p, "dsm.vrt` reads another file");
    std::fs::write(p.path().join("dsm.vrt"), vrt("inner.vrt")).unwrap();
    std::fs::write(p.path().join("inner.vrt"), vrt(tif_s)).unwrap();
    refused(&p, "inner.vrt` reads another file");
    // A pattern matching through a symlinked folder.
    let p = Project::new(&dsm_spec("local", "archive/*/manifest.json"));
    std::fs::create_dir(p.path().join("archive")).unwrap();
    std::fs::write(
        outside.path().join("manifest.json"),
        dsm_manifest("dsm/data/AW3D30_48QXH_sim/DSM.tif"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), p.path().join("archive/old")).unwrap();
    refused(&p, "param `catalog` matches a manifest");
    // A STAC item on disk whose asset, or a catalog whose link, points elsewhere.
    let p = Project::new(&dsm_spec("stac", "cat/catalog.json"));
    let item_src = std::fs::read_dir(outside.path().join("dsm/items"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut item: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&item_src).unwrap()).unwrap();
    item["assets"]["DSM"]["href"] = tif_s.into();
    item["links"] = serde_json::json!([]);
    std::fs::create_dir(p.path().join("cat")).unwrap();
    std::fs::write(p.path().join("cat/item.json"), item.to_string()).unwrap();
    let catalog = |href: &str| {
        serde_json::json!({"type": "Catalog", "stac_version": "1.0.0", "id": "c",
            "description": "c", "links": [{"rel": "item", "href": href}]})
        .to_string()
    };
    std::fs::write(p.path().join("cat/catalog.json"), catalog("item.json")).unwrap();
    refused(&p, "outside the spec's directory");
    std::fs::write(
        p.path().join("cat/catalog.json"),
        catalog(item_src.to_str().unwrap()),
    )
    .unwrap();
    refused(&p, "a STAC link");
    // Allowed on purpose, a VRT of the outside file (as `gdal_translate -of VRT` writes it)
    // runs: the check is on the paths, not on VRTs.
    let p = Project::new(&dsm_spec("local", "manifest.json"));
    std::fs::write(p.path().join("manifest.json"), dsm_manifest("dsm.vrt")).unwrap();
    let made = Command::new("gdal_translate")
        .args(["-q", "-of", "VRT", tif_s])
        .arg(p.path().join("dsm.vrt"))
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped the allowed-VRT case: gdal_translate (gdal-bin) is not installed");
        return;
    }
    refused(&p, "dsm.vrt` reads another file");
    let r = p.run(&["--allow-path", outside.path().to_str().unwrap()]);
    r.assert_ok();
    assert_eq!(r.steps_with("ran"), vec!["dsm".to_string()]);
}

#[test]
fn an_ogr_vrt_of_points_is_refused_with_what_to_do() {
    let p =
        Project::new("name: pts\nnodes:\n  pts: { kind: points, params: { path: points.vrt } }\n");
    std::fs::write(
        p.path().join("points.vrt"),
        "<OGRVRTDataSource><OGRVRTLayer name=\"p\"><SrcDataSource>/etc/passwd</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>",
    )
    .unwrap();
    p.run(&[])
        .assert_fails(1, &["GDAL virtual dataset (OGR_VRT)", "ogr2ogr out.gpkg"]);
}

/// A DSM of 40,000 x 40,000 px (1.6e9 pixels: a source VRT without sources, so it costs no
/// disk) acquired without a `grid`: the step says the grid, where it came from and what it will
/// write before it reads a pixel, then how far it got, and stops on Ctrl-C.
#[test]
fn a_huge_implied_grid_is_said_before_the_work_and_its_progress_while_it_runs() {
    use std::io::{BufRead, BufReader};
    let p = Project::new(&dsm_spec("local", "manifest.json"));
    std::fs::write(p.path().join("manifest.json"), dsm_manifest("dsm.vrt")).unwrap();
    std::fs::write(
        p.path().join("dsm.vrt"),
        r#"<VRTDataset rasterXSize="40000" rasterYSize="40000">
  <SRS>EPSG:32648</SRS>
  <GeoTransform>600000, 30, 0, 1200000, 0, -30</GeoTransform>
  <VRTRasterBand dataType="Float32" band="1"/>
</VRTDataset>
"#,
    )
    .unwrap();
    let mut child = p
        .cmd(&["run", "pipeline.yaml"])
        .env("LULC_PROGRESS_SECS", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let started = std::time::Instant::now();
    let mut line = String::new();
    while started.elapsed() < std::time::Duration::from_secs(300) {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            break;
        }
        lines.push(line.trim_end().to_string());
        if line.starts_with("progress:") {
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    let status = child.wait().unwrap();
    let all = format!("{}\n{rest}", lines.join("\n"));
    let note = lines
        .iter()
        .find(|l| l.starts_with("note: dsm: "))
        .unwrap_or_else(|| panic!("no note before the work: {all}"));
    for needle in [
        "1 scene(s) of 1 band(s) on a grid of 40000 x 40000 px (1.6e9 pixels, the first scene's \
         own grid, as the step has no `grid` param): up to 6.0 GiB to warp and write",
        "the store's disk has",
        "give `grid` (crs, bbox, res)",
    ] {
        assert!(note.contains(needle), "{needle}\n{all}");
    }
    let progress = lines.last().unwrap();
    assert!(
        progress.starts_with("progress: dsm: ")
            && progress.contains(" of 24649 blocks of 256 x 256 px (0 %)")
            && progress.contains("left"),
        "{all}"
    );
    assert_eq!(status.code(), Some(130), "{all}");
}

/// A step's warnings reach the person running it: printed under its line when it finishes.
#[test]
fn a_steps_warnings_are_printed_when_it_finishes() {
    let p = Project::new(
        "name: warned\nnodes:\n  reference:\n    kind: points\n    params: { path: points.csv, crs: \"EPSG:32648\" }\n",
    );
    std::fs::write(
        p.path().join("points.csv"),
        "id,x,y,class\n1,600005,1199995,3\n2,600015,1199995,0\n",
    )
    .unwrap();
    let r = p.lulc(&["run", "pipeline.yaml"]);
    r.assert_ok();
    let warning = r
        .stderr
        .lines()
        .find(|l| l.starts_with("warning: reference: "))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(warning.contains("dropped 1"), "{}", r.stderr);
}
