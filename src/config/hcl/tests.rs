//! Unit tests of `hcl`.

use super::*;
use serde_json::json;

#[test]
fn consul_template_config() {
    let src = r#"
# comment
consul {
  address = "127.0.0.1:8500"
  retry { enabled = true attempts = 5 backoff = "250ms" }
}
log_level = "info" // trailing comment
wait { min = "2s" max = "10s" }
template {
  source      = "/in.hbs"
  destination = "/out.conf"
  perms       = 0600
  command     = ["nginx", "-s", "reload"]
}
/* block
comment */
template {
  contents = <<EOT
hello {{x}}
EOT
  destination = "/b"
}
"#;
    let v = parse(src).unwrap();
    assert_eq!(v["consul"]["retry"]["attempts"], json!(5));
    assert_eq!(v["wait"], json!({"min": "2s", "max": "10s"}));
    assert_eq!(v["template"][0]["perms"], json!(0o600));
    assert_eq!(
        v["template"][0]["command"],
        json!(["nginx", "-s", "reload"])
    );
    assert_eq!(v["template"][1]["contents"], json!("hello {{x}}\n"));
    assert_eq!(v["log_level"], json!("info"));
}

#[test]
fn errors_name_line_and_column() {
    let e = parse("a = \"x\"\nb = unquoted\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 5));
    assert!(e.message.contains("strings need quotes"));
    let e = parse("consul {\n address = \"x\"\n").unwrap_err();
    assert!(e.message.contains("'}'"), "{e}");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for (first, open) in [("", "a {"), ("a = ", "["), ("a ", "\"l\" ")] {
        let src = format!("{first}{}", open.repeat(20_000));
        let e = parse(&src).unwrap_err();
        assert!(e.message.contains("nest deeper than 64"), "{open}: {e}");
    }
    let ok = format!("{}{}", "a {".repeat(60), "}".repeat(60));
    assert!(parse(&ok).is_ok());
}

#[test]
fn numbers() {
    let v = parse("a = 10\nb = 0644\nc = 1.5\nd = -3\n").unwrap();
    assert_eq!(v, json!({"a": 10, "b": 0o644, "c": 1.5, "d": -3}));
}
