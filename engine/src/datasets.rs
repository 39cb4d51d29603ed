//! Datasets outside the store, as a spec names them: their content digest for step keys
//! ([`file_digest`]) and the `*`/`?` patterns a spec may use for them ([`glob`]).
//!
//! What a named path covers (every byte GDAL or the node may read for it):
//! - a file, with the sidecars GDAL reads with it: a shapefile's `.shx`, `.dbf`, `.prj` and
//!   `.cpg` (in any letter case: `ROADS.SHP` with `ROADS.DBF`), and an SQLite database's
//!   (GeoPackage's) `-wal` file, where edits in WAL mode wait until a checkpoint;
//! - a folder (a shapefile folder, an Esri File Geodatabase `.gdb`, a scene folder): every file
//!   under it, by relative path, size and bytes; lock files (`*.lock`) and SQLite's shared-memory
//!   index (`*-shm`) are left out, as they change when a program merely opens the dataset;
//!   symlinked folders inside are not followed (their target path is hashed);
//! - a pattern (`archive/*/manifest.json`): the sorted matches, each as above.
//!
//! The digest is conservative: bytes that GDAL would not read (stale frames in a `-wal` after a
//! checkpoint) may re-run a step that did not need it; an edit is never missed.

use std::path::{Path, PathBuf};

/// The digest of what `path` names (see the module docs): blake3 hex, or `missing` when nothing
/// can be read there (the node then reports the error when it runs).
pub fn file_digest(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    let ok = if is_pattern(path) {
        // Matches by their path below the pattern's fixed prefix: the key does not depend
        // on where the project folder is.
        let prefix: PathBuf = path
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?']))
            .collect();
        let found = glob(path);
        !found.is_empty()
            && found.iter().all(|m| {
                h.update(b"match");
                let rel = m.strip_prefix(&prefix).unwrap_or(m);
                h.update(rel.as_os_str().as_encoded_bytes());
                dataset(m, &mut h)
            })
    } else {
        dataset(path, &mut h)
    };
    if ok {
        h.finalize().to_hex().to_string()
    } else {
        "missing".to_string()
    }
}

/// Does the path hold a `*` or `?` pattern?
pub fn is_pattern(path: &Path) -> bool {
    path.to_string_lossy().contains(['*', '?'])
}

/// Hash one file (with sidecars) or folder into `h`; false if it cannot be read.
fn dataset(path: &Path, h: &mut blake3::Hasher) -> bool {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            h.update(b"folder");
            tree(path, Path::new(""), h)
        }
        Ok(m) if m.is_file() => {
            h.update(b"file");
            part(path, h) && sidecars(path).iter().all(|s| part(s, h))
        }
        // A device or a FIFO is never read; nor is what cannot be inspected.
        _ => false,
    }
}

/// Length-prefixed bytes of one file, so bytes moving between parts change the digest.
fn part(path: &Path, h: &mut blake3::Hasher) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let n = f.metadata().map(|m| m.len()).unwrap_or(0);
    h.update(&n.to_le_bytes());
    std::io::copy(&mut f, h).is_ok()
}

/// The sidecars of `path` that exist, in a fixed order, each preceded in the digest by its
/// extension (lower case) so that a sidecar that appears or goes changes the digest.
fn sidecars(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return out;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let name = name.to_string_lossy();
    let wal = dir.join(format!("{name}-wal"));
    if wal.is_file() {
        out.push(wal);
    }
    let is_shp = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("shp"));
    if let (true, Some(stem)) = (is_shp, path.file_stem()) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        let mut found: Vec<(usize, String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let p = e.path();
                let ext = p.extension()?.to_string_lossy().to_ascii_lowercase();
                let rank = ["shx", "dbf", "prj", "cpg"]
                    .iter()
                    .position(|x| *x == ext)?;
                (p.file_stem()? == stem && p.is_file()).then_some((rank, ext, p))
            })
            .collect();
        found.sort();
        out.extend(found.into_iter().map(|(_, _, p)| p));
    }
    out
}

/// Every file under `dir` (sorted by name, recursively), as relative path + bytes.
fn tree(dir: &Path, rel: &Path, h: &mut blake3::Hasher) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut entries: Vec<std::fs::DirEntry> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let text = name.to_string_lossy();
        if text.ends_with(".lock") || text.ends_with("-shm") {
            continue;
        }
        let path = e.path();
        let rel = rel.join(&name);
        h.update(b"\0entry");
        h.update(rel.as_os_str().as_encoded_bytes());
        let Ok(ty) = e.file_type() else {
            return false;
        };
        if ty.is_symlink() && path.is_dir() {
            h.update(b"link");
            let target = std::fs::read_link(&path).unwrap_or_default();
            h.update(target.as_os_str().as_encoded_bytes());
        } else if path.is_dir() {
            if !tree(&path, &rel, h) {
                return false;
            }
        } else if path.is_file() && !part(&path, h) {
            return false;
        }
    }
    true
}

/// The existing paths matching `pattern`, sorted: `*` (any run of characters) and `?` (one
/// character) within a path component; names starting with `.` are not matched by a pattern.
pub fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut current = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        if part.contains(['*', '?']) {
            for dir in &current {
                let read_from = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir.as_path()
                };
                let Ok(entries) = std::fs::read_dir(read_from) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') && wildcard(&part, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
            }
        } else {
            next = current.iter().map(|d| d.join(comp.as_os_str())).collect();
        }
        current = next;
    }
    current.retain(|p| p.exists());
    current
}

/// `*` matches any run of characters, `?` one character.
pub fn wildcard(pattern: &str, name: &str) -> bool {
    fn rec(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| rec(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && rec(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && rec(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    rec(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_digest_follows_contents() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.csv");
        assert_eq!(file_digest(&f), "missing");
        std::fs::write(&f, "a,b\n1,2\n").unwrap();
        let one = file_digest(&f);
        std::fs::write(&f, "a,b\n1,3\n").unwrap();
        assert_ne!(file_digest(&f), one);
        std::fs::write(&f, "a,b\n1,2\n").unwrap();
        assert_eq!(file_digest(&f), one);
    }

    #[test]
    fn shapefile_sidecars_count_in_any_letter_case() {
        let dir = tempfile::tempdir().unwrap();
        for (shp, dbf) in [("roads.shp", "roads.dbf"), ("ROADS2.SHP", "ROADS2.DBF")] {
            let shp = dir.path().join(shp);
            std::fs::write(&shp, "geometry").unwrap();
            std::fs::write(dir.path().join(dbf), "attributes").unwrap();
            let before = file_digest(&shp);
            std::fs::write(dir.path().join(dbf), "other attributes").unwrap();
            assert_ne!(file_digest(&shp), before, "{dbf} is part of the shapefile");
            let before = file_digest(&shp);
            std::fs::write(shp.with_extension("prj"), "GEOGCS[]").unwrap();
            assert_ne!(file_digest(&shp), before, "a .prj that appears counts");
        }
    }

    #[test]
    fn a_geopackage_counts_with_its_write_ahead_log() {
        let dir = tempfile::tempdir().unwrap();
        let gpkg = dir.path().join("points.gpkg");
        std::fs::write(&gpkg, "database").unwrap();
        let before = file_digest(&gpkg);
        std::fs::write(dir.path().join("points.gpkg-wal"), "412 more points").unwrap();
        let with_wal = file_digest(&gpkg);
        assert_ne!(with_wal, before, "edits waiting in the -wal file count");
        std::fs::write(dir.path().join("points.gpkg-shm"), "index").unwrap();
        assert_eq!(file_digest(&gpkg), with_wal, "the -shm file is no content");
    }

    #[test]
    fn a_folder_dataset_is_every_file_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let gdb = dir.path().join("roads.gdb");
        std::fs::create_dir_all(gdb.join("sub")).unwrap();
        std::fs::write(gdb.join("a00000001.gdbtable"), "table").unwrap();
        let one = file_digest(&gdb);
        assert_ne!(one, "missing");
        std::fs::write(gdb.join("a00000001.gdbtable"), "edited").unwrap();
        let two = file_digest(&gdb);
        assert_ne!(two, one, "an edit inside the folder counts");
        std::fs::write(gdb.join("sub/new.txt"), "x").unwrap();
        let three = file_digest(&gdb);
        assert_ne!(three, two, "a new file in a subfolder counts");
        std::fs::write(gdb.join("a00000001.sr.lock"), "open").unwrap();
        assert_eq!(file_digest(&gdb), three, "lock files are no content");
        std::fs::rename(gdb.join("sub/new.txt"), gdb.join("new.txt")).unwrap();
        assert_ne!(file_digest(&gdb), three, "a moved file counts");
    }

    #[test]
    fn a_pattern_is_its_sorted_matches() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["a", "b"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
            std::fs::write(dir.path().join(d).join("manifest.json"), "[]").unwrap();
        }
        let pattern = dir.path().join("*/manifest.json");
        let one = file_digest(&pattern);
        assert_ne!(one, "missing");
        std::fs::write(dir.path().join("b/manifest.json"), "[1]").unwrap();
        assert_ne!(file_digest(&pattern), one, "an edited match counts");
        assert_eq!(file_digest(&dir.path().join("*/none.json")), "missing");
        assert!(wildcard("S2?_*.tif", "S2A_2020.tif") && !wildcard("*.csv", "a.json"));
    }
}
