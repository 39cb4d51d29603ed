//! Opening the store, the SQLite plumbing shared by every table, and the blob files.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior};

use crate::blobs::Blobs;
use crate::error::io_err;
use crate::rebuild::{Diagnosis, diagnose};
use crate::{CacheError, Digest, RebuildReport, Result};

/// Version of the index schema, kept in SQLite's `user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// How long SQLite itself waits for a lock before reporting `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long we keep retrying a statement that still reports `SQLITE_BUSY` (some paths, such as
/// WAL recovery, do not go through the busy handler).
const BUSY_RETRY_FOR: Duration = Duration::from_secs(60);

/// Shared lock held by every open [`Store`]; `gc` upgrades it to exclusive. Its name starts with
/// a dot so it cannot collide with a step key's lock file (those never start with a dot).
pub(crate) const STORE_LOCK: &str = ".store.lock";

/// Taken exclusively by whoever rebuilds the index (`Store::open`), so rebuilders queue instead
/// of all waiting for the store lock at once.
pub(crate) const REBUILD_LOCK: &str = ".rebuild.lock";

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE blobs (
    digest     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE steps (
    key        TEXT PRIMARY KEY,
    scope      TEXT NOT NULL,
    step_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    material   TEXT NOT NULL,
    outputs    TEXT NOT NULL,
    blobs      TEXT NOT NULL,
    metrics    TEXT NOT NULL,
    duration_s REAL,
    created_at INTEGER NOT NULL,
    last_used  INTEGER NOT NULL
);
CREATE INDEX steps_by_last_used ON steps(last_used);

CREATE TABLE step_blobs (
    key    TEXT NOT NULL REFERENCES steps(key) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    PRIMARY KEY (key, digest)
) WITHOUT ROWID;
CREATE INDEX step_blobs_by_digest ON step_blobs(digest);

CREATE TABLE latest (
    scope   TEXT NOT NULL,
    step_id TEXT NOT NULL,
    key     TEXT NOT NULL,
    record  TEXT NOT NULL,
    PRIMARY KEY (scope, step_id)
) WITHOUT ROWID;

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    scope       TEXT NOT NULL,
    spec_path   TEXT NOT NULL,
    spec_digest TEXT NOT NULL,
    params      TEXT NOT NULL,
    argv        TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    status      TEXT NOT NULL
);
CREATE INDEX runs_by_scope ON runs(scope, id);

CREATE TABLE run_steps (
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    step_id    TEXT NOT NULL,
    key        TEXT,
    status     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    duration_s REAL,
    outputs    TEXT NOT NULL,
    metrics    TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE INDEX run_steps_by_key ON run_steps(key);
"#;

/// A content-addressed blob store with its SQLite index. See the crate docs for the layout.
///
/// `Store` is `Send + Sync`: threads share one handle; the connection sits behind a mutex and
/// every write is a `BEGIN IMMEDIATE` transaction, so other processes on the same directory
/// wait for each other instead of failing with "database is locked".
pub struct Store {
    pub(crate) root: PathBuf,
    pub(crate) blobs: Blobs,
    pub(crate) index_path: PathBuf,
    pub(crate) conn: Mutex<Connection>,
    /// Shared `flock` on `locks/.store.lock` for the lifetime of the handle (none for a
    /// read-only view of a store that has no lock file yet, or of no store at all).
    pub(crate) store_lock: Option<File>,
    /// Opened by [`Store::open_read_only`]: every write is refused with `ReadOnlyStore`.
    pub(crate) read_only: bool,
    /// A read-only view of a store that holds nothing yet (its index is an empty one in memory).
    pub(crate) nothing_yet: bool,
    /// Serialises `gc` calls within this handle (they share one lock file descriptor).
    pub(crate) gc_guard: Mutex<()>,
    /// Set when `open` rebuilt the index from `records/`.
    pub(crate) rebuilt: Option<RebuildReport>,
    /// `locks/run-<id>.lock` of each run this handle began and has not finished, held
    /// exclusively: a `running` run whose lock nobody holds was killed (see `settle_dead_runs`).
    pub(crate) held_runs: Mutex<std::collections::HashMap<i64, File>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Error inside a transaction closure: either SQLite (maybe retried if busy) or already ours.
pub(crate) enum TxError {
    Sql(rusqlite::Error),
    Cache(CacheError),
}

impl From<rusqlite::Error> for TxError {
    fn from(e: rusqlite::Error) -> Self {
        TxError::Sql(e)
    }
}

impl From<CacheError> for TxError {
    fn from(e: CacheError) -> Self {
        TxError::Cache(e)
    }
}

pub(crate) type TxResult<T> = std::result::Result<T, TxError>;

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

pub(crate) fn sql_error(path: &Path, source: rusqlite::Error) -> CacheError {
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => CacheError::CorruptIndex {
            path: path.to_owned(),
            source,
        },
        _ => CacheError::Sqlite {
            path: path.to_owned(),
            source,
        },
    }
}

/// Runs `attempt` until it succeeds, fails with something other than `SQLITE_BUSY`, or
/// [`BUSY_RETRY_FOR`] has passed.
pub(crate) fn retry_busy<T>(path: &Path, mut attempt: impl FnMut() -> TxResult<T>) -> Result<T> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(TxError::Sql(e)) if is_busy(&e) && start.elapsed() < BUSY_RETRY_FOR => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(250));
            }
            Err(TxError::Sql(e)) => return Err(sql_error(path, e)),
            Err(TxError::Cache(e)) => return Err(e),
        }
    }
}

pub(crate) fn open_index(path: &Path) -> TxResult<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Returns the resulting mode; a read-only medium would answer something else, which is
    // still usable, so the answer is not checked.
    let _mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Read index pages through mmap instead of a pread per page: a plan over 20,000 steps looks
    // up every key.
    conn.pragma_update(None, "mmap_size", 256i64 << 20)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    match version {
        0 => {
            tx.execute_batch(SCHEMA)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        // An index added within version 1 (for the store clock, [`crate::index`]).
        SCHEMA_VERSION => {
            tx.execute_batch("CREATE INDEX IF NOT EXISTS steps_by_last_used ON steps(last_used)")?
        }
        // Migrations from older schemas go here once there is a version 2.
        found => {
            return Err(CacheError::SchemaTooNew {
                path: path.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            }
            .into());
        }
    }
    tx.commit()?;
    Ok(conn)
}

/// Opens the index for reading only and checks its schema version; a read-only medium where
/// SQLite cannot make the `-shm` file gets the index opened as immutable.
fn open_index_read_only(path: &Path) -> TxResult<Connection> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let check = |conn: Connection| -> TxResult<Connection> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(CacheError::SchemaTooNew {
                path: path.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            }
            .into());
        }
        // Fails on an index that is not a database, or one without the tables.
        conn.query_row("SELECT COUNT(*) FROM steps WHERE 0", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(conn)
    };
    match Connection::open_with_flags(path, flags)
        .map_err(TxError::from)
        .and_then(check)
    {
        Err(TxError::Sql(e))
            if matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly)
            ) =>
        {
            let uri = format!("file:{}?immutable=1", uri_path(path));
            check(Connection::open_with_flags(uri, flags)?)
        }
        other => other,
    }
}

/// `path` as the path part of an SQLite `file:` URI (`%`, `?` and `#` escaped).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

/// Opens (creating if needed) a lock file; the handle is what gets `flock`ed.
pub(crate) fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err("open lock file", path))
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Strictly increasing microsecond stamp (within this process) for LRU ordering.
pub(crate) fn next_stamp() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(prev + 1)
}

/// Streams a file through blake3; returns its digest and length.
pub(crate) fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&mut file)?;
    Ok((Digest::from_hash(&hasher.finalize()), hasher.count()))
}

/// Makes a rename inside `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

impl Store {
    /// Opens the store at `root`, creating the directory layout and the index if needed.
    ///
    /// Waits while a `gc` or an index rebuild in another process holds the store.
    ///
    /// If `index.sqlite` is missing while `records/` holds step records, or is not a database,
    /// is corrupt (`PRAGMA quick_check`) or has lost its step rows, it is moved to
    /// `quarantine/` and rebuilt from the record files (see [`Store::rebuilt`]). One process
    /// rebuilds at a time; the others wait for it and then open the rebuilt index. A rebuild
    /// needs the store to itself: while other handles are open it waits for them up to a
    /// minute, then fails with `IndexRebuildBusy`. Fails with `SchemaTooNew` if a newer lulc
    /// wrote the index.
    ///
    /// A new store is made only where `root` does not exist or is an empty folder; a folder
    /// holding other files is refused with `NotAStore` (see [`Blobs`]).
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        Store::open_blobs(Blobs::create(root.as_ref())?)
    }

    /// Like [`Store::open`], but never makes a store of a folder that holds something else or
    /// does not exist: `NotAStore` there (for `gc` and `verify`, which must not clean a folder
    /// that is not a store). An empty folder is an empty store (a run killed before it wrote
    /// anything leaves one).
    pub fn open_existing(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref();
        let empty = fs::read_dir(root).is_ok_and(|mut d| d.next().is_none());
        Store::open_blobs(if empty {
            Blobs::create(root)?
        } else {
            Blobs::open_existing(root)?
        })
    }

    /// A view of the store at `root` for commands that only read it (the CLI's `plan`,
    /// `explain`, `logs`, `show`, `results`, `export`, `report`): it creates nothing, takes no write lock and works on a
    /// read-only medium. Where no store is yet (no folder, an empty one, or only the layout
    /// of an interrupted making) it is an empty store, so every step reads as new. A folder
    /// that is not a store is refused with `NotAStore`; a missing or damaged index while step
    /// records exist with `IndexNeedsRepair` (a reader does not rebuild). Every write through
    /// the view fails with `ReadOnlyStore`.
    ///
    /// The index is opened read-only; where SQLite cannot make its shared-memory file next to
    /// it (a read-only file system), it is read as immutable, which is right there: nobody can
    /// write it through that mount either.
    pub fn open_read_only(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref();
        let root = std::path::absolute(root).map_err(io_err("resolve store directory", root))?;
        let index_path = root.join("index.sqlite");
        let nothing_yet = match fs::metadata(&root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(io_err("inspect store directory", &root)(e)),
            Ok(m) if !m.is_dir() => {
                return Err(CacheError::NotAStore {
                    path: root,
                    why: "it is a file, not a folder".into(),
                });
            }
            Ok(_) => crate::blobs::only_layout(&root)?,
        };
        if nothing_yet {
            return Store::empty_view(root, index_path, None);
        }
        Blobs::open_existing_read_only(&root)?;
        let lock_path = root.join("locks").join(STORE_LOCK);
        // A reader waits while a `gc` holds the store (it deletes what the reader may read).
        let store_lock = match File::open(&lock_path) {
            Ok(f) => {
                f.lock_shared().map_err(io_err("lock", &lock_path))?;
                Some(f)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("open lock file", &lock_path)(e)),
        };
        if !index_path.exists() {
            if crate::records::any_records(&root)? {
                return Err(CacheError::IndexNeedsRepair {
                    path: root,
                    problem: "index.sqlite is missing".into(),
                });
            }
            return Store::empty_view(root, index_path, store_lock);
        }
        let conn = open_index_read_only(&index_path).map_err(|e| match e {
            TxError::Cache(e) => e,
            TxError::Sql(e) => CacheError::IndexNeedsRepair {
                path: root.clone(),
                problem: e.to_string(),
            },
        })?;
        let mut store = Store::with(root, index_path, conn, store_lock);
        store.read_only = true;
        Ok(store)
    }

    /// A read-only view with an empty in-memory index: what a store that does not exist yet
    /// holds.
    fn empty_view(root: PathBuf, index_path: PathBuf, lock: Option<File>) -> Result<Store> {
        let conn = Connection::open_in_memory()
            .and_then(|c| c.execute_batch(SCHEMA).map(|()| c))
            .map_err(|e| sql_error(&index_path, e))?;
        let mut store = Store::with(root, index_path, conn, lock);
        store.read_only = true;
        store.nothing_yet = true;
        Ok(store)
    }

    fn open_blobs(blobs: Blobs) -> Result<Store> {
        let root = blobs.root().to_path_buf();
        let lock_path = root.join("locks").join(STORE_LOCK);
        let store_lock = open_lock_file(&lock_path)?;
        store_lock
            .lock_shared()
            .map_err(io_err("lock", &lock_path))?;
        let index_path = root.join("index.sqlite");
        if let Diagnosis::Healthy(conn) = diagnose(&root, &index_path)? {
            return Ok(Store::with(root, index_path, conn, store_lock));
        }

        // The index must be rebuilt. One rebuilder at a time: `.rebuild.lock`, taken without
        // holding the store lock (else two rebuilders would wait for each other). Then the
        // rebuild needs every other handle closed: the store lock exclusively.
        store_lock.unlock().map_err(io_err("unlock", &lock_path))?;
        let rebuild_lock_path = root.join("locks").join(REBUILD_LOCK);
        let rebuild_lock = open_lock_file(&rebuild_lock_path)?;
        rebuild_lock
            .lock()
            .map_err(io_err("lock", &rebuild_lock_path))?;
        store_lock
            .lock_shared()
            .map_err(io_err("lock", &lock_path))?;
        // The rebuilder before us has probably fixed it.
        let problem = match diagnose(&root, &index_path)? {
            Diagnosis::Healthy(conn) => return Ok(Store::with(root, index_path, conn, store_lock)),
            Diagnosis::Broken(problem) => problem,
        };
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            // Upgrading an flock may drop the shared lock when it fails; take it back then.
            match store_lock.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    store_lock
                        .lock_shared()
                        .map_err(io_err("lock", &lock_path))?;
                    // "No step rows yet, but a record file" is also what a fresh store looks
                    // like between another process's first record file and its row: look again.
                    if let Diagnosis::Healthy(conn) = diagnose(&root, &index_path)? {
                        return Ok(Store::with(root, index_path, conn, store_lock));
                    }
                    if started.elapsed() >= BUSY_RETRY_FOR {
                        return Err(CacheError::IndexRebuildBusy {
                            path: index_path,
                            problem: problem.to_string(),
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
                Err(TryLockError::Error(e)) => return Err(io_err("lock", &lock_path)(e)),
            }
        }
        let store = match diagnose(&root, &index_path)? {
            Diagnosis::Healthy(conn) => Store::with(root, index_path, conn, store_lock),
            Diagnosis::Broken(problem) => {
                Store::rebuild_index(root, index_path, store_lock, problem)?
            }
        };
        if let Some(lock) = &store.store_lock {
            lock.lock_shared().map_err(io_err("lock", &lock_path))?;
        }
        drop(rebuild_lock);
        Ok(store)
    }

    pub(crate) fn with(
        root: PathBuf,
        index_path: PathBuf,
        conn: Connection,
        lock: impl Into<Option<File>>,
    ) -> Store {
        Store {
            blobs: Blobs::at(root.clone()),
            root,
            index_path,
            conn: Mutex::new(conn),
            store_lock: lock.into(),
            read_only: false,
            nothing_yet: false,
            gc_guard: Mutex::new(()),
            rebuilt: None,
            held_runs: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// What `open` did if it found the index missing or corrupt and rebuilt it from `records/`
    /// (`None` when the index was fine). Shown once to the user: run history before the
    /// rebuild is gone.
    pub fn rebuilt(&self) -> Option<&RebuildReport> {
        self.rebuilt.as_ref()
    }

    /// The store directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this is a read-only view of a store that does not exist yet or has no index
    /// (nothing has run with it).
    pub fn holds_nothing_yet(&self) -> bool {
        self.nothing_yet
    }

    /// Path of the SQLite index, `root/index.sqlite`.
    pub fn index_path(&self) -> &Path {
        &self.index_path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the guard rolls the transaction back on unwind, so the
        // connection is still sound.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction, retrying the whole closure on `SQLITE_BUSY`.
    pub(crate) fn write<T>(&self, mut f: impl FnMut(&Transaction<'_>) -> TxResult<T>) -> Result<T> {
        self.writable()?;
        retry_busy(&self.index_path, || {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let v = f(&tx)?;
            tx.commit()?;
            Ok(v)
        })
    }

    /// `ReadOnlyStore` for a view opened by [`Store::open_read_only`].
    pub(crate) fn writable(&self) -> Result<()> {
        if self.read_only {
            return Err(CacheError::ReadOnlyStore {
                path: self.root.clone(),
            });
        }
        Ok(())
    }

    /// Runs a read-only `f` on the connection, retrying on `SQLITE_BUSY`. Every reader is a
    /// single statement (a snapshot by itself in WAL mode), so no explicit transaction: on a
    /// 20,000-step plan the BEGIN/COMMIT pair per lookup was a measurable share of the time.
    pub(crate) fn read<T>(&self, mut f: impl FnMut(&Connection) -> TxResult<T>) -> Result<T> {
        retry_busy(&self.index_path, || {
            let conn = self.conn();
            f(&conn)
        })
    }

    /// Decoding error of a JSON column.
    pub(crate) fn bad_record(&self, what: impl Into<String>, source: serde_json::Error) -> TxError {
        TxError::Cache(CacheError::BadRecord {
            path: self.index_path.clone(),
            what: what.into(),
            source,
        })
    }

    // ----- blobs -----------------------------------------------------------------------------

    /// The file layer: what a worker without the index uses.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// [`Blobs::tmp_path`].
    pub fn tmp_path(&self, hint: &str) -> PathBuf {
        self.blobs.tmp_path(hint)
    }

    /// Where the blob named `d` lives: `objects/ab/cdef...`.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs.blob_path(d)
    }

    /// Stores `bytes`; returns their digest. Idempotent: a blob already present is not rewritten.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        self.writable()?;
        let (d, size) = self.blobs.store_bytes(bytes)?;
        self.note_blob(&d, size)?;
        Ok(d)
    }

    /// Moves the file at `src` into the store (it is consumed). `src` should be on the store's
    /// filesystem, e.g. from [`Store::tmp_path`]; otherwise it is copied.
    pub fn put_file(&self, src: &Path) -> Result<Digest> {
        self.writable()?;
        let (d, size) = self.blobs.store_file(src)?;
        self.note_blob(&d, size)?;
        Ok(d)
    }

    /// Notes the sizes of blobs a worker stored through [`Blobs`] (which has no index), so
    /// later cache hits check them by size; fails with `MissingBlob` for one that is absent.
    pub fn note_blobs<'a>(&self, digests: impl IntoIterator<Item = &'a Digest>) -> Result<()> {
        for d in digests {
            let path = self.blob_path(d);
            match fs::metadata(&path) {
                Ok(m) if m.is_file() => self.note_blob(d, m.len())?,
                _ => {
                    return Err(CacheError::MissingBlob {
                        digest: d.clone(),
                        path,
                    });
                }
            }
        }
        Ok(())
    }

    /// Records digest -> size once the blob file is in place (the row is written last).
    fn note_blob(&self, d: &Digest, size: u64) -> Result<()> {
        let now = unix_now();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO blobs(digest, size, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(digest) DO UPDATE SET size = excluded.size",
                rusqlite::params![d.as_str(), size as i64, now],
            )?;
            Ok(())
        })
    }

    /// Size recorded by `put_*` for a blob, if any.
    pub(crate) fn recorded_size(&self, d: &Digest) -> Result<Option<u64>> {
        self.read(|tx| {
            let size: Option<i64> = tx
                .prepare_cached("SELECT size FROM blobs WHERE digest = ?1")?
                .query_row([d.as_str()], |r| r.get(0))
                .optional()?;
            Ok(size.map(|s| s as u64))
        })
    }

    /// Reads a whole blob and checks it still hashes to its name.
    pub fn read_bytes(&self, d: &Digest) -> Result<Vec<u8>> {
        self.blobs.read_bytes(d)
    }

    /// Is the blob usable? `rehash = false` compares the file size with the size recorded at
    /// `put_*` time (cheap, catches truncation); `rehash = true` hashes the whole file.
    /// A blob with no recorded size is rehashed.
    pub fn check_blob(&self, d: &Digest, rehash: bool) -> BlobState {
        let path = self.blob_path(d);
        let len = match fs::metadata(&path) {
            Ok(m) if m.is_file() => m.len(),
            _ => return BlobState::Missing,
        };
        let recorded = self.recorded_size(d).ok().flatten();
        if !rehash && let Some(size) = recorded {
            return if size == len {
                BlobState::Ok
            } else {
                BlobState::Corrupt
            };
        }
        match hash_file(&path) {
            Ok((actual, size)) if &actual == d => {
                if recorded != Some(size) {
                    // Best effort: the answer is right even if the size cannot be recorded.
                    let _ = self.note_blob(d, size);
                }
                BlobState::Ok
            }
            Ok(_) => BlobState::Corrupt,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BlobState::Missing,
            Err(_) => BlobState::Corrupt,
        }
    }
}

/// Outcome of [`Store::check_blob`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobState {
    /// Present and (as far as checked) intact.
    Ok,
    /// No file at the blob path.
    Missing,
    /// Present but the size or content does not match.
    Corrupt,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{flip_bit, make_writable, step, store};

    #[test]
    fn open_creates_the_layout_and_a_versioned_wal_index() {
        let (_dir, store) = store();
        for sub in ["objects", "records", "tmp", "locks", "quarantine"] {
            assert!(store.root().join(sub).is_dir(), "{sub}");
        }
        assert!(store.root().is_absolute());
        assert_eq!(store.index_path(), store.root().join("index.sqlite"));
        let conn = Connection::open(store.index_path()).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // Re-opening an existing store keeps it.
        let d = store.put_bytes(b"kept").unwrap();
        drop(store);
        let again = Store::open(_dir.path().join("store")).unwrap();
        assert_eq!(again.read_bytes(&d).unwrap(), b"kept");
    }

    #[test]
    fn a_read_only_view_creates_nothing_and_refuses_writes() {
        let (_dir, store) = store();
        let rec = step(&store, "k", "a", b"kept");

        let missing = _dir.path().join("none");
        let view = Store::open_read_only(&missing).unwrap();
        assert!(view.holds_nothing_yet());
        assert!(view.lookup("k").unwrap().is_none());
        for refused in [view.record_step(&rec), view.put_bytes(b"x").map(drop)] {
            assert!(matches!(refused, Err(CacheError::ReadOnlyStore { .. })));
        }
        assert!(!missing.exists(), "a read-only view made a folder");

        store.record_step(&rec).unwrap();
        drop(store);
        let root = _dir.path().join("store");
        let index_before = fs::read(root.join("index.sqlite")).unwrap();
        let view = Store::open_read_only(&root).unwrap();
        assert!(!view.holds_nothing_yet());
        assert_eq!(view.lookup("k").unwrap().unwrap().step_id, "a");
        assert!(matches!(
            view.gc(&crate::GcOptions {
                keep_runs: 1,
                max_size: None,
                dry_run: false,
            }),
            Err(CacheError::ReadOnlyStore { .. })
        ));
        drop(view);
        assert_eq!(fs::read(root.join("index.sqlite")).unwrap(), index_before);

        // Records without an index: a reader does not rebuild, it says who can.
        fs::remove_file(root.join("index.sqlite")).unwrap();
        assert!(matches!(
            Store::open_read_only(&root),
            Err(CacheError::IndexNeedsRepair { .. })
        ));
    }

    #[test]
    fn put_bytes_round_trips_and_lays_out_objects() {
        let (_dir, store) = store();
        let d = store.put_bytes(b"hello raster").unwrap();
        assert_eq!(d, Digest::of_bytes(b"hello raster"));
        let path = store.blob_path(&d);
        assert_eq!(
            path,
            store
                .root()
                .join("objects")
                .join(&d.hex()[..2])
                .join(&d.hex()[2..])
        );
        assert_eq!(fs::read(&path).unwrap(), b"hello raster");
        assert_eq!(store.read_bytes(&d).unwrap(), b"hello raster");
        assert!(fs::metadata(&path).unwrap().permissions().readonly());
        let empty = store.put_bytes(b"").unwrap();
        assert_eq!(store.read_bytes(&empty).unwrap(), b"");
    }

    #[test]
    fn identical_content_is_stored_once() {
        let (_dir, store) = store();
        let a = store.put_bytes(b"same bytes").unwrap();
        let b = store.put_bytes(b"same bytes").unwrap();
        let c = store.put_bytes(b"other bytes").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let files: usize = fs::read_dir(store.root().join("objects"))
            .unwrap()
            .map(|d| fs::read_dir(d.unwrap().path()).unwrap().count())
            .sum();
        assert_eq!(files, 2);
        assert_eq!(
            store.disk_usage().unwrap(),
            (b"same bytes".len() + b"other bytes".len()) as u64
        );
        // Nothing is left behind in tmp/.
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn read_bytes_of_a_bit_flipped_blob_is_corrupt() {
        let (_dir, store) = store();
        let d = store.put_bytes(b"pristine content").unwrap();
        flip_bit(&store.blob_path(&d));
        match store.read_bytes(&d).unwrap_err() {
            CacheError::CorruptBlob {
                digest,
                path,
                actual,
            } => {
                assert_eq!(digest, d);
                assert_eq!(path, store.blob_path(&d));
                assert_ne!(actual, d);
            }
            other => panic!("expected CorruptBlob, got {other}"),
        }
        let gone = Digest::of_bytes(b"never stored");
        assert!(matches!(
            store.read_bytes(&gone).unwrap_err(),
            CacheError::MissingBlob { .. }
        ));
    }

    #[test]
    fn put_heals_a_truncated_blob() {
        let (_dir, store) = store();
        let d = store.put_bytes(b"0123456789").unwrap();
        let path = store.blob_path(&d);
        make_writable(&path);
        fs::write(&path, b"01234").unwrap();
        assert_eq!(store.check_blob(&d, false), BlobState::Corrupt);
        assert_eq!(store.put_bytes(b"0123456789").unwrap(), d);
        assert_eq!(store.check_blob(&d, true), BlobState::Ok);
    }

    #[test]
    fn check_blob_reports_missing_and_corrupt() {
        let (_dir, store) = store();
        let d = store.put_bytes(b"some bytes here").unwrap();
        let path = store.blob_path(&d);
        assert_eq!(store.check_blob(&d, false), BlobState::Ok);
        assert_eq!(store.check_blob(&d, true), BlobState::Ok);

        // Same size, different bytes: only a rehash notices.
        flip_bit(&path);
        assert_eq!(store.check_blob(&d, false), BlobState::Ok);
        assert_eq!(store.check_blob(&d, true), BlobState::Corrupt);

        // Size change: the cheap check notices.
        fs::write(&path, b"some bytes here, and more").unwrap();
        assert_eq!(store.check_blob(&d, false), BlobState::Corrupt);

        fs::remove_file(&path).unwrap();
        assert_eq!(store.check_blob(&d, false), BlobState::Missing);
        assert_eq!(store.check_blob(&d, true), BlobState::Missing);
    }

    #[test]
    fn check_blob_without_recorded_size_rehashes() {
        let (_dir, store) = store();
        let d = store.put_bytes(b"abc").unwrap();
        store
            .write(|tx| Ok(tx.execute("DELETE FROM blobs", [])?))
            .unwrap();
        assert_eq!(store.recorded_size(&d).unwrap(), None);
        assert_eq!(store.check_blob(&d, false), BlobState::Ok);
        assert_eq!(store.recorded_size(&d).unwrap(), Some(3));
        flip_bit(&store.blob_path(&d));
        store
            .write(|tx| Ok(tx.execute("DELETE FROM blobs", [])?))
            .unwrap();
        assert_eq!(store.check_blob(&d, false), BlobState::Corrupt);
    }

    #[test]
    fn tmp_paths_are_unique_keep_the_hint_suffix_and_are_not_created() {
        let (_dir, store) = store();
        let a = store.tmp_path(".tif");
        let b = store.tmp_path(".tif");
        assert_ne!(a, b);
        assert!(a.to_string_lossy().ends_with(".tif"));
        assert_eq!(a.parent().unwrap(), store.root().join("tmp"));
        assert!(!a.exists());
        let odd = store.tmp_path("a b/../c.gpkg");
        assert_eq!(odd.parent().unwrap(), store.root().join("tmp"));
        assert!(odd.to_string_lossy().ends_with("c.gpkg"));
    }

    #[test]
    fn put_file_moves_the_file_in_and_deduplicates() {
        let (_dir, store) = store();
        let src = store.tmp_path(".tif");
        fs::write(&src, vec![7u8; 3 << 20]).unwrap();
        let d = store.put_file(&src).unwrap();
        assert_eq!(d, Digest::of_bytes(&vec![7u8; 3 << 20]));
        assert!(!src.exists(), "src is consumed");
        assert_eq!(store.read_bytes(&d).unwrap().len(), 3 << 20);
        assert_eq!(store.recorded_size(&d).unwrap(), Some(3 << 20));

        let again = store.tmp_path(".tif");
        fs::write(&again, vec![7u8; 3 << 20]).unwrap();
        assert_eq!(store.put_file(&again).unwrap(), d);
        assert!(!again.exists(), "a duplicate src is deleted");
        assert_eq!(store.check_blob(&d, true), BlobState::Ok);

        let missing = store.tmp_path("nothing");
        assert!(matches!(
            store.put_file(&missing).unwrap_err(),
            CacheError::Io { path, .. } if path == missing
        ));
    }

    #[test]
    fn an_index_from_a_newer_lulc_is_refused() {
        let (dir, store) = store();
        let index = store.index_path().to_owned();
        drop(store);
        Connection::open(&index)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        match Store::open(dir.path().join("store")).unwrap_err() {
            CacheError::SchemaTooNew {
                path,
                found,
                supported,
            } => {
                assert_eq!(path, index);
                assert_eq!((found, supported), (99, SCHEMA_VERSION));
            }
            other => panic!("expected SchemaTooNew, got {other}"),
        }
    }

    #[test]
    fn threads_and_a_second_handle_write_concurrently_without_errors() {
        use std::sync::Arc;
        let (dir, store) = store();
        let store = Arc::new(store);
        let mut workers = Vec::new();
        for t in 0..4 {
            let store = store.clone();
            workers.push(std::thread::spawn(move || {
                for i in 0..50 {
                    let key = format!("t{t}-k{i}");
                    let rec = step(&store, &key, &format!("s[t={t},i={i}]"), key.as_bytes());
                    store.record_step(&rec)?;
                    let got = store.lookup(&key)?.expect("just recorded");
                    assert_eq!(got.outputs, rec.outputs);
                    store.touch_steps(&[key.as_str()])?;
                }
                Ok::<_, CacheError>(())
            }));
        }
        let root = dir.path().join("store");
        let other = std::thread::spawn(move || {
            let second = Store::open(&root)?;
            let run = second.begin_run(&crate::RunInfo {
                scope: "demo".into(),
                spec_path: "demo.yaml".into(),
                spec_digest: "d".into(),
                params: serde_json::json!({}),
                argv: vec![],
            })?;
            for i in 0..50 {
                let key = format!("second-k{i}");
                let rec = step(&second, &key, &format!("s[i={i}]"), key.as_bytes());
                second.record_step(&rec)?;
                assert!(second.lookup(&key)?.is_some());
                second.record_run_step(
                    run,
                    &crate::RunStep {
                        step_id: rec.step_id.clone(),
                        key: Some(key),
                        status: "ran".into(),
                        reason: "new".into(),
                        duration_s: 0.0,
                        outputs: rec.outputs.clone(),
                        metrics: serde_json::Value::Null,
                    },
                )?;
            }
            second.finish_run(run, "ok")?;
            Ok::<_, CacheError>(())
        });
        for w in workers {
            w.join().unwrap().unwrap();
        }
        other.join().unwrap().unwrap();
        for t in 0..4 {
            for i in 0..50 {
                assert!(store.lookup(&format!("t{t}-k{i}")).unwrap().is_some());
            }
        }
        assert!(store.lookup("second-k49").unwrap().is_some());
        assert_eq!(store.runs(10).unwrap()[0].status, "ok");
    }
}
