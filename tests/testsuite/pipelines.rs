//! Every shipped spec in `pipelines/` is valid and plans offline; the demo chain runs end to end;
//! adding a year to `yearly.yaml` runs only that year's steps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use crate::support::{bin, run_demo, step_outputs};

#[test]
fn every_shipped_pipeline_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut specs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    specs.sort();
    assert!(!specs.is_empty());
    for spec in specs {
        let out = Command::new(bin())
            .arg("validate")
            .arg(&spec)
            .env("LULC_TEST_KINDS", "1")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} is invalid:\n{}",
            spec.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // And plans on an empty store without reading any data (vietnam.yaml's sources are
        // URLs and user files that are not there).
        let store = tempfile::tempdir().unwrap();
        let out = Command::new(bin())
            .arg("plan")
            .arg(&spec)
            .args(["--json", "--store"])
            .arg(store.path())
            .env("LULC_TEST_KINDS", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} does not plan:\n{}",
            spec.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let steps = doc["steps"].as_array().unwrap();
        assert!(!steps.is_empty(), "{}", spec.display());
        assert!(
            steps.iter().all(|s| s["status"] == "new"),
            "{}: {doc}",
            spec.display()
        );
    }
}

#[test]
fn engine_demo_runs_and_an_added_year_runs_only_its_branch() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/engine-demo.yaml");
    let run = |extra: &[&str]| {
        let out = Command::new(bin())
            .args(["run", spec.to_str().unwrap(), "--json", "--store"])
            .arg(dir.path())
            .args(extra)
            .env("LULC_TEST_KINDS", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    run(&[]);
    let doc = run(&["--set", "years=2017..2023"]);
    let mut ran: Vec<String> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "ran")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    ran.sort();
    // acquire 2024 (padding), composite 2023 and migrate 2023 per sweep point, and the steps
    // that gather every year (train, count) per sweep point.
    let expected_new = ran
        .iter()
        .filter(|id| id.contains("2023") || id.contains("2024"))
        .count();
    assert_eq!(expected_new, 1 + 1 + 3, "{ran:?}");
    assert!(
        ran.iter().all(|id| id.contains("2023")
            || id.contains("2024")
            || id.starts_with("train[")
            || id.starts_with("count[")),
        "{ran:?}"
    );
    assert!(ran.iter().any(|id| id == "composite[year=2023]"), "{ran:?}");
    assert!(
        !ran.iter().any(|id| id == "composite[year=2022]"),
        "2022's inputs 2021..2023 all existed: {ran:?}"
    );
}

/// `pipelines/yearly.yaml` on a 32 px area: run for 2020-2021, then again with 2022 added. The
/// second run must run exactly the steps that did not exist before (2022's branch, and the
/// acquisitions of 2023 its gap-filling composites read) plus the existing steps that read one
/// of them (the spec's `change`, which reads every year's map); every other step is `cached`.
/// The expected set comes from the step graph (`lulc graph`), not from counts.
#[test]
fn yearly_adding_a_year_runs_only_that_years_steps_and_change() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/yearly.yaml");
    let store = tempfile::tempdir().unwrap();
    // The simulated area covers only the years the runs acquire (2019..2023 with the padding).
    let small = ["--set", "size=32", "--set", "aoi.years=2019..2023"];
    let lulc = |cmd: &str, years: &str, extra: &[&str]| {
        let out = Command::new(bin())
            .args([cmd, spec.to_str().unwrap()])
            .args(small)
            .args(["--set", &format!("years={years}")])
            .args(extra)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lulc {cmd} {years}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let store_arg = ["--json", "--store", store.path().to_str().unwrap()];
    let steps = |doc: &str| -> Vec<(String, String, serde_json::Value)> {
        let doc: serde_json::Value = serde_json::from_str(doc).unwrap();
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    s["status"].as_str().unwrap().to_string(),
                    s["dims"]["year"].clone(),
                )
            })
            .collect()
    };
    let first = steps(&lulc("run", "2020..2021", &store_arg));
    assert!(
        first.iter().all(|(_, status, _)| status == "ran"),
        "{first:?}"
    );
    let before: BTreeSet<String> = first.into_iter().map(|(id, ..)| id).collect();

    let second = steps(&lulc("run", "2020..2022", &store_arg));
    let new: BTreeSet<String> = second
        .iter()
        .map(|(id, ..)| id.clone())
        .filter(|id| !before.contains(id))
        .collect();
    // Step edges of the 2020-2022 plan (mermaid: `s3["id"]` nodes, `s3 --> s7` edges).
    let graph = lulc("graph", "2020..2022", &["--format", "mermaid"]);
    let mut names = BTreeMap::new();
    let mut edges = Vec::new();
    for line in graph.lines().map(str::trim) {
        if let Some((a, b)) = line.split_once(" --> ") {
            edges.push((a.to_string(), b.to_string()));
        } else if let Some((node, rest)) = line.split_once("[\"") {
            names.insert(node.to_string(), rest.trim_end_matches("\"]").to_string());
        }
    }
    assert_eq!(names.len(), second.len(), "{graph}");
    let readers_of_new: BTreeSet<String> = edges
        .iter()
        .filter(|(a, b)| new.contains(&names[a]) && before.contains(&names[b]))
        .map(|(_, b)| names[b].clone())
        .collect();
    // The one step of the spec that spans every year (the header of yearly.yaml names it).
    assert_eq!(
        readers_of_new,
        BTreeSet::from(["change".to_string()]),
        "{new:?}"
    );
    // The new steps are 2022's branch and the acquisitions and masks of 2023.
    for (id, _, year) in second.iter().filter(|(id, ..)| new.contains(id)) {
        let padding = ["s2", "s1", "palsar", "clear"]
            .iter()
            .any(|n| id.starts_with(&format!("{n}[")));
        let expected = if padding && year == 2023 { 2023 } else { 2022 };
        assert_eq!(year, expected, "{id} is new in the 2020-2022 plan");
    }
    assert!(
        new.contains("composite[year=2022]") && new.contains("s2[year=2023]"),
        "{new:?}"
    );
    assert!(
        !new.contains("s2[year=2022]"),
        "2022 was acquired as padding of the first run"
    );
    let expected: BTreeSet<String> = new.union(&readers_of_new).cloned().collect();
    let ran: BTreeSet<String> = second
        .iter()
        .filter(|(_, status, _)| status == "ran")
        .map(|(id, ..)| id.clone())
        .collect();
    assert_eq!(ran, expected);
    let others: Vec<&(String, String, serde_json::Value)> = second
        .iter()
        .filter(|(id, ..)| !expected.contains(id))
        .collect();
    assert_eq!(others.len(), before.len() - 1, "every old step but change");
    assert!(
        others.iter().all(|(_, status, _)| status == "cached"),
        "{others:?}"
    );
}

/// The demo's whole chain (simulate to assess) on a small area and two years, run twice into
/// two stores with `--jobs 2` and `--jobs 1`: every step succeeds, the maps and accuracy are
/// real, and every output (models, maps, reports) has the same digest.
#[test]
fn demo_chain_runs_end_to_end_and_is_identical_whatever_jobs() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/demo.yaml");
    let small = ["--set", "size=64", "--set", "years=2020..2021"];
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = run_demo(a.path(), "2", &small);
    let second = run_demo(b.path(), "1", &small);
    let (oa, ob) = (step_outputs(&first), step_outputs(&second));
    assert_eq!(oa.len(), ob.len());
    for (id, out) in &oa {
        assert_eq!(
            Some(out),
            ob.get(id),
            "{id} differs between --jobs 2 and --jobs 1"
        );
    }
    let steps = first["steps"].as_array().unwrap();
    for y in [2020, 2021] {
        let accuracy = steps
            .iter()
            .find(|s| s["id"] == format!("accuracy[year={y}]"))
            .unwrap();
        let m = &accuracy["metrics"];
        let overall = m["oa"].as_f64().unwrap();
        // 14 classes: chance is about 0.07; a trained CNN on the simulated area is far above.
        assert!(overall > 0.6 && overall <= 1.0, "{y}: {m}");
        assert!(m["n_points"].as_u64().unwrap() > 100, "{y}: {m}");
    }
    report_shows_the_figures(&spec, a.path(), &first);
    // The map is a real UInt8 GeoTIFF with a colour table (read back with GDAL's gdalinfo when
    // present, else the TIFF magic).
    let show = Command::new(bin())
        .args(["show", spec.to_str().unwrap(), "map[year=2021]", "--json"])
        .args(["--set", "size=64", "--set", "years=2020..2021", "--store"])
        .arg(a.path())
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let tif = doc["outputs"]["map"]["files"]["map.tif"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = std::fs::read(&tif).unwrap();
    assert!(bytes.starts_with(b"II*\0") || bytes.starts_with(b"II+\0"));
    if let Ok(info) = Command::new("gdalinfo").arg(&tif).output() {
        let text = String::from_utf8_lossy(&info.stdout);
        assert!(text.contains("Size is 64, 64"), "{text}");
        assert!(
            text.contains("Type=Byte") && text.contains("Color Table"),
            "{text}"
        );
    }
}

/// `lulc report` on the demo chain's store: one HTML file with the graph, the accuracy table,
/// the bar chart of labels kept per year, map previews and figures inlined; rendered by headless
/// Chromium (when installed, as in CI), the screenshot shows the bars and the maps' colours.
fn report_shows_the_figures(spec: &Path, store: &Path, run: &serde_json::Value) {
    let out = tempfile::tempdir().unwrap();
    let r = Command::new(bin())
        .args(["report", spec.to_str().unwrap(), "--out"])
        .arg(out.path())
        .args(["--set", "size=64", "--set", "years=2020..2021", "--store"])
        .arg(store)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let page = out.path().join("index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<svg"), "no pipeline graph");
    assert!(html.contains("accuracy[year=2021]"), "no accuracy table");
    // 4 map previews (map, map_unmigrated x 2 years), 4 confusion matrices, 1 areas plot.
    assert_eq!(html.matches("<img src=\"data:image/png;base64,").count(), 9);
    assert!(
        html.contains("step <code>change</code>"),
        "figure without provenance"
    );
    assert!(!html.contains("src=\"http"), "the page must open offline");
    // Labels kept per year: one bar per migrate step (one series: no sweep), the value the step
    // recorded, its step id and key.
    let kept = &html[html
        .find("<h2 id=\"kept\">")
        .expect("no chart of labels kept")..];
    let kept = &kept[..kept.find("</table>").unwrap()];
    let bar_colour = "#1f77b4";
    assert_eq!(
        kept.matches(&format!("fill=\"{bar_colour}\"")).count(),
        2,
        "{kept}"
    );
    for y in [2020, 2021] {
        let step = run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == format!("migrated[year={y}]"))
            .unwrap();
        let (n, key) = (
            step["metrics"]["kept"].as_u64().unwrap(),
            step["key"].as_str().unwrap(),
        );
        assert!(n > 100, "{y}: {n} labels kept");
        assert!(
            kept.contains(&format!("<title>migrated[year={y}]: {n} kept of ")),
            "{y}: {kept}"
        );
        assert!(
            kept.contains(&format!(
                "<code>migrated[year={y}]</code> <code>{}</code>",
                &key[..16]
            )),
            "{y}: {kept}"
        );
    }
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
    else {
        eprintln!("chromium not installed: the page was checked, not rendered");
        return;
    };
    let shot = out.path().join("shot.png");
    let status = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,2400")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(shot.exists(), "{}", String::from_utf8_lossy(&status.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let pixels = |[r, g, b]: [u8; 3]| {
        buf[..info.buffer_size()]
            .chunks(px)
            .filter(|p| p[0] == r && p[1] == g && p[2] == b)
            .count()
    };
    // The two bars: 40 px wide, the taller at least half of the 200 px plot.
    let bars = pixels([0x1f, 0x77, 0xb4]);
    assert!(
        bars > 4000,
        "the rendered page shows {bars} pixels of the bars"
    );
    // The rice colour of the legend fills large parts of the simulated area's maps.
    let [r, g, b] = lulc_nodes::classes::Legend::default().rgb(3);
    let rice = pixels([r, g, b]);
    assert!(rice > 2000, "the rendered page shows {rice} rice pixels");
}
