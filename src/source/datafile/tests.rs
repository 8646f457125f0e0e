//! Unit tests of `datafile`.

use super::*;

#[test]
fn long_forms_read_and_check() {
    let f: DataFile = serde_json::from_str(
        r#"{"nodes": [{"Node": "n", "Address": "1.1.1.1"}],
            "services": [{"Node": "n", "Service": "a", "Checks": [
                {"CheckID": "serfHealth", "Status": "passing"},
                {"CheckID": "c", "Status": "warning", "Output": "slow", "ServiceID": "a"}]}],
            "kv": {"k": {"Value": "v", "Flags": 7, "ModifyIndex": 9}, "t": "text"}}"#,
    )
    .unwrap();
    let c = f.clone().into_contents().unwrap();
    assert_eq!(c.entries[0].checks[1].output, "slow");
    assert_eq!(c.entries[0].checks[0].node, "n");
    assert_eq!(c.kv[0].flags, 7);
    assert_eq!(c.kv[0].modify_index, 9);
    assert_eq!(c.kv[1].decoded(), "text");
    // The serialised form reads back the same.
    let again: DataFile = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
    assert_eq!(again, f);
}

#[test]
fn bad_long_forms_are_named() {
    let both = r#"{"nodes": [{"Node": "n", "Address": "a"}],
        "services": [{"Node": "n", "Service": "a", "Status": "passing", "Checks": []}]}"#;
    let f: DataFile = serde_json::from_str(both).unwrap();
    let e = f.into_contents().err().unwrap().0;
    assert!(e.contains("services[0]") && e.contains("not both"), "{e}");
    let bad = r#"{"nodes": [{"Node": "n", "Address": "a"}],
        "services": [{"Node": "n", "Service": "a", "Checks": [{"CheckID": "c", "Status": "up"}]}]}"#;
    let f: DataFile = serde_json::from_str(bad).unwrap();
    let e = f.into_contents().err().unwrap().0;
    assert!(
        e.contains("services[0]: Checks[0]") && e.contains("\"up\""),
        "{e}"
    );
    let e = serde_json::from_str::<DataFile>(r#"{"kv": {"k": 5}}"#).unwrap_err();
    assert!(e.to_string().contains("string or an object"), "{e}");
    let e = serde_json::from_str::<DataFile>(r#"{"kv": {"k": {"Valu": "x"}}}"#).unwrap_err();
    assert!(e.to_string().contains("Valu"), "{e}");
}
