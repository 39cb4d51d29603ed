//! Helpers: a temporary project with a spec, and running the real `lulc` binary on it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub struct Project {
    root: PathBuf,
    /// The temp folder `root` is, removed on drop (none for a view of another's folder).
    _dir: Option<tempfile::TempDir>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Step ids with the given status, sorted.
    pub fn steps_with(&self, status: &str) -> Vec<String> {
        let doc = self.json();
        let mut ids: Vec<String> = doc["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter(|s| s["status"] == status)
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }

    pub fn step(&self, id: &str) -> Value {
        let doc = self.json();
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no step {id} in {}", self.stdout))
    }

    /// Asserts the exit `code` and that stderr holds each of `needles`.
    pub fn assert_fails(&self, code: i32, needles: &[&str]) -> &Run {
        assert_eq!(
            self.code, code,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        for needle in needles {
            assert!(self.stderr.contains(needle), "{needle}:\n{}", self.stderr);
        }
        self
    }

    pub fn assert_ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lulc")
}

impl Project {
    pub fn new(spec: &str) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pipeline.yaml"), spec).expect("write spec");
        Project {
            root: dir.path().to_owned(),
            _dir: Some(dir),
        }
    }

    /// A project over an existing folder (another project's, seen through a mount).
    pub fn at(root: &Path) -> Project {
        Project {
            root: root.to_owned(),
            _dir: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn spec(&self) -> PathBuf {
        self.root.join("pipeline.yaml")
    }

    pub fn store(&self) -> PathBuf {
        self.root.join(".lulc")
    }

    pub fn write_spec(&self, spec: &str) {
        std::fs::write(self.spec(), spec).expect("write spec");
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(self.path())
            .env("LULC_TEST_KINDS", "1")
            .env("NO_COLOR", "1")
            .env_remove("LULC_STORE");
        c
    }

    pub fn lulc(&self, args: &[&str]) -> Run {
        let out: Output = self.cmd(args).output().expect("run lulc");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `lulc run pipeline.yaml --json` + extra args.
    pub fn run(&self, extra: &[&str]) -> Run {
        let mut args = vec!["run", "pipeline.yaml", "--json"];
        args.extend_from_slice(extra);
        self.lulc(&args)
    }

    /// `lulc export pipeline.yaml TARGET --out OUT`.
    pub fn export(&self, target: &str, out: &Path) -> Run {
        self.lulc(&[
            "export",
            "pipeline.yaml",
            target,
            "--out",
            out.to_str().unwrap(),
        ])
    }

    pub fn plan(&self, extra: &[&str]) -> Run {
        let mut args = vec!["plan", "pipeline.yaml", "--json"];
        args.extend_from_slice(extra);
        self.lulc(&args)
    }

    /// Every blob file in the store.
    pub fn blobs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let objects = self.store().join("objects");
        for d in std::fs::read_dir(&objects).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                out.push(f.path());
            }
        }
        out.sort();
        out
    }
}

/// A small pipeline over the test kinds: per-year `emit` (years padded by one), a per-year
/// `combine` reading years Y-1..Y+1, and one `combine` gathering all years.
pub const YEARLY: &str = r#"
name: yearly
params:
  years: 2018..2020
nodes:
  raw:
    kind: emit
    for_each: { year: { param: years, pad: 1 } }
    params: { value: "v${year}" }
  window:
    kind: combine
    for_each: { year: years }
    inputs:
      parts: { from: raw, year: "-1..+1" }
  all:
    kind: combine
    inputs: { parts: window }
"#;

/// A step that fails (`bad`), its reader (`after_bad`) and an independent branch (`good`).
pub const FORKED: &str = r#"
name: forked
nodes:
  a: { kind: emit, params: { value: 1 } }
  bad:
    kind: combine
    inputs: { parts: a }
    params: { fail: true }
  after_bad: { kind: combine, inputs: { parts: bad } }
  good: { kind: combine, inputs: { parts: a } }
"#;

/// The shipped demo spec, `pipelines/demo.yaml`.
pub fn demo_spec() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipelines/demo.yaml")
        .display()
        .to_string()
}

/// `lulc run pipelines/demo.yaml --json --jobs JOBS SETS... --store STORE`, which must
/// succeed; its `--json` document.
pub fn run_demo(store: &Path, jobs: &str, sets: &[&str]) -> Value {
    let out = Command::new(bin())
        .args(["run", &demo_spec(), "--json", "--jobs", jobs])
        .args(sets)
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

/// Step id -> its outputs (port -> digest, as JSON text), from a `run --json` document.
pub fn step_outputs(doc: &Value) -> std::collections::BTreeMap<String, String> {
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
