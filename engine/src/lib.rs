//! lulc-engine: YAML spec -> typed DAG -> content-hashed steps -> parallel run.
//!
//! The pipeline of a spec through the engine:
//! [`spec`] (raw YAML with spans) -> [`plan`] (lowered once into a typed DAG of steps, all spec
//! errors collected as [`diag`] diagnostics) -> [`fingerprint`] (step keys from content digests,
//! typed dirty reasons) -> [`exec`] (what is fresh, what runs; parallel execution into the
//! `lulc-cache` store).
//!
//! The engine knows no domain node: kinds come in through a [`node::Registry`].

// `SpecError` carries spans, labels and help for miette; it is the error value of lowering and
// is returned, not propagated through hot paths, so its size does not matter.
#![allow(clippy::result_large_err)]

pub mod datasets;
pub mod diag;
pub mod exec;
pub mod executor;
pub mod fingerprint;
mod introspect;
pub mod live;
pub mod node;
pub mod plan;
pub mod slurm;
pub mod spec;
pub mod task;
pub mod testkit;

pub use diag::{SpecError, SpecErrors};
pub use exec::{Observer, Outcome, RunOptions, RunReport, Status, human_bytes};
pub use live::{LiveLog, Progress};
pub use node::{ArtifactIn, DynNode, Inputs, Node, NodeError, Port, Registry, RunCtx, erase};
pub use plan::{DimValue, LowerOptions, Override, Plan, Step};
