//! The STAC 1.0 static catalog of the simulated scenes: one catalog, four collections, one
//! item per scene. Every href is relative, so the folder can be moved or served as is.
//!
//! Layout: `catalog.json`, `<collection>/collection.json`, `<collection>/items/<id>.json`,
//! assets at `<collection>/data/<id>/<BAND>.tif`.

use serde_json::{Value, json};

use crate::raster::Grid;

pub const STAC_VERSION: &str = "1.0.0";
pub const EO: &str = "https://stac-extensions.github.io/eo/v1.1.0/schema.json";
pub const PROJ: &str = "https://stac-extensions.github.io/projection/v1.1.0/schema.json";
pub const RASTER: &str = "https://stac-extensions.github.io/raster/v1.1.0/schema.json";
pub const SAR: &str = "https://stac-extensions.github.io/sar/v1.0.0/schema.json";
pub const SAT: &str = "https://stac-extensions.github.io/satellite/v1.0.0/schema.json";
pub const VIEW: &str = "https://stac-extensions.github.io/view/v1.0.0/schema.json";

pub const GEOTIFF: &str = "image/tiff; application=geotiff";
pub const JSON: &str = "application/json";

pub const S2: &str = "sentinel-2-l2a";
pub const S1: &str = "sentinel-1-grd";
pub const PALSAR: &str = "alos-palsar2-scansar";
pub const DSM: &str = "dsm";
/// The collections, in catalog order.
pub const COLLECTIONS: [&str; 4] = [S2, S1, PALSAR, DSM];

/// Footprint of the area in WGS 84: `[west, south, east, north]` and the polygon ring.
#[derive(Clone, Debug)]
pub struct Footprint {
    pub bbox: [f64; 4],
    pub ring: Vec<[f64; 2]>,
}

impl Footprint {
    pub fn geometry(&self) -> Value {
        json!({"type": "Polygon", "coordinates": [self.ring]})
    }
}

/// `eo:bands` entry of a Sentinel-2 band.
pub fn s2_eo_band(name: &str) -> Value {
    let (common, centre, fwhm) = match name {
        "B02" => ("blue", 0.49, 0.098),
        "B03" => ("green", 0.56, 0.045),
        "B04" => ("red", 0.665, 0.038),
        "B05" => ("rededge", 0.704, 0.019),
        "B06" => ("rededge", 0.74, 0.018),
        "B07" => ("rededge", 0.783, 0.028),
        "B08" => ("nir", 0.842, 0.145),
        "B8A" => ("nir08", 0.865, 0.033),
        "B11" => ("swir16", 1.61, 0.143),
        "B12" => ("swir22", 2.19, 0.242),
        _ => return json!({"name": name}),
    };
    json!({"name": name, "common_name": common, "center_wavelength": centre, "full_width_half_max": fwhm})
}

/// The `proj:` fields of an asset on `grid`.
pub fn proj_fields(grid: &Grid) -> (Value, Value) {
    let g = grid.geo_transform;
    (
        json!([grid.height, grid.width]),
        json!([g[1], g[2], g[0], g[4], g[5], g[3]]),
    )
}

/// A GeoTIFF asset at `../data/<item>/<file>` relative to the item.
pub fn asset(item: &str, file: &str, title: &str, grid: &Grid, extra: Value) -> Value {
    let (shape, transform) = proj_fields(grid);
    let mut a = json!({
        "href": format!("../data/{item}/{file}"),
        "type": GEOTIFF,
        "title": title,
        "roles": ["data"],
        "gsd": grid.pixel_size().0,
        "proj:shape": shape,
        "proj:transform": transform,
    });
    if let (Value::Object(a), Value::Object(e)) = (&mut a, extra) {
        a.extend(e);
    }
    a
}

/// Links of an item: root, parent and collection.
pub fn item_links() -> Value {
    json!([
        {"rel": "root", "href": "../../catalog.json", "type": JSON},
        {"rel": "parent", "href": "../collection.json", "type": JSON},
        {"rel": "collection", "href": "../collection.json", "type": JSON},
    ])
}

/// A STAC item.
pub fn item(
    collection: &str,
    id: &str,
    extensions: &[&str],
    footprint: &Footprint,
    properties: Value,
    assets: Value,
) -> Value {
    json!({
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": extensions,
        "id": id,
        "collection": collection,
        "geometry": footprint.geometry(),
        "bbox": footprint.bbox,
        "properties": properties,
        "links": item_links(),
        "assets": assets,
    })
}

/// A collection with links to its items (ids in order) and a temporal extent.
#[allow(clippy::too_many_arguments)]
pub fn collection(
    id: &str,
    title: &str,
    description: &str,
    extensions: &[&str],
    footprint: &Footprint,
    interval: (Option<String>, Option<String>),
    items: &[String],
    summaries: Value,
) -> Value {
    let mut links = vec![
        json!({"rel": "root", "href": "../catalog.json", "type": JSON}),
        json!({"rel": "parent", "href": "../catalog.json", "type": JSON}),
    ];
    links.extend(
        items
            .iter()
            .map(|i| json!({"rel": "item", "href": format!("./items/{i}.json"), "type": JSON})),
    );
    json!({
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": extensions,
        "id": id,
        "title": title,
        "description": description,
        "license": "CC0-1.0",
        "extent": {
            "spatial": {"bbox": [footprint.bbox]},
            "temporal": {"interval": [[interval.0, interval.1]]},
        },
        "summaries": summaries,
        "links": links,
    })
}

/// The root catalog linking the four collections.
pub fn catalog(id: &str, description: &str) -> Value {
    let mut links = vec![json!({"rel": "root", "href": "./catalog.json", "type": JSON})];
    links.extend(
        COLLECTIONS.iter().map(
            |c| json!({"rel": "child", "href": format!("./{c}/collection.json"), "type": JSON}),
        ),
    );
    json!({
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": id,
        "title": "lulc simulated area of interest",
        "description": description,
        "links": links,
    })
}

/// Serialise JSON as written to disk: pretty, with a final newline.
pub fn to_bytes(v: &Value) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).unwrap_or_default();
    s.push(b'\n');
    s
}
