//! Content-addressed blob store, step index and run history for `lulc`.
//!
//! Architecture invariant: this crate knows nothing about YAML, specs or node kinds. It stores
//! opaque blobs, step records whose key material is opaque JSON, and run records. The engine
//! computes step keys; the cache only maps them to outputs.
//!
//! # On-disk layout
//!
//! ```text
//! <root>/
//!   lulc-store.json      the marker: `{"format": 1, ...}`. A store is made only in a new or
//!                        empty folder; any other folder without the marker is refused
//!   objects/ab/cdef...   blobs: exact bytes, named by their blake3 (first 2 hex chars = directory)
//!   records/ab/<key>.json  durable copy of each step record (canonical JSON), outside SQLite:
//!                        what the index is rebuilt from (`records/xy/h-<hash>.json` for odd keys)
//!   tmp/lulc-tmp-*      files being written (`tmp_path`, `put_*`, record files, a rebuilt
//!                        index); renamed into place when complete. `gc` removes stale ones
//!                        by this prefix only
//!   locks/<key>.lock     per-step-key claims (`claim`), OS advisory locks
//!   locks/run-<id>.lock  held by the process of a `running` run; unheld means it died
//!   locks/.store.lock    held shared by every open `Store`; `gc` and an index rebuild take it
//!                        exclusive
//!   locks/.rebuild.lock  held by the one process rebuilding the index; the others queue on it
//!   quarantine/          evidence, never read again: corrupt blobs (`verify`, a rebuild), a bad
//!                        index with its -wal/-shm (`index-<unix time>.sqlite*`), unreadable
//!                        record files (`record-<name>-<unix time>`)
//!   index.sqlite         the index (WAL mode, plus its -wal/-shm files)
//!   slurm/               job folders of the engine's Slurm executor (not read by this crate;
//!                        `gc` removes a run's folder untouched for 7 days)
//! ```
//!
//! Tables of `index.sqlite` (schema version in `PRAGMA user_version`):
//!
//! | table        | one row per                                   | used by                        |
//! |--------------|-----------------------------------------------|--------------------------------|
//! | `blobs`      | blob: digest, size, created_at                | `check_blob` without rehashing |
//! | `steps`      | step key: scope, step id, kind, material, outputs, blobs, metrics, times | `lookup` |
//! | `step_blobs` | (step key, digest) reference                  | `gc`, `verify`                 |
//! | `latest`     | (scope, step id): key + snapshot of the last record | `latest_for` (explain)   |
//! | `runs`       | run: scope, spec path/digest, params, argv, status, times | `runs`, `gc`       |
//! | `run_steps`  | (run, seq): step id, key, status, reason, outputs, metrics | `run_steps`, `gc` |
//!
//! # Why it is built this way
//!
//! - **Content addressing.** A blob's name is the hash of its bytes, so storing is idempotent,
//!   identical outputs are stored once, and a step that reproduces the same bytes leaves its
//!   downstream keys unchanged (early cutoff in the engine).
//! - **Atomic rename.** A blob is written to `tmp/`, fsynced, then renamed into `objects/`
//!   (and the directory fsynced). Readers therefore see a complete blob or none, and blobs are
//!   made read-only so a tool opening one cannot edit it in place. Where `tmp/` is on another
//!   file system (a symlink or a mount), the rename fails with `EXDEV`; the file is then
//!   copied beside its destination under the temp prefix, fsynced and renamed there (a copy a
//!   kill left behind is collected by `gc` like any stale temp file).
//! - **Readers change nothing.** [`Store::open_read_only`] (the CLI's `plan`, `explain`,
//!   `logs`, `show`, `results`, `export`, `report`) creates no folder, takes only the shared
//!   store lock (if its file exists) and opens the index read-only, as immutable where SQLite
//!   cannot create its `-shm` beside it (a read-only medium). Every write through such a view
//!   fails with `ReadOnlyStore`. A folder with no store yet reads as an empty store.
//! - **Row last.** `record_step` writes the blobs, then the record file
//!   `records/ab/<key>.json` (atomically, like a blob), then the step row; `forget_step`,
//!   `verify`, `quarantine` and `gc` delete rows before record files before blobs. Whatever
//!   instant a `kill -9` lands on, the worst left behind is a stray tmp file, an unreferenced
//!   blob or a record file without a row (all collected by `gc`), never a step row pointing at
//!   a missing or half-written blob or lacking its record file (rows written before record
//!   files existed lack one until `lulc verify` writes it back). A record file without a row is
//!   harmless: it is only read by an index rebuild, which re-hashes its blobs first.
//! - **The index can be lost.** `Store::open` does not trust an `index.sqlite` that is missing
//!   while `records/` holds records, is not a database, fails `PRAGMA quick_check`, or has no
//!   step rows while `records/` holds records. It moves it to `quarantine/` and rebuilds it
//!   from the record files whose blobs all re-hash to their names (the others' steps simply
//!   recompute), holding the store lock exclusively; [`Store::rebuilt`] says what happened so
//!   the CLI can warn once. Run history (`runs`, `run_steps`) is not in the records and is lost;
//!   one run per scope with status `rebuilt` lists the restored steps so `gc` keeps them.
//!   `verify` runs `PRAGMA integrity_check` and writes back record files a step row lacks
//!   (stores made before record files existed gain them this way). See `rebuild.rs`.
//! - **Several writers.** Threads share one `Store` (its connection sits behind a mutex);
//!   processes share the directory: WAL, a 60 s busy timeout, `BEGIN IMMEDIATE` for writes and
//!   a bounded retry on `SQLITE_BUSY` mean nobody sees "database is locked". `claim` keeps two
//!   processes from computing the same step at once, and `gc` refuses to run while another
//!   handle is open, so it never deletes what a running `lulc run` is about to record (nor the
//!   record file a `record_step` has written but not yet given its row).

mod blobs;
mod claim;
mod digest;
mod error;
mod index;
mod maintenance;
mod rebuild;
mod records;
mod store;

pub use blobs::{Blobs, MARKER, STORE_FORMAT};
pub use claim::Claim;
pub use digest::{DIGEST_PREFIX, Digest};
pub use error::{CacheError, Result};
pub use index::{RunInfo, RunStep, RunSummary, StepRecord};
pub use maintenance::{CorruptBlob, GcOptions, GcReport, VerifyReport};
pub use rebuild::{IndexProblem, RebuildReport};
pub use store::{BlobState, SCHEMA_VERSION, Store};

/// JSON text with object keys sorted at every level, whatever serde_json's map ordering
/// feature is: the same value always gives the same text.
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn sorted(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::{StepRecord, Store};

    pub fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        (dir, store)
    }

    /// Puts `content` and returns a record whose only output is that blob (not recorded).
    pub fn step(store: &Store, key: &str, step_id: &str, content: &[u8]) -> StepRecord {
        let d = store.put_bytes(content).unwrap();
        StepRecord {
            key: key.to_owned(),
            scope: "demo".to_owned(),
            step_id: step_id.to_owned(),
            kind: "migrate".to_owned(),
            material: serde_json::json!({"params": {"ed": 0.1, "year": 2019}, "kind": "migrate"}),
            outputs: BTreeMap::from([("out".to_owned(), d.clone())]),
            blobs: vec![d],
            metrics: serde_json::json!({"kept": 3}),
            duration_s: 0.25,
            created_at: 0,
        }
    }

    /// Records three steps, `good`, `bad` and `gone` (keys `kgood`, `kbad`, `kgone`), one blob
    /// each, for the tests that then corrupt `bad`'s blob and delete `gone`'s.
    pub fn good_bad_gone(store: &Store) -> [StepRecord; 3] {
        let recs = ["good", "bad", "gone"].map(|id| {
            step(
                store,
                &format!("k{id}"),
                id,
                format!("{id} content").as_bytes(),
            )
        });
        for rec in &recs {
            store.record_step(rec).unwrap();
        }
        recs
    }

    /// Starts a run of scope `demo` (spec `demo.yaml`); its id.
    pub fn begin_demo_run(store: &Store) -> i64 {
        store
            .begin_run(&crate::RunInfo {
                scope: "demo".into(),
                spec_path: "demo.yaml".into(),
                spec_digest: "x".into(),
                params: serde_json::json!({}),
                argv: vec![],
            })
            .unwrap()
    }

    /// Flips one bit of a (read-only) blob file in place, keeping its size.
    pub fn flip_bit(path: &Path) {
        make_writable(path);
        let mut bytes = std::fs::read(path).unwrap();
        bytes[0] ^= 1;
        std::fs::write(path, bytes).unwrap();
    }

    pub fn make_writable(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"d": [ {"z": 1, "y": 2} ], "c": null}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}"#
        );
    }

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
        assert_send_sync::<Claim>();
    }
}
