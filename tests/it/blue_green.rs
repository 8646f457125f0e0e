//! The blue-green scenario of the seed documents: the bundled template and example data,
//! checked by real nginx, and compared with what the seed's Go template renders.

use crate::support::{content_lines, nginx_test, repo, Dir, Run};

const TEMPLATE: &str = "templates/nginx-blue-green.hbs";

fn render(d: &Dir, data: &std::path::Path, live: &str, env: &[(&str, &str)]) -> String {
    d.write("live", live);
    let template = repo().join(TEMPLATE);
    let mut cmd = d.cmd();
    cmd.env("LIVE_FILE", d.join("live"))
        .env_remove("BLUE_NAME")
        .env_remove("GREEN_NAME")
        .env_remove("LIVE_PORT")
        .env_remove("STANDBY_PORT")
        .env_remove("LISTEN_ADDRESS")
        .args(["-data"])
        .arg(data)
        .arg("-template")
        .arg(format!("{}:nginx.conf", template.display()))
        .arg("-once");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::of(&mut cmd).code(0);
    d.read("nginx.conf")
}

#[test]
fn example_renders_a_config_nginx_accepts() {
    let d = Dir::new();
    let conf = render(
        &d,
        &repo().join("examples/blue-green/data.json"),
        "blue\n",
        &[],
    );
    let (ok, out) = nginx_test(&d.join("nginx.conf"), d.path());
    assert!(ok, "nginx -t rejected the rendered config:\n{out}\n{conf}");
    assert!(conf.contains("server 10.0.1.11:32768 max_fails=3 fail_timeout=60 weight=1;"));
    assert!(
        !conf.contains(":32770"),
        "the critical blue instance is left out:\n{conf}"
    );
    assert!(
        !conf.contains("55000"),
        "both colours have healthy instances"
    );
    let live = conf.split("listen 80 default;").nth(1).unwrap();
    assert!(
        live.trim_start().contains("proxy_pass http://blue;"),
        "{conf}"
    );
}

#[test]
fn a_colour_with_no_healthy_instance_gets_the_fallback_server() {
    let d = Dir::new();
    let data = d.write(
        "data.json",
        r#"{"nodes": [{"Node": "h1", "Address": "10.0.1.11"}],
            "services": [
              {"Node": "h1", "ID": "b1", "Service": "blue", "Port": 32768},
              {"Node": "h1", "ID": "g1", "Service": "green", "Port": 32769, "Status": "critical"}
            ]}"#,
    );
    let conf = render(&d, &data, "green", &[]);
    let green = conf
        .split("upstream green {")
        .nth(1)
        .unwrap()
        .split('}')
        .next()
        .unwrap();
    assert!(green.contains("server 127.0.0.1:55000;"), "{conf}");
    assert!(!green.contains("32769"), "{conf}");
    let (ok, out) = nginx_test(&d.join("nginx.conf"), d.path());
    assert!(ok, "{out}\n{conf}");
}

#[test]
fn ports_names_and_address_come_from_the_environment() {
    let d = Dir::new();
    let data = d.write(
        "data.json",
        r#"{"nodes": [{"Node": "h1", "Address": "10.0.1.11"}],
            "services": [{"Node": "h1", "ID": "x1", "Service": "app-v1", "Port": 9001},
                         {"Node": "h1", "ID": "y1", "Service": "app-v2", "Port": 9002}]}"#,
    );
    let env = [
        ("BLUE_NAME", "app-v1"),
        ("GREEN_NAME", "app-v2"),
        ("LIVE_PORT", "18080"),
        ("STANDBY_PORT", "18081"),
        ("LISTEN_ADDRESS", "127.0.0.1"),
    ];
    let conf = render(&d, &data, "  green \n", &env);
    assert!(conf.contains("listen 127.0.0.1:18080 default;"), "{conf}");
    assert!(conf.contains("listen 127.0.0.1:18081;"), "{conf}");
    assert!(conf.contains("server 10.0.1.11:9001"), "{conf}");
    let live = conf
        .split("listen 127.0.0.1:18080 default;")
        .nth(1)
        .unwrap();
    assert!(
        live.trim_start().contains("proxy_pass http://green;"),
        "whitespace around the colour is trimmed:\n{conf}"
    );
}

#[test]
fn matches_the_seed_go_template_ignoring_blank_lines() {
    let d = Dir::new();
    // The seed's switch.sh writes the colour with `echo -n`.
    let ours = render(
        &d,
        &repo().join("tests/fixtures/seed/data.json"),
        "green",
        &[],
    );
    let expected =
        std::fs::read_to_string(repo().join("tests/fixtures/seed/expected-go.conf")).unwrap();
    assert_eq!(
        content_lines(&ours),
        content_lines(&expected),
        "ours:\n{ours}"
    );
    let (ok, out) = nginx_test(&d.join("nginx.conf"), d.path());
    assert!(ok, "{out}");
}

#[test]
fn nginx_check_keeps_a_config_nginx_rejects_off_the_disk() {
    let d = Dir::new();
    d.write("live", "blue");
    let good = std::fs::read_to_string(repo().join(TEMPLATE)).unwrap();
    d.write("t.hbs", &good);
    let check = format!(
        "{} -t -c {{{{path}}}} -p {} -g 'pid {}/check.pid; error_log stderr;'",
        crate::support::nginx().display(),
        d.path().display(),
        d.path().display()
    );
    let data = repo().join("examples/blue-green/data.json");
    let run = |d: &Dir| {
        Run::of(
            d.cmd()
                .env("LIVE_FILE", d.join("live"))
                .arg("-data")
                .arg(&data)
                .args(["-template", "t.hbs:nginx.conf", "-check", &check, "-once"]),
        )
    };
    run(&d).code(0);
    let accepted = d.read("nginx.conf");
    // A template change that nginx rejects: the file on disk stays as it was.
    d.write(
        "t.hbs",
        &good.replace("least_conn;", "least_conn;\n    no_such_directive on;"),
    );
    run(&d)
        .code(14)
        .stderr_has("unknown directive \"no_such_directive\"")
        .stderr_has("the destination is unchanged");
    assert_eq!(d.read("nginx.conf"), accepted);
}
