//! The 14 land-cover classes of the method (`docs/method.md`, "Classes"): codes 1..=14 (0 is
//! nodata), names and colours, and the [`Legend`] that models and maps carry.

use serde::{Deserialize, Serialize};

/// Number of classes (codes `1..=CLASS_COUNT`; 0 is nodata).
pub const CLASS_COUNT: usize = 14;

/// Class names by code - 1, as in docs/method.md.
pub const CLASS_NAMES: [&str; CLASS_COUNT] = [
    "Water",
    "Urban/Built-up",
    "Rice",
    "Other crops",
    "Grass/Shrub",
    "Woody crops/Orchard",
    "Barren",
    "Evergreen broadleaf forest (EBF)",
    "Evergreen needleleaf forest (ENF)",
    "Deciduous forest",
    "Plantation forest",
    "Mangrove forest",
    "Aquaculture",
    "Solar panel",
];

/// Class colours by code - 1, as in docs/method.md.
pub const CLASS_COLOURS: [[u8; 3]; CLASS_COUNT] = [
    [0x1f, 0x4f, 0xd8],
    [0xd7, 0x19, 0x1c],
    [0xf6, 0xe8, 0x3e],
    [0xf4, 0xa2, 0x59],
    [0xb5, 0xd7, 0x7b],
    [0xa6, 0x61, 0x1a],
    [0xd9, 0xd9, 0xd9],
    [0x00, 0x44, 0x1b],
    [0x2b, 0x8c, 0x6e],
    [0x7f, 0xbf, 0x3f],
    [0xc2, 0xa5, 0xcf],
    [0x01, 0x66, 0x5e],
    [0x35, 0xb8, 0xe0],
    [0x6a, 0x3d, 0x9a],
];

/// One class of a legend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassDef {
    /// 1..=255 (0 is nodata in every map).
    pub code: u8,
    pub name: String,
    /// `#rrggbb`.
    pub colour: String,
}

/// The classes a model predicts and a map shows, in code order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Legend(pub Vec<ClassDef>);

impl Default for Legend {
    /// The 14 classes of `docs/method.md`.
    fn default() -> Legend {
        Legend(
            (0..CLASS_COUNT)
                .map(|i| {
                    let [r, g, b] = CLASS_COLOURS[i];
                    ClassDef {
                        code: i as u8 + 1,
                        name: CLASS_NAMES[i].to_string(),
                        colour: format!("#{r:02x}{g:02x}{b:02x}"),
                    }
                })
                .collect(),
        )
    }
}

impl Legend {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Index (0-based model output) of a class code.
    pub fn index_of(&self, code: u8) -> Option<usize> {
        self.0.iter().position(|c| c.code == code)
    }

    pub fn get(&self, code: u8) -> Option<&ClassDef> {
        self.0.iter().find(|c| c.code == code)
    }

    /// Name of a code, or `class <code>` when the legend lacks it.
    pub fn name(&self, code: u8) -> String {
        self.get(code)
            .map(|c| c.name.clone())
            .unwrap_or_else(|| format!("class {code}"))
    }

    /// RGB of a class (grey when the colour does not parse).
    pub fn rgb(&self, code: u8) -> [u8; 3] {
        self.get(code)
            .and_then(|c| parse_hex(&c.colour))
            .unwrap_or([128, 128, 128])
    }
}

fn parse_hex(s: &str) -> Option<[u8; 3]> {
    let h = s.strip_prefix('#')?;
    if h.len() != 6 {
        return None;
    }
    let v = u32::from_str_radix(h, 16).ok()?;
    Some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_legend_has_the_fourteen_classes_of_domain_md() {
        let l = Legend::default();
        assert_eq!(l.len(), 14);
        assert_eq!(l.index_of(1), Some(0));
        assert_eq!(l.index_of(14), Some(13));
        assert_eq!(l.index_of(0), None);
        assert_eq!(l.name(3), "Rice");
        assert_eq!(l.rgb(1), [0x1f, 0x4f, 0xd8]);
        assert_eq!(l.0[13].colour, "#6a3d9a");
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<Legend>(&json).unwrap(), l);
    }
}
