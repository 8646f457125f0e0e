//! The catalog seen node by node, for changes no broad query names: every node's services
//! (`/v1/catalog/node/:node`), fetched at once and compared with the last look, name the
//! services that changed for one request per node instead of one per followed service.

use super::Shared;
use crate::dependency::Dependency;
use crate::source::Source as _;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One node: its own fingerprint (address, meta), and its services' (by ID: name, fingerprint).
#[derive(Default, PartialEq)]
pub(super) struct NodeView {
    node: [u8; 32],
    services: BTreeMap<String, (String, [u8; 32])>,
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
            .map(|name| {
                fetch(
                    shared,
                    Dependency::Node {
                        name: Some(name.clone()),
                        dc: None,
                        query: Vec::new(),
                    },
                )
            })
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

fn view(v: &Value) -> NodeView {
    let services = v
        .get("Services")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let id = s.get("ID")?.as_str()?.to_string();
            let name = s.get("Service")?.as_str()?.to_string();
            Some((id, (name, super::fingerprint(Some(s)))))
        })
        .collect();
    NodeView {
        node: super::fingerprint(v.get("Node")),
        services,
    }
}

/// The services whose instances differ between two looks: added, removed or changed, and every
/// service on a node that changed itself (its address, say) or came or went.
pub(super) fn changed(old: &Nodes, new: &Nodes) -> BTreeSet<String> {
    let empty = NodeView::default();
    let mut names = BTreeSet::new();
    for name in old.keys().chain(new.keys()) {
        let (a, b) = (
            old.get(name).unwrap_or(&empty),
            new.get(name).unwrap_or(&empty),
        );
        if a == b {
            continue;
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
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nodes(list: &[Value]) -> Nodes {
        list.iter()
            .map(|v| (v["Node"]["Node"].as_str().unwrap().to_string(), view(v)))
            .collect()
    }

    #[test]
    fn a_look_names_the_services_that_changed() {
        let web = |port: u64| json!({"ID": "web-1", "Service": "web", "Port": port});
        let db = json!({"ID": "db-1", "Service": "db", "Port": 5432});
        let node = |addr: &str, services: Vec<Value>| json!({"Node": {"Node": "n1", "Address": addr}, "Services": services});
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
    }
}
