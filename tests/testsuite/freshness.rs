//! Change one thing, assert exactly which steps run and the reason printed (after cargo's
//! tests/testsuite/freshness.rs).

use crate::support::{Project, YEARLY};

fn ids(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn first_run_runs_everything_second_run_nothing() {
    let p = Project::new(YEARLY);
    let r = p.run(&[]);
    r.assert_ok();
    // raw 2017..2021 (padded), window 2018..2020, all
    assert_eq!(r.steps_with("ran").len(), 5 + 3 + 1);
    assert_eq!(r.step("raw[year=2017]")["reason"], "never run");
    let r2 = p.run(&[]);
    r2.assert_ok();
    assert!(r2.steps_with("ran").is_empty(), "{}", r2.stdout);
    assert_eq!(r2.steps_with("cached").len(), 9);
}

#[test]
fn cross_partition_inputs_reach_neighbour_years() {
    let p = Project::new(YEARLY);
    p.run(&[]).assert_ok();
    let show = p.lulc(&["show", "pipeline.yaml", "window[year=2018]", "--json"]);
    show.assert_ok();
    let doc = show.json();
    let path = doc["outputs"]["out"]["files"]["value.json"]["path"]
        .as_str()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(value, serde_json::json!(["v2017", "v2018", "v2019"]));
}

#[test]
fn changing_one_param_reruns_that_branch_with_reason() {
    let p = Project::new(YEARLY);
    p.run(&[]).assert_ok();
    let spec = YEARLY.replace(
        "params: { value: \"v${year}\" }",
        "params: { value: \"w${year}\" }",
    );
    p.write_spec(&spec);
    let plan = p.plan(&[]);
    plan.assert_ok();
    assert_eq!(plan.step("raw[year=2019]")["status"], "dirty");
    assert_eq!(
        plan.step("raw[year=2019]")["reason"],
        "param `value` changed (v2019 -> w2019)"
    );
    assert_eq!(plan.step("window[year=2019]")["status"], "maybe");
    let r = p.run(&[]);
    r.assert_ok();
    assert_eq!(r.steps_with("ran").len(), 9);
    assert_eq!(
        r.step("window[year=2019]")["reason"],
        "input `parts` changed"
    );
}

#[test]
fn plain_text_plan_renders_typed_reasons() {
    let p = Project::new(YEARLY);
    p.run(&[]).assert_ok();
    let r = p.lulc(&["plan", "pipeline.yaml", "--set", "all.note=x"]);
    r.assert_ok();
    assert!(
        r.stdout
            .contains(r#"[DIRTY] all: param `note` changed ("" -> x)"#),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("8 fresh, 1 dirty"), "{}", r.stdout);
}

#[test]
fn early_cutoff_identical_output_leaves_downstream_fresh() {
    let p = Project::new(YEARLY);
    p.run(&[]).assert_ok();
    // `note` changes the key of raw[*] but not their output bytes.
    let r = p.run(&["--set", "raw.note=reworded"]);
    r.assert_ok();
    assert_eq!(r.steps_with("ran").len(), 5, "{}", r.stdout);
    assert!(r.steps_with("ran").iter().all(|s| s.starts_with("raw[")));
    assert_eq!(
        r.step("raw[year=2018]")["reason"],
        r#"param `note` changed ("" -> reworded)"#
    );
    assert_eq!(r.step("window[year=2018]")["status"], "cached");
    assert_eq!(r.step("all")["status"], "cached");
}

#[test]
fn adding_a_year_runs_only_that_years_branch() {
    let p = Project::new(YEARLY);
    p.run(&[]).assert_ok();
    let r = p.run(&["--set", "years=2018..2021"]);
    r.assert_ok();
    // new: raw 2022 and window 2021; window 2020 is unchanged (its inputs 2019..2021 existed);
    // `all` gathers every year so it re-runs.
    assert_eq!(
        r.steps_with("ran"),
        ids(&["all", "raw[year=2022]", "window[year=2021]"])
    );
    assert_eq!(r.step("all")["reason"], "input `parts` changed");
    assert_eq!(r.step("window[year=2020]")["status"], "cached");
}

#[test]
fn sweep_adds_only_the_new_points() {
    let spec = r#"
name: sweep
params:
  k: 1
sweep:
  score.op: [list]
nodes:
  base:
    kind: emit
    params: { value: 1 }
  score:
    kind: combine
    inputs: { parts: base }
  report:
    kind: combine
    inputs: { parts: score }
"#;
    let p = Project::new(spec);
    let r = p.run(&[]);
    r.assert_ok();
    assert_eq!(
        r.steps_with("ran"),
        ids(&["base", "report[op=list]", "score[op=list]"])
    );
    p.write_spec(&spec.replace("[list]", "[list, sum]"));
    let r = p.run(&[]);
    r.assert_ok();
    assert_eq!(
        r.steps_with("ran"),
        ids(&["report[op=sum]", "score[op=sum]"])
    );
    assert_eq!(r.step("base")["status"], "cached");
    assert_eq!(r.step("score[op=sum]")["reason"], "never run");
}

#[test]
fn sweep_shares_the_unaffected_prefix() {
    let spec = r#"
name: grid
sweep:
  score.note: [a, b, c]
  report.note: [x, y]
nodes:
  base: { kind: emit, params: { value: 2 } }
  score: { kind: combine, inputs: { parts: base } }
  report: { kind: combine, inputs: { parts: score } }
"#;
    let p = Project::new(spec);
    let plan = p.plan(&[]);
    plan.assert_ok();
    let steps = plan.json()["steps"].as_array().unwrap().len();
    assert_eq!(steps, 1 + 3 + 6);
    let ids: Vec<String> = plan.json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    // two axes sweep params named `note`: dims take the full key to stay unambiguous
    assert!(
        ids.contains(&"report[report.note=x,score.note=a]".to_string()),
        "{ids:?}"
    );
    let r = p.run(&["--jobs", "1"]);
    r.assert_ok();
    // `note` does not change `score`'s output, so the three score points produce identical
    // bytes and report[x,a], report[x,b], report[x,c] share one key: computed once, then cached.
    assert_eq!(
        r.steps_with("ran").len(),
        1 + 3 + 2,
        "{:?}",
        r.steps_with("ran")
    );
    assert_eq!(r.steps_with("cached").len(), 4);
}

#[test]
fn jobs_do_not_change_digests() {
    let spec = YEARLY.replace("2018..2020", "2010..2030");
    let a = Project::new(&spec);
    let b = Project::new(&spec);
    let ra = a.run(&["--jobs", "1"]);
    let rb = b.run(&["--jobs", "4"]);
    ra.assert_ok();
    rb.assert_ok();
    for id in ["all", "window[year=2015]", "raw[year=2031]"] {
        assert_eq!(ra.step(id)["outputs"], rb.step(id)["outputs"], "{id}");
        assert_eq!(ra.step(id)["key"], rb.step(id)["key"], "{id}");
    }
}

#[test]
fn plan_runs_nothing_and_reports_new_then_fresh() {
    let p = Project::new(YEARLY);
    let plan = p.plan(&[]);
    plan.assert_ok();
    assert_eq!(plan.steps_with("new").len(), 9);
    assert!(p.blobs().is_empty(), "plan must not compute anything");
    p.run(&[]).assert_ok();
    let plan = p.plan(&[]);
    assert_eq!(plan.steps_with("fresh").len(), 9);
}

/// A sample table beside the spec, read by `samples_csv`, and a `train` fed from it.
const TABLE_SPEC: &str = r#"
name: table
nodes:
  table:
    kind: samples_csv
    params: { path: data/samples.csv }
"#;

fn table(rows: &[(&str, &str, f64)]) -> String {
    let mut t = String::from("id,label,NDVI_1,NDVI_2\n");
    for (id, label, v) in rows {
        t.push_str(&format!("{id},{label},{v},{}\n", v + 0.1));
    }
    t
}

#[test]
fn editing_a_file_a_param_names_reruns_its_step_with_reason() {
    let p = Project::new(TABLE_SPEC);
    std::fs::create_dir(p.path().join("data")).unwrap();
    let csv = p.path().join("data/samples.csv");
    let first = table(&[("a", "Rice", 0.5), ("b", "Water", 0.1)]);
    std::fs::write(&csv, &first).unwrap();
    let r = p.run(&[]);
    r.assert_ok();
    assert_eq!(r.steps_with("ran"), ids(&["table"]));
    // Untouched (even rewritten with the same bytes): cached.
    std::fs::write(&csv, &first).unwrap();
    assert_eq!(p.run(&[]).steps_with("cached"), ids(&["table"]));
    // Same path, other contents: the plan says why, and the run re-reads the table.
    std::fs::write(&csv, table(&[("a", "Rice", 0.6), ("b", "Water", 0.1)])).unwrap();
    let plan = p.plan(&[]);
    plan.assert_ok();
    assert_eq!(plan.step("table")["status"], "dirty");
    assert_eq!(
        plan.step("table")["reason"],
        "the file param `path` names changed"
    );
    let r = p.run(&[]);
    r.assert_ok();
    assert_eq!(r.steps_with("ran"), ids(&["table"]));
    // Back to the first contents: the first result, from the store.
    std::fs::write(&csv, &first).unwrap();
    assert_eq!(p.run(&[]).steps_with("cached"), ids(&["table"]));
}

#[test]
fn a_file_rewritten_while_its_step_reads_it_is_not_recorded_under_its_old_key() {
    let p = Project::new(
        "name: race\nnodes:\n  read: { kind: emit, params: { from_file: v.txt, delay_ms: 1500 } }\n",
    );
    let file = p.path().join("v.txt");
    std::fs::write(&file, "old").unwrap();
    // The key is made from `old`; the node reads the file after its delay, by then `new`.
    let child = p
        .cmd(&["run", "pipeline.yaml", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::write(&file, "new").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let step = &doc["steps"][0];
    assert_eq!(step["status"], "failed", "{stdout}");
    assert!(
        step["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("the file `v.txt` (param `from_file`) changed while the step ran"),
        "{stdout}"
    );
    // Nothing was recorded under `old`'s key: the next run computes `new`, then it is cached.
    let r = p.run(&[]);
    r.assert_ok();
    assert_eq!(r.steps_with("ran"), ids(&["read"]));
    let ex = p.lulc(&["export", "pipeline.yaml", "read", "--out", "out"]);
    ex.assert_ok();
    let value = p.path().join("out/read/value.json");
    assert_eq!(std::fs::read_to_string(value).unwrap(), "\"new\"");
    std::fs::write(&file, "old").unwrap();
    let r = p.run(&[]);
    assert_eq!(
        r.steps_with("ran"),
        ids(&["read"]),
        "`old` was never stored"
    );
}
