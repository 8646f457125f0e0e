//! Building the data file from a recording: short form, or long form when the templates read more.

use super::*;

/// The data file for a recording: short form (`Status`, KV text), or long (`Checks`, KV
/// indexes and flags).
pub(super) fn build(rec: &Recording, long_form: bool) -> DataFile {
    let dc = rec.datacenter.clone().unwrap_or_else(|| "dc1".into());
    let nodes = rec
        .nodes
        .iter()
        .map(|n| {
            let node_dc = text(n, "Datacenter");
            DataNode {
                node: text(n, "Node"),
                address: text(n, "Address"),
                id: text(n, "ID"),
                datacenter: (node_dc != dc && !node_dc.is_empty()).then_some(node_dc),
                meta: strings(n, "Meta"),
                tagged_addresses: strings(n, "TaggedAddresses"),
            }
        })
        .collect();
    let services = rec
        .instances
        .iter()
        .map(|v| service(rec, v, long_form))
        .collect();
    let kv = rec
        .kv
        .iter()
        .map(|(key, p)| {
            let value = text(p, "Value");
            let entry = if long_form {
                DataKv::Full(DataKvEntry {
                    value,
                    flags: number(p, "Flags"),
                    create_index: number(p, "CreateIndex"),
                    modify_index: number(p, "ModifyIndex"),
                    lock_index: number(p, "LockIndex"),
                    session: text(p, "Session"),
                })
            } else {
                DataKv::Text(value)
            };
            (key.clone(), entry)
        })
        .collect();
    DataFile {
        datacenter: rec.datacenter.clone(),
        datacenters: rec.datacenters.clone(),
        node: rec.agent_node.clone(),
        nodes,
        services,
        kv,
    }
}

pub(super) fn service(rec: &Recording, v: &Value, long_form: bool) -> DataService {
    let node = text(v, "Node");
    let id = text(v, "ID");
    // `service` shows the node's address when the service has none; `node` shows it as
    // registered.
    let address = match rec.raw_addresses.get(&(node.clone(), id.clone())) {
        Some(raw) => raw.clone(),
        None if text(v, "Address") == text(v, "NodeAddress") => String::new(),
        None => text(v, "Address"),
    };
    let weights = v.get("Weights").map(|w| DataWeights {
        passing: w.get("Passing").and_then(Value::as_i64).unwrap_or(1),
        warning: w.get("Warning").and_then(Value::as_i64).unwrap_or(1),
    });
    let checks = long_form.then(|| {
        list(v.get("Checks").cloned())
            .iter()
            .map(|c| DataCheck {
                node: Some(text(c, "Node"))
                    .filter(|n| *n != node)
                    .unwrap_or_default(),
                check_id: text(c, "CheckID"),
                name: text(c, "Name"),
                status: text(c, "Status"),
                notes: text(c, "Notes"),
                output: text(c, "Output"),
                service_id: text(c, "ServiceID"),
                service_name: text(c, "ServiceName"),
            })
            .collect()
    });
    DataService {
        node,
        id,
        service: text(v, "Name"),
        address,
        port: u32::try_from(number(v, "Port")).unwrap_or_default(),
        tags: v
            .get("Tags")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        meta: strings(v, "ServiceMeta"),
        status: (!long_form).then(|| text(v, "Status")),
        checks,
        weights: weights.filter(|w| (w.passing, w.warning) != (1, 1)),
        tagged_addresses: v
            .get("ServiceTaggedAddresses")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }
}
