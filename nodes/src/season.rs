//! Season calendars and window policies: which scenes enter which season's composite.
//!
//! Why policies are data: the seed's gap filling (`docs/method.md`, "Seasons and composites", the
//! "Images used" table) is one choice among many; a user who wants three scenes per own month or
//! no cross-year filling writes a different table in the spec instead of changing code. The two
//! built-ins are written below in exactly the form a user writes ([`OWN_BIMONTHLY`],
//! [`GAP_FILL_BIMONTHLY`]), parsed by the same code, and a test checks them against the table.
//!
//! A policy gives, per season, a list of [`WindowEntry`]s `{ year_offset, month, max_scenes,
//! weight }`: from the scenes of month `month` of year `Y + year_offset` take the
//! `max_scenes` clearest ones (all when absent), each with window weight `weight` (used by the
//! weighted median). "Clearest" ([`clearest_first`]): highest `valid_fraction` (the share of
//! clear pixels after masking), ties broken by the earlier date, then the smaller id, so the
//! choice never depends on input order.
//!
//! Also here: small helpers shared by the `mask` and `composite` kinds (reading a `Scenes`
//! artifact's metadata, parsing scene dates).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use lulc_engine::{ArtifactIn, NodeError};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::artifacts::ScenesMeta;

// ---------------------------------------------------------------------------------------------
// Calendars
// ---------------------------------------------------------------------------------------------

/// One season: a name (used as the file name `<name>.tif`) and its own months (1-12).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Season {
    pub name: String,
    pub months: Vec<u32>,
}

/// The seasons of a year, in output order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeasonCalendar {
    /// `bimonthly` for the built-in one, `custom` otherwise.
    pub name: String,
    pub seasons: Vec<Season>,
}

impl SeasonCalendar {
    /// The six bi-monthly seasons of `docs/method.md`: S1 Jan-Feb, S2 Mar-Apr, S3 May-Jun,
    /// S4 Jul-Aug, S5 Sep-Oct, S6 Nov-Dec.
    pub fn bimonthly() -> SeasonCalendar {
        SeasonCalendar {
            name: "bimonthly".to_string(),
            seasons: (0..6)
                .map(|k| Season {
                    name: format!("S{}", k + 1),
                    months: vec![2 * k + 1, 2 * k + 2],
                })
                .collect(),
        }
    }

    pub fn season(&self, name: &str) -> Option<&Season> {
        self.seasons.iter().find(|s| s.name == name)
    }
}

/// The `seasons` param: `bimonthly` or a list of `{ name, months }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SeasonsParam {
    Named(String),
    Custom(Vec<Season>),
}

impl Default for SeasonsParam {
    fn default() -> Self {
        SeasonsParam::Named("bimonthly".to_string())
    }
}

impl<'de> Deserialize<'de> for SeasonsParam {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SeasonsParam;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`bimonthly` or a list of `{ name, months }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SeasonsParam, E> {
                Ok(SeasonsParam::Named(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<SeasonsParam, A::Error> {
                Vec::<Season>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(SeasonsParam::Custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl SeasonsParam {
    /// The calendar, or what is wrong with the param.
    pub fn resolve(&self) -> Result<SeasonCalendar, String> {
        match self {
            SeasonsParam::Named(n) if n == "bimonthly" => Ok(SeasonCalendar::bimonthly()),
            SeasonsParam::Named(n) => Err(format!(
                "unknown season calendar `{n}`; use `bimonthly` or a list of `{{ name, months }}`"
            )),
            SeasonsParam::Custom(list) => {
                if list.is_empty() {
                    return Err("the list of seasons is empty".to_string());
                }
                let mut names = BTreeSet::new();
                for s in list {
                    let safe = !s.name.is_empty()
                        && s.name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if !safe {
                        return Err(format!(
                            "season name `{}` must be non-empty letters, digits, `_` or `-` (it \
                             names a file)",
                            s.name
                        ));
                    }
                    if !names.insert(s.name.as_str()) {
                        return Err(format!("season `{}` appears twice", s.name));
                    }
                    if s.months.is_empty() {
                        return Err(format!("season `{}` has no months", s.name));
                    }
                    if let Some(m) = s.months.iter().find(|m| !(1..=12).contains(*m)) {
                        return Err(format!("season `{}`: month {m} is not 1..12", s.name));
                    }
                }
                Ok(SeasonCalendar {
                    name: "custom".to_string(),
                    seasons: list.clone(),
                })
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Window policies
// ---------------------------------------------------------------------------------------------

/// One line of a window policy: up to `max_scenes` clearest scenes of month `month` of year
/// `Y + year_offset`, each with weight `weight`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowEntry {
    #[serde(default)]
    pub year_offset: i64,
    pub month: u32,
    /// `None`: every scene of that month.
    #[serde(default)]
    pub max_scenes: Option<usize>,
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// A window policy: per season name, its entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowPolicy {
    /// Recorded in the `Composite` metadata (`own`, `gap_fill`, or the user's name).
    #[serde(default = "custom_name")]
    pub name: String,
    pub seasons: BTreeMap<String, Vec<WindowEntry>>,
}

fn custom_name() -> String {
    "custom".to_string()
}

/// `own` for the bi-monthly calendar ("normal approach"): every scene of the season's two
/// months of year Y, weight 1. For other calendars `own` is [`own_policy`] of the calendar.
pub const OWN_BIMONTHLY: &str = r#"{
  "name": "own",
  "seasons": {
    "S1": [{"year_offset": 0, "month": 1}, {"year_offset": 0, "month": 2}],
    "S2": [{"year_offset": 0, "month": 3}, {"year_offset": 0, "month": 4}],
    "S3": [{"year_offset": 0, "month": 5}, {"year_offset": 0, "month": 6}],
    "S4": [{"year_offset": 0, "month": 7}, {"year_offset": 0, "month": 8}],
    "S5": [{"year_offset": 0, "month": 9}, {"year_offset": 0, "month": 10}],
    "S6": [{"year_offset": 0, "month": 11}, {"year_offset": 0, "month": 12}]
  }
}"#;

/// `gap_fill`: the seed's "Images used" table (`docs/method.md`): up to 2 clearest scenes from each
/// own month of Y (weight 2), 1 from each other listed month of Y, and 1 from each listed month
/// of Y-1 and of Y+1 (weight 1). Weights are the counts n, as `docs/method.md` suggests for the
/// weighted median.
///
/// | season | own months of Y (x2) | other months of Y (x1) | same months of Y-1 and Y+1 (x1 each) |
/// |---|---|---|---|
/// | S1 | 01, 02 | 03 | 01, 02 |
/// | S2 | 03, 04 | 02, 05 | 03, 04 |
/// | S3 | 05, 06 | 04, 07 | 04, 05, 06, 07 |
/// | S4 | 07, 08 | 06, 09 | 06, 07, 08, 09 |
/// | S5 | 09, 10 | 08, 11 | 08, 09, 10, 11 |
/// | S6 | 11, 12 | 10 | 11, 12 |
pub const GAP_FILL_BIMONTHLY: &str = r#"{
  "name": "gap_fill",
  "seasons": {
    "S1": [
      {"year_offset": 0, "month": 1, "max_scenes": 2, "weight": 2},
      {"year_offset": 0, "month": 2, "max_scenes": 2, "weight": 2},
      {"year_offset": 0, "month": 3, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 1, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 2, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 1, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 2, "max_scenes": 1, "weight": 1}
    ],
    "S2": [
      {"year_offset": 0, "month": 3, "max_scenes": 2, "weight": 2},
      {"year_offset": 0, "month": 4, "max_scenes": 2, "weight": 2},
      {"year_offset": 0, "month": 2, "max_scenes": 1, "weight": 1},
      {"year_offset": 0, "month": 5, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 3, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 4, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 3, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 4, "max_scenes": 1, "weight": 1}
    ],
    "S3": [
      {"year_offset": 0, "month": 5, "max_scenes": 2, "weight": 2},
      {"year_offset": 0, "month": 6, "max_scenes": 2, "weight": 2},
      {"year_offset": 0, "month": 4, "max_scenes": 1, "weight": 1},
      {"year_offset": 0, "month": 7, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 4, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 5, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 6, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 7, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 4, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 5, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 6, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 7, "max_scenes": 1, "weight": 1}
    ],
    "S4": [
      {"year_offset": 0, "month": 7, "max_scenes": 2, "weight": 2},
      {"year_offset": 0, "month": 8, "max_scenes": 2, "weight": 2},
      {"year_offset": 0, "month": 6, "max_scenes": 1, "weight": 1},
      {"year_offset": 0, "month": 9, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 6, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 7, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 8, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 9, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 6, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 7, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 8, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 9, "max_scenes": 1, "weight": 1}
    ],
    "S5": [
      {"year_offset": 0, "month": 9, "max_scenes": 2, "weight": 2},
      {"year_offset": 0, "month": 10, "max_scenes": 2, "weight": 2},
      {"year_offset": 0, "month": 8, "max_scenes": 1, "weight": 1},
      {"year_offset": 0, "month": 11, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 8, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 9, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 10, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 11, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 8, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 9, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 10, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 11, "max_scenes": 1, "weight": 1}
    ],
    "S6": [
      {"year_offset": 0, "month": 11, "max_scenes": 2, "weight": 2},
      {"year_offset": 0, "month": 12, "max_scenes": 2, "weight": 2},
      {"year_offset": 0, "month": 10, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 11, "max_scenes": 1, "weight": 1},
      {"year_offset": -1, "month": 12, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 11, "max_scenes": 1, "weight": 1},
      {"year_offset": 1, "month": 12, "max_scenes": 1, "weight": 1}
    ]
  }
}"#;

fn builtin(text: &str) -> WindowPolicy {
    serde_json::from_str(text).expect("built-in window policies are valid JSON")
}

/// `own` for any calendar: every scene of each season's own months of Y, weight 1.
pub fn own_policy(calendar: &SeasonCalendar) -> WindowPolicy {
    if calendar.name == "bimonthly" {
        return builtin(OWN_BIMONTHLY);
    }
    WindowPolicy {
        name: "own".to_string(),
        seasons: calendar
            .seasons
            .iter()
            .map(|s| {
                let entries = s
                    .months
                    .iter()
                    .map(|&month| WindowEntry {
                        year_offset: 0,
                        month,
                        max_scenes: None,
                        weight: 1.0,
                    })
                    .collect();
                (s.name.clone(), entries)
            })
            .collect(),
    }
}

/// The seed's `gap_fill` table (bi-monthly calendar only).
pub fn gap_fill_policy() -> WindowPolicy {
    builtin(GAP_FILL_BIMONTHLY)
}

/// The `window` param: `own`, `gap_fill`, or a policy `{ name, seasons: { S1: [...], ... } }`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum WindowParam {
    Named(String),
    Custom(WindowPolicy),
}

impl Default for WindowParam {
    fn default() -> Self {
        WindowParam::Named("gap_fill".to_string())
    }
}

impl<'de> Deserialize<'de> for WindowParam {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WindowParam;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`own`, `gap_fill` or a policy `{ name, seasons }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WindowParam, E> {
                Ok(WindowParam::Named(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WindowParam, A::Error> {
                WindowPolicy::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(WindowParam::Custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl WindowParam {
    /// The policy for `calendar`, checked against it, or what is wrong.
    pub fn resolve(&self, calendar: &SeasonCalendar) -> Result<WindowPolicy, String> {
        let policy = match self {
            WindowParam::Named(n) if n == "own" => own_policy(calendar),
            WindowParam::Named(n) if n == "gap_fill" => {
                if calendar.name != "bimonthly" {
                    return Err(
                        "`gap_fill` is the seed's table for the `bimonthly` seasons; with custom \
                         seasons, write the window policy as data"
                            .to_string(),
                    );
                }
                gap_fill_policy()
            }
            WindowParam::Named(n) => {
                return Err(format!(
                    "unknown window `{n}`; use `own`, `gap_fill` or a policy `{{ name, seasons }}`"
                ));
            }
            WindowParam::Custom(p) => p.clone(),
        };
        let problems = policy.problems(calendar);
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(problems.join("; "))
        }
    }
}

impl WindowPolicy {
    /// Everything wrong with this policy for `calendar` (empty when it is usable).
    pub fn problems(&self, calendar: &SeasonCalendar) -> Vec<String> {
        let mut out = Vec::new();
        for s in &calendar.seasons {
            if !self.seasons.contains_key(&s.name) {
                out.push(format!(
                    "window `{}` has no entry for season `{}`",
                    self.name, s.name
                ));
            }
        }
        for (name, entries) in &self.seasons {
            if calendar.season(name).is_none() {
                let known: Vec<&str> = calendar.seasons.iter().map(|s| s.name.as_str()).collect();
                out.push(format!(
                    "window `{}`: unknown season `{name}` (the seasons are {})",
                    self.name,
                    known.join(", ")
                ));
            }
            let mut seen = BTreeSet::new();
            for e in entries {
                if !(1..=12).contains(&e.month) {
                    out.push(format!("season `{name}`: month {} is not 1..12", e.month));
                }
                if e.max_scenes == Some(0) {
                    out.push(format!(
                        "season `{name}`, month {}: `max_scenes` must be at least 1 (omit it for \
                         all scenes)",
                        e.month
                    ));
                }
                if !(e.weight.is_finite() && e.weight > 0.0) {
                    out.push(format!(
                        "season `{name}`, month {}: `weight` must be positive, got {}",
                        e.month, e.weight
                    ));
                }
                if !seen.insert((e.year_offset, e.month)) {
                    out.push(format!(
                        "season `{name}`: year_offset {} month {} is listed twice",
                        e.year_offset, e.month
                    ));
                }
            }
        }
        out
    }

    /// The year offsets the policy reads (e.g. -1, 0, 1 for `gap_fill`).
    pub fn year_offsets(&self) -> BTreeSet<i64> {
        self.seasons
            .values()
            .flatten()
            .map(|e| e.year_offset)
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Selection
// ---------------------------------------------------------------------------------------------

/// What selection needs to know about a scene.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub id: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub year: i64,
    pub month: u32,
    pub valid_fraction: f64,
}

impl Candidate {
    /// From a scene's id, date and valid fraction; `None` when the date is not `YYYY-MM-DD`.
    pub fn new(id: &str, date: &str, valid_fraction: f64) -> Option<Candidate> {
        let (year, month) = parse_year_month(date)?;
        Some(Candidate {
            id: id.to_string(),
            date: date.to_string(),
            year,
            month,
            valid_fraction,
        })
    }
}

/// A chosen scene: its index in the candidate list and its window weight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Chosen {
    pub index: usize,
    pub weight: f64,
}

/// Order of "clearest": highest `valid_fraction` first (NaN counts as 0), then the earlier date,
/// then the smaller id.
pub fn clearest_first(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    let key = |c: &Candidate| {
        if c.valid_fraction.is_nan() {
            0.0
        } else {
            c.valid_fraction
        }
    };
    key(b)
        .total_cmp(&key(a))
        .then_with(|| a.date.cmp(&b.date))
        .then_with(|| a.id.cmp(&b.id))
}

/// The scenes a season's `entries` choose for year `year`, entry by entry (within an entry,
/// clearest first). A scene is chosen at most once.
pub fn select(entries: &[WindowEntry], year: i64, candidates: &[Candidate]) -> Vec<Chosen> {
    let mut out: Vec<Chosen> = Vec::new();
    let mut taken = BTreeSet::new();
    for e in entries {
        let y = year + e.year_offset;
        let mut matching: Vec<usize> = (0..candidates.len())
            .filter(|&i| candidates[i].year == y && candidates[i].month == e.month)
            .filter(|i| !taken.contains(i))
            .collect();
        matching.sort_by(|&a, &b| clearest_first(&candidates[a], &candidates[b]));
        let n = e.max_scenes.unwrap_or(usize::MAX);
        for i in matching.into_iter().take(n) {
            taken.insert(i);
            out.push(Chosen {
                index: i,
                weight: e.weight,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// `(year, month)` of a `YYYY-MM-DD` date.
pub fn parse_year_month(date: &str) -> Option<(i64, u32)> {
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some((year, month))
}

/// The `ScenesMeta` of an input artifact, or an error naming the port and the producing step.
pub fn scenes_meta(port: &str, art: &ArtifactIn) -> Result<ScenesMeta, NodeError> {
    serde_json::from_value(art.meta.clone()).map_err(|e| {
        NodeError::new(format!(
            "input `{port}` (from `{}`) is not a Scenes artifact: {e}",
            art.step_id
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y: i64 = 2020;

    /// One candidate per (year, month) over Y-2..Y+2, plus `extra` more per month with lower
    /// valid fractions, so that `max_scenes` matters.
    fn full_stack(extra: usize) -> Vec<Candidate> {
        let mut out = Vec::new();
        for year in Y - 2..=Y + 2 {
            for month in 1..=12 {
                for k in 0..=extra {
                    let date = format!("{year}-{month:02}-{:02}", 1 + k * 5);
                    let vf = 0.9 - 0.1 * k as f64;
                    out.push(Candidate::new(&format!("s{year}{month:02}{k}"), &date, vf).unwrap());
                }
            }
        }
        out
    }

    /// (year, month, count) of the chosen scenes, sorted.
    fn chosen_months(c: &[Candidate], chosen: &[Chosen]) -> Vec<(i64, u32, usize)> {
        let mut m: BTreeMap<(i64, u32), usize> = BTreeMap::new();
        for ch in chosen {
            *m.entry((c[ch.index].year, c[ch.index].month)).or_default() += 1;
        }
        m.into_iter().map(|((y, mo), n)| (y, mo, n)).collect()
    }

    /// The "Images used" table of docs/method.md, written out independently of the JSON.
    fn domain_table(season: &str) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
        match season {
            "S1" => (vec![1, 2], vec![3], vec![1, 2]),
            "S2" => (vec![3, 4], vec![2, 5], vec![3, 4]),
            "S3" => (vec![5, 6], vec![4, 7], vec![4, 5, 6, 7]),
            "S4" => (vec![7, 8], vec![6, 9], vec![6, 7, 8, 9]),
            "S5" => (vec![9, 10], vec![8, 11], vec![8, 9, 10, 11]),
            "S6" => (vec![11, 12], vec![10], vec![11, 12]),
            _ => unreachable!(),
        }
    }

    #[test]
    fn season_bimonthly_calendar() {
        let c = SeasonCalendar::bimonthly();
        let got: Vec<(String, Vec<u32>)> = c
            .seasons
            .iter()
            .map(|s| (s.name.clone(), s.months.clone()))
            .collect();
        let want: Vec<(String, Vec<u32>)> = vec![
            ("S1".into(), vec![1, 2]),
            ("S2".into(), vec![3, 4]),
            ("S3".into(), vec![5, 6]),
            ("S4".into(), vec![7, 8]),
            ("S5".into(), vec![9, 10]),
            ("S6".into(), vec![11, 12]),
        ];
        assert_eq!(got, want);
        assert_eq!(SeasonsParam::default().resolve().unwrap(), c);
    }

    #[test]
    fn season_gap_fill_selects_the_domain_table_for_every_season() {
        let cands = full_stack(3);
        let policy = gap_fill_policy();
        assert_eq!(policy.name, "gap_fill");
        assert!(policy.problems(&SeasonCalendar::bimonthly()).is_empty());
        for season in ["S1", "S2", "S3", "S4", "S5", "S6"] {
            let (own, other, neighbours) = domain_table(season);
            let mut want: Vec<(i64, u32, usize)> = Vec::new();
            for &m in &own {
                want.push((Y, m, 2));
            }
            for &m in &other {
                want.push((Y, m, 1));
            }
            for &m in &neighbours {
                want.push((Y - 1, m, 1));
                want.push((Y + 1, m, 1));
            }
            want.sort();
            let chosen = select(&policy.seasons[season], Y, &cands);
            assert_eq!(chosen_months(&cands, &chosen), want, "{season}");
            // Weights: 2 for the own months (the count n), 1 otherwise.
            for ch in &chosen {
                let c = &cands[ch.index];
                let w = if c.year == Y && own.contains(&c.month) {
                    2.0
                } else {
                    1.0
                };
                assert_eq!(ch.weight, w, "{season} {}", c.id);
            }
            // Nothing from Y-2 or Y+2 (the partition dims -1..+1 suffice).
            assert!(
                chosen
                    .iter()
                    .all(|ch| (cands[ch.index].year - Y).abs() <= 1)
            );
        }
    }

    #[test]
    fn season_gap_fill_year_boundaries() {
        let cands = full_stack(0);
        let p = gap_fill_policy();
        let s1 = chosen_months(&cands, &select(&p.seasons["S1"], Y, &cands));
        // S1 reaches into January/February of Y-1 and Y+1, never December of Y-1.
        assert!(s1.contains(&(Y - 1, 1, 1)) && s1.contains(&(Y - 1, 2, 1)));
        assert!(s1.contains(&(Y + 1, 1, 1)) && s1.contains(&(Y + 1, 2, 1)));
        assert!(!s1.iter().any(|&(y, m, _)| y == Y - 1 && m == 12));
        let s6 = chosen_months(&cands, &select(&p.seasons["S6"], Y, &cands));
        assert!(s6.contains(&(Y + 1, 11, 1)) && s6.contains(&(Y + 1, 12, 1)));
        assert!(s6.contains(&(Y - 1, 11, 1)) && s6.contains(&(Y - 1, 12, 1)));
        assert!(!s6.iter().any(|&(y, m, _)| y == Y + 1 && m == 1));
        assert_eq!(p.year_offsets(), BTreeSet::from([-1, 0, 1]));
        // At the ends of the data (no Y+1 scenes), only what exists is chosen.
        let no_next: Vec<Candidate> = cands.iter().filter(|c| c.year <= Y).cloned().collect();
        let s6 = chosen_months(&no_next, &select(&p.seasons["S6"], Y, &no_next));
        assert_eq!(
            s6,
            vec![
                (Y - 1, 11, 1),
                (Y - 1, 12, 1),
                (Y, 10, 1),
                (Y, 11, 1),
                (Y, 12, 1)
            ]
        );
    }

    #[test]
    fn season_own_takes_every_scene_of_the_own_months() {
        let cands = full_stack(4);
        let cal = SeasonCalendar::bimonthly();
        let p = WindowParam::Named("own".into()).resolve(&cal).unwrap();
        for (k, s) in cal.seasons.iter().enumerate() {
            let got = chosen_months(&cands, &select(&p.seasons[&s.name], Y, &cands));
            let m = 2 * k as u32 + 1;
            assert_eq!(got, vec![(Y, m, 5), (Y, m + 1, 5)], "{}", s.name);
        }
        // The JSON built-in equals `own` derived from the calendar.
        let mut custom = cal.clone();
        custom.name = "custom".into();
        let derived = own_policy(&custom);
        assert_eq!(derived, builtin(OWN_BIMONTHLY));
    }

    #[test]
    fn season_clearest_selection_and_ties() {
        let c = |id: &str, date: &str, vf: f64| Candidate::new(id, date, vf).unwrap();
        let cands = vec![
            c("a", "2020-03-20", 0.50),
            c("b", "2020-03-05", 0.90),
            c("c", "2020-03-25", 0.90), // ties with b: the earlier date wins
            c("e", "2020-03-10", 0.70),
            c("d", "2020-03-10", 0.70), // ties with e on fraction and date: smaller id wins
            c("n", "2020-03-12", f64::NAN),
            c("z", "2020-04-01", 1.00), // other month
        ];
        let entry = |max| WindowEntry {
            year_offset: 0,
            month: 3,
            max_scenes: max,
            weight: 1.0,
        };
        let ids = |chosen: Vec<Chosen>| -> Vec<String> {
            chosen.iter().map(|ch| cands[ch.index].id.clone()).collect()
        };
        assert_eq!(ids(select(&[entry(Some(2))], 2020, &cands)), ["b", "c"]);
        assert_eq!(
            ids(select(&[entry(Some(4))], 2020, &cands)),
            ["b", "c", "d", "e"]
        );
        assert_eq!(
            ids(select(&[entry(None)], 2020, &cands)),
            ["b", "c", "d", "e", "a", "n"]
        );
        // Input order does not matter.
        let mut rev = cands.clone();
        rev.reverse();
        let chosen: Vec<String> = select(&[entry(Some(3))], 2020, &rev)
            .iter()
            .map(|ch| rev[ch.index].id.clone())
            .collect();
        assert_eq!(chosen, ["b", "c", "d"]);
        // A different year selects nothing.
        assert!(select(&[entry(None)], 2021, &cands).is_empty());
    }

    #[test]
    fn season_custom_policy_as_data() {
        let json = serde_json::json!({
            "name": "three_clearest",
            "seasons": {
                "S1": [{"month": 1, "max_scenes": 3}, {"year_offset": -1, "month": 12, "weight": 0.5}],
                "S2": [{"month": 3}], "S3": [{"month": 5}], "S4": [{"month": 7}],
                "S5": [{"month": 9}], "S6": [{"month": 11}]
            }
        });
        let w: WindowParam = serde_json::from_value(json).unwrap();
        let cal = SeasonCalendar::bimonthly();
        let p = w.resolve(&cal).unwrap();
        assert_eq!(p.name, "three_clearest");
        assert_eq!(
            p.seasons["S1"][1],
            WindowEntry {
                year_offset: -1,
                month: 12,
                max_scenes: None,
                weight: 0.5
            }
        );
        let cands = full_stack(4);
        let got = chosen_months(&cands, &select(&p.seasons["S1"], Y, &cands));
        assert_eq!(got, vec![(Y - 1, 12, 5), (Y, 1, 3)]);
        // Round trip of the canonical form.
        let back: WindowParam = serde_json::from_value(serde_json::to_value(&w).unwrap()).unwrap();
        assert_eq!(back, w);
        let named: WindowParam = serde_json::from_value(serde_json::json!("own")).unwrap();
        assert_eq!(named, WindowParam::Named("own".into()));
    }

    #[test]
    fn season_bad_policies_and_calendars_are_reported() {
        let cal = SeasonCalendar::bimonthly();
        let bad = |v: serde_json::Value| -> String {
            match serde_json::from_value::<WindowParam>(v) {
                Err(e) => e.to_string(),
                Ok(w) => w.resolve(&cal).unwrap_err(),
            }
        };
        assert!(bad(serde_json::json!("gapfill")).contains("unknown window `gapfill`"));
        let e = bad(serde_json::json!({"seasons": {"S1": [{"month": 13}]}}));
        assert!(
            e.contains("month 13") && e.contains("no entry for season `S2`"),
            "{e}"
        );
        let e = bad(serde_json::json!({"seasons": {"S1": [{"month": 1, "nmax": 2}]}}));
        assert!(e.contains("nmax"), "{e}");
        let all = |entries: serde_json::Value| serde_json::json!({"seasons": {"S1": entries, "S2": [], "S3": [], "S4": [], "S5": [], "S6": []}});
        let e = bad(all(
            serde_json::json!([{"month": 1}, {"month": 1, "weight": 2}]),
        ));
        assert!(e.contains("listed twice"), "{e}");
        let e = bad(all(serde_json::json!([{"month": 1, "weight": 0}])));
        assert!(e.contains("`weight` must be positive"), "{e}");
        let e = bad(all(serde_json::json!([{"month": 1, "max_scenes": 0}])));
        assert!(e.contains("`max_scenes` must be at least 1"), "{e}");
        let e = bad(
            serde_json::json!({"seasons": {"S1": [], "S2": [], "S3": [], "S4": [], "S5": [], "S6": [], "S7": []}}),
        );
        assert!(e.contains("unknown season `S7`"), "{e}");

        // Calendars.
        let custom: SeasonsParam = serde_json::from_value(serde_json::json!([
            {"name": "dry", "months": [12, 1, 2, 3, 4]},
            {"name": "wet", "months": [5, 6, 7, 8, 9, 10, 11]}
        ]))
        .unwrap();
        let cc = custom.resolve().unwrap();
        assert_eq!(cc.seasons.len(), 2);
        // `own` works with any calendar, `gap_fill` only with the bi-monthly one.
        let own = WindowParam::Named("own".into()).resolve(&cc).unwrap();
        assert_eq!(own.seasons["dry"].len(), 5);
        let e = WindowParam::default().resolve(&cc).unwrap_err();
        assert!(e.contains("`gap_fill`"), "{e}");
        let e = SeasonsParam::Named("monthly".into()).resolve().unwrap_err();
        assert!(e.contains("unknown season calendar `monthly`"), "{e}");
        let e = SeasonsParam::Custom(vec![Season {
            name: "a/b".into(),
            months: vec![1],
        }])
        .resolve()
        .unwrap_err();
        assert!(e.contains("a/b"), "{e}");
        let e = SeasonsParam::Custom(vec![Season {
            name: "x".into(),
            months: vec![0],
        }])
        .resolve()
        .unwrap_err();
        assert!(e.contains("month 0"), "{e}");
    }

    #[test]
    fn season_dates_parse() {
        assert_eq!(parse_year_month("2020-01-09"), Some((2020, 1)));
        assert_eq!(parse_year_month("2019-12-31"), Some((2019, 12)));
        assert_eq!(parse_year_month("2020-13-01"), None);
        assert_eq!(parse_year_month("20200109"), None);
        assert_eq!(parse_year_month("2020-01-09T10:00"), None);
    }
}
