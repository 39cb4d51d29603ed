//! Exclusive claims on step keys, so that two `lulc run` processes (or two threads) never
//! compute the same step at the same time.
//!
//! A claim is an OS advisory lock (`File::lock`, i.e. `flock` on Unix) on `locks/<key>.lock`.
//! The kernel drops it when the process dies, so a `kill -9` never leaves a stale claim; the
//! file itself may stay behind and is removed by `gc` when nobody holds it. Because gc may
//! unlink a lock file, a claimer re-checks after locking that the path still names the file it
//! locked, and starts over if not.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::io_err;
use crate::store::{Store, open_lock_file};
use crate::{Digest, Result};

/// A held claim on a step key; released when dropped.
#[derive(Debug)]
pub struct Claim {
    file: File,
    path: PathBuf,
    key: String,
}

impl Claim {
    /// The step key this claim is for.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock anyway; unlocking first is just explicit.
        let _ = self.file.unlock();
    }
}

/// Can `key` be a file name as it is? Non-empty, at most 128 characters of `[A-Za-z0-9_.-]`,
/// not starting with a dot (step keys are hex). Lock and record files hash any other key.
pub(crate) fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && !key.starts_with('.')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// File name of the lock for `key`: the key itself when it is a plain token (step keys are
/// hex), otherwise a hash of it, so any string is safe. Never starts with a dot.
pub(crate) fn lock_file_name(key: &str) -> String {
    if is_plain_key(key) {
        format!("{key}.lock")
    } else {
        format!("h-{}.lock", Digest::of_bytes(key.as_bytes()).hex())
    }
}

/// Does `path` still name the file behind `file`? (gc may have unlinked it meanwhile.)
fn still_linked(file: &File, path: &Path) -> Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let held = file.metadata().map_err(io_err("stat", path))?;
        match fs::metadata(path) {
            Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("stat", path)(e)),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(path.exists())
    }
}

impl Store {
    fn lock_path(&self, key: &str) -> PathBuf {
        self.root.join("locks").join(lock_file_name(key))
    }

    /// Claims `key`, waiting as long as another thread or process holds it.
    pub fn claim(&self, key: &str) -> Result<Claim> {
        self.writable()?;
        let path = self.lock_path(key);
        loop {
            let file = open_lock_file(&path)?;
            file.lock().map_err(io_err("lock", &path))?;
            if still_linked(&file, &path)? {
                return Ok(Claim {
                    file,
                    path,
                    key: key.to_owned(),
                });
            }
        }
    }

    /// Claims `key` if nobody holds it; `None` if someone does.
    pub fn try_claim(&self, key: &str) -> Result<Option<Claim>> {
        self.writable()?;
        let path = self.lock_path(key);
        loop {
            let file = open_lock_file(&path)?;
            match file.try_lock() {
                Ok(()) => {
                    if still_linked(&file, &path)? {
                        return Ok(Some(Claim {
                            file,
                            path,
                            key: key.to_owned(),
                        }));
                    }
                }
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(io_err("lock", &path)(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_claim_is_exclusive_until_drop_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path()).unwrap();
        let b = Store::open(dir.path()).unwrap();
        let key = "0123abcd";
        let first = a
            .try_claim(key)
            .unwrap()
            .expect("free key must be claimable");
        assert_eq!(first.key(), key);
        assert!(first.path().ends_with("locks/0123abcd.lock"));
        assert!(a.try_claim(key).unwrap().is_none(), "same handle, held key");
        assert!(
            b.try_claim(key).unwrap().is_none(),
            "other handle, held key"
        );
        assert!(
            b.try_claim("other").unwrap().is_some(),
            "other keys are independent"
        );
        drop(first);
        assert!(b.try_claim(key).unwrap().is_some());
    }

    #[test]
    fn claim_blocks_until_the_holder_releases() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let held = store.claim("k").unwrap();
        let released = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (store, released) = (store.clone(), released.clone());
            std::thread::spawn(move || {
                let _c = store.claim("k").unwrap();
                released.load(Ordering::SeqCst)
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        released.store(true, Ordering::SeqCst);
        drop(held);
        assert!(
            waiter.join().unwrap(),
            "second claim got the key while it was held"
        );
    }

    #[test]
    fn odd_keys_get_hashed_lock_names() {
        assert_eq!(lock_file_name("abc123"), "abc123.lock");
        for odd in ["", "../x", ".store", "a/b", &"x".repeat(300)] {
            let name = lock_file_name(odd);
            assert!(
                name.starts_with("h-") && !name.contains('/'),
                "{odd}: {name}"
            );
        }
    }
}
