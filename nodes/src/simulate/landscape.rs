//! The simulated area: a static layout (relief, river, coast, parcels, towns, villages, roads,
//! solar farms) and the ground-truth class of every pixel in every year.
//!
//! The layout is drawn in coordinates normalised to the area's size, so any size holds every
//! class; the diagonal from the north-west (uplands) to the south-east (sea) orders the zones
//! as in the Red River delta: forested uplands, a rice plain with towns, villages and orchards,
//! an aquaculture belt, mangrove and beach, then the sea. A river crosses it all.
//!
//! The class of a pixel in year `Y` is a pure function of the seed, the size, the pixel and
//! `Y` (never of the simulated range), so `simulate(2019..2020)` and `simulate(2016..2023)`
//! agree on 2019. Changes between years: towns and villages grow (with a year of construction
//! as barren land first), forest stands are cleared (barren, then grass/shrub, then
//! plantation), plantations are harvested on a 7-year rotation, solar farms appear (built the
//! year before), rice parcels near the coast turn into aquaculture ponds, some mangrove is
//! converted to ponds, a quarry grows, and a few parcels rotate between rice and other crops.

use super::rng::{Fbm, Rng, hash, smoothstep, u01};

pub const WATER: u8 = 1;
pub const URBAN: u8 = 2;
pub const RICE: u8 = 3;
pub const OTHER_CROPS: u8 = 4;
pub const GRASS: u8 = 5;
pub const ORCHARD: u8 = 6;
pub const BARREN: u8 = 7;
pub const EBF: u8 = 8;
pub const ENF: u8 = 9;
pub const DECIDUOUS: u8 = 10;
pub const PLANTATION: u8 = 11;
pub const MANGROVE: u8 = 12;
pub const AQUACULTURE: u8 = 13;
pub const SOLAR: u8 = 14;
pub use crate::classes::{CLASS_COLOURS, CLASS_COUNT, CLASS_NAMES};

/// The year the layout's dynamics count from (towns have their initial radius then).
pub const BASE_YEAR: i32 = 2016;

/// Zone boundaries along the north-west -> south-east diagonal (`d` in 0..1, noisy).
const D_UPLAND: f32 = 0.345;
const D_AQUA: f32 = 0.76;
const D_FRINGE: f32 = 0.855;
const D_SEA: f32 = 0.9;

/// What a pixel is underneath the yearly dynamics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    Sea,
    River,
    Canal,
    Lake,
    Reservoir,
    Sandbar,
    RiverBank,
    Beach,
    Mangrove,
    Pond,
    Plain,
    Upland,
}

/// Water body kinds (for the optical and radar look of open water).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaterKind {
    Sea,
    River,
    Lake,
}

/// Static description of one pixel.
#[derive(Clone, Copy, Debug)]
pub struct Site {
    pub base: Base,
    /// Parcel / pond / stand key (hash), shared by the pixels of one unit.
    pub unit: u64,
    /// Key of the block of parcels (farmed alike, same irrigation) on the plain; else `unit`.
    pub block: u64,
    /// Plain: the parcel's usual crop class; upland: the stand's natural cover class.
    pub cover: u8,
    /// On a pond dike (aquaculture) or a parcel's bund or path (plain).
    pub dike: bool,
    /// A primary road crosses the pixel.
    pub road: bool,
    /// Index + 1 of the solar farm covering the pixel, 0 for none.
    pub farm: u8,
    /// First year the parcel is an aquaculture pond (`i16::MAX`: never).
    pub aqua_year: i16,
    /// Year the forest stand is cleared (`i16::MAX`: never).
    pub clear_year: i16,
    /// Plantation rotation phase (0..7).
    pub rotation: u8,
    /// Distance to the nearest town centre over the town's base radius (edge noise included).
    pub town_r: f32,
    /// Same for the nearest village.
    pub village_r: f32,
    /// Same for the quarry.
    pub quarry_r: f32,
    /// A park or green space inside towns.
    pub park: bool,
    /// Home gardens and orchards around a village.
    pub garden: bool,
    /// 0..1: relative height in the uplands (0 on the plain).
    pub upland: f32,
}

/// A solar farm: pixel rectangle `[x0, x1) x [y0, y1)` and the first year with panels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SolarFarm {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
    pub year: i32,
}

/// A road line in pixel coordinates and its OSM-like `highway` value.
#[derive(Clone, Debug, PartialEq)]
pub struct Road {
    pub highway: &'static str,
    pub points: Vec<(f32, f32)>,
}

/// The static layout of the area.
pub struct Landscape {
    pub seed: u64,
    pub size: usize,
    pub sites: Vec<Site>,
    /// Terrain elevation (m) at 10 m.
    pub elevation: Vec<f32>,
    /// Unit terrain normal `(east, south, up)` per pixel.
    pub normal: Vec<[f32; 3]>,
    /// Open water kind for water pixels.
    pub water: Vec<Option<WaterKind>>,
    /// Three static per-pixel uniforms (canopy density, roof type, brightness).
    pub texture: Vec<[f32; 3]>,
    pub farms: Vec<SolarFarm>,
    pub roads: Vec<Road>,
    /// Town centres (pixel coordinates) and base radii (px).
    pub towns: Vec<(f32, f32, f32)>,
}

/// Town radius growth per year (relative to the base radius).
const TOWN_GROWTH: f32 = 0.045;
const VILLAGE_GROWTH: f32 = 0.02;
const QUARRY_GROWTH: f32 = 0.09;

impl Landscape {
    pub fn new(seed: u64, size: usize) -> Landscape {
        Builder::new(seed, size).build()
    }

    /// Town radius factor of a year (1 in [`BASE_YEAR`]).
    fn growth(rate: f32, year: i32) -> f32 {
        (1.0 + rate * (year - BASE_YEAR) as f32).max(0.5)
    }

    fn is_town(site: &Site, year: i32) -> bool {
        site.town_r < Self::growth(TOWN_GROWTH, year)
    }

    fn is_village(site: &Site, year: i32) -> bool {
        site.village_r < Self::growth(VILLAGE_GROWTH, year)
    }

    /// The ground-truth class of pixel `p` in `year`.
    pub fn class_at(&self, p: usize, year: i32) -> u8 {
        let s = &self.sites[p];
        let y16 = year.clamp(i16::MIN as i32, i16::MAX as i32) as i16;
        match s.base {
            Base::Sea | Base::River | Base::Canal | Base::Lake | Base::Reservoir => WATER,
            Base::Sandbar | Base::Beach => BARREN,
            Base::RiverBank => {
                if s.road {
                    URBAN
                } else {
                    GRASS
                }
            }
            Base::Mangrove => {
                if s.aqua_year <= y16 {
                    AQUACULTURE
                } else {
                    MANGROVE
                }
            }
            Base::Pond => {
                if s.farm > 0 {
                    return self.farm_class(s, year).unwrap_or(AQUACULTURE);
                }
                if s.aqua_year <= y16 {
                    AQUACULTURE
                } else {
                    self.crop_class(s, year)
                }
            }
            Base::Plain => {
                if let Some(c) = self.farm_class(s, year) {
                    return c;
                }
                if Self::is_town(s, year) {
                    return if s.park { GRASS } else { URBAN };
                }
                if Self::is_town(s, year + 1) && u01(&[self.seed, 71, s.unit, year as u64]) < 0.6 {
                    return BARREN; // construction site
                }
                if s.road || Self::is_village(s, year) {
                    return URBAN;
                }
                if s.garden {
                    return ORCHARD; // home gardens around villages
                }
                if s.aqua_year <= y16 {
                    return AQUACULTURE;
                }
                self.crop_class(s, year)
            }
            Base::Upland => {
                if s.quarry_r < Self::growth(QUARRY_GROWTH, year) {
                    return BARREN;
                }
                if s.road {
                    return URBAN;
                }
                if s.clear_year <= y16 {
                    return match y16 - s.clear_year {
                        0 => BARREN,
                        1 => GRASS,
                        _ => self.plantation_class(s, year),
                    };
                }
                if s.cover == PLANTATION {
                    return self.plantation_class(s, year);
                }
                s.cover
            }
        }
    }

    fn farm_class(&self, s: &Site, year: i32) -> Option<u8> {
        if s.farm == 0 {
            return None;
        }
        let f = &self.farms[usize::from(s.farm - 1)];
        if year >= f.year {
            Some(SOLAR)
        } else if year == f.year - 1 {
            Some(BARREN)
        } else {
            None
        }
    }

    /// Plantation stands are clear-felled every 7 years: barren, then young (grass/shrub).
    fn plantation_class(&self, s: &Site, year: i32) -> u8 {
        match plantation_age(s, year) {
            0 => BARREN,
            1 => GRASS,
            _ => PLANTATION,
        }
    }

    /// The parcel's crop this year: its usual crop, with occasional rotation between rice and
    /// other crops.
    fn crop_class(&self, s: &Site, year: i32) -> u8 {
        let r = u01(&[self.seed, 73, s.unit, year as u64]);
        match s.cover {
            RICE if r < 0.03 => OTHER_CROPS,
            OTHER_CROPS if r < 0.06 => RICE,
            c => c,
        }
    }

    /// The truth raster of a year (row-major, one class code per pixel).
    pub fn truth(&self, year: i32) -> Vec<u8> {
        (0..self.sites.len())
            .map(|p| self.class_at(p, year))
            .collect()
    }
}

/// Years since the stand was last felled (0 = felled this year).
pub fn plantation_age(s: &Site, year: i32) -> i32 {
    if s.clear_year <= year.clamp(i16::MIN as i32, i16::MAX as i32) as i16 {
        // Converted after a clearing: planted the year after, felled every 7 years after that.
        let since = year - i32::from(s.clear_year);
        return if since < 2 {
            since
        } else {
            (since - 1) % 7 + 1
        };
    }
    (year + i32::from(s.rotation)).rem_euclid(7)
}

// ---------------------------------------------------------------------------------------------
// Building the layout
// ---------------------------------------------------------------------------------------------

struct Builder {
    seed: u64,
    size: usize,
    s: f32,
    rng: Rng,
}

/// A polyline with a half-width, for rivers and canals.
struct Channel {
    points: Vec<(f32, f32)>,
    /// Half-width (px) per point.
    half_width: Vec<f32>,
}

impl Channel {
    /// Distance from `(x, y)` to the channel's centreline, and the half-width there.
    fn distance(&self, x: f32, y: f32) -> (f32, f32) {
        let mut best = (f32::INFINITY, 0.0);
        for i in 0..self.points.len() - 1 {
            let (ax, ay) = self.points[i];
            let (bx, by) = self.points[i + 1];
            let (dx, dy) = (bx - ax, by - ay);
            let len2 = dx * dx + dy * dy;
            let t = if len2 > 0.0 {
                (((x - ax) * dx + (y - ay) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (px, py) = (ax + t * dx - x, ay + t * dy - y);
            let d2 = px * px + py * py;
            if d2 < best.0 {
                let hw = self.half_width[i] + t * (self.half_width[i + 1] - self.half_width[i]);
                best = (d2, hw);
            }
        }
        (best.0.sqrt(), best.1)
    }
}

/// Position of a pixel in a rotated grid of rows of height `row_h` whose cells have a length
/// drawn per row between `len_min` and `len_max`. Returns the cell key and the distance (px)
/// to the nearest cell edge.
fn parcel(
    seed: u64,
    tag: u64,
    (x, y): (f32, f32),
    angle: f32,
    row_h: f32,
    len_min: f32,
    len_max: f32,
) -> (u64, f32) {
    let (sn, cs) = angle.sin_cos();
    let a = x * cs + y * sn;
    let b = -x * sn + y * cs;
    let row = (b / row_h).floor();
    let hr = hash(&[seed, tag, row as i64 as u64]);
    let len = len_min + (len_max - len_min) * super::rng::unit_f32(hr);
    let off = super::rng::unit_f32(hr.rotate_left(17)) * len;
    let col = ((a + off) / len).floor();
    let fb = b - row * row_h;
    let fa = a + off - col * len;
    let edge = fb.min(row_h - fb).min(fa).min(len - fa);
    (
        hash(&[seed, tag, row as i64 as u64, col as i64 as u64]),
        edge,
    )
}

impl Builder {
    fn new(seed: u64, size: usize) -> Builder {
        Builder {
            seed,
            size,
            s: size as f32,
            rng: Rng::new(&[seed, 1]),
        }
    }

    fn fbm(&self, tag: u64, cell_frac: f32, octaves: usize) -> Fbm {
        let s = self.s;
        Fbm::new(
            &[self.seed, tag],
            (cell_frac * s).max(2.0),
            octaves,
            0.5,
            [-2.0, -2.0, s + 2.0, s + 2.0],
        )
    }

    /// Pixel position of normalised diagonal coordinates `(d, w)`: `u = d + w`, `v = d - w`.
    fn at_dw(&self, d: f32, w: f32) -> (f32, f32) {
        ((d + w) * self.s, (d - w) * self.s)
    }

    fn river(&mut self) -> Channel {
        let s = self.s;
        let u0 = self.rng.range(0.3, 0.5) as f32;
        let (d0, w0) = (u0 / 2.0, u0 / 2.0);
        let w_end = self.rng.range(-0.03, 0.03) as f32;
        let (p1, p2) = (
            self.rng.range(0.0, std::f64::consts::TAU) as f32,
            self.rng.range(0.0, std::f64::consts::TAU) as f32,
        );
        let n = (self.size * 2).max(64);
        let hw_up = (0.004 * s).max(0.9);
        let hw_plain = (0.011 * s).max(1.4);
        let hw_mouth = (0.012 * s).max(1.0);
        let mut points = Vec::with_capacity(n + 1);
        let mut half_width = Vec::with_capacity(n + 1);
        for i in 0..=n {
            let t = i as f32 / n as f32;
            let d = d0 + (1.05 - d0) * t;
            let env = (std::f32::consts::PI * t).sin();
            let w = w0
                + (w_end - w0) * t
                + env
                    * (0.06 * (std::f32::consts::TAU * 2.5 * t + p1).sin()
                        + 0.025 * (std::f32::consts::TAU * 6.0 * t + p2).sin());
            points.push(self.at_dw(d, w));
            half_width.push(
                hw_up
                    + (hw_plain - hw_up) * smoothstep(0.3, 0.45, d)
                    + hw_mouth * smoothstep(0.8, 0.95, d),
            );
        }
        Channel { points, half_width }
    }

    /// An irrigation canal from the river towards the western or southern edge.
    fn canal(&mut self, river: &Channel) -> Channel {
        let s = self.s;
        let i = river.points.len() * 45 / 100;
        let (x0, y0) = river.points[i];
        let end = if self.rng.f64() < 0.5 {
            (0.0, y0 + self.rng.range(0.1, 0.3) as f32 * s)
        } else {
            (x0 - self.rng.range(0.1, 0.3) as f32 * s, s)
        };
        let n = 40;
        let phase = self.rng.range(0.0, std::f64::consts::TAU) as f32;
        let hw = (0.0025 * s).max(0.7);
        let mut points = Vec::new();
        for k in 0..=n {
            let t = k as f32 / n as f32;
            let (x, y) = (x0 + (end.0 - x0) * t, y0 + (end.1 - y0) * t);
            let (nx, ny) = (-(end.1 - y0), end.0 - x0);
            let nl = (nx * nx + ny * ny).sqrt().max(1e-6);
            let off = 0.02 * s * (std::f32::consts::PI * t).sin() * (6.0 * t + phase).sin();
            points.push((x + nx / nl * off, y + ny / nl * off));
        }
        let half_width = vec![hw; points.len()];
        Channel { points, half_width }
    }

    fn build(mut self) -> Landscape {
        let (seed, size, s) = (self.seed, self.size, self.s);
        let n = size * size;
        let river = self.river();
        let canal = self.canal(&river);

        let n_coast = self.fbm(10, 0.5, 4);
        let n_hill = self.fbm(11, 0.25, 5);
        let n_ridge = self.fbm(12, 0.1, 4);
        let n_type = self.fbm(13, 0.2, 3);
        let n_dec = self.fbm(14, 0.22, 3);
        let n_deg = self.fbm(15, 0.07, 3);
        let n_edge = self.fbm(16, 0.04, 3);
        let n_bar = self.fbm(17, 0.03, 2);
        let n_mg = self.fbm(18, 0.06, 3);

        // Towns: one on the river, one towards the coast.
        let ti = river.points.len() / 2;
        let (ax, ay) = river.points[ti];
        let town_a = (
            ax + self.rng.range(-0.02, 0.02) as f32 * s,
            ay + self.rng.range(-0.02, 0.02) as f32 * s,
            (0.085 * s).max(3.0),
        );
        let wb = self.rng.range(0.12, 0.22) as f32 * if self.rng.f64() < 0.5 { 1.0 } else { -1.0 };
        let (bx, by) = self.at_dw(0.68, wb);
        let town_b = (bx, by, (0.06 * s).max(2.5));
        let towns = vec![town_a, town_b];

        // Villages on a jittered grid over the plain.
        let cell = (0.15 * s).max(10.0);
        let cells = (s / cell).ceil() as i64;
        let mut villages: Vec<(f32, f32, f32)> = Vec::new();
        for cy in 0..cells {
            for cx in 0..cells {
                let h = hash(&[seed, 20, cx as u64, cy as u64]);
                if super::rng::unit_f32(h) > 0.6 {
                    continue;
                }
                let x = (cx as f32 + 0.15 + 0.7 * super::rng::unit_f32(mix(h, 1))) * cell;
                let y = (cy as f32 + 0.15 + 0.7 * super::rng::unit_f32(mix(h, 2))) * cell;
                let d = (x + y) / (2.0 * s);
                if !(D_UPLAND + 0.06..D_AQUA - 0.02).contains(&d) {
                    continue;
                }
                let (rd, hw) = river.distance(x, y);
                if rd < hw + 0.05 * s {
                    continue;
                }
                if towns
                    .iter()
                    .any(|t| ((x - t.0).powi(2) + (y - t.1).powi(2)).sqrt() < t.2 * 1.8)
                {
                    continue;
                }
                let r = (0.016 * s).max(1.5) * (0.8 + 0.5 * super::rng::unit_f32(mix(h, 3)));
                villages.push((x, y, r));
            }
        }

        // Quarry at the foot of the uplands, a reservoir inside them, lakes on the plain.
        let qw = self.rng.range(-0.12, 0.12) as f32;
        let (qx, qy) = self.at_dw(0.25, qw);
        let quarry = (qx, qy, (0.025 * s).max(1.5));
        let rw = self.rng.range(-0.08, 0.08) as f32;
        let (rx, ry) = self.at_dw(0.16, rw);
        let reservoir = (rx, ry, (0.045 * s).max(2.0), (0.02 * s).max(1.2), 0.6f32);
        let mut lakes = Vec::new();
        for _ in 0..3 {
            let d = self.rng.range(0.42, 0.7) as f32;
            let lim = d.min(1.0 - d) - 0.05;
            let lw = self.rng.range(-lim as f64, lim as f64) as f32;
            let (lx, ly) = self.at_dw(d, lw);
            let r1 = (self.rng.range(0.012, 0.025) as f32 * s).max(1.2);
            lakes.push((
                lx,
                ly,
                r1,
                r1 * 0.7,
                self.rng.range(0.0, std::f64::consts::PI) as f32,
            ));
        }
        let in_ellipse = |x: f32, y: f32, e: &(f32, f32, f32, f32, f32), noise: f32| {
            let (sn, cs) = e.4.sin_cos();
            let (dx, dy) = (x - e.0, y - e.1);
            let (a, b) = (dx * cs + dy * sn, -dx * sn + dy * cs);
            (a / e.2).powi(2) + (b / e.3).powi(2) < 1.0 + 0.4 * noise
        };

        // Solar farms: two in 2019 (Viet Nam's feed-in tariff rush), one in 2020.
        let mut farms = Vec::new();
        for (i, (d, w, year)) in [
            (0.46f32, 0.2f32, 2019),
            (0.8, -0.08, 2019),
            (0.6, -0.28, 2020),
        ]
        .into_iter()
        .enumerate()
        {
            let fw = (0.075 * s).max(4.0);
            let fh = (0.05 * s).max(3.0);
            let mut placed = None;
            for attempt in 0..40u64 {
                let jd = (u01(&[seed, 30, i as u64, attempt, 0]) - 0.5) * 0.08;
                let jw = (u01(&[seed, 30, i as u64, attempt, 1]) - 0.5) * 0.16;
                let (cx, cy) = self.at_dw(d + jd, w + jw);
                let (x0, y0) = (cx - fw / 2.0, cy - fh / 2.0);
                if x0 < 1.0 || y0 < 1.0 || x0 + fw > s - 1.0 || y0 + fh > s - 1.0 {
                    continue;
                }
                let (rd, hw) = river.distance(cx, cy);
                let clear_of_towns = towns
                    .iter()
                    .all(|t| ((cx - t.0).powi(2) + (cy - t.1).powi(2)).sqrt() > t.2 * 1.6 + fw);
                if rd > hw + fw && clear_of_towns {
                    placed = Some((x0, y0));
                    break;
                }
            }
            let (x0, y0) = placed.unwrap_or_else(|| self.at_dw(d, w));
            let x0 = (x0.max(0.0) as usize).min(size.saturating_sub(4));
            let y0 = (y0.max(0.0) as usize).min(size.saturating_sub(3));
            farms.push(SolarFarm {
                x0,
                y0,
                x1: (x0 + fw.round() as usize).min(size),
                y1: (y0 + fh.round() as usize).min(size),
                year,
            });
        }

        let roads = self.roads(&river, &towns, &villages, quarry);
        let road_mask = burn_roads(&roads, size);

        let mut sites = Vec::with_capacity(n);
        let mut elevation = vec![0.0f32; n];
        let mut water = vec![None; n];
        let mut texture = Vec::with_capacity(n);
        // Parcels are 50 m wide and 40-120 m long, as small as the delta's rice plots; blocks of
        // parcels 200 m wide share a crop choice and a calendar.
        let row_h = 5.0f32;
        let pond_h = (0.014 * s).max(3.0);
        let stand_h = (0.05 * s).max(4.0);
        for y in 0..size {
            for x in 0..size {
                let p = y * size + x;
                let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
                let d = (fx + fy) / (2.0 * s);
                let hill = n_hill.at(fx, fy);
                let dn = d + 0.05 * n_coast.at(fx, fy) + 0.03 * hill;
                let (rd, hw) = river.distance(fx, fy);
                let (cd, chw) = canal.distance(fx, fy);
                let g = ((D_UPLAND - dn) / 0.3).clamp(0.0, 1.0);
                let upl = smoothstep(D_UPLAND + 0.02, D_UPLAND - 0.03, dn);
                let ridge = 1.0 - n_ridge.at(fx, fy).abs() * 2.0;
                let relief = 40.0
                    + 600.0 * g.powf(0.8) * (0.6 + 0.4 * hill)
                    + 160.0 * g * ridge.max(0.0).powi(3);
                let plain = 0.8
                    + 6.0 * ((D_AQUA - dn) / 0.4).clamp(0.0, 1.0)
                    + 0.4 * hill
                    + 1.5 * (-(rd - hw).max(0.0) / (2.0 * hw.max(1.0))).exp();
                let mut elev = plain + (relief - plain) * upl;

                let h3 = hash(&[seed, 40, p as u64]);
                texture.push([
                    super::rng::unit_f32(h3),
                    super::rng::unit_f32(mix(h3, 1)),
                    super::rng::unit_f32(mix(h3, 2)),
                ]);

                let mut site = Site {
                    base: Base::Plain,
                    unit: 0,
                    block: 0,
                    cover: RICE,
                    dike: false,
                    road: road_mask[p],
                    farm: 0,
                    aqua_year: i16::MAX,
                    clear_year: i16::MAX,
                    rotation: 0,
                    town_r: f32::INFINITY,
                    village_r: f32::INFINITY,
                    quarry_r: f32::INFINITY,
                    park: false,
                    garden: false,
                    upland: 0.0,
                };
                let edge_noise = n_edge.at(fx, fy);

                if dn > D_SEA {
                    site.base = Base::Sea;
                    water[p] = Some(WaterKind::Sea);
                    elev = 0.0;
                } else if rd < hw {
                    let bar = n_bar.at(fx, fy);
                    if d > 0.4 && hw > 2.5 && rd > 0.45 * hw && bar > 0.25 {
                        site.base = Base::Sandbar;
                        elev = elev.min(2.0) - 1.0;
                    } else {
                        site.base = Base::River;
                        water[p] = Some(WaterKind::River);
                        elev = (elev - 2.0).max(0.2);
                    }
                    site.road = false;
                } else if cd < chw && upl < 0.5 {
                    site.base = Base::Canal;
                    water[p] = Some(WaterKind::River);
                    elev = (elev - 1.0).max(0.2);
                    site.road = false;
                } else if in_ellipse(fx, fy, &reservoir, edge_noise) {
                    site.base = Base::Reservoir;
                    water[p] = Some(WaterKind::Lake);
                    elev = relief * 0.8;
                    site.road = false;
                } else if upl < 0.5 && lakes.iter().any(|l| in_ellipse(fx, fy, l, edge_noise)) {
                    site.base = Base::Lake;
                    water[p] = Some(WaterKind::Lake);
                    elev = (elev - 1.0).max(0.2);
                    site.road = false;
                } else if rd < hw + (0.004 * s).max(1.0) && upl < 0.5 {
                    site.base = if dn > D_AQUA - 0.04 {
                        Base::Mangrove
                    } else {
                        Base::RiverBank
                    };
                } else if dn > D_FRINGE {
                    site.base = if n_mg.at(fx, fy) > -0.3 {
                        Base::Mangrove
                    } else {
                        Base::Beach
                    };
                    elev = 0.5 + 1.5 * (D_SEA - dn) / (D_SEA - D_FRINGE);
                    site.road = false;
                } else if dn > D_AQUA {
                    site.base = Base::Pond;
                    elev = elev.min(1.5);
                } else if upl >= 0.5 {
                    site.base = Base::Upland;
                } else {
                    site.base = Base::Plain;
                }

                match site.base {
                    Base::Plain => {
                        let (unit, edge) =
                            parcel(seed, 50, (fx, fy), 0.21, row_h, 0.8 * row_h, 2.4 * row_h);
                        let (block, _) = parcel(
                            seed,
                            53,
                            (fx, fy),
                            0.21,
                            4.0 * row_h,
                            3.0 * row_h,
                            8.0 * row_h,
                        );
                        site.unit = unit;
                        site.block = block;
                        site.dike = edge < 0.6;
                        let hc = if u01(&[unit, 9]) < 0.2 {
                            super::rng::unit_f32(mix(unit, 5))
                        } else {
                            super::rng::unit_f32(mix(block, 5))
                        };
                        let levee = rd < hw + 5.0 * hw.max(1.0) + 0.02 * s;
                        let foothill = dn < D_UPLAND + 0.07;
                        site.cover = if levee {
                            pick(hc, &[(0.5, RICE), (0.4, OTHER_CROPS), (0.1, ORCHARD)])
                        } else if foothill {
                            pick(
                                hc,
                                &[
                                    (0.5, RICE),
                                    (0.25, OTHER_CROPS),
                                    (0.2, ORCHARD),
                                    (0.05, GRASS),
                                ],
                            )
                        } else {
                            pick(
                                hc,
                                &[
                                    (0.76, RICE),
                                    (0.11, OTHER_CROPS),
                                    (0.09, ORCHARD),
                                    (0.04, GRASS),
                                ],
                            )
                        };
                        // Rice parcels near the coast turn into ponds, the nearest first.
                        let near = ((dn - (D_AQUA - 0.1)) / 0.1).clamp(0.0, 1.0);
                        if site.cover == RICE && u01(&[block, 6]) < 0.55 * near {
                            let delay = (12.0 * (1.0 - near) * u01(&[block, 7])) as i32;
                            site.aqua_year = (BASE_YEAR - 2 + delay) as i16;
                        }
                        let mut tr = f32::INFINITY;
                        for t in &towns {
                            let r = ((fx - t.0).powi(2) + (fy - t.1).powi(2)).sqrt() / t.2;
                            tr = tr.min(r * (1.0 - 0.3 * edge_noise));
                        }
                        site.town_r = tr;
                        site.park = tr < 1.0 && n_deg.at(fx, fy) > 0.42;
                        let mut vr = f32::INFINITY;
                        for v in &villages {
                            let r = ((fx - v.0).powi(2) + (fy - v.1).powi(2)).sqrt() / v.2;
                            vr = vr.min(r * (1.0 - 0.4 * edge_noise));
                        }
                        site.village_r = vr;
                        site.garden = vr < 1.9 + 1.5 * n_bar.at(fx, fy);
                    }
                    Base::Pond => {
                        let (unit, edge) = parcel(
                            seed,
                            51,
                            (fx, fy),
                            0.785,
                            pond_h,
                            1.2 * pond_h,
                            2.0 * pond_h,
                        );
                        site.unit = unit;
                        site.dike = edge < 0.75;
                        site.cover = if u01(&[unit, 5]) < 0.8 {
                            AQUACULTURE
                        } else {
                            RICE
                        };
                        if site.cover == AQUACULTURE {
                            site.aqua_year = i16::MIN;
                        } else if u01(&[unit, 6]) < 0.7 {
                            site.aqua_year = (BASE_YEAR + (u01(&[unit, 7]) * 9.0) as i32) as i16;
                        }
                    }
                    Base::Mangrove => {
                        let (unit, edge) = parcel(
                            seed,
                            51,
                            (fx, fy),
                            0.785,
                            pond_h,
                            1.2 * pond_h,
                            2.0 * pond_h,
                        );
                        site.unit = unit;
                        // Some mangrove next to the ponds is dug out into new ponds.
                        if dn < D_FRINGE + 0.02 && u01(&[unit, 8]) < 0.35 {
                            site.aqua_year =
                                (BASE_YEAR + 1 + (u01(&[unit, 9]) * 9.0) as i32) as i16;
                            site.dike = edge < 0.75;
                        }
                        site.cover = MANGROVE;
                    }
                    Base::Upland => {
                        let (unit, _) = parcel(
                            seed,
                            52,
                            (fx, fy),
                            0.61,
                            stand_h,
                            1.0 * stand_h,
                            1.8 * stand_h,
                        );
                        site.unit = unit;
                        site.upland = g;
                        let hs = u01(&[unit, 5]);
                        let t = n_type.at(fx, fy);
                        // Deciduous forest on the drier south-western low hills.
                        let lateral = (fx - fy) / (2.0 * s) / d.max(0.05);
                        site.cover = if n_deg.at(fx, fy) > 0.4 {
                            GRASS
                        } else if g > 0.5 + 0.25 * t {
                            ENF
                        } else if g < 0.32 && hs < 0.45 {
                            PLANTATION
                        } else if g < 0.2 && hs < 0.6 {
                            OTHER_CROPS
                        } else if (0.06..0.6).contains(&g)
                            && lateral < -0.1 + 0.8 * n_dec.at(fx, fy)
                        {
                            DECIDUOUS
                        } else {
                            EBF
                        };
                        site.rotation = (u01(&[unit, 6]) * 7.0) as u8;
                        if matches!(site.cover, EBF | DECIDUOUS)
                            && g < 0.6
                            && u01(&[unit, 7]) < 0.22
                        {
                            site.clear_year = (BASE_YEAR + (u01(&[unit, 8]) * 12.0) as i32) as i16;
                        }
                        let qr =
                            ((fx - quarry.0).powi(2) + (fy - quarry.1).powi(2)).sqrt() / quarry.2;
                        site.quarry_r = qr * (1.0 - 0.3 * edge_noise);
                    }
                    _ => {}
                }
                if site.block == 0 {
                    site.block = site.unit;
                }
                for (i, f) in farms.iter().enumerate() {
                    if (f.x0..f.x1).contains(&x)
                        && (f.y0..f.y1).contains(&y)
                        && matches!(site.base, Base::Plain | Base::Pond)
                    {
                        site.farm = i as u8 + 1;
                    }
                }
                elevation[p] = elev;
                sites.push(site);
            }
        }

        let normal = normals(&elevation, size, 10.0);
        Landscape {
            seed,
            size,
            sites,
            elevation,
            normal,
            water,
            texture,
            farms,
            roads,
            towns,
        }
    }

    /// A road network: primary roads between the towns and to the edges, secondary roads to
    /// the villages and along the river dike, residential grids in the towns and a track up to
    /// the quarry. Denser near towns, as OpenStreetMap is.
    fn roads(
        &mut self,
        river: &Channel,
        towns: &[(f32, f32, f32)],
        villages: &[(f32, f32, f32)],
        quarry: (f32, f32, f32),
    ) -> Vec<Road> {
        let s = self.s;
        let (a, b) = (towns[0], towns[1]);
        let mut roads = Vec::new();
        let wiggly = |rng: &mut Rng, from: (f32, f32), to: (f32, f32), amp: f32| {
            let n = 24;
            let ph = rng.range(0.0, std::f64::consts::TAU) as f32;
            let (dx, dy) = (to.0 - from.0, to.1 - from.1);
            let len = (dx * dx + dy * dy).sqrt().max(1e-6);
            let (nx, ny) = (-dy / len, dx / len);
            (0..=n)
                .map(|k| {
                    let t = k as f32 / n as f32;
                    let o = amp * len * (std::f32::consts::PI * t).sin() * (5.0 * t + ph).sin();
                    (from.0 + dx * t + nx * o, from.1 + dy * t + ny * o)
                })
                .collect::<Vec<_>>()
        };
        let primary_ends = [
            ((a.0, a.1), (b.0, b.1)),
            ((a.0, a.1), (0.0, self.rng.range(0.25, 0.45) as f32 * s)),
            ((a.0, a.1), (self.rng.range(0.6, 0.85) as f32 * s, 0.0)),
            ((b.0, b.1), (s, self.rng.range(0.5, 0.62) as f32 * s)),
        ];
        for (from, to) in primary_ends {
            let pts = wiggly(&mut self.rng, from, to, 0.05);
            roads.push(Road {
                highway: "primary",
                points: pts,
            });
        }
        // Villages connect to the nearest vertex of a primary road.
        for v in villages {
            let mut best = (f32::INFINITY, (0.0, 0.0));
            for r in roads.iter().filter(|r| r.highway == "primary") {
                for &(x, y) in &r.points {
                    let d = (x - v.0).powi(2) + (y - v.1).powi(2);
                    if d < best.0 {
                        best = (d, (x, y));
                    }
                }
            }
            let bend = (best.1.0, v.1);
            roads.push(Road {
                highway: "secondary",
                points: vec![(v.0, v.1), bend, best.1],
            });
        }
        // The dike road along the river, on the plain.
        let off = river.half_width.iter().cloned().fold(0.0f32, f32::max) + (0.008 * s).max(1.5);
        let dike: Vec<(f32, f32)> = river
            .points
            .windows(2)
            .filter_map(|w| {
                let ((x0, y0), (x1, y1)) = (w[0], w[1]);
                let d = (x0 + y0) / (2.0 * s);
                if !(0.42..0.74).contains(&d) {
                    return None;
                }
                let (dx, dy) = (x1 - x0, y1 - y0);
                let l = (dx * dx + dy * dy).sqrt().max(1e-6);
                Some((x0 - dy / l * off, y0 + dx / l * off))
            })
            .step_by(4)
            .collect();
        if dike.len() >= 2 {
            roads.push(Road {
                highway: "secondary",
                points: dike,
            });
        }
        // Residential grids inside the towns (at their size in the last years).
        for (i, t) in towns.iter().enumerate() {
            let r = t.2 * 1.35;
            let spacing = (0.018 * s).max(3.0);
            let ang = 0.3 + 0.5 * i as f32;
            let (sn, cs) = ang.sin_cos();
            let k = (r / spacing).floor() as i32;
            for dir in 0..2 {
                for j in -k..=k {
                    let o = j as f32 * spacing;
                    let half = (r * r - o * o).max(0.0).sqrt();
                    if half < spacing {
                        continue;
                    }
                    let (p0, p1) = if dir == 0 {
                        ((-half, o), (half, o))
                    } else {
                        ((o, -half), (o, half))
                    };
                    let rot = |(u, v): (f32, f32)| (t.0 + u * cs - v * sn, t.1 + u * sn + v * cs);
                    roads.push(Road {
                        highway: "residential",
                        points: vec![rot(p0), rot(p1)],
                    });
                }
            }
        }
        // A track up to the quarry from the nearest primary vertex.
        let mut best = (f32::INFINITY, (0.0, 0.0));
        for r in roads.iter().filter(|r| r.highway == "primary") {
            for &(x, y) in &r.points {
                let d = (x - quarry.0).powi(2) + (y - quarry.1).powi(2);
                if d < best.0 {
                    best = (d, (x, y));
                }
            }
        }
        let track = wiggly(&mut self.rng, best.1, (quarry.0, quarry.1), 0.12);
        roads.push(Road {
            highway: "track",
            points: track,
        });
        // Clip every road to the area (a vertex at most 1 px outside is kept).
        for r in &mut roads {
            for pt in &mut r.points {
                pt.0 = pt.0.clamp(0.0, s);
                pt.1 = pt.1.clamp(0.0, s);
            }
            r.points.dedup();
        }
        roads.retain(|r| r.points.len() >= 2);
        roads
    }
}

fn mix(h: u64, k: u64) -> u64 {
    hash(&[h, k])
}

/// The class whose cumulative weight first exceeds `u` (weights sum to ~1).
fn pick(u: f32, table: &[(f32, u8)]) -> u8 {
    let mut acc = 0.0;
    for &(w, c) in table {
        acc += w;
        if u < acc {
            return c;
        }
    }
    table.last().map_or(RICE, |t| t.1)
}

/// Pixels crossed by primary roads (sampled every 0.3 px along each segment).
fn burn_roads(roads: &[Road], size: usize) -> Vec<bool> {
    let mut mask = vec![false; size * size];
    for r in roads.iter().filter(|r| r.highway == "primary") {
        for w in r.points.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            let len = ((x1 - x0).powi(2) + (y1 - y0).powi(2)).sqrt();
            let steps = (len / 0.3).ceil().max(1.0) as usize;
            for k in 0..=steps {
                let t = k as f32 / steps as f32;
                let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
                if x >= 0.0 && y >= 0.0 && (x as usize) < size && (y as usize) < size {
                    mask[y as usize * size + x as usize] = true;
                }
            }
        }
    }
    mask
}

/// Unit terrain normals `(east, south, up)` by central differences on a grid of `res` metres.
fn normals(elev: &[f32], size: usize, res: f32) -> Vec<[f32; 3]> {
    let mut out = Vec::with_capacity(elev.len());
    for y in 0..size {
        for x in 0..size {
            let e = |xx: usize, yy: usize| elev[yy * size + xx];
            let (xl, xr) = (x.saturating_sub(1), (x + 1).min(size - 1));
            let (yu, yd) = (y.saturating_sub(1), (y + 1).min(size - 1));
            let dzdx = (e(xr, y) - e(xl, y)) / (res * (xr - xl).max(1) as f32);
            let dzdy = (e(x, yd) - e(x, yu)) / (res * (yd - yu).max(1) as f32);
            let (nx, ny, nz) = (-dzdx, -dzdy, 1.0f32);
            let l = (nx * nx + ny * ny + nz * nz).sqrt();
            out.push([nx / l, ny / l, nz / l]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_is_present_at_several_seeds_and_sizes() {
        for (seed, size) in [(1u64, 64usize), (2, 64), (3, 96), (42, 128)] {
            let l = Landscape::new(seed, size);
            let truth = l.truth(2020);
            let mut counts = [0usize; CLASS_COUNT + 1];
            for c in truth {
                counts[usize::from(c)] += 1;
            }
            for code in 1..=CLASS_COUNT {
                assert!(
                    counts[code] > 0,
                    "seed {seed} size {size}: class {code} ({}) missing: {counts:?}",
                    CLASS_NAMES[code - 1]
                );
            }
        }
    }

    #[test]
    fn forests_are_cleared_towns_grow_and_ponds_spread() {
        let l = Landscape::new(42, 128);
        let (a, b) = (l.truth(2016), l.truth(2023));
        let count = |t: &[u8], c: u8| t.iter().filter(|&&x| x == c).count();
        let natural = |c: u8| matches!(c, EBF | DECIDUOUS);
        let cleared = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| natural(**x) && !natural(**y))
            .count();
        assert!(
            cleared > 20,
            "natural forest cleared 2016-2023: {cleared} px"
        );
        assert!(count(&b, URBAN) > count(&a, URBAN) + 20, "towns grow");
        assert!(
            count(&b, AQUACULTURE) > count(&a, AQUACULTURE),
            "ponds spread"
        );
        let to_aqua = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| **x == RICE && **y == AQUACULTURE)
            .count();
        assert!(to_aqua > 0, "rice -> aquaculture");
        // Solar farms: none before 2019, built on barren land the year before.
        assert_eq!(
            count(&l.truth(2018), SOLAR) + count(&l.truth(2017), SOLAR),
            0
        );
        assert!(
            count(&l.truth(2019), SOLAR) > 0
                && count(&l.truth(2020), SOLAR) > count(&l.truth(2019), SOLAR)
        );
        // The class of a year does not depend on which other years are simulated.
        assert_eq!(l.truth(2019), Landscape::new(42, 128).truth(2019));
    }
}
