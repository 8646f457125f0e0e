//! consul-template's config keys beyond the core, through the binary: `HashiCorp`'s documented
//! examples load unchanged; owners, a template's `exec { env kill_signal }`, `exec.enabled`,
//! delimiters, `err_on_failed_lookup`, the transport; the blocks we do not act on warn or are
//! refused with the reason.

use crate::support::{repo, Consul, Dir};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

fn docs(name: &str) -> String {
    repo()
        .join("tests/fixtures/consul-template-docs")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn hashicorps_documented_examples_load_unchanged() {
    let d = Dir::new();
    for name in [
        "intro.hcl",
        "top-level.hcl",
        "logging.hcl",
        "consul.hcl",
        "once.hcl",
        "exec.hcl",
        "vault.hcl",
        "nomad.hcl",
    ] {
        let run = d.run(&["check", "-config", &docs(name)]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
    }
    // Every key of the template example is taken; what stops it is the example's template
    // file, which is not on this machine.
    d.run(&["check", "-config", &docs("template.hcl")])
        .code(15)
        .stderr_has("template /path/on/disk/to/template.ctmpl: No such file");
    // What consul-render does not act on says so, and goes on.
    d.run(&["check", "-config", &docs("vault.hcl")])
        .code(0)
        .stderr_has("Vault is out of scope");
    // De-duplication is taken (tests/it/dedup.rs runs it); an unknown key in it is not.
    d.run(&["check", "-config", &docs("deduplicate.hcl")])
        .code(0);
    d.write("dedup-off.hcl", "deduplicate { enabled = false }\n");
    d.run(&["check", "-config", "dedup-off.hcl"]).code(0);
    d.write("dedup-bad.hcl", "deduplicate { lock_delay = \"1s\" }\n");
    d.run(&["check", "-config", "dedup-bad.hcl"])
        .code(15)
        .stderr_has("lock_delay");
}

#[test]
fn user_and_group_set_the_files_owner() {
    let d = Dir::new();
    d.write("data.json", r#"{"kv": {"k": "v"}}"#);
    d.write(
        "owners.hcl",
        r#"
template {
  contents = "{{key \"k\"}}"
  destination = "by-name.txt"
  user = "nobody"
  group = "nogroup"
}
template {
  contents = "{{key \"k\"}}!"
  destination = "by-number.txt"
  uid = 1234
  gid = 4321
}
template {
  contents = "{{key \"k\"}}?"
  destination = "numbers-as-text.txt"
  user = "2345"
  group = 5432
}
"#,
    );
    d.run(&["-config", "owners.hcl", "-data", "data.json", "-once"])
        .code(0);
    let owner = |name: &str| {
        let m = std::fs::metadata(d.join(name)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("by-name.txt"), (65534, 65534));
    assert_eq!(owner("by-number.txt"), (1234, 4321));
    assert_eq!(owner("numbers-as-text.txt"), (2345, 5432));
    d.write(
        "bad.hcl",
        "template {\n contents = \"x\"\n destination = \"x.txt\"\n user = \"no-such-user-here\"\n}\n",
    );
    d.run(&["-config", "bad.hcl", "-data", "data.json", "-once"])
        .code(15)
        .stderr_has("template[0].user")
        .stderr_has("does not exist");
    assert!(!d.exists("x.txt"));
}

#[test]
fn a_templates_exec_block_sets_the_commands_environment() {
    let d = Dir::new();
    d.write("data.json", r#"{"kv": {"k": "v"}}"#);
    d.write(
        "env.hcl",
        r#"
template {
  contents = "{{key \"k\"}}"
  destination = "out.txt"
  exec {
    command = "/usr/bin/env > pristine.env"
    env {
      pristine = true
      custom = ["ADDED=1"]
    }
  }
}
template {
  contents = "{{key \"k\"}}2"
  destination = "out2.txt"
  exec {
    command = "/usr/bin/env > filtered.env"
    env {
      allowlist = ["KEEP_*", "PATH"]
      denylist = ["KEEP_NOT"]
    }
  }
}
"#,
    );
    crate::support::Run::of(
        d.cmd()
            .env("KEEP_ME", "yes")
            .env("KEEP_NOT", "no")
            .env("DROP_ME", "no")
            .args(["-config", "env.hcl", "-data", "data.json", "-once"]),
    )
    .code(0);
    let pristine = d.read("pristine.env");
    assert!(pristine.contains("ADDED=1"), "{pristine}");
    assert!(!pristine.contains("KEEP_ME"), "{pristine}");
    let filtered = d.read("filtered.env");
    assert!(filtered.contains("KEEP_ME=yes"), "{filtered}");
    assert!(
        !filtered.contains("KEEP_NOT") && !filtered.contains("DROP_ME"),
        "{filtered}"
    );
}

#[test]
fn a_timed_out_command_gets_its_kill_signal_first() {
    let d = Dir::new();
    d.write("data.json", r#"{"kv": {"k": "v"}}"#);
    d.write(
        "kill.hcl",
        r#"
template {
  contents = "{{key \"k\"}}"
  destination = "out.txt"
  exec {
    command = "trap 'echo got-term > term.txt; exit 3' TERM; sleep 20 & wait"
    timeout = "300ms"
    kill_signal = "SIGTERM"
    kill_timeout = "5s"
  }
}
"#,
    );
    d.run(&["-config", "kill.hcl", "-data", "data.json", "-once"])
        .code(14)
        .stderr_has("timed out");
    assert_eq!(d.read("term.txt").trim(), "got-term");
}

#[test]
fn exec_enabled_false_turns_the_child_off() {
    let d = Dir::new();
    d.write("data.json", r#"{"kv": {"k": "v"}}"#);
    d.write(
        "exec.hcl",
        "exec {\n  enabled = false\n  command = \"touch child-ran\"\n  timeout = \"5s\"\n}\n",
    );
    d.write("t.hbs", "{{key \"k\"}}");
    d.run(&[
        "-config",
        "exec.hcl",
        "-data",
        "data.json",
        "-template",
        "t.hbs:out.txt",
        "-once",
    ])
    .code(0);
    assert_eq!(d.read("out.txt"), "v");
    assert!(!d.exists("child-ran"));
}

#[test]
fn delimiters_other_than_handlebars_are_refused_by_name() {
    let d = Dir::new();
    d.write(
        "delims.hcl",
        "template {\n contents = \"x\"\n destination = \"x.txt\"\n left_delimiter = \"[[\"\n right_delimiter = \"]]\"\n}\n",
    );
    d.run(&["check", "-config", "delims.hcl"])
        .code(15)
        .stderr_has("template[0].left_delimiter")
        .stderr_has("handlebars");
    d.write("default.hcl", "default_delimiters {\n left = \"<%\"\n}\n");
    d.run(&["check", "-config", "default.hcl"])
        .code(15)
        .stderr_has("default_delimiters");
}

#[test]
fn err_on_failed_lookup_ends_a_watcher_on_a_missing_key() {
    let c = Consul::start();
    c.put_kv("present", "here");
    let d = Dir::new();
    d.write("t.hbs", "{{key \"present\"}} {{key \"missing/key\"}}");
    d.write("strict.hcl", "err_on_failed_lookup = true\n");
    let consul = format!("-consul-addr={}", c.addr);
    let mut bg = d.spawn(&[
        &consul,
        "-config",
        "strict.hcl",
        "-template",
        "t.hbs:out.txt",
    ]);
    let code = bg.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(14), "{}", bg.log());
    assert!(bg.log().contains("missing/key"), "{}", bg.log());
    assert!(!d.exists("out.txt"));
}

#[test]
fn transport_settings_are_taken() {
    let c = Consul::start();
    c.put_kv("k", "v");
    let d = Dir::new();
    d.write("t.hbs", "{{key \"k\"}}");
    d.write(
        "transport.hcl",
        &format!(
            "consul {{\n address = \"{}\"\n transport {{\n  dial_keep_alive = \"10s\"\n  dial_timeout = \"5s\"\n  disable_keep_alives = true\n  idle_conn_timeout = \"30s\"\n  max_idle_conns = 10\n  max_conns_per_host = 16\n  tls_handshake_timeout = \"10s\"\n }}\n}}\n",
            c.addr
        ),
    );
    d.run(&[
        "-config",
        "transport.hcl",
        "-template",
        "t.hbs:out.txt",
        "-once",
    ])
    .code(0);
    assert_eq!(d.read("out.txt"), "v");
    d.write(
        "bad.hcl",
        "consul {\n transport {\n  dial_timeout = \"soon\"\n }\n}\n",
    );
    d.run(&["check", "-config", "bad.hcl"])
        .code(15)
        .stderr_has("consul.transport.dial_timeout");
}

#[test]
fn log_file_rotates_by_size_and_keeps_max_files() {
    let d = Dir::new();
    d.write("data.json", r#"{"kv": {"k": "v"}}"#);
    d.write("t.hbs", "{{key \"k\"}}");
    std::fs::create_dir(d.join("logs")).unwrap();
    // Two old files from an earlier run: pruned to what max_files keeps.
    d.write("logs/cr-1000.log", "old\n");
    d.write("logs/cr-1001.log", "old\n");
    d.write(
        "logs.hcl",
        "log_level = \"debug\"\nlog_file {\n  path = \"logs/cr.log\"\n  log_rotate_bytes = 300\n  log_rotate_max_files = 2\n}\n",
    );
    for _ in 0..3 {
        d.run(&[
            "-config",
            "logs.hcl",
            "-data",
            "data.json",
            "-template",
            "t.hbs:out.txt",
            "-once",
        ])
        .code(0);
    }
    let mut files: Vec<String> = std::fs::read_dir(d.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // Each run writes more than 300 bytes of debug lines, so it rotated; two older files are
    // kept beside the one written last.
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(!files.contains(&"cr-1000.log".to_string()), "{files:?}");
    let newest = d.read(&format!("logs/{}", files[2]));
    assert!(!newest.is_empty());
    for f in &files {
        assert!(f.starts_with("cr-") && f.ends_with(".log"), "{f}");
    }
    // Everything went to stderr too.
    d.run(&[
        "-config",
        "logs.hcl",
        "-data",
        "data.json",
        "-template",
        "t.hbs:out.txt",
        "-once",
    ])
    .code(0)
    .stderr_has("DEBUG");
}

#[test]
fn syslog_lines_arrive_at_the_socket() {
    let d = Dir::new();
    let socket = d.join("syslog.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    d.write("data.json", r#"{"kv": {"k": "v"}}"#);
    d.write("t.hbs", "{{key \"k\"}}");
    d.write(
        "syslog.hcl",
        &format!(
            "log_level = \"info\"\nsyslog {{\n  facility = \"LOCAL5\"\n  name = \"cr-test\"\n  socket = \"{}\"\n}}\n",
            socket.display()
        ),
    );
    d.run(&[
        "-config",
        "syslog.hcl",
        "-data",
        "data.json",
        "-template",
        "t.hbs:out.txt",
        "-once",
    ])
    .code(0);
    let mut buf = [0u8; 4096];
    let n = listener.recv(&mut buf).expect("a syslog datagram");
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    // LOCAL5 (21) × 8 + notice (5): consul-template sends INFO lines as notice.
    assert!(line.starts_with("<173>"), "{line}");
    assert!(line.contains("cr-test["), "{line}");
    d.write("bad.hcl", "syslog {\n  facility = \"LOCAL9\"\n}\n");
    d.run(&[
        "-config",
        "bad.hcl",
        "-data",
        "data.json",
        "-template",
        "t.hbs:out.txt",
        "-once",
    ])
    .code(15)
    .stderr_has("syslog facility \"LOCAL9\"");
}

#[test]
fn http_proxy_is_used_except_for_the_loopback() {
    let c = Consul::start();
    if c.sim().is_none() {
        return;
    }
    c.put_kv("k", "through the proxy");
    let d = Dir::new();
    d.write("t.hbs", "{{key \"k\"}}");
    // A name that resolves nowhere: only a proxy can reach it. The simulator plays the proxy
    // (it answers the absolute-form request by its path).
    let run = |addr: &str, proxy: &str, out: &str| {
        crate::support::Run::of(
            d.cmd()
                .env("HTTP_PROXY", proxy)
                .env_remove("NO_PROXY")
                .env_remove("no_proxy")
                .args([
                    &format!("-consul-addr={addr}"),
                    "-template",
                    &format!("t.hbs:{out}"),
                    "-once",
                    "-consul-retry-attempts=1",
                    "-consul-retry-backoff=10ms",
                ]),
        )
    };
    run(
        "consul.invalid:8500",
        &format!("http://{}", c.addr),
        "proxied.txt",
    )
    .code(0);
    assert_eq!(d.read("proxied.txt"), "through the proxy");
    // The loopback never goes through a proxy (here a dead one).
    run(&c.addr, "http://127.0.0.1:1", "direct.txt").code(0);
    assert_eq!(d.read("direct.txt"), "through the proxy");
}

#[test]
fn every_layer_refuses_a_bad_value_by_layer_and_key() {
    let d = Dir::new();
    d.write("in.hbs", "x");
    // Once refused as a flag but quietly bumped to 1 from a file; now one parser for both.
    d.write("zero.hcl", "max_connections = 0\n");
    d.run(&["-config", "zero.hcl", "-template", "in.hbs:out", "-dry"])
        .code(15)
        .stderr_has("config zero.hcl: max_connections:");
    d.run(&["-max-connections=0", "-template", "in.hbs:out", "-dry"])
        .code(13)
        .stderr_has("-max-connections");
    d.write(
        "perms.hcl",
        "template {\n  source = \"in.hbs\"\n  perms = \"rw\"\n}\n",
    );
    d.run(&["-config", "perms.hcl", "-dry"])
        .code(15)
        .stderr_has("config perms.hcl: template[0].perms: perms \"rw\" is not an octal mode");
    let run = crate::support::Run::of(d.cmd().env("CONSUL_HTTP_SSL", "maybe").args([
        "-template",
        "in.hbs:out",
        "-dry",
    ]));
    run.code(13)
        .stderr_has("environment CONSUL_HTTP_SSL: \"maybe\" is not a boolean");
    assert!(
        !d.exists("out"),
        "nothing is written when the settings are refused"
    );
}
