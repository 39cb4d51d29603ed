//! Training throughput of the CNN (`timecnn` by default), in samples per second: synthetic
//! samples (6 seasons x 30 features, 14 classes, 20,000 samples), batch 256, a few epochs of
//! Adam + cross-entropy through `learn::fit` (the loop `train` runs). Compare with
//! `benches/train_torch.py` (the same network in PyTorch, CPU).
//!
//! ```sh
//! cargo run --release -p lulc-nodes --example bench_train -- [--epochs 3] [--samples 20000] [--arch timecnn] [--thread spawned|main]
//! ```
//!
//! Reported: training samples seen per second of wall time, over all epochs (validation passes
//! included in the time, as in one epoch of `train`), and per second of this thread's CPU time
//! (`/proc/thread-self/schedstat`, Linux): the fairer number when other work shares the cores,
//! since training runs on the calling thread alone.

use std::time::Instant;

use lulc_nodes::learn::fit::{Data, Watch, fit};
use lulc_nodes::learn::{Arch, Dims, TrainConfig};
use lulc_nodes::simulate::rng::Rng;

fn main() {
    let mut epochs = 3usize;
    let mut n = 20_000usize;
    let mut arch = Arch::Timecnn;
    let mut on_main = false;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--epochs" => epochs = value.parse().expect("--epochs N"),
            "--samples" => n = value.parse().expect("--samples N"),
            "--arch" => {
                arch = serde_json::from_value(serde_json::Value::String(value))
                    .expect("--arch timecnn|tempcnn")
            }
            "--thread" => {
                on_main = match value.as_str() {
                    "main" => true,
                    "spawned" => false,
                    _ => panic!("--thread spawned|main"),
                }
            }
            other => panic!("unknown argument `{other}`"),
        }
        i += 2;
    }
    let dims = Dims {
        seasons: 6,
        features: 30,
        classes: 14,
    };
    let w = dims.seasons * dims.features;
    // Class means differ a little in every feature; noise makes the task non-trivial.
    let mut rng = Rng::new(&[42]);
    let centres: Vec<f32> = (0..dims.classes * w).map(|_| rng.normal() as f32).collect();
    let mut rows = Vec::with_capacity(n * w);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % dims.classes;
        for k in 0..w {
            rows.push(centres[c * w + k] + 2.0 * rng.normal() as f32);
        }
        labels.push(c);
    }
    let cfg = TrainConfig {
        arch,
        epochs,
        // No early stop inside the measurement.
        patience: epochs + 1,
        ..TrainConfig::default()
    };
    let data = Data {
        rows: &rows,
        labels: &labels,
        dims,
    };
    let run = || {
        let t = Instant::now();
        let cpu0 = cpu_seconds();
        let f = fit(&data, &cfg, 1, Watch::default()).expect("training");
        let secs = t.elapsed().as_secs_f64();
        (f, secs, cpu_seconds().zip(cpu0).map(|(b, a)| b - a))
    };
    // By default on a thread of its own, as `lulc run` trains (on its worker threads, never the
    // main one): glibc serves the main thread from the `brk` heap, which it trims after every
    // large free, so the next batch's buffers fault their pages in again (about 10 % slower).
    let (f, secs, cpu) = if on_main {
        run()
    } else {
        std::thread::scope(|s| s.spawn(run).join().expect("the training thread"))
    };
    let seen = (f.n_train * f.curve.len()) as f64;
    println!(
        "{} {}x{} x {} classes, {} train + {} val samples, batch {}, {} epochs, {} thread: {:.1} s, {:.0} samples/s{} (val_acc {:.3})",
        arch.name(),
        dims.seasons,
        dims.features,
        dims.classes,
        f.n_train,
        f.n_val,
        cfg.batch_size,
        f.curve.len(),
        if on_main { "main" } else { "spawned" },
        secs,
        seen / secs,
        cpu.map(|c| format!(", CPU {c:.1} s, {:.0} samples per CPU-second", seen / c))
            .unwrap_or_default(),
        f.val_acc
    );
    for e in &f.curve {
        println!(
            "  epoch {}: train_loss {:.4} val_loss {:.4} val_acc {:.3}",
            e.epoch, e.train_loss, e.val_loss, e.val_acc
        );
    }
}

/// CPU time of the calling thread in seconds (the first field of
/// `/proc/thread-self/schedstat`, nanoseconds on the CPU); `None` off Linux.
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}
