//! Changes made to handlebars' parsed template before it renders, where handlebars' own rules
//! differ from what a consul-template user expects.
//!
//! - A block parameter wins over a helper of the same name: `{{#each (tree "x") as |key|}}{{key}}`
//!   prints the block parameter (as handlebars.js does), where handlebars-rust would call the
//!   `key` helper. The bare `{{key}}` becomes `{{VALUE key}}`, and a path parameter is looked up
//!   in the block parameters first. A *field* named like a helper still needs `this.`.

use handlebars::template::{BlockParam, Parameter, Template, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, Path, RenderContext, RenderError, ScopedJson,
};

/// The internal helper that prints its one parameter's value.
pub const VALUE: &str = "__consul_render_value";

/// Rewrites bare expressions naming a block parameter that is also a helper.
pub fn block_params_shadow_helpers(t: &mut Template, is_helper: &dyn Fn(&str) -> bool) {
    walk(t, &mut Vec::new(), is_helper);
}

fn walk(t: &mut Template, scope: &mut Vec<String>, is_helper: &dyn Fn(&str) -> bool) {
    for el in &mut t.elements {
        match el {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                let shadowed = match &h.name {
                    Parameter::Path(p) if h.params.is_empty() && h.hash.is_empty() => {
                        let raw = path_raw(p);
                        scope.iter().any(|b| b == raw) && is_helper(raw)
                    }
                    _ => false,
                };
                if shadowed {
                    let path = std::mem::replace(&mut h.name, Parameter::Name(VALUE.to_string()));
                    h.params.push(path);
                }
            }
            TemplateElement::HelperBlock(h) => {
                let added = match &h.block_param {
                    Some(BlockParam::Single(p)) => names(&[p]),
                    Some(BlockParam::Pair((a, b))) => names(&[a, b]),
                    _ => Vec::new(),
                };
                let before = scope.len();
                scope.extend(added);
                if let Some(inner) = h.template.as_mut() {
                    walk(inner, scope, is_helper);
                }
                scope.truncate(before);
                if let Some(inner) = h.inverse.as_mut() {
                    walk(inner, scope, is_helper);
                }
            }
            TemplateElement::DecoratorBlock(d) | TemplateElement::PartialBlock(d) => {
                if let Some(inner) = d.template.as_mut() {
                    walk(inner, scope, is_helper);
                }
            }
            _ => {}
        }
    }
}

fn names(params: &[&Parameter]) -> Vec<String> {
    params
        .iter()
        .filter_map(|p| match p {
            Parameter::Name(n) => Some(n.clone()),
            Parameter::Path(p) => Some(path_raw(p).to_string()),
            _ => None,
        })
        .collect()
}

/// A path as written in the template (`key`, `s.Address`, `@index`).
pub fn path_raw(p: &Path) -> &str {
    match p {
        Path::Relative((_, raw)) | Path::Local((_, _, raw)) => raw,
    }
}

/// `{{VALUE path}}`: the parameter's value, as `{{path}}` would print it without the helper.
pub struct Value;

impl HelperDef for Value {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        Ok(ScopedJson::Derived(first_param(h)))
    }
}

/// A helper's first parameter's value (nothing when there is none).
fn first_param(h: &Helper<'_>) -> serde_json::Value {
    h.param(0)
        .map_or(serde_json::Value::Null, |p| p.value().clone())
}

/// `{{#LET value as |name|}}…{{/LET}}`: the body with `name` bound to `value` and the context
/// unchanged (a converted Go template's `$name := value`, where `value` reads `.`).
pub const LET: &str = "__consul_render_let";

pub struct Let;

impl HelperDef for Let {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn handlebars::Output,
    ) -> handlebars::HelperResult {
        let value = first_param(h);
        let Some(template) = h.template() else {
            return Ok(());
        };
        // The same context as around the block, plus the parameter.
        let mut block = rc.block().cloned().unwrap_or_default();
        if let Some(name) = h.block_param() {
            let mut params = handlebars::BlockParams::new();
            params.add_value(name, value)?;
            block.set_block_params(params);
        }
        rc.push_block(block);
        let result = handlebars::Renderable::render(template, r, ctx, rc, out);
        rc.pop_block();
        result
    }
}
