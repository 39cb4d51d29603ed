//! Which tiles cover an area (`lulc tiles --aoi FILE`), and the grid of one tile of a regular
//! tiling of the user's own (`grid: { crs, bbox, res, tile_px }` of `acquire`).
//!
//! - **Sentinel-2 (MGRS) tiles.** A zone's tiles cover the zone's 6 degree strip of longitude
//!   (overlapping into the neighbours, as the tiles of ESA's grid do): for each UTM zone the
//!   area crosses, the part of the area inside the zone's strip, in the zone's UTM CRS (north
//!   or south of the equator), against every 100 km square near it; a square's tile (its id
//!   from the square's corner and the latitude band of its centre, its footprint from
//!   [`crate::mgrs::s2_tile`]) covers the area when its 109.8 km footprint intersects that part.
//! - **A regular tiling**: `bbox` split into squares of `tile_px` pixels of `res`, from the
//!   top-left corner, named `r<row>c<col>` (rows from the top, both from 0, zero-padded to the
//!   widest number: `r03c12`); the last row and column end at the bbox's edge. Tiles abut: no
//!   overlap, so no pixel is in two tiles.

use std::path::Path;

use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use gdal::vector::{Geometry, LayerAccess};
use gdal::{Dataset, DatasetOptions, GdalOpenFlags};
use serde::{Deserialize, Serialize};

use crate::mgrs;
use crate::raster::{Grid, gdal_config_quiet, gdal_detail};

/// An area of interest: the union of every polygon of a vector file, in longitude/latitude.
pub struct Aoi {
    lonlat: Geometry,
}

/// Why an area or a tiling cannot be used; every message names the file or the value.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TilingError {
    #[error("cannot read the area `{}`: {detail}", .path.display())]
    #[diagnostic(code(tiling::aoi))]
    Aoi {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("the tiling `grid`: {0}")]
    #[diagnostic(code(tiling::grid))]
    Grid(String),
    #[error("{0}")]
    #[diagnostic(code(tiling::geometry))]
    Geometry(String),
}

fn srs(def: &str) -> Result<SpatialRef, TilingError> {
    let mut s = SpatialRef::from_definition(def)
        .map_err(|e| TilingError::Geometry(format!("CRS `{def}`: {}", gdal_detail(e))))?;
    s.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    Ok(s)
}

fn transform(g: &Geometry, from: &str, to: &str) -> Result<Geometry, TilingError> {
    let t = CoordTransform::new(&srs(from)?, &srs(to)?)
        .map_err(|e| TilingError::Geometry(gdal_detail(e)))?;
    g.transform(&t)
        .map_err(|e| TilingError::Geometry(format!("reprojecting the area: {}", gdal_detail(e))))
}

fn geom_err(e: gdal::errors::GdalError) -> TilingError {
    TilingError::Geometry(gdal_detail(e))
}

/// A polygon of `b` with each edge cut in 16, so that it stays true when reprojected.
fn box_polygon(b: [f64; 4]) -> Result<Geometry, TilingError> {
    let [x0, y0, x1, y1] = b;
    let mut ring =
        Geometry::empty(gdal::vector::OGRwkbGeometryType::wkbLinearRing).map_err(geom_err)?;
    let n = 16;
    let lerp = |a: f64, b: f64, i: usize| a + (b - a) * i as f64 / n as f64;
    for i in 0..n {
        ring.add_point_2d((lerp(x0, x1, i), y1));
    }
    for i in 0..n {
        ring.add_point_2d((x1, lerp(y1, y0, i)));
    }
    for i in 0..n {
        ring.add_point_2d((lerp(x1, x0, i), y0));
    }
    for i in 0..n {
        ring.add_point_2d((x0, lerp(y0, y1, i)));
    }
    ring.add_point_2d((x0, y1));
    let mut poly =
        Geometry::empty(gdal::vector::OGRwkbGeometryType::wkbPolygon).map_err(geom_err)?;
    poly.add_geometry(ring).map_err(geom_err)?;
    Ok(poly)
}

impl Aoi {
    /// The polygons of every layer of `path` (GeoJSON, GeoPackage, Shapefile, ...), in their
    /// layer's CRS (WGS 84 when a layer has none).
    pub fn read(path: &Path) -> Result<Aoi, TilingError> {
        gdal_config_quiet();
        let err = |detail: String| TilingError::Aoi {
            path: path.to_path_buf(),
            detail,
        };
        if !path.exists() {
            return Err(err("no such file".into()));
        }
        let ds = Dataset::open_ex(
            path,
            DatasetOptions {
                open_flags: GdalOpenFlags::GDAL_OF_VECTOR,
                ..Default::default()
            },
        )
        .map_err(|e| err(gdal_detail(e)))?;
        let mut union: Option<Geometry> = None;
        for mut layer in ds.layers() {
            let crs = layer
                .spatial_ref()
                .and_then(|s| s.to_wkt().ok())
                .unwrap_or_else(|| "EPSG:4326".to_string());
            for feature in layer.features() {
                let Some(g) = feature.geometry() else {
                    continue;
                };
                let mut g = transform(g, &crs, "EPSG:4326").map_err(|e| err(e.to_string()))?;
                // Boundaries with self-intersecting rings (common in country outlines) would
                // make every intersection below fail.
                if !g.is_valid() {
                    g = g
                        .make_valid(&gdal::cpl::CslStringList::new())
                        .map_err(|e| err(format!("cannot repair a polygon: {}", gdal_detail(e))))?;
                }
                if g.area() <= 0.0 {
                    continue;
                }
                union = Some(match union {
                    None => g,
                    Some(u) => u
                        .union(&g)
                        .ok_or_else(|| err("cannot merge its polygons".into()))?,
                });
            }
        }
        let lonlat = union.ok_or_else(|| err("it holds no polygon".into()))?;
        Ok(Aoi { lonlat })
    }

    /// `[west, south, east, north]` in degrees.
    pub fn bbox(&self) -> [f64; 4] {
        let e = self.lonlat.envelope();
        [e.MinX, e.MinY, e.MaxX, e.MaxY]
    }

    /// The Sentinel-2 tiles that cover the area (module doc), sorted.
    pub fn s2_tiles(&self) -> Result<Vec<String>, TilingError> {
        let [w, s, e, n] = self.bbox();
        let zone_of = |lon: f64| (((lon + 180.0) / 6.0).floor() as i64).clamp(0, 59) as u32 + 1;
        let mut out = std::collections::BTreeSet::new();
        for zone in zone_of(w)..=zone_of(e) {
            let lon0 = -180.0 + 6.0 * f64::from(zone - 1);
            for (south, lat0, lat1) in [
                (true, s.max(-80.0), n.min(0.0)),
                (false, s.max(0.0), n.min(84.0)),
            ] {
                if lat0 >= lat1 {
                    continue;
                }
                let strip = box_polygon([lon0, lat0, lon0 + 6.0, lat1])?;
                let part = self.lonlat.intersection(&strip).ok_or_else(|| {
                    TilingError::Geometry(format!(
                        "cannot intersect the area with UTM zone {zone}'s strip of longitude"
                    ))
                })?;
                if part.is_empty() || part.area() <= 0.0 {
                    continue;
                }
                let epsg = if south { 32700 + zone } else { 32600 + zone };
                let crs = format!("EPSG:{epsg}");
                let utm = transform(&part, "EPSG:4326", &crs)?;
                let env = utm.envelope();
                let sq = |v: f64| (v / 100_000.0).floor() as i64;
                for col in (sq(env.MinX) - 1)..=sq(env.MaxX) {
                    for row in (sq(env.MinY) - 1)..=(sq(env.MaxY) + 1) {
                        let (x, y) = ((col * 100_000) as f64, (row * 100_000) as f64);
                        if !(100_000.0..900_000.0).contains(&x) {
                            continue;
                        }
                        let centre =
                            box_polygon([x + 49_999.0, y + 49_999.0, x + 50_001.0, y + 50_001.0])?;
                        let c = transform(&centre, &crs, "EPSG:4326")?.envelope();
                        let id = mgrs::square_id(zone, (c.MinY + c.MaxY) / 2.0, x, y);
                        let Ok(tile) = mgrs::s2_tile(&id) else {
                            continue;
                        };
                        if tile.epsg != epsg {
                            continue;
                        }
                        if box_polygon(tile.bbox())?.intersects(&utm) {
                            out.insert(tile.id);
                        }
                    }
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// A regular tiling of the user's own: `bbox` in `crs` cut into `tile_px` squares of `res`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridTiling {
    pub crs: String,
    pub bbox: [f64; 4],
    pub res: f64,
    pub tile_px: usize,
}

impl GridTiling {
    /// The whole grid.
    pub fn grid(&self) -> Result<Grid, TilingError> {
        if self.tile_px == 0 {
            return Err(TilingError::Grid("`tile_px` must be positive".into()));
        }
        Grid::from_bbox(&self.crs, self.bbox.into(), self.res)
            .map_err(|e| TilingError::Grid(e.to_string()))
    }

    /// Columns and rows of tiles.
    pub fn counts(&self) -> Result<(usize, usize), TilingError> {
        let g = self.grid()?;
        Ok((
            g.width.div_ceil(self.tile_px),
            g.height.div_ceil(self.tile_px),
        ))
    }

    fn name(&self, col: usize, row: usize, counts: (usize, usize)) -> String {
        let wc = (counts.0.saturating_sub(1)).to_string().len();
        let wr = (counts.1.saturating_sub(1)).to_string().len();
        format!("r{row:0wr$}c{col:0wc$}")
    }

    /// The grid of tile `name` (`r03c12`): `tile_px` square, cut at the bbox's edge.
    pub fn tile_grid(&self, name: &str) -> Result<Grid, TilingError> {
        let g = self.grid()?;
        let counts = self.counts()?;
        let parsed = name
            .strip_prefix('r')
            .and_then(|r| r.split_once('c'))
            .and_then(|(r, c)| Some((c.parse::<usize>().ok()?, r.parse::<usize>().ok()?)));
        let bad = || {
            TilingError::Grid(format!(
                "`{name}` is no tile of this tiling: its tiles are {} .. {} ({} columns x {} rows)",
                self.name(0, 0, counts),
                self.name(counts.0 - 1, counts.1 - 1, counts),
                counts.0,
                counts.1
            ))
        };
        let (col, row) = parsed.ok_or_else(bad)?;
        if col >= counts.0 || row >= counts.1 {
            return Err(bad());
        }
        let (x, y) = (col * self.tile_px, row * self.tile_px);
        Ok(g.window_grid(&crate::raster::Window::new(
            x,
            y,
            self.tile_px.min(g.width - x),
            self.tile_px.min(g.height - y),
        )))
    }

    /// The tiles that intersect the area, in row-major order.
    pub fn covering(&self, aoi: &Aoi) -> Result<Vec<String>, TilingError> {
        let g = self.grid()?;
        let counts = self.counts()?;
        let area = transform(&aoi.lonlat, "EPSG:4326", &g.crs_wkt)?;
        let mut out = Vec::new();
        for row in 0..counts.1 {
            for col in 0..counts.0 {
                let name = self.name(col, row, counts);
                let b = self.tile_grid(&name)?.bbox();
                if box_polygon([b.min_x, b.min_y, b.max_x, b.max_y])?.intersects(&area) {
                    out.push(name);
                }
            }
        }
        Ok(out)
    }

    /// Every tile's name, in row-major order.
    pub fn names(&self) -> Result<Vec<String>, TilingError> {
        let counts = self.counts()?;
        Ok((0..counts.1)
            .flat_map(|r| (0..counts.0).map(move |c| (c, r)))
            .map(|(c, r)| self.name(c, r, counts))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aoi(dir: &Path, name: &str, ring: &[(f64, f64)]) -> Aoi {
        let coords: Vec<String> = ring.iter().map(|(x, y)| format!("[{x}, {y}]")).collect();
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                r#"{{"type": "FeatureCollection", "features": [{{"type": "Feature", "properties": {{}},
                "geometry": {{"type": "Polygon", "coordinates": [[{}]]}}}}]}}"#,
                coords.join(", ")
            ),
        )
        .unwrap();
        Aoi::read(&path).unwrap()
    }

    fn square(w: f64, s: f64, e: f64, n: f64) -> Vec<(f64, f64)> {
        vec![(w, s), (e, s), (e, n), (w, n), (w, s)]
    }

    #[test]
    fn the_sentinel2_tiles_of_an_area_in_hanoi_and_one_across_two_utm_zones() {
        let dir = tempfile::tempdir().unwrap();
        // Central Hanoi lies in tile 48QWJ alone.
        let hanoi = aoi(
            dir.path(),
            "hanoi.geojson",
            &square(105.80, 21.00, 105.90, 21.05),
        );
        assert_eq!(hanoi.s2_tiles().unwrap(), ["48QWJ"]);
        // Across 108 E near Da Nang: tiles of zones 48 and 49, each covering its part.
        let border = aoi(
            dir.path(),
            "border.geojson",
            &square(107.9, 16.0, 108.1, 16.1),
        );
        let tiles = border.s2_tiles().unwrap();
        assert!(tiles.iter().any(|t| t.starts_with("48")), "{tiles:?}");
        assert!(tiles.iter().any(|t| t.starts_with("49")), "{tiles:?}");
        for t in &tiles {
            // Every tile listed covers some of the area.
            let s2 = mgrs::s2_tile(t).unwrap();
            let utm = transform(&border.lonlat, "EPSG:4326", &s2.crs()).unwrap();
            assert!(box_polygon(s2.bbox()).unwrap().intersects(&utm), "{t}");
        }
        // South of the equator the tiles are in the southern UTM CRS.
        let java = aoi(
            dir.path(),
            "java.geojson",
            &square(106.80, -6.25, 106.85, -6.20),
        );
        let t = java.s2_tiles().unwrap();
        assert!(
            !t.is_empty() && t.iter().all(|t| mgrs::s2_tile(t).unwrap().epsg == 32748),
            "{t:?}"
        );
    }

    #[test]
    fn a_regular_tiling_names_its_tiles_and_cuts_the_last_ones_at_the_edge() {
        let tiling = GridTiling {
            crs: "EPSG:32648".into(),
            bbox: [500_000.0, 2_000_000.0, 525_000.0, 2_012_000.0],
            res: 10.0,
            tile_px: 1000,
        };
        // 2500 x 1200 px: 3 columns, 2 rows.
        assert_eq!(tiling.counts().unwrap(), (3, 2));
        assert_eq!(
            tiling.names().unwrap(),
            ["r0c0", "r0c1", "r0c2", "r1c0", "r1c1", "r1c2"]
        );
        let g = tiling.tile_grid("r1c2").unwrap();
        assert_eq!((g.width, g.height), (500, 200));
        assert_eq!(g.geo_transform[0], 520_000.0);
        assert_eq!(g.geo_transform[3], 2_002_000.0);
        let e = tiling.tile_grid("r2c0").unwrap_err().to_string();
        assert!(e.contains("r0c0 .. r1c2 (3 columns x 2 rows)"), "{e}");
        // An area over the first column only (lon/lat of a box inside x 500-510 km).
        let dir = tempfile::tempdir().unwrap();
        let mut corners: Vec<crate::vector::PointFeature> = [
            (501_000.0, 2_001_000.0),
            (509_000.0, 2_001_000.0),
            (509_000.0, 2_011_000.0),
            (501_000.0, 2_011_000.0),
        ]
        .into_iter()
        .map(|(x, y)| crate::vector::PointFeature {
            id: 0,
            x,
            y,
            attrs: Default::default(),
        })
        .collect();
        crate::vector::reproject_points(&mut corners, "EPSG:32648", "EPSG:4326").unwrap();
        let mut ring: Vec<(f64, f64)> = corners.iter().map(|p| (p.x, p.y)).collect();
        ring.push(ring[0]);
        let area = aoi(dir.path(), "col0.geojson", &ring);
        assert_eq!(tiling.covering(&area).unwrap(), ["r0c0", "r1c0"]);
    }
}
