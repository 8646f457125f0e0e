//! Which fields of `service` instances a template can read, so once mode builds only those.
//!
//! A full instance is about 6 KB of JSON (17 fields, its checks, maps); a template printing
//! `{{Address}}:{{Port}}` for 10,000 of them needs a tenth of that. A field is kept when its name
//! appears in the template as a path segment or a string literal (`../Name` included). Whatever
//! could see an instance as a whole makes every field kept: `this` or a block parameter that may
//! be an instance handed to a helper (`toJSON`, `join`, `eq`, `len`, `#each` over an instance…),
//! `@root` or a bare `../`, a partial given a context, `lookup` with a computed key. Whether
//! `this` may be an instance follows the blocks: inside `#each (service …)` it may, inside
//! `#with (env …)` or `#each Tags` it may not, inside a partial's body it always may. Only `#each`/`#with`/`#if`/`#unless` over a list,
//! `lookup` with a literal key, `len` of a `service` list and the grouping helpers (`byTag`,
//! `byPort`, `byMeta`, which read fields they declare) may take instances.

pub use crate::source::model::Fields;
use handlebars::template::{BlockParam, HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::{Path, PathSeg};
use serde_json::Value;
use std::collections::BTreeSet;

/// The fields `template` (with its inline partials) can read.
pub fn of(template: &Template) -> Fields {
    let mut walk = Walk {
        // The root context holds every stored value, instances among them.
        instance_context: true,
        ..Walk::default()
    };
    collect_block_params(template, &mut walk.block_params);
    walk.template(template);
    if walk.all {
        Fields::All
    } else {
        Fields::Only(walk.names)
    }
}

#[derive(Default)]
struct Walk {
    names: BTreeSet<String>,
    /// Every block parameter's name, for partial bodies (which may run inside any block).
    block_params: BTreeSet<String>,
    /// The block parameters in scope, innermost last: whether each may hold an instance.
    scopes: Vec<(String, bool)>,
    /// Inside a partial's or decorator's body, whose context and block parameters are the
    /// caller's.
    partial_depth: usize,
    /// Whether the current context (`this`) may be an instance, or hold some.
    instance_context: bool,
    all: bool,
}

/// Helpers that may take an instance (or a list of them) at `index`, given all parameters.
fn may_take(helper: &str, index: usize, params: &[Parameter]) -> bool {
    match helper {
        // Truthiness only: an instance always has a field (ID), a list is what it is.
        "if" | "unless" => true,
        // Iterating a list of instances, or a grouping of them, is fine; iterating an
        // instance lists its fields.
        "each" | "with" => index == 0 && lists(&params[0]),
        "lookup" => index == 0 && matches!(params.get(1), Some(Parameter::Literal(_))),
        "len" => lists(&params[0]),
        "byTag" | "byPort" | "byMeta" => true,
        h => internal(h),
    }
}

/// consul-render's own rewrite helpers pass their parameter through.
fn internal(helper: &str) -> bool {
    helper == super::rewrite::VALUE || helper == super::guard::PARTIAL_GUARD
}

/// Fields a helper reads from the instances it is given.
fn reads(helper: &str) -> &'static [&'static str] {
    match helper {
        "byTag" => &["Tags"],
        "byPort" => &["Port"],
        "byMeta" => &["ServiceMeta", "Meta"],
        _ => &[],
    }
}

/// A subexpression whose value is a list (or grouping) of instances, never one instance.
fn lists(p: &Parameter) -> bool {
    match p {
        Parameter::Subexpression(sub) => matches!(
            helper_name(sub.as_element()),
            Some("service" | "byTag" | "byPort" | "byMeta")
        ),
        _ => false,
    }
}

fn helper_name(el: &TemplateElement) -> Option<&str> {
    match el {
        TemplateElement::Expression(h)
        | TemplateElement::HtmlExpression(h)
        | TemplateElement::HelperBlock(h) => match &h.name {
            Parameter::Name(n) => Some(n),
            Parameter::Path(Path::Relative((_, raw))) => Some(raw),
            _ => None,
        },
        _ => None,
    }
}

fn collect_block_params(t: &Template, out: &mut BTreeSet<String>) {
    for el in &t.elements {
        match el {
            TemplateElement::HelperBlock(h) => {
                match &h.block_param {
                    Some(BlockParam::Single(p)) => out.extend(name(p)),
                    Some(BlockParam::Pair((a, b))) => {
                        out.extend(name(a).into_iter().chain(name(b)));
                    }
                    _ => {}
                }
                for inner in h.template.iter().chain(h.inverse.iter()) {
                    collect_block_params(inner, out);
                }
            }
            TemplateElement::DecoratorBlock(d) | TemplateElement::PartialBlock(d) => {
                if let Some(inner) = &d.template {
                    collect_block_params(inner, out);
                }
            }
            _ => {}
        }
    }
}

/// `../Name`, `../../Name.x`: a named field of an enclosing context (not `..`, `../this`,
/// `../@key`).
fn parent_field(raw: &str) -> bool {
    let mut rest = raw;
    let mut ups = 0;
    while let Some(r) = rest.strip_prefix("../") {
        rest = r;
        ups += 1;
    }
    let first = rest.split(['/', '.']).next().unwrap_or_default();
    ups > 0 && !first.is_empty() && first != "this" && !first.starts_with(['@', '['])
}

fn name(p: &Parameter) -> Option<String> {
    match p {
        Parameter::Name(n) => Some(n.clone()),
        Parameter::Path(Path::Relative((_, raw))) => Some(raw.clone()),
        _ => None,
    }
}

impl Walk {
    fn template(&mut self, t: &Template) {
        for el in &t.elements {
            match el {
                TemplateElement::Expression(h)
                | TemplateElement::HtmlExpression(h)
                | TemplateElement::HelperBlock(h) => self.helper(h),
                TemplateElement::DecoratorExpression(d)
                | TemplateElement::DecoratorBlock(d)
                | TemplateElement::PartialExpression(d)
                | TemplateElement::PartialBlock(d) => {
                    // A partial given a context or hash values sees them whole.
                    let is_partial = matches!(
                        el,
                        TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_)
                    );
                    for p in d.params.iter().chain(d.hash.values()) {
                        if is_partial && self.carries(p) {
                            self.all = true;
                        }
                        self.param(p);
                    }
                    if let Some(inner) = &d.template {
                        let saved = std::mem::replace(&mut self.instance_context, true);
                        self.partial_depth += 1;
                        self.template(inner);
                        self.partial_depth -= 1;
                        self.instance_context = saved;
                    }
                }
                _ => {}
            }
        }
    }

    fn helper(&mut self, h: &HelperTemplate) {
        self.call(&h.name, &h.params, h.hash.values());
        if let Some(inner) = &h.template {
            let helper = match &h.name {
                Parameter::Name(n) => n.as_str(),
                Parameter::Path(p) => super::rewrite::path_raw(p),
                _ => "",
            };
            let first = h.params.first().is_some_and(|p| self.holds(p));
            // What the block's context becomes, and what its block parameters hold.
            let (context, params) = match helper {
                "if" | "unless" => (self.instance_context, (true, true)),
                // An element (and its index or key), or the value itself.
                "each" => (first, (first, false)),
                "with" => (first, (first, first)),
                _ => {
                    let any = self.instance_context
                        || h.params
                            .iter()
                            .chain(h.hash.values())
                            .any(|p| self.holds(p));
                    (any, (any, any))
                }
            };
            let scoped = self.scopes.len();
            match &h.block_param {
                Some(BlockParam::Single(p)) => self.scopes.extend(name(p).map(|n| (n, params.0))),
                Some(BlockParam::Pair((a, b))) => {
                    self.scopes.extend(name(a).map(|n| (n, params.0)));
                    self.scopes.extend(name(b).map(|n| (n, params.1)));
                }
                _ => {}
            }
            let saved = std::mem::replace(&mut self.instance_context, context);
            self.template(inner);
            self.instance_context = saved;
            self.scopes.truncate(scoped);
        }
        if let Some(inverse) = &h.inverse {
            self.template(inverse);
        }
    }

    /// Whether `p`'s value may be an instance or hold instances (a list, a grouping).
    fn holds(&self, p: &Parameter) -> bool {
        match p {
            Parameter::Path(Path::Relative((segs, raw))) => match segs.as_slice() {
                // A numeric segment on the root reaches a stored value.
                [PathSeg::Named(n), ..] if n.parse::<usize>().is_ok() => true,
                _ if parent_field(raw) => false,
                [PathSeg::Ruled(_), ..] => true,
                _ => self.carries(p),
            },
            _ => self.carries(p),
        }
    }

    /// The block parameter `name` in scope: whether it may hold an instance (None: not one).
    fn block_param(&self, name: &str) -> Option<bool> {
        match self.scopes.iter().rev().find(|(n, _)| n == name) {
            Some((_, holds)) => Some(*holds),
            // A partial may run inside any block.
            None if self.partial_depth > 0 && self.block_params.contains(name) => Some(true),
            None => None,
        }
    }

    /// One call: its name (a helper, or a path printed), parameters and hash values.
    fn call<'a>(
        &mut self,
        name: &Parameter,
        params: &[Parameter],
        hash: impl Iterator<Item = &'a Parameter>,
    ) {
        let helper = match name {
            Parameter::Name(n) => n.as_str(),
            Parameter::Path(p) => {
                self.path(p);
                super::rewrite::path_raw(p)
            }
            _ => "",
        };
        let calls = !params.is_empty();
        self.names
            .extend(reads(helper).iter().map(std::string::ToString::to_string));
        for (i, p) in params.iter().enumerate() {
            if calls && self.carries(p) && !may_take(helper, i, params) {
                self.all = true;
            }
            self.param(p);
        }
        for p in hash {
            if self.carries(p) {
                self.all = true;
            }
            self.param(p);
        }
    }

    fn param(&mut self, p: &Parameter) {
        match p {
            Parameter::Path(path) => self.path(path),
            Parameter::Literal(Value::String(s)) => {
                self.names.insert(s.clone());
            }
            Parameter::Subexpression(sub) => {
                if let TemplateElement::Expression(h)
                | TemplateElement::HtmlExpression(h)
                | TemplateElement::HelperBlock(h) = sub.as_element()
                {
                    self.helper(h);
                }
            }
            _ => {}
        }
    }

    fn path(&mut self, p: &Path) {
        if let Path::Relative((segs, raw)) = p {
            for seg in segs {
                match seg {
                    PathSeg::Named(n) => {
                        self.names.insert(n.clone());
                    }
                    // `../Name` reads one field of the parent context, which the name keeps.
                    PathSeg::Ruled(_) if parent_field(raw) => {}
                    // `@root` and `../` alone reach values no rule here follows.
                    _ => self.all = true,
                }
            }
        }
    }

    /// Whether `p` may be an instance, or hold instances, as a whole.
    fn carries(&self, p: &Parameter) -> bool {
        match p {
            Parameter::Path(Path::Relative((segs, raw))) => match segs.as_slice() {
                // `this` / `.`
                [] => self.instance_context,
                [PathSeg::Named(n)] => self.block_param(n).unwrap_or(false),
                _ if parent_field(raw) => false,
                [PathSeg::Ruled(_), ..] => true,
                _ => false,
            },
            Parameter::Subexpression(sub) => match sub.as_element() {
                TemplateElement::Expression(h)
                | TemplateElement::HtmlExpression(h)
                | TemplateElement::HelperBlock(h) => {
                    let helper = match &h.name {
                        Parameter::Name(n) => n.as_str(),
                        Parameter::Path(p) => super::rewrite::path_raw(p),
                        _ => "",
                    };
                    helper == "service" || h.params.iter().any(|q| self.carries(q))
                }
                _ => true,
            },
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(src: &str) -> Fields {
        of(&Template::compile(src).unwrap())
    }

    #[test]
    fn names_in_the_template_are_kept() {
        let f = fields(
            r#"{{#each (services)}}{{#each (service Name)}}{{Address}}:{{Port}}{{/each}}{{/each}}"#,
        );
        for kept in ["Address", "Name", "Port", "ID"] {
            assert!(f.wants(kept), "{kept}: {f:?}");
        }
        assert!(!f.wants("Checks") && !f.wants("Tags"), "{f:?}");
        let f =
            fields(r#"{{#each (service "web") as |s|}}{{s.Address}} {{lookup s "Port"}}{{/each}}"#);
        assert!(
            f.wants("Address") && f.wants("Port") && !f.wants("Tags"),
            "{f:?}"
        );
        let f = fields(r#"{{#each (byTag (service "web"))}}{{@key}}{{/each}}"#);
        assert!(f.wants("Tags") && !f.wants("Port"), "{f:?}");
        let f = fields(r#"{{len (service "web")}} {{#if (service "web")}}x{{/if}}"#);
        assert!(matches!(f, Fields::Only(_)), "{f:?}");
    }

    #[test]
    fn whole_instances_keep_every_field() {
        for src in [
            r#"{{toJSON (service "web")}}"#,
            r#"{{#each (service "web")}}{{toJSON this}}{{/each}}"#,
            r#"{{#each (service "web")}}{{#each this}}{{@key}}{{/each}}{{/each}}"#,
            r#"{{#each (service "web") as |s|}}{{len s}}{{/each}}"#,
            r#"{{#each (service "web") as |s|}}{{#each s}}{{@key}}{{/each}}{{/each}}"#,
            r#"{{#each (service "web")}}{{lookup this (key "field")}}{{/each}}"#,
            r#"{{#with (lookup (service "web") 0)}}{{#each this}}{{@key}}{{/each}}{{/with}}"#,
            r#"{{join "," (service "web")}}"#,
            r#"{{#each (service "web")}}{{eq this ../this}}{{/each}}"#,
            r#"{{#each (service "web")}}{{@root.x}}{{/each}}"#,
            r#"{{#*inline "p"}}{{toJSON this}}{{/inline}}{{#each (service "web")}}{{> p this}}{{/each}}"#,
            r#"{{#each (service "web")}}{{> p x=this}}{{/each}}"#,
            r#"{{#*inline "p"}}{{toJSON this}}{{/inline}}{{#each (service "web")}}{{> p}}{{/each}}"#,
            r#"{{toJSON this}}"#,
            r#"{{#each (service "web") as |s|}}{{#with s}}{{toJSON this}}{{/with}}{{/each}}"#,
            r#"{{#each (service "web")}}{{#if Port}}{{toJSON this}}{{/if}}{{/each}}"#,
            r#"{{#each (services) as |v|}}{{#each (service v.Name) as |i|}}{{toJSON i}}{{/each}}{{/each}}"#,
            r#"{{#each (service "web")}}{{#each (service "db")}}{{eq ../this this}}{{/each}}{{/each}}"#,
        ] {
            assert_eq!(fields(src), Fields::All, "{src}");
        }
    }

    /// What the context is decides whether `this` can be an instance: the value of `env`, a
    /// tag, a service name never is; `../Name` reads one field of the enclosing context.
    #[test]
    fn this_is_an_instance_only_where_the_context_can_be_one() {
        for src in [
            r#"{{#with (env "DIR")}}{{toJSON this}}{{/with}}{{#each (service "web")}}{{Port}}{{/each}}"#,
            r#"{{#each (service "web")}}{{#each Tags}}{{regexMatch "^a" this}}{{/each}}{{/each}}"#,
            r#"{{#each (services)}}{{#each (service Name)}}{{Address}} {{../Name}}{{/each}}{{/each}}"#,
            r#"{{#each (services)}}{{#with (key Name) as |v|}}{{printf "%s" v}}{{/with}}{{/each}}"#,
        ] {
            assert!(
                matches!(fields(src), Fields::Only(_)),
                "{src}: {:?}",
                fields(src)
            );
        }
        let example = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/docker-flow/proxy.hbs"
        ))
        .unwrap();
        let f = fields(&example);
        for kept in ["Address", "Port", "Name", "Tags"] {
            assert!(f.wants(kept), "{kept}: {f:?}");
        }
        assert!(!f.wants("Checks") && !f.wants("Meta"), "{f:?}");
    }
}
