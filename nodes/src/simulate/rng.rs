//! Deterministic randomness without a dependency: counter-based hashing (SplitMix64's
//! finaliser) for per-pixel and per-object draws, a sequential SplitMix64 stream for loops, and
//! value-noise fields for spatially coherent patterns.
//!
//! Why hand-rolled: the output of `simulate` is part of the contract (same seed, same bytes,
//! forever), so the generators must never change under us with a crate upgrade, and a draw for
//! pixel `p` of scene `s` must not depend on the order in which rayon ran the scenes.

/// SplitMix64's finaliser: a bijective, well-mixing 64-bit hash.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of a sequence of words (order matters).
#[inline]
pub fn hash(parts: &[u64]) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for &p in parts {
        x = mix64(x ^ p.wrapping_mul(0xd6e8_feb8_6659_fd93));
    }
    x
}

/// Uniform in `[0, 1)` from a hash (24 bits, exactly representable as `f32`).
#[inline]
pub fn unit_f32(h: u64) -> f32 {
    (h >> 40) as f32 * (1.0 / 16_777_216.0)
}

/// Uniform in `[0, 1)` with 53 bits.
#[inline]
pub fn unit_f64(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
}

/// Uniform in `[0, 1)` keyed by `parts`.
#[inline]
pub fn u01(parts: &[u64]) -> f32 {
    unit_f32(hash(parts))
}

/// A sequential SplitMix64 stream.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(parts: &[u64]) -> Rng {
        Rng { state: hash(parts) }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn f64(&mut self) -> f64 {
        unit_f64(self.next_u64())
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn f32(&mut self) -> f32 {
        unit_f32(self.next_u64())
    }

    /// Uniform in `[lo, hi)`.
    #[inline]
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in `0..n` (`n > 0`).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 11) as u128 * n as u128) >> 53) as usize
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Four cheap approximately normal draws (mean 0, sd 1) from one 64-bit word: each is the
    /// sum of two 8-bit uniforms, rescaled (a triangular distribution). Used for sensor noise,
    /// where millions of draws per scene are needed and the exact tail shape does not matter.
    #[inline]
    pub fn noise4(&mut self) -> [f32; 4] {
        let w = self.next_u64();
        let mut out = [0.0f32; 4];
        for (i, o) in out.iter_mut().enumerate() {
            let a = ((w >> (16 * i)) & 0xff) as f32;
            let b = ((w >> (16 * i + 8)) & 0xff) as f32;
            // (a + b) / 255 - 1 is triangular on [-1, 1] with variance 1/6.
            *o = ((a + b) * (1.0 / 255.0) - 1.0) * 2.449_49;
        }
        out
    }

    /// A draw of Gamma(shape = `looks`, scale = 1 / `looks`) for integer looks (mean 1): the
    /// multiplicative speckle of a `looks`-look SAR intensity.
    #[inline]
    pub fn speckle(&mut self, looks: u32) -> f32 {
        let mut prod = 1.0f64;
        for _ in 0..looks {
            prod *= 1.0 - self.f64();
        }
        (-prod.ln() / f64::from(looks)) as f32
    }
}

/// Value noise on a square lattice of `cell` pixels, precomputed over a rectangle of lattice
/// nodes, smoothly (quintic) interpolated; values in `[-1, 1]`.
#[derive(Clone, Debug)]
pub struct ValueNoise {
    inv_cell: f32,
    /// Lattice index of the first stored node.
    x0: i64,
    y0: i64,
    nx: usize,
    ny: usize,
    lattice: Vec<f32>,
}

#[inline]
fn fade(t: f32) -> f32 {
    t * t * t * (t * (t * 6.0 - 15.0) + 10.0)
}

impl ValueNoise {
    /// Noise keyed by `key`, valid for pixel coordinates in `[min_x, max_x] x [min_y, max_y]`.
    pub fn new(key: &[u64], cell: f32, min_x: f32, min_y: f32, max_x: f32, max_y: f32) -> Self {
        let cell = cell.max(1.0);
        let x0 = (min_x / cell).floor() as i64 - 1;
        let y0 = (min_y / cell).floor() as i64 - 1;
        let x1 = (max_x / cell).floor() as i64 + 2;
        let y1 = (max_y / cell).floor() as i64 + 2;
        let nx = (x1 - x0 + 1) as usize;
        let ny = (y1 - y0 + 1) as usize;
        let base = hash(key);
        let mut lattice = Vec::with_capacity(nx * ny);
        for j in 0..ny {
            for i in 0..nx {
                let h = hash(&[base, (x0 + i as i64) as u64, (y0 + j as i64) as u64]);
                lattice.push(unit_f32(h) * 2.0 - 1.0);
            }
        }
        ValueNoise {
            inv_cell: 1.0 / cell,
            x0,
            y0,
            nx,
            ny,
            lattice,
        }
    }

    /// The noise at pixel coordinates `(x, y)` (clamped to the precomputed rectangle).
    #[inline]
    pub fn at(&self, x: f32, y: f32) -> f32 {
        let fx = x * self.inv_cell - self.x0 as f32;
        let fy = y * self.inv_cell - self.y0 as f32;
        let fx = fx.clamp(0.0, (self.nx - 2) as f32);
        let fy = fy.clamp(0.0, (self.ny - 2) as f32);
        let (ix, iy) = (fx as usize, fy as usize);
        let ix = ix.min(self.nx - 2);
        let iy = iy.min(self.ny - 2);
        let (tx, ty) = (fade(fx - ix as f32), fade(fy - iy as f32));
        let i = iy * self.nx + ix;
        let (a, b) = (self.lattice[i], self.lattice[i + 1]);
        let (c, d) = (self.lattice[i + self.nx], self.lattice[i + self.nx + 1]);
        let top = a + (b - a) * tx;
        let bottom = c + (d - c) * tx;
        top + (bottom - top) * ty
    }
}

/// Fractal sum of value noise: `octaves` layers, each half the cell size and `gain` times the
/// amplitude of the previous one, normalised so the result stays in `[-1, 1]`.
#[derive(Clone, Debug)]
pub struct Fbm {
    layers: Vec<(ValueNoise, f32)>,
}

impl Fbm {
    pub fn new(key: &[u64], cell: f32, octaves: usize, gain: f32, bounds: [f32; 4]) -> Fbm {
        let mut layers = Vec::with_capacity(octaves);
        let (mut c, mut amp, mut total) = (cell, 1.0f32, 0.0f32);
        for o in 0..octaves {
            let mut k = key.to_vec();
            k.push(o as u64);
            let [x0, y0, x1, y1] = bounds;
            layers.push((ValueNoise::new(&k, c, x0, y0, x1, y1), amp));
            total += amp;
            c *= 0.5;
            amp *= gain;
        }
        for l in &mut layers {
            l.1 /= total;
        }
        Fbm { layers }
    }

    #[inline]
    pub fn at(&self, x: f32, y: f32) -> f32 {
        self.layers.iter().map(|(n, a)| n.at(x, y) * a).sum()
    }
}

/// `0` below `e0`, `1` above `e1`, smooth in between (also for `e0 > e1`, reversed).
#[inline]
pub fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_streams_are_stable_and_uniform() {
        // Golden values: the simulator's bytes depend on these never changing.
        assert_eq!(mix64(0), 0);
        assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
        let mut r = Rng::new(&[1, 2, 3]);
        let n = 20_000;
        let mean = (0..n).map(|_| r.f64()).sum::<f64>() / f64::from(n);
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let sp = (0..n).map(|_| f64::from(r.speckle(4))).collect::<Vec<_>>();
        let m = sp.iter().sum::<f64>() / f64::from(n);
        let var = sp.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / f64::from(n);
        // Gamma(4, 1/4): mean 1, variance 1/4.
        assert!(
            (m - 1.0).abs() < 0.02 && (var - 0.25).abs() < 0.02,
            "{m} {var}"
        );
        let z: Vec<f32> = (0..n / 4).flat_map(|_| r.noise4()).collect();
        let zm = z.iter().sum::<f32>() / z.len() as f32;
        let zv = z.iter().map(|v| (v - zm) * (v - zm)).sum::<f32>() / z.len() as f32;
        assert!(zm.abs() < 0.03 && (zv - 1.0).abs() < 0.05, "{zm} {zv}");
    }

    #[test]
    fn value_noise_is_continuous_and_bounded() {
        let n = ValueNoise::new(&[9], 16.0, 0.0, 0.0, 100.0, 100.0);
        let mut prev = n.at(0.0, 50.0);
        for i in 1..1000 {
            let v = n.at(i as f32 * 0.1, 50.0);
            assert!((-1.0..=1.0).contains(&v));
            assert!((v - prev).abs() < 0.05, "jump at {i}");
            prev = v;
        }
    }
}
