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

/// A raster error as a step failure, its message unchanged (it names the file and band).
pub(crate) fn raster_err(e: crate::raster::RasterError) -> lulc_engine::NodeError {
    lulc_engine::NodeError::new(e.to_string())
}
