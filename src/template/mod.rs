//! The handlebars engine: compiling a template, rendering it against fetched values while
//! recording its dependencies, and reporting errors as `FILE:LINE:COL` with a caret.

mod error;
mod guard;
pub mod helpers;
pub mod scope;

pub use error::TemplateError;
pub use scope::{Missing, Store};

use crate::dependency::Dependency;
use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::Handlebars;
use std::path::PathBuf;
use std::sync::Arc;

/// The name the template is registered under inside its own registry.
const MAIN: &str = "main";

/// One compiled template with every helper registered.
pub struct Engine {
    hb: Handlebars<'static>,
    file: String,
    source: String,
    sandbox: Option<PathBuf>,
}

/// What one render produced.
#[derive(Debug)]
pub struct Rendered {
    pub output: String,
    pub used: Vec<Dependency>,
    /// Empty when the render is complete.
    pub missing: Vec<Missing>,
}

impl Engine {
    /// Compiles `source`; `file` is the name errors print. `strict` = `error_on_missing_key`.
    pub fn compile(
        file: &str,
        source: &str,
        strict: bool,
        sandbox: Option<PathBuf>,
    ) -> Result<Engine, TemplateError> {
        let refused = |r: guard::Refused| {
            TemplateError::at(file, source, Some(r.line), Some(r.column), r.message)
        };
        // handlebars' parser recurses on nesting: refuse what would exhaust the stack first.
        guard::scan_nesting(source).map_err(refused)?;
        let mut hb = Handlebars::new();
        hb.register_escape_fn(handlebars::no_escape);
        hb.set_strict_mode(strict);
        hb.set_prevent_indent(true);
        helpers::register(&mut hb);
        hb.register_helper(guard::PARTIAL_GUARD, Box::new(guard::PartialGuard));
        hb.register_template_string(MAIN, source).map_err(|e| {
            let (line, col) = e.pos().map_or((None, None), |(l, c)| (Some(l), Some(c)));
            TemplateError::at(file, source, line, col, syntax_message(&e))
        })?;
        if let Some(mut t) = hb.get_template(MAIN).cloned() {
            guard::guard_partials(&mut t).map_err(refused)?;
            hb.register_template(MAIN, t);
        }
        Ok(Engine {
            hb,
            file: file.to_string(),
            source: source.to_string(),
            sandbox,
        })
    }

    /// Renders against `store`. A render that lacks data is returned with `missing` set.
    pub fn render(&self, store: Arc<Store>) -> Result<Rendered, TemplateError> {
        let scope = scope::Scope::enter(store, self.sandbox.clone());
        let mut out = guard::Capped::default();
        let result = self.hb.render_to_write(MAIN, &(), &mut out);
        let recorded = scope.finish();
        match result {
            Ok(()) => Ok(Rendered {
                output: String::from_utf8(out.bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                used: recorded.used,
                missing: recorded.missing,
            }),
            Err(e) => {
                let message = if out.exceeded {
                    format!(
                        "the rendered output would be over the limit of {} MiB",
                        crate::limits::OUTPUT_BYTES >> 20
                    )
                } else {
                    e.reason().to_string()
                };
                Err(TemplateError::at(
                    &self.file,
                    &self.source,
                    e.line_no,
                    e.column_no,
                    message,
                ))
            }
        }
    }

    /// Every call of a helper we do not have, found without rendering.
    pub fn unknown_helpers(&self) -> Vec<TemplateError> {
        let mut found = Vec::new();
        if let Some(t) = self.hb.get_template(MAIN) {
            walk(t, &mut found);
        }
        found
            .into_iter()
            .map(|(name, (line, col))| {
                TemplateError::at(
                    &self.file,
                    &self.source,
                    Some(line),
                    Some(col),
                    helpers::unknown_message(&name),
                )
            })
            .collect()
    }
}

/// handlebars' syntax messages, made readable without its multi-line code frame.
fn syntax_message(e: &handlebars::TemplateError) -> String {
    match e.reason() {
        // pest's list of every token it could have taken is noise to a template author.
        handlebars::TemplateErrorReason::InvalidSyntax(_) => {
            "syntax error: invalid handlebars syntax (an unclosed or malformed {{...}} or block?)"
                .to_string()
        }
        other => format!("syntax error: {other}"),
    }
}

type Found = Vec<(String, (usize, usize))>;

fn walk(t: &Template, found: &mut Found) {
    for (i, el) in t.elements.iter().enumerate() {
        let pos = t.mapping.get(i).map_or((1, 1), |m| (m.0, m.1));
        match el {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                check_helper(h, false, pos, found)
            }
            TemplateElement::HelperBlock(h) => check_helper(h, true, pos, found),
            TemplateElement::DecoratorBlock(d) | TemplateElement::PartialBlock(d) => {
                if let Some(inner) = &d.template {
                    walk(inner, found);
                }
            }
            _ => {}
        }
    }
}

fn check_helper(h: &HelperTemplate, block: bool, pos: (usize, usize), found: &mut Found) {
    if let Parameter::Name(name) = &h.name {
        let is_call = block || !h.params.is_empty() || !h.hash.is_empty();
        if is_call && !helpers::is_known(name) && name != guard::PARTIAL_GUARD {
            found.push((name.clone(), pos));
        }
    }
    for p in h.params.iter().chain(h.hash.values()) {
        check_param(p, pos, found);
    }
    for inner in [&h.template, &h.inverse].into_iter().flatten() {
        walk(inner, found);
    }
}

fn check_param(p: &Parameter, pos: (usize, usize), found: &mut Found) {
    if let Parameter::Subexpression(sub) = p {
        match sub.as_element() {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                if let Parameter::Name(name) = &h.name {
                    if !helpers::is_known(name) {
                        found.push((name.clone(), pos));
                    }
                }
                for q in h.params.iter().chain(h.hash.values()) {
                    check_param(q, pos, found);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(src: &str, store: Store) -> Rendered {
        Engine::compile("t.hbs", src, false, None)
            .unwrap()
            .render(Arc::new(store))
            .unwrap()
    }

    #[test]
    fn pending_dependencies_make_the_render_incomplete() {
        let r = render(
            "{{#each (service \"web\")}}{{Address}}{{else}}none{{/each}}",
            Store::new(),
        );
        assert_eq!(r.output, "none");
        assert_eq!(r.missing.len(), 1);
        let dep = r.used[0].clone();
        let mut store = Store::new();
        store.insert(dep, Some(json!([{"Address": "10.0.0.1"}])));
        let r = render(
            "{{#each (service \"web\")}}{{Address}}{{else}}none{{/each}}",
            store,
        );
        assert_eq!(r.output, "10.0.0.1");
        assert!(r.missing.is_empty());
    }

    #[test]
    fn no_html_escaping() {
        assert_eq!(
            render("{{toUpper \"<a&b>\"}}", Store::new()).output,
            "<A&B>"
        );
    }

    #[test]
    fn syntax_errors_are_positioned() {
        let e = Engine::compile("t.hbs", "ok\n  {{#if x}}\n", false, None)
            .err()
            .unwrap();
        assert_eq!(e.file, "t.hbs");
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn render_errors_name_helper_and_position() {
        let e = Engine::compile("t.hbs", "line\n  {{add 1 \"x\"}}", false, None)
            .unwrap()
            .render(Arc::new(Store::new()))
            .unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(3)));
        assert!(
            e.message.contains("add: argument 2 must be a number"),
            "{e}"
        );
    }

    #[test]
    fn unknown_helpers_found_without_rendering() {
        let eng = Engine::compile(
            "t.hbs",
            "{{#each (servce \"x\")}}{{/each}}\n{{secret \"a\"}} {{plain}}",
            false,
            None,
        )
        .unwrap();
        let found = eng.unknown_helpers();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].message.contains("did you mean \"service\""));
        assert_eq!(found[1].line, Some(2));
    }
}
