//! The tree as handlebars. Go's `.` is handlebars' `this`; a range's variables are block
//! parameters; a variable set with `:=` is written out where it is used (refused where `.` has
//! changed in between); pipelines become calls with the piped value last; every block tag is
//! kept from handlebars' standalone-line stripping (Go keeps those lines' whitespace).

use super::parse::{Arg, Node, Pipeline, Pos};
use super::ConvertError;
use super::Reason;
use std::collections::HashMap;

mod expr;
mod partials;
use expr::{param_name, text_uses_dot};

/// A converted expression: a path or literal, or a call that needs parentheses as a parameter.
enum Expr {
    Plain(String),
    Call(String),
}

impl Expr {
    fn param(self) -> String {
        match self {
            Expr::Plain(s) => s,
            Expr::Call(s) => format!("({s})"),
        }
    }
    fn mustache(self) -> String {
        match self {
            Expr::Plain(s) | Expr::Call(s) => s,
        }
    }
}

#[derive(Clone)]
enum Var {
    /// Written out where used; valid only at the `.` depth it was set at.
    Inline(String, usize),
    /// A block parameter.
    Param(String),
    /// A range's index or key: a number or a string.
    Index(String),
}

/// Fields of consul-template's values that hold text or a number: printed as they are.
const SCALAR_FIELDS: &[&str] = &[
    "Address",
    "Port",
    "ID",
    "Name",
    "Node",
    "NodeAddress",
    "NodeID",
    "NodeDatacenter",
    "Status",
    "Key",
    "Value",
    "Path",
    "Flags",
    "CreateIndex",
    "ModifyIndex",
    "LockIndex",
    "Session",
    "Datacenter",
    "ServiceName",
    "ServiceID",
    "CheckID",
    "Output",
    "Notes",
    "Service",
];

/// Functions whose result may be a list or a map (printed Go's way).
const COLLECTION_FUNCS: &[&str] = &[
    "service",
    "services",
    "nodes",
    "node",
    "datacenters",
    "ls",
    "safeLs",
    "tree",
    "safeTree",
    "split",
    "splitToMap",
    "byTag",
    "byKey",
    "byPort",
    "byMeta",
    "explode",
    "explodeMap",
    "mergeMap",
    "mergeMapWithOverride",
    "parseJSON",
    "parseYAML",
    "loop",
    "index",
    "lookup",
];

/// Keeps a block tag off handlebars' standalone-line rule.
const KEEP: &str = "{{!}}";

pub struct Emitter {
    out: String,
    scopes: Vec<HashMap<String, Var>>,
    depth: usize,
    defines: Vec<String>,
    /// `LET` blocks opened in the node list being written.
    open_lets: usize,
}

/// Methods consul-template's values carry, as our helpers (`.Tags.Contains "x"`).
const METHODS: &[(&str, &str)] = &[
    ("Contains", "contains"),
    ("ContainsAll", "containsAll"),
    ("ContainsAny", "containsAny"),
    ("ContainsNone", "containsNone"),
    ("ContainsNotAll", "containsNotAll"),
];

pub fn emit(nodes: &[Node]) -> Result<String, ConvertError> {
    let mut e = Emitter {
        out: String::new(),
        scopes: vec![HashMap::new()],
        depth: 0,
        defines: Vec::new(),
        open_lets: 0,
    };
    e.nodes(nodes)?;
    // Go's definitions apply wherever they are written; handlebars' inline partials only after
    // theirs: they go first.
    let mut text: String = e.defines.concat();
    text.push_str(&e.out);
    Ok(text)
}

impl Emitter {
    /// A list of nodes: a block's body, or the whole template. The variables it binds with
    /// `LET` end with it.
    fn nodes(&mut self, nodes: &[Node]) -> Result<(), ConvertError> {
        let outer = std::mem::take(&mut self.open_lets);
        for n in nodes {
            self.node(n)?;
        }
        for _ in 0..self.open_lets {
            self.out
                .push_str(&format!("{{{{/{}}}}}{KEEP}", crate::template::rewrite::LET));
        }
        self.open_lets = outer;
        Ok(())
    }

    /// Literal text: `{{` escaped; a `{` just before a tag would make `{{{` (handlebars'
    /// triple-stash), so it is printed by a helper instead.
    fn text(&mut self, t: &str) {
        let escaped = t.replace("{{", "\\{{");
        match escaped.strip_suffix('{') {
            Some(stripped) if !stripped.ends_with('\\') => {
                self.out.push_str(stripped);
                self.out.push_str("{{trimSpace \"{\"}}");
            }
            _ => self.out.push_str(&escaped),
        }
    }

    fn node(&mut self, n: &Node) -> Result<(), ConvertError> {
        match n {
            Node::Text(t) => self.text(t),
            // A handlebars comment holds the lines; a second tag keeps the line from being
            // taken as a standalone comment line.
            Node::Lines(n) => self
                .out
                .push_str(&format!("{{{{!--{}--}}}}{KEEP}", "\n".repeat(*n))),
            Node::Action(p, pos) => {
                if p.assign {
                    return Err(ConvertError::at(pos.0, pos.1, "assigning to a variable again ($x = …) cannot be converted: handlebars has no variables; compute the value where it is used".into()));
                }
                if !p.decl.is_empty() {
                    let value = self.pipeline(
                        &Pipeline {
                            decl: Vec::new(),
                            ..p.clone()
                        },
                        *pos,
                    )?;
                    let text = value.clone_text();
                    let depth = self.depth;
                    for name in &p.decl {
                        if text_uses_dot(&text) {
                            // It reads `.`: bound where it is set, for the rest of this block.
                            let param = param_name(name);
                            self.out.push_str(&format!(
                                "{{{{#{} {text} as |{param}|}}}}{KEEP}",
                                crate::template::rewrite::LET
                            ));
                            self.open_lets += 1;
                            self.set(name, Var::Param(param));
                        } else {
                            self.set(name, Var::Inline(text.clone(), depth));
                        }
                    }
                } else if let Some(call) = p.cmds.first().filter(|c| {
                    p.cmds.len() == 1
                        && matches!(c.first(), Some(Arg::Func(f)) if f == "executeTemplate")
                }) {
                    // consul-template's executeTemplate NAME [DATA]: a partial call.
                    let Some(Arg::Str(name)) = call.get(1) else {
                        return Err(ConvertError::at(
                            pos.0,
                            pos.1,
                            "executeTemplate needs a quoted template name".into(),
                        ));
                    };
                    let arg = call.get(2).map(|a| Pipeline {
                        decl: Vec::new(),
                        assign: false,
                        cmds: vec![vec![a.clone()]],
                    });
                    self.call(name, arg.as_ref(), *pos)?;
                } else if let Some(literal) = p
                    .cmds
                    .first()
                    .filter(|c| p.cmds.len() == 1 && c.len() == 1)
                    .map(|c| &c[0])
                {
                    // A constant prints as text (handlebars has no `{{"text"}}`).
                    match literal {
                        Arg::Str(s) => self.text(s),
                        Arg::Num(n) => self.text(n),
                        Arg::Bool(b) => self.text(&b.to_string()),
                        Arg::Nil => self.text("<no value>"),
                        _ => {
                            let text = self.output(p, *pos)?;
                            self.out.push_str(&text);
                        }
                    }
                } else {
                    let text = self.output(p, *pos)?;
                    self.out.push_str(&text);
                }
            }
            Node::If(branches, inverse, pos) => {
                for (i, (cond, body)) in branches.iter().enumerate() {
                    if !cond.decl.is_empty() {
                        return Err(ConvertError::at(pos.0, pos.1, "a variable declared in an if cannot be converted: declare it before the if".into()));
                    }
                    let c = self.pipeline(cond, *pos)?.param();
                    if i == 0 {
                        self.out.push_str(&format!("{{{{#if {c}}}}}{KEEP}"));
                    } else {
                        self.out.push_str(&format!("{{{{else if {c}}}}}{KEEP}"));
                    }
                    self.scoped(|e| e.nodes(body))?;
                }
                if let Some(inv) = inverse {
                    self.out.push_str(&format!("{{{{else}}}}{KEEP}"));
                    self.scoped(|e| e.nodes(inv))?;
                }
                self.out.push_str(&format!("{{{{/if}}}}{KEEP}"));
            }
            Node::Range(p, body, inverse, pos) | Node::With(p, body, inverse, pos) => {
                let helper = if matches!(n, Node::Range(..)) {
                    "each"
                } else {
                    "with"
                };
                let value = self
                    .pipeline(
                        &Pipeline {
                            decl: Vec::new(),
                            assign: false,
                            cmds: p.cmds.clone(),
                        },
                        *pos,
                    )?
                    .param();
                let names: Vec<String> = p.decl.iter().map(|v| param_name(v)).collect();
                let params = match (helper, names.as_slice()) {
                    (_, []) => String::new(),
                    ("each" | "with", [e]) => format!(" as |{e}|"),
                    ("each", [i, e]) => format!(" as |{e} {i}|"),
                    _ => {
                        return Err(ConvertError::at(
                            pos.0,
                            pos.1,
                            format!("{helper}: too many variables"),
                        ))
                    }
                };
                self.out
                    .push_str(&format!("{{{{#{helper} {value}{params}}}}}{KEEP}"));
                self.depth += 1;
                let r = self.scoped(|e| {
                    for (i, (v, n)) in p.decl.iter().zip(&names).enumerate() {
                        let index = helper == "each" && names.len() == 2 && i == 0;
                        e.set(
                            v,
                            if index {
                                Var::Index(n.clone())
                            } else {
                                Var::Param(n.clone())
                            },
                        );
                    }
                    e.nodes(body)
                });
                self.depth -= 1;
                r?;
                if let Some(inv) = inverse {
                    self.out.push_str(&format!("{{{{else}}}}{KEEP}"));
                    self.scoped(|e| e.nodes(inv))?;
                }
                self.out.push_str(&format!("{{{{/{helper}}}}}{KEEP}"));
            }
            Node::Define(name, body) => self.define(name, body)?,
            Node::Template(name, arg, pos) => self.call(name, arg.as_ref(), *pos)?,
            Node::Block(name, arg, body, pos) => {
                self.define(name, body)?;
                self.call(name, arg.as_ref(), *pos)?;
            }
        }
        Ok(())
    }

    /// `{{value}}` as Go prints it: a field known to hold text or a number as it is, anything
    /// else through the helper that prints lists and maps Go's way.
    fn output(&mut self, p: &Pipeline, pos: Pos) -> Result<String, ConvertError> {
        // What the last command gives: a function's result (a list or map only from the
        // functions that make them), or a value.
        let scalar = match p.cmds.last().map(Vec::as_slice) {
            Some([Arg::Func(f), ..]) => !COLLECTION_FUNCS.contains(&f.as_str()),
            Some([Arg::Var(v, f)]) if p.cmds.len() == 1 && f.is_empty() => {
                matches!(self.var(v, pos), Ok(Var::Index(_)))
            }
            Some([Arg::Field(f) | Arg::Var(_, f)]) if p.cmds.len() == 1 => f
                .last()
                .is_some_and(|l| SCALAR_FIELDS.contains(&l.as_str())),
            Some([Arg::Str(_) | Arg::Num(_) | Arg::Bool(_)]) => true,
            _ => false,
        };
        let e = self.pipeline(p, pos)?;
        Ok(if scalar {
            format!("{{{{{}}}}}", e.mustache())
        } else {
            format!(
                "{{{{{} {}}}}}",
                crate::template::helpers::format::GO_VALUE,
                e.param()
            )
        })
    }

    fn scoped<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ConvertError>,
    ) -> Result<T, ConvertError> {
        self.scopes.push(HashMap::new());
        let r = f(self);
        self.scopes.pop();
        r
    }

    fn set(&mut self, name: &str, v: Var) {
        if let Some(s) = self.scopes.last_mut() {
            s.insert(name.to_string(), v);
        }
    }

    fn var(&self, name: &str, pos: Pos) -> Result<Var, ConvertError> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.get(name).cloned())
            .ok_or_else(|| ConvertError::at(pos.0, pos.1, format!("undefined variable ${name}")))
    }
}

impl Expr {
    fn clone_text(&self) -> String {
        match self {
            Expr::Plain(s) => s.clone(),
            Expr::Call(s) => format!("({s})"),
        }
    }
}
