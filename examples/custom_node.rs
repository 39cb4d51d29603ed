//! A custom node kind, registered next to the built-in ones, lowered from a spec and run.
//!
//! `cargo run --example custom_node`
//!
//! The node `scale` multiplies the numbers it reads by a factor. Everything a node author writes
//! is here: typed params with defaults, typed ports, a semantic `check`, and `run` writing its
//! output through the `RunCtx` (never to a path of its own choosing).

use std::path::Path;

use lulc_cache::Store;
use lulc_engine::exec::{self, Quiet, RunOptions};
use lulc_engine::plan::{self, LowerOptions};
use lulc_engine::{Inputs, Node, NodeError, Port, Registry, RunCtx, erase, testkit};
use serde::{Deserialize, Serialize};
use serde_json::Value;

struct Scale;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ScaleParams {
    factor: f64,
}

impl Default for ScaleParams {
    fn default() -> Self {
        ScaleParams { factor: 2.0 }
    }
}

impl Node for Scale {
    const KIND: &'static str = "scale";
    const VERSION: u32 = 1;
    type Params = ScaleParams;

    fn inputs() -> Vec<Port> {
        vec![Port::one("value", "Table")]
    }
    fn outputs() -> Vec<Port> {
        vec![Port::one("out", "Table")]
    }
    fn check(p: &ScaleParams) -> Result<(), Vec<(String, String)>> {
        if p.factor.is_finite() {
            Ok(())
        } else {
            Err(vec![("factor".into(), "must be finite".into())])
        }
    }
    fn run(&self, ctx: &mut RunCtx, p: &ScaleParams, inputs: &Inputs) -> Result<(), NodeError> {
        let bytes = std::fs::read(inputs.one("value")?.file("value.json")?)?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| NodeError::new(e.to_string()))?;
        let x = v
            .as_f64()
            .ok_or_else(|| NodeError::new(format!("expected a number, got {v}")))?;
        ctx.write_output(
            "out",
            "value.json",
            Value::from(x * p.factor).to_string().as_bytes(),
        )?;
        ctx.set_meta("out", Value::Null)
    }
}

const SPEC: &str = r#"
name: custom
nodes:
  x: { kind: emit, params: { value: 21 } }
  doubled: { kind: scale, inputs: { value: x } }
"#;

fn main() -> miette::Result<()> {
    let dir = std::env::temp_dir().join(format!("lulc-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| miette::miette!("{e}"))?;
    let mut registry = Registry::new(testkit::kinds());
    registry.add(erase(Scale));
    let spec_path = dir.join("custom.yaml");
    let plan = plan::lower(
        Path::new(&spec_path),
        SPEC.to_string(),
        &LowerOptions {
            registry: &registry,
            overrides: &[],
        },
    )?;
    let store = Store::open(dir.join("store"))?;
    let opts = RunOptions {
        jobs: 2,
        keep_going: true,
        argv: vec![],
        allowed_paths: vec![],
        interrupt: None,
        live: None,
    };
    let report = exec::run(&plan, &store, &opts, &Quiet)?;
    for o in &report.outcomes {
        println!("{} {}", o.status.tag(), plan.steps[o.step].id);
    }
    let again = exec::run(&plan, &store, &opts, &Quiet)?;
    println!(
        "second run: {} cached",
        again.count(lulc_engine::Status::Cached)
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
