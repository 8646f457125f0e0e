//! The handlebars engine: compiling a template, rendering it against fetched values while
//! recording its dependencies, and reporting errors as `FILE:LINE:COL` with a caret.

mod error;
pub mod fields;
mod guard;
pub mod helpers;
mod pieces;
pub(crate) mod rewrite;
pub mod scope;

pub use error::TemplateError;
pub use scope::{Missing, Store};

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::{Handlebars, Renderable as _};
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
    denylist: Vec<String>,
    fields: fields::Fields,
}

/// How a template is compiled: consul-template's per-template options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `error_on_missing_key`: a value path that resolves to nothing is an error.
    pub strict: bool,
    /// `sandbox_path`: `file` reads only below it.
    pub sandbox: Option<PathBuf>,
    /// `function_denylist` (`function_blacklist`): helpers (globs) the template may not call.
    pub denylist: Vec<String>,
}

/// What one render produced.
#[derive(Debug)]
pub struct Rendered {
    pub output: String,
    /// In the order the render first used them.
    pub used: scope::DepSet,
    /// Empty when the render is complete.
    pub missing: Vec<Missing>,
}

impl Engine {
    /// Compiles `source`; `file` is the name errors print. Calls of helpers we do not have, or
    /// that are denied, are found by `problems`, without rendering.
    pub fn compile(file: &str, source: &str, opts: &Options) -> Result<Engine, TemplateError> {
        let refused = |r: guard::Refused| {
            TemplateError::at(file, source, Some(r.line), Some(r.column), r.message)
        };
        // handlebars' parser recurses on nesting: refuse what would exhaust the stack first.
        let top_level_lines = guard::scan_nesting(source).map_err(refused)?;
        let mut hb = Handlebars::new();
        hb.register_escape_fn(handlebars::no_escape);
        hb.set_strict_mode(opts.strict);
        hb.set_prevent_indent(true);
        helpers::register(&mut hb);
        hb.register_helper(guard::PARTIAL_GUARD, Box::new(guard::PartialGuard));
        hb.register_helper(rewrite::VALUE, Box::new(rewrite::Value));
        hb.register_helper(rewrite::LET, Box::new(rewrite::Let));
        let mut t = pieces::parse(
            &mut hb,
            source,
            &top_level_lines,
            pieces::piece_bytes(source.len()),
        )
        .map_err(|(e, line_offset)| {
            let (line, col) = e
                .pos()
                .map_or((None, None), |(l, c)| (Some(l + line_offset), Some(c)));
            TemplateError::at(file, source, line, col, syntax_message(&e))
        })?;
        t.name = Some(MAIN.to_string());
        guard::guard_partials(&mut t).map_err(refused)?;
        rewrite::block_params_shadow_helpers(&mut t, &helpers::is_known);
        hb.register_template(MAIN, t);
        let fields = hb.get_templates().values().map(fields::of).fold(
            fields::Fields::Only(std::collections::BTreeSet::default()),
            fields::Fields::union,
        );
        Ok(Engine {
            fields,
            hb,
            file: file.to_string(),
            source: source.to_string(),
            sandbox: opts.sandbox.clone(),
            denylist: opts.denylist.clone(),
        })
    }

    /// The fields of `service` instances this template can read.
    pub fn fields(&self) -> &fields::Fields {
        &self.fields
    }

    /// Renders against `store`. A render that lacks data is returned with `missing` set.
    pub fn render(&self, store: Arc<Store>) -> Result<Rendered, TemplateError> {
        let scope = scope::Scope::enter(store.clone(), self.sandbox.clone());
        let mut out = guard::Capped::default();
        let result = match self.hb.get_template(MAIN) {
            Some(template) => {
                // The store is the root context, so helpers hand out its values by path; the
                // template itself starts in a block whose value is nothing, as it did when
                // rendered against no data (`{{this}}` and `{{Name}}` at the top stay empty).
                let mut rc = handlebars::RenderContext::new(template.name.as_ref());
                let mut top = handlebars::BlockContext::new();
                top.set_base_value(serde_json::Value::Null);
                rc.push_block(top);
                template.render(
                    &self.hb,
                    store.context(),
                    &mut rc,
                    &mut handlebars::WriteOutput::new(&mut out),
                )
            }
            None => Err(handlebars::RenderErrorReason::TemplateNotFound(MAIN.into()).into()),
        };
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
                } else if let handlebars::RenderErrorReason::MissingVariable(path) = e.reason() {
                    format!(
                        "no value for {} (error_on_missing_key is set)",
                        path.as_deref().unwrap_or("a variable")
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

    /// Every call of a helper we do not have, or that `function_denylist` denies, found
    /// without rendering: a call with arguments, a block or a subexpression. (A bare
    /// `{{Name}}` is a value path and renders empty when nothing is there.)
    pub fn problems(&self) -> Vec<TemplateError> {
        let mut found = Vec::new();
        if let Some(t) = self.hb.get_template(MAIN) {
            walk(t, &mut found);
        }
        found
            .into_iter()
            .filter_map(|(name, known, (line, col))| {
                let message = if !known {
                    helpers::unknown_message(&name)
                } else if self.denylist.iter().any(|g| crate::glob::matches(g, &name)) {
                    format!("{name}: this function is denied by the template's function_denylist")
                } else {
                    return None;
                };
                Some(TemplateError::at(
                    &self.file,
                    &self.source,
                    Some(line),
                    Some(col),
                    message,
                ))
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

/// Helper calls found in the template: name, whether we have it, position.
type Found = Vec<(String, bool, (usize, usize))>;

fn walk(t: &Template, found: &mut Found) {
    for (i, el) in t.elements.iter().enumerate() {
        let pos = t.mapping.get(i).map_or((1, 1), |m| (m.0, m.1));
        match el {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                check_helper(h, false, pos, found);
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
    let name = match &h.name {
        Parameter::Name(n) => Some(n.as_str()),
        // A bare `{{key}}` parses as a path; it calls the helper when one has that name.
        Parameter::Path(p) => Some(rewrite::path_raw(p)),
        _ => None,
    };
    if let Some(name) = name.filter(|n| !internal(n)) {
        let is_call = block || !h.params.is_empty() || !h.hash.is_empty();
        let known = helpers::is_known(name);
        if is_call || known {
            found.push((name.to_string(), known, pos));
        }
    }
    for p in h.params.iter().chain(h.hash.values()) {
        check_param(p, pos, found);
    }
    for inner in [&h.template, &h.inverse].into_iter().flatten() {
        walk(inner, found);
    }
}

/// Helpers of our own that the rewrites insert; templates cannot name them.
fn internal(name: &str) -> bool {
    use helpers::format::{GO_AND, GO_OR, GO_VALUE};
    [
        guard::PARTIAL_GUARD,
        rewrite::VALUE,
        rewrite::LET,
        GO_VALUE,
        GO_AND,
        GO_OR,
    ]
    .contains(&name)
}

fn check_param(p: &Parameter, pos: (usize, usize), found: &mut Found) {
    if let Parameter::Subexpression(sub) = p {
        match sub.as_element() {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                if let Parameter::Name(name) = &h.name {
                    if !internal(name) {
                        found.push((name.clone(), helpers::is_known(name), pos));
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
        Engine::compile("t.hbs", src, &Options::default())
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
        let e = Engine::compile("t.hbs", "ok\n  {{#if x}}\n", &Options::default())
            .err()
            .unwrap();
        assert_eq!(e.file, "t.hbs");
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn render_errors_name_helper_and_position() {
        let e = Engine::compile("t.hbs", "line\n  {{add 1 \"x\"}}", &Options::default())
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
            &Options::default(),
        )
        .unwrap();
        let found = eng.problems();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].message.contains("did you mean \"service\""));
        assert_eq!(found[1].line, Some(2));
    }
}
