//! Feature names, the sensor each comes from, and the named feature sets used for ablations.
//!
//! One catalogue ([`CATALOGUE`]) fixes every feature's name and its place in the canonical order
//! (the order of `docs/method.md`: Sentinel-2 bands and indices, Sentinel-1, PALSAR-2, static layers).
//! Named sets and explicit lists both resolve against it, so a typo is caught before anything
//! runs, with the valid names and a "did you mean".
//!
//! Set expressions: a set name, or several joined with `+` (their union, in canonical order):
//!
//! | name | features |
//! |---|---|
//! | `s2` | the ten bands and NDVI, EVI, GNDVI, GRVI, NDWI1, NDWI2, GSI |
//! | `s1` | VV, VH, VV-VH, VV/VH, VV_savg, VV_diss, VH_savg, VH_diss |
//! | `palsar` | HH, HV, HH-HV, HH/HV, NDI, NLI, HH_savg, HH_diss, HV_savg, HV_diss |
//! | `dsm` | DSM, slope |
//! | `roads` | road_dist |
//! | `static` | DSM, slope, road_dist |
//! | `s2_s1` | `s2+s1` |
//! | `s2_s1_palsar` | `s2+s1+palsar` |
//! | `all` | every feature (`s2_s1_palsar+static`) |
//!
//! so `s2_s1+dsm` is the Sentinel-2 and Sentinel-1 features plus DSM and slope.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a feature comes from: which input of the `index` node must be connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sensor {
    Sentinel2,
    Sentinel1,
    Palsar2,
    Dsm,
    Roads,
}

impl Sensor {
    pub const ALL: [Sensor; 5] = [
        Sensor::Sentinel2,
        Sensor::Sentinel1,
        Sensor::Palsar2,
        Sensor::Dsm,
        Sensor::Roads,
    ];

    /// Human name, for messages.
    pub fn label(self) -> &'static str {
        match self {
            Sensor::Sentinel2 => "Sentinel-2",
            Sensor::Sentinel1 => "Sentinel-1",
            Sensor::Palsar2 => "PALSAR-2",
            Sensor::Dsm => "a DSM",
            Sensor::Roads => "roads",
        }
    }

    /// What to connect on the `index` node to get this sensor's features.
    pub fn how_to_connect(self) -> &'static str {
        match self {
            Sensor::Sentinel2 => "the `s2` input",
            Sensor::Sentinel1 => "the `s1` input",
            Sensor::Palsar2 => "the `palsar` input",
            Sensor::Dsm => "the `dsm` input",
            Sensor::Roads => "the `roads` param or the `catalog` input",
        }
    }
}

impl fmt::Display for Sensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One feature: its band name in a `Features` artifact and its sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureDef {
    pub name: &'static str,
    pub sensor: Sensor,
}

const fn f(name: &'static str, sensor: Sensor) -> FeatureDef {
    FeatureDef { name, sensor }
}

/// The ten Sentinel-2 bands, in feature order.
pub const S2_BANDS: [&str; 10] = [
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
];

/// Every feature in canonical order (`docs/method.md`, "Features").
pub const CATALOGUE: [FeatureDef; 38] = {
    use Sensor::*;
    [
        f("B02", Sentinel2),
        f("B03", Sentinel2),
        f("B04", Sentinel2),
        f("B05", Sentinel2),
        f("B06", Sentinel2),
        f("B07", Sentinel2),
        f("B08", Sentinel2),
        f("B8A", Sentinel2),
        f("B11", Sentinel2),
        f("B12", Sentinel2),
        f("NDVI", Sentinel2),
        f("EVI", Sentinel2),
        f("GNDVI", Sentinel2),
        f("GRVI", Sentinel2),
        f("NDWI1", Sentinel2),
        f("NDWI2", Sentinel2),
        f("GSI", Sentinel2),
        f("VV", Sentinel1),
        f("VH", Sentinel1),
        f("VV-VH", Sentinel1),
        f("VV/VH", Sentinel1),
        f("VV_savg", Sentinel1),
        f("VV_diss", Sentinel1),
        f("VH_savg", Sentinel1),
        f("VH_diss", Sentinel1),
        f("HH", Palsar2),
        f("HV", Palsar2),
        f("HH-HV", Palsar2),
        f("HH/HV", Palsar2),
        f("NDI", Palsar2),
        f("NLI", Palsar2),
        f("HH_savg", Palsar2),
        f("HH_diss", Palsar2),
        f("HV_savg", Palsar2),
        f("HV_diss", Palsar2),
        f("DSM", Dsm),
        f("slope", Dsm),
        f("road_dist", Roads),
    ]
};

/// Named sets and the sensors they take (see the module doc).
pub const SETS: [(&str, &[Sensor]); 9] = {
    use Sensor::*;
    [
        ("s2", &[Sentinel2]),
        ("s1", &[Sentinel1]),
        ("palsar", &[Palsar2]),
        ("dsm", &[Dsm]),
        ("roads", &[Roads]),
        ("static", &[Dsm, Roads]),
        ("s2_s1", &[Sentinel2, Sentinel1]),
        ("s2_s1_palsar", &[Sentinel2, Sentinel1, Palsar2]),
        ("all", &[Sentinel2, Sentinel1, Palsar2, Dsm, Roads]),
    ]
};

/// The feature called `name`, if there is one (names are case-sensitive: `DSM` is a feature,
/// `dsm` a set).
pub fn feature(name: &str) -> Option<&'static FeatureDef> {
    CATALOGUE.iter().find(|f| f.name == name)
}

/// Names of all features of `sensors`, in canonical order.
pub fn features_of(sensors: &[Sensor]) -> Vec<&'static str> {
    CATALOGUE
        .iter()
        .filter(|f| sensors.contains(&f.sensor))
        .map(|f| f.name)
        .collect()
}

/// Which features to use: a set expression (`s2_s1+dsm`) or an explicit list whose items are
/// feature names or set expressions. An explicit list keeps its order (a set item expands in
/// canonical order where it stands); a feature listed twice counts once, at its first place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FeatureSelection {
    Set(String),
    List(Vec<String>),
}

impl Default for FeatureSelection {
    fn default() -> Self {
        FeatureSelection::Set("all".to_string())
    }
}

impl fmt::Display for FeatureSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureSelection::Set(s) => f.write_str(s),
            FeatureSelection::List(l) => write!(f, "[{}]", l.join(", ")),
        }
    }
}

/// A name that is neither a feature nor a set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown feature or set `{name}`{}; valid sets: {}; valid features: {}",
    .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
    set_names().join(", "),
    CATALOGUE.iter().map(|f| f.name).collect::<Vec<_>>().join(", "))]
pub struct UnknownFeature {
    pub name: String,
    pub suggestion: Option<String>,
}

fn set_names() -> Vec<&'static str> {
    SETS.iter().map(|(n, _)| *n).collect()
}

impl FeatureSelection {
    /// The chosen feature names, in output order. Every unknown name is reported.
    pub fn resolve(&self) -> Result<Vec<&'static str>, Vec<UnknownFeature>> {
        let items: Vec<&str> = match self {
            FeatureSelection::Set(s) => vec![s.as_str()],
            FeatureSelection::List(l) => l.iter().map(String::as_str).collect(),
        };
        let mut out: Vec<&'static str> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut errors = Vec::new();
        for item in items {
            match resolve_item(item) {
                Ok(names) => {
                    for n in names {
                        if seen.insert(n) {
                            out.push(n);
                        }
                    }
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// `check` helper: every problem as a message (no names at all is one too).
    pub fn problems(&self) -> Vec<String> {
        match self.resolve() {
            Ok(names) if names.is_empty() => vec!["no features selected".to_string()],
            Ok(_) => Vec::new(),
            Err(errs) => errs.iter().map(ToString::to_string).collect(),
        }
    }
}

/// One list item: a feature name, or a `+`-joined set expression.
fn resolve_item(item: &str) -> Result<Vec<&'static str>, Vec<UnknownFeature>> {
    let item = item.trim();
    if let Some(f) = feature(item) {
        return Ok(vec![f.name]);
    }
    let mut sensors = BTreeSet::new();
    let mut errors = Vec::new();
    for part in item.split('+').map(str::trim) {
        match SETS.iter().find(|(n, _)| *n == part) {
            Some((_, s)) => sensors.extend(s.iter().copied()),
            None => errors.push(UnknownFeature {
                name: part.to_string(),
                suggestion: suggest(part),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let sensors: Vec<Sensor> = sensors.into_iter().collect();
    Ok(features_of(&sensors))
}

/// The closest feature or set name, when it is close enough to be a likely typo.
fn suggest(name: &str) -> Option<String> {
    let candidates = CATALOGUE
        .iter()
        .map(|f| f.name)
        .chain(SETS.iter().map(|(n, _)| *n));
    let lower = name.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = if c.to_ascii_lowercase() == lower {
            0
        } else {
            edit_distance(&lower, &c.to_ascii_lowercase())
        };
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let limit = (name.chars().count() / 3).max(1);
    best.filter(|(d, _)| *d <= limit)
        .map(|(_, c)| c.to_string())
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> Vec<&'static str> {
        FeatureSelection::Set(s.to_string()).resolve().unwrap()
    }

    #[test]
    fn features_catalogue_is_unique_and_complete() {
        let names: BTreeSet<&str> = CATALOGUE.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), CATALOGUE.len());
        assert_eq!(CATALOGUE.len(), 17 + 8 + 10 + 3);
        for b in S2_BANDS {
            assert_eq!(feature(b).unwrap().sensor, Sensor::Sentinel2);
        }
        // No feature name is also a set name, so an item is never ambiguous.
        for (s, _) in SETS {
            assert!(feature(s).is_none(), "{s}");
        }
    }

    #[test]
    fn features_named_sets_select_the_right_names() {
        let s2 = set("s2");
        assert_eq!(s2.len(), 17);
        assert_eq!(&s2[..10], &S2_BANDS);
        assert_eq!(
            &s2[10..],
            &["NDVI", "EVI", "GNDVI", "GRVI", "NDWI1", "NDWI2", "GSI"]
        );
        let s2_s1 = set("s2_s1");
        assert_eq!(s2_s1.len(), 25);
        assert_eq!(&s2_s1[..17], &s2[..]);
        assert_eq!(
            &s2_s1[17..],
            &[
                "VV", "VH", "VV-VH", "VV/VH", "VV_savg", "VV_diss", "VH_savg", "VH_diss"
            ]
        );
        let sp = set("s2_s1_palsar");
        assert_eq!(sp.len(), 35);
        assert_eq!(
            &sp[25..],
            &[
                "HH", "HV", "HH-HV", "HH/HV", "NDI", "NLI", "HH_savg", "HH_diss", "HV_savg",
                "HV_diss"
            ]
        );
        let all = set("all");
        assert_eq!(all.len(), 38);
        assert_eq!(&all[35..], &["DSM", "slope", "road_dist"]);
        assert_eq!(set("s2_s1_palsar+static"), all);
        assert_eq!(set("s2_s1_palsar + dsm + roads"), all);
        let s2_dsm = set("s2+dsm");
        assert_eq!(s2_dsm.len(), 19);
        assert_eq!(&s2_dsm[17..], &["DSM", "slope"]);
        // Union in canonical order whatever the order of the parts.
        assert_eq!(set("roads+s2"), set("s2+roads"));
        assert_eq!(FeatureSelection::default().resolve().unwrap(), all);
    }

    #[test]
    fn features_explicit_list_keeps_its_order_and_drops_repeats() {
        let sel = FeatureSelection::List(vec![
            "NDVI".into(),
            "VV/VH".into(),
            "B02".into(),
            "NDVI".into(),
            "dsm".into(),
            "slope".into(),
        ]);
        assert_eq!(
            sel.resolve().unwrap(),
            vec!["NDVI", "VV/VH", "B02", "DSM", "slope"]
        );
    }

    #[test]
    fn features_unknown_name_errors_with_valid_names_and_suggestion() {
        let sel = FeatureSelection::List(vec!["ndvi".into(), "NDVI".into(), "s2_s3".into()]);
        let errs = sel.resolve().unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].name, "ndvi");
        assert_eq!(errs[0].suggestion.as_deref(), Some("NDVI"));
        assert_eq!(errs[1].suggestion.as_deref(), Some("s2_s1"));
        let msg = errs[0].to_string();
        assert!(msg.contains("unknown feature or set `ndvi`"), "{msg}");
        assert!(msg.contains("did you mean `NDVI`?"), "{msg}");
        assert!(msg.contains("s2_s1_palsar"), "{msg}");
        assert!(msg.contains("road_dist"), "{msg}");
        // A bad part of a set expression.
        let errs = FeatureSelection::Set("s2+lidar".into())
            .resolve()
            .unwrap_err();
        assert_eq!(errs[0].name, "lidar");
        assert_eq!(errs[0].suggestion, None);
        assert_eq!(
            FeatureSelection::List(vec![]).problems(),
            vec!["no features selected".to_string()]
        );
    }

    #[test]
    fn features_selection_serialises_as_string_or_list() {
        let s: FeatureSelection = serde_json::from_str("\"s2_s1\"").unwrap();
        assert_eq!(s, FeatureSelection::Set("s2_s1".into()));
        let l: FeatureSelection = serde_json::from_str("[\"NDVI\", \"VV\"]").unwrap();
        assert_eq!(l, FeatureSelection::List(vec!["NDVI".into(), "VV".into()]));
        assert_eq!(serde_json::to_string(&l).unwrap(), "[\"NDVI\",\"VV\"]");
    }
}
