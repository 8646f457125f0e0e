//! Unit tests of `parse`.

use super::pipeline::unquote;
use super::*;

#[test]
fn go_string_escapes() {
    assert_eq!(
        unquote(r"a\u2026b\xf0\x9f\x9a\x80\n\101").unwrap(),
        "a\u{2026}b\u{1f680}\nA"
    );
    assert!(unquote(r"\q").is_err());
}

#[test]
fn pipelines_and_declarations() {
    let p = pipeline(r#"$x := service "web" | len"#, (1, 1)).unwrap();
    assert_eq!(p.decl, ["x"]);
    assert_eq!(p.cmds.len(), 2);
    let p = pipeline("$i, $e := .Tags", (1, 1)).unwrap();
    assert_eq!(p.decl, ["i", "e"]);
    assert_eq!(p.cmds[0], [Arg::Field(vec!["Tags".into()])]);
    let p = pipeline(r#"eq (index .Meta "a") "b""#, (1, 1)).unwrap();
    assert!(matches!(&p.cmds[0][1], Arg::Sub(_)));
}
