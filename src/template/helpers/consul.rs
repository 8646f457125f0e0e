//! Consul helpers: `service`, `services`, `nodes`, `node`, `datacenters`, the KV helpers.
//!
//! Each names a dependency and returns its value, or an empty value of the right type while the
//! value has not arrived (the render is then incomplete and not written).
//!
//! An empty name (`key ""`, often an inner query that has not arrived yet, as in
//! `{{key (key "pointer")}}`) gives the empty value, false or the default and depends on
//! nothing, as in consul-template: the next pass asks again with the real name.

use super::{spec, store_spec, Call, HelperError, HelperResult, Out, Spec};
use crate::dependency::{self, Dependency};
use crate::source::model;
use crate::template::scope::{self, Lookup, Missing};
use serde_json::{json, Value};

pub const HELPERS: &[Spec] = &[
    store_spec("service", 1, 2, service),
    store_spec("services", 0, 1, services),
    store_spec("nodes", 0, 1, nodes),
    store_spec("node", 0, 1, node),
    store_spec("datacenters", 0, 1, datacenters),
    spec("key", 1, 1, key),
    spec("keyExists", 1, 1, key_exists),
    spec("keyOrDefault", 2, 2, key_or_default),
    spec("ls", 1, 1, ls),
    spec("safeLs", 1, 1, safe_ls),
    spec("tree", 1, 1, tree),
    spec("safeTree", 1, 1, safe_tree),
];

/// The stored value, read in place, or `empty` while it has not arrived.
fn value_or(dep: Dependency, empty: Value) -> Out {
    match scope::lookup(dep) {
        Lookup::Present(v) => Out::Stored(v),
        Lookup::Pending | Lookup::Absent => Out::Made(empty),
    }
}

/// `service "QUERY"`, `service "QUERY" "FILTER"` or `service "NAME" tag=… dc=… near=… filter=…`.
fn service(c: &Call) -> Result<Out, HelperError> {
    let mut query = c.str(0)?.to_string();
    if query.is_empty() {
        return Ok(json!([]).into());
    }
    if !c.hash.is_empty() {
        let get = |k: &str| -> Result<Option<String>, HelperError> {
            match c.hash.get(k) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => {
                    Err(format!("{k}= must be a string, got {}", super::kind(other)).into())
                }
            }
        };
        for k in c.hash.keys() {
            if !["tag", "dc", "near", "filter"].contains(k) {
                return Err(format!("unknown option {k}= (tag, dc, near, filter)").into());
            }
        }
        if let Some(tag) = get("tag")? {
            query = format!("{tag}.{query}");
        }
        if let Some(dc) = get("dc")? {
            query.push('@');
            query.push_str(&dc);
        }
        if let Some(near) = get("near")? {
            query.push('~');
            query.push_str(&near);
        }
        if let Some(f) = get("filter")? {
            query.push('|');
            query.push_str(&f);
        }
    }
    if c.args.len() == 2 {
        query.push('|');
        query.push_str(c.str(1)?);
    }
    let q = dependency::parse_service(&query).map_err(|e| e.to_string())?;
    Ok(value_or(Dependency::Service(q), json!([])))
}

fn opt_str(c: &Call, i: usize) -> Result<String, HelperError> {
    if c.args.len() > i {
        Ok(c.str(i)?.to_string())
    } else {
        Ok(String::new())
    }
}

fn services(c: &Call) -> Result<Out, HelperError> {
    let (dc, _, query) =
        dependency::parse_catalog("services", &opt_str(c, 0)?, false).map_err(|e| e.to_string())?;
    Ok(value_or(Dependency::Services { dc, query }, json!([])))
}

fn nodes(c: &Call) -> Result<Out, HelperError> {
    let (dc, near, query) =
        dependency::parse_catalog("nodes", &opt_str(c, 0)?, true).map_err(|e| e.to_string())?;
    Ok(value_or(Dependency::Nodes { dc, near, query }, json!([])))
}

fn node(c: &Call) -> Result<Out, HelperError> {
    let dep = dependency::parse_node(&opt_str(c, 0)?).map_err(|e| e.to_string())?;
    // A node that does not exist arrives as an empty node (`{"Node": null, "Services": []}`),
    // as consul-template's; only one that has not arrived yet is nothing.
    Ok(value_or(dep, Value::Null))
}

/// `datacenters`, or `datacenters true` to leave out the ones that do not answer.
fn datacenters(c: &Call) -> Result<Out, HelperError> {
    let ignore_failing = match c.args.first().copied() {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(format!(
                "argument 1 must be a bool (ignore unreachable datacenters), got {}",
                super::kind(other)
            )
            .into())
        }
    };
    Ok(value_or(
        Dependency::Datacenters { ignore_failing },
        json!([]),
    ))
}

/// The KV dependency, or `None` for an empty name.
fn kv_dep(c: &Call, kind: &'static str) -> Result<Option<Dependency>, HelperError> {
    let raw = c.str(0)?;
    if raw.is_empty() {
        return Ok(None);
    }
    let (path, dc, query) = dependency::parse_kv(kind, raw).map_err(|e| e.to_string())?;
    Ok(Some(Dependency::Key { path, dc, query }))
}

fn pair_value(v: &Value) -> String {
    v.get("Value")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `key`: the value; a key that does not exist keeps the template unrendered.
fn key(c: &Call) -> HelperResult {
    let Some(dep) = kv_dep(c, "key")? else {
        return Ok(Value::String(String::new()));
    };
    Ok(match scope::lookup(dep.clone()) {
        Lookup::Present(v) => Value::String(pair_value(v.value())),
        Lookup::Pending => Value::String(String::new()),
        Lookup::Absent => {
            scope::mark_missing(Missing::Absent(dep));
            Value::String(String::new())
        }
    })
}

fn key_exists(c: &Call) -> HelperResult {
    let Some(dep) = kv_dep(c, "keyExists")? else {
        return Ok(Value::Bool(false));
    };
    Ok(Value::Bool(matches!(
        scope::lookup(dep),
        Lookup::Present(_)
    )))
}

/// `keyOrDefault`: the value, or the default when the key is absent or empty.
fn key_or_default(c: &Call) -> HelperResult {
    let default = c.text(1)?;
    let Some(dep) = kv_dep(c, "keyOrDefault")? else {
        return Ok(Value::String(default));
    };
    Ok(Value::String(match scope::lookup(dep) {
        Lookup::Present(v) => {
            let s = pair_value(v.value());
            if s.is_empty() {
                default
            } else {
                s
            }
        }
        Lookup::Pending | Lookup::Absent => default,
    }))
}

fn prefix_dep(c: &Call, kind: &'static str) -> Result<Option<Dependency>, HelperError> {
    let raw = c.str(0)?;
    if raw.is_empty() {
        return Ok(None);
    }
    let (prefix, dc, query) = dependency::parse_kv(kind, raw).map_err(|e| e.to_string())?;
    Ok(Some(Dependency::KeyPrefix { prefix, dc, query }))
}

fn listing(c: &Call, kind: &'static str, children_only: bool, safe: bool) -> HelperResult {
    let Some(dep) = prefix_dep(c, kind)? else {
        return Ok(json!([]));
    };
    let (all, arrived) = match scope::lookup(dep.clone()) {
        Lookup::Present(v) => (Some(v), true),
        Lookup::Pending | Lookup::Absent => (None, false),
    };
    let all = all.as_ref().map_or(&Value::Null, |v| v.value());
    let list = if children_only {
        model::only_children(all)
    } else {
        model::without_folders(all)
    };
    if safe && arrived && list.as_array().is_some_and(Vec::is_empty) {
        scope::mark_missing(Missing::Empty(dep));
    }
    Ok(list)
}

fn ls(c: &Call) -> HelperResult {
    listing(c, "ls", true, false)
}

fn safe_ls(c: &Call) -> HelperResult {
    listing(c, "safeLs", true, true)
}

fn tree(c: &Call) -> HelperResult {
    listing(c, "tree", false, false)
}

fn safe_tree(c: &Call) -> HelperResult {
    listing(c, "safeTree", false, true)
}
