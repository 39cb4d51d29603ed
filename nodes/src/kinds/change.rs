//! `change`: what changed between the yearly maps (the change analysis of the method): how many times
//! each pixel changed class, a from-to transition matrix between two years, and the area of
//! every class per year (e.g. solar panels since 2019, forest lost).
//!
//! ## Ports
//! - in `maps` (`Map`, many): the yearly maps of one area, on one grid and legend (e.g.
//!   `maps: map` gathers every year's `map[year=Y]`).
//! - out `change` (`Change`):
//!   - `frequency.tif`: UInt8, per pixel the number of years whose class differs from the year
//!     before (0 .. years - 1); 255 (nodata) where any map has no class.
//!   - `transitions.csv`: `from_code,from_class,to_code,to_class,pixels,km2`, every pair of
//!     classes seen between the years `from` and `to`, in legend order (the diagonal is the
//!     unchanged area); over the pixels with a class in every year, as `frequency.tif`.
//!     On a mosaic, whose pixels have the area of the tile they come from, a transition's
//!     `km2` counts its pixels at the `from` class's mean pixel area that year.
//!   - `areas.csv`: `year,code,class,pixels,km2`, every legend class in every year (from the
//!     maps' class counts and areas, see [`crate::artifacts::MapMeta::class_areas_km2`]; `km2`
//!     empty for a geographic CRS).
//!   - `areas.png`: class area per year as a line plot, one line per class present in some
//!     year, in its legend colour (bundled font, deterministic bytes).
//!
//! ## Params (defaults in brackets)
//! - `from` [the first year], `to` [the last year]: the two years of the transition matrix.
//!
//! Metrics: `years`, `changed_pixels` and `changed_share` (pixels with a class every year that
//! changed at least once), `nodata_pixels`.
//!
//! Fails, naming the steps, on: fewer than two maps, a map without a year, two maps of one
//! year, maps on different grids or with different legends, `from`/`to` not among the years.
//!
//! ```yaml
//! nodes:
//!   change:
//!     kind: change
//!     inputs: { maps: map }            # every year
//!     params: { from: 2017, to: 2022 }
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use lulc_engine::{Inputs, Node, NodeError, Port, RunCtx};
use serde::{Deserialize, Serialize};

use crate::artifacts::{MAP, MapMeta};
use crate::classes::Legend;
use crate::kinds::infer::MAP_FILE;
use crate::kinds::{blockwise, csv_field, open_all, raster_err};
use crate::plot::{FONT_FAMILY, encode_png, register_font};
use crate::raster::{DType, RasterMeta, RasterReader, RasterWriter, TILE, Window, WriteOptions};

/// Artifact type of the output.
pub const CHANGE: &str = "Change";
pub const FREQUENCY_FILE: &str = "frequency.tif";
pub const TRANSITIONS_FILE: &str = "transitions.csv";
pub const AREAS_FILE: &str = "areas.csv";
pub const AREAS_PNG: &str = "areas.png";
/// Nodata of `frequency.tif`.
pub const FREQUENCY_NODATA: u8 = 255;

pub struct Change;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChangeParams {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// One year's map: its metadata and file.
struct YearMap {
    year: i64,
    step: String,
    meta: MapMeta,
    path: PathBuf,
}

/// What one block contributes.
struct Block {
    frequency: Vec<u8>,
    transitions: BTreeMap<(u8, u8), u64>,
    changed: u64,
    nodata: u64,
}

fn read_maps(inputs: &Inputs) -> Result<Vec<YearMap>, NodeError> {
    let mut maps = Vec::new();
    for art in inputs.all("maps") {
        let meta: MapMeta = serde_json::from_value(art.meta.clone()).map_err(|e| {
            NodeError::new(format!(
                "input `maps` (from `{}`) is not a Map artifact: {e}",
                art.step_id
            ))
        })?;
        let Some(year) = meta.year else {
            return Err(NodeError::new(format!(
                "the map from `{}` has no year",
                art.step_id
            )));
        };
        maps.push(YearMap {
            year,
            step: art.step_id.clone(),
            path: art.file(MAP_FILE)?.to_path_buf(),
            meta,
        });
    }
    maps.sort_by_key(|m| m.year);
    if maps.len() < 2 {
        return Err(NodeError::new(format!(
            "`change` needs the maps of at least two years, got {}",
            maps.len()
        ))
        .with_help("connect every year's map, e.g. `inputs: { maps: map }`"));
    }
    for pair in maps.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.year == b.year {
            return Err(NodeError::new(format!(
                "two maps of {}: from `{}` and `{}`",
                a.year, a.step, b.step
            )));
        }
    }
    let first = &maps[0];
    for m in &maps[1..] {
        if m.meta.grid != first.meta.grid {
            return Err(NodeError::new(format!(
                "the maps from `{}` and `{}` are on different grids",
                first.step, m.step
            )));
        }
        if m.meta.legend != first.meta.legend {
            return Err(NodeError::new(format!(
                "the maps from `{}` and `{}` have different legends",
                first.step, m.step
            )));
        }
    }
    Ok(maps)
}

fn block(readers: &[RasterReader], w: &Window, from: usize, to: usize) -> Result<Block, NodeError> {
    let classes: Vec<Vec<u8>> = readers
        .iter()
        .map(|r| r.read_window_u8(1, w).map_err(raster_err))
        .collect::<Result<_, _>>()?;
    let n = w.len();
    let mut out = Block {
        frequency: vec![FREQUENCY_NODATA; n],
        transitions: BTreeMap::new(),
        changed: 0,
        nodata: 0,
    };
    for i in 0..n {
        if classes.iter().any(|c| c[i] == 0) {
            out.nodata += 1;
            continue;
        }
        let times = classes.windows(2).filter(|p| p[0][i] != p[1][i]).count();
        out.frequency[i] = times.min(usize::from(FREQUENCY_NODATA - 1)) as u8;
        if times > 0 {
            out.changed += 1;
        }
        *out.transitions
            .entry((classes[from][i], classes[to][i]))
            .or_insert(0) += 1;
    }
    Ok(out)
}

impl Node for Change {
    const KIND: &'static str = "change";
    const VERSION: u32 = 1;
    type Params = ChangeParams;

    fn inputs() -> Vec<Port> {
        vec![Port::many("maps", MAP)]
    }

    fn outputs() -> Vec<Port> {
        vec![Port::one("change", CHANGE)]
    }

    fn summary() -> &'static str {
        "change between yearly maps: frequency of change, a transition matrix, class area per year"
    }

    fn run(&self, ctx: &mut RunCtx, p: &ChangeParams, inputs: &Inputs) -> Result<(), NodeError> {
        let maps = read_maps(inputs)?;
        let years: Vec<i64> = maps.iter().map(|m| m.year).collect();
        let index_of = |param: &str, y: Option<i64>, default: usize| match y {
            None => Ok(default),
            Some(y) => years.iter().position(|&v| v == y).ok_or_else(|| {
                NodeError::new(format!(
                    "`{param}: {y}` is not one of the maps' years ({})",
                    years
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }),
        };
        let from = index_of("from", p.from, 0)?;
        let to = index_of("to", p.to, maps.len() - 1)?;
        let grid = maps[0].meta.grid.clone();
        let legend = maps[0].meta.legend.clone();
        let paths: Vec<PathBuf> = maps.iter().map(|m| m.path.clone()).collect();
        for m in &maps {
            let r = RasterReader::open(&m.path).map_err(raster_err)?;
            grid.ensure_same(r.grid(), &m.path).map_err(raster_err)?;
        }

        let out_path = ctx.output_file("change", FREQUENCY_FILE)?;
        let mut freq = RasterWriter::create(
            &out_path,
            &RasterMeta {
                grid: grid.clone(),
                dtype: DType::U8,
                nodata: Some(f64::from(FREQUENCY_NODATA)),
                band_names: vec!["changes".into()],
            },
            &WriteOptions::default(),
        )
        .map_err(raster_err)?;
        let blocks: Vec<Window> = grid.blocks(TILE).collect();
        let mut transitions: BTreeMap<(u8, u8), u64> = BTreeMap::new();
        let (mut changed, mut nodata) = (0u64, 0u64);
        blockwise(
            &blocks,
            2,
            || open_all(&paths),
            |readers, w| block(readers, w, from, to),
            |w, b| {
                freq.write_window_u8(1, w, &b.frequency)
                    .map_err(raster_err)?;
                for (k, v) in b.transitions {
                    *transitions.entry(k).or_insert(0) += v;
                }
                changed += b.changed;
                nodata += b.nodata;
                Ok(())
            },
        )?;
        freq.finish().map_err(raster_err)?;

        let km2 = grid.pixel_km2();
        // A mosaic's pixels differ in area by the tile they come from: a transition from a
        // class counts at that class's mean pixel area in the `from` year, so that a row of
        // the matrix adds up to the class's area as `areas.csv` gives it.
        let from_km2 = maps[from].meta.class_areas_km2();
        let per_pixel = |code: u8| match (&maps[from].meta.class_km2, &from_km2) {
            (Some(_), Some(a)) => {
                let px = maps[from]
                    .meta
                    .class_pixels
                    .get(&code)
                    .copied()
                    .unwrap_or(0);
                let area = a.get(&code).copied().unwrap_or(0.0);
                if px > 0 { Some(area / px as f64) } else { km2 }
            }
            _ => km2,
        };
        let area = |code: u8, px: u64| {
            per_pixel(code)
                .map(|k| format!("{:.6}", px as f64 * k))
                .unwrap_or_default()
        };
        let order = |code: u8| legend.index_of(code).unwrap_or(usize::MAX);
        let mut pairs: Vec<(&(u8, u8), &u64)> = transitions.iter().collect();
        pairs.sort_by_key(|((a, b), _)| (order(*a), order(*b), *a, *b));
        let mut csv = String::from("from_code,from_class,to_code,to_class,pixels,km2\n");
        for ((a, b), n) in pairs {
            let _ = writeln!(
                csv,
                "{a},{},{b},{},{n},{}",
                csv_field(&legend.name(*a)),
                csv_field(&legend.name(*b)),
                area(*a, *n)
            );
        }
        ctx.write_output("change", TRANSITIONS_FILE, csv.as_bytes())?;

        let mut csv = String::from("year,code,class,pixels,km2\n");
        for m in &maps {
            let areas = m.meta.class_areas_km2();
            for c in &legend.0 {
                let px = m.meta.class_pixels.get(&c.code).copied().unwrap_or(0);
                let a = areas
                    .as_ref()
                    .map(|a| format!("{:.6}", a.get(&c.code).copied().unwrap_or(0.0)))
                    .unwrap_or_default();
                let _ = writeln!(csv, "{},{},{},{px},{a}", m.year, c.code, csv_field(&c.name));
            }
        }
        ctx.write_output("change", AREAS_FILE, csv.as_bytes())?;
        let png = areas_png(&maps, &legend).map_err(NodeError::new)?;
        ctx.write_output("change", AREAS_PNG, &png)?;

        let with_data = grid.pixel_count() as u64 - nodata;
        ctx.metric("years", maps.len() as u64);
        ctx.metric("changed_pixels", changed);
        ctx.metric(
            "changed_share",
            if with_data > 0 {
                (changed as f64 / with_data as f64 * 1e4).round() / 1e4
            } else {
                0.0
            },
        );
        ctx.metric("nodata_pixels", nodata);
        ctx.set_meta(
            "change",
            serde_json::json!({
                "grid": grid,
                "years": years,
                "from": years[from],
                "to": years[to],
                "changed_pixels": changed,
                "nodata_pixels": nodata,
            }),
        )
    }
}

/// Class area (km², or pixels for a geographic CRS) per year: one line per class present in
/// any year, in its legend colour; the legend to the right.
fn areas_png(maps: &[YearMap], legend: &Legend) -> Result<Vec<u8>, String> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};

    register_font()?;
    let err = |e: plotters::drawing::DrawingAreaErrorKind<_>| format!("cannot draw: {e}");
    let font = |size: f64| FontDesc::new(FontFamily::Name(FONT_FAMILY), size, FontStyle::Normal);
    let areas: Vec<Option<BTreeMap<u8, f64>>> =
        maps.iter().map(|m| m.meta.class_areas_km2()).collect();
    let km2 = areas.iter().all(Option::is_some);
    let value = |m: &YearMap, code: u8| {
        let i = maps.iter().position(|o| o.year == m.year).unwrap_or(0);
        match &areas[i] {
            Some(a) if km2 => a.get(&code).copied().unwrap_or(0.0),
            _ => m.meta.class_pixels.get(&code).copied().unwrap_or(0) as f64,
        }
    };
    let classes: Vec<&crate::classes::ClassDef> = legend
        .0
        .iter()
        .filter(|c| maps.iter().any(|m| value(m, c.code) > 0.0))
        .collect();
    let top_value = maps
        .iter()
        .flat_map(|m| classes.iter().map(move |c| value(m, c.code)))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let (w, h) = (960u32, 540u32);
    let (left, right, top, bottom) = (80i32, 330i32, 50i32, 60i32);
    let (px0, px1, py0, py1) = (left, w as i32 - right, top, h as i32 - bottom);
    let x_of = |i: usize| {
        if maps.len() < 2 {
            px0
        } else {
            px0 + ((px1 - px0) as f64 * i as f64 / (maps.len() - 1) as f64).round() as i32
        }
    };
    let y_of = |v: f64| py1 - ((py1 - py0) as f64 * v / (top_value * 1.05)).round() as i32;
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let unit = if km2 { "km²" } else { "pixels" };
        root.draw(&Text::new(
            format!("Class area per year ({unit})"),
            (12, 14),
            TextStyle::from(font(16.0))
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Top)),
        ))
        .map_err(err)?;
        let axis = ShapeStyle {
            color: BLACK.to_rgba(),
            filled: false,
            stroke_width: 1,
        };
        let grid_line = ShapeStyle {
            color: RGBColor(220, 220, 220).to_rgba(),
            filled: false,
            stroke_width: 1,
        };
        for t in 0..=4 {
            let v = top_value * 1.05 * f64::from(t) / 4.0;
            let y = y_of(v);
            root.draw(&PathElement::new(vec![(px0, y), (px1, y)], grid_line))
                .map_err(err)?;
            let label = if top_value * 1.05 >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            };
            root.draw(&Text::new(
                label,
                (px0 - 6, y),
                TextStyle::from(font(12.0))
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(err)?;
        }
        root.draw(&PathElement::new(
            vec![(px0, py0), (px0, py1), (px1, py1)],
            axis,
        ))
        .map_err(err)?;
        for (i, m) in maps.iter().enumerate() {
            let x = x_of(i);
            root.draw(&PathElement::new(vec![(x, py1), (x, py1 + 5)], axis))
                .map_err(err)?;
            root.draw(&Text::new(
                m.year.to_string(),
                (x, py1 + 8),
                TextStyle::from(font(12.0))
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(err)?;
        }
        for (k, c) in classes.iter().enumerate() {
            let [r, g, b] = legend.rgb(c.code);
            let colour = RGBColor(r, g, b);
            let line = ShapeStyle {
                color: colour.to_rgba(),
                filled: false,
                stroke_width: 2,
            };
            let pts: Vec<(i32, i32)> = maps
                .iter()
                .enumerate()
                .map(|(i, m)| (x_of(i), y_of(value(m, c.code))))
                .collect();
            root.draw(&PathElement::new(pts.clone(), line))
                .map_err(err)?;
            for p in pts {
                root.draw(&Circle::new(p, 3, colour.filled()))
                    .map_err(err)?;
            }
            let ly = py0 + 20 * k as i32;
            let lx = px1 + 20;
            root.draw(&Rectangle::new(
                [(lx, ly - 5), (lx + 18, ly + 5)],
                colour.filled(),
            ))
            .map_err(err)?;
            root.draw(&Text::new(
                format!("{} ({})", c.name, c.code),
                (lx + 24, ly),
                TextStyle::from(font(12.0))
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    encode_png(&rgb, w, h)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::raster::{Grid, crs_to_wkt};
    use lulc_engine::{ArtifactIn, erase};
    use serde_json::json;

    fn grid() -> Grid {
        Grid {
            crs_wkt: crs_to_wkt("EPSG:32648").unwrap(),
            geo_transform: [600_000.0, 10.0, 0.0, 1_200_000.0, 0.0, -10.0],
            width: 3,
            height: 2,
        }
    }

    /// A Map artifact of `year` with these six classes (row-major, 0 = nodata).
    fn map(dir: &Path, year: i64, classes: [u8; 6]) -> ArtifactIn {
        let path = dir.join(format!("map_{year}.tif"));
        let meta = RasterMeta {
            grid: grid(),
            dtype: DType::U8,
            nodata: Some(0.0),
            band_names: vec!["class".into()],
        };
        let mut w = RasterWriter::create(&path, &meta, &WriteOptions::default()).unwrap();
        w.write_window_u8(1, &grid().full_window(), &classes)
            .unwrap();
        w.finish().unwrap();
        let mut class_pixels: BTreeMap<u8, u64> = BTreeMap::new();
        for c in classes.iter().filter(|c| **c != 0) {
            *class_pixels.entry(*c).or_insert(0) += 1;
        }
        let meta = MapMeta {
            grid: grid(),
            year: Some(year),
            legend: Legend::default(),
            class_pixels,
            nodata_pixels: classes.iter().filter(|c| **c == 0).count() as u64,
            confidence: false,
            class_km2: None,
        };
        ArtifactIn {
            step_id: format!("map[year={year}]"),
            dims: BTreeMap::new(),
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
        let node = erase(Change);
        let params = node
            .check_params(&params)
            .map_err(|e| NodeError::new(e[0].message.clone()))?;
        let out = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx = RunCtx::for_test("change", Change::outputs(), &out);
        let inputs = Inputs {
            ports: BTreeMap::from([("maps".to_string(), maps)]),
        };
        node.run(&mut ctx, &params, &inputs)?;
        Ok(ctx)
    }

    fn file(ctx: &RunCtx, name: &str) -> PathBuf {
        ctx.outputs()["change"].files[name].clone()
    }

    #[test]
    fn frequency_transitions_and_areas_of_three_years() {
        let dir = tempfile::tempdir().unwrap();
        // Pixel by pixel over 2019, 2020, 2021 (1 water, 3 rice, 8 EBF, 14 solar, 0 nodata):
        // p0 water always (0 changes); p1 rice -> solar -> solar (1); p2 EBF -> rice -> EBF (2);
        // p3 rice always; p4 nodata in 2020 (nodata); p5 EBF -> EBF -> rice (1).
        let maps = vec![
            map(dir.path(), 2021, [1, 14, 8, 3, 3, 3]),
            map(dir.path(), 2019, [1, 3, 8, 3, 3, 8]),
            map(dir.path(), 2020, [1, 14, 3, 3, 0, 8]),
        ];
        let ctx = run(json!({}), maps, dir.path()).unwrap();
        // The same maps, given in year order.
        let in_order = || {
            vec![
                map(dir.path(), 2019, [1, 3, 8, 3, 3, 8]),
                map(dir.path(), 2020, [1, 14, 3, 3, 0, 8]),
                map(dir.path(), 2021, [1, 14, 8, 3, 3, 3]),
            ]
        };
        let r = RasterReader::open(file(&ctx, FREQUENCY_FILE)).unwrap();
        let f = r.read_window_u8(1, &grid().full_window()).unwrap();
        assert_eq!(f, vec![0, 1, 2, 0, FREQUENCY_NODATA, 1]);
        assert_eq!(r.meta().nodata, Some(255.0));
        // 2019 -> 2021, nodata pixel left out; legend order; 1 px = 100 m2 = 0.0001 km2.
        let t = std::fs::read_to_string(file(&ctx, TRANSITIONS_FILE)).unwrap();
        assert_eq!(
            t,
            "from_code,from_class,to_code,to_class,pixels,km2\n\
             1,Water,1,Water,1,0.000100\n\
             3,Rice,3,Rice,1,0.000100\n\
             3,Rice,14,Solar panel,1,0.000100\n\
             8,Evergreen broadleaf forest (EBF),3,Rice,1,0.000100\n\
             8,Evergreen broadleaf forest (EBF),8,Evergreen broadleaf forest (EBF),1,0.000100\n"
        );
        let a = std::fs::read_to_string(file(&ctx, AREAS_FILE)).unwrap();
        assert!(a.contains("2019,14,Solar panel,0,0.000000\n"), "{a}");
        assert!(a.contains("2020,14,Solar panel,1,0.000100\n"), "{a}");
        assert!(a.contains("2021,3,Rice,3,0.000300\n"), "{a}");
        assert_eq!(a.lines().count(), 1 + 3 * 14);
        let m = ctx.metrics();
        assert_eq!(m["years"], 3);
        assert_eq!(m["changed_pixels"], 3);
        assert_eq!(m["nodata_pixels"], 1);
        assert_eq!(m["changed_share"], 0.6);
        let png = std::fs::read(file(&ctx, AREAS_PNG)).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        // Deterministic: the same maps again give the same bytes.
        let again = run(json!({}), in_order(), dir.path()).unwrap();
        assert_eq!(std::fs::read(file(&again, AREAS_PNG)).unwrap(), png);
        // Another pair of years for the matrix.
        let ctx = run(json!({"from": 2020, "to": 2021}), in_order(), dir.path()).unwrap();
        let t = std::fs::read_to_string(file(&ctx, TRANSITIONS_FILE)).unwrap();
        assert!(
            t.contains("3,Rice,8,Evergreen broadleaf forest (EBF),1,"),
            "{t}"
        );
        assert!(t.contains("14,Solar panel,14,Solar panel,1,"), "{t}");
    }

    #[test]
    fn a_mosaic_s_areas_per_tile_are_the_class_areas_and_weigh_the_transitions() {
        let dir = tempfile::tempdir().unwrap();
        // Maps as a mosaic gives them: each class's area measured on its tiles' own grids
        // (here rice's 3 pixels are 0.00031 km2 in 2019, not 3 x 0.0001).
        let with_areas = |mut m: ArtifactIn, areas: serde_json::Value| {
            m.meta["class_km2"] = areas;
            m
        };
        let maps = vec![
            with_areas(
                map(dir.path(), 2019, [1, 3, 8, 3, 3, 8]),
                json!({"1": 0.0001, "3": 0.00031, "8": 0.0002}),
            ),
            with_areas(
                map(dir.path(), 2020, [1, 14, 3, 3, 3, 8]),
                json!({"1": 0.0001, "3": 0.0003, "8": 0.0001, "14": 0.000102}),
            ),
        ];
        let ctx = run(json!({}), maps, dir.path()).unwrap();
        let a = std::fs::read_to_string(file(&ctx, AREAS_FILE)).unwrap();
        assert!(a.contains("2019,3,Rice,3,0.000310\n"), "{a}");
        assert!(a.contains("2020,14,Solar panel,1,0.000102\n"), "{a}");
        // Rice of 2019 (mean pixel 0.000310 / 3): 2 px stay rice, 1 becomes solar; the row
        // adds up to rice's area of 2019.
        let t = std::fs::read_to_string(file(&ctx, TRANSITIONS_FILE)).unwrap();
        assert!(t.contains("3,Rice,3,Rice,2,0.000207\n"), "{t}");
        assert!(t.contains("3,Rice,14,Solar panel,1,0.000103\n"), "{t}");
    }

    fn err(r: Result<RunCtx, NodeError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn change_errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let one = vec![map(dir.path(), 2020, [1; 6])];
        let e = err(run(json!({}), one, dir.path()));
        assert!(e.contains("at least two years, got 1"), "{e}");
        let twice = vec![map(dir.path(), 2020, [1; 6]), map(dir.path(), 2020, [3; 6])];
        let e = err(run(json!({}), twice, dir.path()));
        assert!(e.contains("two maps of 2020"), "{e}");
        let two = vec![map(dir.path(), 2020, [1; 6]), map(dir.path(), 2021, [3; 6])];
        let e = err(run(json!({"from": 2017}), two, dir.path()));
        assert!(
            e.contains("`from: 2017` is not one of the maps' years (2020, 2021)"),
            "{e}"
        );
    }
}
