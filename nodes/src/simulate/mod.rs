//! `lulc simulate`: a deterministic, realistic Viet Nam-like area of interest written as real
//! files (GeoTIFF scenes in a STAC catalog, GeoJSON/GeoPackage vectors), so a demo or a test
//! goes through exactly the same reading code as real data, with no internet.
//!
//! Same options (seed included) => byte-identical files: every random draw is keyed by the
//! seed and the object it belongs to (pixel, parcel, scene), never by thread scheduling, and
//! every file goes through the deterministic writers of [`crate::raster`] and
//! [`crate::vector`]. A scene's content depends on its date, not on the simulated range.
//!
//! What is simulated (see the submodules for the models):
//! - [`landscape`]: uplands with evergreen broadleaf, needleleaf, deciduous and plantation
//!   forest, a rice plain in parcels with orchards, other crops, towns and villages, a river
//!   with sandbars, an aquaculture belt, mangrove and beach, the sea; all 14 classes of
//!   `docs/method.md`, with changes between years (deforestation, urban growth, solar farms from
//!   2019, rice -> aquaculture, mangrove -> ponds, plantation rotation).
//! - [`surface`]: per-class phenology as endmember mixtures (double/triple rice with flooding
//!   at transplanting, deciduous leaf-off Jan-Apr, evergreen stable), with per-parcel and
//!   per-pixel variation, so classes overlap as in reality.
//! - [`s2`]: Sentinel-2 L2A every 5 days (10 days before S2B, July 2017), monsoon clouds and
//!   shadows, a consistent SCL, `BOA_ADD_OFFSET` from processing baseline 04.00 (2022-01-25).
//! - [`sar`]: Sentinel-1 GRD every 12 days (VV/VH dB, speckle), PALSAR-2 ScanSAR every 28
//!   days at 25 m (HH/HV DN).
//! - a 30 m DSM, a road network, truth maps, reference and validation points.
//!
//! Layout of the output folder (a STAC 1.0 static catalog with relative hrefs):
//! ```text
//! catalog.json
//! <collection>/collection.json           sentinel-2-l2a, sentinel-1-grd, alos-palsar2-scansar, dsm
//! <collection>/items/<item-id>.json
//! <collection>/data/<item-id>/<BAND>.tif
//! truth/landcover_<year>.tif             UInt8 classes 1..14, colour table, nodata 0
//! reference/points_<ref_year>.gpkg       id, class, year (with interpretation errors)
//! validation/points_<year>.geojson       id, class, year (every simulated year)
//! vectors/roads.geojson                  lines, `highway` = primary/secondary/residential/track
//! simulation.json                        options, class areas and changes per year, counts
//! ```

pub mod landscape;
pub mod points;
pub mod rng;
pub mod s2;
pub mod sar;
pub mod stac;
pub mod surface;
pub mod time;
pub mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::raster::{Grid, RasterError};
use crate::vector::{
    LineFeature, PointFeature, VectorError, reproject_points, write_lines_geojson,
    write_points_geojson, write_points_gpkg,
};

use crate::raster::BBox;
use landscape::{CLASS_COLOURS, CLASS_COUNT, CLASS_NAMES};
use rng::Rng;
use time::Day;
use world::{CENTRE, CRS, World};

pub use crate::artifacts::CATALOG;

/// Top-level entries `simulate` writes into its output folder (and may replace).
pub const LAYOUT: [&str; 9] = [
    "catalog.json",
    "simulation.json",
    stac::S2,
    stac::S1,
    stac::PALSAR,
    stac::DSM,
    "truth",
    "reference",
    "validation",
];
const VECTORS_DIR: &str = "vectors";

/// The simulator's parameters, everything but the output folder (the `simulate` node's params).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulateParams {
    /// Seed of every random draw. Default 42.
    pub seed: u64,
    /// Width and height of the area in 10 m pixels (even, 32..=4096). Default 512 (5.12 km).
    pub size: usize,
    /// First and last simulated year, inclusive (`[2016, 2023]` or `"2016..2023"`). Default
    /// 2016..2023: the pipeline maps 2017-2022 and gap-filled composites borrow from the
    /// neighbouring years.
    #[serde(with = "year_range")]
    pub years: (i32, i32),
    /// Year of the reference points. Default 2020.
    pub reference_year: i32,
    /// Number of reference points (at most 1/8 of the pixels). Default 2000.
    pub reference_points: usize,
    /// Share of reference points with a wrong (plausibly confused) label. Default 0.03.
    pub reference_error: f64,
    /// Validation points per simulated year (at most 1/16 of the pixels). Default 1000.
    pub validation_points: usize,
    /// A country of several tiles across two UTM zones instead of one area (see [`Country`]);
    /// the area's size then follows from the tiles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<Country>,
}

/// A simulated country: `rows` x `cols` square tiles of `tile_px` 10 m pixels overlapping
/// their neighbours by `overlap_px`, laid out around the 108 E meridian, the border of UTM
/// zones 48 and 49 (as Viet Nam is), at the default area's latitude. A tile whose centre lies
/// west of 108 E is in zone 48 (EPSG:32648, on the simulated area's grid), the others in zone
/// 49 (EPSG:32649, a `tile_px` square about the same centre, corners on multiples of 10 m),
/// as Sentinel-2 tiles are in the zone of their centre. Tiles are named
/// `<zone><row letter><column>` (`48A1`, `49A2`, `48B1`, ...; rows from the north). The scenes
/// cover the whole area in zone 48; each tile's `acquire` warps them onto its own grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Country {
    pub rows: usize,
    pub cols: usize,
    pub tile_px: usize,
    #[serde(default)]
    pub overlap_px: usize,
}

/// Longitude of the border between UTM zones 48 and 49.
const ZONE_BORDER_LON: f64 = 108.0;
/// Pixels of simulated area around a country's tiles, so that the zone-49 tiles, turned by
/// about 2 degrees against zone 48's grid, lie inside it.
const COUNTRY_MARGIN_PX: usize = 32;

impl Country {
    /// Width and height of the tiles' union in pixels.
    fn extent_px(&self) -> (usize, usize) {
        let step = self.tile_px - self.overlap_px;
        (
            self.tile_px + (self.cols - 1) * step,
            self.tile_px + (self.rows - 1) * step,
        )
    }

    /// Pixels per side of the simulated area around the tiles (even).
    pub fn area_px(&self) -> usize {
        let (w, h) = self.extent_px();
        (w.max(h) + 2 * COUNTRY_MARGIN_PX).next_multiple_of(2)
    }

    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(1..=8).contains(&self.rows) || !(1..=8).contains(&self.cols) {
            out.push(format!(
                "`rows` and `cols` must be in 1..=8, got {} x {}",
                self.rows, self.cols
            ));
        }
        if !(64..=1024).contains(&self.tile_px) || !self.tile_px.is_multiple_of(2) {
            out.push(format!(
                "`tile_px` must be an even number in 64..=1024, got {}",
                self.tile_px
            ));
        }
        if self.overlap_px * 2 >= self.tile_px {
            out.push(format!(
                "`overlap_px` ({}) must be under half of `tile_px` ({})",
                self.overlap_px, self.tile_px
            ));
        }
        if out.is_empty() && self.area_px() > 4096 {
            out.push(format!(
                "the tiles need an area of {} px per side; at most 4096",
                self.area_px()
            ));
        }
        out
    }

    /// Every tile's name and 10 m grid, for an area of `size` px centred at `centre` in zone
    /// 48.
    fn tiles(&self, centre: (f64, f64)) -> Result<BTreeMap<String, Grid>, SimError> {
        let (w, h) = self.extent_px();
        let step = ((self.tile_px - self.overlap_px) * 10) as f64;
        let x0 = centre.0 - (w * 5) as f64;
        let y1 = centre.1 + (h * 5) as f64;
        let half = (self.tile_px * 5) as f64;
        let mut tiles = BTreeMap::new();
        for row in 0..self.rows {
            for col in 0..self.cols {
                let (tx0, ty1) = (x0 + col as f64 * step, y1 - row as f64 * step);
                let mut c = vec![PointFeature {
                    id: 0,
                    x: tx0 + half,
                    y: ty1 - half,
                    attrs: BTreeMap::new(),
                }];
                reproject_points(&mut c, CRS, "EPSG:4326")?;
                let zone = if c[0].x < ZONE_BORDER_LON { 48 } else { 49 };
                let (crs, ulx, uly) = if zone == 48 {
                    (CRS.to_string(), tx0, ty1)
                } else {
                    let crs = "EPSG:32649".to_string();
                    reproject_points(&mut c, "EPSG:4326", &crs)?;
                    let snap = |v: f64| (v / 10.0).round() * 10.0;
                    (crs, snap(c[0].x - half), snap(c[0].y + half))
                };
                let grid = Grid::from_bbox(
                    &crs,
                    BBox {
                        min_x: ulx,
                        min_y: uly - 2.0 * half,
                        max_x: ulx + 2.0 * half,
                        max_y: uly,
                    },
                    10.0,
                )?;
                let name = format!("{zone}{}{}", char::from(b'A' + row as u8), col + 1);
                tiles.insert(name, grid);
            }
        }
        Ok(tiles)
    }
}

/// Per pixel of `grid`, whether its centre lies outside every tile (empty without tiles).
fn outside_tiles(grid: &Grid, tiles: &BTreeMap<String, Grid>) -> Result<Vec<bool>, SimError> {
    if tiles.is_empty() {
        return Ok(Vec::new());
    }
    let (w, h) = (grid.width, grid.height);
    let centres: Vec<PointFeature> = (0..w * h)
        .map(|i| {
            let (x, y) = grid.pixel_to_geo((i % w) as f64 + 0.5, (i / w) as f64 + 0.5);
            PointFeature {
                id: i as i64,
                x,
                y,
                attrs: BTreeMap::new(),
            }
        })
        .collect();
    let mut outside = vec![true; w * h];
    for t in tiles.values() {
        let mut pts = centres.clone();
        reproject_points(&mut pts, &grid.crs_wkt, &t.crs_wkt)?;
        let b = t.bbox();
        for (o, p) in outside.iter_mut().zip(&pts) {
            if p.x > b.min_x && p.x < b.max_x && p.y > b.min_y && p.y < b.max_y {
                *o = false;
            }
        }
    }
    Ok(outside)
}

/// The centre of a country's area in zone 48: on the zone border, at the default area's
/// northing, on a multiple of 60 m.
fn country_centre() -> Result<(f64, f64), SimError> {
    let mut p = vec![PointFeature {
        id: 0,
        x: CENTRE.0,
        y: CENTRE.1,
        attrs: BTreeMap::new(),
    }];
    reproject_points(&mut p, CRS, "EPSG:4326")?;
    p[0].x = ZONE_BORDER_LON;
    reproject_points(&mut p, "EPSG:4326", CRS)?;
    Ok(((p[0].x / 60.0).round() * 60.0, CENTRE.1))
}

impl Default for SimulateParams {
    fn default() -> Self {
        SimulateParams {
            seed: 42,
            size: 512,
            years: (2016, 2023),
            reference_year: 2020,
            reference_points: 2000,
            reference_error: 0.03,
            validation_points: 1000,
            country: None,
        }
    }
}

/// Options of [`simulate`]: the params plus the output folder.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulateOptions {
    pub seed: u64,
    pub size: usize,
    pub years: (i32, i32),
    /// Output folder; created if missing. An existing folder must be empty or hold an earlier
    /// simulation (whose entries are replaced).
    pub out: PathBuf,
    pub reference_year: i32,
    pub reference_points: usize,
    pub reference_error: f64,
    pub validation_points: usize,
    pub country: Option<Country>,
}

impl SimulateOptions {
    /// The defaults of [`SimulateParams`], writing into `out`.
    pub fn new(out: impl Into<PathBuf>) -> SimulateOptions {
        SimulateOptions::from_params(&SimulateParams::default(), out)
    }

    pub fn from_params(p: &SimulateParams, out: impl Into<PathBuf>) -> SimulateOptions {
        SimulateOptions {
            seed: p.seed,
            size: p.size,
            years: p.years,
            out: out.into(),
            reference_year: p.reference_year,
            reference_points: p.reference_points,
            reference_error: p.reference_error,
            validation_points: p.validation_points,
            country: p.country,
        }
    }

    pub fn params(&self) -> SimulateParams {
        SimulateParams {
            seed: self.seed,
            size: self.size,
            years: self.years,
            reference_year: self.reference_year,
            reference_points: self.reference_points,
            reference_error: self.reference_error,
            validation_points: self.validation_points,
            country: self.country,
        }
    }
}

impl SimulateParams {
    /// Every invalid value, as `(param, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |k: &str, m: String| out.push((k.to_string(), m));
        if !(32..=4096).contains(&self.size) || !self.size.is_multiple_of(2) {
            bad(
                "size",
                format!(
                    "must be an even number of pixels in 32..=4096, got {}",
                    self.size
                ),
            );
        }
        if let Some(c) = &self.country {
            for m in c.problems() {
                bad("country", m);
            }
            if self.size != SimulateParams::default().size {
                bad(
                    "size",
                    "the area's size follows from `country`; leave `size` out".to_string(),
                );
            }
        }
        let (a, b) = self.years;
        if a > b {
            bad("years", format!("first year {a} is after last year {b}"));
        }
        if a < 2016 || b > 2035 {
            bad(
                "years",
                format!("must lie within 2016..2035 (Sentinel-2 L2A era), got {a}..{b}"),
            );
        }
        if !(2016..=2035).contains(&self.reference_year) {
            bad(
                "reference_year",
                format!("must lie within 2016..2035, got {}", self.reference_year),
            );
        }
        if !(0.0..=0.5).contains(&self.reference_error) {
            bad(
                "reference_error",
                format!("must be a share in 0..=0.5, got {}", self.reference_error),
            );
        }
        out
    }
}

/// `(first, last)` years as `[first, last]` or `"first..last"` (written as `[first, last]`).
mod year_range {
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::ser::{SerializeTuple, Serializer};

    pub fn serialize<S: Serializer>(v: &(i32, i32), s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&v.0)?;
        t.serialize_element(&v.1)?;
        t.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(i32, i32), D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = (i32, i32);
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a year range `A..B` or a list `[A, B]`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<(i32, i32), E> {
                let parse = |t: &str| {
                    t.trim().parse::<i32>().map_err(|_| {
                        E::custom(format!(
                            "invalid year range `{s}`, expected e.g. `2016..2023`"
                        ))
                    })
                };
                match s.split_once("..") {
                    Some((a, b)) => Ok((parse(a)?, parse(b.trim_start_matches('='))?)),
                    None => {
                        let y = parse(s)?;
                        Ok((y, y))
                    }
                }
            }
            /// `[first, last]`, or every year of a contiguous range (`[2016, 2017, 2018]`).
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(i32, i32), A::Error> {
                let mut years = Vec::new();
                while let Some(y) = seq.next_element::<i32>()? {
                    years.push(y);
                }
                match years.as_slice() {
                    [] => Err(de::Error::invalid_length(0, &self)),
                    [y] => Ok((*y, *y)),
                    [a, b] => Ok((*a, *b)),
                    all if all.windows(2).all(|w| w[1] == w[0] + 1) => {
                        Ok((all[0], all[all.len() - 1]))
                    }
                    _ => Err(de::Error::custom(format!(
                        "years {years:?} are neither `[first, last]` nor consecutive"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// What went wrong while simulating.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SimError {
    #[error("invalid simulate option `{option}`: {detail}")]
    #[diagnostic(code(simulate::options))]
    Options { option: String, detail: String },

    #[error("output folder `{}` is not empty and holds no earlier simulation", .path.display())]
    #[diagnostic(
        code(simulate::out_dir),
        help(
            "choose an empty or new folder; `simulate` only replaces folders it wrote itself (with a `simulation.json`)"
        )
    )]
    OutDir { path: PathBuf },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Raster(#[from] RasterError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Vector(#[from] VectorError),

    #[error("cannot write `{}`: {source}", .path.display())]
    #[diagnostic(code(simulate::io))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("simulate: {detail}")]
    #[diagnostic(code(simulate::internal))]
    Internal { detail: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What [`simulate`] wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimSummary {
    pub out: PathBuf,
    /// Every file written, relative to `out`, `/`-separated, sorted.
    pub files: Vec<String>,
    /// Items per STAC collection.
    pub items: BTreeMap<String, usize>,
    /// Pixels per class code per year.
    pub class_pixels: BTreeMap<i32, BTreeMap<u8, usize>>,
    pub reference_points: usize,
    pub validation_points: BTreeMap<i32, usize>,
    /// The 10 m grid of the area.
    pub grid: Grid,
    pub mgrs_tile: String,
    /// A country's tiles and their grids (empty for one area).
    pub tiles: BTreeMap<String, Grid>,
}

/// Run the simulator: write the whole layout into `opts.out`.
pub fn simulate(opts: &SimulateOptions) -> Result<SimSummary, SimError> {
    let params = opts.params();
    if let Some((option, detail)) = params.problems().into_iter().next() {
        return Err(SimError::Options { option, detail });
    }
    let out = opts.out.as_path();
    prepare_out(out)?;
    let (size, centre, tiles) = match &opts.country {
        Some(c) => {
            let centre = country_centre()?;
            (c.area_px(), centre, c.tiles(centre)?)
        }
        None => (opts.size, CENTRE, BTreeMap::new()),
    };
    let (y0, y1) = opts.years;

    // Footprint in WGS 84, and the centre's latitude/longitude for the sun.
    let half = size as f64 * 5.0;
    let corners = [
        (centre.0 - half, centre.1 - half),
        (centre.0 + half, centre.1 - half),
        (centre.0 + half, centre.1 + half),
        (centre.0 - half, centre.1 + half),
        (centre.0, centre.1),
    ];
    let mut pts: Vec<PointFeature> = corners
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| PointFeature {
            id: i as i64,
            x,
            y,
            attrs: BTreeMap::new(),
        })
        .collect();
    reproject_points(&mut pts, CRS, "EPSG:4326")?;
    let r7 = |v: f64| (v * 1e7).round() / 1e7;
    let mut ring: Vec<[f64; 2]> = pts[..4].iter().map(|p| [r7(p.x), r7(p.y)]).collect();
    ring.push(ring[0]);
    let lon = ring.iter().map(|c| c[0]);
    let lat = ring.iter().map(|c| c[1]);
    let footprint = stac::Footprint {
        bbox: [
            lon.clone().fold(f64::INFINITY, f64::min),
            lat.clone().fold(f64::INFINITY, f64::min),
            lon.fold(f64::NEG_INFINITY, f64::max),
            lat.fold(f64::NEG_INFINITY, f64::max),
        ],
        ring,
    };
    let (clat, clon) = (pts[4].y, pts[4].x);
    let tile = crate::mgrs::square_id(48, clat, centre.0, centre.1);

    let world = World::new(opts.seed, size, centre, opts.years, (clat, clon))?;
    let first = Day::from_ymd(y0, 1, 1);
    let last = Day::from_ymd(y1, 12, 31);

    // Truth maps and the DSM.
    let truth_dir = out.join("truth");
    mkdir(&truth_dir)?;
    (y0..=y1)
        .into_par_iter()
        .try_for_each(|y| world.write_truth(y, &truth_dir.join(format!("landcover_{y}.tif"))))?;
    let dsm_id = format!("AW3D30_{tile}_sim");
    let dsm_dir = out.join(stac::DSM).join("data").join(&dsm_id);
    mkdir(&dsm_dir)?;
    world.write_dsm(2011, &dsm_dir.join("DSM.tif"))?;

    // Scenes, in parallel.
    let s2_plans = s2::plans(first, last);
    let s2_scenes: Vec<s2::S2Scene> = s2_plans
        .par_iter()
        .map(|plan| {
            let dir = out
                .join(stac::S2)
                .join("data")
                .join(s2::item_id(plan, &tile));
            mkdir(&dir)?;
            s2::render(&world, plan, &tile, &dir)
        })
        .collect::<Result<_, _>>()?;
    let s1_scenes: Vec<sar::SarScene> = sar::s1_plans(first, last)
        .par_iter()
        .map(|plan| {
            let dir = out.join(stac::S1).join("data").join(sar::s1_id(plan));
            mkdir(&dir)?;
            sar::render_s1(&world, plan, &dir)
        })
        .collect::<Result<_, _>>()?;
    let palsar_scenes: Vec<sar::SarScene> = sar::palsar_plans(first, last)
        .par_iter()
        .map(|plan| {
            let dir = out
                .join(stac::PALSAR)
                .join("data")
                .join(sar::palsar_id(plan));
            mkdir(&dir)?;
            sar::render_palsar(&world, plan, &dir)
        })
        .collect::<Result<_, _>>()?;

    // Vectors: roads, reference and validation points.
    let g = &world.grid10;
    let to_map = |x: f32, y: f32| g.pixel_to_geo(f64::from(x), f64::from(y));
    let roads: Vec<LineFeature> = world
        .land
        .roads
        .iter()
        .enumerate()
        .map(|(i, r)| LineFeature {
            coords: r
                .points
                .iter()
                .map(|&(x, y)| {
                    let (mx, my) = to_map(x, y);
                    ((mx * 100.0).round() / 100.0, (my * 100.0).round() / 100.0)
                })
                .collect(),
            attrs: BTreeMap::from([
                ("highway".to_string(), json!(r.highway)),
                ("id".to_string(), json!(i as i64 + 1)),
            ]),
        })
        .collect();
    mkdir(&out.join(VECTORS_DIR))?;
    write_lines_geojson(
        out.join(VECTORS_DIR).join("roads.geojson"),
        &roads,
        &world.crs_wkt,
    )?;

    let pixels = size * size;
    let point = |id: usize, s: &points::Sample, year: i32| {
        let (x, y) = g.pixel_to_geo((s.pixel % size) as f64 + 0.5, (s.pixel / size) as f64 + 0.5);
        PointFeature {
            id: id as i64 + 1,
            x,
            y,
            attrs: BTreeMap::from([
                ("class".to_string(), json!(s.class)),
                ("year".to_string(), json!(year)),
            ]),
        }
    };
    let ref_year = opts.reference_year;
    let ref_truth = world
        .truth
        .get(&ref_year)
        .cloned()
        .unwrap_or_else(|| world.land.truth(ref_year));
    let mut rng = Rng::new(&[opts.seed, 600]);
    let n_ref = opts.reference_points.min(pixels / 8);
    // A country's points lie on its tiles.
    let outside = outside_tiles(&world.grid10, &tiles)?;
    let mut reference = points::stratified(&ref_truth, n_ref, 0.3, &outside, &mut rng);
    let mislabelled =
        points::add_interpretation_errors(&mut reference, opts.reference_error, &mut rng);
    let mut used = if outside.is_empty() {
        vec![false; pixels]
    } else {
        outside
    };
    for s in &reference {
        used[s.pixel] = true;
    }
    mkdir(&out.join("reference"))?;
    let ref_features: Vec<PointFeature> = reference
        .iter()
        .enumerate()
        .map(|(i, s)| point(i, s, ref_year))
        .collect();
    write_points_gpkg(
        out.join("reference")
            .join(format!("points_{ref_year}.gpkg")),
        &ref_features,
        &world.crs_wkt,
    )?;
    mkdir(&out.join("validation"))?;
    let n_val = opts.validation_points.min(pixels / 16);
    let mut validation_points = BTreeMap::new();
    for year in y0..=y1 {
        let mut rng = Rng::new(&[opts.seed, 601, year as u64]);
        let samples = points::stratified(&world.truth[&year], n_val, 0.5, &used, &mut rng);
        let features: Vec<PointFeature> = samples
            .iter()
            .enumerate()
            .map(|(i, s)| point(i, s, year))
            .collect();
        write_points_geojson(
            out.join("validation")
                .join(format!("points_{year}.geojson")),
            &features,
            &world.crs_wkt,
        )?;
        validation_points.insert(year, features.len());
    }

    // The STAC catalog.
    let items = write_stac(
        out,
        &world,
        &footprint,
        &tile,
        &s2_scenes,
        &s1_scenes,
        &palsar_scenes,
        &dsm_id,
    )?;

    // simulation.json
    let mut class_pixels = BTreeMap::new();
    let mut area = serde_json::Map::new();
    let mut changes = serde_json::Map::new();
    for (&year, t) in &world.truth {
        let mut counts: BTreeMap<u8, usize> = BTreeMap::new();
        for &c in t {
            *counts.entry(c).or_default() += 1;
        }
        let ha: serde_json::Map<String, Value> = counts
            .iter()
            .map(|(&c, &k)| {
                (
                    CLASS_NAMES[usize::from(c) - 1].to_string(),
                    json!(k as f64 / 100.0),
                )
            })
            .collect();
        area.insert(year.to_string(), Value::Object(ha));
        class_pixels.insert(year, counts);
        if let Some(prev) = world.truth.get(&(year - 1)) {
            let mut tr: BTreeMap<String, usize> = BTreeMap::new();
            let mut changed = 0usize;
            for (&a, &b) in prev.iter().zip(t) {
                if a != b {
                    changed += 1;
                    *tr.entry(format!(
                        "{} -> {}",
                        CLASS_NAMES[usize::from(a) - 1],
                        CLASS_NAMES[usize::from(b) - 1]
                    ))
                    .or_default() += 1;
                }
            }
            changes.insert(
                year.to_string(),
                json!({"changed_pixels": changed, "transitions": tr}),
            );
        }
    }
    let classes: Vec<Value> = (0..CLASS_COUNT)
        .map(|i| {
            let [r, g, b] = CLASS_COLOURS[i];
            json!({"code": i + 1, "name": CLASS_NAMES[i], "colour": format!("#{r:02x}{g:02x}{b:02x}")})
        })
        .collect();
    let farms: Vec<Value> = world
        .land
        .farms
        .iter()
        .map(|f| json!({"first_year": f.year, "pixels": [f.x0, f.y0, f.x1, f.y1]}))
        .collect();
    let gt = world.grid10.geo_transform;
    let sim = json!({
        "generator": "lulc simulate",
        "format_version": 1,
        "options": params,
        "crs": CRS,
        "grid": {"geo_transform": gt, "width": size, "height": size, "pixel_size_m": 10.0},
        "bbox_wgs84": footprint.bbox,
        "mgrs_tile": tile,
        "tiles": tiles.iter().map(|(name, g)| (name.clone(), json!({
            "crs": crate::raster::crs_label(&g.crs_wkt),
            "geo_transform": g.geo_transform,
            "width": g.width,
            "height": g.height,
        }))).collect::<serde_json::Map<_, _>>(),
        "classes": classes,
        "class_area_ha": area,
        "changes": changes,
        "solar_farms": farms,
        "counts": {
            "items": items,
            "roads": roads.len(),
            "reference_points": reference.len(),
            "reference_mislabelled": mislabelled,
            "validation_points": validation_points.iter().map(|(y, n)| (y.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        },
        "notes": {
            "sentinel-2-l2a": "DN = reflectance * 10000 - s2:boa_add_offset; s2:boa_add_offset is -1000 from processing baseline 04.00 (2022-01-25), else 0; nodata 0",
            "sentinel-1-grd": "sigma0 in dB (Float32), not terrain-flattened, speckle of 4 looks",
            "alos-palsar2-scansar": "gamma0 dB = 10 log10(DN^2) - 83.0; nodata 0",
            "dsm": "metres (Float32), whole metres, surface heights as of 2011, nodata -9999",
            "reference": "labels from the truth with interpretation errors (reference_error); point at pixel centres",
            "validation": "labels from the truth of their year, no errors; pixels disjoint from the reference points",
        },
    });
    write_json(&out.join("simulation.json"), &sim)?;

    let files = list_files(out)?;
    Ok(SimSummary {
        out: out.to_path_buf(),
        files,
        items,
        class_pixels,
        reference_points: reference.len(),
        validation_points,
        grid: world.grid10.clone(),
        mgrs_tile: tile,
        tiles,
    })
}

#[allow(clippy::too_many_arguments)]
fn write_stac(
    out: &Path,
    world: &World,
    footprint: &stac::Footprint,
    tile: &str,
    s2_scenes: &[s2::S2Scene],
    s1_scenes: &[sar::SarScene],
    palsar_scenes: &[sar::SarScene],
    dsm_id: &str,
) -> Result<BTreeMap<String, usize>, SimError> {
    use stac::{EO, PROJ, RASTER, SAR, SAT, VIEW};
    let epsg = 32648;
    let write_items =
        |collection: &str, items: Vec<(String, Value)>| -> Result<Vec<String>, SimError> {
            let dir = out.join(collection).join("items");
            mkdir(&dir)?;
            items
                .par_iter()
                .map(|(id, v)| write_json(&dir.join(format!("{id}.json")), v).map(|()| id.clone()))
                .collect()
        };
    let interval = |days: Vec<Day>, t: (u32, u32, u32)| {
        (
            days.first().map(|d| d.datetime(t.0, t.1, t.2)),
            days.last().map(|d| d.datetime(t.0, t.1, t.2)),
        )
    };
    let mut counts = BTreeMap::new();

    // Sentinel-2 L2A.
    let s2_ext = [EO, PROJ, RASTER, SAT, VIEW];
    let s2_items: Vec<(String, Value)> = s2_scenes
        .iter()
        .map(|sc| {
            let mut assets = serde_json::Map::new();
            for (i, band) in surface::S2_BANDS.iter().enumerate() {
                let ten = s2::BANDS_10M.contains(&i);
                let grid = if ten { &world.grid10 } else { &world.grid20 };
                let res = if ten { 10 } else { 20 };
                assets.insert(
                    band.to_string(),
                    stac::asset(
                        &sc.id,
                        &format!("{band}.tif"),
                        &format!("{band} surface reflectance DN ({res} m)"),
                        grid,
                        json!({
                            "eo:bands": [stac::s2_eo_band(band)],
                            "raster:bands": [{
                                "nodata": 0, "data_type": "uint16", "spatial_resolution": res,
                                "scale": 0.0001, "offset": f64::from(sc.boa_add_offset) / 10_000.0,
                            }],
                        }),
                    ),
                );
            }
            assets.insert(
                "SCL".to_string(),
                stac::asset(
                    &sc.id,
                    "SCL.tif",
                    "Scene classification map (SCL, 20 m)",
                    &world.grid20,
                    json!({"raster:bands": [{"nodata": 0, "data_type": "uint16", "spatial_resolution": 20}]}),
                ),
            );
            let props = json!({
                "datetime": sc.plan.day.datetime(s2::OVERPASS.0, s2::OVERPASS.1, s2::OVERPASS.2),
                "platform": sc.plan.platform,
                "constellation": "sentinel-2",
                "instruments": ["msi"],
                "gsd": 10,
                "eo:cloud_cover": sc.cloud_cover,
                "s2:processing_baseline": sc.baseline,
                "s2:boa_add_offset": sc.boa_add_offset,
                "s2:mgrs_tile": tile,
                "s2:nodata_pixel_percentage": sc.nodata_percent,
                "proj:epsg": epsg,
                "sat:orbit_state": "descending",
                "sat:relative_orbit": 18,
                "view:sun_elevation": sc.sun_elevation,
                "view:sun_azimuth": sc.sun_azimuth,
            });
            (sc.id.clone(), stac::item(stac::S2, &sc.id, &s2_ext, footprint, props, Value::Object(assets)))
        })
        .collect();
    let ids = write_items(stac::S2, s2_items)?;
    let days: Vec<Day> = s2_scenes.iter().map(|s| s.plan.day).collect();
    let band_summaries: Vec<Value> = surface::S2_BANDS
        .iter()
        .map(|b| stac::s2_eo_band(b))
        .collect();
    let c = stac::collection(
        stac::S2,
        "Sentinel-2 L2A (simulated)",
        "Simulated Sentinel-2 MSI Level-2A surface reflectance: B02, B03, B04, B08 at 10 m; B05, B06, B07, B8A, B11, B12 and the scene classification layer SCL at 20 m. DN = reflectance * 10000 - s2:boa_add_offset (nodata 0).",
        &s2_ext,
        footprint,
        interval(days, s2::OVERPASS),
        &ids,
        json!({"platform": ["sentinel-2a", "sentinel-2b"], "constellation": ["sentinel-2"], "instruments": ["msi"], "gsd": [10, 20], "eo:bands": band_summaries}),
    );
    write_json(&out.join(stac::S2).join("collection.json"), &c)?;
    counts.insert(stac::S2.to_string(), ids.len());

    // Sentinel-1 GRD.
    let sar_ext = [SAR, SAT, PROJ, RASTER];
    let s1_items: Vec<(String, Value)> = s1_scenes
        .iter()
        .map(|sc| {
            let mut assets = serde_json::Map::new();
            for pol in ["VV", "VH"] {
                assets.insert(
                    pol.to_string(),
                    stac::asset(
                        &sc.id,
                        &format!("{pol}.tif"),
                        &format!("{pol} sigma0 (dB)"),
                        &world.grid10,
                        json!({"sar:polarizations": [pol], "raster:bands": [{"nodata": "nan", "data_type": "float32", "unit": "dB", "spatial_resolution": 10}]}),
                    ),
                );
            }
            let props = json!({
                "datetime": sc.plan.day.datetime(sar::S1_TIME.0, sar::S1_TIME.1, sar::S1_TIME.2),
                "platform": "sentinel-1a",
                "constellation": "sentinel-1",
                "instruments": ["c-sar"],
                "sar:instrument_mode": "IW",
                "sar:frequency_band": "C",
                "sar:center_frequency": 5.405,
                "sar:polarizations": ["VV", "VH"],
                "sar:product_type": "GRD",
                "sar:looks_equivalent_number": 4.0,
                "sat:orbit_state": "ascending",
                "sat:relative_orbit": 26,
                "proj:epsg": epsg,
            });
            (sc.id.clone(), stac::item(stac::S1, &sc.id, &sar_ext, footprint, props, Value::Object(assets)))
        })
        .collect();
    let ids = write_items(stac::S1, s1_items)?;
    let days: Vec<Day> = s1_scenes.iter().map(|s| s.plan.day).collect();
    let c = stac::collection(
        stac::S1,
        "Sentinel-1 GRD (simulated)",
        "Simulated Sentinel-1 IW GRD backscatter: VV and VH sigma0 in dB as Float32 at 10 m (as Earth Engine serves it), with speckle.",
        &sar_ext,
        footprint,
        interval(days, sar::S1_TIME),
        &ids,
        json!({"platform": ["sentinel-1a"], "sar:instrument_mode": ["IW"], "sar:polarizations": ["VV", "VH"], "sar:frequency_band": ["C"]}),
    );
    write_json(&out.join(stac::S1).join("collection.json"), &c)?;
    counts.insert(stac::S1.to_string(), ids.len());

    // PALSAR-2 ScanSAR.
    let p_items: Vec<(String, Value)> = palsar_scenes
        .iter()
        .map(|sc| {
            let mut assets = serde_json::Map::new();
            for pol in ["HH", "HV"] {
                assets.insert(
                    pol.to_string(),
                    stac::asset(
                        &sc.id,
                        &format!("{pol}.tif"),
                        &format!("{pol} DN; gamma0 dB = 10 log10(DN^2) - 83.0"),
                        &world.grid25,
                        json!({"sar:polarizations": [pol], "raster:bands": [{"nodata": 0, "data_type": "uint16", "spatial_resolution": 25}]}),
                    ),
                );
            }
            let props = json!({
                "datetime": sc.plan.day.datetime(sar::PALSAR_TIME.0, sar::PALSAR_TIME.1, sar::PALSAR_TIME.2),
                "platform": "alos-2",
                "instruments": ["palsar-2"],
                "sar:instrument_mode": "WBD",
                "sar:frequency_band": "L",
                "sar:center_frequency": 1.2575,
                "sar:polarizations": ["HH", "HV"],
                "sar:product_type": "L2.2",
                "sar:looks_equivalent_number": 5.0,
                "palsar2:calibration_factor_db": sar::PALSAR_CF,
                "sat:orbit_state": "descending",
                "proj:epsg": epsg,
            });
            (sc.id.clone(), stac::item(stac::PALSAR, &sc.id, &sar_ext, footprint, props, Value::Object(assets)))
        })
        .collect();
    let ids = write_items(stac::PALSAR, p_items)?;
    let days: Vec<Day> = palsar_scenes.iter().map(|s| s.plan.day).collect();
    let c = stac::collection(
        stac::PALSAR,
        "ALOS-2 PALSAR-2 ScanSAR (simulated)",
        "Simulated ALOS-2 PALSAR-2 ScanSAR (L2.2) HH and HV at 25 m as UInt16 DN: gamma0 dB = 10 log10(DN^2) - 83.0; nodata 0.",
        &sar_ext,
        footprint,
        interval(days, sar::PALSAR_TIME),
        &ids,
        json!({"platform": ["alos-2"], "sar:polarizations": ["HH", "HV"], "sar:frequency_band": ["L"]}),
    );
    write_json(&out.join(stac::PALSAR).join("collection.json"), &c)?;
    counts.insert(stac::PALSAR.to_string(), ids.len());

    // DSM.
    let dsm_ext = [PROJ, RASTER];
    let assets = json!({
        "DSM": stac::asset(dsm_id, "DSM.tif", "Digital surface model (m)", &world.grid30,
            json!({"raster:bands": [{"nodata": -9999, "data_type": "float32", "unit": "m", "spatial_resolution": 30}]})),
    });
    let props = json!({
        "datetime": null,
        "start_datetime": "2006-01-24T00:00:00Z",
        "end_datetime": "2011-05-12T00:00:00Z",
        "platform": "alos",
        "instruments": ["prism"],
        "proj:epsg": epsg,
    });
    let ids = write_items(
        stac::DSM,
        vec![(
            dsm_id.to_string(),
            stac::item(stac::DSM, dsm_id, &dsm_ext, footprint, props, assets),
        )],
    )?;
    let c = stac::collection(
        stac::DSM,
        "ALOS World 3D 30 m DSM (simulated)",
        "Simulated AW3D30-like digital surface model: terrain plus canopy and building heights, 30 m, Float32 metres.",
        &dsm_ext,
        footprint,
        (
            Some("2006-01-24T00:00:00Z".to_string()),
            Some("2011-05-12T00:00:00Z".to_string()),
        ),
        &ids,
        json!({"gsd": [30]}),
    );
    write_json(&out.join(stac::DSM).join("collection.json"), &c)?;
    counts.insert(stac::DSM.to_string(), ids.len());

    let cat = stac::catalog(
        &format!("lulc-sim-{tile}-{}", world.seed),
        "Simulated Viet Nam-like area of interest (Red River delta) for lulc: Sentinel-2 L2A, Sentinel-1 GRD, PALSAR-2 ScanSAR and a DSM. Ground truth, reference points, validation points and roads are beside this catalog (see simulation.json).",
    );
    write_json(&out.join("catalog.json"), &cat)?;
    Ok(counts)
}

fn mkdir(dir: &Path) -> Result<(), SimError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))
}

fn write_json(path: &Path, v: &Value) -> Result<(), SimError> {
    std::fs::write(path, stac::to_bytes(v)).map_err(io_err(path))
}

/// Create `out`, or clear the entries an earlier simulation wrote there.
fn prepare_out(out: &Path) -> Result<(), SimError> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(io_err(out))?.peekable();
        if entries.peek().is_some() {
            if !out.join("simulation.json").is_file() {
                return Err(SimError::OutDir {
                    path: out.to_path_buf(),
                });
            }
            for name in LAYOUT.iter().chain([&VECTORS_DIR]) {
                let p = out.join(name);
                if p.is_dir() {
                    std::fs::remove_dir_all(&p).map_err(io_err(&p))?;
                } else if p.exists() {
                    std::fs::remove_file(&p).map_err(io_err(&p))?;
                }
            }
        }
    }
    mkdir(out)
}

/// Every file under `root` (relative, `/`-separated, sorted).
pub fn list_files(root: &Path) -> Result<Vec<String>, SimError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(root) {
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::landscape::{
        AQUACULTURE, DECIDUOUS, EBF, ENF, MANGROVE, ORCHARD, PLANTATION, SOLAR, URBAN, WATER,
    };
    use super::*;
    use crate::raster::RasterReader;
    use crate::vector::{ReadOptions, read_points};
    use tempfile::TempDir;

    fn run(dir: &Path, size: usize, years: (i32, i32), seed: u64) -> SimSummary {
        let mut o = SimulateOptions::new(dir);
        o.size = size;
        o.years = years;
        o.seed = seed;
        simulate(&o).unwrap()
    }

    #[test]
    fn a_country_lays_its_tiles_across_utm_zones_48_and_49() {
        let c = Country {
            rows: 3,
            cols: 2,
            tile_px: 128,
            overlap_px: 8,
        };
        let centre = country_centre().unwrap();
        let tiles = c.tiles(centre).unwrap();
        let names: Vec<&str> = tiles.keys().map(String::as_str).collect();
        assert_eq!(names, ["48A1", "48B1", "48C1", "49A2", "49B2", "49C2"]);
        let wkt48 = crate::raster::crs_to_wkt("EPSG:32648").unwrap();
        let wkt49 = crate::raster::crs_to_wkt("EPSG:32649").unwrap();
        let half = c.area_px() as f64 * 5.0;
        for (name, g) in &tiles {
            assert_eq!((g.width, g.height), (128, 128), "{name}");
            let zone = if name.starts_with("48") {
                &wkt48
            } else {
                &wkt49
            };
            assert!(crate::raster::crs_equivalent(&g.crs_wkt, zone), "{name}");
            // The tile's centre is in its zone: west of 108 E for 48, east for 49.
            let (cx, cy) = g.pixel_to_geo(64.0, 64.0);
            let mut p = vec![PointFeature {
                id: 0,
                x: cx,
                y: cy,
                attrs: BTreeMap::new(),
            }];
            reproject_points(&mut p, &g.crs_wkt, "EPSG:4326").unwrap();
            assert_eq!(
                p[0].x < ZONE_BORDER_LON,
                name.starts_with("48"),
                "{name}: {}",
                p[0].x
            );
            // Inside the simulated area (zone 48).
            let f = crate::vector::grid_footprint(g, CRS, 8).unwrap();
            assert!(
                f.min_x > centre.0 - half && f.max_x < centre.0 + half,
                "{name}"
            );
            assert!(
                f.min_y > centre.1 - half && f.max_y < centre.1 + half,
                "{name}"
            );
        }
        // Neighbours of one zone overlap by `overlap_px` rows.
        let (a, b) = (&tiles["48A1"], &tiles["48B1"]);
        assert_eq!(a.geo_transform[3] - b.geo_transform[3], 120.0 * 10.0);
        assert!(a.geo_transform[0] % 10.0 == 0.0 && tiles["49A2"].geo_transform[0] % 10.0 == 0.0);
    }

    #[test]
    fn country_params_are_checked() {
        let mut p = SimulateParams {
            country: Some(Country {
                rows: 9,
                cols: 2,
                tile_px: 100,
                overlap_px: 50,
            }),
            ..SimulateParams::default()
        };
        let keys: Vec<String> = p
            .problems()
            .into_iter()
            .map(|(k, m)| format!("{k}: {m}"))
            .collect();
        assert!(
            keys.iter().any(|k| k.contains("`rows` and `cols`")),
            "{keys:?}"
        );
        assert!(keys.iter().any(|k| k.contains("`overlap_px`")), "{keys:?}");
        p.country = Some(Country {
            rows: 2,
            cols: 2,
            tile_px: 100,
            overlap_px: 10,
        });
        assert!(p.problems().is_empty(), "{:?}", p.problems());
        p.size = 256;
        assert_eq!(p.problems()[0].0, "size");
    }

    fn read_json(path: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    /// Every item of a collection (parsed) and the path of its JSON file.
    fn items(out: &Path, collection: &str) -> Vec<(PathBuf, Value)> {
        let cdir = out.join(collection);
        let c = read_json(&cdir.join("collection.json"));
        c["links"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["rel"] == "item")
            .map(|l| {
                let p = cdir.join(l["href"].as_str().unwrap());
                let v = read_json(&p);
                (p, v)
            })
            .collect()
    }

    fn asset_path(item_path: &Path, item: &Value, key: &str) -> PathBuf {
        item_path
            .parent()
            .unwrap()
            .join(item["assets"][key]["href"].as_str().unwrap())
    }

    fn read_u16(path: &Path) -> (Vec<u16>, usize, usize) {
        let r = RasterReader::open(path).unwrap();
        let g = r.grid().clone();
        (
            r.read_window_u16(1, &g.full_window()).unwrap(),
            g.width,
            g.height,
        )
    }

    fn read_truth(out: &Path, year: i32) -> Vec<u8> {
        let r = RasterReader::open(out.join(format!("truth/landcover_{year}.tif"))).unwrap();
        r.read_window_u8(1, &r.grid().full_window()).unwrap()
    }

    fn median(mut v: Vec<f64>) -> f64 {
        assert!(!v.is_empty());
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    #[test]
    fn same_seed_gives_byte_identical_files() {
        let dir = TempDir::new().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let sa = run(&a, 48, (2019, 2019), 7);
        let sb = run(&b, 48, (2019, 2019), 7);
        assert_eq!(sa.files, sb.files);
        assert!(sa.files.len() > 500, "{} files", sa.files.len());
        for f in &sa.files {
            let (x, y) = (
                std::fs::read(a.join(f)).unwrap(),
                std::fs::read(b.join(f)).unwrap(),
            );
            assert!(x == y, "`{f}` differs between two runs with the same seed");
        }
        // Running again into the same folder replaces the earlier simulation, same bytes.
        let sa2 = run(&a, 48, (2019, 2019), 7);
        assert_eq!(sa2.files, sa.files);
        for f in [
            "simulation.json",
            "truth/landcover_2019.tif",
            "reference/points_2020.gpkg",
        ] {
            assert_eq!(
                std::fs::read(a.join(f)).unwrap(),
                std::fs::read(b.join(f)).unwrap()
            );
        }
        // Another seed gives another landscape.
        let other = landscape::Landscape::new(8, 48).truth(2019);
        assert_ne!(read_truth(&a, 2019), other);
    }

    #[test]
    fn stac_catalog_parses_and_every_href_resolves() {
        let dir = TempDir::new().unwrap();
        let out = dir.path().join("sim");
        let size = 40;
        let sum = run(&out, size, (2021, 2021), 3);
        let cat = read_json(&out.join("catalog.json"));
        assert_eq!(cat["type"], "Catalog");
        assert_eq!(cat["stac_version"], "1.0.0");
        let children: Vec<&str> = cat["links"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["rel"] == "child")
            .map(|l| l["href"].as_str().unwrap())
            .collect();
        assert_eq!(children.len(), 4);
        let mut referenced = BTreeSet::new();
        for (child, id) in children.iter().zip(stac::COLLECTIONS) {
            assert_eq!(*child, format!("./{id}/collection.json"));
            let c = read_json(&out.join(child));
            assert_eq!(c["type"], "Collection");
            assert_eq!(c["id"], id);
            let its = items(&out, id);
            assert_eq!(its.len(), sum.items[id], "{id}");
            assert!(!its.is_empty());
            for (path, item) in &its {
                assert_eq!(item["type"], "Feature");
                assert_eq!(item["collection"], id);
                let root = item["links"][0]["href"].as_str().unwrap();
                assert_eq!(
                    path.parent().unwrap().join(root).canonicalize().unwrap(),
                    out.join("catalog.json").canonicalize().unwrap()
                );
                for (key, a) in item["assets"].as_object().unwrap() {
                    let href = a["href"].as_str().unwrap();
                    assert!(!href.starts_with('/'), "absolute href {href}");
                    let p = asset_path(path, item, key);
                    assert!(p.is_file(), "{} does not resolve", p.display());
                    // proj:shape is [rows, cols] of the file.
                    let r = RasterReader::open(&p).unwrap();
                    let shape = [
                        a["proj:shape"][0].as_u64().unwrap(),
                        a["proj:shape"][1].as_u64().unwrap(),
                    ];
                    assert_eq!(
                        shape,
                        [r.grid().height as u64, r.grid().width as u64],
                        "{href}"
                    );
                    referenced.insert(p.canonicalize().unwrap());
                }
            }
        }
        // Every scene file is an asset of some item.
        for f in sum
            .files
            .iter()
            .filter(|f| f.ends_with(".tif") && !f.starts_with("truth/"))
        {
            assert!(
                referenced.contains(&out.join(f).canonicalize().unwrap()),
                "{f} is no asset"
            );
        }
        // 20 m assets have half the pixels of 10 m ones on each axis; 25 m and 30 m cover it.
        let (p, it) = &items(&out, stac::S2)[0];
        let (_, w10, h10) = read_u16(&asset_path(p, it, "B04"));
        for key in ["B05", "B06", "B07", "B8A", "B11", "B12", "SCL"] {
            let (_, w, h) = read_u16(&asset_path(p, it, key));
            assert_eq!((2 * w, 2 * h), (w10, h10), "{key}");
        }
        assert_eq!((w10, h10), (size, size));
        let (p, it) = &items(&out, stac::PALSAR)[0];
        let (dn, w, h) = read_u16(&asset_path(p, it, "HV"));
        assert_eq!((w, h), ((size * 10).div_ceil(25), (size * 10).div_ceil(25)));
        assert!(
            dn.iter()
                .all(|&d| d > 0 && (-45.0..5.0).contains(&sar::palsar_db(d)))
        );
        let (p, it) = &items(&out, stac::DSM)[0];
        let r = RasterReader::open(asset_path(p, it, "DSM")).unwrap();
        assert_eq!(r.grid().pixel_size(), (30.0, 30.0));
        assert_eq!(r.grid().width, size.div_ceil(3));
        let dsm = r.read_window_f32(1, &r.grid().full_window()).unwrap();
        assert!(dsm.iter().all(|v| (-20.0..1500.0).contains(v)));
        let (p, it) = &items(&out, stac::S1)[0];
        let r = RasterReader::open(asset_path(p, it, "VV")).unwrap();
        let vv = r.read_window_f32(1, &r.grid().full_window()).unwrap();
        assert!(vv.iter().all(|v| (-45.0..20.0).contains(v)));
    }

    #[test]
    fn truth_has_all_classes_colours_and_real_changes() {
        let dir = TempDir::new().unwrap();
        let out = dir.path().join("sim");
        let sum = run(&out, 64, (2018, 2019), 11);
        let (t18, t19) = (read_truth(&out, 2018), read_truth(&out, 2019));
        let present: BTreeSet<u8> = t19.iter().copied().collect();
        assert_eq!(present, (1..=14).collect(), "classes of 2019");
        // Solar farms appear in 2019 (on land that was being built on in 2018).
        assert!(!t18.contains(&SOLAR));
        let solar: Vec<usize> = (0..t19.len()).filter(|&p| t19[p] == SOLAR).collect();
        assert!(solar.len() >= 10);
        let forest = |c: u8| matches!(c, EBF | ENF | DECIDUOUS | PLANTATION | MANGROVE);
        let lost = t18
            .iter()
            .zip(&t19)
            .filter(|(a, b)| forest(**a) && !forest(**b))
            .count();
        assert!(lost > 0, "no forest loss between 2018 and 2019");
        let changed = t18.iter().zip(&t19).filter(|(a, b)| a != b).count();
        assert!(
            changed > 20 && changed < t18.len() / 5,
            "{changed} changed pixels"
        );
        // Colour table and names as in docs/method.md.
        let r = RasterReader::open(out.join("truth/landcover_2019.tif")).unwrap();
        let ct = r.color_table(1).unwrap();
        assert_eq!(ct[1].1, [0x1f, 0x4f, 0xd8, 255]);
        assert_eq!(ct[14].1, [0x6a, 0x3d, 0x9a, 255]);
        let names = r.category_names(1).unwrap();
        assert_eq!(names[&3], "Rice");
        assert_eq!(names.len(), 14);
        assert_eq!(r.meta().nodata, Some(0.0));
        // simulation.json agrees with the rasters.
        let sim = read_json(&out.join("simulation.json"));
        let ha: f64 = sim["class_area_ha"]["2019"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((ha - 64.0 * 64.0 / 100.0).abs() < 1e-6);
        assert_eq!(sum.class_pixels[&2019][&SOLAR], solar.len());
        assert_eq!(sim["changes"]["2019"]["changed_pixels"], changed);
    }

    #[test]
    fn clouds_follow_the_monsoon_and_the_scl_matches_the_pixels() {
        let dir = TempDir::new().unwrap();
        let out = dir.path().join("sim");
        run(&out, 64, (2018, 2019), 5);
        let (mut wet, mut dry) = (Vec::new(), Vec::new());
        let (mut b02_cloud, mut b02_veg, mut nir_water, mut nir_shadow, mut nir_clear) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (path, item) in items(&out, stac::S2) {
            let month: u32 = item["properties"]["datetime"].as_str().unwrap()[5..7]
                .parse()
                .unwrap();
            let offset = item["properties"]["s2:boa_add_offset"].as_f64().unwrap();
            let (scl, w20, _) = read_u16(&asset_path(&path, &item, "SCL"));
            let (b02, w10, _) = read_u16(&asset_path(&path, &item, "B02"));
            let (b08, _, _) = read_u16(&asset_path(&path, &item, "B08"));
            let valid = scl.iter().filter(|&&c| c != 0).count();
            let cloudy = scl.iter().filter(|&&c| (8..=10).contains(&c)).count();
            let frac = cloudy as f64 / valid.max(1) as f64;
            // eo:cloud_cover is the same share, in percent.
            let cc = item["properties"]["eo:cloud_cover"].as_f64().unwrap();
            assert!((cc - 100.0 * frac).abs() < 0.06, "{cc} vs {frac}");
            match month {
                5..=10 => wet.push(frac),
                12 | 1 | 2 => dry.push(frac),
                _ => {}
            }
            for (q, &c) in scl.iter().enumerate() {
                let p = (q / w20) * 2 * w10 + (q % w20) * 2;
                if b02[p] == 0 {
                    assert_eq!(c, 0, "nodata pixel with SCL {c}");
                    continue;
                }
                let refl = |dn: u16| (f64::from(dn) + offset) / 10_000.0;
                match c {
                    9 => b02_cloud.push(refl(b02[p])),
                    4 => {
                        b02_veg.push(refl(b02[p]));
                        nir_clear.push(refl(b08[p]));
                    }
                    5 => nir_clear.push(refl(b08[p])),
                    6 => nir_water.push(refl(b08[p])),
                    3 => nir_shadow.push(refl(b08[p])),
                    _ => {}
                }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (w, d) = (mean(&wet), mean(&dry));
        assert!(
            w > 0.45 && d < 0.3 && w > 2.0 * d,
            "cloud share May-Oct {w:.2}, Dec-Feb {d:.2}"
        );
        // Some scenes are (nearly) all cloud, some all clear.
        assert!(wet.iter().any(|&f| f > 0.95) && dry.iter().any(|&f| f < 0.01));
        let (cloud, veg) = (median(b02_cloud), median(b02_veg));
        assert!(
            cloud > 0.2 && cloud > 4.0 * veg,
            "B02 cloud {cloud:.3} vs vegetation {veg:.3}"
        );
        let (water, shadow, clear) = (median(nir_water), median(nir_shadow), median(nir_clear));
        assert!(water < 0.1, "B08 of SCL water {water:.3}");
        assert!(
            shadow < 0.8 * clear,
            "B08 of shadows {shadow:.3} vs clear land {clear:.3}"
        );
    }

    #[test]
    fn boa_add_offset_applies_from_baseline_04() {
        let dir = TempDir::new().unwrap();
        let out = dir.path().join("sim");
        run(&out, 48, (2022, 2022), 5);
        let truth = read_truth(&out, 2022);
        let stable = |c: u8| {
            matches!(
                c,
                EBF | ENF | URBAN | WATER | PLANTATION | MANGROVE | ORCHARD
            )
        };
        let mut before = Vec::new();
        let mut after = Vec::new();
        for (path, item) in items(&out, stac::S2) {
            let p = &item["properties"];
            let date = &p["datetime"].as_str().unwrap()[..10];
            let new = date >= "2022-01-25";
            assert_eq!(
                p["s2:processing_baseline"],
                if new { "04.00" } else { "02.14" }
            );
            assert_eq!(p["s2:boa_add_offset"], if new { -1000 } else { 0 });
            assert_eq!(
                item["assets"]["B03"]["raster:bands"][0]["offset"],
                if new { -0.1 } else { 0.0 }
            );
            let (scl, w20, _) = read_u16(&asset_path(&path, &item, "SCL"));
            let (b03, w10, _) = read_u16(&asset_path(&path, &item, "B03"));
            let clear: Vec<Option<u16>> = (0..b03.len())
                .map(|p| {
                    let q = (p / w10 / 2) * w20 + (p % w10) / 2;
                    (matches!(scl[q], 4..=6) && stable(truth[p])).then_some(b03[p])
                })
                .collect();
            if date < "2022-01-25" {
                before.push(clear);
            } else if date < "2022-03-01" {
                after.push(clear);
            }
        }
        // The same (stable) surface, clear before and after the baseline change.
        let (mut diff, mut n) = (0.0f64, 0usize);
        for b in &before {
            for a in &after {
                for (x, y) in b.iter().zip(a) {
                    if let (Some(x), Some(y)) = (x, y) {
                        diff += f64::from(*y) - f64::from(*x);
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 100, "only {n} clear stable pixel pairs");
        let d = diff / n as f64;
        assert!(
            (d - 1000.0).abs() < 60.0,
            "mean DN difference {d:.1} over {n} pairs"
        );
    }

    #[test]
    fn palsar_dn_formula_round_trips() {
        for db in [-35.0, -25.5, -18.2, -12.0, -7.3, -1.0, 3.0] {
            let dn = sar::palsar_dn(db);
            let back = sar::palsar_db(dn);
            // One DN step is at most 0.03 dB in this range.
            assert!((back - db).abs() < 0.03, "{db} -> {dn} -> {back}");
            assert!((10.0 * (f64::from(dn).powi(2)).log10() - 83.0 - back).abs() < 1e-9);
        }
        assert_eq!(sar::palsar_dn(-83.0), 1);
        assert_eq!(sar::palsar_dn(-200.0), 1, "0 stays reserved for nodata");
    }

    #[test]
    fn reference_points_agree_with_truth_about_97_percent() {
        let dir = TempDir::new().unwrap();
        let out = dir.path().join("sim");
        let size = 64;
        let sum = run(&out, size, (2019, 2020), 13);
        let truth = read_truth(&out, 2020);
        let grid = &sum.grid;
        let pixel = |x: f64, y: f64| {
            let col = ((x - grid.geo_transform[0]) / 10.0).floor() as usize;
            let row = ((grid.geo_transform[3] - y) / 10.0).floor() as usize;
            row * size + col
        };
        let layer = read_points(
            out.join("reference/points_2020.gpkg"),
            &ReadOptions::default(),
        )
        .unwrap();
        assert!(crate::raster::crs_equivalent(
            &layer.crs_wkt,
            &sum.grid.crs_wkt
        ));
        let pts = &layer.features;
        assert_eq!(pts.len(), size * size / 8);
        assert_eq!(sum.reference_points, pts.len());
        let mut agree = 0;
        let mut ref_pixels = BTreeSet::new();
        for p in pts {
            assert_eq!(p.attrs["year"], 2020);
            let px = pixel(p.x, p.y);
            assert!(ref_pixels.insert(px), "two reference points on pixel {px}");
            agree += usize::from(p.attrs["class"].as_u64().unwrap() == u64::from(truth[px]));
        }
        let share = agree as f64 / pts.len() as f64;
        assert!((0.94..=0.995).contains(&share), "agreement {share:.3}");
        // Validation points: every year, labels from that year's truth, every class present in
        // the truth has some, none on a reference pixel.
        for year in [2019, 2020] {
            let t = read_truth(&out, year);
            let v = read_points(
                out.join(format!("validation/points_{year}.geojson")),
                &ReadOptions::default(),
            )
            .unwrap();
            assert_eq!(v.features.len(), sum.validation_points[&year]);
            assert_eq!(v.features.len(), size * size / 16);
            let mut classes = BTreeSet::new();
            for p in &v.features {
                let px = pixel(p.x, p.y);
                assert_eq!(p.attrs["class"].as_u64().unwrap(), u64::from(t[px]));
                assert_eq!(p.attrs["year"], year);
                assert!(!ref_pixels.contains(&px));
                classes.insert(t[px]);
            }
            let present: BTreeSet<u8> = t.iter().copied().collect();
            assert_eq!(classes, present, "{year}");
        }
        // The roads are lines in the area's CRS.
        let roads = crate::vector::read_lines(out.join("vectors/roads.geojson")).unwrap();
        assert!(roads.features.len() > 5);
        assert!(
            roads
                .features
                .iter()
                .any(|l| l.attrs["highway"] == "primary")
        );
        let _ = (AQUACULTURE, DECIDUOUS);
    }

    #[test]
    fn bad_options_and_foreign_folders_are_refused() {
        let dir = TempDir::new().unwrap();
        let mut o = SimulateOptions::new(dir.path().join("x"));
        o.size = 33;
        let e = simulate(&o).unwrap_err();
        assert!(
            matches!(e, SimError::Options { ref option, .. } if option == "size"),
            "{e}"
        );
        o.size = 32;
        o.years = (2020, 2019);
        assert!(simulate(&o).unwrap_err().to_string().contains("`years`"));
        let p = SimulateParams {
            reference_error: 0.9,
            years: (2015, 2016),
            ..SimulateParams::default()
        };
        assert_eq!(p.problems().len(), 2);
        // A folder with someone else's files is left alone.
        let foreign = dir.path().join("mine");
        std::fs::create_dir_all(&foreign).unwrap();
        std::fs::write(foreign.join("thesis.tex"), "x").unwrap();
        let mut o = SimulateOptions::new(&foreign);
        o.size = 32;
        let e = simulate(&o).unwrap_err();
        assert!(matches!(e, SimError::OutDir { .. }), "{e}");
        assert!(foreign.join("thesis.tex").is_file());
    }

    #[test]
    fn params_take_year_ranges_and_refuse_unknown_fields() {
        let p: SimulateParams =
            serde_json::from_value(json!({"years": "2017..2022", "size": 64})).unwrap();
        assert_eq!((p.years, p.size, p.seed), ((2017, 2022), 64, 42));
        let p: SimulateParams = serde_json::from_value(json!({"years": [2018, 2019]})).unwrap();
        assert_eq!(p.years, (2018, 2019));
        assert_eq!(
            serde_json::to_value(&p).unwrap()["years"],
            json!([2018, 2019])
        );
        let p: SimulateParams =
            serde_json::from_value(json!({"years": [2016, 2017, 2018]})).unwrap();
        assert_eq!(p.years, (2016, 2018));
        assert!(
            serde_json::from_value::<SimulateParams>(json!({"years": [2016, 2018, 2019]})).is_err()
        );
        assert!(serde_json::from_value::<SimulateParams>(json!({"out": "x"})).is_err());
        assert!(serde_json::from_value::<SimulateParams>(json!({"years": "2017-2022"})).is_err());
    }
}
