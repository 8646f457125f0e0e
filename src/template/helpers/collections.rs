//! Grouping, membership and structure helpers: `byTag`, `byKey`, `byPort`, `byMeta`,
//! `contains`, `in`, `containsAll/Any/None/NotAll`, `explode`, `explodeMap`, `mergeMap`,
//! `mergeMapWithOverride`, `loop`.

use super::{spec, to_text, Call, HelperError, HelperResult, Spec};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const HELPERS: &[Spec] = &[
    spec("byTag", 1, 1, by_tag),
    spec("byKey", 1, 1, by_key),
    spec("byPort", 1, 1, by_port),
    spec("byMeta", 2, 2, by_meta),
    spec("contains", 2, 2, contains),
    spec("in", 2, 2, in_),
    spec("containsAll", 2, 2, contains_all),
    spec("containsAny", 2, 2, contains_any),
    spec("containsNone", 2, 2, contains_none),
    spec("containsNotAll", 2, 2, contains_not_all),
    spec("explode", 1, 1, explode),
    spec("explodeMap", 1, 1, explode_map),
    spec("mergeMap", 2, 2, merge_map),
    spec("mergeMapWithOverride", 2, 2, merge_map_with_override),
    spec("loop", 1, 2, loop_),
];

fn group(groups: BTreeMap<String, Vec<Value>>) -> Value {
    Value::Object(
        groups
            .into_iter()
            .map(|(k, v)| (k, Value::Array(v)))
            .collect(),
    )
}

/// `byTag LIST`: tag → the items carrying it (items in their original order).
fn by_tag(c: &Call) -> HelperResult {
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for item in c.list(0)? {
        let tags = item
            .get("Tags")
            .and_then(Value::as_array)
            .ok_or("items must have Tags (use the result of service or services)")?;
        let mut seen = Vec::new();
        for t in tags {
            let t = to_text(t);
            if !seen.contains(&t) {
                groups.entry(t.clone()).or_default().push(item.clone());
                seen.push(t);
            }
        }
    }
    Ok(group(groups))
}

/// `byPort LIST`: port → the instances on it.
fn by_port(c: &Call) -> HelperResult {
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for item in c.list(0)? {
        let port = item
            .get("Port")
            .ok_or("items must have a Port (use the result of service)")?;
        groups.entry(to_text(port)).or_default().push(item.clone());
    }
    Ok(group(groups))
}

/// `byKey PAIRS` (from `tree`): top folder → {rest of key → pair}; pairs at the top level are dropped.
fn by_key(c: &Call) -> HelperResult {
    let mut out: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for pair in c.list(0)? {
        let key = pair
            .get("Key")
            .and_then(Value::as_str)
            .ok_or("items must be key pairs (use the result of tree or ls)")?;
        let (top, rest) = match key.split_once('/') {
            Some((t, r)) => (t.trim_start_matches('/'), r),
            None => continue,
        };
        if rest.is_empty() {
            continue;
        }
        let mut p = pair.clone();
        p["Key"] = Value::String(rest.to_string());
        out.entry(top.to_string())
            .or_default()
            .insert(rest.to_string(), p);
    }
    Ok(Value::Object(
        out.into_iter()
            .map(|(k, v)| (k, Value::Object(v)))
            .collect(),
    ))
}

fn normalise_meta(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `byMeta "k1,k2|int" LIST`: groups by the named meta values joined by `_`; `|int` zero-pads
/// numbers to 5 digits; a missing key groups as `_no_<key>_` (`00000` with `|int`).
fn by_meta(c: &Call) -> HelperResult {
    let spec = c.str(0)?;
    let mut keys = Vec::new();
    for part in spec.split(',') {
        let (k, conv) = match part.split_once('|') {
            Some((k, conv)) => (k.trim(), Some(conv.trim())),
            None => (part.trim(), None),
        };
        match conv {
            None => keys.push((k.to_string(), false)),
            Some("int") => keys.push((k.to_string(), true)),
            Some(other) => return Err(format!("unknown conversion |{other} (only |int)").into()),
        }
    }
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for item in c.list(1)? {
        let meta = item.get("ServiceMeta").or_else(|| item.get("Meta"));
        let mut parts = Vec::new();
        for (k, int) in &keys {
            let v = meta.and_then(|m| m.get(k)).map(to_text);
            parts.push(match (v, int) {
                (None, false) => format!("_no_{k}_"),
                (None, true) => "00000".to_string(),
                (Some(v), false) => normalise_meta(&v),
                (Some(v), true) => {
                    let n: i64 = v
                        .trim()
                        .parse()
                        .map_err(|_| format!("meta {k}={v:?} is not an integer"))?;
                    format!("{n:05}")
                }
            });
        }
        groups
            .entry(parts.join("_"))
            .or_default()
            .push(item.clone());
    }
    Ok(group(groups))
}

/// Go's `in`: substring for a string haystack, element equality for a list, key for a map.
fn member(haystack: &Value, needle: &Value) -> Result<bool, HelperError> {
    match haystack {
        Value::String(h) => Ok(h.contains(&to_text(needle))),
        Value::Array(list) => Ok(list.iter().any(|v| {
            v == needle || (v.is_string() && needle.is_number() && to_text(v) == to_text(needle))
        })),
        Value::Object(m) => Ok(m.contains_key(&to_text(needle))),
        Value::Null => Ok(false),
        other => Err(format!("cannot search in {}", super::kind(other)).into()),
    }
}

/// `contains NEEDLE HAYSTACK`.
fn contains(c: &Call) -> HelperResult {
    Ok(Value::Bool(member(c.arg(1), c.arg(0))?))
}

/// `in HAYSTACK NEEDLE`.
fn in_(c: &Call) -> HelperResult {
    Ok(Value::Bool(member(c.arg(0), c.arg(1))?))
}

fn needles<'a>(c: &'a Call) -> Result<(Vec<Value>, &'a Value), HelperError> {
    let needles = match c.arg(0) {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    Ok((needles, c.arg(1)))
}

fn contains_all(c: &Call) -> HelperResult {
    let (n, h) = needles(c)?;
    for x in &n {
        if !member(h, x)? {
            return Ok(Value::Bool(false));
        }
    }
    Ok(Value::Bool(true))
}

fn contains_any(c: &Call) -> HelperResult {
    let (n, h) = needles(c)?;
    for x in &n {
        if member(h, x)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn contains_none(c: &Call) -> HelperResult {
    Ok(Value::Bool(!contains_any(c)?.as_bool().unwrap_or(false)))
}

fn contains_not_all(c: &Call) -> HelperResult {
    Ok(Value::Bool(!contains_all(c)?.as_bool().unwrap_or(true)))
}

fn insert_path(root: &mut Map<String, Value>, path: &str, value: Value) -> Result<(), HelperError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.len() > crate::limits::VALUE_DEPTH {
        return Err(format!(
            "key {:?}… has {} segments, over the limit of {}",
            path.chars().take(40).collect::<String>(),
            parts.len(),
            crate::limits::VALUE_DEPTH
        )
        .into());
    }
    let Some((last, dirs)) = parts.split_last() else {
        return Ok(());
    };
    let mut node = root;
    for d in dirs {
        let entry = node
            .entry((*d).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        node = entry
            .as_object_mut()
            .ok_or_else(|| format!("{path}: {d} is a value and a folder (not a map)"))?;
    }
    if node.get(*last).is_some_and(Value::is_object) {
        return Err(format!("{path}: is a folder and a value (not a map)").into());
    }
    node.insert((*last).to_string(), value);
    Ok(())
}

/// `explode PAIRS` (from `tree`): a nested map from the `/`-separated keys.
fn explode(c: &Call) -> HelperResult {
    let mut root = Map::new();
    for pair in c.list(0)? {
        let key = pair
            .get("Key")
            .and_then(Value::as_str)
            .ok_or("items must be key pairs (use tree)")?;
        let value = pair
            .get("Value")
            .cloned()
            .unwrap_or(Value::String(String::new()));
        insert_path(&mut root, key, value)?;
    }
    Ok(Value::Object(root))
}

/// `explodeMap MAP`: a flat map with `/` keys into a nested map (keys taken in sorted order).
fn explode_map(c: &Call) -> HelperResult {
    let mut root = Map::new();
    let mut entries: Vec<(&String, &Value)> = c.map(0)?.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in entries {
        insert_path(&mut root, k, v.clone())?;
    }
    Ok(Value::Object(root))
}

fn merge(dst: &mut Map<String, Value>, src: &Map<String, Value>, overwrite: bool) {
    for (k, v) in src {
        match (dst.get_mut(k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => merge(d, s, overwrite),
            (Some(existing), _) => {
                if overwrite {
                    *existing = v.clone();
                }
            }
            (None, _) => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

/// `mergeMap SRC DST`: DST with SRC's keys added where DST lacks them (deep).
fn merge_map(c: &Call) -> HelperResult {
    let src = c.map(0)?;
    let mut dst = c.map(1)?.clone();
    merge(&mut dst, src, false);
    Ok(Value::Object(dst))
}

/// `mergeMapWithOverride DST SRC`: DST with SRC's values winning (deep).
fn merge_map_with_override(c: &Call) -> HelperResult {
    let mut dst = c.map(0)?.clone();
    let src = c.map(1)?;
    merge(&mut dst, src, true);
    Ok(Value::Object(dst))
}

/// `loop N` (0..N) or `loop A B` (A..B).
fn loop_(c: &Call) -> HelperResult {
    let (start, end) = if c.args.len() == 2 {
        (c.int(0)?, c.int(1)?)
    } else {
        (0, c.int(0)?)
    };
    if end.saturating_sub(start) > 1_000_000 {
        return Err(format!("loop of {} items is too long", end - start).into());
    }
    Ok(Value::Array((start..end).map(Value::from).collect()))
}
