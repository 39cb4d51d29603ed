//! `lulc report SPEC --out DIR`: one self-contained HTML page (`DIR/index.html`, every image
//! inlined as a data URI, no script, opens offline) of what the store holds for a spec: the
//! pipeline graph (SVG), every step with its status, compute time and key, the accuracy of every
//! `assess` step, OA over a sweep (heatmap or bars), the reference labels kept per year by the
//! `migrate` steps (grouped bars, one series per sweep point), the figures the steps drew
//! (confusion matrices, class areas) and a preview of every map with its legend. Each figure
//! names the steps and keys it comes from. Runs nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use lulc_cache::Store;
use lulc_engine::Plan;
use lulc_engine::exec::{Outcome, Status};
use lulc_engine::plan::{Dims, Step};
use lulc_nodes::raster::{RasterReader, Window};
use serde_json::Value;

use super::commands::{load, open_store_read, read_manifest, step_status};
use super::{EXIT_FAILED, EXIT_OK, SpecArgs, StoreArgs};

/// Longest side of a map preview, in pixels.
const PREVIEW_PX: usize = 512;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The node-level graph as SVG: nodes in columns by their longest path from a source.
fn graph_svg(plan: &Plan) -> String {
    let mut names: Vec<&str> = Vec::new();
    let mut kind: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &plan.steps {
        if !kind.contains_key(s.node.as_str()) {
            names.push(&s.node);
            kind.insert(&s.node, s.kind);
        }
    }
    let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
    for e in plan.graph.edge_indices() {
        let (a, b) = plan.graph.edge_endpoints(e).expect("edge");
        let (a, b) = (plan.graph[a], plan.graph[b]);
        let (na, nb) = (
            index[plan.steps[a].node.as_str()],
            index[plan.steps[b].node.as_str()],
        );
        if na != nb {
            edges.insert((na, nb));
        }
    }
    // Longest-path layers (the node graph is acyclic: the step graph is).
    let mut layer = vec![0usize; names.len()];
    for _ in 0..names.len() {
        let mut changed = false;
        for &(a, b) in &edges {
            if layer[b] < layer[a] + 1 {
                layer[b] = layer[a] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let (bw, bh, gx, gy) = (150, 40, 40, 14);
    let mut row_in_layer: BTreeMap<usize, usize> = BTreeMap::new();
    let mut pos = vec![(0, 0); names.len()];
    for i in 0..names.len() {
        let r = row_in_layer.entry(layer[i]).or_insert(0);
        pos[i] = (10 + layer[i] * (bw + gx), 10 + *r * (bh + gy));
        *r += 1;
    }
    let width = pos.iter().map(|p| p.0 + bw + 10).max().unwrap_or(100);
    let height = pos.iter().map(|p| p.1 + bh + 10).max().unwrap_or(60);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\
         <defs><marker id=\"a\" markerWidth=\"8\" markerHeight=\"8\" refX=\"8\" refY=\"4\" \
         orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#777\"/></marker></defs>"
    );
    for &(a, b) in &edges {
        let (x1, y1) = (pos[a].0 + bw, pos[a].1 + bh / 2);
        let (x2, y2) = (pos[b].0, pos[b].1 + bh / 2);
        let _ = write!(
            svg,
            "<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"#999\" \
             marker-end=\"url(#a)\"/>"
        );
    }
    for (i, n) in names.iter().enumerate() {
        let (x, y) = pos[i];
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{y}\" width=\"{bw}\" height=\"{bh}\" rx=\"5\" fill=\"#eef3fb\" \
             stroke=\"#4a6fa5\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" \
             font-weight=\"bold\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" \
             fill=\"#555\">{}</text>",
            x + bw / 2,
            y + 17,
            esc(n),
            x + bw / 2,
            y + 32,
            esc(kind[n])
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A PNG preview of a classified map (UInt8 with a colour table), at most
/// [`PREVIEW_PX`] on its longest side, read row block by row block.
fn map_preview(path: &Path) -> Result<Vec<u8>, String> {
    let r = RasterReader::open(path).map_err(|e| e.to_string())?;
    let g = r.grid().clone();
    let step = g.width.max(g.height).div_ceil(PREVIEW_PX).max(1);
    let (w, h) = (g.width.div_ceil(step), g.height.div_ceil(step));
    let mut colours = [[255u8, 255, 255]; 256];
    for (code, [cr, cg, cb, ca]) in r.color_table(1).map_err(|e| e.to_string())? {
        if ca > 0 {
            colours[usize::from(code)] = [cr, cg, cb];
        }
    }
    let mut rgb = vec![255u8; w * h * 3];
    for (oy, y) in (0..g.height).step_by(step).enumerate() {
        let row = r
            .read_window_u8(1, &Window::new(0, y, g.width, 1))
            .map_err(|e| e.to_string())?;
        for (ox, x) in (0..g.width).step_by(step).enumerate() {
            rgb[(oy * w + ox) * 3..(oy * w + ox) * 3 + 3]
                .copy_from_slice(&colours[usize::from(row[x])]);
        }
    }
    lulc_nodes::plot::encode_png(&rgb, w as u32, h as u32)
}

fn metric_text(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => format!("{:.4}", n.as_f64().unwrap_or(0.0)),
        Value::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

fn page(plan: &Plan, store: &Store, outcomes: &[Outcome]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>lulc report: {name}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}\
         table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;\
         padding:2px 6px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         figure{{display:inline-block;margin:0 1em 1em 0;vertical-align:top}}\
         figcaption{{font-size:12px;color:#555}}code{{font-size:12px}}</style></head><body>\
         <h1>lulc report: {name}</h1><p>Spec <code>{spec}</code>, store <code>{store}</code>. \
         Every figure names the step and the key of the result it shows.</p>",
        name = esc(&plan.name),
        spec = esc(&plan.spec_path.display().to_string()),
        store = esc(&store.root().display().to_string()),
    );
    h.push_str("<h2 id=\"graph\">Pipeline</h2>");
    h.push_str("<div style=\"overflow-x:auto\">");
    h.push_str(&graph_svg(plan));
    h.push_str("</div>");
    h.push_str("<!--nav-->");
    let mut steps = String::new();

    // Steps: status, compute time (of the stored result), key.
    let _ = write!(
        steps,
        "<h2 id=\"steps\">Steps ({})</h2><table><tr><th>step</th><th>kind</th><th>status</th>\
         <th>compute s</th><th>key</th></tr>",
        plan.steps.len()
    );
    let mut total = 0.0;
    for (s, o) in plan.steps.iter().zip(outcomes) {
        let secs = o
            .key
            .as_deref()
            .filter(|_| o.status == Status::Fresh)
            .and_then(|k| store.lookup(k).ok().flatten())
            .map(|r| r.duration_s);
        total += secs.unwrap_or(0.0);
        let _ = write!(
            steps,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&s.id),
            esc(s.kind),
            o.status.as_str(),
            secs.map(|t| format!("{t:.2}")).unwrap_or_default(),
            o.key
                .as_deref()
                .map(|k| &k[..k.len().min(16)])
                .unwrap_or("")
        );
    }
    let _ = write!(
        steps,
        "</table><p>Compute time of the stored results, summed: {total:.1} s.</p>"
    );

    // Accuracy of every assess step.
    let assess: Vec<usize> = (0..plan.steps.len())
        .filter(|&i| plan.steps[i].kind == "assess" && outcomes[i].status == Status::Fresh)
        .collect();
    if !assess.is_empty() {
        let cols = ["oa", "oa_area", "oa_mean", "oa_sd", "n_points", "n_dropped"];
        h.push_str("<h2 id=\"accuracy\">Accuracy</h2><table><tr><th>step</th>");
        for c in cols {
            let _ = write!(h, "<th>{c}</th>");
        }
        h.push_str("<th>key</th></tr>");
        for &i in &assess {
            let m = &outcomes[i].metrics;
            let _ = write!(h, "<tr><td>{}</td>", esc(&plan.steps[i].id));
            for c in cols {
                let _ = write!(
                    h,
                    "<td>{}</td>",
                    m.get(c).map(metric_text).unwrap_or_default()
                );
            }
            let key = outcomes[i].key.as_deref().unwrap_or("");
            let _ = write!(
                h,
                "<td><code>{}</code></td></tr>",
                &key[..key.len().min(16)]
            );
        }
        h.push_str("</table>");
    }

    if let Some(svg) = sweep_figure(plan, outcomes) {
        h.push_str("<h2 id=\"sweep\">Sweep</h2><figure>");
        h.push_str(&svg);
        h.push_str(
            "<figcaption>Mean of the metric <code>oa</code> of the <code>assess</code> steps \
             of each sweep point; each step and its key is a row of the Accuracy table above.\
             </figcaption></figure>",
        );
    }

    if let Some(kept) = kept_per_year(plan, outcomes) {
        h.push_str("<h2 id=\"kept\">Reference labels kept per year</h2>");
        h.push_str(&kept.html());
    }

    // Figures the steps drew, and map previews.
    let mut figures = String::new();
    let mut maps = String::new();
    for (i, s) in plan.steps.iter().enumerate() {
        let o = &outcomes[i];
        if o.status != Status::Fresh {
            continue;
        }
        let key = o.key.as_deref().unwrap_or("");
        for d in o.outputs.values() {
            let Some(m) = read_manifest(store, d) else {
                continue;
            };
            for (name, fd) in &m.files {
                let path = store.blob_path(fd);
                let caption = format!(
                    "<figcaption>{} — <code>{}</code>, step <code>{}</code>, key <code>{}</code>\
                     </figcaption>",
                    esc(name),
                    esc(s.kind),
                    esc(&s.id),
                    &key[..key.len().min(16)]
                );
                // Only what still has its digest is embedded (a blob changed in place since it
                // was written is left out, with a warning): a figure is checked as it is read,
                // a map before GDAL reads it.
                let changed = || {
                    eprintln!(
                        "warning: file `{name}` of `{}` changed in the store after it was \
                         written; left out of the report (run `lulc verify`, then `lulc run`)",
                        s.id
                    );
                };
                if name.ends_with(".png") {
                    match store.read_bytes(fd) {
                        Ok(bytes) => {
                            let _ = write!(
                                figures,
                                "<figure><img src=\"{}\" alt=\"{}\" style=\"max-width:560px\">{caption}\
                                 </figure>",
                                data_uri("image/png", &bytes),
                                esc(&format!("{} {}", s.id, name))
                            );
                        }
                        Err(
                            lulc_cache::CacheError::CorruptBlob { .. }
                            | lulc_cache::CacheError::MissingBlob { .. },
                        ) => changed(),
                        Err(_) => {}
                    }
                } else if name == "map.tif"
                    && store.blobs().rehash(fd).0 != lulc_cache::BlobState::Ok
                {
                    changed();
                } else if name == "map.tif"
                    && let Ok(png) = map_preview(&path)
                {
                    let _ = write!(
                        maps,
                        "<figure><img src=\"{}\" alt=\"{}\" width=\"256\" \
                         style=\"image-rendering:pixelated\">{caption}</figure>",
                        data_uri("image/png", &png),
                        esc(&format!("{} map", s.id))
                    );
                }
            }
        }
    }
    if !maps.is_empty() {
        h.push_str("<h2 id=\"maps\">Maps</h2>");
        h.push_str(&legend_html(plan, store, outcomes));
        h.push_str(&maps);
    }
    if !figures.is_empty() {
        h.push_str("<h2 id=\"figures\">Figures</h2>");
        h.push_str(&figures);
    }
    h.push_str(&steps);
    h.push_str("</body></html>\n");
    let nav: Vec<String> = [
        ("accuracy", "Accuracy"),
        ("sweep", "Sweep"),
        ("kept", "Labels kept"),
        ("maps", "Maps"),
        ("figures", "Figures"),
        ("steps", "Steps and timing"),
    ]
    .iter()
    .filter(|(id, _)| h.contains(&format!("<h2 id=\"{id}\">")))
    .map(|(id, title)| format!("<a href=\"#{id}\">{title}</a>"))
    .collect();
    h.replacen("<!--nav-->", &format!("<p>{}</p>", nav.join(" · ")), 1)
}

/// Mean OA of the `assess` steps per sweep point: a heatmap over a two-key sweep (the seed's
/// "accuracy by ED and SAD"), bars over a one-key sweep (a feature-set ablation); `None`
/// without a sweep or without assessed points.
fn sweep_figure(plan: &Plan, outcomes: &[Outcome]) -> Option<String> {
    let keys: Vec<&String> = plan.sweep.keys().collect();
    if keys.is_empty() || keys.len() > 2 {
        return None;
    }
    let label = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut sum: BTreeMap<Vec<String>, (f64, usize)> = BTreeMap::new();
    for (s, o) in plan.steps.iter().zip(outcomes) {
        if s.kind != "assess" || o.status != Status::Fresh {
            continue;
        }
        let Some(oa) = o.metrics.get("oa").and_then(Value::as_f64) else {
            continue;
        };
        let Some(point) = keys
            .iter()
            .map(|k| s.sweep.get(*k).map(label))
            .collect::<Option<Vec<String>>>()
        else {
            continue;
        };
        let e = sum.entry(point).or_insert((0.0, 0));
        e.0 += oa;
        e.1 += 1;
    }
    if sum.is_empty() {
        return None;
    }
    let values: Vec<Vec<String>> = keys
        .iter()
        .map(|k| plan.sweep[*k].iter().map(label).collect())
        .collect();
    let cell = |point: Vec<String>| sum.get(&point).map(|(t, n)| t / *n as f64);
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    Some(if keys.len() == 2 {
        heatmap_svg(&keys, &values[0], &values[1], |a, b| {
            cell(vec![a.to_string(), b.to_string()])
        })
    } else {
        bars_svg(&keys[0], &values[0], |a| cell(vec![a.to_string()]))
    })
}

/// OA (mean over the assessed years) over a grid: rows = values of `keys[0]`, columns = values
/// of `keys[1]`; darker = higher, the value written in each cell.
fn heatmap_svg(
    keys: &[String],
    rows: &[String],
    cols: &[String],
    oa: impl Fn(&str, &str) -> Option<f64>,
) -> String {
    let (cw, ch, left, top) = (90, 36, 110, 60);
    let all: Vec<f64> = rows
        .iter()
        .flat_map(|r| cols.iter().filter_map(|c| oa(r, c)))
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let title_px = (58 + keys[0].len() + keys[1].len()) * 8;
    let (w, h) = (
        (left + cw * cols.len() + 20).max(title_px),
        top + ch * rows.len() + 20,
    );
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\"><text x=\"4\" y=\"16\" \
         font-size=\"14\">Overall accuracy (mean over years) by {} (rows) and {} (columns)\
         </text>",
        esc(&keys[0]),
        esc(&keys[1])
    );
    for (j, c) in cols.iter().enumerate() {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}={}</text>",
            left + cw * j + cw / 2,
            top - 8,
            esc(&keys[1]),
            esc(c)
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + ch * i;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}={}</text>",
            left - 8,
            y + ch / 2 + 4,
            esc(&keys[0]),
            esc(r)
        );
        for (j, c) in cols.iter().enumerate() {
            let x = left + cw * j;
            let (fill, text, ink) = match oa(r, c) {
                Some(v) => {
                    let t = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
                    let mix = |to: f64| (255.0 - (255.0 - to) * (0.15 + 0.85 * t)).round() as u8;
                    let ink = if t > 0.55 { "#fff" } else { "#000" };
                    (
                        format!("#{:02x}{:02x}{:02x}", mix(8.0), mix(69.0), mix(148.0)),
                        format!("{:.1} %", v * 100.0),
                        ink,
                    )
                }
                None => ("#eeeeee".to_string(), "–".to_string(), "#000"),
            };
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{cw}\" height=\"{ch}\" fill=\"{fill}\" \
                 stroke=\"#fff\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" \
                 fill=\"{ink}\">{text}</text>",
                x + cw / 2,
                y + ch / 2 + 4
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// OA (mean over the assessed years) per value of one swept key, as bars.
fn bars_svg(key: &str, values: &[String], oa: impl Fn(&str) -> Option<f64>) -> String {
    let (bw, gap, left, top, plot_h) = (70, 20, 50, 40, 200);
    let w = (left + (bw + gap) * values.len() + 20).max((40 + key.len()) * 8);
    let h = top + plot_h + 40;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\"><text x=\"4\" y=\"16\" \
         font-size=\"14\">Overall accuracy (mean over years) by {}</text>\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#000\"/>",
        esc(key),
        top + plot_h,
        w - 10,
        top + plot_h
    );
    for (i, v) in values.iter().enumerate() {
        let x = left + (bw + gap) * i;
        if let Some(a) = oa(v) {
            let bh = (a.clamp(0.0, 1.0) * plot_h as f64).round() as usize;
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{}\" width=\"{bw}\" height=\"{bh}\" fill=\"#4a6fa5\"/>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{:.1} %</text>",
                top + plot_h - bh,
                x + bw / 2,
                top + plot_h - bh - 4,
                a * 100.0
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x + bw / 2,
            top + plot_h + 16,
            esc(v)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Colours of the series of the labels-kept chart (one per migrate node and sweep point),
/// none of them a class colour of the legend, so a rendered page tells bars from maps.
const SERIES_COLOURS: [&str; 12] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#393b79", "#ad494a", "#637939",
];

/// One bar of the labels-kept chart: what a `migrate` step recorded, and where it comes from.
struct KeptBar {
    series: usize,
    group: usize,
    kept: u64,
    dropped: u64,
    step: String,
    key: String,
}

/// The seed's figure "number of reference points kept per year": the metric `kept` of every
/// `migrate` step with a result, grouped by partition (the year), one series per migrate node
/// and sweep point.
struct KeptChart {
    /// Partition labels (`2020`, or `tile=48QWD,year=2020`), in order.
    groups: Vec<String>,
    /// Series labels (the node, or the sweep point `ed=0.1 sad=0.95`), in plan order.
    series: Vec<String>,
    bars: Vec<KeptBar>,
}

fn kept_per_year(plan: &Plan, outcomes: &[Outcome]) -> Option<KeptChart> {
    let migrate: Vec<usize> = (0..plan.steps.len())
        .filter(|&i| plan.steps[i].kind == "migrate" && outcomes[i].status == Status::Fresh)
        .filter(|&i| outcomes[i].metrics.get("kept").is_some_and(Value::is_u64))
        .collect();
    if migrate.is_empty() {
        return None;
    }
    let nodes: BTreeSet<&str> = migrate
        .iter()
        .map(|&i| plan.steps[i].node.as_str())
        .collect();
    let series_of = |s: &Step| {
        let point: Vec<String> = s
            .sweep
            .iter()
            .map(|(k, v)| match v {
                Value::String(t) => format!("{k}={t}"),
                other => format!("{k}={other}"),
            })
            .collect();
        match (point.is_empty(), nodes.len() > 1) {
            (true, _) => s.node.clone(),
            (false, false) => point.join(" "),
            (false, true) => format!("{} {}", s.node, point.join(" ")),
        }
    };
    let mut dims: Vec<&Dims> = migrate.iter().map(|&i| &plan.steps[i].dims).collect();
    dims.sort();
    dims.dedup();
    let group_label = |d: &Dims| match d.get("year") {
        Some(y) if d.len() == 1 => y.to_string(),
        _ => d
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    };
    let groups: Vec<String> = dims.iter().map(|d| group_label(d)).collect();
    let mut series: Vec<String> = Vec::new();
    let mut bars = Vec::new();
    for &i in &migrate {
        let s = &plan.steps[i];
        let label = series_of(s);
        let si = match series.iter().position(|l| *l == label) {
            Some(si) => si,
            None => {
                series.push(label);
                series.len() - 1
            }
        };
        let m = &outcomes[i].metrics;
        let key = outcomes[i].key.as_deref().unwrap_or("");
        bars.push(KeptBar {
            series: si,
            group: dims
                .iter()
                .position(|d| **d == s.dims)
                .expect("dims listed"),
            kept: m.get("kept").and_then(Value::as_u64).unwrap_or(0),
            dropped: m.get("dropped").and_then(Value::as_u64).unwrap_or(0),
            step: s.id.clone(),
            key: key[..key.len().min(16)].to_string(),
        });
    }
    Some(KeptChart {
        groups,
        series,
        bars,
    })
}

/// The smallest 1, 2 or 5 x 10^k at least `max / 5`: ticks of an axis from 0 to at least `max`.
fn tick_step(max: u64) -> u64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if max <= step * m * 5 {
                return step * m;
            }
        }
        step *= 10;
    }
}

impl KeptChart {
    /// The chart (SVG: grouped bars, a y axis, a legend when there are several series), its
    /// caption and a table of every bar's value, step and key.
    fn html(&self) -> String {
        let mut h = String::from("<figure>");
        h.push_str(&self.svg());
        h.push_str(
            "<figcaption>Reference labels kept per year: the metric <code>kept</code> of each \
             <code>migrate</code> step (labels of the reference year whose spectrum passed the \
             ED and SAD thresholds); the step and key of every bar are in the table below.\
             </figcaption></figure>",
        );
        h.push_str("<table><tr><th>series</th>");
        for g in &self.groups {
            let _ = write!(h, "<th>{}</th>", esc(g));
        }
        h.push_str("</tr>");
        for (si, s) in self.series.iter().enumerate() {
            let _ = write!(
                h,
                "<tr><td><span style=\"color:{}\">■</span> {}</td>",
                SERIES_COLOURS[si % SERIES_COLOURS.len()],
                esc(s)
            );
            for gi in 0..self.groups.len() {
                match self.bars.iter().find(|b| b.series == si && b.group == gi) {
                    Some(b) => {
                        let _ = write!(
                            h,
                            "<td>{} of {} <code>{}</code> <code>{}</code></td>",
                            b.kept,
                            b.kept + b.dropped,
                            esc(&b.step),
                            esc(&b.key)
                        );
                    }
                    None => h.push_str("<td></td>"),
                }
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
        h
    }

    fn svg(&self) -> String {
        let (ns, ng) = (self.series.len(), self.groups.len());
        let bw = if ns * ng <= 12 {
            40
        } else {
            (640 / (ns * ng)).clamp(6, 40)
        };
        let (gap, left, top, plot_h) = (24, 60, 40, 200);
        let group_w = ns * bw + gap;
        let max = self.bars.iter().map(|b| b.kept).max().unwrap_or(0).max(1);
        let step = tick_step(max);
        let y_max = max.div_ceil(step) * step;
        let legend_cols = 4;
        let legend_rows = if ns > 1 { ns.div_ceil(legend_cols) } else { 0 };
        let w = (left + group_w * ng + 20).max(560);
        let h = top + plot_h + 30 + legend_rows * 18 + 10;
        let y_of =
            |v: u64| top + plot_h - (v as f64 / y_max as f64 * plot_h as f64).round() as usize;
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             font-family=\"sans-serif\" font-size=\"12\"><text x=\"4\" y=\"16\" \
             font-size=\"14\">Reference labels kept per year (migrate, metric kept)</text>"
        );
        let mut t = 0;
        while t <= y_max {
            let y = y_of(t);
            let _ = write!(
                svg,
                "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#e4e4e4\"/>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{t}</text>",
                left + group_w * ng,
                left - 6,
                y + 4
            );
            t += step;
        }
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#000\"/>\
             <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#000\"/>",
            top + plot_h,
            top + plot_h,
            left + group_w * ng,
            top + plot_h
        );
        for (gi, g) in self.groups.iter().enumerate() {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                left + gap / 2 + group_w * gi + ns * bw / 2,
                top + plot_h + 16,
                esc(g)
            );
        }
        for b in &self.bars {
            let x = left + gap / 2 + group_w * b.group + bw * b.series;
            let y = y_of(b.kept);
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{bw}\" height=\"{}\" fill=\"{}\">\
                 <title>{}: {} kept of {} (key {})</title></rect>",
                top + plot_h - y,
                SERIES_COLOURS[b.series % SERIES_COLOURS.len()],
                esc(&b.step),
                b.kept,
                b.kept + b.dropped,
                esc(&b.key)
            );
            if ns <= 3 {
                let _ = write!(
                    svg,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                    x + bw / 2,
                    y.saturating_sub(4),
                    b.kept
                );
            }
        }
        if ns > 1 {
            for (si, s) in self.series.iter().enumerate() {
                let (x, y) = (
                    left + (si % legend_cols) * 170,
                    top + plot_h + 30 + (si / legend_cols) * 18,
                );
                let _ = write!(
                    svg,
                    "<rect x=\"{x}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
                     <text x=\"{}\" y=\"{}\">{}</text>",
                    SERIES_COLOURS[si % SERIES_COLOURS.len()],
                    x + 16,
                    y + 11,
                    esc(s)
                );
            }
        }
        svg.push_str("</svg>");
        svg
    }
}

/// A `#rrggbb` colour as is; anything else (it comes from a spec param) a neutral grey.
fn safe_colour(c: Option<&str>) -> &str {
    match c {
        Some(c)
            if c.len() == 7
                && c.starts_with('#')
                && c[1..].chars().all(|d| d.is_ascii_hexdigit()) =>
        {
            c
        }
        _ => "#cccccc",
    }
}

/// The legend of the first map: a colour swatch and name per class.
fn legend_html(plan: &Plan, store: &Store, outcomes: &[Outcome]) -> String {
    for (i, s) in plan.steps.iter().enumerate() {
        if s.kind != "infer" || outcomes[i].status != Status::Fresh {
            continue;
        }
        for d in outcomes[i].outputs.values() {
            let Some(m) = read_manifest(store, d) else {
                continue;
            };
            let Some(legend) = m.meta.get("legend").and_then(Value::as_array) else {
                continue;
            };
            let mut h = String::from("<p>");
            for c in legend {
                let _ = write!(
                    h,
                    "<span style=\"display:inline-block;margin-right:1em\"><span style=\"\
                     display:inline-block;width:12px;height:12px;background:{};\
                     border:1px solid #999\"></span> {} ({})</span>",
                    safe_colour(c.get("colour").and_then(Value::as_str)),
                    esc(c.get("name").and_then(Value::as_str).unwrap_or("")),
                    c.get("code").map(Value::to_string).unwrap_or_default()
                );
            }
            h.push_str("</p>");
            return h;
        }
    }
    String::new()
}

pub fn report(spec: &SpecArgs, out: &Path, store_args: &StoreArgs) -> i32 {
    let plan = tri!(load(spec));
    let store = tri!(open_store_read(store_args, Some(&spec.spec)));
    let outcomes = tri!(step_status(&plan, &store));
    let html = page(&plan, &store, &outcomes);
    let path = out.join("index.html");
    if let Err(e) = std::fs::create_dir_all(out).and_then(|_| std::fs::write(&path, html)) {
        eprintln!("error: cannot write `{}`: {e}", path.display());
        return EXIT_FAILED;
    }
    let fresh = outcomes
        .iter()
        .filter(|o| o.status == Status::Fresh)
        .count();
    println!("{}", path.display());
    eprintln!(
        "report of {fresh} of {} steps with results written to {}",
        plan.steps.len(),
        path.display()
    );
    EXIT_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_has_a_cell_per_grid_point_with_its_value() {
        let keys = ["ed".to_string(), "sad".to_string()];
        let rows = ["0.05".to_string(), "0.1".to_string()];
        let cols = ["0.9".to_string(), "0.95".to_string(), "0.98".to_string()];
        let svg = heatmap_svg(&keys, &rows, &cols, |a, b| match (a, b) {
            ("0.1", "0.98") => None,
            ("0.05", "0.9") => Some(0.9),
            _ => Some(0.92),
        });
        assert_eq!(svg.matches("<rect").count(), 6);
        assert!(
            svg.contains(">90.0 %<") && svg.contains(">92.0 %<"),
            "{svg}"
        );
        assert!(svg.contains(">–<"), "a missing point is shown as such");
        assert!(svg.contains("ed=0.05") && svg.contains("sad=0.98"));
        // The lowest value is the lightest cell, the highest the darkest.
        assert!(svg.contains("fill=\"#dae3ef\""), "{svg}");
        assert!(svg.contains("fill=\"#084594\""), "{svg}");
    }

    #[test]
    fn legend_colours_from_a_spec_are_checked() {
        assert_eq!(safe_colour(Some("#1a2B3c")), "#1a2B3c");
        for bad in ["red", "#12345", "url(http://x)", "#12345g"] {
            assert_eq!(safe_colour(Some(bad)), "#cccccc", "{bad}");
        }
        assert_eq!(metric_text(&Value::String("<b>".into())), "&lt;b&gt;");
    }

    #[test]
    fn bars_have_heights_proportional_to_oa() {
        let values = ["s2".to_string(), "all".to_string()];
        let svg = bars_svg("stack.features", &values, |v| {
            Some(if v == "s2" { 0.5 } else { 0.9 })
        });
        assert!(
            svg.contains("height=\"100\"") && svg.contains("height=\"180\""),
            "{svg}"
        );
        assert!(svg.contains(">50.0 %<") && svg.contains(">90.0 %<"));
    }

    #[test]
    fn kept_chart_groups_bars_by_year_with_provenance() {
        let bar = |series, group, kept, step: &str| KeptBar {
            series,
            group,
            kept,
            dropped: 10,
            step: step.to_string(),
            key: format!("key-{step}"),
        };
        let chart = KeptChart {
            groups: vec!["2020".into(), "2021".into()],
            series: vec!["ed=0.05 sad=0.9".into(), "ed=0.1 sad=0.9".into()],
            bars: vec![
                bar(0, 0, 90, "m[ed=0.05,sad=0.9,year=2020]"),
                bar(1, 0, 90, "m[ed=0.1,sad=0.9,year=2020]"),
                bar(0, 1, 45, "m[ed=0.05,sad=0.9,year=2021]"),
                bar(1, 1, 60, "m[ed=0.1,sad=0.9,year=2021]"),
            ],
        };
        let svg = chart.svg();
        // Axis 0..100 in steps of 20 over 200 px: 90 -> 180 px, 45 -> 90 px, 60 -> 120 px.
        assert_eq!(tick_step(90), 20);
        for h in ["180", "90", "120"] {
            assert!(
                svg.contains(&format!("height=\"{h}\" fill=\"#")),
                "{h}: {svg}"
            );
        }
        // Four bars and two legend swatches, the bars of one series in one colour.
        assert_eq!(
            svg.matches(&format!("fill=\"{}\"", SERIES_COLOURS[0]))
                .count(),
            3
        );
        assert_eq!(
            svg.matches(&format!("fill=\"{}\"", SERIES_COLOURS[1]))
                .count(),
            3
        );
        assert!(
            svg.contains(">2021<") && svg.contains(">ed=0.1 sad=0.9<"),
            "{svg}"
        );
        let html = chart.html();
        for b in &chart.bars {
            assert!(html.contains(&b.step) && html.contains(&b.key), "{html}");
        }
        assert!(html.contains("45 of 55"), "{html}");
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(1), 1);
        assert_eq!(tick_step(7), 2);
        assert_eq!(tick_step(24), 5);
        assert_eq!(tick_step(1200), 500);
        assert_eq!(tick_step(170_000), 50_000);
    }
}
