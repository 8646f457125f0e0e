//! The simulated agent's state: nodes, services, checks and KV with Consul's per-resource
//! indexes, request counters, and Go's case-insensitive JSON field lookup.

use crate::routes::Fault;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Reported indexes start here, so an index reset can go lower.
pub(crate) const BASE_INDEX: u64 = 1000;
/// Consul caps `wait` at 10 minutes.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SimNode {
    pub(crate) id: String,
    pub(crate) address: String,
    pub(crate) datacenter: String,
    pub(crate) meta: Map<String, Value>,
    pub(crate) tagged: Map<String, Value>,
    pub(crate) index: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SimService {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) tags: Vec<String>,
    pub(crate) address: String,
    pub(crate) port: u64,
    pub(crate) meta: Map<String, Value>,
    pub(crate) index: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SimCheck {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) service_id: String,
    pub(crate) notes: String,
    pub(crate) output: String,
    /// Consul's `CreateIndex` and `ModifyIndex` of the check.
    pub(crate) create: u64,
    pub(crate) modify: u64,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct SimKv {
    pub(crate) value: Vec<u8>,
    pub(crate) flags: u64,
    pub(crate) create: u64,
    pub(crate) modify: u64,
    /// The session holding the key's lock ("" when none).
    pub(crate) session: String,
    /// How many times the lock was acquired.
    pub(crate) lock_index: u64,
}

#[derive(Default)]
pub(crate) struct Data {
    pub(crate) index: u64,
    /// Subtracted from every reported index (an index reset).
    pub(crate) reset_by: u64,
    pub(crate) datacenter: String,
    pub(crate) agent_node: String,
    pub(crate) nodes: BTreeMap<String, SimNode>,
    /// (node, service id)
    pub(crate) services: BTreeMap<(String, String), SimService>,
    /// (node, check id)
    pub(crate) checks: BTreeMap<(String, String), SimCheck>,
    pub(crate) kv: BTreeMap<String, SimKv>,
    /// Last change per service name, per node, per key (deleted ones kept as tombstones).
    pub(crate) service_index: HashMap<String, u64>,
    pub(crate) node_index: HashMap<String, u64>,
    pub(crate) kv_index: BTreeMap<String, u64>,
    pub(crate) services_table: u64,
    pub(crate) nodes_table: u64,
    /// Last change to any check (added, changed, removed): `/v1/health/state/:state`'s index.
    pub(crate) checks_table: u64,
    pub(crate) sessions: BTreeMap<String, crate::sessions::SimSession>,
    pub(crate) sessions_table: u64,
    /// Keys whose lock was held by a session when it was invalidated: no acquiring until then.
    pub(crate) lock_delays: HashMap<String, std::time::Instant>,
    /// The agent's `session_ttl_min`.
    pub(crate) session_ttl_min: Duration,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) total: u64,
    /// The query strings of the last requests (at most 1,000).
    pub(crate) queries: std::collections::VecDeque<String>,
    pub(crate) per_path: BTreeMap<String, u64>,
    pub(crate) in_flight: u64,
    pub(crate) in_flight_max: u64,
}

/// Answers queued by `Sim::fault` (reads) or `Sim::fault_writes` (writes).
pub(crate) struct Queued {
    pub(crate) fault: Fault,
    pub(crate) count: u32,
    pub(crate) path: Option<String>,
    pub(crate) writes: bool,
}

pub(crate) struct Shared {
    pub(crate) data: Mutex<Data>,
    pub(crate) changed: watch::Sender<u64>,
    pub(crate) token: Option<String>,
    pub(crate) faults: Mutex<Vec<Queued>>,
    pub(crate) counters: Mutex<Counters>,
}

pub(crate) type St = Arc<Shared>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Data {
    pub(crate) fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    pub(crate) fn reported(&self, index: u64) -> u64 {
        index.saturating_sub(self.reset_by).max(1)
    }

    pub(crate) fn service_names_on(&self, node: &str) -> Vec<String> {
        self.services
            .iter()
            .filter(|((n, _), _)| n == node)
            .map(|(_, s)| s.name.clone())
            .collect()
    }

    pub(crate) fn touch_node(&mut self, node: &str, idx: u64) {
        self.node_index.insert(node.to_string(), idx);
        self.nodes_table = idx;
        for name in self.service_names_on(node) {
            self.service_index.insert(name, idx);
        }
    }
}

// ----- case-insensitive request bodies (Go's JSON decoding) -----

pub(crate) fn field<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

pub(crate) fn text(obj: &Value, name: &str) -> String {
    match field(obj, name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

pub(crate) fn map(obj: &Value, name: &str) -> Map<String, Value> {
    field(obj, name)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn bad_request(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, msg.to_string()).into_response()
}
