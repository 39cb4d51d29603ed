//! `lulc results`: the metrics steps recorded, read from the store without running anything.

use crate::support::{Project, YEARLY};

#[test]
fn results_lists_recorded_metrics_per_step_without_running() {
    let p = Project::new(YEARLY);
    // Before any run: the steps are listed, with no result.
    let before = p.lulc(&[
        "results",
        "pipeline.yaml",
        "--node",
        "window",
        "--format",
        "csv",
    ]);
    before.assert_ok();
    assert!(
        before.stdout.contains("window[year=2018],2018,new"),
        "{}",
        before.stdout
    );
    p.run(&[]).assert_ok();
    let csv = p.lulc(&[
        "results",
        "pipeline.yaml",
        "--node",
        "window",
        "--format",
        "csv",
    ]);
    csv.assert_ok();
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(lines[0], "node,id,year,status,parts");
    // window[year=Y] reads raw Y-1..Y+1: three parts each.
    assert_eq!(lines[1], "window,window[year=2018],2018,fresh,3");
    assert_eq!(lines.len(), 4, "{}", csv.stdout);
    let json = p.lulc(&["results", "pipeline.yaml", "--format", "json"]);
    json.assert_ok();
    let doc = json.json();
    let rows = doc.as_array().unwrap();
    // Without --node: every step that recorded metrics (the 3 windows and `all`).
    assert_eq!(rows.len(), 4, "{}", json.stdout);
    let all = rows.iter().find(|r| r["id"] == "all").unwrap();
    assert_eq!(all["metrics"]["parts"], 3);
    // Nothing ran: results only reads.
    let r = p.run(&[]);
    assert!(r.steps_with("ran").is_empty());
    let table = p.lulc(&[
        "results",
        "pipeline.yaml",
        "--node",
        "all",
        "--metric",
        "nope*",
    ]);
    table.assert_ok();
    assert!(!table.stdout.contains("parts"), "{}", table.stdout);
    let bad = p.lulc(&["results", "pipeline.yaml", "--node", "windw"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("no node `windw`"), "{}", bad.stderr);
}

#[test]
fn export_copies_fresh_outputs_under_readable_names() {
    let p = Project::new(YEARLY);
    // Nothing run yet: no result to export, exit 1, and the step is named.
    let early = p.lulc(&["export", "pipeline.yaml", "all", "--out", "out"]);
    assert_eq!(early.code, 1, "{}", early.stderr);
    assert!(early.stderr.contains("all"), "{}", early.stderr);
    p.run(&[]).assert_ok();
    let ex = p.lulc(&[
        "export",
        "pipeline.yaml",
        "window[year=2019]",
        "all",
        "--out",
        "out",
    ]);
    ex.assert_ok();
    let files: Vec<&str> = ex.stdout.lines().collect();
    assert!(!files.is_empty(), "{}", ex.stdout);
    // Every exported file is a byte copy of the store's blob that `show --json` names.
    for (step, dir) in [
        ("window[year=2019]", "out/window/year=2019"),
        ("all", "out/all"),
    ] {
        let show = p.lulc(&["show", "pipeline.yaml", step, "--json"]);
        show.assert_ok();
        let doc = show.json();
        let outputs = doc["outputs"].as_object().unwrap();
        assert_eq!(outputs.len(), 1);
        for f in outputs.values().next().unwrap()["files"]
            .as_object()
            .unwrap()
        {
            let (name, info) = f;
            let copy = p.path().join(dir).join(name);
            assert!(files.iter().any(|l| l.ends_with(&format!("{dir}/{name}"))));
            let blob = std::fs::read(info["path"].as_str().unwrap()).unwrap();
            assert_eq!(std::fs::read(&copy).unwrap(), blob, "{}", copy.display());
            // The copy is the user's: writable.
            assert!(!std::fs::metadata(&copy).unwrap().permissions().readonly());
        }
    }
    // Only what was asked for.
    assert!(!p.path().join("out/window/year=2018").exists());
    let bad = p.lulc(&["export", "pipeline.yaml", "windw", "--out", "out"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("did you mean `window`"),
        "{}",
        bad.stderr
    );
}
