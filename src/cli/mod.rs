//! Command-line interface. Only this layer renders diagnostics and prints; the engine, nodes and
//! cache return values.
//!
//! Exit codes: 0 ok, 1 a step failed, 2 invalid spec or usage.

/// `tri!(expr)`: the value of an `Ok`, or return the exit code of an `Err` (the CLI's helpers
/// print their own error and give the code). Defined before the modules so all of them see it.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return code,
        }
    };
}

mod commands;
mod export;
mod output;
mod report;
mod results;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use lulc_engine::{Override, Registry};

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "lulc",
    version,
    about = "Declarative, content-hashed dataflow for land-use/land-cover mapping"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SpecArgs {
    /// The pipeline spec (YAML).
    pub spec: PathBuf,
    /// Override a param: `NODE.PARAM=VALUE` or `NAME=VALUE` (value read as YAML: `0.15`,
    /// `[a, b]`, `2017..2023`).
    #[arg(long = "set", value_name = "K=V")]
    pub set: Vec<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Store directory (default: `LULC_STORE`, else `.lulc/` beside the spec).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a pipeline: compute what is not in the store.
    Run {
        #[command(flatten)]
        spec: SpecArgs,
        #[command(flatten)]
        store: StoreArgs,
        /// Steps run in parallel (default: number of cores; at most 1024).
        #[arg(long, short = 'j', value_parser = parse_jobs)]
        jobs: Option<usize>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
        /// Keep running independent branches after a failure (default).
        #[arg(long, overrides_with = "fail_fast")]
        keep_going: bool,
        /// Stop starting new steps at the first failure.
        #[arg(long)]
        fail_fast: bool,
        /// Print every step, also cached ones.
        #[arg(long, short = 'v')]
        verbose: bool,
        /// Let nodes read files under DIR although it is outside the spec's directory
        /// (repeatable). Without it, paths in a spec cannot leave the spec's directory.
        #[arg(long, value_name = "DIR")]
        allow_path: Vec<std::path::PathBuf>,
        /// Where steps run: `local` (worker threads of this process) or `slurm` (job arrays
        /// on the Slurm cluster whose login node this is; the store must be on a file system
        /// every node mounts).
        #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
        executor: ExecutorKind,
        /// Site settings of the Slurm executor (partition, account, resources per kind,
        /// polling): a YAML file outside the spec (default: `LULC_PROFILE`).
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
        /// With `--executor slurm`: run the coordinator itself as a Slurm job and return at
        /// once (for runs longer than a login session).
        #[arg(long)]
        detach: bool,
    },
    /// Run the steps of one Slurm array task (what the Slurm executor's jobs call).
    #[command(hide = true)]
    ExecStep {
        /// The task file the coordinator wrote.
        task_file: PathBuf,
    },
    /// Show what a run would do and why; runs nothing.
    Plan {
        #[command(flatten)]
        spec: SpecArgs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
        /// Also list fresh steps.
        #[arg(long, short = 'v')]
        verbose: bool,
        /// `slurm`: also show how the steps that could start now would be packed into job
        /// arrays (no Slurm command is run).
        #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
        executor: ExecutorKind,
        /// The Slurm profile (default: `LULC_PROFILE`).
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
    },
    /// Full key material of one step and why it is dirty or fresh.
    Explain {
        #[command(flatten)]
        spec: SpecArgs,
        /// Step id, e.g. `migrate[year=2019]`.
        step: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Check a spec; report all errors at once (exit 2 if any).
    Validate {
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Print the step graph.
    Graph {
        #[command(flatten)]
        spec: SpecArgs,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Outputs of a step: digests and file paths (open them in QGIS).
    Show {
        #[command(flatten)]
        spec: SpecArgs,
        step: String,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// The log of a step's newest Slurm job (what the node printed, and Slurm's own words).
    Logs {
        #[command(flatten)]
        spec: SpecArgs,
        step: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Metrics recorded by the steps (nodata shares, samples kept, accuracies), from the store
    /// without running anything: one row per step.
    Results {
        #[command(flatten)]
        spec: SpecArgs,
        #[command(flatten)]
        store: StoreArgs,
        /// Only the steps of this node (repeatable; in this order). Default: every step that
        /// recorded metrics.
        #[arg(long)]
        node: Vec<String>,
        /// Only these metrics (repeatable; `prefix*` matches a prefix).
        #[arg(long)]
        metric: Vec<String>,
        #[arg(long, value_enum, default_value_t = ResultsFormat::Table)]
        format: ResultsFormat,
    },
    /// Copy the up-to-date outputs of steps out of the store: `OUT/<node>/<partition>/<file>`
    /// (e.g. `OUT/map/year=2020/map.tif` beside its QGIS style `map.qml`; steps of several
    /// outputs get a `<port>/` folder level). Runs nothing.
    Export {
        #[command(flatten)]
        spec: SpecArgs,
        /// Step ids (`map[year=2020]`) or node names (all their steps).
        #[arg(required = true)]
        targets: Vec<String>,
        /// Destination folder (created).
        #[arg(long)]
        out: std::path::PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// One self-contained HTML page of a spec's results (graph, steps and timing, accuracy,
    /// figures, map previews; images inlined): `OUT/index.html`. Runs nothing.
    Report {
        #[command(flatten)]
        spec: SpecArgs,
        /// Destination folder (created).
        #[arg(long)]
        out: std::path::PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete what the last runs do not reach, stale temp files, and Slurm run folders
    /// untouched for a week.
    Gc {
        #[command(flatten)]
        store: StoreArgs,
        /// Report what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep everything used by the newest N runs of each spec (runs that reached no
        /// result do not count).
        #[arg(long, default_value_t = 5)]
        keep_runs: usize,
        /// Then evict least recently used results until the store is under SIZE (e.g. `2G`).
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
    },
    /// Check the index (`PRAGMA integrity_check`), re-hash every blob, quarantine corrupt ones
    /// (their steps become dirty) and write back missing step record files.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Mosaic class maps (GeoTIFFs written by lulc: `lulc export`, `infer`) into one
    /// Cloud-Optimized GeoTIFF, as the `mosaic` node does: overlaps go to the map whose path
    /// sorts first; writes FILE, FILE's `.qml` style and `.tiles.csv` beside it.
    Mosaic {
        /// The maps (UInt8 with class names, any CRS).
        #[arg(required = true, value_name = "MAP")]
        maps: Vec<PathBuf>,
        /// The mosaic to write (a `.tif`).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Output CRS (default: the one most maps use).
        #[arg(long)]
        crs: Option<String>,
        /// Pixel size in the CRS's units (default: the maps' finest in that CRS).
        #[arg(long)]
        res: Option<f64>,
        /// `minx,miny,maxx,maxy` in the CRS's units (default: the union of the maps).
        #[arg(
            long,
            value_name = "MINX,MINY,MAXX,MAXY",
            value_delimiter = ',',
            num_args = 4,
            allow_negative_numbers = true
        )]
        bbox: Option<Vec<f64>>,
        /// Overview resampling.
        #[arg(long, value_enum, default_value = "mode")]
        overviews: OverviewsArg,
    },
    /// The tiles that cover an area, as a spec's `tiles` param: Sentinel-2 MGRS tiles (each
    /// on its own 10 m UTM grid in a `tile` partition), or with `--grid` the tiles of a
    /// regular tiling of your own (`acquire`'s `grid` with `tile_px`).
    Tiles {
        /// The area: a vector file of polygons (GeoJSON, GeoPackage, Shapefile, ...).
        #[arg(long, value_name = "FILE")]
        aoi: PathBuf,
        /// A tiling instead of Sentinel-2's, in YAML:
        /// `{crs: "EPSG:3405", bbox: [minx, miny, maxx, maxy], res: 10, tile_px: 5000}`.
        #[arg(long, value_name = "YAML")]
        grid: Option<String>,
    },
    /// Write a simulated Viet Nam-like area (GeoTIFF scenes, a STAC catalog, vectors, truth).
    Simulate {
        /// Output folder (created; an earlier simulation there is replaced).
        #[arg(long)]
        out: std::path::PathBuf,
        #[arg(long)]
        seed: Option<u64>,
        /// Width and height in 10 m pixels.
        #[arg(long)]
        size: Option<usize>,
        /// Years to simulate, e.g. `2016..2023` (inclusive).
        #[arg(long)]
        years: Option<String>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverviewsArg {
    Mode,
    Nearest,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorKind {
    Local,
    Slurm,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ResultsFormat {
    Table,
    Csv,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

/// Every node kind this binary knows.
pub fn registry() -> Registry {
    let mut reg = Registry::new(lulc_nodes::all());
    if std::env::var("LULC_TEST_KINDS").as_deref() == Ok("1") {
        for k in lulc_engine::testkit::kinds() {
            reg.add(k);
        }
    }
    reg
}

/// The most worker threads `--jobs` starts: beyond the cores, more threads only wait, and each
/// reserves stack memory (a huge value made thread creation abort the run).
pub const MAX_JOBS: usize = 1024;

fn parse_jobs(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of steps"))?;
    match n {
        0 => Err("0 steps at a time would never finish; give 1 or more".into()),
        n if n > MAX_JOBS => Err(format!(
            "at most {MAX_JOBS} steps run at once on one machine (this one has {} cores); \
             for more, use `--executor slurm`",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        )),
        n => Ok(n),
    }
}

pub fn overrides(set: &[String]) -> Result<Vec<Override>, String> {
    set.iter().map(|s| Override::parse(s)).collect()
}

/// `--store`, else `LULC_STORE`, else `.lulc/` beside the spec (or in the current directory).
pub fn store_dir(arg: &Option<PathBuf>, spec: Option<&Path>) -> PathBuf {
    if let Some(s) = arg {
        return s.clone();
    }
    if let Some(s) = std::env::var_os("LULC_STORE") {
        return PathBuf::from(s);
    }
    match spec.and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(".lulc"),
        _ => PathBuf::from(".lulc"),
    }
}

/// `lulc plan ... | head`: when the reader closes the pipe, `println!` panics with "Broken
/// pipe"; end quietly with 141 (128 + SIGPIPE, what a shell reports for other tools) instead.
fn quiet_on_closed_pipe() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        previous(info);
    }));
}

pub fn main() -> i32 {
    output::install_miette_hook();
    quiet_on_closed_pipe();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    commands::dispatch(cli.command)
}
