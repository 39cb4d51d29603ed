//! The two networks: `timecnn` (JAXA's time-feature CNN, `docs/method.md`) and `tempcnn` (Pelletier
//! et al. 2019), built deterministically.
//!
//! Determinism: burn's own initialisers, dropout and parameter ids draw from process-wide random
//! generators (a CPU backend's seed is process-wide, parameter ids are random), which two
//! steps training at the same time would share. So weights are drawn here from a
//! [`Rng`] keyed by the step's seed (PyTorch's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
//! weights and biases), parameter ids are numbered in construction order, and dropout masks come
//! from the caller's [`Rng`]. Nothing random is left to burn.

use burn::module::{Module, Param, ParamId, RunningState};
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig1d, PaddingConfig2d,
};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::conv::{conv1d, conv2d};
use crate::simulate::rng::Rng;

/// Which network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Input `[batch, 1, seasons, features]`; three 3x3 Conv2d (32, 64, 64 channels, padding 1)
    /// each with BatchNorm and ReLU; flatten; Dropout; Linear 256 + ReLU; Dropout; Linear.
    #[default]
    Timecnn,
    /// Features as channels, time as the axis: `[batch, features, seasons]`; three Conv1d (64
    /// filters, kernel 5, padding 2) each with BatchNorm, ReLU and Dropout 0.2; flatten;
    /// Linear 256 + BatchNorm + ReLU + Dropout; Linear.
    Tempcnn,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Timecnn => "timecnn",
            Arch::Tempcnn => "tempcnn",
        }
    }
}

/// Shape of a network: what it reads and how many classes it predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub seasons: usize,
    pub features: usize,
    pub classes: usize,
}

/// Dropout of `tempcnn`'s convolution blocks (Pelletier et al. 2019).
pub const TEMPCNN_CONV_DROPOUT: f64 = 0.2;

/// Width of the dense hidden layer of both networks.
pub const HIDDEN: usize = 256;

/// Draws initial weights and numbers parameters in construction order.
struct Init<'a> {
    rng: Rng,
    next_id: u64,
    device: &'a Device,
}

impl Init<'_> {
    fn id(&mut self) -> ParamId {
        self.next_id += 1;
        ParamId::from(self.next_id)
    }

    fn tensor<const D: usize>(&self, values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(values, shape), self.device)
    }

    fn param<const D: usize>(&mut self, values: Vec<f32>, shape: [usize; D]) -> Param<Tensor<D>> {
        let mut p = Param::from_tensor(self.tensor(values, shape));
        p.id = self.id();
        p
    }

    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    fn uniform<const D: usize>(&mut self, shape: [usize; D], fan_in: usize) -> Param<Tensor<D>> {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let n: usize = shape.iter().product();
        let values = (0..n)
            .map(|_| self.rng.range(-bound, bound) as f32)
            .collect();
        self.param(values, shape)
    }

    fn conv2d(&mut self, cin: usize, cout: usize) -> Conv2d {
        let mut c = Conv2dConfig::new([cin, cout], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_initializer(Initializer::Zeros)
            .init(self.device);
        let fan_in = cin * 9;
        c.weight = self.uniform([cout, cin, 3, 3], fan_in);
        c.bias = Some(self.uniform([cout], fan_in));
        c
    }

    fn conv1d(&mut self, cin: usize, cout: usize, kernel: usize) -> Conv1d {
        let mut c = Conv1dConfig::new(cin, cout, kernel)
            .with_padding(PaddingConfig1d::Explicit(kernel / 2, kernel / 2))
            .with_initializer(Initializer::Zeros)
            .init(self.device);
        let fan_in = cin * kernel;
        c.weight = self.uniform([cout, cin, kernel], fan_in);
        c.bias = Some(self.uniform([cout], fan_in));
        c
    }

    fn linear(&mut self, din: usize, dout: usize) -> Linear {
        let mut l = LinearConfig::new(din, dout)
            .with_initializer(Initializer::Zeros)
            .init(self.device);
        // burn's default (row) layout stores the weight as [d_input, d_output].
        l.weight = self.uniform([din, dout], din);
        l.bias = Some(self.uniform([dout], din));
        l
    }

    fn batch_norm(&mut self, n: usize) -> BatchNorm {
        let mut bn = BatchNormConfig::new(n).init(self.device);
        bn.gamma = self.param(vec![1.0; n], [n]);
        bn.beta = self.param(vec![0.0; n], [n]);
        bn.running_mean = RunningState::with_id(self.id(), self.tensor(vec![0.0; n], [n]));
        bn.running_var = RunningState::with_id(self.id(), self.tensor(vec![1.0; n], [n]));
        bn
    }
}

/// Dropout from the caller's generator (`rng` is `None` outside training: identity).
fn dropout<const D: usize>(x: Tensor<D>, p: f64, rng: &mut Option<&mut Rng>) -> Tensor<D> {
    let Some(rng) = rng.as_deref_mut() else {
        return x;
    };
    if p <= 0.0 {
        return x;
    }
    let dims = x.dims();
    let n: usize = dims.iter().product();
    let keep = (1.0 - p) as f32;
    let scale = 1.0 / keep;
    let mut mask = Vec::with_capacity(n);
    while mask.len() < n {
        // Two 32-bit uniforms per draw.
        let w = rng.next_u64();
        for half in [w as u32, (w >> 32) as u32] {
            if mask.len() < n {
                let u = (half >> 8) as f32 * (1.0 / 16_777_216.0);
                mask.push(if u < keep { scale } else { 0.0 });
            }
        }
    }
    let mask = Tensor::from_data(TensorData::new(mask, dims), &x.device());
    x * mask
}

#[derive(Module, Debug)]
pub struct TimeCnn {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    fc1: Linear,
    fc2: Linear,
    dropout: f64,
}

impl TimeCnn {
    /// `x`: `[batch, seasons * features]` (a sample's season x feature matrix, row-major).
    fn forward(&self, x: Tensor<2>, d: Dims, mut rng: Option<&mut Rng>) -> Tensor<2> {
        let [b, _] = x.dims();
        let x: Tensor<4> = x.reshape([b, 1, d.seasons, d.features]);
        let x = relu(self.bn1.forward(conv2d(&self.conv1, x)));
        let x = relu(self.bn2.forward(conv2d(&self.conv2, x)));
        let x = relu(self.bn3.forward(conv2d(&self.conv3, x)));
        let x: Tensor<2> = x.reshape([b, 64 * d.seasons * d.features]);
        let x = dropout(x, self.dropout, &mut rng);
        let x = relu(self.fc1.forward(x));
        let x = dropout(x, self.dropout, &mut rng);
        self.fc2.forward(x)
    }
}

#[derive(Module, Debug)]
pub struct TempCnn {
    conv1: Conv1d,
    bn1: BatchNorm,
    conv2: Conv1d,
    bn2: BatchNorm,
    conv3: Conv1d,
    bn3: BatchNorm,
    fc1: Linear,
    bn4: BatchNorm,
    fc2: Linear,
    dropout: f64,
}

impl TempCnn {
    fn forward(&self, x: Tensor<2>, d: Dims, mut rng: Option<&mut Rng>) -> Tensor<2> {
        let [b, _] = x.dims();
        // [batch, seasons, features] -> features as channels, time as the axis.
        let x: Tensor<3> = x.reshape([b, d.seasons, d.features]).swap_dims(1, 2);
        let mut x = x;
        for (conv, bn) in [
            (&self.conv1, &self.bn1),
            (&self.conv2, &self.bn2),
            (&self.conv3, &self.bn3),
        ] {
            x = relu(bn.forward(conv1d(conv, x)));
            x = dropout(x, TEMPCNN_CONV_DROPOUT, &mut rng);
        }
        let x: Tensor<2> = x.reshape([b, 64 * d.seasons]);
        let x = relu(self.bn4.forward(self.fc1.forward(x)));
        let x = dropout(x, self.dropout, &mut rng);
        self.fc2.forward(x)
    }
}

/// One of the networks.
#[derive(Module, Debug)]
pub enum Net {
    Timecnn(TimeCnn),
    Tempcnn(TempCnn),
}

impl Net {
    /// A fresh network on `device`, its weights drawn from `seed`.
    pub fn new(arch: Arch, d: Dims, dropout: f64, seed: u64, device: &Device) -> Net {
        let mut init = Init {
            rng: Rng::new(&[0x006e_6574_776f_726b, seed]),
            next_id: 0,
            device,
        };
        let (s, f, c) = (d.seasons, d.features, d.classes);
        match arch {
            Arch::Timecnn => Net::Timecnn(TimeCnn {
                conv1: init.conv2d(1, 32),
                bn1: init.batch_norm(32),
                conv2: init.conv2d(32, 64),
                bn2: init.batch_norm(64),
                conv3: init.conv2d(64, 64),
                bn3: init.batch_norm(64),
                fc1: init.linear(64 * s * f, HIDDEN),
                fc2: init.linear(HIDDEN, c),
                dropout,
            }),
            Arch::Tempcnn => Net::Tempcnn(TempCnn {
                conv1: init.conv1d(f, 64, 5),
                bn1: init.batch_norm(64),
                conv2: init.conv1d(64, 64, 5),
                bn2: init.batch_norm(64),
                conv3: init.conv1d(64, 64, 5),
                bn3: init.batch_norm(64),
                fc1: init.linear(64 * s, HIDDEN),
                bn4: init.batch_norm(HIDDEN),
                fc2: init.linear(HIDDEN, c),
                dropout,
            }),
        }
    }

    /// Logits `[batch, classes]` of standardised samples `x: [batch, seasons * features]`.
    /// With `rng` (training), dropout is on and batch norm uses (and updates) batch statistics
    /// when the network is on an autodiff device.
    pub fn forward(&self, x: Tensor<2>, d: Dims, rng: Option<&mut Rng>) -> Tensor<2> {
        match self {
            Net::Timecnn(n) => n.forward(x, d, rng),
            Net::Tempcnn(n) => n.forward(x, d, rng),
        }
    }
}

/// What training a network costs per sample, from its layers (the sizes of [`Net::new`]):
/// the basis of the forecast `train` gives before it starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    /// Trained weights (what Adam updates; batch norm running statistics excluded).
    pub weights: u64,
    /// Floats a sample keeps alive between the forward and the backward pass (every layer's
    /// output: convolution, batch norm, ReLU, dropout).
    pub activations: u64,
    /// Floating-point operations of one sample's forward pass (multiply-adds count 2); the
    /// backward pass costs about twice that.
    pub forward_flops: u64,
}

impl Cost {
    pub fn of(arch: Arch, d: Dims) -> Cost {
        let (s, f, c) = (d.seasons as u64, d.features as u64, d.classes as u64);
        let h = HIDDEN as u64;
        let dense = |i: u64, o: u64| i * o + o;
        match arch {
            Arch::Timecnn => {
                let px = s * f;
                let conv = dense(9, 32) + dense(32 * 9, 64) + dense(64 * 9, 64);
                let bn = 2 * (32 + 64 + 64);
                Cost {
                    weights: conv + bn + dense(64 * px, h) + dense(h, c),
                    // 3 blocks (conv, bn, relu) of 32, 64, 64 channels; dropout, fc, relu, dropout.
                    activations: 3 * (32 + 64 + 64) * px + 64 * px + 3 * h + c,
                    forward_flops: 2 * (9 * 32 + 9 * 32 * 64 + 9 * 64 * 64) * px
                        + 2 * (64 * px * h + h * c),
                }
            }
            Arch::Tempcnn => {
                let conv = dense(f * 5, 64) + 2 * dense(64 * 5, 64);
                let bn = 2 * (3 * 64 + h);
                Cost {
                    weights: conv + bn + dense(64 * s, h) + dense(h, c),
                    // 3 blocks (conv, bn, relu, dropout) of 64 channels; fc, bn, relu, dropout.
                    activations: 3 * 4 * 64 * s + 4 * h + c,
                    forward_flops: 2 * (5 * f * 64 + 2 * 5 * 64 * 64) * s
                        + 2 * (64 * s * h + h * c),
                }
            }
        }
    }

    /// Bytes one training run holds at its peak with batches of `batch`: the weights, their
    /// gradients, Adam's two moments, the best epoch's copy and the evaluation copy (6 x the
    /// weights), and one batch's activations (their gradients reuse freed buffers: measured
    /// peaks of `tempcnn` on 2000 time steps are 0.83, 1.14 and 1.31 GB at batches of 16, 64
    /// and 128, this model says 0.88, 1.18 and 1.57 GB; benches/README.md).
    pub fn training_bytes(&self, batch: usize) -> u64 {
        4 * (6 * self.weights + batch as u64 * self.activations)
    }

    /// Bytes one sample of a batch holds while training.
    pub fn bytes_per_sample(&self) -> u64 {
        4 * self.activations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims() -> Dims {
        Dims {
            seasons: 6,
            features: 5,
            classes: 14,
        }
    }

    #[test]
    fn both_architectures_give_one_logit_per_class() {
        let device = crate::learn::cpu();
        for arch in [Arch::Timecnn, Arch::Tempcnn] {
            let net = Net::new(arch, dims(), 0.5, 1, &device);
            let x = Tensor::<2>::from_data(
                TensorData::new((0..7 * 30).map(|v| v as f32 * 0.01).collect(), [7, 30]),
                &device,
            );
            assert_eq!(net.forward(x, dims(), None).dims(), [7, 14], "{arch:?}");
        }
    }

    #[test]
    fn timecnn_has_the_documented_layers() {
        let device = crate::learn::cpu();
        let net = Net::new(Arch::Timecnn, dims(), 0.5, 1, &device);
        // conv 1->32, 32->64, 64->64 (3x3 + bias), 3 BN (gamma, beta), fc 64*6*5 -> 256 -> 14.
        let want = (32 * 9 + 32)
            + (64 * 32 * 9 + 64)
            + (64 * 64 * 9 + 64)
            + 2 * (32 + 64 + 64)
            + (64 * 30 * 256 + 256)
            + (256 * 14 + 14);
        // num_params counts batch norm running statistics too.
        let running = 2 * (32 + 64 + 64);
        assert_eq!(net.num_params(), want + running);
    }

    #[test]
    fn the_cost_model_counts_the_weights_the_networks_have() {
        let device = crate::learn::cpu();
        for d in [
            dims(),
            Dims {
                seasons: 40,
                features: 1,
                classes: 3,
            },
        ] {
            for arch in [Arch::Timecnn, Arch::Tempcnn] {
                let net = Net::new(arch, d, 0.5, 1, &device);
                let bn_channels = match arch {
                    Arch::Timecnn => 32 + 64 + 64,
                    Arch::Tempcnn => 3 * 64 + HIDDEN,
                };
                // num_params counts the batch norm running statistics too.
                let cost = Cost::of(arch, d);
                assert_eq!(
                    cost.weights as usize + 2 * bn_channels,
                    net.num_params(),
                    "{arch:?} {d:?}"
                );
                assert!(cost.forward_flops > 2 * cost.weights, "{arch:?}");
            }
        }
    }

    #[test]
    fn same_seed_same_weights_different_seed_different_weights() {
        let device = crate::learn::cpu();
        let bytes = |seed| {
            Net::new(Arch::Tempcnn, dims(), 0.5, seed, &device)
                .into_record()
                .into_bytes()
                .unwrap()
                .to_vec()
        };
        assert_eq!(bytes(3), bytes(3));
        assert_ne!(bytes(3), bytes(4));
    }
}
