//! Golden diagnostics: every `tests/ui/<case>/pipeline.yaml` is validated and its stderr compared
//! with `tests/ui/<case>/stderr`. Bless new output with `UPDATE_GOLDEN=1 make test`.

use std::path::Path;
use std::process::Command;

use crate::support::bin;

fn check_case(dir: &Path) -> Result<(), String> {
    let out = Command::new(bin())
        .args(["validate", "pipeline.yaml"])
        .current_dir(dir)
        .env("LULC_TEST_KINDS", "1")
        .env("NO_COLOR", "1")
        .output()
        .expect("run lulc");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    if out.status.code() != Some(2) {
        return Err(format!(
            "{name}: expected exit 2, got {:?}\n{stderr}",
            out.status.code()
        ));
    }
    let golden = dir.join("stderr");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &stderr).unwrap();
        return Ok(());
    }
    let expected = std::fs::read_to_string(&golden).map_err(|_| {
        format!("{name}: no golden file; bless it with UPDATE_GOLDEN=1\n--- got ---\n{stderr}")
    })?;
    if expected != stderr {
        return Err(format!(
            "{name}: stderr differs from golden\n--- expected ---\n{expected}\n--- got ---\n{stderr}"
        ));
    }
    Ok(())
}

#[test]
fn golden_diagnostics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 14, "the corpus shrank: {}", cases.len());
    let failures: Vec<String> = cases.iter().filter_map(|c| check_case(c).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_error_has_a_stable_code_and_points_into_the_yaml() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    for case in std::fs::read_dir(&root).unwrap().flatten() {
        let Ok(golden) = std::fs::read_to_string(case.path().join("stderr")) else {
            continue;
        };
        assert!(
            golden.contains("spec::"),
            "{:?} has no error code",
            case.path()
        );
        assert!(
            golden.contains("pipeline.yaml:"),
            "{:?} does not point into the YAML",
            case.path()
        );
    }
}

#[test]
fn all_errors_are_reported_at_once() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/many_errors");
    let golden = std::fs::read_to_string(root.join("stderr")).unwrap();
    for code in [
        "spec::unknown_reference",
        "spec::unknown_param",
        "spec::unknown_kind",
        "spec::missing_node",
        "spec::invalid_param",
    ] {
        assert!(golden.contains(code), "missing {code} in\n{golden}");
    }
}
