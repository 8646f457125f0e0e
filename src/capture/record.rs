//! Recording what the templates read: every dependency fetched, nodes and instances kept once.

use super::*;

/// How many `service` queries a `services` dependency sends at once.
pub(super) const CONCURRENT: usize = 32;

pub(super) async fn fetch(
    source: &dyn Source,
    policy: &Retry,
    dep: &Dependency,
) -> Result<Option<Value>, CaptureError> {
    retry::fetch(source, dep, None, policy)
        .await
        .map(|f| f.value)
        .map_err(|e| CaptureError::Fetch(format!("{dep}: {e}")))
}

/// Fetches many dependencies, `CONCURRENT` at a time, keeping their order.
pub(super) async fn fetch_all(
    source: &dyn Source,
    policy: &Retry,
    deps: &[Dependency],
) -> Result<Vec<Option<Value>>, CaptureError> {
    let mut out = Vec::with_capacity(deps.len());
    for chunk in deps.chunks(CONCURRENT) {
        let futures = chunk.iter().map(|d| fetch(source, policy, d)).collect();
        for r in runner::once::join_all(futures).await {
            out.push(r?);
        }
    }
    Ok(out)
}

/// Reads every entity `deps` show. Lists whose order Consul decides (`~near`) come first, so
/// the file keeps that order.
pub(super) async fn record(
    source: &dyn Source,
    deps: &[Dependency],
    policy: &Retry,
) -> Result<Recording, CaptureError> {
    let mut rec = Recording::default();
    // The agent's own node says which datacenter queries without `@dc` read.
    let own = Dependency::Node {
        name: None,
        dc: None,
        query: Vec::new(),
    };
    let agent = fetch(source, policy, &own).await?;
    let agent_node = agent
        .as_ref()
        .and_then(|v| v.get("Node"))
        .filter(|n| n.is_object());
    rec.datacenter = agent_node.map(|n| text(n, "Datacenter"));
    for dep in deps {
        supported(dep, rec.datacenter.as_deref())?;
    }
    let rank = |d: &Dependency| match d {
        Dependency::Nodes { near: Some(_), .. } => 0,
        Dependency::Nodes { .. } => 1,
        Dependency::Service(q) if q.near.is_some() => 2,
        Dependency::Service(_) => 3,
        _ => 4,
    };
    let mut ordered: Vec<&Dependency> = deps.iter().filter(|d| d.is_consul()).collect();
    ordered.sort_by_key(|d| rank(d));
    for dep in ordered {
        match dep {
            Dependency::Nodes { .. } => {
                for n in list(fetch(source, policy, dep).await?) {
                    rec.add_node(n);
                }
            }
            Dependency::Service(q) => {
                let all = every_instance(&q.name, &q.dc, &q.near);
                for v in list(fetch(source, policy, &all).await?) {
                    rec.add_instance(v);
                }
            }
            Dependency::Services { dc, .. } => {
                let names: Vec<Dependency> = list(fetch(source, policy, dep).await?)
                    .iter()
                    .map(|s| every_instance(&text(s, "Name"), dc, &None))
                    .collect();
                for answer in fetch_all(source, policy, &names).await? {
                    for v in list(answer) {
                        rec.add_instance(v);
                    }
                }
            }
            Dependency::Node { name, dc, .. } => {
                let value = if name.is_none() && dc.is_none() {
                    agent.clone()
                } else {
                    fetch(source, policy, dep).await?
                };
                record_node(source, policy, &mut rec, value, dc).await?;
                if name.is_none() {
                    rec.agent_node = agent_node.map(|n| text(n, "Node"));
                }
            }
            Dependency::Key { .. } => {
                if let Some(pair) = fetch(source, policy, dep).await? {
                    rec.kv.insert(text(&pair, "Path"), pair);
                }
            }
            Dependency::KeyPrefix { .. } => {
                for pair in list(fetch(source, policy, dep).await?) {
                    rec.kv.insert(text(&pair, "Path"), pair);
                }
            }
            Dependency::Datacenters { .. } => {
                rec.datacenters = list(fetch(source, policy, dep).await?)
                    .iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect();
            }
            Dependency::File { .. }
            | Dependency::HealthState
            | Dependency::ServiceTags
            | Dependency::NodeServices { .. } => {}
        }
    }
    Ok(rec)
}

/// One `node` answer: the node, and each of its services with its checks.
pub(super) async fn record_node(
    source: &dyn Source,
    policy: &Retry,
    rec: &mut Recording,
    value: Option<Value>,
    dc: &Option<String>,
) -> Result<(), CaptureError> {
    let Some(value) = value else { return Ok(()) };
    let Some(node) = value.get("Node").filter(|n| n.is_object()) else {
        return Ok(());
    };
    let name = text(node, "Node");
    rec.add_node(node.clone());
    let services = value
        .get("Services")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for s in &services {
        rec.raw_addresses
            .insert((name.clone(), text(s, "ID")), text(s, "Address"));
        let service = text(s, "Service");
        if !names.contains(&service) {
            names.push(service);
        }
    }
    let deps: Vec<Dependency> = names.iter().map(|n| every_instance(n, dc, &None)).collect();
    for answer in fetch_all(source, policy, &deps).await? {
        for v in list(answer).into_iter().filter(|v| text(v, "Node") == name) {
            rec.add_instance(v);
        }
    }
    Ok(())
}

/// What a data file cannot answer: query parameters (namespaces, peers) and KV in another
/// datacenter than the agent's (the file's `kv` is its datacenter's).
pub(super) fn supported(dep: &Dependency, agent_dc: Option<&str>) -> Result<(), CaptureError> {
    let refuse = |why: &str| {
        Err(CaptureError::Unsupported {
            dep: dep.to_string(),
            why: why.to_string(),
        })
    };
    let (query, kv_dc) = match dep {
        Dependency::Service(q) => (&q.query, None),
        Dependency::Services { query, .. }
        | Dependency::Nodes { query, .. }
        | Dependency::Node { query, .. } => (query, None),
        Dependency::Key { dc, query, .. } | Dependency::KeyPrefix { dc, query, .. } => {
            (query, dc.as_deref())
        }
        Dependency::Datacenters { .. }
        | Dependency::File { .. }
        | Dependency::HealthState
        | Dependency::ServiceTags
        | Dependency::NodeServices { .. } => return Ok(()),
    };
    if !query.is_empty() {
        return refuse("a data file has no namespaces, partitions or peers (?query parameters)");
    }
    match kv_dc {
        Some(dc) if Some(dc) != agent_dc => {
            refuse("a data file holds the KV store of the agent's datacenter only")
        }
        _ => Ok(()),
    }
}
