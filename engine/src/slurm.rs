//! The Slurm executor: ready steps become job-array tasks; Slurm allocates and runs them, lulc
//! decides what is ready and what is cached.
//!
//! # What runs where
//!
//! The coordinator (`lulc run --executor slurm`, on a login node) plans, claims, writes the
//! index and calls `sbatch`/`squeue`/`scancel`. Each array task runs `lulc exec-step` on a
//! compute node: it reads its tasks from a file, runs them through the store's file layer
//! ([`lulc_cache::Blobs`], never SQLite, never a lock), and writes each step's blobs, record
//! file and result file by temp file + fsync + rename. The store must therefore be on a file
//! system every node mounts at the same path, with atomic rename in one directory (NFS, Lustre,
//! GPFS all provide it).
//!
//! # Layout (inside the store)
//!
//! ```text
//! slurm/<run>/b<N>/job.sh        the batch script of array N
//! slurm/<run>/b<N>/<i>.json      the tasks of its array task i
//! slurm/<run>/b<N>/<i>.log       their stdout and stderr
//! slurm/<run>/results/<key>.json each step's result (the success is the record file)
//! slurm/<run>/coordinator.sh     with `lulc run --detach`: the coordinator's job, and its
//! slurm/<run>/coordinator.log    log (the steps it submits go into its own run's folder)
//! ```
//!
//! # Scheduler load
//!
//! One `sbatch` per resource class per wait (all the steps that became ready together go into
//! one array), one `squeue` per poll interval for the whole run (adaptive: `poll_min_s`, then
//! 1.5x longer after every poll that saw nothing finish, up to `poll_max_s`). Finished steps are
//! noticed from their result files, which costs the scheduler nothing.
//!
//! # Success and failure
//!
//! A step succeeded when its result file says so; its record and blobs are checked by the
//! coordinator before it is recorded. A job's exit state is never trusted on its own: an array
//! task that ended (or an array that left the queue) without writing the results of its steps is
//! given `result_wait_s` (file-system latency), then its unanswered steps are resubmitted
//! (`retries` times, default 2, not counted against anything else; with twice the time after
//! `TIMEOUT`, twice the memory after `OUT_OF_MEMORY`, up to the profile's `max_time_min` and
//! `max_mem_mb`: a step that hits its limit at the cap fails at once; an escalated request is
//! checked with `sbatch --test-only`, and a step whose larger job Slurm refuses fails alone),
//! then reported failed with the job's log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lulc_cache::Blobs;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use crate::executor::Resources;
use crate::executor::{Executor, ExecutorError};
use crate::live::LiveLog;
use crate::node::Registry;
use crate::task::{StepResult, StepTask, TaskOutcome, run_task, write_result};

/// Site settings of the Slurm executor, from a profile file outside the spec (`--profile`,
/// `$LULC_PROFILE`): a spec stays portable, and nothing here enters a step key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmProfile {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Resources of every job; `kinds` overrides them per node kind, a node's `resources:` in
    /// the spec overrides those, and `nodes` overrides a node's (the site has the last word).
    pub resources: Resources,
    /// Per node kind (`train: {cpus: 8, mem_mb: 32000}`).
    pub kinds: BTreeMap<String, Resources>,
    /// Per spec node, by name (`model: {gres: "gpu:1"}`).
    pub nodes: BTreeMap<String, Resources>,
    /// The job of a coordinator sent to the cluster with `lulc run --detach` (defaults: 1 CPU,
    /// 2000 MB, a day; a coordinator whose job ends is taken over by the next `lulc run`).
    pub coordinator: Resources,
    /// Further `sbatch` arguments, passed as they are (site flags such as `--constraint=...`).
    pub sbatch_args: Vec<String>,
    /// Steps one array task runs one after the other (more for many short steps).
    pub steps_per_task: usize,
    /// Largest array, in tasks (below the cluster's `MaxArraySize`).
    pub max_array_size: usize,
    /// Steps in flight (queued or running) at most.
    pub max_queued: usize,
    /// `sbatch` calls per second at most (sites that rate-limit submissions).
    pub max_submit_per_s: f64,
    /// How long a ready step may wait for others to share its array, in seconds (it is
    /// submitted at once when nothing else is in flight, or when a whole array is ready).
    pub batch_wait_s: f64,
    /// Status poll interval: first and longest, in seconds.
    pub poll_min_s: f64,
    pub poll_max_s: f64,
    /// How long a job that left the queue may take to show its results (file-system latency).
    pub result_wait_s: f64,
    /// Resubmissions of a step whose job ended without its result (a node failure, preemption,
    /// a cancelled job).
    pub retries: u32,
    /// Caps of the escalation after `OUT_OF_MEMORY` (memory, MB) and `TIMEOUT` (time,
    /// minutes): a step that hits its limit at the cap fails instead of being resubmitted.
    pub max_mem_mb: Option<u64>,
    pub max_time_min: Option<u64>,
    /// The commands, for sites that wrap them.
    pub sbatch: String,
    pub squeue: String,
    pub scancel: String,
}

impl Default for SlurmProfile {
    fn default() -> SlurmProfile {
        SlurmProfile {
            partition: None,
            account: None,
            qos: None,
            resources: Resources::default(),
            kinds: BTreeMap::new(),
            nodes: BTreeMap::new(),
            coordinator: Resources::default(),
            sbatch_args: Vec::new(),
            steps_per_task: 1,
            max_array_size: 1000,
            max_queued: 1000,
            max_submit_per_s: 5.0,
            batch_wait_s: 2.0,
            poll_min_s: 5.0,
            poll_max_s: 60.0,
            result_wait_s: 60.0,
            retries: 2,
            max_mem_mb: None,
            max_time_min: None,
            sbatch: "sbatch".into(),
            squeue: "squeue".into(),
            scancel: "scancel".into(),
        }
    }
}

impl SlurmProfile {
    /// Reads a profile file (YAML); the error names the file, line and column.
    pub fn load(path: &Path) -> Result<SlurmProfile, ExecutorError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ExecutorError::new(format!(
                "cannot read the Slurm profile `{}`: {e}",
                path.display()
            ))
        })?;
        let profile: SlurmProfile = serde_saphyr::from_str(&text).map_err(|e| {
            ExecutorError::new(format!("Slurm profile `{}`: {e}", path.display())).with_help(
                "fields: partition, account, qos, resources {cpus, mem_mb, time_min, gres, \
                 tmp_mb}, kinds {KIND: resources}, nodes {NODE: resources}, coordinator {resources}, sbatch_args, steps_per_task, max_array_size, \
                 max_queued, max_submit_per_s, batch_wait_s, poll_min_s, poll_max_s, result_wait_s, retries, max_mem_mb, \
                 max_time_min, sbatch, squeue, scancel",
            )
        })?;
        profile
            .check()
            .map_err(|m| ExecutorError::new(format!("Slurm profile `{}`: {m}", path.display())))?;
        Ok(profile)
    }

    fn check(&self) -> Result<(), String> {
        if self.steps_per_task == 0 || self.max_array_size == 0 || self.max_queued == 0 {
            return Err("steps_per_task, max_array_size and max_queued must be at least 1".into());
        }
        if !(self.max_submit_per_s > 0.0 && self.max_submit_per_s.is_finite()) {
            return Err("max_submit_per_s must be above 0".into());
        }
        if !(self.poll_min_s > 0.0 && self.poll_max_s >= self.poll_min_s) {
            return Err("poll_min_s must be above 0 and at most poll_max_s".into());
        }
        Ok(())
    }

    /// The resources of a job running steps of node `node` of `kind`, whose `resources:` in
    /// the spec are `spec`: lulc's defaults, then the profile's `resources`, its `kinds` entry,
    /// the spec's, and its `nodes` entry, each over the one before.
    pub fn resources_for(&self, kind: &str, node: &str, spec: Option<&Resources>) -> Resources {
        let mut r = self.resources.over(&Resources::DEFAULT);
        for layer in [self.kinds.get(kind), spec, self.nodes.get(node)]
            .into_iter()
            .flatten()
        {
            r = layer.over(&r);
        }
        r
    }

    /// The resources of a job running `task`.
    fn resources_of(&self, task: &StepTask) -> Resources {
        self.resources_for(&task.kind, &task.node, task.resources.as_ref())
    }

    /// Every `sbatch` argument of a job of `res` except the array, name and output.
    fn job_args(&self, res: &Resources) -> Vec<String> {
        let mut a = vec!["--no-requeue".to_string()];
        for (flag, v) in [
            ("--partition", &self.partition),
            ("--account", &self.account),
            ("--qos", &self.qos),
        ] {
            if let Some(v) = v {
                a.push(format!("{flag}={v}"));
            }
        }
        a.extend(res.sbatch_args());
        a.extend(self.sbatch_args.iter().cloned());
        a
    }
}

/// One submitted array.
struct Batch {
    name: String,
    job_id: String,
    dir: PathBuf,
    /// Where its steps' result files appear.
    results: PathBuf,
    /// Keys of the steps it runs.
    keys: Vec<String>,
    /// When `squeue` first listed none of its array tasks as queued or running.
    gone_since: Option<Instant>,
    /// Array tasks `squeue` saw end, with their final state and when it was first seen.
    ended: HashMap<usize, (String, Instant)>,
}

impl Batch {
    fn new(
        name: String,
        job_id: String,
        dir: PathBuf,
        results: PathBuf,
        keys: Vec<String>,
    ) -> Batch {
        Batch {
            name,
            job_id,
            dir,
            results,
            keys,
            gone_since: None,
            ended: HashMap::new(),
        }
    }
}

/// A step in flight.
struct Flying {
    task: StepTask,
    batch: usize,
    /// Its array task.
    element: usize,
    attempt: u32,
    /// The resources it was submitted with (escalated after a `TIMEOUT` or `OUT_OF_MEMORY`).
    res: Resources,
}

/// A step waiting to be submitted.
struct Queued {
    task: StepTask,
    attempt: u32,
    /// Resources other than its kind's, after an escalation.
    res: Option<Resources>,
}

/// Ready steps as Slurm job arrays on the cluster whose login node this runs on.
pub struct SlurmExecutor {
    profile: SlurmProfile,
    /// `lulc` (this binary, as the compute nodes see it) and the arguments before `exec-step`.
    worker: Vec<String>,
    store: PathBuf,
    run_dir: PathBuf,
    tag: String,
    /// `lulc-<store>-`: the names of every job of this store start with it.
    prefix: String,
    blobs: Blobs,
    pending: Vec<Queued>,
    /// When the oldest pending step became pending.
    pending_since: Option<Instant>,
    batches: Vec<Batch>,
    flying: HashMap<String, Flying>,
    /// Step key -> batch, for the live jobs of an earlier coordinator ([`SlurmExecutor::adopt`]).
    adoptable: HashMap<String, usize>,
    /// Answers known at submission (steps a worker finished after its coordinator died).
    answered: Vec<StepResult>,
    next_poll: Instant,
    /// When the last `sbatch` was called (`max_submit_per_s`).
    last_submit: Option<Instant>,
    poll: Duration,
    validated: BTreeSet<Resources>,
    counts: BTreeMap<&'static str, u64>,
}

impl SlurmExecutor {
    /// An executor submitting `worker exec-step ...` jobs for the store at `store`.
    pub fn new(profile: SlurmProfile, worker: Vec<String>, blobs: &Blobs) -> SlurmExecutor {
        let store = blobs.root();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let tag = format!("{stamp}-{}", std::process::id());
        let poll = Duration::from_secs_f64(profile.poll_min_s);
        let store_id = blake3::hash(store.as_os_str().as_encoded_bytes()).to_hex();
        SlurmExecutor {
            prefix: format!("lulc-{}-", &store_id[..8]),
            blobs: blobs.clone(),
            adoptable: HashMap::new(),
            answered: Vec::new(),
            pending_since: None,
            worker,
            store: store.to_path_buf(),
            run_dir: store.join("slurm").join(&tag),
            tag,
            pending: Vec::new(),
            batches: Vec::new(),
            flying: HashMap::new(),
            next_poll: Instant::now(),
            last_submit: None,
            poll,
            validated: BTreeSet::new(),
            counts: BTreeMap::new(),
            profile,
        }
    }

    /// Asks Slurm (`sbatch --test-only`) whether it would accept the jobs of these nodes
    /// (`(node, kind, the node's resources in the spec)`), before anything is submitted: a bad
    /// request is an error naming the node and Slurm's words.
    pub fn validate(
        &mut self,
        nodes: &[(&str, &str, Option<&Resources>)],
    ) -> Result<(), ExecutorError> {
        for (node, kind, spec) in nodes {
            let res = self.profile.resources_for(kind, node, *spec);
            if let Some(refusal) = self.test_only(&res)? {
                let args = self.profile.job_args(&res);
                let whence = if spec.is_some() {
                    format!(
                        "the node's `resources:` in the spec, or `nodes: {{{node}: ...}}` in the Slurm profile"
                    )
                } else {
                    format!("the Slurm profile: `resources`, or `kinds: {{{kind}: ...}}`")
                };
                return Err(ExecutorError::new(format!(
                    "Slurm refuses the jobs of node `{node}` (kind `{kind}`: {}): {refusal}",
                    args.join(" "),
                ))
                .with_help(format!(
                    "change the resources in {whence} to what the partition allows \
                     (`scontrol show partition`)"
                )));
            }
        }
        Ok(())
    }

    /// `sbatch --test-only` of a job of `res`: `None` when Slurm would take it (remembered),
    /// else Slurm's words.
    fn test_only(&mut self, res: &Resources) -> Result<Option<String>, ExecutorError> {
        if self.validated.contains(res) {
            return Ok(None);
        }
        let args = self.profile.job_args(res);
        let out = self.command(&self.profile.sbatch.clone(), "test_only", |c| {
            c.arg("--test-only").args(&args).args(["--wrap", "true"]);
        })?;
        if out.status.success() {
            self.validated.insert(res.clone());
            Ok(None)
        } else {
            Ok(Some(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }

    /// Takes over the live jobs of an earlier coordinator on this store (one that was killed,
    /// or lost its ssh session): one `squeue` for this user's jobs, then the task files of those
    /// whose name says they belong to this store. Their steps, when the coordinator submits
    /// them, are waited for instead of submitted again.
    pub fn adopt(&mut self) -> Result<usize, ExecutorError> {
        let out = self.command(&self.profile.squeue.clone(), "squeue", |c| {
            c.args(["--me", "--noheader", "--format=%F|%j|%T"]);
        })?;
        if !out.status.success() {
            return Err(ExecutorError::new(format!(
                "squeue failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .with_help("is the Slurm controller up? `sinfo` says"));
        }
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut f = line.split('|');
            let (Some(id), Some(name)) = (f.next(), f.next()) else {
                continue;
            };
            if name.starts_with(&self.prefix) {
                names.insert(name.to_string(), id.to_string());
            }
        }
        let mut adopted = 0;
        for (name, job_id) in names {
            // `lulc-<store>-<tag>-b<N>`: the tag names the run's folder.
            let Some((tag, b)) = name[self.prefix.len()..].rsplit_once("-b") else {
                continue;
            };
            let dir = self.store.join("slurm").join(tag).join(format!("b{b}"));
            let mut keys = Vec::new();
            let mut results = None;
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let Some(file) = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<TaskFile>(&b).ok())
                else {
                    continue;
                };
                results = Some(file.results);
                keys.extend(file.tasks.into_iter().map(|t| t.key));
            }
            let Some(results) = results else {
                continue;
            };
            let batch = self.batches.len();
            for key in &keys {
                self.adoptable.insert(key.clone(), batch);
            }
            adopted += keys.len();
            self.batches
                .push(Batch::new(name, job_id, dir, results, keys));
        }
        Ok(adopted)
    }

    fn command(
        &mut self,
        program: &str,
        what: &'static str,
        build: impl FnOnce(&mut Command),
    ) -> Result<std::process::Output, ExecutorError> {
        *self.counts.entry(what).or_default() += 1;
        let mut c = Command::new(program);
        build(&mut c);
        c.output().map_err(|e| {
            ExecutorError::new(format!("cannot run `{program}`: {e}"))
                .with_help("run lulc with `--executor slurm` on a machine of the cluster (a login node) where the Slurm commands are on PATH")
        })
    }

    /// Submits everything pending: per resource class, arrays of `steps_per_task` steps per
    /// array task.
    fn flush(&mut self) -> Result<(), ExecutorError> {
        let Some(since) = self.pending_since else {
            return Ok(());
        };
        let full = self.pending.len() >= self.profile.steps_per_task * self.profile.max_array_size;
        let waited = since.elapsed() >= Duration::from_secs_f64(self.profile.batch_wait_s);
        if !(self.flying.is_empty() || full || waited) {
            return Ok(());
        }
        self.pending_since = None;
        let mut classes: BTreeMap<Resources, Vec<(StepTask, u32)>> = BTreeMap::new();
        for q in std::mem::take(&mut self.pending) {
            let res = q.res.unwrap_or_else(|| self.profile.resources_of(&q.task));
            classes.entry(res).or_default().push((q.task, q.attempt));
        }
        for (res, tasks) in classes {
            // Every node's own request was checked before the run; what is new here is an
            // escalated one (after TIMEOUT or OUT_OF_MEMORY). If Slurm refuses it, those steps
            // fail with its words and the run goes on.
            if let Some(refusal) = self.test_only(&res)? {
                let args = self.profile.job_args(&res).join(" ");
                for (task, _) in &tasks {
                    self.answered.push(StepResult::failed(
                        task,
                        format!(
                            "the step ran out of time or memory, and Slurm refuses the larger \
                             job it needs ({args}): {refusal}"
                        ),
                        Some(
                            "give the node more from the start (`resources:` in the spec, or \
                             the profile), or set `max_time_min` / `max_mem_mb` in the profile \
                             to what the partition allows"
                                .into(),
                        ),
                    ));
                }
                continue;
            }
            let per_array = self.profile.steps_per_task * self.profile.max_array_size;
            for group in tasks.chunks(per_array) {
                self.submit_array(&res, group)?;
            }
        }
        Ok(())
    }

    fn submit_array(
        &mut self,
        res: &Resources,
        group: &[(StepTask, u32)],
    ) -> Result<(), ExecutorError> {
        let n = self.batches.len();
        let dir = self.run_dir.join(format!("b{n}"));
        let io = |what: &str, p: &Path, e: std::io::Error| {
            ExecutorError::new(format!("cannot write {what} `{}`: {e}", p.display()))
        };
        std::fs::create_dir_all(&dir).map_err(|e| io("the job folder", &dir, e))?;
        std::fs::create_dir_all(self.results_dir())
            .map_err(|e| io("the results folder", &self.results_dir(), e))?;
        let chunks: Vec<&[(StepTask, u32)]> = group.chunks(self.profile.steps_per_task).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let tasks: Vec<&StepTask> = chunk.iter().map(|(t, _)| t).collect();
            let path = dir.join(format!("{i}.json"));
            let bytes = serde_json::to_vec(&TaskFile {
                store: self.store.clone(),
                results: self.results_dir(),
                tasks: tasks.into_iter().cloned().collect(),
            })
            .expect("tasks serialise");
            std::fs::write(&path, bytes).map_err(|e| io("the task file", &path, e))?;
        }
        let script = dir.join("job.sh");
        let mut text = String::from(
            "#!/bin/sh\n# lulc: one array task runs the steps of <task id>.json\nexec",
        );
        for w in &self.worker {
            text.push(' ');
            text.push_str(&shell_quote(w));
        }
        text.push_str(&format!(
            " exec-step {}/\"$SLURM_ARRAY_TASK_ID\".json\n",
            shell_quote(&dir.display().to_string())
        ));
        std::fs::write(&script, text).map_err(|e| io("the batch script", &script, e))?;
        let name = format!("{}{}-b{n}", self.prefix, self.tag);
        let args = self.profile.job_args(res);
        let gap = Duration::from_secs_f64(1.0 / self.profile.max_submit_per_s);
        if let Some(wait) = self.last_submit.and_then(|t| gap.checked_sub(t.elapsed())) {
            std::thread::sleep(wait);
        }
        self.last_submit = Some(Instant::now());
        let out = self.command(&self.profile.sbatch.clone(), "sbatch", |c| {
            c.arg("--parsable")
                .arg(format!("--array=0-{}", chunks.len() - 1))
                .arg(format!("--job-name={name}"))
                .arg(format!("--output={}/%a.log", dir.display()))
                .args(&args)
                .arg(&script);
        })?;
        if !out.status.success() {
            return Err(ExecutorError::new(format!(
                "sbatch refused the array `{name}` ({} steps): {}",
                group.len(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // `--parsable` prints `jobid[;cluster]`.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let job_id = stdout.trim().split(';').next().unwrap_or("").to_string();
        *self.counts.entry("jobs").or_default() += chunks.len() as u64;
        let mut keys = Vec::with_capacity(group.len());
        for (element, chunk) in chunks.iter().enumerate() {
            for (task, attempt) in chunk.iter() {
                keys.push(task.key.clone());
                self.flying.insert(
                    task.key.clone(),
                    Flying {
                        task: task.clone(),
                        batch: n,
                        element,
                        attempt: *attempt,
                        res: res.clone(),
                    },
                );
            }
        }
        let results = self.results_dir();
        self.batches
            .push(Batch::new(name, job_id, dir, results, keys));
        Ok(())
    }

    fn results_dir(&self) -> PathBuf {
        self.run_dir.join("results")
    }

    /// Results that appeared for steps in flight.
    fn collect(&mut self) -> Vec<StepResult> {
        let mut out = Vec::new();
        let path_of = |f: &Flying| {
            self.batches[f.batch]
                .results
                .join(format!("{}.json", f.task.key))
        };
        let done: Vec<(String, PathBuf)> = self
            .flying
            .iter()
            .map(|(k, f)| (k.clone(), path_of(f)))
            .filter(|(_, p)| p.is_file())
            .collect();
        for (key, path) in done {
            let flying = self.flying.remove(&key).expect("in flight");
            let result = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<StepResult>(&b).ok());
            out.push(match result {
                Some(mut r) => {
                    r.step = flying.task.step;
                    r
                }
                None => StepResult::failed(
                    &flying.task,
                    format!("the result file `{}` is unreadable", path.display()),
                    None,
                ),
            });
        }
        out
    }

    /// One `squeue` for every array still thought alive; arrays it no longer lists are gone.
    fn poll_queue(&mut self) -> Result<(), ExecutorError> {
        let live: Vec<usize> = (0..self.batches.len())
            .filter(|&b| self.batches[b].gone_since.is_none())
            .filter(|&b| {
                self.batches[b]
                    .keys
                    .iter()
                    .any(|k| self.flying.contains_key(k))
            })
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = live
            .iter()
            .map(|&b| self.batches[b].name.as_str())
            .collect();
        let names = names.join(",");
        // One line per array task, ended ones too (listed for `MinJobAge` after they end).
        let out = self.command(&self.profile.squeue.clone(), "squeue", |c| {
            c.args([
                "--noheader",
                "--array",
                "--states=all",
                "--format=%F|%K|%j|%T",
            ])
            .arg(format!("--name={names}"));
        })?;
        if !out.status.success() {
            // A slow or restarting controller: try again at the next poll, later.
            self.poll = (self.poll * 2).min(Duration::from_secs_f64(self.profile.poll_max_s));
            return Ok(());
        }
        let now = Instant::now();
        let mut alive: BTreeSet<String> = BTreeSet::new();
        let by_name: HashMap<String, usize> = live
            .iter()
            .map(|&b| (self.batches[b].name.clone(), b))
            .collect();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split('|').collect();
            let [_, index, name, state] = f[..] else {
                continue;
            };
            let Some(&b) = by_name.get(name) else {
                continue;
            };
            if LIVE_STATES.contains(&state) {
                alive.insert(name.to_string());
            } else if let Ok(i) = index.parse::<usize>() {
                self.batches[b]
                    .ended
                    .entry(i)
                    .or_insert_with(|| (state.to_string(), now));
            }
        }
        for b in live {
            if !alive.contains(&self.batches[b].name) {
                self.batches[b].gone_since = Some(now);
            }
        }
        Ok(())
    }

    /// Steps whose array left the queue longer than `result_wait_s` ago without answering:
    /// resubmitted, or failed once their retries are spent.
    fn vanished(&mut self) -> Vec<StepResult> {
        let wait = Duration::from_secs_f64(self.profile.result_wait_s);
        let mut out = Vec::new();
        // Each step in flight whose array task ended (or whose whole array left the queue)
        // longer than `result_wait_s` ago, with the final state when Slurm still lists it.
        let lost: Vec<(String, String)> = self
            .flying
            .iter()
            .filter_map(|(k, f)| {
                let batch = &self.batches[f.batch];
                let (state, since) = match batch.ended.get(&f.element) {
                    Some((state, since)) => (state.clone(), *since),
                    None => ("ended".to_string(), batch.gone_since?),
                };
                (since.elapsed() >= wait).then(|| (k.clone(), state))
            })
            .collect();
        for (key, state) in lost {
            let Some(f) = self.flying.remove(&key) else {
                continue;
            };
            let escalated = escalate(&f.res, &state, &self.profile);
            if let (true, Ok(res)) = (f.attempt < self.profile.retries, &escalated) {
                let res = res.clone();
                *self.counts.entry("retries").or_default() += 1;
                if res != f.res {
                    *self.counts.entry("escalated").or_default() += 1;
                }
                self.pending.push(Queued {
                    task: f.task,
                    attempt: f.attempt + 1,
                    res: Some(res),
                });
                self.pending_since.get_or_insert_with(Instant::now);
            } else {
                let batch = &self.batches[f.batch];
                let job = if f.element == usize::MAX {
                    batch.job_id.clone()
                } else {
                    format!("{}_{}", batch.job_id, f.element)
                };
                if let Err(cap) = escalated {
                    out.push(StepResult::failed(
                        &f.task,
                        format!(
                            "the Slurm job {job} (`{}`) ended ({state}) without finishing this \
                             step, at the cap of the profile's `{cap}`",
                            batch.name
                        ),
                        Some(format!(
                            "raise `{cap}` in the Slurm profile if the partition allows more; \
                             its logs are in {} (`lulc logs`)",
                            batch.dir.display(),
                        )),
                    ));
                    continue;
                }
                out.push(StepResult::failed(
                    &f.task,
                    format!(
                        "the Slurm job {job} (`{}`) ended ({state}) without finishing this \
                         step, {} times",
                        batch.name,
                        f.attempt + 1
                    ),
                    Some(format!(
                        "its logs are in {} (`lulc logs`); `sacct -j {job}` says why Slurm \
                         ended it",
                        batch.dir.display(),
                    )),
                ));
            }
        }
        out
    }
}

/// The resources to resubmit with after a job ended in `state`: twice the time after
/// `TIMEOUT`, twice the memory after `OUT_OF_MEMORY`, each at most the profile's cap; the same
/// after any other end. `Err(the cap's name)` when the step already ran at the cap.
fn escalate(res: &Resources, state: &str, profile: &SlurmProfile) -> Result<Resources, String> {
    let twice = |v: Option<u64>, cap: Option<u64>, name: &str| match (v, cap) {
        (Some(v), Some(cap)) if v >= cap => Err(name.to_string()),
        (Some(v), Some(cap)) => Ok(Some((v * 2).min(cap))),
        (v, None) => Ok(v.map(|v| v * 2)),
        (None, Some(_)) => Ok(None),
    };
    let mut r = res.clone();
    match state {
        "TIMEOUT" => r.time_min = twice(r.time_min, profile.max_time_min, "max_time_min")?,
        "OUT_OF_MEMORY" => r.mem_mb = twice(r.mem_mb, profile.max_mem_mb, "max_mem_mb")?,
        _ => {}
    }
    Ok(r)
}

/// Job states of a job that is still queued or running.
const LIVE_STATES: [&str; 9] = [
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
];

/// How often result files are looked for (a `stat` per step in flight; no scheduler call).
const RESULT_CHECK: Duration = Duration::from_millis(200);

impl Executor for SlurmExecutor {
    fn capacity(&self) -> usize {
        self.profile.max_queued
    }

    fn submit(&mut self, task: StepTask) -> Result<(), ExecutorError> {
        if let Some(rec) = self.blobs.finished_record(&task.key) {
            // A worker finished it, and its coordinator died before recording it.
            *self.counts.entry("taken").or_default() += 1;
            self.answered.push(StepResult {
                step: task.step,
                key: task.key.clone(),
                duration_s: rec.duration_s,
                outcome: TaskOutcome::Done {
                    outputs: rec.outputs,
                    blobs: rec.blobs,
                    warnings: Vec::new(),
                    metrics: rec.metrics,
                },
            });
            return Ok(());
        }
        if let Some(batch) = self
            .adoptable
            .get(&task.key)
            .copied()
            .filter(|&b| self.batches[b].gone_since.is_none())
        {
            // Still queued or running in a job of an earlier coordinator: wait for that one.
            *self.counts.entry("adopted").or_default() += 1;
            self.adoptable.remove(&task.key);
            let res = self.profile.resources_of(&task);
            self.flying.insert(
                task.key.clone(),
                Flying {
                    task,
                    batch,
                    // Unknown for a job of an earlier coordinator: found by key in its end.
                    element: usize::MAX,
                    attempt: 0,
                    res,
                },
            );
            return Ok(());
        }
        self.pending.push(Queued {
            task,
            attempt: 0,
            res: None,
        });
        self.pending_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> Result<Vec<StepResult>, ExecutorError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.flush()?;
            let mut out = std::mem::take(&mut self.answered);
            out.extend(self.collect());
            if Instant::now() >= self.next_poll {
                self.poll_queue()?;
                // Results written just before the array left the queue.
                out.extend(self.collect());
                out.extend(self.vanished());
                self.poll = if out.is_empty() {
                    (self.poll.mul_f64(1.5)).min(Duration::from_secs_f64(self.profile.poll_max_s))
                } else {
                    Duration::from_secs_f64(self.profile.poll_min_s)
                };
                self.next_poll = Instant::now() + self.poll;
            }
            if !out.is_empty() {
                return Ok(out);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(out);
            }
            std::thread::sleep(RESULT_CHECK.min(deadline - now));
        }
    }

    fn cancel(&mut self) {
        let names: Vec<String> = self
            .batches
            .iter()
            .filter(|b| {
                b.gone_since.is_none() && b.keys.iter().any(|k| self.flying.contains_key(k))
            })
            .map(|b| b.name.clone())
            .collect();
        if names.is_empty() {
            return;
        }
        let names = names.join(",");
        let scancel = self.profile.scancel.clone();
        let _ = self.command(&scancel, "scancel", |c| {
            c.arg(format!("--name={names}"));
        });
        // Until they have left the queue (a job being killed still holds its node), at most
        // a minute.
        let squeue = self.profile.squeue.clone();
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(500));
            let Ok(out) = self.command(&squeue, "squeue", |c| {
                c.args(["--noheader", "--format=%F"])
                    .arg(format!("--name={names}"));
            }) else {
                break;
            };
            if out.status.success() && out.stdout.iter().all(u8::is_ascii_whitespace) {
                break;
            }
        }
    }

    fn stats(&self) -> Value {
        json!({
            "executor": "slurm",
            "sbatch": self.counts.get("sbatch").copied().unwrap_or(0),
            "sbatch_test_only": self.counts.get("test_only").copied().unwrap_or(0),
            "squeue": self.counts.get("squeue").copied().unwrap_or(0),
            "scancel": self.counts.get("scancel").copied().unwrap_or(0),
            "jobs": self.counts.get("jobs").copied().unwrap_or(0),
            "retries": self.counts.get("retries").copied().unwrap_or(0),
            "adopted": self.counts.get("adopted").copied().unwrap_or(0),
            "escalated": self.counts.get("escalated").copied().unwrap_or(0),
            "taken": self.counts.get("taken").copied().unwrap_or(0),
            "dir": self.run_dir.display().to_string(),
        })
    }
}

/// What one array task runs.
#[derive(Serialize, Deserialize)]
struct TaskFile {
    store: PathBuf,
    results: PathBuf,
    tasks: Vec<StepTask>,
}

/// `lulc exec-step FILE`: runs the tasks of one array task, writing each step's blobs, record
/// file and result file. Returns how many failed (the exit status says so; the coordinator
/// reads the result files, never the exit status).
pub fn exec_task_file(path: &Path, registry: &Registry) -> Result<usize, ExecutorError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ExecutorError::new(format!(
            "cannot read the task file `{}`: {e}",
            path.display()
        ))
    })?;
    let file: TaskFile = serde_json::from_slice(&bytes).map_err(|e| {
        ExecutorError::new(format!(
            "the task file `{}` is unreadable: {e}",
            path.display()
        ))
        .with_help("it was written by another lulc build: run the same build everywhere")
    })?;
    let blobs = Blobs::open_existing(&file.store).map_err(|e| ExecutorError::new(e.to_string()))?;
    // Live lines go to the job's log; an unreadable interval is said there once.
    let every = LiveLog::every_from_env().unwrap_or_else(|e| {
        eprintln!("warning: {e}");
        crate::live::PROGRESS_EVERY
    });
    let live = LiveLog::stderr(every);
    let mut failed = 0;
    for task in &file.tasks {
        // The header `lulc logs` finds a step's part of the log by.
        eprintln!("{LOG_HEADER}{} {}", task.key, task.step_id);
        let result = run_task(task, &blobs, registry, Some(&live));
        match &result.outcome {
            TaskOutcome::Done { warnings, .. } => {
                for w in warnings {
                    eprintln!("warning: {w}");
                }
                eprintln!("step `{}` done in {:.1} s", task.step_id, result.duration_s);
            }
            TaskOutcome::Failed { message, help, .. } => {
                failed += 1;
                eprintln!("step `{}` failed: {message}", task.step_id);
                if let Some(help) = help {
                    eprintln!("help: {help}");
                }
            }
        }
        let dest = file.results.join(format!("{}.json", task.key));
        if let Err(e) = write_result(task, &result, &blobs, &dest) {
            eprintln!("lulc exec-step: step `{}`: {e}", task.step_id);
            failed += 1;
        }
    }
    Ok(failed)
}

/// Starts the line `lulc exec-step` writes to its log before each step (then the key and id).
const LOG_HEADER: &str = "== lulc exec-step: ";

/// The newest Slurm log of step `key` in the store at `store`: the log file and the part of it
/// written while the step ran. `None` when no job of this store ran it.
pub fn step_log(store: &Path, key: &str) -> Option<(PathBuf, String)> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(store.join("slurm"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    // Run folders are named `<unix ms>-<pid>`: newest first.
    runs.sort_by(|a, b| b.cmp(a));
    for run in runs {
        let mut batches: Vec<PathBuf> = std::fs::read_dir(&run)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('b'))
            })
            .collect();
        batches.sort_by_key(|p| std::cmp::Reverse(p.file_name().map(|n| n.to_owned())));
        for batch in batches {
            for entry in std::fs::read_dir(&batch).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                if !text.contains(key) {
                    continue;
                }
                let log = path.with_extension("log");
                let whole = std::fs::read_to_string(&log).unwrap_or_default();
                let start = format!("{LOG_HEADER}{key}");
                let part = match whole.find(&start) {
                    Some(at) => {
                        let rest = &whole[at..];
                        let end = rest[1..].find(LOG_HEADER).map_or(rest.len(), |e| e + 1);
                        rest[..end].to_string()
                    }
                    None => whole,
                };
                return Some((log, part));
            }
        }
    }
    None
}

impl SlurmExecutor {
    /// Sends a coordinator to the cluster (`lulc run --detach`): one job that runs `argv` (a
    /// `lulc run ... --executor slurm` without `--detach`) in `cwd`, its log beside its script
    /// in this run's folder. Returns the job id and the log's path.
    pub fn submit_coordinator(
        &mut self,
        argv: &[String],
        cwd: &Path,
    ) -> Result<(String, PathBuf), ExecutorError> {
        let io = |what: &str, path: &Path, e: std::io::Error| {
            ExecutorError::new(format!("cannot write {what} `{}`: {e}", path.display()))
        };
        std::fs::create_dir_all(&self.run_dir)
            .map_err(|e| io("the run folder", &self.run_dir, e))?;
        let script = self.run_dir.join("coordinator.sh");
        let log = self.run_dir.join("coordinator.log");
        let mut text =
            String::from("#!/bin/sh\n# lulc: a coordinator, sent by `lulc run --detach`\nexec");
        for a in argv {
            text.push(' ');
            text.push_str(&shell_quote(a));
        }
        text.push('\n');
        std::fs::write(&script, text).map_err(|e| io("the batch script", &script, e))?;
        let res = self.profile.coordinator.over(&Resources {
            cpus: Some(1),
            mem_mb: Some(2000),
            time_min: Some(24 * 60),
            gres: None,
            tmp_mb: None,
        });
        let args = self.profile.job_args(&res);
        let name = format!("lulc-coordinator-{}", &self.prefix["lulc-".len()..]);
        let out = self.command(&self.profile.sbatch.clone(), "sbatch", |c| {
            c.arg("--parsable")
                .arg(format!("--job-name={}", name.trim_end_matches('-')))
                .arg(format!("--output={}", log.display()))
                .arg(format!("--chdir={}", cwd.display()))
                .args(&args)
                .arg(&script);
        })?;
        if !out.status.success() {
            return Err(ExecutorError::new(format!(
                "sbatch refused the coordinator's job ({}): {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .with_help(
                "set `coordinator: {...}` in the Slurm profile to what the partition allows",
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let job = stdout.trim().split(';').next().unwrap_or("").to_string();
        Ok((job, log))
    }
}

/// `'...'` for `sh`, with inner quotes escaped.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_fall_back_from_kind_to_profile_to_lulc() {
        let profile: SlurmProfile = serde_saphyr::from_str(
            "partition: batch\nresources: {mem_mb: 8000}\nkinds:\n  train: {cpus: 8, time_min: 600}\n",
        )
        .unwrap();
        let train = profile.resources_for("train", "model", None);
        assert_eq!(train.cpus, Some(8));
        assert_eq!(train.mem_mb, Some(8000));
        assert_eq!(train.time_min, Some(600));
        let other = profile.resources_for("index", "ndvi", None);
        assert_eq!(
            (other.cpus, other.mem_mb, other.time_min),
            (Some(1), Some(8000), Some(120))
        );
        let args = profile.job_args(&train);
        assert_eq!(
            args,
            [
                "--no-requeue",
                "--partition=batch",
                "--cpus-per-task=8",
                "--mem=8000M",
                "--time=600"
            ]
        );
    }

    #[test]
    fn a_node_s_resources_in_the_spec_override_its_kind_s_and_the_profile_s_nodes_override_them() {
        let profile: SlurmProfile = serde_saphyr::from_str(
            "resources: {mem_mb: 8000}\nkinds:\n  train: {cpus: 8, time_min: 600}\n\
             nodes:\n  model: {time_min: 30}\n",
        )
        .unwrap();
        let spec = Resources {
            cpus: Some(4),
            gres: Some("gpu:1".into()),
            time_min: Some(90),
            ..Resources::default()
        };
        // The spec's cpus and gres over the kind's; the profile's node entry over the spec's
        // time; the profile's memory where nobody else says.
        let r = profile.resources_for("train", "model", Some(&spec));
        assert_eq!(
            (r.cpus, r.mem_mb, r.time_min, r.gres.as_deref()),
            (Some(4), Some(8000), Some(30), Some("gpu:1"))
        );
        // Another node of the same kind with the same spec resources keeps the spec's time.
        let r = profile.resources_for("train", "model_2019", Some(&spec));
        assert_eq!(r.time_min, Some(90));
    }

    #[test]
    fn escalation_doubles_up_to_the_cap_and_stops_there() {
        let mut profile = SlurmProfile::default();
        let res = Resources {
            mem_mb: Some(3000),
            time_min: Some(50),
            ..Resources::DEFAULT
        };
        let r = escalate(&res, "TIMEOUT", &profile).unwrap();
        assert_eq!((r.time_min, r.mem_mb), (Some(100), Some(3000)));
        let r = escalate(&res, "OUT_OF_MEMORY", &profile).unwrap();
        assert_eq!((r.time_min, r.mem_mb), (Some(50), Some(6000)));
        assert_eq!(escalate(&res, "NODE_FAIL", &profile).unwrap(), res);
        profile.max_mem_mb = Some(4000);
        profile.max_time_min = Some(50);
        let r = escalate(&res, "OUT_OF_MEMORY", &profile).unwrap();
        assert_eq!(r.mem_mb, Some(4000), "twice, but not above the cap");
        assert_eq!(
            escalate(&r, "OUT_OF_MEMORY", &profile).unwrap_err(),
            "max_mem_mb"
        );
        assert_eq!(
            escalate(&res, "TIMEOUT", &profile).unwrap_err(),
            "max_time_min"
        );
        // A preempted or vanished job is resubmitted as it was, caps or not.
        assert_eq!(escalate(&res, "PREEMPTED", &profile).unwrap(), res);
    }

    #[test]
    fn a_bad_profile_names_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.yaml");
        std::fs::write(&path, "partition: batch\nmem: 4000\n").unwrap();
        let e = SlurmProfile::load(&path).unwrap_err();
        assert!(e.message.contains("cluster.yaml"), "{}", e.message);
        assert!(e.message.contains("mem"), "{}", e.message);
        std::fs::write(&path, "steps_per_task: 0\n").unwrap();
        let e = SlurmProfile::load(&path).unwrap_err();
        assert!(e.message.contains("at least 1"), "{}", e.message);
        std::fs::write(&path, "max_submit_per_s: 0\n").unwrap();
        let e = SlurmProfile::load(&path).unwrap_err();
        assert!(e.message.contains("max_submit_per_s"), "{}", e.message);
    }

    #[test]
    fn shell_quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
