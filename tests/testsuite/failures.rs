//! Failures, corruption, interruption and concurrency: nothing finished is lost, nothing corrupt
//! is used.

use std::time::Duration;

use crate::support::{FORKED, Project, YEARLY};

#[test]
fn failure_skips_descendants_and_keeps_independent_branches() {
    let p = Project::new(FORKED);
    let r = p.run(&[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.step("bad")["status"], "failed");
    assert_eq!(r.step("after_bad")["status"], "skipped");
    assert_eq!(r.step("good")["status"], "ran");
    // the report underlines the failed step in the YAML
    assert!(r.stderr.contains("run::step_failed"), "{}", r.stderr);
    assert!(r.stderr.contains("failing on purpose"), "{}", r.stderr);
    assert!(r.stderr.contains("bad:"), "{}", r.stderr);
    // fixed: only the failed and skipped steps run
    p.write_spec(&FORKED.replace("fail: true", "note: fixed"));
    let r = p.run(&[]);
    r.assert_ok();
    let mut ran = r.steps_with("ran");
    ran.sort();
    assert_eq!(ran, vec!["after_bad".to_string(), "bad".to_string()]);
}

#[test]
fn panicking_node_is_a_failed_step_not_a_crash() {
    let p = Project::new(&FORKED.replace("fail: true", "panic: true"));
    let r = p.run(&[]);
    assert_eq!(r.code, 1);
    assert_eq!(r.step("bad")["status"], "failed");
    assert!(
        r.step("bad")["reason"]
            .as_str()
            .unwrap()
            .contains("panicked")
    );
    assert_eq!(r.step("good")["status"], "ran");
}

#[test]
fn fail_fast_stops_starting_new_steps() {
    let spec = r#"
name: ff
nodes:
  a: { kind: emit, params: { value: 1 } }
  bad: { kind: combine, inputs: { parts: a }, params: { fail: true } }
  slow1: { kind: emit, params: { value: 2, delay_ms: 300 }, inputs: { after: bad } }
  other: { kind: combine, inputs: { parts: a } }
  later: { kind: combine, inputs: { parts: other } }
"#;
    let p = Project::new(spec);
    let r = p.run(&["--fail-fast", "--jobs", "1"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.step("slow1")["status"], "skipped");
    // `later` was ready but not started: skipped, and said so like every other step.
    assert_eq!(r.step("later")["status"], "skipped");
    assert!(
        r.stderr
            .lines()
            .any(|l| l.contains("[SKIPPED] later") && l.contains("stopped at first failure")),
        "{}",
        r.stderr
    );
}

#[test]
fn corrupt_blob_is_detected_and_recomputed() {
    let p = Project::new(YEARLY);
    p.run(&[]).assert_ok();
    let blobs = p.blobs();
    assert!(!blobs.is_empty());
    // flip a byte in every blob of one step's file: find the value.json of raw[year=2019]
    let show = p.lulc(&["show", "pipeline.yaml", "raw[year=2019]", "--json"]);
    let path = show.json()["outputs"]["out"]["files"]["value.json"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let v = p.lulc(&["verify"]);
    assert_eq!(v.code, 1, "{}", v.stdout);
    assert!(v.stdout.contains("CORRUPT"), "{}", v.stdout);
    assert!(v.stdout.contains("raw[year=2019]"), "{}", v.stdout);
    let plan = p.plan(&[]);
    assert_ne!(plan.step("raw[year=2019]")["status"], "fresh");
    let r = p.run(&[]);
    r.assert_ok();
    assert_eq!(r.step("raw[year=2019]")["status"], "ran");
    // identical bytes again: downstream stays cached (early cutoff)
    assert_eq!(r.step("window[year=2019]")["status"], "cached");
    let v = p.lulc(&["verify"]);
    v.assert_ok();
}

#[test]
fn corrupt_input_is_never_used_by_a_running_step() {
    let p = Project::new(YEARLY);
    p.run(&[]).assert_ok();
    let show = p.lulc(&["show", "pipeline.yaml", "window[year=2019]", "--json"]);
    let path = show.json()["outputs"]["out"]["files"]["value.json"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    // same size, different content: only a re-hash notices
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    // make `all` re-run so it reads the corrupt input
    let r = p.run(&["--set", "all.op=sum"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.step("all")["reason"]
            .as_str()
            .unwrap()
            .contains("corrupt"),
        "{}",
        r.stdout
    );
    // the next run recomputes the corrupt step and succeeds
    let r = p.run(&["--set", "all.op=list"]);
    r.assert_ok();
    assert_eq!(r.step("window[year=2019]")["status"], "ran");
}

#[test]
fn killed_run_resumes_and_recomputes_only_unfinished_steps() {
    let spec = r#"
name: slow
params: { ids: 1..12 }
nodes:
  work:
    kind: emit
    for_each: { id: ids }
    params: { value: "${id}", delay_ms: 150 }
  all: { kind: combine, inputs: { parts: work } }
"#;
    let p = Project::new(spec);
    let mut child = p
        .cmd(&["run", "pipeline.yaml", "--jobs", "2"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let r = p.run(&[]);
    r.assert_ok();
    let ran = r.steps_with("ran").len();
    let cached = r.steps_with("cached").len();
    assert!(
        cached >= 2,
        "some steps finished before the kill: {}",
        r.stdout
    );
    assert_eq!(ran + cached, 13);
    p.lulc(&["verify"]).assert_ok();
}

#[test]
fn concurrent_runs_do_not_compute_a_step_twice() {
    let spec = r#"
name: conc
params: { ids: 1..8 }
nodes:
  work:
    kind: emit
    for_each: { id: ids }
    params: { value: "${id}", delay_ms: 200 }
  all: { kind: combine, inputs: { parts: work } }
"#;
    let p = Project::new(spec);
    let a = p
        .cmd(&["run", "pipeline.yaml", "--json", "--jobs", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = p
        .cmd(&["run", "pipeline.yaml", "--json", "--jobs", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let oa = a.wait_with_output().unwrap();
    let ob = b.wait_with_output().unwrap();
    assert!(
        oa.status.success(),
        "{}",
        String::from_utf8_lossy(&oa.stderr)
    );
    assert!(
        ob.status.success(),
        "{}",
        String::from_utf8_lossy(&ob.stderr)
    );
    let ja: serde_json::Value = serde_json::from_slice(&oa.stdout).unwrap();
    let jb: serde_json::Value = serde_json::from_slice(&ob.stdout).unwrap();
    let ran = |j: &serde_json::Value| {
        j["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "ran")
            .count()
    };
    assert_eq!(
        ran(&ja) + ran(&jb),
        9,
        "each step computed exactly once across both runs"
    );
    let out = |j: &serde_json::Value| {
        j["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "all")
            .unwrap()["outputs"]
            .clone()
    };
    assert_eq!(out(&ja), out(&jb));
}

#[test]
fn a_cache_hit_counts_as_a_use_for_gc_max_size() {
    let p = Project::new("name: lru\nnodes:\n  a: { kind: emit, params: { value: 1 } }\n");
    p.run(&[]).assert_ok();
    p.run(&["--set", "a.value=2"]).assert_ok();
    // value 1 was computed before value 2, but is used after it.
    let hit = p.run(&[]);
    hit.assert_ok();
    assert_eq!(hit.steps_with("cached"), vec!["a"]);
    p.run(&["--set", "a.value=3"]).assert_ok();
    // Three results of the same size; room for the newest run's and one more.
    let total: u64 = p
        .blobs()
        .iter()
        .map(|b| std::fs::metadata(b).unwrap().len())
        .sum();
    let gc = p.lulc(&["gc", "--max-size", &(total * 2 / 3).to_string()]);
    gc.assert_ok();
    let again = |set: &str| p.run(&["--set", set]).steps_with("ran");
    assert!(again("a.value=1").is_empty(), "the value used last is kept");
    assert_eq!(
        again("a.value=2"),
        vec!["a"],
        "the least recently used is evicted"
    );
}

#[test]
fn gc_dry_run_then_real() {
    let p = Project::new(YEARLY);
    p.run(&[]).assert_ok();
    p.run(&["--set", "raw.value=other"]).assert_ok();
    let before = p.blobs().len();
    let dry = p.lulc(&["gc", "--keep-runs", "1", "--dry-run"]);
    dry.assert_ok();
    assert!(dry.stdout.contains("would remove"), "{}", dry.stdout);
    assert_eq!(p.blobs().len(), before, "dry run deletes nothing");
    let real = p.lulc(&["gc", "--keep-runs", "1"]);
    real.assert_ok();
    assert!(p.blobs().len() < before, "{}", real.stdout);
    // the newest run's results are intact
    let r = p.run(&["--set", "raw.value=other"]);
    r.assert_ok();
    assert!(r.steps_with("ran").is_empty(), "{}", r.stdout);
}
