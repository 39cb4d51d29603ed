//! `train`: fit the CNN classifier (`docs/method.md`, "Classifier: the time-feature CNN") on labelled
//! samples: a stratified train/validation split, per-feature standardisation learned on the
//! training split, Adam on cross-entropy in mini-batches, early stopping on the validation loss
//! (the best epoch's weights are kept). With `repeats: K` it trains K times on K random splits
//! (seeds `seed`, `seed + 1`, ...), records each split's validation confusion matrix and stores
//! every repeat's weights (`infer` averages their probabilities: an ensemble of K networks).
//!
//! Deterministic: the same samples and seed give byte-identical model files whatever `--jobs` or
//! the number of threads (each repeat computes on one thread; repeats run side by side).
//!
//! Large networks are said before they train: from the layers ([`Cost`]), the weights, the
//! memory of the repeats side by side (6 x the weights for Adam, gradients and the best and
//! evaluation copies, plus a batch's activations) and the TFLOP of an epoch, when over 2 GiB or
//! 1 TFLOP; more memory than the machine has available (`MemAvailable`, lowered to what the
//! cgroup's `memory.max` leaves, as under Slurm) is an error that says what to lower. After the
//! first batch, its time gives an epoch's and the longest the training can take (said when 10
//! min or more); progress is counted by batch.
//!
//! ## Ports
//! - in `samples` (`Samples`, one or many): per point a seasons x features matrix and a class
//!   code. Many (the tiles of a year: `samples: migrated.samples` in a step partitioned by
//!   `year` only) are trained on as one set; a point sampled in two overlapping tiles counts
//!   once, from the tile that sorts first (as `mosaic` chooses; metric `duplicate_points`).
//! - out `model` (`Model`, see [`crate::learn`] for the files and [`crate::learn::ModelMeta`]
//!   for the metadata): `model.bpk` (burn record of repeat 0), `model_1.bpk`, ... (the other
//!   repeats'), `config.json`, `curve.csv` (`epoch,train_loss,val_loss,val_acc` of repeat 0).
//!
//! ## Params (defaults in brackets)
//! - `arch` [`timecnn`]: `timecnn` (input `[batch, 1, seasons, features]`; Conv2d 3x3 32 + BN +
//!   ReLU; Conv2d 3x3 64 + BN + ReLU; Conv2d 3x3 64 + BN + ReLU, padding 1; flatten; Dropout;
//!   Linear 256 + ReLU; Dropout; Linear classes) or `tempcnn` (Pelletier et al. 2019: features
//!   as channels, time as the axis; 3 x [Conv1d 64, kernel 5, BN, ReLU, Dropout 0.2]; flatten;
//!   Linear 256 + BN + ReLU + Dropout; Linear classes).
//! - `epochs` [100]: at most this many epochs.
//! - `batch_size` [256].
//! - `lr` [0.001]: Adam's learning rate (betas 0.9, 0.999, epsilon 1e-8, as PyTorch).
//! - `dropout` [0.5]: around the dense hidden layer.
//! - `patience` [10]: stop after this many epochs without a lower validation loss.
//! - `val_fraction` [0.2]: share of every class held out for validation (at least one sample
//!   each side).
//! - `repeats` [1]: number of random splits trained (the `holdout` matrices; `assess` can report
//!   their spread); each split's network is kept, and `infer` maps with all of them.
//! - `seed` [the step's seed]: base seed of splits, initial weights, epoch order and dropout.
//! - `legend` [the 14 classes]: the classes the model predicts, a list of
//!   `{code, name, colour}`; a sample whose label is not in it fails the step.
//!
//! Fails, with a message, on: no samples, NaN in a feature, a label outside the legend. A class
//! with a single sample (migration can keep just one) trains without a validation sample, with
//! a warning.
//!
//! Metrics: `val_acc` (mean over repeats), `epochs` (repeat 0), `best_epoch`, `n_train`, `n_val`.
//!
//! ```yaml
//! nodes:
//!   model:
//!     kind: train
//!     inputs: { samples: samples }
//!     params: { arch: timecnn, epochs: 100, repeats: 5 }
//! ```

use std::time::Duration;

use lulc_engine::live::human_duration;
use lulc_engine::{Inputs, Node, NodeError, Port, RunCtx, human_bytes};
use rayon::prelude::*;

use crate::artifacts::{Holdout, MODEL, SAMPLES};
use crate::classes::Legend;
use crate::learn::available_memory;
use crate::learn::fit::{self, Data, Fitted, Watch};
use crate::learn::net::Cost;
use crate::learn::{CONFIG_FILE, CURVE_FILE, Dims, Member, ModelMeta, TrainConfig, weights_file};
use crate::samples::Samples;

pub struct Train;

/// A training forecast to last at least this long is said when the first batch is done.
const LONG_TRAINING: Duration = Duration::from_secs(600);

/// A training to hold more than this much memory is said before it starts.
const BIG_TRAINING: u64 = 2 << 30;

/// Before training: the network's size, memory and work from its layers, said when large, and
/// a refusal where the memory is more than the machine (or its cgroup, under Slurm) has
/// available, instead of a swap storm or the kernel's OOM killer hours later.
fn forecast(
    ctx: &RunCtx,
    p: &TrainConfig,
    dims: Dims,
    n_train: usize,
    values: usize,
    side_by_side: usize,
) -> Result<(), NodeError> {
    let cost = Cost::of(p.arch, dims);
    let side_by_side = side_by_side as u64;
    let batch = p.batch_size.min(n_train.max(2));
    // The samples, standardised copies of both splits, and the training runs side by side.
    let bytes = 3 * 4 * values as u64 + side_by_side * cost.training_bytes(batch);
    let per_sample = cost.bytes_per_sample();
    let what = format!(
        "`{}` on {} season(s) x {} feature(s): {:.1} M weights, {} per sample of a batch while \
         training, about {} in all ({} repeat(s) side by side, batches of {batch})",
        p.arch.name(),
        dims.seasons,
        dims.features,
        cost.weights as f64 / 1e6,
        human_bytes(per_sample),
        human_bytes(bytes),
        side_by_side
    );
    if let Some(avail) = available_memory()
        && bytes > avail
    {
        return Err(NodeError::new(format!(
            "training {what} needs more memory than the {} available here",
            human_bytes(avail)
        ))
        .with_help(format!(
            "lower `batch_size` (each sample of a batch holds {}), train fewer `repeats`, or give \
             the network fewer time steps (composites of seasons, not every acquisition)",
            human_bytes(per_sample)
        )));
    }
    let flops = 3.0 * cost.forward_flops as f64 * n_train as f64;
    if bytes > BIG_TRAINING || flops > 1e12 {
        ctx.note(&format!(
            "training {what}; {:.1} TFLOP per epoch of {n_train} samples, at most {} epoch(s)",
            flops / 1e12,
            p.epochs
        ));
    }
    Ok(())
}

impl Node for Train {
    const KIND: &'static str = "train";
    // 3: the convolutions' weight gradients as one matrix product each (learn::conv): the
    // weights differ from version 2's in the last bits. 4: forward pass and input gradient
    // too, over the whole batch (learn::same_conv): the last bits again.
    const VERSION: u32 = 4;
    type Params = TrainConfig;

    fn inputs() -> Vec<Port> {
        vec![Port::many("samples", SAMPLES)]
    }

    fn outputs() -> Vec<Port> {
        vec![Port::one("model", MODEL)]
    }

    fn summary() -> &'static str {
        "train the CNN (timecnn or tempcnn) on samples, with early stopping and holdout matrices"
    }

    fn check(p: &TrainConfig) -> Result<(), Vec<(String, String)>> {
        let errs = p.problems();
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    fn run(&self, ctx: &mut RunCtx, p: &TrainConfig, inputs: &Inputs) -> Result<(), NodeError> {
        let arts = inputs.all("samples");
        let (samples, duplicates) = crate::samples::gather(arts)?;
        let from = match arts {
            [one] => one.step_id.clone(),
            many => format!("{} ({} steps)", many[0].step_id, many.len()),
        };
        if arts.len() > 1 {
            ctx.metric("duplicate_points", duplicates as u64);
        }
        let legend = p.legend.clone().unwrap_or_default();
        let labels = check_samples(&samples, &legend, &from)?;
        let single: Vec<String> = samples
            .class_counts()
            .iter()
            .filter(|(_, n)| **n < 2)
            .map(|(c, _)| format!("{c} ({})", legend.name(*c)))
            .collect();
        if !single.is_empty() {
            ctx.warn(format!(
                "class(es) with a single sample, trained on without a validation sample: {}",
                single.join(", ")
            ));
        }
        let dims = Dims {
            seasons: samples.seasons.len(),
            features: samples.features.len(),
            classes: legend.len(),
        };
        let data = Data {
            rows: &samples.data,
            labels: &labels,
            dims,
        };
        let base = p.seed.unwrap_or_else(|| ctx.seed());
        let n_train = fit::n_train(&labels, dims.classes, p.val_fraction);
        let batches = fit::batches_per_epoch(n_train, p.batch_size);
        // Repeats train side by side, one per thread of the pool.
        let side_by_side = p.repeats.min(rayon::current_num_threads()).max(1);
        forecast(ctx, p, dims, n_train, samples.data.len(), side_by_side)?;
        let progress = ctx
            .progress((p.epochs * batches * p.repeats) as u64, "batches")
            .at_most();
        let shared: &RunCtx = ctx;
        let first_batch = |took: Duration, batches: usize| {
            let rounds = p.repeats.div_ceil(side_by_side);
            let epoch = took.as_secs_f64() * batches as f64;
            let at_most = epoch * (p.epochs * rounds) as f64;
            if at_most >= LONG_TRAINING.as_secs_f64() {
                shared.note(&format!(
                    "the first batch took {}: about {} per epoch of {batches} batch(es), at most {} \
                     for {} epoch(s) x {} repeat(s) (early stopping, after `patience: {}` epochs \
                     without a better validation loss, can end it sooner)",
                    human_duration(took),
                    human_duration(Duration::from_secs_f64(epoch)),
                    human_duration(Duration::from_secs_f64(at_most.min(1e12))),
                    p.epochs,
                    p.repeats,
                    p.patience
                ));
            }
        };
        let fitted: Vec<Fitted> = (0..p.repeats)
            .into_par_iter()
            .map(|k| {
                let watch = Watch {
                    progress: Some(&progress),
                    first_batch: (k == 0).then_some(&first_batch as _),
                };
                fit::fit(&data, p, base.wrapping_add(k as u64), watch)
            })
            .collect::<Result<_, String>>()
            .map_err(NodeError::new)?;
        let first = &fitted[0];
        let meta = ModelMeta {
            arch: p.arch,
            config: p.clone(),
            seed: base,
            year: samples.year,
            label_year: samples.label_year,
            seasons: samples.seasons.clone(),
            features: samples.features.clone(),
            legend,
            members: fitted
                .iter()
                .enumerate()
                .map(|(k, f)| Member {
                    repeat: k,
                    file: weights_file(k),
                    mean: f.standardiser.mean.clone(),
                    sd: f.standardiser.sd.clone(),
                })
                .collect(),
            n_train: first.n_train,
            n_val: first.n_val,
            epochs_run: first.curve.len(),
            best_epoch: first.best_epoch,
            val_acc: fitted.iter().map(|f| f.val_acc).collect(),
            holdout: fitted
                .iter()
                .enumerate()
                .map(|(k, f)| Holdout {
                    repeat: k,
                    seed: f.seed,
                    matrix: f.confusion.clone(),
                })
                .collect(),
        };
        let mut curve = String::from("epoch,train_loss,val_loss,val_acc\n");
        for e in &first.curve {
            curve.push_str(&format!(
                "{},{},{},{}\n",
                e.epoch, e.train_loss, e.val_loss, e.val_acc
            ));
        }
        let epochs = first.curve.len();
        let mean_acc = meta.val_acc.iter().sum::<f64>() / meta.val_acc.len() as f64;
        for (k, f) in fitted.into_iter().enumerate() {
            let weights = crate::learn::to_bytes(f.net).map_err(NodeError::new)?;
            ctx.write_output("model", &weights_file(k), &weights)?;
        }
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| NodeError::new(e.to_string()))?;
        ctx.write_output("model", CONFIG_FILE, &json)?;
        ctx.write_output("model", CURVE_FILE, curve.as_bytes())?;
        ctx.metric("val_acc", mean_acc);
        ctx.metric("epochs", epochs as u64);
        ctx.metric("best_epoch", meta.best_epoch as u64);
        ctx.metric("n_train", meta.n_train as u64);
        ctx.metric("n_val", meta.n_val as u64);
        ctx.set_meta(
            "model",
            serde_json::to_value(&meta).map_err(|e| NodeError::new(e.to_string()))?,
        )
    }
}

/// Legend index of every sample's label, after the checks: samples present, no NaN, labels in
/// the legend.
fn check_samples(s: &Samples, legend: &Legend, step: &str) -> Result<Vec<usize>, NodeError> {
    if s.is_empty() {
        return Err(NodeError::new(format!(
            "the samples from `{step}` are empty: nothing to train on"
        )));
    }
    if s.features.is_empty() || s.seasons.is_empty() {
        return Err(NodeError::new(format!(
            "the samples from `{step}` have {} seasons and {} features",
            s.seasons.len(),
            s.features.len()
        )));
    }
    let f = s.features.len();
    let nan: Vec<usize> = (0..s.len())
        .filter(|&i| s.row(i).iter().any(|v| !v.is_finite()))
        .collect();
    if let Some(&i) = nan.first() {
        let k = s.row(i).iter().position(|v| !v.is_finite()).expect("found");
        return Err(NodeError::new(format!(
            "{} sample(s) from `{step}` have NaN or infinite features, the first `{}` in \
             feature `{}` of season `{}`",
            nan.len(),
            s.points[i].id,
            s.features[k % f],
            s.seasons[k / f]
        ))
        .with_help("samples must come from pixels with data in every season and feature"));
    }
    let counts = s.class_counts();
    let unknown: Vec<String> = counts
        .iter()
        .filter(|(c, _)| legend.index_of(**c).is_none())
        .map(|(c, n)| format!("class {c} ({n} samples)"))
        .collect();
    if !unknown.is_empty() {
        let codes: Vec<String> = legend.0.iter().map(|c| c.code.to_string()).collect();
        return Err(NodeError::new(format!(
            "labels not in the model's legend: {}",
            unknown.join(", ")
        ))
        .with_help(format!(
            "the legend has codes {}; set `legend` or fix the labels",
            codes.join(", ")
        )));
    }
    Ok(s.points
        .iter()
        .map(|p| legend.index_of(p.class).expect("checked"))
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::learn::{Arch, WEIGHTS_FILE};
    use crate::samples::Point;
    use crate::simulate::rng::Rng;
    use lulc_engine::{ArtifactIn, erase};
    use serde_json::{Value, json};

    fn collecting() -> (
        RunCtx,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (live, lines) = lulc_engine::LiveLog::collecting(Duration::ZERO);
        let ctx = RunCtx::for_test("train", Train::outputs(), dir.path()).with_live_log(live);
        (ctx, lines, dir)
    }

    #[test]
    fn a_network_larger_than_the_memory_is_refused_before_training_with_what_to_lower() {
        let Some(avail) = available_memory() else {
            eprintln!("skipped: this system does not say how much memory is available");
            return;
        };
        let (ctx, _, _dir) = collecting();
        let cfg = TrainConfig {
            arch: Arch::Tempcnn,
            ..TrainConfig::default()
        };
        // 1 feature x 1,000,000 time steps: 16 G weights (about 390 GB for Adam alone).
        let dims = Dims {
            seasons: 1_000_000,
            features: 1,
            classes: 14,
        };
        assert!(Cost::of(cfg.arch, dims).training_bytes(256) > avail);
        let e = forecast(&ctx, &cfg, dims, 300, 300 * 1_000_000, 1).unwrap_err();
        assert!(
            e.message.starts_with(
                "training `tempcnn` on 1000000 season(s) x 1 feature(s): 16384.0 M weights"
            ),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("needs more memory than the"),
            "{}",
            e.message
        );
        let help = e.help.unwrap();
        assert!(
            help.starts_with("lower `batch_size` (each sample of a batch holds 2.9 GiB)"),
            "{help}"
        );
    }

    #[test]
    fn a_large_training_is_said_before_it_starts_and_a_small_one_is_not() {
        let (ctx, lines, _dir) = collecting();
        let cfg = TrainConfig {
            arch: Arch::Tempcnn,
            ..TrainConfig::default()
        };
        let small = Dims {
            seasons: 6,
            features: 30,
            classes: 14,
        };
        forecast(&ctx, &cfg, small, 3000, 3000 * 180, 1).unwrap();
        assert!(lines.lock().unwrap().is_empty());
        // 1 feature x 10,000 time steps, a few thousand samples: 3.5 GFLOP per sample.
        let long = Dims {
            seasons: 10_000,
            features: 1,
            classes: 14,
        };
        if forecast(&ctx, &cfg, long, 2000, 2000 * 10_000, 1).is_err() {
            eprintln!("skipped the note: this machine has too little memory for the example");
            return;
        }
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with(
                "note: train: training `tempcnn` on 10000 season(s) x 1 feature(s): 163.9 M weights"
            ),
            "{lines:?}"
        );
        assert!(
            lines[0].contains("TFLOP per epoch of 2000 samples, at most 100 epoch(s)"),
            "{lines:?}"
        );
    }

    pub(crate) const SEASONS: [&str; 3] = ["S1", "S2", "S3"];
    pub(crate) const FEATURES: [&str; 4] = ["NDVI", "VV", "VH", "DSM"];

    /// Value of feature `f` in season `s` for class `code` (legend codes 1..=5): separable.
    pub(crate) fn signal(code: u8, s: usize, f: usize) -> f32 {
        let k = usize::from(code - 1);
        let hi = if k == s * FEATURES.len() + f {
            3.0
        } else {
            0.0
        };
        50.0 * f as f32 + 10.0 * hi
    }

    /// `n` samples of classes 1..=5, separable, with noise.
    pub(crate) fn samples(n: usize, seed: u64) -> Samples {
        let mut rng = Rng::new(&[seed]);
        let mut points = Vec::new();
        let mut data = Vec::new();
        for i in 0..n {
            let code = (i % 5) as u8 + 1;
            points.push(Point {
                id: format!("p{i:05}"),
                x: i as f64,
                y: 0.0,
                class: code,
            });
            for s in 0..SEASONS.len() {
                for f in 0..FEATURES.len() {
                    data.push(signal(code, s, f) + rng.normal() as f32 * 3.0);
                }
            }
        }
        Samples {
            year: Some(2020),
            label_year: Some(2020),
            crs: None,
            seasons: SEASONS.iter().map(|s| s.to_string()).collect(),
            features: FEATURES.iter().map(|s| s.to_string()).collect(),
            points,
            data,
        }
    }

    pub(crate) fn samples_art(s: Samples, dir: &Path) -> ArtifactIn {
        let out = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx = RunCtx::for_test("sample", vec![Port::one("samples", SAMPLES)], &out);
        s.write(&mut ctx, "samples").unwrap();
        let o = &ctx.outputs()["samples"];
        ArtifactIn {
            step_id: "sample[year=2020]".into(),
            dims: BTreeMap::new(),
            ty: SAMPLES.into(),
            digest: "blake3:samples".into(),
            files: o.files.clone(),
            meta: o.meta.clone(),
        }
    }

    pub(crate) fn run(params: Value, art: &ArtifactIn, dir: &Path) -> Result<RunCtx, NodeError> {
        let node = erase(Train);
        let params = node
            .check_params(&params)
            .map_err(|e| NodeError::new(e[0].message.clone()))?;
        let out = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx = RunCtx::for_test("train", Train::outputs(), &out).with_seed(11);
        let inputs = Inputs {
            ports: BTreeMap::from([("samples".to_string(), vec![art.clone()])]),
        };
        node.run(&mut ctx, &params, &inputs)?;
        Ok(ctx)
    }

    #[test]
    fn samples_of_several_tiles_are_one_set_with_overlap_points_taken_from_the_first_tile() {
        let dir = tempfile::tempdir().unwrap();
        let all = samples(40, 3);
        // Tile 48A1 has points 0..25, tile 48B1 points 20..40: 20..25 lie in the overlap. Tile
        // 48B1's copies of them carry other values, which must not be kept.
        let part = |range: std::ops::Range<usize>, shift: f32, tile: &str| {
            let mut s = all.clone();
            s.points = all.points[range.clone()].to_vec();
            s.data = range
                .flat_map(|i| all.row(i).iter().map(move |v| v + shift))
                .collect();
            let mut art = samples_art(s, dir.path());
            art.step_id = format!("migrated[tile={tile},year=2020]");
            art.dims
                .insert("tile".into(), lulc_engine::DimValue::Str(tile.into()));
            art
        };
        let a = part(0..25, 0.0, "48A1");
        let b = part(20..40, 1000.0, "48B1");
        for arts in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
            let (got, dups) = crate::samples::gather(&arts).unwrap();
            assert_eq!(dups, 5);
            assert_eq!(got.len(), 40);
            assert_eq!(
                got.row(22),
                all.row(22),
                "the overlap point comes from 48A1"
            );
            assert_eq!(got.row(30)[0], all.row(30)[0] + 1000.0);
            let ids: Vec<&str> = got.points.iter().map(|p| p.id.as_str()).collect();
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted by id, unique");
        }
        let inputs = Inputs {
            ports: BTreeMap::from([("samples".to_string(), vec![b, a])]),
        };
        let node = erase(Train);
        let params = node.check_params(&small()).unwrap();
        let out = tempfile::Builder::new()
            .tempdir_in(dir.path())
            .unwrap()
            .keep();
        let mut ctx = RunCtx::for_test("train", Train::outputs(), &out).with_seed(11);
        node.run(&mut ctx, &params, &inputs).unwrap();
        assert_eq!(ctx.metrics()["duplicate_points"], json!(5));
        assert_eq!(
            ctx.metrics()["n_train"].as_u64().unwrap() + ctx.metrics()["n_val"].as_u64().unwrap(),
            40
        );
    }

    fn err_of(r: Result<RunCtx, NodeError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => format!("{} | help: {}", e.message, e.help.unwrap_or_default()),
        }
    }

    fn files(ctx: &RunCtx) -> BTreeMap<String, Vec<u8>> {
        ctx.outputs()["model"]
            .files
            .iter()
            .map(|(k, p)| (k.clone(), std::fs::read(p).unwrap()))
            .collect()
    }

    fn small() -> Value {
        json!({"epochs": 8, "batch_size": 32, "patience": 4})
    }

    #[test]
    fn train_writes_a_model_with_its_metadata_and_reaches_high_accuracy() {
        let dir = tempfile::tempdir().unwrap();
        let art = samples_art(samples(250, 1), dir.path());
        let ctx = run(small(), &art, dir.path()).unwrap();
        let out = &ctx.outputs()["model"];
        let meta: ModelMeta = serde_json::from_value(out.meta.clone()).unwrap();
        assert!(meta.val_acc[0] > 0.9, "{:?}", meta.val_acc);
        assert_eq!(meta.features, FEATURES);
        assert_eq!(meta.seasons, SEASONS);
        assert_eq!(meta.legend, Legend::default());
        assert_eq!((meta.n_train, meta.n_val), (200, 50));
        assert_eq!(meta.seed, 11);
        assert_eq!(meta.holdout.len(), 1);
        assert_eq!(meta.holdout[0].matrix.len(), 14);
        let total: u64 = meta.holdout[0].matrix.iter().flatten().sum();
        assert_eq!(total, 50);
        // Standardisation stored: the training split's per-feature mean is near the signal's.
        assert_eq!(meta.members.len(), 1);
        let m = &meta.members[0];
        assert_eq!(m.file, WEIGHTS_FILE);
        assert_eq!(m.mean.len(), 4);
        assert!((m.mean[1] - 50.0).abs() < 5.0, "{:?}", m.mean);
        assert!(m.sd.iter().all(|s| *s > 0.0));
        let f = files(&ctx);
        let curve = String::from_utf8(f[CURVE_FILE].clone()).unwrap();
        assert!(
            curve.starts_with("epoch,train_loss,val_loss,val_acc\n1,"),
            "{curve}"
        );
        assert_eq!(curve.lines().count(), meta.epochs_run + 1);
        let back: ModelMeta = serde_json::from_slice(&f[CONFIG_FILE]).unwrap();
        assert_eq!(back, meta);
        assert!(f[WEIGHTS_FILE].len() > 10_000);
    }

    #[test]
    fn train_is_bit_identical_twice_and_whatever_the_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let art = samples_art(samples(120, 2), dir.path());
        let params = json!({"epochs": 3, "batch_size": 16, "repeats": 2, "arch": "tempcnn"});
        let in_pool = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let ctx = pool.install(|| run(params.clone(), &art, dir.path()).unwrap());
            (files(&ctx), ctx.outputs()["model"].meta.clone())
        };
        let a = in_pool(1);
        let b = in_pool(1);
        let c = in_pool(3);
        assert!(a == b, "two runs differ");
        assert!(a == c, "1 and 3 threads differ");
        // Repeats: one matrix per split, seeds base + k.
        let meta: ModelMeta = serde_json::from_value(a.1).unwrap();
        let seeds: Vec<u64> = meta.holdout.iter().map(|h| h.seed).collect();
        assert_eq!(seeds, vec![11, 12]);
        // Every repeat's network is stored, each with its own split's standardisation.
        let names: Vec<&str> = meta.members.iter().map(|m| m.file.as_str()).collect();
        assert_eq!(names, ["model.bpk", "model_1.bpk"]);
        assert_ne!(a.0["model.bpk"], a.0["model_1.bpk"]);
        assert_ne!(meta.members[0].mean, meta.members[1].mean);
        for h in &meta.holdout {
            assert_eq!(h.matrix.iter().flatten().sum::<u64>(), meta.n_val as u64);
        }
        // Another seed, other weights.
        let ctx = run(
            json!({"epochs": 3, "batch_size": 16, "arch": "tempcnn", "seed": 5}),
            &art,
            dir.path(),
        )
        .unwrap();
        assert_ne!(files(&ctx)[WEIGHTS_FILE], a.0[WEIGHTS_FILE]);
    }

    #[test]
    fn train_errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let mut empty = samples(0, 1);
        empty.points.clear();
        let e = err_of(run(small(), &samples_art(empty, dir.path()), dir.path()));
        assert!(e.contains("empty: nothing to train on"), "{e}");

        let mut one = samples(20, 1);
        one.points[19].class = 9;
        let ctx = run(small(), &samples_art(one, dir.path()), dir.path()).unwrap();
        let w = ctx.warnings().join("\n");
        assert!(
            w.contains("single sample, trained on without a validation sample: 9 (Evergreen"),
            "{w}"
        );
        let meta: ModelMeta = serde_json::from_value(ctx.outputs()["model"].meta.clone()).unwrap();
        // Classes 1-4: 4 samples, 1 held out; class 5: 3, 1 held out; class 9: 1, trains only.
        assert_eq!((meta.n_train, meta.n_val), (15, 5));

        let mut nan = samples(20, 1);
        let id = nan.points[3].id.clone();
        nan.data[3 * 12 + 5] = f32::NAN;
        let e = err_of(run(small(), &samples_art(nan, dir.path()), dir.path()));
        assert!(
            e.contains("1 sample(s) from `sample[year=2020]` have NaN"),
            "{e}"
        );
        assert!(
            e.contains(&format!("`{id}` in feature `VV` of season `S2`")),
            "{e}"
        );

        let mut unknown = samples(20, 1);
        unknown.points[0].class = 20;
        unknown.points[5].class = 20;
        let e = err_of(run(small(), &samples_art(unknown, dir.path()), dir.path()));
        assert!(
            e.contains("labels not in the model's legend: class 20 (2 samples)"),
            "{e}"
        );

        let node = erase(Train);
        for bad in [
            json!({"val_fraction": 0.0}),
            json!({"arch": "resnet"}),
            json!({"epochs": 0}),
            json!({"legend": [{"code": 0, "name": "x", "colour": "#000000"}]}),
            json!({"learning_rate": 0.1}),
        ] {
            assert!(node.check_params(&bad).is_err(), "{bad}");
        }
        let canon = node.check_params(&json!({})).unwrap();
        assert_eq!(canon["arch"], "timecnn");
        assert_eq!(canon["batch_size"], 256);
        assert_eq!(canon["patience"], 10);
    }
}
