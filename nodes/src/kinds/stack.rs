//! `stack`: the features a model uses, chosen by name from a `Features` artifact, in a fixed
//! order: the ablation knob of the method (the features: `docs/method.md`, "Features"; the named sets: docs/nodes.md).
//!
//! Why a node apart from `index`: an ablation sweep over `stack.features` then changes only this
//! step's key and what follows; the expensive `index` step stays cached and is shared by every
//! point of the sweep.
//!
//! ## Ports
//! - in `features` (`Features`): all computed features (usually from `index`).
//! - out `features` (`Features`, see [`crate::artifacts::FeaturesMeta`]): the chosen ones, one
//!   GeoTIFF per season as in the input, bands in the chosen order.
//!
//! ## Params (defaults in brackets)
//! - `features` [`all`]: a set expression or a list ([`crate::features::sets`]):
//!   `s2`, `s1`, `palsar`, `dsm` (DSM, slope), `roads` (road_dist), `static`, `s2_s1`,
//!   `s2_s1_palsar`, `all`, joined with `+` (`s2_s1+dsm`); or a list of feature names and sets,
//!   kept in its order (`[NDVI, EVI, VV, DSM]`). A set gives canonical order: S2 bands, S2
//!   indices, S1, PALSAR-2, DSM, slope, road_dist. An unknown name is a spec error (checked
//!   before anything runs); a known feature the input does not have (its sensor was not
//!   connected to `index`) fails the step, naming the input to connect.
//!
//! Selecting exactly the input's features in its order copies the files byte for byte.
//!
//! ```yaml
//! sweep:
//!   stack.features: [s2, s2_s1, s2_s1_palsar, all]
//! nodes:
//!   stack:
//!     kind: stack
//!     for_each: { year: years }
//!     inputs: { features: features }
//!     params: { features: s2_s1+dsm }
//! ```

use lulc_engine::{Inputs, Node, NodeError, Port, RunCtx};
use serde::{Deserialize, Serialize};

use crate::artifacts::{FEATURES, FeaturesMeta};
use crate::features::sets::{self, FeatureSelection};
use crate::kinds::{blockwise, raster_err};
use crate::raster::{DType, RasterMeta, RasterReader, RasterWriter, TILE, Window, WriteOptions};

pub struct Stack;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StackParams {
    pub features: FeatureSelection,
}

impl Node for Stack {
    const KIND: &'static str = "stack";
    const VERSION: u32 = 1;
    type Params = StackParams;

    fn inputs() -> Vec<Port> {
        vec![Port::one("features", FEATURES)]
    }

    fn outputs() -> Vec<Port> {
        vec![Port::one("features", FEATURES)]
    }

    fn summary() -> &'static str {
        "the chosen features (a named set or a list), in a fixed order"
    }

    fn check(p: &StackParams) -> Result<(), Vec<(String, String)>> {
        let errs: Vec<(String, String)> = p
            .features
            .problems()
            .into_iter()
            .map(|m| ("features".to_string(), m))
            .collect();
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    fn run(&self, ctx: &mut RunCtx, p: &StackParams, inputs: &Inputs) -> Result<(), NodeError> {
        let art = inputs.one("features")?;
        let meta: FeaturesMeta = serde_json::from_value(art.meta.clone()).map_err(|e| {
            NodeError::new(format!(
                "input `features` (from `{}`) is not a Features artifact: {e}",
                art.step_id
            ))
        })?;
        let names = p.features.resolve().map_err(|errs| {
            NodeError::new(
                errs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let missing: Vec<String> = names
            .iter()
            .filter(|n| !meta.features.iter().any(|f| f == *n))
            .map(|n| match sets::feature(n) {
                Some(f) => format!(
                    "`{n}` (needs {}: connect {} of the step that computes the features)",
                    f.sensor,
                    f.sensor.how_to_connect()
                ),
                None => format!("`{n}`"),
            })
            .collect();
        if !missing.is_empty() {
            return Err(NodeError::new(format!(
                "feature(s) not in the input from `{}`: {}",
                art.step_id,
                missing.join(", ")
            ))
            .with_help(format!("the input has: {}", meta.features.join(", "))));
        }
        // 1-based band numbers in the input files.
        let bands: Vec<usize> = names
            .iter()
            .map(|n| meta.features.iter().position(|f| f == n).expect("checked") + 1)
            .collect();
        let identity = names.len() == meta.features.len()
            && bands.iter().enumerate().all(|(i, &b)| b == i + 1);
        for (season, file) in &meta.files {
            let src = art.file(file)?.to_path_buf();
            let dst = ctx.output_file("features", file)?;
            if identity {
                std::fs::copy(&src, &dst).map_err(|e| {
                    NodeError::new(format!(
                        "cannot copy season `{season}` ({}): {e}",
                        src.display()
                    ))
                })?;
                continue;
            }
            let reader = RasterReader::open(&src).map_err(raster_err)?;
            meta.grid
                .ensure_same(reader.grid(), &src)
                .map_err(raster_err)?;
            if reader.band_count() != meta.features.len() {
                return Err(NodeError::new(format!(
                    "`{}` has {} bands, the input's metadata lists {} features",
                    src.display(),
                    reader.band_count(),
                    meta.features.len()
                )));
            }
            drop(reader);
            let out_meta = RasterMeta {
                grid: meta.grid.clone(),
                dtype: DType::F32,
                nodata: Some(f64::NAN),
                band_names: names.iter().map(|s| s.to_string()).collect(),
            };
            let mut writer = RasterWriter::create(&dst, &out_meta, &WriteOptions::default())
                .map_err(raster_err)?;
            let blocks: Vec<Window> = meta.grid.blocks(TILE).collect();
            blockwise(
                &blocks,
                4,
                || RasterReader::open(&src).map_err(raster_err),
                |reader, w| {
                    bands
                        .iter()
                        .map(|&b| reader.read_window_f32(b, w).map_err(raster_err))
                        .collect::<Result<Vec<Vec<f32>>, NodeError>>()
                },
                |w, planes| {
                    for (k, plane) in planes.iter().enumerate() {
                        writer
                            .write_window_f32(k + 1, w, plane)
                            .map_err(raster_err)?;
                    }
                    Ok(())
                },
            )?;
            writer.finish().map_err(raster_err)?;
        }
        ctx.metric("features", names.len() as u64);
        let out = FeaturesMeta {
            features: names.iter().map(|s| s.to_string()).collect(),
            ..meta
        };
        ctx.set_meta(
            "features",
            serde_json::to_value(&out).map_err(|e| NodeError::new(e.to_string()))?,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::features::sets::Sensor;
    use crate::raster::{Grid, crs_to_wkt};
    use lulc_engine::{ArtifactIn, DimValue, erase};
    use serde_json::{Value, json};
    use tempfile::TempDir;

    const W: usize = 270;
    const H: usize = 9;

    fn grid() -> Grid {
        Grid {
            crs_wkt: crs_to_wkt("EPSG:32648").unwrap(),
            geo_transform: [600000.0, 10.0, 0.0, 1200000.0, 0.0, -10.0],
            width: W,
            height: H,
        }
    }

    /// Value of feature number `k` (in the input) at pixel `i` in season `s`; a few are NaN.
    fn value(k: usize, i: usize, s: usize) -> f32 {
        if i % 97 == 5 {
            f32::NAN
        } else {
            (k * 1000 + s * 100) as f32 + (i % 89) as f32 * 0.5
        }
    }

    /// A Features artifact with `features`, two seasons.
    fn features_art(dir: &Path, features: &[&str]) -> ArtifactIn {
        let mut files = BTreeMap::new();
        let mut meta_files = Vec::new();
        for (s, season) in ["S1", "S2"].iter().enumerate() {
            let file = format!("{season}.tif");
            let path = dir.join(&file);
            let meta = RasterMeta {
                grid: grid(),
                dtype: DType::F32,
                nodata: Some(f64::NAN),
                band_names: features.iter().map(|f| f.to_string()).collect(),
            };
            let mut w = RasterWriter::create(&path, &meta, &WriteOptions::default()).unwrap();
            for k in 0..features.len() {
                let v: Vec<f32> = (0..W * H).map(|i| value(k, i, s)).collect();
                w.write_window_f32(k + 1, &grid().full_window(), &v)
                    .unwrap();
            }
            w.finish().unwrap();
            files.insert(file.clone(), path);
            meta_files.push((season.to_string(), file));
        }
        let meta = FeaturesMeta {
            grid: grid(),
            year: 2020,
            seasons: vec!["S1".into(), "S2".into()],
            features: features.iter().map(|f| f.to_string()).collect(),
            files: meta_files,
        };
        ArtifactIn {
            step_id: "index[year=2020]".into(),
            dims: BTreeMap::new(),
            ty: FEATURES.into(),
            digest: "blake3:features".into(),
            files,
            meta: serde_json::to_value(meta).unwrap(),
        }
    }

    fn run(params: Value, art: &ArtifactIn, dir: &Path) -> Result<RunCtx, NodeError> {
        let node = erase(Stack);
        let params = node
            .check_params(&params)
            .map_err(|e| NodeError::new(e[0].message.clone()))?;
        let out = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx = RunCtx::for_test("stack", Stack::outputs(), &out)
            .with_dims([("year".to_string(), DimValue::Int(2020))]);
        let inputs = Inputs {
            ports: BTreeMap::from([("features".to_string(), vec![art.clone()])]),
        };
        node.run(&mut ctx, &params, &inputs)?;
        Ok(ctx)
    }

    fn err_of(r: Result<RunCtx, NodeError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => format!("{} | help: {}", e.message, e.help.unwrap_or_default()),
        }
    }

    fn all_names() -> Vec<&'static str> {
        sets::features_of(&Sensor::ALL)
    }

    /// Check the output against the input: band `j` of the output is input feature `names[j]`.
    fn check_output(ctx: &RunCtx, input: &[&str], names: &[&str]) {
        let out = &ctx.outputs()["features"];
        let meta: FeaturesMeta = serde_json::from_value(out.meta.clone()).unwrap();
        assert_eq!(meta.features, names);
        assert_eq!(meta.seasons, vec!["S1", "S2"]);
        assert_eq!(meta.year, 2020);
        for (s, (_, file)) in meta.files.iter().enumerate() {
            let r = RasterReader::open(&out.files[file]).unwrap();
            assert_eq!(r.meta().band_names, names);
            for (j, n) in names.iter().enumerate() {
                let k = input.iter().position(|f| f == n).unwrap();
                let got = r.read_window_f32(j + 1, &grid().full_window()).unwrap();
                for (i, g) in got.iter().enumerate() {
                    let want = value(k, i, s);
                    assert!(
                        g.to_bits() == want.to_bits(),
                        "{n} season {s} px {i}: {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn stack_named_sets_select_the_right_features_in_canonical_order() {
        let dir = TempDir::new().unwrap();
        let input = all_names();
        let art = features_art(dir.path(), &input);
        for (set, n) in [
            ("s2", 17),
            ("s2_s1", 25),
            ("s2_s1_palsar", 35),
            ("s2_s1+dsm", 27),
            ("all", 38),
        ] {
            let ctx = run(json!({"features": set}), &art, dir.path()).unwrap();
            let names = FeatureSelection::Set(set.into()).resolve().unwrap();
            assert_eq!(names.len(), n, "{set}");
            check_output(&ctx, &input, &names);
        }
    }

    #[test]
    fn stack_explicit_list_keeps_its_order() {
        let dir = TempDir::new().unwrap();
        let input = all_names();
        let art = features_art(dir.path(), &input);
        let ctx = run(
            json!({"features": ["road_dist", "NDVI", "VH_diss", "B02"]}),
            &art,
            dir.path(),
        )
        .unwrap();
        check_output(&ctx, &input, &["road_dist", "NDVI", "VH_diss", "B02"]);
    }

    #[test]
    fn stack_feature_missing_from_the_input_names_the_sensor_to_connect() {
        let dir = TempDir::new().unwrap();
        let input = sets::features_of(&[Sensor::Sentinel2]);
        let art = features_art(dir.path(), &input);
        let e = err_of(run(json!({"features": "s2_s1"}), &art, dir.path()));
        assert!(
            e.contains("not in the input from `index[year=2020]`"),
            "{e}"
        );
        assert!(
            e.contains("`VV` (needs Sentinel-1: connect the `s1` input"),
            "{e}"
        );
        assert!(e.contains("the input has: B02, B03"), "{e}");
        assert!(!e.contains("`NDVI`"), "{e}");
    }

    #[test]
    fn stack_unknown_feature_is_a_param_error_listing_valid_names() {
        let node = erase(Stack);
        let errs = node
            .check_params(&json!({"features": ["NDVI", "EV1", "s2_s1_plasar"]}))
            .unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].path, "features");
        assert!(
            errs[0]
                .message
                .contains("unknown feature or set `EV1` (did you mean `EVI`?)"),
            "{}",
            errs[0].message
        );
        assert!(
            errs[0].message.contains("valid sets: s2, s1, palsar"),
            "{}",
            errs[0].message
        );
        assert!(
            errs[0].message.contains("valid features: B02"),
            "{}",
            errs[0].message
        );
        assert!(
            errs[1].message.contains("did you mean `s2_s1_palsar`?"),
            "{}",
            errs[1].message
        );
        assert!(node.check_params(&json!({"features": []})).is_err());
        assert!(node.check_params(&json!({"feature": "s2"})).is_err());
        assert_eq!(
            node.check_params(&json!({})).unwrap(),
            json!({"features": "all"})
        );
    }

    #[test]
    fn stack_identity_copies_bytes_and_is_deterministic() {
        let dir = TempDir::new().unwrap();
        let input = sets::features_of(&[Sensor::Sentinel2]);
        let art = features_art(dir.path(), &input);
        let ctx = run(json!({"features": "s2"}), &art, dir.path()).unwrap();
        let out = &ctx.outputs()["features"];
        for (name, path) in &art.files {
            assert_eq!(
                std::fs::read(path).unwrap(),
                std::fs::read(&out.files[name]).unwrap()
            );
        }
        let a = run(json!({"features": ["GSI", "B03"]}), &art, dir.path()).unwrap();
        let b = run(json!({"features": ["GSI", "B03"]}), &art, dir.path()).unwrap();
        let (fa, fb) = (&a.outputs()["features"], &b.outputs()["features"]);
        for (name, p) in &fa.files {
            assert!(std::fs::read(p).unwrap() == std::fs::read(&fb.files[name]).unwrap());
        }
    }

    /// A stand-in for the composite node, so a plan can be lowered without it.
    struct FakeComposite;

    #[derive(Clone, Debug, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct NoParams {}

    impl Node for FakeComposite {
        const KIND: &'static str = "fake_composite";
        const VERSION: u32 = 1;
        type Params = NoParams;
        fn inputs() -> Vec<Port> {
            vec![]
        }
        fn outputs() -> Vec<Port> {
            vec![Port::one("composite", crate::artifacts::COMPOSITE)]
        }
        fn run(&self, _: &mut RunCtx, _: &NoParams, _: &Inputs) -> Result<(), NodeError> {
            Ok(())
        }
    }

    #[test]
    fn stack_ablation_sweep_changes_only_the_stack_steps() {
        use lulc_engine::fingerprint::{ENGINE_CACHE_VERSION, KeyMaterial};
        use lulc_engine::plan::{LowerOptions, lower};
        let registry = lulc_engine::Registry::new(vec![
            erase(FakeComposite),
            erase(crate::kinds::index::Index),
            erase(Stack),
        ]);
        let spec = r#"
name: ablation
params: { years: 2019..2020 }
sweep:
  stack.features: [s2, s2_s1, s2_s1_palsar, [NDVI, VV]]
nodes:
  s2c: { kind: fake_composite, for_each: { year: years } }
  s1c: { kind: fake_composite, for_each: { year: years } }
  palc: { kind: fake_composite, for_each: { year: years } }
  index:
    kind: index
    for_each: { year: years }
    inputs: { s2: s2c, s1: s1c, palsar: palc }
  stack:
    kind: stack
    for_each: { year: years }
    inputs: { features: index }
"#;
        let plan = lower(
            Path::new("ablation.yaml"),
            spec.to_string(),
            &LowerOptions {
                registry: &registry,
                overrides: &[],
            },
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let of = |node: &str| {
            plan.steps
                .iter()
                .filter(|s| s.node == node)
                .collect::<Vec<_>>()
        };
        // One index step per year whatever the sweep; one stack step per year and sweep point.
        assert_eq!(of("index").len(), 2);
        assert_eq!(of("stack").len(), 8);
        // Every stack step of a year reads the same index step.
        for s in of("stack") {
            let up = &plan.steps[s.inputs.get("features").unwrap()[0].step];
            assert_eq!(up.node, "index");
            assert_eq!(up.dims, s.dims);
        }
        // With the same index output, the stack steps' keys differ only by their param.
        let key = |s: &lulc_engine::Step| {
            KeyMaterial {
                engine: ENGINE_CACHE_VERSION,
                kind: s.kind.to_string(),
                version: s.version,
                params: serde_json::Value::clone(&s.params),
                dims: lulc_engine::plan::dims_map(&s.dims),
                inputs: BTreeMap::from([("features".to_string(), vec!["blake3:same".to_string()])]),
                env: BTreeMap::new(),
                files: BTreeMap::new(),
            }
            .key()
        };
        let keys: std::collections::BTreeSet<String> = of("stack").iter().map(|s| key(s)).collect();
        assert_eq!(keys.len(), 8);
        let params: std::collections::BTreeSet<String> = of("stack")
            .iter()
            .map(|s| s.params["features"].to_string())
            .collect();
        assert_eq!(params.len(), 4);
        // A sweep value that names an unknown feature is a spec error, before anything runs.
        let bad = spec.replace("[NDVI, VV]", "[NDVI, VVV]");
        let errs = lower(
            Path::new("ablation.yaml"),
            bad,
            &LowerOptions {
                registry: &registry,
                overrides: &[],
            },
        )
        .err()
        .expect("unknown feature must not lower");
        let text = format!("{errs:?}");
        assert!(text.contains("VVV"), "{text}");
    }
}
