//! consul-template's Go templates (`.ctmpl`): converted when loaded, and by
//! `consul-render convert`; what cannot convert is named with its place.

use crate::support::{repo, Consul, Dir, Run};
use std::process::Command;

const SEED: &str = "tests/fixtures/seed/default.ctmpl";

/// Registers the seed's containers as Registrator does (the seed's data file, one critical).
fn seed_consul() -> Consul {
    let c = Consul::start();
    c.load(&std::fs::read_to_string(repo().join("tests/fixtures/seed/data.json")).unwrap());
    c
}

#[test]
fn the_seeds_default_ctmpl_renders_the_expected_config_through_the_seed_switch_line() {
    crate::support::require_pid_namespaces();
    let c = seed_consul();
    let d = Dir::new();
    std::fs::copy(repo().join(SEED), d.join("default.ctmpl")).unwrap();
    // The template reads /var/live: a private /var for this run, holding what the seed's
    // switch.sh writes (`echo -n green > /var/live`).
    let line = format!(
        "mount -t tmpfs tmpfs /var && printf green > /var/live && exec {} -consul={} -template=\"{}:nginx.conf:echo reloaded >> reloads\" -retry 30s -once",
        crate::support::BIN,
        c.addr,
        d.join("default.ctmpl").display()
    );
    let run = Run::of(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &line])
            .current_dir(d.path())
            .env("BLUE_NAME", "blue")
            .env("GREEN_NAME", "green"),
    );
    run.code(0);
    let expected =
        std::fs::read_to_string(repo().join("tests/fixtures/seed/expected-go.conf")).unwrap();
    assert_eq!(d.read("nginx.conf"), expected);
    assert_eq!(d.read("reloads"), "reloaded\n");
    let (ok, out) = crate::support::nginx_test(&d.join("nginx.conf"), d.path());
    assert!(ok, "{out}");
}

#[test]
fn go_syntax_by_extension_key_or_flag() {
    let d = Dir::new();
    d.write("data.json", r#"{"kv": {"a": "x"}}"#);
    let go = "{{ key \"a\" | toUpper }}{{/* gone */}}\n{{- \" \" -}}\n!";
    d.write("t.ctmpl", go);
    d.write("t.txt", go);
    d.run(&["-data", "data.json", "-template", "t.ctmpl:a.out", "-once"])
        .code(0);
    assert_eq!(d.read("a.out"), "X !");
    d.run(&[
        "-data",
        "data.json",
        "-template",
        "t.txt:b.out",
        "-template-syntax=go",
        "-once",
    ])
    .code(0);
    assert_eq!(d.read("b.out"), "X !");
    d.write(
        "c.hcl",
        "template {\n source = \"t.txt\"\n destination = \"c.out\"\n syntax = \"go\"\n}\n",
    );
    d.run(&["-config", "c.hcl", "-data", "data.json", "-once"])
        .code(0);
    assert_eq!(d.read("c.out"), "X !");
    // Handlebars forced on a .ctmpl: its Go comment is a handlebars error.
    d.run(&[
        "-data",
        "data.json",
        "-template",
        "t.ctmpl:d.out",
        "-template-syntax=handlebars",
        "-once",
    ])
    .code(15);
}

#[test]
fn what_cannot_convert_names_file_line_and_column() {
    let d = Dir::new();
    d.write("bad.ctmpl", "ok\n  {{ slice .A 1 }}\n");
    d.run(&["check", "-template", "bad.ctmpl:x"])
        .code(15)
        .stderr_has("bad.ctmpl:2:3")
        .stderr_has("slice");
    d.run(&["convert", "bad.ctmpl"])
        .code(15)
        .stderr_has("bad.ctmpl:2:3");
}

#[test]
fn convert_prints_writes_and_checks() {
    let d = Dir::new();
    let run = d.run(&["convert", &repo().join(SEED).to_string_lossy()]);
    run.code(0)
        .stdout_has("{{#each (service (env \"BLUE_NAME\"))}}")
        .stdout_has("{{Address}}:{{Port}}");
    d.run(&[
        "convert",
        &repo().join(SEED).to_string_lossy(),
        "-o",
        "seed.hbs",
    ])
    .code(0);
    assert_eq!(d.read("seed.hbs"), run.stdout);
    d.run(&["convert", "-check", &repo().join(SEED).to_string_lossy()])
        .code(0);
    // An unknown function converts but does not load.
    d.write("f.ctmpl", "{{ nosuchfunc 1 }}");
    d.run(&["convert", "-check", "f.ctmpl"])
        .code(15)
        .stderr_has("nosuchfunc");
}

/// consul-template's `TestTemplate_Execute` cases whose converted template renders something
/// other than their port, and why. Where the port prints a list or map with `join` or `toJSON`,
/// the converted Go template prints it as Go does: that is Go's expected output, checked here.
const DIFFERENT: &[(&str, &str, Option<&str>)] = &[
    ("bad_func", "Go refuses an undefined function when parsing; a bare name is a value here and prints nothing", None),
    ("helper_explodemap", "scratch is not provided (block parameters and partials instead)", None),
    ("func_datacenters", "the port joins the list", Some("[dc1 dc2]")),
    ("func_datacenters_ignore", "the port joins the list", Some("[dc1 dc2]")),
    ("helper_split", "the port joins the list", Some("[a b c]")),
    ("helper_mergeMap", "the port prints JSON", Some("foomap[bar:a]voomap[bar:v]zipmap[zap:b]")),
    ("helper_mergeMapWithOverride", "the port prints JSON", Some("foomap[bar:a]voomap[bar:v]zipmap[zap:b]")),
    ("helper_explode", "the port prints JSON", Some("foomap[bar:a]zipmap[zap:b]")),
    ("helper_parseJSON", "the port prints JSON", Some("map[foo:bar]")),
    ("helper_parseYAML", "the port prints JSON", Some("map[foo:bar]")),
    ("helper_parseYAMLv2", "the port prints JSON", Some("map[baz:foo foo:bar]")),
    ("helper_parseYAMLnested", "the port prints JSON", Some("map[foo:map[bar:baz baz:7]]")),
    ("helper_splitToMap", "the port prints JSON", Some("map[a:x b:y c:z]")),
];

#[derive(serde::Deserialize)]
struct GoCase {
    name: String,
    go: String,
}

/// consul-template's `TestTemplate_Execute` templates as written (Go), converted, then rendered
/// with the data, environment and expected output of their port in `ported.rs`.
#[test]
fn consul_templates_execute_cases_convert_and_render() {
    let text =
        std::fs::read_to_string(repo().join("tests/fixtures/consul-template-cases.json")).unwrap();
    let cases: Vec<GoCase> = serde_json::from_str(&text).unwrap();
    let (mut converted, mut identical, mut unported) = (0, 0, 0);
    let mut refused: Vec<(String, String)> = Vec::new();
    let mut differ: Vec<(String, String)> = Vec::new();
    for go in &cases {
        let Some(port) = crate::ported::CASES.iter().find(|c| c.name == go.name) else {
            unported += 1;
            continue;
        };
        match consul_render::gotmpl::convert(&go.go) {
            Err(e) => refused.push((go.name.clone(), e.message)),
            Ok(hbs) => {
                converted += 1;
                match crate::ported::run_case_with(port, &hbs) {
                    Ok(()) => identical += 1,
                    Err(e) => differ.push((go.name.clone(), e)),
                }
            }
        }
    }
    eprintln!(
        "{} cases: {converted} converted, {identical} rendered identically, {} refused, {unported} not ported",
        cases.len(),
        refused.len()
    );
    assert!(refused.is_empty(), "refused: {refused:?}");
    let mut got: Vec<&str> = differ.iter().map(|(n, _)| n.as_str()).collect();
    let mut known: Vec<&str> = DIFFERENT.iter().map(|(n, _, _)| *n).collect();
    got.sort_unstable();
    known.sort_unstable();
    assert_eq!(got, known, "renders differently: {differ:#?}");
    assert_eq!((converted, identical), (90, 77));
    // Where Go's own output is known, the converted template prints exactly that.
    for (name, _, go_output) in DIFFERENT {
        let Some(want) = go_output else { continue };
        let go = cases
            .iter()
            .find(|c| c.name == *name)
            .expect("case in the fixture");
        let port = crate::ported::CASES
            .iter()
            .find(|c| c.name == *name)
            .expect("ported");
        let hbs = consul_render::gotmpl::convert(&go.go).expect("converts");
        let run = crate::ported::render_case_with(port, &hbs);
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, *want),
            "{name}: {}",
            run.stderr
        );
    }
}

#[test]
fn a_variable_that_reads_dot_keeps_its_value_in_inner_blocks() {
    let d = Dir::new();
    d.write(
        "data.json",
        r#"{"nodes": [{"Node": "n", "Address": "1.1.1.1"}], "services": [
            {"Node": "n", "ID": "a1", "Service": "a", "Port": 1, "Tags": ["x", "y"]},
            {"Node": "n", "ID": "b1", "Service": "b", "Port": 2}]}"#,
    );
    d.write(
        "t.ctmpl",
        "{{- range services }}{{ $name := .Name }}{{ range service .Name }}{{ $name }}={{ .Address }}:{{ .Port }} {{ .Tags }}\n{{ end }}{{ end -}}\n{{ range service \"a\" }}{{ $s := . }}{{ range service \"b\" }}{{ $s.ID }}-{{ .ID }}{{ end }}{{ end }}",
    );
    d.run(&["-data", "data.json", "-template", "t.ctmpl:out", "-once"])
        .code(0);
    assert_eq!(d.read("out"), "a=1.1.1.1:1 [x y]\nb=1.1.1.1:2 []\na1-b1");
}
