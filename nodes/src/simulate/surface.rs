//! What the ground looks like on a given day: each pixel is a linear mixture of a few
//! endmembers (green leaves, forest canopies, dry vegetation, soil, sand, water, roofs, solar
//! panels) whose fractions follow a per-class phenology with per-parcel timing and vigour.
//! Optical reflectance and radar backscatter (C band for Sentinel-1, L band for PALSAR-2) are
//! computed from the same mixture, so that flooding at rice transplanting shows up in NDWI and
//! in SAR, deciduous leaf-off in NDVI and cross-polarisation, and so on.
//!
//! Reflectance values are typical surface reflectances (0..1) for the Sentinel-2 bands; radar
//! values are typical sigma0 (C band, ~38 deg incidence) and gamma0 (L band) in dB, chosen
//! from the literature's ranges rather than fitted to any particular scene.

use super::landscape::{
    AQUACULTURE, BARREN, Base, DECIDUOUS, EBF, ENF, GRASS, Landscape, MANGROVE, ORCHARD,
    OTHER_CROPS, PLANTATION, RICE, SOLAR, Site, URBAN, WATER, WaterKind, plantation_age,
};
use super::rng::{hash, smoothstep, unit_f32};

/// Sentinel-2 bands simulated, in this order.
pub const S2_BANDS: [&str; 10] = [
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
];
pub const NB: usize = S2_BANDS.len();

/// Endmembers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Em {
    Leaf = 0,
    Forest,
    Conifer,
    Mangrove,
    Plantation,
    Dry,
    Soil,
    Sand,
    Clear,
    Turbid,
    Algae,
    Impervious,
    RedRoof,
    Panel,
}
const NEM: usize = 14;

/// Surface reflectance of each endmember in [`S2_BANDS`] order.
const SPECTRA: [[f32; NB]; NEM] = [
    // Leaf: green crop/grass canopy.
    [
        0.030, 0.075, 0.038, 0.115, 0.300, 0.375, 0.410, 0.430, 0.215, 0.100,
    ],
    // Forest: closed broadleaf canopy, shadowed.
    [
        0.022, 0.046, 0.024, 0.078, 0.225, 0.290, 0.319, 0.332, 0.150, 0.062,
    ],
    // Conifer: needleleaf canopy, darker NIR.
    [
        0.019, 0.037, 0.021, 0.062, 0.170, 0.212, 0.232, 0.242, 0.112, 0.046,
    ],
    // Mangrove canopy.
    [
        0.023, 0.047, 0.026, 0.082, 0.205, 0.255, 0.278, 0.290, 0.125, 0.052,
    ],
    // Plantation (acacia/eucalyptus): bright NIR, even canopy.
    [
        0.026, 0.058, 0.030, 0.095, 0.270, 0.345, 0.380, 0.395, 0.175, 0.075,
    ],
    // Dry vegetation, straw, litter.
    [
        0.070, 0.095, 0.120, 0.152, 0.188, 0.208, 0.226, 0.236, 0.330, 0.232,
    ],
    // Moist alluvial soil.
    [
        0.058, 0.078, 0.098, 0.118, 0.136, 0.150, 0.160, 0.170, 0.232, 0.182,
    ],
    // Bright sand, dry bare soil, construction.
    [
        0.115, 0.152, 0.192, 0.222, 0.242, 0.256, 0.270, 0.280, 0.350, 0.300,
    ],
    // Clear deep water.
    [
        0.050, 0.044, 0.026, 0.018, 0.012, 0.010, 0.008, 0.008, 0.004, 0.003,
    ],
    // Turbid, sediment-laden water.
    [
        0.075, 0.095, 0.088, 0.072, 0.042, 0.034, 0.029, 0.027, 0.010, 0.006,
    ],
    // Eutrophic pond water (algae).
    [
        0.040, 0.072, 0.042, 0.052, 0.042, 0.036, 0.031, 0.029, 0.008, 0.005,
    ],
    // Concrete, asphalt, grey roofs.
    [
        0.112, 0.122, 0.132, 0.142, 0.152, 0.158, 0.166, 0.172, 0.205, 0.188,
    ],
    // Red tile roofs.
    [
        0.062, 0.072, 0.142, 0.190, 0.220, 0.230, 0.240, 0.246, 0.300, 0.250,
    ],
    // Solar panels (dark glass, a little bluer).
    [
        0.062, 0.056, 0.046, 0.046, 0.046, 0.048, 0.050, 0.050, 0.072, 0.062,
    ],
];

/// Radar response of each endmember: C-band VV, VH (sigma0 dB) and L-band HH, HV (gamma0 dB).
const RADAR_DB: [[f32; 4]; NEM] = [
    [-10.5, -16.5, -11.5, -19.5], // leaf
    [-7.0, -12.5, -7.0, -12.0],   // forest
    [-7.5, -13.0, -7.5, -12.5],   // conifer
    [-7.0, -13.5, -6.5, -13.0],   // mangrove
    [-7.5, -13.0, -8.0, -13.5],   // plantation
    [-11.0, -18.0, -12.5, -21.0], // dry vegetation
    [-12.0, -20.5, -14.0, -24.0], // soil
    [-15.0, -23.5, -18.0, -28.0], // sand
    [-23.0, -29.5, -26.0, -33.0], // clear water
    [-22.5, -29.0, -25.5, -32.5], // turbid water
    [-22.5, -29.0, -25.5, -32.5], // algae water
    [-1.5, -10.0, -1.0, -11.0],   // impervious
    [-1.5, -10.0, -1.0, -11.0],   // red roofs
    [-13.0, -22.0, -10.0, -20.0], // panels
];

/// Linear radar response, from [`RADAR_DB`].
pub fn radar_linear() -> [[f32; 4]; NEM] {
    let mut out = [[0.0; 4]; NEM];
    for (o, db) in out.iter_mut().zip(RADAR_DB.iter()) {
        for (v, d) in o.iter_mut().zip(db) {
            *v = 10f32.powf(d / 10.0);
        }
    }
    out
}

/// The surface of one pixel on one day: up to six endmember fractions (summing to 1) and a
/// brightness factor (texture, illumination).
#[derive(Clone, Copy, Debug)]
pub struct Mixture {
    pub em: [Em; 6],
    pub w: [f32; 6],
    pub n: usize,
    pub bright: f32,
    /// Strength of double-bounce scattering (flooded vegetation), 0..1.
    pub double_bounce: f32,
}

impl Mixture {
    fn new() -> Mixture {
        Mixture {
            em: [Em::Soil; 6],
            w: [0.0; 6],
            n: 0,
            bright: 1.0,
            double_bounce: 0.0,
        }
    }

    #[inline]
    fn add(&mut self, em: Em, w: f32) {
        if w > 0.0 && self.n < 6 {
            self.em[self.n] = em;
            self.w[self.n] = w;
            self.n += 1;
        }
    }

    /// Scale the fractions so they sum to 1.
    fn normalise(&mut self) {
        let t: f32 = self.w[..self.n].iter().sum();
        if t > 0.0 {
            for w in &mut self.w[..self.n] {
                *w /= t;
            }
        } else {
            self.add(Em::Soil, 1.0);
        }
    }

    /// Fraction of an endmember.
    pub fn frac(&self, em: Em) -> f32 {
        (0..self.n)
            .filter(|&i| self.em[i] == em)
            .map(|i| self.w[i])
            .sum()
    }

    /// Reflectance in [`S2_BANDS`] order (before illumination).
    #[inline]
    pub fn reflectance(&self, out: &mut [f32; NB]) {
        *out = [0.0; NB];
        for i in 0..self.n {
            let s = &SPECTRA[self.em[i] as usize];
            let w = self.w[i] * self.bright;
            for b in 0..NB {
                out[b] += w * s[b];
            }
        }
    }
}

/// Per pixel and year: the class and the parcel's calendar.
#[derive(Clone, Copy, Debug, Default)]
pub struct PixelYear {
    pub class: u8,
    /// Rice: 2 or 3 crops; other crops: 0 annual cycles, 1 sugarcane, 2 upland maize;
    /// barren: 0 sand/construction, 1 sandbar, 2 beach, 3 felled; plantation: age in years.
    pub kind: u8,
    /// Calendar shift in days (parcel level).
    pub phase: f32,
    /// Canopy vigour, ~0.75..1.1.
    pub vigour: f32,
    /// Aquaculture: day of year the pond is drained; otherwise a second uniform.
    pub extra: f32,
    /// The parcel's own brightness (soil colour, management), ~0.85..1.15, and a third
    /// uniform (canopy age, stand mix), both fixed over the years.
    pub tone: f32,
    pub stand: f32,
}

/// Calendar and vigour of every pixel in `year`.
pub fn pixel_years(land: &Landscape, truth: &[u8], year: i32) -> Vec<PixelYear> {
    let seed = land.seed;
    truth
        .iter()
        .enumerate()
        .map(|(p, &class)| {
            let s = &land.sites[p];
            let h = hash(&[seed, 90, s.unit, year as u64]);
            let u = |k: u32| unit_f32(h.rotate_left(k * 13) ^ (h >> (k + 3)));
            let tex = land.texture[p];
            let kind = match class {
                RICE => {
                    // Mostly the parcel's usual system, sometimes a different one this year.
                    let usual = unit_f32(hash(&[seed, 91, s.unit]));
                    let r = if u(4) < 0.25 { u(5) } else { usual };
                    if u(6) < 0.05 {
                        6 // left fallow this year: still rice land, but weeds and grass
                    } else {
                        pick_kind(r, &[(0.25, 3), (0.2, 4), (0.08, 5), (0.47, 2)])
                    }
                }
                OTHER_CROPS => {
                    if s.base == Base::Upland {
                        2
                    } else if unit_f32(hash(&[seed, 92, s.unit])) < 0.15 {
                        1
                    } else {
                        0
                    }
                }
                BARREN => match s.base {
                    Base::Sandbar => 1,
                    Base::Beach => 2,
                    Base::Upland if s.quarry_r > 2.0 => 3,
                    _ => 0,
                },
                PLANTATION | GRASS if s.base == Base::Upland => plantation_age(s, year) as u8,
                _ => 0,
            };
            PixelYear {
                class,
                kind,
                // Blocks transplant within about two weeks of each other, parcels within one.
                phase: (unit_f32(hash(&[seed, 96, s.block, year as u64])) - 0.5) * 40.0
                    + (u(1) - 0.5) * 14.0,
                vigour: (0.62 + 0.45 * u(2)) * (0.9 + 0.2 * tex[0]),
                tone: 0.85 + 0.3 * unit_f32(hash(&[seed, 94, s.unit])),
                stand: unit_f32(hash(&[seed, 95, s.unit])),
                extra: match class {
                    AQUACULTURE => 1.0 + 330.0 * u(3),
                    _ => u(3),
                },
            }
        })
        .collect()
}

/// The kind whose cumulative weight first exceeds `u`.
fn pick_kind(u: f32, table: &[(f32, u8)]) -> u8 {
    let mut acc = 0.0;
    for &(w, k) in table {
        acc += w;
        if u < acc {
            return k;
        }
    }
    table.last().map_or(0, |t| t.1)
}

/// Conditions of one acquisition day shared by all pixels.
#[derive(Clone, Copy, Debug)]
pub struct DayEnv {
    /// Day of year (1-based).
    pub doy: f32,
    /// Rainy-season factor (0 dry .. 1 wet).
    pub wet: f32,
    /// River stage (0 low .. 1 flood).
    pub flood: f32,
    /// Tide level (0 low .. 1 high).
    pub tide: f32,
}

impl DayEnv {
    pub fn new(doy: i64, tide: f32) -> DayEnv {
        let d = doy as f32;
        DayEnv {
            doy: d,
            wet: smoothstep(100.0, 150.0, d) * (1.0 - smoothstep(285.0, 330.0, d)),
            flood: smoothstep(165.0, 200.0, d) * (1.0 - smoothstep(255.0, 290.0, d)),
            tide,
        }
    }
}

/// Rice: land preparation and flooding before transplanting, canopy closure, ripening
/// (yellowing), harvest, stubble and fallow.
fn rice(m: &mut Mixture, tau: f32, dur: f32, v: f32, wet_mgmt: f32, env: &DayEnv) {
    let start = m.n;
    if tau < -3.0 {
        m.add(Em::Turbid, 0.6);
        m.add(Em::Soil, 0.35);
        m.add(Em::Dry, 0.05);
    } else if tau < 20.0 {
        let f = (tau + 3.0) / 23.0;
        m.add(Em::Leaf, 0.05 + 0.12 * f);
        m.add(Em::Turbid, 0.36 - 0.06 * f);
        m.add(Em::Clear, 0.5 - 0.05 * f);
        m.add(Em::Soil, 0.09 - 0.01 * f);
        m.double_bounce = 0.3 + 0.5 * f;
    } else if tau < 60.0 {
        let f = smoothstep(20.0, 60.0, tau);
        let leaf = 0.17 + (0.82 * v - 0.17) * f;
        let water = 0.6 * (1.0 - f) + 0.04;
        m.add(Em::Leaf, leaf);
        m.add(Em::Clear, water);
        m.add(Em::Soil, (1.0 - leaf - water).max(0.02));
        m.double_bounce = 0.8 * (1.0 - f) + 0.2;
    } else if tau < dur - 25.0 {
        m.add(Em::Leaf, 0.82 * v + 0.06);
        m.add(Em::Clear, 0.04);
        m.add(Em::Soil, (0.12 - 0.82 * v * 0.1).max(0.02));
        m.double_bounce = 0.15;
    } else if tau < dur {
        let f = (tau - (dur - 25.0)) / 25.0;
        let leaf = (0.82 * v + 0.06) * (1.0 - 0.8 * f);
        m.add(Em::Leaf, leaf);
        m.add(Em::Dry, (0.9 - leaf).max(0.05));
        m.add(Em::Soil, 0.1);
    } else {
        fallow(m, tau - dur, env);
        return;
    }
    // Alternate wetting and drying / direct seeding: less standing water, more wet soil.
    if wet_mgmt < 1.0 {
        for i in start..m.n {
            if matches!(m.em[i], Em::Clear | Em::Turbid) {
                let dry = m.w[i] * (1.0 - wet_mgmt);
                m.w[i] -= dry;
                m.add(Em::Soil, dry);
            }
        }
    }
}

/// A harvested field: stubble that fades, weeds that grow, wet in the rainy season.
fn fallow(m: &mut Mixture, since: f32, env: &DayEnv) {
    let stubble = 0.45 * (-since / 45.0).exp();
    let weeds = (0.004 * since).min(0.35);
    let water = 0.15 * env.wet;
    m.add(Em::Dry, stubble);
    m.add(Em::Leaf, weeds);
    m.add(Em::Clear, water);
    m.add(Em::Soil, (1.0 - stubble - weeds - water).max(0.05));
}

/// An upland/dry crop cycle: tilled soil, growth, peak, senescence, bare residue.
fn dry_crop(m: &mut Mixture, tau: f32, dur: f32, v: f32) {
    if tau < 0.0 || tau > dur + 40.0 {
        m.add(Em::Soil, 0.6);
        m.add(Em::Sand, 0.28);
        m.add(Em::Dry, 0.12);
    } else if tau < 0.4 * dur {
        let leaf = 0.05 + 0.7 * v * smoothstep(0.0, 0.4 * dur, tau);
        m.add(Em::Leaf, leaf);
        m.add(Em::Soil, (0.8 - leaf).max(0.05));
        m.add(Em::Sand, 0.2);
    } else if tau < 0.8 * dur {
        m.add(Em::Leaf, 0.05 + 0.7 * v);
        m.add(Em::Soil, 0.2);
        m.add(Em::Dry, 0.05);
    } else if tau < dur {
        let f = (tau - 0.8 * dur) / (0.2 * dur);
        let leaf = (0.05 + 0.7 * v) * (1.0 - 0.85 * f);
        m.add(Em::Leaf, leaf);
        m.add(Em::Dry, 0.75 - leaf.min(0.7));
        m.add(Em::Soil, 0.25);
    } else {
        m.add(Em::Dry, 0.45 * (1.0 - (tau - dur) / 40.0));
        m.add(Em::Soil, 0.5);
        m.add(Em::Sand, 0.15);
    }
}

/// The season's position of a day (shifted by the parcel's phase), folded to 1..=365.
#[inline]
fn shifted(doy: f32, phase: f32) -> f32 {
    (doy - phase - 1.0).rem_euclid(365.0) + 1.0
}

/// The mixture of pixel `p` on a day.
pub fn mixture(land: &Landscape, p: usize, py: &PixelYear, env: &DayEnv) -> Mixture {
    let site: &Site = &land.sites[p];
    let tex = land.texture[p];
    let mut m = Mixture::new();
    m.bright = 0.94 + 0.12 * tex[2];
    let v = py.vigour;
    let doy = env.doy;
    match py.class {
        WATER => match land.water[p] {
            Some(WaterKind::Sea) => {
                m.add(Em::Turbid, 0.45 + 0.2 * env.wet);
                m.add(Em::Clear, 0.55 - 0.2 * env.wet);
            }
            Some(WaterKind::Lake) => {
                let a = 0.3 + 0.4 * tex[0];
                m.add(Em::Algae, a);
                m.add(Em::Clear, 1.0 - a);
            }
            _ => {
                let t = 0.55 + 0.4 * env.wet;
                m.add(Em::Turbid, t);
                m.add(Em::Clear, 1.0 - t);
            }
        },
        URBAN => {
            if site.road && land.class_at_neighbourhood_is_open(p) {
                m.add(Em::Impervious, 0.5);
                m.add(Em::Leaf, 0.3);
                m.add(Em::Soil, 0.2);
            } else {
                // Dense centres, leafier suburbs and villages.
                let edge = smoothstep(0.4, 1.2, site.town_r.min(site.village_r));
                let imp = (0.45 + 0.48 * tex[0]) * (1.0 - 0.4 * edge);
                if tex[1] < 0.35 {
                    m.add(Em::RedRoof, imp * 0.6);
                    m.add(Em::Impervious, imp * 0.4);
                } else if tex[1] < 0.55 {
                    // Bare yards, building sites between houses.
                    m.add(Em::Impervious, imp * 0.7);
                    m.add(Em::Sand, imp * 0.3);
                } else {
                    m.add(Em::Impervious, imp);
                }
                m.add(Em::Leaf, (1.0 - imp) * (0.7 + 0.3 * env.wet));
                m.add(Em::Soil, (1.0 - imp) * 0.3);
                m.bright = 0.8 + 0.4 * tex[2];
            }
        }
        RICE => {
            let d = shifted(doy, py.phase);
            let (starts, durs): (&[f32], &[f32]) = match py.kind {
                3 => (&[8.0, 122.0, 232.0], &[100.0, 100.0, 98.0]),
                5 => (&[42.0], &[125.0]),
                _ => (&[42.0, 192.0], &[125.0, 105.0]),
            };
            if py.kind == 6 {
                fallow(&mut m, 200.0 + d, env);
                m.normalise();
                m.bright *= py.tone;
                return m;
            }
            // A winter crop (maize, vegetables) on the rice land from October to January.
            if py.kind == 4 && !(35.0..300.0).contains(&d) {
                let tau = if d >= 300.0 { d - 300.0 } else { d + 65.0 };
                dry_crop(&mut m, tau, 95.0, v);
                m.bright = 0.94 + 0.12 * tex[2];
                m.normalise();
                m.bright *= py.tone;
                return m;
            }
            // The latest crop whose land preparation has begun.
            let i = starts.iter().rposition(|&t| d >= t - 12.0);
            match i {
                Some(i) => {
                    let mgmt = if py.stand < 0.35 { 0.25 } else { 1.0 };
                    rice(&mut m, d - starts[i], durs[i], v, mgmt, env)
                }
                None => {
                    let last = starts.len() - 1;
                    let since = d + 365.0 - (starts[last] + durs[last]);
                    fallow(&mut m, since, env);
                }
            }
        }
        OTHER_CROPS => {
            let d = shifted(doy, py.phase);
            match py.kind {
                1 => dry_crop(&mut m, d - 30.0, 320.0, v),
                2 => dry_crop(&mut m, d - 125.0, 120.0, v),
                _ => {
                    let starts = [20.0f32, 140.0, 258.0];
                    let i = starts.iter().rposition(|&t| d >= t).unwrap_or(2);
                    let tau = if d >= starts[i] {
                        d - starts[i]
                    } else {
                        d + 365.0 - starts[i]
                    };
                    dry_crop(&mut m, tau, 95.0, v);
                    // Furrow-irrigated vegetables, water spinach, taro: wet after planting.
                    if py.stand < 0.35 && tau < 35.0 {
                        m.add(Em::Clear, 0.4 * (1.0 - tau / 35.0));
                    }
                }
            }
        }
        GRASS => {
            let w = smoothstep(95.0, 150.0, shifted(doy, py.phase))
                * (1.0 - smoothstep(290.0, 340.0, shifted(doy, py.phase)));
            let leaf = (0.3 + 0.32 * w) * v;
            // Shrubland: some woody cover, more in some stands.
            m.add(Em::Forest, 0.3 * py.stand * py.stand);
            m.add(Em::Leaf, leaf);
            m.add(Em::Dry, 0.35 * (1.0 - w) + 0.05);
            m.add(Em::Soil, (0.95 - leaf - 0.35 * (1.0 - w)).max(0.05));
            if site.base == Base::Upland {
                // Young plantation or regrowth: some woody cover.
                m.add(Em::Plantation, 0.1 * f32::from(py.kind.min(2)));
            }
        }
        ORCHARD => {
            // Young orchards are sparse, old ones nearly closed.
            let c = (0.28 + 0.3 * py.stand + 0.3 * tex[0]) * (0.93 + 0.07 * env.wet) * v.min(1.0);
            m.add(Em::Leaf, c * 0.55);
            m.add(Em::Forest, c * 0.45);
            if py.stand < 0.3 {
                // Young orchard intercropped with vegetables between the rows.
                let mut under = Mixture::new();
                dry_crop(&mut under, shifted(doy, py.phase) - 60.0, 110.0, v);
                under.normalise();
                for i in 0..under.n.min(3) {
                    m.add(under.em[i], (1.0 - c) * under.w[i]);
                }
            } else {
                m.add(Em::Soil, (1.0 - c) * 0.6);
                m.add(Em::Dry, (1.0 - c) * 0.4);
            }
            m.bright *= 0.95;
        }
        BARREN => match py.kind {
            1 => {
                let water = 0.85 * env.flood;
                m.add(Em::Turbid, water);
                m.add(Em::Sand, (1.0 - water) * 0.85);
                m.add(Em::Leaf, (1.0 - water) * 0.1 * env.wet);
                m.add(Em::Soil, (1.0 - water) * 0.15);
            }
            2 => {
                m.add(Em::Sand, 0.85 - 0.15 * env.tide);
                m.add(Em::Turbid, 0.15 * env.tide + 0.03);
                m.add(Em::Soil, 0.12);
            }
            3 => {
                m.add(Em::Soil, 0.5);
                m.add(Em::Dry, 0.35);
                m.add(Em::Leaf, 0.1 + 0.1 * env.wet);
            }
            _ => {
                m.add(Em::Sand, 0.55 + 0.25 * tex[0]);
                m.add(Em::Soil, 0.3);
                m.add(Em::Leaf, 0.04 + 0.08 * env.wet);
                m.add(Em::Impervious, 0.08 * tex[1]);
            }
        },
        EBF => {
            // Mixed stands: some needleleaf in the broadleaf canopy.
            let mix = 0.3 * py.stand * tex[1];
            let gap = 0.2 * tex[0] * tex[0];
            m.add(
                Em::Forest,
                (0.88 + 0.06 * env.wet * v) * (1.0 - mix) * (1.0 - gap),
            );
            m.add(Em::Conifer, 0.88 * mix);
            m.add(Em::Leaf, gap * 0.6);
            m.add(Em::Dry, 0.05 + gap * 0.4);
            m.add(Em::Soil, 0.03);
            m.bright = 0.88 + 0.24 * tex[2];
        }
        ENF => {
            let mix = 0.3 * py.stand * tex[1];
            m.add(Em::Conifer, (0.82 + 0.08 * v) * (1.0 - mix));
            m.add(Em::Forest, 0.85 * mix);
            m.add(Em::Dry, 0.1);
            m.add(Em::Soil, 0.05);
            m.bright = 0.9 + 0.2 * tex[2];
        }
        DECIDUOUS => {
            // Leaf-off in the dry season (Jan-Apr), minimum around March.
            let d = shifted(doy, py.phase * 0.6);
            let x = if d < 200.0 { d } else { d - 365.0 };
            let off = smoothstep(-35.0, 25.0, x) * (1.0 - smoothstep(85.0, 130.0, x));
            let leaf = 1.0 - 0.72 * off * (0.8 + 0.3 * py.extra);
            m.add(Em::Forest, 0.88 * leaf);
            m.add(Em::Dry, 0.75 * (1.0 - leaf) + 0.04);
            m.add(Em::Soil, 0.25 * (1.0 - leaf) + 0.02);
            m.bright = 0.9 + 0.2 * tex[2];
        }
        PLANTATION => {
            let age = f32::from(py.kind.max(2));
            let c = (0.45 + 0.1 * age).min(0.9) * (0.9 + 0.1 * v);
            m.add(Em::Plantation, c * (0.75 + 0.25 * py.stand));
            m.add(Em::Forest, c * 0.25 * (1.0 - py.stand));
            m.add(Em::Leaf, 0.05);
            m.add(Em::Soil, (1.0 - c) * 0.5);
            m.add(Em::Dry, (1.0 - c) * 0.5);
        }
        MANGROVE => {
            let c = 0.72 + 0.15 * tex[0];
            let water = (1.0 - c) * (0.3 + 0.7 * env.tide);
            m.add(Em::Mangrove, c);
            m.add(Em::Turbid, water);
            m.add(Em::Soil, (1.0 - c - water).max(0.0) + 0.02);
            m.double_bounce = 0.6 * env.tide;
        }
        AQUACULTURE => {
            if site.dike {
                m.add(Em::Turbid, 0.3);
                m.add(Em::Leaf, 0.3 + 0.1 * env.wet);
                m.add(Em::Soil, 0.3);
            } else {
                let since = (doy - py.extra).rem_euclid(365.0);
                if py.stand > 0.94 {
                    // Abandoned pond: shallow water overgrown with weeds.
                    m.add(Em::Turbid, 0.45);
                    m.add(Em::Leaf, 0.35 + 0.1 * env.wet);
                    m.add(Em::Soil, 0.2);
                } else if since < 30.0 {
                    // Drained between two cycles: wet mud.
                    m.add(Em::Soil, 0.65);
                    m.add(Em::Turbid, 0.3);
                    m.add(Em::Leaf, 0.05);
                } else {
                    let a = 0.25 + 0.5 * py.stand;
                    m.add(Em::Algae, 0.95 * a);
                    m.add(Em::Turbid, 0.95 * (1.0 - a));
                    m.add(Em::Leaf, 0.05);
                }
            }
        }
        SOLAR => {
            m.add(Em::Panel, 0.68 + 0.1 * tex[0]);
            m.add(Em::Leaf, 0.12 + 0.1 * env.wet);
            m.add(Em::Sand, 0.12);
        }
        _ => m.add(Em::Soil, 1.0),
    }
    // Bunds, paths and ditches along parcel edges: a strip of grass and bare soil.
    if site.dike && matches!(py.class, RICE | OTHER_CROPS) {
        m.normalise();
        for w in &mut m.w[..m.n] {
            *w *= 0.7;
        }
        m.add(Em::Leaf, 0.18);
        m.add(Em::Soil, 0.12);
    }
    m.normalise();
    if matches!(py.class, RICE | OTHER_CROPS | GRASS | ORCHARD | BARREN) {
        m.bright *= py.tone;
    }
    m
}

impl Landscape {
    /// Whether a road pixel runs through open land (not a town or village), where it is a
    /// mixed road-and-verge pixel rather than built-up fabric.
    fn class_at_neighbourhood_is_open(&self, p: usize) -> bool {
        let s = &self.sites[p];
        s.town_r > 1.2 && s.village_r > 1.2
    }
}

/// Radar backscatter of a mixture: linear `[C VV, C VH, L HH, L HV]`, with soil moisture
/// (0..1), a per-pixel orientation factor for built structures and panels, and wind
/// roughening of open water (linear factor).
#[inline]
pub fn backscatter(
    m: &Mixture,
    radar: &[[f32; 4]; NEM],
    moisture: f32,
    orientation: f32,
    wind: f32,
) -> [f32; 4] {
    let mut out = [0.0f32; 4];
    let mut water = 0.0f32;
    let mut veg = 0.0f32;
    for i in 0..m.n {
        let em = m.em[i];
        let w = m.w[i];
        let f = match em {
            Em::Soil | Em::Sand => 0.55 + 0.9 * moisture,
            Em::Impervious | Em::RedRoof | Em::Panel => orientation,
            Em::Clear | Em::Turbid | Em::Algae => {
                water += w;
                wind
            }
            Em::Leaf | Em::Mangrove => {
                veg += w;
                1.0
            }
            _ => 1.0,
        };
        let r = &radar[em as usize];
        for k in 0..4 {
            out[k] += w * r[k] * f;
        }
    }
    // Double bounce between water and stems: strong at L band HH, weaker at C band VV.
    let db = m.double_bounce * (4.0 * water * veg).min(1.0);
    out[0] += 0.08 * db;
    out[2] += 0.35 * db;
    out[3] += 0.01 * db;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndvi(r: &[f32; NB]) -> f32 {
        (r[6] - r[2]) / (r[6] + r[2])
    }

    #[test]
    fn phenology_shapes() {
        let land = Landscape::new(5, 64);
        let p = 0;
        let mut py = PixelYear {
            class: RICE,
            kind: 2,
            phase: 0.0,
            vigour: 1.0,
            extra: 0.5,
            tone: 1.0,
            stand: 0.5,
        };
        let mut r = [0.0; NB];
        let at = |py: &PixelYear, doy: i64, r: &mut [f32; NB]| {
            let m = mixture(&land, p, py, &DayEnv::new(doy, 0.5));
            m.reflectance(r);
            m
        };
        // Rice: flooded at transplanting (McFeeters NDWI > 0), green two months later.
        at(&py, 45, &mut r);
        assert!(r[1] > r[6], "flooded rice: green {} nir {}", r[1], r[6]);
        at(&py, 42 + 75, &mut r);
        assert!(ndvi(&r) > 0.7, "rice peak ndvi {}", ndvi(&r));
        // Deciduous: leaf-off in March, leaf-on in August.
        py.class = DECIDUOUS;
        at(&py, 75, &mut r);
        let off = ndvi(&r);
        at(&py, 220, &mut r);
        let on = ndvi(&r);
        assert!(on - off > 0.2, "deciduous {off} -> {on}");
        // Urban is bright in VV.
        py.class = URBAN;
        let m = at(&py, 100, &mut r);
        let b = backscatter(&m, &radar_linear(), 0.5, 1.0, 1.0);
        assert!(10.0 * b[0].log10() > -6.0);
    }
}
