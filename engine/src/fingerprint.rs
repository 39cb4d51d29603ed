//! Step keys and why a step is dirty.
//!
//! A step key is the blake3 hash of the canonical JSON of [`KeyMaterial`]:
//!
//! | in the key | why |
//! |---|---|
//! | `engine` (cache format version) | a change in how keys or artifacts are laid out invalidates all |
//! | `kind`, `version` | a new node version may compute something else |
//! | `params` (canonical, defaults filled in, sorted) | a changed default is a changed param |
//! | `dims` (partition values) | `acquire[year=2019]` and `[year=2020]` differ even with equal params |
//! | `inputs`: port -> content digests, in partition order | early cutoff: upstream re-runs that produce identical bytes change nothing |
//! | `env`: declared variables and their values | only what the node declares it reads |
//! | `files`: param -> blake3 of the dataset it names outside the store (a file with its sidecars, a folder, a pattern's matches: [`crate::datasets`]; the params are [`crate::node::Node::files`]; absent when a step has none, so other keys are unchanged) | editing a points file or a sample table re-runs what reads it |
//!
//! Left out on purpose: paths (of the spec, the store, inputs), mtimes, the step id and sweep dims
//! (identity only: two sweep points that yield identical inputs share one step), `--jobs`, and the
//! clock. Maps are `BTreeMap` and JSON objects are sorted, so the material is canonical.
//!
//! Comparing a step's new material with the one recorded for the same step id gives a typed
//! [`DirtyReason`], rendered in one place (`Display`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plan::DimValue;

/// Bump when the key material or artifact manifest format changes.
pub const ENGINE_CACHE_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyMaterial {
    pub engine: u32,
    pub kind: String,
    pub version: u32,
    pub params: Value,
    pub dims: BTreeMap<String, DimValue>,
    pub inputs: BTreeMap<String, Vec<String>>,
    pub env: BTreeMap<String, Option<String>>,
    /// Param -> digest of the file outside the store it names ([`file_digest`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
}

pub use crate::datasets::file_digest;

impl KeyMaterial {
    /// The step key: blake3 hex of the canonical JSON.
    pub fn key(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("key material serialises");
        blake3::hash(&bytes).to_hex().to_string()
    }
}

/// Why a step must run (or why it may have to).
#[derive(Clone, Debug, PartialEq)]
pub enum DirtyReason {
    /// No step with this id was ever recorded in the store.
    NeverRun,
    EngineVersionChanged {
        old: u32,
        new: u32,
    },
    KindChanged {
        old: String,
        new: String,
    },
    NodeVersionChanged {
        old: u32,
        new: u32,
    },
    ParamChanged {
        name: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    DimsChanged,
    InputChanged {
        port: String,
    },
    /// The file a param names (outside the store) has other contents, or appeared or went.
    FileChanged {
        param: String,
    },
    EnvChanged {
        name: String,
        old: Option<String>,
        new: Option<String>,
    },
    OutputMissing {
        port: String,
    },
    OutputCorrupt {
        port: String,
    },
    /// An upstream step will run first; this one re-runs only if that output changes.
    UpstreamWillRun {
        step: String,
    },
    /// An upstream step failed or was skipped.
    UpstreamFailed {
        step: String,
    },
    /// The recorded material matches but no record exists for the key (e.g. after `gc`).
    NotInStore,
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "unset".to_string(),
        Some(Value::String(s)) if s.is_empty() => "\"\"".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn show_env(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "unset".to_string())
}

impl fmt::Display for DirtyReason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DirtyReason::NeverRun => f.write_str("never run"),
            DirtyReason::EngineVersionChanged { old, new } => {
                write!(f, "engine cache version changed ({old} -> {new})")
            }
            DirtyReason::KindChanged { old, new } => {
                write!(f, "node kind changed (`{old}` -> `{new}`)")
            }
            DirtyReason::NodeVersionChanged { old, new } => {
                write!(f, "node version changed ({old} -> {new})")
            }
            DirtyReason::ParamChanged { name, old, new } => {
                write!(f, "param `{name}` changed ({} -> {})", show(old), show(new))
            }
            DirtyReason::DimsChanged => f.write_str("partition changed"),
            DirtyReason::InputChanged { port } => write!(f, "input `{port}` changed"),
            DirtyReason::FileChanged { param } => {
                write!(f, "the file param `{param}` names changed")
            }
            DirtyReason::EnvChanged { name, old, new } => write!(
                f,
                "env `{name}` changed ({} -> {})",
                show_env(old),
                show_env(new)
            ),
            DirtyReason::OutputMissing { port } => {
                write!(f, "output `{port}` missing from the store")
            }
            DirtyReason::OutputCorrupt { port } => {
                write!(f, "output `{port}` is corrupt in the store")
            }
            DirtyReason::UpstreamWillRun { step } => write!(f, "upstream `{step}` will run"),
            DirtyReason::UpstreamFailed { step } => write!(f, "upstream `{step}` did not succeed"),
            DirtyReason::NotInStore => f.write_str("result no longer in the store"),
        }
    }
}

/// Differences between the previous and the new material, most fundamental first.
/// `compare_inputs` is false when the new input digests are not known yet (upstream will run).
pub fn diff(old: &KeyMaterial, new: &KeyMaterial, compare_inputs: bool) -> Vec<DirtyReason> {
    let mut out = Vec::new();
    if old.engine != new.engine {
        out.push(DirtyReason::EngineVersionChanged {
            old: old.engine,
            new: new.engine,
        });
    }
    if old.kind != new.kind {
        out.push(DirtyReason::KindChanged {
            old: old.kind.clone(),
            new: new.kind.clone(),
        });
        return out;
    }
    if old.version != new.version {
        out.push(DirtyReason::NodeVersionChanged {
            old: old.version,
            new: new.version,
        });
    }
    diff_values("", &old.params, &new.params, &mut out);
    if old.dims != new.dims {
        out.push(DirtyReason::DimsChanged);
    }
    for name in old.env.keys().chain(new.env.keys()) {
        let (o, n) = (
            old.env.get(name).cloned().flatten(),
            new.env.get(name).cloned().flatten(),
        );
        if o != n
            && !out
                .iter()
                .any(|r| matches!(r, DirtyReason::EnvChanged { name: x, .. } if x == name))
        {
            out.push(DirtyReason::EnvChanged {
                name: name.clone(),
                old: o,
                new: n,
            });
        }
    }
    let params: std::collections::BTreeSet<&String> =
        old.files.keys().chain(new.files.keys()).collect();
    for param in params {
        // A param whose path changed is reported as a param change already.
        let path_changed = out
            .iter()
            .any(|r| matches!(r, DirtyReason::ParamChanged { name, .. } if name == param));
        if old.files.get(param) != new.files.get(param) && !path_changed {
            out.push(DirtyReason::FileChanged {
                param: param.clone(),
            });
        }
    }
    if compare_inputs {
        let ports: std::collections::BTreeSet<&String> =
            old.inputs.keys().chain(new.inputs.keys()).collect();
        for p in ports {
            if old.inputs.get(p) != new.inputs.get(p) {
                out.push(DirtyReason::InputChanged { port: p.clone() });
            }
        }
    }
    out
}

fn diff_values(path: &str, old: &Value, new: &Value, out: &mut Vec<DirtyReason>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_values(&p, x, y, out),
                    (x, y) => out.push(DirtyReason::ParamChanged {
                        name: p,
                        old: x.cloned(),
                        new: y.cloned(),
                    }),
                }
            }
        }
        (a, b) if a != b => out.push(DirtyReason::ParamChanged {
            name: path.to_string(),
            old: Some(a.clone()),
            new: Some(b.clone()),
        }),
        _ => {}
    }
}

/// Render several reasons as one line.
pub fn render(reasons: &[DirtyReason]) -> String {
    const SHOWN: usize = 3;
    let mut parts: Vec<String> = reasons.iter().take(SHOWN).map(|r| r.to_string()).collect();
    if reasons.len() > SHOWN {
        parts.push(format!("and {} more", reasons.len() - SHOWN));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn material() -> KeyMaterial {
        KeyMaterial {
            engine: ENGINE_CACHE_VERSION,
            kind: "migrate".into(),
            version: 1,
            params: json!({"ed": 0.1, "sad": 0.95}),
            dims: BTreeMap::from([("year".to_string(), DimValue::Int(2019))]),
            inputs: BTreeMap::from([("features".to_string(), vec!["blake3:aa".to_string()])]),
            env: BTreeMap::new(),
            files: BTreeMap::new(),
        }
    }

    #[test]
    fn a_named_files_content_is_in_the_key_and_explained() {
        let a = material();
        // No files: the field is left out, so keys made before it existed still match.
        assert!(!serde_json::to_string(&a).unwrap().contains("files"));
        let mut b = material();
        b.files.insert("path".into(), "blake3-of-one".into());
        let mut c = b.clone();
        c.files.insert("path".into(), "blake3-of-other".into());
        assert_ne!(a.key(), b.key());
        assert_ne!(b.key(), c.key());
        assert_eq!(
            diff(&b, &c, true),
            vec![DirtyReason::FileChanged {
                param: "path".into()
            }]
        );
        assert_eq!(
            DirtyReason::FileChanged {
                param: "path".into()
            }
            .to_string(),
            "the file param `path` names changed"
        );
        // A new path is a param change, reported once as that.
        let mut d = c.clone();
        d.params["path"] = json!("other.csv");
        assert_eq!(diff(&c, &d, true).len(), 1);
        assert!(matches!(
            &diff(&c, &d, true)[0],
            DirtyReason::ParamChanged { name, .. } if name == "path"
        ));
    }

    #[test]
    fn key_is_stable_and_sensitive() {
        let a = material();
        assert_eq!(a.key(), material().key());
        let mut b = material();
        b.params = json!({"ed": 0.15, "sad": 0.95});
        assert_ne!(a.key(), b.key());
        let mut c = material();
        c.inputs.insert("features".into(), vec!["blake3:bb".into()]);
        assert_ne!(a.key(), c.key());
    }

    #[test]
    fn param_change_is_explained() {
        let a = material();
        let mut b = material();
        b.params = json!({"ed": 0.15, "sad": 0.95});
        let r = diff(&a, &b, true);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].to_string(), "param `ed` changed (0.1 -> 0.15)");
    }

    #[test]
    fn input_change_is_explained() {
        let a = material();
        let mut b = material();
        b.inputs.insert("features".into(), vec!["blake3:bb".into()]);
        assert_eq!(
            diff(&a, &b, true),
            vec![DirtyReason::InputChanged {
                port: "features".into()
            }]
        );
        assert!(diff(&a, &b, false).is_empty());
    }

    #[test]
    fn version_change_is_explained() {
        let a = material();
        let mut b = material();
        b.version = 2;
        assert_eq!(render(&diff(&a, &b, true)), "node version changed (1 -> 2)");
    }
}
