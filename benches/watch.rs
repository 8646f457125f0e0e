//! Watch mode: time from a Consul write (`PUT /v1/catalog/register` to the simulator) to the
//! destination file being replaced, over 200 changes; and the watcher's peak RSS with the
//! blue-green template and with 1,000 services.
//!
//! Run with `cargo bench --bench watch`. The blue-green run spaces changes 150 ms apart; the
//! back-to-back run makes each change as soon as the previous one reached the file (a deploy
//! registering instances one after another), which a watcher must not hold back: it waits
//! 100 ms between two fetches only when the first brought no change.

// The integration tests' harness; a bench uses only part of it.
#[path = "../tests/it/support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};
use support::{wait_until, Consul, Dir};

const CHANGES: usize = 200;

/// Polls `done` every 100 µs; the time since `started` when it holds (change `i` of `bg`).
fn until(
    started: Instant,
    i: usize,
    bg: &support::Background,
    mut done: impl FnMut() -> bool,
) -> Duration {
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no update for change {i}\n{}",
            bg.log()
        );
        std::thread::sleep(Duration::from_micros(100));
    }
    started.elapsed()
}

fn report(what: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: median {:.2} ms, p99 {:.2} ms, max {:.2} ms over {CHANGES} changes",
        ms(latencies[CHANGES / 2]),
        ms(latencies[CHANGES * 99 / 100]),
        ms(latencies[CHANGES - 1])
    );
}

fn inode(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.ino())
}

fn blue_green() {
    let c = Consul::start();
    for (host, ip) in [
        ("docker-host-1", "10.0.1.11"),
        ("docker-host-2", "10.0.1.12"),
    ] {
        c.register_container(host, ip, "blue", "bg_blue", 32768, "passing");
        c.register_container(host, ip, "green", "bg_green", 32769, "passing");
    }
    let d = Dir::new();
    d.write("live", "blue");
    let template = support::repo().join("templates/nginx-blue-green.hbs");
    let bg = d.spawn_cmd(
        d.cmd()
            .env("LIVE_FILE", d.join("live"))
            .arg(format!("-consul-addr={}", c.addr))
            .arg(format!("-template={}:nginx.conf", template.display())),
    );
    let conf = d.join("nginx.conf");
    wait_until("the first render", Duration::from_secs(20), || {
        conf.exists()
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut latencies = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let before = inode(&conf);
        let port = if i % 2 == 0 { 32778 } else { 32768 };
        let started = Instant::now();
        c.register(json!({"Node": "docker-host-1", "Address": "10.0.1.11",
            "Service": {"ID": "docker-host-1:bg_blue:80", "Service": "blue", "Address": "10.0.1.11", "Port": port}}));
        latencies.push(until(started, i, &bg, || inode(&conf) != before));
        std::thread::sleep(Duration::from_millis(150));
    }
    report("blue-green, Consul write to file replaced", latencies);
    println!(
        "blue-green watcher peak RSS: {:.1} MiB",
        support::peak_rss_kib(bg.pid()) as f64 / 1024.0
    );
}

fn back_to_back() {
    let c = Consul::start();
    c.register(json!({"Node": "docker-host-1", "Address": "10.0.1.11",
        "Service": {"ID": "web-1", "Service": "web", "Address": "10.0.1.11", "Port": 8000}}));
    let d = Dir::new();
    d.write(
        "in.hbs",
        "{{#each (service \"web\")}}server {{Address}}:{{Port}};\n{{/each}}",
    );
    let bg = d.spawn(&[
        &format!("-consul-addr={}", c.addr),
        "-template=in.hbs:out.conf",
    ]);
    let conf = d.join("out.conf");
    wait_until("the first render", Duration::from_secs(20), || {
        conf.exists()
    });
    let mut latencies = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let port = 8001 + i;
        let want = format!("10.0.1.11:{port};");
        let started = Instant::now();
        c.register(json!({"Node": "docker-host-1", "Address": "10.0.1.11",
            "Service": {"ID": "web-1", "Service": "web", "Address": "10.0.1.11", "Port": port}}));
        latencies.push(until(started, i, &bg, || {
            std::fs::read_to_string(&conf)
                .unwrap_or_default()
                .contains(&want)
        }));
    }
    report("back-to-back changes, Consul write to file", latencies);
}

fn thousand_services() {
    let c = Consul::start();
    c.register_numbered(1000);
    let d = Dir::new();
    d.write("in.hbs", "{{#each (services)}}{{#each (service Name)}}server {{Address}}:{{Port}};\n{{/each}}{{/each}}");
    let started = Instant::now();
    let bg = d.spawn(&[
        &format!("-consul-addr={}", c.addr),
        "-template=in.hbs:out.conf",
    ]);
    wait_until("1000 services", Duration::from_secs(60), || {
        d.lines("out.conf") == 1000
    });
    let first = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "1000 services: first complete render after {:.0} ms; watcher peak RSS {:.1} MiB",
        first.as_secs_f64() * 1000.0,
        support::peak_rss_kib(bg.pid()) as f64 / 1024.0
    );
}

fn main() {
    blue_green();
    back_to_back();
    thousand_services();
}
