//! The data file's format (DESIGN.md section 5): its types, as written and read, and their checks.
//!
//! The short forms are for people (`"Status": "passing"`, `"kv": {"k": "text"}`); the long forms
//! (`"Checks": […]`, `"kv": {"k": {"Value": …, "ModifyIndex": …}}`) carry everything Consul
//! answers, so `consul-render capture` can write a file that renders byte-identical output.

use crate::source::model::{AgentService, HealthCheck, HealthEntry, KvPair, Node, Weights};
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Why a data file was refused: the entry (`services[3].Checks[0]`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DataError(pub String);

impl From<String> for DataError {
    fn from(s: String) -> DataError {
        DataError(s)
    }
}

/// A data file that cannot be used, named by its path.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("data file {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data file {}: {source}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        #[source]
        source: DataError,
    },
}

impl From<&str> for DataError {
    fn from(s: &str) -> DataError {
        DataError(s.into())
    }
}

/// The data file as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataFile {
    /// The agent's datacenter (default `dc1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    /// Datacenters known besides those of the nodes (what `datacenters` lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datacenters: Vec<String>,
    /// The agent's own node, for `node` with no argument (default: the first node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default)]
    pub nodes: Vec<DataNode>,
    #[serde(default)]
    pub services: Vec<DataService>,
    #[serde(default)]
    pub kv: BTreeMap<String, DataKv>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DataNode {
    pub node: String,
    pub address: String,
    #[serde(default, rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tagged_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DataService {
    pub node: String,
    #[serde(default, rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub service: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// passing (default), warning, critical or maintenance: one check stands for them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Every check of the instance, node checks included, as Consul lists them (instead of
    /// `Status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<DataCheck>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<DataWeights>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tagged_addresses: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DataWeights {
    pub passing: i64,
    pub warning: i64,
}

/// One health check in the long form. `Node` defaults to the instance's node.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DataCheck {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    #[serde(
        default,
        rename = "ServiceID",
        skip_serializing_if = "String::is_empty"
    )]
    pub service_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,
}

/// A KV value: its text, or every field Consul keeps for it.
#[derive(Debug, Clone, PartialEq)]
pub enum DataKv {
    Text(String),
    Full(DataKvEntry),
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DataKvEntry {
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub flags: u64,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
    #[serde(default)]
    pub lock_index: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session: String,
}

impl DataKv {
    /// The value's text.
    pub fn text(&self) -> &str {
        match self {
            DataKv::Text(s) => s,
            DataKv::Full(e) => &e.value,
        }
    }
}

impl Serialize for DataKv {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DataKv::Text(t) => t.serialize(s),
            DataKv::Full(e) => e.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for DataKv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match Value::deserialize(d)? {
            Value::String(s) => Ok(DataKv::Text(s)),
            v @ Value::Object(_) => serde_json::from_value(v)
                .map(DataKv::Full)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "a KV value is a string or an object {{\"Value\": …, \"Flags\": …}}, not {other}"
            ))),
        }
    }
}

/// What a data file describes, in Consul's shapes, checked.
pub struct Contents {
    pub datacenter: String,
    pub extra_datacenters: Vec<String>,
    pub agent_node: Option<String>,
    pub nodes: Vec<Node>,
    pub entries: Vec<HealthEntry>,
    pub kv: Vec<KvPair>,
}

impl DataFile {
    /// Checks the file and builds Consul's shapes from it, moving its strings rather than
    /// copying them (a large file is not held twice); errors name the entry (`services[3]: …`).
    pub fn into_contents(self) -> Result<Contents, DataError> {
        let datacenter = self.datacenter.unwrap_or_else(|| "dc1".into());
        let mut nodes: Vec<Node> = Vec::with_capacity(self.nodes.len());
        let mut index: HashMap<String, usize> = HashMap::with_capacity(self.nodes.len());
        for (i, n) in self.nodes.into_iter().enumerate() {
            if n.node.is_empty() {
                return Err(format!("nodes[{i}]: Node cannot be empty").into());
            }
            if index.insert(n.node.clone(), nodes.len()).is_some() {
                return Err(format!("nodes[{i}]: node {:?} is listed twice", n.node).into());
            }
            nodes.push(Node {
                id: n.id,
                node: n.node,
                address: n.address,
                datacenter: n.datacenter.unwrap_or_else(|| datacenter.clone()),
                tagged_addresses: n.tagged_addresses,
                meta: n.meta,
            });
        }
        let mut entries = Vec::with_capacity(self.services.len());
        let mut ids = HashSet::with_capacity(self.services.len());
        for (i, s) in self.services.into_iter().enumerate() {
            let Some(&n) = index.get(&s.node) else {
                return Err(format!(
                    "services[{i}]: node {:?} is not listed in \"nodes\"",
                    s.node
                )
                .into());
            };
            entries.push(
                s.entry(&nodes[n], &mut ids)
                    .map_err(|e| format!("services[{i}]: {e}"))?,
            );
        }
        if let Some(agent) = &self.node {
            if !index.contains_key(agent) {
                return Err(format!("node: {agent:?} is not listed in \"nodes\"").into());
            }
        }
        let kv = self
            .kv
            .into_iter()
            .map(|(k, v)| kv_pair(k.trim_start_matches('/'), v))
            .collect();
        let agent_node = self.node.or_else(|| nodes.first().map(|n| n.node.clone()));
        Ok(Contents {
            datacenter,
            extra_datacenters: self.datacenters,
            agent_node,
            nodes,
            entries,
            kv,
        })
    }
}

impl DataService {
    /// The instance as `/v1/health/service` returns it; `ids` catches an ID used twice on a node.
    fn entry(
        self,
        node: &Node,
        ids: &mut HashSet<(String, String)>,
    ) -> Result<HealthEntry, DataError> {
        if self.service.is_empty() {
            return Err("Service cannot be empty".into());
        }
        let id = if self.id.is_empty() {
            self.service.clone()
        } else {
            self.id
        };
        if !ids.insert((self.node, id.clone())) {
            return Err(format!("ID {id:?} is used twice on node {:?}", node.node).into());
        }
        let checks = match (self.status, self.checks) {
            (Some(_), Some(_)) => return Err("give Status or Checks, not both".into()),
            (_, Some(list)) => list
                .iter()
                .enumerate()
                .map(|(j, c)| c.check(node).map_err(|e| format!("Checks[{j}]: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
            (status, None) => status_checks(
                node,
                &id,
                &self.service,
                status.as_deref().unwrap_or("passing"),
            )?,
        };
        Ok(HealthEntry {
            node: node.clone(),
            service: AgentService {
                id,
                service: self.service,
                tags: self.tags,
                address: self.address,
                meta: self.meta,
                port: self.port,
                tagged_addresses: self.tagged_addresses,
                weights: self.weights.map(|w| Weights {
                    passing: w.passing,
                    warning: w.warning,
                }),
            },
            checks,
        })
    }
}

impl DataCheck {
    fn check(&self, node: &Node) -> Result<HealthCheck, DataError> {
        if !matches!(self.status.as_str(), "passing" | "warning" | "critical") {
            return Err(format!(
                "Status {:?} is not passing, warning or critical",
                self.status
            )
            .into());
        }
        Ok(HealthCheck {
            node: if self.node.is_empty() {
                node.node.clone()
            } else {
                self.node.clone()
            },
            check_id: self.check_id.clone(),
            name: self.name.clone(),
            status: self.status.clone(),
            notes: self.notes.clone(),
            output: self.output.clone(),
            service_id: self.service_id.clone(),
            service_name: self.service_name.clone(),
        })
    }
}

/// The checks one `Status` stands for: the node's serfHealth and one service check (or the
/// maintenance check Consul adds).
fn status_checks(
    node: &Node,
    id: &str,
    service: &str,
    status: &str,
) -> Result<Vec<HealthCheck>, DataError> {
    let (check_id, name, status) = match status {
        "passing" | "warning" | "critical" => (
            format!("service:{id}"),
            format!("Service '{service}' check"),
            status,
        ),
        "maintenance" => (
            format!("_service_maintenance:{id}"),
            "Service Maintenance Mode".into(),
            "critical",
        ),
        other => {
            return Err(format!(
                "Status {other:?} is not passing, warning, critical or maintenance"
            )
            .into())
        }
    };
    let serf = HealthCheck {
        node: node.node.clone(),
        check_id: "serfHealth".into(),
        name: "Serf Health Status".into(),
        status: "passing".into(),
        ..HealthCheck::default()
    };
    let check = HealthCheck {
        node: node.node.clone(),
        check_id,
        name,
        status: status.to_string(),
        service_id: id.to_string(),
        service_name: service.to_string(),
        ..HealthCheck::default()
    };
    Ok(vec![serf, check])
}

fn kv_pair(key: &str, v: DataKv) -> KvPair {
    let encode =
        |s: &str| (!s.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(s));
    match v {
        DataKv::Text(s) => KvPair {
            key: key.to_string(),
            value: encode(&s),
            create_index: 1,
            modify_index: 1,
            ..KvPair::default()
        },
        DataKv::Full(e) => KvPair {
            key: key.to_string(),
            value: encode(&e.value),
            flags: e.flags,
            session: e.session,
            lock_index: e.lock_index,
            create_index: e.create_index,
            modify_index: e.modify_index,
        },
    }
}

#[cfg(test)]
mod tests;
