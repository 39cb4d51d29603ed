//! Stride-1 convolutions that keep the input's size (kernel `2 * pad + 1`), on `f32` slices:
//! the forward pass, the input's gradient and the weight's gradient of a whole batch, each as
//! a few large matrix products.
//!
//! The layout that makes this work ([`Geometry::flat`]): the batch is laid out channels last,
//! one position after another, each row of the image followed by `pw` zero positions and each
//! sample by `ph` zero rows (`stride = w + pw` positions per row, `sample = (h + ph) * stride`
//! per sample), with one zero sample before the batch and one after it. Then a kernel offset
//! `(ki, kj)` is the same shift of the flat position for every output: what a window reaches
//! beyond its row or its sample is the zeros on the right of a row (the left border of the
//! next), or the zero rows after a sample (the top border of the next). And the `kw` offsets of
//! one kernel row are consecutive positions, so the windows of kernel row `ki` are one matrix
//! `[positions, kw * channels]` whose rows overlap (row stride `channels`): a strided view of
//! the flat buffer, not a copy. A convolution is then the sum of `kh` products of that view by
//! the kernel row's weights `[kw * channels, out]`; the positions that are padding compute
//! garbage that is never read.
//!
//! The products are burn `flex`'s (its `gemm` kernels read any strides, so the overlapping view
//! is not copied); this module only lays the data out and checks that every view stays inside
//! its buffer. Deterministic: one thread (`flex` is built without `rayon`) and a fixed order of
//! products. Not burn's order, so the results differ from burn's layer in the last bits (tests
//! compare them to rounding).

use burn::backend::Flex;
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::ops::FloatTensorOps;
use burn::tensor::{DType, Shape, TensorData};

/// The shape of a convolution of `[batch, cin, h, w]` by `[cout, cin, kh, kw]` with odd kernel
/// sides and padding `(kh / 2, kw / 2)`: its output is `[batch, cout, h, w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
}

impl Geometry {
    /// Zero rows after each sample, zero positions after each row.
    fn pad(&self) -> (usize, usize) {
        (self.kh / 2, self.kw / 2)
    }

    /// Positions per row of the flat layout.
    fn stride(&self) -> usize {
        self.w + self.pad().1
    }

    /// Positions per sample of the flat layout.
    fn sample(&self) -> usize {
        (self.h + self.pad().0) * self.stride()
    }

    /// Positions of the batch (without the zero samples before and after it).
    fn positions(&self) -> usize {
        self.batch * self.sample()
    }

    /// `t: [batch, c, h, w]` laid out flat with `c` channels last (the module's doc): `[(batch +
    /// 2) * sample, c]`, sample `b` from position `(b + 1) * sample` on.
    fn flat(&self, t: &[f32], c: usize) -> FlexTensor {
        let (h, w, stride, sample) = (self.h, self.w, self.stride(), self.sample());
        assert_eq!(t.len(), self.batch * c * h * w, "a [batch, c, h, w] tensor");
        assert!(self.kh % 2 == 1 && self.kw % 2 == 1, "odd kernel sides");
        // Written once, in order (no zeroing first): the zero sample, then per sample its rows,
        // each position's channels gathered from their planes, each row followed by `pw`
        // zero positions and the sample by `ph` zero rows; the zero sample after the batch.
        let (ph, pw) = self.pad();
        let mut flat = Vec::with_capacity((self.batch + 2) * sample * c);
        flat.resize(sample * c, 0.0);
        for t in t.chunks_exact(c * h * w) {
            for i in 0..h {
                for j in 0..w {
                    flat.extend((0..c).map(|ch| t[(ch * h + i) * w + j]));
                }
                flat.resize(flat.len() + pw * c, 0.0);
            }
            flat.resize(flat.len() + ph * stride * c, 0.0);
        }
        flat.resize(flat.len() + sample * c, 0.0);
        debug_assert_eq!(flat.len(), (self.batch + 2) * sample * c);
        buffer(flat)
    }

    /// The inverse of [`Geometry::flat`] for a result `[positions, c]` that starts at the
    /// first sample (no zero sample before it), plus `bias` per channel: `[batch, c, h, w]`.
    fn unflat(&self, flat: &[f32], c: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let (h, w, stride, sample) = (self.h, self.w, self.stride(), self.sample());
        let mut t = vec![0f32; self.batch * c * h * w];
        for (b, t) in t.chunks_exact_mut(c * h * w).enumerate() {
            for (ch, t) in t.chunks_exact_mut(h * w).enumerate() {
                let add = bias.map_or(0.0, |bias| bias[ch]);
                for (i, row) in t.chunks_exact_mut(w).enumerate() {
                    let first = b * sample + i * stride;
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = flat[(first + j) * c + ch] + add;
                    }
                }
            }
        }
        t
    }

    /// `y = x * weight + bias`: `x: [batch, cin, h, w]`, `weight: [cout, cin, kh, kw]`,
    /// `bias: [cout]`; `[batch, cout, h, w]`.
    pub fn forward(&self, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let (cin, cout) = (self.cin, self.cout);
        // Kernel row ki's weights as [kw * cin, cout]: row kj * cin + ch.
        let rows = self.kernel_rows(cin, cout, |ki, kj, ch, o| {
            weight[((o * cin + ch) * self.kh + ki) * self.kw + kj]
        });
        let y = self.products(&self.flat(x, cin), cin, rows, cout);
        self.unflat(values(&y), cout, bias)
    }

    /// The gradient of `x` given the output's, `grad: [batch, cout, h, w]`: the same-size
    /// convolution of `grad` by the kernel flipped in both directions with `cin` and `cout`
    /// swapped. `[batch, cin, h, w]`.
    pub fn input_grad(&self, grad: &[f32], weight: &[f32]) -> Vec<f32> {
        let (cin, cout, kh, kw) = (self.cin, self.cout, self.kh, self.kw);
        let rows = self.kernel_rows(cout, cin, |ki, kj, o, ch| {
            weight[((o * cin + ch) * kh + (kh - 1 - ki)) * kw + (kw - 1 - kj)]
        });
        let dx = self.products(&self.flat(grad, cout), cout, rows, cin);
        self.unflat(values(&dx), cin, None)
    }

    /// The gradient of the weight `[cout, cin, kh, kw]` given the output's, `grad: [batch,
    /// cout, h, w]`: per kernel row, the transposed windows `[kw * cin, positions]` by the
    /// gradient `[positions, cout]`, whose zeros at the padding positions cancel what the
    /// windows read there.
    pub fn weight_grad(&self, x: &[f32], grad: &[f32]) -> Vec<f32> {
        let (cin, cout, kh, kw) = (self.cin, self.cout, self.kh, self.kw);
        let (x, grad) = (self.flat(x, cin), self.flat(grad, cout));
        let n = self.positions();
        let rows: Vec<FlexTensor> = (0..kh)
            .map(|ki| {
                let windows = View {
                    buffer: &x,
                    offset: self.window_start(ki) * cin,
                    row_stride: 1,
                    col_stride: cin,
                };
                let grad = View {
                    buffer: &grad,
                    offset: self.sample() * cout,
                    row_stride: cout,
                    col_stride: 1,
                };
                matmul([kw * cin, cout, n], windows, grad)
            })
            .collect();
        let mut dw = vec![0f32; cout * cin * kh * kw];
        for o in 0..cout {
            for ch in 0..cin {
                for ki in 0..kh {
                    for kj in 0..kw {
                        dw[((o * cin + ch) * kh + ki) * kw + kj] =
                            values(&rows[ki])[(kj * cin + ch) * cout + o];
                    }
                }
            }
        }
        dw
    }

    /// The weights of every kernel row as `[kh][kw * c][out]`, element `(ki, kj, ch, o)` from
    /// `at`.
    fn kernel_rows(
        &self,
        c: usize,
        out: usize,
        at: impl Fn(usize, usize, usize, usize) -> f32,
    ) -> Vec<f32> {
        let mut rows = Vec::with_capacity(self.kh * self.kw * c * out);
        for ki in 0..self.kh {
            for kj in 0..self.kw {
                for ch in 0..c {
                    rows.extend((0..out).map(|o| at(ki, kj, ch, o)));
                }
            }
        }
        rows
    }

    /// First flat position of the windows of kernel row `ki`, for the output at the first
    /// sample's first position: up `ph - ki` rows and left `pw` positions.
    fn window_start(&self, ki: usize) -> usize {
        let (ph, pw) = self.pad();
        self.sample() + ki * self.stride() - ph * self.stride() - pw
    }

    /// `sum over ki of windows(ki) [positions, kw * c] by rows[ki] [kw * c, out]`, for flat
    /// `x` of `c` channels: `[positions, out]`.
    fn products(&self, x: &FlexTensor, c: usize, rows: Vec<f32>, out: usize) -> FlexTensor {
        let n = self.positions();
        let rows = buffer(rows);
        (0..self.kh)
            .map(|ki| {
                let windows = View {
                    buffer: x,
                    offset: self.window_start(ki) * c,
                    row_stride: c,
                    col_stride: 1,
                };
                let weights = View {
                    buffer: &rows,
                    offset: ki * self.kw * c * out,
                    row_stride: out,
                    col_stride: 1,
                };
                matmul([n, out, self.kw * c], windows, weights)
            })
            .reduce(Flex::float_add)
            .expect("a kernel has a row")
    }
}

/// `values` as a 1-D `flex` tensor that views can share.
fn buffer(values: Vec<f32>) -> FlexTensor {
    let n = values.len();
    FlexTensor::from_data(TensorData::new(values, [n]))
}

/// The values of a contiguous `f32` tensor.
fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// A matrix in a [`buffer`]: element `(r, c)` at `offset + r * row_stride + c * col_stride`.
/// Rows may overlap (the windows).
#[derive(Clone, Copy)]
struct View<'a> {
    buffer: &'a FlexTensor,
    offset: usize,
    row_stride: usize,
    col_stride: usize,
}

impl View<'_> {
    /// The `rows x cols` matrix as a `flex` tensor sharing the buffer; panics unless every
    /// element lies inside the buffer.
    fn matrix(&self, rows: usize, cols: usize) -> FlexTensor {
        let len = self.buffer.layout().num_elements();
        let last = self.offset + (rows - 1) * self.row_stride + (cols - 1) * self.col_stride;
        assert!(
            rows > 0 && cols > 0 && last < len,
            "a matrix view past its buffer"
        );
        let strides = vec![self.row_stride as isize, self.col_stride as isize];
        let layout = Layout::new(Shape::new([rows, cols]), strides, self.offset);
        FlexTensor::from_arc(self.buffer.data_arc(), layout, DType::F32)
    }
}

/// `lhs [m, k] by rhs [k, n]`: `[m, n]`, row-major.
fn matmul([m, n, k]: [usize; 3], lhs: View, rhs: View) -> FlexTensor {
    if m == 0 || n == 0 || k == 0 {
        return buffer(vec![0.0; m * n]);
    }
    Flex::float_matmul(lhs.matrix(m, k), rhs.matrix(k, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::rng::Rng;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(&[seed]);
        (0..n).map(|_| rng.range(-1.0, 1.0) as f32).collect()
    }

    /// The convolution by its definition, one output at a time, in f64.
    fn direct(g: &Geometry, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
        let (ph, pw) = ((g.kh / 2) as isize, (g.kw / 2) as isize);
        let mut y = vec![0f32; g.batch * g.cout * g.h * g.w];
        for b in 0..g.batch {
            for o in 0..g.cout {
                for i in 0..g.h {
                    for j in 0..g.w {
                        let mut s = f64::from(bias[o]);
                        for ch in 0..g.cin {
                            for ki in 0..g.kh {
                                for kj in 0..g.kw {
                                    let (r, c) = (
                                        i as isize + ki as isize - ph,
                                        j as isize + kj as isize - pw,
                                    );
                                    if r < 0 || c < 0 || r >= g.h as isize || c >= g.w as isize {
                                        continue;
                                    }
                                    let xv =
                                        x[((b * g.cin + ch) * g.h + r as usize) * g.w + c as usize];
                                    let wv = weight[((o * g.cin + ch) * g.kh + ki) * g.kw + kj];
                                    s += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        y[((b * g.cout + o) * g.h + i) * g.w + j] = s as f32;
                    }
                }
            }
        }
        y
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    fn shapes() -> Vec<Geometry> {
        let g = |batch, cin, cout, h, w, kh, kw| Geometry {
            batch,
            cin,
            cout,
            h,
            w,
            kh,
            kw,
        };
        vec![
            g(2, 1, 4, 6, 5, 3, 3),
            g(3, 3, 5, 4, 7, 3, 3),
            g(3, 3, 4, 1, 6, 1, 5),
            g(1, 2, 2, 1, 1, 3, 3),
        ]
    }

    #[test]
    fn forward_is_the_convolution_by_its_definition() {
        for (s, g) in shapes().into_iter().enumerate() {
            let s = s as u64 * 10;
            let x = random(g.batch * g.cin * g.h * g.w, s + 1);
            let weight = random(g.cout * g.cin * g.kh * g.kw, s + 2);
            let bias = random(g.cout, s + 3);
            let ours = g.forward(&x, &weight, Some(&bias));
            assert!(
                max_diff(&ours, &direct(&g, &x, &weight, &bias)) < 1e-5,
                "{g:?}"
            );
        }
    }

    /// The gradients against those of the definition: `d/dx sum(y * t)` is the adjoint of the
    /// convolution applied to `t`, checked through `<conv(x), t> = <x, input_grad(t)>`, and
    /// the weight's gradient through `<conv_w(x), t> = <w, weight_grad(x, t)>` (the convolution
    /// is linear in each).
    #[test]
    fn gradients_are_the_adjoints_of_the_convolution() {
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter()
                .zip(b)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum()
        };
        for (s, g) in shapes().into_iter().enumerate() {
            let s = s as u64 * 10;
            let x = random(g.batch * g.cin * g.h * g.w, s + 1);
            let weight = random(g.cout * g.cin * g.kh * g.kw, s + 2);
            let t = random(g.batch * g.cout * g.h * g.w, s + 4);
            let zero = vec![0f32; g.cout];
            let y = direct(&g, &x, &weight, &zero);
            let dx = g.input_grad(&t, &weight);
            let dw = g.weight_grad(&x, &t);
            let (lhs, via_x, via_w) = (dot(&y, &t), dot(&x, &dx), dot(&weight, &dw));
            assert!(
                (lhs - via_x).abs() < 1e-4 * (1.0 + lhs.abs()),
                "{g:?}: {lhs} {via_x}"
            );
            assert!(
                (lhs - via_w).abs() < 1e-4 * (1.0 + lhs.abs()),
                "{g:?}: {lhs} {via_w}"
            );
            // Element by element, not only in sum: each basis weight's gradient.
            for e in [0, weight.len() / 2, weight.len() - 1] {
                let mut basis = vec![0f32; weight.len()];
                basis[e] = 1.0;
                let want = dot(&direct(&g, &x, &basis, &zero), &t);
                assert!(
                    (f64::from(dw[e]) - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "{g:?}"
                );
            }
            let mut basis = vec![0f32; x.len()];
            let e = x.len() / 3;
            basis[e] = 1.0;
            let want = dot(&direct(&g, &basis, &weight, &zero), &t);
            assert!(
                (f64::from(dx[e]) - want).abs() < 1e-4 * (1.0 + want.abs()),
                "{g:?}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "a matrix view past its buffer")]
    fn a_view_past_its_buffer_is_refused() {
        let data = buffer(vec![0.0; 6]);
        let view = View {
            buffer: &data,
            offset: 1,
            row_stride: 3,
            col_stride: 1,
        };
        matmul([2, 2, 3], view, view);
    }
}
