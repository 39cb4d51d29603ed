//! `lulc results SPEC`: the metrics the steps of a spec recorded (nodata shares, samples kept,
//! accuracies, ...), read from the store without running anything. One row per step: its node,
//! partition dims and sweep point, status, then its metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use lulc_engine::exec::Status;
use lulc_nodes::kinds::csv_field;
use serde_json::{Map, Value, json};

use super::commands::{load, open_store_read, step_status};
use super::{EXIT_OK, EXIT_USAGE, ResultsFormat, SpecArgs, StoreArgs};

struct Row {
    node: String,
    id: String,
    /// Partition dims then sweep values, as text.
    coords: BTreeMap<String, String>,
    status: Status,
    metrics: Map<String, Value>,
}

/// Does metric `name` match one of the patterns (`oa`, `nodata_share_*`)? No pattern: all.
fn wanted(name: &str, patterns: &[String]) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == p,
        })
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                let s = format!("{f:.4}");
                let s = s.trim_end_matches('0').trim_end_matches('.');
                if s == "-0" { "0".into() } else { s.into() }
            }
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

pub fn results(
    spec: &SpecArgs,
    store_args: &StoreArgs,
    nodes: &[String],
    metrics: &[String],
    format: ResultsFormat,
) -> i32 {
    let plan = tri!(load(spec));
    let known: BTreeSet<&str> = plan.steps.iter().map(|s| s.node.as_str()).collect();
    let unknown: Vec<&String> = nodes
        .iter()
        .filter(|n| !known.contains(n.as_str()))
        .collect();
    if !unknown.is_empty() {
        for n in unknown {
            eprintln!("error: no node `{n}` in {}", spec.spec.display());
        }
        eprintln!(
            "help: the nodes are: {}",
            known.iter().copied().collect::<Vec<_>>().join(", ")
        );
        return EXIT_USAGE;
    }
    let store = tri!(open_store_read(store_args, Some(&spec.spec)));
    let outcomes = tri!(step_status(&plan, &store));
    let mut rows: Vec<Row> = Vec::new();
    let order: Vec<&str> = if nodes.is_empty() {
        let mut seen = Vec::new();
        for s in &plan.steps {
            if !seen.contains(&s.node.as_str()) {
                seen.push(s.node.as_str());
            }
        }
        seen
    } else {
        nodes.iter().map(String::as_str).collect()
    };
    for node in order {
        for (step, o) in plan.steps.iter().zip(&outcomes) {
            if step.node != node {
                continue;
            }
            let m: Map<String, Value> = match &o.metrics {
                Value::Object(m) => m
                    .iter()
                    .filter(|(k, _)| wanted(k, metrics))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                _ => Map::new(),
            };
            // Without a node filter, list only steps that recorded something (or could).
            if nodes.is_empty() && m.is_empty() && o.status == Status::Fresh {
                continue;
            }
            let mut coords: BTreeMap<String, String> = step
                .dims
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect();
            for (k, v) in &step.sweep {
                coords.insert(k.clone(), text(v));
            }
            rows.push(Row {
                node: step.node.clone(),
                id: step.id.clone(),
                coords,
                status: o.status,
                metrics: m,
            });
        }
    }
    match format {
        ResultsFormat::Json => {
            let doc: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "node": r.node,
                        "id": r.id,
                        "coords": r.coords,
                        "status": r.status.as_str(),
                        "metrics": r.metrics,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        }
        ResultsFormat::Csv => print!("{}", csv(&rows)),
        ResultsFormat::Table => print!("{}", table(&rows)),
    }
    EXIT_OK
}

fn columns(rows: &[&Row]) -> (Vec<String>, Vec<String>) {
    let coords: BTreeSet<String> = rows.iter().flat_map(|r| r.coords.keys().cloned()).collect();
    let mut metrics: Vec<String> = Vec::new();
    for r in rows {
        for k in r.metrics.keys() {
            if !metrics.contains(k) {
                metrics.push(k.clone());
            }
        }
    }
    (coords.into_iter().collect(), metrics)
}

fn csv(rows: &[Row]) -> String {
    let all: Vec<&Row> = rows.iter().collect();
    let (coords, metrics) = columns(&all);
    let mut out = String::new();
    let mut header = vec!["node".to_string(), "id".to_string()];
    header.extend(coords.iter().cloned());
    header.push("status".into());
    header.extend(metrics.iter().cloned());
    let _ = writeln!(
        out,
        "{}",
        header
            .iter()
            .map(|h| csv_field(h))
            .collect::<Vec<_>>()
            .join(",")
    );
    for r in rows {
        let mut cells = vec![r.node.clone(), r.id.clone()];
        cells.extend(
            coords
                .iter()
                .map(|c| r.coords.get(c).cloned().unwrap_or_default()),
        );
        cells.push(r.status.as_str().to_string());
        cells.extend(
            metrics
                .iter()
                .map(|m| r.metrics.get(m).map(text).unwrap_or_default()),
        );
        let _ = writeln!(
            out,
            "{}",
            cells
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    out
}

/// One aligned table per node.
fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut nodes: Vec<&str> = Vec::new();
    for r in rows {
        if !nodes.contains(&r.node.as_str()) {
            nodes.push(&r.node);
        }
    }
    for node in nodes {
        let group: Vec<&Row> = rows.iter().filter(|r| r.node == node).collect();
        let (coords, metrics) = columns(&group);
        let mut header: Vec<String> = coords.clone();
        header.push("status".into());
        header.extend(metrics.iter().cloned());
        let mut body: Vec<Vec<String>> = Vec::new();
        for r in &group {
            let mut cells: Vec<String> = coords
                .iter()
                .map(|c| r.coords.get(c).cloned().unwrap_or_default())
                .collect();
            cells.push(r.status.as_str().to_string());
            cells.extend(
                metrics
                    .iter()
                    .map(|m| r.metrics.get(m).map(text).unwrap_or_default()),
            );
            body.push(cells);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                body.iter()
                    .map(|row| row[i].chars().count())
                    .chain([header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let _ = writeln!(out, "{node}");
        let _ = writeln!(out, "  {}", line(&header));
        for row in &body {
            let _ = writeln!(out, "  {}", line(row));
        }
        let _ = writeln!(out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_patterns() {
        assert!(wanted("oa", &[]));
        assert!(wanted("nodata_share_S1", &["nodata_share_*".into()]));
        assert!(!wanted("kept", &["nodata_share_*".into(), "oa".into()]));
        assert!(wanted("oa", &["nodata_share_*".into(), "oa".into()]));
    }

    #[test]
    fn numbers_are_short_and_csv_is_quoted() {
        assert_eq!(text(&json!(0.073456789)), "0.0735");
        assert_eq!(text(&json!(2.0)), "2");
        assert_eq!(text(&json!(-0.00001)), "0");
        assert_eq!(text(&json!(1200)), "1200");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("ab"), "ab");
    }
}
