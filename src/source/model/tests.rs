//! Unit tests of `model`.

use super::*;
use crate::dependency::parse_service;

fn entry(node: &str, id: &str, addr: &str, checks: &[(&str, &str)]) -> HealthEntry {
    HealthEntry {
        node: Node {
            node: node.into(),
            address: "10.0.0.9".into(),
            ..Node::default()
        },
        service: AgentService {
            id: id.into(),
            service: "web".into(),
            address: addr.into(),
            port: 80,
            ..AgentService::default()
        },
        checks: checks
            .iter()
            .map(|(cid, st)| HealthCheck {
                check_id: (*cid).into(),
                status: (*st).into(),
                ..HealthCheck::default()
            })
            .collect(),
    }
}

#[test]
fn filters_sorting_and_address_fallback() {
    let entries = vec![
        entry("n2", "b", "", &[("serfHealth", "passing")]),
        entry("n1", "z", "10.0.0.1", &[("service:z", "warning")]),
        entry("n1", "a", "10.0.0.2", &[("service:a", "critical")]),
        entry(
            "n1",
            "m",
            "10.0.0.3",
            &[("_service_maintenance:m", "critical")],
        ),
    ];
    let v = instances(&entries, &parse_service("web").unwrap(), &Fields::All);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(
        v[0]["Address"], "10.0.0.9",
        "falls back to the node address"
    );
    let v = instances(&entries, &parse_service("web|any").unwrap(), &Fields::All);
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "m", "z", "b"], "sorted by node then ID");
    assert_eq!(v[1]["Status"], "maintenance");
    let v = instances(
        &entries,
        &parse_service("web|passing,warning").unwrap(),
        &Fields::All,
    );
    assert_eq!(v.as_array().unwrap().len(), 2);
}

#[test]
fn kv_lists() {
    let pair = |k: &str, v: &str| KvPair {
        key: k.into(),
        value: Some(base64::engine::general_purpose::STANDARD.encode(v)),
        ..KvPair::default()
    };
    let pairs = vec![
        pair("app/", ""),
        pair("app/a", "1"),
        pair("app/sub/", ""),
        pair("app/sub/b", "2"),
    ];
    let all = kv_list(&pairs, "app");
    assert_eq!(all.as_array().unwrap().len(), 3);
    let ls = only_children(&all);
    assert_eq!(ls.as_array().unwrap().len(), 1);
    assert_eq!(ls[0]["Value"], "1");
    let tree = without_folders(&all);
    let keys: Vec<&str> = tree
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a", "sub/b"]);
}
