//! `gc`, `verify` and `disk_usage`.
//!
//! Both gc and verify work from the index (`step_blobs`) and a walk of `objects/`; neither
//! ever parses a blob. Deletion order keeps the invariant "no step row references a missing
//! blob": step rows go first (one transaction), then their record files under `records/`, then
//! the blob files, then the `blobs` rows. A kill in between leaves unreferenced record files or
//! blobs, which the next gc removes (a record file whose blobs are gone is skipped by an index
//! rebuild anyway).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::MutexGuard;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::io_err;
use crate::index::forget_in;
use crate::records::{decode_record, encode_record, walk_records};
use crate::store::{STORE_LOCK, Store, TxResult, hash_file, sync_dir, unix_now};
use crate::{CacheError, Digest, Result};

/// Files in `tmp/` older than this are leftovers of killed processes.
const STALE_TMP_AGE: Duration = Duration::from_secs(60 * 60);

/// A Slurm executor's run folder (`slurm/<millis>-<pid>/`: job scripts, task files, job logs)
/// untouched this long is removed by `gc`: no job of it can still be queued with any chance
/// of finding its task file useful (a rerun resubmits what is not in the store), and its logs
/// are that old.
const STALE_SLURM_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// What `gc` keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcOptions {
    /// Steps that ran or were cached in the newest `keep_runs` runs of each spec (scope) are
    /// kept; runs that reached no result (failed before any step) are not counted.
    pub keep_runs: usize,
    /// If the kept blobs exceed this many bytes, drop kept steps least recently used first,
    /// never those of each spec's newest run.
    pub max_size: Option<u64>,
    /// Report what would be removed; delete nothing.
    pub dry_run: bool,
}

/// What `gc` removed (or would remove, with `dry_run`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub kept_steps: usize,
    /// Step ids of the removed step records, sorted.
    pub removed_steps: Vec<String>,
    /// Blob files removed from `objects/`.
    pub removed_blobs: usize,
    /// Record files removed from `records/`: those of the removed steps, and any left without a
    /// step row (a kill between a row's deletion and its file's).
    pub removed_records: usize,
    /// Bytes of removed blob files plus stale files in `tmp/`.
    pub freed_bytes: u64,
    pub dry_run: bool,
    /// Runs left `running` by a killed process, now marked `interrupted` (what they
    /// finished stays theirs).
    pub settled_runs: usize,
    /// Slurm run folders (`slurm/<run>/`) untouched for 7 days, removed with their job logs.
    pub removed_slurm_runs: usize,
}

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Blob files rehashed.
    pub checked: usize,
    /// Blobs whose content does not match their name; moved to `quarantine/`.
    pub corrupt: Vec<CorruptBlob>,
    /// Blobs referenced by a step record but absent from `objects/`.
    pub missing: Vec<CorruptBlob>,
    /// What `PRAGMA integrity_check` said about `index.sqlite` when it did not answer `ok`
    /// (at most 20 lines). Empty means the index is sound.
    pub index_problems: Vec<String>,
    /// Step ids whose record file under `records/` was missing: written back from the index
    /// row (stores made before record files existed gain them this way).
    pub records_missing: Vec<String>,
    /// Step ids whose record file was unreadable or disagreed with the index row: rewritten
    /// from the row.
    pub records_rewritten: Vec<String>,
}

/// A bad blob and the steps that referenced it (now forgotten, so they recompute).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CorruptBlob {
    pub digest: Digest,
    /// Corrupt: where the file was moved to in `quarantine/`. Missing: where it should be.
    pub path: PathBuf,
    /// Step ids whose records referenced it, sorted.
    pub steps: Vec<String>,
}

/// A file under `objects/`. `digest` is `None` for files whose name is not a blob name
/// (e.g. a `.aux.xml` a GIS tool wrote beside a blob); those are never touched.
struct ObjectFile {
    path: PathBuf,
    digest: Option<Digest>,
    size: u64,
    modified: Option<SystemTime>,
}

/// Holds the store lock exclusively; downgrades back to shared on drop.
struct Exclusive<'a> {
    store: &'a Store,
    _guard: MutexGuard<'a, ()>,
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        if let Some(lock) = &self.store.store_lock {
            let _ = lock.lock_shared();
        }
    }
}

/// The entries of `dir`; none if it does not exist.
pub(crate) fn read_dir_or_empty(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .collect::<io::Result<Vec<_>>>()
            .map_err(io_err("list", dir)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err("list", dir)(e)),
    }
}

/// Named like the store's own temp files.
fn is_own_tmp(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(crate::blobs::TMP_PREFIX))
}

/// Not modified for [`STALE_TMP_AGE`] (an unknown time counts as now: kept).
fn stale(modified: Option<SystemTime>, now: SystemTime) -> bool {
    modified
        .and_then(|m| now.duration_since(m).ok())
        .unwrap_or_default()
        >= STALE_TMP_AGE
}

fn remove_if_present(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

impl Store {
    /// Takes the store to itself: fails with `StoreBusy` if any other handle is open.
    fn exclusive(&self) -> Result<Exclusive<'_>> {
        let guard = self.gc_guard.lock().unwrap_or_else(|p| p.into_inner());
        let lock_path = self.root.join("locks").join(STORE_LOCK);
        self.writable()?;
        // Only a read-only view goes without the lock.
        let Some(store_lock) = &self.store_lock else {
            return Err(CacheError::ReadOnlyStore {
                path: self.root.clone(),
            });
        };
        // Upgrading an flock may drop the shared lock when it fails; take it back then.
        match store_lock.try_lock() {
            Ok(()) => Ok(Exclusive {
                store: self,
                _guard: guard,
            }),
            Err(TryLockError::WouldBlock) => {
                store_lock
                    .lock_shared()
                    .map_err(io_err("lock", &lock_path))?;
                Err(CacheError::StoreBusy {
                    path: self.root.clone(),
                })
            }
            Err(TryLockError::Error(e)) => {
                let _ = store_lock.lock_shared();
                Err(io_err("lock", &lock_path)(e))
            }
        }
    }

    fn walk_objects(&self) -> Result<Vec<ObjectFile>> {
        let mut files = Vec::new();
        for dir in read_dir_or_empty(&self.root.join("objects"))? {
            let dir_path = dir.path();
            if !dir_path.is_dir() {
                continue;
            }
            let prefix = dir.file_name().to_string_lossy().into_owned();
            for entry in read_dir_or_empty(&dir_path)? {
                let path = entry.path();
                let meta = match entry.metadata() {
                    Ok(m) if m.is_file() => m,
                    _ => continue,
                };
                let name = entry.file_name().to_string_lossy().into_owned();
                let digest = Digest::parse(&format!("{}{prefix}{name}", crate::DIGEST_PREFIX)).ok();
                files.push(ObjectFile {
                    path,
                    digest,
                    size: meta.len(),
                    modified: meta.modified().ok(),
                });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Bytes of all files under `objects/`.
    pub fn disk_usage(&self) -> Result<u64> {
        Ok(self.walk_objects()?.iter().map(|f| f.size).sum())
    }

    /// digest -> (step key, step id) for every blob reference in the index.
    fn blob_references(&self) -> Result<BTreeMap<String, Vec<(String, String)>>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT sb.digest, s.key, s.step_id FROM step_blobs sb
                 JOIN steps s ON s.key = sb.key ORDER BY sb.digest, s.step_id",
            )?;
            let mut refs: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (digest, key, step_id) = row?;
                refs.entry(digest).or_default().push((key, step_id));
            }
            Ok(refs)
        })
    }

    /// Rehashes every blob file and every blob a step references. Corrupt files are moved to
    /// `quarantine/` (kept as evidence); the steps that referenced a corrupt or missing blob
    /// are forgotten, so the engine recomputes them.
    ///
    /// First of all it runs `PRAGMA integrity_check` on the index. If that fails, nothing else
    /// is done (an index that fails it is not trusted to say which steps to forget, nor copied
    /// into `records/`, which is what it gets rebuilt from) and the report lists what SQLite said.
    /// Otherwise, after the blobs, every step row's record file is checked and written back
    /// from the row if missing, unreadable or different.
    pub fn verify(&self) -> Result<VerifyReport> {
        let index_problems = self.integrity_check()?;
        if !index_problems.is_empty() {
            return Ok(VerifyReport {
                index_problems,
                ..VerifyReport::default()
            });
        }
        let refs = self.blob_references()?;
        let mut report = VerifyReport::default();
        let mut seen = BTreeSet::new();
        let mut forget = BTreeSet::new();
        let mut drop_rows = Vec::new();
        let steps_of = |digest: &str, forget: &mut BTreeSet<String>| -> Vec<String> {
            let mut ids: Vec<String> = refs
                .get(digest)
                .into_iter()
                .flatten()
                .map(|(key, id)| {
                    forget.insert(key.clone());
                    id.clone()
                })
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };

        for file in self.walk_objects()? {
            let Some(digest) = file.digest else { continue };
            let actual = match hash_file(&file.path) {
                Ok((actual, _)) => actual,
                // Removed while we walked (a concurrent gc): judged with the missing below.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read blob", &file.path)(e)),
            };
            report.checked += 1;
            seen.insert(digest.as_str().to_owned());
            if actual == digest {
                continue;
            }
            let quarantined = self.move_to_quarantine(&file.path, &digest)?;
            report.corrupt.push(CorruptBlob {
                steps: steps_of(digest.as_str(), &mut forget),
                digest: digest.clone(),
                path: quarantined,
            });
            drop_rows.push(digest);
        }

        for digest_text in refs.keys() {
            if seen.contains(digest_text) {
                continue;
            }
            let digest = Digest::parse(digest_text)?;
            let path = self.blob_path(&digest);
            if path.is_file() {
                // Appeared after the walk (a concurrent put): check it now.
                report.checked += 1;
                match hash_file(&path) {
                    Ok((actual, _)) if actual == digest => continue,
                    Ok(_) => {
                        let quarantined = self.move_to_quarantine(&path, &digest)?;
                        report.corrupt.push(CorruptBlob {
                            steps: steps_of(digest_text, &mut forget),
                            digest: digest.clone(),
                            path: quarantined,
                        });
                        drop_rows.push(digest);
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("read blob", &path)(e)),
                }
            }
            report.missing.push(CorruptBlob {
                steps: steps_of(digest_text, &mut forget),
                digest: digest.clone(),
                path,
            });
            drop_rows.push(digest);
        }

        if !forget.is_empty() || !drop_rows.is_empty() {
            self.write(|tx| {
                for key in &forget {
                    forget_in(tx, key)?;
                }
                for d in &drop_rows {
                    tx.execute("DELETE FROM blobs WHERE digest = ?1", [d.as_str()])?;
                }
                Ok(())
            })?;
            self.remove_records(forget.iter().map(String::as_str))?;
        }

        self.check_records(&mut report)?;
        Ok(report)
    }

    /// `PRAGMA integrity_check`: empty if it answers `ok`, else its first lines.
    fn integrity_check(&self) -> Result<Vec<String>> {
        let checked = self.read(|tx| {
            let mut stmt = tx.prepare("PRAGMA integrity_check(20)")?;
            let lines = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(lines)
        });
        match checked {
            Ok(lines) if lines == ["ok"] => Ok(Vec::new()),
            Ok(lines) => Ok(lines),
            Err(CacheError::CorruptIndex { source, .. }) => Ok(vec![source.to_string()]),
            Err(e) => Err(e),
        }
    }

    /// Writes back the record file of every step row whose file is missing, unreadable or
    /// different from the row.
    fn check_records(&self, report: &mut VerifyReport) -> Result<()> {
        for (rec, last_used) in self.all_steps()? {
            let path = self.record_path(&rec.key);
            let found = match fs::read(&path) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err("read record", &path)(e)),
            };
            let stamp = match &found {
                None => {
                    report.records_missing.push(rec.step_id.clone());
                    last_used
                }
                Some(bytes) => match decode_record(bytes) {
                    Ok((on_disk, _)) if encode_record(&on_disk, 0) == encode_record(&rec, 0) => {
                        continue;
                    }
                    Ok((_, stamp)) => {
                        report.records_rewritten.push(rec.step_id.clone());
                        stamp
                    }
                    Err(_) => {
                        report.records_rewritten.push(rec.step_id.clone());
                        last_used
                    }
                },
            };
            self.write_record(&rec, stamp)?;
        }
        report.records_missing.sort();
        report.records_rewritten.sort();
        Ok(())
    }

    /// What `verify` does for one blob the engine found bad while using it: if the file is
    /// corrupt (or unreadable) it is moved to `quarantine/`; if it is corrupt or missing, every
    /// step record referencing it is forgotten so those steps recompute. Returns what was done,
    /// or `None` if the blob turned out to be intact (then nothing is changed).
    pub fn quarantine(&self, d: &Digest) -> Result<Option<CorruptBlob>> {
        let path = self.blob_path(d);
        let moved_to = match hash_file(&path) {
            Ok((actual, _)) if &actual == d => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Ok(_) | Err(_) => Some(self.move_to_quarantine(&path, d)?),
        };
        let (keys, steps) = self.write(|tx| {
            let referencing: Vec<(String, String)> = tx
                .prepare(
                    "SELECT s.key, s.step_id FROM step_blobs sb JOIN steps s ON s.key = sb.key
                     WHERE sb.digest = ?1",
                )?
                .query_map([d.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (key, _) in &referencing {
                forget_in(tx, key)?;
            }
            tx.execute("DELETE FROM blobs WHERE digest = ?1", [d.as_str()])?;
            let (keys, mut ids): (Vec<String>, Vec<String>) = referencing.into_iter().unzip();
            ids.sort();
            ids.dedup();
            Ok((keys, ids))
        })?;
        self.remove_records(keys.iter().map(String::as_str))?;
        Ok(Some(CorruptBlob {
            digest: d.clone(),
            path: moved_to.unwrap_or(path),
            steps,
        }))
    }

    /// Moves a corrupt blob to `quarantine/<hex>-<unix time>[-n]`; returns the new path.
    pub(crate) fn move_to_quarantine(&self, path: &Path, digest: &Digest) -> Result<PathBuf> {
        self.quarantine_file(path, digest.hex())
    }

    /// Moves a file to `quarantine/<name>-<unix time>[-n]`; returns the new path.
    pub(crate) fn quarantine_file(&self, path: &Path, name: &str) -> Result<PathBuf> {
        let dir = self.root.join("quarantine");
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let stem = format!("{name}-{}", unix_now());
        let mut dest = dir.join(&stem);
        let mut n = 1;
        while dest.exists() {
            dest = dir.join(format!("{stem}-{n}"));
            n += 1;
        }
        fs::rename(path, &dest).map_err(io_err(format!("move `{}` to", path.display()), &dest))?;
        sync_dir(&dir)?;
        Ok(dest)
    }

    /// Removes step records (rows and record files) not used by the newest `keep_runs` runs,
    /// then every record file without a step row, every blob no remaining step references,
    /// stale `tmp/` files and unheld lock files. See [`GcOptions`]. After an index rebuild the
    /// restored steps belong to the `rebuilt` runs, so they are kept like any recent run's.
    ///
    /// Unless `dry_run`, gc needs the store to itself: it fails with `StoreBusy` while any other
    /// `Store` handle (in this or another process) is open, so it can never delete the blobs of
    /// a step that a concurrent `lulc run` has just computed but not yet recorded. Within one
    /// handle, do not run gc concurrently with `put_*`/`record_step` from other threads.
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        let _exclusive = if opts.dry_run {
            None
        } else {
            Some(self.exclusive()?)
        };
        let settled_runs = if opts.dry_run {
            0
        } else {
            self.settle_dead_runs()?
        };
        let snap = self.gc_snapshot(opts.keep_runs)?;

        // Which steps stay.
        let step_digests = |key: &str| snap.step_blobs.get(key).map(Vec::as_slice).unwrap_or(&[]);
        let mut remaining: BTreeSet<&str> = snap
            .steps
            .iter()
            .map(|s| s.0.as_str())
            .filter(|k| snap.reachable.contains(*k))
            .collect();
        if let Some(max_size) = opts.max_size {
            let size_of = |d: &str| -> u64 {
                snap.blob_sizes.get(d).copied().unwrap_or_else(|| {
                    Digest::parse(d)
                        .ok()
                        .and_then(|d| fs::metadata(self.blob_path(&d)).ok())
                        .map_or(0, |m| m.len())
                })
            };
            let mut refcount: HashMap<&str, usize> = HashMap::new();
            let mut total = 0u64;
            for key in &remaining {
                for d in step_digests(key) {
                    let count = refcount.entry(d.as_str()).or_insert(0);
                    if *count == 0 {
                        total += size_of(d);
                    }
                    *count += 1;
                }
            }
            let mut candidates: Vec<&(String, String, i64)> = snap
                .steps
                .iter()
                .filter(|s| remaining.contains(s.0.as_str()) && !snap.protected.contains(&s.0))
                .collect();
            candidates.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
            for (key, _, _) in candidates {
                if total <= max_size {
                    break;
                }
                remaining.remove(key.as_str());
                for d in step_digests(key) {
                    if let Some(count) = refcount.get_mut(d.as_str()) {
                        *count -= 1;
                        if *count == 0 {
                            total = total.saturating_sub(size_of(d));
                        }
                    }
                }
            }
        }
        let removed: Vec<&(String, String, i64)> = snap
            .steps
            .iter()
            .filter(|s| !remaining.contains(s.0.as_str()))
            .collect();
        let keep_digests: BTreeSet<&str> = remaining
            .iter()
            .flat_map(|k| step_digests(k))
            .map(String::as_str)
            .collect();

        // Which files go.
        let objects = self.walk_objects()?;
        let mut stale_tmp = self.stale_tmp_entries()?;
        // Copies left beside their blob by a move from a `tmp/` on another file system that
        // was killed half-way.
        let now = SystemTime::now();
        stale_tmp.extend(
            objects
                .iter()
                .filter(|f| f.digest.is_none() && is_own_tmp(&f.path) && stale(f.modified, now))
                .map(|f| (f.path.clone(), f.size)),
        );
        let doomed_blobs: Vec<ObjectFile> = objects
            .into_iter()
            .filter(|f| {
                f.digest
                    .as_ref()
                    .is_some_and(|d| !keep_digests.contains(d.as_str()))
            })
            .collect();
        // Record files of every step that does not stay: the removed ones, and any without a
        // row at all (gc holds the store to itself, so no record_step is between its file and
        // its row).
        let keep_records: BTreeSet<PathBuf> =
            remaining.iter().map(|k| self.record_path(k)).collect();
        let doomed_records: Vec<PathBuf> = walk_records(&self.root)?
            .into_iter()
            .filter(|p| !keep_records.contains(p))
            .collect();

        let stale_slurm = self.stale_slurm_runs(now)?;

        let mut removed_steps: Vec<String> = removed.iter().map(|s| s.1.clone()).collect();
        removed_steps.sort();
        let report = GcReport {
            kept_steps: remaining.len(),
            removed_steps,
            removed_blobs: doomed_blobs.len(),
            removed_records: doomed_records.len(),
            freed_bytes: doomed_blobs.iter().map(|f| f.size).sum::<u64>()
                + stale_tmp.iter().map(|t| t.1).sum::<u64>()
                + stale_slurm.iter().map(|t| t.1).sum::<u64>(),
            dry_run: opts.dry_run,
            settled_runs,
            removed_slurm_runs: stale_slurm.len(),
        };
        if opts.dry_run {
            return Ok(report);
        }

        // 1. Rows first: no step may ever reference a deleted blob.
        self.write(|tx| {
            for (key, _, _) in &removed {
                forget_in(tx, key)?;
            }
            for run in &snap.old_runs {
                tx.execute("DELETE FROM run_steps WHERE run_id = ?1", [run])?;
                tx.execute("DELETE FROM runs WHERE id = ?1", [run])?;
            }
            Ok(())
        })?;
        // 2. Record files, then blob files.
        for path in &doomed_records {
            remove_if_present(path)?;
        }
        for f in &doomed_blobs {
            remove_if_present(&f.path)?;
        }
        // Empty fan-out directories are left in place; there are at most 256 of them.
        // 3. Size rows of blobs that are gone.
        self.write(|tx| {
            for digest in snap.blob_sizes.keys() {
                if !keep_digests.contains(digest.as_str()) {
                    tx.execute("DELETE FROM blobs WHERE digest = ?1", [digest])?;
                }
            }
            Ok(())
        })?;
        for (path, _) in &stale_tmp {
            let gone = if path.is_dir() {
                fs::remove_dir_all(path)
            } else {
                fs::remove_file(path)
            };
            match gone {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("remove", path)(e));
                }
                _ => {}
            }
        }
        for (path, _) in &stale_slurm {
            match fs::remove_dir_all(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("remove", path)(e));
                }
                _ => {}
            }
        }
        self.remove_unheld_locks()?;
        Ok(report)
    }

    /// The Slurm executor's run folders (named `<digits>-<digits>`; nothing else under
    /// `slurm/` is touched) whose every file is older than [`STALE_SLURM_AGE`], with their
    /// size.
    fn stale_slurm_runs(&self, now: SystemTime) -> Result<Vec<(PathBuf, u64)>> {
        let mut out = Vec::new();
        for run in read_dir_or_empty(&self.root.join("slurm"))? {
            let name = run.file_name().to_string_lossy().into_owned();
            let tag = name.split_once('-').is_some_and(|(a, b)| {
                [a, b]
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
            });
            if !tag || !run.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let (mut newest, mut size) = (None::<SystemTime>, 0u64);
            let mut stack = vec![run.path()];
            while let Some(dir) = stack.pop() {
                let meta = fs::metadata(&dir).map_err(io_err("read", &dir))?;
                newest = newest.max(meta.modified().ok());
                for e in read_dir_or_empty(&dir)? {
                    let Ok(m) = e.metadata() else { continue };
                    if m.is_dir() {
                        stack.push(e.path());
                    } else {
                        size += m.len();
                        newest = newest.max(m.modified().ok());
                    }
                }
            }
            let age = newest
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if age >= STALE_SLURM_AGE {
                out.push((run.path(), size));
            }
        }
        Ok(out)
    }

    fn gc_snapshot(&self, keep_runs: usize) -> Result<GcSnapshot> {
        self.read(|tx| -> TxResult<GcSnapshot> {
            let runs: Vec<(i64, String)> = tx
                .prepare("SELECT id, scope FROM runs ORDER BY id DESC")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut keys_of_run = tx.prepare(
                "SELECT DISTINCT key FROM run_steps
                 WHERE run_id = ?1 AND key IS NOT NULL AND status IN ('ran', 'cached')",
            )?;
            // Per spec (scope), the newest `keep_runs` runs that reference a result; a run
            // that reached no step (it failed before any) takes no place.
            let mut kept_per_scope: HashMap<&str, usize> = HashMap::new();
            let mut reachable = BTreeSet::new();
            let mut protected = BTreeSet::new();
            let mut old_runs = Vec::new();
            for (run, scope) in &runs {
                let kept = kept_per_scope.entry(scope.as_str()).or_default();
                if *kept >= keep_runs {
                    old_runs.push(*run);
                    continue;
                }
                let keys: Vec<String> = keys_of_run
                    .query_map([run], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                if keys.is_empty() {
                    continue;
                }
                if *kept == 0 {
                    protected.extend(keys.iter().cloned());
                }
                *kept += 1;
                reachable.extend(keys);
            }
            let steps: Vec<(String, String, i64)> = tx
                .prepare("SELECT key, step_id, last_used FROM steps ORDER BY key")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut step_blobs: HashMap<String, Vec<String>> = HashMap::new();
            let mut stmt = tx.prepare("SELECT key, digest FROM step_blobs")?;
            for row in
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            {
                let (key, digest) = row?;
                step_blobs.entry(key).or_default().push(digest);
            }
            let blob_sizes: BTreeMap<String, u64> = tx
                .prepare("SELECT digest, size FROM blobs")?
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<rusqlite::Result<_>>()?;
            old_runs.sort_unstable();
            Ok(GcSnapshot {
                old_runs,
                reachable,
                protected,
                steps,
                step_blobs,
                blob_sizes,
            })
        })
    }

    /// The store's own temp entries (named with its prefix; nothing else put there is ever
    /// touched) not modified for [`STALE_TMP_AGE`], with their size: in `tmp/`, and copies left
    /// beside their record file by a move from a `tmp/` on another file system that was killed
    /// half-way (those beside blobs come from `gc`'s walk of `objects/`).
    fn stale_tmp_entries(&self) -> Result<Vec<(PathBuf, u64)>> {
        let now = SystemTime::now();
        let mut entries = read_dir_or_empty(&self.root.join("tmp"))?;
        for dir in read_dir_or_empty(&self.root.join("records"))? {
            if dir.file_type().is_ok_and(|t| t.is_dir()) {
                entries.extend(read_dir_or_empty(&dir.path())?);
            }
        }
        let mut stale_entries = Vec::new();
        for entry in entries {
            let path = entry.path();
            if !is_own_tmp(&path) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if stale(meta.modified().ok(), now) {
                stale_entries.push((path, if meta.is_file() { meta.len() } else { 0 }));
            }
        }
        Ok(stale_entries)
    }

    /// Deletes lock files nobody holds (we lock each one before unlinking it; claimers
    /// re-check the path after locking, see `claim.rs`).
    fn remove_unheld_locks(&self) -> Result<()> {
        for entry in read_dir_or_empty(&self.root.join("locks"))? {
            // `.store.lock` and `.rebuild.lock` are the store's own, never a step's.
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let Ok(file) = fs::File::open(&path) else {
                continue;
            };
            match file.try_lock() {
                Ok(()) => {
                    remove_if_present(&path)?;
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(io_err("lock", &path)(e)),
            }
        }
        Ok(())
    }
}

struct GcSnapshot {
    /// Runs beyond `keep_runs`, deleted from the history.
    old_runs: Vec<i64>,
    /// Keys that ran or were cached in the kept runs.
    reachable: BTreeSet<String>,
    /// Keys of the newest run: never evicted for `max_size`.
    protected: BTreeSet<String>,
    /// (key, step id, last used) of every step record.
    steps: Vec<(String, String, i64)>,
    step_blobs: HashMap<String, Vec<String>>,
    blob_sizes: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::decode_record;
    use crate::testutil::{flip_bit, good_bad_gone, step, store};
    use crate::{RunStep, StepRecord};

    /// One run per entry of `steps`: each step's blob is put, recorded and logged as `ran`.
    fn run_with(store: &Store, steps: &[&StepRecord]) -> i64 {
        run_of(store, "demo", steps)
    }

    /// A finished run of spec `scope` that ran `steps`.
    fn run_of(store: &Store, scope: &str, steps: &[&StepRecord]) -> i64 {
        let run = store
            .begin_run(&crate::RunInfo {
                scope: scope.into(),
                spec_path: format!("{scope}.yaml"),
                spec_digest: "x".into(),
                params: serde_json::json!({}),
                argv: vec![],
            })
            .unwrap();
        for rec in steps {
            store.record_step(rec).unwrap();
            store
                .record_run_step(
                    run,
                    &RunStep {
                        step_id: rec.step_id.clone(),
                        key: Some(rec.key.clone()),
                        status: "ran".into(),
                        reason: String::new(),
                        duration_s: 0.0,
                        outputs: rec.outputs.clone(),
                        metrics: serde_json::Value::Null,
                    },
                )
                .unwrap();
        }
        store.finish_run(run, "ok").unwrap();
        run
    }

    fn blob_of(rec: &StepRecord) -> Digest {
        rec.blobs[0].clone()
    }

    #[test]
    fn verify_quarantines_a_corrupt_blob_and_forgets_its_steps() {
        let (_dir, store) = store();
        let [_, bad, gone] = good_bad_gone(&store);
        assert_eq!(
            store.verify().unwrap(),
            VerifyReport {
                checked: 3,
                ..VerifyReport::default()
            }
        );

        let bad_path = store.blob_path(&blob_of(&bad));
        flip_bit(&bad_path);
        fs::remove_file(store.blob_path(&blob_of(&gone))).unwrap();
        let report = store.verify().unwrap();

        assert_eq!(report.checked, 2);
        assert_eq!(report.corrupt.len(), 1);
        let corrupt = &report.corrupt[0];
        assert_eq!(corrupt.digest, blob_of(&bad));
        assert_eq!(corrupt.steps, vec!["bad".to_owned()]);
        assert!(corrupt.path.starts_with(store.root().join("quarantine")));
        assert!(corrupt.path.is_file(), "evidence is kept");
        assert!(!bad_path.exists(), "moved out of objects/");

        assert_eq!(report.missing.len(), 1);
        assert_eq!(report.missing[0].digest, blob_of(&gone));
        assert_eq!(report.missing[0].steps, vec!["gone".to_owned()]);
        assert_eq!(report.missing[0].path, store.blob_path(&blob_of(&gone)));

        assert_eq!(store.lookup("kbad").unwrap(), None);
        assert_eq!(store.lookup("kgone").unwrap(), None);
        assert!(store.lookup("kgood").unwrap().is_some());
        // A second pass finds a clean store.
        let again = store.verify().unwrap();
        assert!(again.corrupt.is_empty() && again.missing.is_empty());
        assert_eq!(again.checked, 1);
    }

    #[test]
    fn quarantine_moves_a_bad_blob_forgets_its_steps_and_leaves_good_ones_alone() {
        let (_dir, store) = store();
        let good = step(&store, "kgood", "good", b"fine");
        let bad = step(&store, "kbad", "bad", b"will rot");
        store.record_step(&good).unwrap();
        store.record_step(&bad).unwrap();

        assert_eq!(store.quarantine(&blob_of(&good)).unwrap(), None);
        assert!(store.lookup("kgood").unwrap().is_some());

        flip_bit(&store.blob_path(&blob_of(&bad)));
        let done = store.quarantine(&blob_of(&bad)).unwrap().expect("corrupt");
        assert_eq!(done.steps, vec!["bad".to_owned()]);
        assert!(done.path.starts_with(store.root().join("quarantine")) && done.path.is_file());
        assert_eq!(store.lookup("kbad").unwrap(), None);
        assert_eq!(
            store.check_blob(&blob_of(&bad), false),
            crate::BlobState::Missing
        );

        // A missing blob: nothing to move, but its steps are forgotten.
        fs::remove_file(store.blob_path(&blob_of(&good))).unwrap();
        let gone = store.quarantine(&blob_of(&good)).unwrap().expect("missing");
        assert_eq!(gone.path, store.blob_path(&blob_of(&good)));
        assert_eq!(gone.steps, vec!["good".to_owned()]);
        assert_eq!(store.lookup("kgood").unwrap(), None);
    }

    #[test]
    fn verify_rehashes_unreferenced_blobs_too() {
        let (_dir, store) = store();
        let d = store.put_bytes(b"loose blob").unwrap();
        flip_bit(&store.blob_path(&d));
        let report = store.verify().unwrap();
        assert_eq!(report.corrupt.len(), 1);
        assert!(report.corrupt[0].steps.is_empty());
        assert_eq!(store.check_blob(&d, false), crate::BlobState::Missing);
    }

    #[test]
    fn verify_finds_the_record_files_of_a_healthy_store_in_agreement() {
        let (_dir, store) = store();
        // Durations whose shortest decimal form needs 17 digits must read back exactly.
        for (i, d) in [2.3489426780000002, 0.1 + 0.2, 1e-300, 123456.789]
            .iter()
            .enumerate()
        {
            let mut rec = step(&store, &format!("k{i}"), "s", format!("o{i}").as_bytes());
            rec.duration_s = *d;
            store.record_step(&rec).unwrap();
        }
        let report = store.verify().unwrap();
        assert!(
            report.records_rewritten.is_empty(),
            "{:?}",
            report.records_rewritten
        );
        assert!(report.records_missing.is_empty());
    }

    #[test]
    fn gc_keeps_the_newest_runs_of_each_spec_and_runs_that_reached_nothing_do_not_count() {
        let (_dir, store) = store();
        let old_a = step(&store, "ka0", "a", b"spec a, first");
        let new_a = step(&store, "ka1", "a", b"spec a, second");
        let only_b = step(&store, "kb", "b", b"spec b");
        run_of(&store, "a", &[&old_a]);
        run_of(&store, "b", &[&only_b]);
        run_of(&store, "a", &[&new_a]);
        // Later runs of spec a that reached no step (failed before any): they keep nothing
        // and take no place among the newest.
        run_of(&store, "a", &[]);
        run_of(&store, "a", &[]);
        let report = store
            .gc(&GcOptions {
                keep_runs: 1,
                max_size: None,
                dry_run: false,
            })
            .unwrap();
        assert_eq!(report.removed_steps, vec!["a".to_owned()]);
        assert!(store.lookup("ka0").unwrap().is_none());
        assert!(
            store.lookup("ka1").unwrap().is_some(),
            "spec a's newest result"
        );
        assert!(
            store.lookup("kb").unwrap().is_some(),
            "spec b's newest run is kept though three runs of a came after it"
        );
    }

    /// Sets the modification time of `path` and everything under it to `age` ago.
    fn age_tree(path: &Path, age: Duration) {
        let when = SystemTime::now() - age;
        for e in fs::read_dir(path).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                age_tree(&e.path(), age);
            } else {
                fs::File::options()
                    .write(true)
                    .open(e.path())
                    .unwrap()
                    .set_modified(when)
                    .unwrap();
            }
        }
        fs::File::open(path).unwrap().set_modified(when).unwrap();
    }

    #[test]
    fn gc_removes_slurm_run_folders_untouched_for_a_week_and_nothing_else_there() {
        let (_dir, store) = store();
        let slurm = store.root().join("slurm");
        let make = |name: &str| {
            let run = slurm.join(name);
            fs::create_dir_all(run.join("b0")).unwrap();
            fs::create_dir_all(run.join("results")).unwrap();
            fs::write(run.join("b0/0.log"), "a job's log\n").unwrap();
            fs::write(run.join("results/k.json"), "{}").unwrap();
            run
        };
        let old = make("1700000000000-42");
        let recent = make("1700000000001-43");
        let mine = make("notes");
        let week = Duration::from_secs(8 * 24 * 60 * 60);
        age_tree(&old, week);
        age_tree(&mine, week);
        // A run folder with one file touched an hour ago is kept.
        age_tree(&recent, week);
        fs::File::options()
            .write(true)
            .open(recent.join("b0/0.log"))
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        let opts = |dry_run| GcOptions {
            keep_runs: 1,
            max_size: None,
            dry_run,
        };
        let dry = store.gc(&opts(true)).unwrap();
        assert_eq!(dry.removed_slurm_runs, 1);
        assert!(dry.freed_bytes >= 14, "{}", dry.freed_bytes);
        assert!(old.exists(), "a dry run removes nothing");
        let r = store.gc(&opts(false)).unwrap();
        assert_eq!(r.removed_slurm_runs, 1);
        assert!(!old.exists());
        assert!(recent.join("b0/0.log").exists());
        assert!(
            mine.join("b0/0.log").exists(),
            "not a run folder: left alone"
        );
    }

    #[test]
    fn gc_keeps_the_last_runs_steps_and_dry_run_deletes_nothing() {
        let (_dir, store) = store();
        let shared = store.put_bytes(b"shared by every step").unwrap();
        let recs: Vec<StepRecord> = (0..4)
            .map(|i| {
                let mut rec = step(
                    &store,
                    &format!("k{i}"),
                    &format!("s[i={i}]"),
                    format!("out {i}").as_bytes(),
                );
                rec.blobs.push(shared.clone());
                rec
            })
            .collect();
        for rec in &recs {
            run_with(&store, &[rec]);
        }
        let before = store.disk_usage().unwrap();
        let opts = GcOptions {
            keep_runs: 2,
            max_size: None,
            dry_run: true,
        };

        let dry = store.gc(&opts).unwrap();
        assert_eq!(dry.kept_steps, 2);
        assert_eq!(
            dry.removed_steps,
            vec!["s[i=0]".to_owned(), "s[i=1]".to_owned()]
        );
        assert_eq!(dry.removed_blobs, 2);
        assert_eq!(dry.freed_bytes, ("out 0".len() + "out 1".len()) as u64);
        assert!(dry.dry_run);
        assert!(
            store.lookup("k0").unwrap().is_some(),
            "dry run deletes nothing"
        );
        assert!(store.blob_path(&blob_of(&recs[0])).is_file());
        assert_eq!(store.disk_usage().unwrap(), before);
        assert_eq!(store.runs(10).unwrap().len(), 4);

        let real = store
            .gc(&GcOptions {
                dry_run: false,
                ..opts
            })
            .unwrap();
        assert_eq!(
            real,
            GcReport {
                dry_run: false,
                ..dry
            }
        );
        assert_eq!(store.lookup("k0").unwrap(), None);
        assert_eq!(store.lookup("k1").unwrap(), None);
        assert!(store.lookup("k2").unwrap().is_some());
        assert!(store.lookup("k3").unwrap().is_some());
        assert!(!store.blob_path(&blob_of(&recs[0])).exists());
        assert!(!store.blob_path(&blob_of(&recs[1])).exists());
        assert_eq!(
            store.check_blob(&blob_of(&recs[2]), true),
            crate::BlobState::Ok
        );
        assert_eq!(store.check_blob(&shared, true), crate::BlobState::Ok);
        assert_eq!(store.disk_usage().unwrap(), before - real.freed_bytes);
        assert_eq!(store.runs(10).unwrap().len(), 2, "older runs are dropped");

        // Nothing left to collect.
        let idle = store.gc(&opts).unwrap();
        assert_eq!((idle.kept_steps, idle.removed_blobs), (2, 0));
        assert!(idle.removed_steps.is_empty());
    }

    #[test]
    fn gc_counts_only_ran_or_cached_steps_and_collects_orphans() {
        let (_dir, store) = store();
        let failed = step(&store, "kfail", "fail", b"partial");
        store.record_step(&failed).unwrap();
        let run = run_with(&store, &[]);
        store
            .record_run_step(
                run,
                &RunStep {
                    step_id: "fail".into(),
                    key: Some("kfail".into()),
                    status: "failed".into(),
                    reason: String::new(),
                    duration_s: 0.0,
                    outputs: Default::default(),
                    metrics: serde_json::Value::Null,
                },
            )
            .unwrap();
        let orphan = store.put_bytes(b"put but never recorded").unwrap();
        let report = store
            .gc(&GcOptions {
                keep_runs: 10,
                max_size: None,
                dry_run: false,
            })
            .unwrap();
        assert_eq!(report.removed_steps, vec!["fail".to_owned()]);
        assert_eq!(report.removed_blobs, 2);
        assert!(!store.blob_path(&orphan).exists());
        assert_eq!(store.recorded_size(&orphan).unwrap(), None);
    }

    #[test]
    fn max_size_evicts_least_recently_used_but_never_the_newest_run() {
        let (_dir, store) = store();
        // k_new is recorded first (oldest last_used) but belongs to the newest run.
        let new = step(&store, "knew", "new", &[1u8; 1000]);
        let a = step(&store, "ka", "a", &[2u8; 1000]);
        let b = step(&store, "kb", "b", &[3u8; 1000]);
        store.record_step(&new).unwrap();
        run_with(&store, &[&a]);
        run_with(&store, &[&b]);
        run_with(&store, &[&new]);
        store.touch_steps(&["ka"]).unwrap();
        store.touch_steps(&["kb"]).unwrap();
        store.touch_steps(&["ka"]).unwrap(); // a is now the most recently used of a, b

        let opts = |max_size| GcOptions {
            keep_runs: 3,
            max_size: Some(max_size),
            dry_run: true,
        };
        assert!(store.gc(&opts(3000)).unwrap().removed_steps.is_empty());
        assert_eq!(
            store.gc(&opts(2500)).unwrap().removed_steps,
            vec!["b".to_owned()]
        );
        let zero = store.gc(&opts(0)).unwrap();
        assert_eq!(zero.removed_steps, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(zero.kept_steps, 1);

        let real = store
            .gc(&GcOptions {
                dry_run: false,
                ..opts(0)
            })
            .unwrap();
        assert_eq!(real.removed_blobs, 2);
        assert_eq!(real.freed_bytes, 2000);
        assert!(store.lookup("knew").unwrap().is_some());
        assert_eq!(store.read_bytes(&blob_of(&new)).unwrap(), vec![1u8; 1000]);
        assert_eq!(store.disk_usage().unwrap(), 1000);
    }

    #[test]
    fn max_size_keeps_newer_work_after_the_clock_was_set_ahead_once() {
        let (_dir, store) = store();
        let old = step(&store, "kold", "old", &[1u8; 1000]);
        run_with(&store, &[&old]);
        // Recorded while the clock was ten years ahead, then the clock was put right.
        let ahead = crate::store::next_stamp() + 10 * 365 * 86_400 * 1_000_000;
        store
            .conn
            .lock()
            .unwrap()
            .execute("UPDATE steps SET last_used = ?1", [ahead])
            .unwrap();
        let new = step(&store, "knew", "new", &[2u8; 1000]);
        run_with(&store, &[&new]);
        // The newest run (never evicted) holds only a small step.
        let small = step(&store, "ksmall", "small", &[3u8; 10]);
        run_with(&store, &[&small]);
        let evicted = || {
            store
                .gc(&GcOptions {
                    keep_runs: 3,
                    max_size: Some(1500),
                    dry_run: true,
                })
                .unwrap()
                .removed_steps
        };
        assert_eq!(evicted(), vec!["old".to_owned()]);
        // A cache hit of the old step makes it the most recent again.
        store.touch_steps(&["kold"]).unwrap();
        assert_eq!(evicted(), vec!["new".to_owned()]);
    }

    #[test]
    fn gc_needs_the_store_to_itself_except_for_a_dry_run() {
        let (dir, store) = store();
        let opts = GcOptions {
            keep_runs: 1,
            max_size: None,
            dry_run: false,
        };
        let other = Store::open(dir.path().join("store")).unwrap();
        assert!(matches!(
            store.gc(&opts).unwrap_err(),
            CacheError::StoreBusy { .. }
        ));
        assert!(
            store
                .gc(&GcOptions {
                    dry_run: true,
                    ..opts.clone()
                })
                .is_ok()
        );
        // The failed attempt left this handle's shared lock in place: `other` still cannot gc.
        assert!(matches!(
            other.gc(&opts).unwrap_err(),
            CacheError::StoreBusy { .. }
        ));
        drop(other);
        store.gc(&opts).unwrap();
        // ...and after a successful gc this handle is shared again.
        let third = Store::open(dir.path().join("store")).unwrap();
        assert!(matches!(
            third.gc(&opts).unwrap_err(),
            CacheError::StoreBusy { .. }
        ));
    }

    #[test]
    fn gc_removes_stale_tmp_files_and_unheld_lock_files() {
        let (_dir, store) = store();
        let stale = store.tmp_path(".tif");
        fs::write(&stale, b"left by a killed run").unwrap();
        let old = SystemTime::now() - Duration::from_secs(2 * 60 * 60);
        fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let fresh = store.tmp_path(".tif");
        fs::write(&fresh, b"being written right now").unwrap();
        drop(store.claim("released").unwrap());
        let held = store.claim("held").unwrap();

        let report = store
            .gc(&GcOptions {
                keep_runs: 1,
                max_size: None,
                dry_run: false,
            })
            .unwrap();
        assert_eq!(report.freed_bytes, b"left by a killed run".len() as u64);
        assert!(!stale.exists());
        assert!(fresh.exists());
        assert!(!store.root().join("locks/released.lock").exists());
        assert!(held.path().exists());
        assert!(store.root().join("locks").join(STORE_LOCK).exists());
        drop(held);
        assert!(store.try_claim("released").unwrap().is_some());
    }

    #[test]
    fn gc_removes_stale_copies_left_beside_blobs_and_records_only() {
        let (_dir, store) = store();
        let old = SystemTime::now() - Duration::from_secs(2 * 60 * 60);
        let place = |layer: &str, name: &str, aged: bool| {
            let dir = store.root().join(layer).join("ab");
            fs::create_dir_all(&dir).unwrap();
            let path = dir.join(name);
            fs::write(&path, b"copy").unwrap();
            if aged {
                fs::File::options()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_modified(old)
                    .unwrap();
            }
            path
        };
        let stale_blob = place("objects", "lulc-tmp-h-1-0-0-copy", true);
        let stale_record = place("records", "lulc-tmp-h-1-1-0-copy", true);
        let fresh = place("objects", "lulc-tmp-h-1-2-0-copy", false);
        let users = place("objects", "notes.txt", true);
        let report = store
            .gc(&GcOptions {
                keep_runs: 1,
                max_size: None,
                dry_run: false,
            })
            .unwrap();
        assert!(!stale_blob.exists() && !stale_record.exists());
        assert!(fresh.exists() && users.exists());
        assert_eq!(report.freed_bytes, 2 * b"copy".len() as u64);
    }

    #[test]
    fn forget_gc_verify_and_quarantine_remove_record_files() {
        let (_dir, store) = store();
        let forgotten = step(&store, "kforget", "forget", b"forget me");
        let old = step(&store, "kold", "old", b"old run");
        let kept = step(&store, "kkept", "kept", b"kept run");
        let rotten = step(&store, "krot", "rot", b"will rot");
        let lost = step(&store, "klost", "lost", b"will be lost");
        store.record_step(&forgotten).unwrap();
        run_with(&store, &[&old]);
        run_with(&store, &[&kept, &rotten, &lost]);
        for key in ["kforget", "kold", "kkept", "krot", "klost"] {
            assert!(store.record_path(key).is_file(), "{key}");
        }

        store.forget_step("kforget").unwrap();
        assert!(!store.record_path("kforget").exists());

        flip_bit(&store.blob_path(&blob_of(&rotten)));
        store.verify().unwrap();
        assert!(
            !store.record_path("krot").exists(),
            "verify forgets the record file too"
        );

        flip_bit(&store.blob_path(&blob_of(&lost)));
        store.quarantine(&blob_of(&lost)).unwrap().expect("corrupt");
        assert!(!store.record_path("klost").exists());

        // A record left without a row (a kill between the row's deletion and the file's).
        let stray = step(&store, "kstray", "stray", b"stray");
        store.write_record(&stray, 1).unwrap();
        let opts = GcOptions {
            keep_runs: 1,
            max_size: None,
            dry_run: true,
        };
        let dry = store.gc(&opts).unwrap();
        assert_eq!(dry.removed_steps, vec!["old".to_owned()]);
        assert_eq!(dry.removed_records, 2);
        assert!(store.record_path("kold").is_file() && store.record_path("kstray").is_file());
        let real = store
            .gc(&GcOptions {
                dry_run: false,
                ..opts
            })
            .unwrap();
        assert_eq!(real.removed_records, 2);
        assert!(!store.record_path("kold").exists());
        assert!(!store.record_path("kstray").exists());
        assert!(store.record_path("kkept").is_file());
        assert_eq!(crate::records::walk_records(store.root()).unwrap().len(), 1);
    }

    #[test]
    fn verify_writes_back_missing_and_bad_record_files_and_checks_the_index() {
        let (_dir, store) = store();
        let recs: Vec<StepRecord> = (0..3)
            .map(|i| {
                let rec = step(&store, &format!("k{i}"), &format!("s{i}"), &[i as u8; 10]);
                store.record_step(&rec).unwrap();
                rec
            })
            .collect();
        let clean = store.verify().unwrap();
        assert!(clean.index_problems.is_empty());
        assert!(clean.records_missing.is_empty() && clean.records_rewritten.is_empty());
        let original = fs::read(store.record_path("k1")).unwrap();

        // As in a store made before record files existed, plus one garbled file.
        fs::remove_file(store.record_path("k0")).unwrap();
        fs::remove_file(store.record_path("k1")).unwrap();
        fs::write(store.record_path("k2"), b"{ garbage").unwrap();
        let report = store.verify().unwrap();
        assert_eq!(
            report.records_missing,
            vec!["s0".to_owned(), "s1".to_owned()]
        );
        assert_eq!(report.records_rewritten, vec!["s2".to_owned()]);
        assert!(report.corrupt.is_empty() && report.missing.is_empty());
        for rec in &recs {
            let (on_disk, _) =
                decode_record(&fs::read(store.record_path(&rec.key)).unwrap()).unwrap();
            assert_eq!(Some(on_disk), store.lookup(&rec.key).unwrap());
        }
        // Written back from the row, the file says what the original said (the stamp aside).
        let back = fs::read(store.record_path("k1")).unwrap();
        assert_eq!(
            decode_record(&back).unwrap().0,
            decode_record(&original).unwrap().0
        );
        let again = store.verify().unwrap();
        assert!(again.records_missing.is_empty() && again.records_rewritten.is_empty());

        // And the records are good enough to rebuild from.
        let root = store.root().to_owned();
        drop(store);
        fs::remove_file(root.join("index.sqlite")).unwrap();
        let store = Store::open(&root).unwrap();
        assert_eq!(store.rebuilt().expect("rebuilt").restored, 3);
    }

    #[test]
    fn verify_reports_a_failing_integrity_check() {
        let (_dir, store) = store();
        for i in 0..200 {
            let rec = step(&store, &format!("k{i}"), &format!("s{i}"), &[i as u8; 4]);
            store.record_step(&rec).unwrap();
        }
        assert!(store.verify().unwrap().index_problems.is_empty());
        // Break the index behind SQLite's back: with the WAL checkpointed, overwrite a page of
        // the `step_blobs` index so the table and its index disagree.
        store
            .read(|c| Ok(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?))
            .unwrap();
        let page: i64 = store
            .read(|c| {
                Ok(c.query_row(
                    "SELECT rootpage FROM sqlite_master WHERE name = 'step_blobs_by_digest'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        let path = store.index_path().to_owned();
        let mut bytes = fs::read(&path).unwrap();
        let at = (page as usize - 1) * 4096;
        for b in &mut bytes[at + 100..at + 4000] {
            *b = 0x5a;
        }
        fs::write(&path, &bytes).unwrap();
        let record = fs::read(store.record_path("k7")).unwrap();
        let report = store.verify().unwrap();
        assert!(!report.index_problems.is_empty(), "{report:?}");
        assert_eq!(
            report.checked, 0,
            "nothing else is done with a failing index"
        );
        // The records are not touched either.
        assert_eq!(fs::read(store.record_path("k7")).unwrap(), record);
    }
}
