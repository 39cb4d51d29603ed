//! `acquire`: the dated scenes of one collection for one partition (a year, optionally an MGRS
//! tile), brought onto one target grid and stored with physical value conventions, as a `Scenes`
//! artifact.
//!
//! Why a node of its own: every source (a local archive, a STAC API, the simulated catalog)
//! differs only in how scenes are listed and where their files are ([`crate::source`]); what
//! comes after — GDAL reads, warping 20/25/30 m onto 10 m, Sentinel-2 `BOA_ADD_OFFSET`, SAR dB —
//! is done here once, so downstream nodes never see a DN, a baseline or a native grid.
//!
//! ## Ports
//! - in `catalog` (`Catalog`, optional): a STAC catalog produced by another step (e.g.
//!   `simulate`); its files are keyed by their path in the catalog folder.
//! - out `scenes` (`Scenes`, see [`crate::artifacts::ScenesMeta`]): one multi-band GeoTIFF per
//!   scene on the target grid, sorted by date then id.
//!
//! ## Params (defaults in brackets)
//! - `source` [`stac`]: `stac` or `local` (a manifest, see [`crate::source::local`]).
//! - `catalog` [none]: path or URL of the catalog / manifest; relative paths resolve against the
//!   spec's folder. For `stac` it may be a `catalog.json`, a collection, an item collection or
//!   a STAC API landing page (searched when it has a `search` link). May be omitted when the
//!   `catalog` input is connected; then it names the root document inside the artifact
//!   [`catalog.json`].
//! - `collection` [`sentinel-2-l2a`]: `sentinel-2-l2a`, `sentinel-1-grd`, `sentinel-1-rtc`,
//!   `alos-palsar2-scansar` or `dsm`; decides bands, resampling and value conversion.
//! - `collection_id` [= `collection`]: the collection id in the catalog (or `sensor` in a
//!   manifest), when it differs (e.g. `cop-dem-glo-30` or `alos-dem` for `dsm`).
//! - `bands` [per collection]: S2 `B02 B03 B04 B05 B06 B07 B08 B8A B11 B12 SCL`; S1 (both) `VV VH`;
//!   PALSAR-2 `HH HV`; DSM `elevation`.
//! - `grid` [for a step of a `tile` partition: the grid the `catalog` input declares for that
//!   tile (`simulate`'s countries), else, for a Sentinel-2 MGRS tile id (`48PXS`), that tile's
//!   10 m grid, 10980 x 10980 px in its UTM zone ([`crate::mgrs`]); else the grid declared by
//!   the `catalog` input's metadata (`simulate` declares its 10 m grid); else the grid of the
//!   first scene's first 10 m band, or its first band when none is 10 m]:
//!   `{ crs: "EPSG:32648", bbox: [minx, miny, maxx, maxy], res: 10 }`, bbox in `crs` units,
//!   origin at (minx, maxy). With `tile_px: N` the grid is a tiling of the user's own, cut into
//!   N x N px tiles named `r<row>c<col>` ([`crate::tiling::GridTiling`]; `lulc tiles --aoi FILE
//!   --grid ...` lists those covering an area): each step of a `tile` partition takes its
//!   tile. Its lon/lat footprint is the spatial search filter.
//! - `months` [all]: months (1-12) of the year to keep.
//! - `max_cloud_cover` [none]: keep scenes with `eo:cloud_cover` <= this (percent); scenes
//!   without a cloud cover are kept.
//!
//! The year comes from the partition dim `year` (no dim: every date); a `tile` dim keeps only
//! scenes of that MGRS tile (scenes that do not say are kept) and, without `grid`, puts every
//! sensor of the tile on the tile's 10 m grid. `dsm` ignores dates.
//!
//! ## Values written
//! The `Scenes` metadata's `values` says in words what the stored values are.
//! - `sentinel-2-l2a`: UInt16 reflectance x 10000 = DN x gain + shift, from the asset's
//!   `raster:bands` `scale`/`offset`, `s2:boa_add_offset`, Earth Search's
//!   `earthsearch:boa_offset_applied` or the processing baseline (-1000 from 04.00, 0 before), in
//!   the order [`SceneItem::reflectance_transform`] gives (docs/catalogs.md), clamped to
//!   1..65535 because 0 is nodata; DN 0 is nodata. 20 m and 60 m bands are warped bilinear,
//!   `SCL` nearest and written last (`qa_band`). `scale` 1e-4.
//! - `sentinel-1-grd`: the assets hold sigma0 in dB (as Earth Engine serves it); Int16 dB x 100,
//!   nodata -32768, bilinear. `scale` 0.01.
//! - `sentinel-1-rtc`: the assets hold terrain-corrected gamma0 in linear power (Planetary
//!   Computer's `sentinel-1-rtc`); warped bilinear in linear power, then stored as Int16
//!   10 log10(gamma0) x 100, nodata -32768 (0 and below too). `scale` 0.01.
//! - `alos-palsar2-scansar`: DN -> gamma0 dB = 10 log10(DN^2) - 83.0, Int16 dB x 100, nodata
//!   -32768 (DN 0 is nodata), DN warped bilinear. `scale` 0.01.
//! - `dsm`: Float32 metres, nodata NaN, bilinear; all listed tiles are mosaicked into one scene
//!   `dsm` (the first tile in date/id order wins where they overlap).
//!
//! A pixel missing in any band is nodata in every band; `valid_fraction` is the share of
//! pixels with data in all bands. A scene with no valid pixel on the grid is dropped with a
//! warning; if every scene is empty the step fails. Memory is bounded: scenes are read,
//! warped and written in 256 x 256 blocks, as many scenes side by side as there are threads
//! (each its own file; listed, checked and named in order first, so the output does not depend
//! on the thread count). A grid of more than 1e9 pixels, or scenes of more than 64 GiB before
//! compression, are said before the first pixel is read: the grid's size, where it came from
//! (the first scene's own grid when the step has no `grid`: a 200,000 px DSM would otherwise be
//! warped for days without a word), the bytes, the free space of the store's disk; progress is
//! counted by block.
//!
//! ```yaml
//! nodes:
//!   s2:
//!     kind: acquire
//!     for_each: { year: { param: years, pad: 1 } }
//!     params:
//!       source: stac
//!       catalog: https://example.org/stac/v1
//!       collection: sentinel-2-l2a
//!       grid: { crs: "EPSG:32648", bbox: [600000, 1190000, 610000, 1200000], res: 10 }
//!       max_cloud_cover: 60
//! ```

use std::collections::BTreeSet;

use lulc_engine::node::Confinement;
use lulc_engine::{Inputs, Node, NodeError, Port, Progress, RunCtx, human_bytes};
use serde::{Deserialize, Serialize};

use super::confine_dataset;
use crate::artifacts::{SCENES, SceneMeta, ScenesMeta};
use crate::raster::{
    DType, Grid, RasterError, RasterMeta, RasterReader, RasterWriter, Resampling, TILE, WarpedBand,
    Window, WriteOptions, crs_label, warp_to_grid,
};
use crate::source::{
    AssetRef, LocalSource, Location, SceneItem, SceneQuery, Source, SourceError, StacSource,
};
use crate::vector::grid_footprint;

pub struct Acquire;

/// Which kind of source `catalog` is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    #[default]
    Stac,
    Local,
}

/// The sensors `acquire` knows how to convert.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Collection {
    #[default]
    #[serde(rename = "sentinel-2-l2a")]
    Sentinel2L2a,
    #[serde(rename = "sentinel-1-grd")]
    Sentinel1Grd,
    #[serde(rename = "sentinel-1-rtc")]
    Sentinel1Rtc,
    #[serde(rename = "alos-palsar2-scansar")]
    AlosPalsar2Scansar,
    #[serde(rename = "dsm")]
    Dsm,
}

/// How a band's values become stored values (NaN = nodata).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Convert {
    /// Sentinel-2 DN x gain + shift (reflectance x 10000, see
    /// [`SceneItem::reflectance_transform`]), at least 1 (0 is nodata); DN 0 is nodata.
    Reflectance { gain: f64, shift: f64 },
    /// A class layer (SCL): nearest, 0 is nodata.
    Class,
    /// Sentinel-1 dB -> dB x 100.
    Db100,
    /// Sentinel-1 linear power (gamma0) -> 10 log10 x 100; 0 and below are nodata.
    LinearDb100,
    /// PALSAR-2 DN -> (10 log10(DN^2) - 83) x 100; DN 0 is nodata.
    PalsarDb100,
    /// Metres, as is.
    Elevation,
}

impl Collection {
    pub fn id(self) -> &'static str {
        match self {
            Collection::Sentinel2L2a => "sentinel-2-l2a",
            Collection::Sentinel1Grd => "sentinel-1-grd",
            Collection::Sentinel1Rtc => "sentinel-1-rtc",
            Collection::AlosPalsar2Scansar => "alos-palsar2-scansar",
            Collection::Dsm => "dsm",
        }
    }

    pub fn default_bands(self) -> Vec<String> {
        let b: &[&str] = match self {
            Collection::Sentinel2L2a => &[
                "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL",
            ],
            Collection::Sentinel1Grd | Collection::Sentinel1Rtc => &["VV", "VH"],
            Collection::AlosPalsar2Scansar => &["HH", "HV"],
            Collection::Dsm => &["elevation"],
        };
        b.iter().map(|s| s.to_string()).collect()
    }

    fn known_bands(self) -> &'static [&'static str] {
        match self {
            Collection::Sentinel2L2a => &[
                "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
                "SCL", "AOT", "WVP",
            ],
            Collection::Sentinel1Grd | Collection::Sentinel1Rtc => &["VV", "VH", "HH", "HV"],
            Collection::AlosPalsar2Scansar => &["HH", "HV"],
            Collection::Dsm => &["elevation"],
        }
    }

    /// Bands at 10 m (candidates for the default grid).
    fn is_10m(self, band: &str) -> bool {
        match self {
            Collection::Sentinel2L2a => matches!(band, "B02" | "B03" | "B04" | "B08"),
            Collection::Sentinel1Grd | Collection::Sentinel1Rtc => true,
            _ => false,
        }
    }

    fn dtype(self) -> DType {
        match self {
            Collection::Sentinel2L2a => DType::U16,
            Collection::Sentinel1Grd
            | Collection::Sentinel1Rtc
            | Collection::AlosPalsar2Scansar => DType::I16,
            Collection::Dsm => DType::F32,
        }
    }

    fn nodata(self) -> f64 {
        match self {
            Collection::Sentinel2L2a => 0.0,
            Collection::Sentinel1Grd
            | Collection::Sentinel1Rtc
            | Collection::AlosPalsar2Scansar => -32768.0,
            Collection::Dsm => f64::NAN,
        }
    }

    fn scale(self) -> f64 {
        match self {
            Collection::Sentinel2L2a => 1e-4,
            Collection::Sentinel1Grd
            | Collection::Sentinel1Rtc
            | Collection::AlosPalsar2Scansar => 0.01,
            Collection::Dsm => 1.0,
        }
    }

    fn is_qa(self, band: &str) -> bool {
        self == Collection::Sentinel2L2a && band == "SCL"
    }

    fn resampling(self, band: &str) -> Resampling {
        if self.is_qa(band) {
            Resampling::Nearest
        } else {
            Resampling::Bilinear
        }
    }

    fn convert(self, band: &str, item: &SceneItem, asset: &AssetRef) -> Convert {
        match self {
            Collection::Sentinel2L2a if self.is_qa(band) => Convert::Class,
            Collection::Sentinel2L2a => {
                let (gain, shift) = item.reflectance_transform(band, asset);
                Convert::Reflectance { gain, shift }
            }
            Collection::Sentinel1Grd => Convert::Db100,
            Collection::Sentinel1Rtc => Convert::LinearDb100,
            Collection::AlosPalsar2Scansar => Convert::PalsarDb100,
            Collection::Dsm => Convert::Elevation,
        }
    }

    /// What the stored values are and how they come from the source's, for the artifact's
    /// metadata (`ScenesMeta::values`).
    fn values(self) -> &'static str {
        match self {
            Collection::Sentinel2L2a => {
                "surface reflectance x 10000 (UInt16, 0 = nodata) = DN x scale x 10000 + offset \
                 x 10000 as the catalog states them (BOA_ADD_OFFSET from baseline 04.00); SCL as is"
            }
            Collection::Sentinel1Grd => "sigma0 dB x 100 (Int16, -32768 = nodata), from dB",
            Collection::Sentinel1Rtc => {
                "terrain-corrected gamma0 dB x 100 (Int16, -32768 = nodata) = 10 log10(linear \
                 gamma0) x 100, converted from the source's linear power after warping"
            }
            Collection::AlosPalsar2Scansar => {
                "gamma0 dB x 100 (Int16, -32768 = nodata) = (10 log10(DN^2) - 83.0) x 100"
            }
            Collection::Dsm => "elevation in metres (Float32, NaN = nodata), as is",
        }
    }

    /// Static products: dates are not filtered and tiles are mosaicked.
    fn is_static(self) -> bool {
        self == Collection::Dsm
    }
}

/// The target grid as written in a spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridParam {
    /// Any CRS definition GDAL understands (`EPSG:32648`, WKT, PROJ).
    pub crs: String,
    /// `[minx, miny, maxx, maxy]` in `crs` units.
    pub bbox: [f64; 4],
    /// Pixel size in `crs` units.
    pub res: f64,
    /// A regular tiling: `bbox` cut into squares of `tile_px` pixels named `r<row>c<col>`
    /// ([`crate::tiling::GridTiling`]); each step of a `tile` partition maps its tile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile_px: Option<usize>,
}

impl GridParam {
    /// The step's grid: the whole grid, or with `tile_px` the tile `tile` of the tiling.
    fn step_grid(&self, tile: Option<&str>) -> Result<Grid, String> {
        let Some(tile_px) = self.tile_px else {
            return self.to_grid().map_err(|e| e.to_string());
        };
        let tiling = crate::tiling::GridTiling {
            crs: self.crs.clone(),
            bbox: self.bbox,
            res: self.res,
            tile_px,
        };
        let tile = tile.ok_or_else(|| {
            "`tile_px` cuts the grid into tiles, but the step has no `tile` partition: add \
             `for_each: { tile: ... }` with the names `lulc tiles --grid` prints"
                .to_string()
        })?;
        tiling.tile_grid(tile).map_err(|e| e.to_string())
    }

    fn to_grid(&self) -> Result<Grid, RasterError> {
        Grid::from_bbox(&self.crs, self.bbox.into(), self.res)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcquireParams {
    pub source: SourceKind,
    pub catalog: Option<String>,
    pub collection: Collection,
    pub collection_id: Option<String>,
    pub bands: Option<Vec<String>>,
    pub grid: Option<GridParam>,
    pub months: Option<Vec<u32>>,
    pub max_cloud_cover: Option<f64>,
}

impl AcquireParams {
    /// Bands in output order: as requested, with Sentinel-2 `SCL` moved last.
    fn output_bands(&self) -> Vec<String> {
        let mut bands = self
            .bands
            .clone()
            .unwrap_or_else(|| self.collection.default_bands());
        if let Some(i) = bands.iter().position(|b| self.collection.is_qa(b)) {
            let qa = bands.remove(i);
            bands.push(qa);
        }
        bands
    }
}

impl Node for Acquire {
    const KIND: &'static str = "acquire";
    // 3: Sentinel-2 scale and offset from `raster:bands`; the metadata says what the values are.
    const VERSION: u32 = 3;
    type Params = AcquireParams;

    fn inputs() -> Vec<Port> {
        vec![Port::one("catalog", crate::artifacts::CATALOG).optional()]
    }

    fn outputs() -> Vec<Port> {
        vec![Port::one("scenes", SCENES)]
    }

    fn summary() -> &'static str {
        "dated scenes of one collection (local files or STAC) on a target grid"
    }

    /// A catalog file named by path (not a URL, not a connected `catalog`): the listing's
    /// content is in the key, not the content of the scenes it lists (nor of a folder).
    fn files(p: &AcquireParams, connected: &[&str]) -> Vec<(&'static str, String)> {
        match &p.catalog {
            Some(c) if !connected.contains(&"catalog") && !c.contains("://") => {
                vec![("catalog", c.clone())]
            }
            _ => Vec::new(),
        }
    }

    fn check(p: &AcquireParams) -> Result<(), Vec<(String, String)>> {
        let mut errs = Vec::new();
        if p.source == SourceKind::Local && p.catalog.is_none() {
            errs.push((
                "catalog".into(),
                "`source: local` needs `catalog`: a manifest, a folder with one, or a glob".into(),
            ));
        }
        if let Some(bands) = &p.bands {
            if bands.is_empty() {
                errs.push(("bands".into(), "`bands` is empty".into()));
            }
            let known = p.collection.known_bands();
            let mut seen = BTreeSet::new();
            for b in bands {
                if !known.contains(&b.as_str()) {
                    errs.push((
                        "bands".into(),
                        format!(
                            "unknown band `{b}` for `{}` (known: {})",
                            p.collection.id(),
                            known.join(", ")
                        ),
                    ));
                } else if !seen.insert(b) {
                    errs.push(("bands".into(), format!("band `{b}` is listed twice")));
                }
            }
        }
        if let Some(ms) = &p.months {
            if ms.is_empty() {
                errs.push(("months".into(), "`months` is empty".into()));
            }
            for m in ms {
                if !(1..=12).contains(m) {
                    errs.push(("months".into(), format!("month {m} is not in 1..12")));
                }
            }
        }
        if let Some(cc) = p.max_cloud_cover
            && !(0.0..=100.0).contains(&cc)
        {
            errs.push((
                "max_cloud_cover".into(),
                format!("max_cloud_cover {cc} is not a percentage (0..100)"),
            ));
        }
        if let Some(g) = &p.grid {
            if let Err(e) = g.to_grid() {
                errs.push(("grid".into(), e.to_string()));
            }
            if g.tile_px == Some(0) {
                errs.push(("grid".into(), "`tile_px` must be positive".into()));
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    fn run(&self, ctx: &mut RunCtx, p: &AcquireParams, inputs: &Inputs) -> Result<(), NodeError> {
        let collection = p.collection;
        let bands = p.output_bands();
        let tile = ctx.dims().get("tile").map(|t| t.to_string());
        let param_grid = p
            .grid
            .as_ref()
            .map(|g| {
                g.step_grid(tile.as_deref())
                    .map_err(|e| NodeError::new(format!("`grid`: {e}")))
            })
            .transpose()?;
        // The target grid: `grid`, else the grid a `catalog` input declares for the step's
        // `tile`, else the Sentinel-2 tile of a `tile` partition, else what a `catalog` input
        // declares, else (below) the first scene's.
        let (target, grid_from) = if let Some(g) = param_grid {
            (Some(g), GridFrom::Param)
        } else if let Some(g) = catalog_tile_grid(inputs, tile.as_deref())? {
            (Some(g), GridFrom::CatalogTile)
        } else if let Some(g) = tile.as_deref().and_then(s2_tile_grid).transpose()? {
            (Some(g), GridFrom::Tile)
        } else if let Some(g) = catalog_grid(inputs) {
            (Some(g), GridFrom::Catalog)
        } else {
            (None, GridFrom::FirstScene)
        };
        let query = SceneQuery {
            collection: p
                .collection_id
                .clone()
                .unwrap_or_else(|| collection.id().to_string()),
            year: if collection.is_static() {
                None
            } else {
                ctx.dim_int("year").map(|y| y as i32)
            },
            months: if collection.is_static() {
                None
            } else {
                p.months.clone()
            },
            bbox: target.as_ref().map(lonlat_bbox).transpose()?.flatten(),
            max_cloud_cover: p.max_cloud_cover,
            // Items name Sentinel-2 tiles; a tile of another tiling selects by its bbox alone.
            tile: tile.filter(|t| crate::mgrs::s2_tile(t).is_ok()),
        };
        let source = open_source(ctx, p, inputs)?;
        let conf = ctx.confinement();
        let items = source.list(&query).map_err(source_err)?;
        ctx.metric("listed", items.len() as u64);
        if items.is_empty() {
            return Err(source_err(SourceError::Empty {
                source_name: source.describe(),
                query: query.describe(),
            }));
        }
        let grid = match target {
            Some(g) => g,
            None => default_grid(source.as_ref(), &conf, collection, &bands, &items[0])?,
        };
        let scenes = if collection.is_static() {
            1
        } else {
            items.len()
        };
        forecast(ctx, collection, bands.len(), scenes, &grid, grid_from);
        let progress = ctx.progress(
            scenes as u64 * grid.blocks(TILE).count() as u64,
            "blocks of 256 x 256 px",
        );

        // One scene per item; a static product is one mosaic of all items.
        let groups: Vec<Vec<&SceneItem>> = if collection.is_static() {
            vec![items.iter().collect()]
        } else {
            items.iter().map(|i| vec![i]).collect()
        };
        let mut written: Vec<SceneMeta> = Vec::new();
        let mut empty: Vec<String> = Vec::new();
        let mut names = BTreeSet::new();
        // Scenes are opened, checked and named here in order, then written as many at a time
        // as there are threads (each scene is its own file; warping is one thread's work).
        let at_once = rayon::current_num_threads().max(1);
        let mut pending: Vec<SceneJob> = Vec::new();
        for group in groups {
            let first = group[0];
            let (id, date, cloud_cover) = if collection.is_static() {
                (
                    "dsm".to_string(),
                    group
                        .iter()
                        .map(|i| i.date.clone())
                        .min()
                        .unwrap_or_default(),
                    None,
                )
            } else {
                (
                    first.id.clone(),
                    first.date.clone(),
                    first.props.cloud_cover,
                )
            };
            let files = group
                .iter()
                .map(|item| resolve_layer(source.as_ref(), &conf, collection, &bands, item))
                .collect::<Result<Vec<_>, _>>()?;
            let layers = files
                .iter()
                .map(|f| warp_layer(f, &grid))
                .collect::<Result<Vec<_>, _>>()?;
            let label = format!("`{}` scene `{id}` ({date})", collection.id());
            let with_data = has_data(&layers, &grid).map_err(|e| raster_err(&label, None, e))?;
            drop(layers);
            if !with_data {
                ctx.warn(format!(
                    "{label} from `{}` has no valid pixel on the target grid; dropped",
                    first.origin
                ));
                empty.push(format!("`{id}` ({})", first.origin));
                continue;
            }
            let file = unique_name(&mut names, &date, &id);
            let path = ctx.output_file("scenes", &file)?;
            pending.push(SceneJob {
                files,
                path,
                label,
                scene: SceneMeta {
                    id,
                    date,
                    file,
                    bands: bands.clone(),
                    qa_band: bands.iter().find(|b| collection.is_qa(b)).cloned(),
                    scale: collection.scale(),
                    offset: 0.0,
                    nodata: collection.nodata(),
                    valid_fraction: 0.0,
                    cloud_cover,
                },
            });
            if pending.len() == at_once {
                written.extend(write_scenes(
                    std::mem::take(&mut pending),
                    collection,
                    &grid,
                    &progress,
                )?);
            }
        }
        written.extend(write_scenes(pending, collection, &grid, &progress)?);
        if written.is_empty() {
            return Err(NodeError::new(format!(
                "every `{}` scene is entirely nodata on the target grid ({} x {} px, {}): {}",
                collection.id(),
                grid.width,
                grid.height,
                crs_label(&grid.crs_wkt),
                empty.join(", ")
            ))
            .with_help("the scenes do not overlap `grid`, or all their pixels are nodata"));
        }
        written.sort_by(|a, b| (&a.date, &a.id).cmp(&(&b.date, &b.id)));
        ctx.metric("scenes", written.len() as u64);
        ctx.metric("dropped_empty", empty.len() as u64);
        let meta = ScenesMeta {
            sensor: collection.id().to_string(),
            grid,
            scenes: written,
            values: Some(collection.values().to_string()),
        };
        let value = serde_json::to_value(&meta).map_err(|e| NodeError::new(e.to_string()))?;
        ctx.set_meta("scenes", value)
    }
}

/// A grid of more pixels than this (a 10980 x 10980 px Sentinel-2 tile has 1.2e8) is said before
/// the step starts.
const BIG_GRID: u64 = 1_000_000_000;

/// Scenes of more bytes than this, before compression, are said before the step starts.
const BIG_OUTPUT: u64 = 64 << 30;

/// Where the target grid came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GridFrom {
    Param,
    CatalogTile,
    Tile,
    Catalog,
    FirstScene,
}

/// Resolution of the grid a Sentinel-2 `tile` partition gives a step, metres.
const TILE_RES_M: f64 = 10.0;

/// The 10 m grid of Sentinel-2 tile `tile` (10980 x 10980 px in its UTM zone, [`crate::mgrs`]);
/// `None` when the value is no MGRS tile id (a tiling of the user's own, whose steps need a
/// `grid`).
fn s2_tile_grid(tile: &str) -> Option<Result<Grid, NodeError>> {
    let t = crate::mgrs::s2_tile(tile).ok()?;
    Some(
        Grid::from_bbox(&t.crs(), t.bbox().into(), TILE_RES_M)
            .map_err(|e| NodeError::new(format!("the grid of tile `{}`: {e}", t.id))),
    )
}

/// Before reading a pixel: the grid and what writing the scenes on it will take, said when
/// large (a 200,000 px DSM taken as the grid for want of a `grid` would otherwise run silently
/// for days), with the free space of the store's disk.
fn forecast(
    ctx: &RunCtx,
    collection: Collection,
    bands: usize,
    scenes: usize,
    grid: &Grid,
    from: GridFrom,
) {
    let pixels = grid.pixel_count() as u64;
    let bytes = pixels
        .saturating_mul(bands as u64 * collection.dtype().size())
        .saturating_mul(scenes as u64);
    if pixels <= BIG_GRID && bytes <= BIG_OUTPUT {
        return;
    }
    let implied = from != GridFrom::Param;
    let from = match from {
        GridFrom::Param => "`grid`",
        GridFrom::CatalogTile => {
            "the grid the `catalog` input declares for the step's `tile`, as the step has no \
             `grid` param"
        }
        GridFrom::Tile => {
            "the Sentinel-2 tile of the step's `tile` at 10 m, as the step has no `grid` param"
        }
        GridFrom::Catalog => {
            "the grid the `catalog` input declares, as the step has no `grid` param"
        }
        GridFrom::FirstScene => "the first scene's own grid, as the step has no `grid` param",
    };
    let free = ctx
        .free_space()
        .map(|f| format!("; the store's disk has {} free", human_bytes(f)))
        .unwrap_or_default();
    let mut text = format!(
        "{scenes} scene(s) of {bands} band(s) on a grid of {} x {} px ({:.1e} pixels, {from}): up \
         to {} to warp and write before compression{free}",
        grid.width,
        grid.height,
        pixels as f64,
        human_bytes(bytes)
    );
    if implied {
        text.push_str(
            "; to map a smaller area, give `grid` (crs, bbox, res), or split the area into \
             tiles",
        );
    }
    ctx.note(&text);
}

/// A scene to write: its layers' files, output path, label for messages, and its metadata
/// (`valid_fraction` filled in when written).
struct SceneJob {
    files: Vec<Vec<BandFile>>,
    path: std::path::PathBuf,
    label: String,
    scene: SceneMeta,
}

/// Write `jobs` side by side (rayon), block by block each; their metadata in `jobs`' order, or
/// the first job's error in that order.
fn write_scenes(
    jobs: Vec<SceneJob>,
    collection: Collection,
    grid: &Grid,
    progress: &Progress,
) -> Result<Vec<SceneMeta>, NodeError> {
    use rayon::prelude::*;
    jobs.into_par_iter()
        .map(|job| write_scene(job, collection, grid, progress))
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// Write one scene's file on `grid`, with its metadata items.
fn write_scene(
    job: SceneJob,
    collection: Collection,
    grid: &Grid,
    progress: &Progress,
) -> Result<SceneMeta, NodeError> {
    let SceneJob {
        files,
        path,
        label,
        mut scene,
    } = job;
    let layers = files
        .iter()
        .map(|f| warp_layer(f, grid))
        .collect::<Result<Vec<_>, _>>()?;
    let meta = RasterMeta {
        grid: grid.clone(),
        dtype: collection.dtype(),
        nodata: Some(collection.nodata()),
        band_names: scene.bands.clone(),
    };
    let create_err = |e: RasterError| raster_err(&label, None, e);
    let mut w = RasterWriter::create(&path, &meta, &WriteOptions::default()).map_err(create_err)?;
    for (k, v) in [
        ("LULC_SENSOR", collection.id().to_string()),
        ("LULC_SCENE_ID", scene.id.clone()),
        ("LULC_DATE", scene.date.clone()),
        ("LULC_SCALE", collection.scale().to_string()),
    ] {
        w.set_metadata_item(k, &v).map_err(create_err)?;
    }
    let mut valid = 0usize;
    for win in grid.blocks(TILE) {
        let (block, n) = compute_block(&layers, &win).map_err(create_err)?;
        valid += n;
        write_block(&mut w, collection.dtype(), &win, &block).map_err(create_err)?;
        progress.add(1);
    }
    w.finish().map_err(create_err)?;
    scene.valid_fraction = valid as f64 / grid.pixel_count() as f64;
    Ok(scene)
}

/// The source the params and inputs describe.
fn open_source(
    ctx: &RunCtx,
    p: &AcquireParams,
    inputs: &Inputs,
) -> Result<Box<dyn Source>, NodeError> {
    if let Some(art) = inputs.all("catalog").first() {
        if p.source != SourceKind::Stac {
            return Err(NodeError::new(
                "the `catalog` input is a STAC catalog, but `source` is `local`",
            )
            .with_help("use `source: stac` with a connected `catalog` input"));
        }
        let root = p.catalog.as_deref().unwrap_or("catalog.json");
        return Ok(Box::new(
            StacSource::from_catalog_files(art.files.clone(), root).confined_to(ctx.confinement()),
        ));
    }
    let Some(catalog) = p.catalog.as_deref() else {
        return Err(NodeError::new(
            "`acquire` needs `catalog` (a path or URL) or a connected `catalog` input",
        ));
    };
    match p.source {
        SourceKind::Stac => {
            let loc = match Location::parse(catalog) {
                Location::Path(path) => {
                    Location::Path(ctx.input_path("catalog", &path.to_string_lossy())?)
                }
                other => other,
            };
            Ok(Box::new(
                StacSource::new(loc).confined_to(ctx.confinement()),
            ))
        }
        SourceKind::Local => {
            let source =
                LocalSource::open(&ctx.input_path("catalog", catalog)?).map_err(source_err)?;
            // A pattern may match through a symlinked folder: every manifest is checked.
            let conf = ctx.confinement();
            for m in source.manifests() {
                conf.check("param `catalog` matches a manifest", &m.to_string_lossy())?;
            }
            Ok(Box::new(source))
        }
    }
}

/// The grid's footprint in lon/lat (boundary sampled, so a UTM grid's curved edges are
/// covered); `None` for a grid without a CRS.
fn lonlat_bbox(grid: &Grid) -> Result<Option<[f64; 4]>, NodeError> {
    if grid.crs_wkt.trim().is_empty() {
        return Ok(None);
    }
    let b =
        grid_footprint(grid, "EPSG:4326", 8).map_err(|e| NodeError::new(format!("`grid`: {e}")))?;
    Ok(Some([b.min_x, b.min_y, b.max_x, b.max_y]))
}

/// The grid a connected `Catalog` artifact declares for tile `tile` (`meta.tiles`, as
/// `simulate` writes for a country); `None` without a tile or when the catalog declares no
/// tiles; an error naming the catalog's tiles when it declares others.
fn catalog_tile_grid(inputs: &Inputs, tile: Option<&str>) -> Result<Option<Grid>, NodeError> {
    let (Some(tile), Some(catalog)) = (tile, inputs.all("catalog").first()) else {
        return Ok(None);
    };
    let Some(tiles) = catalog
        .meta
        .get("tiles")
        .and_then(serde_json::Value::as_object)
    else {
        return Ok(None);
    };
    if tiles.is_empty() {
        return Ok(None);
    }
    match tiles.get(tile) {
        Some(g) => serde_json::from_value(g.clone()).map(Some).map_err(|e| {
            NodeError::new(format!(
                "the grid `{}` declares for tile `{tile}` is not a grid: {e}",
                catalog.step_id
            ))
        }),
        None => Err(NodeError::new(format!(
            "`{}` declares no tile `{tile}`; its tiles: {}",
            catalog.step_id,
            tiles.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
        .with_help("list only the catalog's tiles in the `tile` partition")),
    }
}

/// The grid a connected `Catalog` artifact declares in its metadata (`meta.grid`, as the
/// `simulate` node writes it), so that every sensor of one catalog lands on the same 10 m grid
/// even when its own assets are 25 m or 30 m.
fn catalog_grid(inputs: &Inputs) -> Option<Grid> {
    let catalog = inputs.all("catalog").first()?;
    serde_json::from_value(catalog.meta.get("grid")?.clone()).ok()
}

/// The grid of `item`'s first 10 m band (or first band).
fn default_grid(
    source: &dyn Source,
    conf: &Confinement,
    collection: Collection,
    bands: &[String],
    item: &SceneItem,
) -> Result<Grid, NodeError> {
    let band = bands
        .iter()
        .find(|b| collection.is_10m(b))
        .unwrap_or(&bands[0]);
    let label = format!("`{}` scene `{}` ({})", collection.id(), item.id, item.date);
    let asset = item.asset_for(band).map_err(source_err)?;
    let path = source
        .resolve(item, &asset)
        .map_err(|e| resolve_err(&label, band, &asset, e))?;
    // A file without georeferencing is refused when it is warped onto this grid.
    let r = open_scene_file(conf, &label, band, &asset, &path)?;
    Ok(r.grid().clone())
}

/// One band of one item on the target grid.
struct BandSource {
    warped: WarpedBand,
    convert: Convert,
}

/// Where every requested band of `item` is: what [`warp_layer`] opens, on any thread.
fn resolve_layer(
    source: &dyn Source,
    conf: &Confinement,
    collection: Collection,
    bands: &[String],
    item: &SceneItem,
) -> Result<Vec<BandFile>, NodeError> {
    let label = format!("`{}` scene `{}` ({})", collection.id(), item.id, item.date);
    bands
        .iter()
        .map(|band| {
            let asset = item.asset_for(band).map_err(source_err)?;
            let path = source
                .resolve(item, &asset)
                .map_err(|e| resolve_err(&label, band, &asset, e))?;
            let at = |e: RasterError| raster_err(&label, Some((band, &asset)), e);
            let reader = open_scene_file(conf, &label, band, &asset, &path)?;
            let index = pick_band(&reader, &asset, band).map_err(at)?;
            Ok(BandFile {
                path,
                index,
                resampling: collection.resampling(band),
                convert: collection.convert(band, item, &asset),
                label: label.clone(),
                band: band.clone(),
                asset,
            })
        })
        .collect()
}

/// Open the file of one band of a scene, after checking that it and every file GDAL reads for
/// it (a VRT's sources) are inside the spec's folder or an `--allow-path` folder: a manifest
/// or a STAC item cannot make a spec read elsewhere.
fn open_scene_file(
    conf: &Confinement,
    label: &str,
    band: &str,
    asset: &AssetRef,
    path: &str,
) -> Result<RasterReader, NodeError> {
    let reader = || RasterReader::open(path).map_err(|e| raster_err(label, Some((band, asset)), e));
    // A file of a `catalog` artifact is a blob of the store, made by a step.
    if matches!(asset.location, Location::Key(_)) {
        return reader();
    }
    let outside = |e: NodeError| scene_err(label, band, asset, e.message, e.help);
    conf.check("the file", path).map_err(outside)?;
    let r = reader()?;
    confine_dataset(conf, path, &r.driver(), &r.file_list()).map_err(outside)?;
    Ok(r)
}

/// One band of a scene, resolved to a file and its band number.
struct BandFile {
    path: String,
    index: usize,
    resampling: Resampling,
    convert: Convert,
    label: String,
    band: String,
    asset: AssetRef,
}

/// The bands of a layer warped onto `grid`, on the calling thread (a [`WarpedBand`] stays on
/// the thread that made it).
fn warp_layer(files: &[BandFile], grid: &Grid) -> Result<Vec<BandSource>, NodeError> {
    files
        .iter()
        .map(|f| {
            let warped = warp_to_grid(&f.path, f.index, grid, f.resampling)
                .map_err(|e| raster_err(&f.label, Some((&f.band, &f.asset)), e))?;
            Ok(BandSource {
                warped,
                convert: f.convert,
            })
        })
        .collect()
}

/// Which band of the file holds `band`: the one the source names, the only one, or the one whose
/// description is the band name.
fn pick_band(reader: &RasterReader, asset: &AssetRef, band: &str) -> Result<usize, RasterError> {
    let count = reader.band_count();
    if let Some(i) = asset.band {
        if i == 0 || i > count {
            return Err(RasterError::BandOutOfRange {
                path: reader.path().to_path_buf(),
                band: i,
                count,
            });
        }
        return Ok(i);
    }
    if count == 1 {
        return Ok(1);
    }
    if let Some(i) = reader
        .meta()
        .band_names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(band))
    {
        return Ok(i + 1);
    }
    reader.band_index(band)
}

/// Whether any pixel has data in every band (stops at the first block that has one).
fn has_data(layers: &[Vec<BandSource>], grid: &Grid) -> Result<bool, RasterError> {
    for win in grid.blocks(TILE) {
        if compute_block(layers, &win)?.1 > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Stored values (NaN = nodata) of every band in `win`, and the number of valid pixels. A pixel
/// is taken from the first layer that has it in every band.
fn compute_block(
    layers: &[Vec<BandSource>],
    win: &Window,
) -> Result<(Vec<Vec<f32>>, usize), RasterError> {
    let nb = layers.first().map_or(0, Vec::len);
    let n = win.len();
    let mut out = vec![vec![f32::NAN; n]; nb];
    let mut filled = vec![false; n];
    for layer in layers {
        if filled.iter().all(|f| *f) {
            break;
        }
        let vals = layer
            .iter()
            .map(|b| {
                let raw = b.warped.read_window_f32(win)?;
                Ok(raw.into_iter().map(|v| convert(b.convert, v)).collect())
            })
            .collect::<Result<Vec<Vec<f32>>, RasterError>>()?;
        for px in 0..n {
            if !filled[px] && vals.iter().all(|b| !b[px].is_nan()) {
                filled[px] = true;
                for (o, v) in out.iter_mut().zip(&vals) {
                    o[px] = v[px];
                }
            }
        }
    }
    Ok((out, filled.iter().filter(|f| **f).count()))
}

/// A warped source value (NaN = nodata) in stored units (NaN = nodata).
fn convert(c: Convert, v: f32) -> f32 {
    if v.is_nan() {
        return f32::NAN;
    }
    let v = f64::from(v);
    let out = match c {
        Convert::Reflectance { gain, shift } => {
            if v == 0.0 {
                return f32::NAN;
            }
            (v * gain + shift).max(1.0)
        }
        Convert::Class => {
            if v == 0.0 {
                return f32::NAN;
            }
            v
        }
        Convert::Db100 => v * 100.0,
        Convert::LinearDb100 => {
            if v <= 0.0 {
                return f32::NAN;
            }
            10.0 * v.log10() * 100.0
        }
        Convert::PalsarDb100 => {
            if v <= 0.0 {
                return f32::NAN;
            }
            (10.0 * (v * v).log10() - 83.0) * 100.0
        }
        Convert::Elevation => v,
    };
    out as f32
}

fn write_block(
    w: &mut RasterWriter,
    dtype: DType,
    win: &Window,
    block: &[Vec<f32>],
) -> Result<(), RasterError> {
    for (i, band) in block.iter().enumerate() {
        match dtype {
            DType::U16 => {
                let v: Vec<u16> = band
                    .iter()
                    .map(|&x| {
                        if x.is_nan() {
                            0
                        } else {
                            x.round().clamp(0.0, 65535.0) as u16
                        }
                    })
                    .collect();
                w.write_window_u16(i + 1, win, &v)?;
            }
            DType::I16 => {
                let v: Vec<i16> = band
                    .iter()
                    .map(|&x| {
                        if x.is_nan() {
                            i16::MIN
                        } else {
                            x.round().clamp(-32767.0, 32767.0) as i16
                        }
                    })
                    .collect();
                w.write_window_i16(i + 1, win, &v)?;
            }
            _ => w.write_window_f32(i + 1, win, band)?,
        }
    }
    Ok(())
}

/// `YYYYMMDD_<id>.tif`, made safe for a file name and unique within the artifact.
fn unique_name(names: &mut BTreeSet<String>, date: &str, id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = format!("{}_{safe}", date.replace('-', ""));
    let mut name = format!("{stem}.tif");
    let mut k = 2;
    while !names.insert(name.clone()) {
        name = format!("{stem}_{k}.tif");
        k += 1;
    }
    name
}

fn source_err(e: SourceError) -> NodeError {
    NodeError::from_diagnostic(&e)
}

/// An asset that cannot be located, with the scene and the band.
fn resolve_err(label: &str, band: &str, asset: &AssetRef, e: SourceError) -> NodeError {
    let help = miette::Diagnostic::help(&e).map(|h| h.to_string());
    scene_err(label, band, asset, e.to_string(), help)
}

fn scene_err(
    label: &str,
    band: &str,
    asset: &AssetRef,
    detail: String,
    help: Option<String>,
) -> NodeError {
    // GDAL's messages name the signed URL it opened; the token stays out of them.
    let err = NodeError::new(format!(
        "{label}, band `{band}` (`{}`): {}",
        asset.location,
        crate::source::sign::redact(&detail)
    ));
    match help {
        Some(h) => err.with_help(h),
        None => err,
    }
}

/// A raster error while reading a scene, with the scene, the band and its location.
fn raster_err(label: &str, band: Option<(&str, &AssetRef)>, e: RasterError) -> NodeError {
    let help = match &e {
        RasterError::Open { .. } => {
            Some("the file is missing or is not a raster GDAL can read (a GeoTIFF/COG)".to_string())
        }
        RasterError::CrsMismatch { .. } => Some(
            "the scene and the target `grid` must both have a CRS (or neither); give the file a \
             CRS (`gdal_edit.py -a_srs`) or fix `grid.crs`"
                .to_string(),
        ),
        other => miette::Diagnostic::help(other).map(|h| h.to_string()),
    };
    match band {
        Some((b, asset)) => scene_err(label, b, asset, e.to_string(), help),
        None => {
            let err = NodeError::new(format!("{label}: {e}"));
            match help {
                Some(h) => err.with_help(h),
                None => err,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use lulc_engine::{ArtifactIn, DimValue, erase};
    use serde_json::{Value, json};
    use tempfile::TempDir;

    use super::*;
    use crate::source::testkit::{
        self, ITEM_NEW, ITEM_OLD, S2_10M, S2_20M, TestServer, fill, s2_value, scl_value, utm48,
        write_tif,
    };

    /// The fixture's 10 m grid as a `grid` param.
    fn grid_param() -> Value {
        json!({"crs": "EPSG:32648", "bbox": [600000.0, 1200000.0, 600080.0, 1200080.0], "res": 10.0})
    }

    struct Run {
        ctx: RunCtx,
        _out: TempDir,
    }

    impl Run {
        fn meta(&self) -> ScenesMeta {
            serde_json::from_value(self.ctx.outputs()["scenes"].meta.clone()).unwrap()
        }

        fn file(&self, name: &str) -> PathBuf {
            self.ctx.outputs()["scenes"].files[name].clone()
        }

        /// Raw stored values of band `band` (1-based) of scene file `name`, as f64.
        fn band(&self, name: &str, band: usize) -> Vec<f64> {
            let r = RasterReader::open(self.file(name)).unwrap();
            let win = r.grid().full_window();
            match r.meta().dtype {
                DType::U16 => r
                    .read_window_u16(band, &win)
                    .unwrap()
                    .into_iter()
                    .map(f64::from)
                    .collect(),
                DType::I16 => r
                    .read_window_i16(band, &win)
                    .unwrap()
                    .into_iter()
                    .map(f64::from)
                    .collect(),
                _ => r
                    .read_window_f32(band, &win)
                    .unwrap()
                    .into_iter()
                    .map(f64::from)
                    .collect(),
            }
        }
    }

    fn run_with(
        params: Value,
        spec_dir: &Path,
        dims: &[(&str, DimValue)],
        inputs: Inputs,
    ) -> Result<Run, NodeError> {
        let out = TempDir::new().unwrap();
        let node = erase(Acquire);
        let canon = node.check_params(&params).map_err(|errs| {
            NodeError::new(
                errs.iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let mut ctx = RunCtx::for_test("acquire", Acquire::outputs(), out.path())
            .with_dims(dims.iter().map(|(k, v)| (k.to_string(), v.clone())))
            .with_spec_dir(spec_dir);
        node.run(&mut ctx, &canon, &inputs)?;
        Ok(Run { ctx, _out: out })
    }

    fn run(params: Value, spec_dir: &Path) -> Result<Run, NodeError> {
        run_with(
            params,
            spec_dir,
            &[("year", DimValue::Int(2020))],
            Inputs::default(),
        )
    }

    fn err_of(r: Result<Run, NodeError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => format!("{} | help: {}", e.message, e.help.unwrap_or_default()),
        }
    }

    /// Expected 10 m value of a fixture band at 10 m pixel (col, row) (interior for 20 m bands).
    fn expected_10m(band: &str, col: usize, row: usize) -> f64 {
        if S2_10M.contains(&band) {
            s2_value(band, col, row)
        } else {
            // Bilinear from the 20 m ramp: centre of 10 m pixel i at 20 m coordinate
            // (i + 0.5) / 2 - 0.5.
            let sc = (col as f64 + 0.5) / 2.0 - 0.5;
            let sr = (row as f64 + 0.5) / 2.0 - 0.5;
            s2_value(band, 0, 0) + 20.0 * sc + 200.0 * sr
        }
    }

    #[test]
    fn acquire_local_manifest_applies_boa_offset() {
        let dir = TempDir::new().unwrap();
        let g = utm48(10.0, 8, 8);
        let g20 = utm48(20.0, 4, 4);
        // Scene "new" (baseline 04.00): DN = reflectance + 1000, one DN below 1000 (dark).
        // Scene "old" (baseline 02.14): DN = reflectance. Scene "given": explicit offset -500.
        for (id, shift) in [("old", 0.0), ("new", 1000.0), ("given", 500.0)] {
            for b in ["B04", "B08"] {
                let v = fill(8, 8, |c, r| {
                    if id == "new" && (c, r) == (7, 7) {
                        600.0
                    } else {
                        s2_value(b, c, r) + shift
                    }
                });
                write_tif(
                    &dir.path().join(format!("{id}/{b}.tif")),
                    &g,
                    DType::U16,
                    Some(0.0),
                    &[b],
                    &[v],
                );
            }
            let v = fill(4, 4, scl_value);
            write_tif(
                &dir.path().join(format!("{id}/SCL.tif")),
                &g20,
                DType::U8,
                None,
                &["SCL"],
                &[v],
            );
        }
        let scene = |id: &str, date: &str, extra: Value| {
            let mut s = json!({"id": id, "date": date, "sensor": "sentinel-2-l2a",
                "bands": {"SCL": format!("{id}/SCL.tif"), "B04": format!("{id}/B04.tif"),
                          "B08": format!("{id}/B08.tif")}});
            s.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            s
        };
        let manifest = json!({"scenes": [
            scene("new", "2022-03-10", json!({"processing_baseline": "04.00", "cloud_cover": 5.5})),
            scene("old", "2022-01-02", json!({"processing_baseline": "02.14"})),
            scene("given", "2022-03-10", json!({"boa_add_offset": -500, "processing_baseline": "04.00"})),
        ]});
        std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
        let r = run_with(
            json!({"source": "local", "catalog": ".", "bands": ["SCL", "B04", "B08"], "grid": grid_param()}),
            dir.path(),
            &[("year", DimValue::Int(2022))],
            Inputs::default(),
        )
        .unwrap();
        let meta = r.meta();
        assert_eq!(meta.sensor, "sentinel-2-l2a");
        assert_eq!((meta.grid.width, meta.grid.height), (8, 8));
        let ids: Vec<&str> = meta.scenes.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["old", "given", "new"], "sorted by date, then id");
        let s = &meta.scenes[2];
        assert_eq!(s.bands, ["B04", "B08", "SCL"], "SCL moved last");
        assert_eq!(s.qa_band.as_deref(), Some("SCL"));
        assert_eq!((s.scale, s.offset, s.nodata), (1e-4, 0.0, 0.0));
        assert_eq!(s.cloud_cover, Some(5.5));
        assert_eq!(s.valid_fraction, 1.0);
        assert_eq!(s.file, "20220310_new.tif");
        for sc in &meta.scenes {
            for (bi, b) in ["B04", "B08"].iter().enumerate() {
                let v = r.band(&sc.file, bi + 1);
                for row in 0..8 {
                    for col in 0..8 {
                        let want = if sc.id == "new" && (col, row) == (7, 7) {
                            1.0 // DN 600 - 1000 clamps to the smallest reflectance, not nodata
                        } else {
                            s2_value(b, col, row)
                        };
                        assert_eq!(v[row * 8 + col], want, "{} {b} ({col}, {row})", sc.id);
                    }
                }
            }
            let scl = r.band(&sc.file, 3);
            assert_eq!(scl[8 * 2 + 2], 9.0);
            assert_eq!(scl[8 * 3 + 3], 9.0);
            assert_eq!(scl[0], 4.0);
        }
        // The file says what it is.
        let rd = RasterReader::open(r.file("20220310_new.tif")).unwrap();
        assert_eq!(rd.meta().band_names, ["B04", "B08", "SCL"]);
        assert_eq!(rd.meta().dtype, DType::U16);
        assert_eq!(rd.metadata_item("LULC_SCENE_ID").as_deref(), Some("new"));
        // Months filter.
        let r = run_with(
            json!({"source": "local", "catalog": "manifest.json", "bands": ["B04"], "grid": grid_param(), "months": [1]}),
            dir.path(),
            &[("year", DimValue::Int(2022))],
            Inputs::default(),
        )
        .unwrap();
        assert_eq!(r.meta().scenes.len(), 1);
    }

    #[test]
    fn acquire_static_stac_baselines_give_identical_reflectance() {
        let dir = TempDir::new().unwrap();
        testkit::write_s2_catalog(dir.path());
        // Default bands and default grid (the first item's first 10 m band).
        let r = run(json!({"catalog": "catalog.json"}), dir.path()).unwrap();
        let meta = r.meta();
        assert_eq!(
            (meta.grid.width, meta.grid.height, meta.grid.pixel_size()),
            (8, 8, (10.0, 10.0))
        );
        assert_eq!(meta.grid, utm48(10.0, 8, 8));
        let ids: Vec<&str> = meta.scenes.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, [ITEM_OLD, ITEM_NEW]);
        let bands = &meta.scenes[0].bands;
        assert_eq!(bands.len(), 11);
        assert_eq!(bands.last().map(String::as_str), Some("SCL"));
        assert_eq!(meta.scenes[1].cloud_cover, Some(50.0));
        let (a, b) = (&meta.scenes[0].file, &meta.scenes[1].file);
        for (i, band) in bands.iter().enumerate() {
            let va = r.band(a, i + 1);
            let vb = r.band(b, i + 1);
            assert_eq!(va, vb, "band {band}: baselines 02.14 and 04.00 must agree");
            if S2_10M.contains(&band.as_str()) {
                for row in 0..8 {
                    for col in 0..8 {
                        assert_eq!(va[row * 8 + col], s2_value(band, col, row), "{band}");
                    }
                }
            }
        }
        // Cloud filter through the params.
        let r = run(
            json!({"catalog": "catalog.json", "max_cloud_cover": 20}),
            dir.path(),
        )
        .unwrap();
        assert_eq!(r.meta().scenes.len(), 1);
        assert_eq!(r.meta().scenes[0].id, ITEM_OLD);
    }

    #[test]
    fn acquire_warps_20m_bilinear_and_scl_nearest() {
        let dir = TempDir::new().unwrap();
        testkit::write_s2_catalog(dir.path());
        let r = run(
            json!({"catalog": "catalog.json", "bands": ["B04", "B11", "B8A", "SCL"], "grid": grid_param()}),
            dir.path(),
        )
        .unwrap();
        let meta = r.meta();
        for s in &meta.scenes {
            for (i, band) in ["B11", "B8A"].iter().enumerate() {
                assert!(S2_20M.contains(band));
                let v = r.band(&s.file, i + 2);
                for row in 1..7 {
                    for col in 1..7 {
                        let want = expected_10m(band, col, row);
                        assert!(
                            (v[row * 8 + col] - want).abs() <= 0.5,
                            "{} {band} ({col}, {row}): {} vs {want}",
                            s.id,
                            v[row * 8 + col]
                        );
                    }
                }
                // Bilinear, not nearest: a value between two 20 m pixels exists.
                assert_ne!(v[8 + 2], s2_value(band, 1, 0));
            }
            let scl = r.band(&s.file, 4);
            for row in 0..8 {
                for col in 0..8 {
                    assert_eq!(
                        scl[row * 8 + col],
                        scl_value(col / 2, row / 2),
                        "SCL ({col}, {row})"
                    );
                }
            }
        }
        // A 20 m target grid works too: 10 m bands are averaged down bilinearly.
        let r = run(
            json!({"catalog": "catalog.json", "bands": ["B11"],
                   "grid": {"crs": "EPSG:32648", "bbox": [600000.0, 1200000.0, 600080.0, 1200080.0], "res": 20.0}}),
            dir.path(),
        )
        .unwrap();
        let f = r.meta().scenes[0].file.clone();
        assert_eq!(r.band(&f, 1)[5], s2_value("B11", 1, 1));
    }

    /// Acquire the fixture catalog through `catalog` (a URL) and return (meta, band values).
    fn acquire_all(r: &Run) -> Vec<(String, Vec<Vec<f64>>)> {
        r.meta()
            .scenes
            .iter()
            .map(|s| {
                let bands = (1..=s.bands.len()).map(|b| r.band(&s.file, b)).collect();
                (s.id.clone(), bands)
            })
            .collect()
    }

    #[test]
    fn acquire_stac_over_http_through_vsicurl() {
        let dir = TempDir::new().unwrap();
        testkit::write_s2_catalog(dir.path());
        let params = |catalog: String| json!({"catalog": catalog, "bands": ["B02", "B05", "SCL"], "grid": grid_param()});
        let local = run(params("catalog.json".into()), dir.path()).unwrap();
        let want = acquire_all(&local);
        assert_eq!(want.len(), 2);

        // A static catalog served over HTTP.
        let server = TestServer::serve_dir(dir.path());
        let r = run(params(format!("{}/catalog.json", server.base)), dir.path()).unwrap();
        assert_eq!(acquire_all(&r), want);
        // Deterministic writer: byte-identical files whatever the transport.
        for s in r.meta().scenes {
            assert_eq!(
                std::fs::read(r.file(&s.file)).unwrap(),
                std::fs::read(local.file(&s.file)).unwrap()
            );
        }
        let log = server.requests();
        assert!(
            log.iter()
                .any(|l| l.contains(".tif") && l.contains("[bytes=")),
            "GDAL read the GeoTIFFs with range requests: {log:#?}"
        );
        drop(server);

        // A STAC API: landing page -> search -> next page.
        let api = testkit::stac_api_server(dir.path());
        let r = run(params(format!("{}/api", api.base)), dir.path()).unwrap();
        assert_eq!(acquire_all(&r), want);
        let log = api.requests();
        assert!(
            log.iter()
                .any(|l| l.contains("/api/search?") && l.contains("page=2")),
            "{log:#?}"
        );
        assert!(
            log.iter()
                .any(|l| l.contains("/data/") && l.contains("[bytes=")),
            "{log:#?}"
        );
    }

    #[test]
    fn acquire_from_catalog_input_port() {
        let dir = TempDir::new().unwrap();
        let cat = dir.path().join("cat");
        testkit::write_s2_catalog(&cat);
        let params = json!({"bands": ["B04", "B12", "SCL"], "grid": grid_param()});
        let mut p = params.clone();
        p["catalog"] = json!("cat/catalog.json");
        let want = acquire_all(&run(p, dir.path()).unwrap());
        let files = testkit::catalog_as_blobs(&cat, &dir.path().join("blobs"));
        let art = ArtifactIn {
            step_id: "simulate".into(),
            dims: BTreeMap::new(),
            ty: "Catalog".into(),
            digest: "blake3:test".into(),
            files,
            meta: Value::Null,
        };
        let inputs = Inputs {
            ports: BTreeMap::from([("catalog".to_string(), vec![art])]),
        };
        let r = run_with(
            params,
            dir.path(),
            &[("year", DimValue::Int(2020))],
            inputs.clone(),
        )
        .unwrap();
        assert_eq!(acquire_all(&r), want);
        // `source: local` cannot read a catalog input.
        let e = err_of(run_with(
            json!({"source": "local", "catalog": "x.json"}),
            dir.path(),
            &[],
            inputs,
        ));
        assert!(e.contains("`catalog` input"), "{e}");
    }

    #[test]
    fn acquire_defaults_to_the_grid_the_catalog_input_declares() {
        let dir = TempDir::new().unwrap();
        let cat = dir.path().join("cat");
        testkit::write_s2_catalog(&cat);
        let files = testkit::catalog_as_blobs(&cat, &dir.path().join("blobs"));
        // A coarser 20 m grid over the same area, declared by the catalog artifact.
        let declared = utm48(20.0, 4, 4);
        let art = ArtifactIn {
            step_id: "simulate".into(),
            dims: BTreeMap::new(),
            ty: crate::artifacts::CATALOG.into(),
            digest: "blake3:test".into(),
            files,
            meta: json!({ "grid": declared }),
        };
        let inputs = Inputs {
            ports: BTreeMap::from([("catalog".to_string(), vec![art])]),
        };
        let r = run_with(
            json!({"bands": ["B04", "SCL"]}),
            dir.path(),
            &[("year", DimValue::Int(2020))],
            inputs,
        )
        .unwrap();
        assert_eq!(r.meta().grid, declared);
    }

    #[test]
    fn acquire_sar_palsar_and_dsm_conversions() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let g = utm48(10.0, 8, 8);
        // Sentinel-1: dB floats; one nodata pixel.
        let vv = fill(8, 8, |c, r| {
            if (c, r) == (0, 0) {
                -9999.0
            } else {
                -12.34 + c as f64 * 0.1
            }
        });
        let vh = fill(8, 8, |c, _| -20.0 - c as f64);
        write_tif(
            &d.join("s1/vv.tif"),
            &g,
            DType::F32,
            Some(-9999.0),
            &["VV"],
            &[vv],
        );
        write_tif(
            &d.join("s1/vh.tif"),
            &g,
            DType::F32,
            Some(-9999.0),
            &["VH"],
            &[vh],
        );
        // PALSAR-2: 25 m DN stack (HH, HV in one file); 80 m = 3.2 px, cover 4 x 4 px.
        let g25 = Grid {
            geo_transform: [600_000.0, 25.0, 0.0, 1_200_080.0, 0.0, -25.0],
            ..utm48(25.0, 4, 4)
        };
        let hh = fill(4, 4, |_, _| 5000.0);
        let hv = fill(4, 4, |_, _| 1000.0);
        write_tif(
            &d.join("palsar/hhhv.tif"),
            &g25,
            DType::U16,
            Some(0.0),
            &["HH", "HV"],
            &[hh, hv],
        );
        // DSM: two 30 m tiles; the west one covers the left half of the grid.
        let g30w = Grid {
            geo_transform: [599_990.0, 30.0, 0.0, 1_200_090.0, 0.0, -30.0],
            ..utm48(30.0, 2, 4)
        };
        let g30e = Grid {
            geo_transform: [600_040.0, 30.0, 0.0, 1_200_090.0, 0.0, -30.0],
            ..utm48(30.0, 2, 4)
        };
        write_tif(
            &d.join("dsm/w.tif"),
            &g30w,
            DType::F32,
            None,
            &["elevation"],
            &[vec![12.5; 8]],
        );
        write_tif(
            &d.join("dsm/e.tif"),
            &g30e,
            DType::F32,
            None,
            &["elevation"],
            &[vec![40.0; 8]],
        );
        std::fs::write(
            d.join("manifest.csv"),
            "date,sensor,band,file,id,band_index\n\
             2020-06-01,sentinel-1-grd,VV,s1/vv.tif,S1A_1,\n\
             2020-06-01,sentinel-1-grd,VH,s1/vh.tif,S1A_1,\n\
             2020-07-01,alos-palsar2-scansar,HH,palsar/hhhv.tif,P1,1\n\
             2020-07-01,alos-palsar2-scansar,HV,palsar/hhhv.tif,P1,2\n\
             2011-01-01,dsm,elevation,dsm/w.tif,west,\n\
             2011-01-01,dsm,elevation,dsm/e.tif,east,\n",
        )
        .unwrap();

        let s1 = run(
            json!({"source": "local", "catalog": "manifest.csv", "collection": "sentinel-1-grd"}),
            d,
        )
        .unwrap();
        let m = s1.meta();
        assert_eq!((m.sensor.as_str(), m.scenes.len()), ("sentinel-1-grd", 1));
        let s = &m.scenes[0];
        assert_eq!(
            (s.scale, s.nodata, s.qa_band.clone()),
            (0.01, -32768.0, None)
        );
        assert_eq!(s.valid_fraction, 63.0 / 64.0);
        let vv = s1.band(&s.file, 1);
        assert_eq!(vv[0], -32768.0);
        assert_eq!(vv[1], -1224.0, "-12.24 dB");
        assert_eq!(vv[3], -1204.0, "-12.04 dB");
        assert_eq!(s1.band(&s.file, 2)[5], -2500.0);

        let palsar = run(
            json!({"source": "local", "catalog": "manifest.csv", "collection": "alos-palsar2-scansar", "grid": grid_param()}),
            d,
        )
        .unwrap();
        let s = &palsar.meta().scenes[0];
        assert_eq!(s.bands, ["HH", "HV"]);
        let hh_db = 10.0 * (5000.0f64 * 5000.0).log10() - 83.0; // -9.02 dB
        let hv_db = 10.0 * (1000.0f64 * 1000.0).log10() - 83.0; // -23 dB
        let hh = palsar.band(&s.file, 1);
        let hv = palsar.band(&s.file, 2);
        assert!(hh.iter().all(|v| *v == (hh_db * 100.0).round()), "{hh:?}");
        assert!(hv.iter().all(|v| *v == (hv_db * 100.0).round()), "{hv:?}");
        assert_eq!(s.valid_fraction, 1.0);

        // DSM ignores the year (2011 data in a 2020 partition) and mosaics both tiles.
        let dsm = run(
            json!({"source": "local", "catalog": "manifest.csv", "collection": "dsm", "grid": grid_param()}),
            d,
        )
        .unwrap();
        // `SceneMeta::nodata` is NaN for a DSM, which JSON writes as `null`; `ScenesMeta` cannot
        // read that back yet (see the report), so look at the JSON itself.
        let m = &dsm.ctx.outputs()["scenes"].meta;
        assert_eq!(m["sensor"], "dsm");
        let scenes = m["scenes"].as_array().unwrap();
        assert_eq!(scenes.len(), 1);
        let s = &scenes[0];
        assert_eq!(
            (&s["id"], &s["date"]),
            (&json!("dsm"), &json!("2011-01-01"))
        );
        assert_eq!(s["valid_fraction"], 1.0);
        assert!(s["nodata"].is_null());
        let file = s["file"].as_str().unwrap();
        let rd = RasterReader::open(dsm.file(file)).unwrap();
        assert_eq!(rd.meta().dtype, DType::F32);
        assert!(rd.meta().nodata.is_some_and(f64::is_nan));
        let v = dsm.band(file, 1);
        // "east" sorts before "west": it wins where both cover (x >= 600040).
        assert_eq!(v[0], 12.5);
        assert_eq!(v[7], 40.0);
        assert_eq!(v[3 * 8 + 4], 40.0);
        assert_eq!(v[3 * 8 + 3], 12.5);
    }

    #[test]
    fn acquire_sentinel1_rtc_linear_gamma0_becomes_db() {
        // Planetary Computer's `sentinel-1-rtc`: linear gamma0 (Float32, nodata -32768), assets
        // `vv` and `vh` in a STAC item.
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let g = utm48(10.0, 8, 8);
        let vv = fill(8, 8, |c, r| match (c, r) {
            (0, 0) => -32768.0,
            (1, 0) => 0.0,
            _ => 0.05 + 0.01 * c as f64,
        });
        let vh = fill(8, 8, |_, _| 0.01);
        write_tif(
            &d.join("sentinel-1-rtc/data/S1A_IW_GRDH_1SDV_20200601/vv.tif"),
            &g,
            DType::F32,
            Some(-32768.0),
            &["vv"],
            &[vv],
        );
        write_tif(
            &d.join("sentinel-1-rtc/data/S1A_IW_GRDH_1SDV_20200601/vh.tif"),
            &g,
            DType::F32,
            Some(-32768.0),
            &["vh"],
            &[vh],
        );
        let item = testkit::item_json(
            "S1A_IW_GRDH_1SDV_20200601",
            "2020-06-01T22:50:00Z",
            "sentinel-1-rtc",
            json!({"sar:polarizations": ["VV", "VH"], "sar:instrument_mode": "IW"}),
            &["vv", "vh"],
        );
        testkit::write_catalog(d, "sentinel-1-rtc", &[item]);
        let r = run(
            json!({"catalog": "catalog.json", "collection": "sentinel-1-rtc", "grid": grid_param()}),
            d,
        )
        .unwrap();
        let m = r.meta();
        assert_eq!(m.sensor, "sentinel-1-rtc");
        assert!(
            m.values
                .as_deref()
                .unwrap()
                .contains("10 log10(linear gamma0)"),
            "{:?}",
            m.values
        );
        let s = &m.scenes[0];
        assert_eq!(
            (s.bands.clone(), s.scale, s.nodata),
            (vec!["VV".into(), "VH".into()], 0.01, -32768.0)
        );
        let vv = r.band(&s.file, 1);
        // Nodata and a linear 0 (no backscatter: -inf dB) are both nodata.
        assert_eq!((vv[0], vv[1]), (-32768.0, -32768.0));
        let db = |lin: f64| (10.0 * lin.log10() * 100.0).round();
        assert_eq!(vv[2], db(0.07), "-11.55 dB");
        assert_eq!(vv[8 + 7], db(0.12));
        assert!(
            r.band(&s.file, 2)[9..].iter().all(|v| *v == db(0.01)),
            "-20 dB"
        );
        assert_eq!(s.valid_fraction, 62.0 / 64.0);
    }

    #[test]
    fn a_grid_with_tile_px_gives_each_tile_step_its_tile() {
        let g = GridParam {
            crs: "EPSG:32648".into(),
            bbox: [500_000.0, 2_000_000.0, 525_000.0, 2_012_000.0],
            res: 10.0,
            tile_px: Some(1000),
        };
        let t = g.step_grid(Some("r1c2")).unwrap();
        assert_eq!((t.width, t.height), (500, 200));
        assert_eq!(t.geo_transform[0], 520_000.0);
        let e = g.step_grid(None).unwrap_err();
        assert!(e.contains("no `tile` partition"), "{e}");
        let e = g.step_grid(Some("48QWJ")).unwrap_err();
        assert!(e.contains("`48QWJ` is no tile of this tiling"), "{e}");
        let whole = GridParam { tile_px: None, ..g };
        assert_eq!(whole.step_grid(Some("r1c2")).unwrap().width, 2500);
    }

    #[test]
    fn a_sentinel2_tile_partition_gives_the_steps_its_tile_grid() {
        // 10SDG's corner and extent as its granule metadata states them (`crate::mgrs`).
        let g = s2_tile_grid("T10SDG").unwrap().unwrap();
        assert_eq!((g.width, g.height), (10980, 10980));
        assert_eq!(
            g.geo_transform,
            [399960.0, 10.0, 0.0, 4200000.0, 0.0, -10.0]
        );
        assert!(crate::raster::crs_equivalent(&g.crs_wkt, "EPSG:32610"));
        // A tiling of the user's own: no grid from the name.
        assert!(s2_tile_grid("north").is_none());
    }

    #[test]
    fn acquire_output_is_deterministic() {
        let dir = TempDir::new().unwrap();
        testkit::write_s2_catalog(dir.path());
        let p = json!({"catalog": "catalog.json", "bands": ["B03", "B06", "SCL"]});
        let a = run(p.clone(), dir.path()).unwrap();
        let b = run(p, dir.path()).unwrap();
        assert_eq!(
            a.ctx.outputs()["scenes"].meta,
            b.ctx.outputs()["scenes"].meta
        );
        for s in a.meta().scenes {
            assert_eq!(
                std::fs::read(a.file(&s.file)).unwrap(),
                std::fs::read(b.file(&s.file)).unwrap()
            );
        }
    }

    // ---- bad input ---------------------------------------------------------------------------

    /// A one-scene local manifest with bands B04 and B08 and the given file for B08.
    fn one_scene(dir: &Path, b08: &str) {
        let g = utm48(10.0, 8, 8);
        write_tif(
            &dir.join("s/B04.tif"),
            &g,
            DType::U16,
            Some(0.0),
            &["B04"],
            &[vec![1500.0; 64]],
        );
        std::fs::write(
            dir.join("manifest.csv"),
            format!("date,sensor,band,file,id\n2020-05-01,sentinel-2-l2a,B04,s/B04.tif,S2X\n2020-05-01,sentinel-2-l2a,B08,{b08},S2X\n"),
        )
        .unwrap();
    }

    fn local_b04_b08() -> Value {
        json!({"source": "local", "catalog": "manifest.csv", "bands": ["B04", "B08"], "grid": grid_param()})
    }

    #[test]
    fn acquire_error_missing_file_names_file_and_band() {
        let dir = TempDir::new().unwrap();
        one_scene(dir.path(), "s/B08.tif");
        let e = err_of(run(local_b04_b08(), dir.path()));
        assert!(
            e.contains("s/B08.tif") && e.contains("band `B08`") && e.contains("does not exist"),
            "{e}"
        );
        assert!(e.contains("scene `S2X`"), "{e}");
    }

    #[test]
    fn acquire_error_corrupt_geotiff_names_file_and_band() {
        let dir = TempDir::new().unwrap();
        one_scene(dir.path(), "s/B08.tif");
        std::fs::write(
            dir.path().join("s/B08.tif"),
            b"II*\0 this is not really a tiff",
        )
        .unwrap();
        let e = err_of(run(local_b04_b08(), dir.path()));
        assert!(
            e.contains("B08.tif") && e.contains("band `B08`") && e.contains("cannot open raster"),
            "{e}"
        );
        // A multi-band file without the band.
        let g = utm48(10.0, 8, 8);
        write_tif(
            &dir.path().join("s/B08.tif"),
            &g,
            DType::U16,
            Some(0.0),
            &["B02", "B03"],
            &[vec![1.0; 64], vec![2.0; 64]],
        );
        let e = err_of(run(local_b04_b08(), dir.path()));
        assert!(
            e.contains("B08.tif") && e.contains("`B08`") && e.contains("`B02`, `B03`"),
            "{e}"
        );
    }

    #[test]
    fn acquire_error_band_missing_from_scene() {
        let dir = TempDir::new().unwrap();
        one_scene(dir.path(), "s/B08.tif");
        let e = err_of(run(
            json!({"source": "local", "catalog": "manifest.csv", "bands": ["B04", "B11"], "grid": grid_param()}),
            dir.path(),
        ));
        assert!(
            e.contains("`S2X`")
                && e.contains("band `B11`")
                && e.contains("manifest.csv")
                && e.contains("`B04`, `B08`"),
            "{e}"
        );
    }

    #[test]
    fn acquire_error_no_crs_names_file_and_band() {
        let dir = TempDir::new().unwrap();
        one_scene(dir.path(), "s/B08.tif");
        let mut g = utm48(10.0, 8, 8);
        g.crs_wkt.clear();
        write_tif(
            &dir.path().join("s/B08.tif"),
            &g,
            DType::U16,
            Some(0.0),
            &["B08"],
            &[vec![1.0; 64]],
        );
        let e = err_of(run(local_b04_b08(), dir.path()));
        assert!(
            e.contains("B08.tif")
                && e.contains("band `B08`")
                && e.contains("has no georeferencing (no crs)"),
            "{e}"
        );
    }

    #[test]
    fn acquire_empty_scene_is_dropped_with_a_warning() {
        let dir = TempDir::new().unwrap();
        testkit::write_s2_catalog(dir.path());
        // Blank out every band of the new item (DN 0 = nodata).
        let data = dir.path().join("sentinel-2-l2a/data").join(ITEM_NEW);
        write_tif(
            &data.join("B04.tif"),
            &utm48(10.0, 8, 8),
            DType::U16,
            Some(0.0),
            &["B04"],
            &[vec![0.0; 64]],
        );
        let r = run(
            json!({"catalog": "catalog.json", "bands": ["B04", "SCL"]}),
            dir.path(),
        )
        .unwrap();
        let ids: Vec<String> = r.meta().scenes.iter().map(|s| s.id.clone()).collect();
        assert_eq!(ids, [ITEM_OLD]);
        let w = r.ctx.warnings().join("\n");
        assert!(
            w.contains(ITEM_NEW) && w.contains("no valid pixel") && w.contains(".json"),
            "{w}"
        );
        assert_eq!(
            r.ctx.outputs()["scenes"].files.len(),
            1,
            "no file for the dropped scene"
        );
    }

    #[test]
    fn acquire_error_when_every_scene_is_empty() {
        let dir = TempDir::new().unwrap();
        testkit::write_s2_catalog(dir.path());
        // A grid 200 m east of the data: the footprints match the search, no pixel overlaps.
        let e = err_of(run(
            json!({"catalog": "catalog.json", "bands": ["B04"],
                   "grid": {"crs": "EPSG:32648", "bbox": [600200.0, 1200000.0, 600280.0, 1200080.0], "res": 10.0}}),
            dir.path(),
        ));
        assert!(
            e.contains("entirely nodata")
                && e.contains(ITEM_OLD)
                && e.contains(ITEM_NEW)
                && e.contains(".json"),
            "{e}"
        );
    }

    #[test]
    fn acquire_error_stac_item_without_asset() {
        let dir = TempDir::new().unwrap();
        testkit::write_s2_catalog(dir.path());
        let item = dir
            .path()
            .join(format!("sentinel-2-l2a/items/{ITEM_NEW}.json"));
        let mut v: Value = serde_json::from_slice(&std::fs::read(&item).unwrap()).unwrap();
        v["assets"].as_object_mut().unwrap().remove("B8A");
        std::fs::write(&item, v.to_string()).unwrap();
        let e = err_of(run(
            json!({"catalog": "catalog.json", "bands": ["B04", "B8A"]}),
            dir.path(),
        ));
        assert!(
            e.contains(ITEM_NEW)
                && e.contains("band `B8A`")
                && e.contains(&format!("items/{ITEM_NEW}.json")),
            "{e}"
        );
    }

    #[test]
    fn acquire_error_empty_search_names_collection_bbox_and_year() {
        let dir = TempDir::new().unwrap();
        testkit::write_s2_catalog(dir.path());
        let e = err_of(run_with(
            json!({"catalog": "catalog.json", "grid": grid_param()}),
            dir.path(),
            &[("year", DimValue::Int(2019))],
            Inputs::default(),
        ));
        assert!(
            e.contains("no scenes")
                && e.contains("`sentinel-2-l2a`")
                && e.contains("year 2019")
                && e.contains("bbox [105.")
                && e.contains("catalog.json"),
            "{e}"
        );
    }

    #[test]
    fn acquire_error_unreachable_url() {
        let dir = TempDir::new().unwrap();
        let dead = testkit::dead_url();
        let e = err_of(run(
            json!({"catalog": format!("{dead}/catalog.json")}),
            dir.path(),
        ));
        assert!(
            e.contains(&format!("{dead}/catalog.json")) && e.contains("cannot read"),
            "{e}"
        );
        // A reachable catalog whose assets are on a server that is down: URL and band named.
        testkit::write_s2_catalog(dir.path());
        let item = dir
            .path()
            .join(format!("sentinel-2-l2a/items/{ITEM_OLD}.json"));
        let text = std::fs::read_to_string(&item)
            .unwrap()
            .replace("\"../data/", &format!("\"{dead}/data/"));
        std::fs::write(&item, text).unwrap();
        let e = err_of(run(
            json!({"catalog": "catalog.json", "bands": ["B03"], "grid": grid_param()}),
            dir.path(),
        ));
        assert!(
            e.contains(&format!("{dead}/data/{ITEM_OLD}/B03.tif")) && e.contains("band `B03`"),
            "{e}"
        );
    }

    #[test]
    fn acquire_params_are_checked() {
        let node = erase(Acquire);
        let bad = |p: Value| -> String {
            node.check_params(&p)
                .unwrap_err()
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        };
        assert!(bad(json!({"months": [0, 13]})).contains("month 13"));
        assert!(bad(json!({"bands": ["B04", "B99"]})).contains("unknown band `B99`"));
        assert!(bad(json!({"bands": ["B04", "B04"]})).contains("listed twice"));
        assert!(bad(json!({"collection": "landsat"})).contains("landsat"));
        assert!(bad(json!({"max_cloud_cover": 120})).contains("percentage"));
        assert!(bad(json!({"source": "local"})).starts_with("catalog:"));
        assert!(
            bad(json!({"grid": {"crs": "EPSG:32648", "bbox": [1, 1, 0, 0], "res": 10}}))
                .contains("empty bbox")
        );
        assert!(
            bad(
                json!({"grid": {"crs": "EPSG:32648", "bbox": [0, 0, 1, 1], "res": 10, "origin": 1}})
            )
            .contains("origin")
        );
        assert!(bad(json!({"catalgo": "x"})).contains("unknown param `catalgo`"));
        let canon = node.check_params(&json!({"catalog": "c.json"})).unwrap();
        assert_eq!(canon["source"], "stac");
        assert_eq!(canon["collection"], "sentinel-2-l2a");
        // No catalog at all is a run-time error (the input may be connected instead).
        let dir = TempDir::new().unwrap();
        let e = err_of(run(json!({}), dir.path()));
        assert!(e.contains("needs `catalog`"), "{e}");
    }

    // ---- real data ---------------------------------------------------------------------------

    #[test]
    fn acquire_real_sen2rts_scl_onto_ndvi_grid() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/sen2rts-s2-ndvi-scl/mincrops");
        if !data.is_dir() {
            eprintln!(
                "note: {} not found; skipping the real-data test",
                data.display()
            );
            return;
        }
        let mut scl: Vec<PathBuf> = std::fs::read_dir(data.join("SCL"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "tif"))
            .collect();
        scl.sort();
        assert_eq!(scl.len(), 60);
        let ndvi = std::fs::read_dir(data.join("NDVI"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "tif"))
            .unwrap();
        let ndvi_grid = RasterReader::open(&ndvi).unwrap().grid().clone();
        assert_eq!((ndvi_grid.width, ndvi_grid.height), (25, 7));
        let dir = TempDir::new().unwrap();
        let mut csv = String::from("date,sensor,band,file,id\n");
        for p in &scl {
            // S2A2A_20200109_022_mincrops_SCL_20.tif
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let date = name.split('_').nth(1).unwrap();
            // A copy in the test's folder: a manifest may list only files inside its spec's.
            std::fs::copy(p, dir.path().join(&name)).unwrap();
            csv.push_str(&format!(
                "{date},sentinel-2-l2a,SCL,{name},{}\n",
                name.trim_end_matches(".tif")
            ));
        }
        std::fs::write(dir.path().join("manifest.csv"), csv).unwrap();
        let b = ndvi_grid.bbox();
        let r = run(
            json!({"source": "local", "catalog": "manifest.csv", "bands": ["SCL"],
                   "grid": {"crs": ndvi_grid.crs_wkt, "bbox": [b.min_x, b.min_y, b.max_x, b.max_y], "res": 10.0}}),
            dir.path(),
        )
        .unwrap();
        let meta = r.meta();
        assert!(
            meta.grid.same_as(&ndvi_grid, 1e-6),
            "{:?} vs {:?}",
            meta.grid,
            ndvi_grid
        );
        let dropped = r.ctx.warnings().len();
        assert_eq!(meta.scenes.len() + dropped, 60);
        assert!(meta.scenes.len() >= 50, "{} scenes", meta.scenes.len());
        let dates: Vec<&str> = meta.scenes.iter().map(|s| s.date.as_str()).collect();
        let mut sorted = dates.clone();
        sorted.sort();
        assert_eq!(dates, sorted);
        assert!(dates.iter().all(|d| d.starts_with("2020-")));
        for s in &meta.scenes {
            let rd = RasterReader::open(r.file(&s.file)).unwrap();
            assert_eq!((rd.grid().width, rd.grid().height), (25, 7));
            assert_eq!(s.qa_band.as_deref(), Some("SCL"));
            // Nearest: every 10 m pixel holds the SCL class of the 20 m pixel under its centre.
            let src_path = scl
                .iter()
                .find(|p| p.to_string_lossy().contains(&s.id))
                .unwrap();
            let src = RasterReader::open(src_path).unwrap();
            let sv = src.read_window_f32(1, &src.grid().full_window()).unwrap();
            let sg = src.grid().clone();
            let out = r.band(&s.file, 1);
            for row in 0..7 {
                for col in 0..25 {
                    let (x, y) = meta.grid.pixel_to_geo(col as f64 + 0.5, row as f64 + 0.5);
                    let sc = ((x - sg.geo_transform[0]) / sg.geo_transform[1]).floor() as usize;
                    let sr = ((y - sg.geo_transform[3]) / sg.geo_transform[5]).floor() as usize;
                    let want = sv[sr * sg.width + sc];
                    let want = if want.is_nan() { 0.0 } else { f64::from(want) };
                    assert_eq!(out[row * 25 + col], want, "{} ({col}, {row})", s.id);
                }
            }
            assert!(
                out.iter()
                    .all(|v| [0.0, 2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 9.0, 10.0].contains(v))
            );
        }
    }
}
