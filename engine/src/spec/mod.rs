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
}

const TOP_FIELDS: &[&str] = &["name", "description", "params", "sweep", "nodes"];
const NODE_FIELDS: &[&str] = &["kind", "for_each", "inputs", "params", "env", "doc"];

/// Read the document's shape. Errors go to `diags`; what could be read is returned.
pub fn read(doc: &Yaml, diags: &mut Diagnostics) -> RawSpec {
    let mut spec = RawSpec::default();
    let Some(top) = expect_map(doc, "the spec", diags) else {
        return spec;
    };
    let mut saw_nodes = false;
    for (k, v) in top {
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
            other => diags.push(
                SpecError::new(
                    Code::UnknownField,
                    format!("unknown top-level field `{other}`"),
                )
                .at(key.span, "not a spec field")
                .did_you_mean(other, TOP_FIELDS.iter().copied()),
            ),
        }
    }
    if !saw_nodes {
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
    };
    let Some(fields) = expect_map(&v, &format!("node `{}`", name.text), diags) else {
        return node;
    };
    for (k, fv) in fields {
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
            "inputs" => node.inputs = map_entries(fv, "`inputs`", diags),
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
    if node.kind.is_none() {
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

fn map_entries(v: &Yaml, what: &str, diags: &mut Diagnostics) -> Vec<(Key, Yaml)> {
    let Some(m) = expect_map(v, what, diags) else {
        return Vec::new();
    };
    let mut out: Vec<(Key, Yaml)> = Vec::with_capacity(m.len());
    for (k, v) in m {
        let key = key_of(k);
        if let Some((prev, _)) = out.iter().find(|(p, _)| p.text == key.text) {
            diags.push(
                SpecError::new(Code::BadShape, format!("duplicate key `{}`", key.text))
                    .at(key.span, "defined again here")
                    .also(prev.span, "first defined here"),
            );
            continue;
        }
        out.push((key, v.clone()));
    }
    out
}

pub fn type_error(v: &Yaml, what: &str, expected: &str) -> SpecError {
    SpecError::new(
        Code::BadShape,
        format!("{what} must be {expected}, found {}", v.type_name()),
    )
    .at(v.span, format!("expected {expected}"))
}

/// `2017..2022` (inclusive) as a list of integers, if `s` is a range.
pub fn parse_range(s: &str) -> Option<Result<Vec<i64>, String>> {
    let (a, b) = s.split_once("..")?;
    let a: i64 = a.trim().parse().ok()?;
    let b: i64 = b.trim().parse().ok()?;
    if b < a {
        return Some(Err(format!(
            "range `{s}` is empty: its end {b} is before its start {a}"
        )));
    }
    if b - a >= 100_000 {
        return Some(Err(format!(
            "range `{s}` has {} values, more than the limit of 100000",
            b - a + 1
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
            Some(Err(msg)) => {
                return Err(SpecError::new(Code::EmptyPartition, msg).at(y.span, "this range"));
            }
            None => Value::String(s.clone()),
        },
        YamlKind::Seq(items) => Value::Array(items.iter().map(to_value).collect::<Result<_, _>>()?),
        YamlKind::Map(entries) => {
            let mut m = serde_json::Map::new();
            for (k, v) in entries {
                m.insert(k.key_text(), to_value(v)?);
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
