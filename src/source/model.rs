//! Consul's JSON shapes (as `CONSUL_API.md` gives them) and their conversion into helper values.
//!
//! Both the HTTP client and the data file produce these shapes, and one set of functions turns
//! them into what templates see (address fallback, aggregated status, health filters, sorting),
//! so a template renders the same from a data file as from a Consul with the same registrations.

use crate::dependency::{HealthFilter, ServiceQuery, Status};
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The fields `service` instances carry: all, or those the templates can read
/// (`template::fields`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fields {
    #[default]
    All,
    Only(BTreeSet<String>),
}

impl Fields {
    /// Whether instances keep `field` (`ID` always: an instance is never an empty map).
    pub fn wants(&self, field: &str) -> bool {
        match self {
            Fields::All => true,
            Fields::Only(set) => field == "ID" || set.contains(field),
        }
    }

    /// What two sets of templates read together.
    pub fn union(self, other: Fields) -> Fields {
        match (self, other) {
            (Fields::Only(mut a), Fields::Only(b)) => {
                a.extend(b);
                Fields::Only(a)
            }
            _ => Fields::All,
        }
    }
}

/// Consul sends `null` for empty lists and maps in places; read it as empty.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    #[serde(deserialize_with = "nullable")]
    pub tagged_addresses: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    pub meta: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Weights {
    pub passing: i64,
    pub warning: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AgentService {
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    #[serde(deserialize_with = "nullable")]
    pub tags: Vec<String>,
    pub address: String,
    #[serde(deserialize_with = "nullable")]
    pub meta: BTreeMap<String, String>,
    pub port: u32,
    #[serde(deserialize_with = "nullable")]
    pub tagged_addresses: BTreeMap<String, Value>,
    pub weights: Option<Weights>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthCheck {
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    pub name: String,
    pub status: String,
    pub notes: String,
    pub output: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub service_name: String,
}

/// One element of `GET /v1/health/service/:service`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthEntry {
    pub node: Node,
    pub service: AgentService,
    #[serde(deserialize_with = "nullable")]
    pub checks: Vec<HealthCheck>,
}

/// `GET /v1/catalog/node/:node`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogNode {
    pub node: Node,
    #[serde(deserialize_with = "nullable")]
    pub services: BTreeMap<String, AgentService>,
}

/// One element of `GET /v1/kv/:key`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct KvPair {
    pub key: String,
    /// base64, or null for an empty value.
    pub value: Option<String>,
    pub flags: u64,
    pub session: String,
    pub lock_index: u64,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A KV value that is not UTF-8 text, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotText(pub String);

impl From<String> for NotText {
    fn from(s: String) -> NotText {
        NotText(s)
    }
}

impl KvPair {
    /// `Err` naming the key when its value is not UTF-8 text (a template prints text only;
    /// replacing the bytes would corrupt it silently).
    pub fn check_text(&self) -> Result<(), NotText> {
        let Some(b64) = &self.value else {
            return Ok(());
        };
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(bytes) => std::str::from_utf8(&bytes).map(|_| ()).map_err(|e| {
                NotText(format!(
                    "the value of key {:?} is not UTF-8 text (invalid byte at offset {}); \
                     templates render text only",
                    self.key,
                    e.valid_up_to()
                ))
            }),
            Err(_) => Ok(()),
        }
    }

    /// The decoded value (`check_text` refuses what is not UTF-8 before it gets here).
    pub fn decoded(&self) -> String {
        match &self.value {
            None => String::new(),
            Some(b64) => match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) => b64.clone(),
            },
        }
    }
}

/// consul-template's aggregated status: maintenance > critical > warning > passing.
pub fn aggregate_status(checks: &[HealthCheck]) -> Status {
    let (mut maintenance, mut critical, mut warning) = (false, false, false);
    for c in checks {
        if c.check_id == "_node_maintenance" || c.check_id.starts_with("_service_maintenance:") {
            maintenance = true;
            continue;
        }
        match c.status.as_str() {
            "critical" => critical = true,
            "warning" => warning = true,
            _ => {}
        }
    }
    if maintenance {
        Status::Maintenance
    } else if critical {
        Status::Critical
    } else if warning {
        Status::Warning
    } else {
        Status::Passing
    }
}

/// True when every check passes (Consul's `?passing`).
pub fn all_passing(checks: &[HealthCheck]) -> bool {
    checks.iter().all(|c| c.status == "passing")
}

fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn node_value(n: &Node) -> Value {
    json!({
        "ID": n.id, "Node": n.node, "Address": n.address, "Datacenter": n.datacenter,
        "TaggedAddresses": string_map(&n.tagged_addresses), "Meta": string_map(&n.meta),
    })
}

/// An object from pairs already sorted by key: `serde_json`'s map is a B-tree, which builds
/// from sorted pairs in one pass instead of one search per insert (10,000 instances × 17 keys).
fn sorted_object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    debug_assert!(
        pairs.windows(2).all(|w| w[0].0 < w[1].0),
        "keys out of order"
    );
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn text(s: &str) -> Value {
    Value::String(s.to_string())
}

fn check_value(c: &HealthCheck) -> Value {
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

fn instance_value(e: &HealthEntry, status: Status, fields: &Fields) -> Value {
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

fn pair_value(p: &KvPair, key: &str) -> Value {
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

fn filter_pairs(list: &Value, keep: impl Fn(&str) -> bool) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dependency::parse_service;

    fn entry(node: &str, id: &str, addr: &str, checks: &[(&str, &str)]) -> HealthEntry {
        HealthEntry {
            node: Node {
                node: node.into(),
                address: "10.0.0.9".into(),
                ..Node::default()
            },
            service: AgentService {
                id: id.into(),
                service: "web".into(),
                address: addr.into(),
                port: 80,
                ..AgentService::default()
            },
            checks: checks
                .iter()
                .map(|(cid, st)| HealthCheck {
                    check_id: (*cid).into(),
                    status: (*st).into(),
                    ..HealthCheck::default()
                })
                .collect(),
        }
    }

    #[test]
    fn filters_sorting_and_address_fallback() {
        let entries = vec![
            entry("n2", "b", "", &[("serfHealth", "passing")]),
            entry("n1", "z", "10.0.0.1", &[("service:z", "warning")]),
            entry("n1", "a", "10.0.0.2", &[("service:a", "critical")]),
            entry(
                "n1",
                "m",
                "10.0.0.3",
                &[("_service_maintenance:m", "critical")],
            ),
        ];
        let v = instances(&entries, &parse_service("web").unwrap(), &Fields::All);
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(
            v[0]["Address"], "10.0.0.9",
            "falls back to the node address"
        );
        let v = instances(&entries, &parse_service("web|any").unwrap(), &Fields::All);
        let ids: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["ID"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a", "m", "z", "b"], "sorted by node then ID");
        assert_eq!(v[1]["Status"], "maintenance");
        let v = instances(
            &entries,
            &parse_service("web|passing,warning").unwrap(),
            &Fields::All,
        );
        assert_eq!(v.as_array().unwrap().len(), 2);
    }

    #[test]
    fn kv_lists() {
        let pair = |k: &str, v: &str| KvPair {
            key: k.into(),
            value: Some(base64::engine::general_purpose::STANDARD.encode(v)),
            ..KvPair::default()
        };
        let pairs = vec![
            pair("app/", ""),
            pair("app/a", "1"),
            pair("app/sub/", ""),
            pair("app/sub/b", "2"),
        ];
        let all = kv_list(&pairs, "app");
        assert_eq!(all.as_array().unwrap().len(), 3);
        let ls = only_children(&all);
        assert_eq!(ls.as_array().unwrap().len(), 1);
        assert_eq!(ls[0]["Value"], "1");
        let tree = without_folders(&all);
        let keys: Vec<&str> = tree
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["Key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["a", "sub/b"]);
    }
}
