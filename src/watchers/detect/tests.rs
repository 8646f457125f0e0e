use super::*;
use serde_json::json;

#[test]
fn an_unnamed_change_refreshes_the_most_recently_changed_first() {
    let mut r = Registry::default();
    for (name, index) in [("old", 5), ("newest", 90), ("middle", 40)] {
        let dep = Dependency::Service(crate::dependency::parse_service(name).unwrap());
        let f = Arc::new(Follower::new(dep));
        f.index.store(index, Ordering::Relaxed);
        r.services.entry(name.into()).or_default().push(f);
    }
    let order: Vec<u64> = r
        .sweep_order()
        .iter()
        .map(|f| f.index.load(Ordering::Relaxed))
        .collect();
    assert_eq!(order, [90, 40, 5]);
    // Past the newest, the least recently fetched go first.
    for i in 0..SWEEP_NEWEST as u64 + 2 {
        let dep = Dependency::Service(crate::dependency::parse_service("x").unwrap());
        let f = Arc::new(Follower::new(dep));
        f.index.store(1000 + i, Ordering::Relaxed);
        r.services.entry("x".into()).or_default().push(f);
    }
    r.services["old"][0].fetched.store(7, Ordering::Relaxed);
    r.services["newest"][0].fetched.store(9, Ordering::Relaxed);
    r.services["middle"][0].fetched.store(8, Ordering::Relaxed);
    let tail: Vec<u64> = r
        .sweep_order()
        .iter()
        .skip(SWEEP_NEWEST)
        .map(|f| f.index.load(Ordering::Relaxed))
        .collect();
    assert_eq!(tail, [1001, 1000, 5, 40, 90]);
}

#[test]
fn diffs_name_what_changed() {
    // The health and catalog queries' shape: a number per service (`endpoints`).
    let old = digests(&json!({"web": 5, "db": 6}));
    let new = digests(&json!({"web": 9, "api": 9}));
    assert_eq!(changed_names(&old, &new), ["api", "db", "web"]);
    let a: BTreeMap<String, i32> = [("x".into(), 1), ("y".into(), 2)].into();
    let b: BTreeMap<String, i32> = [("x".into(), 1), ("y".into(), 3), ("z".into(), 0)].into();
    assert_eq!(changed_names(&a, &b), ["y", "z"]);
    // A KV list.
    let kv = fingerprints(&json!([{"Path": "app/x", "Value": "1"}]), "Path");
    assert!(kv.contains_key("app/x"));
    let mut r = Registry::default();
    for k in ["app/a/color", "app/b/path", "app/c"] {
        r.keys.insert(k.into(), Vec::new());
    }
    assert_eq!(r.key_prefix().as_deref(), Some("app/"));
    r.keys.insert("other".into(), Vec::new());
    assert_eq!(r.key_prefix().as_deref(), Some(""));
}
