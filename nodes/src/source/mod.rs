//! Where scenes come from. One trait, [`Source`], with two implementations:
//!
//! - [`local::LocalSource`]: GeoTIFF/COG files on disk described by a manifest (JSON or CSV; the
//!   format is documented in [`local`]).
//! - [`stac::StacSource`]: a STAC catalog, either static JSON (on disk, over HTTP, or inside a
//!   `Catalog` artifact) or a STAC API with item search.
//!
//! Why the split looks like this: listing ("which scenes of this collection, year and area
//! exist, and where is band X of each") is all that differs between sources. Everything after
//! that (opening through GDAL, warping onto the target grid, value conventions) is the same
//! code for every source, in `kinds::acquire`, so a simulated catalog, a local archive and a
//! real STAC API go through exactly the same reading path.
//!
//! Listing returns [`SceneItem`]s: id, date, the properties acquisition needs (cloud cover,
//! Sentinel-2 processing baseline / `BOA_ADD_OFFSET`, platform, tile, footprint) and the assets
//! by key. An [`AssetRef`] points at a [`Location`]; [`Source::resolve`] turns it into a path GDAL
//! can open (`/vsicurl/https://...` for URLs, a blob path for a file of a `Catalog` artifact).
//!
//! Errors are [`SourceError`]s with stable codes (`source::read`, `source::asset`, ...); every
//! variant names the file or URL it concerns.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

pub mod http;
pub mod local;
pub mod sign;
pub mod stac;
#[cfg(test)]
pub(crate) mod testkit;

pub use local::LocalSource;
pub use stac::StacSource;

/// Largest JSON document (catalog, item, search page, manifest) a source reads: 64 MiB.
pub const MAX_DOCUMENT_BYTES: u64 = 64 << 20;

/// A source of dated scenes.
pub trait Source {
    /// What this source is, for messages: ``stac catalog `https://...` ``.
    fn describe(&self) -> String;

    /// The scenes matching `query`, sorted by date then id, without duplicate ids.
    fn list(&self, query: &SceneQuery) -> Result<Vec<SceneItem>, SourceError>;

    /// A path GDAL can open for an asset of `item`, one of the listed scenes (a local path, a
    /// `/vsicurl/` URL, signed where its host needs it, a blob of a `Catalog` artifact). Local
    /// files are checked to exist.
    fn resolve(&self, item: &SceneItem, asset: &AssetRef) -> Result<String, SourceError>;
}

// ---------------------------------------------------------------------------------------------
// Query
// ---------------------------------------------------------------------------------------------

/// What to list. `None` filters nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SceneQuery {
    /// Collection id (STAC) or sensor (manifest), compared case-insensitively.
    pub collection: String,
    pub year: Option<i32>,
    /// Months 1..=12.
    pub months: Option<Vec<u32>>,
    /// Longitude/latitude box `[west, south, east, north]` (WGS 84) the scenes must intersect.
    pub bbox: Option<[f64; 4]>,
    /// Keep scenes whose cloud cover (percent) is at most this; scenes without one are kept.
    pub max_cloud_cover: Option<f64>,
    /// MGRS tile (e.g. `48PXS`); scenes without tile information are kept.
    pub tile: Option<String>,
}

impl SceneQuery {
    /// Whether an item passes every filter of the query.
    pub fn keep(&self, item: &SceneItem) -> bool {
        self.matches_collection(item.collection.as_deref())
            && self.matches_date(&item.date)
            && self.matches_cloud(item.props.cloud_cover)
            && self.matches_tile(item.props.tile.as_deref())
            && self.matches_bbox(item.props.bbox)
    }

    /// Unknown collections (an item that does not say) match.
    pub fn matches_collection(&self, collection: Option<&str>) -> bool {
        collection.is_none_or(|c| c.eq_ignore_ascii_case(&self.collection))
    }

    /// `date` is `YYYY-MM-DD`.
    pub fn matches_date(&self, date: &str) -> bool {
        let year = date.get(0..4).and_then(|y| y.parse::<i32>().ok());
        let month = date.get(5..7).and_then(|m| m.parse::<u32>().ok());
        self.year.is_none_or(|y| year == Some(y))
            && self
                .months
                .as_ref()
                .is_none_or(|ms| month.is_some_and(|m| ms.contains(&m)))
    }

    pub fn matches_cloud(&self, cloud_cover: Option<f64>) -> bool {
        match (self.max_cloud_cover, cloud_cover) {
            (Some(max), Some(cc)) => cc <= max,
            _ => true,
        }
    }

    pub fn matches_tile(&self, tile: Option<&str>) -> bool {
        match (&self.tile, tile) {
            (Some(want), Some(have)) => normalize_tile(want) == normalize_tile(have),
            _ => true,
        }
    }

    pub fn matches_bbox(&self, bbox: Option<[f64; 4]>) -> bool {
        match (self.bbox, bbox) {
            (Some(q), Some(b)) => q[0] <= b[2] && b[0] <= q[2] && q[1] <= b[3] && b[1] <= q[3],
            _ => true,
        }
    }

    /// The query in words, for "nothing found" messages.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("collection `{}`", self.collection)];
        parts.push(match self.year {
            Some(y) => format!("year {y}"),
            None => "any year".to_string(),
        });
        if let Some(ms) = &self.months {
            let ms: Vec<String> = ms.iter().map(u32::to_string).collect();
            parts.push(format!("months [{}]", ms.join(", ")));
        }
        match self.bbox {
            Some(b) => parts.push(format!(
                "bbox [{:.4}, {:.4}, {:.4}, {:.4}] (lon/lat)",
                b[0], b[1], b[2], b[3]
            )),
            None => parts.push("any bbox".to_string()),
        }
        if let Some(cc) = self.max_cloud_cover {
            parts.push(format!("cloud cover <= {cc}%"));
        }
        if let Some(t) = &self.tile {
            parts.push(format!("tile `{t}`"));
        }
        parts.join(", ")
    }
}

/// `T48PXS`, `MGRS-48PXS`, `48pxs` -> `48PXS`.
pub(crate) fn normalize_tile(t: &str) -> String {
    let t = t.trim();
    let t = t.strip_prefix("MGRS-").unwrap_or(t);
    let t = t.strip_prefix(['T', 't']).unwrap_or(t);
    t.to_ascii_uppercase()
}

// ---------------------------------------------------------------------------------------------
// Items, assets, locations
// ---------------------------------------------------------------------------------------------

/// One scene as a source lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneItem {
    pub id: String,
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Collection id / sensor, when the source says.
    pub collection: Option<String>,
    /// Where the scene was described (item JSON, manifest), for messages.
    pub origin: String,
    pub props: SceneProps,
    /// Assets by key (STAC asset key, or band name in a manifest).
    pub assets: BTreeMap<String, AssetRef>,
}

/// The properties of a scene that acquisition uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SceneProps {
    /// Percent (`eo:cloud_cover`).
    pub cloud_cover: Option<f64>,
    /// Sentinel-2 processing baseline (`s2:processing_baseline`), e.g. `04.00`.
    pub processing_baseline: Option<String>,
    /// Sentinel-2 `BOA_ADD_OFFSET` in DN, when the catalog states it (`s2:boa_add_offset`).
    pub boa_add_offset: Option<BoaOffset>,
    /// Earth Search's word on whether the offset is already applied to the DNs
    /// (`earthsearch:boa_offset_applied`); `None` when the catalog does not say.
    pub boa_offset_applied: Option<bool>,
    /// `platform`, e.g. `sentinel-2a`.
    pub platform: Option<String>,
    /// MGRS tile, e.g. `48PXS`.
    pub tile: Option<String>,
    /// Footprint `[west, south, east, north]` in lon/lat.
    pub bbox: Option<[f64; 4]>,
}

/// `BOA_ADD_OFFSET` of a Sentinel-2 L2A product, for all bands or per band.
#[derive(Clone, Debug, PartialEq)]
pub enum BoaOffset {
    Uniform(f64),
    PerBand(BTreeMap<String, f64>),
}

impl SceneItem {
    /// Sentinel-2 L2A `BOA_ADD_OFFSET` (DN) of `band`: the stated offset if the catalog has one,
    /// 0 if it says the offset is already applied, else derived from the processing baseline
    /// (-1000 from 04.00 on, 0 before or when unknown): the shift of
    /// [`SceneItem::reflectance_transform`] for an asset that states no scale or offset.
    #[cfg(test)]
    pub fn boa_add_offset(&self, band: &str) -> f64 {
        if self.props.boa_offset_applied == Some(true) {
            return 0.0;
        }
        self.stated_boa_offset(band)
            .unwrap_or_else(|| self.baseline_offset())
    }

    /// `s2:boa_add_offset` of `band`, when the catalog states it.
    fn stated_boa_offset(&self, band: &str) -> Option<f64> {
        match &self.props.boa_add_offset {
            Some(BoaOffset::Uniform(v)) => Some(*v),
            Some(BoaOffset::PerBand(m)) => m
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(band))
                .map(|(_, v)| *v),
            None => None,
        }
    }

    /// The offset (DN) processing baselines 04.00 and later add: -1000; 0 before or unknown.
    fn baseline_offset(&self) -> f64 {
        match self
            .props
            .processing_baseline
            .as_deref()
            .and_then(|b| b.trim().parse::<f64>().ok())
        {
            Some(b) if b >= 4.0 - 1e-9 => -1000.0,
            _ => 0.0,
        }
    }

    /// How a Sentinel-2 L2A DN of `band`, read from `asset`, becomes reflectance x 10000:
    /// `DN * gain + shift`. The catalog's word is taken in this order (docs/catalogs.md):
    /// 1. `earthsearch:boa_offset_applied: true`: the DNs hold no offset (`shift` 0);
    /// 2. `s2:boa_add_offset` (DN) of the band;
    /// 3. the asset's `raster:bands` `offset` (reflectance, as Copernicus Data Space states it:
    ///    -0.1 from baseline 04.00 on), except in an item that carries
    ///    `earthsearch:boa_offset_applied`: Earth Search writes the same `raster:bands` on items
    ///    whose DNs have the offset and on items whose DNs do not, so its flag and the baseline
    ///    decide;
    /// 4. the processing baseline (`s2:processing_baseline`, `processing:version`).
    ///
    /// `gain` is the asset's `raster:bands` `scale` x 10000 (1 when it states none: DNs are
    /// reflectance x 10000, the L2A quantification value).
    pub fn reflectance_transform(&self, band: &str, asset: &AssetRef) -> (f64, f64) {
        let stated = asset.scaling();
        let scale = stated
            .scale
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(1e-4);
        let gain = round9(scale * 1e4);
        if self.props.boa_offset_applied == Some(true) {
            return (gain, 0.0);
        }
        if let Some(dn) = self.stated_boa_offset(band) {
            return (gain, round9(dn * gain));
        }
        if let Some(o) = stated
            .offset
            .filter(|o| o.is_finite() && self.props.boa_offset_applied.is_none())
        {
            return (gain, round9(o * 1e4));
        }
        (gain, round9(self.baseline_offset() * gain))
    }

    /// The asset holding `band`: an asset keyed by the band name (any case), by a common alias
    /// (`B04` = `red`, `SCL` = `scl`, `elevation` = `data`/`dem`, ...), or one whose `eo:bands`
    /// name the band. Errors (`source::asset`) name the item, where it came from and the assets
    /// it has.
    pub fn asset_for(&self, band: &str) -> Result<AssetRef, SourceError> {
        let names: Vec<&str> = std::iter::once(band)
            .chain(band_aliases(band).iter().copied())
            .collect();
        for name in &names {
            if let Some(a) = self.assets.get(*name) {
                return Ok(a.clone());
            }
        }
        for name in &names {
            if let Some((_, a)) = self
                .assets
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
            {
                return Ok(a.clone());
            }
        }
        // Copernicus Data Space: one asset per band and resolution (`B02_10m`, `B02_20m`,
        // `SCL_20m`): the finest.
        let by_resolution = self
            .assets
            .iter()
            .filter_map(|(k, a)| {
                let (name, res) = k.rsplit_once('_')?;
                let metres: u32 = res.strip_suffix('m')?.parse().ok()?;
                names
                    .iter()
                    .any(|w| name.eq_ignore_ascii_case(w))
                    .then_some((metres, a))
            })
            .min_by_key(|(m, _)| *m);
        if let Some((_, a)) = by_resolution {
            return Ok(a.clone());
        }
        for a in self.assets.values() {
            if let Some(i) = a
                .band_names
                .iter()
                .position(|n| names.iter().any(|w| n.eq_ignore_ascii_case(w)))
            {
                let mut a = a.clone();
                if a.band_names.len() > 1 {
                    a.band = Some(i + 1);
                }
                return Ok(a);
            }
        }
        Err(SourceError::MissingAsset {
            item: self.id.clone(),
            origin: self.origin.clone(),
            band: band.to_string(),
            available: if self.assets.is_empty() {
                "none".to_string()
            } else {
                self.assets
                    .keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }
}

/// Other common asset keys of a band: Earth Search names (`blue`, `nir08`, `scl`), lower case
/// SAR polarisations, DEM asset names.
pub fn band_aliases(band: &str) -> &'static [&'static str] {
    match band.to_ascii_uppercase().as_str() {
        "B01" => &["coastal", "B1"],
        "B02" => &["blue", "B2"],
        "B03" => &["green", "B3"],
        "B04" => &["red", "B4"],
        "B05" => &["rededge1", "B5"],
        "B06" => &["rededge2", "B6"],
        "B07" => &["rededge3", "B7"],
        "B08" => &["nir", "B8"],
        "B8A" => &["nir08", "B08A"],
        "B09" => &["nir09", "B9"],
        "B11" => &["swir16"],
        "B12" => &["swir22"],
        "SCL" => &["scl"],
        "AOT" => &["aot"],
        "WVP" => &["wvp"],
        "ELEVATION" => &["data", "dem", "dsm", "elevation"],
        _ => &[],
    }
}

/// Where an asset's file is, as the source wrote it plus where that points.
#[derive(Clone, Debug, PartialEq)]
pub struct AssetRef {
    /// The `href` / file as written in the catalog or manifest.
    pub href: String,
    pub location: Location,
    /// 1-based band inside the file when the source says (a multi-band asset).
    pub band: Option<usize>,
    /// Band names the source gives for the file (`eo:bands`), in band order.
    pub band_names: Vec<String>,
    /// Scale and offset the source states for the file's bands (`raster:bands`), in band
    /// order; empty when it states none.
    pub scaling: Vec<BandScaling>,
}

/// `scale` and `offset` of one band of a file, as a STAC asset's `raster:bands` (or STAC 1.1
/// `bands`) states them: value = DN x scale + offset.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BandScaling {
    pub scale: Option<f64>,
    pub offset: Option<f64>,
}

impl AssetRef {
    /// The stated scaling of the band this asset is read from.
    pub fn scaling(&self) -> BandScaling {
        let i = self.band.unwrap_or(1).saturating_sub(1);
        self.scaling.get(i).copied().unwrap_or_default()
    }
}

/// `x` rounded to 9 decimals: `0.0001 * 1e4` is 1, not 1.0000000000000002.
fn round9(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

/// A file or document: a local path, a URL, or a file of a `Catalog` artifact (by its path
/// relative to the catalog folder).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Location {
    Path(PathBuf),
    Url(String),
    Key(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Path(p) => write!(f, "{}", p.display()),
            Location::Url(u) => f.write_str(u),
            Location::Key(k) => write!(f, "catalog:{k}"),
        }
    }
}

/// `http://`, `s3://`, ...: a scheme followed by `://`.
pub fn has_scheme(s: &str) -> bool {
    match s.find("://") {
        Some(i) if i > 0 => {
            let scheme = &s[..i];
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        _ => false,
    }
}

impl Location {
    /// A location written in a spec or manifest: a URL when it has a scheme (`file://` is a
    /// path), else a path (GDAL `/vsi...` paths included).
    pub fn parse(s: &str) -> Location {
        if let Some(p) = s.strip_prefix("file://") {
            Location::Path(PathBuf::from(p))
        } else if has_scheme(s) {
            Location::Url(s.to_string())
        } else {
            Location::Path(PathBuf::from(s))
        }
    }

    /// Resolve `href`, written in the document at `self`, as STAC does: absolute URLs and paths
    /// stand alone, relative ones are relative to the document's folder.
    pub fn join(&self, href: &str) -> Location {
        if let Some(p) = href.strip_prefix("file://") {
            return Location::Path(PathBuf::from(p));
        }
        if has_scheme(href) {
            return Location::Url(href.to_string());
        }
        match self {
            Location::Path(base) => {
                if Path::new(href).is_absolute() {
                    return Location::Path(PathBuf::from(href));
                }
                let dir = base.parent().unwrap_or_else(|| Path::new(""));
                Location::Path(normalize_path(&dir.join(href)))
            }
            Location::Url(base) => Location::Url(join_url(base, href)),
            Location::Key(base) => {
                let joined = if let Some(abs) = href.strip_prefix('/') {
                    abs.to_string()
                } else {
                    match base.rfind('/') {
                        Some(i) => format!("{}/{href}", &base[..i]),
                        None => href.to_string(),
                    }
                };
                Location::Key(normalize_segments(&joined, false))
            }
        }
    }

    /// The GDAL path of a path or URL (`/vsicurl/` for http(s), `/vsis3/` for `s3://`, ...);
    /// `None` for a key of a `Catalog` artifact (the source maps those).
    pub fn gdal_path(&self) -> Option<String> {
        match self {
            Location::Path(p) => Some(p.to_string_lossy().into_owned()),
            Location::Url(u) => Some(vsi_url(u, false)),
            Location::Key(_) => None,
        }
    }
}

/// GDAL virtual file system path of a URL. `streaming` picks `/vsicurl_streaming/` for http(s)
/// (one sequential GET, right for dynamic documents such as search pages).
pub fn vsi_url(url: &str, streaming: bool) -> String {
    let prefixed = [
        ("s3://", "/vsis3/"),
        ("gs://", "/vsigs/"),
        ("az://", "/vsiaz/"),
        ("abfs://", "/vsiaz/"),
    ];
    for (scheme, vsi) in prefixed {
        if let Some(rest) = url.strip_prefix(scheme) {
            return format!("{vsi}{rest}");
        }
    }
    if streaming {
        format!("/vsicurl_streaming/{url}")
    } else {
        format!("/vsicurl/{url}")
    }
}

/// Lexically resolve `.` and `..` (no file system access: the file may not exist, and the
/// error should name the path as the catalog wrote it).
fn normalize_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Resolve `.` and `..` in a `/`-separated path; `absolute` keeps the leading `/`.
fn normalize_segments(path: &str, absolute: bool) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|s| *s != "..") {
                    out.pop();
                } else if !absolute {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let mut s = out.join("/");
    if absolute {
        s.insert(0, '/');
    }
    if path.ends_with('/') && !s.ends_with('/') {
        s.push('/');
    }
    s
}

/// RFC 3986 reference resolution, enough for STAC: `base` is an absolute URL, `href` is
/// relative (`x.json`, `../y/z.tif`, `/abs/path`, `//host/p`, `?page=2`).
pub fn join_url(base: &str, href: &str) -> String {
    if has_scheme(href) {
        return href.to_string();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let scheme = &base[..scheme_end];
    let after = &base[scheme_end..];
    let path_start = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..path_start];
    let rest = &after[path_start..];
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    if let Some(net) = href.strip_prefix("//") {
        return format!("{scheme}{net}");
    }
    if href.starts_with('?') {
        return format!("{scheme}{authority}{path}{href}");
    }
    let (href_path, href_tail) = match href.find(['?', '#']) {
        Some(i) => (&href[..i], &href[i..]),
        None => (href, ""),
    };
    let joined = if href_path.starts_with('/') {
        href_path.to_string()
    } else {
        let dir = match path.rfind('/') {
            Some(i) => &path[..=i],
            None => "/",
        };
        format!("{dir}{href_path}")
    };
    format!(
        "{scheme}{authority}{}{href_tail}",
        normalize_segments(&joined, true)
    )
}

/// `2020-01-15`, `20200115`, `2020-01-15T03:04:05Z` -> `2020-01-15`; `None` if not a date.
pub fn parse_date(s: &str) -> Option<String> {
    let s = s.trim();
    let (y, m, d) = if s.len() >= 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' {
        (s.get(0..4)?, s.get(5..7)?, s.get(8..10)?)
    } else if s.len() >= 8 && s.get(0..8)?.bytes().all(|b| b.is_ascii_digit()) {
        (s.get(0..4)?, s.get(4..6)?, s.get(6..8)?)
    } else {
        return None;
    };
    let rest = if s.as_bytes().get(4) == Some(&b'-') {
        s.get(10..)?
    } else {
        s.get(8..)?
    };
    if !(rest.is_empty() || rest.starts_with(['T', 't', ' '])) {
        return None;
    }
    let (y, m, d): (i32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1900 {
        return None;
    }
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

/// Sort by date then id, and drop later duplicates of an id (pages of a search may overlap).
pub fn sort_and_dedup(items: &mut Vec<SceneItem>) {
    items.sort_by(|a, b| (&a.date, &a.id).cmp(&(&b.date, &b.id)));
    let mut seen = std::collections::BTreeSet::new();
    items.retain(|i| seen.insert(i.id.clone()));
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Everything that can go wrong while listing or locating scenes; each names the file or URL.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
pub enum SourceError {
    #[error("`{location}` does not exist{context}")]
    #[diagnostic(
        code(source::not_found),
        help(
            "paths in a spec are relative to the spec's folder; paths in a manifest or catalog to that file's folder"
        )
    )]
    NotFound { location: String, context: String },

    /// A path a document names that the spec may not read (see `Confinement`).
    #[error("{message}")]
    #[diagnostic(code(source::outside), help("{help}"))]
    Outside { message: String, help: String },

    #[error("cannot read `{location}`: {detail}")]
    #[diagnostic(
        code(source::read),
        help("check the path or URL; for a URL, that the server is reachable from here")
    )]
    Read { location: String, detail: String },

    #[error("invalid {what} `{location}`: {detail}")]
    #[diagnostic(code(source::parse))]
    Parse {
        what: &'static str,
        location: String,
        detail: String,
    },

    #[error("item `{item}` ({origin}) has no asset for band `{band}` (assets: {available})")]
    #[diagnostic(
        code(source::asset),
        help("request only bands every scene has with `bands: [...]`")
    )]
    MissingAsset {
        item: String,
        origin: String,
        band: String,
        available: String,
    },

    #[error("no scenes in {source_name} for {query}")]
    #[diagnostic(
        code(source::empty),
        help("check `collection`, the target `grid`, `months` and `max_cloud_cover`")
    )]
    Empty { source_name: String, query: String },

    #[error("{detail} (`{location}`)")]
    #[diagnostic(code(source::unsupported))]
    Unsupported { location: String, detail: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, date: &str) -> SceneItem {
        SceneItem {
            id: id.to_string(),
            date: date.to_string(),
            collection: Some("sentinel-2-l2a".into()),
            origin: "x.json".into(),
            props: SceneProps::default(),
            assets: BTreeMap::new(),
        }
    }

    #[test]
    fn source_query_filters() {
        let q = SceneQuery {
            collection: "sentinel-2-l2a".into(),
            year: Some(2020),
            months: Some(vec![1, 2]),
            bbox: Some([105.0, 10.0, 106.0, 11.0]),
            max_cloud_cover: Some(30.0),
            tile: Some("48PXS".into()),
        };
        let mut i = item("a", "2020-02-10");
        assert!(q.keep(&i));
        i.date = "2020-03-01".into();
        assert!(!q.keep(&i), "month 3 is not asked for");
        i.date = "2021-02-01".into();
        assert!(!q.keep(&i), "wrong year");
        i.date = "2020-01-31".into();
        i.props.cloud_cover = Some(30.5);
        assert!(!q.keep(&i));
        i.props.cloud_cover = Some(29.0);
        i.props.tile = Some("T48PXS".into());
        assert!(q.keep(&i));
        i.props.tile = Some("MGRS-48PYS".into());
        assert!(!q.keep(&i));
        i.props.tile = None;
        i.props.bbox = Some([106.5, 10.0, 107.0, 11.0]);
        assert!(!q.keep(&i), "footprint east of the bbox");
        i.props.bbox = Some([105.9, 10.9, 107.0, 12.0]);
        assert!(q.keep(&i));
        i.collection = Some("SENTINEL-2-L2A".into());
        assert!(q.keep(&i));
        i.collection = Some("sentinel-1-grd".into());
        assert!(!q.keep(&i));
        let d = q.describe();
        assert!(d.contains("`sentinel-2-l2a`") && d.contains("2020") && d.contains("105.0000"));
    }

    #[test]
    fn source_boa_offset_rules() {
        let mut i = item("a", "2022-02-01");
        assert_eq!(i.boa_add_offset("B04"), 0.0, "unknown baseline: no offset");
        i.props.processing_baseline = Some("02.14".into());
        assert_eq!(i.boa_add_offset("B04"), 0.0);
        i.props.processing_baseline = Some("04.00".into());
        assert_eq!(i.boa_add_offset("B04"), -1000.0);
        i.props.processing_baseline = Some("5.09".into());
        assert_eq!(i.boa_add_offset("B04"), -1000.0);
        i.props.boa_add_offset = Some(BoaOffset::PerBand(BTreeMap::from([(
            "B04".to_string(),
            -900.0,
        )])));
        assert_eq!(i.boa_add_offset("b04"), -900.0);
        assert_eq!(
            i.boa_add_offset("B03"),
            -1000.0,
            "falls back to the baseline"
        );
        i.props.boa_add_offset = Some(BoaOffset::Uniform(-500.0));
        assert_eq!(i.boa_add_offset("B03"), -500.0);
        i.props.boa_offset_applied = Some(true);
        assert_eq!(i.boa_add_offset("B03"), 0.0);
    }

    #[test]
    fn source_asset_lookup_by_key_alias_and_eo_bands() {
        let mut i = item("S2A_X", "2020-01-01");
        let asset = |href: &str, names: &[&str]| AssetRef {
            href: href.into(),
            location: Location::Path(href.into()),
            band: None,
            band_names: names.iter().map(|s| s.to_string()).collect(),
            scaling: Vec::new(),
        };
        i.assets.insert("B04".into(), asset("b04.tif", &[]));
        i.assets.insert("nir08".into(), asset("nir08.tif", &[]));
        i.assets.insert("Scl".into(), asset("scl.tif", &[]));
        i.assets
            .insert("stack".into(), asset("stack.tif", &["VV", "VH"]));
        assert_eq!(i.asset_for("B04").unwrap().href, "b04.tif");
        assert_eq!(i.asset_for("B8A").unwrap().href, "nir08.tif");
        assert_eq!(i.asset_for("SCL").unwrap().href, "scl.tif");
        let vh = i.asset_for("VH").unwrap();
        assert_eq!((vh.href.as_str(), vh.band), ("stack.tif", Some(2)));
        let e = i.asset_for("B11").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("`S2A_X`") && msg.contains("`B11`") && msg.contains("x.json"),
            "{msg}"
        );
        assert!(msg.contains("`B04`, `Scl`, `nir08`, `stack`"), "{msg}");
    }

    #[test]
    fn source_href_resolution() {
        let item = Location::Url("https://h.example/stac/s2/items/a.json?x=1".into());
        assert_eq!(
            item.join("../data/a/B04.tif"),
            Location::Url("https://h.example/stac/s2/data/a/B04.tif".into())
        );
        assert_eq!(
            item.join("/root.json"),
            Location::Url("https://h.example/root.json".into())
        );
        assert_eq!(
            item.join("?page=2"),
            Location::Url("https://h.example/stac/s2/items/a.json?page=2".into())
        );
        assert_eq!(
            item.join("s3://bucket/k.tif"),
            Location::Url("s3://bucket/k.tif".into())
        );
        assert_eq!(
            join_url("http://127.0.0.1:8080", "catalog.json"),
            "http://127.0.0.1:8080/catalog.json"
        );
        let p = Location::Path("/data/cat/s2/items/a.json".into());
        assert_eq!(
            p.join("./../data/B04.tif"),
            Location::Path("/data/cat/s2/data/B04.tif".into())
        );
        assert_eq!(p.join("/abs/x.tif"), Location::Path("/abs/x.tif".into()));
        let k = Location::Key("sentinel-2-l2a/items/x.json".into());
        assert_eq!(
            k.join("../data/x/B04.tif"),
            Location::Key("sentinel-2-l2a/data/x/B04.tif".into())
        );
        assert_eq!(
            Location::Key("catalog.json".into()).join("./sentinel-2-l2a/collection.json"),
            Location::Key("sentinel-2-l2a/collection.json".into())
        );
        assert_eq!(
            Location::parse("https://x/y.tif").gdal_path().unwrap(),
            "/vsicurl/https://x/y.tif"
        );
        assert_eq!(
            Location::parse("s3://b/k.tif").gdal_path().unwrap(),
            "/vsis3/b/k.tif"
        );
        assert_eq!(
            Location::parse("file:///a/b.tif").gdal_path().unwrap(),
            "/a/b.tif"
        );
        assert!(!has_scheme("C:/x") && !has_scheme("/a://b") && has_scheme("s3://b"));
    }

    #[test]
    fn source_dates_parse_and_sort() {
        assert_eq!(parse_date("2020-01-15").as_deref(), Some("2020-01-15"));
        assert_eq!(parse_date("20200115").as_deref(), Some("2020-01-15"));
        assert_eq!(
            parse_date("2022-03-04T03:21:11.024Z").as_deref(),
            Some("2022-03-04")
        );
        assert_eq!(parse_date("2020-13-01"), None);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date("2020-01-15x"), None);
        let mut v = vec![
            item("b", "2020-01-02"),
            item("a", "2020-01-02"),
            item("z", "2020-01-01"),
            item("a", "2020-01-02"),
        ];
        sort_and_dedup(&mut v);
        let ids: Vec<&str> = v.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["z", "a", "b"]);
    }
}
