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

/// How many `service` queries a `services` dependency sends at once.
const CONCURRENT: usize = 32;

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

async fn fetch(
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
async fn fetch_all(
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
async fn record(
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
            Dependency::File { .. } => {}
        }
    }
    Ok(rec)
}

/// One `node` answer: the node, and each of its services with its checks.
async fn record_node(
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
fn supported(dep: &Dependency, agent_dc: Option<&str>) -> Result<(), CaptureError> {
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
        Dependency::Datacenters { .. } | Dependency::File { .. } => return Ok(()),
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

/// The data file for a recording: short form (`Status`, KV text), or long (`Checks`, KV
/// indexes and flags).
fn build(rec: &Recording, long_form: bool) -> DataFile {
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

fn service(rec: &Recording, v: &Value, long_form: bool) -> DataService {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::testing::{job, NO_RETRY as RETRY};

    const DATA: &str = r#"{
      "nodes": [{"Node": "n1", "Address": "10.0.0.1"}, {"Node": "n2", "Address": "10.0.0.2"}],
      "services": [
        {"Node": "n1", "ID": "w1", "Service": "web", "Port": 1, "Tags": ["b", "a"]},
        {"Node": "n2", "ID": "w2", "Service": "web", "Port": 2, "Status": "critical", "Address": "10.9.9.9"},
        {"Node": "n2", "ID": "db", "Service": "db", "Port": 3}
      ],
      "kv": {"app/colour": "blue", "app/size": "3", "other": "x"}
    }"#;

    #[tokio::test]
    async fn keeps_only_what_the_template_reads_and_renders_the_same() {
        let source = DataSource::from_json(DATA).unwrap();
        let jobs = [job(
            r#"{{#each (service "web")}}{{Address}}:{{Port}} {{/each}}{{key "app/colour"}}"#,
        )];
        let c = capture(&jobs, &Sources::data(source, RETRY), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!c.long_form);
        // Every instance of web (the critical one too), not db; one key.
        let ids: Vec<&str> = c.file.services.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["w1", "w2"]);
        assert_eq!(c.file.services[1].status.as_deref(), Some("critical"));
        assert_eq!(c.file.services[1].address, "10.9.9.9");
        assert_eq!(c.file.services[0].address, "");
        assert_eq!(c.file.kv.keys().collect::<Vec<_>>(), ["app/colour"]);
    }

    #[tokio::test]
    async fn index_fields_switch_to_the_long_form() {
        let data = r#"{"nodes": [{"Node": "n", "Address": "1.1.1.1"}],
            "kv": {"app/k": {"Value": "v", "ModifyIndex": 42, "Flags": 3}}}"#;
        let source = DataSource::from_json(data).unwrap();
        let jobs = [job(
            r#"{{#each (tree "app")}}{{Key}}={{Value}}@{{ModifyIndex}}/{{Flags}}{{/each}}"#,
        )];
        let c = capture(&jobs, &Sources::data(source, RETRY), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(c.long_form);
        assert!(
            matches!(&c.file.kv["app/k"], DataKv::Full(e) if e.modify_index == 42 && e.flags == 3)
        );
    }

    #[tokio::test]
    async fn no_template_takes_everything() {
        let source = DataSource::from_json(DATA).unwrap();
        let c = capture(&[], &Sources::data(source, RETRY), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(c.file.nodes.len(), 2);
        assert_eq!(c.file.services.len(), 3);
        assert_eq!(c.file.kv.len(), 3);
    }

    #[test]
    fn refuses_what_a_data_file_cannot_hold() {
        let dep = Dependency::Key {
            path: "k".into(),
            dc: Some("dc2".into()),
            query: Vec::new(),
        };
        let e = supported(&dep, Some("dc1")).unwrap_err();
        assert!(e.to_string().contains("agent's datacenter"), "{e}");
        let dep = Dependency::Services {
            dc: None,
            query: vec![("ns".into(), "team".into())],
        };
        assert!(supported(&dep, Some("dc1")).is_err());
    }
}
