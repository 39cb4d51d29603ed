//! `simulate`: the embedded default area of interest — a deterministic, realistic Viet Nam-like
//! landscape written as a STAC catalog of real GeoTIFF scenes, plus ground truth, reference and
//! validation points and roads (see [`crate::simulate`] for what is simulated and how).
//!
//! Why a node: a pipeline that starts from `simulate` needs no internet and goes through the
//! same `acquire` code as real data; the catalog is an artifact like any other, so changing the
//! seed or the size re-runs exactly what depends on it.
//!
//! ## Ports
//! - out `catalog` (`Catalog`): every file of the simulated folder, keyed by its path relative
//!   to the folder (`catalog.json`, `sentinel-2-l2a/items/<id>.json`,
//!   `sentinel-2-l2a/data/<id>/B04.tif`, `truth/landcover_2020.tif`,
//!   `reference/points_2020.gpkg`, `validation/points_<year>.geojson`,
//!   `vectors/roads.geojson`, `simulation.json`, ...). Hrefs inside are relative, so the
//!   files resolve against each other wherever the store keeps them. The metadata lists the
//!   collections and item counts, the grid, a country's tiles with their grids (`tiles`,
//!   read by `acquire` for a step of a `tile` partition), and where truth, points and roads
//!   are.
//!
//! ## Params (defaults in brackets; see [`SimulateParams`])
//! - `seed` [42]: every random draw; same params = byte-identical files.
//! - `size` [512]: pixels per side at 10 m (even, 32..=4096); the area is centred at
//!   UTM 48N (622560, 2252560) in the Red River delta.
//! - `years` [`2016..2023`]: first and last simulated year (`"A..B"` or `[A, B]`).
//! - `reference_year` [2020], `reference_points` [2000, at most 1/8 of the pixels],
//!   `reference_error` [0.03]: reference points and their interpretation-error rate.
//! - `validation_points` [1000 per year, at most 1/16 of the pixels].
//! - `country` [none]: `{ rows, cols, tile_px, overlap_px }`, a country of `rows` x `cols`
//!   overlapping tiles across UTM zones 48 and 49 instead of one area
//!   ([`crate::simulate::Country`]): tiles `48A1`, `49A2`, ... each with its own grid, for a
//!   national pipeline (`pipelines/national.yaml`) that runs offline.
//!
//! ```yaml
//! nodes:
//!   aoi:
//!     kind: simulate
//!     params: { seed: 42, size: 512, years: "2016..2023" }
//!   s2:
//!     kind: acquire
//!     inputs: { catalog: aoi }
//!     params: { collection: sentinel-2-l2a }
//! ```

use std::path::{Path, PathBuf};

use lulc_engine::{Inputs, Node, NodeError, Port, RunCtx};
use serde_json::json;

use crate::simulate::{CATALOG, SimulateOptions, SimulateParams, simulate, stac};

/// The `simulate` node kind.
pub struct Simulate;

impl Node for Simulate {
    const KIND: &'static str = "simulate";
    const VERSION: u32 = 1;
    type Params = SimulateParams;

    fn inputs() -> Vec<Port> {
        Vec::new()
    }

    fn outputs() -> Vec<Port> {
        vec![Port::one("catalog", CATALOG)]
    }

    fn summary() -> &'static str {
        "a simulated Viet Nam-like area: STAC catalog of S2/S1/PALSAR-2/DSM scenes, truth, points"
    }

    fn check(params: &SimulateParams) -> Result<(), Vec<(String, String)>> {
        let problems = params.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    fn run(
        &self,
        ctx: &mut RunCtx,
        params: &SimulateParams,
        _inputs: &Inputs,
    ) -> Result<(), NodeError> {
        // The simulator writes a folder tree; the store wants one temp path per file. Write the
        // tree beside the first output path, then move each file onto its own output path.
        let root = ctx.output_file("catalog", "catalog.json")?;
        let tree = sibling(&root, "tree");
        let _ = std::fs::remove_dir_all(&tree);
        let result = simulate(&SimulateOptions::from_params(params, &tree))
            .map_err(|e| NodeError::from_diagnostic(&e))
            .and_then(|summary| {
                for rel in &summary.files {
                    let dst = if rel == "catalog.json" {
                        root.clone()
                    } else {
                        ctx.output_file("catalog", rel)?
                    };
                    move_file(&tree.join(rel), &dst)?;
                }
                Ok(summary)
            });
        let _ = std::fs::remove_dir_all(&tree);
        let summary = result?;

        let (y0, y1) = params.years;
        let truth: Vec<String> = (y0..=y1)
            .map(|y| format!("truth/landcover_{y}.tif"))
            .collect();
        let validation: Vec<String> = (y0..=y1)
            .map(|y| format!("validation/points_{y}.geojson"))
            .collect();
        ctx.set_meta(
            "catalog",
            json!({
                "root": "catalog.json",
                "collections": stac::COLLECTIONS.iter().map(|c| format!("{c}/collection.json")).collect::<Vec<_>>(),
                "items": summary.items,
                "grid": summary.grid,
                "mgrs_tile": summary.mgrs_tile,
                "tiles": summary.tiles,
                "years": [y0, y1],
                "truth": truth,
                "reference": format!("reference/points_{}.gpkg", params.reference_year),
                "validation": validation,
                "roads": "vectors/roads.geojson",
                "simulation": "simulation.json",
            }),
        )?;
        ctx.metric("files", summary.files.len() as u64);
        ctx.metric("reference_points", summary.reference_points as u64);
        for (collection, n) in &summary.items {
            ctx.metric(&format!("items.{collection}"), *n as u64);
        }
        Ok(())
    }
}

/// `<path>.<suffix>`: a path next to `path` (same folder, so renames stay on one file system).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

fn move_file(from: &Path, to: &Path) -> Result<(), NodeError> {
    let err = |e: std::io::Error| {
        NodeError::new(format!(
            "cannot move `{}` to `{}`: {e}",
            from.display(),
            to.display()
        ))
    };
    if std::fs::rename(from, to).is_err() {
        std::fs::copy(from, to).map_err(err)?;
        std::fs::remove_file(from).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    #[test]
    fn writes_every_file_of_the_layout_keyed_by_relative_path() {
        let dir = TempDir::new().unwrap();
        let mut ctx = RunCtx::for_test("aoi", Simulate::outputs(), dir.path());
        let node = lulc_engine::erase(Simulate);
        let params = node
            .check_params(&json!({"size": 32, "years": "2020..2020", "validation_points": 50}))
            .unwrap();
        node.run(&mut ctx, &params, &Inputs::default()).unwrap();
        let out = &ctx.outputs()["catalog"];
        for key in [
            "catalog.json",
            "simulation.json",
            "sentinel-2-l2a/collection.json",
            "sentinel-1-grd/collection.json",
            "alos-palsar2-scansar/collection.json",
            "dsm/collection.json",
            "truth/landcover_2020.tif",
            "reference/points_2020.gpkg",
            "validation/points_2020.geojson",
            "vectors/roads.geojson",
        ] {
            assert!(out.files.get(key).is_some_and(|p| p.is_file()), "{key}");
        }
        assert!(
            out.files
                .keys()
                .any(|k| k.starts_with("sentinel-2-l2a/data/") && k.ends_with("/B04.tif"))
        );
        assert!(
            out.files
                .keys()
                .any(|k| k.starts_with("sentinel-2-l2a/items/") && k.ends_with(".json"))
        );
        // Every file was moved out of the scratch tree, which is gone.
        let on_disk = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(on_disk, out.files.len());
        assert_eq!(out.meta["years"], json!([2020, 2020]));
        let items: u64 = out.meta["items"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        let item_files = out.files.keys().filter(|k| k.contains("/items/")).count() as u64;
        assert_eq!(items, item_files);
    }

    #[test]
    fn params_are_checked_before_running() {
        let node = lulc_engine::erase(Simulate);
        let canonical = node.check_params(&json!({})).unwrap();
        assert_eq!(canonical["size"], 512);
        assert_eq!(canonical["years"], json!([2016, 2023]));
        let errs = node.check_params(&json!({"size": 31})).unwrap_err();
        assert_eq!(errs[0].path, "size");
        let errs = node.check_params(&json!({"out": "/tmp/x"})).unwrap_err();
        assert!(errs[0].unknown);
        assert_eq!(node.outputs()[0].ty, CATALOG);
    }
}
