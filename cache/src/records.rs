//! Durable copies of step records outside SQLite: `records/ab/<key>.json`.
//!
//! `record_step` writes one file per step key (atomically: tmp file, fsync, rename, fsync of the
//! directory) after the blobs and before the SQLite row. They are never read while the index is
//! healthy; they are what `Store::open` rebuilds the index from when `index.sqlite` is missing
//! or corrupt (see `rebuild.rs`). Every path that forgets a step row (`forget_step`, `verify`,
//! `quarantine`, `gc`) removes the file after the row; `gc` also collects files left without a
//! row (a kill between the two), and `verify` writes back the file of a row that has none.
//!
//! The file is canonical JSON (sorted keys) of the record plus a format number and the
//! microsecond stamp taken when it was recorded (orders records written in the same second).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::io_err;
use crate::maintenance::read_dir_or_empty;
use crate::store::Store;
use crate::{Digest, Result, StepRecord, canonical_json};

/// Version of the record file layout (`format` field).
pub(crate) const RECORD_FORMAT: u32 = 1;

/// What a record file holds. `duration_s` is optional because JSON has no NaN (a step row
/// whose duration is NULL reads back as NaN).
#[derive(Serialize, Deserialize)]
struct RecordFile {
    format: u32,
    stamp: i64,
    key: String,
    scope: String,
    step_id: String,
    kind: String,
    material: serde_json::Value,
    outputs: BTreeMap<String, Digest>,
    blobs: Vec<Digest>,
    metrics: serde_json::Value,
    duration_s: Option<f64>,
    created_at: i64,
}

/// Directory (two characters) and file name of the record of `key`: the key itself when it is a
/// plain token (step keys are hex), otherwise a hash of it, so any string is a safe name.
fn record_location(key: &str) -> (String, String) {
    // Two characters at least: the first two name the directory.
    if key.len() >= 2 && crate::claim::is_plain_key(key) {
        (key[..2].to_owned(), format!("{key}.json"))
    } else {
        let h = Digest::of_bytes(key.as_bytes());
        (h.hex()[..2].to_owned(), format!("h-{}.json", h.hex()))
    }
}

/// The bytes of the record file of `rec` (`created_at` already filled in).
pub(crate) fn encode_record(rec: &StepRecord, stamp: i64) -> Vec<u8> {
    let file = RecordFile {
        format: RECORD_FORMAT,
        stamp,
        key: rec.key.clone(),
        scope: rec.scope.clone(),
        step_id: rec.step_id.clone(),
        kind: rec.kind.clone(),
        material: rec.material.clone(),
        outputs: rec.outputs.clone(),
        blobs: rec.blobs.clone(),
        metrics: rec.metrics.clone(),
        duration_s: rec.duration_s.is_finite().then_some(rec.duration_s),
        created_at: rec.created_at,
    };
    // Our types serialise to JSON infallibly (string keys, plain data).
    let value = serde_json::to_value(&file).unwrap_or(serde_json::Value::Null);
    let mut text = canonical_json(&value);
    text.push('\n');
    text.into_bytes()
}

/// Parses a record file; returns the record and its stamp, or why it is unusable.
pub(crate) fn decode_record(bytes: &[u8]) -> std::result::Result<(StepRecord, i64), String> {
    let file: RecordFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.format != RECORD_FORMAT {
        return Err(format!(
            "record format {} (this lulc reads {RECORD_FORMAT})",
            file.format
        ));
    }
    Ok((
        StepRecord {
            key: file.key,
            scope: file.scope,
            step_id: file.step_id,
            kind: file.kind,
            material: file.material,
            outputs: file.outputs,
            blobs: file.blobs,
            metrics: file.metrics,
            duration_s: file.duration_s.unwrap_or(f64::NAN),
            created_at: file.created_at,
        },
        file.stamp,
    ))
}

/// Every `*.json` file under `records/<2 chars>/`, sorted. Other files are left alone.
pub(crate) fn walk_records(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let dir = root.join("records");
    for sub in read_dir_or_empty(&dir)? {
        let sub_path = sub.path();
        if !sub_path.is_dir() {
            continue;
        }
        for entry in read_dir_or_empty(&sub_path)? {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") && path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Is there at least one record file? (Stops at the first one found.)
pub(crate) fn any_records(root: &Path) -> Result<bool> {
    for sub in read_dir_or_empty(&root.join("records"))? {
        let sub_path = sub.path();
        if !sub_path.is_dir() {
            continue;
        }
        for entry in read_dir_or_empty(&sub_path)? {
            if entry.path().extension().is_some_and(|e| e == "json") {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

impl crate::Blobs {
    /// Where the durable copy of the record of step `key` lives: `records/ab/<key>.json`
    /// (`records/ab/h-<hash>.json` for a key that is not a plain token).
    pub fn record_path(&self, key: &str) -> PathBuf {
        let (dir, name) = record_location(key);
        self.root().join("records").join(dir).join(name)
    }
}

impl Store {
    /// [`crate::Blobs::record_path`].
    pub fn record_path(&self, key: &str) -> PathBuf {
        self.blobs.record_path(key)
    }

    /// Writes the record file of `rec` atomically (tmp file, fsync, rename, fsync directory).
    pub(crate) fn write_record(&self, rec: &StepRecord, stamp: i64) -> Result<()> {
        self.blobs.write_record(rec, stamp)
    }

    /// Removes the record files of `keys` (absent ones are fine). Call after the rows are gone.
    pub(crate) fn remove_records<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> Result<()> {
        for key in keys {
            let path = self.record_path(key);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &path)(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{step, store};

    #[test]
    fn record_files_round_trip_and_are_canonical() {
        let (_dir, store) = store();
        let mut rec = step(&store, "k1", "s", b"out");
        rec.created_at = 17;
        let bytes = encode_record(&rec, 42);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"blobs":["#), "{text}");
        assert!(
            text.contains(r#""format":1"#) && text.ends_with("}\n"),
            "{text}"
        );
        assert_eq!(decode_record(&bytes).unwrap(), (rec.clone(), 42));

        // NaN durations survive as NaN (JSON null).
        rec.duration_s = f64::NAN;
        let (back, _) = decode_record(&encode_record(&rec, 1)).unwrap();
        assert!(back.duration_s.is_nan());

        assert!(decode_record(b"{not json").is_err());
        let newer = text.replace(r#""format":1"#, r#""format":9"#);
        assert!(
            decode_record(newer.as_bytes())
                .unwrap_err()
                .contains("format 9")
        );
    }

    #[test]
    fn record_paths_fan_out_and_hash_odd_keys() {
        let (_dir, store) = store();
        let hex = "ab".repeat(32);
        assert_eq!(
            store.record_path(&hex),
            store.root().join("records/ab").join(format!("{hex}.json"))
        );
        for odd in ["k", "a/b", "../x", ".hidden", &"x".repeat(200)] {
            let path = store.record_path(odd);
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with("h-") && name.ends_with(".json"),
                "{odd}: {name}"
            );
            assert_eq!(
                path.parent().unwrap().parent().unwrap(),
                store.root().join("records")
            );
        }
        assert_ne!(store.record_path("a/b"), store.record_path("a_b"));
    }
}
