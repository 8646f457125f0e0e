//! A JSON data file standing in for Consul (`-data FILE`), answered with Consul's semantics.
//!
//! The file lists nodes, service instances (with a health status) and KV pairs. Queries build
//! the same JSON shapes Consul's endpoints return and go through the same conversion as the
//! HTTP client, so tag filters, `?passing`, address fallback and ordering match a real agent.

use super::datafile::{DataError, LoadError};
use crate::dependency::{Dependency, HealthFilter, QueryParams};
pub use crate::source::datafile::{DataFile, DataKv, DataNode, DataService};
use crate::source::model::{self, CatalogNode, HealthEntry, KvPair, Node};
use crate::source::{Block, FetchFuture, Fetched, Source, SourceError};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

/// The data file, checked and ready to answer queries; `load`ed again when the file changes
/// (watch mode), which wakes blocking fetches.
pub struct DataSource {
    path: Option<std::path::PathBuf>,
    current: tokio::sync::watch::Sender<Arc<Snapshot>>,
    /// The fields `service` instances carry.
    fields: model::FieldSet,
}

/// One version of the file's contents.
struct Snapshot {
    generation: u64,
    catalog: Catalog,
}

/// What one version of the data file says.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    datacenter: String,
    extra_datacenters: Vec<String>,
    agent_node: Option<String>,
    nodes: Vec<Node>,
    entries: Vec<HealthEntry>,
    /// Each service's entries, in file order: a `service` query does not scan the catalog.
    by_service: HashMap<String, Vec<usize>>,
    /// Sorted by key (stably: of two keys that differ only by a leading `/`, the file's first
    /// wins): a `key` query is a binary search, a `ls`/`tree` prefix a range.
    kv: Vec<KvPair>,
}

impl DataSource {
    /// Loads and checks a data file; errors name the file and the offending entry.
    pub fn load(path: &Path) -> Result<DataSource, LoadError> {
        let catalog = Catalog::load(path)?;
        Ok(DataSource::new(Some(path.to_path_buf()), catalog))
    }

    /// Parses and checks data-file text (no file behind it).
    pub fn from_json(text: &str) -> Result<DataSource, DataError> {
        Ok(DataSource::new(None, Catalog::from_json(text)?))
    }

    fn new(path: Option<std::path::PathBuf>, catalog: Catalog) -> DataSource {
        let (current, _) = tokio::sync::watch::channel(Arc::new(Snapshot {
            generation: 1,
            catalog,
        }));
        DataSource {
            path,
            current,
            fields: model::FieldSet::default(),
        }
    }

    /// Builds `service` instances with only `fields` (what the templates can read).
    pub fn with_fields(mut self, fields: model::FieldSet) -> DataSource {
        self.fields = fields;
        self
    }

    /// The file this source reads, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads the file again. A file that no longer parses keeps the last good version and
    /// returns the error; an unchanged one changes nothing.
    pub fn reload(&self) -> Result<bool, LoadError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let catalog = Catalog::load(path)?;
        let mut changed = false;
        self.current.send_if_modified(|snap| {
            if snap.catalog == catalog {
                return false;
            }
            *snap = Arc::new(Snapshot {
                generation: snap.generation + 1,
                catalog,
            });
            changed = true;
            true
        });
        Ok(changed)
    }

    /// Answers one dependency from the current version.
    pub fn answer(&self, dep: &Dependency) -> Result<Option<Value>, SourceError> {
        self.current
            .borrow()
            .catalog
            .answer_with(dep, &self.fields.get())
    }
}

impl Source for DataSource {
    fn fetch<'a>(&'a self, dep: &'a Dependency, block: Option<Block>) -> FetchFuture<'a> {
        Box::pin(async move {
            let mut rx = self.current.subscribe();
            if let Some(b) = block {
                // Blocking: wait for a newer version of the file, at most `wait`.
                let deadline = tokio::time::Instant::now() + b.wait;
                while rx.borrow_and_update().generation <= b.index {
                    match tokio::time::timeout_at(deadline, rx.changed()).await {
                        Ok(Ok(())) => {}
                        _ => break,
                    }
                }
            }
            let snap = rx.borrow().clone();
            snap.catalog
                .answer_with(dep, &self.fields.get())
                .map(|value| Fetched {
                    value,
                    index: snap.generation,
                })
        })
    }
}

impl Catalog {
    /// Loads and checks a data file; errors name the file and the offending entry.
    pub fn load(path: &Path) -> Result<Catalog, LoadError> {
        let text =
            crate::fsread::read_text(path, crate::limits::INPUT_FILE_BYTES).map_err(|source| {
                LoadError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        Self::from_json(&text).map_err(|source| LoadError::Invalid {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses and checks data-file text.
    pub fn from_json(text: &str) -> Result<Catalog, DataError> {
        // serde reads a struct from a JSON array too (by position): only an object is a data file.
        if !text.trim_start().starts_with('{') {
            return Err("must hold one JSON object ({\"services\": …, \"kv\": …})".into());
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        let file: DataFile = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            }
        })?;
        de.end()
            .map_err(|e| format!("unexpected content after the JSON object: {e}"))?;
        Self::from_file(file)
    }

    pub fn from_file(file: DataFile) -> Result<Catalog, DataError> {
        let c = file.into_contents()?;
        let mut by_service: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in c.entries.iter().enumerate() {
            by_service
                .entry(e.service.service.clone())
                .or_default()
                .push(i);
        }
        let mut kv = c.kv;
        kv.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Catalog {
            by_service,
            datacenter: c.datacenter,
            extra_datacenters: c.extra_datacenters,
            agent_node: c.agent_node,
            nodes: c.nodes,
            entries: c.entries,
            kv,
        })
    }

    fn datacenters(&self) -> BTreeSet<String> {
        let mut set: BTreeSet<String> = self.nodes.iter().map(|n| n.datacenter.clone()).collect();
        set.insert(self.datacenter.clone());
        set.extend(self.extra_datacenters.iter().cloned());
        set
    }

    fn dc(&self, dc: &Option<String>, query: &QueryParams) -> Result<String, SourceError> {
        if let Some((k, _)) = query.first() {
            return Err(SourceError::Fatal(format!(
                "query parameter ?{k} (Consul Enterprise or peering) is not supported with -data"
            )));
        }
        let dc = dc.clone().unwrap_or_else(|| self.datacenter.clone());
        if !self.datacenters().contains(&dc) {
            return Err(SourceError::Fatal(format!(
                "No path to datacenter {dc:?} in the data file"
            )));
        }
        Ok(dc)
    }

    /// Answers one dependency at once.
    pub fn answer(&self, dep: &Dependency) -> Result<Option<Value>, SourceError> {
        self.answer_with(dep, &model::Fields::All)
    }

    /// Answers one dependency, `service` instances carrying `fields`.
    pub fn answer_with(
        &self,
        dep: &Dependency,
        fields: &model::Fields,
    ) -> Result<Option<Value>, SourceError> {
        Ok(match dep {
            Dependency::Service(q) => {
                let dc = self.dc(&q.dc, &q.query)?;
                let entries = self
                    .by_service
                    .get(&q.name)
                    .map_or(&[][..], Vec::as_slice)
                    .iter()
                    .map(|&i| &self.entries[i])
                    .filter(|e| e.node.datacenter == dc)
                    .filter(|e| q.tag.as_ref().is_none_or(|t| e.service.tags.contains(t)))
                    .filter(|e| {
                        q.filter != HealthFilter::PassingOnly || model::all_passing(&e.checks)
                    });
                Some(model::instances(entries, q, fields))
            }
            Dependency::Services { dc, query } => {
                let dc = self.dc(dc, query)?;
                let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for e in self.entries.iter().filter(|e| e.node.datacenter == dc) {
                    map.entry(e.service.service.clone())
                        .or_default()
                        .extend(e.service.tags.iter().cloned());
                }
                Some(model::services(&map))
            }
            Dependency::Nodes { dc, near, query } => {
                let dc = self.dc(dc, query)?;
                let list: Vec<Node> = self
                    .nodes
                    .iter()
                    .filter(|n| n.datacenter == dc)
                    .cloned()
                    .collect();
                Some(model::nodes(&list, near.is_some()))
            }
            Dependency::Node { name, dc, query } => {
                let dc = self.dc(dc, query)?;
                let name = name.clone().or_else(|| self.agent_node.clone());
                let node = self
                    .nodes
                    .iter()
                    .find(|n| Some(&n.node) == name.as_ref() && n.datacenter == dc);
                node.map(|n| {
                    let services = self
                        .entries
                        .iter()
                        .filter(|e| e.node.node == n.node)
                        .map(|e| (e.service.id.clone(), e.service.clone()))
                        .collect();
                    model::node(&CatalogNode {
                        node: n.clone(),
                        services,
                    })
                })
                .or_else(|| Some(model::empty_node()))
            }
            Dependency::Datacenters { .. } => Some(Value::Array(
                self.datacenters().into_iter().map(Value::String).collect(),
            )),
            Dependency::Key { path, dc, query } => {
                let dc = self.dc(dc, query)?;
                let at = self.kv.partition_point(|p| p.key < *path);
                (dc == self.datacenter)
                    .then(|| self.kv.get(at).filter(|p| p.key == *path))
                    .flatten()
                    .map(model::kv_pair)
            }
            Dependency::KeyPrefix { prefix, dc, query } => {
                let dc = self.dc(dc, query)?;
                let pairs: Vec<KvPair> = if dc == self.datacenter {
                    let from = self.kv.partition_point(|p| p.key < *prefix);
                    self.kv[from..]
                        .iter()
                        .take_while(|p| p.key.starts_with(prefix.as_str()))
                        .cloned()
                        .collect()
                } else {
                    Vec::new()
                };
                Some(model::kv_list(&pairs, prefix))
            }
            Dependency::File { .. }
            | Dependency::HealthState
            | Dependency::ServiceTags
            | Dependency::NodeServices { .. } => {
                return Err(SourceError::Fatal(format!(
                    "{dep} is not answered by the data file"
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dependency::parse_service;

    const DATA: &str = r#"{
      "datacenter": "dc1",
      "nodes": [{"Node": "n1", "Address": "10.0.0.1"}, {"Node": "n2", "Address": "10.0.0.2", "Datacenter": "dc2"}],
      "services": [
        {"Node": "n1", "ID": "b1", "Service": "blue", "Port": 8081, "Tags": ["v1"]},
        {"Node": "n1", "ID": "b2", "Service": "blue", "Address": "10.0.0.5", "Port": 8082, "Status": "critical"},
        {"Node": "n2", "ID": "b3", "Service": "blue", "Port": 8083}
      ],
      "kv": {"service/live": "blue"}
    }"#;

    #[test]
    fn answers_with_consul_semantics() {
        let d = DataSource::from_json(DATA).unwrap();
        let v = d
            .answer(&Dependency::Service(parse_service("blue").unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["Address"], "10.0.0.1");
        let v = d
            .answer(&Dependency::Service(parse_service("blue|any").unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        let v = d
            .answer(&Dependency::Service(parse_service("blue@dc2").unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(v[0]["ID"], "b3");
        let v = d
            .answer(&Dependency::Service(parse_service("v2.blue|any").unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(v.as_array().unwrap().len(), 0);
        assert!(d
            .answer(&Dependency::Service(parse_service("blue@dc9").unwrap()))
            .is_err());
        let key = Dependency::Key {
            path: "service/live".into(),
            dc: None,
            query: vec![],
        };
        assert_eq!(d.answer(&key).unwrap().unwrap()["Value"], "blue");
        let missing = Dependency::Key {
            path: "nope".into(),
            dc: None,
            query: vec![],
        };
        assert_eq!(d.answer(&missing).unwrap(), None);
    }

    /// Keys are found by binary search and prefixes by range: the file's order does not matter,
    /// and of `/a` and `a` (the same key once the `/` is dropped) the first in the file's
    /// (sorted) order answers.
    #[test]
    fn keys_and_prefixes_from_the_sorted_list() {
        let d = DataSource::from_json(
            r#"{"kv": {"b/x": "1", "ab": "4", "a/b": "3", "a": "second", "/a": "first", "a/c/d": "5"}}"#,
        )
        .unwrap();
        let key = |path: &str| {
            d.answer(&Dependency::Key {
                path: path.into(),
                dc: None,
                query: vec![],
            })
            .unwrap()
            .map(|v| v["Value"].clone())
        };
        assert_eq!(key("a"), Some("first".into()));
        assert_eq!(key("b/x"), Some("1".into()));
        assert_eq!(key("b"), None);
        assert_eq!(key("zz"), None);
        let tree = |prefix: &str| {
            let v = d
                .answer(&Dependency::KeyPrefix {
                    prefix: prefix.into(),
                    dc: None,
                    query: vec![],
                })
                .unwrap()
                .unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    format!(
                        "{}={}",
                        p["Key"].as_str().unwrap(),
                        p["Value"].as_str().unwrap()
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(tree("a/"), ["b=3", "c/d=5"]);
        assert_eq!(tree("b/"), ["x=1"]);
        assert!(tree("c/").is_empty());
    }

    #[test]
    fn bad_files_are_named() {
        let e = Catalog::from_json(r#"{"services": [{"Node": "x", "Service": "a"}]}"#)
            .unwrap_err()
            .0;
        assert!(e.contains("services[0]") && e.contains("\"x\""), "{e}");
        let e = Catalog::from_json(r#"{"nodes": [{"Node": "x", "Address": "a", "Colour": 1}]}"#)
            .unwrap_err()
            .0;
        assert!(e.contains("nodes[0]") && e.contains("Colour"), "{e}");
        let e = Catalog::from_json(r#"{"bogus": 1}"#).unwrap_err().0;
        assert!(e.contains("bogus"), "{e}");
    }
}
