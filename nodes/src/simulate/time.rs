//! Calendar arithmetic (proleptic Gregorian, days since 1970-01-01) and the sun's position at
//! overpass time. No clock is read: every date comes from the simulated years.

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day number.
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((y + i64::from(m <= 2)) as i32, m, d)
}

/// A simulated acquisition day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(pub i64);

impl Day {
    pub fn from_ymd(y: i32, m: u32, d: u32) -> Day {
        Day(days_from_civil(y, m, d))
    }

    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.0)
    }

    pub fn year(self) -> i32 {
        self.ymd().0
    }

    pub fn month(self) -> u32 {
        self.ymd().1
    }

    /// Day of year, 1-based.
    pub fn doy(self) -> i64 {
        self.0 - days_from_civil(self.year(), 1, 1) + 1
    }

    /// `YYYY-MM-DD`.
    pub fn iso(self) -> String {
        let (y, m, d) = self.ymd();
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// `YYYYMMDD`.
    pub fn compact(self) -> String {
        let (y, m, d) = self.ymd();
        format!("{y:04}{m:02}{d:02}")
    }

    /// RFC 3339 timestamp at `hh:mm:ss` UTC.
    pub fn datetime(self, hh: u32, mm: u32, ss: u32) -> String {
        format!("{}T{hh:02}:{mm:02}:{ss:02}Z", self.iso())
    }
}

/// Every `step` days on the grid `anchor + k * step` that falls in `[first, last]`. Anchoring
/// on a fixed day keeps a scene's date independent of the simulated year range.
pub fn revisits(anchor: Day, step: i64, first: Day, last: Day) -> Vec<(i64, Day)> {
    let k0 = (first.0 - anchor.0).div_euclid(step) - 1;
    let k1 = (last.0 - anchor.0).div_euclid(step) + 1;
    (k0..=k1)
        .map(|k| (k, Day(anchor.0 + k * step)))
        .filter(|(_, d)| *d >= first && *d <= last)
        .collect()
}

/// Sun elevation and azimuth (degrees; azimuth clockwise from north) at latitude `lat_deg`, on
/// day of year `doy`, `hours_from_noon` hours from local solar noon (negative = morning).
pub fn sun_position(lat_deg: f64, doy: i64, hours_from_noon: f64) -> (f64, f64) {
    let decl = 23.44f64.to_radians() * (std::f64::consts::TAU * (284.0 + doy as f64) / 365.0).sin();
    let lat = lat_deg.to_radians();
    let h = (15.0 * hours_from_noon).to_radians();
    let sin_el = lat.sin() * decl.sin() + lat.cos() * decl.cos() * h.cos();
    let el = sin_el.asin();
    // Azimuth from north, clockwise.
    let cos_az = (decl.sin() - el.sin() * lat.sin()) / (el.cos() * lat.cos());
    let mut az = cos_az.clamp(-1.0, 1.0).acos().to_degrees();
    if hours_from_noon > 0.0 {
        az = 360.0 - az;
    }
    (el.to_degrees(), az)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_and_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2022, 1, 25), 19_017);
        for z in [-1000, 0, 16_800, 19_017, 20_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(Day::from_ymd(2020, 12, 31).doy(), 366);
        assert_eq!(Day::from_ymd(2021, 3, 1).iso(), "2021-03-01");
        let r = revisits(
            Day::from_ymd(2015, 12, 30),
            5,
            Day::from_ymd(2016, 1, 1),
            Day::from_ymd(2016, 1, 31),
        );
        assert_eq!(r.first().unwrap().1.iso(), "2016-01-04");
        assert_eq!(r.len(), 6);
    }

    #[test]
    fn morning_sun_is_in_the_east() {
        let (el, az) = sun_position(20.3, 172, -1.5);
        assert!(el > 55.0 && el < 80.0, "{el}");
        assert!(az > 45.0 && az < 120.0, "{az}");
        let (el, az) = sun_position(20.3, 355, -1.5);
        assert!(el > 30.0 && el < 50.0, "{el}");
        assert!(az > 120.0 && az < 170.0, "{az}");
    }
}
