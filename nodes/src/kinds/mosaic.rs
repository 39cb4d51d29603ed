//! `mosaic`: the maps of many tiles (one year of a country, say) into one map on one grid: a
//! Cloud-Optimized GeoTIFF with internal overviews, the legend's colours and class names, and
//! a QGIS style, readable by `assess` and `change` like any map.
//!
//! The output grid: `crs` (default: the CRS most tiles use; a tie goes to the CRS of the tile
//! that sorts first), `res` (default: the finest pixel size of the tiles in that CRS) and
//! `bbox` (default: the union of every tile's footprint reprojected into `crs`), its edges
//! snapped outward to multiples of `res`, as `gdalwarp -tap` does, so that mosaics of
//! different years and runs share one pixel grid.
//!
//! **Overlaps** (Sentinel-2 tiles overlap by about 10 km, more across UTM zones): tiles are
//! ordered by their `tile` partition value (the step id when the maps have no `tile` dim), and
//! each pixel takes the class of the first tile in that order whose map has a class there. A
//! pixel no tile maps is nodata (0). The rule does not depend on the order of the inputs, the
//! number of threads or the block size.
//!
//! Tiles on the output grid (same CRS and pixel size, origin a whole number of pixels away:
//! the tiles of one UTM zone at 10 m in a mosaic in that zone) are copied pixel for pixel; the
//! others are reprojected with nearest-neighbour resampling (classes are not averaged), one
//! window at a time. Memory is bounded by the window (1024 x 1024 px) and the tiles it
//! touches, never by the mosaic's size; the cost is linear in the tiles' pixels plus the output
//! grid's. Windows no tile touches are not written: the COG leaves them out of the file.
//!
//! **Areas** are measured on the tiles' own grids, not on the mosaic's: a pixel of a tile in
//! another UTM zone, reprojected, no longer has its tile's area (the zones' scale factors
//! differ by up to 0.2 % near their common edge). Each tile counts its own pixels that have a
//! class, that no tile before it maps (the overlap rule, applied on the tile's grid with the
//! earlier tiles reprojected onto it) and whose centre lies in the mosaic's extent; each
//! counts at its own pixel area. For a tile copied pixel for pixel these are the mosaic
//! pixels it gave; a reprojected tile is read a second time for them. The sums per class are
//! the map's `class_km2`, which `assess` (strata weights, mapped areas) and `change` (class
//! areas) use. Areas are those of the tiles' projected CRSs, not ellipsoidal ones.
//!
//! ## Ports
//! - in `maps` (`Map`, many): the tile maps, with one legend and one year (e.g.
//!   `maps: { from: map, tile: all }` in a step partitioned by `year`).
//! - out `map` (`Map`, see [`crate::artifacts::MapMeta`]): `map.tif` (UInt8 COG: DEFLATE,
//!   tiles of `blocksize`, internal overviews resampled by `overviews`, colour table and
//!   `CATEGORY_<code>` class names), `map.qml` (QGIS style) and `tiles.csv`
//!   (`tile,step,crs,placement,pixels,own_pixels,km2`: where each tile landed, `aligned`,
//!   `reprojected` or `outside`, how many mosaic pixels took its class, and how many of its
//!   own pixels the mosaic holds with their area; the `km2` column adds up to the map's
//!   mapped area). No `confidence.tif`. The metadata's `class_km2` holds the areas per class.
//!
//! ## Params (defaults in brackets)
//! - `crs` [the CRS most tiles use]: any definition GDAL understands (`EPSG:32648`, WKT).
//! - `res` [the tiles' finest pixel size in `crs`; required when no tile is in `crs`]: in
//!   `crs` units.
//! - `bbox` [the union of the tiles]: `[minx, miny, maxx, maxy]` in `crs` units.
//! - `overviews` [`mode`]: `mode` (the most frequent class of the pixels an overview pixel
//!   covers) or `nearest`.
//! - `blocksize` [512]: the COG's tile edge in pixels (a multiple of 16, at least 128).
//!
//! Metrics: `tiles`, `reprojected_tiles`, `pixels` (with a class), `nodata_pixels`,
//! `overlap_pixels` (pixels more than one tile maps; the rule above chose).
//!
//! Fails, naming the steps, on: no map, maps with different legends or years, two maps of one
//! tile, a tile whose map is not in the output's CRS and no `res` when no tile is in it.
//!
//! ```yaml
//! nodes:
//!   national:
//!     kind: mosaic
//!     for_each: { year: years }
//!     inputs: { maps: map }                  # every tile of the year
//!     params: { crs: "EPSG:32648", res: 10 }
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use lulc_engine::{Inputs, Node, NodeError, Port, RunCtx};
use serde::{Deserialize, Serialize};

use crate::artifacts::{MAP, MapMeta};
use crate::classes::{ClassDef, Legend};
use crate::kinds::infer::{MAP_FILE, QML_FILE, qml, style_map};
use crate::kinds::{blockwise, csv_field, raster_err};
use crate::raster::{
    BBox, DType, Grid, OverviewResampling, RasterMeta, RasterReader, RasterWriter, Resampling,
    WarpedBand, Window, WriteOptions, crs_equivalent, crs_label, crs_to_wkt, warp_to_grid,
};
use crate::vector::{PointFeature, grid_footprint, reproject_points};

pub const TILES_FILE: &str = "tiles.csv";

/// Edge of the windows the mosaic is computed in (a multiple of every allowed `blocksize`
/// that divides it, so windows write whole COG tiles).
const WINDOW: usize = 1024;

pub struct Mosaic;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MosaicParams {
    pub crs: Option<String>,
    pub res: Option<f64>,
    pub bbox: Option<[f64; 4]>,
    pub overviews: OverviewResampling,
    pub blocksize: usize,
}

impl Default for MosaicParams {
    fn default() -> MosaicParams {
        MosaicParams {
            crs: None,
            res: None,
            bbox: None,
            overviews: OverviewResampling::Mode,
            blocksize: 512,
        }
    }
}

/// One tile's map.
pub struct TileMap {
    /// The `tile` partition value, else the step id (a file: its path): the overlap order.
    pub name: String,
    /// The step it comes from (a file: its path), for messages and `tiles.csv`.
    pub step: String,
    pub meta: MapMeta,
    pub path: PathBuf,
}

impl TileMap {
    /// A class map GeoTIFF written by lulc (`infer`, `mosaic`, `lulc export`): UInt8, its
    /// legend from the `CATEGORY_<code>` names and the colour table.
    pub fn from_file(path: &Path) -> Result<TileMap, NodeError> {
        let r = RasterReader::open(path).map_err(raster_err)?;
        let label = path.display().to_string();
        if r.meta().dtype != DType::U8 {
            return Err(NodeError::new(format!(
                "`{label}` is {}, not a UInt8 class map",
                r.meta().dtype
            )));
        }
        let names = r.category_names(1).map_err(raster_err)?;
        if names.is_empty() {
            return Err(NodeError::new(format!(
                "`{label}` names no classes (no `CATEGORY_<code>` metadata on band 1)"
            ))
            .with_help("mosaic maps written by lulc (`infer`, `lulc export`)"));
        }
        let colours: BTreeMap<u8, [u8; 4]> =
            r.color_table(1).map_err(raster_err)?.into_iter().collect();
        let legend = Legend(
            names
                .into_iter()
                .map(|(code, name)| {
                    let [red, g, b, _] = colours.get(&code).copied().unwrap_or([0, 0, 0, 255]);
                    ClassDef {
                        code,
                        name,
                        colour: format!("#{red:02x}{g:02x}{b:02x}"),
                    }
                })
                .collect(),
        );
        Ok(TileMap {
            name: label.clone(),
            step: label,
            meta: MapMeta {
                grid: r.grid().clone(),
                year: None,
                legend,
                class_pixels: BTreeMap::new(),
                nodata_pixels: 0,
                confidence: false,
                class_km2: None,
            },
            path: path.to_path_buf(),
        })
    }
}

/// How a tile lands on the output grid.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Placement {
    /// Same CRS and pixel size: output pixel `(x, y)` is the tile's `(x - dx, y - dy)`.
    Aligned { dx: i64, dy: i64 },
    /// Reprojected (nearest neighbour).
    Reprojected,
}

/// A tile and the output pixels its footprint may cover (`[x0, y0, x1, y1)`, clipped).
struct Placed {
    tile: usize,
    rect: [usize; 4],
    placement: Placement,
}

/// One tile opened for reading on one worker thread.
enum Opened {
    Direct(RasterReader),
    Warped(WarpedBand),
}

/// What one window contributes.
struct Block {
    classes: Vec<u8>,
    /// Pixels each placed tile (by index into the placed list) gave their class, per class
    /// code (the codes it gave, in code order).
    taken: Vec<(usize, Vec<(u8, u64)>)>,
    overlap: u64,
}

impl Node for Mosaic {
    const KIND: &'static str = "mosaic";
    const VERSION: u32 = 2;
    type Params = MosaicParams;

    fn inputs() -> Vec<Port> {
        vec![Port::many("maps", MAP)]
    }

    fn outputs() -> Vec<Port> {
        vec![Port::one("map", MAP)]
    }

    fn summary() -> &'static str {
        "tile maps into one map (COG with overviews) on one grid; overlaps by tile order"
    }

    fn check(p: &MosaicParams) -> Result<(), Vec<(String, String)>> {
        let mut errs = Vec::new();
        if let Some(res) = p.res
            && !(res.is_finite() && res > 0.0)
        {
            errs.push(("res".into(), format!("`res` must be positive, got {res}")));
        }
        if let Some([a, b, c, d]) = p.bbox
            && !(a < c && b < d && [a, b, c, d].iter().all(|v| v.is_finite()))
        {
            errs.push((
                "bbox".into(),
                format!("`bbox` must be [minx, miny, maxx, maxy] with min < max, got [{a}, {b}, {c}, {d}]"),
            ));
        }
        if let Some(crs) = &p.crs
            && let Err(e) = crs_to_wkt(crs)
        {
            errs.push(("crs".into(), e.to_string()));
        }
        if p.blocksize < 128
            || !p.blocksize.is_multiple_of(16)
            || !WINDOW.is_multiple_of(p.blocksize)
        {
            errs.push((
                "blocksize".into(),
                format!(
                    "`blocksize` must be 128, 256, 512 or 1024 px, got {}",
                    p.blocksize
                ),
            ));
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    fn run(&self, ctx: &mut RunCtx, p: &MosaicParams, inputs: &Inputs) -> Result<(), NodeError> {
        let tiles = read_tiles(inputs)?;
        let legend = tiles[0].meta.legend.clone();
        let year = tiles[0].meta.year;
        let map_path = ctx.output_file("map", MAP_FILE)?;
        let done = mosaic(&tiles, p, &map_path)?;
        ctx.write_output("map", QML_FILE, qml(&legend).as_bytes())?;
        ctx.write_output("map", TILES_FILE, done.tiles_csv.as_bytes())?;
        ctx.metric("tiles", tiles.len() as u64);
        ctx.metric("reprojected_tiles", done.reprojected_tiles as u64);
        ctx.metric("pixels", done.class_pixels.values().sum::<u64>());
        ctx.metric("nodata_pixels", done.nodata_pixels);
        ctx.metric("overlap_pixels", done.overlap_pixels);
        let out = MapMeta {
            grid: done.grid,
            year,
            legend,
            class_pixels: done.class_pixels,
            nodata_pixels: done.nodata_pixels,
            confidence: false,
            class_km2: done.class_km2,
        };
        ctx.set_meta(
            "map",
            serde_json::to_value(&out).map_err(|e| NodeError::new(e.to_string()))?,
        )
    }
}

/// What [`mosaic`] wrote.
#[derive(Debug)]
pub struct Mosaicked {
    pub grid: Grid,
    /// Pixels per class code of the legend.
    pub class_pixels: BTreeMap<u8, u64>,
    /// Area per class code in km2, each pixel measured in its tile's CRS (module doc); `None`
    /// when a tile's CRS is not projected.
    pub class_km2: Option<BTreeMap<u8, f64>>,
    pub nodata_pixels: u64,
    /// Pixels more than one tile maps.
    pub overlap_pixels: u64,
    pub reprojected_tiles: usize,
    /// `tiles.csv`'s text.
    pub tiles_csv: String,
}

/// Mosaic `tiles` (in overlap order, one legend: [`read_tiles`] or [`TileMap::from_file`]
/// sorted by name) into the COG `out` (module doc).
pub fn mosaic(tiles: &[TileMap], p: &MosaicParams, out: &Path) -> Result<Mosaicked, NodeError> {
    let grid = target_grid(tiles, p)?;
    let placed = place(tiles, &grid)?;
    let legend = &tiles[0].meta.legend;
    let mut map = RasterWriter::create(
        out,
        &RasterMeta {
            grid: grid.clone(),
            dtype: DType::U8,
            nodata: Some(0.0),
            band_names: vec!["class".into()],
        },
        &WriteOptions {
            tile: p.blocksize,
            cog: Some(p.overviews),
            ..WriteOptions::default()
        },
    )
    .map_err(raster_err)?;
    style_map(&mut map, legend)?;

    let windows: Vec<Window> = grid.blocks(WINDOW).collect();
    let mut class_pixels: BTreeMap<u8, u64> = legend.0.iter().map(|c| (c.code, 0)).collect();
    let mut taken = vec![BTreeMap::<u8, u64>::new(); placed.len()];
    let mut overlap = 0u64;
    let paths: Vec<PathBuf> = tiles.iter().map(|t| t.path.clone()).collect();
    blockwise(
        &windows,
        1,
        || Ok(RefCell::new(BTreeMap::<usize, Opened>::new())),
        |open, w| mosaic_window(open, &placed, &paths, &grid, w),
        |w, block| {
            overlap += block.overlap;
            if block.taken.is_empty() {
                return Ok(());
            }
            // Every pixel with a class was given by one tile: the tiles' counts are the map's.
            for (i, gave) in &block.taken {
                for (code, n) in gave {
                    let Some(total) = class_pixels.get_mut(code) else {
                        return Err(NodeError::new(format!(
                            "a tile map has class code {code}, which its legend does not list \
                             (window {w} of the mosaic)"
                        )));
                    };
                    *total += n;
                    *taken[*i].entry(*code).or_insert(0) += n;
                }
            }
            map.write_window_u8(1, w, &block.classes)
                .map_err(raster_err)
        },
    )?;
    map.finish().map_err(raster_err)?;
    let pixels: u64 = class_pixels.values().sum();
    let owned = tile_areas(tiles, &paths, &placed, &taken, &grid)?;
    let class_km2 = class_km2(tiles, &owned);
    Ok(Mosaicked {
        nodata_pixels: grid.pixel_count() as u64 - pixels,
        overlap_pixels: overlap,
        reprojected_tiles: placed
            .iter()
            .filter(|t| t.placement == Placement::Reprojected)
            .count(),
        tiles_csv: tiles_csv(tiles, &placed, &taken, &owned),
        class_pixels,
        class_km2,
        grid,
    })
}

/// The input maps in overlap order, checked for one legend, one year and one map per tile.
fn read_tiles(inputs: &Inputs) -> Result<Vec<TileMap>, NodeError> {
    let mut tiles = Vec::new();
    for art in inputs.all("maps") {
        let meta: MapMeta = serde_json::from_value(art.meta.clone()).map_err(|e| {
            NodeError::new(format!(
                "input `maps` (from `{}`) is not a Map artifact: {e}",
                art.step_id
            ))
        })?;
        tiles.push(TileMap {
            name: art
                .dims
                .get("tile")
                .map_or_else(|| art.step_id.clone(), ToString::to_string),
            step: art.step_id.clone(),
            path: art.file(MAP_FILE)?.to_path_buf(),
            meta,
        });
    }
    if tiles.is_empty() {
        return Err(NodeError::new("`mosaic` got no map")
            .with_help("connect the tile maps, e.g. `inputs: { maps: map }`"));
    }
    order_tiles(tiles)
}

/// `tiles` in overlap order (by name), checked for one legend, one year and one map per tile.
pub fn order_tiles(mut tiles: Vec<TileMap>) -> Result<Vec<TileMap>, NodeError> {
    tiles.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.step.cmp(&b.step)));
    for pair in tiles.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(NodeError::new(format!(
                "two maps of tile `{}`: from `{}` and `{}`",
                pair[0].name, pair[0].step, pair[1].step
            ))
            .with_help("a mosaic takes one map per tile: select one sweep point or year"));
        }
    }
    let first = &tiles[0];
    for t in &tiles[1..] {
        if t.meta.legend != first.meta.legend {
            return Err(NodeError::new(format!(
                "the maps from `{}` and `{}` have different legends",
                first.step, t.step
            )));
        }
        if t.meta.year != first.meta.year {
            let y = |y: Option<i64>| y.map_or("no year".to_string(), |y| y.to_string());
            return Err(NodeError::new(format!(
                "the maps from `{}` ({}) and `{}` ({}) are of different years",
                first.step,
                y(first.meta.year),
                t.step,
                y(t.meta.year)
            )));
        }
    }
    Ok(tiles)
}

/// The output grid from the params and the tiles (module doc).
fn target_grid(tiles: &[TileMap], p: &MosaicParams) -> Result<Grid, NodeError> {
    let crs = match &p.crs {
        Some(c) => crs_to_wkt(c).map_err(|e| NodeError::new(format!("`crs`: {e}")))?,
        None => most_common_crs(tiles),
    };
    let res = match p.res {
        Some(r) => r,
        None => tiles
            .iter()
            .filter(|t| crs_equivalent(&t.meta.grid.crs_wkt, &crs))
            .map(|t| {
                let (w, h) = t.meta.grid.pixel_size();
                w.min(h)
            })
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.min(r))))
            .ok_or_else(|| {
                NodeError::new(format!(
                    "no tile map is in the mosaic's CRS ({}), so its pixel size is unknown",
                    crs_label(&crs)
                ))
                .with_help("give `res` in the CRS's units")
            })?,
    };
    let bbox = match p.bbox {
        Some(b) => b.into(),
        None => {
            let mut u = BBox {
                min_x: f64::INFINITY,
                min_y: f64::INFINITY,
                max_x: f64::NEG_INFINITY,
                max_y: f64::NEG_INFINITY,
            };
            for t in tiles {
                let b = footprint(t, &crs)?;
                u.min_x = u.min_x.min(b.min_x);
                u.min_y = u.min_y.min(b.min_y);
                u.max_x = u.max_x.max(b.max_x);
                u.max_y = u.max_y.max(b.max_y);
            }
            u
        }
    };
    // Outward to whole multiples of `res` (1e-9 px of tolerance keeps 600000 m on its line).
    let down = |v: f64| (v / res + 1e-9).floor() * res;
    let up = |v: f64| (v / res - 1e-9).ceil() * res;
    let snapped = BBox {
        min_x: down(bbox.min_x),
        min_y: down(bbox.min_y),
        max_x: up(bbox.max_x),
        max_y: up(bbox.max_y),
    };
    Grid::from_bbox(&crs, snapped, res)
        .map_err(|e| NodeError::new(format!("the mosaic's grid: {e}")))
}

/// The CRS most tiles use; a tie goes to the tile that sorts first.
fn most_common_crs(tiles: &[TileMap]) -> String {
    let mut best: Option<(usize, &str)> = None;
    for t in tiles {
        let crs = t.meta.grid.crs_wkt.as_str();
        let n = tiles
            .iter()
            .filter(|o| crs_equivalent(&o.meta.grid.crs_wkt, crs))
            .count();
        if best.is_none_or(|(m, _)| n > m) {
            best = Some((n, crs));
        }
    }
    best.map(|(_, c)| c.to_string()).unwrap_or_default()
}

fn footprint(t: &TileMap, crs: &str) -> Result<BBox, NodeError> {
    grid_footprint(&t.meta.grid, crs, 32).map_err(|e| {
        NodeError::new(format!(
            "the footprint of the map from `{}` in the mosaic's CRS: {e}",
            t.step
        ))
    })
}

/// Where each tile lands on `grid`; tiles outside it are left out.
fn place(tiles: &[TileMap], grid: &Grid) -> Result<Vec<Placed>, NodeError> {
    let g = grid.geo_transform;
    let res = g[1];
    let mut placed = Vec::new();
    for (i, t) in tiles.iter().enumerate() {
        let tg = &t.meta.grid;
        let tt = tg.geo_transform;
        let whole = |v: f64| (v - v.round()).abs() < 1e-6;
        let aligned = crs_equivalent(&tg.crs_wkt, &grid.crs_wkt)
            && tt[2] == 0.0
            && tt[4] == 0.0
            && (tt[1] - res).abs() <= 1e-9 * res
            && (tt[5] - g[5]).abs() <= 1e-9 * res
            && whole((tt[0] - g[0]) / res)
            && whole((g[3] - tt[3]) / res);
        let (placement, raw) = if aligned {
            let dx = ((tt[0] - g[0]) / res).round() as i64;
            let dy = ((g[3] - tt[3]) / res).round() as i64;
            (
                Placement::Aligned { dx, dy },
                [dx, dy, dx + tg.width as i64, dy + tg.height as i64],
            )
        } else {
            let b = footprint(t, &grid.crs_wkt)?;
            (
                Placement::Reprojected,
                [
                    ((b.min_x - g[0]) / res).floor() as i64,
                    ((g[3] - b.max_y) / res).floor() as i64,
                    ((b.max_x - g[0]) / res).ceil() as i64,
                    ((g[3] - b.min_y) / res).ceil() as i64,
                ],
            )
        };
        let clip = |v: i64, max: usize| v.clamp(0, max as i64) as usize;
        let rect = [
            clip(raw[0], grid.width),
            clip(raw[1], grid.height),
            clip(raw[2], grid.width),
            clip(raw[3], grid.height),
        ];
        if rect[0] < rect[2] && rect[1] < rect[3] {
            placed.push(Placed {
                tile: i,
                rect,
                placement,
            });
        }
    }
    Ok(placed)
}

/// The classes of one output window: every tile that touches it, in order, fills the pixels
/// still without a class.
fn mosaic_window(
    open: &RefCell<BTreeMap<usize, Opened>>,
    placed: &[Placed],
    paths: &[PathBuf],
    grid: &Grid,
    w: &Window,
) -> Result<Block, NodeError> {
    let mut classes = vec![0u8; w.len()];
    let mut claimed = vec![false; w.len()];
    let mut taken = Vec::new();
    let mut overlap = 0u64;
    for (pi, t) in placed.iter().enumerate() {
        let [x0, y0, x1, y1] = t.rect;
        let (sx0, sy0) = (x0.max(w.x), y0.max(w.y));
        let (sx1, sy1) = (x1.min(w.x + w.w), y1.min(w.y + w.h));
        if sx0 >= sx1 || sy0 >= sy1 {
            continue;
        }
        let sub = Window::new(sx0, sy0, sx1 - sx0, sy1 - sy0);
        let values = read_tile(open, t, &paths[t.tile], grid, &sub)?;
        let mut counts = [0u64; 256];
        for r in 0..sub.h {
            let row = (sub.y - w.y + r) * w.w + (sub.x - w.x);
            for c in 0..sub.w {
                let v = values[r * sub.w + c];
                if v == 0 {
                    continue;
                }
                let i = row + c;
                if classes[i] == 0 {
                    classes[i] = v;
                    counts[usize::from(v)] += 1;
                } else if !claimed[i] {
                    claimed[i] = true;
                    overlap += 1;
                }
            }
        }
        let gave = nonzero(&counts);
        if !gave.is_empty() {
            taken.push((pi, gave));
        }
    }
    Ok(Block {
        classes,
        taken,
        overlap,
    })
}

/// The tile's classes on output window `sub` (inside its rect), 0 where it has none.
fn read_tile(
    open: &RefCell<BTreeMap<usize, Opened>>,
    t: &Placed,
    path: &PathBuf,
    grid: &Grid,
    sub: &Window,
) -> Result<Vec<u8>, NodeError> {
    let mut open = open.borrow_mut();
    let opened = match open.entry(t.tile) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => e.insert(match t.placement {
            Placement::Aligned { .. } => {
                Opened::Direct(RasterReader::open(path).map_err(raster_err)?)
            }
            Placement::Reprojected => Opened::Warped(
                warp_to_grid(path, 1, grid, Resampling::Nearest).map_err(raster_err)?,
            ),
        }),
    };
    match (opened, t.placement) {
        (Opened::Direct(r), Placement::Aligned { dx, dy }) => {
            let local = Window::new(
                (sub.x as i64 - dx) as usize,
                (sub.y as i64 - dy) as usize,
                sub.w,
                sub.h,
            );
            r.read_window_u8(1, &local).map_err(raster_err)
        }
        (Opened::Warped(b), _) => Ok(b
            .read_window_f32(sub)
            .map_err(raster_err)?
            .into_iter()
            .map(|v| {
                if (1.0..=255.0).contains(&v) {
                    v as u8
                } else {
                    0
                }
            })
            .collect()),
        (Opened::Direct(_), Placement::Reprojected) => {
            unreachable!("a reprojected tile is opened warped")
        }
    }
}

/// `tiles.csv`: every input tile, where it landed, how many mosaic pixels it gave, and how
/// many of its own pixels the mosaic holds with their area in km2 (empty for a CRS that is not
/// projected).
fn tiles_csv(
    tiles: &[TileMap],
    placed: &[Placed],
    taken: &[BTreeMap<u8, u64>],
    owned: &[BTreeMap<u8, u64>],
) -> String {
    let mut s = String::from("tile,step,crs,placement,pixels,own_pixels,km2\n");
    for (i, t) in tiles.iter().enumerate() {
        let at = placed.iter().position(|p| p.tile == i);
        let placement = match at.map(|a| placed[a].placement) {
            Some(Placement::Aligned { .. }) => "aligned",
            Some(Placement::Reprojected) => "reprojected",
            None => "outside",
        };
        let pixels: u64 = at.map_or(0, |a| taken[a].values().sum());
        let own: u64 = owned[i].values().sum();
        let km2 = t
            .meta
            .grid
            .pixel_km2()
            .map(|k| format!("{:.6}", own as f64 * k))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{},{},{},{placement},{pixels},{own},{km2}",
            csv_field(&t.name),
            csv_field(&t.step),
            csv_field(&crs_label(&t.meta.grid.crs_wkt)),
        );
    }
    s
}

/// The codes with a count, in code order.
fn nonzero(counts: &[u64; 256]) -> Vec<(u8, u64)> {
    (0u8..=255)
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| (c, *n))
        .collect()
}

/// Per tile (input order), its own pixels per class that the mosaic holds: the pixels of its
/// grid where it has a class and no tile before it has one, inside the mosaic's extent. For a
/// tile copied onto the mosaic's grid these are the mosaic pixels it gave; a reprojected tile
/// is counted again on its own grid, with the tiles before it reprojected onto that grid.
fn tile_areas(
    tiles: &[TileMap],
    paths: &[PathBuf],
    placed: &[Placed],
    taken: &[BTreeMap<u8, u64>],
    grid: &Grid,
) -> Result<Vec<BTreeMap<u8, u64>>, NodeError> {
    let mut owned = vec![BTreeMap::new(); tiles.len()];
    for (pi, t) in placed.iter().enumerate() {
        owned[t.tile] = match t.placement {
            Placement::Aligned { .. } => taken[pi].clone(),
            Placement::Reprojected => own_pixels(tiles, paths, t.tile, grid)?,
        };
    }
    Ok(owned)
}

/// Tile `i`'s pixels per class on its own grid that no tile before it maps, inside `grid`
/// (`paths`: the tiles' files).
fn own_pixels(
    tiles: &[TileMap],
    paths: &[PathBuf],
    i: usize,
    grid: &Grid,
) -> Result<BTreeMap<u8, u64>, NodeError> {
    let own = &tiles[i].meta.grid;
    let before = place(&tiles[..i], own)?;
    let me = Placed {
        tile: i,
        rect: [0, 0, own.width, own.height],
        placement: Placement::Aligned { dx: 0, dy: 0 },
    };
    // Pixel centres are tested against the mosaic's extent only where the tile's footprint
    // reaches past it (a `bbox` smaller than the tiles).
    let clip = {
        let f = footprint(&tiles[i], &grid.crs_wkt)?;
        let b = grid.bbox();
        !(f.min_x >= b.min_x && f.max_x <= b.max_x && f.min_y >= b.min_y && f.max_y <= b.max_y)
    };
    let windows: Vec<Window> = own.blocks(WINDOW).collect();
    let mut total = [0u64; 256];
    blockwise(
        &windows,
        1,
        || Ok(RefCell::new(BTreeMap::<usize, Opened>::new())),
        |open, w| {
            let earlier = mosaic_window(open, &before, paths, own, w)?.classes;
            let mine = read_tile(open, &me, &paths[i], own, w)?;
            let inside = if clip {
                inside_grid(own, w, grid)?
            } else {
                Vec::new()
            };
            let mut counts = [0u64; 256];
            for (k, (m, e)) in mine.iter().zip(&earlier).enumerate() {
                if *m != 0 && *e == 0 && (!clip || inside[k]) {
                    counts[usize::from(*m)] += 1;
                }
            }
            Ok(counts)
        },
        |_, counts| {
            for (t, n) in total.iter_mut().zip(counts) {
                *t += n;
            }
            Ok(())
        },
    )?;
    Ok(nonzero(&total).into_iter().collect())
}

/// Whether each pixel centre of window `w` of `own` falls inside `grid`'s extent.
fn inside_grid(own: &Grid, w: &Window, grid: &Grid) -> Result<Vec<bool>, NodeError> {
    let mut pts: Vec<PointFeature> = (0..w.len())
        .map(|k| {
            let (c, r) = ((w.x + k % w.w) as f64 + 0.5, (w.y + k / w.w) as f64 + 0.5);
            let (x, y) = own.pixel_to_geo(c, r);
            PointFeature {
                id: k as i64,
                x,
                y,
                attrs: BTreeMap::new(),
            }
        })
        .collect();
    reproject_points(&mut pts, &own.crs_wkt, &grid.crs_wkt)
        .map_err(|e| NodeError::new(format!("a tile's pixels in the mosaic's CRS: {e}")))?;
    let b = grid.bbox();
    Ok(pts
        .iter()
        .map(|p| p.x >= b.min_x && p.x < b.max_x && p.y > b.min_y && p.y <= b.max_y)
        .collect())
}

/// Area per class code in km2: each tile's own pixels times its own pixel area, summed in
/// tile order; `None` when a tile that gives pixels is not in a projected CRS.
fn class_km2(tiles: &[TileMap], owned: &[BTreeMap<u8, u64>]) -> Option<BTreeMap<u8, f64>> {
    let mut km2: BTreeMap<u8, f64> = tiles[0]
        .meta
        .legend
        .0
        .iter()
        .map(|c| (c.code, 0.0))
        .collect();
    for (t, own) in tiles.iter().zip(owned) {
        if own.is_empty() {
            continue;
        }
        let k = t.meta.grid.pixel_km2()?;
        for (code, n) in own {
            *km2.entry(*code).or_insert(0.0) += *n as f64 * k;
        }
    }
    Some(km2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::{PointFeature, reproject_points};
    use gdal::Metadata as _;
    use lulc_engine::{ArtifactIn, DimValue, erase};
    use serde_json::json;

    fn grid(epsg: u32, x0: f64, y0: f64, size: usize) -> Grid {
        Grid {
            crs_wkt: crs_to_wkt(&format!("EPSG:{epsg}")).unwrap(),
            geo_transform: [x0, 10.0, 0.0, y0, 0.0, -10.0],
            width: size,
            height: size,
        }
    }

    /// A Map artifact of tile `tile` (2020) on `grid` with class `class(col, row)`.
    fn tile_map(
        dir: &Path,
        tile: &str,
        grid: &Grid,
        legend: &Legend,
        class: impl Fn(usize, usize) -> u8,
    ) -> ArtifactIn {
        let path = dir.join(format!("{tile}.tif"));
        let meta = RasterMeta {
            grid: grid.clone(),
            dtype: DType::U8,
            nodata: Some(0.0),
            band_names: vec!["class".into()],
        };
        let mut w = RasterWriter::create(&path, &meta, &WriteOptions::default()).unwrap();
        let mut values = Vec::with_capacity(grid.pixel_count());
        for r in 0..grid.height {
            for c in 0..grid.width {
                values.push(class(c, r));
            }
        }
        w.write_window_u8(1, &grid.full_window(), &values).unwrap();
        w.finish().unwrap();
        let mut class_pixels: BTreeMap<u8, u64> = BTreeMap::new();
        for v in values.iter().filter(|v| **v != 0) {
            *class_pixels.entry(*v).or_insert(0) += 1;
        }
        let meta = MapMeta {
            grid: grid.clone(),
            year: Some(2020),
            legend: legend.clone(),
            class_pixels,
            nodata_pixels: values.iter().filter(|v| **v == 0).count() as u64,
            confidence: false,
            class_km2: None,
        };
        ArtifactIn {
            step_id: format!("map[tile={tile},year=2020]"),
            dims: BTreeMap::from([
                ("tile".to_string(), DimValue::Str(tile.to_string())),
                ("year".to_string(), DimValue::Int(2020)),
            ]),
            ty: MAP.to_string(),
            digest: String::new(),
            meta: serde_json::to_value(meta).unwrap(),
            files: BTreeMap::from([(MAP_FILE.to_string(), path)]),
        }
    }

    fn run(
        params: serde_json::Value,
        maps: Vec<ArtifactIn>,
        dir: &Path,
    ) -> Result<RunCtx, NodeError> {
        let node = erase(Mosaic);
        let params = node
            .check_params(&params)
            .map_err(|e| NodeError::new(e[0].message.clone()))?;
        let out = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx = RunCtx::for_test("mosaic", Mosaic::outputs(), &out);
        let inputs = Inputs {
            ports: BTreeMap::from([("maps".to_string(), maps)]),
        };
        node.run(&mut ctx, &params, &inputs)?;
        Ok(ctx)
    }

    fn out_meta(ctx: &RunCtx) -> MapMeta {
        serde_json::from_value(ctx.outputs()["map"].meta.clone()).unwrap()
    }

    fn classes(ctx: &RunCtx) -> (Grid, Vec<u8>) {
        let r = RasterReader::open(&ctx.outputs()["map"].files[MAP_FILE]).unwrap();
        let g = r.grid().clone();
        let v = r.read_window_u8(1, &g.full_window()).unwrap();
        (g, v)
    }

    /// Two tiles of one zone, 200 px each, overlapping by 40 columns; `b` sorts after `a`.
    /// Tile a: class 3 (rice), with a 10 x 10 hole of nodata inside the overlap; tile b:
    /// class 8 (EBF).
    fn two_aligned(dir: &Path) -> (ArtifactIn, ArtifactIn) {
        let legend = Legend::default();
        let a = tile_map(
            dir,
            "48QA",
            &grid(32648, 600_000.0, 2_000_000.0, 200),
            &legend,
            |c, r| {
                if (170..180).contains(&c) && (50..60).contains(&r) {
                    0
                } else {
                    3
                }
            },
        );
        let b = tile_map(
            dir,
            "48QB",
            &grid(32648, 601_600.0, 2_000_000.0, 200),
            &legend,
            |_, _| 8,
        );
        (a, b)
    }

    #[test]
    fn overlaps_go_to_the_tile_that_sorts_first_and_holes_are_filled_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_aligned(dir.path());
        let ctx = run(
            json!({"blocksize": 128}),
            vec![b.clone(), a.clone()],
            dir.path(),
        )
        .unwrap();
        let (g, v) = classes(&ctx);
        // The union: 360 x 200 px from x = 600000.
        assert_eq!((g.width, g.height), (360, 200));
        assert_eq!(
            g.geo_transform,
            [600_000.0, 10.0, 0.0, 2_000_000.0, 0.0, -10.0]
        );
        let at = |c: usize, r: usize| v[r * g.width + c];
        assert_eq!(at(0, 0), 3);
        assert_eq!(at(165, 10), 3, "overlap: the first tile wins");
        assert_eq!(at(175, 55), 8, "a's hole is filled by b");
        assert_eq!(at(359, 199), 8);
        let meta = out_meta(&ctx);
        // No gap, no double count: every pixel of the union has a class.
        assert_eq!(meta.nodata_pixels, 0);
        assert_eq!(meta.class_pixels[&3], 200 * 200 - 100);
        assert_eq!(meta.class_pixels[&8], 160 * 200 + 100);
        assert_eq!(ctx.metrics()["overlap_pixels"], json!(40 * 200 - 100));
        assert_eq!(ctx.metrics()["reprojected_tiles"], json!(0));
        let csv = std::fs::read_to_string(&ctx.outputs()["map"].files[TILES_FILE]).unwrap();
        assert_eq!(
            csv,
            format!(
                "tile,step,crs,placement,pixels,own_pixels,km2\n\
                 48QA,\"map[tile=48QA,year=2020]\",EPSG:32648 (WGS 84 / UTM zone 48N),aligned,{a},{a},3.990000\n\
                 48QB,\"map[tile=48QB,year=2020]\",EPSG:32648 (WGS 84 / UTM zone 48N),aligned,{b},{b},3.210000\n",
                a = 200 * 200 - 100,
                b = 160 * 200 + 100
            )
        );

        // The inputs' order does not matter: the same bytes.
        let again = run(json!({"blocksize": 128}), vec![a, b], dir.path()).unwrap();
        let bytes = |c: &RunCtx| std::fs::read(&c.outputs()["map"].files[MAP_FILE]).unwrap();
        assert_eq!(bytes(&ctx), bytes(&again));
    }

    #[test]
    fn the_mosaic_is_a_cog_with_overviews_colours_and_class_names() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_aligned(dir.path());
        let ctx = run(json!({"blocksize": 128}), vec![a, b], dir.path()).unwrap();
        let path = &ctx.outputs()["map"].files[MAP_FILE];
        let ds = gdal::Dataset::open(path).unwrap();
        assert_eq!(
            ds.metadata_item("LAYOUT", "IMAGE_STRUCTURE").as_deref(),
            Some("COG")
        );
        assert_eq!(
            ds.metadata_item("COMPRESSION", "IMAGE_STRUCTURE")
                .as_deref(),
            Some("DEFLATE")
        );
        let band = ds.rasterband(1).unwrap();
        assert_eq!(band.block_size(), (128, 128));
        assert!(band.overview_count().unwrap() >= 1, "no overviews");
        // 360 x 200 -> 180 x 100: the overview's mode of 2 x 2 px of one class is that class.
        let ov = band.overview(0).unwrap();
        assert_eq!(ov.size(), (180, 100));
        let px = ov.read_as::<u8>((0, 0), (1, 1), (1, 1), None).unwrap();
        assert_eq!(px.data(), &[3]);
        let r = RasterReader::open(path).unwrap();
        let legend = Legend::default();
        let ct = r.color_table(1).unwrap();
        let [cr, cg, cb] = legend.rgb(3);
        assert!(ct.contains(&(3, [cr, cg, cb, 255])), "{ct:?}");
        assert_eq!(r.category_names(1).unwrap()[&8], legend.name(8));
        let qml = std::fs::read_to_string(&ctx.outputs()["map"].files[QML_FILE]).unwrap();
        assert!(qml.contains("type=\"paletted\""));
    }

    #[test]
    fn a_tile_of_the_next_utm_zone_is_reprojected_into_the_crs_most_tiles_use() {
        let dir = tempfile::tempdir().unwrap();
        let legend = Legend::default();
        // Two tiles near 108.1 E in zone 48 (class 3 and 5), one about 10 km east of them in
        // zone 49 (class 1, water), at about 18 N.
        let a = tile_map(
            dir.path(),
            "48QA",
            &grid(32648, 830_000.0, 2_000_000.0, 100),
            &legend,
            |_, _| 3,
        );
        let b = tile_map(
            dir.path(),
            "48QB",
            &grid(32648, 831_000.0, 2_000_000.0, 100),
            &legend,
            |_, _| 5,
        );
        let z49 = grid(32649, 216_000.0, 2_000_000.0, 100);
        let c = tile_map(dir.path(), "49QA", &z49, &legend, |_, _| 1);
        let ctx = run(json!({"blocksize": 128}), vec![c, b, a], dir.path()).unwrap();
        let (g, v) = classes(&ctx);
        assert!(crs_equivalent(
            &g.crs_wkt,
            &crs_to_wkt("EPSG:32648").unwrap()
        ));
        assert_eq!(ctx.metrics()["reprojected_tiles"], json!(1));
        // The centre of the zone-49 tile, in zone 48, is water in the mosaic.
        let mut p = vec![PointFeature {
            id: 1,
            x: 216_500.0,
            y: 1_999_500.0,
            attrs: BTreeMap::new(),
        }];
        reproject_points(&mut p, "EPSG:32649", "EPSG:32648").unwrap();
        let col = ((p[0].x - g.geo_transform[0]) / 10.0) as usize;
        let row = ((g.geo_transform[3] - p[0].y) / 10.0) as usize;
        assert_eq!(v[row * g.width + col], 1);
        // Each tile's area survives: the reprojected tile keeps its pixel count within the
        // scale difference of the two zones (< 1 %) and the outline pixels.
        let meta = out_meta(&ctx);
        assert_eq!(meta.class_pixels[&3], 100 * 100);
        assert_eq!(meta.class_pixels[&5], 100 * 100);
        let water = meta.class_pixels[&1] as f64;
        assert!((water / 10_000.0 - 1.0).abs() < 0.03, "{water}");
        assert_eq!(
            meta.class_pixels.values().sum::<u64>() + meta.nodata_pixels,
            g.pixel_count() as u64
        );
    }

    /// The class of tile `t`'s grid at a point of CRS `crs` (0 off the tile), from its file.
    fn class_at(t: &ArtifactIn, crs: &str, x: f64, y: f64) -> u8 {
        let meta: MapMeta = serde_json::from_value(t.meta.clone()).unwrap();
        let mut p = vec![PointFeature {
            id: 0,
            x,
            y,
            attrs: BTreeMap::new(),
        }];
        reproject_points(&mut p, crs, &meta.grid.crs_wkt).unwrap();
        let g = meta.grid.geo_transform;
        let (c, r) = ((p[0].x - g[0]) / g[1], (p[0].y - g[3]) / g[5]);
        if c < 0.0 || r < 0.0 || c >= meta.grid.width as f64 || r >= meta.grid.height as f64 {
            return 0;
        }
        let reader = RasterReader::open(&t.files[MAP_FILE]).unwrap();
        reader
            .read_window_u8(1, &Window::new(c as usize, r as usize, 1, 1))
            .unwrap()[0]
    }

    #[test]
    fn areas_count_each_pixel_on_its_own_tile_grid_once() {
        let dir = tempfile::tempdir().unwrap();
        let legend = Legend::default();
        // Zone 48 at about 108.1 E (class 3, a 20 px hole of nodata on its east side), then two
        // zone-49 tiles over its east half and beyond: 49QA (classes 1, 5, 6 in stripes) and
        // 49QB, 40 px east of it (class 8). Both zone-49 tiles are reprojected.
        let a = tile_map(
            dir.path(),
            "48QA",
            &grid(32648, 830_000.0, 2_000_000.0, 100),
            &legend,
            |c, r| if c >= 80 && r < 20 { 0 } else { 3 },
        );
        let mut p = vec![PointFeature {
            id: 0,
            x: 830_500.0,
            y: 2_000_000.0,
            attrs: BTreeMap::new(),
        }];
        reproject_points(&mut p, "EPSG:32648", "EPSG:32649").unwrap();
        let (x0, y0) = (
            (p[0].x / 10.0).round() * 10.0,
            (p[0].y / 10.0).round() * 10.0,
        );
        let c = tile_map(
            dir.path(),
            "49QA",
            &grid(32649, x0, y0 + 200.0, 100),
            &legend,
            |c, r| [1, 5, 6][(c + r) / 7 % 3],
        );
        let d = tile_map(
            dir.path(),
            "49QB",
            &grid(32649, x0 + 400.0, y0 + 200.0, 100),
            &legend,
            |_, _| 8,
        );
        let tiles = [&a, &c, &d];
        // By hand: every pixel of every tile, counted where no tile before it has a class.
        let mut expect: BTreeMap<u8, f64> = BTreeMap::new();
        for (i, t) in tiles.iter().enumerate() {
            let meta: MapMeta = serde_json::from_value(t.meta.clone()).unwrap();
            let g = &meta.grid;
            let v = RasterReader::open(&t.files[MAP_FILE])
                .unwrap()
                .read_window_u8(1, &g.full_window())
                .unwrap();
            for (k, class) in v.iter().enumerate().filter(|(_, c)| **c != 0) {
                let (x, y) = g.pixel_to_geo((k % g.width) as f64 + 0.5, (k / g.width) as f64 + 0.5);
                if tiles[..i]
                    .iter()
                    .all(|e| class_at(e, &g.crs_wkt, x, y) == 0)
                {
                    *expect.entry(*class).or_insert(0.0) += 1e-4;
                }
            }
        }
        let ctx = run(
            json!({"blocksize": 128, "crs": "EPSG:32648"}),
            vec![d.clone(), c.clone(), a.clone()],
            dir.path(),
        )
        .unwrap();
        assert_eq!(ctx.metrics()["reprojected_tiles"], json!(2));
        let meta = out_meta(&ctx);
        let km2 = meta.class_km2.clone().expect("areas");
        // The reprojection approximates positions to 1/8 px (as gdalwarp): a pixel on an edge
        // may fall either way (here none did; one pixel of slack).
        for (code, want) in &expect {
            let got = km2[code];
            assert!(
                (got - want).abs() <= 1.0001e-4,
                "class {code}: {got} vs {want}"
            );
        }
        assert!((km2[&3] - (100 * 100 - 20 * 20) as f64 * 1e-4).abs() < 1e-9);
        let total: f64 = km2.values().sum();
        let want: f64 = expect.values().sum();
        assert!((total - want).abs() <= 1.0001e-4, "{total} vs {want}");
        // The mosaic's own pixels (zone 48) differ: the zones' scales differ at 108 E.
        let px: u64 = meta.class_pixels.values().sum();
        assert_ne!(px as f64 * 1e-4, total);
        // tiles.csv gives each tile's share.
        let csv = std::fs::read_to_string(&ctx.outputs()["map"].files[TILES_FILE]).unwrap();
        let shares: f64 = csv
            .lines()
            .skip(1)
            .map(|l| l.rsplit(',').next().unwrap().parse::<f64>().unwrap())
            .sum();
        assert!((shares - total).abs() < 1e-5, "{csv}");

        // A `bbox` that cuts the zone-49 tiles: their pixels outside it do not count.
        let g = classes(&ctx).0;
        let b = g.bbox();
        let half = [b.min_x, b.min_y, (b.min_x + b.max_x) / 2.0, b.max_y];
        let cut = run(
            json!({"blocksize": 128, "crs": "EPSG:32648", "bbox": half}),
            vec![a.clone(), c.clone(), d.clone()],
            dir.path(),
        )
        .unwrap();
        let cut_km2: f64 = out_meta(&cut).class_km2.unwrap().values().sum();
        let cut_px: u64 = out_meta(&cut).class_pixels.values().sum();
        assert!(cut_km2 < total);
        assert!(
            (cut_km2 / (cut_px as f64 * 1e-4) - 1.0).abs() < 0.01,
            "{cut_km2} km2 of {cut_px} px"
        );
    }

    #[test]
    fn a_given_crs_without_res_when_no_tile_is_in_it_is_refused_with_help() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_aligned(dir.path());
        let e = run(
            json!({"crs": "EPSG:3857"}),
            vec![a.clone(), b.clone()],
            dir.path(),
        )
        .err()
        .unwrap();
        assert!(e.message.contains("pixel size is unknown"), "{}", e.message);
        assert!(e.help.as_deref().unwrap_or("").contains("`res`"));
        let ctx = run(
            json!({"crs": "EPSG:3857", "res": 20, "blocksize": 128}),
            vec![a, b],
            dir.path(),
        )
        .unwrap();
        let (g, _) = classes(&ctx);
        assert_eq!(g.geo_transform[1], 20.0);
        assert_eq!(g.geo_transform[0] % 20.0, 0.0, "snapped to the resolution");
    }

    #[test]
    fn maps_of_one_tile_twice_or_of_different_legends_or_years_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_aligned(dir.path());
        let e = run(json!({}), vec![a.clone(), a.clone()], dir.path())
            .err()
            .unwrap();
        assert!(
            e.message.contains("two maps of tile `48QA`"),
            "{}",
            e.message
        );
        let mut other_year = b.clone();
        other_year.meta["year"] = json!(2021);
        let e = run(json!({}), vec![a.clone(), other_year], dir.path())
            .err()
            .unwrap();
        assert!(e.message.contains("different years"), "{}", e.message);
        let mut other_legend = b;
        other_legend.meta["legend"] = json!([{ "code": 1, "name": "Water", "colour": "#0000ff" }]);
        let e = run(json!({}), vec![a, other_legend], dir.path())
            .err()
            .unwrap();
        assert!(e.message.contains("different legends"), "{}", e.message);
        let e = run(json!({"blocksize": 100}), vec![], dir.path())
            .err()
            .unwrap();
        assert!(e.message.contains("blocksize"), "{}", e.message);
    }
}
