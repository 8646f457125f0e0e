//! `-status-addr` through the binary: /health, /ready across the first render and a Consul
//! outage, and /metrics read by prometheus-client's own `OpenMetrics` parser.

use crate::support::{free_port, repo, wait_until, Consul, Dir};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

const DATA: &str = r#"{"nodes": [{"Node": "n1", "Address": "10.0.0.1"}],
  "services": [{"Node": "n1", "ID": "web-1", "Service": "web", "Port": 80}], "kv": {}}"#;

/// GET `path` on 127.0.0.1:`port`: (status, body), or an error text.
fn get(port: u16, path: &str) -> Result<(u16, String), String> {
    let resp = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().map_err(|e| e.to_string())?))
}

/// The samples of `/metrics` as prometheus-client's parser reads them, one per line.
fn parsed_metrics(port: u16) -> String {
    let (code, text) = get(port, "/metrics").expect("/metrics");
    assert_eq!(code, 200);
    let python = repo().join("target/py-venv/bin/python");
    assert!(python.exists(), "run scripts/install-test-deps");
    let mut child = std::process::Command::new(python)
        .arg(repo().join("tests/py/parse_metrics.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "prometheus-client cannot parse /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the sample line starting with `prefix`.
fn sample(parsed: &str, prefix: &str) -> Option<f64> {
    parsed
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[test]
fn health_ready_and_metrics_follow_renders_commands_and_outages() {
    let Some((c, addr)) = Consul::restartable(DATA) else {
        return;
    };
    let d = Dir::new();
    d.write(
        "in.hbs",
        "{{key \"live\"}}{{#each (service \"web\")}} {{ID}}{{/each}}\n",
    );
    let port = free_port();
    let mut bg = d.spawn(&[
        &format!("-consul-addr={}", c.addr),
        "-template=in.hbs:out.conf:echo run >> runs",
        &format!("-status-addr={port}"),
        "-status-consul-timeout=1s",
        "-consul-retry-backoff=100ms",
        "-consul-retry-max-backoff=300ms",
    ]);
    wait_until("the status server", LIMIT, || get(port, "/health").is_ok());
    assert_eq!(get(port, "/health").unwrap().0, 200);
    // The key "live" does not exist yet: not ready.
    let (code, body) = get(port, "/ready").unwrap();
    assert_eq!(
        (code, body.contains("waiting for the first render")),
        (503, true),
        "{body}"
    );
    c.put_kv("live", "blue");
    wait_until("the first render", LIMIT, || d.lines("runs") == 1);
    wait_until("ready", LIMIT, || {
        get(port, "/ready").is_ok_and(|(c, _)| c == 200)
    });

    let m = parsed_metrics(port);
    let has = |prefix: &str| sample(&m, prefix).unwrap_or(0.0);
    assert!(
        has("consul_render_renders_total{result=\"ok\",template=\"in.hbs\"}") >= 1.0,
        "{m}"
    );
    assert!(
        has("consul_render_renders_total{result=\"incomplete\",template=\"in.hbs\"}") >= 1.0,
        "{m}"
    );
    assert_eq!(
        has("consul_render_writes_total{template=\"in.hbs\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        has("consul_render_commands_total{result=\"ok\",template=\"in.hbs\"}"),
        1.0,
        "{m}"
    );
    assert!(
        has("consul_render_consul_requests_total{code=\"200\",endpoint=\"health/service\"}") >= 1.0,
        "{m}"
    );
    assert!(
        has("consul_render_consul_requests_total{code=\"404\",endpoint=\"kv\"}") >= 1.0,
        "{m}"
    );
    assert_eq!(has("consul_render_consul_up{}"), 1.0, "{m}");
    assert_eq!(has("consul_render_dependencies{}"), 2.0, "{m}");
    assert!(
        has("consul_render_last_success_timestamp_seconds{template=\"in.hbs\"}") > 1.0e9,
        "{m}"
    );
    assert!(
        has("consul_render_command_duration_seconds_count{}") >= 1.0,
        "{m}"
    );
    assert_eq!(has("consul_render_build_info{version="), 1.0, "{m}");
    assert!(has("process_resident_memory_bytes{}") > 1.0e6, "{m}");
    assert!(has("process_open_fds{}") >= 3.0, "{m}");

    // A change moves the counters.
    c.put_kv("live", "green");
    wait_until("the second render", LIMIT, || d.lines("runs") == 2);
    let m = parsed_metrics(port);
    assert_eq!(
        sample(&m, "consul_render_writes_total{template=\"in.hbs\"}"),
        Some(2.0),
        "{m}"
    );

    // Consul goes away: after -status-consul-timeout /ready says why; /health stays 200.
    drop(c);
    wait_until("not ready during the outage", LIMIT, || {
        get(port, "/ready")
            .is_ok_and(|(c, b)| c == 503 && b.contains("Consul has been unreachable"))
    });
    assert_eq!(get(port, "/health").unwrap().0, 200);
    assert_eq!(
        sample(&parsed_metrics(port), "consul_render_consul_up{}"),
        Some(0.0)
    );
    // Back on the same port: ready again.
    let _sim = Consul::restart_at(&addr, DATA);
    wait_until("ready after the outage", LIMIT, || {
        get(port, "/ready").is_ok_and(|(c, _)| c == 200)
    });
    assert_eq!(bg.wait_exit(Duration::ZERO), None, "{}", bg.log());
}
