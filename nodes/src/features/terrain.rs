//! Slope in degrees by Horn's method, as `gdaldem slope` computes it (`docs/method.md`, "Static").
//!
//! For the 3x3 window `a b c / d e f / g h i` around a pixel, with pixel sizes `ewres` and
//! `nsres` in the DEM's vertical unit (metres on a projected grid):
//!
//! ```text
//! dz/dx = ((c + 2f + i) - (a + 2d + g)) / (8 ewres)
//! dz/dy = ((g + 2h + i) - (a + 2b + c)) / (8 nsres)
//! slope = atan(sqrt(dz/dx^2 + dz/dy^2)) in degrees
//! ```
//!
//! Nodata and edges follow GDAL 3.6's `GDALGeneric3x3Processing` exactly:
//! - a nodata centre gives nodata;
//! - `compute_edges = false` (plain `gdaldem slope`): a nodata neighbour, or a pixel on the
//!   raster's border, gives nodata;
//! - `compute_edges = true` (`gdaldem slope -compute_edges`): a nodata neighbour takes the
//!   centre's value; a window row or column outside the raster is extrapolated linearly
//!   (`2 x edge - next`), except that on the first and last rows the columns beyond the left
//!   and right border repeat the border column, as GDAL does.

use crate::raster::Window;

/// Slope in degrees of every pixel of `region` of a DEM buffer (`width x height`, row-major,
/// `NaN` = nodata). The buffer's borders are taken as the raster's borders, so pass a block
/// with a one-pixel halo clipped to the raster to get what the whole raster would give.
///
/// # Panics
/// If `dem` is not `width x height` or `region` is not inside it.
pub fn slope_horn(
    dem: &[f32],
    width: usize,
    height: usize,
    res: (f64, f64),
    compute_edges: bool,
    region: Window,
) -> Vec<f32> {
    assert_eq!(
        dem.len(),
        width * height,
        "DEM buffer is not width x height"
    );
    assert!(
        region.x + region.w <= width && region.y + region.h <= height,
        "region {region} outside the {width} x {height} DEM"
    );
    let inv_ew = 1.0 / (8.0 * res.0);
    let inv_ns = 1.0 / (8.0 * res.1);
    let v = |r: usize, c: usize| dem[r * width + c];
    let mut out = Vec::with_capacity(region.len());
    for r in region.y..region.y + region.h {
        for c in region.x..region.x + region.w {
            let centre = v(r, c);
            let border = r == 0 || c == 0 || r + 1 == height || c + 1 == width;
            if centre.is_nan() || (border && (!compute_edges || width < 2 || height < 2)) {
                out.push(f32::NAN);
                continue;
            }
            let mut win = if border {
                edge_window(dem, width, height, r, c)
            } else {
                [
                    v(r - 1, c - 1),
                    v(r - 1, c),
                    v(r - 1, c + 1),
                    v(r, c - 1),
                    centre,
                    v(r, c + 1),
                    v(r + 1, c - 1),
                    v(r + 1, c),
                    v(r + 1, c + 1),
                ]
            };
            if win.iter().any(|x| x.is_nan()) {
                if !compute_edges {
                    out.push(f32::NAN);
                    continue;
                }
                for x in &mut win {
                    if x.is_nan() {
                        *x = centre;
                    }
                }
            }
            out.push(horn(&win, inv_ew, inv_ns));
        }
    }
    out
}

/// Horn's slope of one window (GDAL sums in the DEM's type, here `f32`, then scales in `f64`).
fn horn(w: &[f32; 9], inv_ew: f64, inv_ns: f64) -> f32 {
    let dx = f64::from((w[0] + w[3] + w[3] + w[6]) - (w[2] + w[5] + w[5] + w[8])) * inv_ew;
    let dy = f64::from((w[6] + w[7] + w[7] + w[8]) - (w[0] + w[1] + w[1] + w[2])) * inv_ns;
    ((dx * dx + dy * dy).sqrt().atan().to_degrees()) as f32
}

/// GDAL's `INTERPOL(a, b)`: `2a - b`, nodata if either is.
fn interpol(a: f32, b: f32) -> f32 {
    2.0 * a - b
}

/// The 3x3 window of a border pixel with `-compute_edges` (raster at least 2 x 2).
fn edge_window(dem: &[f32], width: usize, height: usize, r: usize, c: usize) -> [f32; 9] {
    let v = |r: usize, c: usize| dem[r * width + c];
    if r == 0 || r + 1 == height {
        // First / last row: columns clamped (repeated) at the left and right borders.
        let jmin = if c == 0 { c } else { c - 1 };
        let jmax = if c + 1 == width { c } else { c + 1 };
        let cols = [jmin, c, jmax];
        if r == 0 {
            let (row, next) = (0, 1);
            let top = cols.map(|j| interpol(v(row, j), v(next, j)));
            [
                top[0],
                top[1],
                top[2],
                v(row, jmin),
                v(row, c),
                v(row, jmax),
                v(next, jmin),
                v(next, c),
                v(next, jmax),
            ]
        } else {
            let (prev, row) = (r - 1, r);
            let bottom = cols.map(|j| interpol(v(row, j), v(prev, j)));
            [
                v(prev, jmin),
                v(prev, c),
                v(prev, jmax),
                v(row, jmin),
                v(row, c),
                v(row, jmax),
                bottom[0],
                bottom[1],
                bottom[2],
            ]
        }
    } else if c == 0 {
        let rows = [r - 1, r, r + 1];
        let mut w = [0f32; 9];
        for (k, &y) in rows.iter().enumerate() {
            w[3 * k] = interpol(v(y, 0), v(y, 1));
            w[3 * k + 1] = v(y, 0);
            w[3 * k + 2] = v(y, 1);
        }
        w
    } else {
        let rows = [r - 1, r, r + 1];
        let mut w = [0f32; 9];
        for (k, &y) in rows.iter().enumerate() {
            w[3 * k] = v(y, c - 1);
            w[3 * k + 1] = v(y, c);
            w[3 * k + 2] = interpol(v(y, c), v(y, c - 1));
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::{DType, Grid, RasterMeta, RasterReader, RasterWriter, WriteOptions};

    fn full(w: usize, h: usize) -> Window {
        Window::new(0, 0, w, h)
    }

    #[test]
    fn features_slope_plane_by_hand() {
        // z = 3 x (metres, x in pixels of 10 m): dz/dx = 0.3 -> slope = atan(0.3) = 16.699 deg.
        let (w, h) = (5, 4);
        let dem: Vec<f32> = (0..w * h).map(|i| 3.0 * (i % w) as f32).collect();
        let s = slope_horn(&dem, w, h, (10.0, 10.0), false, full(w, h));
        let want = 0.3f64.atan().to_degrees() as f32;
        for r in 0..h {
            for c in 0..w {
                let v = s[r * w + c];
                if r == 0 || c == 0 || r == h - 1 || c == w - 1 {
                    assert!(v.is_nan(), "border ({r},{c}) = {v}");
                } else {
                    assert!((v - want).abs() < 1e-4, "({r},{c}) = {v}");
                }
            }
        }
        // With edges computed, a plane extrapolates to the same slope everywhere, except the
        // corners of the first/last rows, where GDAL repeats the border column (dz/dx halves).
        let s = slope_horn(&dem, w, h, (10.0, 10.0), true, full(w, h));
        for r in 0..h {
            for c in 0..w {
                let v = s[r * w + c];
                let corner_row = (r == 0 || r == h - 1) && (c == 0 || c == w - 1);
                let expect = if corner_row {
                    // (c + 2f + i) - (a + 2d + g) spans one column instead of two: 4 x 3 / 80.
                    (12.0f64 / 80.0).atan().to_degrees() as f32
                } else {
                    want
                };
                assert!((v - expect).abs() < 1e-4, "({r},{c}) = {v}, want {expect}");
            }
        }
        // A hand window: a b c / d e f / g h i = 1 2 3 / 4 5 6 / 7 8 10, res 2 x 4:
        // dx = ((3 + 12 + 10) - (1 + 8 + 7)) / 16 = 9/16; dy = ((7 + 16 + 10) - (1 + 4 + 3)) / 32
        // = 25/32; slope = atan(sqrt(0.31640625 + 0.6103515625)) = 43.91 deg.
        let dem = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0];
        let s = slope_horn(&dem, 3, 3, (2.0, 4.0), false, Window::new(1, 1, 1, 1));
        let want = (0.31640625f64 + 0.6103515625).sqrt().atan().to_degrees();
        assert!((f64::from(s[0]) - want).abs() < 1e-4, "{} vs {want}", s[0]);
    }

    #[test]
    fn features_slope_nodata() {
        let (w, h) = (4, 4);
        let mut dem: Vec<f32> = (0..16).map(|i| (i * i) as f32).collect();
        dem[5] = f32::NAN; // (1, 1)
        let plain = slope_horn(&dem, w, h, (10.0, 10.0), false, full(w, h));
        // (1,1) is nodata; (2,2) has it as a neighbour -> nodata without -compute_edges.
        assert!(plain[5].is_nan() && plain[10].is_nan());
        let edges = slope_horn(&dem, w, h, (10.0, 10.0), true, full(w, h));
        assert!(edges[5].is_nan(), "a nodata centre stays nodata");
        assert!(
            !edges[10].is_nan(),
            "a nodata neighbour takes the centre's value"
        );
        // Computing a block with a clipped halo gives what the whole raster gives.
        let block = slope_horn(&dem, w, h, (10.0, 10.0), true, Window::new(2, 1, 2, 3));
        for (k, (r, c)) in (1..4).flat_map(|r| (2..4).map(move |c| (r, c))).enumerate() {
            let (a, b) = (block[k], edges[r * w + c]);
            assert!(a == b || (a.is_nan() && b.is_nan()));
        }
    }

    /// Against the real `gdaldem slope` (Debian's gdal-bin), plain and with `-compute_edges`,
    /// on a rough DEM with nodata holes. Without the binary, the hand-checked tests above stand.
    #[test]
    fn features_slope_matches_gdaldem() {
        // (`gdaldem --version` exits with 1 in GDAL 3.6: only whether it runs matters.)
        if std::process::Command::new("gdaldem")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("gdaldem not installed: comparing against hand values only");
            return;
        }
        let dir = tempfile::TempDir::new().unwrap();
        let (w, h) = (23usize, 17usize);
        let mut dem = Vec::with_capacity(w * h);
        for r in 0..h {
            for c in 0..w {
                let (x, y) = (c as f32, r as f32);
                dem.push(
                    50.0 + 7.0 * (x * 0.7).sin() * (y * 0.4).cos()
                        + 0.3 * x * y
                        + ((r * 31 + c * 17) % 11) as f32,
                );
            }
        }
        for i in [0usize, 30, 31, 100, 200, w * h - 1] {
            dem[i] = f32::NAN;
        }
        let grid = Grid {
            crs_wkt: crate::raster::crs_to_wkt("EPSG:32648").unwrap(),
            geo_transform: [500000.0, 30.0, 0.0, 2300000.0, 0.0, -20.0],
            width: w,
            height: h,
        };
        let src = dir.path().join("dem.tif");
        let meta = RasterMeta {
            grid,
            dtype: DType::F32,
            nodata: Some(f64::NAN),
            band_names: vec!["elevation".into()],
        };
        let mut wr = RasterWriter::create(&src, &meta, &WriteOptions::default()).unwrap();
        wr.write_window_f32(1, &full(w, h), &dem).unwrap();
        wr.finish().unwrap();
        for edges in [false, true] {
            let dst = dir.path().join(format!("slope_{edges}.tif"));
            let mut cmd = std::process::Command::new("gdaldem");
            cmd.arg("slope").arg(&src).arg(&dst).arg("-q");
            if edges {
                cmd.arg("-compute_edges");
            }
            assert!(cmd.status().unwrap().success());
            let gd = RasterReader::open(&dst)
                .unwrap()
                .read_window_f32(1, &full(w, h))
                .unwrap();
            let ours = slope_horn(&dem, w, h, (30.0, 20.0), edges, full(w, h));
            let mut compared = 0;
            for i in 0..w * h {
                let (a, b) = (ours[i], gd[i]);
                assert!(
                    (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-4,
                    "edges={edges} pixel ({}, {}): ours {a}, gdaldem {b}",
                    i / w,
                    i % w
                );
                compared += usize::from(!a.is_nan());
            }
            assert!(compared > w * h / 2);
        }
    }
}
