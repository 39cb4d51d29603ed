//! `lulc run --executor slurm` against a real Slurm: the one `scripts/slurm-local.sh start`
//! runs on this machine (three slurmd nodes). Where no cluster answers, each test prints why it
//! is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{FORKED, Project, bin, demo_spec, run_demo, step_outputs};

/// Tests share the cluster; one that takes a node down holds it alone.
static CLUSTER: RwLock<()> = RwLock::new(());

/// `SLURM_CONF` of a cluster whose nodes answer and a shared hold on it, or `None` (and a
/// printed reason).
fn cluster(test: &str) -> Option<(String, RwLockReadGuard<'static, ()>)> {
    let shared = CLUSTER.read().unwrap_or_else(|e| e.into_inner());
    let conf = idle_cluster(test)?;
    Some((conf, shared))
}

/// `SLURM_CONF` of a cluster whose nodes answer, or `None` (and a printed reason).
fn idle_cluster(test: &str) -> Option<String> {
    let conf = std::env::var("SLURM_CONF").ok().or_else(|| {
        let local = "/tmp/lulc-slurm/slurm.conf";
        Path::new(local).exists().then(|| local.to_string())
    });
    let Some(conf) = conf else {
        eprintln!("skipped {test}: no Slurm cluster (start one with scripts/slurm-local.sh start)");
        return None;
    };
    let sinfo = Command::new("sinfo")
        .env("SLURM_CONF", &conf)
        .args(["--noheader", "--format=%t"])
        .output();
    match sinfo {
        Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).contains("idle") => {
            Some(conf)
        }
        Ok(o) => {
            eprintln!(
                "skipped {test}: the Slurm cluster of {conf} has no idle node: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("skipped {test}: cannot run sinfo ({e}): Slurm is not installed");
            None
        }
    }
}

/// A profile that polls often (tests), with small jobs.
fn profile(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("cluster.yaml");
    std::fs::write(
        &path,
        format!(
            "poll_min_s: 0.5\npoll_max_s: 2\nresult_wait_s: 3\nresources: {{mem_mb: 1000, time_min: 30}}\n{extra}"
        ),
    )
    .unwrap();
    path
}

fn run_slurm(conf: &str, store: &Path, profile: &Path, sets: &[&str]) -> (i32, Value, String) {
    let out = Command::new(bin())
        .args([
            "run",
            &demo_spec(),
            "--json",
            "--executor",
            "slurm",
            "--profile",
        ])
        .arg(profile)
        .args(sets)
        .arg("--store")
        .arg(store)
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {stderr}");
    });
    (out.status.code().unwrap_or(-1), doc, stderr)
}

const SMALL: [&str; 4] = ["--set", "size=64", "--set", "years=2020..2021"];

#[test]
fn the_demo_chain_on_slurm_equals_a_local_run_and_a_rerun_submits_nothing() {
    let Some((conf, _shared)) = cluster("the demo chain on slurm") else {
        return;
    };
    let local = tempfile::tempdir().unwrap();
    let expected = step_outputs(&run_demo(local.path(), "2", &SMALL));

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let profile = profile(dir.path(), "");
    let (code, doc, stderr) = run_slurm(&conf, &store, &profile, &SMALL);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        step_outputs(&doc),
        expected,
        "slurm outputs differ from local ones"
    );
    let ex = &doc["executor"];
    assert_eq!(ex["executor"], "slurm", "{ex}");
    let ran = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "ran")
        .count() as u64;
    let (sbatch, jobs) = (ex["sbatch"].as_u64().unwrap(), ex["jobs"].as_u64().unwrap());
    assert_eq!(jobs, ran, "one array task per step that ran: {ex}");
    assert!(
        sbatch < jobs,
        "steps that become ready together share one array: {ex}"
    );

    let (code, again, stderr) = run_slurm(&conf, &store, &profile, &SMALL);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again["executor"]["sbatch"], 0, "{}", again["executor"]);
    // One squeue: the live jobs of an earlier run on this store, to take over.
    assert_eq!(again["executor"]["squeue"], 1, "{}", again["executor"]);
    assert!(
        again["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "cached")
    );
}

#[test]
fn a_step_failing_on_slurm_is_reported_like_a_local_failure() {
    let Some((conf, _shared)) = cluster("a failing step on slurm") else {
        return;
    };
    let p = Project::new(FORKED);
    let profile = profile(p.path(), "");
    let out = slurm_run(&p, &conf, &profile);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let status = |id: &str| {
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("a"), "ran");
    assert_eq!(status("bad"), "failed");
    assert_eq!(status("after_bad"), "skipped");
    assert_eq!(status("good"), "ran");
    assert!(stderr.contains("run::step_failed"), "{stderr}");
    assert!(stderr.contains("failing on purpose"), "{stderr}");
    assert!(stderr.contains("bad:"), "{stderr}");
    // Its job's log, kept in the store, has the node's error.
    let logs = p.lulc(&["logs", "pipeline.yaml", "bad"]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert!(logs.stdout.contains("step `bad`"), "{}", logs.stdout);
    let local_only = Project::new(FORKED);
    local_only.run(&[]);
    let none = local_only.lulc(&["logs", "pipeline.yaml", "good"]);
    assert_eq!(none.code, 1);
    assert!(
        none.stderr.contains("no Slurm log of `good`"),
        "{}",
        none.stderr
    );
}

/// `lulc plan pipeline.yaml --executor slurm --profile PROFILE` on `p`: its stdout.
fn slurm_plan(p: &Project, profile: &Path) -> String {
    let r = p.lulc(&[
        "plan",
        "pipeline.yaml",
        "--executor",
        "slurm",
        "--profile",
        profile.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

#[test]
fn plan_shows_how_the_ready_steps_would_be_packed_without_calling_slurm() {
    let p = Project::new(FORKED);
    let profile = profile(p.path(), "kinds:\n  combine: {cpus: 2}\n");
    let out = slurm_plan(&p, &profile);
    // Only `a` can start now; the three `combine` steps wait for it.
    assert!(
        out.contains("slurm: 1 steps could start now, in 1 job arrays"),
        "{}",
        out
    );
    assert!(
        out.contains("cpus=1 mem=1000M time=30min: 1 steps in 1 array tasks (emit)"),
        "{}",
        out
    );
    assert!(out.contains("slurm: 3 more steps"), "{}", out);
}

#[test]
fn resources_slurm_cannot_give_are_refused_before_anything_is_submitted() {
    let Some((conf, _shared)) = cluster("refused resources") else {
        return;
    };
    let p = Project::new(FORKED);
    let profile = profile(p.path(), "kinds:\n  combine: {mem_mb: 99000000}\n");
    let r = p
        .cmd(&["run", "pipeline.yaml", "--executor", "slurm", "--profile"])
        .arg(&profile)
        .env("SLURM_CONF", &conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("(kind `combine`: "), "{stderr}");
    assert!(stderr.contains("--mem=99000000M"), "{stderr}");
    assert!(
        !p.store().join("slurm").exists(),
        "nothing was submitted, so no job folder"
    );
    let plan = p.plan(&[]);
    assert!(
        plan.json()["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "new"),
        "nothing ran"
    );
}

const WITH_RESOURCES: &str = r#"
name: resources
nodes:
  a: { kind: emit, params: { value: 1 } }
  big:
    kind: emit
    params: { value: 2 }
    resources: { cpus: 2, mem_mb: RESOURCE_MEM }
  after: { kind: combine, inputs: { parts: [a, big] } }
"#;

/// A node's `resources:` in the spec: its own array class in the packing, the profile's
/// `nodes` entry over it, and no step key changed by either.
#[test]
fn a_node_s_resources_in_the_spec_set_its_jobs_and_never_its_key() {
    let p = Project::new(&WITH_RESOURCES.replace("RESOURCE_MEM", "3000"));
    let profile = profile(p.path(), "");
    let packing = |profile: &Path| slurm_plan(&p, profile);
    let out = packing(&profile);
    assert!(
        out.contains("slurm: 2 steps could start now, in 2 job arrays"),
        "{out}"
    );
    assert!(
        out.contains("cpus=1 mem=1000M time=30min: 1 steps"),
        "{out}"
    );
    assert!(
        out.contains("cpus=2 mem=3000M time=30min: 1 steps"),
        "{out}"
    );
    let site = self::profile(p.path(), "nodes:\n  big: {mem_mb: 2000}\n");
    let out = packing(&site);
    assert!(
        out.contains("cpus=2 mem=2000M time=30min: 1 steps"),
        "{out}"
    );

    let keys = |p: &Project| -> Vec<Value> {
        p.plan(&[]).json()["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["key"].clone())
            .collect()
    };
    let plain = Project::new(
        &WITH_RESOURCES
            .replace("RESOURCE_MEM", "3000")
            .replace("    resources: { cpus: 2, mem_mb: 3000 }\n", ""),
    );
    assert!(
        !std::fs::read_to_string(plain.spec())
            .unwrap()
            .contains("cpus")
    );
    assert_eq!(keys(&p), keys(&plain));
}

#[test]
fn resources_in_the_spec_slurm_cannot_give_are_refused_naming_the_node() {
    let Some((conf, _shared)) = cluster("refused spec resources") else {
        return;
    };
    let p = Project::new(&WITH_RESOURCES.replace("RESOURCE_MEM", "99000000"));
    let profile = profile(p.path(), "");
    let r = p
        .cmd(&["run", "pipeline.yaml", "--executor", "slurm", "--profile"])
        .arg(&profile)
        .env("SLURM_CONF", &conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("Slurm refuses the jobs of node `big` (kind `emit`: "),
        "{stderr}"
    );
    assert!(stderr.contains("--mem=99000000M"), "{stderr}");
    assert!(stderr.contains("`resources:` in the spec"), "{stderr}");
    assert!(!p.store().join("slurm").exists(), "nothing was submitted");
}

const SLOW: &str = r#"
name: slow
nodes:
  a: { kind: emit, params: { value: 1, delay_ms: 4000 } }
  b: { kind: combine, inputs: { parts: a } }
"#;

/// `lulc run pipeline.yaml --json --executor slurm --profile PROFILE` on `p`.
fn slurm_cmd(p: &Project, conf: &str, profile: &Path) -> Command {
    let mut c = p.cmd(&[
        "run",
        "pipeline.yaml",
        "--json",
        "--executor",
        "slurm",
        "--profile",
    ]);
    c.arg(profile).env("SLURM_CONF", conf);
    c
}

/// [`slurm_cmd`], to the end.
fn slurm_run(p: &Project, conf: &str, profile: &Path) -> std::process::Output {
    slurm_cmd(p, conf, profile).output().unwrap()
}

/// Starts `lulc run --json --executor slurm` on `p` in the background.
fn spawn_slurm_run(p: &Project, conf: &str, profile: &Path) -> std::process::Child {
    slurm_cmd(p, conf, profile)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The id of a running job of `p`'s store (its batch script lies in the store), waiting up to
/// a minute for one.
fn running_job(p: &Project, conf: &str) -> String {
    let store = p.store().display().to_string();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let q = Command::new("squeue")
            .env("SLURM_CONF", conf)
            .args(["--noheader", "--format=%i|%j", "--states=RUNNING"])
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&q.stdout).lines() {
            let id = line.split('|').next().unwrap();
            let show = Command::new("scontrol")
                .env("SLURM_CONF", conf)
                .args(["show", "job", id])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&show.stdout).contains(&store) {
                return id.to_string();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no job of {store} ran within a minute");
}

/// Jobs of `p`'s store still in the queue.
fn queued_jobs(p: &Project, conf: &str) -> usize {
    let store = p.store().display().to_string();
    let q = Command::new("squeue")
        .env("SLURM_CONF", conf)
        .args(["--noheader", "--format=%i"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&q.stdout)
        .lines()
        .filter(|id| {
            let show = Command::new("scontrol")
                .env("SLURM_CONF", conf)
                .args(["show", "job", id.trim()])
                .output()
                .unwrap();
            String::from_utf8_lossy(&show.stdout).contains(&store)
        })
        .count()
}

/// How many task files (one per submission of a step) name each step key.
fn submissions_per_key(p: &Project) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    let slurm = p.store().join("slurm");
    for run in std::fs::read_dir(&slurm).unwrap().flatten() {
        for batch in std::fs::read_dir(run.path()).unwrap().flatten() {
            if !batch.file_name().to_string_lossy().starts_with('b') {
                continue;
            }
            for f in std::fs::read_dir(batch.path()).unwrap().flatten() {
                if f.path().extension().is_some_and(|e| e == "json") {
                    let doc: Value =
                        serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap();
                    for t in doc["tasks"].as_array().unwrap() {
                        *counts
                            .entry(t["key"].as_str().unwrap().to_string())
                            .or_default() += 1;
                    }
                }
            }
        }
    }
    counts
}

/// Runs `SLOW` on the cluster, applies `disrupt` to its first running job (what it returns is
/// kept until the run ends), and checks that the run ends well all the same: a step
/// resubmitted, the outputs of a local run.
fn disrupted_run_recovers<G>(conf: &str, disrupt: impl FnOnce(&str) -> G, what: &str) {
    let local = Project::new(SLOW);
    let expected = local.run(&[]);
    expected.assert_ok();

    let p = Project::new(SLOW);
    let profile = profile(p.path(), "");
    let child = spawn_slurm_run(&p, conf, &profile);
    let job = running_job(&p, conf);
    let guard = disrupt(&job);
    let out = child.wait_with_output().unwrap();
    drop(guard);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["executor"]["retries"].as_u64().unwrap() >= 1,
        "{what}: {}",
        doc["executor"]
    );
    assert_eq!(
        step_outputs(&doc),
        step_outputs(&expected.json()),
        "{what}: a resubmitted step gives the same outputs"
    );
}

#[test]
fn a_cancelled_job_is_resubmitted_and_the_run_ends_with_the_same_outputs() {
    let Some((conf, _shared)) = cluster("a cancelled job") else {
        return;
    };
    let cancel = |job: &str| {
        assert!(
            Command::new("scancel")
                .env("SLURM_CONF", &conf)
                .arg(job)
                .status()
                .unwrap()
                .success()
        );
    };
    disrupted_run_recovers(&conf, cancel, "a cancelled job");
}

const SMALL_CHAIN: &str = r#"
name: detached
nodes:
  a: { kind: emit, params: { value: 1 } }
  b: { kind: combine, inputs: { parts: a } }
"#;

#[test]
fn a_detached_coordinator_runs_as_a_slurm_job_and_fills_the_store() {
    let p = Project::new(SMALL_CHAIN);
    // Only a Slurm run has a coordinator to send away.
    let r = p.lulc(&["run", "pipeline.yaml", "--detach"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("add `--executor slurm`"), "{}", r.stderr);
    let Some((conf, _shared)) = cluster("a detached coordinator") else {
        return;
    };
    let local = Project::new(SMALL_CHAIN);
    let expected = local.run(&[]);
    expected.assert_ok();

    let profile = profile(p.path(), "coordinator: {mem_mb: 500, time_min: 10}\n");
    let started = Instant::now();
    let out = p
        .cmd(&[
            "run",
            "pipeline.yaml",
            "--executor",
            "slurm",
            "--detach",
            "--profile",
        ])
        .arg(&profile)
        .env("SLURM_CONF", &conf)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = stdout
        .split("Slurm job ")
        .nth(1)
        .and_then(|t| t.split(';').next())
        .unwrap_or_else(|| panic!("no job id in: {stdout}"))
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "--detach returns at once"
    );
    // The job runs the coordinator, which submits the steps' jobs and leaves.
    let until = Instant::now() + Duration::from_secs(180);
    loop {
        let q = Command::new("squeue")
            .env("SLURM_CONF", &conf)
            .args(["--noheader", "--format=%i", "--jobs", &job])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&q.stdout).trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "the coordinator job {job} still runs"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log_path = stdout
        .split("its log: ")
        .nth(1)
        .and_then(|t| t.lines().next())
        .unwrap()
        .to_string();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let after = p.run(&[]);
    after.assert_ok();
    let doc = after.json();
    assert!(
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "cached"),
        "the detached coordinator computed every step: {doc}\n{log}"
    );
    assert_eq!(step_outputs(&doc), step_outputs(&expected.json()));
}

/// Puts a node back into service when dropped (also when the test fails).
struct NodeDown {
    conf: String,
    node: String,
}

impl Drop for NodeDown {
    fn drop(&mut self) {
        let _ = Command::new("scontrol")
            .env("SLURM_CONF", &self.conf)
            .args(["update", &format!("nodename={}", self.node), "state=resume"])
            .status();
    }
}

#[test]
fn a_job_whose_node_goes_down_is_resubmitted_and_the_run_ends_with_the_same_outputs() {
    let _alone = CLUSTER.write().unwrap_or_else(|e| e.into_inner());
    let Some(conf) = idle_cluster("a node going down") else {
        return;
    };
    let set_down = |job: &str| {
        let q = Command::new("squeue")
            .env("SLURM_CONF", &conf)
            .args(["--noheader", "--format=%N", "--jobs", job])
            .output()
            .unwrap();
        let node = String::from_utf8_lossy(&q.stdout).trim().to_string();
        assert!(!node.is_empty(), "job {job} runs on no node");
        let down = NodeDown {
            conf: conf.clone(),
            node: node.clone(),
        };
        assert!(
            Command::new("scontrol")
                .env("SLURM_CONF", &conf)
                .args([
                    "update",
                    &format!("nodename={node}"),
                    "state=down",
                    "reason=lulc-test"
                ])
                .status()
                .unwrap()
                .success()
        );
        down
    };
    disrupted_run_recovers(&conf, set_down, "a node set down");
}

#[test]
fn a_killed_coordinator_is_replaced_by_a_rerun_that_takes_over_its_jobs() {
    let Some((conf, _shared)) = cluster("a killed coordinator") else {
        return;
    };
    let local = Project::new(SLOW);
    let expected = local.run(&[]);
    expected.assert_ok();

    let p = Project::new(SLOW);
    let profile = profile(p.path(), "");
    let mut child = spawn_slurm_run(&p, &conf, &profile);
    running_job(&p, &conf);
    child.kill().unwrap(); // SIGKILL: the job goes on without its coordinator
    let _ = child.wait();

    let again = slurm_run(&p, &conf, &profile);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    let doc: Value = serde_json::from_slice(&again.stdout).unwrap();
    let ex = &doc["executor"];
    // `a` was either still running (taken over) or finished meanwhile (its record taken).
    assert_eq!(
        ex["adopted"].as_u64().unwrap() + ex["taken"].as_u64().unwrap(),
        1,
        "{ex}"
    );
    assert_eq!(step_outputs(&doc), step_outputs(&expected.json()));
    let counts = submissions_per_key(&p);
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "no step was submitted twice: {counts:?}"
    );
}

#[test]
fn ctrl_c_cancels_the_runs_jobs_and_a_rerun_goes_on() {
    let Some((conf, _shared)) = cluster("ctrl-c on a slurm run") else {
        return;
    };
    let p = Project::new(SLOW);
    let profile = profile(p.path(), "");
    let child = spawn_slurm_run(&p, &conf, &profile);
    running_job(&p, &conf);
    // While the run holds the store, gc refuses.
    let gc = p.lulc(&["gc", "--store", p.store().to_str().unwrap()]);
    assert_ne!(gc.code, 0, "gc during a run: {}", gc.stderr);
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(
        queued_jobs(&p, &conf),
        0,
        "every job of the run was cancelled"
    );
    let again = slurm_run(&p, &conf, &profile);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

/// A profile of one-minute jobs polled every second or so, in `p`'s folder, with `extra`.
fn one_minute_profile(p: &Project, extra: &str) -> PathBuf {
    let profile = p.path().join("cluster.yaml");
    std::fs::write(
        &profile,
        format!(
            "{extra}poll_min_s: 1\npoll_max_s: 3\nresult_wait_s: 2\n\
             resources: {{mem_mb: 500, time_min: 1}}\n"
        ),
    )
    .unwrap();
    profile
}

#[test]
fn a_step_slurm_ends_for_its_time_limit_is_resubmitted_with_twice_the_time() {
    let Some((conf, _shared)) = cluster("a job over its time limit") else {
        return;
    };
    // One minute of time for a step of 100 s: Slurm ends the job (TIMEOUT; it checks time
    // limits every 30 s, so between 60 and 90 s); the second attempt gets two minutes.
    let spec = r#"
name: long
nodes:
  a: { kind: emit, params: { value: 1, delay_ms: 100000 } }
"#;
    let p = Project::new(spec);
    let profile = one_minute_profile(&p, "");
    let r = slurm_run(&p, &conf, &profile);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{stderr}");
    let doc: Value = serde_json::from_slice(&r.stdout).unwrap();
    let ex = &doc["executor"];
    assert_eq!(ex["escalated"], 1, "{ex}");
    assert_eq!(ex["sbatch"], 2, "{ex}");
    // The second array asked for two minutes.
    let dir = PathBuf::from(ex["dir"].as_str().unwrap());
    let jobs = Command::new("squeue")
        .env("SLURM_CONF", &conf)
        .args(["--noheader", "--states=all", "--format=%j|%l|%T"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&jobs.stdout).into_owned();
    let tag = dir.file_name().unwrap().to_string_lossy().into_owned();
    let ours: Vec<&str> = text.lines().filter(|l| l.contains(&tag)).collect();
    assert!(
        ours.iter().any(|l| l.ends_with("|1:00|TIMEOUT")),
        "{ours:?}"
    );
    assert!(
        ours.iter().any(|l| l.ends_with("|2:00|COMPLETED")),
        "{ours:?}"
    );
}

#[test]
fn a_step_whose_escalated_request_slurm_refuses_fails_alone() {
    let Some((conf, _shared)) = cluster("an escalation Slurm refuses") else {
        return;
    };
    // The `short` partition of the local cluster allows one minute (scripts/slurm-local.sh):
    // `a` (100 s) ends in TIMEOUT, and the two minutes it would need next are refused there.
    // `b`, independent of it, finishes.
    let spec = r#"
name: refused
nodes:
  a: { kind: emit, params: { value: 1, delay_ms: 100000 } }
  b: { kind: emit, params: { value: 2 } }
"#;
    let p = Project::new(spec);
    let profile = one_minute_profile(&p, "partition: short\n");
    let r = slurm_run(&p, &conf, &profile);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(
        r.status.code(),
        Some(1),
        "a failed step, not a failed run: {stderr}"
    );
    assert!(
        stderr.contains("Slurm refuses the larger job it needs"),
        "{stderr}"
    );
    assert!(stderr.contains("--time=2"), "{stderr}");
    let doc: Value = serde_json::from_slice(&r.stdout).unwrap();
    let status = |id: &str| {
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["status"].clone())
    };
    assert_eq!(status("a"), Some(Value::from("failed")), "{doc}");
    assert_eq!(status("b"), Some(Value::from("ran")), "{doc}");
}
