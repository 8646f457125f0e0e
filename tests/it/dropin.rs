//! consul-template's semantics that existing deployments rely on, through the binary: missing
//! values, nested queries, block parameters, failures that end the run, exec signals.

use crate::support::{wait_until, Dir};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

const DATA: &str = r#"{"nodes": [{"Node": "n1", "Address": "10.0.0.1"}],
  "services": [{"Node": "n1", "ID": "web-1", "Service": "web", "Port": 80, "Meta": {"version": "2"}},
               {"Node": "n1", "ID": "web-2", "Service": "web", "Port": 81}],
  "kv": {"multipass-foo": "multipass-bar", "multipass-bar": "zip", "app/a": "1", "app/b": "2"}}"#;

fn setup(template: &str) -> Dir {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", template);
    d
}

fn render(d: &Dir) -> crate::support::Run {
    d.run(&["-data=data.json", "-template=in.hbs:out", "-once"])
}

#[test]
fn a_missing_value_renders_empty_and_is_an_error_only_with_error_on_missing_key() {
    let d = setup("{{#each (service \"web\")}}[{{ServiceMeta.version}}]{{/each}}|{{this.Nope}}|{{Data.Foo}}|\n");
    render(&d).code(0);
    assert_eq!(d.read("out"), "[2][]|||\n");
    d.write(
        "strict.hbs",
        "{{#each (service \"web\")}}[{{ServiceMeta.version}}]{{/each}}\n",
    );
    d.write(
        "c.hcl",
        "template {\n  source = \"strict.hbs\"\n  destination = \"out2\"\n  error_on_missing_key = true\n}\n",
    );
    d.run(&["-config=c.hcl", "-data=data.json", "-once"])
        .code(14)
        .stderr_has("no value for ServiceMeta.version (error_on_missing_key is set)")
        .stderr_has("strict.hbs:1:");
}

#[test]
fn nested_kv_queries_take_another_pass_instead_of_failing() {
    // consul-template's TestRunner_Start "multipass" case.
    let d = setup("{{key (key \"multipass-foo\")}}|{{keyExists (key \"nope-inner\")}}|{{keyOrDefault (keyOrDefault \"none\" \"\") \"d\"}}|{{#each (tree (key \"multipass-foo\"))}}x{{/each}}\n");
    let run = render(&d);
    // "nope-inner" never exists: once mode names it (it is the only thing missing).
    run.code(14).stderr_has("key \"nope-inner\" does not exist");
    d.write("in.hbs", "{{key (key \"multipass-foo\")}}|{{keyOrDefault (keyOrDefault \"none\" \"\") \"d\"}}|{{keyExists \"\"}}|{{file \"\"}}\n");
    render(&d).code(0);
    assert_eq!(d.read("out"), "zip|d|false|\n");
}

#[test]
fn block_parameters_win_over_helpers_of_the_same_name() {
    let d = setup("{{#each (tree \"app\") as |key|}}{{key.Key}}={{key.Value}} {{/each}}|{{#each (split \",\" \"a,b\") as |key idx|}}{{key}}{{idx}}{{/each}}|{{#with (key \"app/a\") as |file|}}{{file}}{{/with}}\n");
    render(&d).code(0);
    assert_eq!(d.read("out"), "a=1 b=2 |a0b1|1\n");
}

#[test]
fn unknown_helpers_are_load_errors_and_bare_names_are_values() {
    let d = setup(
        "{{nosuch 1}}{{#nosuchblock}}{{/nosuchblock}}{{upper (nosuchsub \"x\")}}{{bare_unknown}}\n",
    );
    let run = render(&d);
    run.code(15)
        .stderr_has("unknown helper \"nosuch\"")
        .stderr_has("unknown helper \"nosuchblock\"")
        .stderr_has("unknown helper \"nosuchsub\"");
    assert!(
        !run.stderr.contains("helper \"bare_unknown\""),
        "{}",
        run.stderr
    );
    d.run(&["check", "-template=in.hbs:out"])
        .code(15)
        .stderr_has("unknown helper \"nosuch\"");
}

#[test]
fn datacenters_true_unknown_nodes_and_dc_only_kv_queries_as_consul_template() {
    let d = setup("{{join \",\" (datacenters true)}}|{{#with (node \"nope\")}}found{{len Services}}{{else}}none{{/with}}\n");
    render(&d).code(0);
    assert_eq!(d.read("out"), "dc1|found0\n");
    for q in ["ls", "tree", "key"] {
        d.write("in.hbs", &format!("{{{{{q} \"@dc1\"}}}}\n"));
        render(&d).code(14).stderr_has("invalid");
    }
}

#[test]
fn function_denylist_and_its_old_name_refuse_a_helper_at_load() {
    let d = setup("{{env \"HOME\"}}{{file \"/etc/hostname\"}}\n");
    for key in ["function_denylist", "function_blacklist"] {
        d.write(
            "c.hcl",
            &format!("template {{\n  source = \"in.hbs\"\n  destination = \"out\"\n  {key} = [\"env\", \"fi*\"]\n}}\n"),
        );
        let run = d.run(&["-config=c.hcl", "-data=data.json", "-once"]);
        run.code(15)
            .stderr_has("env: this function is denied by the template's function_denylist")
            .stderr_has("file: this function is denied");
        assert!(!d.exists("out"));
    }
}

#[test]
fn a_failing_command_ends_watch_mode_unless_command_error_fatal_is_false() {
    let d = setup("{{key \"app/a\"}}\n");
    let mut bg = d.spawn(&[
        "-data=data.json",
        "-template=in.hbs:out:echo boom >&2; exit 3",
    ]);
    assert_eq!(bg.wait_exit(LIMIT), Some(14), "{}", bg.log());
    let log = bg.log();
    assert!(log.contains("exit code 3") && log.contains("boom"), "{log}");
    drop(bg);

    let d = setup("{{key \"app/a\"}}\n");
    let mut bg = d.spawn(&[
        "-data=data.json",
        "-template=in.hbs:out:echo run >> runs; exit 3",
        "-command-error-fatal=false",
    ]);
    wait_until("the first command", LIMIT, || d.lines("runs") == 1);
    d.write(
        "data.json",
        &DATA.replace("\"app/a\": \"1\"", "\"app/a\": \"9\""),
    );
    wait_until("the second command", LIMIT, || d.lines("runs") == 2);
    assert_eq!(d.read("out"), "9\n");
    assert_eq!(
        bg.wait_exit(Duration::from_millis(100)),
        None,
        "{}",
        bg.log()
    );
}
