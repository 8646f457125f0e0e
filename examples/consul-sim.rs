//! The tests' Consul simulator as a program, for trying the blue-green scenario without Docker
//! or Consul (examples/blue-green/run-local.sh starts it).
//!
//!   cargo run --example consul-sim -- [--addr 127.0.0.1:PORT] [--data FILE]
//!
//! Prints the address it listens on, then serves Consul's HTTP API (reads with blocking
//! queries, catalog register/deregister, KV) until it is killed. `--data` preloads a data file
//! (DESIGN.md section 5).

use consul_sim::{writes_for, Listen, Sim};
use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut data) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next(),
            "--data" => data = args.next(),
            other => {
                eprintln!("consul-sim: unknown argument {other:?} (--addr HOST:PORT, --data FILE)");
                std::process::exit(2);
            }
        }
    }
    let writes = match data {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => writes_for(&text),
            Err(e) => {
                eprintln!("consul-sim: {path}: {e}");
                std::process::exit(2);
            }
        },
        None => Vec::new(),
    };
    let listen = match addr {
        Some(a) => Listen::TcpAt(a),
        None => Listen::Tcp,
    };
    let sim = Sim::start_loaded(listen, None, "agent-node", &writes);
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", sim.addr);
    let _ = out.flush();
    loop {
        std::thread::park();
    }
}
