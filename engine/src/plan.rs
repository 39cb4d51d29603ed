//! Lowering: raw spec -> typed plan, once.
//!
//! A plan is a DAG of *steps*: one step per node x partition (the cartesian product of its
//! `for_each` dims) x sweep point, with identical steps shared. Every check that can be made before
//! running happens here, and all errors are collected: unknown kinds, params that fail the kind's
//! typed `Params`, missing nodes, ports and partitions, port type mismatches, cycles, empty ranges,
//! sweeps over params that do not exist.
//!
//! Step ids are stable and readable: `node[dim=value,...]` with dims sorted; sweep values appear
//! as dims named after the swept param (`migrate[ed=0.1,sad=0.95,year=2019]`). Sweep dims are
//! identity only; the step *key* (see [`crate::fingerprint`]) sees the params they change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use litemap::LiteMap;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diag::{Code, Diagnostics, SpecError, SpecErrors, SpecSource};
use crate::executor::Resources;
use crate::node::{DynNode, Port, Registry};
use crate::spec::yaml::{self, Span, Yaml, YamlKind};
use crate::spec::{self, Key, RawNode};

/// Above this many steps a spec is refused (a typo like `1..99999999` should not eat the machine).
pub const MAX_STEPS: usize = 2_000_000;

/// A partition value: a year, a season name, a tile id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DimValue {
    Int(i64),
    Str(String),
}

impl fmt::Display for DimValue {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DimValue::Int(i) => write!(f, "{i}"),
            DimValue::Str(s) => f.write_str(s),
        }
    }
}

impl DimValue {
    fn from_value(v: &Value) -> Option<DimValue> {
        match v {
            Value::Number(n) => n.as_i64().map(DimValue::Int),
            Value::String(s) => Some(DimValue::Str(s.clone())),
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            DimValue::Int(i) => Value::from(*i),
            DimValue::Str(s) => Value::from(s.clone()),
        }
    }
}

/// Steps created so far: (node, the sweep axes that reach it with their value index) ->
/// partition values -> step. Nested, so that a lookup by partition borrows the partition's
/// values instead of building a key.
type StepIndex = HashMap<(usize, Vec<(usize, usize)>), HashMap<Vec<DimValue>, usize>>;

/// One edge into a step: the upstream step and its output port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputEdge {
    pub step: usize,
    /// The upstream step's output port (a kind's port names are static).
    pub port: &'static str,
}

/// A step's partition: dim -> value, sorted by dim. A sorted vector, not a `BTreeMap`: a step
/// has a few dims, and a `BTreeMap` allocates room for eleven (a third of a step's memory in a
/// plan of a million steps).
pub type Dims = LiteMap<String, DimValue>;

/// One executable step of the plan.
#[derive(Clone, Debug)]
pub struct Step {
    pub id: String,
    /// Node name in the spec.
    pub node: String,
    pub kind: &'static str,
    pub version: u32,
    /// Partition dims (enter the key), sorted by name.
    pub dims: Dims,
    /// Sweep point values that apply to this step (identity only).
    pub sweep: BTreeMap<String, Value>,
    /// Canonical params, defaults filled in; shared by the steps of a node whose params are
    /// equal (most steps of a node: a million steps need not hold a million copies).
    pub params: Arc<Value>,
    /// Input port -> the upstream outputs it reads, sorted by port.
    pub inputs: LiteMap<String, Vec<InputEdge>>,
    pub outputs: Vec<Port>,
    /// Environment variables that enter the key.
    pub env: Vec<String>,
    /// Files outside the store named by params (param -> path as written, relative to the
    /// spec's directory); their contents enter the key ([`crate::node::Node::files`]).
    pub files: BTreeMap<String, String>,
    /// Span of the node's name in the spec (what a run-time failure underlines).
    pub span: Span,
    /// What the node's `resources:` asks of a cluster job (shared by its steps; never in the
    /// key).
    pub resources: Option<Arc<Resources>>,
}

/// The lowered, typed plan.
pub struct Plan {
    pub name: String,
    pub spec_path: PathBuf,
    pub spec_dir: PathBuf,
    /// blake3 of the spec text.
    pub spec_digest: String,
    /// Top-level params after overrides.
    pub params: BTreeMap<String, Value>,
    /// The sweep grid as given (key -> values), after overrides.
    pub sweep: BTreeMap<String, Vec<Value>>,
    pub steps: Vec<Step>,
    /// Step indices in a valid execution order (creation order is topological).
    pub graph: DiGraph<usize, ()>,
    pub by_id: HashMap<String, usize>,
    pub source: SpecSource,
    pub registry: Registry,
}

impl Plan {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.by_id.get(id).map(|&i| &self.steps[i])
    }

    /// Indices of the steps that read `i`'s outputs.
    pub fn dependents(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing)
            .map(|n| n.index())
    }

    /// Indices of the steps `i` reads from, each once.
    pub fn dependencies(&self, i: usize) -> BTreeSet<usize> {
        self.steps[i]
            .inputs
            .values()
            .flatten()
            .map(|e| e.step)
            .collect()
    }

    pub fn kind(&self, step: &Step) -> &Arc<dyn DynNode> {
        self.registry
            .get(step.kind)
            .expect("lowering only keeps steps of registered kinds")
    }
}

/// A `--set K=V` override.
#[derive(Clone, Debug)]
pub struct Override {
    pub key: String,
    pub value: Value,
}

impl Override {
    /// Parse `K=V`; V is read as YAML (`0.15`, `[a, b]`, `2017..2023`).
    pub fn parse(s: &str) -> Result<Override, String> {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| format!("`--set {s}`: expected KEY=VALUE"))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("`--set {s}`: the key is empty"));
        }
        let y = yaml::parse(v).map_err(|e| format!("`--set {s}`: {}", e.message))?;
        let value = spec::to_value(&y).map_err(|e| format!("`--set {s}`: {}", e.message))?;
        Ok(Override {
            key: k.to_string(),
            value,
        })
    }
}

/// Inputs to lowering.
pub struct LowerOptions<'a> {
    pub registry: &'a Registry,
    pub overrides: &'a [Override],
}

/// Read and lower a spec file.
///
/// Reading stops one byte past the size limit (`/dev/zero` or a huge generated file is refused
/// after 4 MiB, not read whole).
pub fn load(path: &Path, opts: &LowerOptions) -> Result<Plan, LoadError> {
    use std::io::Read;
    let io = |e: std::io::Error| LoadError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let mut bytes = Vec::new();
    file.take(yaml::MAX_SPEC_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() > yaml::MAX_SPEC_BYTES {
        return Err(LoadError::TooBig {
            path: path.display().to_string(),
            size: size.map(|n| format!(" ({n} bytes)")).unwrap_or_default(),
            limit: yaml::MAX_SPEC_BYTES,
        });
    }
    lower_bytes(path, bytes, opts).map_err(LoadError::Spec)
}

/// Lower a spec given as bytes (what `load` reads): text that is not UTF-8 is a spec error
/// pointing at the first bad byte, like any other.
pub fn lower_bytes(path: &Path, bytes: Vec<u8>, opts: &LowerOptions) -> Result<Plan, SpecErrors> {
    match String::from_utf8(bytes) {
        Ok(text) => lower(path, text, opts),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bad = e.as_bytes()[at];
            // The source shown is the lossy text: the same bytes up to `at`, then U+FFFD (3 bytes).
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let display = path.display().to_string();
            let source: SpecSource = Arc::new(miette::NamedSource::new(display.clone(), text));
            let mut diags = Diagnostics::default();
            diags.push(
                SpecError::new(
                    Code::YamlSyntax,
                    format!("the spec is not UTF-8 text: byte 0x{bad:02x} at offset {at}"),
                )
                .at(Span::new(at, 3), "not UTF-8")
                .help("save the file as UTF-8 (Latin-1 and UTF-16 are not YAML specs)"),
            );
            Err(diags.into_report(&display, &source))
        }
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    #[error("cannot read spec `{path}`: {message}")]
    #[diagnostic(code(spec::io))]
    Io { path: String, message: String },
    #[error("spec `{path}`{size} is larger than the limit of {limit} bytes (4 MiB)")]
    #[diagnostic(
        code(spec::too_big),
        help("a spec describes a pipeline; put data (point lists, tables) in files it names")
    )]
    TooBig {
        path: String,
        /// ` (N bytes)` when the file says its size.
        size: String,
        limit: usize,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Spec(SpecErrors),
}

/// Lower spec text into a plan, or all its errors.
pub fn lower(path: &Path, text: String, opts: &LowerOptions) -> Result<Plan, SpecErrors> {
    let display = path.display().to_string();
    let spec_digest = format!("blake3:{}", blake3::hash(text.as_bytes()).to_hex());
    let source: SpecSource = Arc::new(miette::NamedSource::new(display.clone(), text.clone()));
    let mut diags = Diagnostics::default();
    let doc = match yaml::parse(&text) {
        Ok(d) => d,
        Err(e) => {
            let mut err = match e.limit {
                Some(_) => SpecError::new(Code::YamlSyntax, e.message)
                    .at(e.span, "the parser stopped here"),
                None => SpecError::new(Code::YamlSyntax, format!("invalid YAML: {}", e.message))
                    .at(e.span, "here"),
            };
            if let Some(h) = e.help {
                err = err.help(h);
            }
            diags.push(err);
            return Err(diags.into_report(&display, &source));
        }
    };
    let raw = spec::read(&doc, &mut diags);
    let spec_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut l = Lowerer {
        reg: opts.registry,
        diags,
        params: BTreeMap::new(),
        nodes: Vec::new(),
        node_index: HashMap::new(),
        broken_params: BTreeSet::new(),
        input_edges: 0,
        expansion_stopped: false,
    };
    l.top_params(&raw, opts.overrides);
    l.declare_nodes(&raw, opts.overrides);
    l.check_overrides(&raw, opts.overrides);
    let order = l.node_order();
    let sweep = l.sweep(&raw, opts.overrides);
    // Expand even when earlier checks failed (but not with a cycle), so param errors of the
    // well-formed nodes are reported together with everything else.
    let Some(order) = order else {
        return Err(l.diags.into_report(&display, &source));
    };
    // A grid or a partition product over the limits is not expanded at all: building it is what
    // the limits are there to prevent.
    if sweep.too_large || !l.check_expansion_size(&order, &sweep) {
        return Err(l.diags.into_report(&display, &source));
    }
    let (steps, by_id) = l.expand(&order, &sweep);
    if !l.diags.is_empty() {
        return Err(l.diags.into_report(&display, &source));
    }
    let mut graph = DiGraph::with_capacity(steps.len(), steps.len());
    for i in 0..steps.len() {
        graph.add_node(i);
    }
    for (i, s) in steps.iter().enumerate() {
        let deps: BTreeSet<usize> = s.inputs.values().flatten().map(|e| e.step).collect();
        for d in deps {
            graph.add_edge(NodeIndex::new(d), NodeIndex::new(i), ());
        }
    }
    Ok(Plan {
        name: raw
            .name
            .map(|k| k.text)
            .unwrap_or_else(|| stem(path).to_string()),
        spec_path: path.to_path_buf(),
        spec_dir,
        spec_digest,
        params: l.params.into_iter().map(|(k, p)| (k, p.value)).collect(),
        sweep: sweep.axes.into_iter().map(|a| (a.key, a.values)).collect(),
        steps,
        graph,
        by_id,
        source,
        registry: opts.registry.clone(),
    })
}

fn stem(path: &Path) -> &str {
    path.file_stem().and_then(|s| s.to_str()).unwrap_or("spec")
}

struct TopParam {
    value: Value,
}

/// How an input selects partitions of its upstream node along one dim.
#[derive(Clone, Debug)]
enum Selector {
    /// Same value as the reading step (the default when both have the dim).
    Same,
    /// Every partition (the default when only the upstream has the dim).
    All,
    /// Offsets relative to the reading step's value (`-1..+1`).
    Relative(Vec<i64>),
    /// Fixed values (`2020`, `${ref_year}`).
    Absolute(Vec<DimValue>),
}

#[derive(Clone, Debug)]
struct InputDecl {
    port: String,
    from: usize,
    out_port: &'static str,
    selectors: BTreeMap<String, (Selector, Span)>,
    span: Span,
}

struct NodeDecl {
    name: Key,
    kind: Option<Arc<dyn DynNode>>,
    dims: Vec<(String, Vec<DimValue>)>,
    /// Raw inputs, resolved in a second pass once all node names are known.
    raw_inputs: Vec<(Key, Yaml)>,
    inputs: Vec<InputDecl>,
    params: Vec<(Key, Value)>,
    params_span: Span,
    env: Vec<String>,
    resources: Option<Arc<Resources>>,
    /// Names of top-level params this node's params refer to via `${name}`.
    refs: BTreeSet<String>,
    /// `inputs:` was not a mapping (reported); its ports are not reported missing.
    inputs_invalid: bool,
    /// Param paths already reported for this node.
    param_errors: BTreeSet<String>,
    /// Some step of this node was left out for an error already reported (bad params, a
    /// missing input): its readers do not report the partitions it lacks again.
    dropped: bool,
}

struct SweepAxis {
    key: String,
    /// Span of the sweep entry's values.
    span: Span,
    /// Node index for `node.param`, None for a top-level param.
    node: Option<usize>,
    param: String,
    dim: String,
    values: Vec<Value>,
}

#[derive(Default)]
struct Sweep {
    axes: Vec<SweepAxis>,
    /// The grid has more than [`MAX_GRID_POINTS`] points (reported; not expanded).
    too_large: bool,
}

/// Above this many sweep grid points a spec is refused.
pub const MAX_GRID_POINTS: usize = 10_000;

/// Above this many input edges (summed over steps) a spec is refused: 10,000 steps that each
/// read `all` of 10,000 partitions would be 10^8 edges from a few lines of YAML.
pub const MAX_INPUT_EDGES: usize = 4_000_000;

/// Most values a `pad` or a relative selector (`-N..+M`) may add.
pub const MAX_OFFSET: i64 = 1_000;

struct Lowerer<'a> {
    reg: &'a Registry,
    diags: Diagnostics,
    params: BTreeMap<String, TopParam>,
    nodes: Vec<NodeDecl>,
    node_index: HashMap<String, usize>,
    /// Top-level params whose value is an error (reported once, not at every use).
    broken_params: BTreeSet<String>,
    /// Input edges created so far (all steps), against [`MAX_INPUT_EDGES`].
    input_edges: usize,
    expansion_stopped: bool,
}

impl Lowerer<'_> {
    /// Node names in file order, for "did you mean" (deterministic, unlike the index).
    fn node_names(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.name.text.as_str()).collect()
    }

    fn top_params(&mut self, raw: &spec::RawSpec, overrides: &[Override]) {
        for (k, v) in &raw.params {
            match spec::to_value(v) {
                Ok(value) => {
                    self.params.insert(k.text.clone(), TopParam { value });
                }
                Err(e) => {
                    self.diags.push(e);
                    self.broken_params.insert(k.text.clone());
                }
            }
        }
        for o in overrides.iter().filter(|o| !o.key.contains('.')) {
            // Reported by `check_overrides`.
            if !self.params.contains_key(&o.key) && !self.broken_params.contains(&o.key) {
                continue;
            }
            let p = self
                .params
                .entry(o.key.clone())
                .or_insert(TopParam { value: Value::Null });
            p.value = o.value.clone();
        }
    }

    fn declare_nodes(&mut self, raw: &spec::RawSpec, overrides: &[Override]) {
        for (i, n) in raw.nodes.iter().enumerate() {
            self.check_name("node name", &n.name);
            for (dk, _) in &n.for_each {
                self.check_name("partition name", dk);
            }
            self.node_index.insert(n.name.text.clone(), i);
        }
        for n in &raw.nodes {
            let decl = self.declare_node(n, overrides);
            self.nodes.push(decl);
        }
        for i in 0..self.nodes.len() {
            let raw_inputs = std::mem::take(&mut self.nodes[i].raw_inputs);
            let inputs = self.resolve_inputs(i, &raw_inputs);
            self.nodes[i].inputs = inputs;
        }
    }

    fn declare_node(&mut self, n: &RawNode, overrides: &[Override]) -> NodeDecl {
        let kind = n.kind.as_ref().and_then(|k| match self.reg.get(&k.text) {
            Some(kind) => Some(kind.clone()),
            None => {
                self.diags.push(
                    SpecError::new(Code::UnknownKind, format!("unknown node kind `{}`", k.text))
                        .at(k.span, "no such kind")
                        .did_you_mean(&k.text, self.reg.kinds()),
                );
                None
            }
        });
        let mut dims = Vec::new();
        for (dk, dv) in &n.for_each {
            if let Some(values) = self.partition_values(&dk.text, dv) {
                dims.push((dk.text.clone(), values));
            }
        }
        let mut params = Vec::new();
        let mut refs = BTreeSet::new();
        for (pk, pv) in &n.params {
            match spec::to_value(pv) {
                Ok(v) => {
                    if let Some(text) = unclosed_ref(&v) {
                        self.diags.push(
                            SpecError::new(
                                Code::UnknownReference,
                                format!(
                                    "param `{}`: `${{` without its closing `}}` in `{text}`",
                                    pk.text
                                ),
                            )
                            .at(pv.span, "unclosed reference")
                            .help("write `${name}`, or `$` alone for a literal dollar"),
                        );
                    }
                    collect_refs(&v, &mut refs);
                    params.push((pk.clone(), v));
                }
                Err(e) => self.diags.push(e),
            }
        }
        let prefix = format!("{}.", n.name.text);
        for o in overrides {
            if let Some(param) = o.key.strip_prefix(&prefix) {
                let key = Key {
                    text: param.to_string(),
                    span: n.name.span,
                };
                match params.iter_mut().find(|(k, _)| k.text == param) {
                    Some(slot) => slot.1 = o.value.clone(),
                    None => params.push((key, o.value.clone())),
                }
            }
        }
        let mut env: Vec<String> = n.env.iter().map(|k| k.text.clone()).collect();
        if let Some(k) = &kind {
            env.extend(k.env().iter().map(|s| s.to_string()));
        }
        env.sort();
        env.dedup();
        let resources = self.resources(n);
        NodeDecl {
            name: n.name.clone(),
            kind,
            dims,
            raw_inputs: n.inputs.clone(),
            inputs: Vec::new(),
            params,
            params_span: n.params_span.unwrap_or(n.name.span),
            env,
            resources,
            refs,
            inputs_invalid: n.inputs_invalid,
            param_errors: BTreeSet::new(),
            dropped: false,
        }
    }

    /// A node's `resources:` (`cpus`, `mem_mb`, `time_min`, `tmp_mb`: whole numbers from 1;
    /// `gres`: text), each bad entry reported at its line.
    fn resources(&mut self, n: &RawNode) -> Option<Arc<Resources>> {
        if n.resources.is_empty() {
            return None;
        }
        let mut r = Resources::default();
        for (k, v) in &n.resources {
            let whole = |v: &Yaml| match v.kind {
                YamlKind::Int(i) if i >= 1 => Some(i as u64),
                _ => None,
            };
            let bad = |expected: &str| {
                SpecError::new(
                    Code::BadValue,
                    format!(
                        "`resources.{}` of node `{}` must be {expected}, found {}",
                        k.text,
                        n.name.text,
                        match &v.kind {
                            YamlKind::Int(i) => i.to_string(),
                            YamlKind::Str(t) if t.trim().is_empty() => "an empty string".into(),
                            _ => v.type_name().to_string(),
                        }
                    ),
                )
                .at(v.span, format!("expected {expected}"))
            };
            let number = "a whole number of at least 1";
            match k.text.as_str() {
                "cpus" => match whole(v).and_then(|i| u32::try_from(i).ok()) {
                    Some(i) => r.cpus = Some(i),
                    None => self.diags.push(bad(number)),
                },
                "mem_mb" | "time_min" | "tmp_mb" => match whole(v) {
                    Some(i) => {
                        let slot = match k.text.as_str() {
                            "mem_mb" => &mut r.mem_mb,
                            "time_min" => &mut r.time_min,
                            _ => &mut r.tmp_mb,
                        };
                        *slot = Some(i);
                    }
                    None => self.diags.push(bad(&format!(
                        "{number} ({})",
                        match k.text.as_str() {
                            "mem_mb" => "megabytes",
                            "time_min" => "minutes",
                            _ => "megabytes of local scratch",
                        }
                    ))),
                },
                "gres" => match v.as_str() {
                    Some(g) if !g.trim().is_empty() => r.gres = Some(g.to_string()),
                    _ => self
                        .diags
                        .push(bad("generic resources as Slurm writes them, e.g. `gpu:1`")),
                },
                other => self.diags.push(
                    SpecError::new(
                        Code::UnknownField,
                        format!("unknown resource `{other}` in node `{}`", n.name.text),
                    )
                    .at(k.span, "not a resource")
                    .did_you_mean(other, Resources::FIELDS.iter().copied()),
                ),
            }
        }
        Some(Arc::new(r))
    }

    /// Values of one `for_each` dim: a top-level param name, a list, a range, or
    /// `{ param: years, pad: 1 }` (the param's range widened by `pad` on both ends).
    fn partition_values(&mut self, dim: &str, v: &Yaml) -> Option<Vec<DimValue>> {
        let (value, pad) = match &v.kind {
            YamlKind::Str(s) if spec::parse_range(s).is_none() => {
                let name = s.trim_start_matches("${").trim_end_matches('}');
                match self.params.get(name) {
                    Some(p) => (p.value.clone(), 0),
                    None => {
                        self.unknown_param_ref(name, v.span);
                        return None;
                    }
                }
            }
            YamlKind::Map(entries) => {
                let mut param = None;
                let mut pad = 0i64;
                for (k, ev) in entries {
                    match (k.key_text().as_str(), &ev.kind) {
                        ("param", YamlKind::Str(s)) => param = Some((s.clone(), ev.span)),
                        ("pad", YamlKind::Int(i)) if (0..=MAX_OFFSET).contains(i) => pad = *i,
                        ("pad", _) => {
                            self.diags.push(
                                SpecError::new(
                                    Code::BadValue,
                                    format!(
                                        "`for_each.{dim}.pad` must be an integer in 0..{MAX_OFFSET}"
                                    ),
                                )
                                .at(ev.span, "not a padding")
                                .help("`pad: 1` adds one value before and one after the range"),
                            );
                            return None;
                        }
                        (other, _) => {
                            self.diags.push(
                                SpecError::new(
                                    Code::BadShape,
                                    format!("`for_each.{dim}`: unexpected `{other}`"),
                                )
                                .at(k.span, "expected `param: NAME` and optional `pad: N`"),
                            );
                            return None;
                        }
                    }
                }
                let Some((name, span)) = param else {
                    self.diags.push(
                        SpecError::new(
                            Code::MissingField,
                            format!("`for_each.{dim}` needs `param`"),
                        )
                        .at(v.span, "add `param: NAME`"),
                    );
                    return None;
                };
                match self.params.get(&name) {
                    Some(p) => (p.value.clone(), pad),
                    None => {
                        self.unknown_param_ref(&name, span);
                        return None;
                    }
                }
            }
            _ => match spec::to_value(v) {
                Ok(val) => (val, 0),
                Err(e) => {
                    self.diags.push(e);
                    return None;
                }
            },
        };
        let list = match value {
            Value::Array(items) => items,
            scalar => vec![scalar],
        };
        let mut out = Vec::with_capacity(list.len());
        for item in &list {
            match DimValue::from_value(item) {
                Some(DimValue::Str(text)) if let Some(bad) = bad_value_char(&text) => {
                    self.diags.push(
                        SpecError::new(
                            Code::BadValue,
                            format!("partition value `{text}` of `{dim}` cannot be used: {bad}"),
                        )
                        .at(v.span, "bad partition value")
                        .help(
                            "partition values are parts of step ids (`node[dim=value,...]`) and \
                             of export folders: leave out `,` `=` `[` `]` `/` `\\` and control \
                             characters",
                        ),
                    );
                    return None;
                }
                Some(d) => out.push(d),
                None => {
                    self.diags.push(
                        SpecError::new(
                            Code::BadValue,
                            format!("partition values of `{dim}` must be integers or names, found `{item}`"),
                        )
                        .at(v.span, "bad partition value"),
                    );
                    return None;
                }
            }
        }
        if pad > 0 {
            let ints: Option<Vec<i64>> = out
                .iter()
                .map(|d| match d {
                    DimValue::Int(i) => Some(*i),
                    DimValue::Str(_) => None,
                })
                .collect();
            match ints {
                Some(ints) if !ints.is_empty() => {
                    let lo = ints.iter().min().unwrap().checked_sub(pad);
                    let hi = ints.iter().max().unwrap().checked_add(pad);
                    let fits = |lo: i64, hi: i64| {
                        hi.checked_sub(lo)
                            .is_some_and(|d| d < spec::MAX_RANGE_VALUES as i64)
                    };
                    match (lo, hi) {
                        (Some(lo), Some(hi)) if fits(lo, hi) => {
                            out = (lo..=hi).map(DimValue::Int).collect();
                        }
                        _ => {
                            self.diags.push(
                                SpecError::new(
                                    Code::TooManySteps,
                                    format!(
                                        "padded `for_each.{dim}` spans more than {} values",
                                        spec::MAX_RANGE_VALUES
                                    ),
                                )
                                .at(v.span, "too wide"),
                            );
                            return None;
                        }
                    }
                }
                _ => {
                    self.diags.push(
                        SpecError::new(
                            Code::BadValue,
                            format!("`pad` needs integer values of `{dim}`"),
                        )
                        .at(v.span, "not integers"),
                    );
                    return None;
                }
            }
        }
        out.sort();
        out.dedup();
        if out.is_empty() {
            self.diags.push(
                SpecError::new(
                    Code::EmptyPartition,
                    format!("`for_each.{dim}` has no values"),
                )
                .at(v.span, "empty partition range")
                .help("give at least one value, e.g. `2017..2022`"),
            );
            return None;
        }
        Some(out)
    }

    fn unknown_param_ref(&mut self, name: &str, span: Span) {
        if self.broken_params.contains(name) {
            return; // its own error is reported where it is defined
        }
        let mut e = SpecError::new(
            Code::UnknownReference,
            format!("unknown top-level param `{name}`"),
        )
        .at(span, "not defined under `params:`");
        // Suggestions cost a pass over every name: not for errors past the ones shown.
        if !self.diags.is_full() {
            e = e.did_you_mean(name, self.params.keys().map(String::as_str));
        }
        self.diags.push(e);
    }

    fn resolve_inputs(&mut self, i: usize, raw: &[(Key, Yaml)]) -> Vec<InputDecl> {
        let Some(kind) = self.nodes[i].kind.clone() else {
            return Vec::new();
        };
        let ports = kind.inputs();
        let node_name = self.nodes[i].name.text.clone();
        let mut out = Vec::new();
        for (pk, pv) in raw {
            let Some(port) = ports.iter().find(|p| p.name == pk.text) else {
                self.diags.push(
                    SpecError::new(
                        Code::UnknownPort,
                        format!("kind `{}` has no input port `{}`", kind.kind(), pk.text),
                    )
                    .at(pk.span, "unknown input port")
                    .did_you_mean(&pk.text, ports.iter().map(|p| p.name)),
                );
                continue;
            };
            let refs: Vec<&Yaml> = match &pv.kind {
                YamlKind::Seq(items) => items.iter().collect(),
                _ => vec![pv],
            };
            if refs.len() > 1 && !port.many {
                self.diags.push(
                    SpecError::new(
                        Code::PortMismatch,
                        format!(
                            "input port `{}` of kind `{}` takes one artifact, not a list",
                            port.name,
                            kind.kind()
                        ),
                    )
                    .at(pv.span, "a list here"),
                );
                continue;
            }
            for r in refs {
                if let Some(decl) = self.input_ref(port, r) {
                    out.push(decl);
                }
            }
        }
        for p in ports.iter().filter(|p| !p.optional) {
            // `part: x` for `parts: x` is reported once, as the unknown port it is; so is an
            // `inputs:` that is not a mapping.
            let misspelt = raw.iter().any(|(k, _)| {
                !ports.iter().any(|q| q.name == k.text)
                    && crate::diag::closest(&k.text, [p.name]).is_some()
            });
            if !raw.iter().any(|(k, _)| k.text == p.name)
                && !misspelt
                && !self.nodes[i].inputs_invalid
            {
                self.diags.push(
                    SpecError::new(
                        Code::MissingInput,
                        format!(
                            "node `{node_name}` does not connect input port `{}` ({})",
                            p.name, p.ty
                        ),
                    )
                    .at(self.nodes[i].name.span, "missing input")
                    .help(format!("add `inputs: {{ {}: <node> }}`", p.name)),
                );
            }
        }
        out
    }

    /// One input reference: `node`, `node.port`, or `{ from: node, port: p, <dim>: selector }`.
    fn input_ref(&mut self, port: &Port, r: &Yaml) -> Option<InputDecl> {
        let (from_text, from_span, out_port, sel_entries) = match &r.kind {
            YamlKind::Str(s) => match s.split_once('.') {
                Some((n, p)) => (n.to_string(), r.span, Some(p.to_string()), Vec::new()),
                None => (s.clone(), r.span, None, Vec::new()),
            },
            YamlKind::Map(entries) => {
                let mut from = None;
                let mut out_port = None;
                let mut sels = Vec::new();
                for (k, v) in entries {
                    match k.key_text().as_str() {
                        "from" => from = v.as_str().map(|s| (s.to_string(), v.span)),
                        "port" => out_port = v.as_str().map(str::to_string),
                        _ => sels.push((spec::key_of(k), v.clone())),
                    }
                }
                let Some((from, span)) = from else {
                    self.diags.push(
                        SpecError::new(Code::MissingField, "input reference needs `from: <node>`")
                            .at(r.span, "no `from`"),
                    );
                    return None;
                };
                (from, span, out_port, sels)
            }
            _ => {
                self.diags.push(spec::type_error(
                    r,
                    "an input",
                    "a node name or `{ from: node }`",
                ));
                return None;
            }
        };
        let Some(&from) = self.node_index.get(&from_text) else {
            let mut e = SpecError::new(
                Code::MissingNode,
                format!("input refers to unknown node `{from_text}`"),
            )
            .at(from_span, "no node with this name");
            if !self.diags.is_full() {
                e = e.did_you_mean(&from_text, self.node_names());
            }
            self.diags.push(e);
            return None;
        };
        let up_kind = self.nodes[from].kind.clone()?;
        let outs = up_kind.outputs();
        let out = match &out_port {
            Some(p) => match outs.iter().find(|o| o.name == p.as_str()) {
                Some(o) => o.clone(),
                None => {
                    self.diags.push(
                        SpecError::new(
                            Code::UnknownPort,
                            format!(
                                "node `{from_text}` (kind `{}`) has no output port `{p}`",
                                up_kind.kind()
                            ),
                        )
                        .at(from_span, "unknown output port")
                        .did_you_mean(p, outs.iter().map(|o| o.name)),
                    );
                    return None;
                }
            },
            None => match outs.iter().find(|o| o.ty == port.ty).or(outs.first()) {
                Some(o) => o.clone(),
                None => {
                    self.diags.push(
                        SpecError::new(
                            Code::UnknownPort,
                            format!("node `{from_text}` has no outputs"),
                        )
                        .at(from_span, "nothing to read"),
                    );
                    return None;
                }
            },
        };
        let out_name: &'static str = out.name;
        if out.ty != port.ty {
            self.diags.push(
                SpecError::new(
                    Code::PortMismatch,
                    format!(
                        "port type mismatch: `{}` expects `{}`, but `{from_text}.{}` produces `{}`",
                        port.name, port.ty, out.name, out.ty
                    ),
                )
                .at(from_span, format!("produces `{}`", out.ty))
                .also(
                    self.nodes[from].name.span,
                    format!("`{from_text}` is a `{}` node", up_kind.kind()),
                )
                .help(format!("connect a node whose output is `{}`", port.ty)),
            );
            return None;
        }
        let mut selectors = BTreeMap::new();
        for (k, v) in sel_entries {
            if !self.nodes[from].dims.iter().any(|(d, _)| *d == k.text) {
                let dims: Vec<&str> = self.nodes[from]
                    .dims
                    .iter()
                    .map(|(d, _)| d.as_str())
                    .collect();
                let e = SpecError::new(
                    Code::UnknownField,
                    format!("node `{from_text}` is not partitioned by `{}`", k.text),
                )
                .at(k.span, "no such partition dim");
                let e = if dims.is_empty() {
                    e.help(format!(
                        "`{from_text}` has no `for_each`: it is one artifact, read it as `{}: {from_text}`",
                        port.name
                    ))
                } else {
                    e.did_you_mean(&k.text, dims)
                };
                self.diags.push(e);
                continue;
            }
            if let Some(sel) = self.selector(&v) {
                selectors.insert(k.text.clone(), (sel, v.span));
            }
        }
        Some(InputDecl {
            port: port.name.to_string(),
            from,
            out_port: out_name,
            selectors,
            span: from_span,
        })
    }

    fn selector(&mut self, v: &Yaml) -> Option<Selector> {
        match &v.kind {
            YamlKind::Int(i) => Some(Selector::Absolute(vec![DimValue::Int(*i)])),
            YamlKind::Str(s) if s == "all" => Some(Selector::All),
            YamlKind::Str(s) if s == "same" => Some(Selector::Same),
            YamlKind::Str(s) if s.starts_with('+') || s.starts_with('-') => {
                let parse = |t: &str| {
                    t.trim()
                        .trim_start_matches('+')
                        .parse::<i64>()
                        .ok()
                        .filter(|o| o.unsigned_abs() <= MAX_OFFSET as u64)
                };
                let offsets = match s.split_once("..") {
                    Some((a, b)) => match (parse(a), parse(b)) {
                        (Some(a), Some(b)) if a <= b => Some((a..=b).collect()),
                        _ => None,
                    },
                    None => parse(s).map(|o| vec![o]),
                };
                match offsets {
                    Some(o) => Some(Selector::Relative(o)),
                    None => {
                        self.diags.push(
                            SpecError::new(Code::BadValue, format!("bad relative partition `{s}`"))
                                .at(v.span, "expected e.g. `-1`, `+1` or `-1..+1`")
                                .help(format!(
                                    "offsets are integers in -{MAX_OFFSET}..+{MAX_OFFSET}, the first not after the last"
                                )),
                        );
                        None
                    }
                }
            }
            YamlKind::Str(s) if s.starts_with("${") && s.ends_with('}') => {
                let name = &s[2..s.len() - 1];
                match self.params.get(name) {
                    Some(p) => {
                        let list = match &p.value {
                            Value::Array(a) => a.clone(),
                            other => vec![other.clone()],
                        };
                        Some(Selector::Absolute(
                            list.iter().filter_map(DimValue::from_value).collect(),
                        ))
                    }
                    None => {
                        self.unknown_param_ref(name, v.span);
                        None
                    }
                }
            }
            _ => match spec::to_value(v) {
                Ok(Value::Array(items)) => Some(Selector::Absolute(
                    items.iter().filter_map(DimValue::from_value).collect(),
                )),
                Ok(other) => DimValue::from_value(&other).map(|d| Selector::Absolute(vec![d])),
                Err(e) => {
                    self.diags.push(e);
                    None
                }
            },
        }
    }

    /// Node and partition names become parts of step ids (`node[dim=value,...]`), `--set`
    /// keys (`node.param`) and export folders (`OUT/<node>/`): characters that separate those
    /// parts, and path separators, are refused.
    fn check_name(&mut self, what: &str, key: &spec::Key) {
        if let Some(bad) = bad_name_char(&key.text) {
            self.diags.push(
                SpecError::new(
                    Code::BadValue,
                    format!("{what} `{}` cannot be used: {bad}", key.text),
                )
                .at(key.span, "not allowed in a name")
                .help(
                    "use letters, digits, `_` and `-`: names are parts of step ids \
                     (`node[dim=value]`), of `--set node.param` and of export folders",
                ),
            );
        }
    }

    /// A `--set` must name a node (`node.param`) or a top-level param the spec has.
    fn check_overrides(&mut self, raw: &spec::RawSpec, overrides: &[Override]) {
        for o in overrides {
            match o.key.split_once('.') {
                Some((node, _)) if !self.node_index.contains_key(node) => {
                    let names = self.node_names();
                    self.diags.push(
                        SpecError::new(
                            Code::BadOverride,
                            format!("`--set {}`: no node named `{node}`", o.key),
                        )
                        .did_you_mean(node, names),
                    );
                }
                None if !self.params.contains_key(&o.key)
                    && !self.broken_params.contains(&o.key) =>
                {
                    let names = raw.params.iter().map(|(k, _)| k.text.as_str());
                    let mut e = SpecError::new(
                        Code::BadOverride,
                        format!(
                            "`--set {}`: the spec has no top-level param `{}`",
                            o.key, o.key
                        ),
                    )
                    .did_you_mean(&o.key, names);
                    if e.help.is_none() {
                        e = e.help(
                            "a top-level `--set` overrides a param under `params:`; \
                             for one node's param write `--set NODE.PARAM=VALUE`",
                        );
                    }
                    self.diags.push(e);
                }
                _ => {}
            }
        }
    }

    /// Topological order of nodes, or cycle errors.
    fn node_order(&mut self) -> Option<Vec<usize>> {
        let mut g: DiGraph<usize, ()> = DiGraph::new();
        for i in 0..self.nodes.len() {
            g.add_node(i);
        }
        for (i, n) in self.nodes.iter().enumerate() {
            for inp in &n.inputs {
                g.update_edge(NodeIndex::new(inp.from), NodeIndex::new(i), ());
            }
        }
        match petgraph::algo::toposort(&g, None) {
            Ok(order) => Some(order.into_iter().map(|n| n.index()).collect()),
            Err(_) => {
                for scc in petgraph::algo::tarjan_scc(&g) {
                    let is_cycle = scc.len() > 1 || g.contains_edge(scc[0], scc[0]);
                    if !is_cycle {
                        continue;
                    }
                    let mut members: Vec<usize> = scc.iter().map(|n| n.index()).collect();
                    members.sort();
                    let mut names: Vec<String> = members
                        .iter()
                        .take(12)
                        .map(|&m| format!("`{}`", self.nodes[m].name.text))
                        .collect();
                    if members.len() > 12 {
                        names.push(format!("and {} more", members.len() - 12));
                    }
                    let first = members[0];
                    let mut e = SpecError::new(
                        Code::Cycle,
                        format!("cycle between nodes {}", names.join(", ")),
                    )
                    .at(
                        self.nodes[first].name.span,
                        "this node depends on itself through its inputs",
                    )
                    .help("a pipeline is a DAG: remove one of these inputs");
                    let in_cycle: BTreeSet<usize> = members.iter().copied().collect();
                    let mut labels = 0;
                    for &m in &members {
                        for inp in &self.nodes[m].inputs {
                            // A few edges show the loop; a ring of thousands would bury it.
                            if in_cycle.contains(&inp.from) && labels < 12 {
                                labels += 1;
                                e = e.also(
                                    inp.span,
                                    format!(
                                        "`{}` reads `{}`",
                                        self.nodes[m].name.text, self.nodes[inp.from].name.text
                                    ),
                                );
                            }
                        }
                    }
                    self.diags.push(e);
                }
                None
            }
        }
    }

    fn sweep(&mut self, raw: &spec::RawSpec, overrides: &[Override]) -> Sweep {
        let mut sweep = Sweep::default();
        for (k, v) in &raw.sweep {
            if overrides.iter().any(|o| o.key == k.text) {
                continue; // `--set` pins a swept value
            }
            let values = match spec::to_value(v) {
                Ok(Value::Array(items)) if !items.is_empty() => items,
                Ok(_) => {
                    self.diags.push(
                        SpecError::new(
                            Code::BadValue,
                            format!("sweep `{}` needs a non-empty list of values", k.text),
                        )
                        .at(v.span, "expected a list like `[0.05, 0.1]`"),
                    );
                    continue;
                }
                Err(e) => {
                    self.diags.push(e);
                    continue;
                }
            };
            let (node, param) = match k.text.split_once('.') {
                Some((n, p)) => match self.node_index.get(n) {
                    Some(&ni) => {
                        let known = self.nodes[ni]
                            .kind
                            .as_ref()
                            .map(|kd| kd.param_names().contains(&p))
                            .unwrap_or(true);
                        if !known {
                            let names = self.nodes[ni].kind.as_ref().unwrap().param_names();
                            self.diags.push(
                                SpecError::new(
                                    Code::UnknownSweepParam,
                                    format!(
                                        "sweep over `{}`: kind `{}` has no param `{p}`",
                                        k.text,
                                        self.nodes[ni].kind.as_ref().unwrap().kind()
                                    ),
                                )
                                .at(k.span, "no such param")
                                .did_you_mean(p, names),
                            );
                            continue;
                        }
                        (Some(ni), p.to_string())
                    }
                    None => {
                        let mut e = SpecError::new(
                            Code::UnknownSweepParam,
                            format!("sweep over `{}`: no node named `{n}`", k.text),
                        )
                        .at(k.span, "no such node");
                        if !self.diags.is_full() {
                            e = e.did_you_mean(n, self.node_names());
                        }
                        self.diags.push(e);
                        continue;
                    }
                },
                None => {
                    if !self.params.contains_key(&k.text) {
                        let mut e = SpecError::new(
                            Code::UnknownSweepParam,
                            format!("sweep over `{}`: no top-level param of that name", k.text),
                        )
                        .at(k.span, "not under `params:`");
                        if !self.diags.is_full() {
                            e = e.did_you_mean(&k.text, self.params.keys().map(String::as_str));
                        }
                        self.diags.push(e);
                        continue;
                    }
                    (None, k.text.clone())
                }
            };
            sweep.axes.push(SweepAxis {
                key: k.text.clone(),
                span: v.span,
                node,
                param,
                dim: String::new(),
                values,
            });
        }
        // Dim names: the param name, or the full key where two axes share a param name.
        let names: Vec<String> = sweep.axes.iter().map(|a| a.param.clone()).collect();
        for a in &mut sweep.axes {
            let clash = names.iter().filter(|n| **n == a.param).count() > 1;
            a.dim = if clash {
                a.key.clone()
            } else {
                a.param.clone()
            };
        }
        let mut total: usize = 1;
        for a in &sweep.axes {
            total = total.saturating_mul(a.values.len());
        }
        if total > MAX_GRID_POINTS {
            let sizes: Vec<String> = sweep
                .axes
                .iter()
                .map(|a| format!("{} ({})", a.key, a.values.len()))
                .collect();
            self.diags.push(
                SpecError::new(
                    Code::TooManySteps,
                    format!(
                        "the sweep has {total} grid points, more than {MAX_GRID_POINTS}: {}",
                        sizes.join(" x ")
                    ),
                )
                .at(raw.sweep[0].0.span, "this grid")
                .help("sweep fewer values, or run several specs with `--set`"),
            );
            sweep.too_large = true;
        }
        sweep
    }

    /// Which sweep axes influence each node (its own params, top-level params it refers to, and
    /// everything upstream).
    fn influences(&self, order: &[usize], sweep: &Sweep) -> Vec<BTreeSet<usize>> {
        let mut inf = vec![BTreeSet::new(); self.nodes.len()];
        for &n in order {
            let mut set = BTreeSet::new();
            for (ai, a) in sweep.axes.iter().enumerate() {
                let own = match a.node {
                    Some(an) => an == n,
                    None => self.nodes[n].refs.contains(&a.param),
                };
                if own {
                    set.insert(ai);
                }
            }
            for inp in &self.nodes[n].inputs {
                set.extend(inf[inp.from].iter().copied());
            }
            inf[n] = set;
        }
        inf
    }

    /// Count the steps before building them: a node's partitions times the grid points of the
    /// sweep axes that reach it. False (and a diagnostic) above [`MAX_STEPS`].
    fn check_expansion_size(&mut self, order: &[usize], sweep: &Sweep) -> bool {
        let influences = self.influences(order, sweep);
        let mut total: usize = 0;
        for &n in order {
            let parts = self.nodes[n]
                .dims
                .iter()
                .fold(1usize, |acc, (_, v)| acc.saturating_mul(v.len()));
            let points = influences[n].iter().fold(1usize, |acc, &a| {
                acc.saturating_mul(sweep.axes[a].values.len())
            });
            total = total.saturating_add(parts.saturating_mul(points));
            if total > MAX_STEPS {
                let dims: Vec<String> = self.nodes[n]
                    .dims
                    .iter()
                    .map(|(d, v)| format!("{d} ({})", v.len()))
                    .collect();
                let what = if dims.is_empty() {
                    String::new()
                } else {
                    format!(": `for_each` {}", dims.join(" x "))
                };
                self.diags.push(
                    SpecError::new(
                        Code::TooManySteps,
                        format!("the spec expands to more than {MAX_STEPS} steps"),
                    )
                    .at(
                        self.nodes[n].name.span,
                        format!("{} steps of this node{what}", parts.saturating_mul(points)),
                    )
                    .help("check the ranges in `for_each` and `sweep`"),
                );
                return false;
            }
        }
        true
    }

    fn expand(&mut self, order: &[usize], sweep: &Sweep) -> (Vec<Step>, HashMap<String, usize>) {
        let influences = self.influences(order, sweep);
        let mut steps: Vec<Step> = Vec::new();
        let mut by_id: HashMap<String, usize> = HashMap::new();
        // (point, node, partition) -> step, where point is reduced to the axes that matter.
        let mut index: StepIndex = HashMap::new();
        let points = grid_points(sweep);
        let mut param_cache: HashMap<(usize, String), Result<Arc<Value>, ()>> = HashMap::new();
        for point in &points {
            for &n in order {
                let Some(kind) = self.nodes[n].kind.clone() else {
                    continue;
                };
                let axes: Vec<(usize, usize)> =
                    influences[n].iter().map(|&a| (a, point[a])).collect();
                let okey = (n, axes.clone());
                for partition in partitions(&self.nodes[n].dims) {
                    if index.get(&okey).is_some_and(|m| m.contains_key(&partition)) {
                        continue;
                    }
                    if steps.len() >= MAX_STEPS {
                        self.diags.push(
                            SpecError::new(
                                Code::TooManySteps,
                                format!("the spec expands to more than {MAX_STEPS} steps"),
                            )
                            .at(self.nodes[n].name.span, "while expanding this node")
                            .help("check the ranges in `for_each` and `sweep`"),
                        );
                        return (steps, by_id);
                    }
                    // Exactly as large as needed: a plan may hold a million of these.
                    let mut dims = Dims::with_capacity(partition.len());
                    for ((d, _), v) in self.nodes[n].dims.iter().zip(partition.iter()) {
                        dims.insert(d.clone(), v.clone());
                    }
                    let sweep_vals: BTreeMap<String, Value> = axes
                        .iter()
                        .map(|&(a, vi)| {
                            (sweep.axes[a].dim.clone(), sweep.axes[a].values[vi].clone())
                        })
                        .collect();
                    let id = step_id(&self.nodes[n].name.text, &dims, &sweep_vals);
                    let params = self.step_params(n, &kind, &dims, sweep, &axes, &mut param_cache);
                    let inputs = self.step_inputs(n, &dims, &axes, &influences, &index);
                    if self.expansion_stopped {
                        return (steps, by_id);
                    }
                    let (Some(params), Some(inputs)) = (params, inputs) else {
                        self.nodes[n].dropped = true;
                        continue;
                    };
                    let idx = steps.len();
                    let connected: Vec<&str> = inputs
                        .iter()
                        .filter(|(_, edges)| !edges.is_empty())
                        .map(|(port, _)| port.as_str())
                        .collect();
                    let files = kind.files(&params, &connected).into_iter().collect();
                    steps.push(Step {
                        id: id.clone(),
                        node: self.nodes[n].name.text.clone(),
                        kind: kind.kind(),
                        version: kind.version(),
                        dims,
                        sweep: sweep_vals,
                        params,
                        inputs,
                        outputs: kind.outputs(),
                        files,
                        env: self.nodes[n].env.clone(),
                        span: self.nodes[n].name.span,
                        resources: self.nodes[n].resources.clone(),
                    });
                    by_id.insert(id, idx);
                    index
                        .entry(okey.clone())
                        .or_default()
                        .insert(partition, idx);
                }
            }
        }
        (steps, by_id)
    }

    fn step_params(
        &mut self,
        n: usize,
        kind: &Arc<dyn DynNode>,
        dims: &Dims,
        sweep: &Sweep,
        axes: &[(usize, usize)],
        cache: &mut HashMap<(usize, String), Result<Arc<Value>, ()>>,
    ) -> Option<Arc<Value>> {
        // Only the names this node's params refer to: dims first, then swept top-level params,
        // then top-level params (cloning every top-level param per step was a measurable share
        // of lowering a 20,000-step spec).
        let mut ctx: BTreeMap<String, Value> = BTreeMap::new();
        for name in &self.nodes[n].refs {
            let value = dims.get(name).map(DimValue::to_value).or_else(|| {
                axes.iter()
                    .find(|(a, _)| sweep.axes[*a].node.is_none() && sweep.axes[*a].param == *name)
                    .map(|&(a, vi)| sweep.axes[a].values[vi].clone())
                    .or_else(|| self.params.get(name).map(|p| p.value.clone()))
            });
            if let Some(v) = value {
                ctx.insert(name.clone(), v);
            }
        }
        let mut obj = serde_json::Map::new();
        for (k, v) in &self.nodes[n].params {
            match substitute(v, &ctx) {
                Ok(v) => {
                    obj.insert(k.text.clone(), v);
                }
                Err(name) => {
                    let span = k.span;
                    self.unknown_param_ref(&name, span);
                    return None;
                }
            }
        }
        for &(a, vi) in axes {
            if sweep.axes[a].node == Some(n) {
                obj.insert(
                    sweep.axes[a].param.clone(),
                    sweep.axes[a].values[vi].clone(),
                );
            }
        }
        let swept: Vec<(String, Span)> = axes
            .iter()
            .filter(|(a, _)| sweep.axes[*a].node == Some(n))
            .map(|(a, _)| (sweep.axes[*a].param.clone(), sweep.axes[*a].span))
            .collect();
        let raw = Value::Object(obj);
        let cache_key = (n, raw.to_string());
        if let Some(hit) = cache.get(&cache_key) {
            return hit.clone().ok();
        }
        let result = match kind.check_params(&raw) {
            Ok(v) => Ok(Arc::new(v)),
            Err(errors) => {
                for e in errors {
                    let first = e.path.split(['.', '[']).next().unwrap_or("");
                    // One error per node and param: a sweep of 30 bad values is one mistake.
                    if !self.nodes[n].param_errors.insert(e.path.clone()) {
                        continue;
                    }
                    let key = self.nodes[n]
                        .params
                        .iter()
                        .find(|(k, _)| k.text == first)
                        .map(|(k, _)| k.clone());
                    let span = swept
                        .iter()
                        .find(|(p, _)| p == first)
                        .map(|(_, s)| *s)
                        .or(key.as_ref().map(|k| k.span))
                        .unwrap_or(self.nodes[n].params_span);
                    let err = if e.unknown {
                        SpecError::new(Code::UnknownParam, e.message)
                            .at(span, "unknown param")
                            .did_you_mean(&e.path, kind.param_names())
                    } else {
                        let what = if e.path.is_empty() {
                            String::new()
                        } else {
                            format!("param `{}`: ", e.path)
                        };
                        let code = if e.message.starts_with("invalid type")
                            || e.message.starts_with("invalid value")
                        {
                            Code::ParamType
                        } else {
                            Code::InvalidParam
                        };
                        let err =
                            SpecError::new(code, format!("{what}{}", e.message)).at(span, "here");
                        match unknown_variant(&e.message) {
                            Some((wrong, expected)) => {
                                err.did_you_mean(wrong, expected.iter().copied())
                            }
                            None => err,
                        }
                    };
                    self.diags.push(err);
                }
                Err(())
            }
        };
        cache.insert(cache_key, result.clone());
        result.ok()
    }

    fn step_inputs(
        &mut self,
        n: usize,
        dims: &Dims,
        axes: &[(usize, usize)],
        influences: &[BTreeSet<usize>],
        index: &StepIndex,
    ) -> Option<LiteMap<String, Vec<InputEdge>>> {
        // Taken out and put back, not cloned: a clone per step was a large share of lowering.
        let inputs = std::mem::take(&mut self.nodes[n].inputs);
        let out = self.step_inputs_of(n, &inputs, dims, axes, influences, index);
        self.nodes[n].inputs = inputs;
        out
    }

    fn step_inputs_of(
        &mut self,
        n: usize,
        inputs: &[InputDecl],
        dims: &Dims,
        axes: &[(usize, usize)],
        influences: &[BTreeSet<usize>],
        index: &StepIndex,
    ) -> Option<LiteMap<String, Vec<InputEdge>>> {
        let mut out: LiteMap<String, Vec<InputEdge>> = LiteMap::with_capacity(inputs.len());
        let mut ok = true;
        let ports = self.nodes[n].kind.as_ref()?.inputs();
        for inp in inputs {
            let up = &self.nodes[inp.from];
            let up_axes: Vec<(usize, usize)> = axes
                .iter()
                .copied()
                .filter(|(a, _)| influences[inp.from].contains(a))
                .collect();
            // Candidate values per upstream dim.
            let mut per_dim: Vec<Vec<DimValue>> = Vec::new();
            // Whether the partitions read depend on the reading step's own partition (else one
            // missing partition is one error for the node, not one per step).
            let mut relative = false;
            for (d, values) in &up.dims {
                let (sel, span) = match inp.selectors.get(d) {
                    Some((s, sp)) => (s.clone(), *sp),
                    None if dims.contains_key(d) => (Selector::Same, inp.span),
                    None => (Selector::All, inp.span),
                };
                relative |= matches!(sel, Selector::Same | Selector::Relative(_));
                let chosen = match sel {
                    Selector::All => values.clone(),
                    Selector::Same => match dims.get(d) {
                        Some(v) => vec![v.clone()],
                        None => {
                            self.diags.push(
                                SpecError::new(
                                    Code::BadValue,
                                    format!(
                                        "`{d}: same` but node `{}` is not partitioned by `{d}`",
                                        self.nodes[n].name.text
                                    ),
                                )
                                .at(span, "nothing to match"),
                            );
                            ok = false;
                            continue;
                        }
                    },
                    Selector::Absolute(v) => v,
                    Selector::Relative(offsets) => match dims.get(d) {
                        Some(DimValue::Int(base)) => offsets
                            .iter()
                            .filter_map(|o| base.checked_add(*o))
                            .map(DimValue::Int)
                            .collect(),
                        _ => {
                            self.diags.push(
                                SpecError::new(
                                    Code::BadValue,
                                    format!("relative partition on `{d}` needs node `{}` to be partitioned by an integer `{d}`", self.nodes[n].name.text),
                                )
                                .at(span, "relative to what?"),
                            );
                            ok = false;
                            continue;
                        }
                    },
                };
                per_dim.push(chosen);
            }
            if !ok {
                continue;
            }
            let reads = per_dim
                .iter()
                .fold(1usize, |acc, v| acc.saturating_mul(v.len()));
            self.input_edges = self.input_edges.saturating_add(reads);
            if self.input_edges > MAX_INPUT_EDGES {
                self.diags.push(
                    SpecError::new(
                        Code::TooManySteps,
                        format!("the steps of the spec read more than {MAX_INPUT_EDGES} inputs"),
                    )
                    .at(
                        inp.span,
                        format!(
                            "each step of `{}` reads {reads} partitions here",
                            self.nodes[n].name.text
                        ),
                    )
                    .help("select fewer partitions (`year: same`, `-1..+1`) instead of `all`"),
                );
                self.expansion_stopped = true;
                return None;
            }
            let up_steps = index.get(&(inp.from, up_axes));
            let combos = cartesian(&per_dim);
            let mut edges = Vec::with_capacity(combos.len());
            for combo in combos {
                match up_steps.and_then(|m| m.get(&combo)) {
                    Some(&s) => edges.push(InputEdge {
                        step: s,
                        port: inp.out_port,
                    }),
                    None if up.dropped => {
                        // The partition is missing because of an error reported at `up`.
                        ok = false;
                        break;
                    }
                    None => {
                        let up_name = up.name.text.clone();
                        let wanted: Dims = up
                            .dims
                            .iter()
                            .map(|(d, _)| d.clone())
                            .zip(combo.iter().cloned())
                            .collect();
                        let missing = step_id(&up_name, &wanted, &BTreeMap::new());
                        // Built only here: cloning every upstream value per step made lowering
                        // quadratic in the partitions.
                        let have: Vec<String> = self.nodes[inp.from]
                            .dims
                            .iter()
                            .map(|(d, v)| format!("{d} in {}", describe_values(v)))
                            .collect();
                        let reader = if relative {
                            step_id(&self.nodes[n].name.text, dims, &BTreeMap::new())
                        } else {
                            self.nodes[n].name.text.clone()
                        };
                        let span = inp
                            .selectors
                            .values()
                            .next()
                            .map(|(_, s)| *s)
                            .unwrap_or(inp.span);
                        self.diags.push(
                            SpecError::new(
                                Code::PartitionMissing,
                                format!("`{reader}` reads `{missing}`, which the spec does not produce"),
                            )
                            .at(span, "this input reaches a missing partition")
                            .also(up.name.span, format!("`{up_name}` has {}", have.join(", ")))
                            .help(format!("widen `for_each` of `{up_name}`, e.g. `year: {{ param: years, pad: 1 }}`")),
                        );
                        ok = false;
                        break;
                    }
                }
            }
            let port = ports.iter().find(|p| p.name == inp.port)?;
            let entry = out.entry(inp.port.clone()).or_default();
            if entry.is_empty() {
                *entry = edges;
            } else {
                entry.extend(edges);
            }
            if !port.many && entry.len() > 1 {
                let up_name = &self.nodes[inp.from].name.text;
                self.diags.push(
                    SpecError::new(
                        Code::PortMismatch,
                        format!(
                            "input `{}` of `{}` takes one artifact but gets {} partitions of `{up_name}`",
                            inp.port,
                            self.nodes[n].name.text,
                            entry.len()
                        ),
                    )
                    .at(inp.span, "select one partition, e.g. `{ from: x, year: same }`"),
                );
                ok = false;
            }
        }
        ok.then_some(out)
    }
}

fn describe_values(v: &[DimValue]) -> String {
    let ints: Option<Vec<i64>> = v
        .iter()
        .map(|d| match d {
            DimValue::Int(i) => Some(*i),
            DimValue::Str(_) => None,
        })
        .collect();
    match ints {
        Some(i) if i.len() > 2 && i.windows(2).all(|w| w[1] == w[0] + 1) => {
            format!("{}..{}", i[0], i[i.len() - 1])
        }
        _ => format!(
            "[{}]",
            v.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What makes `name` unusable as a node or partition name, if anything.
fn bad_name_char(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    name.chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-')))
        .map(describe_char)
}

/// What makes a partition value unusable in a step id or a file path, if anything.
fn bad_value_char(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("it is empty".into());
    }
    if value == "." || value == ".." {
        return Some(format!("`{value}` is a folder name"));
    }
    value
        .chars()
        .find(|c| matches!(c, ',' | '=' | '[' | ']' | '/' | '\\') || c.is_control())
        .map(describe_char)
}

fn describe_char(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("it contains the character U+{:04X}", c as u32)
    } else {
        format!("it contains `{c}`")
    }
}

/// Format a step id: `node[dim=value,...]`, all dims (partition and sweep) sorted by name.
pub fn step_id(node: &str, dims: &Dims, sweep: &BTreeMap<String, Value>) -> String {
    use std::fmt::Write;
    if dims.is_empty() && sweep.is_empty() {
        return node.to_string();
    }
    let mut out = String::with_capacity(node.len() + 16 * (dims.len() + sweep.len()));
    out.push_str(node);
    out.push('[');
    fn write_parts<K: fmt::Display, V: fmt::Display>(
        out: &mut String,
        parts: impl Iterator<Item = (K, V)>,
    ) {
        for (i, (k, v)) in parts.enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}={v}");
        }
    }
    if sweep.is_empty() {
        // Already sorted by dim: no list to build (the common case, a million times).
        write_parts(&mut out, dims.iter());
    } else {
        let mut parts: Vec<(&str, String)> = dims
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_string()))
            .collect();
        for (k, v) in sweep {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            parts.push((k, text));
        }
        parts.sort();
        write_parts(&mut out, parts.into_iter());
    }
    out.push(']');
    out
}

/// `dims` as the map a step task carries.
pub fn dims_map(dims: &Dims) -> BTreeMap<String, DimValue> {
    dims.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn grid_points(sweep: &Sweep) -> Vec<Vec<usize>> {
    let ranges: Vec<Vec<usize>> = sweep
        .axes
        .iter()
        .map(|a| (0..a.values.len()).collect())
        .collect();
    cartesian(&ranges)
}

fn partitions(dims: &[(String, Vec<DimValue>)]) -> Vec<Vec<DimValue>> {
    let lists: Vec<Vec<DimValue>> = dims.iter().map(|(_, v)| v.clone()).collect();
    cartesian(&lists)
}

fn cartesian<T: Clone>(lists: &[Vec<T>]) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = vec![Vec::new()];
    for list in lists {
        let mut next = Vec::with_capacity(out.len() * list.len());
        for prefix in &out {
            for item in list {
                let mut p = prefix.clone();
                p.push(item.clone());
                next.push(p);
            }
        }
        out = next;
    }
    out
}

/// `("medain", ["median", ...])` from serde's "unknown variant `medain`, expected one of
/// `median`, ..." (or "expected `a` or `b`"), for a "did you mean".
fn unknown_variant(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.split_once("unknown variant `")?.1;
    let (wrong, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest
        .split_once("expected ")?
        .1
        .split('`')
        .skip(1)
        .step_by(2)
        .collect();
    (!expected.is_empty()).then_some((wrong, expected))
}

/// The first string holding a `${` that no `}` closes.
fn unclosed_ref(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                match rest[start + 2..].find('}') {
                    Some(end) => rest = &rest[start + 2 + end + 1..],
                    None => return Some(s),
                }
            }
            None
        }
        Value::Array(items) => items.iter().find_map(unclosed_ref),
        Value::Object(m) => m.values().find_map(unclosed_ref),
        _ => None,
    }
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                match after.find('}') {
                    Some(end) => {
                        out.insert(after[..end].to_string());
                        rest = &after[end + 1..];
                    }
                    None => break,
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        Value::Object(m) => m.values().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

/// Replace `${name}` in strings: a whole-string reference keeps the referenced value's type.
fn substitute(v: &Value, ctx: &BTreeMap<String, Value>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) if s.contains("${") => {
            if s.starts_with("${") && s.ends_with('}') && s[2..].find('}') == Some(s.len() - 3) {
                let name = &s[2..s.len() - 1];
                return ctx.get(name).cloned().ok_or_else(|| name.to_string());
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    out.push_str(&rest[start..]);
                    rest = "";
                    break;
                };
                let name = &after[..end];
                match ctx.get(name) {
                    Some(Value::String(t)) => out.push_str(t),
                    Some(other) => out.push_str(&other.to_string()),
                    None => return Err(name.to_string()),
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| substitute(i, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut o = serde_json::Map::new();
            for (k, i) in m {
                o.insert(k.clone(), substitute(i, ctx)?);
            }
            Value::Object(o)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sorted_and_readable() {
        let mut dims = Dims::new();
        dims.insert("year".to_string(), DimValue::Int(2019));
        let mut sweep = BTreeMap::new();
        sweep.insert("sad".to_string(), Value::from(0.95));
        sweep.insert("ed".to_string(), Value::from(0.1));
        assert_eq!(
            step_id("migrate", &dims, &sweep),
            "migrate[ed=0.1,sad=0.95,year=2019]"
        );
        assert_eq!(step_id("train", &Dims::new(), &BTreeMap::new()), "train");
    }

    #[test]
    fn substitution_keeps_types() {
        let mut ctx = BTreeMap::new();
        ctx.insert("ref_year".to_string(), Value::from(2020));
        ctx.insert("year".to_string(), Value::from(2019));
        assert_eq!(
            substitute(&Value::from("${ref_year}"), &ctx).unwrap(),
            Value::from(2020)
        );
        assert_eq!(
            substitute(&Value::from("data/${year}/x.tif"), &ctx).unwrap(),
            Value::from("data/2019/x.tif")
        );
        assert_eq!(
            substitute(&Value::from("${nope}"), &ctx).unwrap_err(),
            "nope"
        );
    }

    #[test]
    fn overrides_parse_yaml_values() {
        let o = Override::parse("migrate.ed=0.15").unwrap();
        assert_eq!(o.key, "migrate.ed");
        assert_eq!(o.value, Value::from(0.15));
        let o = Override::parse("years=2017..2019").unwrap();
        assert_eq!(o.value, serde_json::json!([2017, 2018, 2019]));
        assert!(Override::parse("novalue").is_err());
    }

    #[test]
    fn unknown_variants_are_parsed() {
        assert_eq!(
            unknown_variant("unknown variant `medain`, expected one of `median`, `mean`"),
            Some(("medain", vec!["median", "mean"]))
        );
        assert_eq!(
            unknown_variant("unknown variant `x`, expected `a` or `b`"),
            Some(("x", vec!["a", "b"]))
        );
        assert_eq!(unknown_variant("invalid type: string"), None);
    }

    #[test]
    fn cartesian_product() {
        let c = cartesian(&[vec![1, 2], vec![3, 4, 5]]);
        assert_eq!(c.len(), 6);
        assert_eq!(c[0], vec![1, 3]);
        assert_eq!(c[5], vec![2, 5]);
    }
}
