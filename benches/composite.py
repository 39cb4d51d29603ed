#!/usr/bin/env python3
"""Reference for the `composite` bar (issue 4): numpy `nanmedian` over the same synthetic stack
as `nodes/examples/bench_composite.rs` (`composite::bench_stack` in
`nodes/src/kinds/composite.rs`).

12 dates x 10 bands x 1000 x 1000 float32, 30 % of the (date, pixel) pairs nodata (NaN in every
band). Values and nodata come from the same integer hash (splitmix64's finaliser) as the Rust
side, so both compute the median of bit-identical inputs; compare the printed sums.

    pip install numpy
    python3 benches/composite.py [--runs 3]
"""

import argparse
import time

import numpy as np

DATES, BANDS, SIZE, NODATA, SEED = 12, 10, 1000, 0.3, 42
M64 = (1 << 64) - 1


def mix(x):
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x ^ (x >> np.uint64(30))
        z = z * np.uint64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> np.uint64(27))
        z = z * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def stack(dates, bands, size, nodata_share, seed):
    npix = size * size
    base_valid = (seed * 0x9E3779B97F4A7C15) & M64
    base_value = (base_valid + 0x632BE59BD9B4E019) & M64
    thr = np.uint64(round(nodata_share * 1e6))
    idx = np.arange(npix, dtype=np.uint64)
    out = np.empty((dates, bands, size, size), dtype=np.float32)
    for d in range(dates):
        valid = mix(idx + np.uint64((base_valid + d * npix) & M64)) % np.uint64(1_000_000) >= thr
        for b in range(bands):
            h = mix(idx + np.uint64((base_value + (d * bands + b) * npix) & M64))
            v = (h % np.uint64(10_000)).astype(np.float32) / np.float32(10_000)
            v[~valid] = np.nan
            out[d, b] = v.reshape(size, size)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(
        f"median composite: {DATES} dates x {BANDS} bands x {SIZE} x {SIZE} px, "
        f"{NODATA * 100:.0f} % nodata, seed {SEED} (numpy {np.__version__})"
    )
    s = stack(DATES, BANDS, SIZE, NODATA, SEED)
    print(f"stack built: nodata share {np.isnan(s).mean():.4f}")
    best, med = float("inf"), None
    for _ in range(args.runs):
        t = time.perf_counter()
        med = np.nanmedian(s, axis=0)  # warns "All-NaN slice" for pixels without observation
        best = min(best, time.perf_counter() - t)
    finite = np.isfinite(med)
    print(
        f"numpy nanmedian(axis=0): {best:.3f} s  (best of {args.runs}; sum of medians "
        f"{med[finite].astype(np.float64).sum():.6f}, nodata results {(~finite).sum()})"
    )


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore", message="All-NaN slice encountered")
    main()
