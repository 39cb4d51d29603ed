//! Every shipped spec in `pipelines/` is valid; the demo chain runs end to end.

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
