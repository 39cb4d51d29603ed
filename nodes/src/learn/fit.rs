//! The training loop: a stratified train/validation split, standardisation learned on the
//! training split, mini-batch Adam on cross-entropy, early stopping on the validation loss
//! (keeping the best epoch's weights), and the validation confusion matrix of the best epoch.
//!
//! Everything random (split, initial weights, epoch order, dropout) comes from
//! [`Rng`] streams keyed by the repeat's seed; the backend computes single-threaded on the
//! calling thread, so a repeat's result depends on its inputs and seed only.

use std::time::{Duration, Instant};

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use lulc_engine::Progress;

use super::{Dims, Net, Standardiser, TrainConfig, predict};
use crate::simulate::rng::Rng;

/// Training data: rows `[n][seasons][features]` and the legend index of each row's label.
#[derive(Clone, Copy, Debug)]
pub struct Data<'a> {
    pub rows: &'a [f32],
    pub labels: &'a [usize],
    pub dims: Dims,
}

/// What a training run says while it runs (nothing, by default).
#[derive(Clone, Copy, Default)]
pub struct Watch<'a> {
    /// Advanced by one per batch trained.
    pub progress: Option<&'a Progress>,
    /// Called once, after the first batch, with the time it took and the number of batches of
    /// an epoch.
    pub first_batch: Option<&'a (dyn Fn(Duration, usize) + Sync)>,
}

/// Batches of one epoch over `n` training samples (a last batch of one is skipped).
pub fn batches_per_epoch(n: usize, batch_size: usize) -> usize {
    let b = batch_size.max(1);
    n / b + usize::from(n % b >= 2)
}

/// Samples `fit` trains on (the rest validates) for `n` samples of `classes`.
pub fn n_train(labels: &[usize], classes: usize, val_fraction: f64) -> usize {
    split(labels, classes, val_fraction, 0).0.len()
}

/// One line of the learning curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Epoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_acc: f64,
}

/// What one repeat produced.
#[derive(Debug)]
pub struct Fitted {
    pub seed: u64,
    /// The best epoch's network, on a plain (non-autodiff) device.
    pub net: Net,
    pub standardiser: Standardiser,
    pub n_train: usize,
    pub n_val: usize,
    pub curve: Vec<Epoch>,
    pub best_epoch: usize,
    pub val_acc: f64,
    /// `matrix[predicted][reference]`, legend order.
    pub confusion: Vec<Vec<u64>>,
}

/// Validation loss, epoch, weights, accuracy and confusion matrix of an epoch.
type Best = (f64, usize, Net, f64, Vec<Vec<u64>>);

/// Salts of the independent random streams of a repeat.
const SALT_SPLIT: u64 = 0x0073_706c_6974;
const SALT_INIT: u64 = 0x696e_6974;
const SALT_TRAIN: u64 = 0x0074_7261_696e;

/// Stratified split: per class (in legend order), a shuffled `round(n * val_fraction)` rows
/// (at least 1, at most n - 1) go to validation; a class with a single row trains only (the
/// caller warns). Both halves are returned sorted.
pub fn split(
    labels: &[usize],
    classes: usize,
    val_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = Rng::new(&[SALT_SPLIT, seed]);
    let mut by_class = vec![Vec::new(); classes];
    for (i, &c) in labels.iter().enumerate() {
        by_class[c].push(i);
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for mut idx in by_class {
        if idx.is_empty() {
            continue;
        }
        shuffle(&mut idx, &mut rng);
        let n = idx.len();
        let n_val = if n < 2 {
            0
        } else {
            ((n as f64 * val_fraction).round() as usize).clamp(1, n - 1)
        };
        val.extend_from_slice(&idx[..n_val]);
        train.extend_from_slice(&idx[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

fn shuffle(v: &mut [usize], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
}

/// Rows `idx` of `data`, standardised.
fn gather(data: &Data, idx: &[usize], st: &Standardiser) -> Vec<f32> {
    let w = data.dims.seasons * data.dims.features;
    let mut out = Vec::with_capacity(idx.len() * w);
    for &i in idx {
        out.extend_from_slice(&data.rows[i * w..(i + 1) * w]);
    }
    st.apply(&mut out);
    out
}

/// Mean cross-entropy of logits against one-hot targets.
fn cross_entropy(logits: Tensor<2>, onehot: Tensor<2>) -> Tensor<1> {
    (log_softmax(logits, 1) * onehot).sum_dim(1).mean().neg()
}

/// Train one repeat with seed `seed`.
pub fn fit(data: &Data, cfg: &TrainConfig, seed: u64, watch: Watch) -> Result<Fitted, String> {
    let dims = data.dims;
    let w = dims.seasons * dims.features;
    let (train_idx, val_idx) = split(data.labels, dims.classes, cfg.val_fraction, seed);
    if train_idx.len() < 2 || val_idx.is_empty() {
        return Err(format!(
            "too few samples to train: {} for training and {} for validation",
            train_idx.len(),
            val_idx.len()
        ));
    }
    let st = Standardiser::fit(data.rows, w, dims.features, &train_idx);
    let train_x = gather(data, &train_idx, &st);
    let val_x = gather(data, &val_idx, &st);
    let train_y: Vec<usize> = train_idx.iter().map(|&i| data.labels[i]).collect();
    let val_y: Vec<usize> = val_idx.iter().map(|&i| data.labels[i]).collect();

    let plain = super::cpu();
    let device = plain.clone().autodiff();
    let mut net = Net::new(cfg.arch, dims, cfg.dropout, mix(SALT_INIT, seed), &device);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut rng = Rng::new(&[SALT_TRAIN, seed]);

    let mut order: Vec<usize> = (0..train_y.len()).collect();
    let mut curve = Vec::new();
    // (val_loss, epoch, weights, val_acc, confusion) of the best epoch so far.
    let mut best: Option<Best> = None;
    let mut since_best = 0;
    for epoch in 1..=cfg.epochs {
        shuffle(&mut order, &mut rng);
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        for batch in order.chunks(cfg.batch_size) {
            // Batch norm needs two samples; a last batch of one is skipped.
            if batch.len() < 2 {
                continue;
            }
            let batch_started = Instant::now();
            let b = batch.len();
            let mut x = Vec::with_capacity(b * w);
            let mut onehot = vec![0.0f32; b * dims.classes];
            for (r, &i) in batch.iter().enumerate() {
                x.extend_from_slice(&train_x[i * w..(i + 1) * w]);
                onehot[r * dims.classes + train_y[i]] = 1.0;
            }
            let x = Tensor::<2>::from_data(TensorData::new(x, [b, w]), &device);
            let onehot =
                Tensor::<2>::from_data(TensorData::new(onehot, [b, dims.classes]), &device);
            let loss = cross_entropy(net.forward(x, dims, Some(&mut rng)), onehot);
            let value = f64::from(loss.clone().into_scalar::<f32>());
            if !value.is_finite() {
                return Err(format!(
                    "the training loss became {value} in epoch {epoch} (try a lower `lr`)"
                ));
            }
            loss_sum += value * b as f64;
            seen += b;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(cfg.lr, net, grads);
            if epoch == 1
                && seen == b
                && let Some(f) = watch.first_batch
            {
                f(
                    batch_started.elapsed(),
                    batches_per_epoch(order.len(), cfg.batch_size),
                );
            }
            if let Some(p) = watch.progress {
                p.add(1);
            }
        }
        let snapshot = burn::module::Module::valid(&net);
        let (val_loss, val_acc, confusion) = evaluate(&snapshot, dims, &val_x, &val_y, &plain);
        curve.push(Epoch {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            val_loss,
            val_acc,
        });
        let improved = best.as_ref().is_none_or(|(l, ..)| val_loss < *l);
        if improved {
            best = Some((val_loss, epoch, snapshot, val_acc, confusion));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= cfg.patience {
                break;
            }
        }
    }
    let (_, best_epoch, net, val_acc, confusion) = best.expect("at least one epoch ran");
    Ok(Fitted {
        seed,
        net,
        standardiser: st,
        n_train: train_idx.len(),
        n_val: val_idx.len(),
        curve,
        best_epoch,
        val_acc,
        confusion,
    })
}

fn mix(salt: u64, seed: u64) -> u64 {
    crate::simulate::rng::hash(&[salt, seed])
}

/// Mean cross-entropy, accuracy and confusion matrix (`[predicted][reference]`) of standardised
/// rows.
pub fn evaluate(
    net: &Net,
    dims: Dims,
    rows: &[f32],
    labels: &[usize],
    device: &Device,
) -> (f64, f64, Vec<Vec<u64>>) {
    let p = predict(net, dims, rows, device);
    let mut confusion = vec![vec![0u64; dims.classes]; dims.classes];
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for (row, &y) in p.chunks_exact(dims.classes).zip(labels) {
        loss -= f64::from(row[y].max(1e-30)).ln();
        let mut best = 0;
        for (k, v) in row.iter().enumerate() {
            if *v > row[best] {
                best = k;
            }
        }
        confusion[best][y] += 1;
        correct += usize::from(best == y);
    }
    let n = labels.len().max(1) as f64;
    (loss / n, correct as f64 / n, confusion)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` samples of `classes` classes, separable: class `c` has feature `c % features` high in
    /// season `c / features`, plus noise.
    pub(crate) fn separable(n: usize, dims: Dims, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = Rng::new(&[seed]);
        let w = dims.seasons * dims.features;
        let mut rows = Vec::with_capacity(n * w);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let c = i % dims.classes;
            for k in 0..w {
                let signal = if k == c % w { 3.0 } else { 0.0 };
                rows.push(100.0 + 10.0 * (signal + rng.normal() as f32 * 0.5));
            }
            labels.push(c);
        }
        (rows, labels)
    }

    #[test]
    fn split_is_stratified_and_seeded() {
        let labels: Vec<usize> = (0..100).map(|i| i % 4).collect();
        let (t, v) = split(&labels, 5, 0.2, 7);
        assert_eq!(v.len(), 20);
        assert_eq!(t.len(), 80);
        for c in 0..4 {
            assert_eq!(v.iter().filter(|&&i| labels[i] == c).count(), 5);
        }
        assert_eq!(split(&labels, 5, 0.2, 7), (t.clone(), v.clone()));
        assert_ne!(split(&labels, 5, 0.2, 8).1, v);
        // Two samples: one each side.
        let (t, v) = split(&[0, 0], 1, 0.2, 1);
        assert_eq!((t.len(), v.len()), (1, 1));
    }

    #[test]
    fn standardiser_is_per_feature_over_seasons() {
        // 2 samples x 2 seasons x 2 features.
        let data = [1.0, 10.0, 3.0, 30.0, 5.0, 50.0, 7.0, 70.0];
        let st = Standardiser::fit(&data, 4, 2, &[0, 1]);
        assert_eq!(st.mean, vec![4.0, 40.0]);
        let sd0 = (5.0f32).sqrt();
        assert!((st.sd[0] - sd0).abs() < 1e-6);
        let mut row = [4.0, 40.0, 4.0 + sd0, 40.0];
        st.apply(&mut row);
        assert_eq!(row[0], 0.0);
        assert!((row[2] - 1.0).abs() < 1e-6);
        // A constant feature is left at unit scale.
        let st = Standardiser::fit(&[2.0, 2.0], 1, 1, &[0, 1]);
        assert_eq!(st.sd, vec![1.0]);
    }

    #[test]
    fn training_on_separable_samples_reaches_high_accuracy() {
        let dims = Dims {
            seasons: 3,
            features: 4,
            classes: 5,
        };
        let (rows, labels) = separable(400, dims, 1);
        let data = Data {
            rows: &rows,
            labels: &labels,
            dims,
        };
        for arch in [super::super::Arch::Timecnn, super::super::Arch::Tempcnn] {
            let cfg = TrainConfig {
                arch,
                epochs: 15,
                batch_size: 32,
                patience: 5,
                ..TrainConfig::default()
            };
            let f = fit(&data, &cfg, 3, Watch::default()).unwrap();
            assert!(f.val_acc > 0.9, "{arch:?}: {:?}", f.curve);
            assert_eq!((f.n_train, f.n_val), (320, 80));
            let total: u64 = f.confusion.iter().flatten().sum();
            assert_eq!(total, 80);
            assert!(f.best_epoch >= 1 && f.best_epoch <= f.curve.len());
        }
    }
}
