//! The contract between the engine and node kinds.
//!
//! Authors implement the typed [`Node`] trait (kind, version, a serde `Params` struct, typed ports,
//! `check`, `run`). The engine only sees the object-safe [`DynNode`], which every `Node` gets for
//! free through [`erase`]. The engine knows no domain node: the CLI hands it a [`Registry`].
//!
//! Nodes never read the environment, the clock or stdout, and never pick store paths: they go
//! through [`RunCtx`], which records what they used (seed, declared env vars, warnings, metrics).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::live::{LineKind, LiveLog, Progress};
use crate::plan::DimValue;

/// A typed port: a name and the artifact type that flows through it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: &'static str,
    /// Artifact type name (`Scenes`, `Features`, `Map`, ...). The engine only compares names.
    pub ty: &'static str,
    /// An input port that gathers several upstream artifacts (e.g. all years).
    pub many: bool,
    /// An input port that may be left unconnected.
    pub optional: bool,
}

impl Port {
    pub const fn one(name: &'static str, ty: &'static str) -> Port {
        Port {
            name,
            ty,
            many: false,
            optional: false,
        }
    }

    pub const fn many(name: &'static str, ty: &'static str) -> Port {
        Port {
            name,
            ty,
            many: true,
            optional: false,
        }
    }

    pub const fn optional(mut self) -> Port {
        self.optional = true;
        self
    }
}

/// The typed trait node authors implement. See `examples/custom_node.rs`.
pub trait Node: Send + Sync + 'static {
    /// The `kind:` name in specs.
    const KIND: &'static str;
    /// Bump when the node's output for the same inputs changes; it enters every step key.
    const VERSION: u32;
    /// Params with `#[serde(deny_unknown_fields, default)]`; the canonical (defaults filled in)
    /// serialisation enters the step key.
    type Params: Serialize + DeserializeOwned + Send + Sync;

    fn inputs() -> Vec<Port>;
    fn outputs() -> Vec<Port>;

    /// One line for `lulc` help and docs.
    fn summary() -> &'static str {
        ""
    }

    /// Environment variables whose values enter the step key and that `run` may read via
    /// [`RunCtx::env`].
    fn env() -> Vec<&'static str> {
        Vec::new()
    }

    /// Semantic checks beyond types, run before anything executes. Return `(param, message)`.
    fn check(_params: &Self::Params) -> Result<(), Vec<(String, String)>> {
        Ok(())
    }

    /// Files outside the store that the params name, as `(param, path as written)`: their
    /// contents enter the step key (edit the file and the step re-runs), resolved like
    /// [`RunCtx::resolve`]. Only files the node reads itself; artifacts come through inputs.
    /// `connected`: the input ports this step has connected (a path may name a file of an
    /// input instead).
    fn files(_params: &Self::Params, _connected: &[&str]) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    fn run(
        &self,
        ctx: &mut RunCtx,
        params: &Self::Params,
        inputs: &Inputs,
    ) -> Result<(), NodeError>;
}

/// An error a node reports. The engine adds the step id and underlines the step in the YAML.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    pub message: String,
    pub help: Option<String>,
}

impl NodeError {
    pub fn new(message: impl Into<String>) -> NodeError {
        NodeError {
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> NodeError {
        self.help = Some(help.into());
        self
    }

    /// A diagnostic's message and help, as a node reports them.
    pub fn from_diagnostic(e: &dyn miette::Diagnostic) -> NodeError {
        NodeError {
            message: e.to_string(),
            help: e.help().map(|h| h.to_string()),
        }
    }
}

impl From<std::io::Error> for NodeError {
    fn from(e: std::io::Error) -> NodeError {
        NodeError::new(e.to_string())
    }
}

/// A param error found while checking a step's params.
#[derive(Debug, Clone)]
pub struct ParamError {
    /// Path of the offending field (`ed`, `window.months`), empty if unknown.
    pub path: String,
    pub message: String,
    /// True when the field is not a param of the kind at all.
    pub unknown: bool,
}

/// The object-safe face of a node kind.
pub trait DynNode: Send + Sync {
    fn kind(&self) -> &'static str;
    fn version(&self) -> u32;
    fn inputs(&self) -> Vec<Port>;
    fn outputs(&self) -> Vec<Port>;
    fn summary(&self) -> &'static str;
    fn env(&self) -> Vec<&'static str>;
    /// Names of the top-level params.
    fn param_names(&self) -> Vec<&'static str>;
    /// Type-check params and return their canonical form (defaults filled in).
    fn check_params(&self, params: &Value) -> Result<Value, Vec<ParamError>>;
    /// [`Node::files`] of canonical params (none if they do not parse).
    fn files(&self, params: &Value, connected: &[&str]) -> Vec<(String, String)>;
    fn run(&self, ctx: &mut RunCtx, params: &Value, inputs: &Inputs) -> Result<(), NodeError>;
}

struct Erased<N>(N);

/// Turn a typed node into the engine's erased form.
pub fn erase<N: Node>(node: N) -> Arc<dyn DynNode> {
    Arc::new(Erased(node))
}

impl<N: Node> DynNode for Erased<N> {
    fn kind(&self) -> &'static str {
        N::KIND
    }
    fn version(&self) -> u32 {
        N::VERSION
    }
    fn inputs(&self) -> Vec<Port> {
        N::inputs()
    }
    fn outputs(&self) -> Vec<Port> {
        N::outputs()
    }
    fn summary(&self) -> &'static str {
        N::summary()
    }
    fn env(&self) -> Vec<&'static str> {
        N::env()
    }
    fn param_names(&self) -> Vec<&'static str> {
        crate::introspect::struct_fields::<N::Params>()
    }
    fn check_params(&self, params: &Value) -> Result<Value, Vec<ParamError>> {
        let names = self.param_names();
        let mut errors = Vec::new();
        if let Value::Object(map) = params {
            for k in map.keys() {
                if !names.is_empty() && !names.contains(&k.as_str()) {
                    errors.push(ParamError {
                        path: k.clone(),
                        message: format!("unknown param `{k}` for kind `{}`", N::KIND),
                        unknown: true,
                    });
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let typed: N::Params = match serde_path_to_error::deserialize(params) {
            Ok(p) => p,
            Err(e) => {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                return Err(vec![ParamError {
                    path,
                    message: e.into_inner().to_string(),
                    unknown: false,
                }]);
            }
        };
        if let Err(errs) = N::check(&typed) {
            return Err(errs
                .into_iter()
                .map(|(path, message)| ParamError {
                    path,
                    message,
                    unknown: false,
                })
                .collect());
        }
        serde_json::to_value(&typed).map_err(|e| {
            vec![ParamError {
                path: String::new(),
                message: e.to_string(),
                unknown: false,
            }]
        })
    }
    fn files(&self, params: &Value, connected: &[&str]) -> Vec<(String, String)> {
        match serde_json::from_value::<N::Params>(params.clone()) {
            Ok(typed) => N::files(&typed, connected)
                .into_iter()
                .map(|(param, path)| (param.to_string(), path))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
    fn run(&self, ctx: &mut RunCtx, params: &Value, inputs: &Inputs) -> Result<(), NodeError> {
        let typed: N::Params = serde_json::from_value(params.clone())
            .map_err(|e| NodeError::new(format!("params: {e}")))?;
        self.0.run(ctx, &typed, inputs)
    }
}

/// The node kinds an engine knows, by kind name.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn DynNode>>,
}

impl Registry {
    pub fn new(nodes: impl IntoIterator<Item = Arc<dyn DynNode>>) -> Registry {
        let mut r = Registry::default();
        for n in nodes {
            r.add(n);
        }
        r
    }

    pub fn add(&mut self, node: Arc<dyn DynNode>) {
        self.kinds.insert(node.kind(), node);
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn DynNode>> {
        self.kinds.get(kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }
}

/// One upstream artifact as a node sees it: its files (paths in the store, read-only) and
/// metadata, plus where it came from.
#[derive(Clone, Debug)]
pub struct ArtifactIn {
    pub step_id: String,
    pub dims: BTreeMap<String, DimValue>,
    pub ty: String,
    pub digest: String,
    pub files: BTreeMap<String, PathBuf>,
    pub meta: Value,
}

impl ArtifactIn {
    /// Path of a named file of this artifact, or an error naming the artifact and the file.
    pub fn file(&self, name: &str) -> Result<&Path, NodeError> {
        self.files.get(name).map(PathBuf::as_path).ok_or_else(|| {
            NodeError::new(format!(
                "artifact from `{}` has no file `{name}` (it has: {})",
                self.step_id,
                self.files.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    pub fn dim_int(&self, name: &str) -> Option<i64> {
        match self.dims.get(name) {
            Some(DimValue::Int(i)) => Some(*i),
            _ => None,
        }
    }
}

/// The artifacts connected to each input port, ordered by their partition dims.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub ports: BTreeMap<String, Vec<ArtifactIn>>,
}

impl Inputs {
    /// All artifacts of a port (empty for an unconnected optional port).
    pub fn all(&self, port: &str) -> &[ArtifactIn] {
        self.ports.get(port).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The single artifact of a one-artifact port.
    pub fn one(&self, port: &str) -> Result<&ArtifactIn, NodeError> {
        match self.all(port) {
            [a] => Ok(a),
            [] => Err(NodeError::new(format!("input `{port}` is not connected"))),
            many => Err(NodeError::new(format!(
                "input `{port}` has {} artifacts, expected one",
                many.len()
            ))),
        }
    }
}

/// An output being built by a node: files written into store-owned temp paths, plus metadata.
#[derive(Debug, Default)]
pub struct ArtifactOut {
    pub files: BTreeMap<String, PathBuf>,
    pub meta: Value,
}

/// What a node may use while it runs.
pub struct RunCtx {
    pub(crate) step_id: String,
    pub(crate) dims: BTreeMap<String, DimValue>,
    pub(crate) seed: u64,
    pub(crate) env: BTreeMap<String, Option<String>>,
    pub(crate) tmp: Box<dyn Fn(&str) -> PathBuf + Send + Sync>,
    pub(crate) outputs: BTreeMap<String, ArtifactOut>,
    pub(crate) output_ports: Vec<Port>,
    pub(crate) warnings: Vec<String>,
    pub(crate) metrics: serde_json::Map<String, Value>,
    pub(crate) spec_dir: PathBuf,
    pub(crate) allowed_paths: Vec<PathBuf>,
    pub(crate) live: Option<LiveLog>,
}

impl RunCtx {
    /// A context outside of any run, for unit-testing a node.
    pub fn for_test(step_id: &str, output_ports: Vec<Port>, tmp_dir: &Path) -> RunCtx {
        let dir = tmp_dir.to_path_buf();
        let counter = std::sync::atomic::AtomicU64::new(0);
        RunCtx {
            step_id: step_id.to_string(),
            dims: BTreeMap::new(),
            seed: 0,
            env: BTreeMap::new(),
            tmp: Box::new(move |hint| {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                dir.join(format!("t{n}-{hint}"))
            }),
            outputs: BTreeMap::new(),
            output_ports,
            warnings: Vec::new(),
            metrics: serde_json::Map::new(),
            spec_dir: tmp_dir.to_path_buf(),
            allowed_paths: Vec::new(),
            live: None,
        }
    }

    /// Send this step's live lines to `live` (tests).
    pub fn with_live_log(mut self, live: LiveLog) -> RunCtx {
        self.live = Some(live);
        self
    }

    /// Allow reading from a directory outside the spec's (tests; `lulc run --allow-path`).
    pub fn with_allowed_path(mut self, dir: &Path) -> RunCtx {
        self.allowed_paths.push(dir.to_path_buf());
        self
    }

    /// Set the partition dims (tests), e.g. `[("year", DimValue::Int(2020))]`.
    pub fn with_dims(mut self, dims: impl IntoIterator<Item = (String, DimValue)>) -> RunCtx {
        self.dims = dims.into_iter().collect();
        self
    }

    /// Set the directory relative spec paths resolve against (tests).
    pub fn with_spec_dir(mut self, dir: &Path) -> RunCtx {
        self.spec_dir = dir.to_path_buf();
        self
    }

    /// Set the seed (tests).
    pub fn with_seed(mut self, seed: u64) -> RunCtx {
        self.seed = seed;
        self
    }

    pub fn step_id(&self) -> &str {
        &self.step_id
    }

    pub fn dims(&self) -> &BTreeMap<String, DimValue> {
        &self.dims
    }

    pub fn dim_int(&self, name: &str) -> Option<i64> {
        match self.dims.get(name) {
            Some(DimValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// Deterministic seed of this step: derived from the step's key alone, so the same key
    /// gives the same numbers wherever and whenever the step runs, whatever `--jobs` or
    /// executor. A spec's top-level `seed` reaches a step through the params that use
    /// `${seed}` (and so through its key).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A declared environment variable (see [`Node::env`]); its value is part of the step key.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env.get(name).and_then(|v| v.as_deref())
    }

    /// Directory of the spec file; relative paths in params resolve against it.
    pub fn spec_dir(&self) -> &Path {
        &self.spec_dir
    }

    /// Resolve a path written in a spec against the spec's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.spec_dir.join(p)
        }
    }

    /// A path written in a spec (a catalog, a points file, a manifest), resolved against the
    /// spec's directory and confined to it: after resolving `..` and symlinks it must lie inside
    /// the spec's directory or a directory the user allowed with `lulc run --allow-path DIR`.
    /// A spec cannot reach `/etc/passwd` or `~/.ssh` through `../..`, an absolute path or a
    /// symlink. `param` names the param in the error.
    pub fn input_path(&self, param: &str, p: &str) -> Result<PathBuf, NodeError> {
        confine(&self.spec_dir, &self.allowed_paths, param, p)
    }

    /// The rule [`RunCtx::input_path`] applies, as a value to take along to where the node opens
    /// paths it did not get from its params (the files a manifest, a STAC item or a VRT names).
    pub fn confinement(&self) -> Confinement {
        Confinement {
            spec_dir: self.spec_dir.clone(),
            allowed: self.allowed_paths.clone(),
        }
    }

    /// A fresh path (in the store's temp dir) where the node writes file `name` of output `port`.
    pub fn output_file(&mut self, port: &str, name: &str) -> Result<PathBuf, NodeError> {
        self.check_port(port)?;
        let hint = name.replace(['/', '\\'], "_");
        let path = (self.tmp)(&hint);
        self.outputs
            .entry(port.to_string())
            .or_default()
            .files
            .insert(name.to_string(), path.clone());
        Ok(path)
    }

    /// Write a small file of an output directly.
    pub fn write_output(&mut self, port: &str, name: &str, bytes: &[u8]) -> Result<(), NodeError> {
        let path = self.output_file(port, name)?;
        std::fs::write(&path, bytes)
            .map_err(|e| NodeError::new(format!("cannot write `{}`: {e}", path.display())))
    }

    /// Bytes free on the file system the outputs are written to (the store's), where it says.
    pub fn free_space(&self) -> Option<u64> {
        let probe = (self.tmp)("free-space");
        crate::task::free_space(probe.parent()?)
    }

    /// Metadata of an output (JSON; part of the artifact's digest, so keep it deterministic).
    pub fn set_meta(&mut self, port: &str, meta: Value) -> Result<(), NodeError> {
        self.check_port(port)?;
        self.outputs.entry(port.to_string()).or_default().meta = meta;
        Ok(())
    }

    /// A warning about the result (points dropped, a class without validation samples): kept
    /// with the step's result and printed when the step finishes.
    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// Say now, before the work, what the step is about to do and what it will cost (a grid of
    /// 4e10 pixels, a network of 160 M weights): printed at once (see [`crate::live`]).
    pub fn note(&self, message: &str) {
        if let Some(live) = &self.live {
            live.line(&self.step_id, LineKind::Note, message);
        }
    }

    /// A counter of `total` units of work (`blocks`, `batches`) that says how far the step got,
    /// now and then, while it runs; advance it with [`Progress::add`], from any thread.
    pub fn progress(&self, total: u64, unit: &str) -> Progress {
        let live = self.live.clone().map(|l| (l, self.step_id.clone()));
        Progress::new(live, total, unit)
    }

    /// A number reported in `lulc results` and run records.
    pub fn metric(&mut self, name: &str, value: impl Into<Value>) {
        self.metrics.insert(name.to_string(), value.into());
    }

    fn check_port(&self, port: &str) -> Result<(), NodeError> {
        if self.output_ports.iter().any(|p| p.name == port) {
            Ok(())
        } else {
            Err(NodeError::new(format!(
                "node wrote to unknown output port `{port}`"
            )))
        }
    }

    /// Outputs produced so far (for unit tests of nodes).
    pub fn outputs(&self) -> &BTreeMap<String, ArtifactOut> {
        &self.outputs
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Metrics recorded so far (for unit tests of nodes).
    pub fn metrics(&self) -> &serde_json::Map<String, Value> {
        &self.metrics
    }
}

/// Where a step may read: its spec's directory and the directories `--allow-path` names
/// ([`RunCtx::confinement`]).
#[derive(Clone, Debug)]
pub struct Confinement {
    spec_dir: PathBuf,
    allowed: Vec<PathBuf>,
}

/// GDAL's prefixes for files on the network: not on this machine's file system, so outside the
/// confinement's reach (and intent).
const REMOTE_VSI: [&str; 12] = [
    "/vsicurl/",
    "/vsicurl_streaming/",
    "/vsis3/",
    "/vsis3_streaming/",
    "/vsigs/",
    "/vsigs_streaming/",
    "/vsiaz/",
    "/vsiaz_streaming/",
    "/vsiadls/",
    "/vsioss/",
    "/vsiswift/",
    "/vsiwebhdfs/",
];

/// GDAL's prefixes for a file inside an archive: the archive's path follows.
const ARCHIVE_VSI: [&str; 5] = ["/vsizip/", "/vsitar/", "/vsigzip/", "/vsi7z/", "/vsirar/"];

impl Confinement {
    pub fn new(spec_dir: &Path, allowed: &[PathBuf]) -> Confinement {
        Confinement {
            spec_dir: spec_dir.to_path_buf(),
            allowed: allowed.to_vec(),
        }
    }

    /// Check a path found while running (in a manifest, a STAC document or item, a VRT, a GDAL
    /// file list), as GDAL would be given it: a local path (relative to the spec's directory)
    /// must lie inside the allowed roots after resolving symlinks and `..`; a file in an archive
    /// (`/vsizip/archive.zip/b.tif`) is checked by its archive's path; a network file
    /// (`/vsicurl/`, `/vsis3/`, ...) passes; any other GDAL virtual path (`/vsimem/`,
    /// `/vsisubfile/`, ...) is refused. `what` names where the path was found, for the error.
    pub fn check(&self, what: &str, path: &str) -> Result<(), NodeError> {
        if REMOTE_VSI.iter().any(|p| path.starts_with(p)) {
            return Ok(());
        }
        if let Some(rest) = ARCHIVE_VSI.iter().find_map(|p| path.strip_prefix(p)) {
            // `/vsizip/{/a/b.zip}/x.tif` or `/vsizip//a/b.zip/x.tif`.
            let inner = match rest.strip_prefix('{') {
                Some(braced) => braced.split('}').next().unwrap_or(braced),
                None => rest,
            };
            return self.check(what, inner);
        }
        if path.starts_with("/vsi") {
            return Err(NodeError::new(format!(
                "{what}: GDAL path `{path}` is not a file lulc can check"
            ))
            .with_help(
                "a spec may name files (in its folder or an `--allow-path` folder), files in \
                 archives (`/vsizip/`, `/vsitar/`) and network files (`/vsicurl/`, `/vsis3/`)",
            ));
        }
        confine_as(&self.spec_dir, &self.allowed, what, path).map(drop)
    }
}

/// See [`RunCtx::input_path`].
pub fn confine(
    spec_dir: &Path,
    allowed: &[PathBuf],
    param: &str,
    p: &str,
) -> Result<PathBuf, NodeError> {
    confine_as(spec_dir, allowed, &format!("param `{param}`"), p)
}

/// [`confine`], the error starting with `what` (where the path was found).
fn confine_as(
    spec_dir: &Path,
    allowed: &[PathBuf],
    what: &str,
    p: &str,
) -> Result<PathBuf, NodeError> {
    let joined = if Path::new(p).is_absolute() {
        PathBuf::from(p)
    } else {
        spec_dir.join(p)
    };
    let real = real_path(&joined);
    let roots: Vec<PathBuf> = std::iter::once(spec_dir)
        .chain(allowed.iter().map(PathBuf::as_path))
        .map(real_path)
        .collect();
    if roots.iter().any(|r| real.starts_with(r)) {
        return Ok(joined);
    }
    Err(NodeError::new(format!(
        "{what}: path `{p}` resolves to `{}`, outside the spec's directory `{}`",
        real.display(),
        roots[0].display()
    ))
    .with_help(format!(
        "paths in a spec stay inside its directory (no `..`, absolute paths or symlinks leading \
         out); to read from `{}` on purpose, run with `--allow-path {}`",
        real.parent().unwrap_or(&real).display(),
        real.parent().unwrap_or(&real).display()
    )))
}

/// The path with symlinks and `..` resolved: the longest existing ancestor canonicalised, the
/// rest normalised lexically (a `..` in a part that does not exist yet pops a component).
fn real_path(path: &Path) -> PathBuf {
    // A spec given as `pipeline.yaml` has the directory `` (the working directory).
    let mut existing = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/nonexistent"))
            .join(path)
    };
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    let base = loop {
        if let Ok(c) = existing.canonicalize() {
            break c;
        }
        match (existing.components().next_back(), existing.parent()) {
            (Some(last), Some(parent)) => {
                rest.push(last.as_os_str().to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break PathBuf::from("/"),
        }
    };
    let mut out = base;
    for part in rest.iter().rev() {
        match part.to_str() {
            Some("..") => {
                out.pop();
            }
            Some(".") => {}
            _ => out.push(part),
        }
    }
    out
}

#[cfg(test)]
mod confine_tests {
    use super::*;

    #[test]
    fn gdal_paths_are_checked_by_the_file_they_reach() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a.zip"), "zip").unwrap();
        let c = Confinement::new(tmp.path(), &[]);
        let inside = tmp.path().join("a.zip");
        let inside = inside.to_str().unwrap();
        assert!(c.check("x", "/vsicurl/https://example.org/b.tif").is_ok());
        assert!(c.check("x", "/vsis3/bucket/b.tif").is_ok());
        assert!(c.check("x", &format!("/vsizip/{inside}/B04.tif")).is_ok());
        assert!(
            c.check("x", &format!("/vsizip/{{{inside}}}/B04.tif"))
                .is_ok()
        );
        assert!(c.check("x", "/vsizip//etc/secret.zip/B04.tif").is_err());
        assert!(c.check("x", "/vsitar/{/etc/b.tar}/x.tif").is_err());
        let e = c
            .check("the item", "/vsisubfile/0_100,/etc/passwd")
            .unwrap_err();
        assert!(e.message.starts_with("the item: GDAL path"), "{e:?}");
        let e = c.check("the item", "/etc/passwd").unwrap_err();
        assert!(
            e.message.starts_with("the item: path `/etc/passwd`"),
            "{e:?}"
        );
    }

    #[test]
    fn spec_paths_stay_in_the_spec_dir_unless_allowed() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = tmp.path().join("project");
        let other = tmp.path().join("elsewhere");
        std::fs::create_dir_all(spec.join("data")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("secret.txt"), "x").unwrap();
        let ok = |p: &str| confine(&spec, &[], "path", p);
        // A relative spec dir (the spec given as `pipeline.yaml`) is the working directory,
        // never "everything".
        assert!(confine(Path::new(""), &[], "path", "/etc/passwd").is_err());
        assert!(confine(Path::new(""), &[], "path", "Cargo.toml").is_ok());
        assert_eq!(ok("data/a.tif").unwrap(), spec.join("data/a.tif"));
        assert!(ok("data/../data/new/b.tif").is_ok());
        assert!(ok("not/yet/there.gpkg").is_ok());
        let e = ok("../elsewhere/secret.txt").unwrap_err();
        assert!(
            e.to_string().contains("outside the spec's directory"),
            "{e}"
        );
        assert!(e.to_string().contains("param `path`"), "{e}");
        assert!(ok("data/../../elsewhere/secret.txt").is_err());
        assert!(ok("missing/../../elsewhere").is_err());
        assert!(ok("/etc/passwd").is_err());
        let abs = other.join("secret.txt");
        assert!(ok(abs.to_str().unwrap()).is_err());
        assert!(
            confine(
                &spec,
                std::slice::from_ref(&other),
                "path",
                abs.to_str().unwrap()
            )
            .is_ok()
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&other, spec.join("link")).unwrap();
            let e = ok("link/secret.txt").unwrap_err();
            assert!(
                e.help.as_deref().unwrap_or("").contains("--allow-path"),
                "{e:?}"
            );
        }
    }
}
