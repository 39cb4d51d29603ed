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

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lulc_cache::{BlobState, Claim, Digest, RunInfo, RunStep, StepRecord, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::executor::{Executor, ExecutorError, LocalThreads};
use crate::fingerprint::{self, DirtyReason, ENGINE_CACHE_VERSION, KeyMaterial};
use crate::live::LiveLog;
use crate::node::NodeError;
use crate::plan::{Plan, Step};
use crate::task::{StepResult, StepTask, TaskInput, TaskOutcome, disk_hint};

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
    #[error(transparent)]
    #[diagnostic(transparent)]
    Executor(#[from] ExecutorError),
}

pub use crate::task::Manifest;

fn material(
    step: &Step,
    inputs: Option<&BTreeMap<String, Vec<String>>>,
    spec_dir: &Path,
) -> KeyMaterial {
    KeyMaterial {
        engine: ENGINE_CACHE_VERSION,
        kind: step.kind.to_string(),
        version: step.version,
        params: Value::clone(&step.params),
        dims: crate::plan::dims_map(&step.dims),
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
            list.push(outs.get(e.port)?.to_string());
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
    /// Set (by a Ctrl-C handler) to stop the run: nothing more starts, the executor cancels
    /// what is in flight, and the run is recorded as `interrupted`.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Where running steps' live lines go (see [`crate::live`]); `None`: nowhere.
    pub live: Option<LiveLog>,
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
    /// The executor's counters (`Executor::stats`).
    pub executor: Value,
    /// Stopped by [`RunOptions::interrupt`].
    pub interrupted: bool,
}

impl RunReport {
    pub fn failed(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.status == Status::Failed)
    }

    pub fn count(&self, s: Status) -> usize {
        self.outcomes.iter().filter(|o| o.status == s).count()
    }
}

/// How long the coordinator waits before trying again the claim of a step that another process
/// is computing.
const CLAIM_RETRY: Duration = Duration::from_millis(100);

/// Run the plan on `opts.jobs` worker threads of this process: every step either comes from
/// the store (`cached`) or runs.
pub fn run(
    plan: &Plan,
    store: &Store,
    opts: &RunOptions,
    obs: &dyn Observer,
) -> Result<RunReport, ExecError> {
    std::thread::scope(|scope| {
        let mut threads = LocalThreads::new(
            scope,
            opts.jobs,
            store.blobs(),
            &plan.registry,
            opts.live.clone(),
        );
        run_with(plan, store, opts, obs, &mut threads)
    })
}

/// Run the plan, computing the steps that must run on `executor`. The coordinator (this
/// function, on the calling thread) alone decides what is cached and what is ready, holds the
/// claims of the steps in flight and writes the index; the executor only runs tasks.
pub fn run_with(
    plan: &Plan,
    store: &Store,
    opts: &RunOptions,
    obs: &dyn Observer,
    executor: &mut dyn Executor,
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
    let mut c = Coordinator {
        plan,
        store,
        opts,
        obs,
        remaining: (0..n).map(|i| plan.dependencies(i).len()).collect(),
        outcomes: vec![None; n],
        known: vec![None; n],
        ready: (0..n)
            .filter(|&i| plan.dependencies(i).is_empty())
            .collect(),
        flight: HashMap::new(),
        finished: 0,
        stop: false,
        interrupted: false,
        run_id,
        journal: Vec::new(),
        journal_error: None,
        journal_flushed: Instant::now(),
    };
    let driven = c.drive(executor);
    if !c.flight.is_empty() {
        executor.cancel();
    }
    let why = match &driven {
        Ok(()) if c.interrupted => "(interrupted)".to_string(),
        Ok(()) => "(stopped at first failure)".to_string(),
        Err(e) => format!("(the executor failed: {e})"),
    };
    let interrupted = c.interrupted;
    let mut journal = std::mem::take(&mut c.journal);
    let journal_error = c.journal_error.take();
    let outcomes: Vec<Outcome> = c
        .outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            o.unwrap_or_else(|| {
                let mut o = Outcome::new(i, Status::Skipped);
                o.reasons
                    .push(DirtyReason::UpstreamFailed { step: why.clone() });
                obs.step_finished(plan, &o);
                journal.push(run_step(plan, &o));
                o
            })
        })
        .collect();
    if let Some(e) = journal_error {
        return Err(e.into());
    }
    store.record_run_steps(run_id, &journal)?;
    // A cache hit is a use: `gc --max-size` evicts least recently used first.
    let hits: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.status == Status::Cached)
        .filter_map(|o| o.key.as_deref())
        .collect();
    store.touch_steps(&hits)?;
    let failed = driven.is_err() || outcomes.iter().any(|o| o.status == Status::Failed);
    let status = match (interrupted, failed) {
        (true, _) => "interrupted",
        (false, true) => "failed",
        (false, false) => "ok",
    };
    store.finish_run(run_id, status)?;
    driven?;
    Ok(RunReport {
        run_id,
        outcomes,
        executor: executor.stats(),
        interrupted,
    })
}

/// What the coordinator found for a ready step.
enum Prepared {
    /// Decided without running: cached, or failed before it could start.
    Done(Box<Outcome>),
    /// Must run: the task, the claim held while it runs, the outcome so far.
    Run(Box<StepTask>, Claim, Box<Outcome>),
    /// Another process holds its claim (it is computing it): try again shortly.
    Busy,
}

struct Coordinator<'a> {
    plan: &'a Plan,
    store: &'a Store,
    opts: &'a RunOptions,
    obs: &'a dyn Observer,
    /// Per step: dependencies not finished yet.
    remaining: Vec<usize>,
    outcomes: Vec<Option<Outcome>>,
    /// Output digests of finished steps.
    known: Vec<Option<BTreeMap<String, Digest>>>,
    ready: VecDeque<usize>,
    /// Steps submitted and not answered: their claim, outcome so far and task.
    flight: HashMap<usize, (Claim, Outcome, StepTask)>,
    finished: usize,
    /// Fail-fast after a failure: nothing more is started.
    stop: bool,
    /// Stopped by the interrupt flag.
    interrupted: bool,
    run_id: i64,
    /// Finished steps not yet written to the run's history. A step that ran is written at
    /// once (with those before it), so a killed run's work belongs to it and `gc` keeps it;
    /// cached and skipped ones in batches.
    journal: Vec<RunStep>,
    journal_error: Option<lulc_cache::CacheError>,
    /// When the journal was last written: cached steps wait at most [`JOURNAL_EVERY`].
    journal_flushed: Instant,
}

/// Cached or skipped steps written to the run history per batch, or after
/// [`JOURNAL_EVERY`]. Large, because each batch re-writes every index page its random keys
/// land on: the no-op run of a 20,000-step plan is mostly this write.
const JOURNAL_BATCH: usize = 8192;
const JOURNAL_EVERY: Duration = Duration::from_secs(2);

/// A finished step as the run's history keeps it.
fn run_step(plan: &Plan, o: &Outcome) -> RunStep {
    RunStep {
        step_id: plan.steps[o.step].id.clone(),
        key: o.key.clone(),
        status: o.status.as_str().to_string(),
        reason: cap_reason(match &o.error {
            Some(e) => e.message.clone(),
            None => o.reason(),
        }),
        duration_s: o.duration_s,
        outputs: o.outputs.clone(),
        metrics: o.metrics.clone(),
    }
}

/// The run history keeps at most this many bytes of a step's reason or error.
const MAX_REASON: usize = 4096;

/// A reason cut to [`MAX_REASON`] bytes (at a character boundary): a node that quotes a huge
/// input in its error must not bloat the index (SQLite refuses strings over 1 GB).
fn cap_reason(mut reason: String) -> String {
    if reason.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let total = reason.len();
        reason.truncate(cut);
        reason.push_str(&format!("... ({total} bytes in all)"));
    }
    reason
}

impl Coordinator<'_> {
    fn drive(&mut self, executor: &mut dyn Executor) -> Result<(), ExecutorError> {
        let n = self.plan.steps.len();
        let mut deferred: Vec<usize> = Vec::new();
        let interrupt = self.opts.interrupt.clone();
        let asked_to_stop = || interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
        while self.finished < n {
            if asked_to_stop() {
                self.stop = true;
                self.interrupted = true;
                break;
            }
            while !self.stop && self.flight.len() < executor.capacity() {
                let Some(i) = self.ready.pop_front() else {
                    break;
                };
                match self.prepare(i) {
                    Prepared::Done(o) => self.complete(*o),
                    Prepared::Run(task, claim, o) => {
                        self.obs.step_started(self.plan, i);
                        executor.submit((*task).clone())?;
                        self.flight.insert(i, (claim, *o, *task));
                    }
                    Prepared::Busy => deferred.push(i),
                }
            }
            if self.flight.is_empty() {
                if deferred.is_empty() {
                    if self.stop || self.ready.is_empty() {
                        break;
                    }
                    continue;
                }
                std::thread::sleep(CLAIM_RETRY);
            } else {
                let timeout = if !deferred.is_empty() {
                    CLAIM_RETRY
                } else if interrupt.is_some() {
                    Duration::from_secs(1)
                } else {
                    Duration::from_secs(600)
                };
                for result in executor.wait(timeout)? {
                    self.finish(result);
                }
            }
            // Steps another process was computing: try their claims again, first.
            for i in deferred.drain(..).rev() {
                self.ready.push_front(i);
            }
        }
        Ok(())
    }

    /// Cached, or claimed and turned into a task.
    fn prepare(&self, i: usize) -> Prepared {
        let (plan, store) = (self.plan, self.store);
        let failed = |e: ExecError| {
            let mut o = Outcome::new(i, Status::Failed);
            o.error = Some(disk_hint(
                store.root(),
                NodeError::new(format!("store: {e}")),
            ));
            Prepared::Done(Box::new(o))
        };
        let inputs =
            input_digests(&plan.steps[i], &self.known).expect("ready steps have known inputs");
        let first = match decide(plan, store, i, Some(inputs.clone()), None) {
            Ok(o) => o,
            Err(e) => return failed(e),
        };
        if first.status == Status::Fresh {
            return Prepared::Done(Box::new(cached(first)));
        }
        let key = first.key.clone().expect("inputs known, key computed");
        let claim = match store.try_claim(&key) {
            Ok(Some(c)) => c,
            Ok(None) => return Prepared::Busy,
            Err(e) => return failed(e.into()),
        };
        // Another process may have computed it before we got the claim. Same material (the
        // files a param names are not hashed again): the claimed key is the one recorded.
        let mat = first.material.clone().expect("decide sets the material");
        let o = match decide_with(plan, store, i, mat, true, None) {
            Ok(o) => o,
            Err(e) => return failed(e),
        };
        if o.status == Status::Fresh {
            return Prepared::Done(Box::new(cached(o)));
        }
        match self.task(i, &key, &inputs, o.material.clone().expect("decided")) {
            Ok(task) => Prepared::Run(Box::new(task), claim, Box::new(o)),
            Err(e) => {
                let mut o = o;
                o.status = Status::Failed;
                o.error = Some(e);
                Prepared::Done(Box::new(o))
            }
        }
    }

    fn task(
        &self,
        i: usize,
        key: &str,
        digests: &BTreeMap<String, Vec<String>>,
        material: KeyMaterial,
    ) -> Result<StepTask, NodeError> {
        let step = &self.plan.steps[i];
        let mut inputs = BTreeMap::new();
        for (port, edges) in &step.inputs {
            let port_digests = digests.get(port).map(Vec::as_slice).unwrap_or(&[]);
            let mut list = Vec::with_capacity(edges.len());
            for (e, d) in edges.iter().zip(port_digests) {
                let up = &self.plan.steps[e.step];
                list.push(TaskInput {
                    step_id: up.id.clone(),
                    dims: crate::plan::dims_map(&up.dims),
                    manifest: Digest::parse(d).map_err(|err| NodeError::new(err.to_string()))?,
                });
            }
            inputs.insert(port.clone(), list);
        }
        Ok(StepTask {
            step: i,
            key: key.to_string(),
            scope: self.plan.name.clone(),
            step_id: step.id.clone(),
            kind: step.kind.to_string(),
            version: step.version,
            params: Value::clone(&step.params),
            dims: crate::plan::dims_map(&step.dims),
            env: material.env.clone(),
            inputs,
            // Absolute: a worker on another host starts in another directory.
            spec_dir: absolute(&self.plan.spec_dir),
            allowed_paths: self
                .opts
                .allowed_paths
                .iter()
                .map(|p| absolute(p))
                .collect(),
            material,
            node: step.node.clone(),
            resources: step.resources.as_deref().cloned(),
        })
    }

    /// A task's result: record the step (blobs were written by the worker), release its claim.
    fn finish(&mut self, result: StepResult) {
        // An answer for a step not in flight (a duplicate) changes nothing.
        let Some((claim, mut o, task)) = self.flight.remove(&result.step) else {
            return;
        };
        o.duration_s = result.duration_s;
        let record = task.record(&result);
        match result.outcome {
            TaskOutcome::Done { .. } if let Some(changed) = self.changed_files(&task) => {
                // Its files are not what the key says: the result may be of the new bytes or
                // of a mix, so it is recorded under no key (its blobs go at the next `gc`).
                o.status = Status::Failed;
                o.error = Some(
                    NodeError::new(format!(
                        "the file `{}` (param `{changed}`) changed while the step ran; its \
                         result is not kept",
                        self.plan.steps[task.step].files[&changed]
                    ))
                    .with_help("run again once nothing writes to the file"),
                );
            }
            TaskOutcome::Done {
                outputs,
                blobs,
                warnings,
                metrics,
            } => {
                let rec = record.expect("a done task has a record");
                match self
                    .store
                    .note_blobs(&blobs)
                    .and_then(|()| self.store.record_step(&rec))
                {
                    Ok(()) => {
                        o.status = Status::Ran;
                        o.outputs = outputs;
                        o.warnings = warnings;
                        o.metrics = metrics;
                    }
                    Err(e) => {
                        o.status = Status::Failed;
                        o.error = Some(disk_hint(
                            self.store.root(),
                            NodeError::new(format!("store: {e}")),
                        ));
                    }
                }
            }
            TaskOutcome::Failed {
                message,
                help,
                corrupt_input,
            } => {
                if let Some(d) = corrupt_input {
                    let _ = self.store.quarantine(&d);
                }
                o.status = Status::Failed;
                o.error = Some(NodeError { message, help });
            }
        }
        drop(claim);
        self.complete(o);
    }

    /// The first param whose file no longer has the digest in the task's key (hashed again
    /// now the step has run, so a file rewritten while the node read it is never recorded under
    /// its old content's key).
    fn changed_files(&self, task: &StepTask) -> Option<String> {
        let step = &self.plan.steps[task.step];
        step.files.iter().find_map(|(param, path)| {
            let now = fingerprint::file_digest(&self.plan.spec_dir.join(path));
            (task.material.files.get(param) != Some(&now)).then(|| param.clone())
        })
    }

    /// A step is finished: its readers may become ready, or are skipped if it failed.
    fn complete(&mut self, o: Outcome) {
        let (plan, i) = (self.plan, o.step);
        self.finished += 1;
        self.obs.step_finished(plan, &o);
        if matches!(o.status, Status::Cached | Status::Ran) {
            self.known[i] = Some(o.outputs.clone());
            for d in plan.dependents(i).collect::<BTreeSet<_>>() {
                self.remaining[d] -= 1;
                if self.remaining[d] == 0 && self.outcomes[d].is_none() {
                    self.ready.push_back(d);
                }
            }
        } else {
            if !self.opts.keep_going {
                self.stop = true;
            }
            let mut stack: Vec<usize> = plan.dependents(i).collect();
            while let Some(d) = stack.pop() {
                if self.outcomes[d].is_some() {
                    continue;
                }
                let mut s = Outcome::new(d, Status::Skipped);
                s.reasons.push(DirtyReason::UpstreamFailed {
                    step: plan.steps[i].id.clone(),
                });
                self.obs.step_finished(plan, &s);
                self.journal.push(run_step(plan, &s));
                self.outcomes[d] = Some(s);
                self.finished += 1;
                stack.extend(plan.dependents(d));
            }
        }
        self.journal.push(run_step(plan, &o));
        if o.status == Status::Ran
            || self.journal.len() >= JOURNAL_BATCH
            || self.journal_flushed.elapsed() >= JOURNAL_EVERY
        {
            self.flush_journal();
        }
        self.outcomes[i] = Some(o);
    }

    fn flush_journal(&mut self) {
        if self.journal_error.is_some() || self.journal.is_empty() {
            return;
        }
        self.journal_flushed = Instant::now();
        match self.store.record_run_steps(self.run_id, &self.journal) {
            Ok(()) => self.journal.clear(),
            Err(e) => self.journal_error = Some(e),
        }
    }
}

/// `p` made absolute against the current directory (`""`, a spec in the current directory, too).
fn absolute(p: &Path) -> PathBuf {
    let p = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn cached(mut o: Outcome) -> Outcome {
    o.status = Status::Cached;
    o.reasons.clear();
    o
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Registry;
    use crate::plan::{LowerOptions, lower};
    use crate::task::run_task;

    const SPEC: &str = r#"
name: forked
params:
  years: 2018..2020
nodes:
  raw:
    kind: emit
    for_each: { year: years }
    params: { value: "v${year}" }
  all: { kind: combine, inputs: { parts: raw } }
  bad: { kind: combine, inputs: { parts: all }, params: { fail: true } }
  after_bad: { kind: combine, inputs: { parts: bad } }
  good: { kind: combine, inputs: { parts: all }, params: { op: sum } }
"#;

    fn plan(dir: &Path, spec: &str) -> Plan {
        let registry = Registry::new(crate::testkit::kinds());
        let opts = LowerOptions {
            registry: &registry,
            overrides: &[],
        };
        lower(&dir.join("spec.yaml"), spec.to_string(), &opts).expect("spec lowers")
    }

    fn opts() -> RunOptions {
        RunOptions {
            jobs: 2,
            keep_going: true,
            argv: vec![],
            allowed_paths: vec![],
            interrupt: None,
            live: None,
        }
    }

    /// Runs tasks in this process, answering them in reverse order of submission, all at once,
    /// and remembers how many tasks each `wait` found queued.
    struct Reversed<'a> {
        blobs: &'a lulc_cache::Blobs,
        registry: &'a Registry,
        queued: Vec<StepTask>,
        batches: Vec<Vec<String>>,
        /// Step ids answered as lost jobs instead of being run.
        lose: Vec<&'static str>,
        /// Fail the submission of this step id.
        refuse: Option<&'static str>,
    }

    impl<'a> Reversed<'a> {
        fn new(store: &'a Store, plan: &'a Plan) -> Reversed<'a> {
            Reversed {
                blobs: store.blobs(),
                registry: &plan.registry,
                queued: vec![],
                batches: vec![],
                lose: vec![],
                refuse: None,
            }
        }
    }

    impl Executor for Reversed<'_> {
        fn capacity(&self) -> usize {
            100
        }
        fn submit(&mut self, task: StepTask) -> Result<(), ExecutorError> {
            if self.refuse == Some(task.step_id.as_str()) {
                return Err(ExecutorError::new("the cluster is closed"));
            }
            self.queued.push(task);
            Ok(())
        }
        fn wait(&mut self, _timeout: Duration) -> Result<Vec<StepResult>, ExecutorError> {
            let tasks = std::mem::take(&mut self.queued);
            self.batches
                .push(tasks.iter().map(|t| t.step_id.clone()).collect());
            Ok(tasks
                .iter()
                .rev()
                .map(|t| {
                    if self.lose.contains(&t.step_id.as_str()) {
                        StepResult::failed(t, "the job vanished", None)
                    } else {
                        run_task(t, self.blobs, self.registry, None)
                    }
                })
                .collect())
        }
    }

    fn outputs(report: &RunReport) -> Vec<(Status, BTreeMap<String, Digest>)> {
        report
            .outcomes
            .iter()
            .map(|o| (o.status, o.outputs.clone()))
            .collect()
    }

    #[test]
    fn another_executor_gives_the_outputs_of_local_threads_and_gets_ready_steps_together() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path(), SPEC);
        let local_store = Store::open(dir.path().join("local")).unwrap();
        let local = run(&plan, &local_store, &opts(), &Quiet).unwrap();

        let store = Store::open(dir.path().join("other")).unwrap();
        let mut ex = Reversed::new(&store, &plan);
        let report = run_with(&plan, &store, &opts(), &Quiet, &mut ex).unwrap();
        assert_eq!(outputs(&report), outputs(&local));
        // The three years were ready at once and reached the executor before its first wait.
        assert_eq!(
            ex.batches[0],
            ["raw[year=2018]", "raw[year=2019]", "raw[year=2020]"]
        );
        assert_eq!(ex.batches[1], ["all"]);
        let status = |id: &str| report.outcomes[plan.by_id[id]].status;
        assert_eq!(status("bad"), Status::Failed);
        assert_eq!(status("after_bad"), Status::Skipped);
        assert_eq!(status("good"), Status::Ran);
        // Recorded by the coordinator: a second run finds everything but the failure cached.
        let again = run_with(&plan, &store, &opts(), &Quiet, &mut ex).unwrap();
        assert_eq!(again.count(Status::Cached), 5);
        assert_eq!(again.count(Status::Ran), 0);
    }

    #[test]
    fn a_lost_task_fails_its_step_only_and_a_refused_submission_ends_the_run_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path(), SPEC);
        let store = Store::open(dir.path().join("store")).unwrap();
        let mut ex = Reversed::new(&store, &plan);
        ex.lose.push("raw[year=2019]");
        let report = run_with(&plan, &store, &opts(), &Quiet, &mut ex).unwrap();
        let o = &report.outcomes[plan.by_id["raw[year=2019]"]];
        assert_eq!(o.status, Status::Failed);
        assert_eq!(o.error.as_ref().unwrap().message, "the job vanished");
        assert_eq!(report.count(Status::Ran), 2);
        assert_eq!(report.count(Status::Skipped), 4);
        // Its claim was released: the next run computes it.
        ex.lose.clear();
        let again = run_with(&plan, &store, &opts(), &Quiet, &mut ex).unwrap();
        assert_eq!(
            again.outcomes[plan.by_id["raw[year=2019]"]].status,
            Status::Ran
        );

        let store = Store::open(dir.path().join("refused")).unwrap();
        let mut ex = Reversed::new(&store, &plan);
        ex.refuse = Some("all");
        let err = run_with(&plan, &store, &opts(), &Quiet, &mut ex)
            .err()
            .unwrap();
        assert!(err.to_string().contains("the cluster is closed"), "{err}");
        let runs = store.runs(10).unwrap();
        assert_eq!(runs[0].status, "failed");
        // What finished before the refusal is recorded and reused.
        let steps = store.run_steps(runs[0].id).unwrap();
        assert_eq!(steps.iter().filter(|s| s.status == "ran").count(), 3);
        assert!(
            steps
                .iter()
                .any(|s| s.status == "skipped" && s.reason.contains("the executor failed"))
        );
    }
}
