//! `consul-render capture`: what templates read from Consul, written as a data file that renders
//! the same output with `-data`.
//!
//! The templates are rendered once against Consul; every dependency of the final pass is then
//! read again in a form that names whole entities (a `service` query is asked with `|any` and no
//! tag, so every instance with all its checks is kept; `services` brings each listed service's
//! instances). The file is built in its short form first (`Status`, KV text) and rendered from;
//! if that does not give byte-identical output, the long form (`Checks`, KV indexes and flags) is
//! used, and if that does not either, capture fails and names the templates.

use crate::config::Retry;
use crate::dependency::{Dependency, HealthFilter, ServiceQuery};
use crate::runner::{self, Job};
use crate::source::data::DataSource;
use crate::source::datafile::{
    DataCheck, DataFile, DataKv, DataKvEntry, DataNode, DataService, DataWeights,
};
use crate::source::{retry, Source, Sources};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

mod build;
mod record;
use build::build;
use record::record;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A dependency a data file cannot answer (another namespace, KV in another datacenter).
    #[error("{dep} cannot be captured: {why}")]
    Unsupported { dep: String, why: String },
    #[error("{0}")]
    Fetch(String),
    #[error(transparent)]
    Once(#[from] runner::OnceError),
    /// Neither form of the file renders what Consul rendered.
    #[error("the captured data does not render the same output for: {templates}; {detail}")]
    Differs { templates: String, detail: String },
}

/// A captured data file, and whether it needed the long form.
#[derive(Debug)]
pub struct Captured {
    pub file: DataFile,
    pub long_form: bool,
    /// How many dependencies the templates read.
    pub dependencies: usize,
}

/// Renders `jobs` against `source` and captures what they read; with no jobs, captures the
/// agent's whole datacenter (nodes, every service's instances, every key).
pub async fn capture(
    jobs: &[Job],
    sources: &Sources,
    timeout: Duration,
) -> Result<Captured, CaptureError> {
    let (source, policy): (&dyn Source, &Retry) = (sources, sources.retry());
    let (deps, expected) = if jobs.is_empty() {
        let none = Vec::new();
        let deps = vec![
            Dependency::Nodes {
                dc: None,
                near: None,
                query: none.clone(),
            },
            Dependency::Services {
                dc: None,
                query: none.clone(),
            },
            Dependency::KeyPrefix {
                prefix: String::new(),
                dc: None,
                query: none,
            },
        ];
        (deps, Vec::new())
    } else {
        let done = runner::once(jobs, sources, timeout).await?;
        (done.used, done.outputs)
    };
    let rec = record(source, &deps, policy).await?;
    let mut mismatch = String::new();
    for long_form in [false, true] {
        let file = build(&rec, long_form);
        match renders_the_same(jobs, &file, &expected, policy, timeout).await {
            Ok(()) => {
                return Ok(Captured {
                    file,
                    long_form,
                    dependencies: deps.len(),
                })
            }
            Err(m) => mismatch = m.0,
        }
    }
    let (templates, detail) = mismatch.split_once('\n').unwrap_or((&mismatch, ""));
    Err(CaptureError::Differs {
        templates: templates.to_string(),
        detail: detail.to_string(),
    })
}

/// How the captured file renders differently from Consul: the templates, then the detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Mismatch(pub String);

impl From<String> for Mismatch {
    fn from(s: String) -> Mismatch {
        Mismatch(s)
    }
}

/// `Err("names\ndetail")` unless `file` renders `expected` for every job.
async fn renders_the_same(
    jobs: &[Job],
    file: &DataFile,
    expected: &[String],
    policy: &Retry,
    timeout: Duration,
) -> Result<(), Mismatch> {
    if jobs.is_empty() {
        return Ok(());
    }
    let text = serde_json::to_string(file).map_err(|e| format!("\n{e}"))?;
    let data = DataSource::from_json(&text).map_err(|e| format!("\nthe file is refused: {e}"))?;
    let done = runner::once(jobs, &Sources::data(data, *policy), timeout)
        .await
        .map_err(|e| format!("\nrendering from it: {e}"))?;
    let differing: Vec<&str> = jobs
        .iter()
        .zip(done.outputs.iter().zip(expected))
        .filter(|(_, (got, want))| got != want)
        .map(|(j, _)| j.name.as_str())
        .collect();
    if differing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\nreport this: a data file should hold everything a template reads",
            differing.join(", ")
        )
        .into())
    }
}

/// Helper values read for a capture, in Consul's order, each entity once.
#[derive(Debug, Default)]
struct Recording {
    datacenter: Option<String>,
    /// Set when a template asked for the agent's own node (`node` with no name).
    agent_node: Option<String>,
    /// Node values (`ID`, `Node`, `Address`, `Datacenter`, …).
    nodes: Vec<Value>,
    node_names: HashSet<String>,
    /// `service` values with every check.
    instances: Vec<Value>,
    instance_ids: HashSet<(String, String)>,
    /// A service's own address as registered (`node` shows it without the node fallback).
    raw_addresses: HashMap<(String, String), String>,
    /// KV pairs (`Path` is the whole key).
    kv: BTreeMap<String, Value>,
    datacenters: Vec<String>,
}

fn text(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn number(v: &Value, field: &str) -> u64 {
    v.get(field).and_then(Value::as_u64).unwrap_or_default()
}

fn strings(v: &Value, field: &str) -> BTreeMap<String, String> {
    v.get(field)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn list(v: Option<Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

/// A `service` query for every instance of `name`, whatever its tags and health.
fn every_instance(name: &str, dc: &Option<String>, near: &Option<String>) -> Dependency {
    Dependency::Service(ServiceQuery {
        name: name.to_string(),
        tag: None,
        dc: dc.clone(),
        near: near.clone(),
        filter: HealthFilter::Any,
        query: Vec::new(),
    })
}

impl Recording {
    fn add_node(&mut self, node: Value) {
        let name = text(&node, "Node");
        if !name.is_empty() && self.node_names.insert(name) {
            self.nodes.push(node);
        }
    }

    fn add_instance(&mut self, v: Value) {
        let key = (text(&v, "Node"), text(&v, "ID"));
        if !self.instance_ids.insert(key) {
            return;
        }
        self.add_node(serde_json::json!({
            "ID": text(&v, "NodeID"), "Node": text(&v, "Node"), "Address": text(&v, "NodeAddress"),
            "Datacenter": text(&v, "NodeDatacenter"),
            "TaggedAddresses": v.get("NodeTaggedAddresses"), "Meta": v.get("NodeMeta"),
        }));
        self.instances.push(v);
    }
}

#[cfg(test)]
mod tests;
