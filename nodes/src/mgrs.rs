//! Sentinel-2 tiles: the UTM grid of an MGRS tile id (`48PXS`), computed from the Military Grid
//! Reference System's definition, so that a `tile` partition can give each step its tile's exact
//! grid without a catalog.
//!
//! An id is `<zone><band><column><row>`: the UTM zone (1-60), the latitude band (C-X, 8 degrees
//! each, X 12; no I or O), and the 100 km square's column and row letters (WGS 84 lettering,
//! "AA" scheme; DMA TM 8358.1, *Datums, Ellipsoids, Grids and Grid Reference Systems*):
//!
//! - column: the zones cycle through three sets of eight letters, `A`-`H` (zone 1, 4, 7, ...),
//!   `J`-`R` (2, 5, 8, ...), `S`-`Z` (3, 6, 9, ...); the k-th letter of the set is the square
//!   whose west edge is at easting k x 100 km;
//! - row: twenty letters `A`-`V` repeat every 2,000 km of northing from the equator (from the
//!   false northing of 10,000 km in the south); in even zones the cycle starts at `F`. Which
//!   2,000 km cycle is meant follows from the band: the first at or above the band's lowest
//!   northing (the table of [`band_min_northing`]);
//! - the square's south-west corner is (easting, northing) so found.
//!
//! A Sentinel-2 tile is 109,800 m x 109,800 m (10980 px at 10 m, 5490 at 20 m, 1830 at 60 m),
//! so neighbouring tiles overlap by 9.8 km. Its upper-left corner is the square's north-west
//! corner put on the 60 m grid of the zone (the coarsest band's pixels, counted from easting 0
//! and from the equator): the easting rounded down and the northing rounded up to a multiple of
//! 60 m, so that the tile covers its square. That is what ESA's tiling grid holds: e.g. 01LAC's
//! corner is (99960, 8300020), 10SDG's (399960, 4200000), 60CWS's (499980, 1200040); the tests
//! check 24 tiles of 17 zones against the `ULX`/`ULY` of real granules' metadata and the
//! `proj:transform` of real Earth Search items. The CRS is WGS 84 / UTM `zone` north
//! (EPSG:326zz) for bands N-X and south (EPSG:327zz) for C-M.

use std::fmt;

/// Side of a Sentinel-2 tile, metres.
pub const TILE_SIZE_M: f64 = 109_800.0;
/// The grid a tile's corner is on, metres.
const CORNER_GRID_M: i64 = 60;
/// False northing of the southern hemisphere, metres.
const FALSE_NORTHING_S: i64 = 10_000_000;

const COLUMN_SETS: [&str; 3] = ["ABCDEFGH", "JKLMNPQR", "STUVWXYZ"];
const ROW_LETTERS: &str = "ABCDEFGHJKLMNPQRSTUV";
const BANDS: &str = "CDEFGHJKLMNPQRSTUVWX";

/// One Sentinel-2 tile's place on the ground.
#[derive(Clone, Debug, PartialEq)]
pub struct S2Tile {
    /// The id, normalised (`48PXS`).
    pub id: String,
    /// `EPSG:326zz` or `EPSG:327zz`.
    pub epsg: u32,
    /// Upper-left corner (easting, northing), metres.
    pub ul: (f64, f64),
}

impl S2Tile {
    /// `[min_x, min_y, max_x, max_y]` in the tile's CRS.
    pub fn bbox(&self) -> [f64; 4] {
        let (x, y) = self.ul;
        [x, y - TILE_SIZE_M, x + TILE_SIZE_M, y]
    }

    /// The tile's CRS as `EPSG:nnnnn`.
    pub fn crs(&self) -> String {
        format!("EPSG:{}", self.epsg)
    }
}

/// Why an id is not a Sentinel-2 tile.
#[derive(Clone, Debug, PartialEq)]
pub struct TileError {
    pub id: String,
    pub why: String,
}

impl fmt::Display for TileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a Sentinel-2 tile id ({}); an id is a UTM zone, a latitude band and two \
             letters of a 100 km square, e.g. `48PXS`",
            self.id, self.why
        )
    }
}

impl std::error::Error for TileError {}

/// The id of the 100 km square holding the UTM position (`easting`, `northing`; in the south
/// with the false northing) of `zone`, at latitude `lat` (which picks the band): the inverse of
/// [`s2_tile`]'s lettering, e.g. `48QXH`.
pub fn square_id(zone: u32, lat: f64, easting: f64, northing: f64) -> String {
    let band_i = (((lat + 80.0) / 8.0).floor().max(0.0) as usize).min(BANDS.len() - 1);
    let band = BANDS.as_bytes()[band_i] as char;
    let set = COLUMN_SETS[((zone - 1) % 3) as usize].as_bytes();
    let col = set[((easting / 100_000.0).floor() as usize).clamp(1, 8) - 1] as char;
    let shift = if zone.is_multiple_of(2) { 5 } else { 0 };
    let row =
        ROW_LETTERS.as_bytes()[((northing / 100_000.0).floor() as usize + shift) % 20] as char;
    format!("{zone}{band}{col}{row}")
}

/// The tile of `id` (`48PXS`, `T48PXS`, `MGRS-48PXS`, any case).
pub fn s2_tile(id: &str) -> Result<S2Tile, TileError> {
    let norm = crate::source::normalize_tile(id);
    let err = |why: &str| TileError {
        id: id.trim().to_string(),
        why: why.to_string(),
    };
    let digits = norm.chars().take_while(char::is_ascii_digit).count();
    let zone: u32 = norm[..digits]
        .parse()
        .map_err(|_| err("it does not start with a UTM zone"))?;
    if !(1..=60).contains(&zone) {
        return Err(err("the UTM zone is not in 1..60"));
    }
    let letters: Vec<char> = norm[digits..].chars().collect();
    let [band, column, row] = letters[..] else {
        return Err(err("three letters must follow the zone"));
    };
    let band_i = BANDS
        .find(band)
        .ok_or_else(|| err("the latitude band is not one of C-X without I and O"))?;
    let set = COLUMN_SETS[((zone - 1) % 3) as usize];
    let col_i = set.find(column).ok_or_else(|| {
        err(&format!(
            "in zone {zone} the column letter is one of {}",
            set.chars().map(String::from).collect::<Vec<_>>().join(" ")
        ))
    })?;
    let row_i = ROW_LETTERS
        .find(row)
        .ok_or_else(|| err("the row letter is one of A-V without I and O"))?;
    let easting = (col_i as i64 + 1) * 100_000;
    let shift = if zone.is_multiple_of(2) { 5 } else { 0 };
    // The 2,000 km cycle whose square lies in the band, or nearest to it: a square straddling
    // the band's edge at the central meridian still belongs to it nearer the zone's edges.
    let base = ((row_i + 20 - shift) % 20) as i64 * 100_000;
    let (lo, hi) = band_northings(band_i);
    let gap = |n: i64| (lo - (n + 100_000)).max(n - hi).max(0);
    let northing = (0..5)
        .map(|k| base + k * 2_000_000)
        .min_by_key(|n| gap(*n))
        .expect("five cycles");
    let south = band_i < BANDS.find('N').unwrap_or(10);
    // The square's north-west corner on the 60 m grid: west and north of it.
    let g = CORNER_GRID_M;
    let top = northing + 100_000 - if south { FALSE_NORTHING_S } else { 0 };
    let ul_x = easting.div_euclid(g) * g;
    let ul_y = -((-top).div_euclid(g) * g) + if south { FALSE_NORTHING_S } else { 0 };
    Ok(S2Tile {
        id: norm,
        epsg: if south { 32700 + zone } else { 32600 + zone },
        ul: (ul_x as f64, ul_y as f64),
    })
}

/// The northings (metres, with the false northing of 10,000 km south of the equator) that
/// latitude band `BANDS[i]` spans on the central meridian, each rounded down to 100 km: its
/// southern edge is the table GeoTrans and proj4js's MGRS code use, its northern edge the next
/// band's southern edge (84 N for X, the equator for M).
fn band_northings(i: usize) -> (i64, i64) {
    const MIN: [i64; 20] = [
        1_100_000, // C 80S
        2_000_000, // D 72S
        2_800_000, // E 64S
        3_700_000, // F 56S
        4_600_000, // G 48S
        5_500_000, // H 40S
        6_400_000, // J 32S
        7_300_000, // K 24S
        8_200_000, // L 16S
        9_100_000, // M 8S
        0,         // N 0
        800_000,   // P 8N
        1_700_000, // Q 16N
        2_600_000, // R 24N
        3_500_000, // S 32N
        4_400_000, // T 40N
        5_300_000, // U 48N
        6_200_000, // V 56N
        7_000_000, // W 64N
        7_900_000, // X 72N
    ];
    let hi = match BANDS.as_bytes()[i] {
        b'M' => 10_000_000,
        b'X' => 9_300_000,
        _ => MIN[i + 1],
    };
    (MIN[i], hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_ids_of_positions_and_back() {
        assert_eq!(square_id(48, 20.36, 622_560.0, 2_252_560.0), "48QXH");
        // 48PXS covers Ho Chi Minh City's east (zone 48, band P).
        assert_eq!(square_id(48, 10.8, 690_000.0, 1_195_000.0), "48PXS");
        // The square an id names holds the position it was made from, in both hemispheres.
        for (zone, lat, e, n) in [
            (48, 20.36, 622_560.0, 2_252_560.0),
            (10, 37.9, 450_000.0, 4_190_000.0),
            (60, -79.0, 550_000.0, 1_230_000.0),
            (1, -15.0, 150_000.0, 8_350_000.0),
        ] {
            let t = s2_tile(&square_id(zone, lat, e, n)).unwrap();
            let [x0, _, _, y1] = t.bbox();
            assert!(e >= x0 && e < x0 + 100_000.0, "{} {e}", t.id);
            assert!(n < y1 && n >= y1 - 100_000.0, "{} {n}", t.id);
        }
    }

    /// Upper-left corners of real tiles, as their sources write them: `ULX`/`ULY` (10 m) of
    /// granule metadata (`MTD_TL.xml`, `metadata.xml`) in the stactools-packages/sentinel2 test
    /// data; `proj:transform` of Earth Search items in the opendatacube/odc-tools and odc-stac
    /// test data; 49SBB from a granule checked against its `MTD_TL.xml` on ESA's STEP forum.
    const REAL: [(&str, u32, f64, f64); 24] = [
        ("01LAC", 32701, 99960.0, 8300020.0),
        ("01KAB", 32701, 99960.0, 8200000.0),
        ("01CDL", 32701, 399960.0, 1100020.0),
        ("07HFE", 32707, 600000.0, 6500020.0),
        ("22HBD", 32722, 199980.0, 5900020.0),
        ("34LBP", 32734, 199980.0, 8900020.0),
        ("37MGS", 32737, 699960.0, 9700000.0),
        ("60CWS", 32760, 499980.0, 1200040.0),
        ("46RER", 32646, 499980.0, 3100020.0),
        ("11SLT", 32611, 300000.0, 3800040.0),
        ("10SDG", 32610, 399960.0, 4200000.0),
        ("34VEL", 32634, 499980.0, 6600000.0),
        ("33XWJ", 32633, 499980.0, 8900040.0),
        ("01WCS", 32601, 300000.0, 7700040.0),
        ("01VCG", 32601, 300000.0, 6700020.0),
        ("31QGB", 32631, 699960.0, 2200020.0),
        ("17SPR", 32617, 600000.0, 3600000.0),
        ("42TUM", 32642, 300000.0, 4700040.0),
        ("37MGP", 32737, 699960.0, 9400000.0),
        ("49JFM", 32749, 600000.0, 7200040.0),
        ("28QCH", 32628, 300000.0, 2300040.0),
        ("49SBB", 32649, 199980.0, 4200000.0),
        ("30TYN", 32630, 699960.0, 4800000.0),
        ("32PKQ", 32632, 199980.0, 1000020.0),
    ];

    #[test]
    fn corners_of_real_tiles() {
        for (id, epsg, x, y) in REAL {
            let t = s2_tile(id).unwrap();
            assert_eq!((t.epsg, t.ul), (epsg, (x, y)), "{id}");
        }
        // As catalogs write the id; the extent of 10SDG as its `tileGeometry` states it.
        let t = s2_tile("T10sdg").unwrap();
        assert_eq!(t.id, "10SDG");
        assert_eq!(t.bbox(), [399960.0, 4090200.0, 509760.0, 4200000.0]);
        assert_eq!(
            s2_tile("MGRS-37MGS").unwrap().bbox()[2..],
            [809760.0, 9700000.0]
        );
        assert_eq!(t.crs(), "EPSG:32610");
    }

    #[test]
    fn viet_nam_tiles_fall_in_utm_48_and_49_at_its_latitudes() {
        // Worked by hand from the definition (no real corner of these zones was at hand):
        // 48PXS, southern Viet Nam (about 105.9-106.9 E, 9.9-10.85 N): column X is the 6th of
        // zone 48's set S-Z (easting 600 km), row S in an even zone is the 12th of the cycle
        // (1,100 km), which lies in band P (8-16 N).
        let t = s2_tile("48PXS").unwrap();
        assert_eq!((t.epsg, t.ul), (32648, (600000.0, 1200000.0)));
        // Hanoi (21.0 N, 105.8 E) is in 48QWJ: easting 500 km, 2,300-2,400 km row.
        let t = s2_tile("48QWJ").unwrap();
        assert_eq!((t.epsg, t.ul), (32648, (499980.0, 2400000.0)));
        assert_eq!(s2_tile("49PBR").unwrap().epsg, 32649);
    }

    #[test]
    fn ids_that_are_no_tiles_say_why() {
        for (id, why) in [
            ("PXS", "does not start with a UTM zone"),
            ("61PXS", "not in 1..60"),
            ("48PX", "three letters"),
            ("48IXS", "latitude band"),
            (
                "48PAS",
                "in zone 48 the column letter is one of S T U V W X Y Z",
            ),
            ("48PXW", "row letter"),
        ] {
            let e = s2_tile(id).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains(&format!("`{id}`")),
                "{id}: {e}"
            );
        }
    }
}
