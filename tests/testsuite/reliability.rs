//! Faults on the real demo chain: `kill -9` at twenty different moments of `lulc run`, then a
//! run to the end; nothing finished is lost, nothing corrupt is used, and every output is the
//! same as an uninterrupted run's.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{bin, demo_spec, run_demo, step_outputs};

/// A small area and three years: about 70 steps to interrupt.
const SMALL: [&str; 4] = ["--set", "size=64", "--set", "years=2020..2022"];

#[test]
fn twenty_kills_lose_nothing_and_the_final_outputs_equal_an_uninterrupted_run() {
    let reference = tempfile::tempdir().unwrap();
    let expected = step_outputs(&run_demo(reference.path(), "2", &SMALL));

    let store = tempfile::tempdir().unwrap();
    let fresh_steps = |store: &Path| -> usize {
        let plan = Command::new(bin())
            .args(["plan", &demo_spec(), "--json"])
            .args(SMALL)
            .arg("--store")
            .arg(store)
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "fresh")
            .count()
    };
    // Kill moments: the first three at fixed times after the start (lowering, the first
    // steps); then each run is killed as soon as a step more has finished than at
    // the previous kill, so the kills walk through the run (simulation, acquisition, masking,
    // compositing, features, sampling, training, mapping) whatever the machine's speed.
    let mut kills = 0;
    let mut fresh_at_kills = Vec::new();
    let mut before = 0;
    while kills < 20 {
        let mut child = Command::new(bin())
            .args(["run", &demo_spec(), "--jobs", "2"])
            .args(SMALL)
            .arg("--store")
            .arg(store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        let finished = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            let due = if kills < 3 {
                started.elapsed() >= Duration::from_millis([50, 150, 400][kills])
            } else {
                fresh_steps(store.path()) > before
            };
            if due {
                break false;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if finished {
            // The run ended before its kill moment: nothing left to interrupt.
            break;
        }
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        kills += 1;
        // Whatever was finished is still in the store and intact.
        let verify = Command::new(bin())
            .args(["verify", "--store"])
            .arg(store.path())
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "after kill {kills}: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
        let fresh = fresh_steps(store.path());
        assert!(
            fresh >= before,
            "kill {kills}: {fresh} fresh steps, {before} before: a finished result was lost"
        );
        before = fresh;
        fresh_at_kills.push(fresh);
    }
    assert!(
        kills >= 20,
        "the run finished after {kills} kills: {fresh_at_kills:?}"
    );
    fresh_at_kills.dedup();
    assert!(
        fresh_at_kills.len() >= 10,
        "the kills should land at different points of the run: {fresh_at_kills:?}"
    );
    let last = run_demo(store.path(), "2", &SMALL);
    let got = step_outputs(&last);
    assert_eq!(got.len(), expected.len());
    for (id, out) in &expected {
        assert_eq!(
            Some(out),
            got.get(id),
            "{id}: differs from the uninterrupted run"
        );
    }
}
