//! Golden diagnostics: every `tests/ui/<case>/pipeline.yaml` is validated and its stderr compared
//! with `tests/ui/<case>/stderr`. Bless new output with `UPDATE_GOLDEN=1 make test`.

use std::path::Path;
use std::process::Command;

use crate::support::bin;

fn validate(dir: &Path) -> std::process::Output {
    Command::new(bin())
        .args(["validate", "pipeline.yaml"])
        .current_dir(dir)
        .env("LULC_TEST_KINDS", "1")
        .env("NO_COLOR", "1")
        .output()
        .expect("run lulc")
}

fn check_case(dir: &Path) -> Result<(), String> {
    let out = validate(dir);
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
    assert!(cases.len() >= 50, "the corpus shrank: {}", cases.len());
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

fn golden(case: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ui")
        .join(case)
        .join("stderr");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Hostile documents are stopped by the parser's budgets (what bounds time and memory), each
/// saying which one: not by a timeout, not by a crash.
#[test]
fn hostile_yaml_is_stopped_by_a_budget() {
    for (case, says) in [
        ("alias_bomb", "expands to more than 250000 YAML values"),
        ("deep_nesting", "nests deeper than 48 levels"),
        ("deep_nesting_block", "nests deeper than 48 levels"),
    ] {
        let g = golden(case);
        assert!(g.contains("spec::yaml_syntax"), "{case}:\n{g}");
        assert!(g.contains(says), "{case}:\n{g}");
        assert!(g.contains("the parser stopped here"), "{case}:\n{g}");
        assert!(
            g.contains("1 error in"),
            "{case}: one error, then stop:\n{g}"
        );
    }
}

/// A 5 MiB spec (generated here rather than committed) is refused before it is parsed.
#[test]
fn huge_spec_is_refused_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("name: huge\nnodes:\n");
    let mut i = 0;
    while text.len() < 5 << 20 {
        text.push_str(&format!(
            "  n{i}: {{ kind: emit, params: {{ value: {i} }} }}\n"
        ));
        i += 1;
    }
    std::fs::write(dir.path().join("pipeline.yaml"), &text).unwrap();
    let out = validate(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("spec::too_big"), "{stderr}");
    assert!(
        stderr.contains(&format!("({} bytes)", text.len())),
        "{stderr}"
    );
    assert!(
        stderr.contains("larger than the limit of 4194304 bytes"),
        "{stderr}"
    );
}

/// A spec of 20,000 nodes that all read a missing node (within the parser's budget of 250,000
/// YAML values) is lowered without a quadratic "did you mean" over every name, and reports a
/// bounded number of errors.
#[test]
fn large_spec_with_an_error_per_node_reports_the_first_hundred() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("name: large\nnodes:\n");
    let mut i = 0;
    while text.len() < 3 << 19 {
        text.push_str(&format!(
            "  node_{i}: {{ kind: combine, inputs: {{ parts: missing_{i} }} }}\n"
        ));
        i += 1;
    }
    std::fs::write(dir.path().join("pipeline.yaml"), &text).unwrap();
    let out = validate(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{i} errors in `pipeline.yaml` (the first 100 shown)"
        )),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    assert_eq!(stderr.matches("spec::missing_node").count(), 100);
}
