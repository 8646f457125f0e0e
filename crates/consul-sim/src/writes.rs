//! Consul's write endpoints: catalog register and deregister, KV put and delete (with `cas`,
//! `flags`, `recurse`).

use crate::blocking::*;
use crate::state::*;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

// ----- writes -----

pub(crate) fn notify(st: &St) {
    // A write may have failed a session's node or checks.
    crate::sessions::enforce(&mut lock(&st.data), std::time::Instant::now());
    st.changed.send_modify(|g| *g += 1);
}

pub(crate) async fn register(State(st): State<St>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Request decode failed: invalid JSON");
    };
    match apply_register(&st, &v) {
        Ok(()) => Json(true).into_response(),
        Err(msg) => bad_request(&msg),
    }
}

/// `PUT /v1/catalog/register` on the state (Go's case-insensitive field names).
pub(crate) fn apply_register(st: &St, v: &Value) -> Result<(), String> {
    let bad_request = |m: &str| -> Result<(), String> { Err(m.to_string()) };
    let node = text(v, "Node");
    let address = text(v, "Address");
    if node.is_empty() || address.is_empty() {
        return bad_request("Must provide node and address");
    }
    {
        let mut d = lock(&st.data);
        let idx = d.bump();
        let dc = match text(v, "Datacenter") {
            s if s.is_empty() => d.datacenter.clone(),
            s => s,
        };
        // Only what changed gets a new index: re-registering an unchanged node must not wake
        // the watchers of every service on it.
        let existing = d.nodes.get(&node).cloned();
        let mut n = existing.clone().unwrap_or_default();
        n.address = address;
        n.datacenter = dc;
        if let Some(id) = field(v, "ID").and_then(Value::as_str) {
            n.id = id.to_string();
        }
        if field(v, "NodeMeta").is_some() {
            n.meta = map(v, "NodeMeta");
        }
        if field(v, "TaggedAddresses").is_some() {
            n.tagged = map(v, "TaggedAddresses");
        }
        if existing.as_ref() != Some(&n) {
            n.index = idx;
            d.nodes.insert(node.clone(), n);
            d.touch_node(&node, idx);
        }
        if let Some(s) = field(v, "Service").filter(|s| s.is_object()) {
            let name = text(s, "Service");
            if name.is_empty() {
                return bad_request("Must provide service name");
            }
            let id = match text(s, "ID") {
                i if i.is_empty() => name.clone(),
                i => i,
            };
            let tags = field(s, "Tags")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let port = field(s, "Port").and_then(Value::as_u64).unwrap_or(0);
            let key = (node.clone(), id.clone());
            let old = d.services.get(&key).cloned();
            let mut service = SimService {
                id,
                name: name.clone(),
                tags,
                address: text(s, "Address"),
                port,
                meta: map(s, "Meta"),
                index: 0,
            };
            service.index = old.as_ref().map_or(0, |o| o.index);
            if old.as_ref() != Some(&service) {
                service.index = idx;
                if let Some(old) = old {
                    d.service_index.insert(old.name, idx);
                }
                d.services.insert(key, service);
                d.service_index.insert(name, idx);
                d.services_table = idx;
                // `/v1/catalog/node/:node` wakes on its node's services too.
                d.node_index.insert(node.clone(), idx);
            }
        }
        let mut checks: Vec<Value> = field(v, "Checks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(c) = field(v, "Check").filter(|c| c.is_object()) {
            checks.push(c.clone());
        }
        for c in checks {
            let id = match (text(&c, "CheckID"), text(&c, "Name")) {
                (i, _) if !i.is_empty() => i,
                (_, n) if !n.is_empty() => n,
                _ => return bad_request("Must provide a CheckID or Name"),
            };
            let status = match text(&c, "Status") {
                s if s.is_empty() => "critical".to_string(),
                s if ["passing", "warning", "critical"].contains(&s.as_str()) => s,
                other => return bad_request(&format!("Invalid check status: {other:?}")),
            };
            let service_id = text(&c, "ServiceID");
            let mut check = SimCheck {
                id: id.clone(),
                name: text(&c, "Name"),
                status,
                service_id: service_id.clone(),
                notes: text(&c, "Notes"),
                output: text(&c, "Output"),
                create: idx,
                modify: idx,
            };
            if let Some(old) = d.checks.get(&(node.clone(), id.clone())) {
                (check.create, check.modify) = (old.create, old.modify);
                if *old == check {
                    continue;
                }
                check.modify = idx;
            }
            d.checks.insert((node.clone(), id), check);
            d.checks_table = idx;
            if service_id.is_empty() {
                d.touch_node(&node, idx);
            } else if let Some(s) = d.services.get(&(node.clone(), service_id)).cloned() {
                d.service_index.insert(s.name, idx);
            }
        }
    }
    notify(st);
    Ok(())
}

pub(crate) async fn deregister(State(st): State<St>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Request decode failed: invalid JSON");
    };
    let node = text(&v, "Node");
    if node.is_empty() {
        return bad_request("Must provide node");
    }
    {
        let mut d = lock(&st.data);
        let idx = d.bump();
        let service_id = text(&v, "ServiceID");
        let check_id = text(&v, "CheckID");
        if !service_id.is_empty() {
            if let Some(s) = d.services.remove(&(node.clone(), service_id.clone())) {
                d.service_index.insert(s.name, idx);
                d.services_table = idx;
            }
            d.checks
                .retain(|(n, _), c| !(n == &node && c.service_id == service_id));
            d.checks_table = idx;
            d.node_index.insert(node.clone(), idx);
        } else if !check_id.is_empty() {
            if let Some(c) = d.checks.remove(&(node.clone(), check_id)) {
                d.checks_table = idx;
                match d
                    .services
                    .get(&(node.clone(), c.service_id.clone()))
                    .cloned()
                {
                    Some(s) => {
                        d.service_index.insert(s.name, idx);
                    }
                    None => d.touch_node(&node, idx),
                }
            }
        } else {
            d.touch_node(&node, idx);
            d.nodes.remove(&node);
            d.services.retain(|(n, _), _| n != &node);
            d.checks.retain(|(n, _), _| n != &node);
            d.checks_table = idx;
            d.services_table = idx;
        }
    }
    notify(&st);
    Json(true).into_response()
}

pub(crate) async fn kv_put_root(
    st: State<St>,
    raw: axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    kv_put(st, Path(String::new()), raw, body).await
}

pub(crate) async fn kv_put(
    State(st): State<St>,
    Path(key): Path<String>,
    raw: axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    let p = params(raw);
    let key = key.trim_start_matches('/').to_string();
    if key.is_empty() {
        return bad_request("Missing key name");
    }
    match try_kv_put(&st, &key, &body, &p) {
        Ok(ok) => Json(ok).into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// `PUT /v1/kv/KEY` on the state (`?flags`, `?cas`, `?acquire=`, `?release=`); returns
/// Consul's true/false, or the error for a session that does not exist.
pub(crate) fn apply_kv_put(st: &St, key: &str, body: &[u8], p: &Params) -> bool {
    try_kv_put(st, key, body, p).unwrap_or(false)
}

/// `apply_kv_put`, with Consul's error for `acquire`/`release` with an unknown session.
pub(crate) fn try_kv_put(st: &St, key: &str, body: &[u8], p: &Params) -> Result<bool, String> {
    let key = key.to_string();
    let flags = p.get("flags").and_then(|f| f.parse().ok()).unwrap_or(0);
    let acquire = p.get("acquire").map(str::to_string);
    let release = p.get("release").map(str::to_string);
    let ok = {
        let mut d = lock(&st.data);
        let current = d.kv.get(&key);
        let holder = current.map(|e| e.session.clone()).unwrap_or_default();
        let allowed = match p.get("cas").and_then(|c| c.parse::<u64>().ok()) {
            None => true,
            Some(0) => current.is_none(),
            Some(cas) => current.map(|e| d.reported(e.modify)) == Some(cas),
        };
        if let Some(sid) = acquire.as_ref().or(release.as_ref()) {
            if !d.sessions.contains_key(sid) {
                return Err(format!("invalid session \"{sid}\""));
            }
        }
        let now = std::time::Instant::now();
        let allowed = allowed
            && match (&acquire, &release) {
                // Free, or already ours; never within a lock delay.
                (Some(sid), _) => {
                    (holder.is_empty() || holder == *sid)
                        && d.lock_delays.get(&key).is_none_or(|until| *until <= now)
                }
                (None, Some(sid)) => holder == *sid,
                (None, None) => true,
            };
        if allowed {
            let idx = d.bump();
            let (create, lock_index) =
                d.kv.get(&key)
                    .map_or((idx, 0), |e| (e.create, e.lock_index));
            let (session, lock_index) = match (&acquire, &release) {
                (Some(sid), _) if holder == *sid => (sid.clone(), lock_index),
                (Some(sid), _) => (sid.clone(), lock_index + 1),
                (None, Some(_)) => (String::new(), lock_index),
                (None, None) => (holder, lock_index),
            };
            d.kv.insert(
                key.clone(),
                SimKv {
                    value: body.to_vec(),
                    flags,
                    create,
                    modify: idx,
                    session,
                    lock_index,
                },
            );
            d.kv_index.insert(key, idx);
        }
        allowed
    };
    if ok {
        notify(st);
    }
    Ok(ok)
}

pub(crate) async fn kv_delete_root(st: State<St>, raw: axum::extract::RawQuery) -> Response {
    kv_delete(st, Path(String::new()), raw).await
}

pub(crate) async fn kv_delete(
    State(st): State<St>,
    Path(key): Path<String>,
    raw: axum::extract::RawQuery,
) -> Response {
    let p = params(raw);
    let key = key.trim_start_matches('/').to_string();
    {
        let mut d = lock(&st.data);
        let idx = d.bump();
        let doomed: Vec<String> = if p.has("recurse") {
            d.kv.keys()
                .filter(|k| k.starts_with(&key))
                .cloned()
                .collect()
        } else {
            d.kv.contains_key(&key)
                .then(|| key.clone())
                .into_iter()
                .collect()
        };
        for k in doomed {
            d.kv.remove(&k);
            d.kv_index.insert(k, idx);
        }
    }
    notify(&st);
    Json(true).into_response()
}
