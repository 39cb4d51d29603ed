//! Faults on the real demo chain: `kill -9` at twenty different moments of `lulc run`, then a
//! run to the end; nothing finished is lost, nothing corrupt is used, and every output is the
//! same as an uninterrupted run's.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::bin;

const SMALL: [&str; 4] = ["--set", "size=64", "--set", "years=2020..2021"];

fn demo() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipelines/demo.yaml")
        .display()
        .to_string()
}

fn run_to_end(store: &Path) -> Value {
    let out = Command::new(bin())
        .args(["run", &demo(), "--json", "--jobs", "2"])
        .args(SMALL)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn outputs(doc: &Value) -> BTreeMap<String, String> {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["outputs"].to_string(),
            )
        })
        .collect()
}

#[test]
fn twenty_kills_lose_nothing_and_the_final_outputs_equal_an_uninterrupted_run() {
    let reference = tempfile::tempdir().unwrap();
    let expected = outputs(&run_to_end(reference.path()));

    let store = tempfile::tempdir().unwrap();
    // Kill moments cycle through short and long delays after the start (lowering, the
    // simulation, acquisition, compositing, training, ...); when a kill found no new finished
    // step, the next delays double, so the kills walk through the whole run.
    let cycle = [50u64, 300, 800, 1500, 2500];
    let mut factor = 1u64;
    let mut fresh_at_kills = Vec::new();
    let mut before = 0;
    for k in 0..20usize {
        let delay = Duration::from_millis(cycle[k % cycle.len()] * factor);
        let mut child = Command::new(bin())
            .args(["run", &demo(), "--jobs", "2"])
            .args(SMALL)
            .arg("--store")
            .arg(store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; the run may already have finished
        let _ = child.wait();
        // Whatever was finished is still in the store and intact.
        let verify = Command::new(bin())
            .args(["verify", "--store"])
            .arg(store.path())
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "after kill {k}: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
        let plan = Command::new(bin())
            .args(["plan", &demo(), "--json"])
            .args(SMALL)
            .arg("--store")
            .arg(store.path())
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
        let fresh = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "fresh")
            .count();
        assert!(
            fresh >= before,
            "kill {k}: {fresh} fresh steps, {before} before: a finished result was lost"
        );
        factor = if fresh == before {
            (factor * 2).min(16)
        } else {
            1
        };
        before = fresh;
        fresh_at_kills.push(fresh);
    }
    fresh_at_kills.dedup();
    assert!(
        fresh_at_kills.len() >= 5,
        "the kills should land at different points of the run: {fresh_at_kills:?}"
    );
    let last = run_to_end(store.path());
    let got = outputs(&last);
    assert_eq!(got.len(), expected.len());
    for (id, out) in &expected {
        assert_eq!(
            Some(out),
            got.get(id),
            "{id}: differs from the uninterrupted run"
        );
    }
}
