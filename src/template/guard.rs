//! What keeps a hostile or mistaken template from exhausting the stack or memory: a scan for
//! nesting before handlebars' recursive parser sees the source, a depth guard around every
//! inline partial (handlebars has none for partials that include themselves), a refusal of
//! partials that include themselves unconditionally, and a cap on the rendered output.

use crate::limits;
use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderErrorReason,
    Renderable,
};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

/// The block helper wrapped around each inline partial's body; not callable by templates.
pub const PARTIAL_GUARD: &str = "__consul_render_partial";

/// A problem found before rendering, at a 1-based line and column.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Scans `source` for blocks and subexpressions nested past the limits, without recursion.
/// Returns where each line that starts outside every block begins (byte offsets), the places
/// the source may be cut for parsing in pieces.
pub fn scan_nesting(source: &str) -> Result<Vec<usize>, Refused> {
    let bytes = source.as_bytes();
    let (mut line, mut col) = (1usize, 1usize);
    let mut depth = 0usize;
    let mut i = 0;
    let mut top_level_lines = Vec::new();
    // Moves `i` forward to `to`, keeping line and column; in plain text outside every block,
    // records where lines start.
    let mut advance =
        |i: &mut usize, to: usize, line: &mut usize, col: &mut usize, text_at: Option<usize>| {
            let to = to.min(bytes.len());
            for (k, &b) in bytes[*i..to].iter().enumerate() {
                if b == b'\n' {
                    *line += 1;
                    *col = 1;
                    if text_at == Some(0) {
                        top_level_lines.push(*i + k + 1);
                    }
                } else if b & 0xC0 != 0x80 {
                    *col += 1;
                }
            }
            *i = to;
        };
    let find = |from: usize, pat: &str| source[from..].find(pat).map(|p| from + p);
    while let Some(open) = find(i, "{{") {
        let escaped = open > 0 && bytes[open - 1] == b'\\';
        advance(&mut i, open, &mut line, &mut col, Some(depth));
        let (at_line, at_col) = (line, col);
        if escaped {
            advance(&mut i, open + 2, &mut line, &mut col, None);
            continue;
        }
        let rest = &source[open..];
        let end = if rest.starts_with("{{{{") {
            // A raw block: its content is literal up to the closing `{{{{/name}}}}`.
            let opener_end = find(open, "}}}}").map_or(bytes.len(), |e| e + 4);
            match find(opener_end, "{{{{/").and_then(|c| find(c, "}}}}")) {
                Some(close) => close + 4,
                None => bytes.len(),
            }
        } else if rest.starts_with("{{!--") || rest.starts_with("{{~!--") {
            find(open, "--}}")
                .or_else(|| find(open, "--~}}"))
                .map_or(bytes.len(), |e| e + 4)
        } else if rest.starts_with("{{!") || rest.starts_with("{{~!") {
            find(open, "}}").map_or(bytes.len(), |e| e + 2)
        } else {
            let (end, parens) = expression_end(source, open + 2);
            if parens > limits::SUBEXPRESSION_NESTING {
                return Err(Refused {
                    line: at_line,
                    column: at_col,
                    message: format!(
                        "subexpressions nest deeper than {} levels",
                        limits::SUBEXPRESSION_NESTING
                    ),
                });
            }
            let body = source[open + 2..end.min(bytes.len())].trim_start_matches(['{', '~', ' ']);
            if body.starts_with('#') || (body.starts_with('^') && body.len() > 1) {
                depth += 1;
                if depth > limits::TEMPLATE_NESTING {
                    return Err(Refused {
                        line: at_line,
                        column: at_col,
                        message: format!(
                            "blocks nest deeper than {} levels",
                            limits::TEMPLATE_NESTING
                        ),
                    });
                }
            } else if body.starts_with('/') {
                depth = depth.saturating_sub(1);
            }
            end
        };
        advance(&mut i, end, &mut line, &mut col, None);
    }
    advance(&mut i, bytes.len(), &mut line, &mut col, Some(depth));
    Ok(top_level_lines)
}

/// Where the `{{…}}` starting at `from` ends (past its `}}`), and its deepest parenthesis
/// nesting. Quoted strings may hold `}}` and parentheses.
fn expression_end(source: &str, from: usize) -> (usize, usize) {
    let bytes = source.as_bytes();
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<u8> = None;
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'(' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b')' => depth = depth.saturating_sub(1),
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    let mut end = i + 2;
                    while bytes.get(end) == Some(&b'}') {
                        end += 1;
                    }
                    return (end, deepest);
                }
                _ => {}
            },
        }
        i += 1;
    }
    (bytes.len(), deepest)
}

/// Wraps every inline partial's body in the depth guard, after refusing partials that include
/// themselves on every render (directly or through others), which could never end.
pub fn guard_partials(t: &mut Template) -> Result<(), Refused> {
    let mut calls: BTreeMap<String, (BTreeSet<String>, (usize, usize))> = BTreeMap::new();
    collect_inline(t, &mut calls);
    for start in calls.keys() {
        if let Some(cycle) = unconditional_cycle(start, &calls) {
            let (line, column) = calls[start].1;
            return Err(Refused {
                line,
                column,
                message: format!(
                    "partial {start:?} includes itself on every render ({}): it could never end",
                    cycle.join(" → ")
                ),
            });
        }
    }
    wrap_inline(t);
    Ok(())
}

/// Inline partials by name: the partials their body includes outside any block, and where
/// they are defined.
fn collect_inline(t: &Template, out: &mut BTreeMap<String, (BTreeSet<String>, (usize, usize))>) {
    for (i, el) in t.elements.iter().enumerate() {
        match el {
            TemplateElement::DecoratorBlock(d) => {
                if let (Some("inline"), Some(Parameter::Literal(serde_json::Value::String(name)))) =
                    (d.name.as_name(), d.params.first())
                {
                    let pos = t.mapping.get(i).map_or((1, 1), |m| (m.0, m.1));
                    let mut direct = BTreeSet::new();
                    if let Some(body) = &d.template {
                        for el in &body.elements {
                            if let TemplateElement::PartialExpression(p)
                            | TemplateElement::PartialBlock(p) = el
                            {
                                if let Some(n) = p.name.as_name() {
                                    direct.insert(n.to_string());
                                }
                            }
                        }
                    }
                    out.entry(name.clone()).or_insert((direct, pos));
                }
                if let Some(body) = &d.template {
                    collect_inline(body, out);
                }
            }
            TemplateElement::HelperBlock(h) => {
                for inner in [&h.template, &h.inverse].into_iter().flatten() {
                    collect_inline(inner, out);
                }
            }
            TemplateElement::PartialBlock(d) => {
                if let Some(body) = &d.template {
                    collect_inline(body, out);
                }
            }
            _ => {}
        }
    }
}

/// A path of unconditional includes from `start` back to itself, if there is one.
fn unconditional_cycle(
    start: &str,
    calls: &BTreeMap<String, (BTreeSet<String>, (usize, usize))>,
) -> Option<Vec<String>> {
    let mut stack: Vec<(String, Vec<String>)> = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((name, path)) = stack.pop() {
        let Some((next, _)) = calls.get(&name) else {
            continue;
        };
        for n in next {
            let mut p = path.clone();
            p.push(n.clone());
            if n == start {
                return Some(p);
            }
            if seen.insert(n.clone()) {
                stack.push((n.clone(), p));
            }
        }
    }
    None
}

fn wrap_inline(t: &mut Template) {
    for el in &mut t.elements {
        match el {
            TemplateElement::DecoratorBlock(d) => {
                if let Some(body) = d.template.as_mut() {
                    wrap_inline(body);
                }
                if d.name.as_name() == Some("inline") {
                    if let Some(body) = d.template.take() {
                        d.template = Some(guarded(body));
                    }
                }
            }
            TemplateElement::HelperBlock(h) => {
                for inner in [&mut h.template, &mut h.inverse].into_iter().flatten() {
                    wrap_inline(inner);
                }
            }
            TemplateElement::PartialBlock(d) => {
                if let Some(body) = d.template.as_mut() {
                    wrap_inline(body);
                }
            }
            _ => {}
        }
    }
}

/// `{{#guard}}body{{/guard}}`, built by handlebars' own parser (its AST types are not meant
/// to be built by hand).
fn guarded(body: Template) -> Template {
    let src = format!("{{{{#{PARTIAL_GUARD}}}}}{{{{/{PARTIAL_GUARD}}}}}");
    let Ok(mut wrapper) = Template::compile(&src) else {
        return body;
    };
    match wrapper.elements.first_mut() {
        Some(TemplateElement::HelperBlock(h)) => {
            // Errors of the guard itself point where the partial's body starts.
            if let Some(m) = body.mapping.first() {
                wrapper.mapping = vec![m.clone()];
            }
            h.template = Some(body);
            wrapper
        }
        _ => body,
    }
}

thread_local! {
    static PARTIAL_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// The depth guard: renders the partial's body one level deeper, refusing past the limit.
pub struct PartialGuard;

impl HelperDef for PartialGuard {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        struct Leave;
        impl Drop for Leave {
            fn drop(&mut self) {
                PARTIAL_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
            }
        }
        let depth = PARTIAL_DEPTH.with(|d| {
            d.set(d.get() + 1);
            d.get()
        });
        let _leave = Leave;
        // Up to `TEMPLATE_NESTING` blocks may stand between two partial levels, so the depth
        // alone does not bound the stack: also stop while plenty of it is left.
        let low_stack = stacker::remaining_stack().is_some_and(|left| left < limits::STACK_RESERVE);
        if depth > limits::PARTIAL_DEPTH || low_stack {
            return Err(RenderErrorReason::Other(format!(
                "partials nest too deeply (the limit is {} levels, less where blocks nest between \
                 them): a partial that includes itself without end?",
                limits::PARTIAL_DEPTH
            ))
            .into());
        }
        match h.template() {
            Some(t) => t.render(r, ctx, rc, out),
            None => Ok(()),
        }
    }
}

/// A render target that refuses to grow past `limits::OUTPUT_BYTES`.
#[derive(Default)]
pub struct Capped {
    pub bytes: Vec<u8>,
    pub exceeded: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > limits::OUTPUT_BYTES {
            self.exceeded = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_without_recursion() {
        assert!(scan_nesting("{{#if a}}{{#each b}}x{{/each}}{{/if}}").is_ok());
        let deep = "{{#if a}}".repeat(10_000);
        let e = scan_nesting(&format!("line\n  {deep}")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("blocks nest deeper than 100"), "{e:?}");
        // Closed blocks do not add up; comments, raw blocks and escapes are not blocks.
        let flat = "{{#if a}}x{{/if}}".repeat(10_000);
        assert!(scan_nesting(&flat).is_ok());
        let hidden = format!(
            "{{{{!-- {deep} --}}}}{{{{{{{{raw}}}}}}}}{deep}{{{{{{{{/raw}}}}}}}}\\{{{{#if}}}}"
        );
        assert!(scan_nesting(&hidden).is_ok(), "{hidden:.80}");
        let parens = format!("{{{{x {}1{}}}}}", "(f ".repeat(100), ")".repeat(100));
        assert!(scan_nesting(&parens)
            .unwrap_err()
            .message
            .contains("subexpressions"));
        assert!(scan_nesting("{{x \"(((((((((((((((((((((((((((((((((((\"}}").is_ok());
    }

    #[test]
    fn unconditional_self_inclusion_is_refused() {
        let mut t = Template::compile("{{#*inline \"r\"}}x{{> r}}{{/inline}}{{> r}}").unwrap();
        let e = guard_partials(&mut t).unwrap_err();
        assert!(e.message.contains("r → r"), "{e:?}");
        let mut t = Template::compile(
            "{{#*inline \"a\"}}{{> b}}{{/inline}}{{#*inline \"b\"}}{{> a}}{{/inline}}",
        )
        .unwrap();
        assert!(guard_partials(&mut t).is_err());
        // Inside a block it may end (a tree walk): allowed, and guarded at render time.
        let mut t =
            Template::compile("{{#*inline \"r\"}}{{#each c}}{{> r}}{{/each}}{{/inline}}").unwrap();
        assert!(guard_partials(&mut t).is_ok());
    }
}
