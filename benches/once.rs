//! Wall time and peak RSS of once-mode runs of the real binary (median of many runs):
//! the README's example from its data file, and the blue-green seed's switch line against the
//! Consul simulator with services registered as Registrator does.
//!
//! Run with `cargo bench --bench once`. Figures go to the README's performance section.
//! `CONSUL_RENDER_BIN=path/to/an/older/consul-render` measures that binary instead.

// The integration tests' harness; a bench uses only part of it.
#[path = "../tests/it/support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use nix::sys::resource::{getrusage, UsageWho};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Consul, Dir};

const RUNS: usize = 50;

/// Runs `cmd` RUNS times (after 3 warm-up runs); returns wall times and the peak RSS in KiB.
fn measure(mut make: impl FnMut() -> Command) -> (Vec<Duration>, i64) {
    for _ in 0..3 {
        assert!(make().status().expect("run").success());
    }
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let status = make().status().expect("run");
        times.push(started.elapsed());
        assert!(status.success(), "the measured run failed");
    }
    times.sort();
    let rss = getrusage(UsageWho::RUSAGE_CHILDREN).map_or(-1, |u| u.max_rss());
    (times, rss)
}

fn report(name: &str, (times, rss): (Vec<Duration>, i64)) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: median {:.1} ms, p90 {:.1} ms, max {:.1} ms over {RUNS} runs; peak RSS {:.1} MiB",
        ms(times[RUNS / 2]),
        ms(times[RUNS * 9 / 10]),
        ms(times[RUNS - 1]),
        rss as f64 / 1024.0
    );
}

fn main() {
    let bin = std::env::var("CONSUL_RENDER_BIN").unwrap_or_else(|_| support::BIN.to_string());
    let repo = support::repo();
    let template = repo.join("templates/nginx-blue-green.hbs");
    let d = Dir::new();
    d.write("live", "blue");

    // Each run renders into a fresh destination, so every run writes the file.
    let mut n = 0;
    report(
        "data file, blue-green example",
        measure(|| {
            n += 1;
            let mut c = Command::new(&bin);
            c.current_dir(d.path())
                .env("LIVE_FILE", d.join("live"))
                .arg("-data")
                .arg(repo.join("examples/blue-green/data.json"))
                .arg(format!("-template={}:out-{n}.conf", template.display()))
                .arg("-once");
            c
        }),
    );

    let consul = Consul::start();
    for (host, ip) in [
        ("docker-host-1", "10.0.1.11"),
        ("docker-host-2", "10.0.1.12"),
        ("docker-host-3", "10.0.1.13"),
    ] {
        consul.register_container(host, ip, "blue", "bg_blue", 32768, "passing");
        consul.register_container(host, ip, "green", "bg_green", 32769, "passing");
    }
    let mut n = 0;
    report(
        "seed switch line against the simulator",
        measure(|| {
            n += 1;
            let mut c = Command::new(&bin);
            c.current_dir(d.path())
                .env("LIVE_FILE", d.join("live"))
                .arg(format!("-consul={}", consul.addr))
                .arg(format!(
                    "-template={}:seed-{n}.conf:true",
                    Path::new(&template).display()
                ))
                .args(["-retry", "30s", "-once"])
                .stderr(std::process::Stdio::null());
            c
        }),
    );
}
