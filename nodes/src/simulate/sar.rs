//! Radar scenes: Sentinel-1 GRD (C band, VV/VH sigma0 in dB, Float32, 10 m) and ALOS-2
//! PALSAR-2 ScanSAR (L band, HH/HV as UInt16 DN with gamma0 dB = 10 log10(DN^2) - 83.0, 25 m).
//!
//! Backscatter comes from the same surface mixture as the optical scenes, in linear power:
//! open water is dark (and roughened by wind on some days), flooded rice drops sharply at
//! transplanting and then rises with the canopy (double bounce at L band), built-up areas are
//! bright with a per-pixel orientation factor. A noise floor (NESZ) is added, then
//! multiplicative speckle: Gamma-distributed with a few looks, applied to linear power.
//! Sentinel-1 (not terrain-flattened) also shows the slopes facing the sensor brighter.

use std::path::Path;

use super::SimError;
use super::landscape::WaterKind;
use super::rng::Rng;
use super::s2::blur;
use super::surface::{DayEnv, backscatter, mixture, radar_linear};
use super::time::{Day, revisits};
use super::world::{World, write_f32, write_u16};

/// Calibration factor of PALSAR-2 DN: gamma0 dB = 10 log10(DN^2) + `PALSAR_CF`.
pub const PALSAR_CF: f64 = -83.0;

/// Equivalent number of looks of the speckle.
const S1_LOOKS: u32 = 4;
const PALSAR_LOOKS: u32 = 5;
/// Noise-equivalent sigma0 (linear): about -25 dB (S1 IW) and -28 dB (PALSAR-2 ScanSAR).
const S1_NESZ: f32 = 0.003;
const PALSAR_NESZ: f32 = 0.0016;
/// Sentinel-1 incidence angle over the area (degrees) and look direction (ascending,
/// right-looking: towards the east).
const S1_INCIDENCE: f32 = 38.0;

#[derive(Clone, Debug)]
pub struct SarPlan {
    pub k: i64,
    pub day: Day,
}

/// A rendered radar scene.
#[derive(Clone, Debug)]
pub struct SarScene {
    pub plan: SarPlan,
    pub id: String,
}

pub fn s1_plans(first: Day, last: Day) -> Vec<SarPlan> {
    revisits(Day::from_ymd(2016, 1, 6), 12, first, last)
        .into_iter()
        .map(|(k, day)| SarPlan { k, day })
        .collect()
}

pub fn palsar_plans(first: Day, last: Day) -> Vec<SarPlan> {
    revisits(Day::from_ymd(2016, 1, 8), 28, first, last)
        .into_iter()
        .map(|(k, day)| SarPlan { k, day })
        .collect()
}

pub const S1_TIME: (u32, u32, u32) = (11, 2, 41);
pub const PALSAR_TIME: (u32, u32, u32) = (5, 14, 8);

pub fn s1_id(plan: &SarPlan) -> String {
    format!("S1A_IW_GRDH_1SDV_{}T110241", plan.day.compact())
}

pub fn palsar_id(plan: &SarPlan) -> String {
    format!("ALOS2_WBDR2.2_{}", plan.day.compact())
}

/// PALSAR-2 DN of a gamma0 in dB (rounded, at least 1 since 0 is nodata).
pub fn palsar_dn(db: f64) -> u16 {
    10f64
        .powf((db - PALSAR_CF) / 20.0)
        .round()
        .clamp(1.0, 65_535.0) as u16
}

/// gamma0 in dB of a PALSAR-2 DN.
pub fn palsar_db(dn: u16) -> f64 {
    10.0 * (f64::from(dn) * f64::from(dn)).log10() + PALSAR_CF
}

/// dB rounded to 1/128 dB: far below the speckle, and exact in binary, so the Float32 files
/// (floating-point predictor + DEFLATE) compress to about half.
#[inline]
fn quantise_db(db: f32) -> f32 {
    (db * 128.0).round() / 128.0
}

/// Wind roughening of open water (linear factor) for a scene.
fn wind_factors(rng: &mut Rng) -> [f32; 3] {
    let db = |rng: &mut Rng, max: f64| 10f32.powf((rng.range(0.0, max) as f32) / 10.0);
    [db(rng, 8.0), db(rng, 2.5), db(rng, 3.5)]
}

fn wind_of(kind: Option<WaterKind>, w: &[f32; 3]) -> f32 {
    match kind {
        Some(WaterKind::Sea) => w[0],
        Some(WaterKind::River) | None => w[1],
        Some(WaterKind::Lake) => w[2],
    }
}

/// Per-pixel orientation factor of built structures and panels (about -10..+6 dB: most
/// walls do not face the sensor).
#[inline]
fn orientation(tex: &[f32; 3]) -> f32 {
    10f32.powf(1.6 * (tex[1] * tex[1] - 0.62) + 0.3 * (tex[0] - 0.5))
}

pub fn render_s1(world: &World, plan: &SarPlan, dir: &Path) -> Result<SarScene, SimError> {
    let land = &world.land;
    let n = land.size * land.size;
    let py = world.pixel_years(plan.day.year())?;
    let mut rng = Rng::new(&[world.seed, 300, plan.k as u64]);
    let env = DayEnv::new(plan.day.doy(), rng.f32());
    let moisture = (0.2 + 0.5 * env.wet + 0.3 * rng.f32()).min(1.0);
    let wind = wind_factors(&mut rng);
    let radar = radar_linear();
    let inc = S1_INCIDENCE.to_radians();
    // From the ground towards the sensor (east, south, up): the sensor is to the west.
    let look = [-inc.sin(), 0.0, inc.cos()];
    let mut vv = vec![0.0f32; n];
    let mut vh = vec![0.0f32; n];
    for p in 0..n {
        let m = mixture(land, p, &py[p], &env);
        let tex = &land.texture[p];
        let b = backscatter(
            &m,
            &radar,
            moisture,
            orientation(tex),
            wind_of(land.water[p], &wind),
        );
        let nrm = land.normal[p];
        let terrain = if nrm[2] < 0.9999 {
            let c = nrm[0] * look[0] + nrm[1] * look[1] + nrm[2] * look[2];
            (c.max(0.05) / look[2]).powf(1.2).clamp(0.15, 5.0)
        } else {
            1.0
        };
        vv[p] = b[0] * terrain;
        vh[p] = b[1] * terrain;
    }
    // GRD resolution is about 20 m on 10 m pixels: a wider point spread than the optical.
    let mut scratch = vec![0.0f32; n];
    const PSF: [f32; 3] = [0.25, 0.5, 0.25];
    blur(&mut vv, &mut scratch, land.size, land.size, PSF, PSF);
    blur(&mut vh, &mut scratch, land.size, land.size, PSF, PSF);
    for p in 0..n {
        let v = (vv[p] + S1_NESZ) * rng.speckle(S1_LOOKS);
        let h = (vh[p] + S1_NESZ * 0.5) * rng.speckle(S1_LOOKS);
        vv[p] = quantise_db(10.0 * v.max(1e-6).log10());
        vh[p] = quantise_db(10.0 * h.max(1e-6).log10());
    }
    write_f32(
        &dir.join("VV.tif"),
        &world.grid10,
        "VV",
        Some(f64::NAN),
        &vv,
    )?;
    write_f32(
        &dir.join("VH.tif"),
        &world.grid10,
        "VH",
        Some(f64::NAN),
        &vh,
    )?;
    Ok(SarScene {
        id: s1_id(plan),
        plan: plan.clone(),
    })
}

pub fn render_palsar(world: &World, plan: &SarPlan, dir: &Path) -> Result<SarScene, SimError> {
    let land = &world.land;
    let size = land.size;
    let g25 = &world.grid25;
    let (w25, h25) = (g25.width, g25.height);
    let py = world.pixel_years(plan.day.year())?;
    let mut rng = Rng::new(&[world.seed, 400, plan.k as u64]);
    let env = DayEnv::new(plan.day.doy(), rng.f32());
    let moisture = (0.2 + 0.5 * env.wet + 0.3 * rng.f32()).min(1.0);
    let wind = wind_factors(&mut rng);
    let radar = radar_linear();
    let mut sum = vec![[0.0f32; 2]; w25 * h25];
    let mut count = vec![0u32; w25 * h25];
    for y in 0..size {
        let j = ((y as f64 + 0.5) * 10.0 / 25.0) as usize;
        for x in 0..size {
            let i = ((x as f64 + 0.5) * 10.0 / 25.0) as usize;
            let p = y * size + x;
            let m = mixture(land, p, &py[p], &env);
            let b = backscatter(
                &m,
                &radar,
                moisture,
                orientation(&land.texture[p]),
                wind_of(land.water[p], &wind),
            );
            let c = j.min(h25 - 1) * w25 + i.min(w25 - 1);
            sum[c][0] += b[2];
            sum[c][1] += b[3];
            count[c] += 1;
        }
    }
    let mut hh = vec![0u16; w25 * h25];
    let mut hv = vec![0u16; w25 * h25];
    for c in 0..w25 * h25 {
        let k = count[c].max(1) as f32;
        let h = (sum[c][0] / k + PALSAR_NESZ) * rng.speckle(PALSAR_LOOKS);
        let v = (sum[c][1] / k + PALSAR_NESZ * 0.5) * rng.speckle(PALSAR_LOOKS);
        hh[c] = palsar_dn(10.0 * f64::from(h.max(1e-7)).log10());
        hv[c] = palsar_dn(10.0 * f64::from(v.max(1e-7)).log10());
    }
    write_u16(&dir.join("HH.tif"), g25, "HH", Some(0.0), &hh)?;
    write_u16(&dir.join("HV.tif"), g25, "HV", Some(0.0), &hv)?;
    Ok(SarScene {
        id: palsar_id(plan),
        plan: plan.clone(),
    })
}
