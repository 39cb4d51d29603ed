//! Disk full while writing, and four concurrent runs of different specs sharing steps: a clear
//! error, a consistent store, nothing finished lost, every output equal to an uninterrupted
//! run's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::{Project, bin, demo_spec, run_demo, step_outputs};

/// A small area and two years of the demo chain: 50 steps.
const SMALL: [&str; 4] = ["--set", "size=64", "--set", "years=2020..2021"];

/// One uninterrupted run of the small demo on a normal disk, shared by the tests of this
/// module: its outputs per step id and the size of its store in bytes.
struct Reference {
    outputs: BTreeMap<String, String>,
    store_bytes: u64,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let doc = run_demo(dir.path(), "2", &SMALL);
        Reference {
            outputs: step_outputs(&doc),
            store_bytes: dir_bytes(dir.path()),
        }
    })
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = e.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&e.path())
        } else {
            meta.len()
        };
    }
    total
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn statuses(doc: &Value, status: &str) -> BTreeSet<String> {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == status)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// Can this machine give us a small real file system? A tmpfs mounted in a private user +
/// mount namespace (`unshare -rm`) needs no privileges where user namespaces are enabled.
fn tmpfs_available(scratch: &Path) -> bool {
    let dir = scratch.join("probe");
    std::fs::create_dir_all(&dir).unwrap();
    Command::new("unshare")
        .args(["-rm", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size=1m none '{}' && touch '{}/x'",
            dir.display(),
            dir.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn quoted(args: &[&str]) -> String {
    args.iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_full_disk_is_a_clear_error_keeps_the_store_consistent_and_loses_nothing() {
    let reference = reference();
    let scratch = tempfile::tempdir().unwrap();
    let copied = scratch.path().join("copied");
    let small = scratch.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    let run_json = scratch.path().join("run.json");
    let run_err = scratch.path().join("run.err");
    let verify_out = scratch.path().join("verify.out");

    let on_tmpfs = tmpfs_available(scratch.path());
    if on_tmpfs {
        // A file system of 80 % of what the run needs: it fills up part-way through.
        let size = reference.store_bytes * 4 / 5;
        let store = small.join("store");
        let script = format!(
            "set -u\n\
             mount -t tmpfs -o size={size} none '{small}' || exit 90\n\
             '{bin}' run '{spec}' --json --jobs 2 {sets} --store '{store}' > '{json}' 2> '{err}'\n\
             echo $? > '{json}.code'\n\
             '{bin}' verify --store '{store}' > '{verify}' 2>&1\n\
             echo $? > '{verify}.code'\n\
             cp -a '{store}' '{copied}'\n",
            small = small.display(),
            bin = bin(),
            spec = demo_spec(),
            sets = quoted(&SMALL),
            store = store.display(),
            json = run_json.display(),
            err = run_err.display(),
            verify = verify_out.display(),
            copied = copied.display(),
        );
        let status = Command::new("unshare")
            .args(["-rm", "bash", "-c", &script])
            .status()
            .unwrap();
        assert!(status.success(), "the tmpfs script failed: {status}");
    } else {
        // No namespaces here (some containers): a per-file size limit (RLIMIT_FSIZE) instead,
        // SIGXFSZ ignored so writes fail with EFBIG rather than killing the process.
        eprintln!("no tmpfs in a user namespace here: using `prlimit --fsize` instead");
        let script = format!(
            "trap '' XFSZ\n\
             prlimit --fsize={limit} -- '{bin}' run '{spec}' --json --jobs 2 {sets} --store '{store}' > '{json}' 2> '{err}'\n\
             echo $? > '{json}.code'\n\
             '{bin}' verify --store '{store}' > '{verify}' 2>&1\n\
             echo $? > '{verify}.code'\n",
            limit = 512 * 1024,
            bin = bin(),
            spec = demo_spec(),
            sets = quoted(&SMALL),
            store = copied.display(),
            json = run_json.display(),
            err = run_err.display(),
            verify = verify_out.display(),
        );
        let status = Command::new("bash").args(["-c", &script]).status().unwrap();
        assert!(status.success(), "the prlimit script failed: {status}");
    }

    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let code = |p: &Path| -> i32 {
        read(&PathBuf::from(format!("{}.code", p.display())))
            .trim()
            .parse()
            .unwrap()
    };
    let stderr = read(&run_err);
    // The run fails as a run (exit 1 with failed steps), not as a crash.
    assert_eq!(code(&run_json), 1, "run on a full disk:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let first: Value = serde_json::from_str(&read(&run_json)).unwrap();
    let failed = statuses(&first, "failed");
    assert!(!failed.is_empty(), "no step failed:\n{stderr}");
    if on_tmpfs {
        // miette wraps the help text: compare with whitespace collapsed.
        let flat = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("the disk is probably full"),
            "the error does not say the disk is full:\n{stderr}"
        );
    }
    // The store is consistent after the failure: nothing corrupt, nothing missing.
    let verify = read(&verify_out);
    assert_eq!(code(&verify_out), 0, "{verify}");
    assert!(verify.contains(" 0 corrupt"), "{verify}");
    assert!(verify.contains(" 0 missing"), "{verify}");

    // On a disk with room, the same store finishes the run: everything that finished before
    // the disk filled up is reused, and every output equals the uninterrupted run's.
    let finished_before: BTreeSet<String> = statuses(&first, "ran")
        .union(&statuses(&first, "cached"))
        .cloned()
        .collect();
    assert!(
        !finished_before.is_empty(),
        "the disk filled up before any step finished; the test proves nothing:\n{stderr}"
    );
    let second = run_demo(&copied, "2", &SMALL);
    let ran_again: BTreeSet<String> = statuses(&second, "ran");
    let lost: Vec<&String> = finished_before.intersection(&ran_again).collect();
    assert!(lost.is_empty(), "finished steps ran again: {lost:?}");
    assert_eq!(step_outputs(&second), reference.outputs);
    let verify = Command::new(bin())
        .arg("verify")
        .arg("--store")
        .arg(&copied)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{:?}", text(&verify));
}

/// Runs `lulc run SPEC --json --jobs 1 SETS --store STORE` in the background.
fn spawn_run(spec: &Path, store: &Path, sets: &[&str]) -> std::process::Child {
    Command::new(bin())
        .arg("run")
        .arg(spec)
        .args(["--json", "--jobs", "1"])
        .args(sets)
        .arg("--store")
        .arg(store)
        .env("LULC_TEST_KINDS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for every run; each must succeed without a "locked" message. Their `--json` documents.
fn finish_all(children: Vec<std::process::Child>) -> Vec<Value> {
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let (stdout, stderr) = text(&out);
            assert!(out.status.success(), "{stderr}");
            assert!(
                !stderr.to_lowercase().contains("locked"),
                "a run saw a lock error:\n{stderr}"
            );
            serde_json::from_str(&stdout).unwrap()
        })
        .collect()
}

/// Step key -> how many of the runs computed it.
fn computed_by_key(docs: &[Value]) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for doc in docs {
        for s in doc["steps"].as_array().unwrap() {
            if s["status"] == "ran" {
                *n.entry(s["key"].as_str().unwrap().to_string()).or_insert(0) += 1;
            }
        }
    }
    n
}

/// Key -> outputs over all runs; every run that has a key must agree on its outputs.
fn outputs_by_key(docs: &[Value]) -> BTreeMap<String, String> {
    let mut by_key: BTreeMap<String, String> = BTreeMap::new();
    for doc in docs {
        for s in doc["steps"].as_array().unwrap() {
            let key = s["key"].as_str().unwrap().to_string();
            let out = s["outputs"].to_string();
            let seen = by_key.entry(key.clone()).or_insert_with(|| out.clone());
            assert_eq!(
                *seen, out,
                "two runs disagree on the outputs of step key {key}"
            );
        }
    }
    by_key
}

#[test]
fn four_concurrent_runs_of_two_specs_sharing_steps_compute_each_step_once() {
    // Two specs with different names (separate scopes) sharing the eight `work` steps; each
    // adds its own steps after them.
    let spec = |name: &str, op: &str| {
        format!(
            r#"
name: {name}
params: {{ ids: 1..8 }}
nodes:
  work:
    kind: emit
    for_each: {{ id: ids }}
    params: {{ value: "${{id}}", delay_ms: 150 }}
  all: {{ kind: combine, inputs: {{ parts: work }}, params: {{ op: {op} }} }}
"#
        )
    };
    let p = Project::new(&spec("conc_a", "list"));
    let b = p.path().join("b.yaml");
    std::fs::write(&b, spec("conc_b", "sum")).unwrap();
    let a = p.spec();
    let store = p.store();
    let children = vec![
        spawn_run(&a, &store, &[]),
        spawn_run(&b, &store, &[]),
        spawn_run(&a, &store, &[]),
        spawn_run(&b, &store, &[]),
    ];
    let docs = finish_all(children);
    let computed = computed_by_key(&docs);
    let twice: Vec<_> = computed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "steps computed more than once: {twice:?}");
    // 8 shared `work` steps + one `all` per spec, each computed by exactly one run.
    let keys = outputs_by_key(&docs);
    assert_eq!(keys.len(), 10, "distinct step keys over the four runs");
    assert_eq!(
        computed.len(),
        keys.len(),
        "every step computed by some run"
    );
    p.lulc(&["verify"]).assert_ok();
}

#[test]
fn four_concurrent_demo_runs_of_two_specs_compute_each_step_once_with_identical_outputs() {
    let reference = reference();
    // Spec B is the demo under another name with other migration thresholds: it shares
    // simulation, acquisition, compositing, features, sampling and the unmigrated models with
    // spec A, and has its own migrate/train/infer/assess steps.
    let dir = tempfile::tempdir().unwrap();
    let a = PathBuf::from(demo_spec());
    let demo = std::fs::read_to_string(&a).unwrap();
    assert!(demo.contains("name: demo\n") && demo.contains("sad: 0.95 "));
    let b = dir.path().join("demo_b.yaml");
    std::fs::write(
        &b,
        demo.replace("name: demo\n", "name: demo_b\n")
            .replace("sad: 0.95 ", "sad: 0.9  "),
    )
    .unwrap();
    let store = dir.path().join("store");
    let children = vec![
        spawn_run(&a, &store, &SMALL),
        spawn_run(&b, &store, &SMALL),
        spawn_run(&a, &store, &SMALL),
        spawn_run(&b, &store, &SMALL),
    ];
    let docs = finish_all(children);
    let computed = computed_by_key(&docs);
    let twice: Vec<_> = computed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "steps computed more than once: {twice:?}");
    let keys = outputs_by_key(&docs);
    assert_eq!(
        computed.len(),
        keys.len(),
        "every distinct step was computed by one of the four runs"
    );
    // Both runs of spec A equal the uninterrupted run on its own store.
    assert_eq!(step_outputs(&docs[0]), reference.outputs);
    assert_eq!(step_outputs(&docs[2]), reference.outputs);
    assert_eq!(step_outputs(&docs[1]), step_outputs(&docs[3]));
    // The specs really share work and really differ.
    let ids = |d: &Value| -> BTreeMap<String, String> {
        d["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    s["key"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (ka, kb) = (ids(&docs[0]), ids(&docs[1]));
    let shared = ka.iter().filter(|(id, k)| kb.get(*id) == Some(*k)).count();
    assert!(shared >= 30, "only {shared} steps shared");
    assert!(ka["migrated[year=2021]"] != kb["migrated[year=2021]"]);
    let verify = Command::new(bin())
        .arg("verify")
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{:?}", text(&verify));
}
