//! `samples_csv`: labelled time series from a table into a `Samples` artifact, the way labelled
//! samples are distributed outside this pipeline (R `sits` sample tables, the TempCNN data, the
//! UCR/UEA archive), so a model can be trained or assessed on them.
//!
//! Two layouts:
//! - **long**: one row per sample and time step: `id, label, time, <feature>...` (and
//!   optionally `x, y`), as `sits` exports them. Every sample needs a row for every time step
//!   found in the file (once); its label must be the same on all its rows.
//! - **wide**: one row per sample: `id, label, <feature>_<time>...` (TempCNN: `NDVI_1 ..
//!   NDVI_23, Red_1 ..`). The `id` column is optional (then the line number is the id). Every
//!   feature needs a column for every time step. Without a header (`header: false`, the UCR
//!   format) the first column is the label and the others the values of one feature
//!   (`feature_name`) at time steps `1..n`.
//!
//! Time steps are ordered numerically when they are all numbers (`1, 2, 10`), else as text
//! (ISO dates sort correctly); they become the samples' seasons. Features keep the order of
//! their first column. Labels are class codes 1..=255, legend class names (`Rice`), or any text
//! mapped by the `labels` param. A sample with a missing value (empty, `NA`, `NaN`, `?`) is
//! dropped and counted in a warning; anything else that is not a number is an error. Every
//! error names the file, and the line (and column) when there is one.
//!
//! ## Ports
//! - out `samples` (`Samples`): rows sorted by id; `x`, `y` from the `x`/`y` columns when the
//!   table has them, else NaN (unknown location).
//!
//! ## Params (defaults in brackets)
//! - `path` (required): the table, relative to the spec's folder.
//! - `format` [`auto`]: `long`, `wide`, or `auto` (`long` when the header has `time_column`,
//!   else `wide`; `wide` without a header).
//! - `header` [true]: whether the first line names the columns.
//! - `delimiter` [auto]: `,`, `;`, a tab or `whitespace`; by default the first of tab, `,`,
//!   `;` found in the first line, else whitespace.
//! - `id_column` [`id`], `label_column` [`label`], `time_column` [`time`], `x_column` [`x`],
//!   `y_column` [`y`]: column names.
//! - `features` [all]: the features to import, in this order (long: column names; wide: the
//!   `<feature>` part of the column names); by default every other column.
//! - `separator` [`_`]: wide: between feature and time step in a column name (the last one
//!   counts: `VV_savg_3` is feature `VV_savg`, time `3`).
//! - `feature_name` [`value`]: wide without a header: the one feature's name.
//! - `labels` [none]: label text -> class code (`{Cerrado: 5, Pasture: 4}`, `{"-1": 1}`).
//! - `year`, `label_year` [none]: the year of the values and of the labels (`label_year`
//!   defaults to `year`).
//! - `crs` [none]: the CRS of `x`, `y`.
//!
//! ```yaml
//! nodes:
//!   cerrado:
//!     kind: samples_csv
//!     params:
//!       path: data/cerrado_2classes.csv
//!       format: long
//!       time_column: Index
//!       features: [NDVI, EVI]
//!       labels: { Cerrado: 5, Pasture: 4 }
//! ```

use std::collections::{BTreeMap, HashMap};

use lulc_engine::{Inputs, Node, NodeError, Port, RunCtx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::artifacts::SAMPLES;
use crate::classes::Legend;
use crate::kinds::points::class_code;
use crate::samples::{Point, Samples};

pub struct SamplesCsv;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Auto,
    Long,
    Wide,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplesCsvParams {
    pub path: String,
    pub format: Format,
    pub header: bool,
    pub delimiter: Option<String>,
    pub id_column: String,
    pub label_column: String,
    pub time_column: String,
    pub x_column: String,
    pub y_column: String,
    pub features: Option<Vec<String>>,
    pub separator: String,
    pub feature_name: String,
    pub labels: BTreeMap<String, u8>,
    pub year: Option<i64>,
    pub label_year: Option<i64>,
    pub crs: Option<String>,
}

impl Default for SamplesCsvParams {
    fn default() -> Self {
        SamplesCsvParams {
            path: String::new(),
            format: Format::Auto,
            header: true,
            delimiter: None,
            id_column: "id".to_string(),
            label_column: "label".to_string(),
            time_column: "time".to_string(),
            x_column: "x".to_string(),
            y_column: "y".to_string(),
            features: None,
            separator: "_".to_string(),
            feature_name: "value".to_string(),
            labels: BTreeMap::new(),
            year: None,
            label_year: None,
            crs: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Delim {
    Char(char),
    Whitespace,
}

/// The table being read: its name for messages and its non-empty lines with line numbers.
struct Table<'a> {
    name: &'a str,
    lines: Vec<(usize, &'a str)>,
    delim: Delim,
}

impl Table<'_> {
    fn err(&self, line: usize, msg: impl std::fmt::Display) -> NodeError {
        NodeError::new(format!(
            "`{}` line {line}: {}",
            self.name,
            short(&msg.to_string(), MAX_MESSAGE)
        ))
    }

    /// The header's column names; a name given twice is an error (else the last would win).
    fn header(&self) -> Result<Vec<String>, NodeError> {
        let (n, line) = self.lines[0];
        let header = self.split(n, line)?;
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            if let Some(j) = first.insert(name.as_str(), i) {
                return Err(self
                    .err(
                        n,
                        format!(
                            "column `{}` appears twice (columns {} and {})",
                            short(name, MAX_CELL),
                            j + 1,
                            i + 1
                        ),
                    )
                    .with_help("rename or remove one of them"));
            }
        }
        Ok(header)
    }

    fn split(&self, n: usize, line: &str) -> Result<Vec<String>, NodeError> {
        let c = match self.delim {
            Delim::Whitespace => return Ok(line.split_whitespace().map(String::from).collect()),
            Delim::Char(c) => c,
        };
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars().peekable();
        let mut quoted = false;
        while let Some(ch) = chars.next() {
            match ch {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    cur.push('"');
                    chars.next();
                }
                '"' if quoted => quoted = false,
                '"' if cur.trim().is_empty() => {
                    cur.clear();
                    quoted = true;
                }
                ch if ch == c && !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
                ch => cur.push(ch),
            }
        }
        if quoted {
            return Err(self.err(n, "unterminated quote"));
        }
        out.push(cur.trim().to_string());
        Ok(out)
    }
}

/// At most this many characters of a cell are quoted in an error.
const MAX_CELL: usize = 60;
/// At most this many characters of an error message (after the file and line).
const MAX_MESSAGE: usize = 600;

/// `s`, or its first `max` characters and how long it is: a 1 GiB field is quoted, not echoed.
fn short(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}... ({} characters)", &s[..cut], s.chars().count()),
    }
}

/// A value of a feature column: `Ok(None)` for a missing value.
fn value(t: &Table, line: usize, column: &str, s: &str) -> Result<Option<f32>, NodeError> {
    let s = s.trim();
    if s.is_empty() || ["na", "nan", "?", "null"].contains(&s.to_ascii_lowercase().as_str()) {
        return Ok(None);
    }
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(t.err(
            line,
            format!(
                "column `{column}`: `{}` is not a number",
                short(s, MAX_CELL)
            ),
        )),
    }
}

fn label(
    t: &Table,
    line: usize,
    s: &str,
    p: &SamplesCsvParams,
    legend: &Legend,
) -> Result<u8, NodeError> {
    if let Some(&c) = p.labels.get(s.trim()) {
        return Ok(c);
    }
    class_code(&Value::String(s.to_string()), legend).map_err(|why| {
        t.err(line, format!("label `{}`: {why}", short(s, MAX_CELL)))
            .with_help(
                "labels are class codes 1..255 or legend names (`Rice`); map others with \
             `labels: {<text>: <code>}`",
            )
    })
}

/// Time steps in order: numerically when all are numbers, else as text.
fn order_times(mut times: Vec<String>) -> Vec<String> {
    let nums: Option<Vec<f64>> = times.iter().map(|t| t.parse::<f64>().ok()).collect();
    match nums {
        Some(n) if n.iter().all(|v| v.is_finite()) => {
            let mut pairs: Vec<(f64, String)> = n.into_iter().zip(times).collect();
            pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
            pairs.into_iter().map(|(_, t)| t).collect()
        }
        _ => {
            times.sort();
            times
        }
    }
}

fn position(header: &[String], name: &str) -> Option<usize> {
    header.iter().position(|h| h == name)
}

/// What every layout produces: one entry per sample before the matrix is checked for gaps.
struct Parsed {
    seasons: Vec<String>,
    features: Vec<String>,
    points: Vec<Point>,
    /// Per sample, `seasons x features` values (`None` = missing).
    rows: Vec<Vec<Option<f32>>>,
}

fn coord(
    t: &Table,
    n: usize,
    col: Option<usize>,
    cells: &[String],
    name: &str,
) -> Result<f64, NodeError> {
    match col {
        None => Ok(f64::NAN),
        Some(i) => cells[i].trim().parse::<f64>().map_err(|_| {
            t.err(
                n,
                format!(
                    "column `{name}`: `{}` is not a number",
                    short(&cells[i], MAX_CELL)
                ),
            )
        }),
    }
}

fn check_width(t: &Table, n: usize, cells: &[String], want: usize) -> Result<(), NodeError> {
    if cells.len() != want {
        return Err(t.err(
            n,
            format!("{} field(s), the header has {want}", cells.len()),
        ));
    }
    Ok(())
}

fn parse_long(t: &Table, p: &SamplesCsvParams, legend: &Legend) -> Result<Parsed, NodeError> {
    let hn = t.lines[0].0;
    let header = t.header()?;
    let need = |name: &str, param: &str| {
        position(&header, name).ok_or_else(|| {
            t.err(hn, format!("no column `{name}` (set `{param}`)"))
                .with_help(format!(
                    "the columns are: {}",
                    short(&header.join(", "), MAX_MESSAGE)
                ))
        })
    };
    let (ci, cl, ct) = (
        need(&p.id_column, "id_column")?,
        need(&p.label_column, "label_column")?,
        need(&p.time_column, "time_column")?,
    );
    let (cx, cy) = (
        position(&header, &p.x_column),
        position(&header, &p.y_column),
    );
    let reserved = [Some(ci), Some(cl), Some(ct), cx, cy];
    let features: Vec<String> = match &p.features {
        Some(f) => f.clone(),
        None => header
            .iter()
            .enumerate()
            .filter(|(i, _)| !reserved.contains(&Some(*i)))
            .map(|(_, h)| h.clone())
            .collect(),
    };
    let fcols: Vec<usize> = features
        .iter()
        .map(|f| need(f, "features"))
        .collect::<Result<_, _>>()?;
    if fcols.is_empty() {
        return Err(t.err(hn, "no feature column"));
    }
    // id -> (first line, label, point, time -> (line, values)).
    type Rows = BTreeMap<String, (usize, Vec<Option<f32>>)>;
    let mut order: Vec<String> = Vec::new();
    let mut samples: HashMap<String, (usize, u8, f64, f64, Rows)> = HashMap::new();
    let mut times: Vec<String> = Vec::new();
    for &(n, line) in &t.lines[1..] {
        let cells = t.split(n, line)?;
        check_width(t, n, &cells, header.len())?;
        let id = cells[ci].clone();
        if id.is_empty() {
            return Err(t.err(n, format!("empty `{}`", p.id_column)));
        }
        let class = label(t, n, &cells[cl], p, legend)?;
        let time = cells[ct].clone();
        let vals = fcols
            .iter()
            .map(|&c| value(t, n, &header[c], &cells[c]))
            .collect::<Result<Vec<_>, _>>()?;
        let (x, y) = (
            coord(t, n, cx, &cells, &p.x_column)?,
            coord(t, n, cy, &cells, &p.y_column)?,
        );
        let entry = samples.entry(id.clone()).or_insert_with(|| {
            order.push(id.clone());
            (n, class, x, y, BTreeMap::new())
        });
        if entry.1 != class {
            return Err(t.err(
                n,
                format!(
                    "sample `{id}` has label {class} here and {} on line {}",
                    entry.1, entry.0
                ),
            ));
        }
        if let Some((first, _)) = entry.4.get(&time) {
            return Err(t.err(
                n,
                format!("sample `{id}` has time step `{time}` twice (also line {first})"),
            ));
        }
        if !times.contains(&time) {
            times.push(time.clone());
        }
        entry.4.insert(time, (n, vals));
    }
    let seasons = order_times(times);
    let mut out = Parsed {
        seasons,
        features,
        points: Vec::new(),
        rows: Vec::new(),
    };
    for id in order {
        let (first, class, x, y, mut rows) = samples.remove(&id).expect("listed");
        let mut row = Vec::with_capacity(out.seasons.len() * out.features.len());
        for s in &out.seasons {
            let (_, vals) = rows.remove(s).ok_or_else(|| {
                t.err(
                    first,
                    format!(
                        "sample `{id}` has no row for time step `{s}` (the file has {} steps)",
                        out.seasons.len()
                    ),
                )
            })?;
            row.extend(vals);
        }
        out.points.push(Point { id, x, y, class });
        out.rows.push(row);
    }
    Ok(out)
}

fn parse_wide(t: &Table, p: &SamplesCsvParams, legend: &Legend) -> Result<Parsed, NodeError> {
    if !p.header {
        let mut out = Parsed {
            seasons: Vec::new(),
            features: vec![p.feature_name.clone()],
            points: Vec::new(),
            rows: Vec::new(),
        };
        let mut width = None;
        for &(n, line) in &t.lines {
            let cells = t.split(n, line)?;
            if cells.len() < 2 {
                return Err(t.err(n, "a label and at least one value are needed"));
            }
            let (w0, _) = *width.get_or_insert((cells.len(), n));
            if cells.len() != w0 {
                return Err(t.err(
                    n,
                    format!(
                        "{} field(s), line {} has {w0}",
                        cells.len(),
                        width.expect("set").1
                    ),
                ));
            }
            let class = label(t, n, &cells[0], p, legend)?;
            let row = cells[1..]
                .iter()
                .enumerate()
                .map(|(k, c)| value(t, n, &format!("{}", k + 2), c))
                .collect::<Result<Vec<_>, _>>()?;
            out.points.push(Point {
                id: n.to_string(),
                x: f64::NAN,
                y: f64::NAN,
                class,
            });
            out.rows.push(row);
        }
        out.seasons = (1..width.map_or(1, |w| w.0))
            .map(|k| k.to_string())
            .collect();
        return Ok(out);
    }
    let hn = t.lines[0].0;
    let header = t.header()?;
    let cl = position(&header, &p.label_column).ok_or_else(|| {
        t.err(
            hn,
            format!("no column `{}` (set `label_column`)", p.label_column),
        )
        .with_help(format!(
            "the columns are: {}",
            short(&header.join(", "), MAX_MESSAGE)
        ))
    })?;
    let ci = position(&header, &p.id_column);
    let (cx, cy) = (
        position(&header, &p.x_column),
        position(&header, &p.y_column),
    );
    let reserved = [Some(cl), ci, cx, cy];
    // (feature, time) -> column.
    let mut cols: HashMap<(String, String), usize> = HashMap::new();
    let mut features: Vec<String> = Vec::new();
    let mut times: Vec<String> = Vec::new();
    for (i, h) in header.iter().enumerate() {
        if reserved.contains(&Some(i)) {
            continue;
        }
        let Some((f, time)) = h.rsplit_once(p.separator.as_str()) else {
            if p.features.is_some() {
                continue;
            }
            return Err(t
                .err(
                    hn,
                    format!(
                        "column `{h}` is not `<feature>{}<time>` (wide format)",
                        p.separator
                    ),
                )
                .with_help("set `features` to import only some columns, or `separator`"));
        };
        if p.features
            .as_ref()
            .is_some_and(|l| !l.iter().any(|x| x == f))
        {
            continue;
        }
        if !features.iter().any(|x| x == f) {
            features.push(f.to_string());
        }
        if !times.iter().any(|x| x == time) {
            times.push(time.to_string());
        }
        cols.insert((f.to_string(), time.to_string()), i);
    }
    if let Some(list) = &p.features {
        let missing: Vec<&str> = list
            .iter()
            .filter(|f| !features.contains(f))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(t.err(
                hn,
                format!("no column of feature(s) {}", missing.join(", ")),
            ));
        }
        features = list.clone();
    }
    if features.is_empty() {
        return Err(t.err(hn, "no feature column"));
    }
    let seasons = order_times(times);
    let mut index = Vec::new();
    for f in &features {
        for s in &seasons {
            match cols.get(&(f.clone(), s.clone())) {
                Some(&c) => index.push((s.clone(), f.clone(), c)),
                None => {
                    return Err(t.err(
                        hn,
                        format!(
                            "no column `{f}{}{s}`: feature `{f}` lacks time step `{s}`",
                            p.separator
                        ),
                    ));
                }
            }
        }
    }
    // Matrix order is season-major: [t][f].
    index.sort_by_key(|(s, f, _)| {
        (
            seasons.iter().position(|x| x == s),
            features.iter().position(|x| x == f),
        )
    });
    let mut out = Parsed {
        seasons,
        features,
        points: Vec::new(),
        rows: Vec::new(),
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for &(n, line) in &t.lines[1..] {
        let cells = t.split(n, line)?;
        check_width(t, n, &cells, header.len())?;
        let id = match ci {
            Some(i) => cells[i].clone(),
            None => n.to_string(),
        };
        if let Some(first) = seen.insert(id.clone(), n) {
            return Err(t.err(n, format!("sample `{id}` again (also line {first})")));
        }
        let class = label(t, n, &cells[cl], p, legend)?;
        let row = index
            .iter()
            .map(|(_, _, c)| value(t, n, &header[*c], &cells[*c]))
            .collect::<Result<Vec<_>, _>>()?;
        out.points.push(Point {
            id,
            x: coord(t, n, cx, &cells, &p.x_column)?,
            y: coord(t, n, cy, &cells, &p.y_column)?,
            class,
        });
        out.rows.push(row);
    }
    Ok(out)
}

impl Node for SamplesCsv {
    const KIND: &'static str = "samples_csv";
    const VERSION: u32 = 1;
    type Params = SamplesCsvParams;

    fn inputs() -> Vec<Port> {
        Vec::new()
    }

    fn outputs() -> Vec<Port> {
        vec![Port::one("samples", SAMPLES)]
    }

    fn summary() -> &'static str {
        "labelled time series from a CSV table (long or wide: sits, TempCNN, UCR)"
    }

    fn files(p: &SamplesCsvParams, _connected: &[&str]) -> Vec<(&'static str, String)> {
        vec![("path", p.path.clone())]
    }

    fn check(p: &SamplesCsvParams) -> Result<(), Vec<(String, String)>> {
        let mut errs = Vec::new();
        if p.path.trim().is_empty() {
            errs.push(("path".to_string(), "required: the table".to_string()));
        }
        if let Some(d) = &p.delimiter
            && ![",", ";", "\t", "whitespace"].contains(&d.as_str())
        {
            errs.push((
                "delimiter".to_string(),
                format!("`{d}`: use `,`, `;`, a tab or `whitespace`"),
            ));
        }
        if p.separator.is_empty() {
            errs.push(("separator".to_string(), "empty".to_string()));
        }
        if !p.header && p.format == Format::Long {
            errs.push((
                "header".to_string(),
                "the long format needs a header".to_string(),
            ));
        }
        if p.features.as_ref().is_some_and(Vec::is_empty) {
            errs.push(("features".to_string(), "empty list".to_string()));
        }
        for (k, v) in &p.labels {
            if *v == 0 {
                errs.push((
                    format!("labels.{k}"),
                    "0 is nodata; codes are 1..255".to_string(),
                ));
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    fn run(&self, ctx: &mut RunCtx, p: &SamplesCsvParams, _: &Inputs) -> Result<(), NodeError> {
        let path = ctx.input_path("path", &p.path)?;
        let bytes = std::fs::read(&path)
            .map_err(|e| NodeError::new(format!("cannot read `{}`: {e}", p.path)))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let before = &e.as_bytes()[..at];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&before[line_start..])
                .chars()
                .count()
                + 1;
            NodeError::new(format!(
                "`{}` line {line}, column {column}: byte 0x{:02x} is not UTF-8 text",
                p.path,
                e.as_bytes()[at]
            ))
            .with_help(
                "save the table as UTF-8 (in LibreOffice: Save As, \"Edit filter settings\", \
                 character set Unicode (UTF-8); in R: write.csv(..., fileEncoding = \"UTF-8\"))",
            )
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        // Old Mac files end lines with CR alone.
        let cr_only = !text.contains('\n') && text.contains('\r');
        let raw_lines: Box<dyn Iterator<Item = &str>> = if cr_only {
            Box::new(text.split('\r'))
        } else {
            Box::new(text.lines())
        };
        let lines: Vec<(usize, &str)> = raw_lines
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        let min = if p.header { 2 } else { 1 };
        if lines.len() < min {
            return Err(NodeError::new(format!(
                "`{}` has no {}",
                p.path,
                if lines.is_empty() {
                    "line"
                } else {
                    "data line"
                }
            )));
        }
        let delim = match p.delimiter.as_deref() {
            Some("whitespace") => Delim::Whitespace,
            Some(d) => Delim::Char(d.chars().next().expect("checked")),
            None => ['\t', ',', ';']
                .into_iter()
                .find(|c| lines[0].1.contains(*c))
                .map_or(Delim::Whitespace, Delim::Char),
        };
        let table = Table {
            name: &p.path,
            lines,
            delim,
        };
        let format = match p.format {
            Format::Auto if !p.header => Format::Wide,
            Format::Auto => {
                let header = table.header()?;
                if header.contains(&p.time_column) {
                    Format::Long
                } else {
                    Format::Wide
                }
            }
            f => f,
        };
        let legend = Legend::default();
        let parsed = match format {
            Format::Long => parse_long(&table, p, &legend)?,
            _ => parse_wide(&table, p, &legend)?,
        };
        let mut points = Vec::new();
        let mut data = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        for (pt, row) in parsed.points.into_iter().zip(parsed.rows) {
            if row.iter().any(Option::is_none) {
                missing.push(pt.id);
                continue;
            }
            data.extend(row.into_iter().flatten());
            points.push(pt);
        }
        let total = points.len() + missing.len();
        if !missing.is_empty() {
            let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
            ctx.warn(format!(
                "`{}`: dropped {} of {total} sample(s) with missing values ({}{})",
                p.path,
                missing.len(),
                shown.join(", "),
                if missing.len() > 5 { ", ..." } else { "" }
            ));
        }
        if points.is_empty() {
            return Err(NodeError::new(format!(
                "no complete sample in `{}` ({total} read, all with missing values)",
                p.path
            )));
        }
        ctx.metric("samples", points.len() as u64);
        ctx.metric("dropped_missing", missing.len() as u64);
        Samples {
            year: p.year,
            label_year: p.label_year.or(p.year),
            crs: p.crs.clone(),
            seasons: parsed.seasons,
            features: parsed.features,
            points,
            data,
        }
        .write(ctx, "samples")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use lulc_engine::{ArtifactIn, erase};
    use serde_json::json;
    use tempfile::TempDir;

    fn run(params: Value, dir: &Path) -> Result<(RunCtx, Samples), NodeError> {
        let node = erase(SamplesCsv);
        let params = node
            .check_params(&params)
            .map_err(|e| NodeError::new(format!("{}: {}", e[0].path, e[0].message)))?;
        let out = tempfile::Builder::new().tempdir_in(dir).unwrap().keep();
        let mut ctx =
            RunCtx::for_test("samples_csv", SamplesCsv::outputs(), &out).with_spec_dir(dir);
        node.run(&mut ctx, &params, &Inputs::default())?;
        let o = &ctx.outputs()["samples"];
        let art = ArtifactIn {
            step_id: "samples_csv".into(),
            dims: BTreeMap::new(),
            ty: SAMPLES.into(),
            digest: String::new(),
            files: o.files.clone(),
            meta: o.meta.clone(),
        };
        let s = Samples::read(&art).unwrap();
        Ok((ctx, s))
    }

    fn err_of<T>(r: Result<T, NodeError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => format!("{} | help: {}", e.message, e.help.unwrap_or_default()),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    /// A `sits`-like long table: rows out of order, dates as time steps, text labels.
    const LONG: &str = "\
id,label,Index,longitude,latitude,NDVI,EVI
b,Pasture,2013-10-01,-55.5,-10.25,0.41,0.31
a,Cerrado,2013-10-01,-55.1,-10.5,0.51,0.21
a,Cerrado,2013-09-14,-55.1,-10.5,0.52,0.22
b,Pasture,2013-09-14,-55.5,-10.25,0.42,0.32
";

    #[test]
    fn samples_csv_long_format_like_sits() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "long.csv", LONG);
        let (ctx, s) = run(
            json!({"path": "long.csv", "time_column": "Index", "x_column": "longitude",
                   "y_column": "latitude", "labels": {"Cerrado": 5, "Pasture": 4},
                   "year": 2014, "crs": "EPSG:4326"}),
            dir.path(),
        )
        .unwrap();
        assert!(ctx.warnings().is_empty());
        assert_eq!(s.seasons, ["2013-09-14", "2013-10-01"]);
        assert_eq!(s.features, ["NDVI", "EVI"]);
        assert_eq!(s.points[0].id, "a");
        assert_eq!(s.points[0].class, 5);
        assert_eq!((s.points[1].x, s.points[1].y), (-55.5, -10.25));
        assert_eq!(s.row(0), [0.52, 0.22, 0.51, 0.21]);
        assert_eq!(s.row(1), [0.42, 0.32, 0.41, 0.31]);
        assert_eq!((s.year, s.label_year), (Some(2014), Some(2014)));
        assert_eq!(s.crs.as_deref(), Some("EPSG:4326"));
        // Only one feature, chosen by name; `format: long` given explicitly.
        let (_, s) = run(
            json!({"path": "long.csv", "format": "long", "time_column": "Index",
                   "features": ["EVI"], "labels": {"Cerrado": 5, "Pasture": 4}}),
            dir.path(),
        )
        .unwrap();
        assert_eq!(s.row(0), [0.22, 0.21]);
        // The x/y column names do not match: unknown location.
        assert_eq!(s.features, ["EVI"]);
        assert!(s.points[0].x.is_nan());
    }

    #[test]
    fn samples_csv_wide_format_like_tempcnn_and_ucr() {
        let dir = TempDir::new().unwrap();
        write(
            dir.path(),
            "wide.csv",
            "label;id;NDVI_1;NDVI_2;NDVI_10;Red_1;Red_2;Red_10\n\
             3;p7;0.1;0.2;0.3;11;12;13\n\
             Rice;p2;0.4;0.5;0.6;14;15;16\n",
        );
        let (_, s) = run(json!({"path": "wide.csv"}), dir.path()).unwrap();
        assert_eq!(s.seasons, ["1", "2", "10"]);
        assert_eq!(s.features, ["NDVI", "Red"]);
        let ids: Vec<&str> = s.points.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["p2", "p7"]);
        assert_eq!(s.points[0].class, 3);
        assert_eq!(s.row(1), [0.1, 11.0, 0.2, 12.0, 0.3, 13.0]);
        // UCR: no header, tab separated, label first; ids are line numbers.
        write(dir.path(), "ucr.tsv", "1\t0.5\t0.25\t-1.5\n\n2\t1\t2\t3\n");
        let (_, s) = run(json!({"path": "ucr.tsv", "header": false}), dir.path()).unwrap();
        assert_eq!(s.seasons, ["1", "2", "3"]);
        assert_eq!(s.features, ["value"]);
        let got: Vec<(&str, u8)> = s.points.iter().map(|p| (p.id.as_str(), p.class)).collect();
        assert_eq!(got, [("1", 1), ("3", 2)]);
        assert_eq!(s.row(0), [0.5, 0.25, -1.5]);
        // Whitespace-separated old UCR files with -1/1 labels need a mapping.
        write(dir.path(), "old.txt", "  -1   0.5  0.7\n   1   0.1  0.2\n");
        let (_, s) = run(
            json!({"path": "old.txt", "header": false, "labels": {"-1": 2, "1": 1},
                   "feature_name": "NDVI"}),
            dir.path(),
        )
        .unwrap();
        assert_eq!(s.points[0].class, 2);
        assert_eq!(s.features, ["NDVI"]);
        assert_eq!(s.row(1), [0.1, 0.2]);
    }

    #[test]
    fn samples_csv_missing_values_drop_the_sample_with_a_warning() {
        let dir = TempDir::new().unwrap();
        write(
            dir.path(),
            "m.csv",
            "id,label,B_1,B_2\n1,3,0.1,NA\n2,3,0.1,0.2\n3,4,,0.3\n",
        );
        let (ctx, s) = run(json!({"path": "m.csv"}), dir.path()).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s.points[0].id, "2");
        let w = ctx.warnings().join("\n");
        assert!(
            w.contains("`m.csv`: dropped 2 of 3 sample(s) with missing values (1, 3)"),
            "{w}"
        );
        write(dir.path(), "all.csv", "id,label,B_1\n1,3,NaN\n");
        let e = err_of(run(json!({"path": "all.csv"}), dir.path()));
        assert!(e.contains("no complete sample in `all.csv`"), "{e}");
    }

    #[test]
    fn samples_csv_errors_name_file_line_and_column() {
        let dir = TempDir::new().unwrap();
        let cases: &[(&str, &str, Value, &str)] = &[
            (
                "a.csv",
                "id,label,B_1,B_2\n1,3,0.1,0.2\n2,3,0.1,high\n",
                json!({}),
                "`a.csv` line 3: column `B_2`: `high` is not a number",
            ),
            (
                "b.csv",
                "id,label,B_1\n1,Swamp,0.1\n",
                json!({}),
                "`b.csv` line 2: label `Swamp`: unknown class `Swamp` | help: labels are class codes",
            ),
            (
                "c.csv",
                "id,label,B_1,B_2\n1,3,0.1\n",
                json!({}),
                "`c.csv` line 2: 3 field(s), the header has 4",
            ),
            (
                "d.csv",
                "id,label,B_1,C_2\n1,3,0.1,0.2\n",
                json!({}),
                "`d.csv` line 1: no column `B_2`: feature `B` lacks time step `2`",
            ),
            (
                "e.csv",
                "id,label,B_1,notes\n1,3,0.1,x\n",
                json!({}),
                "`e.csv` line 1: column `notes` is not `<feature>_<time>` (wide format)",
            ),
            (
                "f.csv",
                "id,label,time,B\n1,3,1,0.1\n1,3,2,0.2\n2,4,1,0.3\n",
                json!({}),
                "`f.csv` line 4: sample `2` has no row for time step `2` (the file has 2 steps)",
            ),
            (
                "g.csv",
                "id,label,time,B\n1,3,1,0.1\n1,4,2,0.2\n",
                json!({}),
                "`g.csv` line 3: sample `1` has label 4 here and 3 on line 2",
            ),
            (
                "h.csv",
                "id,label,time,B\n1,3,1,0.1\n1,3,1,0.2\n",
                json!({}),
                "`h.csv` line 3: sample `1` has time step `1` twice (also line 2)",
            ),
            (
                "i.csv",
                "id,class,time,B\n1,3,1,0.1\n",
                json!({}),
                "`i.csv` line 1: no column `label` (set `label_column`) | help: the columns are: id, class, time, B",
            ),
            (
                "j.csv",
                "id,label,B_1\n1,3,0.1\n1,4,0.2\n",
                json!({}),
                "`j.csv` line 3: sample `1` again (also line 2)",
            ),
            (
                "k.csv",
                "id,label,B_1\n1,0,0.1\n",
                json!({}),
                "`k.csv` line 2: label `0`: class 0 is outside 1..255",
            ),
            (
                "l.csv",
                "id,label,B_1\n\"1,3,0.1\n",
                json!({}),
                "`l.csv` line 2: unterminated quote",
            ),
            (
                "n.csv",
                "id,label,B_1\n",
                json!({}),
                "`n.csv` has no data line",
            ),
            (
                "missing.csv",
                "",
                json!({"path": "nope.csv"}),
                "cannot read `nope.csv`",
            ),
            ("o.csv", "", json!({"delimiter": "|"}), "delimiter: `|`"),
        ];
        for (name, text, extra, want) in cases {
            write(dir.path(), name, text);
            let mut params = json!({"path": name});
            for (k, v) in extra.as_object().unwrap() {
                params[k] = v.clone();
            }
            let e = err_of(run(params, dir.path()));
            assert!(e.contains(want), "{name}: {e}");
        }
        // A quoted field with the delimiter inside is one field.
        write(dir.path(), "q.csv", "id,label,B_1\n\"x,1\",3,0.5\n");
        let (_, s) = run(json!({"path": "q.csv"}), dir.path()).unwrap();
        assert_eq!(s.points[0].id, "x,1");
    }

    #[test]
    fn samples_csv_refuses_a_column_named_twice() {
        let dir = TempDir::new().unwrap();
        write(
            dir.path(),
            "twice.csv",
            "id,label,NDVI_1,label\na,1,0.5,2\n",
        );
        let e = err_of(run(json!({"path": "twice.csv"}), dir.path()));
        assert!(
            e.contains("`twice.csv` line 1: column `label` appears twice (columns 2 and 4)"),
            "{e}"
        );
        write(
            dir.path(),
            "long.csv",
            "id,label,time,NDVI,NDVI\na,1,1,0.5,0.6\n",
        );
        let e = err_of(run(json!({"path": "long.csv"}), dir.path()));
        assert!(
            e.contains("column `NDVI` appears twice (columns 4 and 5)"),
            "{e}"
        );
    }

    #[test]
    fn samples_csv_quotes_a_huge_bad_field_briefly() {
        let dir = TempDir::new().unwrap();
        let field = "z".repeat(5_000_000);
        write(
            dir.path(),
            "huge.csv",
            &format!("id,label,NDVI_1\na,1,0.5\nb,1,{field}\n"),
        );
        let e = err_of(run(json!({"path": "huge.csv"}), dir.path()));
        assert!(e.contains("`huge.csv` line 3: column `NDVI_1`"), "{e}");
        assert!(e.contains("... (5000000 characters)"), "{e}");
        assert!(e.len() < 1_000, "{} bytes", e.len());
        // A huge id in a message that quotes it is cut too.
        write(
            dir.path(),
            "ids.csv",
            &format!("id,label,NDVI_1\n{field},1,0.5\n{field},1,0.5\n"),
        );
        let e = err_of(run(json!({"path": "ids.csv"}), dir.path()));
        assert!(e.contains("line 3"), "{}", &e[..200]);
        assert!(e.len() < 1_500, "{} bytes", e.len());
    }

    #[test]
    fn samples_csv_reads_cr_only_line_ends_and_names_the_line_of_non_utf8_bytes() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "mac.csv", "id,label,NDVI_1\ra,1,0.5\rb,2,0.6\r");
        let (_, s) = run(json!({"path": "mac.csv"}), dir.path()).unwrap();
        assert_eq!(s.points.len(), 2);
        assert_eq!(s.row(1), [0.6]);
        std::fs::write(
            dir.path().join("latin1.csv"),
            b"id,label,NDVI_1\na,1,0.5\nb,Caf\xe9,0.6\n",
        )
        .unwrap();
        let e = err_of(run(json!({"path": "latin1.csv"}), dir.path()));
        assert!(
            e.contains("`latin1.csv` line 3, column 6: byte 0xe9 is not UTF-8 text"),
            "{e}"
        );
        assert!(e.contains("UTF-8"), "{e}");
    }
}
