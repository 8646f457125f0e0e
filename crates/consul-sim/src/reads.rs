//! The read endpoints: health, catalog, KV, datacenters, the agent.

use crate::blocking::*;
use crate::state::*;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub(crate) fn dc_of(d: &Data, p: &Params) -> String {
    p.get("dc")
        .map_or_else(|| d.datacenter.clone(), str::to_string)
}

pub(crate) fn node_json(name: &str, n: &SimNode) -> Value {
    json!({"ID": n.id, "Node": name, "Address": n.address, "Datacenter": n.datacenter,
           "TaggedAddresses": n.tagged, "Meta": n.meta, "CreateIndex": n.index, "ModifyIndex": n.index})
}

pub(crate) fn service_json(s: &SimService) -> Value {
    json!({"ID": s.id, "Service": s.name, "Tags": s.tags, "Address": s.address, "Meta": s.meta,
           "Port": s.port, "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": false,
           "TaggedAddresses": {}, "CreateIndex": s.index, "ModifyIndex": s.index})
}

pub(crate) fn check_json(node: &str, c: &SimCheck, service: Option<&SimService>) -> Value {
    json!({"Node": node, "CheckID": c.id, "Name": c.name, "Status": c.status, "Notes": c.notes,
           "Output": c.output, "ServiceID": c.service_id,
           "ServiceName": service.map_or("", |s| s.name.as_str()),
           "ServiceTags": service.map_or(&[][..], |s| s.tags.as_slice()), "Type": "",
           "CreateIndex": c.create, "ModifyIndex": c.modify})
}

/// `GET /v1/health/state/:state`: every check in that state (`any`: all), across services and
/// nodes, with its service's name and tags; the index moves when any check changes.
pub(crate) async fn health_state(
    State(st): State<St>,
    Path(state): Path<String>,
    raw: axum::extract::RawQuery,
) -> Response {
    if !["any", "passing", "warning", "critical"].contains(&state.as_str()) {
        return (
            StatusCode::BAD_REQUEST,
            format!("Unknown check state: {state:?}"),
        )
            .into_response();
    }
    let p = params(raw);
    blocking(&st, &p, move |d, p| {
        let dc = dc_of(d, p);
        let out: Vec<Value> = d
            .checks
            .iter()
            .filter(|((node, _), c)| {
                (state == "any" || c.status == state)
                    && d.nodes.get(node).is_some_and(|n| n.datacenter == dc)
            })
            .map(|((node, _), c)| {
                let service = (!c.service_id.is_empty())
                    .then(|| d.services.get(&(node.clone(), c.service_id.clone())))
                    .flatten();
                check_json(node, c, service)
            })
            .collect();
        Read::Json(Value::Array(out), d.checks_table)
    })
    .await
}

/// (node name, node, service) for instances of `name` in the query's datacenter with its tags.
pub(crate) fn instances<'a>(
    d: &'a Data,
    p: &Params,
    name: &str,
) -> Vec<(&'a String, &'a SimNode, &'a SimService)> {
    let dc = dc_of(d, p);
    let tags = p.all("tag");
    d.services
        .iter()
        .filter(|(_, s)| s.name == name && tags.iter().all(|t| s.tags.contains(t)))
        .filter_map(|((node, _), s)| d.nodes.get(node).map(|n| (node, n, s)))
        .filter(|(_, n, _)| n.datacenter == dc)
        .collect()
}

pub(crate) fn service_index(d: &Data, name: &str) -> u64 {
    d.service_index
        .get(name)
        .copied()
        .unwrap_or(d.services_table)
}

pub(crate) async fn health_service(
    State(st): State<St>,
    Path(name): Path<String>,
    raw: axum::extract::RawQuery,
) -> Response {
    let p = params(raw);
    if p.has("filter") {
        return bad_request("filter expressions are not supported by the test simulator");
    }
    blocking(&st, &p, |d, p| {
        let mut out = Vec::new();
        for (node, n, s) in instances(d, p, &name) {
            let checks: Vec<&SimCheck> = d
                .checks
                .iter()
                .filter(|((cn, _), c)| {
                    cn == node && (c.service_id.is_empty() || c.service_id == s.id)
                })
                .map(|(_, c)| c)
                .collect();
            if p.has("passing") && checks.iter().any(|c| c.status != "passing") {
                continue;
            }
            let checks: Vec<Value> = checks
                .iter()
                .map(|c| check_json(node, c, (!c.service_id.is_empty()).then_some(s)))
                .collect();
            out.push(
                json!({"Node": node_json(node, n), "Service": service_json(s), "Checks": checks}),
            );
        }
        Read::Json(Value::Array(out), service_index(d, &name))
    })
    .await
}

pub(crate) async fn catalog_service(
    State(st): State<St>,
    Path(name): Path<String>,
    raw: axum::extract::RawQuery,
) -> Response {
    let p = params(raw);
    blocking(&st, &p, |d, p| {
        let out: Vec<Value> = instances(d, p, &name)
            .into_iter()
            .map(|(node, n, s)| {
                json!({"ID": n.id, "Node": node, "Address": n.address, "Datacenter": n.datacenter,
                       "TaggedAddresses": n.tagged, "NodeMeta": n.meta, "ServiceKind": "",
                       "ServiceID": s.id, "ServiceName": s.name, "ServiceTags": s.tags,
                       "ServiceAddress": s.address, "ServiceTaggedAddresses": {}, "ServiceMeta": s.meta,
                       "ServicePort": s.port, "ServiceWeights": {"Passing": 1, "Warning": 1},
                       "ServiceEnableTagOverride": false, "CreateIndex": s.index, "ModifyIndex": s.index})
            })
            .collect();
        Read::Json(Value::Array(out), service_index(d, &name))
    })
    .await
}

pub(crate) async fn catalog_services(
    State(st): State<St>,
    raw: axum::extract::RawQuery,
) -> Response {
    let p = params(raw);
    blocking(&st, &p, |d, p| {
        let dc = dc_of(d, p);
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for ((node, _), s) in &d.services {
            if d.nodes.get(node).is_some_and(|n| n.datacenter == dc) {
                let tags = out.entry(s.name.clone()).or_default();
                for t in &s.tags {
                    if !tags.contains(t) {
                        tags.push(t.clone());
                    }
                }
            }
        }
        Read::Json(json!(out), d.services_table)
    })
    .await
}

pub(crate) async fn catalog_nodes(State(st): State<St>, raw: axum::extract::RawQuery) -> Response {
    let p = params(raw);
    blocking(&st, &p, |d, p| {
        let dc = dc_of(d, p);
        let out: Vec<Value> = d
            .nodes
            .iter()
            .filter(|(_, n)| n.datacenter == dc)
            .map(|(name, n)| node_json(name, n))
            .collect();
        Read::Json(Value::Array(out), d.nodes_table)
    })
    .await
}

pub(crate) async fn catalog_node(
    State(st): State<St>,
    Path(name): Path<String>,
    raw: axum::extract::RawQuery,
) -> Response {
    let p = params(raw);
    blocking(&st, &p, |d, p| {
        let dc = dc_of(d, p);
        let idx = d.node_index.get(&name).copied().unwrap_or(d.nodes_table);
        match d.nodes.get(&name).filter(|n| n.datacenter == dc) {
            None => Read::Json(Value::Null, idx),
            Some(n) => {
                let services: Map<String, Value> = d
                    .services
                    .iter()
                    .filter(|((node, _), _)| node == &name)
                    .map(|(_, s)| (s.id.clone(), service_json(s)))
                    .collect();
                Read::Json(
                    json!({"Node": node_json(&name, n), "Services": services}),
                    idx,
                )
            }
        }
    })
    .await
}

pub(crate) async fn datacenters(State(st): State<St>) -> Response {
    let d = lock(&st.data);
    let mut dcs: Vec<String> = d.nodes.values().map(|n| n.datacenter.clone()).collect();
    dcs.push(d.datacenter.clone());
    dcs.sort();
    dcs.dedup();
    Json(dcs).into_response()
}

pub(crate) async fn agent_self(State(st): State<St>) -> Response {
    let d = lock(&st.data);
    Json(
        json!({"Config": {"Datacenter": d.datacenter, "NodeName": d.agent_node},
                "Member": {"Name": d.agent_node, "Addr": "127.0.0.1"}}),
    )
    .into_response()
}

pub(crate) fn kv_pair_json(key: &str, e: &SimKv) -> Value {
    let value = if e.value.is_empty() {
        Value::Null
    } else {
        Value::String(base64::engine::general_purpose::STANDARD.encode(&e.value))
    };
    json!({"Key": key, "Value": value, "Flags": e.flags, "Session": e.session,
           "LockIndex": e.lock_index, "CreateIndex": e.create, "ModifyIndex": e.modify})
}

pub(crate) fn kv_read(d: &Data, p: &Params, key: &str) -> Read {
    if p.get("dc").is_some_and(|dc| dc != d.datacenter) {
        return Read::Status(StatusCode::NOT_FOUND, String::new(), d.index);
    }
    let prefix_index = || {
        d.kv_index
            .range(key.to_string()..)
            .take_while(|(k, _)| k.starts_with(key))
            .map(|(_, i)| *i)
            .max()
            .unwrap_or(d.index)
    };
    if p.has("keys") {
        let sep = p.get("separator").filter(|s| !s.is_empty());
        let mut keys: Vec<String> = Vec::new();
        for k in
            d.kv.range(key.to_string()..)
                .map(|(k, _)| k)
                .take_while(|k| k.starts_with(key))
        {
            let shown = match sep.and_then(|s| k[key.len()..].find(s).map(|i| (i, s.len()))) {
                Some((i, len)) => k[..key.len() + i + len].to_string(),
                None => k.clone(),
            };
            if keys.last() != Some(&shown) {
                keys.push(shown);
            }
        }
        return if keys.is_empty() {
            Read::Status(StatusCode::NOT_FOUND, String::new(), prefix_index())
        } else {
            Read::Json(json!(keys), prefix_index())
        };
    }
    if p.has("recurse") {
        let pairs: Vec<Value> =
            d.kv.range(key.to_string()..)
                .take_while(|(k, _)| k.starts_with(key))
                .map(|(k, e)| kv_pair_json(k, e))
                .collect();
        return if pairs.is_empty() {
            Read::Status(StatusCode::NOT_FOUND, String::new(), prefix_index())
        } else {
            Read::Json(Value::Array(pairs), prefix_index())
        };
    }
    let idx = d.kv_index.get(key).copied().unwrap_or(d.index);
    match d.kv.get(key) {
        // Consul reports the KV table's index for a missing key and wakes on that key alone.
        None => Read::Watched(
            Box::new(Read::Status(StatusCode::NOT_FOUND, String::new(), idx)),
            d.kv_index.get(key).copied().unwrap_or(0),
        ),
        Some(e) if p.has("raw") => Read::Raw(e.value.clone(), idx),
        Some(e) => Read::Json(json!([kv_pair_json(key, e)]), idx),
    }
}

pub(crate) async fn kv_get_root(st: State<St>, raw: axum::extract::RawQuery) -> Response {
    kv_get(st, Path(String::new()), raw).await
}

pub(crate) async fn kv_get(
    State(st): State<St>,
    Path(key): Path<String>,
    raw: axum::extract::RawQuery,
) -> Response {
    let p = params(raw);
    let key = key.trim_start_matches('/').to_string();
    blocking(&st, &p, |d, p| kv_read(d, p, &key)).await
}
