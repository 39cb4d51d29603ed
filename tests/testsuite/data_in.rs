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
