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
