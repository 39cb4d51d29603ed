//! Errors of the cache crate.
//!
//! Every variant that concerns a file names it, so a report is actionable without a debugger.
//! Codes are stable: the CLI and tests match on them.

use std::path::PathBuf;

use crate::Digest;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CacheError {
    /// A filesystem operation failed.
    #[error("could not {action} `{}`: {source}", path.display())]
    #[diagnostic(code(cache::io))]
    Io {
        action: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A folder that holds no store where one was expected, or a non-empty folder (or a
    /// file) given as a new store.
    #[error("`{}` is not a lulc store: {why}", path.display())]
    #[diagnostic(
        code(cache::not_a_store),
        help(
            "give the store folder that `lulc run` used (`--store` or LULC_STORE); a new store \
             is made only in a new or empty folder"
        )
    )]
    NotAStore { path: PathBuf, why: String },

    /// The store's marker file says a newer lulc made it.
    #[error(
        "store `{}` has layout format {found}, this lulc understands up to {supported}",
        path.display()
    )]
    #[diagnostic(
        code(cache::store_too_new),
        help("upgrade lulc, or point `--store` at another directory")
    )]
    StoreFormatTooNew {
        path: PathBuf,
        found: u64,
        supported: u64,
    },

    /// A command that only reads the store was asked to change it (a bug of lulc's, or a
    /// maintenance command on a store opened for reading).
    #[error("store `{}` was opened for reading only; this would change it", path.display())]
    #[diagnostic(
        code(cache::read_only),
        help(
            "run a command that writes (`lulc run`, `lulc gc`, `lulc verify`) on a store you may write to"
        )
    )]
    ReadOnlyStore { path: PathBuf },

    /// The index of a store opened for reading is missing or unreadable while step records
    /// exist: only a writer may rebuild it.
    #[error("the index of store `{}` needs repair before it can be read: {problem}", path.display())]
    #[diagnostic(
        code(cache::index_needs_repair),
        help("`lulc verify --store {}` rebuilds it from the step records (it needs write access)", path.display())
    )]
    IndexNeedsRepair { path: PathBuf, problem: String },

    /// An SQLite statement on the index failed.
    #[error("cache index `{}` failed: {source}", path.display())]
    #[diagnostic(code(cache::sqlite))]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// `index.sqlite` exists but is not a (valid) SQLite database.
    #[error("cache index `{}` is corrupt or not an sqlite database", path.display())]
    #[diagnostic(
        code(cache::corrupt_index),
        help(
            "run lulc again: opening the store moves the bad index to quarantine/ and \
             rebuilds it from the step records under records/ (run history is lost)"
        )
    )]
    CorruptIndex {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// The index is missing or corrupt and must be rebuilt from `records/`, but other handles
    /// kept the store open for longer than `open` waits.
    #[error("cache index `{}` is {problem} and must be rebuilt, but another lulc process has the store open", path.display())]
    #[diagnostic(
        code(cache::index_rebuild_busy),
        help(
            "wait for the running `lulc` commands to finish, then run again: the index is rebuilt from records/"
        )
    )]
    IndexRebuildBusy { path: PathBuf, problem: String },

    /// The index was written by a newer version of lulc.
    #[error(
        "cache index `{}` has schema version {found}, this lulc understands up to {supported}",
        path.display()
    )]
    #[diagnostic(
        code(cache::schema_too_new),
        help("upgrade lulc, or point `--store` at another directory")
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// A blob's content does not hash to its name.
    #[error("blob `{}` is corrupt: expected {digest}, its content hashes to {actual}", path.display())]
    #[diagnostic(
        code(cache::corrupt_blob),
        help("run `lulc verify` to quarantine it; the steps that produced it will recompute")
    )]
    CorruptBlob {
        digest: Digest,
        path: PathBuf,
        actual: Digest,
    },

    /// A blob that should exist is not on disk.
    #[error("blob {digest} is missing: no file at `{}`", path.display())]
    #[diagnostic(
        code(cache::missing_blob),
        help("run `lulc verify` to forget the steps that referenced it; they will recompute")
    )]
    MissingBlob { digest: Digest, path: PathBuf },

    /// A string is not a `blake3:<64 lowercase hex>` digest.
    #[error("invalid digest `{value}`: {reason}")]
    #[diagnostic(code(cache::invalid_digest))]
    InvalidDigest { value: String, reason: &'static str },

    /// A JSON column of the index could not be decoded.
    #[error("cache index `{}` holds an unreadable {what}: {source}", path.display())]
    #[diagnostic(code(cache::bad_record))]
    BadRecord {
        path: PathBuf,
        what: String,
        #[source]
        source: serde_json::Error,
    },

    /// `record_run_step` / `finish_run` on a run id that does not exist.
    #[error("run {run} does not exist in cache index `{}`", path.display())]
    #[diagnostic(code(cache::unknown_run))]
    UnknownRun { path: PathBuf, run: i64 },

    /// `gc` needs the store to itself and another handle has it open.
    #[error("store `{}` is in use by another lulc process (or another open handle); gc needs it to itself", path.display())]
    #[diagnostic(
        code(cache::busy),
        help("wait for the running `lulc` commands to finish, then run gc again")
    )]
    StoreBusy { path: PathBuf },
}

/// Result with [`CacheError`] as the default error.
pub type Result<T, E = CacheError> = std::result::Result<T, E>;

/// Shorthand for building [`CacheError::Io`].
pub(crate) fn io_err(
    action: impl Into<String>,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> CacheError {
    let action = action.into();
    let path = path.into();
    move |source| CacheError::Io {
        action,
        path,
        source,
    }
}
