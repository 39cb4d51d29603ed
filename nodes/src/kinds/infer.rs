//! `infer`: classify every pixel of a `Features` artifact with a trained `Model` (from
//! `train`): a land-cover map with the legend's colours and names, and the classifier's
//! confidence.
//!
//! Block by block (256 x 256 px windows of every season file, several blocks side by side
//! with rayon, each classified in batches of 1024 pixels): memory stays bounded whatever the
//! raster's size. A pixel with NaN in any season or feature is nodata (0) in the map. The
//! output depends only on the inputs (fixed blocks and batches, whatever the thread count).
//!
//! ## Ports
//! - in `model` (`Model`, [`crate::learn::ModelMeta`]).
//! - in `features` (`Features`): the model's features, same names in the same order, and its
//!   seasons (a mismatch fails the step with the differences listed; put a `stack` with the
//!   model's feature list in front).
//! - out `map` (`Map`, see [`crate::artifacts::MapMeta`]): `map.tif` (UInt8, codes of the
//!   model's legend, 0 = nodata, colour table and category names embedded), `map.qml` (QGIS
//!   paletted style) and, with `confidence`, `confidence.tif` (Float32, the highest softmax
//!   probability, NaN where the map is nodata).
//!
//! ## Params (defaults in brackets)
//! - `confidence` [true]: write `confidence.tif`.
//! - `ensemble` [true]: a model trained with `repeats: K` holds K networks (one per random
//!   split); classify with the average of their softmax probabilities (soft voting; the
//!   confidence is the averaged probability of the chosen class). `false`: repeat 0's network
//!   alone (K times less compute).
//!
//! Metrics: `pixels` (classified), `nodata_pixels`, `members` (networks averaged). The step's
//! time is the engine's (`duration_s` of the step in `--json`), so throughput is
//! (`pixels` + `nodata_pixels`) / `duration_s`; the node reads no clock.
//!
//! ```yaml
//! nodes:
//!   map:
//!     kind: infer
//!     for_each: { year: years }
//!     inputs: { model: model, features: stack }
//!     params: { confidence: true, ensemble: true }
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use lulc_engine::{Inputs, Node, NodeError, Port, RunCtx};
use serde::{Deserialize, Serialize};

use crate::artifacts::{FEATURES, FeaturesMeta, MAP, MODEL, MapMeta};
use crate::classes::Legend;
use crate::kinds::{blockwise, open_all, raster_err};
use crate::learn::{Classifier, ModelMeta};
use crate::raster::{DType, RasterMeta, RasterReader, RasterWriter, TILE, Window, WriteOptions};

pub struct Infer;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferParams {
    pub confidence: bool,
    pub ensemble: bool,
}

impl Default for InferParams {
    fn default() -> InferParams {
        InferParams {
            confidence: true,
            ensemble: true,
        }
    }
}

pub const MAP_FILE: &str = "map.tif";
pub const QML_FILE: &str = "map.qml";
pub const CONFIDENCE_FILE: &str = "confidence.tif";

/// Classes and confidences of one block.
struct Block {
    classes: Vec<u8>,
    confidence: Vec<f32>,
}

impl Node for Infer {
    const KIND: &'static str = "infer";
    // 3: the networks' convolutions by learn::same_conv instead of burn's layer: confidences
    // differ in the last bits (and a class where two were within them).
    const VERSION: u32 = 3;
    type Params = InferParams;

    fn inputs() -> Vec<Port> {
        vec![Port::one("model", MODEL), Port::one("features", FEATURES)]
    }

    fn outputs() -> Vec<Port> {
        vec![Port::one("map", MAP)]
    }

    fn summary() -> &'static str {
        "classify every pixel with a trained model: a UInt8 map with colours and names, and confidence"
    }

    fn run(&self, ctx: &mut RunCtx, p: &InferParams, inputs: &Inputs) -> Result<(), NodeError> {
        let model_art = inputs.one("model")?;
        let meta: ModelMeta = serde_json::from_value(model_art.meta.clone()).map_err(|e| {
            NodeError::new(format!(
                "input `model` (from `{}`) is not a Model artifact: {e}",
                model_art.step_id
            ))
        })?;
        let art = inputs.one("features")?;
        let fmeta: FeaturesMeta = serde_json::from_value(art.meta.clone()).map_err(|e| {
            NodeError::new(format!(
                "input `features` (from `{}`) is not a Features artifact: {e}",
                art.step_id
            ))
        })?;
        check_match(&meta, &fmeta, &model_art.step_id, &art.step_id)?;
        let used = if p.ensemble { meta.members.len() } else { 1 };
        let mut weights = Vec::with_capacity(used);
        for m in meta.members.iter().take(used) {
            let path = model_art.file(&m.file)?;
            weights.push(
                std::fs::read(path).map_err(|e| {
                    NodeError::new(format!("cannot read `{}`: {e}", path.display()))
                })?,
            );
        }
        let legend = meta.legend.clone();
        let classifier = Classifier::load(meta, weights).map_err(NodeError::new)?;
        let codes: Vec<u8> = legend.0.iter().map(|c| c.code).collect();

        let mut season_files: Vec<PathBuf> = Vec::new();
        for (season, file) in &fmeta.files {
            let path = art.file(file)?.to_path_buf();
            let r = RasterReader::open(&path).map_err(raster_err)?;
            fmeta
                .grid
                .ensure_same(r.grid(), &path)
                .map_err(raster_err)?;
            if r.band_count() != fmeta.features.len() {
                return Err(NodeError::new(format!(
                    "season `{season}` (`{}`) has {} bands, the metadata lists {} features",
                    path.display(),
                    r.band_count(),
                    fmeta.features.len()
                )));
            }
            season_files.push(path);
        }

        let grid = fmeta.grid.clone();
        let map_path = ctx.output_file("map", MAP_FILE)?;
        let mut map = RasterWriter::create(
            &map_path,
            &RasterMeta {
                grid: grid.clone(),
                dtype: DType::U8,
                nodata: Some(0.0),
                band_names: vec!["class".into()],
            },
            &WriteOptions::default(),
        )
        .map_err(raster_err)?;
        style_map(&mut map, &legend)?;
        let mut conf = if p.confidence {
            let path = ctx.output_file("map", CONFIDENCE_FILE)?;
            Some(
                RasterWriter::create(
                    &path,
                    &RasterMeta {
                        grid: grid.clone(),
                        dtype: DType::F32,
                        nodata: Some(f64::NAN),
                        band_names: vec!["confidence".into()],
                    },
                    &WriteOptions::default(),
                )
                .map_err(raster_err)?,
            )
        } else {
            None
        };

        let n_features = fmeta.features.len();
        let blocks: Vec<Window> = grid.blocks(TILE).collect();
        let mut class_pixels: BTreeMap<u8, u64> = codes.iter().map(|c| (*c, 0)).collect();
        let mut nodata_pixels = 0u64;
        blockwise(
            &blocks,
            2,
            || open_all(&season_files),
            |readers, w| classify_block(readers, w, n_features, &classifier, &codes),
            |w, block| {
                for c in &block.classes {
                    match class_pixels.get_mut(c) {
                        Some(n) => *n += 1,
                        None => nodata_pixels += 1,
                    }
                }
                map.write_window_u8(1, w, &block.classes)
                    .map_err(raster_err)?;
                if let Some(conf) = conf.as_mut() {
                    conf.write_window_f32(1, w, &block.confidence)
                        .map_err(raster_err)?;
                }
                Ok(())
            },
        )?;
        map.finish().map_err(raster_err)?;
        if let Some(conf) = conf {
            conf.finish().map_err(raster_err)?;
        }
        ctx.write_output("map", QML_FILE, qml(&legend).as_bytes())?;
        let pixels: u64 = class_pixels.values().sum();
        ctx.metric("pixels", pixels);
        ctx.metric("nodata_pixels", nodata_pixels);
        ctx.metric("members", used as u64);
        let out = MapMeta {
            grid,
            year: Some(fmeta.year),
            legend,
            class_pixels,
            nodata_pixels,
            confidence: p.confidence,
            class_km2: None,
        };
        ctx.set_meta(
            "map",
            serde_json::to_value(&out).map_err(|e| NodeError::new(e.to_string()))?,
        )
    }
}

/// Band 1 of a class map: the legend's colours (0 transparent) and class names.
pub(crate) fn style_map(map: &mut RasterWriter, legend: &Legend) -> Result<(), NodeError> {
    let mut entries: Vec<(u8, [u8; 4])> = vec![(0, [0, 0, 0, 0])];
    for c in &legend.0 {
        let [r, g, b] = legend.rgb(c.code);
        entries.push((c.code, [r, g, b, 255]));
    }
    map.set_color_table(1, &entries).map_err(raster_err)?;
    let names: Vec<(u8, &str)> = legend.0.iter().map(|c| (c.code, c.name.as_str())).collect();
    map.set_category_names(1, &names).map_err(raster_err)?;
    Ok(())
}

/// The features and seasons of the input must be the model's, in order.
fn check_match(
    model: &ModelMeta,
    features: &FeaturesMeta,
    model_step: &str,
    features_step: &str,
) -> Result<(), NodeError> {
    let mut diffs = Vec::new();
    let missing: Vec<&str> = model
        .features
        .iter()
        .filter(|f| !features.features.contains(f))
        .map(String::as_str)
        .collect();
    let extra: Vec<&str> = features
        .features
        .iter()
        .filter(|f| !model.features.contains(f))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        diffs.push(format!("missing from the input: {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        diffs.push(format!("not in the model: {}", extra.join(", ")));
    }
    if diffs.is_empty() && model.features != features.features {
        let first = model
            .features
            .iter()
            .zip(&features.features)
            .position(|(a, b)| a != b)
            .expect("same set, different order");
        diffs.push(format!(
            "same features in another order (position {}: the model has `{}`, the input `{}`)",
            first + 1,
            model.features[first],
            features.features[first]
        ));
    }
    if !diffs.is_empty() {
        return Err(NodeError::new(format!(
            "the features from `{features_step}` are not the ones the model from `{model_step}` \
             was trained on: {}",
            diffs.join("; ")
        ))
        .with_help(format!(
            "the model's features, in order: {}",
            model.features.join(", ")
        )));
    }
    let seasons: Vec<&String> = features.files.iter().map(|(s, _)| s).collect();
    if seasons.len() != model.seasons.len()
        || seasons.iter().zip(&model.seasons).any(|(a, b)| *a != b)
    {
        return Err(NodeError::new(format!(
            "the features from `{features_step}` have seasons [{}], the model from `{model_step}` \
             was trained on [{}]",
            seasons
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            model.seasons.join(", ")
        )));
    }
    Ok(())
}

/// Read window `w` of every season, classify the pixels with data.
fn classify_block(
    readers: &[RasterReader],
    w: &Window,
    n_features: usize,
    classifier: &Classifier,
    codes: &[u8],
) -> Result<Block, NodeError> {
    let n = w.len();
    let width = readers.len() * n_features;
    let mut rows = vec![0.0f32; n * width];
    let mut valid = vec![true; n];
    for (s, r) in readers.iter().enumerate() {
        for f in 0..n_features {
            let band = r.read_window_f32(f + 1, w).map_err(raster_err)?;
            for (px, v) in band.iter().enumerate() {
                if !v.is_finite() {
                    valid[px] = false;
                }
                rows[px * width + s * n_features + f] = *v;
            }
        }
    }
    // Compact the pixels with data, in pixel order.
    let mut k = 0;
    for (px, ok) in valid.iter().enumerate() {
        if *ok {
            if k != px {
                rows.copy_within(px * width..(px + 1) * width, k * width);
            }
            k += 1;
        }
    }
    rows.truncate(k * width);
    let predicted = if k > 0 {
        classifier.classify(&rows)
    } else {
        Vec::new()
    };
    let mut classes = vec![0u8; n];
    let mut confidence = vec![f32::NAN; n];
    let mut it = predicted.into_iter();
    for px in 0..n {
        if valid[px] {
            let (c, p) = it.next().expect("one prediction per valid pixel");
            classes[px] = codes[c];
            confidence[px] = p;
        }
    }
    Ok(Block {
        classes,
        confidence,
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A QGIS style (paletted renderer) with the legend's colours and names.
pub fn qml(legend: &Legend) -> String {
    let mut s = String::from(
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n\
         <qgis version=\"3.28.0\" styleCategories=\"AllStyleCategories\">\n\
         \x20 <pipe>\n\
         \x20   <rasterrenderer type=\"paletted\" band=\"1\" opacity=\"1\" alphaBand=\"-1\" nodataColor=\"\">\n\
         \x20     <rasterTransparency/>\n\
         \x20     <colorPalette>\n",
    );
    for c in &legend.0 {
        let [r, g, b] = legend.rgb(c.code);
        let _ = writeln!(
            s,
            "        <paletteEntry value=\"{}\" color=\"#{r:02x}{g:02x}{b:02x}\" alpha=\"255\" label=\"{}\"/>",
            c.code,
            xml_escape(&c.name)
        );
    }
    s.push_str(
        "      </colorPalette>\n\
         \x20   </rasterrenderer>\n\
         \x20   <brightnesscontrast brightness=\"0\" contrast=\"0\" gamma=\"1\"/>\n\
         \x20   <huesaturation saturation=\"0\" grayscaleMode=\"0\" colorizeOn=\"0\"/>\n\
         \x20   <rasterresampler maxOversampling=\"2\"/>\n\
         \x20 </pipe>\n\
         \x20 <blendMode>0</blendMode>\n\
         </qgis>\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::kinds::train::tests::{FEATURES as FEATS, SEASONS, samples, samples_art, signal};
    use crate::raster::{Grid, crs_to_wkt};
    use lulc_engine::{ArtifactIn, erase};
    use serde_json::json;

    const W: usize = 300;
    const H: usize = 20;

    fn grid() -> Grid {
        Grid {
            crs_wkt: crs_to_wkt("EPSG:32648").unwrap(),
            geo_transform: [600000.0, 10.0, 0.0, 1200000.0, 0.0, -10.0],
            width: W,
            height: H,
        }
    }

    /// Class code of pixel `i`: stripes of classes 1..=5.
    fn truth(i: usize) -> u8 {
        ((i % W) / 60) as u8 + 1
    }

    fn is_nan_px(i: usize) -> bool {
        i % 101 == 7
    }

    fn model_art(dir: &Path) -> ArtifactIn {
        model_art_of(dir, 1)
    }

    /// A model trained with `repeats` random splits (as many member networks).
    fn model_art_of(dir: &Path, repeats: usize) -> ArtifactIn {
        let s = samples_art(samples(250, 1), dir);
        let ctx = crate::kinds::train::tests::run(
            json!({"epochs": 8, "batch_size": 32, "patience": 4, "repeats": repeats}),
            &s,
            dir,
        )
        .unwrap();
        let o = &ctx.outputs()["model"];
        ArtifactIn {
            step_id: "train".into(),
            dims: BTreeMap::new(),
            ty: MODEL.into(),
            digest: "blake3:model".into(),
            files: o.files.clone(),
            meta: o.meta.clone(),
        }
    }

    /// A Features artifact on `grid()` with `features` (a permutation or subset of the training
    /// ones), the separable signal of `truth`, and NaN on some pixels in season 2.
    fn features_art(dir: &Path, features: &[&str]) -> ArtifactIn {
        let mut files = BTreeMap::new();
        let mut meta_files = Vec::new();
        for (s, season) in SEASONS.iter().enumerate() {
            let file = format!("{season}.tif");
            let path = dir.join(&file);
            let meta = RasterMeta {
                grid: grid(),
                dtype: DType::F32,
                nodata: Some(f64::NAN),
                band_names: features.iter().map(|f| f.to_string()).collect(),
            };
            let mut w = RasterWriter::create(&path, &meta, &WriteOptions::default()).unwrap();
            for (b, name) in features.iter().enumerate() {
                let f = FEATS.iter().position(|x| x == name).unwrap();
                let v: Vec<f32> = (0..W * H)
                    .map(|i| {
                        if s == 1 && is_nan_px(i) {
                            f32::NAN
                        } else {
                            signal(truth(i), s, f)
                        }
                    })
                    .collect();
                w.write_window_f32(b + 1, &grid().full_window(), &v)
                    .unwrap();
            }
            w.finish().unwrap();
            files.insert(file.clone(), path);
            meta_files.push((season.to_string(), file));
        }
        let meta = FeaturesMeta {
            grid: grid(),
            year: 2021,
            seasons: SEASONS.iter().map(|s| s.to_string()).collect(),
            features: features.iter().map(|f| f.to_string()).collect(),
            files: meta_files,
        };
        ArtifactIn {
            step_id: "stack[year=2021]".into(),
            dims: BTreeMap::new(),
            ty: FEATURES.into(),
            digest: "blake3:features".into(),
            files,
            meta: serde_json::to_value(meta).unwrap(),
        }
    }

    fn run(
        params: serde_json::Value,
        model: &ArtifactIn,
        features: &ArtifactIn,
        dir: &Path,
    ) -> Result<RunCtx, NodeError> {
        let node = erase(Infer);
        let params = node
            .check_params(&params)
            .map_err(|e| NodeError::new(e[0].message.clone()))?;
        let out = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx = RunCtx::for_test("infer", Infer::outputs(), &out);
        let inputs = Inputs {
            ports: BTreeMap::from([
                ("model".to_string(), vec![model.clone()]),
                ("features".to_string(), vec![features.clone()]),
            ]),
        };
        node.run(&mut ctx, &params, &inputs)?;
        Ok(ctx)
    }

    #[test]
    fn infer_writes_a_coloured_named_map_with_nodata_where_input_is_nan() {
        let dir = tempfile::tempdir().unwrap();
        let model = model_art(dir.path());
        let feats = features_art(dir.path(), &FEATS);
        let ctx = run(json!({}), &model, &feats, dir.path()).unwrap();
        let out = &ctx.outputs()["map"];
        let meta: MapMeta = serde_json::from_value(out.meta.clone()).unwrap();
        let r = RasterReader::open(&out.files[MAP_FILE]).unwrap();
        assert_eq!(r.meta().dtype, DType::U8);
        assert_eq!(r.meta().nodata, Some(0.0));
        let ct = r.color_table(1).unwrap();
        let water = ct.iter().find(|(c, _)| *c == 1).unwrap().1;
        assert_eq!(water, [0x1f, 0x4f, 0xd8, 255]);
        let names = r.category_names(1).unwrap();
        assert_eq!(names[&3], "Rice");
        assert_eq!(names.len(), 14);
        let px = r.read_window_u8(1, &grid().full_window()).unwrap();
        let conf = RasterReader::open(&out.files[CONFIDENCE_FILE])
            .unwrap()
            .read_window_f32(1, &grid().full_window())
            .unwrap();
        let mut correct = 0;
        let mut nodata = 0;
        for (i, (c, p)) in px.iter().zip(&conf).enumerate() {
            if is_nan_px(i) {
                assert_eq!(*c, 0, "pixel {i}");
                assert!(p.is_nan());
                nodata += 1;
            } else {
                assert!(*c >= 1 && *c <= 14);
                assert!(*p > 0.0 && *p <= 1.0);
                correct += usize::from(*c == truth(i));
            }
        }
        assert_eq!(meta.nodata_pixels, nodata);
        let valid = (W * H) as u64 - nodata;
        assert_eq!(meta.class_pixels.values().sum::<u64>(), valid);
        assert!(correct as f64 > 0.9 * valid as f64, "{correct} of {valid}");
        assert!(meta.confidence);
        assert_eq!(meta.year, Some(2021));
        let qml = std::fs::read_to_string(&out.files[QML_FILE]).unwrap();
        assert!(qml.contains("type=\"paletted\""), "{qml}");
        assert!(
            qml.contains("value=\"2\" color=\"#d7191c\" alpha=\"255\" label=\"Urban/Built-up\""),
            "{qml}"
        );
        // Deterministic, whatever the thread count; without confidence, no confidence file.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let again =
            pool.install(|| run(json!({"confidence": false}), &model, &feats, dir.path()).unwrap());
        let o2 = &again.outputs()["map"];
        assert!(
            std::fs::read(&out.files[MAP_FILE]).unwrap()
                == std::fs::read(&o2.files[MAP_FILE]).unwrap()
        );
        assert!(!o2.files.contains_key(CONFIDENCE_FILE));
    }

    #[test]
    fn infer_averages_the_probabilities_of_every_repeat_unless_told_not_to() {
        let dir = tempfile::tempdir().unwrap();
        let model = model_art_of(dir.path(), 2);
        let feats = features_art(dir.path(), &FEATS);
        let metric = |ctx: &RunCtx, name: &str| ctx.metrics()[name].clone();
        let conf = |ctx: &RunCtx| {
            RasterReader::open(&ctx.outputs()["map"].files[CONFIDENCE_FILE])
                .unwrap()
                .read_window_f32(1, &grid().full_window())
                .unwrap()
        };
        let both = run(json!({}), &model, &feats, dir.path()).unwrap();
        let first = run(json!({"ensemble": false}), &model, &feats, dir.path()).unwrap();
        assert_eq!(metric(&both, "members"), json!(2));
        assert_eq!(metric(&first, "members"), json!(1));
        let (cb, cf) = (conf(&both), conf(&first));
        assert!(
            cb.iter().zip(&cf).any(|(a, b)| a.is_finite() && a != b),
            "the ensemble's confidence equals repeat 0's everywhere"
        );

        // The ensemble's probabilities are the mean of each member's, member by member.
        let meta: ModelMeta = serde_json::from_value(model.meta.clone()).unwrap();
        let bytes = |k: usize| std::fs::read(&model.files[&meta.members[k].file]).unwrap();
        let alone = |k: usize| {
            let mut m = meta.clone();
            m.members = vec![meta.members[k].clone()];
            Classifier::load(m, vec![bytes(k)]).unwrap()
        };
        let ens = Classifier::load(meta.clone(), vec![bytes(0), bytes(1)]).unwrap();
        assert_eq!(ens.members(), 2);
        let width = SEASONS.len() * FEATS.len();
        let rows: Vec<f32> = (0..40)
            .flat_map(|i| {
                (0..width).map(move |k| {
                    signal(truth(i * 7), k / FEATS.len(), k % FEATS.len()) + 0.3 * (i % 5) as f32
                })
            })
            .collect();
        let (p0, p1, pe) = (
            alone(0).probabilities(&rows),
            alone(1).probabilities(&rows),
            ens.probabilities(&rows),
        );
        assert_eq!(pe.len(), 40 * 14);
        assert_ne!(p0, p1);
        for i in 0..pe.len() {
            assert_eq!(pe[i], (p0[i] + p1[i]) / 2.0, "probability {i}");
        }
        // A weights file missing from the model's folder is named.
        let mut broken = model.clone();
        broken.files.remove("model_1.bpk");
        let Err(e) = run(json!({}), &broken, &feats, dir.path()) else {
            panic!("a model without its second weights file ran");
        };
        assert!(e.message.contains("model_1.bpk"), "{}", e.message);
    }

    #[test]
    fn infer_feature_mismatch_lists_the_differences() {
        let dir = tempfile::tempdir().unwrap();
        let model = model_art(dir.path());
        let err = |feats: &[&str]| {
            let d = tempfile::Builder::new().tempdir_in(dir.path()).unwrap();
            let f = features_art(d.path(), feats);
            match run(json!({}), &model, &f, dir.path()) {
                Ok(_) => panic!("expected an error"),
                Err(e) => format!("{} | help: {}", e.message, e.help.unwrap_or_default()),
            }
        };
        let e = err(&["NDVI", "VV", "DSM"]);
        assert!(e.contains("missing from the input: VH"), "{e}");
        assert!(
            e.contains("the model's features, in order: NDVI, VV, VH, DSM"),
            "{e}"
        );
        let e = err(&["NDVI", "VH", "VV", "DSM"]);
        assert!(
            e.contains("another order (position 2: the model has `VV`, the input `VH`)"),
            "{e}"
        );
    }
}
