//! The command line through the binary: Go flag syntax, aliases, errors, help, version.

use crate::support::Dir;

fn setup() -> Dir {
    let d = Dir::new();
    d.write("data.json", r#"{"nodes": [], "kv": {"k": "v"}}"#);
    d.write("in.hbs", "value={{key \"k\"}}\n");
    d
}

#[test]
fn single_dash_double_dash_joined_and_separate_values() {
    let d = setup();
    d.run(&["-data", "data.json", "-template", "in.hbs:a.out", "-once"])
        .code(0);
    d.run(&["--data=data.json", "--template=in.hbs:b.out", "--once"])
        .code(0);
    d.run(&[
        "-data=data.json",
        "--template",
        "in.hbs:c.out",
        "-once=true",
    ])
    .code(0);
    for f in ["a.out", "b.out", "c.out"] {
        assert_eq!(d.read(f), "value=v\n");
    }
}

#[test]
fn go_bool_forms() {
    let d = setup();
    d.run(&[
        "-data=data.json",
        "-template=in.hbs:x.out",
        "-once=1",
        "-dry=false",
    ])
    .code(0);
    assert!(d.exists("x.out"), "-dry=false writes");
    // `-once false` leaves `false` as an extra argument, as Go's flag package does.
    d.run(&[
        "-data=data.json",
        "-template=in.hbs:y.out",
        "-once",
        "false",
    ])
    .code(13)
    .stderr_has("unexpected argument 'false'");
    d.run(&["-once=maybe"])
        .code(13)
        .stderr_has("invalid boolean value \"maybe\" for -once");
}

#[test]
fn old_aliases_work_with_a_deprecation_warning() {
    let d = setup();
    d.run(&[
        "-consul=127.0.0.1:1",
        "-retry",
        "30s",
        "-token=secret-token",
        "-data",
        "data.json",
        "-template",
        "in.hbs:o.out",
        "-once",
    ])
    .code(0)
    .stderr_has("flag -consul is deprecated; use -consul-addr instead")
    .stderr_has("flag -retry is deprecated; use -consul-retry-backoff instead");
    assert_eq!(d.read("o.out"), "value=v\n");
}

#[test]
fn the_seed_command_line_parses() {
    // The blue-green seed's exact line, with the binary renamed and a data file for Consul.
    let d = setup();
    d.run(&[
        "-consul=10.0.0.1:8500",
        "-template=in.hbs:seed.out:echo reloaded",
        "-retry",
        "30s",
        "-once",
        "-data=data.json",
    ])
    .code(0)
    .stdout_has("reloaded");
}

#[test]
fn unknown_and_unsupported_flags() {
    let d = setup();
    d.run(&["-onse"])
        .code(13)
        .stderr_has("flag provided but not defined: -onse (did you mean -once?)");
    d.run(&["--templat=x"])
        .code(13)
        .stderr_has("did you mean -template?");
    d.run(&["-vault-addr=http://v"])
        .code(13)
        .stderr_has("-vault-addr is not supported");
    d.run(&["-nomad-addr=http://n"])
        .code(13)
        .stderr_has("-nomad-addr is not supported");
    // -dedup is a flag now (tests/it/dedup.rs); a value it cannot take is refused by name.
    d.run(&["-dedup=maybe"]).code(13).stderr_has("-dedup");
    d.run(&["-wait"])
        .code(13)
        .stderr_has("flag needs an argument: -wait");
}

#[test]
fn bad_values_name_the_flag() {
    let d = setup();
    d.run(&["-template=in.hbs:o", "-wait=5"])
        .code(13)
        .stderr_has("-wait")
        .stderr_has("missing unit");
    d.run(&["-template=in.hbs:o", "-wait=10s:1s"])
        .code(13)
        .stderr_has("min is greater than max");
    d.run(&["-template=in.hbs:o", "-kill-signal=TERM"])
        .code(13)
        .stderr_has("-kill-signal");
    d.run(&["-template=in.hbs:o", "-log-level=loud"])
        .code(13)
        .stderr_has("-log-level");
    d.run(&["-template=in.hbs:o", "-consul-retry-attempts=x"])
        .code(13)
        .stderr_has("consul-retry-attempts");
    d.run(&[]).code(13).stderr_has("no templates");
    d.run(&["-template=in.hbs"])
        .code(13)
        .stderr_has("no destination");
    for bad in ["", " ", ":", ":::"] {
        d.run(&["-template", bad])
            .code(13)
            .stderr_has("cannot be empty");
    }
}

#[test]
fn windows_style_paths_and_colons_in_commands() {
    let d = setup();
    // On Linux these are ordinary file names; the split must keep the drive letters.
    d.write(r"C:\in.hbs", "win={{key \"k\"}}\n");
    d.run(&[
        "-data=data.json",
        r"-template=C:\in.hbs:D:\out.conf:echo a:b",
        "-once",
    ])
    .code(0)
    .stdout_has("a:b");
    assert_eq!(d.read(r"D:\out.conf"), "win=v\n");
}

#[test]
fn help_and_version() {
    let d = Dir::new();
    for flag in ["-h", "-help", "--help"] {
        d.run(&[flag])
            .code(0)
            .stdout_has("Usage: consul-render")
            .stdout_has("-consul-addr");
    }
    for flag in ["-v", "-version", "--version"] {
        d.run(&[flag])
            .code(0)
            .stdout_has(concat!("consul-render ", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn check_subcommand_and_parse_only() {
    let d = Dir::new();
    d.write(
        "good.hbs",
        "{{#each (service \"web\")}}{{Address}}{{/each}}\n",
    );
    d.write(
        "bad.hbs",
        "ok\n{{#each (servce \"web\")}}{{/each}}\n{{secret \"x\"}}\n",
    );
    d.run(&["check", "-template", "good.hbs"]).code(0);
    d.run(&["-parse-only", "-template", "good.hbs"]).code(0);
    d.run(&["check", "-template", "bad.hbs", "-template", "good.hbs"])
        .code(15)
        .stderr_has("bad.hbs:2:1: unknown helper \"servce\" (did you mean \"service\"?)")
        .stderr_has("bad.hbs:3:1: secret: Vault functions are not supported yet");
}

#[test]
fn a_flag_given_twice_keeps_its_last_value_and_templates_accumulate() {
    let d = Dir::new();
    d.write("data.json", r#"{"kv": {"a": "1"}}"#);
    d.write("in.hbs", "{{key \"a\"}}\n");
    let run = d.run(&[
        "-data=data.json",
        "-log-level=info",
        "-log-level=err",
        "-template=in.hbs:one",
        "-template=in.hbs:two",
        "-once",
    ]);
    run.code(0);
    assert!(
        !run.stderr.contains("INFO"),
        "the last -log-level (err) wins:\n{}",
        run.stderr
    );
    assert_eq!((d.read("one"), d.read("two")), ("1\n".into(), "1\n".into()));
}

#[test]
fn a_config_file_wins_over_the_environment_and_a_flag_over_both() {
    let d = Dir::new();
    d.write("data.json", r#"{"kv": {"a": "1"}}"#);
    d.write("in.hbs", "{{env \"CONSUL_HTTP_ADDR\"}}\n");
    d.write("c.hcl", "consul {\n  address = \"file-host:1\"\n}\n");
    // Commands get the resolved address in CONSUL_HTTP_ADDR: the file's, over the environment's.
    let run = crate::support::Run::of(d.cmd().env("CONSUL_HTTP_ADDR", "env-host:2").args([
        "-config=c.hcl",
        "-data=data.json",
        "-template=in.hbs:out:echo $CONSUL_HTTP_ADDR",
        "-once",
    ]));
    run.code(0).stdout_has("file-host:1");
    let run = crate::support::Run::of(d.cmd().env("CONSUL_HTTP_ADDR", "env-host:2").args([
        "-config=c.hcl",
        "-consul-addr=flag-host:3",
        "-data=data.json",
        "-template=in.hbs:out2:echo $CONSUL_HTTP_ADDR",
        "-once",
    ]));
    run.code(0).stdout_has("flag-host:3");
}

#[test]
fn completions_and_the_man_page_come_from_the_flag_definitions() {
    let d = Dir::new();
    for shell in ["bash", "zsh", "fish"] {
        let run = d.run(&["completions", shell]);
        run.code(0).stdout_has("template").stdout_has("consul-addr");
        if shell == "bash" {
            d.write("c.bash", &run.stdout);
            let syntax = std::process::Command::new("bash")
                .args(["-n", "c.bash"])
                .current_dir(d.path())
                .status();
            assert!(
                syntax.is_ok_and(|s| s.success()),
                "bash -n on the completions"
            );
        }
    }
    d.run(&["completions", "tcsh"])
        .code(13)
        .stderr_has("name a shell");
    d.run(&["man"])
        .code(0)
        .stdout_has(".TH consul-render 1")
        .stdout_has("status\\-addr");
}
