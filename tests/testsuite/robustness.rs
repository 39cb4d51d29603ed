//! Hostile and careless use: a folder that is not a store, odd names and values, huge or
//! malformed input. Nothing of the user's is deleted, nothing crashes, every refusal says what
//! to do.

use std::time::{Duration, SystemTime};

use crate::support::Project;

const TWO: &str = "name: two\nnodes:\n  a: { kind: emit, params: { value: 1 } }\n  b: { kind: combine, inputs: { parts: a } }\n";

fn age(path: &std::path::Path, by: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - by)
        .unwrap();
}

#[test]
fn gc_and_verify_refuse_a_folder_that_is_not_a_store_and_touch_nothing() {
    let p = Project::new(TWO);
    let folder = p.path().join("thesis");
    std::fs::create_dir_all(folder.join("tmp")).unwrap();
    let draft = folder.join("tmp/thesis-draft.txt");
    std::fs::write(&draft, "chapter 1").unwrap();
    age(&draft, Duration::from_secs(3 * 3600));
    for cmd in ["gc", "verify"] {
        let r = p.lulc(&[cmd, "--store", folder.to_str().unwrap()]);
        assert_eq!(r.code, 1, "{cmd}: {}", r.stderr);
        assert!(r.stderr.contains("cache::not_a_store"), "{}", r.stderr);
        assert!(r.stderr.contains("has no lulc-store.json"), "{}", r.stderr);
    }
    // `run` does not make a store of it either.
    let r = p.run(&["--store", folder.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("cache::not_a_store"), "{}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec!["tmp"], "nothing created");
    assert_eq!(std::fs::read_to_string(&draft).unwrap(), "chapter 1");
    // A path to a file is said to be one.
    let r = p.run(&["--store", draft.to_str().unwrap()]);
    assert!(r.stderr.contains("is a file, not a folder"), "{}", r.stderr);
}

#[test]
fn gc_removes_only_the_stores_own_stale_temp_files() {
    let p = Project::new(TWO);
    p.run(&[]).assert_ok();
    let tmp = p.store().join("tmp");
    let mine = tmp.join("notes.txt");
    std::fs::write(&mine, "kept").unwrap();
    age(&mine, Duration::from_secs(3 * 3600));
    let leftover = tmp.join("lulc-tmp-host-1-2-00000000-out-map.tif");
    std::fs::write(&leftover, "left by a killed run").unwrap();
    age(&leftover, Duration::from_secs(3 * 3600));
    p.lulc(&["gc"]).assert_ok();
    assert!(mine.exists(), "a file lulc did not write stays");
    assert!(!leftover.exists(), "a stale temp file of the store goes");
}

#[test]
fn a_killed_run_keeps_what_it_finished_through_gc_and_is_marked_interrupted() {
    let p = Project::new(
        "name: killed\nnodes:\n  a: { kind: emit, params: { value: 1 } }\n  slow: { kind: emit, params: { value: 2, delay_ms: 60000 }, inputs: { after: a } }\n",
    );
    let mut child = p
        .cmd(&["run", "pipeline.yaml", "--jobs", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until `a` is finished (fresh in the store), then kill -9 while `slow` runs.
    let started = std::time::Instant::now();
    loop {
        let plan = p.plan(&[]);
        if plan.code == 0 && plan.step("a")["status"] == "fresh" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let gc = p.lulc(&["gc", "--keep-runs", "1"]);
    gc.assert_ok();
    assert!(
        gc.stdout
            .contains("1 run(s) left `running` by a killed lulc marked interrupted"),
        "{}",
        gc.stdout
    );
    let plan = p.plan(&[]);
    assert_eq!(plan.step("a")["status"], "fresh", "{}", gc.stdout);
    // Settled once: the next gc finds nothing left running.
    let again = p.lulc(&["gc", "--keep-runs", "1"]);
    assert!(
        !again.stdout.contains("marked interrupted"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_set_of_a_top_level_param_the_spec_lacks_is_an_error_with_a_suggestion() {
    let p = Project::new(
        "name: yearly\nparams: { years: 2020..2021 }\nnodes:\n  a: { kind: emit, params: { value: 1 }, for_each: { year: years } }\n",
    );
    let r = p.plan(&["--set", "yeras=2020..2022"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("spec::bad_override"), "{}", r.stderr);
    assert!(
        r.stderr.contains("no top-level param `yeras`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("did you mean `years`?"), "{}", r.stderr);
    p.plan(&["--set", "years=2020..2022"]).assert_ok();
}

#[test]
fn jobs_beyond_the_limit_or_zero_are_refused_with_exit_2() {
    let p = Project::new(TWO);
    for jobs in ["100000", "0", "many"] {
        let r = p.run(&["--jobs", jobs]);
        assert_eq!(r.code, 2, "--jobs {jobs}: {}", r.stderr);
        assert!(r.stderr.contains("--jobs"), "{}", r.stderr);
    }
    assert!(!p.store().exists(), "nothing was started");
    p.run(&["--jobs", "1024"]).assert_ok();
}

#[test]
fn an_error_far_into_a_one_line_spec_is_shown_cut_around_it() {
    // A generated one-line JSON spec: the error sits past column 65,536.
    let pad = "x".repeat(70_000);
    let spec = format!(
        r#"{{"name": "long", "nodes": {{"a": {{"kind": "emit", "params": {{"value": 1}}, "doc": "{pad}", "colour": 1}}}}}}"#
    );
    let p = Project::new(&spec);
    let r = p.lulc(&["validate", "pipeline.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("unknown field `colour`"), "{}", r.stderr);
    // Named with the real line and column, and only a window of the line is printed.
    let column = spec.find("\"colour\"").unwrap() + 1;
    assert!(
        r.stderr.contains(&format!(
            "pipeline.yaml (a line of {} characters, cut):1:{column}",
            spec.len()
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.len() < 4_000, "{} bytes of stderr", r.stderr.len());
}

#[test]
fn a_spec_that_never_ends_is_refused_at_the_size_limit() {
    let p = Project::new(TWO);
    let r = p.lulc(&["validate", "/dev/zero"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("spec::too_big"), "{}", r.stderr);
    assert!(r.stderr.contains("larger than the limit"), "{}", r.stderr);
}

#[test]
fn export_never_hands_out_a_blob_changed_in_place() {
    let p = Project::new(
        "name: tamper\nnodes:\n  a: { kind: emit, params: { value: \"original content\" } }\n",
    );
    p.run(&[]).assert_ok();
    let blob = p
        .blobs()
        .into_iter()
        .find(|b| std::fs::read(b).unwrap() == b"\"original content\"")
        .expect("the value's blob");
    // Same size, other bytes: what an editor or a disk fault leaves.
    let mut perms = std::fs::metadata(&blob).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&blob, perms).unwrap();
    std::fs::write(&blob, b"\"tampered content\"").unwrap();

    let out = p.path().join("out");
    let r = p.export("a", &out);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("changed in the store after it was written"),
        "{}",
        r.stderr
    );
    assert!(!out.join("a/value.json").exists(), "nothing handed out");
    // Quarantined: the next run recomputes it, and export then gives the real content.
    let again = p.run(&[]);
    again.assert_ok();
    assert_eq!(again.steps_with("ran"), vec!["a"]);
    p.export("a", &out).assert_ok();
    assert_eq!(
        std::fs::read(out.join("a/value.json")).unwrap(),
        b"\"original content\""
    );
}

/// A read-only bind mount of `dir`, unmounted on drop; `None` (with the reason) where this
/// machine does not let the test mount (not root, or no mount namespace rights).
struct ReadOnlyMount(std::path::PathBuf);

impl ReadOnlyMount {
    fn of(dir: &std::path::Path, at: &std::path::Path) -> Result<ReadOnlyMount, String> {
        std::fs::create_dir_all(at).unwrap();
        let sh = |args: &[&str]| {
            std::process::Command::new("mount")
                .args(args)
                .output()
                .map_err(|e| format!("mount: {e}"))
                .and_then(|o| {
                    o.status
                        .success()
                        .then_some(())
                        .ok_or_else(|| String::from_utf8_lossy(&o.stderr).into_owned())
                })
        };
        sh(&["--bind", dir.to_str().unwrap(), at.to_str().unwrap()])?;
        let mount = ReadOnlyMount(at.to_owned());
        sh(&["-o", "remount,ro,bind", at.to_str().unwrap()])?;
        Ok(mount)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn read_commands_change_nothing_and_work_on_a_read_only_store() {
    let p = Project::new(TWO);
    // No store yet: the read commands say so and make none.
    let results = p.lulc(&["results", "pipeline.yaml"]);
    results.assert_ok();
    assert!(
        results.stderr.contains("nothing has run with the store"),
        "{}",
        results.stderr
    );
    p.plan(&[]).assert_ok();
    assert!(!p.store().exists(), "a read command made a store");

    p.run(&[]).assert_ok();
    let at = tempfile::tempdir().unwrap();
    let mount = match ReadOnlyMount::of(p.path(), &at.path().join("ro")) {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped the read-only mount case: cannot mount here: {why}");
            return;
        }
    };
    let ro = Project::at(&mount.0);
    assert!(
        std::fs::write(mount.0.join("probe"), b"x").is_err(),
        "the mount is writable"
    );
    for args in [
        &["results", "pipeline.yaml"][..],
        &["show", "pipeline.yaml", "b"],
        &["plan", "pipeline.yaml"],
        &["explain", "pipeline.yaml", "b"],
    ] {
        let r = ro.lulc(args);
        assert_eq!(r.code, 0, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(!r.stderr.contains("nothing has run"), "{}", r.stderr);
    }
    let plan = ro.plan(&[]);
    assert_eq!(plan.steps_with("fresh").len(), 2, "{}", plan.stdout);
    let out = at.path().join("out");
    ro.export("b", &out).assert_ok();
    assert!(out.join("b/value.json").is_file());
    let html = at.path().join("report");
    ro.lulc(&["report", "pipeline.yaml", "--out", html.to_str().unwrap()])
        .assert_ok();
    // A run must write: refused with the file system's reason, nothing lost.
    ro.run(&[]).assert_fails(1, &["Read-only file system"]);
}

#[test]
fn a_tmp_folder_on_another_file_system_still_stores_results() {
    use std::os::unix::fs::MetadataExt;
    let p = Project::new(TWO);
    p.run(&[]).assert_ok();
    let elsewhere = match tempfile::tempdir_in("/dev/shm") {
        Ok(d)
            if std::fs::metadata(d.path()).unwrap().dev()
                != std::fs::metadata(p.path()).unwrap().dev() =>
        {
            d
        }
        _ => {
            eprintln!("skipped: no /dev/shm on another file system than the temp folder");
            return;
        }
    };
    std::fs::remove_dir_all(p.store().join("tmp")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), p.store().join("tmp")).unwrap();
    p.write_spec(&TWO.replace("value: 1", "value: 2"));
    let r = p.run(&[]);
    r.assert_ok();
    assert_eq!(r.steps_with("ran").len(), 2, "{}", r.stdout);
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "temp files left in tmp/"
    );
    let leftovers: Vec<_> = walk(&p.store().join("objects"))
        .into_iter()
        .chain(walk(&p.store().join("records")))
        .filter(|f| {
            f.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("lulc-tmp-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let verify = p.lulc(&["verify"]);
    verify.assert_ok();
    assert!(verify.stdout.contains("0 corrupt"), "{}", verify.stdout);
    // The stored result is the new one.
    let out = p.path().join("out");
    p.export("a", &out).assert_ok();
    assert_eq!(
        std::fs::read_to_string(out.join("a/value.json"))
            .unwrap()
            .trim(),
        "2"
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn simulate_options_out_of_range_are_usage_errors_like_a_bad_years() {
    let p = Project::new(TWO);
    for args in [&["--size", "0"][..], &["--years", "abc"]] {
        let mut all = vec!["simulate", "--out", "sim"];
        all.extend_from_slice(args);
        let r = p.lulc(&all);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("size") || r.stderr.contains("years"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn ctrl_c_says_what_is_kept_and_the_next_run_goes_on() {
    let p = Project::new(
        "name: slow\nnodes:\n  a: { kind: emit, params: { value: 1 } }\n  slow: { kind: emit, params: { value: 2, delay_ms: 3000 } }\n",
    );
    let child = p
        .cmd(&["run", "pipeline.yaml", "--jobs", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: the steps that finished are kept"),
        "{stderr}"
    );
    let again = p.run(&[]);
    again.assert_ok();
    assert_eq!(again.steps_with("cached"), vec!["a"]);
    assert_eq!(again.steps_with("ran"), vec!["slow"]);
}
