//! GLCM textures as Earth Engine's `glcmTexture` computes them (`docs/method.md`, "GLCM textures"):
//! sum average (`savg`) and dissimilarity (`diss`) of a band quantised to `Ng` gray levels, in a
//! square window, for the offsets (0,1), (1,1), (1,0), (1,-1), symmetric and normalised, the
//! measure averaged over the directions.
//!
//! Definitions (gray levels numbered 1..Ng, `p` the symmetric normalised co-occurrence matrix of
//! one direction):
//! - `diss = sum_{i,j} |i - j| p(i,j)`
//! - `savg = sum_{k=2}^{2Ng} k p_{x+y}(k)`, `p_{x+y}(k) = sum_{i+j=k} p(i,j)`
//!
//! A pair counts when both pixels lie inside the window and neither is nodata (`NaN`, or outside
//! the raster); a direction without any pair is left out of the average; a nodata centre pixel,
//! or a window without any pair, gives `NaN`.
//!
//! **Why a sliding histogram.** Recounting a 9x9 window's pairs for every pixel costs
//! `4 x 72` pair lookups per pixel. Both measures depend on `p` only through the histogram of
//! `i + j` (`p_{x+y}`) and of `|i - j|` (`p_{x-y}`), the sum and difference histograms of the
//! co-occurrence counts (Unser 1986). So each direction keeps those two count histograms for the
//! current window; moving the window one column right removes the pairs of the column that
//! leaves and adds those of the column that enters (`2 x 9` updates per direction), and the
//! measures are read off the histograms. Counts are integers, so the sliding result is
//! bit-identical to a recount ([`savg_diss_naive`], used by the tests).

use rayon::prelude::*;

use crate::raster::Window;

/// Earth Engine's four directions as (row, column) offsets: east, south-east, south,
/// south-west (with symmetric counting, the same as their opposites).
pub const DEFAULT_OFFSETS: [(i32, i32); 4] = [(0, 1), (1, 1), (1, 0), (1, -1)];

/// A quantised pixel that is nodata.
pub const MISSING: u16 = u16::MAX;

/// Window, gray levels and directions.
#[derive(Clone, Debug, PartialEq)]
pub struct GlcmSpec {
    /// Window radius: the window is `2 radius + 1` pixels square (Earth Engine's `size`).
    pub radius: usize,
    /// Number of gray levels `Ng` (2..=256).
    pub levels: u16,
    /// (row, column) offsets, at least one, none (0, 0).
    pub offsets: Vec<(i32, i32)>,
}

impl Default for GlcmSpec {
    fn default() -> Self {
        GlcmSpec {
            radius: 4,
            levels: 32,
            offsets: DEFAULT_OFFSETS.to_vec(),
        }
    }
}

impl GlcmSpec {
    /// Problems with the spec, as messages (empty when it is usable).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(2..=256).contains(&self.levels) {
            p.push(format!(
                "gray levels must be in 2..=256, got {}",
                self.levels
            ));
        }
        if self.radius == 0 || self.radius > 64 {
            p.push(format!(
                "window radius must be in 1..=64, got {}",
                self.radius
            ));
        }
        if self.offsets.is_empty() {
            p.push("no offsets".to_string());
        }
        let mut seen = Vec::new();
        for &o in &self.offsets {
            if o == (0, 0) {
                p.push("offset (0, 0) pairs a pixel with itself".to_string());
                continue;
            }
            if o.0.unsigned_abs() as usize > self.radius * 2
                || o.1.unsigned_abs() as usize > self.radius * 2
            {
                p.push(format!(
                    "offset ({}, {}) is longer than the window",
                    o.0, o.1
                ));
            }
            let c = canonical(o);
            if seen.contains(&c) {
                p.push(format!(
                    "offset ({}, {}) repeats a direction (counting is symmetric)",
                    o.0, o.1
                ));
            }
            seen.push(c);
        }
        p
    }
}

/// The same direction with a non-negative row step (and a positive column step when the row
/// step is 0): with symmetric counting, `(dr, dc)` and `(-dr, -dc)` give the same matrix.
fn canonical((dr, dc): (i32, i32)) -> (i32, i32) {
    if dr < 0 || (dr == 0 && dc < 0) {
        (-dr, -dc)
    } else {
        (dr, dc)
    }
}

/// Quantise values to gray levels `0..levels` (0-based) over the fixed range `min..max`:
/// `floor((v - min) / (max - min) levels)`, clamped; `NaN` becomes [`MISSING`].
pub fn quantize(values: &[f32], min: f32, max: f32, levels: u16) -> Vec<u16> {
    let scale = f32::from(levels) / (max - min);
    let top = f32::from(levels - 1);
    values
        .iter()
        .map(|&v| {
            if v.is_nan() {
                MISSING
            } else {
                ((v - min) * scale).floor().clamp(0.0, top) as u16
            }
        })
        .collect()
}

/// Sum average and dissimilarity, one value per pixel of a region.
#[derive(Clone, Debug, PartialEq)]
pub struct Textures {
    pub savg: Vec<f32>,
    pub diss: Vec<f32>,
}

/// Pair code: `(i + j) << 16 | |i - j|` (0-based levels), or this when the pair does not count.
const NO_PAIR: u32 = u32::MAX;

/// `savg` and `diss` for every pixel of `region` of a quantised buffer `q` (`width x height`,
/// row-major, [`MISSING`] = nodata; pixels outside the buffer count as nodata, so pass the
/// region with its `radius` halo to get the values a whole raster would give). Rows run in
/// parallel (rayon); each row slides its window with count histograms (see the module doc).
///
/// # Panics
/// If `q` is not `width x height`, `region` is not inside the buffer, or `spec` has problems.
pub fn savg_diss(
    q: &[u16],
    width: usize,
    height: usize,
    region: Window,
    spec: &GlcmSpec,
) -> Textures {
    check_args(q, width, height, region, spec);
    let levels = usize::from(spec.levels);
    let dirs: Vec<(i32, i32)> = spec.offsets.iter().map(|&o| canonical(o)).collect();
    // Pair codes per direction, per anchor pixel (the partner is anchor + offset).
    let codes: Vec<Vec<u32>> = dirs
        .iter()
        .map(|&(dr, dc)| pair_codes(q, width, height, dr as isize, dc as isize))
        .collect();
    let n = region.len();
    let mut savg = vec![f32::NAN; n];
    let mut diss = vec![f32::NAN; n];
    if n == 0 {
        return Textures { savg, diss };
    }
    savg.par_chunks_mut(region.w)
        .zip(diss.par_chunks_mut(region.w))
        .enumerate()
        .for_each(|(i, (savg_row, diss_row))| {
            let r = region.y + i;
            let mut row = RowSlider::new(levels, dirs.len());
            row.run(
                q,
                &codes,
                &dirs,
                width,
                height,
                r,
                region,
                spec.radius,
                savg_row,
                diss_row,
            );
        });
    Textures { savg, diss }
}

fn check_args(q: &[u16], width: usize, height: usize, region: Window, spec: &GlcmSpec) {
    assert_eq!(q.len(), width * height, "buffer is not width x height");
    assert!(
        region.x + region.w <= width && region.y + region.h <= height,
        "region {region} outside the {width} x {height} buffer"
    );
    let problems = spec.problems();
    assert!(
        problems.is_empty(),
        "bad GLCM spec: {}",
        problems.join("; ")
    );
}

fn pair_codes(q: &[u16], width: usize, height: usize, dr: isize, dc: isize) -> Vec<u32> {
    let mut codes = vec![NO_PAIR; q.len()];
    codes
        .par_chunks_mut(width)
        .enumerate()
        .for_each(|(r, out)| {
            let pr = r as isize + dr;
            if pr < 0 || pr >= height as isize {
                return;
            }
            let (row, prow) = (&q[r * width..][..width], &q[pr as usize * width..][..width]);
            for (c, o) in out.iter_mut().enumerate() {
                let pc = c as isize + dc;
                if pc < 0 || pc >= width as isize {
                    continue;
                }
                let (a, b) = (row[c], prow[pc as usize]);
                if a != MISSING && b != MISSING {
                    let (a, b) = (u32::from(a), u32::from(b));
                    *o = ((a + b) << 16) | a.abs_diff(b);
                }
            }
        });
    codes
}

/// The count histograms of one window position, for every direction.
struct RowSlider {
    levels: usize,
    /// Per direction: `2 levels - 1` bins of `i + j`.
    sums: Vec<u32>,
    /// Per direction: `levels` bins of `|i - j|`.
    diffs: Vec<u32>,
    /// Per direction: number of pairs.
    counts: Vec<u32>,
}

impl RowSlider {
    fn new(levels: usize, ndirs: usize) -> RowSlider {
        RowSlider {
            levels,
            sums: vec![0; (2 * levels - 1) * ndirs],
            diffs: vec![0; levels * ndirs],
            counts: vec![0; ndirs],
        }
    }

    /// Add (`delta` = 1) or remove (`u32::MAX`, i.e. -1 wrapping) the pairs anchored in column
    /// `col`, rows `rows`, of direction `d`.
    #[allow(clippy::too_many_arguments)]
    fn column(
        &mut self,
        codes: &[u32],
        width: usize,
        d: usize,
        col: usize,
        rows: (usize, usize),
        delta: u32,
    ) {
        let ns = 2 * self.levels - 1;
        let sums = &mut self.sums[d * ns..][..ns];
        let diffs = &mut self.diffs[d * self.levels..][..self.levels];
        let mut n = 0u32;
        for r in rows.0..=rows.1 {
            let code = codes[r * width + col];
            if code != NO_PAIR {
                let (s, a) = ((code >> 16) as usize, (code & 0xffff) as usize);
                sums[s] = sums[s].wrapping_add(delta);
                diffs[a] = diffs[a].wrapping_add(delta);
                n = n.wrapping_add(delta);
            }
        }
        self.counts[d] = self.counts[d].wrapping_add(n);
    }

    /// `(savg, diss)` of the current window, averaged over the directions that have pairs.
    fn measures(&self) -> (f32, f32) {
        let ns = 2 * self.levels - 1;
        let (mut savg, mut diss, mut k) = (0f64, 0f64, 0u32);
        for (d, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let s: u64 = self.sums[d * ns..][..ns]
                .iter()
                .enumerate()
                .map(|(i, &c)| i as u64 * u64::from(c))
                .sum();
            let a: u64 = self.diffs[d * self.levels..][..self.levels]
                .iter()
                .enumerate()
                .map(|(i, &c)| i as u64 * u64::from(c))
                .sum();
            (savg, diss, k) = accumulate(savg, diss, k, s, a, n);
        }
        finish(savg, diss, k)
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        q: &[u16],
        codes: &[Vec<u32>],
        dirs: &[(i32, i32)],
        width: usize,
        height: usize,
        r: usize,
        region: Window,
        radius: usize,
        savg_out: &mut [f32],
        diss_out: &mut [f32],
    ) {
        let rad = radius as isize;
        let (w, h) = (width as isize, height as isize);
        // Per direction: anchor rows, and the valid anchor column range.
        let mut rows = Vec::with_capacity(dirs.len());
        for &(dr, dc) in dirs {
            let (dr, dc) = (dr as isize, dc as isize);
            let lo = (r as isize - rad).max(0);
            let hi = (r as isize + rad - dr).min(h - 1 - dr);
            let amin = (-dc).max(0);
            let amax = w - 1 - dc.max(0);
            rows.push((lo, hi, amin, amax, dc));
        }
        // Anchor columns of the window centred on column c: [c - R - min(dc, 0), c + R - max(dc, 0)].
        let first = region.x as isize;
        for (d, &(lo, hi, amin, amax, dc)) in rows.iter().enumerate() {
            if hi < lo {
                continue;
            }
            let from = (first - rad - dc.min(0)).max(amin);
            let to = (first + rad - dc.max(0)).min(amax);
            for col in from..=to {
                self.column(
                    &codes[d],
                    width,
                    d,
                    col as usize,
                    (lo as usize, hi as usize),
                    1,
                );
            }
        }
        for i in 0..region.w {
            let c = first + i as isize;
            if q[r * width + c as usize] != MISSING {
                (savg_out[i], diss_out[i]) = self.measures();
            }
            if i + 1 == region.w {
                break;
            }
            for (d, &(lo, hi, amin, amax, dc)) in rows.iter().enumerate() {
                if hi < lo {
                    continue;
                }
                let leaving = c - rad - dc.min(0);
                if (amin..=amax).contains(&leaving) {
                    self.column(
                        &codes[d],
                        width,
                        d,
                        leaving as usize,
                        (lo as usize, hi as usize),
                        u32::MAX,
                    );
                }
                let entering = c + 1 + rad - dc.max(0);
                if (amin..=amax).contains(&entering) {
                    self.column(
                        &codes[d],
                        width,
                        d,
                        entering as usize,
                        (lo as usize, hi as usize),
                        1,
                    );
                }
            }
        }
    }
}

/// Add one direction's normalised measures (`s` = sum of 0-based `i + j` over its pairs, `a`
/// = sum of `|i - j|`, `n` pairs). With symmetric counting each pair enters `p` twice out of
/// `2n`, so `savg = s / n + 2` (levels numbered from 1) and `diss = a / n`.
fn accumulate(savg: f64, diss: f64, k: u32, s: u64, a: u64, n: u32) -> (f64, f64, u32) {
    let n = f64::from(n);
    (savg + s as f64 / n + 2.0, diss + a as f64 / n, k + 1)
}

fn finish(savg: f64, diss: f64, k: u32) -> (f32, f32) {
    if k == 0 {
        (f32::NAN, f32::NAN)
    } else {
        let k = f64::from(k);
        ((savg / k) as f32, (diss / k) as f32)
    }
}

/// The same measures by recounting every window's pairs (the reference for the sliding
/// version, and what a per-pixel GLCM tool does).
pub fn savg_diss_naive(
    q: &[u16],
    width: usize,
    height: usize,
    region: Window,
    spec: &GlcmSpec,
) -> Textures {
    check_args(q, width, height, region, spec);
    let rad = spec.radius as isize;
    let (w, h) = (width as isize, height as isize);
    let mut savg = Vec::with_capacity(region.len());
    let mut diss = Vec::with_capacity(region.len());
    for r in region.y..region.y + region.h {
        for c in region.x..region.x + region.w {
            if q[r * width + c] == MISSING {
                savg.push(f32::NAN);
                diss.push(f32::NAN);
                continue;
            }
            let (r0, c0) = (r as isize, c as isize);
            let inside = |y: isize, x: isize| {
                (r0 - rad..=r0 + rad).contains(&y)
                    && (c0 - rad..=c0 + rad).contains(&x)
                    && (0..h).contains(&y)
                    && (0..w).contains(&x)
            };
            let (mut sa, mut di, mut k) = (0f64, 0f64, 0u32);
            for &(dr, dc) in &spec.offsets {
                let (dr, dc) = (dr as isize, dc as isize);
                let (mut s, mut a, mut n) = (0u64, 0u64, 0u32);
                for y in r0 - rad..=r0 + rad {
                    for x in c0 - rad..=c0 + rad {
                        if !inside(y, x) || !inside(y + dr, x + dc) {
                            continue;
                        }
                        let i = q[y as usize * width + x as usize];
                        let j = q[(y + dr) as usize * width + (x + dc) as usize];
                        if i == MISSING || j == MISSING {
                            continue;
                        }
                        s += u64::from(i) + u64::from(j);
                        a += u64::from(i.abs_diff(j));
                        n += 1;
                    }
                }
                if n > 0 {
                    (sa, di, k) = accumulate(sa, di, k, s, a, n);
                }
            }
            let (sv, dv) = finish(sa, di, k);
            savg.push(sv);
            diss.push(dv);
        }
    }
    Textures { savg, diss }
}

/// The symmetric, normalised co-occurrence matrix `p` (`levels x levels`, row-major, 0-based
/// levels) of the pixels in `window` for one offset: the textbook object, for tests and
/// documentation.
pub fn cooccurrence(
    q: &[u16],
    width: usize,
    window: Window,
    offset: (i32, i32),
    levels: u16,
) -> Vec<f64> {
    let l = usize::from(levels);
    let mut counts = vec![0u64; l * l];
    let (dr, dc) = (offset.0 as isize, offset.1 as isize);
    let inside = |y: isize, x: isize| {
        (window.y as isize..(window.y + window.h) as isize).contains(&y)
            && (window.x as isize..(window.x + window.w) as isize).contains(&x)
    };
    for y in window.y as isize..(window.y + window.h) as isize {
        for x in window.x as isize..(window.x + window.w) as isize {
            if !inside(y + dr, x + dc) {
                continue;
            }
            let i = q[y as usize * width + x as usize];
            let j = q[(y + dr) as usize * width + (x + dc) as usize];
            if i == MISSING || j == MISSING {
                continue;
            }
            let (i, j) = (usize::from(i), usize::from(j));
            counts[i * l + j] += 1;
            counts[j * l + i] += 1;
        }
    }
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        })
        .collect()
}

/// `savg = sum_{k=2}^{2Ng} k p_{x+y}(k)` of a matrix from [`cooccurrence`], levels numbered
/// 1..Ng, literally as in `docs/method.md`.
pub fn savg_of(p: &[f64], levels: u16) -> f64 {
    let l = usize::from(levels);
    let mut pxy = vec![0f64; 2 * l + 1];
    for i in 1..=l {
        for j in 1..=l {
            pxy[i + j] += p[(i - 1) * l + (j - 1)];
        }
    }
    (2..=2 * l).map(|k| k as f64 * pxy[k]).sum()
}

/// `diss = sum_{i,j} |i - j| p(i,j)` of a matrix from [`cooccurrence`].
pub fn diss_of(p: &[f64], levels: u16) -> f64 {
    let l = usize::from(levels);
    let mut d = 0.0;
    for i in 0..l {
        for j in 0..l {
            d += i.abs_diff(j) as f64 * p[i * l + j];
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Haralick's (1973) 4x4 example, 4 gray levels.
    const IMAGE: [u16; 16] = [0, 0, 1, 1, 0, 0, 1, 1, 0, 2, 2, 2, 2, 2, 3, 3];

    fn spec(radius: usize, levels: u16, offsets: &[(i32, i32)]) -> GlcmSpec {
        GlcmSpec {
            radius,
            levels,
            offsets: offsets.to_vec(),
        }
    }

    #[test]
    fn features_glcm_matrix_of_a_4x4_image_by_hand() {
        let all = Window::new(0, 0, 4, 4);
        // Horizontal pairs (left -> right): (0,0) x2, (0,1) x2, (1,1) x2, (0,2), (2,2) x3,
        // (2,3), (3,3): 12 pairs; symmetric counts over 24.
        let p = cooccurrence(&IMAGE, 4, all, (0, 1), 4);
        #[rustfmt::skip]
        let want = [
            4.0, 2.0, 1.0, 0.0,
            2.0, 4.0, 0.0, 0.0,
            1.0, 0.0, 6.0, 1.0,
            0.0, 0.0, 1.0, 2.0,
        ];
        for (g, w) in p.iter().zip(want) {
            assert!((g - w / 24.0).abs() < 1e-12, "{p:?}");
        }
        // diss = (2 x 2 x 1 + 2 x 1 x 2 + 2 x 1 x 1) / 24 = 10 / 24
        assert!((diss_of(&p, 4) - 10.0 / 24.0).abs() < 1e-12);
        // savg with levels 1..4: mean of (i + j) over the 12 pairs (0-based sum 31) + 2 = 55/12
        assert!((savg_of(&p, 4) - 55.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn features_glcm_window_covering_4x4_one_and_four_offsets() {
        // Radius 3: every pixel's window covers the whole image.
        let all = Window::new(0, 0, 4, 4);
        let one = savg_diss(&IMAGE, 4, 4, all, &spec(3, 4, &[(0, 1)]));
        for i in 0..16 {
            assert!(
                (f64::from(one.savg[i]) - 55.0 / 12.0).abs() < 1e-6,
                "{:?}",
                one.savg
            );
            assert!(
                (f64::from(one.diss[i]) - 10.0 / 24.0).abs() < 1e-6,
                "{:?}",
                one.diss
            );
        }
        // Four directions, by hand (see the module test notes):
        // east diss 5/12 savg 55/12; south diss 8/12 savg 52/12;
        // south-east diss 10/9 savg 40/9; south-west diss 4/9 savg 40/9.
        // Averages: diss = 95/144, savg = 641/144.
        let four = savg_diss(&IMAGE, 4, 4, all, &spec(3, 4, &DEFAULT_OFFSETS));
        for i in 0..16 {
            assert!(
                (f64::from(four.savg[i]) - 641.0 / 144.0).abs() < 1e-6,
                "{:?}",
                four.savg
            );
            assert!(
                (f64::from(four.diss[i]) - 95.0 / 144.0).abs() < 1e-6,
                "{:?}",
                four.diss
            );
        }
        // The textbook matrices agree direction by direction.
        let mut sd = (0.0, 0.0);
        for o in DEFAULT_OFFSETS {
            let p = cooccurrence(&IMAGE, 4, all, o, 4);
            sd.0 += savg_of(&p, 4) / 4.0;
            sd.1 += diss_of(&p, 4) / 4.0;
        }
        assert!((sd.0 - 641.0 / 144.0).abs() < 1e-12);
        assert!((sd.1 - 95.0 / 144.0).abs() < 1e-12);
        // The opposite offsets give the same (symmetric counting).
        let opp = savg_diss(
            &IMAGE,
            4,
            4,
            all,
            &spec(3, 4, &[(0, -1), (-1, -1), (-1, 0), (-1, 1)]),
        );
        assert_eq!(opp, four);
    }

    #[test]
    fn features_glcm_small_window_and_nodata() {
        // Radius 1 at pixel (1, 1): window rows 0..2, cols 0..2:
        // 0 0 1 / 0 0 1 / 0 2 2. East pairs: (0,0),(0,1),(0,0),(0,1),(0,2),(2,2):
        // diss = (1 + 1 + 2) / 6, savg = (0+1+0+1+2+4)/6 + 2 = 8/6 + 2.
        let s = spec(1, 4, &[(0, 1)]);
        let t = savg_diss(&IMAGE, 4, 4, Window::new(1, 1, 1, 1), &s);
        assert!((t.diss[0] - 4.0 / 6.0).abs() < 1e-6);
        assert!((t.savg[0] - (8.0 / 6.0 + 2.0)).abs() < 1e-6);
        // A nodata pixel drops the pairs it is in; a nodata centre gives nodata.
        let mut img = IMAGE;
        img[2] = MISSING; // (0, 2)
        let t = savg_diss(&img, 4, 4, Window::new(0, 0, 4, 4), &s);
        // At (1, 1): east pairs without (0,1)-(0,2): (0,0),(0,0),(0,1),(0,2),(2,2):
        // diss = 3/5, savg = 7/5 + 2.
        assert!((t.diss[5] - 3.0 / 5.0).abs() < 1e-6, "{}", t.diss[5]);
        assert!((t.savg[5] - (7.0 / 5.0 + 2.0)).abs() < 1e-6);
        assert!(t.savg[2].is_nan() && t.diss[2].is_nan());
        // A valid pixel whose every neighbour is nodata: no pairs -> nodata.
        let lonely = [
            MISSING, MISSING, MISSING, MISSING, 3, MISSING, MISSING, MISSING, MISSING,
        ];
        let t = savg_diss(
            &lonely,
            3,
            3,
            Window::new(0, 0, 3, 3),
            &spec(1, 4, &DEFAULT_OFFSETS),
        );
        assert!(t.savg.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn features_glcm_quantize_fixed_range() {
        let q = quantize(
            &[-25.0, -30.0, 0.0, 5.0, -12.5, -24.3, f32::NAN, -0.01],
            -25.0,
            0.0,
            32,
        );
        // (v + 25) / 25 * 32: -24.3 -> 0.896 -> 0; -12.5 -> 16; -0.01 -> 31.987 -> 31.
        assert_eq!(q, vec![0, 0, 31, 31, 16, 0, MISSING, 31]);
    }

    /// A small deterministic generator (tests only).
    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn features_glcm_sliding_equals_naive_recount_on_random_40x40() {
        let (w, h) = (40usize, 40usize);
        let mut seed = 7u64;
        for (levels, radius, offsets) in [
            (32u16, 4usize, DEFAULT_OFFSETS.to_vec()),
            (32, 3, DEFAULT_OFFSETS.to_vec()),
            (8, 1, vec![(0, 1), (2, -1)]),
            (256, 2, vec![(1, 0), (0, 2)]),
        ] {
            let q: Vec<u16> = (0..w * h)
                .map(|_| {
                    let v = lcg(&mut seed);
                    if v.is_multiple_of(13) {
                        MISSING
                    } else {
                        (v % u64::from(levels)) as u16
                    }
                })
                .collect();
            let s = spec(radius, levels, &offsets);
            for region in [Window::new(0, 0, w, h), Window::new(5, 3, 20, 31)] {
                let fast = savg_diss(&q, w, h, region, &s);
                let slow = savg_diss_naive(&q, w, h, region, &s);
                assert_eq!(fast.savg.len(), region.len());
                for i in 0..region.len() {
                    let same =
                        |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
                    assert!(
                        same(fast.savg[i], slow.savg[i]),
                        "savg {i}: {} vs {}",
                        fast.savg[i],
                        slow.savg[i]
                    );
                    assert!(
                        same(fast.diss[i], slow.diss[i]),
                        "diss {i}: {} vs {}",
                        fast.diss[i],
                        slow.diss[i]
                    );
                }
                assert!(fast.savg.iter().filter(|v| v.is_nan()).count() < region.len() / 5);
            }
        }
    }

    #[test]
    fn features_glcm_spec_problems() {
        assert!(GlcmSpec::default().problems().is_empty());
        assert_eq!(GlcmSpec::default().radius, 4);
        assert_eq!(GlcmSpec::default().levels, 32);
        let p = spec(1, 1, &[(0, 0), (0, 1), (0, -1)]).problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p[0].contains("gray levels") && p[1].contains("(0, 0)") && p[2].contains("repeats")
        );
        let p = spec(0, 32, &[(0, 1)]).problems();
        assert!(p.iter().any(|m| m.contains("radius")), "{p:?}");
        let p = spec(1, 32, &[(0, 3)]).problems();
        assert!(
            p.iter().any(|m| m.contains("longer than the window")),
            "{p:?}"
        );
    }
}
