//! Node kinds: one file each, opening with a `//!` doc (what it does, ports, params, a YAML
//! snippet), then params, the implementation and its unit tests.

pub mod acquire;
pub mod assess;
pub mod change;
pub mod composite;
pub mod index;
pub mod infer;
pub mod mask;
pub mod migrate;
pub mod points;
pub mod sample;
pub mod samples_csv;
pub mod simulate;
pub mod stack;
pub mod train;
