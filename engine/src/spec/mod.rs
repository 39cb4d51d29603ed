//! Raw spec: the document's shape, every user-visible value still carrying its span.
//!
//! This layer only checks the *shape* (which top-level sections and node fields exist, which are
//! mappings); meaning (kinds, ports, params, partitions) is checked when lowering into a
//! [`crate::plan::Plan`]. Nothing after lowering looks at these types.

pub mod yaml;

use serde_json::Value;

use crate::diag::{Code, Diagnostics, SpecError};
use yaml::{Span, Yaml, YamlKind};

/// A key (node name, param name, port name) with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct RawSpec {
    pub name: Option<Key>,
    pub description: Option<String>,
    /// Top-level params, in file order.
    pub params: Vec<(Key, Yaml)>,
    /// `sweep:` entries (`node.param` or `param` -> list), in file order.
    pub sweep: Vec<(Key, Yaml)>,
    pub nodes: Vec<RawNode>,
}

#[derive(Clone, Debug)]
pub struct RawNode {
    pub name: Key,
    pub kind: Option<Key>,
    pub for_each: Vec<(Key, Yaml)>,
    pub inputs: Vec<(Key, Yaml)>,
    pub params: Vec<(Key, Yaml)>,
    /// Span of the `params:` value (for errors about params as a whole).
    pub params_span: Option<Span>,
    pub env: Vec<Key>,
    /// `resources:` entries (what a step asks of a cluster job), in file order.
    pub resources: Vec<(Key, Yaml)>,
    /// `inputs:` was there but not a mapping (reported).
    pub inputs_invalid: bool,
}

const TOP_FIELDS: &[&str] = &["name", "description", "params", "sweep", "nodes"];
const NODE_FIELDS: &[&str] = &[
    "kind",
    "for_each",
    "inputs",
    "params",
    "env",
    "resources",
    "doc",
];

/// Read the document's shape. Errors go to `diags`; what could be read is returned.
pub fn read(doc: &Yaml, diags: &mut Diagnostics) -> RawSpec {
    let mut spec = RawSpec::default();
    if doc.kind == YamlKind::Null {
        diags.push(
            SpecError::new(Code::MissingField, "the spec is empty")
                .at(doc.span, "no YAML here")
                .help("a spec is a mapping with at least `nodes:`, e.g. `nodes: { a: { kind: simulate } }`"),
        );
        return spec;
    }
    duplicate_keys(doc, diags);
    let Some(top) = expect_map(doc, "the spec", diags) else {
        return spec;
    };
    let mut saw_nodes = false;
    let mut nodes_typo = false;
    for (k, v) in unique(top) {
        let key = key_of(k);
        match key.text.as_str() {
            "name" => match v.as_str() {
                Some(s) => {
                    spec.name = Some(Key {
                        text: s.to_string(),
                        span: v.span,
                    })
                }
                None => diags.push(type_error(v, "`name`", "a string")),
            },
            "description" => spec.description = v.as_str().map(str::to_string),
            "params" => spec.params = map_entries(v, "`params`", diags),
            "sweep" => spec.sweep = map_entries(v, "`sweep`", diags),
            "nodes" => {
                saw_nodes = true;
                for (nk, nv) in map_entries(v, "`nodes`", diags) {
                    spec.nodes.push(read_node(nk, nv, diags));
                }
            }
            other => {
                nodes_typo |= crate::diag::closest(other, ["nodes"]).is_some();
                diags.push(
                    SpecError::new(
                        Code::UnknownField,
                        format!("unknown top-level field `{other}`"),
                    )
                    .at(key.span, "not a spec field")
                    .did_you_mean(other, TOP_FIELDS.iter().copied()),
                )
            }
        }
    }
    // `node:` for `nodes:` is reported once, as the typo it is.
    if !saw_nodes && !nodes_typo {
        diags.push(
            SpecError::new(Code::MissingField, "the spec has no `nodes:` section")
                .at(doc.span, "expected `nodes:` here")
                .help("add `nodes:` with at least one node, e.g. `a: { kind: acquire }`"),
        );
    }
    spec
}

fn read_node(name: Key, v: Yaml, diags: &mut Diagnostics) -> RawNode {
    let mut node = RawNode {
        name: name.clone(),
        kind: None,
        for_each: Vec::new(),
        inputs: Vec::new(),
        params: Vec::new(),
        params_span: None,
        env: Vec::new(),
        resources: Vec::new(),
        inputs_invalid: false,
    };
    let Some(fields) = expect_map(&v, &format!("node `{}`", name.text), diags) else {
        return node;
    };
    let has_kind = fields.iter().any(|(k, _)| k.key_text() == "kind");
    if !has_kind && NODE_FIELDS.contains(&name.text.as_str()) {
        // `params:` two spaces too far left is read as a node named `params`.
        diags.push(
            SpecError::new(
                Code::BadShape,
                format!("`{}:` is at node level, so it is read as a node", name.text),
            )
            .at(name.span, "a node field, indented as a node")
            .help(format!(
                "indent `{}:` under the node it belongs to",
                name.text
            )),
        );
        return node;
    }
    for (k, fv) in unique(fields) {
        let key = key_of(k);
        match key.text.as_str() {
            "kind" => match fv.as_str() {
                Some(s) => {
                    node.kind = Some(Key {
                        text: s.to_string(),
                        span: fv.span,
                    })
                }
                None => diags.push(type_error(fv, "`kind`", "a node kind name")),
            },
            "for_each" => node.for_each = map_entries(fv, "`for_each`", diags),
            "inputs" => {
                node.inputs_invalid = !matches!(fv.kind, YamlKind::Map(_) | YamlKind::Null);
                node.inputs = map_entries(fv, "`inputs`", diags);
            }
            "params" => {
                node.params_span = Some(fv.span);
                node.params = map_entries(fv, "`params`", diags);
            }
            "env" => match &fv.kind {
                YamlKind::Seq(items) => {
                    for i in items {
                        match i.as_str() {
                            Some(s) => node.env.push(Key {
                                text: s.to_string(),
                                span: i.span,
                            }),
                            None => diags.push(type_error(i, "an `env` entry", "a variable name")),
                        }
                    }
                }
                _ => diags.push(type_error(fv, "`env`", "a list of variable names")),
            },
            "resources" => node.resources = map_entries(fv, "`resources`", diags),
            "doc" => {}
            other => diags.push(
                SpecError::new(
                    Code::UnknownField,
                    format!("unknown field `{other}` in node `{}`", name.text),
                )
                .at(key.span, "not a node field")
                .did_you_mean(other, NODE_FIELDS.iter().copied()),
            ),
        }
    }
    if !has_kind {
        diags.push(
            SpecError::new(
                Code::MissingField,
                format!("node `{}` has no `kind`", name.text),
            )
            .at(name.span, "this node needs `kind:`"),
        );
    }
    node
}

pub fn key_of(k: &Yaml) -> Key {
    Key {
        text: k.key_text(),
        span: k.span,
    }
}

fn expect_map<'a>(v: &'a Yaml, what: &str, diags: &mut Diagnostics) -> Option<&'a [(Yaml, Yaml)]> {
    match &v.kind {
        YamlKind::Map(m) => Some(m),
        YamlKind::Null => Some(&[]),
        _ => {
            diags.push(type_error(v, what, "a mapping"));
            None
        }
    }
}

/// The entries of a mapping, the first of each key only (duplicates are reported once, by
/// [`duplicate_keys`]).
fn map_entries(v: &Yaml, what: &str, diags: &mut Diagnostics) -> Vec<(Key, Yaml)> {
    let Some(m) = expect_map(v, what, diags) else {
        return Vec::new();
    };
    unique(m).map(|(k, v)| (key_of(k), v.clone())).collect()
}

/// The entries of a mapping whose key did not appear before.
fn unique(m: &[(Yaml, Yaml)]) -> impl Iterator<Item = &(Yaml, Yaml)> {
    let mut seen = std::collections::HashSet::new();
    m.iter().filter(move |(k, _)| seen.insert(k.key_text()))
}

/// Report every key that appears twice in one mapping, anywhere in the document (YAML forbids
/// it; the parser hands them over so that both places can be underlined).
fn duplicate_keys(doc: &Yaml, diags: &mut Diagnostics) {
    let mut stack = vec![doc];
    while let Some(y) = stack.pop() {
        match &y.kind {
            YamlKind::Seq(items) => stack.extend(items.iter()),
            YamlKind::Map(entries) => {
                let mut first: std::collections::HashMap<String, Span> =
                    std::collections::HashMap::new();
                for (k, v) in entries {
                    let text = k.key_text();
                    match first.get(&text) {
                        Some(prev) => diags.push(
                            SpecError::new(Code::BadShape, format!("duplicate key `{text}`"))
                                .at(k.span, "defined again here")
                                .also(*prev, "first defined here")
                                .help("each key may appear once in a mapping; the first is used"),
                        ),
                        None => {
                            first.insert(text, k.span);
                        }
                    }
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
}

pub fn type_error(v: &Yaml, what: &str, expected: &str) -> SpecError {
    SpecError::new(
        Code::BadShape,
        format!("{what} must be {expected}, found {}", v.type_name()),
    )
    .at(v.span, format!("expected {expected}"))
}

/// Most values one `A..B` range may have (a typo like `2017..99999` should not become 80,000
/// partitions).
pub const MAX_RANGE_VALUES: usize = 10_000;

/// `2017..2022` (inclusive) as a list of integers, if `s` is a range. Text made only of digits,
/// signs and dots around a `..` (`2017..`, `2017...2022`, `2017.0..2019.0`) is a range gone
/// wrong, an error rather than a string.
///
/// The error carries its code: `empty_partition` (end before start), `bad_value` (not a
/// range of integers) or `too_many_steps` (more than [`MAX_RANGE_VALUES`]).
pub fn parse_range(s: &str) -> Option<Result<Vec<i64>, (Code, String)>> {
    let (a, b) = s.split_once("..")?;
    let (a_text, b_text) = (a.trim(), b.trim());
    let (a, b) = match (a_text.parse::<i64>(), b_text.parse::<i64>()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            let rangeish = s.chars().any(|c| c.is_ascii_digit())
                && s.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | '-' | ' '));
            if !rangeish {
                return None;
            }
            let why = if b_text.is_empty() {
                "has no end"
            } else if a_text.is_empty() {
                "has no start"
            } else {
                "is not `START..END` with integer ends"
            };
            return Some(Err((
                Code::BadValue,
                format!("range `{s}` {why}: write e.g. `2017..2022` (both ends included)"),
            )));
        }
    };
    if b < a {
        return Some(Err((
            Code::EmptyPartition,
            format!("range `{s}` is empty: its end {b} is before its start {a}"),
        )));
    }
    let count = (i128::from(b) - i128::from(a) + 1) as u128;
    if count > MAX_RANGE_VALUES as u128 {
        return Some(Err((
            Code::TooManySteps,
            format!("range `{s}` has {count} values, more than the limit of {MAX_RANGE_VALUES}"),
        )));
    }
    Some(Ok((a..=b).collect()))
}

/// Convert a YAML value to JSON, expanding `A..B` ranges into lists of integers.
pub fn to_value(y: &Yaml) -> Result<Value, SpecError> {
    Ok(match &y.kind {
        YamlKind::Null => Value::Null,
        YamlKind::Bool(b) => Value::Bool(*b),
        YamlKind::Int(i) => Value::from(*i),
        YamlKind::Float(f) => {
            if !f.is_finite() {
                return Err(SpecError::new(
                    Code::BadValue,
                    format!("`{f}` is not a finite number"),
                )
                .at(y.span, "not finite"));
            }
            Value::from(*f)
        }
        YamlKind::Str(s) => match parse_range(s) {
            Some(Ok(list)) => Value::from(list),
            Some(Err((code, msg))) => {
                return Err(SpecError::new(code, msg).at(y.span, "this range"));
            }
            None => Value::String(s.clone()),
        },
        YamlKind::Seq(items) => Value::Array(items.iter().map(to_value).collect::<Result<_, _>>()?),
        YamlKind::Map(entries) => {
            let mut m = serde_json::Map::new();
            for (k, v) in entries {
                // The first of duplicate keys, as everywhere else (they are reported).
                if let serde_json::map::Entry::Vacant(slot) = m.entry(k.key_text()) {
                    slot.insert(to_value(v)?);
                }
            }
            Value::Object(m)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("2017..2019"), Some(Ok(vec![2017, 2018, 2019])));
        assert!(matches!(parse_range("2019..2017"), Some(Err(_))));
        assert_eq!(parse_range("abc"), None);
        assert_eq!(parse_range("a..b"), None);
        assert_eq!(parse_range("../data/x.tif"), None);
        assert_eq!(parse_range("-1..+1"), Some(Ok(vec![-1, 0, 1])));
    }

    #[test]
    fn ranges_gone_wrong_are_errors() {
        for s in ["2017..", "..2022", "2017...2022", "2017.0..2019.0"] {
            assert!(matches!(parse_range(s), Some(Err(_))), "{s}");
        }
        // Regression (found while writing tests/ui/range_overflow): `b - a` overflowed.
        let e = parse_range("-9223372036854775808..9223372036854775807")
            .unwrap()
            .unwrap_err();
        assert_eq!(e.0, Code::TooManySteps);
        assert!(e.1.contains("18446744073709551616 values"), "{e:?}");
        assert!(matches!(parse_range("2017..99999"), Some(Err(_))));
        assert_eq!(parse_range("1..10000").unwrap().unwrap().len(), 10_000);
    }

    #[test]
    fn reads_shape_and_reports_unknown_fields() {
        let src = "name: t\nnodez: {}\nnodes:\n  a:\n    kind: k\n    parms: {}\n";
        let doc = yaml::parse(src).unwrap();
        let mut d = Diagnostics::default();
        let spec = read(&doc, &mut d);
        assert_eq!(spec.nodes.len(), 1);
        // `nodez` and `parms` are both reported
        assert_eq!(d.len(), 2);
    }
}
