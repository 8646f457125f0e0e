//! Every helper, as a plain function over `serde_json::Value`s, and the thin handlebars adapter.
//!
//! Helpers take consul-template's arguments in its call order, the piped value last
//! (`X | f A` in Go is `(f A X)` here). Keeping them plain functions lets a Go-syntax front end
//! reuse them later (DESIGN.md section 8).

mod collections;
mod consul;
mod encoding;
pub mod format;
mod local;
mod math;
mod text;

use crate::template::scope::Stored;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// One helper call: positional arguments and `key=value` hash arguments, borrowed from the
/// render (a list passed to `byTag` or `join` is not copied to make the call).
pub struct Call<'a> {
    pub name: &'static str,
    pub args: Vec<&'a Value>,
    pub hash: BTreeMap<&'a str, &'a Value>,
}

pub type HelperResult = Result<Value, HelperError>;

/// Why a helper call failed; the render error adds the helper's name and where it was called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelperError {
    /// An argument of the wrong kind.
    #[error("argument {position} must be {want}, got {got}")]
    Argument {
        position: usize,
        want: &'static str,
        got: String,
    },
    /// A result that would be too large to make.
    #[error(transparent)]
    TooLarge(#[from] crate::limits::TooLarge),
    /// Anything else: what the helper could not do, and why.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for HelperError {
    fn from(s: String) -> HelperError {
        HelperError::Failed(s)
    }
}

impl From<&str> for HelperError {
    fn from(s: &str) -> HelperError {
        HelperError::Failed(s.into())
    }
}

/// What a helper that reads the store returns: a value it made, or one it found there (which
/// handlebars then reads in place).
pub enum Out {
    Made(Value),
    Stored(Stored),
}

impl From<Value> for Out {
    fn from(v: Value) -> Out {
        Out::Made(v)
    }
}

/// A helper's function.
#[derive(Clone, Copy)]
pub enum Func {
    Plain(fn(&Call) -> HelperResult),
    Store(fn(&Call) -> Result<Out, HelperError>),
}

/// A helper: name, fewest and most positional arguments, function.
pub struct Spec {
    pub name: &'static str,
    pub min: usize,
    pub max: usize,
    pub func: Func,
}

/// Shorthand for the tables in each family's module.
pub const fn spec(
    name: &'static str,
    min: usize,
    max: usize,
    func: fn(&Call) -> HelperResult,
) -> Spec {
    Spec {
        name,
        min,
        max,
        func: Func::Plain(func),
    }
}

/// A helper whose result may be a stored value.
pub const fn store_spec(
    name: &'static str,
    min: usize,
    max: usize,
    func: fn(&Call) -> Result<Out, HelperError>,
) -> Spec {
    Spec {
        name,
        min,
        max,
        func: Func::Store(func),
    }
}

pub const MANY: usize = usize::MAX;

/// Every helper we provide.
pub fn all() -> impl Iterator<Item = &'static Spec> {
    consul::HELPERS
        .iter()
        .chain(local::HELPERS)
        .chain(collections::HELPERS)
        .chain(text::HELPERS)
        .chain(encoding::HELPERS)
        .chain(math::HELPERS)
        .chain(format::HELPERS)
}

/// handlebars' own helpers, which templates may use as they are.
pub const BUILTINS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "raw", "log", "eq", "ne", "gt", "gte", "lt", "lte",
    "and", "or", "not", "len",
];

/// consul-template functions we deliberately do not provide, with what to do instead.
pub fn not_provided(name: &str) -> Option<&'static str> {
    Some(match name {
        "secret" | "secrets" | "pkiCert" => "Vault functions are not supported yet",
        "nomadServices" | "nomadService" | "nomadVarList" | "nomadVarListSafe" | "nomadVar" | "nomadVarExists" => {
            "Nomad functions are not supported yet"
        }
        "plugin" => "plugin is not supported: render data, then post-process with the template's command",
        "writeToFile" => "writeToFile is not supported: use a second template",
        "sockaddr" => "sockaddr is not supported",
        "scratch" => "scratch is not supported: use #with, block parameters or inline partials",
        "executeTemplate" => "executeTemplate is not supported: use inline partials ({{#*inline \"name\"}} and {{> name}})",
        "connect" | "caRoots" | "caLeaf" | "partitions" | "peerings" | "exportedServices" | "importedServices" => {
            "this Consul function is not supported yet"
        }
        "spew_dump" | "spew_sdump" | "spew_printf" | "spew_sprintf" => "spew debugging functions are not supported: use toJSONPretty",
        n if n.starts_with("sprig_") => "Sprig functions are not provided",
        _ => return None,
    })
}

/// True when `name` can be called as a helper in our templates.
pub fn is_known(name: &str) -> bool {
    BUILTINS.contains(&name) || all().any(|s| s.name == name)
}

struct Adapter(&'static Spec);

impl HelperDef for Adapter {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let spec = self.0;
        let args: Vec<&Value> = h
            .params()
            .iter()
            .map(handlebars::PathAndJson::value)
            .collect();
        if args.len() < spec.min || args.len() > spec.max {
            let want = match (spec.min, spec.max) {
                (a, b) if a == b => format!("{a}"),
                (a, MANY) => format!("at least {a}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(RenderErrorReason::Other(format!(
                "{}: wrong number of arguments: expected {want}, got {}",
                spec.name,
                args.len()
            ))
            .into());
        }
        let hash = h.hash().iter().map(|(k, v)| (*k, v.value())).collect();
        let call = Call {
            name: spec.name,
            args,
            hash,
        };
        let out = match spec.func {
            Func::Plain(f) => f(&call).map(Out::Made),
            Func::Store(f) => f(&call),
        };
        match out {
            Ok(Out::Made(v)) => Ok(ScopedJson::Derived(v)),
            // In place, by its path in the root context; a copy only where the context is
            // another (a partial given a context of its own).
            Ok(Out::Stored(s)) => Ok(match s.in_context(ctx).filter(|_| rc.context().is_none()) {
                Some((v, index)) => ScopedJson::Context(v, vec![index.to_string()]),
                None => ScopedJson::Derived(s.value().clone()),
            }),
            Err(e) => Err(RenderErrorReason::Other(format!("{}: {e}", spec.name)).into()),
        }
    }
}

/// Called by handlebars for a name that is neither a helper nor a value in the context.
///
/// A bare `{{Name.Path}}` that resolves to nothing renders empty, as consul-template renders a
/// missing map key (`error_on_missing_key` turns on handlebars' strict mode instead, which
/// errors before this hook). Calls with arguments and blocks were refused at load time
/// (`Engine::compile`); one that gets here anyway is still an error.
struct HelperMissing;

impl HelperDef for HelperMissing {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        if h.params().is_empty() && h.hash().is_empty() && !h.is_block() {
            return Ok(ScopedJson::Derived(Value::Null));
        }
        Err(RenderErrorReason::Other(unknown_message(h.name())).into())
    }
}

/// The message for a helper we do not have.
pub fn unknown_message(name: &str) -> String {
    if let Some(why) = not_provided(name) {
        format!("{name}: {why}")
    } else {
        let best = all()
            .map(|s| s.name)
            .chain(BUILTINS.iter().copied())
            .map(|k| (strsim::jaro_winkler(name, k), k))
            .filter(|(score, _)| *score > 0.85)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        match best {
            Some((_, k)) => format!("unknown helper {name:?} (did you mean {k:?}?)"),
            None => format!("unknown helper {name:?}"),
        }
    }
}

/// Registers every helper on `hb`.
pub fn register(hb: &mut Handlebars<'static>) {
    for spec in all() {
        hb.register_helper(spec.name, Box::new(Adapter(spec)));
    }
    hb.register_helper("helperMissing", Box::new(HelperMissing));
    hb.register_helper(format::GO_VALUE, Box::new(Adapter(&format::GO_VALUE_SPEC)));
    hb.register_helper(format::GO_AND, Box::new(Adapter(&format::GO_AND_SPEC)));
    hb.register_helper(format::GO_OR, Box::new(Adapter(&format::GO_OR_SPEC)));
}

// ----- argument access shared by the families -----

impl Call<'_> {
    pub fn arg(&self, i: usize) -> &Value {
        self.args.get(i).copied().unwrap_or(&Value::Null)
    }

    pub fn str(&self, i: usize) -> Result<&str, HelperError> {
        match self.arg(i) {
            Value::String(s) => Ok(s),
            other => Err(argument(i, "a string", kind(other))),
        }
    }

    /// A string, or a number/bool shown as text (for places Go would accept a Stringer).
    pub fn text(&self, i: usize) -> Result<String, HelperError> {
        match self.arg(i) {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(argument(i, "a string", kind(other))),
        }
    }

    pub fn list(&self, i: usize) -> Result<&Vec<Value>, HelperError> {
        match self.arg(i) {
            Value::Array(a) => Ok(a),
            other => Err(argument(i, "a list", kind(other))),
        }
    }

    pub fn map(&self, i: usize) -> Result<&serde_json::Map<String, Value>, HelperError> {
        match self.arg(i) {
            Value::Object(m) => Ok(m),
            other => Err(argument(i, "a map", kind(other))),
        }
    }

    /// An integer, or a string holding one.
    pub fn int(&self, i: usize) -> Result<i64, HelperError> {
        match self.arg(i) {
            Value::Number(n) if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| argument(i, "an integer", &format!("{s:?}"))),
            other => Err(argument(i, "an integer", kind(other))),
        }
    }
}

/// Argument `i` (0-based) is not what the helper takes.
fn argument(i: usize, want: &'static str, got: &str) -> HelperError {
    HelperError::Argument {
        position: i + 1,
        want,
        got: got.into(),
    }
}

/// A value's kind, for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A value as text for joining and printing (strings unquoted, others as JSON).
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = all().map(|s| s.name).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        for b in BUILTINS {
            assert!(!names.contains(b), "{b} shadows a handlebars built-in");
        }
    }

    #[test]
    fn unknown_names_get_suggestions() {
        assert_eq!(
            unknown_message("servce"),
            "unknown helper \"servce\" (did you mean \"service\"?)"
        );
        assert!(unknown_message("secret").contains("Vault"));
        assert!(unknown_message("sprig_upper").contains("Sprig"));
    }
}
