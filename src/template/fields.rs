//! Which fields of `service` instances a template can read, so once mode builds only those.
//!
//! A full instance is about 6 KB of JSON (17 fields, its checks, maps); a template printing
//! `{{Address}}:{{Port}}` for 10,000 of them needs a tenth of that. A field is kept when its name
//! appears in the template as a path segment or a string literal. Whatever could see an
//! instance as a whole makes every field kept: `this` or a block parameter handed to a helper
//! (`toJSON`, `join`, `eq`, `len`, `#each` over an instance…), `@root` or `../`, a partial given
//! a context, `lookup` with a computed key. Only `#each`/`#with`/`#if`/`#unless` over a list,
//! `lookup` with a literal key, `len` of a `service` list and the grouping helpers (`byTag`,
//! `byPort`, `byMeta`, which read fields they declare) may take instances.

pub use crate::source::model::Fields;
use handlebars::template::{BlockParam, HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::{Path, PathSeg};
use serde_json::Value;
use std::collections::BTreeSet;

/// The fields `template` (with its inline partials) can read.
pub fn of(template: &Template) -> Fields {
    let mut walk = Walk::default();
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
    block_params: BTreeSet<String>,
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
                        self.template(inner);
                    }
                }
                _ => {}
            }
        }
    }

    fn helper(&mut self, h: &HelperTemplate) {
        self.call(&h.name, &h.params, h.hash.values());
        for inner in h.template.iter().chain(h.inverse.iter()) {
            self.template(inner);
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
        if let Path::Relative((segs, _)) = p {
            for seg in segs {
                match seg {
                    PathSeg::Named(n) => {
                        self.names.insert(n.clone());
                    }
                    // `@root` and `../` reach values no rule here follows.
                    _ => self.all = true,
                }
            }
        }
    }

    /// Whether `p` may be an instance, or hold instances, as a whole.
    fn carries(&self, p: &Parameter) -> bool {
        match p {
            Parameter::Path(Path::Relative((segs, _))) => match segs.as_slice() {
                // `this` / `.`
                [] => true,
                [PathSeg::Named(n)] => self.block_params.contains(n),
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
        ] {
            assert_eq!(fields(src), Fields::All, "{src}");
        }
    }
}
