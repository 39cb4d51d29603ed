//! A spanned YAML tree.
//!
//! The spec is first read into this generic tree, where every scalar, sequence and mapping carries
//! the byte span it came from. Lowering then walks the tree by hand instead of letting serde derive
//! typed structs: serde stops at the first error, while users expect *all* spec errors at once,
//! each underlined in their YAML, with "did you mean" help.
//!
//! Parsing uses `serde-saphyr` (maintained, panic-free, `Spanned<T>` with byte offsets, budgets
//! against alias bombs); see README's dependency table for why not `serde_yaml`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A byte range in the spec source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn new(offset: usize, len: usize) -> Span {
        Span { offset, len }
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> miette::SourceSpan {
        (s.offset, s.len).into()
    }
}

/// One YAML node with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Yaml {
    pub kind: YamlKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum YamlKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
}

impl Yaml {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            YamlKind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Yaml, Yaml)]> {
        match &self.kind {
            YamlKind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// A short description of the node's type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            YamlKind::Null => "null",
            YamlKind::Bool(_) => "a boolean",
            YamlKind::Int(_) => "an integer",
            YamlKind::Float(_) => "a number",
            YamlKind::Str(_) => "a string",
            YamlKind::Seq(_) => "a list",
            YamlKind::Map(_) => "a mapping",
        }
    }

    /// The key as text (keys are written as plain scalars in specs).
    pub fn key_text(&self) -> String {
        match &self.kind {
            YamlKind::Str(s) => s.clone(),
            YamlKind::Int(i) => i.to_string(),
            YamlKind::Float(f) => f.to_string(),
            YamlKind::Bool(b) => b.to_string(),
            YamlKind::Null => "null".to_string(),
            YamlKind::Seq(_) | YamlKind::Map(_) => "<complex key>".to_string(),
        }
    }
}

/// Limits that keep a hostile spec (alias bombs, deep nesting, huge files) bounded.
pub const MAX_SPEC_BYTES: usize = 4 << 20;
pub const MAX_DEPTH: usize = 48;
/// Parser budget: YAML nodes (scalars, lists, mappings) after alias expansion. A billion-laughs
/// document is stopped here, before the tree is built.
pub const MAX_NODES: usize = 250_000;
pub const MAX_ALIASES: usize = 1_000;
pub const MAX_ANCHORS: usize = 1_000;
pub const MAX_EVENTS: usize = 1_000_000;

/// Which parser budget stopped a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Bytes,
    Depth,
    Nodes,
    Aliases,
    Anchors,
    Events,
    Other,
}

/// YAML syntax (or budget) error with its position.
#[derive(Debug, Clone)]
pub struct YamlSyntaxError {
    pub message: String,
    pub span: Span,
    /// Set when a budget (size, depth, alias expansion) stopped the parser, not a syntax error.
    pub limit: Option<Limit>,
    pub help: Option<String>,
}

impl YamlSyntaxError {
    fn new(message: impl Into<String>, span: Span) -> YamlSyntaxError {
        YamlSyntaxError {
            message: message.into(),
            span,
            limit: None,
            help: None,
        }
    }

    fn limit(mut self, limit: Limit) -> YamlSyntaxError {
        self.limit = Some(limit);
        self
    }

    fn help(mut self, help: impl Into<String>) -> YamlSyntaxError {
        self.help = Some(help.into());
        self
    }
}

/// Parse YAML text into a spanned tree.
///
/// Deserialising a nested document recurses once per level through several serde frames; a
/// hostile spec at the nesting limit would overflow a small thread stack, so parsing runs on a
/// thread of its own with a generous stack.
pub fn parse(src: &str) -> Result<Yaml, YamlSyntaxError> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("yaml-parse".into())
            .stack_size(64 << 20)
            .spawn_scoped(s, || parse_on_this_thread(src))
            .expect("spawn the YAML parser thread")
            .join()
            .unwrap_or_else(|_| {
                Err(YamlSyntaxError::new(
                    "the YAML parser failed on this document",
                    Span::default(),
                ))
            })
    })
}

fn parse_on_this_thread(src: &str) -> Result<Yaml, YamlSyntaxError> {
    if src.len() > MAX_SPEC_BYTES {
        return Err(YamlSyntaxError::new(
            format!(
                "the spec is {} bytes, more than the limit of {MAX_SPEC_BYTES} bytes (4 MiB)",
                src.len()
            ),
            Span::new(0, 0),
        )
        .limit(Limit::Bytes)
        .help("a spec describes a pipeline; put data (point lists, tables) in files it names"));
    }
    // YAML 1.2 booleans only: `y`, `no`, `on` stay strings (no "Norway problem"). Duplicate keys
    // reach our visitor, so that lowering reports them with both places underlined.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        budget: serde_saphyr::budget! {
            max_aliases: MAX_ALIASES,
            max_anchors: MAX_ANCHORS,
            max_events: MAX_EVENTS,
            max_nodes: MAX_NODES,
            max_depth: MAX_DEPTH,
        },
    };
    let doc: Result<Option<Yaml>, _> = serde_saphyr::from_str_with_options(src, options);
    match doc {
        Ok(Some(y)) => {
            check_depth(&y, 0)?;
            // Only a `!` can start a tag: most specs skip the second pass.
            if src.contains('!') {
                check_tags(src)?;
            }
            Ok(y)
        }
        Ok(None) => Ok(Yaml {
            kind: YamlKind::Null,
            span: Span::new(0, 0),
        }),
        Err(e) => {
            let span = e
                .location()
                .map(|l| location_span(&l, src))
                .unwrap_or_default();
            // The budget error may sit behind the alias that was being expanded.
            let mut inner = &e;
            while let serde_saphyr::Error::AliasError { error, .. }
            | serde_saphyr::Error::WithSnippet { error, .. } = inner
            {
                inner = error;
            }
            if let serde_saphyr::Error::Budget { breach, .. } = inner {
                return Err(budget_error(breach, span));
            }
            // The first line of saphyr's message is the cause; the rest is its own rendering of
            // the snippet, which miette does better.
            let message = e.to_string();
            let first = message.lines().next().unwrap_or("invalid YAML").trim();
            // "error: line 3 column 37: mismatched bracket" -> "mismatched bracket"; the position
            // is shown by the label.
            let message = first
                .trim_start_matches("error: ")
                .split_once(": ")
                .filter(|(pos, _)| pos.starts_with("line "))
                .map(|(_, rest)| rest)
                .unwrap_or(first)
                .to_string();
            Err(explain(message, span))
        }
    }
}

/// The parser's message where it is fine; ours where it names the parser's API or says little.
fn explain(message: String, span: Span) -> YamlSyntaxError {
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return YamlSyntaxError::new(format!("duplicate key `{key}`"), span)
            .help("each key may appear once in a mapping");
    }
    if message.starts_with("multiple YAML documents detected") {
        return YamlSyntaxError::new("the file holds more than one YAML document", span).help(
            "a spec is one document: remove the `---` line and what follows, or split the file",
        );
    }
    if message.starts_with("tabs disallowed") {
        return YamlSyntaxError::new(message, span).help("indent with spaces: YAML forbids tabs");
    }
    if message == "recursion limit exceeded" {
        // The scanner's own flow nesting limit, met before the depth budget on `[[[[...`.
        return YamlSyntaxError::new(
            format!("the document nests deeper than {MAX_DEPTH} levels"),
            span,
        )
        .limit(Limit::Depth)
        .help("a spec needs a few levels; flatten the structure");
    }
    if let Some(rest) = message.strip_prefix("non-finite float ") {
        let value = rest.split(' ').next().unwrap_or(rest);
        return YamlSyntaxError::new(format!("{value} is not a finite number"), span)
            .help("spec values are finite; leave the param out for its default");
    }
    if message == "alias references unknown anchor" {
        return YamlSyntaxError::new(message, span)
            .help("define the anchor (`&name`) before its alias (`*name`)");
    }
    YamlSyntaxError::new(message, span)
}

fn budget_error(breach: &serde_saphyr::budget::BudgetBreach, span: Span) -> YamlSyntaxError {
    use serde_saphyr::budget::BudgetBreach as B;
    let bomb = "a spec has far fewer values; aliases (`*name`) of anchors that hold aliases \
                multiply (a \"billion laughs\" document)";
    match breach {
        B::Depth { .. } => YamlSyntaxError::new(
            format!("the document nests deeper than {MAX_DEPTH} levels"),
            span,
        )
        .limit(Limit::Depth)
        .help("a spec needs a few levels; flatten the structure"),
        B::Nodes { .. } => YamlSyntaxError::new(
            format!("the document expands to more than {MAX_NODES} YAML values"),
            span,
        )
        .limit(Limit::Nodes)
        .help(bomb),
        B::Aliases { .. } => YamlSyntaxError::new(
            format!("the document uses more than {MAX_ALIASES} aliases"),
            span,
        )
        .limit(Limit::Aliases)
        .help(bomb),
        B::Anchors { .. } => YamlSyntaxError::new(
            format!("the document defines more than {MAX_ANCHORS} anchors"),
            span,
        )
        .limit(Limit::Anchors),
        B::Events { .. } => YamlSyntaxError::new(
            format!("the document has more than {MAX_EVENTS} YAML events"),
            span,
        )
        .limit(Limit::Events),
        other => YamlSyntaxError::new(
            format!("the document exceeds a parser limit ({other:?})"),
            span,
        )
        .limit(Limit::Other),
    }
}

/// Refuses a tag other than YAML's own (`!!str`, ...): the deserializer drops tags, so
/// `!include other.yaml` would silently become the string `other.yaml`.
fn check_tags(src: &str) -> Result<(), YamlSyntaxError> {
    use granit_parser::{Event, Parser};
    for event in Parser::new_from_str(src) {
        // Syntax errors were reported by the first pass.
        let Ok((event, span)) = event else {
            return Ok(());
        };
        let tag = match &event {
            Event::Scalar(_, _, _, tag)
            | Event::SequenceStart(_, _, tag)
            | Event::MappingStart(_, _, tag) => tag,
            _ => continue,
        };
        let Some(tag) = tag.as_ref().filter(|t| t.core_suffix().is_none()) else {
            continue;
        };
        let at = span.tag_span().unwrap_or(span);
        let offset = at.start.byte_offset().unwrap_or(0).min(src.len());
        let end = at
            .end
            .byte_offset()
            .unwrap_or(offset)
            .clamp(offset, src.len());
        let written = src
            .get(offset..end)
            .filter(|t| t.starts_with('!'))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}{}", tag.original_handle(), tag.suffix()));
        let include = written.contains("include") || written.contains("import");
        return Err(YamlSyntaxError::new(
            format!("YAML tag `{written}` is not supported"),
            Span::new(offset, end - offset),
        )
        .help(if include {
            "a spec is one file: copy the part in, or reuse values within the file with an \
             anchor (`&name`) and aliases (`*name`)"
        } else {
            "remove the tag: spec values are plain YAML (`!!str` may force a string)"
        }));
    }
    Ok(())
}

fn check_depth(y: &Yaml, depth: usize) -> Result<(), YamlSyntaxError> {
    if depth > MAX_DEPTH {
        return Err(YamlSyntaxError::new(
            format!("the document nests deeper than {MAX_DEPTH} levels"),
            y.span,
        )
        .limit(Limit::Depth));
    }
    match &y.kind {
        YamlKind::Seq(items) => items.iter().try_for_each(|i| check_depth(i, depth + 1)),
        YamlKind::Map(entries) => entries
            .iter()
            .try_for_each(|(_, v)| check_depth(v, depth + 1)),
        _ => Ok(()),
    }
}

/// Byte span of an error location: saphyr's byte offsets when it has them, else line/column.
fn location_span(l: &serde_saphyr::Location, src: &str) -> Span {
    let s = l.span();
    if let (Some(o), Some(len)) = (s.byte_offset(), s.byte_len()) {
        let o = (o as usize).min(src.len());
        let len = (len as usize).min(src.len() - o);
        if o > 0 || len > 0 {
            return Span::new(o, len);
        }
    }
    let (line, col) = (l.line() as usize, l.column() as usize);
    if line == 0 {
        return Span::default();
    }
    let line_start: usize = src.split_inclusive('\n').take(line - 1).map(str::len).sum();
    let line_text = src[line_start.min(src.len())..]
        .lines()
        .next()
        .unwrap_or("");
    let col_bytes: usize = line_text
        .chars()
        .take(col.saturating_sub(1))
        .map(char::len_utf8)
        .sum();
    Span::new(
        (line_start + col_bytes).min(src.len()),
        1.min(src.len() - (line_start + col_bytes).min(src.len())),
    )
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Yaml, D::Error> {
        let s: Spanned<YamlKind> = Spanned::deserialize(d)?;
        let sp = s.referenced.span();
        let span = match (sp.byte_offset(), sp.byte_len()) {
            (Some(o), Some(l)) => Span::new(o as usize, l as usize),
            _ => Span::default(),
        };
        Ok(Yaml {
            kind: s.value,
            span,
        })
    }
}

impl<'de> Deserialize<'de> for YamlKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<YamlKind, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = YamlKind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<YamlKind, E> {
        Ok(YamlKind::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<YamlKind, E> {
        Ok(YamlKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<YamlKind, D::Error> {
        YamlKind::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<YamlKind, E> {
        Ok(YamlKind::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<YamlKind, E> {
        Ok(YamlKind::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<YamlKind, E> {
        i64::try_from(v)
            .map(YamlKind::Int)
            .or(Ok(YamlKind::Float(v as f64)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<YamlKind, E> {
        Ok(YamlKind::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<YamlKind, E> {
        Ok(YamlKind::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<YamlKind, E> {
        Ok(YamlKind::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<YamlKind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Yaml>()? {
            items.push(item);
        }
        Ok(YamlKind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<YamlKind, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Yaml>()? {
            let v = map.next_value::<Yaml>()?;
            entries.push((k, v));
        }
        Ok(YamlKind::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_scalars() {
        let src = "name: demo\nnodes:\n  a:\n    kind: acquire\n";
        let y = parse(src).unwrap();
        let m = y.as_map().unwrap();
        assert_eq!(m[0].0.as_str(), Some("name"));
        let v = &m[0].1;
        assert_eq!(&src[v.span.offset..v.span.offset + v.span.len], "demo");
        let nodes = m[1].1.as_map().unwrap();
        let kind = &nodes[0].1.as_map().unwrap()[0].1;
        assert_eq!(
            &src[kind.span.offset..kind.span.offset + kind.span.len],
            "acquire"
        );
    }

    #[test]
    fn scalar_types() {
        let y = parse("[1, 2.5, true, x, null, '3']").unwrap();
        let YamlKind::Seq(items) = y.kind else {
            panic!("not a seq")
        };
        assert_eq!(items[0].kind, YamlKind::Int(1));
        assert_eq!(items[1].kind, YamlKind::Float(2.5));
        assert_eq!(items[2].kind, YamlKind::Bool(true));
        assert_eq!(items[3].kind, YamlKind::Str("x".into()));
        assert_eq!(items[4].kind, YamlKind::Null);
        assert_eq!(items[5].kind, YamlKind::Str("3".into()));
    }

    #[test]
    fn syntax_error_has_position() {
        let src = "a: [1, 2\nb: c\n";
        let e = parse(src).unwrap_err();
        assert!(!e.message.is_empty());
        assert!(e.span.offset > 0, "{e:?}");
    }

    /// Billion laughs: each level repeats the previous one ten times. Time and memory are bounded
    /// because the parser's node budget stops it before the tree is built (not a wall clock).
    #[test]
    fn alias_bomb_is_rejected_by_the_node_budget() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&src).unwrap_err();
        assert_eq!(e.limit, Some(Limit::Nodes), "{e:?}");
        assert!(e.message.contains("250000"), "{}", e.message);
        // Stopped while reading the aliases of a level that expands past the budget (10^5 nodes
        // at `a5`), not at the end of the document.
        assert!(e.span.offset < src.find("a7:").unwrap(), "{e:?}");
    }

    #[test]
    fn too_many_aliases_are_rejected_by_the_alias_budget() {
        let mut src = String::from("a: &a x\nb: [");
        src.push_str(&vec!["*a"; MAX_ALIASES + 1].join(", "));
        src.push_str("]\n");
        let e = parse(&src).unwrap_err();
        assert_eq!(e.limit, Some(Limit::Aliases), "{e:?}");
    }

    #[test]
    fn oversized_spec_is_rejected_before_parsing() {
        let src = format!("a: \"{}\"\n", "x".repeat(MAX_SPEC_BYTES));
        let e = parse(&src).unwrap_err();
        assert_eq!(e.limit, Some(Limit::Bytes), "{e:?}");
    }

    #[test]
    fn duplicate_keys_reach_the_tree() {
        let y = parse("a: 1\na: 2\n").unwrap();
        assert_eq!(y.as_map().unwrap().len(), 2);
    }

    #[test]
    fn parser_api_hints_are_rewritten() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.message, "the file holds more than one YAML document");
        assert_eq!(e.limit, None);
    }

    #[test]
    fn deep_nesting_is_rejected() {
        for depth in [49, 200, 10_000] {
            let src = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            let e = parse(&src).unwrap_err();
            assert_eq!(e.limit, Some(Limit::Depth), "depth {depth}: {e:?}");
            // The parser stops at the first level past the limit, not at the end of the text.
            assert!(e.span.offset <= 256, "depth {depth}: {e:?}");
            let src = format!("{}1", "- ".repeat(depth));
            let e = parse(&src).unwrap_err();
            assert_eq!(e.limit, Some(Limit::Depth), "block depth {depth}: {e:?}");
        }
        let ok = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        assert!(parse(&ok).is_ok());
    }
}
