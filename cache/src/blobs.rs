//! The store's files without its index: blobs, temp files and record files.
//!
//! [`Blobs`] is what a worker needs to run a step anywhere the store's directory is mounted (a
//! compute node of a cluster): read input blobs (re-hashed), write output blobs and the step's
//! record file, all by temp file + fsync + rename. It never opens `index.sqlite` and never takes
//! a lock, because neither works across the hosts of a network file system (SQLite's WAL needs
//! shared memory; `flock` is per node or unsupported on many mounts). Two workers writing the
//! same key write the same bytes, so the last rename wins harmlessly.
//!
//! [`crate::Store`] is built on it and adds the index: the sizes of the blobs it stored, step
//! rows, runs, claims.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::io_err;
use crate::records::encode_record;
use crate::store::{hash_file, next_stamp, sync_dir, unix_now};
use crate::{BlobState, CacheError, Digest, Result, StepRecord};

/// The directories of a store's layout (see the crate docs).
pub(crate) const LAYOUT: [&str; 5] = ["objects", "records", "tmp", "locks", "quarantine"];

/// The file that makes a folder a store: `{"format": N, ...}`.
pub const MARKER: &str = "lulc-store.json";

/// The store layout's format version, written into [`MARKER`].
pub const STORE_FORMAT: u64 = 1;

/// How every temp file of the store begins: `gc` removes stale files of `tmp/` only with this
/// prefix, never anything else put there.
pub(crate) const TMP_PREFIX: &str = "lulc-tmp-";

/// The file layer of a store: blobs, temp files, record files. No index, no locks.
#[derive(Clone, Debug)]
pub struct Blobs {
    root: PathBuf,
}

impl Blobs {
    /// The file layer of the store at `root`. A store is made only in a folder that does not
    /// exist, is empty or holds only the layout's folders (a making that was interrupted); an existing store is recognised by its marker file (or, for stores
    /// made before the marker, by its `objects/` and `records/`, and then given the marker).
    /// Any other folder is refused with `NotAStore`, so a mistyped `--store` never turns a
    /// user's folder into a store (whose `gc` would clean its `tmp/`).
    pub(crate) fn create(root: &Path) -> Result<Blobs> {
        let root = std::path::absolute(root).map_err(io_err("resolve store directory", root))?;
        match fs::metadata(&root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspect store directory", &root)(e)),
            Ok(m) if !m.is_dir() => {
                return Err(CacheError::NotAStore {
                    path: root,
                    why: "it is a file, not a folder".into(),
                });
            }
            Ok(_) => {
                if !only_layout(&root)? {
                    return Blobs::open_existing(&root);
                }
            }
        }
        fs::create_dir_all(&root).map_err(io_err("create store directory", &root))?;
        Blobs::lay_out(root)
    }

    /// Creates the layout's directories and the marker file (both idempotent).
    fn lay_out(root: PathBuf) -> Result<Blobs> {
        for sub in LAYOUT {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        }
        let blobs = Blobs { root };
        let marker = blobs.root.join(MARKER);
        if !marker.is_file() {
            let body = format!(
                "{{\"format\": {STORE_FORMAT}, \"what\": \"a lulc store: content-addressed step results; \
                 manage it with lulc gc and lulc verify\"}}\n"
            );
            blobs.write_file_atomic(&marker, body.as_bytes())?;
        }
        Ok(blobs)
    }

    /// The file layer of a store whose directories exist.
    pub(crate) fn at(root: PathBuf) -> Blobs {
        Blobs { root }
    }

    /// The file layer of an existing store (a worker's view, and `gc`'s and `verify`'s): fails
    /// with `NotAStore` when `root` holds no store, creating nothing; with `StoreFormatTooNew`
    /// when a newer lulc made it.
    pub fn open_existing(root: impl AsRef<Path>) -> Result<Blobs> {
        let root = root.as_ref();
        let root = std::path::absolute(root).map_err(io_err("resolve store directory", root))?;
        check_marker(&root)?;
        Blobs::lay_out(root)
    }

    /// Like [`Blobs::open_existing`] but changes nothing: a store without its marker (made
    /// before markers, or not finished) is read as it is.
    pub(crate) fn open_existing_read_only(root: &Path) -> Result<Blobs> {
        check_marker(root)?;
        Ok(Blobs::at(root.to_path_buf()))
    }

    /// The store directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh, unique path under `root/tmp` (not created). `hint` is kept as the suffix, so
    /// `tmp_path(".tif")` ends in `.tif` for tools that care about extensions. Unique across
    /// hosts too: the name holds the host's name, the process id and a counter.
    pub fn tmp_path(&self, hint: &str) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let hint = sanitize_hint(hint);
        let sep = if hint.is_empty() || hint.starts_with('.') {
            ""
        } else {
            "-"
        };
        self.root.join("tmp").join(format!(
            "{TMP_PREFIX}{}{}-{n}-{nanos:08x}{sep}{hint}",
            host_tag(),
            std::process::id()
        ))
    }

    /// Where the blob named `d` lives: `objects/ab/cdef...`.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.root.join("objects").join(&hex[..2]).join(&hex[2..])
    }

    /// Stores `bytes`; returns their digest and size. Idempotent: a blob already present is
    /// not rewritten.
    pub fn store_bytes(&self, bytes: &[u8]) -> Result<(Digest, u64)> {
        let d = Digest::of_bytes(bytes);
        let dest = self.blob_path(&d);
        let size = bytes.len() as u64;
        if !present_with_size(&dest, size) {
            let tmp = self.write_tmp(bytes)?;
            set_read_only(&tmp)?;
            self.move_into_place(&tmp, &dest)?;
        }
        Ok((d, size))
    }

    /// Moves the file at `src` into the store (it is consumed); returns its digest and size.
    /// `src` should be on the store's filesystem, e.g. from [`Blobs::tmp_path`]; otherwise it
    /// is copied (and the copy checked against the hash).
    pub fn store_file(&self, src: &Path) -> Result<(Digest, u64)> {
        let (d, size) = {
            let mut file = File::open(src).map_err(io_err("open", src))?;
            let mut hasher = blake3::Hasher::new();
            hasher
                .update_reader(&mut file)
                .map_err(io_err("read", src))?;
            // The bytes must be on disk before the rename publishes them.
            file.sync_all().map_err(io_err("fsync", src))?;
            (Digest::from_hash(&hasher.finalize()), hasher.count())
        };
        let dest = self.blob_path(&d);
        if present_with_size(&dest, size) {
            fs::remove_file(src).map_err(io_err("remove", src))?;
            return Ok((d, size));
        }
        set_read_only(src)?;
        let dir = dest.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        match fs::rename(src, &dest) {
            Ok(()) => sync_dir(dir)?,
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                self.copy_into_place(src, &dest, Some(&d))?;
                fs::remove_file(src).map_err(io_err("remove", src))?;
            }
            Err(e) => {
                return Err(io_err(format!("rename `{}` to", src.display()), &dest)(e));
            }
        }
        Ok((d, size))
    }

    /// Reads a whole blob and checks it still hashes to its name.
    pub fn read_bytes(&self, d: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(d);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CacheError::MissingBlob {
                    digest: d.clone(),
                    path,
                });
            }
            Err(e) => return Err(io_err("read blob", &path)(e)),
        };
        let actual = Digest::of_bytes(&bytes);
        if &actual != d {
            return Err(CacheError::CorruptBlob {
                digest: d.clone(),
                path,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Hashes the blob file `d`: is it there and intact? Also its size when it is.
    pub fn rehash(&self, d: &Digest) -> (BlobState, u64) {
        match hash_file(&self.blob_path(d)) {
            Ok((actual, size)) if &actual == d => (BlobState::Ok, size),
            Ok(_) => (BlobState::Corrupt, 0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (BlobState::Missing, 0),
            Err(_) => (BlobState::Corrupt, 0),
        }
    }

    /// Writes the record file of a computed step (`records/ab/<key>.json`, atomically), after
    /// its blobs: the durable proof that the step finished, which the coordinator turns into an
    /// index row. Fails with `MissingBlob` if a referenced blob is not in the store.
    pub fn write_step_record(&self, rec: &StepRecord) -> Result<StepRecord> {
        Ok(self.write_step_record_stamped(rec)?.0)
    }

    /// [`Blobs::write_step_record`], also giving the stamp the record file holds.
    pub(crate) fn write_step_record_stamped(&self, rec: &StepRecord) -> Result<(StepRecord, i64)> {
        for d in rec.outputs.values().chain(&rec.blobs) {
            let path = self.blob_path(d);
            if !path.is_file() {
                return Err(CacheError::MissingBlob {
                    digest: d.clone(),
                    path,
                });
            }
        }
        let mut rec = rec.clone();
        if rec.created_at == 0 {
            rec.created_at = unix_now();
        }
        let stamp = next_stamp();
        self.write_record(&rec, stamp)?;
        Ok((rec, stamp))
    }

    /// The record file of step `key`, if there is a readable one whose every blob re-hashes to
    /// its name: a step a worker finished whose coordinator never recorded it.
    pub fn finished_record(&self, key: &str) -> Option<StepRecord> {
        let bytes = fs::read(self.record_path(key)).ok()?;
        let (rec, _) = crate::records::decode_record(&bytes).ok()?;
        let intact = rec.key == key
            && rec
                .outputs
                .values()
                .chain(&rec.blobs)
                .all(|d| self.rehash(d).0 == BlobState::Ok);
        intact.then_some(rec)
    }

    /// Writes the record file of `rec` atomically (tmp file, fsync, rename, fsync directory).
    pub(crate) fn write_record(&self, rec: &StepRecord, stamp: i64) -> Result<()> {
        let tmp = self.write_tmp(&encode_record(rec, stamp))?;
        self.move_into_place(&tmp, &self.record_path(&rec.key))
    }

    /// Writes `bytes` to `dest` atomically: a temp file of the store, fsync, rename, fsync of
    /// the directory. For small files beside the blobs (a run's journal, a worker's result).
    pub fn write_file_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.write_tmp(bytes)?;
        self.move_into_place(&tmp, dest)
    }

    /// Creates a fresh file under `tmp/` (never reusing an existing name).
    fn create_tmp_file(&self) -> Result<(PathBuf, File)> {
        loop {
            let tmp = self.tmp_path("blob");
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(f) => return Ok((tmp, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create temp file", &tmp)(e)),
            }
        }
    }

    pub(crate) fn write_tmp(&self, bytes: &[u8]) -> Result<PathBuf> {
        let (tmp, mut file) = self.create_tmp_file()?;
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        drop(file);
        match written {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(io_err("write temp file", &tmp)(e))
            }
        }
    }

    /// Renames a complete, fsynced file to its blob (or record) path and makes the rename durable.
    ///
    /// Where `tmp/` is on another file system than `src`'s destination (a symlinked or
    /// mounted `tmp/`), the rename cannot work: the file is copied next to its destination,
    /// fsynced and renamed there instead.
    pub(crate) fn move_into_place(&self, src: &Path, dest: &Path) -> Result<()> {
        let dir = dest.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let moved = match fs::rename(src, dest) {
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                self.copy_into_place(src, dest, None)
            }
            Err(e) => Err(io_err(format!("rename `{}` to", src.display()), dest)(e)),
            Ok(()) => sync_dir(dir),
        };
        if moved.is_err() || src.exists() {
            let _ = fs::remove_file(src);
        }
        moved
    }

    /// Copies `src` to a temp file beside `dest` (same file system), fsynced and, when
    /// `expect` is given, checked to hash to it; then renames it to `dest`. The copy is
    /// read-only when `src` is. `src` is left for the caller.
    fn copy_into_place(&self, src: &Path, dest: &Path, expect: Option<&Digest>) -> Result<()> {
        let dir = dest.parent().unwrap_or(&self.root);
        let side = loop {
            let name = self.tmp_path("copy");
            let side = dir.join(name.file_name().unwrap_or_default());
            match OpenOptions::new().write(true).create_new(true).open(&side) {
                Ok(out) => {
                    copy_checked(src, &side, out, expect)?;
                    break side;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create temp file", &side)(e)),
            }
        };
        let read_only = fs::metadata(src).is_ok_and(|m| m.permissions().readonly());
        if read_only {
            set_read_only(&side)?;
        }
        if let Err(e) = fs::rename(&side, dest) {
            let _ = fs::remove_file(&side);
            return Err(io_err(format!("rename `{}` to", side.display()), dest)(e));
        }
        sync_dir(dir)
    }

    /// Copies blob `d` out of the store to `to` (through `<to>.lulc-tmp`, renamed when
    /// complete; writable by the user, unlike the store's blobs), hashing what it copies:
    /// `CorruptBlob` when the blob no longer hashes to its name (changed in place), and
    /// nothing is left at `to`.
    pub fn copy_out(&self, d: &Digest, to: &Path) -> Result<()> {
        if let Some(dir) = to.parent() {
            fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        }
        let src = self.blob_path(d);
        if !src.is_file() {
            return Err(CacheError::MissingBlob {
                digest: d.clone(),
                path: src,
            });
        }
        let mut name = to.as_os_str().to_owned();
        name.push(".lulc-tmp");
        let tmp = PathBuf::from(name);
        let out = File::create(&tmp).map_err(io_err("create", &tmp))?;
        copy_checked(&src, &tmp, out, Some(d))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))
                .map_err(io_err("set permissions of", &tmp))?;
        }
        fs::rename(&tmp, to).map_err(io_err("rename into place", to))
    }
}

/// Checks that `root` holds a store this lulc understands (see [`Blobs::open_existing`]),
/// changing nothing.
fn check_marker(root: &Path) -> Result<()> {
    let root = root.to_path_buf();
    let marker = root.join(MARKER);
    match fs::read(&marker) {
        Ok(bytes) => {
            let found = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["format"].as_u64());
            match found {
                Some(f) if f <= STORE_FORMAT => {}
                Some(f) => {
                    return Err(CacheError::StoreFormatTooNew {
                        path: root,
                        found: f,
                        supported: STORE_FORMAT,
                    });
                }
                None => {
                    return Err(CacheError::NotAStore {
                        path: root,
                        why: format!("its {MARKER} is not lulc's"),
                    });
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A store made before the marker, or one whose making was interrupted (only
            // the layout's folders): completed by the caller. An empty folder is no store.
            let legacy = root.join("objects").is_dir() && root.join("records").is_dir();
            let unfinished = root.is_dir()
                && fs::read_dir(&root).is_ok_and(|mut d| d.next().is_some())
                && only_layout(&root)?;
            if !legacy && !unfinished {
                let why = if root.is_dir() {
                    format!("it has no {MARKER}")
                } else if root.exists() {
                    "it is a file, not a folder".into()
                } else {
                    "it does not exist".into()
                };
                return Err(CacheError::NotAStore { path: root, why });
            }
        }
        Err(e) => return Err(io_err("read", &marker)(e)),
    }
    Ok(())
}

/// Whether `root` (a folder) holds nothing but the store's empty layout folders (and, in
/// `tmp/`, the store's own temp files): empty, or a store whose making was interrupted before
/// its marker was written. A user's folder with a `tmp/thesis.txt` is not one.
pub(crate) fn only_layout(root: &Path) -> Result<bool> {
    let list = |dir: &Path| -> Result<Vec<fs::DirEntry>> {
        fs::read_dir(dir)
            .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
            .map_err(io_err("list store directory", dir))
    };
    for entry in list(root)? {
        let name = entry.file_name();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !(is_dir && LAYOUT.iter().any(|l| name == *l)) {
            return Ok(false);
        }
        let own = |e: &fs::DirEntry| {
            name == "tmp" && e.file_name().to_string_lossy().starts_with(TMP_PREFIX)
        };
        if !list(&entry.path())?.iter().all(own) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Copies `src` into `out` (the open file at `tmp`), fsynced, checking the bytes hash to
/// `expect`; removes `tmp` on any failure.
fn copy_checked(src: &Path, tmp: &Path, mut out: File, expect: Option<&Digest>) -> Result<()> {
    let copied = (|| -> io::Result<Digest> {
        let mut input = File::open(src)?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        out.sync_all()?;
        Ok(Digest::from_hash(&hasher.finalize()))
    })();
    match copied {
        Ok(got) if expect.is_none_or(|e| *e == got) => Ok(()),
        Ok(got) => {
            let _ = fs::remove_file(tmp);
            Err(CacheError::CorruptBlob {
                digest: expect.cloned().unwrap_or_else(|| got.clone()),
                path: src.to_owned(),
                actual: got,
            })
        }
        Err(e) => {
            let _ = fs::remove_file(tmp);
            Err(io_err(format!("copy `{}` to", src.display()), tmp)(e))
        }
    }
}

/// The host's name as a file-name prefix (`node7-`), empty when unknown: temp names written by
/// workers on different hosts into one shared `tmp/` never collide on equal process ids.
fn host_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let clean = sanitize_hint(name.trim());
        if clean.is_empty() {
            String::new()
        } else {
            format!("{clean}-")
        }
    })
}

pub(crate) fn present_with_size(path: &Path, size: u64) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size)
}

fn set_read_only(path: &Path) -> Result<()> {
    let mut perms = fs::metadata(path)
        .map_err(io_err("stat", path))?
        .permissions();
    perms.set_readonly(true);
    fs::set_permissions(path, perms).map_err(io_err("make read-only", path))
}

/// Keeps characters that are harmless in a file name; the tail (extension) survives truncation.
fn sanitize_hint(hint: &str) -> String {
    let clean: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let skip = clean.len().saturating_sub(64);
    clean[skip..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{step, store};

    #[test]
    fn a_store_whose_making_was_killed_is_completed_and_an_empty_folder_is_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        // Killed after the first layout folders, before the marker.
        let half = dir.path().join("half");
        std::fs::create_dir_all(half.join("objects")).unwrap();
        std::fs::create_dir_all(half.join("tmp")).unwrap();
        crate::Store::open(&half).unwrap();
        assert!(half.join(MARKER).is_file());
        // gc/verify on an empty folder: an empty store, nothing refused.
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        crate::Store::open_existing(&empty).unwrap();
        assert!(empty.join(MARKER).is_file());
        // A folder with something else in it is still no store.
        let other = dir.path().join("other");
        std::fs::create_dir_all(other.join("objects")).unwrap();
        std::fs::write(other.join("notes.txt"), "mine").unwrap();
        assert!(matches!(
            crate::Store::open(&other),
            Err(CacheError::NotAStore { .. })
        ));
    }

    #[test]
    fn a_worker_view_refuses_a_folder_that_is_not_a_store() {
        let dir = tempfile::tempdir().unwrap();
        match Blobs::open_existing(dir.path()) {
            Err(CacheError::NotAStore { path, why }) => {
                assert_eq!(path, dir.path());
                assert!(why.contains("no lulc-store.json"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!dir.path().join("objects").exists(), "nothing created");
    }

    #[test]
    fn a_worker_writes_blobs_and_a_record_file_that_the_index_then_takes() {
        let (_dir, store) = store();
        let blobs = Blobs::open_existing(store.root()).unwrap();
        let src = blobs.tmp_path(".tif");
        std::fs::write(&src, b"worker output").unwrap();
        let (d, size) = blobs.store_file(&src).unwrap();
        assert_eq!(size, 13);
        assert_eq!(blobs.rehash(&d), (BlobState::Ok, 13));
        assert_eq!(blobs.read_bytes(&d).unwrap(), b"worker output");

        let mut rec = step(&store, "kworker", "w", b"other");
        rec.outputs.insert("map".into(), d.clone());
        rec.blobs.push(d.clone());
        let written = blobs.write_step_record(&rec).unwrap();
        assert!(store.record_path("kworker").is_file());
        assert!(written.created_at > 0);
        // The worker wrote no row: the coordinator records it.
        assert!(store.lookup("kworker").unwrap().is_none());
        assert_eq!(blobs.finished_record("kworker"), Some(written.clone()));
        assert_eq!(blobs.finished_record("knone"), None);
        store.record_step(&written).unwrap();
        assert_eq!(
            store.lookup("kworker").unwrap().unwrap().outputs,
            written.outputs
        );

        // A record naming a blob that is not there is refused.
        let mut bad = rec.clone();
        bad.key = "kbad".into();
        bad.blobs.push(Digest::of_bytes(b"never stored"));
        assert!(matches!(
            blobs.write_step_record(&bad),
            Err(CacheError::MissingBlob { .. })
        ));
        assert!(!store.record_path("kbad").exists());
    }
}
