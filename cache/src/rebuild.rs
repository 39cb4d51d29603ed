//! Detecting a missing or corrupt `index.sqlite` and rebuilding it from `records/`.
//!
//! `Store::open` diagnoses the index first ([`diagnose`]): missing while `records/` holds
//! records (or while a stray `-wal`/`-shm` is left), not a database, failing `PRAGMA
//! quick_check`, or without a single step row while `records/` holds records. Any of these
//! means the index cannot be trusted, and using it would silently recompute (or worse) every
//! step. Instead, holding the store lock exclusively (like gc), `open`:
//!
//! 1. moves the bad index and its `-wal`/`-shm` to `quarantine/index-<unix time>.sqlite*`
//!    (evidence; never read again);
//! 2. builds a fresh index under `tmp/` (no fsync per statement: until the rename it is a
//!    scratch file) and re-inserts every record file whose blobs all re-hash to their names
//!    (`check_blob(d, true)`, so the `blobs` sizes come from the files); records with a missing
//!    or corrupt blob are skipped (those steps recompute; corrupt blob files go to quarantine),
//!    unparsable record files are moved to quarantine;
//! 3. rebuilds `latest` from the records (newest `created_at`, then stamp, per scope + step id,
//!    including skipped records so `plan` can still say why a step is dirty);
//! 4. adds one run per scope with status `rebuilt` listing the restored steps as `cached`, so
//!    `gc --keep-runs N` keeps them until N newer runs exist (the real run history is gone);
//! 5. fsyncs the new index, renames it to `index.sqlite` and fsyncs the directory.
//!
//! A kill at any point leaves either the bad index in place, or no index (with the records
//! untouched), or the complete new one: the next open simply rebuilds again.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::error::io_err;
use crate::index::{insert_step, referenced, set_latest, to_json};
use crate::records::{any_records, decode_record, walk_records};
use crate::store::{
    SCHEMA, Store, TxError, TxResult, open_index, retry_busy, sql_error, sync_dir, unix_now,
};
use crate::{BlobState, CacheError, Digest, Result, SCHEMA_VERSION, StepRecord, canonical_json};

/// Why the index had to be rebuilt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum IndexProblem {
    /// `index.sqlite` did not exist while `records/` held step records (or a `-wal`/`-shm`
    /// was left without its database).
    Missing,
    /// Not a database, or SQLite reports it corrupt; the text says what SQLite said.
    Corrupt(String),
    /// A valid database without a single step row while `records/` holds step records
    /// (e.g. truncated to 0 bytes, or replaced by an empty database).
    Empty,
}

impl fmt::Display for IndexProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexProblem::Missing => f.write_str("missing"),
            IndexProblem::Corrupt(why) => write!(f, "corrupt: {why}"),
            IndexProblem::Empty => f.write_str("empty (no step rows, but records/ has records)"),
        }
    }
}

/// What a rebuild of the index did. See the module docs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RebuildReport {
    pub problem: IndexProblem,
    /// Step records re-inserted (their blobs all re-hashed to their names).
    pub restored: usize,
    /// Records skipped because a blob they reference is missing (those steps recompute).
    pub skipped_missing_blob: usize,
    /// Records skipped because a blob they reference is corrupt (those steps recompute).
    pub skipped_corrupt_blob: usize,
    /// Corrupt blob files found on the way, moved to `quarantine/`.
    pub corrupt_blobs: usize,
    /// Record files that could not be parsed (or were not named after their key), moved to
    /// `quarantine/`.
    pub unreadable_records: usize,
    /// Where the bad `index.sqlite` was moved (`None` when it was missing).
    pub quarantined_index: Option<PathBuf>,
    /// Everything moved to `quarantine/`: the index and its `-wal`/`-shm`, unreadable records.
    pub quarantined: Vec<PathBuf>,
    /// How long the rebuild took.
    pub elapsed: Duration,
}

impl RebuildReport {
    /// Records that were not restored, for whatever reason.
    pub fn skipped(&self) -> usize {
        self.skipped_missing_blob + self.skipped_corrupt_blob + self.unreadable_records
    }
}

/// One line for a person: what was wrong, what was restored, what is lost, where the evidence is.
impl fmt::Display for RebuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "index.sqlite was {}; rebuilt from {} step records",
            self.problem, self.restored
        )?;
        let mut skipped = Vec::new();
        if self.skipped_missing_blob > 0 {
            skipped.push(format!("{} with a missing blob", self.skipped_missing_blob));
        }
        if self.skipped_corrupt_blob > 0 {
            skipped.push(format!("{} with a corrupt blob", self.skipped_corrupt_blob));
        }
        if self.unreadable_records > 0 {
            skipped.push(format!(
                "{} unreadable record files, moved to quarantine/",
                self.unreadable_records
            ));
        }
        if skipped.is_empty() {
            f.write_str(" (none skipped)")?;
        } else {
            write!(
                f,
                " ({} skipped, those steps will re-run: {})",
                self.skipped(),
                skipped.join(", ")
            )?;
        }
        f.write_str("; run history before this point is lost")?;
        match &self.quarantined_index {
            Some(p) => write!(f, "; the bad index is kept at {}", p.display()),
            None => Ok(()),
        }
    }
}

/// Outcome of [`diagnose`].
pub(crate) enum Diagnosis {
    /// The index opened, passed `quick_check` and is not an empty stand-in.
    Healthy(Connection),
    Broken(IndexProblem),
}

fn sidecars(index_path: &Path) -> [PathBuf; 2] {
    let with = |suffix: &str| {
        let mut s = index_path.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [with("-wal"), with("-shm")]
}

fn exists(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("stat", path)(e)),
    }
}

/// Opens the index if it can be trusted. Creates it for a fresh store (no records). Errors
/// other than "this index is missing or corrupt" (I/O, `SchemaTooNew`) are returned as such.
pub(crate) fn diagnose(root: &Path, index_path: &Path) -> Result<Diagnosis> {
    if !exists(index_path)? {
        let mut stray = false;
        for p in sidecars(index_path) {
            stray |= exists(&p)?;
        }
        // A WAL left without its database would be replayed into a new one: never create
        // an index over it.
        if stray || any_records(root)? {
            return Ok(Diagnosis::Broken(IndexProblem::Missing));
        }
    }
    let conn = match retry_busy(index_path, || open_index(index_path)) {
        Ok(conn) => conn,
        Err(CacheError::CorruptIndex { source, .. }) => {
            return Ok(Diagnosis::Broken(IndexProblem::Corrupt(source.to_string())));
        }
        Err(e) => return Err(e),
    };
    let checked = retry_busy(index_path, || -> TxResult<(Vec<String>, bool)> {
        let mut stmt = conn.prepare("PRAGMA quick_check")?;
        let lines = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let has_steps: bool =
            conn.query_row("SELECT EXISTS(SELECT 1 FROM steps)", [], |r| r.get(0))?;
        Ok((lines, has_steps))
    });
    let (lines, has_steps) = match checked {
        Ok(v) => v,
        Err(CacheError::CorruptIndex { source, .. }) => {
            return Ok(Diagnosis::Broken(IndexProblem::Corrupt(source.to_string())));
        }
        Err(e) => return Err(e),
    };
    if lines != ["ok"] {
        return Ok(Diagnosis::Broken(IndexProblem::Corrupt(format!(
            "quick_check: {}",
            one_line(&lines)
        ))));
    }
    if !has_steps && any_records(root)? {
        return Ok(Diagnosis::Broken(IndexProblem::Empty));
    }
    Ok(Diagnosis::Healthy(conn))
}

/// The first three lines of what `quick_check` said (a row may hold several lines), on one
/// line, so the CLI's warning stays one line.
fn one_line(rows: &[String]) -> String {
    let lines: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("***"))
        .collect();
    let mut text = lines.iter().take(3).copied().collect::<Vec<_>>().join("; ");
    if lines.len() > 3 {
        text.push_str(&format!("; ... ({} more)", lines.len() - 3));
    }
    if text.is_empty() {
        text = "no answer".to_owned();
    }
    text
}

/// Moves `index.sqlite` and its `-wal`/`-shm` (those present) to
/// `quarantine/index-<unix time>[-n].sqlite[-wal|-shm]`; returns (index's new path, all moved).
fn quarantine_index(root: &Path, index_path: &Path) -> Result<(Option<PathBuf>, Vec<PathBuf>)> {
    let dir = root.join("quarantine");
    fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
    let [wal, shm] = sidecars(index_path);
    let files = [(index_path.to_owned(), ""), (wal, "-wal"), (shm, "-shm")];
    let stem = format!("index-{}", unix_now());
    let mut n = 0;
    let base = loop {
        let base = if n == 0 {
            stem.clone()
        } else {
            format!("{stem}-{n}")
        };
        let mut taken = false;
        for (_, suffix) in &files {
            taken |= exists(&dir.join(format!("{base}.sqlite{suffix}")))?;
        }
        if !taken {
            break base;
        }
        n += 1;
    };
    let mut moved_index = None;
    let mut moved = Vec::new();
    for (path, suffix) in &files {
        if !exists(path)? {
            continue;
        }
        let dest = dir.join(format!("{base}.sqlite{suffix}"));
        fs::rename(path, &dest).map_err(io_err(format!("move `{}` to", path.display()), &dest))?;
        if suffix.is_empty() {
            moved_index = Some(dest.clone());
        }
        moved.push(dest);
    }
    if !moved.is_empty() {
        sync_dir(&dir)?;
        sync_dir(root)?;
    }
    Ok((moved_index, moved))
}

/// A scratch index under `tmp/`: the schema, no journal fsyncs (it is renamed into place only
/// once complete and fsynced).
fn create_scratch_index(path: &Path) -> TxResult<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "MEMORY")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.execute_batch(SCHEMA)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(conn)
}

impl Store {
    /// Rebuilds the index; the caller holds the store lock exclusively (it is moved into the
    /// returned store, or dropped, so released, on error).
    pub(crate) fn rebuild_index(
        root: PathBuf,
        index_path: PathBuf,
        lock: File,
        problem: IndexProblem,
    ) -> Result<Store> {
        let started = Instant::now();
        let (quarantined_index, quarantined) = quarantine_index(&root, &index_path)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let scratch = root.join("tmp").join(format!(
            "{}index-rebuild-{}-{nanos:08x}.sqlite",
            crate::blobs::TMP_PREFIX,
            std::process::id()
        ));
        let conn = match create_scratch_index(&scratch) {
            Ok(c) => c,
            Err(TxError::Sql(e)) => return Err(sql_error(&scratch, e)),
            Err(TxError::Cache(e)) => return Err(e),
        };
        let mut store = Store::with(root, scratch.clone(), conn, lock);
        let mut report = RebuildReport {
            problem,
            restored: 0,
            skipped_missing_blob: 0,
            skipped_corrupt_blob: 0,
            corrupt_blobs: 0,
            unreadable_records: 0,
            quarantined_index,
            quarantined,
            elapsed: Duration::ZERO,
        };
        let built = store
            .restore_records(&mut report)
            .and_then(|()| store.install_index(&index_path));
        if let Err(e) = built {
            let _ = fs::remove_file(&scratch);
            return Err(e);
        }
        report.elapsed = started.elapsed();
        store.rebuilt = Some(report);
        Ok(store)
    }

    /// Closes the scratch index, fsyncs it, renames it to `index_path` and opens that.
    fn install_index(&mut self, index_path: &Path) -> Result<()> {
        let scratch = self.index_path.clone();
        let placeholder = Connection::open_in_memory().map_err(|e| sql_error(&scratch, e))?;
        let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        let built = std::mem::replace(conn, placeholder);
        built.close().map_err(|(_, e)| sql_error(&scratch, e))?;
        File::open(&scratch)
            .and_then(|f| f.sync_all())
            .map_err(io_err("fsync", &scratch))?;
        fs::rename(&scratch, index_path).map_err(io_err(
            format!("move `{}` to", scratch.display()),
            index_path,
        ))?;
        sync_dir(&self.root)?;
        *conn = retry_busy(index_path, || open_index(index_path))?;
        self.index_path = index_path.to_owned();
        Ok(())
    }

    /// Steps 2-4 of the module docs, into this store's (scratch) index.
    fn restore_records(&self, report: &mut RebuildReport) -> Result<()> {
        let mut parsed: Vec<(StepRecord, i64)> = Vec::new();
        for path in walk_records(&self.root)? {
            let decoded = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| decode_record(&b));
            match decoded {
                Ok((rec, stamp)) if self.record_path(&rec.key) == path => {
                    parsed.push((rec, stamp));
                }
                _ => {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let dest = self.quarantine_file(&path, &format!("record-{name}"))?;
                    report.unreadable_records += 1;
                    report.quarantined.push(dest);
                }
            }
        }

        // Every blob is re-hashed once, however many records share it.
        let mut states: HashMap<Digest, BlobState> = HashMap::new();
        let mut restored: Vec<&(StepRecord, i64)> = Vec::new();
        for entry in &parsed {
            let mut worst = BlobState::Ok;
            for d in referenced(&entry.0) {
                let state = *states
                    .entry(d.clone())
                    .or_insert_with(|| self.check_blob(d, true));
                worst = match (worst, state) {
                    (BlobState::Corrupt, _) | (_, BlobState::Corrupt) => BlobState::Corrupt,
                    (BlobState::Missing, _) | (_, BlobState::Missing) => BlobState::Missing,
                    _ => BlobState::Ok,
                };
            }
            match worst {
                BlobState::Ok => restored.push(entry),
                BlobState::Missing => report.skipped_missing_blob += 1,
                BlobState::Corrupt => report.skipped_corrupt_blob += 1,
            }
        }
        let mut corrupt: Vec<&Digest> = states
            .iter()
            .filter(|(_, s)| **s == BlobState::Corrupt)
            .map(|(d, _)| d)
            .collect();
        corrupt.sort();
        for d in corrupt {
            self.move_to_quarantine(&self.blob_path(d), d)?;
            report.corrupt_blobs += 1;
        }

        let order = |e: &&(StepRecord, i64)| (e.0.created_at, e.1, e.0.key.clone());
        restored.sort_by_key(order);
        let mut latest: BTreeMap<(&str, &str), &(StepRecord, i64)> = BTreeMap::new();
        for entry in &parsed {
            let slot = latest
                .entry((entry.0.scope.as_str(), entry.0.step_id.as_str()))
                .or_insert(entry);
            if order(&entry) > order(slot) {
                *slot = entry;
            }
        }
        let mut by_scope: BTreeMap<&str, Vec<&StepRecord>> = BTreeMap::new();
        for (rec, _) in &restored {
            by_scope.entry(rec.scope.as_str()).or_default().push(rec);
        }
        let now = unix_now();
        self.write(|tx| {
            for (rec, stamp) in &restored {
                insert_step(tx, rec, *stamp)?;
            }
            for (rec, _) in latest.values() {
                set_latest(tx, rec)?;
            }
            for (scope, recs) in &by_scope {
                tx.execute(
                    "INSERT INTO runs(scope, spec_path, spec_digest, params, argv, started_at,
                                      finished_at, status)
                     VALUES (?1, '', '', '{}', ?2, ?3, ?3, 'rebuilt')",
                    params![scope, to_json(&["(index rebuild)"]), now],
                )?;
                let run = tx.last_insert_rowid();
                let mut recs = recs.clone();
                recs.sort_by(|a, b| (&a.step_id, &a.key).cmp(&(&b.step_id, &b.key)));
                let mut insert = tx.prepare_cached(
                    "INSERT INTO run_steps(run_id, seq, step_id, key, status, reason, duration_s,
                                           outputs, metrics)
                     VALUES (?1, ?2, ?3, ?4, 'cached', 'restored from records/ by an index rebuild',
                             ?5, ?6, ?7)",
                )?;
                for (seq, rec) in recs.iter().enumerate() {
                    insert.execute(params![
                        run,
                        seq as i64 + 1,
                        rec.step_id,
                        rec.key,
                        rec.duration_s,
                        to_json(&rec.outputs),
                        canonical_json(&rec.metrics)
                    ])?;
                }
            }
            Ok(())
        })?;
        report.restored = restored.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunStep;
    use crate::testutil::{flip_bit, good_bad_gone, make_writable, step, store};

    /// Everything a reader of the index can see about the steps of `store`.
    #[derive(Debug, PartialEq)]
    struct Seen {
        lookups: Vec<Option<StepRecord>>,
        latest: Vec<Option<StepRecord>>,
        blobs: Vec<(BlobState, Option<u64>)>,
    }

    fn seen(store: &Store, recs: &[StepRecord]) -> Seen {
        Seen {
            lookups: recs.iter().map(|r| store.lookup(&r.key).unwrap()).collect(),
            latest: recs
                .iter()
                .map(|r| store.latest_for(&r.scope, &r.step_id).unwrap())
                .collect(),
            blobs: recs
                .iter()
                .map(|r| {
                    (
                        store.check_blob(&r.blobs[0], false),
                        store.recorded_size(&r.blobs[0]).unwrap(),
                    )
                })
                .collect(),
        }
    }

    /// A store with five records: two keys of one step id (latest must pick the newer), a
    /// second scope, a record sharing a blob, odd durations and metrics; plus a run. (No NaN
    /// duration: `latest` snapshots cannot hold one, see `set_latest`.)
    fn filled() -> (tempfile::TempDir, Store, Vec<StepRecord>) {
        let (dir, store) = store();
        let mut recs = Vec::new();
        let mut a = step(&store, "k-old", "migrate[year=2019]", b"old output");
        a.created_at = 1000;
        let mut b = step(&store, "k-new", "migrate[year=2019]", b"new output");
        b.created_at = 1000; // same second: the stamp decides which is latest
        b.duration_s = 1.2345678;
        let mut c = step(&store, "k-other", "migrate[year=2019]", b"other scope");
        c.scope = "other".into();
        c.metrics = serde_json::json!({"oa": 0.875, "classes": [1, 2, 3], "z": {"b": 1, "a": 2}});
        let mut d = step(&store, "k-shared", "stack[year=2019]", b"new output");
        d.outputs.insert("extra".into(), c.blobs[0].clone());
        d.blobs.push(c.blobs[0].clone());
        let mut e = step(&store, "k-fit", "fit", b"no duration");
        e.duration_s = 0.1 + 0.2;
        for rec in [a, b, c, d, e] {
            store.record_step(&rec).unwrap();
            recs.push(store.lookup(&rec.key).unwrap().unwrap());
        }
        let run = crate::testutil::begin_demo_run(&store);
        store.finish_run(run, "ok").unwrap();
        (dir, store, recs)
    }

    fn reopen(store: Store) -> Store {
        let root = store.root().to_owned();
        drop(store);
        Store::open(root).unwrap()
    }

    fn remove_index(root: &Path) {
        for name in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
            let _ = fs::remove_file(root.join(name));
        }
    }

    fn quarantine_names(store: &Store) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(store.root().join("quarantine"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn quick_check_answers_become_one_line() {
        let rows = vec![
            "*** in database main ***\nOn tree page 16 cell 1: bad\nOn tree page 16 cell 0: worse"
                .to_owned(),
            "a".to_owned(),
            "b".to_owned(),
        ];
        assert_eq!(
            one_line(&rows),
            "On tree page 16 cell 1: bad; On tree page 16 cell 0: worse; a; ... (1 more)"
        );
        assert_eq!(one_line(&[]), "no answer");
    }

    #[test]
    fn record_step_writes_the_record_file_before_the_row() {
        let (_dir, store) = store();
        let rec = step(&store, "k1", "s", b"out");
        store.record_step(&rec).unwrap();
        let bytes = fs::read(store.record_path("k1")).unwrap();
        let (on_disk, _) = decode_record(&bytes).unwrap();
        assert_eq!(Some(on_disk), store.lookup("k1").unwrap());
        // A refused record (blob missing) leaves no file either.
        let mut bad = step(&store, "k2", "s", b"x");
        bad.blobs.push(Digest::of_bytes(b"absent"));
        assert!(store.record_step(&bad).is_err());
        assert!(!store.record_path("k2").exists());
        assert!(store.rebuilt().is_none());
    }

    #[test]
    fn a_deleted_index_is_rebuilt_and_every_lookup_is_equal() {
        let (_dir, store, recs) = filled();
        let before = seen(&store, &recs);
        assert_eq!(
            before.latest[0].as_ref().map(|r| r.key.as_str()),
            Some("k-new")
        );
        let root = store.root().to_owned();
        drop(store);
        remove_index(&root);

        let store = Store::open(&root).unwrap();
        let report = store.rebuilt().expect("rebuilt").clone();
        assert_eq!(report.problem, IndexProblem::Missing);
        assert_eq!(report.restored, 5);
        assert_eq!(report.skipped(), 0);
        assert_eq!(report.quarantined_index, None);
        assert!(report.quarantined.is_empty());
        assert_eq!(seen(&store, &recs), before);
        // One `rebuilt` run per scope keeps the restored steps from gc; the old run is gone.
        let runs = store.runs(10).unwrap();
        let mut scopes: Vec<(&str, &str)> = runs
            .iter()
            .map(|r| (r.scope.as_str(), r.status.as_str()))
            .collect();
        scopes.sort();
        assert_eq!(scopes, vec![("demo", "rebuilt"), ("other", "rebuilt")]);
        let demo = runs.iter().find(|r| r.scope == "demo").unwrap();
        let steps = store.run_steps(demo.id).unwrap();
        assert_eq!(steps.len(), 4);
        assert!(steps.iter().all(|s| s.status == "cached"));
        let text = report.to_string();
        assert!(
            text.starts_with(
                "index.sqlite was missing; rebuilt from 5 step records (none skipped)"
            ),
            "{text}"
        );
        assert!(
            text.contains("run history before this point is lost"),
            "{text}"
        );
        assert!(fs::read_dir(root.join("tmp")).unwrap().next().is_none());

        // The next open finds a healthy index.
        let store = reopen(store);
        assert!(store.rebuilt().is_none());
        assert_eq!(seen(&store, &recs), before);
    }

    #[test]
    fn a_garbage_index_is_quarantined_and_rebuilt() {
        let (_dir, store, recs) = filled();
        let before = seen(&store, &recs);
        let root = store.root().to_owned();
        drop(store);
        let garbage = "this is not a database, just text. ".repeat(200);
        fs::write(root.join("index.sqlite"), &garbage).unwrap();

        let store = Store::open(&root).unwrap();
        let report = store.rebuilt().expect("rebuilt").clone();
        assert!(
            matches!(&report.problem, IndexProblem::Corrupt(why) if why.contains("not a database")),
            "{:?}",
            report.problem
        );
        let kept = report.quarantined_index.clone().expect("evidence");
        assert!(kept.starts_with(root.join("quarantine")));
        assert_eq!(fs::read_to_string(&kept).unwrap(), garbage);
        assert_eq!(report.restored, 5);
        assert_eq!(seen(&store, &recs), before);
        assert!(
            report
                .to_string()
                .contains(&format!("the bad index is kept at {}", kept.display()))
        );
    }

    #[test]
    fn a_truncated_index_is_rebuilt() {
        for keep in [0u64, 100, 4096] {
            let (_dir, store, recs) = filled();
            let before = seen(&store, &recs);
            let root = store.root().to_owned();
            drop(store);
            // Closing the last connection checkpoints the WAL into the main file.
            assert!(!root.join("index.sqlite-wal").exists());
            let len = fs::metadata(root.join("index.sqlite")).unwrap().len();
            assert!(len > keep, "{len}");
            File::options()
                .write(true)
                .open(root.join("index.sqlite"))
                .unwrap()
                .set_len(keep)
                .unwrap();
            let store = Store::open(&root).unwrap();
            let report = store
                .rebuilt()
                .unwrap_or_else(|| panic!("{keep}: not rebuilt"));
            assert_eq!(report.restored, 5, "{keep}");
            if keep == 0 {
                assert_eq!(report.problem, IndexProblem::Empty);
            } else {
                assert!(
                    matches!(report.problem, IndexProblem::Corrupt(_)),
                    "{keep}: {:?}",
                    report.problem
                );
            }
            assert_eq!(seen(&store, &recs), before, "{keep}");
        }
    }

    #[test]
    fn records_with_a_corrupt_or_missing_blob_are_skipped() {
        let (_dir, store) = store();
        let [_, bad, gone] = good_bad_gone(&store);
        let root = store.root().to_owned();
        let bad_blob = store.blob_path(&bad.blobs[0]);
        flip_bit(&bad_blob);
        fs::remove_file(store.blob_path(&gone.blobs[0])).unwrap();
        drop(store);
        remove_index(&root);

        let store = Store::open(&root).unwrap();
        let r = store.rebuilt().expect("rebuilt").clone();
        assert_eq!(
            (r.restored, r.skipped_corrupt_blob, r.skipped_missing_blob),
            (1, 1, 1)
        );
        assert_eq!((r.corrupt_blobs, r.unreadable_records), (1, 0));
        assert!(
            r.to_string().contains(
                "(2 skipped, those steps will re-run: 1 with a missing blob, 1 with a corrupt blob)"
            ),
            "{r}"
        );
        assert!(store.lookup("kgood").unwrap().is_some());
        assert_eq!(store.lookup("kbad").unwrap(), None);
        assert_eq!(store.lookup("kgone").unwrap(), None);
        // The corrupt blob is out of objects/ (kept as evidence), so a recompute writes it anew.
        assert!(!bad_blob.exists());
        assert!(
            quarantine_names(&store)
                .iter()
                .any(|n| n.starts_with(bad.blobs[0].hex()))
        );
        // `latest` still knows the skipped steps, so `plan` explains them as missing outputs.
        assert_eq!(
            store.latest_for("demo", "bad").unwrap().map(|r| r.key),
            Some("kbad".to_owned())
        );
        // Recomputing the step records it again.
        let again = step(&store, "kbad", "bad", b"bad content");
        store.record_step(&again).unwrap();
        assert_eq!(store.check_blob(&again.blobs[0], true), BlobState::Ok);
    }

    #[test]
    fn unreadable_record_files_are_counted_and_quarantined() {
        let (_dir, store, recs) = filled();
        let root = store.root().to_owned();
        let garbled = store.record_path("k-old");
        make_writable(&garbled);
        fs::write(&garbled, b"{\"format\": 1, \"key\": tru").unwrap();
        // A valid record under a name that is not its key's: never trusted.
        let misnamed = root.join("records/zz/zz-not-my-key.json");
        fs::create_dir_all(misnamed.parent().unwrap()).unwrap();
        fs::copy(store.record_path("k-fit"), &misnamed).unwrap();
        // Files that are not `*.json` are none of our business.
        fs::write(root.join("records/zz/notes.txt"), b"hello").unwrap();
        drop(store);
        remove_index(&root);

        let store = Store::open(&root).unwrap();
        let r = store.rebuilt().expect("rebuilt").clone();
        assert_eq!((r.restored, r.unreadable_records), (4, 2));
        assert!(!garbled.exists() && !misnamed.exists());
        assert!(root.join("records/zz/notes.txt").exists());
        let names = quarantine_names(&store);
        assert!(
            names.iter().any(|n| n.starts_with("record-k-old.json-")),
            "{names:?}"
        );
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("record-zz-not-my-key.json-")),
            "{names:?}"
        );
        assert_eq!(store.lookup("k-old").unwrap(), None);
        assert_eq!(store.lookup("k-fit").unwrap(), Some(recs[4].clone()));
        assert!(r.to_string().contains("2 unreadable record files"), "{r}");
    }

    #[test]
    fn a_missing_index_without_records_is_simply_created() {
        let (_dir, store) = store();
        let root = store.root().to_owned();
        store.put_bytes(b"a blob, but no step").unwrap();
        drop(store);
        remove_index(&root);
        let store = Store::open(&root).unwrap();
        assert!(store.rebuilt().is_none());
        // ...but a WAL left without its database is never replayed into a new one.
        drop(store);
        fs::remove_file(root.join("index.sqlite")).unwrap();
        fs::write(root.join("index.sqlite-wal"), b"stray wal").unwrap();
        let store = Store::open(&root).unwrap();
        let r = store.rebuilt().expect("rebuilt");
        assert_eq!((&r.problem, r.restored), (&IndexProblem::Missing, 0));
        assert_eq!(r.quarantined.len(), 1);
        assert_eq!(fs::read(&r.quarantined[0]).unwrap(), b"stray wal");
    }

    #[test]
    fn a_second_handle_waits_for_the_others_then_one_rebuild_happens() {
        let (_dir, store, recs) = filled();
        let root = store.root().to_owned();
        remove_index(&root);
        // `store` is still open: a rebuild must wait for it.
        let opener = |root: PathBuf| std::thread::spawn(move || Store::open(root).unwrap());
        let first = opener(root.clone());
        let second = opener(root.clone());
        std::thread::sleep(Duration::from_millis(400));
        assert!(!first.is_finished() && !second.is_finished());
        drop(store);
        let a = first.join().unwrap();
        let b = second.join().unwrap();
        assert_eq!(
            a.rebuilt().is_some() as u8 + b.rebuilt().is_some() as u8,
            1,
            "exactly one handle rebuilds"
        );
        for s in [&a, &b] {
            assert_eq!(s.lookup("k-new").unwrap(), Some(recs[1].clone()));
        }
    }

    #[test]
    fn a_record_file_whose_row_is_still_coming_is_not_an_empty_index() {
        // Another handle has written its first record file but not yet its row.
        let (dir, store) = store();
        let rec = step(&store, "k1", "s", b"out");
        store.write_record(&rec, 1).unwrap();
        let root = dir.path().join("store");
        let second = std::thread::spawn(move || Store::open(root).unwrap());
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !second.is_finished(),
            "it waits while the index looks empty"
        );
        store.record_step(&rec).unwrap();
        let second = second.join().unwrap();
        assert!(second.rebuilt().is_none(), "no rebuild: the row arrived");
        assert!(second.lookup("k1").unwrap().is_some());
        assert!(store.lookup("k1").unwrap().is_some());
    }

    #[test]
    fn a_rebuilt_store_keeps_its_steps_through_gc() {
        let (_dir, store, recs) = filled();
        let root = store.root().to_owned();
        drop(store);
        remove_index(&root);
        let store = Store::open(&root).unwrap();
        assert!(store.rebuilt().is_some());
        let report = store
            .gc(&crate::GcOptions {
                keep_runs: 5,
                max_size: None,
                dry_run: false,
            })
            .unwrap();
        assert!(report.removed_steps.is_empty(), "{report:?}");
        assert_eq!((report.removed_blobs, report.removed_records), (0, 0));
        for rec in &recs {
            assert!(store.lookup(&rec.key).unwrap().is_some());
            assert!(store.record_path(&rec.key).is_file());
        }
        // A later real run is recorded as usual after it.
        let run = crate::testutil::begin_demo_run(&store);
        store
            .record_run_step(
                run,
                &RunStep {
                    step_id: recs[1].step_id.clone(),
                    key: Some(recs[1].key.clone()),
                    status: "cached".into(),
                    reason: String::new(),
                    duration_s: 0.0,
                    outputs: recs[1].outputs.clone(),
                    metrics: serde_json::Value::Null,
                },
            )
            .unwrap();
        assert_eq!(store.runs(1).unwrap()[0].id, run);
    }
}
