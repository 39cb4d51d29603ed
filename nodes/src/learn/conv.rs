//! The networks' convolutions: stride 1, kernel `2 * pad + 1`, so the output keeps the input's
//! size, computed by [`same_conv`](super::same_conv) as a few large matrix products over the
//! whole batch, forward and backward.
//!
//! burn's `flex` computes a convolution per sample (im2col and a small product each), its
//! input gradient as a transposed convolution and its weight gradient as another convolution,
//! one `out x (batch*h*w)` by `(batch*h*w) x kernel` product per input channel, a shape its
//! matrix kernels run at a fraction of their speed (benches/README.md). Here, on `flex`
//! tensors of `f32`: the forward pass on a plain device (inference) and on the training device
//! (autodiff over `flex`), where the convolution is recorded with a backward step of its own
//! ([`Conv2dBackward`]) that computes the input's and the weight's gradients the same way and
//! the bias's as a sum. Everything else (another backend, another dtype, a kernel that does
//! not keep the size, strides, dilation, groups) goes to burn's layer unchanged ([`conv2d`]
//! and [`conv1d`] fall back). The arithmetic is deterministic (one thread, a fixed order),
//! like the rest of a training run, but not burn's order: results differ from burn's in the
//! last bits.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Flex, TensorMetadata};
use burn::nn::conv::{Conv1d, Conv2d};
use burn::nn::{PaddingConfig1d, PaddingConfig2d};
use burn::tensor::{DType, Tensor, TensorData};

use super::same_conv::Geometry;

/// The training device's backend: autodiff over `flex`, as `Device::flex().autodiff()` makes.
type Train = Autodiff<Flex, NoCheckpointing>;

/// `conv.forward(x)` for `x: [batch, channels, h, w]`.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let (Some(bias), [1, 1], [1, 1], 1) = (&conv.bias, conv.stride, conv.dilation, conv.groups)
    else {
        return conv.forward(x);
    };
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top, left]
        }
        _ => return conv.forward(x),
    };
    fast(&x, conv.weight.val(), bias.val(), padding).unwrap_or_else(|| conv.forward(x))
}

/// `conv.forward(x)` for `x: [batch, channels, length]`: the 2-D convolution of
/// `[batch, channels, 1, length]` by a `1 x kernel` window.
pub fn conv1d(conv: &Conv1d, x: Tensor<3>) -> Tensor<3> {
    let (Some(bias), 1, 1, 1) = (&conv.bias, conv.stride, conv.dilation, conv.groups) else {
        return conv.forward(x);
    };
    let pad = match conv.padding {
        PaddingConfig1d::Explicit(left, right) if left == right => left,
        _ => return conv.forward(x),
    };
    let [cout, cin, k] = conv.weight.dims();
    let [b, c, len] = x.dims();
    let weight = conv.weight.val().reshape([cout, cin, 1, k]);
    match fast(
        &x.clone().reshape([b, c, 1, len]),
        weight,
        bias.val(),
        [0, pad],
    ) {
        Some(y) => {
            let [_, o, _, l] = y.dims();
            y.reshape([b, o, l])
        }
        None => conv.forward(x),
    }
}

/// The convolution of `x` by `weight` plus `bias` with zero `padding` on each side, by
/// [`Geometry`]; `None` where that does not apply: tensors neither on the training device
/// nor on a plain `flex` one, not `f32`, or a kernel that is not `2 * padding + 1`.
fn fast(
    x: &Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    padding: [usize; 2],
) -> Option<Tensor<4>> {
    let [_, _, kh, kw] = weight.dims();
    if [kh, kw] != padding.map(|p| 2 * p + 1) || [x.dtype(), weight.dtype()] != [DType::F32; 2] {
        return None;
    }
    if let Ok(xp) = x.clone().try_into_primitive::<Flex>() {
        let wp = weight.try_into_primitive::<Flex>().ok()?;
        let bp = bias.try_into_primitive::<Flex>().ok()?;
        return Some(Tensor::from_primitive::<Flex>(plain_forward(xp, wp, bp)));
    }
    let xp = x.clone().try_into_primitive::<Train>().ok()?;
    let wp = weight.try_into_primitive::<Train>().ok()?;
    let bp = bias.try_into_primitive::<Train>().ok()?;
    Some(Tensor::from_primitive::<Train>(forward(xp, wp, bp)))
}

/// The geometry of the convolution of `x: [batch, cin, h, w]` by `weight: [cout, cin, kh, kw]`.
fn geometry(x: &FloatTensor<Flex>, weight: &FloatTensor<Flex>) -> Geometry {
    let [batch, cin, h, w] = x.shape().dims();
    let [cout, _, kh, kw] = weight.shape().dims();
    Geometry {
        batch,
        cin,
        cout,
        h,
        w,
        kh,
        kw,
    }
}

/// `f(values of t)`, `t` read as contiguous `f32`.
fn with_values<R>(t: &FloatTensor<Flex>, f: impl FnOnce(&[f32]) -> R) -> R {
    let t = t.to_contiguous();
    f(t.as_slice::<f32>().expect("an f32 tensor"))
}

/// A `flex` tensor of `shape` holding `values`.
fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FloatTensor<Flex> {
    Flex::float_from_data(TensorData::new(values, shape), &Default::default())
}

/// The forward pass on `flex` tensors.
fn plain_forward(
    x: FloatTensor<Flex>,
    weight: FloatTensor<Flex>,
    bias: FloatTensor<Flex>,
) -> FloatTensor<Flex> {
    let g = geometry(&x, &weight);
    let y = with_values(&x, |x| {
        with_values(&weight, |w| {
            with_values(&bias, |b| g.forward(x, w, Some(b)))
        })
    });
    tensor(y, [g.batch, g.cout, g.h, g.w])
}

#[derive(Debug)]
struct Conv2dBackward;

impl Backward<Flex, 3> for Conv2dBackward {
    /// Checkpoints of the input and the weight.
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<Flex>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<Flex>>(weight_state);
        let g = geometry(&x, &weight);
        with_values(&grad, |grad| {
            if let Some(node) = node_x {
                let dx = with_values(&weight, |w| g.input_grad(grad, w));
                grads.register::<Flex>(node.id, tensor(dx, [g.batch, g.cin, g.h, g.w]));
            }
            if let Some(node) = node_bias {
                let mut db = vec![0f32; g.cout];
                for sample in grad.chunks_exact(g.cout * g.h * g.w) {
                    for (db, plane) in db.iter_mut().zip(sample.chunks_exact(g.h * g.w)) {
                        *db += plane.iter().sum::<f32>();
                    }
                }
                grads.register::<Flex>(node.id, tensor(db, [g.cout]));
            }
            if let Some(node) = node_weight {
                let dw = with_values(&x, |x| g.weight_grad(x, grad));
                grads.register::<Flex>(node.id, tensor(dw, [g.cout, g.cin, g.kh, g.kw]));
            }
        });
    }
}

/// The convolution of the autodiff tensors, recorded with [`Conv2dBackward`].
fn forward(
    x: FloatTensor<Train>,
    weight: FloatTensor<Train>,
    bias: FloatTensor<Train>,
) -> FloatTensor<Train> {
    match Conv2dBackward
        .prepare::<NoCheckpointing>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&x);
            let weight_state = prep.checkpoint(&weight);
            let out = plain_forward(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            );
            prep.finish((x_state, weight_state), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(plain_forward(
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::rng::Rng;
    use burn::module::Param;
    use burn::nn::conv::{Conv1dConfig, Conv2dConfig};
    use burn::tensor::{Device, TensorData};

    fn random<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
        let mut rng = Rng::new(&[seed]);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.range(-1.0, 1.0) as f32).collect();
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// Output, input gradient and weight gradient of ours and of burn's layer, to rounding;
    /// the weight gradient not zero (two wrong zeros would compare equal).
    fn assert_matches<const D: usize>(
        ours: (Tensor<D>, Tensor<D>, Tensor<D>),
        burns: (Tensor<D>, Tensor<D>, Tensor<D>),
    ) {
        assert!(max_diff(ours.0, burns.0) < 1e-5, "output");
        assert!(max_diff(ours.1, burns.1) < 1e-5, "input gradient");
        assert!(max_diff(ours.2.clone(), burns.2) < 1e-4, "weight gradient");
        assert!(ours.2.abs().sum().into_scalar::<f32>() > 1.0);
    }

    /// Output and all three gradients equal burn's own layer's, to rounding.
    #[test]
    fn conv2d_matches_burns_forward_and_gradients() {
        let device = crate::learn::cpu().autodiff();
        for (cin, cout, h, w) in [(1, 4, 6, 5), (3, 5, 4, 7)] {
            let mut conv = Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(&device);
            conv.weight = Param::from_tensor(random([cout, cin, 3, 3], 1, &device));
            conv.bias = Some(Param::from_tensor(random([cout], 2, &device)));
            let x = random([2, cin, h, w], 3, &device).require_grad();
            let target = random([2, cout, h, w], 4, &device);
            let run = |ours: bool| {
                let y = if ours {
                    let (w, b) = (conv.weight.val(), conv.bias.as_ref().unwrap().val());
                    fast(&x, w, b, [1, 1]).expect("the training device's path")
                } else {
                    conv.forward(x.clone())
                };
                let grads = (y.clone() * target.clone()).sum().backward();
                let bias = conv.bias.as_ref().unwrap().val().grad(&grads).unwrap();
                let tensors = (
                    y.inner(),
                    x.grad(&grads).unwrap(),
                    conv.weight.val().grad(&grads).unwrap(),
                );
                (tensors, bias)
            };
            let ((a, a_bias), (b, b_bias)) = (run(true), run(false));
            assert_matches(a, b);
            assert!(max_diff(a_bias, b_bias) < 1e-4, "bias gradient");
        }
    }

    #[test]
    fn conv1d_matches_burns_forward_and_gradients() {
        let device = crate::learn::cpu().autodiff();
        let (cin, cout, k, len) = (3, 4, 5, 6);
        let mut conv = Conv1dConfig::new(cin, cout, k)
            .with_padding(PaddingConfig1d::Explicit(2, 2))
            .init(&device);
        conv.weight = Param::from_tensor(random([cout, cin, k], 5, &device));
        conv.bias = Some(Param::from_tensor(random([cout], 6, &device)));
        let x = random([3, cin, len], 7, &device).require_grad();
        let target = random([3, cout, len], 8, &device);
        let run = |ours: bool| {
            let y = if ours {
                conv1d(&conv, x.clone())
            } else {
                conv.forward(x.clone())
            };
            let grads = (y.clone() * target.clone()).sum().backward();
            (
                y.inner(),
                x.grad(&grads).unwrap(),
                conv.weight.val().grad(&grads).unwrap(),
            )
        };
        assert_matches(run(true), run(false));
        // conv1d took the path under test.
        let w = conv.weight.val().reshape([cout, cin, 1, k]);
        let b = conv.bias.as_ref().unwrap().val();
        assert!(fast(&x.reshape([3, cin, 1, len]), w, b, [0, 2]).is_some());
    }

    /// On a plain device (inference) the same path runs and equals burn's layer to rounding;
    /// shapes it does not handle go to burn's layer.
    #[test]
    fn plain_devices_take_the_same_path_other_shapes_fall_back_to_burn() {
        let plain = crate::learn::cpu();
        let mut conv = Conv2dConfig::new([2, 3], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&plain);
        conv.weight = Param::from_tensor(random([3, 2, 3, 3], 12, &plain));
        conv.bias = Some(Param::from_tensor(random([3], 13, &plain)));
        let x = random([2, 2, 4, 5], 9, &plain);
        let (w, b) = (conv.weight.val(), conv.bias.as_ref().unwrap().val());
        assert!(fast(&x, w.clone(), b.clone(), [1, 1]).is_some());
        let diff = max_diff(conv2d(&conv, x.clone()), conv.forward(x.clone()));
        assert!(diff < 1e-5, "{diff}");
        for device in [plain, crate::learn::cpu().autodiff()] {
            let (x, w, b) = (
                random([2, 2, 4, 5], 9, &device),
                random([3, 2, 3, 3], 10, &device),
                random([3], 11, &device),
            );
            assert!(
                fast(&x, w.clone(), b.clone(), [0, 0]).is_none(),
                "3x3 unpadded"
            );
            assert!(fast(&x, w, b, [1, 1]).is_some());
        }
    }
}
