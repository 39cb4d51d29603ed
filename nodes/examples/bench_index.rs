//! Benchmarks of the `index` node's features (their speed bars in benches/README.md), the Rust side; the references
//! (numpy, scikit-image) are in `benches/index.py`, on the same synthetic data.
//!
//! ```text
//! cargo run --release -p lulc-nodes --example bench_index
//! python3 benches/index.py
//! ```
//!
//! 1. GLCM savg + diss of a 1000 x 1000 band, 7x7 window, 32 levels, 4 directions
//!    ([`glcm::savg_diss`], sliding histograms), on 1 thread and on all threads.
//! 2. Every per-pixel index of a 1000 x 1000 scene (7 Sentinel-2 indices, VV-VH, VV/VH,
//!    HH-HV, HH/HV, NDI, NLI), one fused pass per 256-row block, rayon over blocks.
//!
//! The data are integer hashes, so numpy computes on bit-identical inputs; the printed means and
//! sample values let the two sides be compared.

use std::time::Instant;

use lulc_nodes::features::glcm::{self, GlcmSpec};
use lulc_nodes::features::spectral::{self, Formula, S2Bands, SarRatio};
use lulc_nodes::raster::Window;
use rayon::prelude::*;

const N: usize = 1000;

/// The benchmark's integer hash (same in `benches/index.py`).
fn hash(r: usize, c: usize, k: usize) -> u64 {
    let (r, c, k) = (r as u64, c as u64, k as u64);
    (r * 7919 + c * 104729 + k * 1299709 + (r * c) % 97) % 1000
}

/// Quantised gray levels 0..31 of the GLCM band.
fn gray_levels() -> Vec<u16> {
    (0..N * N)
        .map(|i| (((i / N) / 3 + (i % N) / 5 + hash(i / N, i % N, 0) as usize % 7) % 32) as u16)
        .collect()
}

/// Band `k` of the scene: `hash / 1000 * scale + offset` in `f32`.
fn band(k: usize, scale: f32, offset: f32) -> Vec<f32> {
    (0..N * N)
        .map(|i| hash(i / N, i % N, k) as f32 / 1000.0 * scale + offset)
        .collect()
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = f(); // warm-up
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let t = Instant::now();
        out = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, out)
}

fn nanmean(v: &[f32]) -> f64 {
    let (s, n) = v
        .iter()
        .filter(|x| !x.is_nan())
        .fold((0f64, 0usize), |(s, n), &x| (s + f64::from(x), n + 1));
    s / n as f64
}

fn main() {
    let threads = rayon::current_num_threads();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");

    // 1. GLCM.
    let q = gray_levels();
    let spec = GlcmSpec {
        radius: 3,
        levels: 32,
        offsets: glcm::DEFAULT_OFFSETS.to_vec(),
    };
    let full = Window::new(0, 0, N, N);
    let (t1, t) = one.install(|| time(3, || glcm::savg_diss(&q, N, N, full, &spec)));
    let (tn, _) = time(5, || glcm::savg_diss(&q, N, N, full, &spec));
    println!("GLCM savg+diss, {N}x{N}, 7x7 window, 32 levels, 4 directions:");
    println!(
        "  1 thread:  {:.3} s = {:.3} us/pixel",
        t1,
        t1 * 1e6 / (N * N) as f64
    );
    println!(
        "  {threads} threads: {:.3} s = {:.3} us/pixel",
        tn,
        tn * 1e6 / (N * N) as f64
    );
    println!(
        "  mean savg {:.6}, mean diss {:.6} (all pixels)",
        nanmean(&t.savg),
        nanmean(&t.diss)
    );
    for (r, c) in [(10usize, 10usize), (500, 500), (123, 877), (996, 3)] {
        println!(
            "  pixel ({r}, {c}): savg {:.6} diss {:.6}",
            t.savg[r * N + c],
            t.diss[r * N + c]
        );
    }

    // 2. Indices.
    let s2: Vec<Vec<f32>> = (0..6).map(|k| band(k + 1, 0.4, 0.0)).collect();
    let vv = band(11, 15.0, -20.0);
    let vh = band(12, 15.0, -27.0);
    let hh = band(13, 15.0, -18.0);
    let hv = band(14, 15.0, -25.0);
    let nli = Formula::parse("HV / (HH + HV)", &["HH", "HV"]).expect("formula");
    let names = [
        "NDVI", "EVI", "GNDVI", "GRVI", "NDWI1", "NDWI2", "GSI", "VV-VH", "VV/VH", "HH-HV",
        "HH/HV", "NDI", "NLI",
    ];
    let block = 256 * N;
    let run = || {
        let mut out: Vec<Vec<f32>> = vec![vec![0f32; N * N]; names.len()];
        // Split every output plane into the same blocks, then one task per block.
        let mut per_block: Vec<Vec<&mut [f32]>> = (0..N * N)
            .step_by(block)
            .map(|_| Vec::with_capacity(names.len()))
            .collect();
        for plane in out.iter_mut() {
            for (b, chunk) in plane.chunks_mut(block).enumerate() {
                per_block[b].push(chunk);
            }
        }
        per_block
            .into_par_iter()
            .enumerate()
            .for_each(|(b, planes)| {
                let lo = b * block;
                let hi = (lo + block).min(N * N);
                let mut it = planes.into_iter();
                let s2_out: [&mut [f32]; 7] = std::array::from_fn(|_| it.next().expect("plane"));
                spectral::s2_indices(
                    &S2Bands {
                        blue: &s2[0][lo..hi],
                        green: &s2[1][lo..hi],
                        red: &s2[2][lo..hi],
                        nir: &s2[3][lo..hi],
                        swir1: &s2[4][lo..hi],
                        swir2: &s2[5][lo..hi],
                    },
                    s2_out,
                );
                let rest: Vec<&mut [f32]> = it.collect();
                let [vvvh, vvq, hhhv, hhq, ndi, nl] = <[&mut [f32]; 6]>::try_from(rest).expect("6");
                spectral::sar_pair(&vv[lo..hi], &vh[lo..hi], SarRatio::DbQuotient, vvvh, vvq);
                spectral::sar_pair(&hh[lo..hi], &hv[lo..hi], SarRatio::DbQuotient, hhhv, hhq);
                spectral::palsar_indices(&hh[lo..hi], &hv[lo..hi], &nli, ndi, nl);
            });
        out
    };
    let (t1, out) = one.install(|| time(5, run));
    let (tn, _) = time(10, run);
    println!(
        "All indices ({} planes), {N}x{N}, fused pass per 256-row block:",
        names.len()
    );
    println!("  1 thread:  {:.4} s", t1);
    println!("  {threads} threads: {:.4} s", tn);
    let means: Vec<String> = names
        .iter()
        .zip(&out)
        .map(|(n, v)| format!("{n} {:.6}", nanmean(v)))
        .collect();
    println!("  means: {}", means.join(", "));
}
