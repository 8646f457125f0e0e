//! The catalog seen node by node, for changes no broad query names: a node's services
//! (`/v1/catalog/node/:node`), compared with the last answer, name the services that changed.
//! With few nodes, a blocking query per node (Consul wakes it only when that node or its
//! services change: `NodeServices` in its state store watches the node's row and its services);
//! with more, every node fetched at once (a look) for one request per node instead of one per
//! followed service.

use super::Shared;
use crate::dependency::Dependency;
use crate::source::Source as _;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use tokio::task::JoinHandle;

/// One node: its own hash (address, meta), and its services' (by ID: name, hash), from a
/// `NodeServices` answer (`model::node_digest`).
#[derive(Default, PartialEq)]
pub(super) struct NodeView {
    node: u64,
    services: BTreeMap<String, (String, u64)>,
}

/// Every node, by name.
pub(super) type Nodes = BTreeMap<String, NodeView>;

/// Fetches the node list, then every node (each request through the connection gate). None
/// when any request failed: the caller sweeps by service instead.
pub(super) async fn look(shared: &Shared) -> Option<Nodes> {
    let list = fetch(
        shared,
        Dependency::Nodes {
            dc: None,
            near: None,
            query: Vec::new(),
        },
    )
    .await?;
    let names: Vec<String> = list
        .as_array()?
        .iter()
        .filter_map(|n| n.get("Node").and_then(Value::as_str).map(str::to_string))
        .collect();
    let views = crate::runner::once::join_all(
        names
            .iter()
            .map(|name| fetch(shared, Watches::dependency(name)))
            .collect(),
    )
    .await;
    let mut out = Nodes::new();
    for (name, value) in names.into_iter().zip(views) {
        out.insert(name, view(&value?));
    }
    Some(out)
}

async fn fetch(shared: &Shared, dep: Dependency) -> Option<Value> {
    let _permit = shared.gate.permits.acquire().await.ok()?;
    shared.sources.fetch(&dep, None).await.ok()?.value
}

/// The blocking queries on each node, and which have answered since they began.
#[derive(Default)]
pub(super) struct Watches {
    tasks: HashMap<String, JoinHandle<()>>,
    /// Nodes there when the watches began whose first answer has not come: it is their
    /// baseline, not a change.
    unseen: HashSet<String>,
    /// Every node's query has answered since the watches began.
    armed: bool,
}

impl Watches {
    /// The dependency of one node's query.
    pub(super) fn dependency(name: &str) -> Dependency {
        Dependency::NodeServices {
            name: name.to_string(),
        }
    }

    pub(super) fn running(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// Whether every node's query has answered at least once since the watches began: from
    /// then on, every change to a node or its services wakes one of them.
    pub(super) fn armed(&self) -> bool {
        self.armed
    }

    /// Keeps one query per node of the node list: starts those missing, stops those
    /// whose node is gone. Returns the services of the nodes gone (their query may not answer
    /// again before it stops). Nodes that come after the watches began are changes: their
    /// first answer names their services.
    pub(super) fn keep(
        &mut self,
        shared: &Shared,
        names: &BTreeMap<String, [u8; 32]>,
        views: &mut Nodes,
    ) -> BTreeSet<String> {
        let beginning = self.tasks.is_empty();
        let mut gone = BTreeSet::new();
        self.tasks.retain(|name, task| {
            let keep = names.contains_key(name);
            if !keep {
                task.abort();
                if let Some(view) = views.remove(name) {
                    gone.extend(view.services.into_values().map(|(service, _)| service));
                }
            }
            keep
        });
        for name in names.keys() {
            if self.tasks.contains_key(name) {
                continue;
            }
            if beginning {
                self.unseen.insert(name.clone());
            }
            let task = tokio::spawn(super::watch_dependency(
                shared.clone(),
                Watches::dependency(name),
                shared.gate.ticket(),
                super::Wake::Blocking,
            ));
            self.tasks.insert(name.clone(), task);
        }
        self.unseen.retain(|n| names.contains_key(n));
        gone
    }

    /// One node's answer: the services it names, and whether this answer armed the watches
    /// (the caller refreshes every follower then: a change before a node's first answer is in
    /// that answer, not named by it).
    pub(super) fn answer(
        &mut self,
        name: &str,
        value: &Value,
        views: &mut Nodes,
    ) -> (BTreeSet<String>, bool) {
        if !self.tasks.contains_key(name) {
            return (BTreeSet::new(), false);
        }
        let new = view(value);
        let names = if self.unseen.remove(name) {
            BTreeSet::new()
        } else {
            let empty = NodeView::default();
            node_changes(views.get(name).unwrap_or(&empty), &new)
        };
        views.insert(name.to_string(), new);
        let armed_now = !self.armed && self.unseen.is_empty();
        self.armed |= armed_now;
        (names, armed_now)
    }

    /// Stops every query (the caller looks or sweeps instead).
    pub(super) fn stop(&mut self) {
        for (_, task) in self.tasks.drain() {
            task.abort();
        }
        self.unseen.clear();
        self.armed = false;
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `NodeServices` answer as a view (null, a node that does not exist: an empty one).
fn view(v: &Value) -> NodeView {
    let services = v
        .get("Services")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(id, s)| {
            let name = s.get(0)?.as_str()?.to_string();
            Some((id.clone(), (name, s.get(1)?.as_u64()?)))
        })
        .collect();
    NodeView {
        node: v.get("Node").and_then(Value::as_u64).unwrap_or(0),
        services,
    }
}

/// The services whose instances differ between two looks: added, removed or changed, and every
/// service on a node that changed itself (its address, say) or came or went.
pub(super) fn changed(old: &Nodes, new: &Nodes) -> BTreeSet<String> {
    let empty = NodeView::default();
    let mut names = BTreeSet::new();
    for name in old.keys().chain(new.keys()) {
        names.extend(node_changes(
            old.get(name).unwrap_or(&empty),
            new.get(name).unwrap_or(&empty),
        ));
    }
    names
}

/// The services whose instances differ between two views of one node.
fn node_changes(a: &NodeView, b: &NodeView) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if a == b {
        return names;
    }
    let whole = a.node != b.node;
    for (id, (service, print)) in &a.services {
        if whole || b.services.get(id).is_none_or(|(_, p)| p != print) {
            names.insert(service.clone());
        }
    }
    for (id, (service, print)) in &b.services {
        if whole || a.services.get(id).is_none_or(|(_, p)| p != print) {
            names.insert(service.clone());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Views of nodes in Consul's `/v1/catalog/node/:node` shape, through `node_digest`.
    fn nodes(list: &[Value]) -> Nodes {
        list.iter()
            .map(|v| {
                let n: crate::source::model::CatalogNode =
                    serde_json::from_value(v.clone()).unwrap();
                let digest = crate::source::model::node_digest(&n);
                (n.node.node, view(&digest))
            })
            .collect()
    }

    #[test]
    fn a_look_names_the_services_that_changed() {
        let web = |port: u64| json!({"ID": "web-1", "Service": "web", "Port": port});
        let db = json!({"ID": "db-1", "Service": "db", "Port": 5432});
        let node = |addr: &str, services: Vec<Value>| {
            let services: serde_json::Map<String, Value> = services
                .into_iter()
                .map(|s| (s["ID"].as_str().unwrap().to_string(), s))
                .collect();
            json!({"Node": {"Node": "n1", "Address": addr}, "Services": services})
        };
        let before = nodes(&[node("10.0.0.1", vec![web(80), db.clone()])]);
        let same = nodes(&[node("10.0.0.1", vec![web(80), db.clone()])]);
        assert!(changed(&before, &same).is_empty());
        let port = nodes(&[node("10.0.0.1", vec![web(81), db.clone()])]);
        assert_eq!(changed(&before, &port), BTreeSet::from(["web".to_string()]));
        let added = nodes(&[node(
            "10.0.0.1",
            vec![
                web(80),
                db.clone(),
                json!({"ID": "web-2", "Service": "web", "Port": 82}),
            ],
        )]);
        assert_eq!(
            changed(&before, &added),
            BTreeSet::from(["web".to_string()])
        );
        let gone = nodes(&[node("10.0.0.1", vec![db.clone()])]);
        assert_eq!(changed(&before, &gone), BTreeSet::from(["web".to_string()]));
        let moved = nodes(&[node("10.0.0.9", vec![web(80), db.clone()])]);
        assert_eq!(
            changed(&before, &moved),
            BTreeSet::from(["db".to_string(), "web".to_string()])
        );
        assert_eq!(
            changed(&before, &Nodes::new()),
            BTreeSet::from(["db".to_string(), "web".to_string()])
        );
        // Tags in another order are the same tags; another tag is a change.
        let tagged =
            |tags: Value| json!({"ID": "web-1", "Service": "web", "Port": 80, "Tags": tags});
        let ab = nodes(&[node(
            "10.0.0.1",
            vec![tagged(json!(["a", "b"])), db.clone()],
        )]);
        let ba = nodes(&[node(
            "10.0.0.1",
            vec![tagged(json!(["b", "a"])), db.clone()],
        )]);
        let abc = nodes(&[node("10.0.0.1", vec![tagged(json!(["a", "b", "c"])), db])]);
        assert!(changed(&ab, &ba).is_empty());
        assert_eq!(changed(&ab, &abc), BTreeSet::from(["web".to_string()]));
        // A node that does not exist answers null: no services.
        assert!(view(&Value::Null).services.is_empty());
    }
}
