//! lulc-nodes: the node kinds of the LULC method, artifact types, raster I/O (the only user of
//! `gdal`), the CNN and the scene simulator.

pub mod accuracy;
pub mod artifacts;
pub mod classes;
pub mod features;
pub mod kinds;
pub mod learn;
pub mod mgrs;
pub mod plot;
pub mod raster;
pub mod samples;
pub mod season;
pub mod simulate;
pub mod source;
pub mod tiling;
pub mod vector;

use std::sync::Arc;

use lulc_engine::DynNode;

/// Every node kind, sorted by kind name (a test checks the order and uniqueness).
pub fn all() -> Vec<Arc<dyn DynNode>> {
    vec![
        lulc_engine::erase(kinds::acquire::Acquire),
        lulc_engine::erase(kinds::assess::Assess),
        lulc_engine::erase(kinds::change::Change),
        lulc_engine::erase(kinds::composite::Composite),
        lulc_engine::erase(kinds::index::Index),
        lulc_engine::erase(kinds::infer::Infer),
        lulc_engine::erase(kinds::mask::Mask),
        lulc_engine::erase(kinds::migrate::Migrate),
        lulc_engine::erase(kinds::mosaic::Mosaic),
        lulc_engine::erase(kinds::points::Points),
        lulc_engine::erase(kinds::sample::Sample),
        lulc_engine::erase(kinds::samples_csv::SamplesCsv),
        lulc_engine::erase(kinds::simulate::Simulate),
        lulc_engine::erase(kinds::stack::Stack),
        lulc_engine::erase(kinds::train::Train),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_is_sorted_and_unique() {
        let kinds: Vec<&str> = super::all().iter().map(|k| k.kind()).collect();
        let mut sorted = kinds.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(kinds, sorted);
    }
}
