//! The helper values built from Consul's JSON: instances, services, nodes, KV pairs.

use super::*;

pub(super) fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

pub(super) fn node_value(n: &Node) -> Value {
    json!({
        "ID": n.id, "Node": n.node, "Address": n.address, "Datacenter": n.datacenter,
        "TaggedAddresses": string_map(&n.tagged_addresses), "Meta": string_map(&n.meta),
    })
}

/// An object from pairs already sorted by key: `serde_json`'s map is a B-tree, which builds
/// from sorted pairs in one pass instead of one search per insert (10,000 instances × 17 keys).
pub(super) fn sorted_object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    debug_assert!(
        pairs.windows(2).all(|w| w[0].0 < w[1].0),
        "keys out of order"
    );
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

pub(super) fn text(s: &str) -> Value {
    Value::String(s.to_string())
}

pub(super) fn check_value(c: &HealthCheck) -> Value {
    sorted_object([
        ("CheckID", text(&c.check_id)),
        ("Name", text(&c.name)),
        ("Node", text(&c.node)),
        ("Notes", text(&c.notes)),
        ("Output", text(&c.output)),
        ("ServiceID", text(&c.service_id)),
        ("ServiceName", text(&c.service_name)),
        ("Status", text(&c.status)),
    ])
}

pub(super) fn instance_value(e: &HealthEntry, status: Status, fields: &Fields) -> Value {
    let s = &e.service;
    let address = if s.address.is_empty() {
        &e.node.address
    } else {
        &s.address
    };
    let want = |k: &str| fields.wants(k);
    // Sorted by key; only the fields the templates can read are built.
    let mut pairs: Vec<(&str, Value)> = Vec::with_capacity(17);
    let mut add = |k: &'static str, f: &dyn Fn() -> Value| {
        if want(k) {
            pairs.push((k, f()));
        }
    };
    add("Address", &|| text(address));
    add("Checks", &|| {
        Value::Array(e.checks.iter().map(check_value).collect())
    });
    add("ID", &|| text(&s.id));
    add("Meta", &|| string_map(&s.meta));
    add("Name", &|| text(&s.service));
    add("Node", &|| text(&e.node.node));
    add("NodeAddress", &|| text(&e.node.address));
    add("NodeDatacenter", &|| text(&e.node.datacenter));
    add("NodeID", &|| text(&e.node.id));
    add("NodeMeta", &|| string_map(&e.node.meta));
    add("NodeTaggedAddresses", &|| {
        string_map(&e.node.tagged_addresses)
    });
    add("Port", &|| Value::from(s.port));
    add("ServiceMeta", &|| string_map(&s.meta));
    add("ServiceTaggedAddresses", &|| {
        Value::Object(s.tagged_addresses.clone().into_iter().collect())
    });
    add("Status", &|| text(status.as_str()));
    add("Tags", &|| {
        let mut tags = s.tags.clone();
        tags.sort();
        Value::from(tags)
    });
    add("Weights", &|| {
        let w = s.weights.clone().unwrap_or(Weights {
            passing: 1,
            warning: 1,
        });
        sorted_object([
            ("Passing", Value::from(w.passing)),
            ("Warning", Value::from(w.warning)),
        ])
    });
    debug_assert!(
        pairs.windows(2).all(|w| w[0].0 < w[1].0),
        "keys out of order"
    );
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// Health entries → the `service` helper's list: filtered by status, sorted by Node then ID
/// (Consul's own order kept with `~near`).
pub fn instances<'a>(
    entries: impl IntoIterator<Item = &'a HealthEntry>,
    q: &ServiceQuery,
    fields: &Fields,
) -> Value {
    let mut kept: Vec<(&HealthEntry, Status)> = entries
        .into_iter()
        .filter_map(|e| {
            let status = aggregate_status(&e.checks);
            let ok = match q.filter {
                // Server side `?passing` already applied; a maintenance check is critical.
                HealthFilter::PassingOnly => all_passing(&e.checks),
                ref f => f.accepts(status),
            };
            ok.then_some((e, status))
        })
        .collect();
    if q.near.is_none() {
        kept.sort_by(|a, b| {
            (&a.0.node.node, &a.0.service.id).cmp(&(&b.0.node.node, &b.0.service.id))
        });
    }
    Value::Array(
        kept.into_iter()
            .map(|(e, s)| instance_value(e, s, fields))
            .collect(),
    )
}

/// `GET /v1/catalog/services` → `[{Name, Tags}]` sorted by name, tags sorted.
pub fn services(map: &BTreeMap<String, Vec<String>>) -> Value {
    Value::Array(
        map.iter()
            .map(|(name, tags)| {
                let mut tags = tags.clone();
                tags.sort();
                tags.dedup();
                json!({"Name": name, "Tags": tags})
            })
            .collect(),
    )
}

/// `GET /v1/catalog/nodes` → nodes sorted by name (Consul's order kept with `~near`).
pub fn nodes(list: &[Node], near: bool) -> Value {
    let mut list: Vec<&Node> = list.iter().collect();
    if !near {
        list.sort_by(|a, b| a.node.cmp(&b.node));
    }
    Value::Array(list.into_iter().map(node_value).collect())
}

/// What `node` gives for a node that does not exist: consul-template's empty `CatalogNode`.
pub fn empty_node() -> Value {
    json!({"Node": null, "Services": []})
}

/// `GET /v1/catalog/node/:node` → `{Node, Services: [...]}`, services sorted by ID.
pub fn node(n: &CatalogNode) -> Value {
    let services: Vec<Value> = n
        .services
        .values()
        .map(|s| {
            let mut tags = s.tags.clone();
            tags.sort();
            json!({"ID": s.id, "Service": s.service, "Tags": tags, "Meta": string_map(&s.meta),
                   "Port": s.port, "Address": s.address})
        })
        .collect();
    json!({"Node": node_value(&n.node), "Services": services})
}

/// A hash of `v` that is the same on every run (the change detector compares these between
/// answers).
pub fn hash_of(v: impl std::hash::Hash) -> u64 {
    use std::hash::Hasher as _;
    let mut h = std::hash::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// One node's answer as the change detector compares it: `{"Node": n, "Services": {ID:
/// [name, n]}}`, each number a hash of what the `node` helper shows of the node or service.
pub fn node_digest(n: &CatalogNode) -> Value {
    let node = &n.node;
    let services = n
        .services
        .values()
        .map(|s| {
            let mut tags = s.tags.clone();
            tags.sort();
            let print = hash_of((&s.service, &tags, &s.meta, s.port, &s.address));
            (s.id.clone(), json!([s.service, print]))
        })
        .collect();
    json!({
        "Node": hash_of((&node.id, &node.node, &node.address, &node.datacenter,
                         &node.tagged_addresses, &node.meta)),
        "Services": Value::Object(services),
    })
}

pub(super) fn pair_value(p: &KvPair, key: &str) -> Value {
    json!({
        "Key": key, "Path": p.key, "Value": p.decoded(), "Flags": p.flags,
        "CreateIndex": p.create_index, "ModifyIndex": p.modify_index,
        "LockIndex": p.lock_index, "Session": p.session,
    })
}

/// One KV entry for `key`, `keyExists`, `keyOrDefault`.
pub fn kv_pair(p: &KvPair) -> Value {
    pair_value(p, &p.key)
}

/// `?recurse` under a prefix → pairs with `Key` relative to the prefix (leading `/` trimmed);
/// the prefix's own entry is left out. `ls` and `tree` filter this list further.
pub fn kv_list(pairs: &[KvPair], prefix: &str) -> Value {
    let mut out: Vec<(String, Value)> = Vec::new();
    for p in pairs {
        let rel = p
            .key
            .strip_prefix(prefix)
            .unwrap_or(&p.key)
            .trim_start_matches('/');
        if rel.is_empty() {
            continue;
        }
        out.push((rel.to_string(), pair_value(p, rel)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Array(out.into_iter().map(|(_, v)| v).collect())
}

/// Keeps direct children only (`ls`).
pub fn only_children(list: &Value) -> Value {
    filter_pairs(list, |k| !k.contains('/'))
}

/// Drops folder entries (`tree`).
pub fn without_folders(list: &Value) -> Value {
    filter_pairs(list, |k| !k.ends_with('/'))
}

pub(super) fn filter_pairs(list: &Value, keep: impl Fn(&str) -> bool) -> Value {
    let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
    Value::Array(
        items
            .iter()
            .filter(|p| p.get("Key").and_then(Value::as_str).is_some_and(&keep))
            .cloned()
            .collect(),
    )
}

/// Builds an object from pairs, for places that need an ad-hoc map.
pub fn object(pairs: impl IntoIterator<Item = (String, Value)>) -> Value {
    Value::Object(pairs.into_iter().collect::<Map<String, Value>>())
}
