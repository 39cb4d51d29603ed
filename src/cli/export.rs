//! `lulc export SPEC TARGET... --out DIR`: copy the up-to-date outputs of steps out of the store
//! under readable names, for QGIS and colleagues: `DIR/<node>/<partition>/<file>` (with a
//! `<port>/` level for steps of several outputs, e.g. `migrate`), e.g.
//! `maps/map/year=2020/map.tif` beside its `map.qml` (QGIS applies a `.qml` with the layer's
//! base name). A TARGET is a step id (`map[year=2020]`) or a node name (all its steps). Runs
//! nothing; steps without an up-to-date result are named and make the exit code 1. Maps of a
//! `tile` partition are also joined in GDAL VRTs for a quick look, one per CRS and per value
//! of the other dims: `map/tiles_year=2020_EPSG-32648.vrt` (overlaps show the tile whose name
//! sorts first, as `mosaic` decides).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lulc_cache::CacheError;
use lulc_engine::Plan;
use lulc_engine::exec::Status;
use lulc_nodes::kinds::infer::MAP_FILE as MAP_TIF;

use super::commands::{load, open_store_read, read_manifest, step_status};
use super::output;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, SpecArgs, StoreArgs};

/// Exported maps of `tile` partitions by (node, the other dims): their (tile, file).
type TileMaps = BTreeMap<(String, String), Vec<(Option<String>, PathBuf)>>;

/// Steps named by `targets` (step ids or node names), in plan order, or the unknown target.
fn select(plan: &Plan, targets: &[String]) -> Result<Vec<usize>, String> {
    let mut picked = vec![false; plan.steps.len()];
    for t in targets {
        if let Some(&i) = plan.by_id.get(t.as_str()) {
            picked[i] = true;
            continue;
        }
        let mut any = false;
        for (i, s) in plan.steps.iter().enumerate() {
            if s.node == *t {
                picked[i] = true;
                any = true;
            }
        }
        if !any {
            let names = plan
                .steps
                .iter()
                .map(|s| s.node.as_str())
                .chain(plan.steps.iter().map(|s| s.id.as_str()));
            let hint = lulc_engine::diag::closest(t, names)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            return Err(format!("no step or node `{t}`{hint}"));
        }
    }
    Ok((0..picked.len()).filter(|&i| picked[i]).collect())
}

/// `map[year=2020]` -> `map/year=2020`; `dsm` -> `dsm`. Separators and other characters a file
/// name cannot hold become `_`.
fn step_dir(id: &str) -> PathBuf {
    let clean = |s: &str| -> String {
        if s.is_empty() || s == "." || s == ".." {
            return "_".to_string();
        }
        s.chars()
            .map(|c| match c {
                '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' => '_',
                c => c,
            })
            .collect()
    };
    match id.split_once('[') {
        Some((node, rest)) => {
            Path::new(&clean(node)).join(clean(rest.strip_suffix(']').unwrap_or(rest)))
        }
        None => PathBuf::from(clean(id)),
    }
}

/// A single ordinary path component (no `/`, `..`, root or prefix).
fn plain_name(name: &str) -> bool {
    let mut c = Path::new(name).components();
    matches!(
        (c.next(), c.next()),
        (Some(std::path::Component::Normal(_)), None)
    )
}

pub fn export(spec: &SpecArgs, targets: &[String], out: &Path, store_args: &StoreArgs) -> i32 {
    let plan = tri!(load(spec));
    let steps = match select(&plan, targets) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e} in `{}`", plan.spec_path.display());
            return EXIT_USAGE;
        }
    };
    let store = tri!(open_store_read(store_args, Some(&spec.spec)));
    let outcomes = tri!(step_status(&plan, &store));
    let mut missing = Vec::new();
    let mut copied = 0usize;
    let mut tile_maps: TileMaps = BTreeMap::new();
    for i in steps {
        let step = &plan.steps[i];
        let o = &outcomes[i];
        if o.status != Status::Fresh {
            missing.push(output::status_line(&plan, o));
            continue;
        }
        let many_ports = o.outputs.len() > 1;
        for (port, d) in &o.outputs {
            let Some(m) = read_manifest(&store, d) else {
                eprintln!(
                    "error: manifest {d} of `{}` output `{port}` is unreadable; run `lulc verify`",
                    step.id
                );
                return EXIT_FAILED;
            };
            let mut dir = out.join(step_dir(&step.id));
            if many_ports {
                dir.push(port);
            }
            for (name, fd) in &m.files {
                // A file name from a manifest is one plain component: a node kind cannot
                // make export write outside `--out`.
                if !plain_name(name) || (many_ports && !plain_name(port)) {
                    eprintln!(
                        "error: `{}` output `{port}` names a file `{name}` that is not a plain \
                         file name; not exported",
                        step.id
                    );
                    return EXIT_FAILED;
                }
                let to = dir.join(name);
                // Hashed while copied: a blob changed in place since it was written is never
                // handed out as the step's result.
                match store.blobs().copy_out(fd, &to) {
                    Ok(()) => {}
                    Err(CacheError::CorruptBlob { .. } | CacheError::MissingBlob { .. }) => {
                        let _ = store.quarantine(fd);
                        eprintln!(
                            "error: file `{name}` of `{}` changed in the store after it was \
                             written (its content no longer has its digest); it was moved to \
                             quarantine/ and the step will recompute\nhelp: run `lulc run {}`, \
                             then export again",
                            step.id,
                            spec.spec.display()
                        );
                        return EXIT_FAILED;
                    }
                    Err(e) => {
                        eprintln!("error: cannot write `{}`: {e}", to.display());
                        return EXIT_FAILED;
                    }
                }
                println!("{}", to.display());
                copied += 1;
                if name == MAP_TIF && step.dims.get("tile").is_some() {
                    let rest: Vec<String> = step
                        .dims
                        .iter()
                        .filter(|(k, _)| k.as_str() != "tile")
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    let tile = step.dims.get("tile").map(ToString::to_string);
                    let key = (step.node.clone(), rest.join(","));
                    tile_maps.entry(key).or_default().push((tile, to.clone()));
                }
            }
        }
    }
    // Every tile map set also as GDAL VRTs (one per CRS) beside the tiles' folders.
    for ((node, rest), mut maps) in tile_maps {
        maps.sort();
        let files: Vec<PathBuf> = maps.into_iter().map(|(_, p)| p).collect();
        let prefix = if rest.is_empty() {
            "tiles".to_string()
        } else {
            format!("tiles_{rest}")
        };
        let dir = out.join(step_dir(&node));
        match lulc_nodes::raster::tile_vrts(&dir, &prefix, &files) {
            Ok(vrts) => {
                for v in vrts {
                    println!("{}", v.display());
                    copied += 1;
                }
            }
            Err(e) => {
                output::eprint_diag(e);
                return EXIT_FAILED;
            }
        }
    }
    if !missing.is_empty() {
        eprintln!(
            "error: {} step(s) have no up-to-date result:",
            missing.len()
        );
        for m in &missing {
            eprintln!("  {m}");
        }
        eprintln!("help: run `lulc run {}` first", spec.spec.display());
        return EXIT_FAILED;
    }
    eprintln!("{copied} file(s) exported to {}", out.display());
    EXIT_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_dirs_are_readable_and_stay_inside_the_output() {
        assert_eq!(step_dir("map[year=2020]"), Path::new("map/year=2020"));
        assert_eq!(step_dir("dsm"), Path::new("dsm"));
        assert_eq!(
            step_dir("s2[year=2020,tile=48PWS]"),
            Path::new("s2/year=2020,tile=48PWS")
        );
        assert_eq!(step_dir("m[k=a/../b]"), Path::new("m/k=a_.._b"));
        assert_eq!(step_dir("..[..]"), Path::new("_/_"));
    }

    #[test]
    fn only_plain_file_names_are_exported() {
        assert!(plain_name("map.tif"));
        for bad in ["../x", "/etc/passwd", "a/b", "..", ".", ""] {
            assert!(!plain_name(bad), "{bad}");
        }
    }
}
