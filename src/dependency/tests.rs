//! Unit tests of `dependency`.

use super::*;

#[test]
fn service_forms() {
    let q = parse_service("web").unwrap();
    assert_eq!(
        (q.name.as_str(), q.tag.as_deref(), q.filter.clone()),
        ("web", None, HealthFilter::PassingOnly)
    );
    let q = parse_service("a.b.web@dc2~node1|any").unwrap();
    assert_eq!(q.tag.as_deref(), Some("a.b"));
    assert_eq!(q.name, "web");
    assert_eq!(q.dc.as_deref(), Some("dc2"));
    assert_eq!(q.near.as_deref(), Some("node1"));
    assert_eq!(q.filter, HealthFilter::Any);
    let q = parse_service("v=1:x.web|warning,passing").unwrap();
    assert_eq!(q.tag.as_deref(), Some("v=1:x"));
    assert_eq!(
        q.filter,
        HealthFilter::Statuses(vec![Status::Passing, Status::Warning])
    );
    let q = parse_service("web?ns=team&partition=p").unwrap();
    assert_eq!(
        q.query,
        vec![
            ("ns".into(), "team".into()),
            ("partition".into(), "p".into())
        ]
    );
}

proptest::proptest! {
    /// The plain-name shortcut gives what the grammar gives, for names and near-names alike.
    #[test]
    fn a_plain_service_name_parses_as_the_grammar_says(name in "[A-Za-z0-9_-]{0,12}|[A-Za-z0-9_.@~|?=-]{0,12}") {
        let fast = parse_service(&name).map_err(|e| e.to_string());
        let full = parse_service_query(&name).map_err(|e| e.to_string());
        proptest::prop_assert_eq!(fast, full);
    }
}

#[test]
fn service_errors() {
    assert!(parse_service("").is_err());
    assert!(parse_service("web|bogus")
        .unwrap_err()
        .to_string()
        .contains("bogus"));
    assert!(parse_service("web?color=red")
        .unwrap_err()
        .to_string()
        .contains("color"));
    assert!(parse_service("we b").is_err());
    assert!(parse_service("web?peer=a&sameness-group=b").is_err());
}

#[test]
fn kv_node_catalog() {
    assert_eq!(
        parse_kv("key", "/service/live@dc1").unwrap(),
        ("service/live".into(), Some("dc1".into()), vec![])
    );
    assert_eq!(parse_kv("key", "a/b").unwrap().0, "a/b");
    assert_eq!(
        parse_node("node.example.com@dc1").unwrap(),
        Dependency::Node {
            name: Some("node.example.com".into()),
            dc: Some("dc1".into()),
            query: vec![]
        }
    );
    assert_eq!(
        parse_node("").unwrap(),
        Dependency::Node {
            name: None,
            dc: None,
            query: vec![]
        }
    );
    assert_eq!(
        parse_catalog("nodes", "@dc1~n1", true).unwrap(),
        (Some("dc1".into()), Some("n1".into()), vec![])
    );
    assert!(parse_catalog("services", "~n1", false).is_err());
}

#[test]
fn display_names() {
    let d = Dependency::Service(parse_service("blue.web@dc1").unwrap());
    assert_eq!(d.to_string(), "health.service(blue.web@dc1|passing)");
    let (path, dc, query) = parse_kv("key", "a/b").unwrap();
    assert_eq!(
        Dependency::Key { path, dc, query }.to_string(),
        "kv.block(a/b)"
    );
}
