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

mod values;
pub use values::{
    empty_node, hash_of, instances, kv_list, kv_pair, node, node_digest, nodes, object,
    only_children, services, without_folders,
};

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

    /// Whether instances built with these fields serve templates that read `other`.
    pub fn covers(&self, other: &Fields) -> bool {
        match (self, other) {
            (Fields::All, _) => true,
            (Fields::Only(_), Fields::All) => false,
            (Fields::Only(a), Fields::Only(b)) => b.is_subset(a),
        }
    }
}

/// The fields a source builds instances with, shared with the runner, which widens them when a
/// reload brings templates that read more.
#[derive(Debug, Clone, Default)]
pub struct FieldSet(std::sync::Arc<std::sync::RwLock<Fields>>);

impl FieldSet {
    pub fn new(fields: Fields) -> FieldSet {
        FieldSet(std::sync::Arc::new(std::sync::RwLock::new(fields)))
    }

    pub fn get(&self) -> std::sync::RwLockReadGuard<'_, Fields> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Widens the set to cover `wanted` as well; true when it grew (values built before are
    /// missing fields the templates now read).
    pub fn widen(&self, wanted: Fields) -> bool {
        let mut fields = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if fields.covers(&wanted) {
            return false;
        }
        *fields = std::mem::take(&mut *fields).union(wanted);
        true
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

#[cfg(test)]
mod tests;
