//! Deciding what to run (`plan`) and running it (`run`).
//!
//! Both walk the DAG in topological order. A step's key needs its inputs' *content* digests, so
//! a step is only known fresh once everything upstream is fresh; `plan` reports `maybe` for steps
//! behind a step that will run, and `run` decides each step when its inputs are done. That is what
//! makes early cutoff work: an upstream re-run that writes identical bytes gives identical digests,
//! hence identical keys downstream.
//!
//! Execution: a coordinator thread hands ready steps to `jobs` worker threads over crossbeam
//! channels. A worker computes the key, looks it up, and otherwise takes the store's claim on the
//! key (so a concurrent `lulc run` on the same store waits instead of computing it twice), checks
//! the store again, runs the node, moves its files into the store and records the step last.
//! A killed run leaves finished steps recorded and nothing half-written; the next run resumes.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lulc_cache::{BlobState, Digest, RunInfo, RunStep, StepRecord, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fingerprint::{self, DirtyReason, ENGINE_CACHE_VERSION, KeyMaterial};
use crate::node::{ArtifactIn, Inputs, NodeError, RunCtx};
use crate::plan::{Plan, Step};

/// Status of a step, in `plan` (`fresh`, `dirty`, `new`, `maybe`) or `run` (`cached`, `ran`,
/// `failed`, `skipped`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Fresh,
    Dirty,
    New,
    Maybe,
    Cached,
    Ran,
    Failed,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Fresh => "fresh",
            Status::Dirty => "dirty",
            Status::New => "new",
            Status::Maybe => "maybe",
            Status::Cached => "cached",
            Status::Ran => "ran",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }

    /// The tag `plan` prints: `[DIRTY]`.
    pub fn tag(self) -> String {
        format!("[{}]", self.as_str().to_uppercase())
    }
}

/// What happened (or would happen) to one step.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub step: usize,
    pub status: Status,
    pub reasons: Vec<DirtyReason>,
    pub key: Option<String>,
    pub material: Option<KeyMaterial>,
    pub outputs: BTreeMap<String, Digest>,
    pub duration_s: f64,
    pub error: Option<NodeError>,
    pub warnings: Vec<String>,
    pub metrics: Value,
}

impl Outcome {
    fn new(step: usize, status: Status) -> Outcome {
        Outcome {
            step,
            status,
            reasons: Vec::new(),
            key: None,
            material: None,
            outputs: BTreeMap::new(),
            duration_s: 0.0,
            error: None,
            warnings: Vec::new(),
            metrics: Value::Null,
        }
    }

    pub fn reason(&self) -> String {
        fingerprint::render(&self.reasons)
    }
}

/// Errors of the engine itself (not of a node).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ExecError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Cache(#[from] lulc_cache::CacheError),
}

/// The manifest of one output artifact, stored as a blob; its digest is the output's digest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "type")]
    pub ty: String,
    pub files: BTreeMap<String, Digest>,
    pub meta: Value,
}

fn material(
    step: &Step,
    inputs: Option<&BTreeMap<String, Vec<String>>>,
    spec_dir: &Path,
) -> KeyMaterial {
    KeyMaterial {
        engine: ENGINE_CACHE_VERSION,
        kind: step.kind.clone(),
        version: step.version,
        params: step.params.clone(),
        dims: step.dims.clone(),
        inputs: inputs.cloned().unwrap_or_default(),
        env: step
            .env
            .iter()
            .map(|name| (name.clone(), std::env::var(name).ok()))
            .collect(),
        files: step
            .files
            .iter()
            .map(|(param, path)| {
                (
                    param.clone(),
                    fingerprint::file_digest(&spec_dir.join(path)),
                )
            })
            .collect(),
    }
}

/// Input digests of a step, if every upstream output is known.
fn input_digests(
    step: &Step,
    known: &[Option<BTreeMap<String, Digest>>],
) -> Option<BTreeMap<String, Vec<String>>> {
    let mut out = BTreeMap::new();
    for (port, edges) in &step.inputs {
        let mut list = Vec::with_capacity(edges.len());
        for e in edges {
            let outs = known[e.step].as_ref()?;
            list.push(outs.get(&e.port)?.to_string());
        }
        out.insert(port.clone(), list);
    }
    Some(out)
}

/// Is the record's output still usable? (exists, right size; full re-hash is `lulc verify`'s job
/// and happens for every input a running step reads.)
fn record_usable(store: &Store, rec: &StepRecord) -> Result<(), DirtyReason> {
    for d in &rec.blobs {
        match store.check_blob(d, false) {
            BlobState::Ok => {}
            state => {
                let port = rec
                    .outputs
                    .iter()
                    .find(|(_, od)| *od == d)
                    .map(|(p, _)| p.clone())
                    .unwrap_or_else(|| rec.outputs.keys().next().cloned().unwrap_or_default());
                return Err(match state {
                    BlobState::Missing => DirtyReason::OutputMissing { port },
                    _ => DirtyReason::OutputCorrupt { port },
                });
            }
        }
    }
    Ok(())
}

/// Decide the status of one step whose inputs are known (`inputs` = Some) or not.
fn decide(
    plan: &Plan,
    store: &Store,
    i: usize,
    inputs: Option<BTreeMap<String, Vec<String>>>,
    blocked_by: Option<&str>,
) -> Result<Outcome, ExecError> {
    let mat = material(&plan.steps[i], inputs.as_ref(), &plan.spec_dir);
    decide_with(plan, store, i, mat, inputs.is_some(), blocked_by)
}

/// [`decide`] on material already computed (`inputs_known`: it has the input digests).
fn decide_with(
    plan: &Plan,
    store: &Store,
    i: usize,
    mat: KeyMaterial,
    inputs_known: bool,
    blocked_by: Option<&str>,
) -> Result<Outcome, ExecError> {
    let step = &plan.steps[i];
    let mut out = Outcome::new(i, Status::Maybe);
    if inputs_known {
        let key = mat.key();
        if let Some(rec) = store.lookup(&key)? {
            match record_usable(store, &rec) {
                Ok(()) => {
                    out.status = Status::Fresh;
                    out.outputs = rec.outputs;
                    out.key = Some(key);
                    out.material = Some(mat);
                    out.metrics = rec.metrics;
                    return Ok(out);
                }
                Err(reason) => {
                    out.status = Status::Dirty;
                    out.reasons.push(reason);
                    out.key = Some(key);
                    out.material = Some(mat);
                    return Ok(out);
                }
            }
        }
        out.key = Some(key);
    }
    let prev = store.latest_for(&plan.name, &step.id)?;
    match prev {
        None => {
            out.status = Status::New;
            out.reasons.push(DirtyReason::NeverRun);
        }
        Some(prev) => {
            let old: Option<KeyMaterial> = serde_json::from_value(prev.material).ok();
            let reasons = match &old {
                Some(old) => fingerprint::diff(old, &mat, inputs_known),
                None => vec![DirtyReason::EngineVersionChanged {
                    old: 0,
                    new: ENGINE_CACHE_VERSION,
                }],
            };
            if !reasons.is_empty() {
                out.status = Status::Dirty;
                out.reasons = reasons;
            } else if inputs_known {
                out.status = Status::Dirty;
                out.reasons.push(DirtyReason::NotInStore);
            } else {
                out.status = Status::Maybe;
                out.reasons.push(DirtyReason::UpstreamWillRun {
                    step: blocked_by.unwrap_or("?").to_string(),
                });
            }
        }
    }
    out.material = Some(mat);
    Ok(out)
}

/// What `lulc plan` shows: every step's status and reason, running nothing.
pub fn plan_status(plan: &Plan, store: &Store) -> Result<Vec<Outcome>, ExecError> {
    let n = plan.steps.len();
    let mut known: Vec<Option<BTreeMap<String, Digest>>> = vec![None; n];
    let mut outcomes = Vec::with_capacity(n);
    for i in 0..n {
        let step = &plan.steps[i];
        let inputs = input_digests(step, &known);
        let blocked_by = if inputs.is_none() {
            plan.dependencies(i)
                .into_iter()
                .find(|d| known[*d].is_none())
                .map(|d| plan.steps[d].id.clone())
        } else {
            None
        };
        let o = decide(plan, store, i, inputs, blocked_by.as_deref())?;
        if o.status == Status::Fresh {
            known[i] = Some(o.outputs.clone());
        }
        outcomes.push(o);
    }
    Ok(outcomes)
}

/// Options of a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub jobs: usize,
    pub keep_going: bool,
    pub argv: Vec<String>,
    /// Directories outside the spec's directory that nodes may read (`lulc run --allow-path`).
    /// A spec cannot grant this itself: paths in a spec are confined to its directory.
    pub allowed_paths: Vec<PathBuf>,
}

/// Progress callbacks (the CLI draws bars or prints lines; tests collect).
pub trait Observer: Sync {
    fn started(&self, _total: usize) {}
    fn step_started(&self, _plan: &Plan, _step: usize) {}
    fn step_finished(&self, _plan: &Plan, _outcome: &Outcome) {}
}

/// An observer that does nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// The result of a run.
pub struct RunReport {
    pub run_id: i64,
    pub outcomes: Vec<Outcome>,
}

impl RunReport {
    pub fn failed(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.status == Status::Failed)
    }

    pub fn count(&self, s: Status) -> usize {
        self.outcomes.iter().filter(|o| o.status == s).count()
    }
}

enum Msg {
    Done(Box<Outcome>),
}

/// Run the plan: every step either comes from the store (`cached`) or runs.
pub fn run(
    plan: &Plan,
    store: &Store,
    opts: &RunOptions,
    obs: &dyn Observer,
) -> Result<RunReport, ExecError> {
    let n = plan.steps.len();
    let run_id = store.begin_run(&RunInfo {
        scope: plan.name.clone(),
        spec_path: plan.spec_path.display().to_string(),
        spec_digest: plan.spec_digest.clone(),
        params: serde_json::json!({ "params": plan.params, "sweep": plan.sweep }),
        argv: opts.argv.clone(),
    })?;
    obs.started(n);
    let mut remaining: Vec<usize> = (0..n).map(|i| plan.dependencies(i).len()).collect();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut known: Vec<Option<BTreeMap<String, Digest>>> = vec![None; n];
    let mut ready: std::collections::VecDeque<usize> =
        (0..n).filter(|&i| remaining[i] == 0).collect();
    let jobs = opts.jobs.max(1);
    let (task_tx, task_rx) =
        crossbeam_channel::unbounded::<(usize, BTreeMap<String, Vec<String>>)>();
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Msg>();
    let mut stop = false;
    let mut in_flight = 0usize;
    let mut finished = 0usize;

    std::thread::scope(|scope| -> Result<(), ExecError> {
        for _ in 0..jobs {
            let task_rx = task_rx.clone();
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                while let Ok((i, inputs)) = task_rx.recv() {
                    let outcome = match execute(plan, store, i, inputs, obs, opts) {
                        Ok(o) => o,
                        Err(e) => {
                            let mut o = Outcome::new(i, Status::Failed);
                            o.error = Some(disk_hint(store, NodeError::new(format!("store: {e}"))));
                            o
                        }
                    };
                    if done_tx.send(Msg::Done(Box::new(outcome))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        while finished < n {
            while !stop && in_flight < jobs * 4 {
                let Some(i) = ready.pop_front() else { break };
                let inputs =
                    input_digests(&plan.steps[i], &known).expect("ready steps have known inputs");
                task_tx.send((i, inputs)).expect("workers alive");
                in_flight += 1;
            }
            if in_flight == 0 {
                // Stopped (fail-fast): everything not dispatched is skipped.
                for (i, slot) in outcomes.iter_mut().enumerate() {
                    if slot.is_none() {
                        let mut o = Outcome::new(i, Status::Skipped);
                        o.reasons.push(DirtyReason::UpstreamFailed {
                            step: "(stopped at first failure)".into(),
                        });
                        obs.step_finished(plan, &o);
                        *slot = Some(o);
                        finished += 1;
                    }
                }
                break;
            }
            let Ok(Msg::Done(o)) = done_rx.recv() else {
                break;
            };
            in_flight -= 1;
            finished += 1;
            let i = o.step;
            obs.step_finished(plan, &o);
            let ok = matches!(o.status, Status::Cached | Status::Ran);
            if ok {
                known[i] = Some(o.outputs.clone());
                for d in plan
                    .dependents(i)
                    .collect::<std::collections::BTreeSet<_>>()
                {
                    remaining[d] -= 1;
                    if remaining[d] == 0 && outcomes[d].is_none() {
                        ready.push_back(d);
                    }
                }
            } else {
                if !opts.keep_going {
                    stop = true;
                }
                // Skip every descendant.
                let mut stack: Vec<usize> = plan.dependents(i).collect();
                while let Some(d) = stack.pop() {
                    if outcomes[d].is_some() {
                        continue;
                    }
                    let mut s = Outcome::new(d, Status::Skipped);
                    s.reasons.push(DirtyReason::UpstreamFailed {
                        step: plan.steps[i].id.clone(),
                    });
                    obs.step_finished(plan, &s);
                    outcomes[d] = Some(s);
                    finished += 1;
                    stack.extend(plan.dependents(d));
                }
            }
            outcomes[i] = Some(*o);
        }
        drop(task_tx);
        Ok(())
    })?;

    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.unwrap_or_else(|| Outcome::new(i, Status::Skipped)))
        .collect();
    let steps: Vec<RunStep> = outcomes
        .iter()
        .map(|o| RunStep {
            step_id: plan.steps[o.step].id.clone(),
            key: o.key.clone(),
            status: o.status.as_str().to_string(),
            reason: match &o.error {
                Some(e) => e.message.clone(),
                None => o.reason(),
            },
            duration_s: o.duration_s,
            outputs: o.outputs.clone(),
            metrics: o.metrics.clone(),
        })
        .collect();
    store.record_run_steps(run_id, &steps)?;
    // A cache hit is a use: `gc --max-size` evicts least recently used first.
    let hits: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.status == Status::Cached)
        .filter_map(|o| o.key.as_deref())
        .collect();
    store.touch_steps(&hits)?;
    let failed = outcomes.iter().any(|o| o.status == Status::Failed);
    store.finish_run(run_id, if failed { "failed" } else { "ok" })?;
    Ok(RunReport { run_id, outcomes })
}

/// Run one step on a worker: cached, or claimed and executed.
fn execute(
    plan: &Plan,
    store: &Store,
    i: usize,
    inputs: BTreeMap<String, Vec<String>>,
    obs: &dyn Observer,
    opts: &RunOptions,
) -> Result<Outcome, ExecError> {
    let step = &plan.steps[i];
    let first = decide(plan, store, i, Some(inputs.clone()), None)?;
    if first.status == Status::Fresh {
        return Ok(cached(first));
    }
    let key = first.key.clone().expect("inputs known, key computed");
    let _claim = store.claim(&key)?;
    // Another process may have computed it while we waited for the claim. Same material (the
    // files a param names are not hashed again): the claimed key is the one recorded.
    let mat = first.material.clone().expect("decide sets the material");
    let mut o = decide_with(plan, store, i, mat, true, None)?;
    if o.status == Status::Fresh {
        return Ok(cached(o));
    }
    obs.step_started(plan, i);
    let started = Instant::now();
    let result = run_node(plan, store, step, &key, &inputs, opts);
    o.duration_s = started.elapsed().as_secs_f64();
    match result {
        Ok((outputs, blobs, warnings, metrics)) => {
            let rec = StepRecord {
                key: key.clone(),
                scope: plan.name.clone(),
                step_id: step.id.clone(),
                kind: step.kind.clone(),
                material: serde_json::to_value(o.material.as_ref().expect("decided"))
                    .expect("material serialises"),
                outputs: outputs.clone(),
                blobs,
                metrics: metrics.clone(),
                duration_s: o.duration_s,
                created_at: 0,
            };
            store.record_step(&rec)?;
            o.status = Status::Ran;
            o.outputs = outputs;
            o.warnings = warnings;
            o.metrics = metrics;
        }
        Err(e) => {
            o.status = Status::Failed;
            o.error = Some(e);
        }
    }
    Ok(o)
}

fn cached(mut o: Outcome) -> Outcome {
    o.status = Status::Cached;
    o.reasons.clear();
    o
}

type NodeResult = (BTreeMap<String, Digest>, Vec<Digest>, Vec<String>, Value);

fn run_node(
    plan: &Plan,
    store: &Store,
    step: &Step,
    key: &str,
    digests: &BTreeMap<String, Vec<String>>,
    opts: &RunOptions,
) -> Result<NodeResult, NodeError> {
    let inputs = load_inputs(plan, store, step, digests)?;
    let tmp_store = tmp_paths(store);
    let mut ctx = RunCtx {
        step_id: step.id.clone(),
        dims: step.dims.clone(),
        seed: seed_from_key(key),
        env: step
            .env
            .iter()
            .map(|n| (n.clone(), std::env::var(n).ok()))
            .collect(),
        tmp: tmp_store,
        outputs: BTreeMap::new(),
        output_ports: step.outputs.clone(),
        warnings: Vec::new(),
        metrics: serde_json::Map::new(),
        spec_dir: plan.spec_dir.clone(),
        allowed_paths: opts.allowed_paths.clone(),
    };
    let node = plan.kind(step).clone();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        node.run(&mut ctx, &step.params, &inputs)
    }));
    let cleanup = |ctx: &RunCtx| {
        for out in ctx.outputs.values() {
            for p in out.files.values() {
                let _ = std::fs::remove_file(p);
            }
        }
    };
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            // Judge free space before the partial files are removed.
            let e = disk_hint(store, e);
            cleanup(&ctx);
            return Err(e);
        }
        Err(panic) => {
            cleanup(&ctx);
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            return Err(NodeError::new(format!("node panicked: {msg}")));
        }
    }
    let mut outputs = BTreeMap::new();
    let mut blobs = Vec::new();
    for port in &step.outputs {
        let Some(out) = ctx.outputs.remove(port.name) else {
            cleanup(&ctx);
            return Err(NodeError::new(format!(
                "node `{}` produced no output `{}`",
                step.kind, port.name
            )));
        };
        let mut files = BTreeMap::new();
        for (name, path) in out.files {
            if !path.exists() {
                return Err(NodeError::new(format!(
                    "node did not write file `{name}` of output `{}`",
                    port.name
                )));
            }
            let d = store
                .put_file(&path)
                .map_err(|e| disk_hint(store, NodeError::new(e.to_string())))?;
            blobs.push(d.clone());
            files.insert(name, d);
        }
        let manifest = Manifest {
            ty: port.ty.to_string(),
            files,
            meta: out.meta,
        };
        let bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
        let d = store
            .put_bytes(&bytes)
            .map_err(|e| disk_hint(store, NodeError::new(e.to_string())))?;
        blobs.push(d.clone());
        outputs.insert(port.name.to_string(), d);
    }
    blobs.sort();
    blobs.dedup();
    Ok((outputs, blobs, ctx.warnings, Value::Object(ctx.metrics)))
}

/// Below this much free space on the store's file system, a failed step is said to have
/// probably met a full disk (GDAL reports a failed write as "IO error writing tag data", without
/// the OS error; tmp files of failed steps are removed right after, so some space comes back).
const LOW_SPACE: u64 = 16 << 20;

/// Adds "the disk is probably full" to a step's error when the store's file system is (nearly)
/// out of space, so the user does not have to guess from a library's I/O message.
fn disk_hint(store: &Store, mut e: NodeError) -> NodeError {
    let Some(free) = free_space(store.root()) else {
        return e;
    };
    if free >= LOW_SPACE {
        return e;
    }
    let hint = format!(
        "the store's file system ({}) has only {} free: the disk is probably full. Free space \
         (`lulc gc`, or elsewhere on that disk) or use `--store` on a larger disk, then run again: \
         finished steps are kept and only the unfinished ones run",
        store.root().display(),
        human_bytes(free)
    );
    e.help = Some(match e.help.take() {
        Some(h) => format!("{h}\n{hint}"),
        None => hint,
    });
    e
}

/// Bytes available to this user on the file system holding `dir`.
fn free_space(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// `1536` -> `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Fresh temp paths inside the store (same filesystem, so finished files are renamed, not copied).
fn tmp_paths(store: &Store) -> Box<dyn Fn(&str) -> PathBuf + Send + Sync> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = store.root().join("tmp");
    Box::new(move |hint| {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        dir.join(format!("out-{}-{n}-{hint}", std::process::id()))
    })
}

fn seed_from_key(key: &str) -> u64 {
    let h = blake3::hash(format!("seed:{key}").as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Read and verify the manifests and files of a step's inputs. A corrupt input blob is never
/// used: it is quarantined and every step referencing it forgotten, so the next run recomputes it.
fn load_inputs(
    plan: &Plan,
    store: &Store,
    step: &Step,
    digests: &BTreeMap<String, Vec<String>>,
) -> Result<Inputs, NodeError> {
    let mut inputs = Inputs::default();
    let mut manifests: HashMap<String, Manifest> = HashMap::new();
    for (port, edges) in &step.inputs {
        let port_digests = digests.get(port).map(Vec::as_slice).unwrap_or(&[]);
        let mut list = Vec::with_capacity(edges.len());
        for (e, d) in edges.iter().zip(port_digests) {
            let up = &plan.steps[e.step];
            let manifest_digest =
                Digest::parse(d).map_err(|err| NodeError::new(err.to_string()))?;
            let manifest = match manifests.get(d) {
                Some(m) => m.clone(),
                None => {
                    let bytes = store.read_bytes(&manifest_digest).map_err(|err| {
                        corrupt_input(store, up, &manifest_digest, &err.to_string())
                    })?;
                    let m: Manifest = serde_json::from_slice(&bytes).map_err(|err| {
                        NodeError::new(format!("manifest of `{}` unreadable: {err}", up.id))
                    })?;
                    manifests.insert(d.clone(), m.clone());
                    m
                }
            };
            let mut files = BTreeMap::new();
            for (name, fd) in &manifest.files {
                if store.check_blob(fd, true) != BlobState::Ok {
                    return Err(corrupt_input(
                        store,
                        up,
                        fd,
                        &format!("file `{name}` ({fd}) is corrupt or missing"),
                    ));
                }
                files.insert(name.clone(), store.blob_path(fd));
            }
            list.push(ArtifactIn {
                step_id: up.id.clone(),
                dims: up.dims.clone(),
                ty: manifest.ty.clone(),
                digest: d.clone(),
                files,
                meta: manifest.meta.clone(),
            });
        }
        inputs.ports.insert(port.clone(), list);
    }
    Ok(inputs)
}

fn corrupt_input(store: &Store, up: &Step, blob: &Digest, what: &str) -> NodeError {
    let _ = store.quarantine(blob);
    NodeError::new(format!("input from `{}` is corrupt in the store: {what}", up.id)).with_help(
        "the corrupt blob was quarantined and the steps using it forgotten; run again to recompute them",
    )
}
