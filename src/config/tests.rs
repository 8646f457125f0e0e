//! The pipeline end to end: precedence, value checks by layer, whole checks, finalizing.

use super::*;
use clap::Parser;

fn args(list: &[&str]) -> Args {
    let mut v = vec!["consul-render"];
    v.extend(list);
    Args::try_parse_from(v).unwrap()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn file(text: &str) -> Vec<(PathBuf, FileConfig)> {
    vec![(PathBuf::from("c.hcl"), file::parse(text).unwrap())]
}

fn resolve(flags: &[&str], env: &dyn Fn(&str) -> Option<String>, text: &str) -> Config {
    let files = if text.is_empty() { vec![] } else { file(text) };
    Config::resolve_with_files(&args(flags), env, files).unwrap()
}

#[test]
fn precedence_defaults_env_files_flags() {
    let text = "consul { address = \"file:1\" }\nmax_stale = \"5s\"\nlog_level = \"info\"\n\
                wait = \"1s\"\ntemplate {\n source = \"a\"\n destination = \"b\"\n}";
    let env = |k: &str| match k {
        "CONSUL_HTTP_ADDR" => Some("env:2".to_string()),
        "CONSUL_HTTP_TOKEN" => Some("env-token".to_string()),
        "CONSUL_TEMPLATE_LOG_LEVEL" => Some("debug".to_string()),
        _ => None,
    };
    let c = resolve(&["--template=in.hbs:out.conf"], &env, text);
    assert_eq!(
        c.consul.address, "file:1",
        "a config file wins over the environment"
    );
    assert_eq!(c.log_level, LogLevel::Info, "the file's level wins too");
    assert_eq!(
        c.consul.token.as_ref().map(Secret::expose),
        Some("env-token"),
        "the environment fills what the files leave unset"
    );
    assert_eq!(c.consul.max_stale, Duration::from_secs(5));
    assert_eq!(c.wait.map(|w| w.max), Some(Duration::from_secs(4)));
    assert_eq!(
        c.templates.len(),
        2,
        "flag templates come after file templates"
    );
    assert_eq!(
        c.templates[1].destination.as_deref(),
        Some(std::path::Path::new("out.conf"))
    );
    let c = resolve(
        &[
            "--template=in.hbs:out.conf",
            "--consul-addr=flag:3",
            "--log-level=err",
            "--wait=2s:3s",
            "--consul-token=flag-token",
        ],
        &env,
        text,
    );
    assert_eq!(c.consul.address, "flag:3");
    assert_eq!(c.log_level, LogLevel::Err);
    assert_eq!(c.wait.map(|w| w.max), Some(Duration::from_secs(3)));
    assert_eq!(
        c.consul.token.as_ref().map(Secret::expose),
        Some("flag-token")
    );
    let c = resolve(&["--template=in.hbs:out.conf"], &env, "");
    assert_eq!(
        c.consul.address, "env:2",
        "the environment beats the defaults"
    );
    assert_eq!(c.log_level, LogLevel::Debug);
    let c = resolve(&["--template=in.hbs:out.conf"], &no_env, "");
    assert_eq!(c.consul.address, defaults::ADDRESS);
    assert_eq!(c.consul.retry.attempts, defaults::RETRY_ATTEMPTS);
    assert_eq!(c.log_level, defaults::LOG_LEVEL);
}

#[test]
fn token_env_order_and_secrecy() {
    let env = |k: &str| match k {
        "CONSUL_TOKEN" => Some("first".to_string()),
        "CONSUL_HTTP_TOKEN" => Some("second".to_string()),
        _ => None,
    };
    let c = resolve(&["--template=in.hbs:out.conf"], &env, "");
    assert_eq!(c.consul.token.as_ref().unwrap().expose(), "first");
    assert!(!format!("{c:?}").contains("first"));
}

#[test]
fn every_layer_checks_values_the_same_way() {
    // A flag's value is parsed by clap with the same parser a file's gets from serde.
    for (flag, needle) in [
        ("--wait=10s:1s", "min is greater"),
        ("--max-stale=30", "missing unit"),
        ("--kill-signal=HUP", "SIGHUP"),
        ("--max-connections=0", "zero"),
    ] {
        let e = Args::try_parse_from(["consul-render", flag])
            .unwrap_err()
            .to_string();
        let name = flag.split('=').next().unwrap_or(flag);
        assert!(e.contains(name) && e.contains(needle), "{flag}: {e}");
    }
    for (text, needle) in [
        ("wait = \"10s:1s\"", "config c.hcl: wait: invalid wait"),
        (
            "max_stale = \"30\"",
            "config c.hcl: max_stale: missing unit",
        ),
        (
            "kill_signal = \"HUP\"",
            "config c.hcl: kill_signal: unknown signal",
        ),
        (
            "max_connections = 0",
            "config c.hcl: max_connections: invalid value",
        ),
        (
            "template {\n perms = \"rw\"\n}",
            "config c.hcl: template[0].perms: perms",
        ),
    ] {
        let e = file::parse(text)
            .map_err(|source| ConfigError::File {
                path: "c.hcl".into(),
                source,
            })
            .unwrap_err();
        assert!(e.to_string().starts_with(needle), "{text}: {e}");
        assert_eq!(e.exit_code(), 15);
    }
    let e = Config::resolve_with_files(
        &args(&["--template=in.hbs:o"]),
        &no_env,
        file("template {\n source = \"a\"\n destination = \"b\"\n user = \"no-such-user-x\"\n}"),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "config c.hcl: template[0].user: user \"no-such-user-x\" does not exist"
    );
}

#[test]
fn whole_checks_hold_whatever_layer_set_the_values() {
    let e = Config::resolve_with_files(&args(&["--template=in.hbs"]), &no_env, vec![]).unwrap_err();
    assert!(e.to_string().contains("no destination"), "{e}");
    assert_eq!(e.exit_code(), 13);
    assert!(Config::resolve_with_files(&args(&["--template=x", "--dry"]), &no_env, vec![]).is_ok());
    let c = resolve(
        &["--template=in:out"],
        &no_env,
        "exec {\n kill_timeout = \"1s\"\n}",
    );
    assert!(
        c.exec.is_none(),
        "an exec block without a command runs nothing"
    );
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    let c = resolve(
        &["--exec=nginx"],
        &no_env,
        "exec {\n kill_timeout = \"1s\"\n}",
    );
    let x = c.exec.unwrap();
    assert_eq!(
        (x.command.display(), x.kill_timeout),
        ("nginx".to_string(), Duration::from_secs(1))
    );
    let c = resolve(
        &["--exec=nginx", "--template=in:out"],
        &no_env,
        "exec {\n enabled = false\n}",
    );
    assert!(c.exec.is_none());
}

#[test]
fn error_fatal_flag_then_template_then_file() {
    let text = "template_error_fatal = false\ntemplate {\n source = \"a\"\n destination = \"b\"\n error_fatal = true\n}\ntemplate {\n source = \"c\"\n destination = \"d\"\n}";
    let c = resolve(&[], &no_env, text);
    assert_eq!(
        c.templates
            .iter()
            .map(|t| t.error_fatal)
            .collect::<Vec<_>>(),
        [true, false]
    );
    let c = resolve(&["--template-error-fatal=false"], &no_env, text);
    assert!(c.templates.iter().all(|t| !t.error_fatal));
}

#[test]
fn syslog_and_log_file_turn_on_as_consul_template_finalizes() {
    let c = resolve(
        &["--template=in:out"],
        &no_env,
        "syslog {\n facility = \"LOCAL3\"\n}",
    );
    assert_eq!(c.syslog.map(|s| s.facility), Some("LOCAL3".into()));
    let c = resolve(
        &["--template=in:out"],
        &no_env,
        "syslog {\n enabled = false\n name = \"x\"\n}",
    );
    assert!(c.syslog.is_none());
    let c = resolve(&["--template=in:out", "--syslog-name=n"], &no_env, "");
    assert_eq!(c.syslog.map(|s| s.name), Some("n".into()));
    let text = "log_file {\n path = \"/tmp/x.log\"\n log_rotate_bytes = 10\n}";
    let c = resolve(
        &["--template=in:out", "--log-rotate-max-files=2"],
        &no_env,
        text,
    );
    let f = c.log_file.unwrap();
    assert_eq!((f.rotate_bytes, f.max_files), (10, 2));
    let c = resolve(&["--template=in:out", "--log-file="], &no_env, text);
    assert!(
        c.log_file.is_none(),
        "an empty -log-file turns the file's off"
    );
}

#[test]
fn dedup_turns_on_as_consul_template_finalizes() {
    let off = resolve(&["--template=in:out"], &no_env, "");
    assert!(off.dedup.is_none());
    let c = resolve(&["--template=in:out", "--dedup"], &no_env, "");
    assert_eq!(
        c.dedup,
        Some(Dedup {
            prefix: "service/consul-render/dedup/".into(),
            ttl: std::time::Duration::from_secs(15),
            max_stale: std::time::Duration::from_secs(2),
            block_query_wait: std::time::Duration::from_secs(60),
        })
    );
    // Any setting turns it on; the prefix gets its slash; `TTL` as consul-template's docs spell it.
    let c = resolve(
        &["--template=in:out"],
        &no_env,
        "deduplicate {\n prefix = \"/fleet/dedup\"\n TTL = \"30s\"\n}",
    );
    let d = c.dedup.unwrap();
    assert_eq!(
        (d.prefix.as_str(), d.ttl),
        ("fleet/dedup/", std::time::Duration::from_secs(30))
    );
    let c = resolve(
        &["--template=in:out"],
        &no_env,
        "deduplicate {\n enabled = false\n prefix = \"p/\"\n}",
    );
    assert!(c.dedup.is_none());
    // The flag wins over the file.
    let c = resolve(
        &["--template=in:out", "--dedup=false"],
        &no_env,
        "deduplicate {\n enabled = true\n}",
    );
    assert!(c.dedup.is_none());
}
