//! Distance to the nearest road: lines burnt into a grid, then an exact Euclidean distance
//! transform (`docs/method.md`, "Static": rasterise roads at 10 m, exact EDT).
//!
//! The transform is Felzenszwalb & Huttenlocher's (2012, Theory of Computing 8): a pass down and
//! up each column gives the distance (in pixels) to the nearest road pixel of the same column;
//! then each row takes the lower envelope of the parabolas `(px (x - i))^2 + (py g_i)^2`, which
//! is the exact squared distance to the nearest road pixel centre, in O(n) per row, for square
//! or rectangular pixels. Memory is one `u32` per pixel: the column distances, overwritten row by
//! row with the final distances ([`DistanceField`]), so a 10980 x 10980 tile needs 482 MB.

use rayon::prelude::*;

use crate::raster::Window;

/// Marks a pixel without a road in its column (column pass), and no road at all (result).
const FAR: u32 = u32::MAX;

/// Burn polylines (in pixel coordinates: `x` = column, `y` = row, `(0, 0)` the top-left corner of
/// the first pixel) into `mask` (`width x height`): every pixel a segment passes through, like
/// GDAL's `ALL_TOUCHED` for lines. Parts outside the grid are clipped.
pub fn burn_lines<'a>(
    lines: impl IntoIterator<Item = &'a [(f64, f64)]>,
    width: usize,
    height: usize,
    mask: &mut [bool],
) {
    assert_eq!(mask.len(), width * height);
    for line in lines {
        match line {
            [] => {}
            [p] => burn_point(*p, width, height, mask),
            _ => {
                for seg in line.windows(2) {
                    burn_segment(seg[0], seg[1], width, height, mask);
                }
            }
        }
    }
}

fn burn_point((x, y): (f64, f64), width: usize, height: usize, mask: &mut [bool]) {
    if x >= 0.0 && y >= 0.0 && x < width as f64 && y < height as f64 {
        mask[y as usize * width + x as usize] = true;
    }
}

/// Amanatides & Woo's grid traversal of a segment clipped to the grid (Liang-Barsky).
fn burn_segment(a: (f64, f64), b: (f64, f64), width: usize, height: usize, mask: &mut [bool]) {
    let (w, h) = (width as f64, height as f64);
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    if !(a.0.is_finite() && a.1.is_finite() && b.0.is_finite() && b.1.is_finite()) {
        return;
    }
    // Clip the parameter range [t0, t1] of a + t (b - a) to the box [0, w] x [0, h].
    let (mut t0, mut t1) = (0f64, 1f64);
    for (p, q) in [(-dx, a.0), (dx, w - a.0), (-dy, a.1), (dy, h - a.1)] {
        if p == 0.0 {
            if q < 0.0 {
                return;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    if t0 > t1 {
        return;
    }
    let start = (a.0 + t0 * dx, a.1 + t0 * dy);
    let end = (a.0 + t1 * dx, a.1 + t1 * dy);
    let cell = |v: f64, n: usize| (v.floor().max(0.0) as usize).min(n - 1);
    let (mut cx, mut cy) = (cell(start.0, width), cell(start.1, height));
    let (ex, ey) = (cell(end.0, width), cell(end.1, height));
    let step = |d: f64| if d > 0.0 { 1isize } else { -1 };
    let (sx, sy) = (step(dx), step(dy));
    let next = |c: usize, s: isize, p: f64, d: f64| {
        if d == 0.0 {
            f64::INFINITY
        } else {
            let boundary = if s > 0 { c as f64 + 1.0 } else { c as f64 };
            (boundary - p) / d
        }
    };
    // Parameters along the clipped segment (0..1 of the original) at the next x / y boundary.
    let (mut tx, mut ty) = (next(cx, sx, a.0, dx), next(cy, sy, a.1, dy));
    let (tdx, tdy) = (
        if dx == 0.0 {
            f64::INFINITY
        } else {
            1.0 / dx.abs()
        },
        if dy == 0.0 {
            f64::INFINITY
        } else {
            1.0 / dy.abs()
        },
    );
    let max_steps = cx.abs_diff(ex) + cy.abs_diff(ey);
    mask[cy * width + cx] = true;
    for _ in 0..max_steps {
        if cx == ex && cy == ey {
            break;
        }
        if (tx < ty && cx != ex) || cy == ey {
            cx = cx.saturating_add_signed(sx).min(width - 1);
            tx += tdx;
        } else {
            cy = cy.saturating_add_signed(sy).min(height - 1);
            ty += tdy;
        }
        mask[cy * width + cx] = true;
    }
}

/// Distances (in the units of the pixel size) from every pixel centre to the nearest marked
/// pixel centre; `NaN` where nothing is marked at all.
#[derive(Clone, Debug)]
pub struct DistanceField {
    width: usize,
    height: usize,
    /// `f32` bits of the distance, or [`FAR`].
    bits: Vec<u32>,
}

impl DistanceField {
    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Whether any pixel was marked.
    pub fn has_targets(&self) -> bool {
        self.bits.iter().any(|&b| b != FAR)
    }

    pub fn get(&self, col: usize, row: usize) -> f32 {
        decode(self.bits[row * self.width + col])
    }

    /// The distances of a window, row-major.
    pub fn window(&self, w: &Window) -> Vec<f32> {
        assert!(w.x + w.w <= self.width && w.y + w.h <= self.height);
        let mut out = Vec::with_capacity(w.len());
        for r in w.y..w.y + w.h {
            out.extend(
                self.bits[r * self.width + w.x..][..w.w]
                    .iter()
                    .map(|&b| decode(b)),
            );
        }
        out
    }
}

fn decode(b: u32) -> f32 {
    if b == FAR {
        f32::NAN
    } else {
        f32::from_bits(b)
    }
}

/// Exact Euclidean distance transform of `mask` (`width x height`, `true` = target) with pixels
/// `px` wide and `py` high.
pub fn edt(mask: &[bool], width: usize, height: usize, px: f64, py: f64) -> DistanceField {
    assert_eq!(mask.len(), width * height);
    let mut g: Vec<u32> = mask.iter().map(|&m| if m { 0 } else { FAR }).collect();
    edt_in_place(&mut g, width, height, px, py);
    DistanceField {
        width,
        height,
        bits: g,
    }
}

/// [`edt`] on a buffer already holding 0 for targets and [`FAR`] elsewhere (saves the mask).
fn edt_in_place(g: &mut [u32], width: usize, height: usize, px: f64, py: f64) {
    if width == 0 || height == 0 {
        return;
    }
    // Column pass, row-major so it streams: down, then up.
    for r in 1..height {
        let (above, row) = g.split_at_mut(r * width);
        let above = &above[(r - 1) * width..];
        for (v, &a) in row[..width].iter_mut().zip(above) {
            if *v != 0 {
                *v = a.saturating_add(1);
            }
        }
    }
    for r in (0..height - 1).rev() {
        let (row, below) = g.split_at_mut((r + 1) * width);
        let row = &mut row[r * width..];
        for (v, &b) in row.iter_mut().zip(&below[..width]) {
            *v = (*v).min(b.saturating_add(1));
        }
    }
    // Row pass: lower envelope of parabolas, each row independently.
    g.par_chunks_mut(width)
        .for_each_init(|| RowScratch::new(width), |s, row| s.row(row, px, py));
}

struct RowScratch {
    f: Vec<f64>,
    /// Sites (columns) of the parabolas in the envelope.
    v: Vec<usize>,
    /// Boundaries between envelope parabolas.
    z: Vec<f64>,
}

impl RowScratch {
    fn new(width: usize) -> RowScratch {
        RowScratch {
            f: vec![0.0; width],
            v: vec![0; width],
            z: vec![0.0; width + 1],
        }
    }

    fn row(&mut self, row: &mut [u32], px: f64, py: f64) {
        let n = row.len();
        let px2 = px * px;
        let mut k: isize = -1;
        for (q, &gq) in row.iter().enumerate() {
            if gq == FAR {
                continue;
            }
            let fq = (py * f64::from(gq)).powi(2);
            self.f[q] = fq;
            // Pop parabolas hidden by the new one.
            loop {
                if k < 0 {
                    k = 0;
                    self.v[0] = q;
                    self.z[0] = f64::NEG_INFINITY;
                    self.z[1] = f64::INFINITY;
                    break;
                }
                let p = self.v[k as usize];
                let (qf, pf) = (q as f64, p as f64);
                let s =
                    ((fq + px2 * qf * qf) - (self.f[p] + px2 * pf * pf)) / (2.0 * px2 * (qf - pf));
                if s <= self.z[k as usize] {
                    k -= 1;
                    continue;
                }
                k += 1;
                self.v[k as usize] = q;
                self.z[k as usize] = s;
                self.z[k as usize + 1] = f64::INFINITY;
                break;
            }
        }
        if k < 0 {
            return; // no target in reach of this row: stays FAR
        }
        let mut j = 0usize;
        for (x, out) in row.iter_mut().enumerate().take(n) {
            while self.z[j + 1] < x as f64 {
                j += 1;
            }
            let p = self.v[j];
            let d2 = (px * (x as f64 - p as f64)).powi(2) + self.f[p];
            *out = (d2.sqrt() as f32).to_bits();
        }
    }
}

/// Burn `lines` (pixel coordinates) on a `width x height` grid and transform: the distance in
/// metres (pixel size `px x py`) to the nearest burnt pixel.
pub fn distance_to_lines<'a>(
    lines: impl IntoIterator<Item = &'a [(f64, f64)]>,
    width: usize,
    height: usize,
    px: f64,
    py: f64,
) -> DistanceField {
    let mut mask = vec![false; width * height];
    burn_lines(lines, width, height, &mut mask);
    let mut g: Vec<u32> = mask.iter().map(|&m| if m { 0 } else { FAR }).collect();
    drop(mask);
    edt_in_place(&mut g, width, height, px, py);
    DistanceField {
        width,
        height,
        bits: g,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(mask: &[bool], w: usize, h: usize, px: f64, py: f64) -> Vec<f32> {
        let targets: Vec<(usize, usize)> = (0..w * h)
            .filter(|&i| mask[i])
            .map(|i| (i % w, i / w))
            .collect();
        (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                targets
                    .iter()
                    .map(|&(tx, ty)| {
                        (px * (x as f64 - tx as f64)).powi(2)
                            + (py * (y as f64 - ty as f64)).powi(2)
                    })
                    .fold(f64::INFINITY, f64::min)
            })
            .map(|d2| {
                if d2.is_infinite() {
                    f32::NAN
                } else {
                    d2.sqrt() as f32
                }
            })
            .collect()
    }

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn features_edt_exact_against_brute_force() {
        let mut seed = 3u64;
        for (w, h, density, px, py) in [
            (31usize, 23usize, 40u64, 10.0, 10.0),
            (17, 29, 7, 10.0, 10.0),
            (40, 40, 300, 10.0, 10.0),
            (25, 19, 20, 30.0, 20.0),
            (1, 9, 4, 10.0, 10.0),
        ] {
            let mask: Vec<bool> = (0..w * h)
                .map(|_| lcg(&mut seed).is_multiple_of(density))
                .collect();
            assert!(mask.iter().any(|&m| m), "test needs a target");
            let field = edt(&mask, w, h, px, py);
            let want = brute(&mask, w, h, px, py);
            let got = field.window(&Window::new(0, 0, w, h));
            for i in 0..w * h {
                assert_eq!(
                    got[i].to_bits(),
                    want[i].to_bits(),
                    "{w}x{h} pixel {i}: {} vs {}",
                    got[i],
                    want[i]
                );
            }
        }
        // Nothing marked: nodata everywhere.
        let field = edt(&[false; 12], 4, 3, 10.0, 10.0);
        assert!(!field.has_targets());
        assert!(field.get(1, 1).is_nan());
    }

    #[test]
    fn features_edt_hand_values() {
        // One target at (1, 1) of a 4 x 3 grid of 10 m pixels.
        let mut mask = vec![false; 12];
        mask[4 + 1] = true;
        let f = edt(&mask, 4, 3, 10.0, 10.0);
        assert_eq!(f.get(1, 1), 0.0);
        assert_eq!(f.get(2, 1), 10.0);
        assert_eq!(f.get(3, 2), (500f64).sqrt() as f32); // dx 2, dy 1 -> sqrt(400 + 100)
        assert_eq!(f.get(3, 0), (500f64).sqrt() as f32);
        assert_eq!(
            f.window(&Window::new(0, 0, 2, 1)),
            vec![(200f64).sqrt() as f32, 10.0]
        );
    }

    #[test]
    fn features_burn_lines_touches_every_crossed_pixel() {
        let (w, h) = (6, 5);
        let mut mask = vec![false; w * h];
        // A diagonal from (0.5, 0.5) to (4.5, 2.5): slope 1/2.
        let line = [(0.5, 0.5), (4.5, 2.5)];
        burn_lines([&line[..]], w, h, &mut mask);
        let on: Vec<(usize, usize)> = (0..w * h)
            .filter(|&i| mask[i])
            .map(|i| (i % w, i / w))
            .collect();
        // Crosses x = 1 at y = 0.75, x = 2 at y = 1.25 (row 1 from x = 1.5), x = 3 at 1.75,
        // x = 4 at y = 2.25 (row 2 from x = 3.5).
        assert_eq!(
            on,
            vec![(0, 0), (1, 0), (1, 1), (2, 1), (3, 1), (3, 2), (4, 2)]
        );
        // Clipped: a line from outside the grid to outside the grid through row 3.
        let mut mask = vec![false; w * h];
        let line = [(-5.0, 3.5), (20.0, 3.5)];
        burn_lines([&line[..]], w, h, &mut mask);
        assert_eq!(mask.iter().filter(|&&m| m).count(), w);
        assert!((0..w).all(|x| mask[3 * w + x]));
        // Entirely outside: nothing.
        let mut mask = vec![false; w * h];
        let line = [(-5.0, -1.0), (20.0, -0.5)];
        burn_lines([&line[..]], w, h, &mut mask);
        assert!(!mask.iter().any(|&m| m));
        // A vertical line going up, ending on a pixel boundary.
        let mut mask = vec![false; w * h];
        let line = [(2.5, 4.5), (2.5, 1.0)];
        burn_lines([&line[..]], w, h, &mut mask);
        let on: Vec<usize> = (0..w * h).filter(|&i| mask[i]).collect();
        assert_eq!(on, vec![w + 2, 2 * w + 2, 3 * w + 2, 4 * w + 2]);
    }

    #[test]
    fn features_distance_to_lines() {
        // A horizontal road along row 2 of a 5 x 5 grid of 10 m pixels.
        let line = [(0.0, 2.5), (5.0, 2.5)];
        let f = distance_to_lines([&line[..]], 5, 5, 10.0, 10.0);
        for r in 0..5 {
            for c in 0..5 {
                assert_eq!(f.get(c, r), 10.0 * (r as f32 - 2.0).abs());
            }
        }
    }
}
