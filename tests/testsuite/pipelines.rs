//! Every shipped spec in `pipelines/` is valid.

use std::path::Path;
use std::process::Command;

use crate::support::bin;

#[test]
fn every_shipped_pipeline_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut specs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    specs.sort();
    assert!(!specs.is_empty());
    for spec in specs {
        let out = Command::new(bin())
            .arg("validate")
            .arg(&spec)
            .env("LULC_TEST_KINDS", "1")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} is invalid:\n{}",
            spec.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn engine_demo_runs_and_an_added_year_runs_only_its_branch() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/engine-demo.yaml");
    let run = |extra: &[&str]| {
        let out = Command::new(bin())
            .args(["run", spec.to_str().unwrap(), "--json", "--store"])
            .arg(dir.path())
            .args(extra)
            .env("LULC_TEST_KINDS", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    run(&[]);
    let doc = run(&["--set", "years=2017..2023"]);
    let mut ran: Vec<String> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "ran")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    ran.sort();
    // acquire 2024 (padding), composite 2023 and migrate 2023 per sweep point, and the steps
    // that gather every year (train, count) per sweep point.
    let expected_new = ran
        .iter()
        .filter(|id| id.contains("2023") || id.contains("2024"))
        .count();
    assert_eq!(expected_new, 1 + 1 + 3, "{ran:?}");
    assert!(
        ran.iter().all(|id| id.contains("2023")
            || id.contains("2024")
            || id.starts_with("train[")
            || id.starts_with("count[")),
        "{ran:?}"
    );
    assert!(ran.iter().any(|id| id == "composite[year=2023]"), "{ran:?}");
    assert!(
        !ran.iter().any(|id| id == "composite[year=2022]"),
        "2022's inputs 2021..2023 all existed: {ran:?}"
    );
}
