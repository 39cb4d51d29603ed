//! Small node kinds for testing the engine itself (freshness, early cutoff, failures,
//! concurrency) without any domain data. They are registered by the CLI only when
//! `LULC_TEST_KINDS=1`, and by tests directly.
//!
//! - `emit`: writes its `value` param (or the text of the file `from_file`) as JSON to output
//!   `out` (`Table`). `note` is ignored by the output, so changing it re-runs the step with
//!   byte-identical output (early cutoff).
//! - `combine`: reads every artifact on `parts` and writes their values as a JSON list (or their
//!   sum), optionally failing or panicking on purpose.
//! - `tally`: counts the artifacts on `parts` into a `Count` (a second artifact type, so port
//!   type mismatches can be tested).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::node::{DynNode, Inputs, Node, NodeError, Port, RunCtx, erase};

/// All test kinds, sorted by kind name.
pub fn kinds() -> Vec<Arc<dyn DynNode>> {
    vec![erase(Combine), erase(Emit), erase(Tally)]
}

pub struct Emit;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmitParams {
    pub value: Value,
    /// Does not change the output: a re-run writes identical bytes.
    pub note: String,
    pub delay_ms: u64,
    /// A file (in the spec's folder) whose text is emitted instead of `value`, read after the
    /// delay.
    pub from_file: Option<String>,
}

impl Node for Emit {
    const KIND: &'static str = "emit";
    const VERSION: u32 = 1;
    type Params = EmitParams;

    fn inputs() -> Vec<Port> {
        vec![Port::many("after", "Table").optional()]
    }
    fn outputs() -> Vec<Port> {
        vec![Port::one("out", "Table")]
    }
    fn summary() -> &'static str {
        "test kind: emit a JSON value"
    }
    fn files(p: &EmitParams, _connected: &[&str]) -> Vec<(&'static str, String)> {
        p.from_file
            .iter()
            .map(|f| ("from_file", f.clone()))
            .collect()
    }
    fn run(&self, ctx: &mut RunCtx, p: &EmitParams, _inputs: &Inputs) -> Result<(), NodeError> {
        if p.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(p.delay_ms));
        }
        let value = match &p.from_file {
            Some(f) => Value::String(std::fs::read_to_string(ctx.input_path("from_file", f)?)?),
            None => p.value.clone(),
        };
        let bytes = serde_json::to_vec(&value).map_err(|e| NodeError::new(e.to_string()))?;
        ctx.write_output("out", "value.json", &bytes)?;
        ctx.set_meta("out", Value::Null)
    }
}

pub struct Combine;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CombineParams {
    /// `list` (default) or `sum`.
    pub op: String,
    pub fail: bool,
    pub panic: bool,
    pub delay_ms: u64,
    pub note: String,
}

impl Node for Combine {
    const KIND: &'static str = "combine";
    const VERSION: u32 = 1;
    type Params = CombineParams;

    fn inputs() -> Vec<Port> {
        vec![Port::many("parts", "Table")]
    }
    fn outputs() -> Vec<Port> {
        vec![Port::one("out", "Table")]
    }
    fn summary() -> &'static str {
        "test kind: combine JSON values"
    }
    fn check(p: &CombineParams) -> Result<(), Vec<(String, String)>> {
        match p.op.as_str() {
            "" | "list" | "sum" => Ok(()),
            other => Err(vec![(
                "op".into(),
                format!("unknown op `{other}`, expected `list` or `sum`"),
            )]),
        }
    }
    fn run(&self, ctx: &mut RunCtx, p: &CombineParams, inputs: &Inputs) -> Result<(), NodeError> {
        if p.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(p.delay_ms));
        }
        if p.fail {
            return Err(NodeError::new("failing on purpose (`fail: true`)"));
        }
        if p.panic {
            panic!("panicking on purpose");
        }
        let mut values = Vec::new();
        for a in inputs.all("parts") {
            let bytes = std::fs::read(a.file("value.json")?)?;
            let v: Value =
                serde_json::from_slice(&bytes).map_err(|e| NodeError::new(e.to_string()))?;
            values.push(v);
        }
        let out = if p.op == "sum" {
            Value::from(values.iter().filter_map(Value::as_f64).sum::<f64>())
        } else {
            Value::Array(values)
        };
        ctx.metric("parts", inputs.all("parts").len() as u64);
        ctx.write_output(
            "out",
            "value.json",
            &serde_json::to_vec(&out).expect("json"),
        )?;
        ctx.set_meta("out", Value::Null)
    }
}

pub struct Tally;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TallyParams {}

impl Node for Tally {
    const KIND: &'static str = "tally";
    const VERSION: u32 = 1;
    type Params = TallyParams;

    fn inputs() -> Vec<Port> {
        vec![Port::many("parts", "Table")]
    }
    fn outputs() -> Vec<Port> {
        vec![Port::one("n", "Count")]
    }
    fn summary() -> &'static str {
        "test kind: count artifacts"
    }
    fn run(&self, ctx: &mut RunCtx, _p: &TallyParams, inputs: &Inputs) -> Result<(), NodeError> {
        let n = inputs.all("parts").len();
        ctx.write_output("n", "n.txt", n.to_string().as_bytes())?;
        ctx.set_meta("n", Value::from(n))
    }
}
