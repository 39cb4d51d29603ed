//! Sentinel-2 L2A scenes: surface mixture -> reflectance with terrain illumination and the
//! sensor's blur, then cloud shadows, thin cirrus, clouds, residual haze and noise; written as
//! UInt16 DN (`reflectance * 10000 - BOA_ADD_OFFSET`, nodata 0) with a Scene Classification
//! Layer derived from the same fields and pixels.
//!
//! Clouds are thresholded fractal noise, so they are spatially coherent; the threshold is the
//! quantile that gives the scene's drawn cloud cover, which follows a monsoon climatology
//! (mostly clear December-February, mostly cloudy June-September, with overcast and clear
//! scenes in every season). Shadows are the same cloud field displaced away from the sun by
//! cloud height x tan(sun zenith).

use std::path::Path;

use super::SimError;
use super::rng::{Fbm, Rng};
use super::surface::{DayEnv, NB, S2_BANDS, mixture};
use super::time::{Day, revisits, sun_position};
use super::world::{World, write_u16};

/// 10 m bands (indices into [`S2_BANDS`]) and 20 m bands.
pub const BANDS_10M: [usize; 4] = [0, 1, 2, 6];
pub const BANDS_20M: [usize; 6] = [3, 4, 5, 7, 8, 9];

/// Mean cloud cover by month (January first): the monsoon makes May-October far cloudier.
pub const CLOUD_CLIMATOLOGY: [f64; 12] = [
    0.09, 0.09, 0.16, 0.28, 0.52, 0.68, 0.74, 0.75, 0.66, 0.5, 0.26, 0.1,
];

/// Reflectance of a thick cloud (scaled by optical thickness per pixel).
const CLOUD: [f32; NB] = [0.46, 0.45, 0.44, 0.44, 0.44, 0.44, 0.45, 0.45, 0.33, 0.22];
/// Added reflectance of a fully developed cirrus veil.
const CIRRUS: [f32; NB] = [
    0.06, 0.058, 0.056, 0.055, 0.055, 0.055, 0.055, 0.055, 0.042, 0.03,
];
/// Sensor noise (standard deviation, reflectance) at 10 m: a floor plus a share of the signal;
/// 20 m pixels, averages of four, have half of it.
const NOISE_FLOOR: f32 = 0.0015;
const NOISE_GAIN: f32 = 0.008;
/// Residual aerosol after atmospheric correction, per unit of haze.
const HAZE: [f32; NB] = [1.0, 0.75, 0.55, 0.45, 0.35, 0.3, 0.25, 0.25, 0.1, 0.05];

/// Processing baseline 04.00 (with `BOA_ADD_OFFSET = -1000`) from this day on.
pub fn baseline_04_from() -> Day {
    Day::from_ymd(2022, 1, 25)
}

/// Sentinel-2B joined on a 5-day revisit from July 2017; before that only S2A (10 days).
fn s2b_from() -> Day {
    Day::from_ymd(2017, 7, 1)
}

/// One planned acquisition.
#[derive(Clone, Debug)]
pub struct S2Plan {
    pub k: i64,
    pub day: Day,
    pub platform: &'static str,
}

/// What a rendered scene reports for its STAC item.
#[derive(Clone, Debug)]
pub struct S2Scene {
    pub plan: S2Plan,
    pub id: String,
    pub baseline: &'static str,
    pub boa_add_offset: i32,
    /// Percent of valid pixels flagged cloud (8, 9) or cirrus (10) in the SCL.
    pub cloud_cover: f64,
    pub nodata_percent: f64,
    pub sun_elevation: f64,
    pub sun_azimuth: f64,
}

pub fn plans(first: Day, last: Day) -> Vec<S2Plan> {
    revisits(Day::from_ymd(2015, 12, 30), 5, first, last)
        .into_iter()
        .filter_map(|(k, day)| {
            let even = k.rem_euclid(2) == 0;
            if !even && day < s2b_from() {
                return None;
            }
            Some(S2Plan {
                k,
                day,
                platform: if even { "sentinel-2a" } else { "sentinel-2b" },
            })
        })
        .collect()
}

/// Overpass time (UTC) over the area: about 10:30 local solar time.
pub const OVERPASS: (u32, u32, u32) = (3, 36, 29);

pub fn item_id(plan: &S2Plan, tile: &str) -> String {
    let sat = if plan.platform == "sentinel-2a" {
        "S2A"
    } else {
        "S2B"
    };
    format!("{sat}_{tile}_{}_0_L2A", plan.day.compact())
}

/// Weights `(previous, centre, next)` of a 3-tap kernel: the sensor's point spread (each
/// neighbour contributes `SIDE`) shifted by `shift` pixels (|shift| <= 0.5) towards the next
/// pixel, for the scene's sub-pixel misregistration.
fn kernel(shift: f32) -> [f32; 3] {
    const SIDE: f32 = 0.19;
    let (a, b) = (0.5 * shift.max(0.0), 0.5 * (-shift).max(0.0));
    [SIDE + b, 1.0 - 2.0 * SIDE - a - b, SIDE + a]
}

/// Separable 3-tap blur with kernels `kx` (along rows) and `ky` (along columns).
pub fn blur(band: &mut [f32], scratch: &mut [f32], w: usize, h: usize, kx: [f32; 3], ky: [f32; 3]) {
    for y in 0..h {
        let row = &band[y * w..(y + 1) * w];
        let out = &mut scratch[y * w..(y + 1) * w];
        for x in 0..w {
            let l = row[x.saturating_sub(1)];
            let r = row[(x + 1).min(w - 1)];
            out[x] = kx[0] * l + kx[1] * row[x] + kx[2] * r;
        }
    }
    for y in 0..h {
        let (yu, yd) = (y.saturating_sub(1), (y + 1).min(h - 1));
        for x in 0..w {
            band[y * w + x] = ky[0] * scratch[yu * w + x]
                + ky[1] * scratch[y * w + x]
                + ky[2] * scratch[yd * w + x];
        }
    }
}

/// A field over the `size` x `size` pixels shifted by `(ox, oy)`, evaluated every
/// `FIELD_STEP` pixels and bilinearly interpolated in between (clouds are smooth at that
/// scale, and the fractal sum is the costliest part of a scene).
fn sample_field(field: &Fbm, ox: f32, oy: f32, size: usize) -> Vec<f32> {
    const FIELD_STEP: usize = 2;
    let nc = size / FIELD_STEP + 2;
    let step = FIELD_STEP as f32;
    let mut coarse = vec![0.0f32; nc * nc];
    for j in 0..nc {
        for i in 0..nc {
            coarse[j * nc + i] = field.at(ox + i as f32 * step + 0.5, oy + j as f32 * step + 0.5);
        }
    }
    let mut out = vec![0.0f32; size * size];
    for y in 0..size {
        let (j, ty) = (y / FIELD_STEP, (y % FIELD_STEP) as f32 / step);
        for x in 0..size {
            let (i, tx) = (x / FIELD_STEP, (x % FIELD_STEP) as f32 / step);
            let c = j * nc + i;
            let top = coarse[c] + (coarse[c + 1] - coarse[c]) * tx;
            let bottom = coarse[c + nc] + (coarse[c + nc + 1] - coarse[c + nc]) * tx;
            out[y * size + x] = top + (bottom - top) * ty;
        }
    }
    out
}

/// Value at fraction `q` (0..1) of a sample.
fn quantile(values: &mut [f32], q: f64) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let i = ((values.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    let (_, v, _) = values.select_nth_unstable_by(i, |a, b| a.total_cmp(b));
    *v
}

/// Render one scene into `dir` (`<BAND>.tif` per band and `SCL.tif`).
pub fn render(world: &World, plan: &S2Plan, tile: &str, dir: &Path) -> Result<S2Scene, SimError> {
    let land = &world.land;
    let size = land.size;
    let s = size as f32;
    let n = size * size;
    let (day, seed) = (plan.day, world.seed);
    let year = day.year();
    let py = world.pixel_years(year)?;
    let mut rng = Rng::new(&[seed, 200, plan.k as u64]);
    let tide = rng.f32();
    let env = DayEnv::new(day.doy(), tide);
    let hours = f64::from(OVERPASS.0) + f64::from(OVERPASS.1) / 60.0 + world.lon / 15.0 - 12.0;
    let (sun_el, sun_az) = sun_position(world.lat, day.doy(), hours);
    let (el, az) = (sun_el.to_radians(), sun_az.to_radians());
    // Sun direction in (east, south, up).
    let sun = [
        (az.sin() * el.cos()) as f32,
        (-az.cos() * el.cos()) as f32,
        el.sin() as f32,
    ];

    // 1. Surface reflectance with terrain illumination.
    let mut bands: Vec<Vec<f32>> = vec![vec![0.0f32; n]; NB];
    let mut r = [0.0f32; NB];
    for p in 0..n {
        let m = mixture(land, p, &py[p], &env);
        m.reflectance(&mut r);
        let nrm = land.normal[p];
        let illum = if nrm[2] < 0.9999 {
            let cos_i = nrm[0] * sun[0] + nrm[1] * sun[1] + nrm[2] * sun[2];
            (1.0 + 0.7 * (cos_i.max(0.0) / sun[2] - 1.0)).clamp(0.25, 1.6)
        } else {
            1.0
        };
        for b in 0..NB {
            bands[b][p] = r[b] * illum;
        }
    }
    let mut scratch = vec![0.0f32; n];
    let kx = kernel(rng.range(-0.45, 0.45) as f32);
    let ky = kernel(rng.range(-0.45, 0.45) as f32);
    for band in &mut bands {
        blur(band, &mut scratch, size, size, kx, ky);
    }

    // 2. Atmosphere and clouds.
    let month = day.month() as usize - 1;
    let mean_cover = CLOUD_CLIMATOLOGY[month];
    // Spread around the monthly mean; clamping makes clear and overcast scenes common.
    let spread = 0.2 + 0.3 * mean_cover;
    let mut cover = (mean_cover + spread * rng.normal()).clamp(0.0, 1.0);
    if cover < 0.02 {
        cover = 0.0;
    }
    let cloud_height = rng.range(700.0, 2500.0);
    let shadow_len = (cloud_height * (90.0 - sun_el).to_radians().tan() / 10.0) as f32;
    // Shadow of the cloud above p + off falls on p.
    let off = (
        sun[0] / el.cos().max(1e-3) as f32 * shadow_len,
        sun[1] / el.cos().max(1e-3) as f32 * shadow_len,
    );
    let margin = shadow_len + 4.0;
    let cloud_field = Fbm::new(
        &[seed, 201, plan.k as u64],
        (0.3 * s).max(12.0),
        5,
        0.55,
        [-margin, -margin, s + margin, s + margin],
    );
    let mut opacity = vec![0.0f32; n];
    let mut shadow = vec![0.0f32; n];
    let mut thick = vec![0.0f32; n];
    if cover > 0.0 {
        let f = sample_field(&cloud_field, 0.0, 0.0, size);
        let fs = sample_field(&cloud_field, off.0, off.1, size);
        let mut sample: Vec<f32> = f.iter().step_by(3).copied().collect();
        let tau = if cover >= 1.0 {
            f32::NEG_INFINITY
        } else {
            quantile(&mut sample, 1.0 - cover)
        };
        const EDGE: f32 = 0.06;
        for p in 0..n {
            let v = f[p];
            opacity[p] = ((v - tau) / EDGE).clamp(0.0, 1.0);
            thick[p] = 0.75 + 0.5 * ((v - tau) / 0.25).clamp(0.0, 1.0);
            shadow[p] = ((fs[p] - tau) / EDGE).clamp(0.0, 1.0);
        }
    }
    let mut cirrus = vec![0.0f32; n];
    if rng.f64() < 0.1 + 0.35 * f64::from(env.wet) {
        let field = Fbm::new(
            &[seed, 202, plan.k as u64],
            (0.6 * s).max(16.0),
            3,
            0.5,
            [0.0, 0.0, s, s],
        );
        let tau_c = rng.range(-0.25, 0.2) as f32;
        let strength = rng.range(0.4, 1.0) as f32;
        let f = sample_field(&field, 0.0, 0.0, size);
        for (c, v) in cirrus.iter_mut().zip(f) {
            *c = ((v - tau_c) / 0.25).clamp(0.0, 1.0) * strength;
        }
    }
    let haze = rng.range(0.0, 0.012) as f32;
    let gain = 1.0 + 0.01 * rng.normal() as f32;
    for (b, band) in bands.iter_mut().enumerate() {
        let (cirrus_b, cloud_b, haze_b) = (CIRRUS[b], CLOUD[b], haze * HAZE[b]);
        for ((((v, &a), &sh), &ci), &k) in band
            .iter_mut()
            .zip(&opacity)
            .zip(&shadow)
            .zip(&cirrus)
            .zip(&thick)
        {
            let under = *v * (1.0 - 0.7 * sh) + ci * cirrus_b;
            *v = ((1.0 - a) * under + a * k * cloud_b + haze_b) * gain;
        }
    }

    // 3. Nodata: a few scenes end at the swath/datastrip edge.
    let (w20, h20) = (size / 2, size / 2);
    let edge_cut = if rng.f64() < 0.07 {
        Some(rng.range(0.55, 0.95) as f32)
    } else {
        None
    };
    let nodata20 = |i: usize, j: usize| -> bool {
        edge_cut.is_some_and(|c| {
            (i as f32 + 0.5) / w20 as f32 > c - 0.18 * (j as f32 + 0.5) / h20 as f32
        })
    };

    let (baseline, offset) = if day >= baseline_04_from() {
        ("04.00", -1000i32)
    } else {
        ("02.14", 0)
    };
    let to_dn = |refl: f32| -> u16 {
        // Round half up without a libm call; the clamp keeps 0 for nodata only.
        ((refl * 10_000.0 - offset as f32).clamp(1.0, 65_535.0) + 0.5) as u16
    };

    // 4. 10 m bands.
    let mut noise = Rng::new(&[seed, 203, plan.k as u64]);
    let mut dn = vec![0u16; n];
    for &b in &BANDS_10M {
        let band = &bands[b];
        let (mut z, mut zi) = ([0.0f32; 4], 4);
        for y in 0..size {
            for x in 0..size {
                let p = y * size + x;
                if zi == 4 {
                    z = noise.noise4();
                    zi = 0;
                }
                let v = band[p];
                dn[p] = if edge_cut.is_some() && nodata20(x / 2, y / 2) {
                    0
                } else {
                    to_dn(v + (NOISE_FLOOR + NOISE_GAIN * v) * z[zi])
                };
                zi += 1;
            }
        }
        write_u16(
            &dir.join(format!("{}.tif", S2_BANDS[b])),
            &world.grid10,
            S2_BANDS[b],
            Some(0.0),
            &dn,
        )?;
    }

    // 5. 20 m bands (2 x 2 means, with their own, smaller noise) and the SCL.
    let n20 = w20 * h20;
    let mean20 = |v: &[f32], i: usize, j: usize| {
        let (x, y) = (2 * i, 2 * j);
        0.25 * (v[y * size + x]
            + v[y * size + x + 1]
            + v[(y + 1) * size + x]
            + v[(y + 1) * size + x + 1])
    };
    let mut b20: Vec<Vec<f32>> = vec![vec![0.0f32; n20]; NB];
    for b in 0..NB {
        for j in 0..h20 {
            for i in 0..w20 {
                let mut z = noise.noise4();
                let v = mean20(&bands[b], i, j);
                z[0] *= 0.5 * (NOISE_FLOOR + NOISE_GAIN * v);
                b20[b][j * w20 + i] = v + z[0];
            }
        }
    }
    let mut scl = vec![0u16; n20];
    let (mut valid, mut cloudy) = (0usize, 0usize);
    for j in 0..h20 {
        for i in 0..w20 {
            let q = j * w20 + i;
            if nodata20(i, j) {
                continue;
            }
            valid += 1;
            let a = mean20(&opacity, i, j);
            let sh = mean20(&shadow, i, j);
            let ci = mean20(&cirrus, i, j);
            let (green, red, nir) = (b20[1][q], b20[2][q], b20[6][q]);
            let ndvi = (nir - red) / (nir + red).max(1e-6);
            let ndwi = (green - nir) / (green + nir).max(1e-6);
            scl[q] = if a >= 0.55 {
                9
            } else if a >= 0.2 {
                8
            } else if sh >= 0.35 {
                3
            } else if ci >= 0.3 {
                10
            } else if ndwi > 0.0 && b20[7][q] < 0.15 {
                6
            } else if ndvi > 0.4 {
                4
            } else {
                5
            };
            if matches!(scl[q], 8..=10) {
                cloudy += 1;
            }
        }
    }
    let mut dn20 = vec![0u16; n20];
    for &b in &BANDS_20M {
        for q in 0..n20 {
            dn20[q] = if scl[q] == 0 { 0 } else { to_dn(b20[b][q]) };
        }
        write_u16(
            &dir.join(format!("{}.tif", S2_BANDS[b])),
            &world.grid20,
            S2_BANDS[b],
            Some(0.0),
            &dn20,
        )?;
    }
    write_u16(&dir.join("SCL.tif"), &world.grid20, "SCL", Some(0.0), &scl)?;

    let pct = |k: usize, of: usize| {
        if of == 0 {
            0.0
        } else {
            (1000.0 * k as f64 / of as f64).round() / 10.0
        }
    };
    Ok(S2Scene {
        id: item_id(plan, tile),
        plan: plan.clone(),
        baseline,
        boa_add_offset: offset,
        cloud_cover: pct(cloudy, valid),
        nodata_percent: pct(n20 - valid, n20),
        sun_elevation: (sun_el * 100.0).round() / 100.0,
        sun_azimuth: (sun_az * 100.0).round() / 100.0,
    })
}
