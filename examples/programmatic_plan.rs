//! Build a spec in code, lower it, and inspect the plan without running anything: step ids,
//! partitions, the DAG, and what a change of one param would invalidate.
//!
//! `cargo run --example programmatic_plan`

use std::path::Path;

use lulc_cache::Store;
use lulc_engine::exec::{self, Quiet, RunOptions};
use lulc_engine::plan::{self, LowerOptions, Override};
use lulc_engine::{Registry, testkit};

fn spec(years: (i32, i32)) -> String {
    format!(
        r#"
name: programmatic
params: {{ years: "{}..{}" }}
nodes:
  scenes:
    kind: emit
    for_each: {{ year: {{ param: years, pad: 1 }} }}
    params: {{ value: "scenes ${{year}}" }}
  composite:
    kind: combine
    for_each: {{ year: years }}
    inputs: {{ parts: {{ from: scenes, year: "-1..+1" }} }}
"#,
        years.0, years.1
    )
}

fn main() -> miette::Result<()> {
    let registry = Registry::new(testkit::kinds());
    let path = Path::new("programmatic.yaml");
    let opts = LowerOptions {
        registry: &registry,
        overrides: &[],
    };
    let plan = plan::lower(path, spec((2019, 2021)), &opts)?;
    println!("{} steps", plan.steps.len());
    for (i, step) in plan.steps.iter().enumerate() {
        let reads: Vec<&str> = plan
            .dependencies(i)
            .into_iter()
            .map(|d| plan.steps[d].id.as_str())
            .collect();
        println!("  {:<24} reads [{}]", step.id, reads.join(", "));
    }

    let dir = std::env::temp_dir().join(format!("lulc-programmatic-{}", std::process::id()));
    let store = Store::open(&dir)?;
    exec::run(
        &plan,
        &store,
        &RunOptions {
            jobs: 2,
            keep_going: true,
            argv: vec![],
            allowed_paths: vec![],
            interrupt: None,
            live: None,
        },
        &Quiet,
    )?;

    // What would `--set scenes.note=x` invalidate?
    let overrides = vec![Override::parse("scenes.note=x").map_err(|e| miette::miette!("{e}"))?];
    let changed = plan::lower(
        path,
        spec((2019, 2021)),
        &LowerOptions {
            registry: &registry,
            overrides: &overrides,
        },
    )?;
    for o in exec::plan_status(&changed, &store)? {
        println!(
            "{} {}: {}",
            o.status.tag(),
            changed.steps[o.step].id,
            o.reason()
        );
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
