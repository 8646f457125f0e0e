//! Unit tests of `capture`.

use super::record::supported;
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
    assert!(matches!(&c.file.kv["app/k"], DataKv::Full(e) if e.modify_index == 42 && e.flags == 3));
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
