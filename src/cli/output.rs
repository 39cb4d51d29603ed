//! Rendering: diagnostics, progress, plan/run lines and JSON documents.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use lulc_engine::exec::{Outcome, Status};
use lulc_engine::{LiveLog, Plan};
use miette::{Diagnostic, LabeledSpan, SourceSpan};
use serde_json::{Value, json};

/// Diagnostics are drawn by miette; without a terminal (tests, CI, pipes) no colours and a fixed
/// width, so golden files are stable.
pub fn install_miette_hook() {
    let tty = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = miette::set_hook(Box::new(move |_| {
        let mut h = miette::MietteHandlerOpts::new()
            .width(100)
            .terminal_links(false);
        if !tty {
            h = h
                .color(false)
                .unicode(true)
                .graphical_theme(miette::GraphicalTheme::unicode_nocolor());
        }
        Box::new(h.build())
    }));
}

pub fn eprint_diag(d: impl Diagnostic + Send + Sync + 'static) {
    eprintln!("{:?}", miette::Report::new(d));
}

/// A failed step, underlined in the YAML.
#[derive(Debug, thiserror::Error)]
#[error("step `{step}` failed: {message}")]
pub struct StepFailed {
    pub step: String,
    pub message: String,
    pub help: Option<String>,
    pub src: lulc_engine::diag::SpecSource,
    pub span: SourceSpan,
}

impl Diagnostic for StepFailed {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new("run::step_failed"))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&*self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(
                Some(format!("`{}` failed here", self.step)),
                self.span,
            ),
        )))
    }
}

pub fn step_failed(plan: &Plan, o: &Outcome) -> StepFailed {
    let step = &plan.steps[o.step];
    let err = o
        .error
        .clone()
        .unwrap_or_else(|| lulc_engine::NodeError::new("unknown error"));
    StepFailed {
        step: step.id.clone(),
        message: err.message,
        help: err.help,
        src: plan.source.clone(),
        span: step.span.into(),
    }
}

/// One step as a JSON object: an entry of the `--json` document's `steps`.
pub fn step_json(plan: &Plan, o: &Outcome) -> Value {
    let s = &plan.steps[o.step];
    let mut dims = serde_json::Map::new();
    for (k, v) in &s.dims {
        dims.insert(k.clone(), v.to_value());
    }
    for (k, v) in &s.sweep {
        dims.insert(k.clone(), v.clone());
    }
    let reason = match (&o.error, o.status) {
        (Some(e), _) => Value::from(e.message.clone()),
        (None, Status::Fresh | Status::Cached) => Value::Null,
        _ => Value::from(o.reason()),
    };
    let outputs: serde_json::Map<String, Value> = o
        .outputs
        .iter()
        .map(|(k, d)| (k.clone(), Value::from(d.to_string())))
        .collect();
    json!({
        "id": s.id,
        "node": s.node,
        "kind": s.kind,
        "dims": dims,
        "status": o.status.as_str(),
        "reason": reason,
        "key": o.key,
        "duration_s": (o.duration_s * 1000.0).round() / 1000.0,
        "outputs": outputs,
        "metrics": o.metrics,
        "warnings": o.warnings,
    })
}

/// `[DIRTY] migrate[year=2019]: param `ed` changed (0.1 -> 0.15)`
pub fn status_line(plan: &Plan, o: &Outcome) -> String {
    let id = &plan.steps[o.step].id;
    match (&o.error, o.status) {
        (Some(e), _) => format!("{} {id}: {}", o.status.tag(), e.message),
        (None, Status::Fresh | Status::Cached) => format!("{} {id}", o.status.tag()),
        (None, Status::Ran) => {
            let r = o.reason();
            if r.is_empty() {
                format!("{} {id} ({:.2}s)", o.status.tag(), o.duration_s)
            } else {
                format!("{} {id}: {r} ({:.2}s)", o.status.tag(), o.duration_s)
            }
        }
        _ => format!("{} {id}: {}", o.status.tag(), o.reason()),
    }
}

/// Progress during a run: a bar on a terminal, plain lines otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    verbose: bool,
    quiet: bool,
    lines: Mutex<()>,
}

impl Progress {
    pub fn new(verbose: bool, quiet: bool) -> Progress {
        let bar = if !quiet && std::io::stderr().is_terminal() {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
                )
                .expect("valid template"),
            );
            Some(b)
        } else {
            None
        };
        Progress {
            bar,
            verbose,
            quiet,
            lines: Mutex::new(()),
        }
    }

    fn line(&self, s: String) {
        if self.quiet {
            return;
        }
        let _g = self.lines.lock();
        match &self.bar {
            Some(b) => b.println(s),
            None => eprintln!("{s}"),
        }
    }

    /// Where running steps' live lines go: above the bar on a terminal, plain lines otherwise.
    pub fn live_log(&self, every: std::time::Duration) -> LiveLog {
        let bar = self.bar.clone();
        LiveLog::new(every, move |line| match &bar {
            Some(b) => b.println(line.to_string()),
            None => eprintln!("{line}"),
        })
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl lulc_engine::Observer for Progress {
    fn started(&self, total: usize) {
        if let Some(b) = &self.bar {
            b.set_length(total as u64);
        }
    }
    fn step_started(&self, plan: &Plan, step: usize) {
        if let Some(b) = &self.bar {
            b.set_message(plan.steps[step].id.clone());
        } else if self.verbose {
            self.line(format!("[START] {}", plan.steps[step].id));
        }
    }
    fn step_finished(&self, plan: &Plan, o: &Outcome) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
        let show = self.verbose || !matches!(o.status, Status::Cached);
        if show {
            self.line(status_line(plan, o));
        }
        for w in &o.warnings {
            self.line(format!("warning: {}: {w}", plan.steps[o.step].id));
        }
    }
}
