//! Step records and run records: the SQLite half of the store.
//!
//! JSON columns are TEXT. Key material and metrics are written as canonical JSON (sorted object
//! keys) so the same material always gives the same text.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::store::{Store, TxError, TxResult, next_stamp, unix_now};
use crate::{CacheError, Digest, Result, canonical_json};

/// What the engine knows about one computed step.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    /// Step key (hex), computed by the engine from `material`.
    pub key: String,
    /// Spec name: two specs sharing a store keep separate "latest" pointers.
    pub scope: String,
    /// Step id, e.g. `migrate[ed=0.1,year=2019]`.
    pub step_id: String,
    /// Node kind (opaque here).
    pub kind: String,
    /// The key material (opaque JSON), stored as canonical JSON text.
    pub material: serde_json::Value,
    /// Output port -> digest.
    pub outputs: BTreeMap<String, Digest>,
    /// Every blob the outputs reference (the outputs and their member files). `gc` and
    /// `verify` use this list; they never look inside blobs. Output digests are indexed too
    /// even if missing here.
    pub blobs: Vec<Digest>,
    pub metrics: serde_json::Value,
    pub duration_s: f64,
    /// Unix seconds; `record_step` fills it when 0.
    pub created_at: i64,
}

/// What a run is started with.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    pub scope: String,
    pub spec_path: String,
    pub spec_digest: String,
    pub params: serde_json::Value,
    pub argv: Vec<String>,
}

/// One row of the run history.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    pub id: i64,
    pub scope: String,
    pub spec_path: String,
    pub spec_digest: String,
    pub params: serde_json::Value,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// `running` until [`Store::finish_run`].
    pub status: String,
}

/// What happened to one step in one run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunStep {
    pub step_id: String,
    pub key: Option<String>,
    /// `ran`, `cached`, `failed`, `skipped` (only `ran` and `cached` keep a step alive in gc).
    pub status: String,
    pub reason: String,
    pub duration_s: f64,
    pub outputs: BTreeMap<String, Digest>,
    pub metrics: serde_json::Value,
}

const STEP_COLUMNS: &str =
    "key, scope, step_id, kind, material, outputs, blobs, metrics, duration_s, created_at";

const RUN_COLUMNS: &str =
    "id, scope, spec_path, spec_digest, params, started_at, finished_at, status";

/// A `steps` row before its JSON columns are decoded.
struct RawStep {
    key: String,
    scope: String,
    step_id: String,
    kind: String,
    material: String,
    outputs: String,
    blobs: String,
    metrics: String,
    duration_s: Option<f64>,
    created_at: i64,
}

impl RawStep {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawStep> {
        Ok(RawStep {
            key: r.get(0)?,
            scope: r.get(1)?,
            step_id: r.get(2)?,
            kind: r.get(3)?,
            material: r.get(4)?,
            outputs: r.get(5)?,
            blobs: r.get(6)?,
            metrics: r.get(7)?,
            duration_s: r.get(8)?,
            created_at: r.get(9)?,
        })
    }
}

struct RawRun {
    id: i64,
    scope: String,
    spec_path: String,
    spec_digest: String,
    params: String,
    started_at: i64,
    finished_at: Option<i64>,
    status: String,
}

impl RawRun {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawRun> {
        Ok(RawRun {
            id: r.get(0)?,
            scope: r.get(1)?,
            spec_path: r.get(2)?,
            spec_digest: r.get(3)?,
            params: r.get(4)?,
            started_at: r.get(5)?,
            finished_at: r.get(6)?,
            status: r.get(7)?,
        })
    }
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> String {
    // Our types serialise to JSON infallibly (string keys, no custom serialisers that fail).
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

impl Store {
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        text: &str,
        what: impl Into<String>,
    ) -> TxResult<T> {
        serde_json::from_str(text).map_err(|e| self.bad_record(what, e))
    }

    fn decode_step(&self, raw: RawStep) -> TxResult<StepRecord> {
        let what = |col: &str| format!("`{col}` of step `{}`", raw.key);
        Ok(StepRecord {
            material: self.decode(&raw.material, what("material"))?,
            outputs: self.decode(&raw.outputs, what("outputs"))?,
            blobs: self.decode(&raw.blobs, what("blobs"))?,
            metrics: self.decode(&raw.metrics, what("metrics"))?,
            duration_s: raw.duration_s.unwrap_or(f64::NAN),
            created_at: raw.created_at,
            key: raw.key,
            scope: raw.scope,
            step_id: raw.step_id,
            kind: raw.kind,
        })
    }

    fn decode_run(&self, raw: RawRun) -> TxResult<RunSummary> {
        Ok(RunSummary {
            params: self.decode(&raw.params, format!("`params` of run {}", raw.id))?,
            id: raw.id,
            scope: raw.scope,
            spec_path: raw.spec_path,
            spec_digest: raw.spec_digest,
            started_at: raw.started_at,
            finished_at: raw.finished_at,
            status: raw.status,
        })
    }

    // ----- steps -----------------------------------------------------------------------------

    /// The record for a step key, if that exact key was computed and not forgotten.
    pub fn lookup(&self, key: &str) -> Result<Option<StepRecord>> {
        self.read(|tx| {
            let raw = tx
                .prepare_cached(&format!("SELECT {STEP_COLUMNS} FROM steps WHERE key = ?1"))?
                .query_row([key], RawStep::from_row)
                .optional()?;
            raw.map(|r| self.decode_step(r)).transpose()
        })
    }

    /// Records a computed step: its record file `records/ab/<key>.json` (the durable copy the
    /// index is rebuilt from), then the `steps` row, its `step_blobs` rows and the `latest`
    /// pointer of `(scope, step_id)`, in one transaction. Every referenced blob must already
    /// be in the store (blobs first, record file next, row last); otherwise this fails with
    /// `MissingBlob`.
    pub fn record_step(&self, rec: &StepRecord) -> Result<()> {
        self.writable()?;
        let (rec, stamp) = self.blobs.write_step_record_stamped(rec)?;
        self.write(|tx| {
            let stamp = store_clock(tx, stamp)?;
            insert_step(tx, &rec, stamp)?;
            set_latest(tx, &rec)?;
            Ok(())
        })
    }

    /// Every step row with its `last_used` stamp, by key (for `verify`'s record check).
    pub(crate) fn all_steps(&self) -> Result<Vec<(StepRecord, i64)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(&format!(
                "SELECT {STEP_COLUMNS}, last_used FROM steps ORDER BY key"
            ))?;
            let raws = stmt
                .query_map([], |r| Ok((RawStep::from_row(r)?, r.get::<_, i64>(10)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            raws.into_iter()
                .map(|(raw, used)| Ok((self.decode_step(raw)?, used)))
                .collect()
        })
    }

    /// The most recently recorded step for `scope` + `step_id`, whatever its key: the engine
    /// diffs its material against the current one to explain why a step is dirty.
    ///
    /// This is a snapshot taken by `record_step`; it survives `forget_step`, `verify` and `gc`
    /// (so "same key, but the record is gone" tells the engine the output went missing or
    /// corrupt). Do not use its outputs without checking them.
    pub fn latest_for(&self, scope: &str, step_id: &str) -> Result<Option<StepRecord>> {
        self.read(|tx| {
            let text: Option<String> = tx
                .prepare_cached("SELECT record FROM latest WHERE scope = ?1 AND step_id = ?2")?
                .query_row([scope, step_id], |r| r.get(0))
                .optional()?;
            text.map(|t| self.decode(&t, format!("latest record of `{step_id}` in `{scope}`")))
                .transpose()
        })
    }

    /// Drops the record of a step key, row and record file (its blobs stay until `gc`). The
    /// `latest_for` snapshot is kept.
    pub fn forget_step(&self, key: &str) -> Result<()> {
        self.write(|tx| {
            forget_in(tx, key)?;
            Ok(())
        })?;
        // Row first, then the record file (a kill in between leaves a record without a row,
        // which gc collects).
        self.remove_records([key])
    }

    /// Marks steps as used now (cache hits), for `gc --max-size` least-recently-used order: one
    /// transaction, one stamp. Unknown keys are ignored.
    pub fn touch_steps(&self, keys: &[&str]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let stamp = store_clock(tx, next_stamp())?;
            let mut update = tx.prepare_cached("UPDATE steps SET last_used = ?2 WHERE key = ?1")?;
            for key in keys {
                update.execute(params![key, stamp])?;
            }
            Ok(())
        })
    }

    // ----- runs ------------------------------------------------------------------------------

    /// Starts a run record (status `running`); returns its id. The run's lock file
    /// (`locks/run-<id>.lock`) is held until [`Store::finish_run`], so a run whose process
    /// died is told from one still going (see [`Store::settle_dead_runs`]).
    pub fn begin_run(&self, info: &RunInfo) -> Result<i64> {
        self.settle_dead_runs()?;
        let params_json = canonical_json(&info.params);
        let argv = to_json(&info.argv);
        let now = unix_now();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO runs(scope, spec_path, spec_digest, params, argv, started_at, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running')",
                params![
                    info.scope,
                    info.spec_path,
                    info.spec_digest,
                    params_json,
                    argv,
                    now
                ],
            )?;
            let id = tx.last_insert_rowid();
            // Locked before the row is visible (the write transaction is still open), so no
            // other process ever sees this run `running` and unlocked.
            let path = self.run_lock_path(id);
            let file = crate::store::open_lock_file(&path).map_err(TxError::Cache)?;
            file.lock()
                .map_err(|e| TxError::Cache(crate::error::io_err("lock", &path)(e)))?;
            self.held_runs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, file);
            Ok(id)
        })
    }

    fn run_lock_path(&self, run: i64) -> std::path::PathBuf {
        self.root.join("locks").join(format!("run-{run}.lock"))
    }

    /// Marks `interrupted` every `running` run whose process is gone (killed, or the machine
    /// went down): nobody holds its lock file. Their finished steps stay recorded in them.
    /// Returns how many were settled.
    pub fn settle_dead_runs(&self) -> Result<usize> {
        let running: Vec<i64> = self.read(|c| {
            Ok(c.prepare("SELECT id FROM runs WHERE status = 'running'")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?)
        })?;
        let held = self.held_runs.lock().unwrap_or_else(|p| p.into_inner());
        let mut dead = Vec::new();
        for id in running {
            if held.contains_key(&id) {
                continue;
            }
            let path = self.run_lock_path(id);
            match std::fs::File::open(&path) {
                Err(_) => dead.push((id, None)),
                Ok(f) => match f.try_lock() {
                    Ok(()) => dead.push((id, Some((path, f)))),
                    Err(std::fs::TryLockError::WouldBlock) => {}
                    Err(std::fs::TryLockError::Error(e)) => {
                        return Err(crate::error::io_err("lock", &path)(e));
                    }
                },
            }
        }
        drop(held);
        if dead.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = dead.iter().map(|d| d.0).collect();
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE runs SET status = 'interrupted' WHERE id = ?1 AND status = 'running'",
            )?;
            for id in &ids {
                stmt.execute([id])?;
            }
            Ok(())
        })?;
        for (path, _lock) in dead.into_iter().filter_map(|d| d.1) {
            let _ = std::fs::remove_file(&path);
        }
        Ok(ids.len())
    }

    fn ensure_run(&self, tx: &rusqlite::Transaction<'_>, run: i64) -> TxResult<()> {
        let exists: Option<i64> = tx
            .query_row("SELECT id FROM runs WHERE id = ?1", [run], |r| r.get(0))
            .optional()?;
        match exists {
            Some(_) => Ok(()),
            None => Err(TxError::Cache(CacheError::UnknownRun {
                path: self.index_path.clone(),
                run,
            })),
        }
    }

    /// Appends one step's outcome to a run (kept in call order).
    pub fn record_run_step(&self, run: i64, s: &RunStep) -> Result<()> {
        self.record_run_steps(run, std::slice::from_ref(s))
    }

    /// Appends several step outcomes to a run, in order, in one transaction.
    pub fn record_run_steps(&self, run: i64, steps: &[RunStep]) -> Result<()> {
        let encoded: Vec<(String, String)> = steps
            .iter()
            .map(|s| (to_json(&s.outputs), canonical_json(&s.metrics)))
            .collect();
        self.write(|tx| {
            self.ensure_run(tx, run)?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO run_steps(run_id, seq, step_id, key, status, reason, duration_s,
                                       outputs, metrics)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM run_steps WHERE run_id = ?1),
                         ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (s, (outputs, metrics)) in steps.iter().zip(&encoded) {
                insert.execute(params![
                    run,
                    s.step_id,
                    s.key,
                    s.status,
                    s.reason,
                    s.duration_s,
                    outputs,
                    metrics
                ])?;
            }
            Ok(())
        })
    }

    /// Closes a run with its final status (e.g. `ok`, `failed`) and releases its lock.
    pub fn finish_run(&self, run: i64, status: &str) -> Result<()> {
        let now = unix_now();
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE runs SET status = ?2, finished_at = ?3 WHERE id = ?1",
                params![run, status, now],
            )?;
            if changed == 0 {
                return Err(TxError::Cache(CacheError::UnknownRun {
                    path: self.index_path.clone(),
                    run,
                }));
            }
            Ok(())
        })?;
        let held = self
            .held_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&run);
        if held.is_some() {
            let _ = std::fs::remove_file(self.run_lock_path(run));
        }
        Ok(())
    }

    /// The newest `limit` runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunSummary>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|tx| {
            let mut stmt = tx.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"
            ))?;
            let raws = stmt
                .query_map([limit], RawRun::from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            raws.into_iter().map(|r| self.decode_run(r)).collect()
        })
    }

    /// The steps of a run in the order they were recorded (empty for an unknown run).
    pub fn run_steps(&self, run: i64) -> Result<Vec<RunStep>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT step_id, key, status, reason, duration_s, outputs, metrics
                 FROM run_steps WHERE run_id = ?1 ORDER BY seq",
            )?;
            let raws = stmt
                .query_map([run], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<f64>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            raws.into_iter()
                .map(
                    |(step_id, key, status, reason, duration_s, outputs, metrics)| {
                        let what = |col: &str| format!("`{col}` of `{step_id}` in run {run}");
                        Ok(RunStep {
                            outputs: self.decode(&outputs, what("outputs"))?,
                            metrics: self.decode(&metrics, what("metrics"))?,
                            duration_s: duration_s.unwrap_or(f64::NAN),
                            step_id,
                            key,
                            status,
                            reason,
                        })
                    },
                )
                .collect()
        })
    }

    /// The newest run of `scope`, finished or not.
    pub fn last_run_for(&self, scope: &str) -> Result<Option<RunSummary>> {
        self.read(|tx| {
            let raw = tx
                .query_row(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE scope = ?1 ORDER BY id DESC LIMIT 1"
                    ),
                    [scope],
                    RawRun::from_row,
                )
                .optional()?;
            raw.map(|r| self.decode_run(r)).transpose()
        })
    }
}

/// The `last_used` stamp of a write: the clock's `stamp` (microseconds), but always after
/// every stamp the store holds. `gc --max-size` evicts by this order, so a clock that was set
/// ahead once (and stamped steps in the future) cannot make newer work look older; the stamps
/// form a counter local to the store that only goes forward.
fn store_clock(tx: &rusqlite::Transaction<'_>, stamp: i64) -> rusqlite::Result<i64> {
    let last: Option<i64> = tx.query_row("SELECT MAX(last_used) FROM steps", [], |r| r.get(0))?;
    Ok(last.map_or(stamp, |l| stamp.max(l.saturating_add(1))))
}

/// Every blob a record references: its `blobs` and its outputs.
pub(crate) fn referenced(rec: &StepRecord) -> BTreeSet<&Digest> {
    rec.blobs.iter().chain(rec.outputs.values()).collect()
}

/// Writes (or replaces) the `steps` row of `rec` and its `step_blobs` rows. `rec.created_at`
/// must be filled in.
pub(crate) fn insert_step(
    tx: &rusqlite::Transaction<'_>,
    rec: &StepRecord,
    last_used: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO steps(key, scope, step_id, kind, material, outputs, blobs, metrics,
                           duration_s, created_at, last_used)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT(key) DO UPDATE SET
            scope = excluded.scope, step_id = excluded.step_id, kind = excluded.kind,
            material = excluded.material, outputs = excluded.outputs,
            blobs = excluded.blobs, metrics = excluded.metrics,
            duration_s = excluded.duration_s, created_at = excluded.created_at,
            last_used = excluded.last_used",
    )?
    .execute(params![
        rec.key,
        rec.scope,
        rec.step_id,
        rec.kind,
        canonical_json(&rec.material),
        to_json(&rec.outputs),
        to_json(&rec.blobs),
        canonical_json(&rec.metrics),
        rec.duration_s,
        rec.created_at,
        last_used
    ])?;
    tx.prepare_cached("DELETE FROM step_blobs WHERE key = ?1")?
        .execute([&rec.key])?;
    let mut insert =
        tx.prepare_cached("INSERT OR IGNORE INTO step_blobs(key, digest) VALUES (?1, ?2)")?;
    for d in referenced(rec) {
        insert.execute(params![rec.key, d.as_str()])?;
    }
    Ok(())
}

/// Points `latest` of `(rec.scope, rec.step_id)` at `rec` (a snapshot of the whole record).
pub(crate) fn set_latest(tx: &rusqlite::Transaction<'_>, rec: &StepRecord) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO latest(scope, step_id, key, record) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(scope, step_id) DO UPDATE SET key = excluded.key, record = excluded.record",
    )?
    .execute(params![rec.scope, rec.step_id, rec.key, to_json(rec)])?;
    Ok(())
}

/// Deletes a step record and its blob references (not its `latest` snapshot).
pub(crate) fn forget_in(tx: &rusqlite::Transaction<'_>, key: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM step_blobs WHERE key = ?1", [key])?;
    tx.execute("DELETE FROM steps WHERE key = ?1", [key])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{step, store};

    fn run_info(scope: &str) -> RunInfo {
        RunInfo {
            scope: scope.to_owned(),
            spec_path: format!("pipelines/{scope}.yaml"),
            spec_digest: Digest::of_bytes(scope.as_bytes()).to_string(),
            params: serde_json::json!({"year": 2019, "ed": 0.1}),
            argv: vec!["lulc".into(), "run".into()],
        }
    }

    fn run_step(step_id: &str, key: &str, status: &str) -> RunStep {
        RunStep {
            step_id: step_id.to_owned(),
            key: Some(key.to_owned()),
            status: status.to_owned(),
            reason: "never run".to_owned(),
            duration_s: 1.5,
            outputs: BTreeMap::new(),
            metrics: serde_json::json!({"oa": 0.9}),
        }
    }

    #[test]
    fn record_lookup_latest_for_and_forget() {
        let (_dir, store) = store();
        assert_eq!(store.lookup("k1").unwrap(), None);
        assert_eq!(
            store.latest_for("demo", "migrate[year=2019]").unwrap(),
            None
        );

        let first = step(&store, "k1", "migrate[year=2019]", b"first output");
        store.record_step(&first).unwrap();
        let got = store.lookup("k1").unwrap().expect("recorded");
        assert!(got.created_at > 0, "created_at is filled in");
        assert_eq!(
            got,
            StepRecord {
                created_at: got.created_at,
                ..first.clone()
            }
        );
        assert_eq!(
            store.latest_for("demo", "migrate[year=2019]").unwrap(),
            Some(got.clone())
        );

        // Same step id, new key (a param changed): latest moves, the old record stays.
        let mut second = step(&store, "k2", "migrate[year=2019]", b"second output");
        second.material = serde_json::json!({"params": {"ed": 0.15, "year": 2019}});
        second.created_at = 1234;
        store.record_step(&second).unwrap();
        assert_eq!(
            store.latest_for("demo", "migrate[year=2019]").unwrap(),
            Some(second.clone())
        );
        assert_eq!(store.lookup("k1").unwrap(), Some(got));
        // Another scope has its own pointer.
        assert_eq!(
            store.latest_for("other", "migrate[year=2019]").unwrap(),
            None
        );

        store.forget_step("k1").unwrap();
        assert_eq!(store.lookup("k1").unwrap(), None);
        store.forget_step("k2").unwrap();
        assert_eq!(store.lookup("k2").unwrap(), None);
        // The snapshot survives, so the engine can say "output missing" rather than "new".
        assert_eq!(
            store
                .latest_for("demo", "migrate[year=2019]")
                .unwrap()
                .map(|r| r.key),
            Some("k2".to_owned())
        );
        // Forgetting an unknown key is not an error.
        store.forget_step("nope").unwrap();
    }

    #[test]
    fn record_step_refuses_a_record_whose_blobs_are_not_stored() {
        let (_dir, store) = store();
        let mut rec = step(&store, "k", "s", b"present");
        let absent = Digest::of_bytes(b"absent");
        rec.blobs.push(absent.clone());
        match store.record_step(&rec).unwrap_err() {
            CacheError::MissingBlob { digest, path } => {
                assert_eq!(digest, absent);
                assert_eq!(path, store.blob_path(&absent));
            }
            other => panic!("expected MissingBlob, got {other}"),
        }
        assert_eq!(store.lookup("k").unwrap(), None);
    }

    #[test]
    fn material_is_stored_as_canonical_json_and_rerecording_replaces_blob_refs() {
        let (_dir, store) = store();
        let mut rec = step(&store, "k", "s", b"v1");
        rec.material = serde_json::json!({"z": 1, "a": {"y": 2, "b": 3}});
        store.record_step(&rec).unwrap();
        let v2 = step(&store, "k", "s", b"v2");
        store.record_step(&v2).unwrap();
        let (material, refs): (String, Vec<String>) = store
            .read(|tx| {
                let m = tx.query_row("SELECT material FROM steps WHERE key = 'k'", [], |r| {
                    r.get(0)
                })?;
                let refs = tx
                    .prepare("SELECT digest FROM step_blobs WHERE key = 'k'")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok((m, refs))
            })
            .unwrap();
        assert_eq!(material, canonical_json(&v2.material));
        assert_eq!(refs, vec![v2.blobs[0].to_string()]);
        assert_eq!(
            canonical_json(&rec.material),
            r#"{"a":{"b":3,"y":2},"z":1}"#
        );
    }

    #[test]
    fn runs_are_recorded_listed_newest_first_and_finished() {
        let (_dir, store) = store();
        assert!(store.runs(10).unwrap().is_empty());
        assert_eq!(store.last_run_for("demo").unwrap(), None);

        let r1 = store.begin_run(&run_info("demo")).unwrap();
        let r2 = store.begin_run(&run_info("other")).unwrap();
        assert!(r2 > r1);
        let running = store.last_run_for("demo").unwrap().unwrap();
        assert_eq!((running.id, running.status.as_str()), (r1, "running"));
        assert_eq!(running.finished_at, None);
        assert_eq!(running.params, serde_json::json!({"ed": 0.1, "year": 2019}));

        let a = run_step("a[x=1]", "ka", "ran");
        let b = RunStep {
            key: None,
            status: "skipped".into(),
            ..run_step("b", "", "")
        };
        let c = run_step("c", "kc", "cached");
        store.record_run_step(r1, &a).unwrap();
        store.record_run_steps(r1, &[b.clone(), c.clone()]).unwrap();
        store.finish_run(r1, "ok").unwrap();
        assert_eq!(store.run_steps(r1).unwrap(), vec![a, b, c]);
        assert!(store.run_steps(r2).unwrap().is_empty());

        let runs = store.runs(10).unwrap();
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![r2, r1]);
        assert_eq!(runs[1].status, "ok");
        assert!(runs[1].finished_at.is_some());
        assert_eq!(store.runs(1).unwrap().len(), 1);
        assert_eq!(store.last_run_for("other").unwrap().unwrap().id, r2);

        assert!(matches!(
            store
                .record_run_step(999, &run_step("x", "k", "ran"))
                .unwrap_err(),
            CacheError::UnknownRun { run: 999, .. }
        ));
        assert!(matches!(
            store.record_run_steps(999, &[]).unwrap_err(),
            CacheError::UnknownRun { run: 999, .. }
        ));
        assert!(matches!(
            store.finish_run(999, "ok").unwrap_err(),
            CacheError::UnknownRun { run: 999, .. }
        ));
    }

    #[test]
    fn a_run_whose_process_died_is_settled_as_interrupted_and_a_live_one_is_not() {
        let (dir, store) = store();
        let other = Store::open(dir.path().join("store")).unwrap();
        assert_eq!(other.root(), store.root());
        let live = store.begin_run(&run_info("demo")).unwrap();
        let killed = other.begin_run(&run_info("demo")).unwrap();
        other
            .record_run_step(killed, &run_step("a", "ka", "ran"))
            .unwrap();
        // The other process dies: its handle (and so its run's lock) is gone, no finish_run.
        drop(other);
        assert_eq!(store.settle_dead_runs().unwrap(), 1);
        let status = |id: i64| {
            store
                .runs(10)
                .unwrap()
                .into_iter()
                .find(|r| r.id == id)
                .unwrap()
                .status
        };
        assert_eq!(status(killed), "interrupted");
        assert_eq!(status(live), "running", "its lock is held");
        assert_eq!(store.run_steps(killed).unwrap().len(), 1, "its steps stay");
        assert!(
            !store
                .root()
                .join(format!("locks/run-{killed}.lock"))
                .exists()
        );
        store.finish_run(live, "ok").unwrap();
        assert_eq!(status(live), "ok");
        assert!(!store.root().join(format!("locks/run-{live}.lock")).exists());
        assert_eq!(store.settle_dead_runs().unwrap(), 0);
    }
}
