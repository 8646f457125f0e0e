//! What each dependency asks of Consul: its endpoint and query, and how the answer becomes a
//! helper value (through `model`, like the data file's).

use super::{Answer, Body, ConsulSource, Failed, BODY_CHARS, REQUEST_TIMEOUT};
use crate::dependency::{Dependency, HealthFilter, QueryParams};
use crate::source::model::{self, CatalogNode, HealthEntry, KvPair, Node};
use crate::source::{Block, Fetched};
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

impl ConsulSource {
    pub(super) async fn try_fetch(
        &self,
        dep: &Dependency,
        block: Option<Block>,
    ) -> Result<Fetched, Failed> {
        match dep {
            Dependency::Service(q) => {
                let mut query = common(&q.dc, q.near.as_ref(), &q.query);
                if let Some(t) = &q.tag {
                    query.push(("tag".into(), t.clone()));
                }
                if q.filter == HealthFilter::PassingOnly {
                    query.push(("passing".into(), String::new()));
                }
                let a = self
                    .get(&["health", "service", &q.name], query, block)
                    .await?;
                let entries: Vec<HealthEntry> = ok_json(&a)?;
                Ok(fetched(
                    Some(model::instances(&entries, q, &self.fields.get())),
                    a.index,
                ))
            }
            Dependency::Services { dc, query } => {
                let a = self
                    .get(&["catalog", "services"], common(dc, None, query), block)
                    .await?;
                let map: BTreeMap<String, Option<Vec<String>>> = ok_json(&a)?;
                let map = map
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect();
                Ok(fetched(Some(model::services(&map)), a.index))
            }
            Dependency::Nodes { dc, near, query } => {
                let a = self
                    .get(
                        &["catalog", "nodes"],
                        common(dc, near.as_ref(), query),
                        block,
                    )
                    .await?;
                let nodes: Vec<Node> = ok_json(&a)?;
                Ok(fetched(Some(model::nodes(&nodes, near.is_some())), a.index))
            }
            Dependency::Node { name, dc, query } => {
                let name = match name {
                    Some(n) => n.clone(),
                    None => self.agent_node().await?,
                };
                let a = self
                    .get(&["catalog", "node", &name], common(dc, None, query), block)
                    .await?;
                let node: Option<CatalogNode> = ok_json(&a)?;
                let value = node.as_ref().map_or_else(model::empty_node, model::node);
                Ok(fetched(Some(value), a.index))
            }
            Dependency::HealthState => {
                let a = self
                    .get(&["health", "state", "any"], Vec::new(), block)
                    .await?;
                // Only what the change detector compares: the checks' other fields (output,
                // notes, definitions) would be most of the memory for thousands of checks.
                let checks: Vec<CheckState> = ok_json(&a)?;
                Ok(fetched(
                    Some(serde_json::to_value(checks).unwrap_or_default()),
                    a.index,
                ))
            }
            Dependency::Datacenters { ignore_failing } => {
                let a = self
                    .get(&["catalog", "datacenters"], Vec::new(), None)
                    .await?;
                let mut dcs: Vec<String> = ok_json(&a)?;
                dcs.sort();
                if *ignore_failing {
                    // consul-template asks each for its services (consistent) and keeps those
                    // that answer.
                    let mut answering = Vec::with_capacity(dcs.len());
                    for dc in dcs {
                        let q = vec![
                            ("dc".to_string(), dc.clone()),
                            ("consistent".to_string(), String::new()),
                        ];
                        if self
                            .send(&Body::get(), &["catalog", "services"], &q, REQUEST_TIMEOUT)
                            .await
                            .is_ok_and(|(a, _)| a.status.is_success())
                        {
                            answering.push(dc);
                        }
                    }
                    dcs = answering;
                }
                Ok(fetched(Some(Value::from(dcs)), a.index))
            }
            Dependency::Key { path, dc, query } => {
                let segments: Vec<&str> = std::iter::once("kv").chain(path.split('/')).collect();
                let a = self.get(&segments, common(dc, None, query), block).await?;
                if a.status == StatusCode::NOT_FOUND {
                    return Ok(fetched(None, a.index));
                }
                let pairs: Vec<KvPair> = ok_json(&a)?;
                text_only(&pairs, &a.path)?;
                Ok(fetched(pairs.first().map(model::kv_pair), a.index))
            }
            Dependency::KeyPrefix { prefix, dc, query } => {
                let segments: Vec<&str> = std::iter::once("kv").chain(prefix.split('/')).collect();
                let mut q = common(dc, None, query);
                q.push(("recurse".into(), String::new()));
                let a = self.get(&segments, q, block).await?;
                let pairs: Vec<KvPair> = if a.status == StatusCode::NOT_FOUND {
                    Vec::new()
                } else {
                    ok_json(&a)?
                };
                text_only(&pairs, &a.path)?;
                Ok(fetched(Some(model::kv_list(&pairs, prefix)), a.index))
            }
            Dependency::File { .. } => Err(Failed::new(
                false,
                format!("{dep} is not a Consul dependency"),
            )),
        }
    }
}

/// Refuses KV values that are not UTF-8 text, naming the key (not worth a retry).
fn text_only(pairs: &[KvPair], path: &str) -> Result<(), Failed> {
    for p in pairs {
        p.check_text()
            .map_err(|why| Failed::new(false, format!("GET {path}: {why}")))?;
    }
    Ok(())
}

fn common(
    dc: &Option<String>,
    near: Option<&String>,
    extra: &QueryParams,
) -> Vec<(String, String)> {
    let mut q = Vec::new();
    if let Some(dc) = dc {
        q.push(("dc".into(), dc.clone()));
    }
    if let Some(n) = near {
        q.push(("near".into(), n.clone()));
    }
    q.extend(extra.iter().cloned());
    q
}

fn fetched(value: Option<Value>, index: u64) -> Fetched {
    Fetched { value, index }
}

/// A 200 answer's JSON, or why not: Consul's status and body, or a body that is not the JSON
/// this endpoint returns (a proxy in the way, a broken agent).
pub(super) fn ok_json<T: DeserializeOwned>(a: &Answer) -> Result<T, Failed> {
    if a.status != StatusCode::OK {
        let body = String::from_utf8_lossy(&a.body);
        let body: String = body.trim().chars().take(BODY_CHARS).collect();
        let code = a.status.as_u16();
        let retryable = code == 429 || a.status.is_server_error();
        return Err(Failed::new(
            retryable,
            format!("GET {}: {} {body}", a.path, code)
                .trim_end()
                .to_string(),
        ));
    }
    serde_json::from_slice(&a.body).map_err(|e| {
        let start: String = String::from_utf8_lossy(&a.body).chars().take(60).collect();
        Failed::new(
            true,
            format!(
                "GET {}: the answer is not Consul's JSON ({e}); it starts {start:?}",
                a.path
            ),
        )
    })
}

/// One check of `/v1/health/state/any`, as the change detector reads it (any may be null).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CheckState {
    #[serde(default)]
    node: Option<String>,
    #[serde(rename = "CheckID", default)]
    check_id: Option<String>,
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    modify_index: Option<u64>,
}
