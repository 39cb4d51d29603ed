#!/usr/bin/env python3
"""References for the `index` node's bars (issue 4), on the same data as
`nodes/examples/bench_index.rs`:

1. GLCM savg + diss with scikit-image (`graycomatrix` / `graycoprops`) per pixel, 7x7 window,
   32 levels, 4 directions, symmetric, normed: timed on a sample of pixels and extrapolated to
   the 1000 x 1000 band (a full run would take minutes).
2. Every per-pixel index of a 1000 x 1000 scene with numpy, float32 (7 Sentinel-2 indices,
   VV-VH, VV/VH, HH-HV, HH/HV, NDI, NLI), zero denominators -> NaN as in the Rust code.

    pip install numpy scikit-image
    python3 benches/index.py [--sample 2000]
"""

import argparse
import time

import numpy as np
from skimage.feature import graycomatrix, graycoprops

N = 1000


def hashes(k):
    r = np.arange(N, dtype=np.int64)[:, None]
    c = np.arange(N, dtype=np.int64)[None, :]
    return (r * 7919 + c * 104729 + k * 1299709 + (r * c) % 97) % 1000


def gray_levels():
    r = np.arange(N, dtype=np.int64)[:, None]
    c = np.arange(N, dtype=np.int64)[None, :]
    return ((r // 3 + c // 5 + hashes(0) % 7) % 32).astype(np.uint8)


def band(k, scale, offset):
    return hashes(k).astype(np.float32) / np.float32(1000) * np.float32(scale) + np.float32(offset)


def glcm_pixel(q, r, c, radius=3, levels=32):
    patch = q[r - radius : r + radius + 1, c - radius : c + radius + 1]
    angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    p = graycomatrix(patch, [1], angles, levels=levels, symmetric=True, normed=True)
    diss = graycoprops(p, "dissimilarity").mean()
    # Sum average (levels numbered 1..Ng): sum_k k p_{x+y}(k) = sum_ij (i + j + 2) p(i, j).
    i = np.arange(levels)[:, None]
    j = np.arange(levels)[None, :]
    savg = np.mean([((i + j + 2) * p[:, :, 0, a]).sum() for a in range(len(angles))])
    return savg, diss


def ratio(n, d):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = n / d
    q[~np.isfinite(q)] = np.nan
    return q


def indices(b2, b3, b4, b8, b11, b12, vv, vh, hh, hv):
    out = {}
    out["NDVI"] = ratio(b8 - b4, b8 + b4)
    out["EVI"] = ratio(np.float32(2.5) * (b8 - b4), b8 + np.float32(6) * b4 - np.float32(7.5) * b2 + np.float32(1))
    out["GNDVI"] = ratio(b8 - b3, b8 + b3)
    out["GRVI"] = ratio(b3 - b4, b3 + b4)
    out["NDWI1"] = ratio(b8 - b11, b8 + b11)
    out["NDWI2"] = ratio(b8 - b12, b8 + b12)
    out["GSI"] = ratio(b4 - b2, b2 + b3 + b4)
    out["VV-VH"] = vv - vh
    out["VV/VH"] = ratio(vv, vh)
    out["HH-HV"] = hh - hv
    out["HH/HV"] = ratio(hh, hv)
    hh_lin = np.power(np.float32(10), hh / np.float32(10))
    hv_lin = np.power(np.float32(10), hv / np.float32(10))
    out["NDI"] = ratio(hh_lin - hv_lin, hh_lin + hv_lin)
    out["NLI"] = ratio(hv_lin, hh_lin + hv_lin)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=int, default=2000)
    args = ap.parse_args()

    q = gray_levels()
    rng = np.random.default_rng(0)
    rs = rng.integers(3, N - 3, args.sample)
    cs = rng.integers(3, N - 3, args.sample)
    t = time.perf_counter()
    for r, c in zip(rs, cs):
        glcm_pixel(q, r, c)
    dt = time.perf_counter() - t
    per = dt / args.sample
    print(f"scikit-image GLCM savg+diss, 7x7, 32 levels, 4 directions, {args.sample} pixels:")
    print(f"  {dt:.3f} s = {per * 1e6:.1f} us/pixel -> {per * N * N:.0f} s for {N}x{N} (extrapolated)")
    for r, c in [(10, 10), (500, 500), (123, 877)]:
        s, d = glcm_pixel(q, r, c)
        print(f"  pixel ({r}, {c}): savg {s:.6f} diss {d:.6f}")

    s2 = [band(k + 1, 0.4, 0.0) for k in range(6)]
    vv, vh = band(11, 15.0, -20.0), band(12, 15.0, -27.0)
    hh, hv = band(13, 15.0, -18.0), band(14, 15.0, -25.0)
    indices(*s2, vv, vh, hh, hv)  # warm-up
    best = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        out = indices(*s2, vv, vh, hh, hv)
        best = min(best, time.perf_counter() - t)
    print(f"numpy, all indices ({len(out)} planes), {N}x{N}, float32: {best:.4f} s (best of 10)")
    print("  means: " + ", ".join(f"{k} {np.nanmean(v, dtype=np.float64):.6f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
