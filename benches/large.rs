//! Whole-process once-mode runs on large catalogs, side by side with jq producing the same text
//! from the same file: median wall time of 10 runs and peak RSS, each command measured in a
//! process of its own (so one's peak RSS is not another's).
//!
//! `cargo bench --bench large` (needs jq). Figures go to the README's performance section.
//! `CONSUL_RENDER_BIN=path/to/an/older/consul-render` measures that binary instead (before and
//! after figures from one machine in one sitting).

#[path = "support/catalog.rs"]
mod catalog;

use nix::sys::resource::{getrusage, UsageWho};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_consul-render");
const RUNS: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--measure") {
        return measure(&args[at + 1..]);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let write = |name: &str, text: &str| std::fs::write(path(name), text).expect("write");
    write("100x100.json", &catalog::data_json(100, 100));
    write("1000x100.json", &catalog::data_json(1000, 100));
    write("1x10000.json", &catalog::data_json(1, 10_000));
    write("upstreams.hbs", catalog::UPSTREAMS);
    write("upstreams.jq", catalog::UPSTREAMS_JQ);
    write(
        "one.hbs",
        "{{#each (service \"svc-0\")}}{{Address}}:{{Port}}\n{{/each}}",
    );
    write(
        "one.jq",
        r#".services | map(select(.Service == "svc-0")) | sort_by(.Node, .ID) | .[] | "\(.Address):\(.Port)""#,
    );
    write("len.hbs", "{{len (service \"svc-0\")}}\n");
    write(
        "len.jq",
        r#".services | map(select(.Service == "svc-0")) | length"#,
    );
    write("empty.hbs", "\n");
    let bin = std::env::var("CONSUL_RENDER_BIN").unwrap_or_else(|_| BIN.to_string());
    let cr = |data: &str, template: &str| {
        vec![
            bin.clone(),
            "-data".into(),
            path(data),
            "-template".into(),
            path(template),
            "-once".into(),
            "-dry".into(),
        ]
    };
    let jq = |data: &str, program: &str| {
        vec![
            "jq".to_string(),
            "-r".into(),
            "-f".into(),
            path(program),
            path(data),
        ]
    };
    let cases = [
        (
            "10,000 instances in 100 services, `services` then `service` each",
            "100x100.json",
            "upstreams",
        ),
        (
            "100,000 instances in 1,000 services, the same template",
            "1000x100.json",
            "upstreams",
        ),
        (
            "10,000 instances of one service, one `#each`",
            "1x10000.json",
            "one",
        ),
        (
            "`len (service \"svc-0\")` over the same 10,000",
            "1x10000.json",
            "len",
        ),
    ];
    println!("| case | consul-render | jq, same text from the same file |");
    println!("|---|---|---|");
    for (what, data, t) in cases {
        let ours = run(&cr(data, &format!("{t}.hbs")));
        let theirs = run(&jq(data, &format!("{t}.jq")));
        println!("| {what} | {ours} | {theirs} |");
    }
    let load = run(&cr("100x100.json", "empty.hbs"));
    let jq_load = run(&["jq".into(), "length".into(), path("100x100.json")]);
    println!("| loading the 1.5 MB file, empty template (jq: `length`) | {load} | {jq_load} |");
}

/// Measures `cmd` in a child process of its own; returns "median ms, peak MiB".
fn run(cmd: &[String]) -> String {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .arg("--measure")
        .args(cmd)
        .output()
        .expect("measure");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `cmd` RUNS times (after one warm-up) and prints its median wall time and peak RSS.
fn measure(cmd: &[String]) {
    let once = || {
        let started = Instant::now();
        let status = Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdout(Stdio::null())
            .status()
            .expect("spawn");
        assert!(status.success(), "{cmd:?} failed");
        started.elapsed()
    };
    once();
    let mut times: Vec<Duration> = (0..RUNS).map(|_| once()).collect();
    times.sort();
    let rss = getrusage(UsageWho::RUSAGE_CHILDREN).map_or(-1, |u| u.max_rss());
    println!(
        "{:.0} ms, {:.1} MiB",
        times[RUNS / 2].as_secs_f64() * 1000.0,
        rss as f64 / 1024.0
    );
}
