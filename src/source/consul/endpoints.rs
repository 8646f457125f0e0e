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
            Dependency::NodeServices { name } => {
                let a = self
                    .get(&["catalog", "node", name], Vec::new(), block)
                    .await?;
                let node: Option<CatalogNode> = ok_json(&a)?;
                let value = node.as_ref().map_or(Value::Null, model::node_digest);
                Ok(fetched(Some(value), a.index))
            }
            Dependency::HealthState => {
                let a = self
                    .get(&["health", "state", "any"], Vec::new(), block)
                    .await?;
                // Folded as it is read into a number per service (`check_digests`): the
                // change detector compares these, and thousands of checks are never held.
                let digests = ok_parse(&a, check_digests)?;
                Ok(fetched(Some(digest_value(digests)), a.index))
            }
            Dependency::ServiceTags => {
                let a = self
                    .get(&["catalog", "services"], Vec::new(), block)
                    .await?;
                let digests = ok_parse(&a, tag_digests)?;
                Ok(fetched(Some(digest_value(digests)), a.index))
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
    ok_parse(a, |body| serde_json::from_slice(body))
}

/// A 200 answer read by `parse`, or why not (as `ok_json`).
fn ok_parse<T>(
    a: &Answer,
    parse: impl FnOnce(&[u8]) -> serde_json::Result<T>,
) -> Result<T, Failed> {
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
    parse(&a.body).map_err(|e| {
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

/// `/v1/health/state/any` as one number per service: the wrapping sum of a hash of each of its
/// checks' node, ID and modify index, so that a check added, changed or removed changes its
/// service's number. Node checks (no service) are left out. Read check by check: the list
/// itself is never held.
fn check_digests(body: &[u8]) -> serde_json::Result<BTreeMap<String, u64>> {
    struct Fold(BTreeMap<String, u64>);
    impl<'de> serde::de::Visitor<'de> for Fold {
        type Value = BTreeMap<String, u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of checks")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(self.0)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            mut self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            while let Some(c) = seq.next_element::<CheckState>()? {
                let Some(name) = c.service_name.filter(|n| !n.is_empty()) else {
                    continue;
                };
                let check = model::hash_of((c.node, c.check_id, c.modify_index));
                let sum = match self.0.get_mut(name.as_ref()) {
                    Some(sum) => sum,
                    None => self.0.entry(name.into_owned()).or_default(),
                };
                *sum = sum.wrapping_add(check);
            }
            Ok(self.0)
        }
    }
    whole(body, |de| {
        serde::Deserializer::deserialize_any(de, Fold(BTreeMap::new()))
    })
}

/// A number per name, as the change detector reads it (`watchers::detect::digests`).
fn digest_value(digests: BTreeMap<String, u64>) -> Value {
    Value::Object(
        digests
            .into_iter()
            .map(|(name, d)| (name, Value::from(d)))
            .collect(),
    )
}

/// `/v1/catalog/services` (name → tags) as a hash of each service's tags, sorted and without
/// repeats as the `services` helper gives them. Read entry by entry.
fn tag_digests(body: &[u8]) -> serde_json::Result<BTreeMap<String, u64>> {
    struct Fold;
    impl<'de> serde::de::Visitor<'de> for Fold {
        type Value = BTreeMap<String, u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of service names to tags")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            use std::borrow::Cow;
            let mut out = BTreeMap::new();
            while let Some((name, tags)) =
                map.next_entry::<Cow<'de, str>, Option<Vec<Cow<'de, str>>>>()?
            {
                let mut tags = tags.unwrap_or_default();
                tags.sort();
                tags.dedup();
                out.insert(name.into_owned(), model::hash_of(&tags));
            }
            Ok(out)
        }
    }
    whole(body, |de| serde::Deserializer::deserialize_map(de, Fold))
}

/// `body` read by `read`, which must take all of it.
fn whole<'de, T>(
    body: &'de [u8],
    read: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
    ) -> serde_json::Result<T>,
) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = read(&mut de)?;
    de.end().map(|()| value)
}

/// One check of `/v1/health/state/any`, as the change detector reads it (any may be null).
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CheckState<'a> {
    #[serde(default, borrow)]
    node: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "CheckID", default, borrow)]
    check_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    service_name: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    modify_index: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::{check_digests, tag_digests};
    use std::collections::BTreeMap;

    fn digests(text: &str) -> BTreeMap<String, u64> {
        check_digests(text.as_bytes()).expect("checks")
    }

    #[test]
    fn check_digests_change_with_any_check_of_their_service() {
        let old = digests(
            r#"[{"Node": "n", "CheckID": "a", "ServiceName": "web", "ModifyIndex": 5},
                {"Node": "n", "CheckID": "b", "ServiceName": "db", "ModifyIndex": 6},
                {"Node": "m", "CheckID": "b", "ServiceName": "db", "ModifyIndex": 6, "Output": "x\"y"},
                {"Node": "n", "CheckID": "serfHealth", "ServiceName": "", "ModifyIndex": 1}]"#,
        );
        assert_eq!(old.keys().collect::<Vec<_>>(), ["db", "web"]);
        // Order does not matter.
        let same = digests(
            r#"[{"Node": "m", "CheckID": "b", "ServiceName": "db", "ModifyIndex": 6},
                {"Node": "n", "CheckID": "b", "ServiceName": "db", "ModifyIndex": 6},
                {"Node": "n", "CheckID": "a", "ServiceName": "web", "ModifyIndex": 5}]"#,
        );
        assert_eq!(old, same);
        // A modify index moved (web), a check gone (db), a service with an escaped name.
        let new = digests(
            r#"[{"Node": "n", "CheckID": "a", "ServiceName": "web", "ModifyIndex": 9},
                {"Node": "n", "CheckID": "b", "ServiceName": "db", "ModifyIndex": 6},
                {"Node": "n", "CheckID": "c", "ServiceName": "api\u002dv2", "ModifyIndex": 9}]"#,
        );
        assert_ne!(old["web"], new["web"]);
        assert_ne!(old["db"], new["db"]);
        assert!(new.contains_key("api-v2"));
        // Consul answers null for no checks on some versions; nothing else is a list.
        assert!(digests("null").is_empty());
        assert!(check_digests(b"{}").is_err());
        assert!(check_digests(b"[] []").is_err());
    }

    #[test]
    fn tag_digests_change_with_the_tags_not_their_order() {
        let tags = |text: &str| tag_digests(text.as_bytes()).expect("tags");
        let old = tags(r#"{"web": ["b", "a"], "db": [], "consul": null}"#);
        assert_eq!(old.keys().collect::<Vec<_>>(), ["consul", "db", "web"]);
        let new = tags(r#"{"web": ["a", "b", "a"], "db": ["primary"], "consul": []}"#);
        assert_eq!(old["web"], new["web"]);
        assert_eq!(old["consul"], new["consul"]);
        assert_ne!(old["db"], new["db"]);
        assert!(tag_digests(b"[]").is_err());
    }
}
