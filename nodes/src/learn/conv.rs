//! Convolution for training, with the weight gradient computed as matrix products.
//!
//! burn computes a convolution's weight gradient as another convolution: the input (channels
//! and batch swapped) convolved by the output gradient, one `out x (batch*h*w)` by
//! `(batch*h*w) x kernel` product per input channel. With `timecnn`'s kernel of 9 that shape
//! runs the matrix kernels at a fraction of their speed, and it was a third of the training
//! time (benches/README.md). Here the backward step computes it as one
//! `out x n` by `n x channels` product per kernel offset over a zero-bordered flat layout
//! ([`weight_grad`]: no patch matrix is copied) and the bias's gradient as a sum. The forward
//! pass and the input's gradient are burn's own.
//!
//! Only for the tensors of an autodiff `flex` device (training) and for the convolutions the
//! networks use (stride 1, no dilation, one group): everything else goes to burn's layer
//! unchanged ([`conv2d`] and [`conv1d`] fall back). The arithmetic is deterministic (one
//! thread, a fixed order), like the rest of a training run, but not burn's order: the weights
//! differ from burn's in the last bits.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, TensorMetadata};
use burn::nn::conv::{Conv1d, Conv2d};
use burn::nn::{PaddingConfig1d, PaddingConfig2d};
use burn::tensor::{Shape, Slice, Tensor};

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

/// The stride-1 convolution of `x` (zero `padding` on each side) recorded with
/// [`Conv2dBackward`]; `None` where that does not apply: tensors not on the training
/// device, or a kernel that is not `2 * padding + 1` (the output not the input's size).
fn fast(
    x: &Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    padding: [usize; 2],
) -> Option<Tensor<4>> {
    let [_, _, kh, kw] = weight.dims();
    if [kh, kw] != padding.map(|p| 2 * p + 1) {
        return None;
    }
    let xp = x.clone().try_into_primitive::<Train>().ok()?;
    let wp = weight.try_into_primitive::<Train>().ok()?;
    let bp = bias.try_into_primitive::<Train>().ok()?;
    let options = ConvOptions::new([1, 1], padding, [1, 1], 1);
    Some(Tensor::from_primitive::<Train>(forward(
        xp, wp, bp, options,
    )))
}

#[derive(Debug)]
struct Conv2dBackward;

impl<B: Backend> Backward<B, 3> for Conv2dBackward {
    /// Checkpoints of the input and the weight, and the options.
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
        if let Some(node) = node_x {
            let g = B::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options.clone());
            grads.register::<B>(node.id, g);
        }
        if let Some(node) = node_bias {
            // [batch, out, h, w] -> [out]: sum over h and w (contiguous), then the batch.
            let [_, out, _, _] = grad.shape().dims();
            let g = B::float_sum_dim(B::float_sum_dim(grad.clone(), 3), 2);
            let g = B::float_sum_dim(g, 0);
            grads.register::<B>(node.id, B::float_reshape(g, Shape::new([out])));
        }
        if let Some(node) = node_weight {
            let [_, _, kh, kw] = weight.shape().dims();
            let g = weight_grad::<B>(x, grad, [kh, kw], options.padding_begin());
            grads.register::<B>(node.id, g);
        }
    }
}

/// The convolution of the autodiff tensors, recorded with [`Conv2dBackward`].
fn forward(
    x: FloatTensor<Train>,
    weight: FloatTensor<Train>,
    bias: FloatTensor<Train>,
    options: ConvOptions<2>,
) -> FloatTensor<Train> {
    let conv = |x, w, b, o| <Flex as ModuleOps<Flex>>::conv2d(x, w, Some(b), o);
    match Conv2dBackward
        .prepare::<NoCheckpointing>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&x);
            let weight_state = prep.checkpoint(&weight);
            let out = conv(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                options.clone(),
            );
            prep.finish((x_state, weight_state, options), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(conv(
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
            options,
        )),
    }
}

/// Gradient of the weight `[out, channels, kh, kw]` of a stride-1 convolution of
/// `x: [batch, channels, h, w]` that keeps the size (kernel `2 * pad + 1`), given the output's
/// gradient `grad: [batch, out, h, w]`.
///
/// Without copying patches: both are laid out flat, each row followed by `pw` zeros and each
/// sample by `ph` zero rows (`stride = w + pw` per row, `(h + ph) * stride` per sample), so
/// that a window offset `(ki, kj)` is the same shift of the flat index for every output
/// position: the zeros on the right of one row are the left border of the next, the zero rows
/// after one sample the top border of the next. Then the gradient of that offset's weights is
/// one matrix product, `grad [out, n]` by `x [channels, n]` shifted by `ki * stride + kj`
/// (a strided view, transposed), with `n = batch * (h + ph) * stride`; the zeros of `grad`
/// cancel what the shift drags in from the borders.
fn weight_grad<B: Backend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
    [kh, kw]: [usize; 2],
    [ph, pw]: [usize; 2],
) -> FloatTensor<B> {
    let [batch, channels, h, w] = x.shape().dims();
    let [_, out, oh, ow] = grad.shape().dims();
    assert_eq!(
        (oh, ow, kh, kw),
        (h, w, 2 * ph + 1, 2 * pw + 1),
        "a same-size convolution"
    );
    let (device, dtype) = (x.device(), x.dtype().into());
    let (rows, stride) = (h + ph, w + pw);
    let n = batch * rows * stride;
    // Lay `t: [batch, c, h, w]` out as `[c, batch + extra, rows, stride]` (zeros around), the
    // samples from `first` on.
    let flat = |t: FloatTensor<B>, c: usize, first: usize, extra: usize| {
        let z = B::float_zeros(Shape::new([c, batch + extra, rows, stride]), &device, dtype);
        let t = B::float_slice_assign(
            z,
            &[
                Slice::from(0..c),
                Slice::from(first..first + batch),
                Slice::from(0..h),
                Slice::from(0..w),
            ],
            B::float_permute(t, &[1, 0, 2, 3]),
        );
        B::float_reshape(t, Shape::new([c, (batch + extra) * rows * stride]))
    };
    let grad = flat(grad, out, 0, 0);
    // One zero sample before the batch (the top and left border of the first sample, reached
    // by the negative offsets) and one after it (room for the positive ones).
    let x = flat(x, channels, 1, 2);
    let base = rows * stride - ph * stride - pw;
    let per_offset = (0..kh)
        .flat_map(|i| (0..kw).map(move |j| base + i * stride + j))
        .map(|shift| {
            let view = B::float_slice(
                x.clone(),
                &[Slice::from(0..channels), Slice::from(shift..shift + n)],
            );
            let g = B::float_matmul(grad.clone(), B::float_transpose(view));
            B::float_reshape(g, Shape::new([out, channels, 1]))
        })
        .collect();
    B::float_reshape(
        B::float_cat(per_offset, 2),
        Shape::new([out, channels, kh, kw]),
    )
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

    /// Outside training (a plain device) and for shapes it does not handle, burn's layer runs.
    #[test]
    fn other_devices_and_shapes_fall_back_to_burn() {
        let plain = crate::learn::cpu();
        let conv = Conv2dConfig::new([2, 3], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&plain);
        let x = random([2, 2, 4, 5], 9, &plain);
        let (w, b) = (conv.weight.val(), conv.bias.as_ref().unwrap().val());
        assert!(fast(&x, w.clone(), b.clone(), [1, 1]).is_none());
        assert_eq!(
            conv2d(&conv, x.clone()).into_data(),
            conv.forward(x.clone()).into_data()
        );
        let ad = crate::learn::cpu().autodiff();
        let (x, w, b) = (
            random([2, 2, 4, 5], 9, &ad),
            random([3, 2, 3, 3], 10, &ad),
            random([3], 11, &ad),
        );
        assert!(
            fast(&x, w.clone(), b.clone(), [0, 0]).is_none(),
            "3x3 unpadded"
        );
        assert!(fast(&x, w, b, [1, 1]).is_some());
    }
}
