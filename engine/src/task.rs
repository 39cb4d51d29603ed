//! One step as a unit of work that any process seeing the store can run.
//!
//! The coordinator ([`crate::exec`]) decides that a step must run and builds its [`StepTask`]:
//! everything the step needs, serialisable, with no reference to the plan, the index or the
//! coordinator's environment (the declared env values are captured into the task, so the
//! values the node sees are the ones in its key). [`run_task`] loads the inputs through the
//! store's file layer ([`Blobs`]: input blobs are re-hashed), runs the node, stores its output
//! files and manifests, and answers a [`StepResult`]. It never opens the index: recording the
//! step is the coordinator's job, from the result (in this process) or from the record file a
//! remote worker wrote ([`write_result`]).

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lulc_cache::{BlobState, Blobs, Digest, StepRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::executor::Resources;
use crate::fingerprint::KeyMaterial;
use crate::live::LiveLog;
use crate::node::{ArtifactIn, Inputs, NodeError, Registry, RunCtx};
use crate::plan::DimValue;

/// The manifest of one output artifact, stored as a blob; its digest is the output's digest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "type")]
    pub ty: String,
    pub files: BTreeMap<String, Digest>,
    pub meta: Value,
}

/// One upstream artifact a task reads: the step that made it and its manifest's digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskInput {
    pub step_id: String,
    pub dims: BTreeMap<String, DimValue>,
    pub manifest: Digest,
}

/// Everything needed to run one step, anywhere the store is mounted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepTask {
    /// Index of the step in the coordinator's plan (its bookkeeping only).
    pub step: usize,
    pub key: String,
    /// The spec's name (the record's scope).
    pub scope: String,
    pub step_id: String,
    pub kind: String,
    /// The kind's version the key was made with; a worker with another version refuses.
    pub version: u32,
    pub params: Value,
    pub dims: BTreeMap<String, DimValue>,
    /// Declared environment variables, as the coordinator saw them (they are in the key).
    pub env: BTreeMap<String, Option<String>>,
    pub inputs: BTreeMap<String, Vec<TaskInput>>,
    pub spec_dir: PathBuf,
    pub allowed_paths: Vec<PathBuf>,
    /// The key material, recorded with the step.
    pub material: KeyMaterial,
    /// The spec node's name (`map` of `map[year=2020]`).
    #[serde(default)]
    pub node: String,
    /// What the node's `resources:` in the spec asks of a cluster job (not in the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// What running a task produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum TaskOutcome {
    /// The node ran; its outputs and every blob they reference are in the store.
    Done {
        outputs: BTreeMap<String, Digest>,
        blobs: Vec<Digest>,
        warnings: Vec<String>,
        metrics: Value,
    },
    /// The node (or loading its inputs, or storing its outputs) failed.
    Failed {
        message: String,
        help: Option<String>,
        /// An input blob found corrupt: the coordinator quarantines it and forgets its steps.
        corrupt_input: Option<Digest>,
    },
}

/// The answer to a [`StepTask`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub step: usize,
    pub key: String,
    pub duration_s: f64,
    pub outcome: TaskOutcome,
}

impl StepResult {
    /// A failure of the task as a whole (not of its node): a worker that could not start it,
    /// a job that vanished.
    pub fn failed(task: &StepTask, message: impl Into<String>, help: Option<String>) -> StepResult {
        StepResult {
            step: task.step,
            key: task.key.clone(),
            duration_s: 0.0,
            outcome: TaskOutcome::Failed {
                message: message.into(),
                help,
                corrupt_input: None,
            },
        }
    }
}

impl StepTask {
    /// The step record of this task's successful result (what the index and the record file
    /// hold).
    pub fn record(&self, result: &StepResult) -> Option<StepRecord> {
        let TaskOutcome::Done {
            outputs,
            blobs,
            metrics,
            ..
        } = &result.outcome
        else {
            return None;
        };
        Some(StepRecord {
            key: self.key.clone(),
            scope: self.scope.clone(),
            step_id: self.step_id.clone(),
            kind: self.kind.clone(),
            material: serde_json::to_value(&self.material).expect("material serialises"),
            outputs: outputs.clone(),
            blobs: blobs.clone(),
            metrics: metrics.clone(),
            duration_s: result.duration_s,
            created_at: 0,
        })
    }
}

/// Runs `task`: loads its inputs (re-hashed), runs its node, stores its outputs. Never touches
/// the index; a failure is an answer, not an error. The node's live lines (notes on what it is
/// about to cost, progress) go to `live`.
pub fn run_task(
    task: &StepTask,
    blobs: &Blobs,
    registry: &Registry,
    live: Option<&LiveLog>,
) -> StepResult {
    let started = Instant::now();
    let outcome = match run_node(task, blobs, registry, live) {
        Ok((outputs, blobs, warnings, metrics)) => TaskOutcome::Done {
            outputs,
            blobs,
            warnings,
            metrics,
        },
        Err(Failure { error, corrupt }) => TaskOutcome::Failed {
            message: error.message,
            help: error.help,
            corrupt_input: corrupt,
        },
    };
    StepResult {
        step: task.step,
        key: task.key.clone(),
        duration_s: started.elapsed().as_secs_f64(),
        outcome,
    }
}

/// For a worker in another process: after [`run_task`], the step's record file (on success)
/// and then the result file at `dest`, both atomically. The record file is what makes the
/// step finished for the store, whatever happens to the process or the coordinator after.
pub fn write_result(
    task: &StepTask,
    result: &StepResult,
    blobs: &Blobs,
    dest: &Path,
) -> lulc_cache::Result<()> {
    if let Some(rec) = task.record(result) {
        blobs.write_step_record(&rec)?;
    }
    let bytes = serde_json::to_vec(result).expect("results serialise");
    blobs.write_file_atomic(dest, &bytes)
}

struct Failure {
    error: NodeError,
    corrupt: Option<Digest>,
}

impl From<NodeError> for Failure {
    fn from(error: NodeError) -> Failure {
        Failure {
            error,
            corrupt: None,
        }
    }
}

type NodeResult = (BTreeMap<String, Digest>, Vec<Digest>, Vec<String>, Value);

fn run_node(
    task: &StepTask,
    blobs: &Blobs,
    registry: &Registry,
    live: Option<&LiveLog>,
) -> Result<NodeResult, Failure> {
    let Some(node) = registry.get(&task.kind) else {
        return Err(
            NodeError::new(format!("this lulc has no node kind `{}`", task.kind))
                .with_help("run the same lulc build on the coordinator and on every worker")
                .into(),
        );
    };
    if node.version() != task.version {
        return Err(NodeError::new(format!(
            "this lulc has version {} of node `{}`, the run expects version {}",
            node.version(),
            task.kind,
            task.version
        ))
        .with_help("run the same lulc build on the coordinator and on every worker")
        .into());
    }
    let inputs = load_inputs(task, blobs)?;
    let mut ctx = RunCtx {
        step_id: task.step_id.clone(),
        dims: task.dims.clone(),
        seed: seed_from_key(&task.key),
        env: task.env.clone(),
        tmp: tmp_paths(blobs),
        outputs: BTreeMap::new(),
        output_ports: node.outputs(),
        warnings: Vec::new(),
        metrics: serde_json::Map::new(),
        spec_dir: task.spec_dir.clone(),
        allowed_paths: task.allowed_paths.clone(),
        live: live.cloned(),
    };
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        node.run(&mut ctx, &task.params, &inputs)
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
            let e = disk_hint(blobs.root(), e);
            cleanup(&ctx);
            return Err(e.into());
        }
        Err(panic) => {
            cleanup(&ctx);
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            return Err(NodeError::new(format!("node panicked: {msg}")).into());
        }
    }
    let store_err =
        |e: lulc_cache::CacheError| disk_hint(blobs.root(), NodeError::new(e.to_string()));
    let mut outputs = BTreeMap::new();
    let mut all = Vec::new();
    for port in node.outputs() {
        let Some(out) = ctx.outputs.remove(port.name) else {
            cleanup(&ctx);
            return Err(NodeError::new(format!(
                "node `{}` produced no output `{}`",
                task.kind, port.name
            ))
            .into());
        };
        let mut files = BTreeMap::new();
        for (name, path) in out.files {
            if !path.exists() {
                return Err(NodeError::new(format!(
                    "node did not write file `{name}` of output `{}`",
                    port.name
                ))
                .into());
            }
            let (d, _) = blobs.store_file(&path).map_err(store_err)?;
            all.push(d.clone());
            files.insert(name, d);
        }
        let manifest = Manifest {
            ty: port.ty.to_string(),
            files,
            meta: out.meta,
        };
        let bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
        let (d, _) = blobs.store_bytes(&bytes).map_err(store_err)?;
        all.push(d.clone());
        outputs.insert(port.name.to_string(), d);
    }
    all.sort();
    all.dedup();
    Ok((outputs, all, ctx.warnings, Value::Object(ctx.metrics)))
}

/// Below this much free space on the store's file system, a failed step is said to have
/// probably met a full disk (GDAL reports a failed write as "IO error writing tag data", without
/// the OS error; tmp files of failed steps are removed right after, so some space comes back).
const LOW_SPACE: u64 = 16 << 20;

/// Adds "the disk is probably full" to a step's error when the store's file system is (nearly)
/// out of space, so the user does not have to guess from a library's I/O message.
pub(crate) fn disk_hint(root: &Path, mut e: NodeError) -> NodeError {
    let Some(free) = free_space(root) else {
        return e;
    };
    if free >= LOW_SPACE {
        return e;
    }
    let hint = format!(
        "the store's file system ({}) has only {} free: the disk is probably full. Free space \
         (`lulc gc`, or elsewhere on that disk) or use `--store` on a larger disk, then run again: \
         finished steps are kept and only the unfinished ones run",
        root.display(),
        crate::exec::human_bytes(free)
    );
    e.help = Some(match e.help.take() {
        Some(h) => format!("{h}\n{hint}"),
        None => hint,
    });
    e
}

/// Bytes available to this user on the file system holding `dir`.
pub(crate) fn free_space(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Fresh temp paths inside the store (same filesystem, so finished files are renamed, not copied).
fn tmp_paths(blobs: &Blobs) -> Box<dyn Fn(&str) -> PathBuf + Send + Sync> {
    let blobs = blobs.clone();
    Box::new(move |hint| blobs.tmp_path(&format!("out-{hint}")))
}

/// The seed a step's node gets: from its key, so it is the same wherever and whenever it runs.
fn seed_from_key(key: &str) -> u64 {
    let h = blake3::hash(format!("seed:{key}").as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Read and verify the manifests and files of a task's inputs. A corrupt input blob is never
/// used: the failure names it, and the coordinator quarantines it and forgets every step
/// referencing it, so the next run recomputes it.
fn load_inputs(task: &StepTask, blobs: &Blobs) -> Result<Inputs, Failure> {
    let mut inputs = Inputs::default();
    let mut manifests: HashMap<&Digest, Manifest> = HashMap::new();
    let corrupt = |up: &TaskInput, blob: &Digest, what: &str| Failure {
        error: NodeError::new(format!(
            "input from `{}` is corrupt in the store: {what}",
            up.step_id
        ))
        .with_help(
            "the corrupt blob was quarantined and the steps using it forgotten; run again to \
             recompute them",
        ),
        corrupt: Some(blob.clone()),
    };
    for (port, ups) in &task.inputs {
        let mut list = Vec::with_capacity(ups.len());
        for up in ups {
            let manifest = match manifests.get(&up.manifest) {
                Some(m) => m.clone(),
                None => {
                    let bytes = blobs
                        .read_bytes(&up.manifest)
                        .map_err(|err| corrupt(up, &up.manifest, &err.to_string()))?;
                    let m: Manifest = serde_json::from_slice(&bytes).map_err(|err| {
                        NodeError::new(format!("manifest of `{}` unreadable: {err}", up.step_id))
                    })?;
                    manifests.insert(&up.manifest, m.clone());
                    m
                }
            };
            let mut files = BTreeMap::new();
            for (name, fd) in &manifest.files {
                if blobs.rehash(fd).0 != BlobState::Ok {
                    return Err(corrupt(
                        up,
                        fd,
                        &format!("file `{name}` ({fd}) is corrupt or missing"),
                    ));
                }
                files.insert(name.clone(), blobs.blob_path(fd));
            }
            list.push(ArtifactIn {
                step_id: up.step_id.clone(),
                dims: up.dims.clone(),
                ty: manifest.ty.clone(),
                digest: up.manifest.to_string(),
                files,
                meta: manifest.meta.clone(),
            });
        }
        inputs.ports.insert(port.clone(), list);
    }
    Ok(inputs)
}
