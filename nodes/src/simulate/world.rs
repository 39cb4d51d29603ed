//! The simulated world shared by every renderer: the landscape, the grids of each product, the
//! truth and calendars of each simulated year, and small writers on top of
//! [`crate::raster::RasterWriter`].

use std::collections::BTreeMap;
use std::path::Path;

use crate::raster::{BBox, Compression, DType, Grid, RasterMeta, RasterWriter, WriteOptions};

use super::SimError;
use super::landscape::{
    CLASS_COLOURS, CLASS_COUNT, CLASS_NAMES, DECIDUOUS, EBF, ENF, Landscape, MANGROVE, ORCHARD,
    PLANTATION, SOLAR, URBAN,
};
use super::rng::Rng;
use super::surface::{PixelYear, pixel_years};

/// CRS of every simulated raster and vector: WGS 84 / UTM zone 48N.
pub const CRS: &str = "EPSG:32648";
/// Centre of the default area (UTM 48N), in the Red River delta near Ninh Binh / Nam Dinh.
pub const CENTRE: (f64, f64) = (622_560.0, 2_252_560.0);

/// Compression of every simulated GeoTIFF: DEFLATE (readable by every GDAL) at a fast level.
pub fn write_options() -> WriteOptions {
    WriteOptions {
        compression: Compression::Deflate { level: 1 },
        ..WriteOptions::default()
    }
}

pub struct World {
    pub seed: u64,
    pub land: Landscape,
    pub crs_wkt: String,
    /// 10 m grid of the area; 20 m, 25 m and 30 m grids cover the same extent (partial last
    /// pixels included).
    pub grid10: Grid,
    pub grid20: Grid,
    pub grid25: Grid,
    pub grid30: Grid,
    /// Latitude and longitude of the centre (degrees).
    pub lat: f64,
    pub lon: f64,
    pub truth: BTreeMap<i32, Vec<u8>>,
    pub calendars: BTreeMap<i32, Vec<PixelYear>>,
}

impl World {
    /// An area of `size` x `size` 10 m pixels centred at `centre` (UTM 48N).
    pub fn new(
        seed: u64,
        size: usize,
        centre: (f64, f64),
        years: (i32, i32),
        lat_lon: (f64, f64),
    ) -> Result<World, SimError> {
        let land = Landscape::new(seed, size);
        let half = size as f64 * 5.0;
        let bbox = BBox {
            min_x: centre.0 - half,
            min_y: centre.1 - half,
            max_x: centre.0 + half,
            max_y: centre.1 + half,
        };
        let grid10 = Grid::from_bbox(CRS, bbox, 10.0)?;
        let grid20 = Grid::from_bbox(CRS, bbox, 20.0)?;
        let grid25 = Grid::from_bbox(CRS, bbox, 25.0)?;
        let grid30 = Grid::from_bbox(CRS, bbox, 30.0)?;
        let mut truth = BTreeMap::new();
        let mut calendars = BTreeMap::new();
        for year in years.0..=years.1 {
            let t = land.truth(year);
            calendars.insert(year, pixel_years(&land, &t, year));
            truth.insert(year, t);
        }
        Ok(World {
            seed,
            crs_wkt: grid10.crs_wkt.clone(),
            land,
            grid10,
            grid20,
            grid25,
            grid30,
            lat: lat_lon.0,
            lon: lat_lon.1,
            truth,
            calendars,
        })
    }

    pub fn pixel_years(&self, year: i32) -> Result<&[PixelYear], SimError> {
        self.calendars
            .get(&year)
            .map(Vec::as_slice)
            .ok_or_else(|| SimError::Internal {
                detail: format!("no calendar for year {year}"),
            })
    }

    /// Write the truth map of a year: UInt8, class colours and names, nodata 0.
    pub fn write_truth(&self, year: i32, path: &Path) -> Result<(), SimError> {
        let data = self.truth.get(&year).ok_or_else(|| SimError::Internal {
            detail: format!("no truth for year {year}"),
        })?;
        let meta = RasterMeta {
            grid: self.grid10.clone(),
            dtype: DType::U8,
            nodata: Some(0.0),
            band_names: vec!["class".to_string()],
        };
        let mut w = RasterWriter::create(path, &meta, &write_options())?;
        w.write_window_u8(1, &self.grid10.full_window(), data)?;
        let mut colours = vec![(0u8, [0, 0, 0, 0])];
        let mut names = Vec::new();
        for i in 0..CLASS_COUNT {
            let [r, g, b] = CLASS_COLOURS[i];
            colours.push((i as u8 + 1, [r, g, b, 255]));
            names.push((i as u8 + 1, CLASS_NAMES[i]));
        }
        w.set_color_table(1, &colours)?;
        w.set_category_names(1, &names)?;
        w.set_metadata_item("YEAR", &year.to_string())?;
        w.finish()?;
        Ok(())
    }

    /// Write the 30 m DSM: terrain plus canopy and building heights as they were when the
    /// DSM was acquired (`dsm_year`), AW3D30-like noise, whole metres.
    pub fn write_dsm(&self, dsm_year: i32, path: &Path) -> Result<(), SimError> {
        let land = &self.land;
        let size = land.size;
        let g = &self.grid30;
        let mut sum = vec![0.0f64; g.width * g.height];
        let mut count = vec![0u32; g.width * g.height];
        for y in 0..size {
            for x in 0..size {
                let p = y * size + x;
                let height = match land.class_at(p, dsm_year) {
                    EBF => 22.0,
                    ENF => 18.0,
                    DECIDUOUS => 15.0,
                    PLANTATION => 11.0,
                    MANGROVE => 7.0,
                    ORCHARD => 5.0,
                    URBAN => 3.0 + 12.0 * land.texture[p][0],
                    SOLAR => 2.0,
                    _ => 0.0,
                };
                let c = (y / 3).min(g.height - 1) * g.width + (x / 3).min(g.width - 1);
                sum[c] += f64::from(land.elevation[p] + height);
                count[c] += 1;
            }
        }
        let mut rng = Rng::new(&[self.seed, 500]);
        let dsm: Vec<f32> = sum
            .iter()
            .zip(&count)
            .map(|(s, &k)| (s / f64::from(k.max(1)) + 1.5 * rng.normal()).round() as f32)
            .collect();
        write_f32(path, g, "DSM", Some(-9999.0), &dsm)
    }
}

/// Write a single-band UInt16 GeoTIFF.
pub fn write_u16(
    path: &Path,
    grid: &Grid,
    band: &str,
    nodata: Option<f64>,
    data: &[u16],
) -> Result<(), SimError> {
    let meta = RasterMeta {
        grid: grid.clone(),
        dtype: DType::U16,
        nodata,
        band_names: vec![band.to_string()],
    };
    let mut w = RasterWriter::create(path, &meta, &write_options())?;
    w.write_window_u16(1, &grid.full_window(), data)?;
    w.finish()?;
    Ok(())
}

/// Write a single-band Float32 GeoTIFF.
pub fn write_f32(
    path: &Path,
    grid: &Grid,
    band: &str,
    nodata: Option<f64>,
    data: &[f32],
) -> Result<(), SimError> {
    let meta = RasterMeta {
        grid: grid.clone(),
        dtype: DType::F32,
        nodata,
        band_names: vec![band.to_string()],
    };
    let mut w = RasterWriter::create(path, &meta, &write_options())?;
    w.write_window_f32(1, &grid.full_window(), data)?;
    w.finish()?;
    Ok(())
}
