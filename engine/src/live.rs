//! Lines a step prints while it runs: what it is about to cost ([`RunCtx::note`]) and how far
//! it got ([`RunCtx::progress`]). A step of hours must not run silently.
//!
//! Where the lines go is the executor's choice: under `lulc run` on this machine, the terminal
//! (`note: STEP: ...`, `progress: STEP: ...`); under a Slurm worker, the job's log, which
//! `lulc logs STEP` shows. Progress lines are throttled to one per [`LiveLog::every`] per step
//! (30 s unless `LULC_PROGRESS_SECS` says otherwise), so they cost nothing measurable. Warnings
//! ([`RunCtx::warn`]) are not live lines: they belong to the step's result and are printed when
//! it finishes, whatever the executor.
//!
//! [`RunCtx::note`]: crate::RunCtx::note
//! [`RunCtx::progress`]: crate::RunCtx::progress
//! [`RunCtx::warn`]: crate::RunCtx::warn

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable that sets the seconds between two progress lines of a step.
pub const PROGRESS_SECS_ENV: &str = "LULC_PROGRESS_SECS";

/// Seconds between two progress lines of a step, unless [`PROGRESS_SECS_ENV`] says otherwise.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(30);

type Sink = dyn Fn(LiveLine<'_>) + Send + Sync;

/// One line of a running step.
#[derive(Clone, Copy, Debug)]
pub struct LiveLine<'a> {
    pub step_id: &'a str,
    pub kind: LineKind,
    pub text: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// What the step is about to do and what it will cost, said before it starts the work.
    Note,
    /// How far the step got.
    Progress,
}

impl fmt::Display for LiveLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.kind {
            LineKind::Note => "note",
            LineKind::Progress => "progress",
        };
        write!(f, "{tag}: {}: {}", self.step_id, self.text)
    }
}

/// Where the live lines of running steps go, and how often progress is said.
#[derive(Clone)]
pub struct LiveLog {
    sink: Arc<Sink>,
    every: Duration,
}

impl fmt::Debug for LiveLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveLog")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl LiveLog {
    pub fn new(every: Duration, sink: impl Fn(LiveLine<'_>) + Send + Sync + 'static) -> LiveLog {
        LiveLog {
            sink: Arc::new(sink),
            every,
        }
    }

    /// A log that keeps its lines (as printed) in the returned list, for tests of nodes.
    pub fn collecting(every: Duration) -> (LiveLog, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        let log = LiveLog::new(every, move |line| {
            kept.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line.to_string())
        });
        (log, lines)
    }

    /// Lines on standard error (a Slurm worker: its job log).
    pub fn stderr(every: Duration) -> LiveLog {
        LiveLog::new(every, |line| eprintln!("{line}"))
    }

    /// The interval [`PROGRESS_SECS_ENV`] sets (seconds, `0` for every update), else
    /// [`PROGRESS_EVERY`]; an unreadable value is reported once by the caller.
    pub fn every_from_env() -> Result<Duration, String> {
        match std::env::var(PROGRESS_SECS_ENV) {
            Err(_) => Ok(PROGRESS_EVERY),
            Ok(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    format!(
                        "{PROGRESS_SECS_ENV}=`{v}` is not a number of seconds; progress every {} s",
                        PROGRESS_EVERY.as_secs()
                    )
                }),
        }
    }

    pub fn every(&self) -> Duration {
        self.every
    }

    pub(crate) fn line(&self, step_id: &str, kind: LineKind, text: &str) {
        (self.sink)(LiveLine {
            step_id,
            kind,
            text,
        });
    }
}

/// A count of work units done by a running step, safe to advance from parallel workers. It
/// says how far the step got (`progress: STEP: 1200 of 4800 blocks (25 %), 2 min so far, about
/// 6 min left`) at most once per [`LiveLog::every`]; without a live log it only counts.
pub struct Progress {
    live: Option<(LiveLog, String)>,
    total: u64,
    unit: String,
    done: AtomicU64,
    started: Instant,
    last: Mutex<Instant>,
    at_most: bool,
}

impl Progress {
    pub(crate) fn new(live: Option<(LiveLog, String)>, total: u64, unit: &str) -> Progress {
        let now = Instant::now();
        Progress {
            live,
            total,
            unit: unit.to_string(),
            done: AtomicU64::new(0),
            started: now,
            last: Mutex::new(now),
            at_most: false,
        }
    }

    /// The total is an upper bound (a training that early stopping may end sooner): the time
    /// left is said as at most.
    pub fn at_most(mut self) -> Progress {
        self.at_most = true;
        self
    }

    /// `n` more units done.
    pub fn add(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        let Some((live, step_id)) = &self.live else {
            return;
        };
        // Whoever holds the clock says the line; the others go on.
        let Ok(mut last) = self.last.try_lock() else {
            return;
        };
        let now = Instant::now();
        if now.duration_since(*last) < live.every || done >= self.total {
            return;
        }
        *last = now;
        drop(last);
        live.line(step_id, LineKind::Progress, &self.describe(done, now));
    }

    /// Units done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    fn describe(&self, done: u64, now: Instant) -> String {
        let elapsed = now.duration_since(self.started);
        let share = done as f64 / self.total.max(1) as f64;
        let mut s = format!(
            "{done} of {} {} ({:.0} %), {} so far",
            self.total,
            self.unit,
            share * 100.0,
            human_duration(elapsed)
        );
        if done > 0 {
            let left =
                elapsed.as_secs_f64() * (self.total.saturating_sub(done)) as f64 / done as f64;
            s.push_str(&format!(
                ", {} {} left",
                if self.at_most { "at most" } else { "about" },
                human_duration(Duration::from_secs_f64(left.min(1e12)))
            ));
        }
        s
    }
}

/// `42 s`, `3 min 5 s`, `2 h 10 min`, `3 d 4 h`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.0} s", d.as_secs_f64()),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_says_how_far_and_how_long_is_left_at_most_once_per_interval() {
        let (log, lines) = LiveLog::collecting(Duration::ZERO);
        let p = Progress::new(Some((log, "s".into())), 4, "blocks");
        p.add(1);
        p.add(1);
        p.add(2);
        let lines = lines.lock().unwrap();
        // The last unit says nothing: the step's finish line follows.
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("progress: s: 1 of 4 blocks (25 %), "),
            "{lines:?}"
        );
        assert!(lines[1].contains("2 of 4 blocks (50 %)"), "{lines:?}");
        assert!(lines[1].contains("left"), "{lines:?}");

        let (log, quiet) = LiveLog::collecting(Duration::from_secs(3600));
        let p = Progress::new(Some((log, "s".into())), 1000, "blocks");
        for _ in 0..999 {
            p.add(1);
        }
        assert!(quiet.lock().unwrap().is_empty());
        assert_eq!(p.done(), 999);

        let (log, lines) = LiveLog::collecting(Duration::ZERO);
        let p = Progress::new(Some((log, "t".into())), 10, "batches").at_most();
        p.add(1);
        assert!(lines.lock().unwrap()[0].contains(" s so far, at most "));
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human_duration(Duration::from_secs(42)), "42 s");
        assert_eq!(human_duration(Duration::from_secs(185)), "3 min 5 s");
        assert_eq!(human_duration(Duration::from_secs(7800)), "2 h 10 min");
        assert_eq!(
            human_duration(Duration::from_secs(3 * 86400 + 4 * 3600)),
            "3 d 4 h"
        );
    }
}
