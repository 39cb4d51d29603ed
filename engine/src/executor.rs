//! Where tasks run: the seam between the coordinator, which decides what is ready and what is
//! cached, and the processes that compute steps.
//!
//! An [`Executor`] takes [`StepTask`]s and gives back [`StepResult`]s, in any order. It never
//! decides what runs and never writes the index. [`LocalThreads`] runs tasks on worker threads
//! of this process; `crate::slurm` submits them as Slurm jobs.

use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use lulc_cache::Blobs;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::live::LiveLog;
use crate::node::Registry;
use crate::task::{StepResult, StepTask, run_task};

/// What one step asks of a cluster job (an executor that allocates, such as Slurm's): from a
/// node's `resources:` in the spec and the executor's profile. Unset fields fall back to the
/// profile's defaults, then to lulc's ([`Resources::DEFAULT`]). Never part of a step's key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub cpus: Option<u32>,
    /// Memory in MB (`--mem`).
    pub mem_mb: Option<u64>,
    /// Wall time in minutes (`--time`).
    pub time_min: Option<u64>,
    /// Generic resources (`--gres`, e.g. `gpu:1`).
    pub gres: Option<String>,
    /// Local scratch in MB (`--tmp`).
    pub tmp_mb: Option<u64>,
}

impl Resources {
    /// lulc's defaults: 1 CPU, 4 GB, 2 hours.
    pub const DEFAULT: Resources = Resources {
        cpus: Some(1),
        mem_mb: Some(4096),
        time_min: Some(120),
        gres: None,
        tmp_mb: None,
    };

    /// Field names, as a spec's `resources:` and a profile write them.
    pub const FIELDS: [&'static str; 5] = ["cpus", "mem_mb", "time_min", "gres", "tmp_mb"];

    /// `self`'s fields where set, else `base`'s.
    pub fn over(&self, base: &Resources) -> Resources {
        Resources {
            cpus: self.cpus.or(base.cpus),
            mem_mb: self.mem_mb.or(base.mem_mb),
            time_min: self.time_min.or(base.time_min),
            gres: self.gres.clone().or_else(|| base.gres.clone()),
            tmp_mb: self.tmp_mb.or(base.tmp_mb),
        }
    }

    pub fn sbatch_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(c) = self.cpus {
            a.push(format!("--cpus-per-task={c}"));
        }
        if let Some(m) = self.mem_mb {
            a.push(format!("--mem={m}M"));
        }
        if let Some(t) = self.time_min {
            a.push(format!("--time={t}"));
        }
        if let Some(g) = &self.gres {
            a.push(format!("--gres={g}"));
        }
        if let Some(t) = self.tmp_mb {
            a.push(format!("--tmp={t}M"));
        }
        a
    }
}

/// A failure of the executor itself (not of a step): Slurm refusing a job, a lost worker pool.
#[derive(Clone, Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
#[diagnostic(code(run::executor))]
pub struct ExecutorError {
    pub message: String,
    #[help]
    pub help: Option<String>,
}

impl ExecutorError {
    pub fn new(message: impl Into<String>) -> ExecutorError {
        ExecutorError {
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> ExecutorError {
        self.help = Some(help.into());
        self
    }
}

/// Runs tasks somewhere and reports their results.
pub trait Executor {
    /// How many tasks it wants in flight at once (submitted and not yet answered).
    fn capacity(&self) -> usize;

    /// Queues a task. It may only start at the next [`Executor::wait`] (which lets an
    /// executor pack the tasks that became ready together into one submission).
    fn submit(&mut self, task: StepTask) -> Result<(), ExecutorError>;

    /// Results of finished tasks, waiting up to `timeout` for the first one. Empty when none
    /// finished in time. A task that cannot be run any more (its job vanished and its retries
    /// are spent) is answered with a failed result, never dropped.
    fn wait(&mut self, timeout: Duration) -> Result<Vec<StepResult>, ExecutorError>;

    /// The run stops with tasks still in flight: cancel them (best effort).
    fn cancel(&mut self) {}

    /// Counters for the run's report (`--json`'s `executor`).
    fn stats(&self) -> Value {
        Value::Null
    }
}

/// Tasks on `jobs` worker threads of this process.
pub struct LocalThreads {
    jobs: usize,
    tasks: Option<Sender<StepTask>>,
    done: Receiver<StepResult>,
}

impl LocalThreads {
    /// Starts `jobs` worker threads in `scope`; they end when the executor is dropped. Where
    /// the system refuses more threads (a process or memory limit), runs with those it got.
    pub fn new<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        jobs: usize,
        blobs: &'env Blobs,
        registry: &'env Registry,
        live: Option<LiveLog>,
    ) -> LocalThreads {
        let jobs = jobs.max(1);
        let (task_tx, task_rx) = crossbeam_channel::unbounded::<StepTask>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<StepResult>();
        let mut started = 0;
        for _ in 0..jobs {
            let task_rx = task_rx.clone();
            let done_tx = done_tx.clone();
            let live = live.clone();
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                while let Ok(task) = task_rx.recv() {
                    if done_tx
                        .send(run_task(&task, blobs, registry, live.as_ref()))
                        .is_err()
                    {
                        break;
                    }
                }
            });
            match spawned {
                Ok(_) => started += 1,
                Err(_) if started > 0 => break,
                Err(e) => panic!("cannot start a worker thread: {e}"),
            }
        }
        LocalThreads {
            jobs: started,
            tasks: Some(task_tx),
            done: done_rx,
        }
    }
}

impl Executor for LocalThreads {
    fn capacity(&self) -> usize {
        self.jobs
    }

    fn submit(&mut self, task: StepTask) -> Result<(), ExecutorError> {
        let tasks = self.tasks.as_ref().expect("open until dropped");
        tasks
            .send(task)
            .map_err(|_| ExecutorError::new("the worker threads have stopped"))
    }

    fn wait(&mut self, timeout: Duration) -> Result<Vec<StepResult>, ExecutorError> {
        let first = match self.done.recv_timeout(timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => return Ok(Vec::new()),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(ExecutorError::new("the worker threads have stopped"));
            }
        };
        let mut out = vec![first];
        out.extend(self.done.try_iter());
        Ok(out)
    }
}

impl Drop for LocalThreads {
    fn drop(&mut self) {
        // Closing the task channel ends the workers once they finish what they hold.
        self.tasks.take();
    }
}
