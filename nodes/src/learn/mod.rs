//! The CNN classifier: networks ([`net`]), the training loop ([`fit`]), the model's metadata
//! ([`ModelMeta`]) and a loaded model that classifies pixels ([`Classifier`]).
//!
//! Built on burn (tensors, layers, autodiff, Adam) with its `flex` CPU backend (or `ndarray`,
//! with the cargo feature of that name: [`cpu`]), single-threaded inside one training run:
//! with no backend thread pool, the same samples and seed give the same weights, bit for bit, whatever `--jobs` or the size of rayon's pool. Parallelism comes
//! from outside: `train` runs its repeats side by side, `infer` classifies blocks side by side.
//!
//! ## The `Model` artifact (written by `train`, read by `infer`)
//! Files:
//! - `model.bpk`: the weights of repeat 0 (its best epoch), a burnpack record (burn's
//!   `ModuleRecord::into_bytes`; parameter ids are numbered, not random, so the bytes are
//!   deterministic); `model_1.bpk`, `model_2.bpk`, ...: those of the other repeats (the
//!   [`ModelMeta::members`]; `infer` averages their probabilities);
//! - `config.json`: the [`ModelMeta`] again, pretty-printed, so the folder describes itself;
//! - `curve.csv`: `epoch,train_loss,val_loss,val_acc` of repeat 0.
//!
//! Metadata: [`ModelMeta`].

pub mod conv;
pub mod fit;
pub mod net;
mod same_conv;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::artifacts::Holdout;
use crate::classes::Legend;
pub use net::{Arch, Dims, Net};

/// File names inside a `Model` artifact.
pub const WEIGHTS_FILE: &str = "model.bpk";
pub const CONFIG_FILE: &str = "config.json";
pub const CURVE_FILE: &str = "curve.csv";

/// The weights file of repeat `k`: [`WEIGHTS_FILE`] for repeat 0, `model_<k>.bpk` after it.
pub fn weights_file(k: usize) -> String {
    if k == 0 {
        WEIGHTS_FILE.to_string()
    } else {
        format!("model_{k}.bpk")
    }
}

/// Bytes of memory this process may still take: the kernel's `MemAvailable`, lowered to what
/// is left under the cgroup's `memory.max` (Slurm jobs, containers); `None` where neither says.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let cgroup =
        read("memory.max").map(|max| max.saturating_sub(read("memory.current").unwrap_or(0)));
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Samples per forward pass when predicting (bounds the activations' memory: `timecnn` on
/// 6 x 30 inputs holds about 46 kB per sample and layer).
pub const PREDICT_BATCH: usize = 1024;

/// Hyperparameters: the params of `train` (defaults in brackets in its doc), stored in the
/// model's metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub arch: Arch,
    /// Maximum number of epochs.
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Dropout before and after the dense hidden layer (`tempcnn`'s convolution blocks keep
    /// their 0.2).
    pub dropout: f64,
    /// Stop after this many epochs without a lower validation loss; keep the best epoch.
    pub patience: usize,
    /// Share of each class held out for validation (stratified).
    pub val_fraction: f64,
    /// Train this many times on different random splits (seeds `seed + repeat`).
    pub repeats: usize,
    /// Base seed; `None`: the step's seed (from the spec's `seed`).
    pub seed: Option<u64>,
    /// Classes the model predicts; `None`: the 14 classes of `docs/method.md`.
    pub legend: Option<Legend>,
}

impl Default for TrainConfig {
    fn default() -> TrainConfig {
        TrainConfig {
            arch: Arch::Timecnn,
            epochs: 100,
            batch_size: 256,
            lr: 1e-3,
            dropout: 0.5,
            patience: 10,
            val_fraction: 0.2,
            repeats: 1,
            seed: None,
            legend: None,
        }
    }
}

impl TrainConfig {
    /// Problems with the values, as `(param, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |p: &str, m: String| out.push((p.to_string(), m));
        if self.epochs == 0 {
            bad("epochs", "must be at least 1".into());
        }
        if self.batch_size < 2 {
            bad(
                "batch_size",
                "must be at least 2 (batch norm needs two samples)".into(),
            );
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bad("lr", format!("must be a positive number, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bad(
                "dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            );
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            bad(
                "val_fraction",
                format!("must be in (0, 1), got {}", self.val_fraction),
            );
        }
        if self.repeats == 0 {
            bad("repeats", "must be at least 1".into());
        }
        if let Some(legend) = &self.legend {
            if legend.is_empty() {
                bad("legend", "has no class".into());
            }
            let mut seen = std::collections::BTreeSet::new();
            for c in &legend.0 {
                if c.code == 0 {
                    bad(
                        "legend",
                        format!("code 0 (`{}`) is nodata in every map", c.name),
                    );
                } else if !seen.insert(c.code) {
                    bad("legend", format!("code {} appears twice", c.code));
                }
            }
        }
        out
    }
}

/// Metadata of a `Model` artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    pub arch: Arch,
    /// The hyperparameters, as `train`'s params (defaults filled in).
    pub config: TrainConfig,
    /// The base seed used (repeat `k` used `seed + k`).
    pub seed: u64,
    /// Year of the training features and of their labels, from the samples.
    pub year: Option<i64>,
    pub label_year: Option<i64>,
    /// Season names, in the order of the input's rows.
    pub seasons: Vec<String>,
    /// Feature names, in order: `infer` requires the same.
    pub features: Vec<String>,
    /// Classes in model output order (output `i` is `legend[i].code`).
    pub legend: Legend,
    /// One trained network per repeat, in repeat order (member 0 is repeat 0, the one whose
    /// split sizes, epochs and curve are recorded here).
    pub members: Vec<Member>,
    /// Sizes of repeat 0's split.
    pub n_train: usize,
    pub n_val: usize,
    /// Epochs repeat 0 ran (early stopping) and its best epoch (1-based; the weights stored).
    pub epochs_run: usize,
    pub best_epoch: usize,
    /// Validation accuracy (best epoch) of each repeat.
    pub val_acc: Vec<f64>,
    /// Validation confusion matrix of each repeat (rows predicted, columns reference, legend
    /// order).
    pub holdout: Vec<Holdout>,
}

/// One repeat's network in a `Model`: its weights file and the standardisation learned on its
/// training split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub repeat: usize,
    /// File name in the artifact ([`weights_file`]).
    pub file: String,
    /// Standardisation per feature (over all seasons), learned on this repeat's training split:
    /// the network sees `(value - mean) / sd`.
    pub mean: Vec<f32>,
    pub sd: Vec<f32>,
}

impl ModelMeta {
    pub fn dims(&self) -> Dims {
        Dims {
            seasons: self.seasons.len(),
            features: self.features.len(),
            classes: self.legend.len(),
        }
    }
}

/// Per-feature standardisation of `[n][seasons][features]` rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardiser {
    pub mean: Vec<f32>,
    pub sd: Vec<f32>,
}

impl Standardiser {
    /// Mean and sd (population) per feature over the rows `idx` of `data` (all seasons); a
    /// constant feature gets sd 1.
    pub fn fit(data: &[f32], width: usize, features: usize, idx: &[usize]) -> Standardiser {
        let mut sum = vec![0.0f64; features];
        let mut sq = vec![0.0f64; features];
        for &i in idx {
            for (k, v) in data[i * width..(i + 1) * width].iter().enumerate() {
                sum[k % features] += f64::from(*v);
            }
        }
        let count = (idx.len() * (width / features.max(1))).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        for &i in idx {
            for (k, v) in data[i * width..(i + 1) * width].iter().enumerate() {
                let d = f64::from(*v) - mean[k % features];
                sq[k % features] += d * d;
            }
        }
        let sd = sq
            .iter()
            .map(|s| {
                let sd = (s / count).sqrt();
                if sd > 1e-12 && sd.is_finite() {
                    sd as f32
                } else {
                    1.0
                }
            })
            .collect();
        Standardiser {
            mean: mean.iter().map(|m| *m as f32).collect(),
            sd,
        }
    }

    /// Standardise rows in place (`row.len()` a multiple of the feature count).
    pub fn apply(&self, rows: &mut [f32]) {
        let f = self.mean.len();
        for (k, v) in rows.iter_mut().enumerate() {
            *v = (*v - self.mean[k % f]) / self.sd[k % f];
        }
    }
}

/// The CPU device everything runs on: burn's `flex` backend (pure Rust; convolutions as
/// im2col + gemm), built without its `rayon` feature, so every operation computes on the
/// calling thread: the source of the bit-identical results.
///
/// With the cargo feature `ndarray` (`cargo build --features ndarray`), burn's `ndarray`
/// backend instead (also pure Rust, also single-threaded: no `multi-threads`). burn 0.22
/// deprecates it, and its convolutions index element by element: about 2 training samples/s
/// for `timecnn` on 6 x 30 inputs; it is there to compare backends, not to train.
#[cfg(not(feature = "ndarray"))]
pub fn cpu() -> Device {
    Device::flex()
}

/// The CPU device everything runs on: burn's `ndarray` backend (the cargo feature `ndarray`;
/// without it, `flex`). Single-threaded like `flex` (no `multi-threads`), so results are still
/// bit-identical whatever `--jobs`, though not equal to `flex`'s.
#[cfg(feature = "ndarray")]
#[allow(deprecated)] // burn 0.22 deprecates `ndarray` in favour of `flex`
pub fn cpu() -> Device {
    Device::ndarray()
}

/// Softmax probabilities `[n][classes]` of standardised rows (`n * seasons * features`
/// values), in batches of [`PREDICT_BATCH`], on a plain (non-autodiff) device.
pub fn predict(net: &Net, dims: Dims, rows: &[f32], device: &Device) -> Vec<f32> {
    let width = dims.seasons * dims.features;
    let n = rows.len() / width.max(1);
    let mut out = Vec::with_capacity(n * dims.classes);
    for start in (0..n).step_by(PREDICT_BATCH) {
        let b = PREDICT_BATCH.min(n - start);
        let x = Tensor::<2>::from_data(
            TensorData::new(
                rows[start * width..(start + b) * width].to_vec(),
                [b, width],
            ),
            device,
        );
        let p = burn::tensor::activation::softmax(net.forward(x, dims, None), 1);
        out.extend(
            p.into_data()
                .try_to_vec::<f32>()
                .expect("the network computes in f32"),
        );
    }
    out
}

/// Burnpack bytes of a network (deterministic: parameter ids are numbered at construction).
pub fn to_bytes(net: Net) -> Result<Vec<u8>, String> {
    net.into_record()
        .into_bytes()
        .map(|b| b.to_vec())
        .map_err(|e| format!("cannot serialise the model: {e}"))
}

/// A trained model, ready to classify: one network or the average of several (soft voting).
pub struct Classifier {
    pub meta: ModelMeta,
    nets: Vec<(Net, Standardiser)>,
    device: Device,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("arch", &self.meta.arch)
            .field("dims", &self.meta.dims())
            .field("members", &self.nets.len())
            .finish()
    }
}

impl Classifier {
    /// A model from its metadata and, for each member used (in order, at least one), the bytes
    /// of its weights file: `weights[i]` belongs to `meta.members[i]`.
    pub fn load(meta: ModelMeta, weights: Vec<Vec<u8>>) -> Result<Classifier, String> {
        let device = cpu();
        let dims = meta.dims();
        if weights.is_empty() || weights.len() > meta.members.len() {
            return Err(format!(
                "{} weights file(s) for a model of {} member(s)",
                weights.len(),
                meta.members.len()
            ));
        }
        let mut nets = Vec::with_capacity(weights.len());
        for (m, bytes) in meta.members.iter().zip(weights) {
            if m.mean.len() != dims.features || m.sd.len() != dims.features {
                return Err(format!(
                    "member {} of the model has {} means and {} sds for {} features",
                    m.repeat,
                    m.mean.len(),
                    m.sd.len(),
                    dims.features
                ));
            }
            let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
                .map_err(|e| format!("cannot read the weights of `{}`: {e}", m.file))?;
            let net = Net::new(meta.arch, dims, meta.config.dropout, 0, &device)
                .try_load_record(record)
                .map_err(|e| {
                    format!(
                        "the weights of `{}` do not fit a {} network: {e}",
                        m.file,
                        meta.arch.name()
                    )
                })?;
            let standardiser = Standardiser {
                mean: m.mean.clone(),
                sd: m.sd.clone(),
            };
            nets.push((net, standardiser));
        }
        Ok(Classifier { meta, nets, device })
    }

    /// Number of networks whose probabilities are averaged.
    pub fn members(&self) -> usize {
        self.nets.len()
    }

    /// Probabilities `[n][classes]` (legend order) of raw (not standardised) rows: the softmax
    /// of each member on the rows standardised its way, averaged over the members (summed in
    /// member order, then divided: deterministic).
    pub fn probabilities(&self, rows: &[f32]) -> Vec<f32> {
        let dims = self.meta.dims();
        let mut sum: Vec<f32> = Vec::new();
        let mut scratch = vec![0.0f32; rows.len()];
        for (net, standardiser) in &self.nets {
            scratch.copy_from_slice(rows);
            standardiser.apply(&mut scratch);
            let p = predict(net, dims, &scratch, &self.device);
            if sum.is_empty() {
                sum = p;
            } else {
                for (s, v) in sum.iter_mut().zip(&p) {
                    *s += v;
                }
            }
        }
        if self.nets.len() > 1 {
            let k = self.nets.len() as f32;
            sum.iter_mut().for_each(|v| *v /= k);
        }
        sum
    }

    /// Class index (legend order) and its probability for each raw (not standardised) row:
    /// the most probable class of [`Classifier::probabilities`] (the first on a tie).
    pub fn classify(&self, rows: &[f32]) -> Vec<(usize, f32)> {
        self.probabilities(rows)
            .chunks_exact(self.meta.dims().classes)
            .map(|row| {
                let mut best = 0;
                for (i, v) in row.iter().enumerate() {
                    if *v > row[best] {
                        best = i;
                    }
                }
                (best, row[best])
            })
            .collect()
    }
}
