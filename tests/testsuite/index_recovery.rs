//! The SQLite index deleted or corrupted: detected, explained, rebuilt from the step records.

use std::fs;
use std::path::PathBuf;

use crate::support::{Project, Run, YEARLY, step_outputs};

/// Runs YEARLY once; returns the project and its `run --json` document.
fn first_run() -> (Project, serde_json::Value) {
    let p = Project::new(YEARLY);
    let r = p.run(&[]);
    r.assert_ok();
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    let doc = r.json();
    assert_eq!(r.steps_with("ran").len(), 9, "{}", r.stdout);
    (p, doc)
}

fn index(p: &Project) -> PathBuf {
    p.store().join("index.sqlite")
}

fn remove_index(p: &Project) {
    for suffix in ["", "-wal", "-shm"] {
        let path = p.store().join(format!("index.sqlite{suffix}"));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

/// The re-run after the damage: one warning, nothing ran, every output as before.
fn assert_rebuilt_and_all_cached(p: &Project, before: &serde_json::Value, problem: &str) -> Run {
    let r = p.run(&[]);
    r.assert_ok();
    let warning = format!("warning: index.sqlite was {problem}");
    assert_eq!(r.stderr.matches("warning:").count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains(&warning), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("rebuilt from 9 step records (none skipped)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("run history before this point is lost"),
        "{}",
        r.stderr
    );
    assert_eq!(r.steps_with("ran"), Vec::<String>::new(), "{}", r.stdout);
    assert_eq!(r.steps_with("cached").len(), 9, "{}", r.stdout);
    assert_eq!(step_outputs(&r.json()), step_outputs(before));
    // Said once: the next command finds a healthy index.
    let again = p.run(&[]);
    again.assert_ok();
    assert!(!again.stderr.contains("warning"), "{}", again.stderr);
    assert_eq!(again.steps_with("cached").len(), 9);
    r
}

fn assert_verify_clean(p: &Project) {
    let v = p.lulc(&["verify"]);
    v.assert_ok();
    assert!(
        v.stdout.contains("0 corrupt (quarantined), 0 missing"),
        "{}",
        v.stdout
    );
    assert!(
        v.stdout
            .contains("index.sqlite passed PRAGMA integrity_check"),
        "{}",
        v.stdout
    );
    assert!(!v.stdout.contains("wrote back"), "{}", v.stdout);
}

#[test]
fn a_deleted_index_is_rebuilt_and_nothing_reruns() {
    let (p, before) = first_run();
    remove_index(&p);
    let r = assert_rebuilt_and_all_cached(&p, &before, "missing");
    assert!(!r.stderr.contains("bad index is kept"), "{}", r.stderr);
    assert_verify_clean(&p);
}

#[test]
fn a_garbage_index_is_quarantined_and_rebuilt() {
    let (p, before) = first_run();
    remove_index(&p);
    let garbage = "not sqlite at all \u{1}\u{2}\u{3} ".repeat(500);
    fs::write(index(&p), &garbage).unwrap();
    let r = assert_rebuilt_and_all_cached(&p, &before, "corrupt: ");
    // The evidence is kept where the warning says.
    let kept = r
        .stderr
        .split("the bad index is kept at ")
        .nth(1)
        .expect("quarantine path")
        .lines()
        .next()
        .unwrap()
        .trim();
    assert!(
        kept.starts_with(&p.store().join("quarantine").display().to_string()),
        "{kept}"
    );
    assert_eq!(fs::read_to_string(kept).unwrap(), garbage);
    assert_verify_clean(&p);
}

#[test]
fn a_truncated_index_is_rebuilt() {
    let (p, before) = first_run();
    // Emptied: a valid, empty database as far as SQLite is concerned.
    fs::File::options()
        .write(true)
        .open(index(&p))
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_rebuilt_and_all_cached(&p, &before, "empty");

    // Cut in the middle of its pages.
    let len = fs::metadata(index(&p)).unwrap().len();
    assert!(len > 8192, "{len}");
    fs::File::options()
        .write(true)
        .open(index(&p))
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_rebuilt_and_all_cached(&p, &before, "corrupt: ");
    assert_verify_clean(&p);
}

#[test]
fn plan_after_a_rebuild_is_all_fresh_and_explains_itself() {
    let (p, _) = first_run();
    remove_index(&p);
    let plan = p.plan(&[]);
    plan.assert_ok();
    assert!(
        plan.stderr.contains("warning: index.sqlite was missing"),
        "{}",
        plan.stderr
    );
    assert_eq!(plan.steps_with("fresh").len(), 9, "{}", plan.stdout);
}

#[test]
fn a_step_whose_blob_is_gone_recomputes_after_a_rebuild() {
    let (p, before) = first_run();
    let show = p.lulc(&["show", "pipeline.yaml", "raw[year=2019]", "--json"]);
    show.assert_ok();
    let path = show.json()["outputs"]["out"]["files"]["value.json"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    fs::remove_file(&path).unwrap();
    remove_index(&p);
    let r = p.run(&[]);
    r.assert_ok();
    assert!(
        r.stderr
            .contains("rebuilt from 8 step records (1 skipped, those steps will re-run: 1 with a missing blob)"),
        "{}",
        r.stderr
    );
    assert_eq!(r.steps_with("ran"), vec!["raw[year=2019]".to_string()]);
    // Same bytes again: everything downstream stays cached and equal.
    assert_eq!(r.steps_with("cached").len(), 8);
    assert_eq!(step_outputs(&r.json()), step_outputs(&before));
    assert_verify_clean(&p);
}

#[test]
fn verify_writes_back_missing_record_files_so_a_later_loss_is_recoverable() {
    let (p, before) = first_run();
    // A store made before record files existed has none.
    fs::remove_dir_all(p.store().join("records")).unwrap();
    let v = p.lulc(&["verify"]);
    v.assert_ok();
    assert!(
        v.stdout
            .contains("wrote back 9 missing and 0 unreadable or stale step record files"),
        "{}",
        v.stdout
    );
    assert_verify_clean(&p);
    remove_index(&p);
    assert_rebuilt_and_all_cached(&p, &before, "missing");
}

#[test]
fn damaged_pages_are_caught_when_the_store_opens() {
    let (p, before) = first_run();
    let mut bytes = fs::read(index(&p)).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n - 3000..n - 100] {
        *b = 0xa5;
    }
    fs::write(index(&p), &bytes).unwrap();
    let r = assert_rebuilt_and_all_cached(&p, &before, "corrupt: quick_check: ");
    let warning = r
        .stderr
        .lines()
        .find(|l| l.starts_with("warning:"))
        .unwrap();
    assert!(warning.contains("the bad index is kept at"), "{}", r.stderr);
    assert_verify_clean(&p);
}

#[test]
fn verify_reports_an_index_that_fails_integrity_check() {
    let (p, before) = first_run();
    // Rename the run's scope in the `runs` table page only (the page that holds its argv),
    // not in the `runs_by_scope` index: a disagreement only `integrity_check` looks for.
    let mut bytes = fs::read(index(&p)).unwrap();
    let argv = bytes
        .windows(b"\"run\",\"pipeline.yaml\"".len())
        .position(|w| w == b"\"run\",\"pipeline.yaml\"")
        .expect("the run's argv");
    let page = argv / 4096 * 4096;
    let in_page = bytes[page..page + 4096]
        .windows(6)
        .position(|w| w == b"yearly")
        .expect("the run's scope");
    bytes[page + in_page + 5] = b'z';
    fs::write(index(&p), &bytes).unwrap();

    let v = p.lulc(&["verify"]);
    assert_eq!(v.code, 1, "{}\n{}", v.stdout, v.stderr);
    assert!(
        v.stdout
            .contains("INDEX row 1 missing from index runs_by_scope"),
        "{}",
        v.stdout
    );
    assert!(
        v.stdout
            .contains("fails PRAGMA integrity_check, nothing else was checked"),
        "{}",
        v.stdout
    );
    // Following its advice recovers every result.
    let kept = p.store().join("quarantine/index-by-hand.sqlite");
    fs::rename(index(&p), &kept).unwrap();
    assert_rebuilt_and_all_cached(&p, &before, "missing");
    assert_verify_clean(&p);
}
