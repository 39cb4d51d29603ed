//! Arbitrary bytes as a spec file, through what `lulc validate` does: UTF-8 check, YAML parse,
//! shape, lowering against every registered kind (the real ones and the test kinds), and the
//! rendering of the diagnostics with their source snippets. It must return, never panic or hang.

#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lulc_engine::Registry;
use lulc_engine::plan::{self, LowerOptions};

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut reg = Registry::new(lulc_nodes::all());
    for k in lulc_engine::testkit::kinds() {
        reg.add(k);
    }
    reg
});

fuzz_target!(|data: &[u8]| {
    let opts = LowerOptions {
        registry: &REGISTRY,
        overrides: &[],
    };
    match plan::lower_bytes(Path::new("pipeline.yaml"), data.to_vec(), &opts) {
        Ok(plan) => {
            // Every step id resolves, every input edge points at an earlier step.
            for (i, s) in plan.steps.iter().enumerate() {
                assert_eq!(plan.by_id.get(&s.id), Some(&i));
                assert!(s.inputs.values().flatten().all(|e| e.step < i));
            }
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty());
            // Spans must lie inside the source: miette panics or mis-renders otherwise.
            let rendered = format!("{:?}", miette::Report::new(errors));
            assert!(!rendered.is_empty());
        }
    }
});
