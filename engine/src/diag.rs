//! Spec diagnostics: every error a spec can have, with a stable code, the YAML span it points at
//! and, where we can guess, a "did you mean" help. Lowering collects them all and returns them
//! together as one [`SpecErrors`] report; only the CLI renders it.

use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};

use crate::spec::yaml::Span;

/// The spec text, shared by every diagnostic that points into it.
pub type SpecSource = Arc<NamedSource<String>>;

/// Stable error codes. They appear in output (`spec::unknown_kind`) and golden files; never reuse
/// one for a different meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    YamlSyntax,
    BadShape,
    UnknownField,
    MissingField,
    UnknownKind,
    UnknownParam,
    ParamType,
    InvalidParam,
    MissingNode,
    UnknownPort,
    MissingInput,
    PortMismatch,
    Cycle,
    EmptyPartition,
    PartitionMissing,
    UnknownSweepParam,
    BadValue,
    BadOverride,
    UnknownReference,
    TooManySteps,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::YamlSyntax => "spec::yaml_syntax",
            Code::BadShape => "spec::bad_shape",
            Code::UnknownField => "spec::unknown_field",
            Code::MissingField => "spec::missing_field",
            Code::UnknownKind => "spec::unknown_kind",
            Code::UnknownParam => "spec::unknown_param",
            Code::ParamType => "spec::param_type",
            Code::InvalidParam => "spec::invalid_param",
            Code::MissingNode => "spec::missing_node",
            Code::UnknownPort => "spec::unknown_port",
            Code::MissingInput => "spec::missing_input",
            Code::PortMismatch => "spec::port_mismatch",
            Code::Cycle => "spec::cycle",
            Code::EmptyPartition => "spec::empty_partition",
            Code::PartitionMissing => "spec::partition_missing",
            Code::UnknownSweepParam => "spec::unknown_sweep_param",
            Code::BadValue => "spec::bad_value",
            Code::BadOverride => "spec::bad_override",
            Code::UnknownReference => "spec::unknown_reference",
            Code::TooManySteps => "spec::too_many_steps",
        }
    }
}

/// One spec error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    pub code: Code,
    pub message: String,
    /// Primary span and its label.
    pub span: Option<(Span, String)>,
    /// Further spans (e.g. the other end of a port mismatch).
    pub secondary: Vec<(Span, String)>,
    pub help: Option<String>,
    pub src: Option<SpecSource>,
    /// A window of a long line shown instead of `src` (see `cut_long_line`).
    excerpt: Option<Arc<Excerpt>>,
}

/// A window of one long line of the spec, reporting the line and column of the whole file.
#[derive(Debug)]
struct Excerpt {
    name: String,
    text: String,
    /// 0-based line and column (in characters) of the window's first character.
    line: usize,
    column: usize,
}

impl miette::SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner = self.text.read_span(span, before, after)?;
        let column = if inner.line() == 0 {
            inner.column() + self.column
        } else {
            inner.column()
        };
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line() + self.line,
            column,
            inner.line_count(),
        )))
    }
}

impl SpecError {
    pub fn new(code: Code, message: impl Into<String>) -> SpecError {
        SpecError {
            code,
            message: message.into(),
            span: None,
            secondary: Vec::new(),
            help: None,
            src: None,
            excerpt: None,
        }
    }

    pub fn at(mut self, span: Span, label: impl Into<String>) -> SpecError {
        self.span = Some((span, label.into()));
        self
    }

    pub fn also(mut self, span: Span, label: impl Into<String>) -> SpecError {
        self.secondary.push((span, label.into()));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> SpecError {
        self.help = Some(help.into());
        self
    }

    /// Adds "did you mean `x`?" when one of `candidates` is close to `wrong`.
    pub fn did_you_mean<'a>(
        mut self,
        wrong: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> SpecError {
        let candidates: Vec<&str> = candidates.into_iter().collect();
        if let Some(best) = closest(wrong, candidates.iter().copied()) {
            self.help = Some(format!("did you mean `{best}`?"));
        } else if !candidates.is_empty() && candidates.len() <= 12 {
            let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
            self.help = Some(format!("expected one of {}", list.join(", ")));
        }
        self
    }

    /// When the primary span lies on a line longer than [`LONG_LINE`] (a generated one-line
    /// JSON spec), shows only a window of that line around it: the source becomes the excerpt,
    /// named with the line and column, and the spans are shifted into it. Secondary spans
    /// outside the window are dropped. A renderer fed a line of 65,536 characters or more
    /// would fail, and a terminal would show nothing useful anyway.
    fn cut_long_line(&mut self) {
        let (Some(src), Some((span, _))) = (&self.src, &self.span) else {
            return;
        };
        let text = src.inner();
        let at = span.offset.min(text.len());
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        if line_end - line_start <= LONG_LINE {
            return;
        }
        let floor = |mut i: usize| {
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let len = span.len.min(CUT_CONTEXT);
        let start = floor(at.saturating_sub(CUT_CONTEXT).max(line_start));
        let end = floor((at + len + CUT_CONTEXT).min(line_end));
        let line = text[..start].matches('\n').count();
        let column = text[line_start..start].chars().count();
        let excerpt = Excerpt {
            name: format!(
                "{} (a line of {} characters, cut)",
                src.name(),
                text[line_start..line_end].chars().count()
            ),
            text: text[start..end].to_string(),
            line,
            column,
        };
        let shift = |s: Span| -> Option<Span> {
            (s.offset >= start && s.offset < end).then(|| Span {
                offset: s.offset - start,
                len: s.len.min(end - s.offset),
            })
        };
        if let Some((s, _)) = &mut self.span {
            *s = Span {
                offset: at - start,
                len: len.min(end - at),
            };
        }
        self.secondary = std::mem::take(&mut self.secondary)
            .into_iter()
            .filter_map(|(s, l)| shift(s).map(|s| (s, l)))
            .collect();
        self.excerpt = Some(Arc::new(excerpt));
    }

    fn dedup_key(&self) -> (Code, String, Option<Span>) {
        (
            self.code,
            self.message.clone(),
            self.span.as_ref().map(|s| s.0),
        )
    }
}

impl Diagnostic for SpecError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.code.as_str()))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        if let Some(e) = &self.excerpt {
            return Some(e.as_ref() as &dyn miette::SourceCode);
        }
        self.src.as_deref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.src.as_ref()?;
        let primary = self.span.iter().map(|(s, l)| {
            LabeledSpan::new_primary_with_span(Some(l.clone()), SourceSpan::from(*s))
        });
        let secondary = self
            .secondary
            .iter()
            .map(|(s, l)| LabeledSpan::new_with_span(Some(l.clone()), SourceSpan::from(*s)));
        Some(Box::new(primary.chain(secondary)))
    }
}

/// All errors of one spec, reported together.
#[derive(Debug, thiserror::Error)]
#[error("{} in `{}`{}", count(.errors.len() + .omitted), .path, shown(.errors.len(), *.omitted))]
pub struct SpecErrors {
    pub path: String,
    pub errors: Vec<SpecError>,
    /// Errors found beyond [`MAX_ERRORS`], counted but not kept.
    pub omitted: usize,
}

/// Lines longer than this many bytes are shown cut around the error ([`CUT_CONTEXT`] bytes on
/// each side).
pub const LONG_LINE: usize = 1000;
const CUT_CONTEXT: usize = 80;

/// At most this many errors are kept and shown: a hostile spec can have one per line.
pub const MAX_ERRORS: usize = 100;

fn shown(kept: usize, omitted: usize) -> String {
    if omitted == 0 {
        String::new()
    } else {
        format!(" (the first {kept} shown)")
    }
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 error".to_string()
    } else {
        format!("{n} errors")
    }
}

impl Diagnostic for SpecErrors {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new("spec::invalid"))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.errors.iter().map(|e| e as &dyn Diagnostic)))
    }
}

/// Collects errors while lowering; duplicates (the same error found for many partitions of one
/// node) are reported once.
#[derive(Default)]
pub struct Diagnostics {
    errors: Vec<SpecError>,
    seen: std::collections::HashSet<(Code, String, Option<Span>)>,
    omitted: usize,
}

impl Diagnostics {
    pub fn push(&mut self, e: SpecError) {
        if self.errors.len() >= MAX_ERRORS {
            if !self.seen.contains(&e.dedup_key()) {
                self.omitted += 1;
            }
        } else if self.seen.insert(e.dedup_key()) {
            self.errors.push(e);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Errors kept (at most [`MAX_ERRORS`]).
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// True once [`MAX_ERRORS`] errors are kept: callers may stop looking for more.
    pub fn is_full(&self) -> bool {
        self.errors.len() >= MAX_ERRORS
    }

    pub fn into_report(self, path: &str, src: &SpecSource) -> SpecErrors {
        let mut errors = self.errors;
        // Order by position in the file, so the report reads top to bottom.
        errors.sort_by_key(|e| e.span.as_ref().map(|s| s.0.offset).unwrap_or(usize::MAX));
        for e in &mut errors {
            if e.span.is_some() {
                e.src = Some(src.clone());
                e.cut_long_line();
            }
        }
        SpecErrors {
            path: path.to_string(),
            errors,
            omitted: self.omitted,
        }
    }
}

/// Edit distance for "did you mean": Levenshtein plus the transposition of two adjacent
/// characters as one edit (optimal string alignment), the commonest typo (`rwa` for `raw`).
pub fn edit_distance(a: &str, b: &str) -> usize {
    distance_within(a, b, usize::MAX).unwrap_or(usize::MAX)
}

/// [`edit_distance`] if it is at most `limit`; stops as soon as a whole row exceeds it (a name
/// that starts differently is rejected after a few characters).
fn distance_within(a: &str, b: &str, limit: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 0..a.len() {
        cur[0] = i + 1;
        for j in 0..b.len() {
            let sub = prev[j] + usize::from(a[i] != b[j]);
            let mut d = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                d = d.min(prev2[j - 1] + 1);
            }
            cur[j + 1] = d;
        }
        // Distances never shrink from one row to the next but one (a transposition reads two
        // rows back), so two rows over the limit settle it.
        if cur.iter().min().copied().unwrap_or(0) > limit
            && prev.iter().min().copied().unwrap_or(0) > limit
        {
            return None;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    Some(prev[b.len()]).filter(|d| *d <= limit)
}

/// Longer names are not typos of anything a spec names (and would make "did you mean" slow).
const MAX_SUGGEST_LEN: usize = 64;

/// The candidate closest to `wrong`, if it is close enough to be a plausible typo.
pub fn closest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = wrong.chars().count();
    if len > MAX_SUGGEST_LEN {
        return None;
    }
    let limit = if len <= 3 { 1 } else { (len / 3).max(2) };
    candidates
        .into_iter()
        // Cheap bound first: the distance is at least the difference in length.
        .filter(|c| c.len().abs_diff(wrong.len()) <= limit * 4)
        .filter_map(|c| distance_within(wrong, c, limit).map(|d| (d, c)))
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("ed", "ed"), 0);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            closest("composit", ["acquire", "composite", "mask"]),
            Some("composite")
        );
        assert_eq!(closest("zzzzzz", ["acquire", "composite"]), None);
    }

    #[test]
    fn transpositions_are_one_edit() {
        assert_eq!(edit_distance("rwa", "raw"), 1);
        assert_eq!(edit_distance("medain", "median"), 1);
        assert_eq!(closest("rwa", ["raw", "sum"]), Some("raw"));
    }

    #[test]
    fn errors_are_capped() {
        let mut d = Diagnostics::default();
        for i in 0..MAX_ERRORS + 5 {
            d.push(SpecError::new(Code::BadValue, format!("e{i}")).at(Span::new(i, 1), "x"));
        }
        assert!(d.is_full());
        let src: SpecSource = Arc::new(NamedSource::new("s", String::new()));
        let r = d.into_report("s", &src);
        assert_eq!(r.errors.len(), MAX_ERRORS);
        assert_eq!(r.omitted, 5);
        assert_eq!(r.to_string(), "105 errors in `s` (the first 100 shown)");
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut d = Diagnostics::default();
        let e = SpecError::new(Code::UnknownKind, "x").at(Span::new(1, 2), "here");
        d.push(e.clone());
        d.push(e);
        assert_eq!(d.len(), 1);
    }
}
