//! Once mode from a data file through the binary: writing, commands, dry runs, errors, config.

use crate::support::Dir;
use std::os::unix::fs::PermissionsExt;

const DATA: &str = r#"{"nodes": [{"Node": "n1", "Address": "10.0.0.1"}],
  "services": [{"Node": "n1", "ID": "web-1", "Service": "web", "Port": 80}],
  "kv": {"greeting": "hello"}}"#;

fn setup() -> Dir {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write(
        "in.hbs",
        "{{key \"greeting\"}} {{#each (service \"web\")}}{{Address}}:{{Port}}{{/each}}\n",
    );
    d
}

#[test]
fn renders_writes_and_runs_the_command_only_on_change() {
    let d = setup();
    let args = [
        "-data",
        "data.json",
        "-template",
        "in.hbs:out/conf:echo run >> count.txt",
        "-once",
    ];
    d.run(&args).code(0);
    assert_eq!(d.read("out/conf"), "hello 10.0.0.1:80\n");
    assert_eq!(d.read("count.txt"), "run\n");
    d.run(&args).code(0);
    assert_eq!(
        d.read("count.txt"),
        "run\n",
        "unchanged output runs no command"
    );
    d.write("data.json", &DATA.replace("hello", "bye"));
    d.run(&args).code(0);
    assert_eq!(d.read("out/conf"), "bye 10.0.0.1:80\n");
    assert_eq!(d.read("count.txt"), "run\nrun\n");
}

#[test]
fn a_command_shared_by_templates_runs_once() {
    let d = setup();
    d.write("other.hbs", "x\n");
    d.run(&[
        "-data=data.json",
        "-template=in.hbs:a.out:echo run >> count.txt",
        "-template=other.hbs:b.out:echo run >> count.txt",
        "-once",
    ])
    .code(0);
    assert_eq!(d.read("count.txt"), "run\n");
}

#[test]
fn failing_command_exits_14_with_its_stderr_tail() {
    let d = setup();
    d.run(&[
        "-data",
        "data.json",
        "-template",
        "in.hbs:out:echo first line >&2; echo boom >&2; exit 3",
        "-once",
    ])
    .code(14)
    .stderr_has("failed: exit code 3")
    .stderr_has("boom");
    assert_eq!(
        d.read("out"),
        "hello 10.0.0.1:80\n",
        "the file was written before the command ran"
    );
}

#[test]
fn command_timeout_is_enforced() {
    let d = setup();
    d.write("c.hcl", "template {\n  source = \"in.hbs\"\n  destination = \"out\"\n  command = \"sleep 20\"\n  command_timeout = \"300ms\"\n}\n");
    let started = std::time::Instant::now();
    d.run(&["-config", "c.hcl", "-data", "data.json", "-once"])
        .code(14)
        .stderr_has("timed out after 300ms");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

#[test]
fn syntax_error_exits_15_with_position_and_leaves_the_destination() {
    let d = setup();
    d.write("out", "previous\n");
    d.write(
        "bad.hbs",
        "fine\n  {{#each (service \"web\")}}\n  {{/if}}\n",
    );
    d.run(&[
        "-data",
        "data.json",
        "-template",
        "bad.hbs:out:touch ran",
        "-once",
    ])
    .code(15)
    .stderr_has("bad.hbs:3:")
    .stderr_has("^");
    assert_eq!(d.read("out"), "previous\n");
    assert!(!d.exists("ran"));
}

#[test]
fn render_error_leaves_every_destination_untouched() {
    let d = setup();
    d.write("a.out", "old a\n");
    d.write("bad.hbs", "{{add 1 \"x\"}}\n");
    d.run(&[
        "-data",
        "data.json",
        "-template",
        "in.hbs:a.out",
        "-template",
        "bad.hbs:b.out",
        "-once",
    ])
    .code(14);
    assert_eq!(
        d.read("a.out"),
        "old a\n",
        "nothing is written unless every template completed"
    );
    assert!(!d.exists("b.out"));
}

#[test]
fn dry_prints_and_writes_nothing() {
    let d = setup();
    let run = d.run(&[
        "-data",
        "data.json",
        "-template",
        "in.hbs:out/conf:touch ran",
        "-dry",
        "-once",
    ]);
    run.code(0);
    assert_eq!(run.stdout, "> out/conf\nhello 10.0.0.1:80\n");
    assert!(!d.exists("out"), "nothing written, not even the directory");
    assert!(!d.exists("ran"));
}

#[test]
fn dry_diff_exit_code_says_whether_something_would_change() {
    let d = setup();
    d.write("conf", "hello 10.0.0.9:80\n");
    let run = d.run(&[
        "-data",
        "data.json",
        "-template",
        "in.hbs:conf",
        "-dry",
        "-diff",
        "-once",
    ]);
    run.code(1);
    assert!(
        run.stdout.contains("-hello 10.0.0.9:80") && run.stdout.contains("+hello 10.0.0.1:80"),
        "{}",
        run.stdout
    );
    d.write("conf", "hello 10.0.0.1:80\n");
    let run = d.run(&[
        "-data",
        "data.json",
        "-template",
        "in.hbs:conf",
        "-dry",
        "-diff",
        "-once",
    ]);
    run.code(0);
    assert_eq!(run.stdout, "");
}

#[test]
fn missing_template_or_bad_data_file_is_a_configuration_error() {
    let d = setup();
    d.run(&["-data", "data.json", "-template", "nope.hbs:out", "-once"])
        .code(15)
        .stderr_has("nope.hbs");
    d.write(
        "bad.json",
        r#"{"services": [{"Node": "ghost", "Service": "web"}]}"#,
    );
    d.run(&["-data", "bad.json", "-template", "in.hbs:out", "-once"])
        .code(15)
        .stderr_has("bad.json")
        .stderr_has("services[0]: node \"ghost\" is not listed");
    d.write("typo.json", r#"{"nodes": [{"Node": "n", "Adress": "x"}]}"#);
    d.run(&["-data", "typo.json", "-template", "in.hbs:out", "-once"])
        .code(15)
        .stderr_has("Adress");
    d.run(&["-data", "missing.json", "-template", "in.hbs:out", "-once"])
        .code(15)
        .stderr_has("missing.json");
}

#[test]
fn config_file_sets_perms_backup_and_dest_dirs() {
    let d = setup();
    d.write(
        "c.hcl",
        r#"# consul-template style, HCL1
template {
  source      = "in.hbs"
  destination = "deep/dir/out.conf"
  perms       = 0600
  backup      = true
  wait { min = "1s" max = "2s" }
}
"#,
    );
    d.run(&["-config", "c.hcl", "-data", "data.json", "-once"])
        .code(0);
    let meta = std::fs::metadata(d.join("deep/dir/out.conf")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir_mode = std::fs::metadata(d.join("deep/dir"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o755);
    d.write("data.json", &DATA.replace("hello", "bye"));
    d.run(&["-config", "c.hcl", "-data", "data.json", "-once"])
        .code(0);
    assert_eq!(d.read("deep/dir/out.conf"), "bye 10.0.0.1:80\n");
    assert_eq!(d.read("deep/dir/out.conf.bak"), "hello 10.0.0.1:80\n");
}

#[test]
fn existing_mode_is_kept_and_create_dest_dirs_can_be_off() {
    let d = setup();
    d.write("out", "old\n");
    std::fs::set_permissions(d.join("out"), std::fs::Permissions::from_mode(0o640)).unwrap();
    d.run(&["-data", "data.json", "-template", "in.hbs:out", "-once"])
        .code(0);
    assert_eq!(
        std::fs::metadata(d.join("out"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
    d.write("c.json", r#"{"template": [{"source": "in.hbs", "destination": "no/dir/out", "create_dest_dirs": false}]}"#);
    d.run(&["-config", "c.json", "-data", "data.json", "-once"])
        .code(14)
        .stderr_has("parent directory is missing");
}

#[test]
fn bad_config_files_exit_15_naming_file_and_key() {
    let d = setup();
    d.write(
        "c.hcl",
        "template {\n  source = \"in.hbs\"\n  destnation = \"x\"\n}\n",
    );
    d.run(&["-config", "c.hcl", "-once"])
        .code(15)
        .stderr_has("c.hcl")
        .stderr_has("destnation");
    d.write("s.hcl", "template {\n  source = in.hbs\n}\n");
    d.run(&["-config", "s.hcl", "-once"])
        .code(15)
        .stderr_has("s.hcl: line 2, column 12");
    d.run(&["-config", "nope.hcl", "-once"])
        .code(15)
        .stderr_has("nope.hcl");
}

#[test]
fn config_directory_is_read_in_lexical_order_and_flags_add_templates() {
    let d = setup();
    d.write(
        "conf.d/10-a.hcl",
        "template {\n  contents = \"a={{key \\\"greeting\\\"}}\"\n  destination = \"a.out\"\n}\n",
    );
    d.write(
        "conf.d/20-b.json",
        r#"{"template": {"contents": "b", "destination": "b.out"}, "data": "data.json"}"#,
    );
    d.run(&["-config", "conf.d", "-template", "in.hbs:c.out", "-once"])
        .code(0);
    assert_eq!(d.read("a.out"), "a=hello");
    assert_eq!(d.read("b.out"), "b");
    assert_eq!(d.read("c.out"), "hello 10.0.0.1:80\n");
}

#[test]
fn a_reader_never_sees_a_partial_file() {
    let d = setup();
    let big_a = "A".repeat(400_000);
    let big_b = "B".repeat(400_000);
    d.write("big.hbs", "{{key \"big\"}}");
    d.write("dest", &big_a);
    let dest = d.join("dest");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && reads < 1_000_000 {
                let got = std::fs::read(&dest).expect("the destination always exists");
                assert_eq!(got.len(), 400_000, "partial file seen");
                assert!(got.iter().all(|&b| b == got[0]), "mixed content seen");
                reads += 1;
            }
            reads
        })
    };
    for i in 0..30 {
        let value = if i % 2 == 0 { &big_b } else { &big_a };
        d.write("data.json", &format!(r#"{{"kv": {{"big": "{value}"}}}}"#));
        d.run(&["-data", "data.json", "-template", "big.hbs:dest", "-once"])
            .code(0);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("reader saw only whole files");
    assert!(reads > 0);
    let leftovers = temp_files_left(&d, ".");
    assert_eq!(leftovers, 0, "no temp files left behind");
}

#[test]
fn commands_get_consul_http_addr() {
    let d = setup();
    d.run(&[
        "-consul-addr=10.9.9.9:8500",
        "-data",
        "data.json",
        "-template",
        "in.hbs:out:echo $CONSUL_HTTP_ADDR > addr.txt",
        "-once",
    ])
    .code(0);
    assert_eq!(d.read("addr.txt"), "10.9.9.9:8500\n");
}

fn temp_files_left(d: &Dir, sub: &str) -> usize {
    crate::support::temp_files_left(&d.join(sub))
}

#[test]
fn check_validates_the_candidate_before_it_replaces_the_destination() {
    let d = setup();
    std::fs::create_dir(d.join("etc")).unwrap();
    d.write("etc/conf", "previous\n");
    // Refused: destination byte-for-byte as it was, candidate removed, command not run.
    d.run(&[
        "-data=data.json",
        "-template=in.hbs:etc/conf:touch ran",
        "-check",
        "grep -q nothing-like-this {{path}} || { echo 'config rejected' >&2; exit 2; }",
        "-once",
    ])
    .code(14)
    .stderr_has("refused the new file (exit code 2)")
    .stderr_has("config rejected")
    .stderr_has("the destination is unchanged");
    assert_eq!(d.read("etc/conf"), "previous\n");
    assert!(!d.exists("ran"));
    assert_eq!(temp_files_left(&d, "etc"), 0);
    // Accepted: the check saw the new content at {{path}} and in CONSUL_RENDER_CANDIDATE.
    d.run(&[
        "-data=data.json",
        "-template=in.hbs:etc/conf:touch ran",
        "-check=grep -q hello {{path}} && cp \"$CONSUL_RENDER_CANDIDATE\" seen-by-check",
        "-once",
    ])
    .code(0);
    assert_eq!(d.read("etc/conf"), "hello 10.0.0.1:80\n");
    assert_eq!(d.read("seen-by-check"), "hello 10.0.0.1:80\n");
    assert!(d.exists("ran"));
}

#[test]
fn rollback_restores_the_previous_file_when_the_command_fails() {
    let d = setup();
    d.write(
        "c.hcl",
        r#"template {
  source      = "in.hbs"
  destination = "out.conf"
  command     = "if grep -q bye out.conf; then echo 'reload failed' >&2; exit 1; fi; echo ok >> reloads"
  backup      = true
  rollback    = true
}
"#,
    );
    d.run(&["-config=c.hcl", "-data=data.json", "-once"])
        .code(0);
    d.write("data.json", &DATA.replace("hello", "bye"));
    d.run(&["-config=c.hcl", "-data=data.json", "-once"])
        .code(14)
        .stderr_has("reload failed")
        .stderr_has("rolled back to the previous file(s); the command then succeeded");
    assert_eq!(d.read("out.conf"), "hello 10.0.0.1:80\n");
    assert_eq!(d.read("reloads"), "ok\nok\n");
}

#[test]
fn pid_file_exists_while_running_and_is_removed_after() {
    let d = setup();
    d.run(&[
        "-pid-file=run.pid",
        "-data=data.json",
        "-template=in.hbs:out:cat run.pid > seen-pid",
        "-once",
    ])
    .code(0);
    let pid = d.read("seen-pid");
    assert!(pid.parse::<u32>().is_ok(), "{pid:?}");
    assert!(!d.exists("run.pid"));
}

#[test]
fn a_bad_status_addr_is_an_error_naming_it_and_nothing_is_written() {
    let d = setup();
    d.run(&[
        "-status-addr=nope",
        "-data=data.json",
        "-template=in.hbs:out",
    ])
    .code(14)
    .stderr_has("-status-addr \"nope\": expected HOST:PORT, :PORT or PORT");
    assert!(!d.exists("out"));
}
