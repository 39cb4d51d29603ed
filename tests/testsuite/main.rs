//! End-to-end suite: one test binary, a module per concern. Tests run the real `lulc` binary
//! on specs they write into temp dirs (test-only node kinds enabled with `LULC_TEST_KINDS=1`).

mod catalogs;
mod data_in;
mod diagnostics;
mod failures;
mod faults;
mod freshness;
mod index_recovery;
mod national;
mod pipelines;
mod reliability;
mod results;
mod robustness;
mod slurm;
mod support;
