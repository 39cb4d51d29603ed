//! One function per subcommand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lulc_cache::{Digest, GcOptions, Store};
use lulc_engine::exec::{self, Manifest, Outcome, RunOptions, Status};
use lulc_engine::executor::ExecutorError;
use lulc_engine::plan::{self, LowerOptions};
use lulc_engine::slurm::{SlurmExecutor, SlurmProfile};
use lulc_engine::{LiveLog, Plan, Registry};
use serde_json::{Value, json};

use super::output::{self, Progress};
use super::{
    Command, EXIT_FAILED, EXIT_OK, EXIT_USAGE, ExecutorKind, GraphFormat, SpecArgs, StoreArgs,
};

pub fn dispatch(cmd: Command) -> i32 {
    match cmd {
        Command::Run {
            spec,
            store,
            jobs,
            json,
            keep_going: _,
            fail_fast,
            verbose,
            allow_path,
            executor,
            profile,
            detach,
        } => {
            if detach {
                detach_run(&spec, &store, executor, profile.as_deref())
            } else {
                run(
                    &spec,
                    &store,
                    RunArgs {
                        jobs,
                        json,
                        keep_going: !fail_fast,
                        verbose,
                        allowed_paths: allow_path,
                        executor,
                        profile,
                    },
                )
            }
        }
        Command::ExecStep { task_file } => exec_step(&task_file),
        Command::Plan {
            spec,
            store,
            json,
            verbose,
            executor,
            profile,
        } => {
            let profile = match executor {
                ExecutorKind::Local => None,
                ExecutorKind::Slurm => Some(tri!(slurm_profile(profile.as_deref()))),
            };
            plan_cmd(&spec, &store, json, verbose, profile.as_ref())
        }
        Command::Explain { spec, step, store } => explain(&spec, &step, &store),
        Command::Logs { spec, step, store } => logs(&spec, &step, &store),
        Command::Validate { spec } => validate(&spec),
        Command::Graph { spec, format } => graph(&spec, format),
        Command::Show {
            spec,
            step,
            store,
            json,
        } => show(&spec, &step, &store, json),
        Command::Gc {
            store,
            dry_run,
            keep_runs,
            max_size,
        } => gc(&store, dry_run, keep_runs, max_size),
        Command::Verify { store } => verify(&store),
        Command::Results {
            spec,
            store,
            node,
            metric,
            format,
        } => super::results::results(&spec, &store, &node, &metric, format),
        Command::Export {
            spec,
            targets,
            out,
            store,
        } => super::export::export(&spec, &targets, &out, &store),
        Command::Report { spec, out, store } => super::report::report(&spec, &out, &store),
        Command::Simulate {
            out,
            seed,
            size,
            years,
        } => simulate(out, seed, size, years),
        Command::Tiles { aoi, grid } => tiles(&aoi, grid.as_deref()),
        Command::Mosaic {
            maps,
            out,
            crs,
            res,
            bbox,
            overviews,
        } => mosaic(&maps, &out, crs, res, bbox, overviews),
    }
}

pub(super) fn load(spec: &SpecArgs) -> Result<Plan, i32> {
    let overrides = match super::overrides(&spec.set) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(EXIT_USAGE);
        }
    };
    let registry: Registry = super::registry();
    let opts = LowerOptions {
        registry: &registry,
        overrides: &overrides,
    };
    plan::load(&spec.spec, &opts).map_err(|e| {
        output::eprint_diag(e);
        EXIT_USAGE
    })
}

/// Opens the store; if opening it had to rebuild a missing or corrupt index from the step
/// records, says so once, on stderr (what was wrong, what was restored, what is lost, where the
/// bad index is kept).
pub(super) fn open_store(args: &StoreArgs, spec: Option<&Path>) -> Result<Store, i32> {
    open_store_with(args, spec, |d| Store::open(d))
}

/// Opens the store for a command that only reads it (`plan`, `explain`, `logs`, `show`,
/// `results`, `export`, `report`): creates nothing, takes no write lock, works on a read-only
/// medium; where no store is yet, every step reads as new. An index that needs rebuilding is
/// rebuilt as by `run` when the store can be written, else the reader says what to do.
///
/// Says on stderr when the store holds nothing yet, so a forgotten `--store` is not mistaken
/// for a spec that never ran.
pub(super) fn open_store_read(args: &StoreArgs, spec: Option<&Path>) -> Result<Store, i32> {
    let store = open_store_view(args, spec)?;
    if store.holds_nothing_yet() {
        eprintln!(
            "note: nothing has run with the store `{}` yet; if `lulc run` used another, pass it with `--store`",
            store.root().display()
        );
    }
    Ok(store)
}

/// [`open_store_read`] without the note (`plan` before a first run is the usual case).
fn open_store_view(args: &StoreArgs, spec: Option<&Path>) -> Result<Store, i32> {
    open_store_with(args, spec, |d| match Store::open_read_only(d) {
        Err(needs @ lulc_cache::CacheError::IndexNeedsRepair { .. }) => {
            Store::open(d).map_err(|_| needs)
        }
        other => other,
    })
}

/// Opens a store that must exist already (`gc`, `verify`): never makes one.
fn open_existing_store(args: &StoreArgs) -> Result<Store, i32> {
    open_store_with(args, None, |d| Store::open_existing(d))
}

fn open_store_with(
    args: &StoreArgs,
    spec: Option<&Path>,
    open: fn(&Path) -> lulc_cache::Result<Store>,
) -> Result<Store, i32> {
    let dir = super::store_dir(&args.store, spec);
    let store = open(&dir).map_err(|e| {
        output::eprint_diag(e);
        EXIT_FAILED
    })?;
    if let Some(rebuilt) = store.rebuilt() {
        eprintln!("warning: {rebuilt}");
    }
    Ok(store)
}

/// The status of every step of `plan` against `store` (runs nothing); a store error is printed.
pub(super) fn step_status(plan: &Plan, store: &Store) -> Result<Vec<Outcome>, i32> {
    exec::plan_status(plan, store).map_err(|e| {
        output::eprint_diag(e);
        EXIT_FAILED
    })
}

/// The manifest an output digest names, or `None` when its blob is unreadable.
pub(super) fn read_manifest(store: &Store, d: &Digest) -> Option<Manifest> {
    store
        .read_bytes(d)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// `lulc run`'s options besides the spec and the store.
struct RunArgs {
    jobs: Option<usize>,
    json: bool,
    keep_going: bool,
    verbose: bool,
    allowed_paths: Vec<std::path::PathBuf>,
    executor: ExecutorKind,
    profile: Option<std::path::PathBuf>,
}

/// The Slurm executor of `--executor slurm`: its profile read and the kinds that may run
/// checked with `sbatch --test-only` before anything is submitted.
fn slurm_executor(
    plan: &Plan,
    store: &Store,
    profile: Option<&Path>,
) -> Result<SlurmExecutor, i32> {
    let fail = |e: ExecutorError| {
        output::eprint_diag(e);
        EXIT_USAGE
    };
    let profile = match profile
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("LULC_PROFILE").map(Into::into))
    {
        Some(path) => SlurmProfile::load(&path).map_err(fail)?,
        None => SlurmProfile::default(),
    };
    let exe = std::env::current_exe().map_err(|e| {
        eprintln!("error: cannot find this lulc binary for the Slurm jobs: {e}");
        EXIT_FAILED
    })?;
    let mut ex = SlurmExecutor::new(profile, vec![exe.display().to_string()], store.blobs());
    // Every node's resources (each distinct request asked once): a bad request is refused
    // before any submission.
    let mut nodes: BTreeMap<&str, (&str, Option<&lulc_engine::slurm::Resources>)> = BTreeMap::new();
    for s in &plan.steps {
        nodes
            .entry(s.node.as_str())
            .or_insert((s.kind, s.resources.as_deref()));
    }
    let nodes: Vec<_> = nodes
        .into_iter()
        .map(|(node, (kind, res))| (node, kind, res))
        .collect();
    ex.validate(&nodes).map_err(fail)?;
    let adopted = ex.adopt().map_err(fail)?;
    if adopted > 0 {
        eprintln!(
            "taking over {adopted} steps still queued or running in Slurm jobs of an earlier run"
        );
    }
    Ok(ex)
}

/// `lulc run --executor slurm --detach`: the spec checked, every node's resources checked with
/// `sbatch --test-only`, then the same command without `--detach` submitted as a Slurm job.
fn detach_run(
    spec: &SpecArgs,
    store_args: &StoreArgs,
    executor: ExecutorKind,
    profile: Option<&Path>,
) -> i32 {
    if executor != ExecutorKind::Slurm {
        eprintln!(
            "error: `--detach` sends the coordinator of a Slurm run to the cluster; add \
             `--executor slurm`"
        );
        return EXIT_USAGE;
    }
    let plan = tri!(load(spec));
    let store = tri!(open_store(store_args, Some(&spec.spec)));
    let mut ex = match slurm_executor(&plan, &store, profile) {
        Ok(ex) => ex,
        Err(code) => return code,
    };
    let mut argv: Vec<String> = std::env::args().collect();
    argv.retain(|a| a != "--detach");
    if let Ok(exe) = std::env::current_exe() {
        argv[0] = exe.display().to_string();
    }
    // The job finds the store where this command does, whatever its own environment says.
    if !argv
        .iter()
        .any(|a| a == "--store" || a.starts_with("--store="))
    {
        argv.push("--store".into());
        argv.push(store.root().display().to_string());
    }
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot read the current folder: {e}");
            return EXIT_FAILED;
        }
    };
    match ex.submit_coordinator(&argv, &cwd) {
        Ok((job, log)) => {
            println!(
                "submitted the coordinator as Slurm job {job}; its log: {}\n\
                 follow it with `squeue --me` and `tail -f {}`; when it is done, `lulc results` \
                 shows the steps. If it ends early (its time limit), run `lulc run` again: it \
                 takes over the jobs still queued",
                log.display(),
                log.display()
            );
            EXIT_OK
        }
        Err(e) => {
            output::eprint_diag(e);
            EXIT_USAGE
        }
    }
}

/// Exit status of a run stopped by Ctrl-C (128 + SIGINT, what a shell reports).
const EXIT_INTERRUPTED: i32 = 130;

/// The flag a first Ctrl-C (or SIGTERM) sets: the coordinator stops starting steps and cancels
/// the run's jobs. A second one leaves at once, the jobs still running, and says how to go on.
fn on_ctrl_c() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let flag = std::sync::Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    let installed = ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            eprintln!(
                "\ndetached: the run's Slurm jobs go on. Run the same command again to take \
                 them over and record what they finish"
            );
            std::process::exit(EXIT_INTERRUPTED);
        }
        eprintln!("\ninterrupting: cancelling the run's Slurm jobs (Ctrl-C again to detach)");
    });
    if let Err(e) = installed {
        eprintln!("warning: Ctrl-C will not cancel the Slurm jobs: {e}");
    }
    flag
}

/// Ctrl-C of a local run: says what is kept, then ends the process at once. Every finished
/// step is already recorded in the store and in its run; the steps in flight are dropped (what
/// they wrote is in `tmp/`, which `gc` collects) and the run is marked `interrupted` by the next
/// `run` or `gc` (its run lock dies with the process).
fn stop_on_ctrl_c() {
    let installed = ctrlc::set_handler(|| {
        eprintln!(
            "\ninterrupted: the steps that finished are kept; run the same command again to go on \
             (the steps that were running start over)"
        );
        std::process::exit(EXIT_INTERRUPTED);
    });
    if let Err(e) = installed {
        eprintln!("warning: Ctrl-C will stop the run without a word: {e}");
    }
}

/// The Slurm profile of `--profile`, else `$LULC_PROFILE`, else the defaults.
fn slurm_profile(profile: Option<&Path>) -> Result<SlurmProfile, i32> {
    match profile
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("LULC_PROFILE").map(Into::into))
    {
        Some(path) => SlurmProfile::load(&path).map_err(|e| {
            output::eprint_diag(e);
            EXIT_USAGE
        }),
        None => Ok(SlurmProfile::default()),
    }
}

/// `lulc plan --executor slurm`: the steps that could start now, packed as the Slurm executor
/// would pack them (one array per resource class), and how many wait for upstream results.
fn print_packing(plan: &Plan, outcomes: &[Outcome], profile: &SlurmProfile) {
    let mut classes: BTreeMap<String, (usize, std::collections::BTreeSet<&str>)> = BTreeMap::new();
    let mut later = 0;
    for o in outcomes {
        match o.status {
            Status::New | Status::Dirty if o.key.is_some() => {
                let step = &plan.steps[o.step];
                let kind = step.kind;
                let res = profile.resources_for(kind, &step.node, step.resources.as_deref());
                let class = format!(
                    "cpus={} mem={}M time={}min{}",
                    res.cpus.unwrap_or(1),
                    res.mem_mb.unwrap_or(0),
                    res.time_min.unwrap_or(0),
                    res.gres.map(|g| format!(" gres={g}")).unwrap_or_default()
                );
                let entry = classes.entry(class).or_default();
                entry.0 += 1;
                entry.1.insert(kind);
            }
            Status::New | Status::Dirty | Status::Maybe => later += 1,
            _ => {}
        }
    }
    let per_array = profile.steps_per_task * profile.max_array_size;
    let ready: usize = classes.values().map(|c| c.0).sum();
    let arrays: usize = classes.values().map(|c| c.0.div_ceil(per_array)).sum();
    println!("slurm: {ready} steps could start now, in {arrays} job arrays:");
    for (class, (n, kinds)) in &classes {
        println!(
            "  {class}: {n} steps in {} array tasks ({})",
            n.div_ceil(profile.steps_per_task),
            kinds.iter().copied().collect::<Vec<_>>().join(", ")
        );
    }
    println!("slurm: {later} more steps are submitted as their inputs are computed");
}

/// `lulc exec-step FILE`, on a compute node: exit 0 when every step of the file succeeded.
fn exec_step(task_file: &Path) -> i32 {
    match lulc_engine::slurm::exec_task_file(task_file, &super::registry()) {
        Ok(0) => EXIT_OK,
        Ok(_) => EXIT_FAILED,
        Err(e) => {
            output::eprint_diag(e);
            EXIT_FAILED
        }
    }
}

fn run(spec: &SpecArgs, store_args: &StoreArgs, args: RunArgs) -> i32 {
    let plan = tri!(load(spec));
    let store = tri!(open_store(store_args, Some(&spec.spec)));
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let interrupt = match args.executor {
        ExecutorKind::Local => {
            stop_on_ctrl_c();
            None
        }
        ExecutorKind::Slurm => Some(on_ctrl_c()),
    };
    let json = args.json;
    let progress = Progress::new(args.verbose, false);
    let every = LiveLog::every_from_env().unwrap_or_else(|e| {
        eprintln!("warning: {e}");
        lulc_engine::live::PROGRESS_EVERY
    });
    let opts = RunOptions {
        jobs,
        keep_going: args.keep_going,
        argv: std::env::args().collect(),
        allowed_paths: args.allowed_paths,
        interrupt,
        live: Some(progress.live_log(every)),
    };
    let started = std::time::Instant::now();
    let result = match args.executor {
        ExecutorKind::Local => exec::run(&plan, &store, &opts, &progress),
        ExecutorKind::Slurm => {
            let mut ex = tri!(slurm_executor(&plan, &store, args.profile.as_deref()));
            exec::run_with(&plan, &store, &opts, &progress, &mut ex)
        }
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            progress.finish();
            output::eprint_diag(e);
            return EXIT_FAILED;
        }
    };
    progress.finish();
    if report.interrupted {
        eprintln!(
            "run {}: interrupted; its Slurm jobs were cancelled. Finished steps are kept: run the \
             same command again to go on",
            report.run_id
        );
        return EXIT_INTERRUPTED;
    }
    for o in report.failed() {
        output::eprint_diag(output::step_failed(&plan, o));
    }
    let failed = report.count(Status::Failed);
    eprintln!(
        "run {}: {} ran, {} cached, {} failed, {} skipped in {:.2}s (store: {})",
        report.run_id,
        report.count(Status::Ran),
        report.count(Status::Cached),
        failed,
        report.count(Status::Skipped),
        started.elapsed().as_secs_f64(),
        store.root().display()
    );
    if json {
        let doc = json!({
            "run_id": report.run_id.to_string(),
            "spec": spec.spec.display().to_string(),
            "steps": report.outcomes.iter().map(|o| output::step_json(&plan, o)).collect::<Vec<_>>(),
            "executor": report.executor,
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    }
    if failed > 0 { EXIT_FAILED } else { EXIT_OK }
}

fn plan_cmd(
    spec: &SpecArgs,
    store_args: &StoreArgs,
    json: bool,
    verbose: bool,
    slurm: Option<&SlurmProfile>,
) -> i32 {
    let plan = tri!(load(spec));
    let store = tri!(open_store_view(store_args, Some(&spec.spec)));
    let outcomes = tri!(step_status(&plan, &store));
    if json {
        let doc = json!({
            "run_id": Value::Null,
            "spec": spec.spec.display().to_string(),
            "steps": outcomes.iter().map(|o| output::step_json(&plan, o)).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        return EXIT_OK;
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &outcomes {
        *counts.entry(o.status.as_str()).or_default() += 1;
        if verbose || o.status != Status::Fresh {
            println!("{}", output::status_line(&plan, o));
        }
    }
    let summary: Vec<String> = ["fresh", "dirty", "new", "maybe"]
        .iter()
        .filter_map(|s| counts.get(s).map(|n| format!("{n} {s}")))
        .collect();
    println!(
        "plan `{}`: {} steps: {}",
        plan.name,
        outcomes.len(),
        summary.join(", ")
    );
    if let Some(profile) = slurm {
        print_packing(&plan, &outcomes, profile);
    }
    EXIT_OK
}

fn find_step(plan: &Plan, id: &str) -> Result<usize, i32> {
    match plan.by_id.get(id) {
        Some(&i) => Ok(i),
        None => {
            let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
            let hint = lulc_engine::diag::closest(id, ids.iter().copied())
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            eprintln!(
                "error: no step `{id}` in `{}`{hint}",
                plan.spec_path.display()
            );
            Err(EXIT_USAGE)
        }
    }
}

fn explain(spec: &SpecArgs, id: &str, store_args: &StoreArgs) -> i32 {
    let plan = tri!(load(spec));
    let i = tri!(find_step(&plan, id));
    let store = tri!(open_store_read(store_args, Some(&spec.spec)));
    let outcomes = tri!(step_status(&plan, &store));
    let o: &Outcome = &outcomes[i];
    let step = &plan.steps[i];
    println!("{}", output::status_line(&plan, o));
    println!(
        "node: {} (kind `{}` v{})",
        step.node, step.kind, step.version
    );
    match &o.key {
        Some(k) => println!("key: {k}"),
        None => println!("key: not yet known (an input is computed first)"),
    }
    let deps: Vec<String> = plan
        .dependencies(i)
        .into_iter()
        .map(|d| plan.steps[d].id.clone())
        .collect();
    if !deps.is_empty() {
        println!("reads: {}", deps.join(", "));
    }
    println!("key material:");
    let material = serde_json::to_string_pretty(&o.material).expect("json");
    for line in material.lines() {
        println!("  {line}");
    }
    if let Ok(Some(prev)) = store.latest_for(&plan.name, &step.id) {
        println!("last recorded: key {} ({:.2}s)", prev.key, prev.duration_s);
    }
    EXIT_OK
}

fn validate(spec: &SpecArgs) -> i32 {
    let plan = tri!(load(spec));
    let nodes: std::collections::BTreeSet<&str> =
        plan.steps.iter().map(|s| s.node.as_str()).collect();
    println!(
        "`{}` is valid: {} nodes, {} steps",
        spec.spec.display(),
        nodes.len(),
        plan.steps.len()
    );
    EXIT_OK
}

fn graph(spec: &SpecArgs, format: GraphFormat) -> i32 {
    let plan = tri!(load(spec));
    match format {
        GraphFormat::Dot => {
            println!("digraph \"{}\" {{", plan.name);
            println!("  rankdir=LR;");
            println!("  node [shape=box, fontname=\"Helvetica\"];");
            for (i, s) in plan.steps.iter().enumerate() {
                println!(
                    "  s{i} [label=\"{}\\n({})\"];",
                    s.id.replace('"', "'"),
                    s.kind
                );
            }
            for e in plan.graph.edge_indices() {
                let (a, b) = plan.graph.edge_endpoints(e).expect("edge");
                println!("  s{} -> s{};", a.index(), b.index());
            }
            println!("}}");
        }
        GraphFormat::Mermaid => {
            println!("flowchart LR");
            for (i, s) in plan.steps.iter().enumerate() {
                println!("  s{i}[\"{}\"]", s.id.replace('"', "'"));
            }
            for e in plan.graph.edge_indices() {
                let (a, b) = plan.graph.edge_endpoints(e).expect("edge");
                println!("  s{} --> s{}", a.index(), b.index());
            }
        }
    }
    EXIT_OK
}

fn logs(spec: &SpecArgs, id: &str, store_args: &StoreArgs) -> i32 {
    let plan = tri!(load(spec));
    let i = tri!(find_step(&plan, id));
    let store = tri!(open_store_read(store_args, Some(&spec.spec)));
    // The key it last ran with, else the one it would run with now.
    let key = match store.latest_for(&plan.name, id) {
        Ok(Some(rec)) => Some(rec.key),
        _ => tri!(step_status(&plan, &store)).swap_remove(i).key,
    };
    let found = key.and_then(|k| lulc_engine::slurm::step_log(store.root(), &k));
    match found {
        Some((path, text)) => {
            println!("# {}", path.display());
            print!("{text}");
            EXIT_OK
        }
        None => {
            eprintln!(
                "error: no Slurm log of `{id}` in {}: it has not run with `--executor slurm` on \
                 this store, or its job folders were removed",
                store.root().display()
            );
            EXIT_FAILED
        }
    }
}

fn show(spec: &SpecArgs, id: &str, store_args: &StoreArgs, json: bool) -> i32 {
    let plan = tri!(load(spec));
    let i = tri!(find_step(&plan, id));
    let store = tri!(open_store_read(store_args, Some(&spec.spec)));
    let outcomes = tri!(step_status(&plan, &store));
    let o = &outcomes[i];
    if o.status != Status::Fresh {
        eprintln!(
            "error: `{id}` has no up-to-date result: {}",
            output::status_line(&plan, o)
        );
        eprintln!("help: run `lulc run {}` first", spec.spec.display());
        return EXIT_FAILED;
    }
    let mut ports = serde_json::Map::new();
    for (port, d) in &o.outputs {
        let Some(m) = read_manifest(&store, d) else {
            eprintln!("error: manifest {d} of output `{port}` is unreadable; run `lulc verify`");
            return EXIT_FAILED;
        };
        let files: serde_json::Map<String, Value> = m
            .files
            .iter()
            .map(|(name, fd)| {
                (name.clone(), json!({ "digest": fd.to_string(), "path": store.blob_path(fd).display().to_string() }))
            })
            .collect();
        ports.insert(
            port.clone(),
            json!({ "digest": d.to_string(), "type": m.ty, "files": files, "meta": m.meta }),
        );
    }
    if json {
        let doc = json!({ "id": id, "key": o.key, "outputs": ports });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        return EXIT_OK;
    }
    println!("{id}  (key {})", o.key.as_deref().unwrap_or("?"));
    for (port, v) in &ports {
        println!(
            "  {port}: {} {}",
            v["type"].as_str().unwrap_or(""),
            v["digest"].as_str().unwrap_or("")
        );
        if let Some(files) = v["files"].as_object() {
            for (name, f) in files {
                println!("    {name}: {}", f["path"].as_str().unwrap_or(""));
            }
        }
    }
    EXIT_OK
}

/// `2G`, `500M`, `10k`, `1024` -> bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = t[i..].to_ascii_lowercase();
            let m: u64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => return Err(format!("unknown size unit in `{s}` (use K, M, G or T)")),
            };
            (&t[..i], m)
        }
        None => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size like `2G`"))?;
    if n < 0.0 {
        return Err(format!("`{s}` is negative"));
    }
    Ok((n * mult as f64) as u64)
}

fn gc(store_args: &StoreArgs, dry_run: bool, keep_runs: usize, max_size: Option<String>) -> i32 {
    let max_size = match max_size.as_deref().map(parse_size).transpose() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: --max-size: {e}");
            return EXIT_USAGE;
        }
    };
    let store = tri!(open_existing_store(store_args));
    match store.gc(&GcOptions {
        keep_runs,
        max_size,
        dry_run,
    }) {
        Ok(r) => {
            let verb = if r.dry_run { "would remove" } else { "removed" };
            if r.settled_runs > 0 {
                println!(
                    "gc: {} run(s) left `running` by a killed lulc marked interrupted; the steps \
                     they finished are kept like any run's",
                    r.settled_runs
                );
            }
            for s in &r.removed_steps {
                println!("{verb} {s}");
            }
            if r.removed_slurm_runs > 0 {
                println!(
                    "gc: {verb} {} Slurm run folder(s) untouched for a week (job scripts, \
                     task files and job logs)",
                    r.removed_slurm_runs
                );
            }
            println!(
                "gc: {verb} {} steps, {} blobs ({}) and {} step record files; kept {} steps",
                r.removed_steps.len(),
                r.removed_blobs,
                lulc_engine::human_bytes(r.freed_bytes),
                r.removed_records,
                r.kept_steps
            );
            EXIT_OK
        }
        Err(e) => {
            output::eprint_diag(e);
            EXIT_FAILED
        }
    }
}

fn verify(store_args: &StoreArgs) -> i32 {
    let store = tri!(open_existing_store(store_args));
    match store.verify() {
        Ok(r) if !r.index_problems.is_empty() => {
            for line in &r.index_problems {
                println!("INDEX {line}");
            }
            println!(
                "verify: {} fails PRAGMA integrity_check, nothing else was checked; move it (and its \
                 -wal/-shm) into {}/quarantine/ and run lulc again: the index is rebuilt from the \
                 step records under records/ (run history is lost)",
                store.index_path().display(),
                store.root().display()
            );
            EXIT_FAILED
        }
        Ok(r) => {
            for c in &r.corrupt {
                println!(
                    "CORRUPT {} ({}) used by: {}",
                    c.digest,
                    c.path.display(),
                    c.steps.join(", ")
                );
            }
            for c in &r.missing {
                println!("MISSING {} used by: {}", c.digest, c.steps.join(", "));
            }
            println!(
                "verify: {} blobs checked, {} corrupt (quarantined), {} missing; affected steps will re-run",
                r.checked,
                r.corrupt.len(),
                r.missing.len()
            );
            println!("verify: index.sqlite passed PRAGMA integrity_check");
            if !r.records_missing.is_empty() || !r.records_rewritten.is_empty() {
                println!(
                    "verify: wrote back {} missing and {} unreadable or stale step record files \
                     under records/ from the index (stores made before record files existed \
                     gain them this way; the index is rebuilt from them if it is ever lost)",
                    r.records_missing.len(),
                    r.records_rewritten.len()
                );
            }
            if r.corrupt.is_empty() && r.missing.is_empty() {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Err(e) => {
            output::eprint_diag(e);
            EXIT_FAILED
        }
    }
}

fn simulate(
    out: std::path::PathBuf,
    seed: Option<u64>,
    size: Option<usize>,
    years: Option<String>,
) -> i32 {
    use lulc_nodes::simulate::{SimulateOptions, simulate as run_simulation};
    let mut opts = SimulateOptions::new(out);
    if let Some(seed) = seed {
        opts.seed = seed;
    }
    if let Some(size) = size {
        opts.size = size;
    }
    if let Some(y) = years {
        let parsed = lulc_engine::spec::parse_range(&y).and_then(Result::ok);
        match parsed.as_deref() {
            Some([first, .., last]) => opts.years = (*first as i32, *last as i32),
            Some([only]) => opts.years = (*only as i32, *only as i32),
            _ => {
                eprintln!("error: --years `{y}`: expected an inclusive range like `2016..2023`");
                return EXIT_USAGE;
            }
        }
    }
    let started = std::time::Instant::now();
    match run_simulation(&opts) {
        Ok(summary) => {
            println!(
                "simulated {} x {} px ({}), years {}..{}, seed {}: {} files in {:.1}s",
                opts.size,
                opts.size,
                summary.mgrs_tile,
                opts.years.0,
                opts.years.1,
                opts.seed,
                summary.files.len(),
                started.elapsed().as_secs_f64()
            );
            for (collection, n) in &summary.items {
                println!("  {collection}: {n} items");
            }
            println!("  reference points: {}", summary.reference_points);
            println!("  catalog: {}", summary.out.join("catalog.json").display());
            EXIT_OK
        }
        Err(e) => {
            // A bad option is a usage error, like a bad `--years`.
            let code = match e {
                lulc_nodes::simulate::SimError::Options { .. } => EXIT_USAGE,
                _ => EXIT_FAILED,
            };
            output::eprint_diag(e);
            code
        }
    }
}

fn mosaic(
    maps: &[PathBuf],
    out: &Path,
    crs: Option<String>,
    res: Option<f64>,
    bbox: Option<Vec<f64>>,
    overviews: super::OverviewsArg,
) -> i32 {
    use lulc_nodes::kinds::mosaic::{MosaicParams, TileMap, mosaic, order_tiles};
    use lulc_nodes::raster::OverviewResampling;
    let params = MosaicParams {
        crs,
        res,
        bbox: bbox.map(|b| [b[0], b[1], b[2], b[3]]),
        overviews: match overviews {
            super::OverviewsArg::Mode => OverviewResampling::Mode,
            super::OverviewsArg::Nearest => OverviewResampling::Nearest,
        },
        ..MosaicParams::default()
    };
    let fail = |e: lulc_engine::NodeError| {
        eprintln!("error: {}", e.message);
        if let Some(help) = e.help {
            eprintln!("  help: {help}");
        }
        EXIT_FAILED
    };
    if let Err(errs) = <lulc_nodes::kinds::mosaic::Mosaic as lulc_engine::Node>::check(&params) {
        for (param, msg) in errs {
            eprintln!("error: --{param}: {msg}");
        }
        return EXIT_USAGE;
    }
    let started = std::time::Instant::now();
    let tiles = match maps
        .iter()
        .map(|p| TileMap::from_file(p))
        .collect::<Result<Vec<_>, _>>()
        .and_then(order_tiles)
    {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let done = match mosaic(&tiles, &params, out) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let qml = out.with_extension("qml");
    let csv = out.with_extension("tiles.csv");
    let legend = &tiles[0].meta.legend;
    for (path, text) in [
        (&qml, lulc_nodes::kinds::infer::qml(legend)),
        (&csv, done.tiles_csv.clone()),
    ] {
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            return EXIT_FAILED;
        }
    }
    let g = &done.grid;
    println!(
        "mosaic of {} maps ({} reprojected): {} x {} px of {} m in {}; {} px with a class, {} \
         in overlaps; {:.1}s",
        tiles.len(),
        done.reprojected_tiles,
        g.width,
        g.height,
        g.geo_transform[1],
        lulc_nodes::raster::crs_label(&g.crs_wkt),
        done.class_pixels.values().sum::<u64>(),
        done.overlap_pixels,
        started.elapsed().as_secs_f64()
    );
    if let Some(km2) = &done.class_km2 {
        println!(
            "mapped area {:.3} km2, each pixel measured on its own tile's grid (per tile in the \
             .tiles.csv)",
            km2.values().sum::<f64>()
        );
    }
    println!(
        "wrote {}, {}, {}",
        out.display(),
        qml.display(),
        csv.display()
    );
    EXIT_OK
}

fn tiles(aoi: &Path, grid: Option<&str>) -> i32 {
    use lulc_nodes::tiling::{Aoi, GridTiling};
    let area = match Aoi::read(aoi) {
        Ok(a) => a,
        Err(e) => {
            output::eprint_diag(e);
            return EXIT_FAILED;
        }
    };
    let (tiles, what) = match grid {
        None => (area.s2_tiles(), "Sentinel-2 tiles"),
        Some(text) => {
            let tiling: GridTiling = match serde_saphyr::from_str(text) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!(
                        "error: --grid `{text}`: {e}\n  help: give {{crs: \"EPSG:3405\", bbox: \
                         [minx, miny, maxx, maxy], res: 10, tile_px: 5000}}"
                    );
                    return EXIT_USAGE;
                }
            };
            (tiling.covering(&area), "tiles of the grid")
        }
    };
    match tiles {
        Ok(t) if t.is_empty() => {
            eprintln!("error: no tile covers `{}`", aoi.display());
            EXIT_FAILED
        }
        Ok(t) => {
            let [w, s, e, n] = area.bbox();
            println!(
                "# {} {what} cover `{}` (lon {w:.3}..{e:.3}, lat {s:.3}..{n:.3})",
                t.len(),
                aoi.display()
            );
            println!("tiles: [{}]", t.join(", "));
            EXIT_OK
        }
        Err(e) => {
            output::eprint_diag(e);
            EXIT_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert_eq!(parse_size("10MiB").unwrap(), 10 << 20);
        assert!(parse_size("3X").is_err());
        assert!(parse_size("abc").is_err());
    }
}
