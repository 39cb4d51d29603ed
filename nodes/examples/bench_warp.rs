//! Benchmark: block-wise warp of a full Sentinel-2 tile band, 20 m -> 10 m bilinear
//! (5490 x 5490 UInt16 -> 10980 x 10980), read through `raster::warp_to_grid` in 256-px windows
//! and written with `RasterWriter` (tiled, DEFLATE). Compare with `gdalwarp` on the same file:
//!
//!   cargo run --release -p lulc-nodes --example bench_warp -- /tmp/warp-bench
//!   /usr/bin/time -v gdalwarp -overwrite -tr 10 10 -r bilinear -co TILED=YES \
//!       -co COMPRESS=DEFLATE -co PREDICTOR=2 /tmp/warp-bench/b11_20m.tif /tmp/warp-bench/gdalwarp.tif
//!
//! Peak memory: run this example under `/usr/bin/time -v` too (maximum resident set size).

use std::path::PathBuf;
use std::time::Instant;

use lulc_nodes::raster::{
    DType, Grid, RasterMeta, RasterWriter, Resampling, Window, WriteOptions, warp_to_grid,
};

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/tmp/warp-bench".into()),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("b11_20m.tif");
    let crs = lulc_nodes::raster::crs_to_wkt("EPSG:32648").unwrap();
    let (x0, y0) = (600_000.0, 2_300_040.0);
    let src_grid = Grid {
        crs_wkt: crs.clone(),
        geo_transform: [x0, 20.0, 0.0, y0, 0.0, -20.0],
        width: 5490,
        height: 5490,
    };
    if !src.exists() {
        let meta = RasterMeta {
            grid: src_grid.clone(),
            dtype: DType::U16,
            nodata: Some(0.0),
            band_names: vec!["B11".into()],
        };
        let mut w = RasterWriter::create(&src, &meta, &WriteOptions::default()).unwrap();
        for win in src_grid.blocks(256) {
            let data: Vec<u16> = (0..win.h)
                .flat_map(|r| {
                    (0..win.w)
                        .map(move |c| (((win.x + c) * 7 + (win.y + r) * 13) % 4000 + 500) as u16)
                })
                .collect();
            w.write_window_u16(1, &win, &data).unwrap();
        }
        w.finish().unwrap();
    }
    let dst_grid = Grid {
        crs_wkt: crs,
        geo_transform: [x0, 10.0, 0.0, y0, 0.0, -10.0],
        width: 10980,
        height: 10980,
    };
    let out = dir.join("lulc_warp.tif");
    let t = Instant::now();
    let warped = warp_to_grid(&src, 1, &dst_grid, Resampling::Bilinear).unwrap();
    let meta = RasterMeta {
        grid: dst_grid.clone(),
        dtype: DType::U16,
        nodata: Some(0.0),
        band_names: vec!["B11".into()],
    };
    let mut w = RasterWriter::create(&out, &meta, &WriteOptions::default()).unwrap();
    let mut sum = 0f64;
    for win in dst_grid.blocks(256) {
        let block = warped.read_window_f32(&win).unwrap();
        let data: Vec<u16> = block
            .iter()
            .map(|v| if v.is_nan() { 0 } else { v.round() as u16 })
            .collect();
        sum += block
            .iter()
            .filter(|v| !v.is_nan())
            .map(|v| *v as f64)
            .sum::<f64>();
        w.write_window_u16(1, &Window::new(win.x, win.y, win.w, win.h), &data)
            .unwrap();
    }
    w.finish().unwrap();
    println!(
        "lulc block-wise warp 5490^2 -> 10980^2 bilinear + tiled DEFLATE write: {:.2} s (mean {:.1})",
        t.elapsed().as_secs_f64(),
        sum / (10980.0 * 10980.0)
    );
}
