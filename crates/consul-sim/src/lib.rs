//! A Consul agent simulator for tests, following ../`shared/CONSUL_API.md`.
//!
//! Read endpoints with real blocking queries (`index`, `wait`, `X-Consul-*` headers) and
//! per-resource indexes, so a write to one service or key does not wake watchers of another;
//! Consul's write endpoints (catalog register/deregister, KV put/delete) with Go's
//! case-insensitive field names; ACL checking; fault injection and request counters under
//! `/_test/`. It does less than a real agent (no `filter=`, no `near` sorting, no sessions, one
//! agent node) but never answers differently.

mod blocking;
mod client;
mod conns;
mod reads;
mod routes;
mod sessions;
mod state;
mod tls;
mod writes;

pub use client::{numbered_service, writes_for, Consul, Write};
pub use conns::{DEFAULT_LIMIT as DEFAULT_CONNECTION_LIMIT, REFUSAL as CONNECTION_REFUSAL};
pub use routes::Fault;

use blocking::Params;
use routes::router;
use state::{lock, Counters, Data, Shared, SimNode, St, BASE_INDEX};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tls::serve_tls;
use tokio::sync::watch;
use writes::{apply_kv_put, apply_register};

// ----- the server -----

/// A running simulator; dropping it stops it.
pub struct Sim {
    shared: St,
    conns: Arc<conns::Conns>,
    rt: Option<tokio::runtime::Runtime>,
    /// `127.0.0.1:PORT`, or the socket path for a Unix socket.
    pub addr: String,
}

/// How the simulator listens.
pub enum Listen {
    Tcp,
    /// TCP on this address (to restart a stopped simulator on its port).
    TcpAt(String),
    Unix(std::path::PathBuf),
    /// TLS with this certificate chain and key (PEM).
    Tls {
        cert_pem: String,
        key_pem: String,
    },
}

impl Sim {
    /// Starts a plain-HTTP simulator on 127.0.0.1 and a free port.
    pub fn start() -> Sim {
        Sim::start_with(Listen::Tcp, None)
    }

    /// Starts a simulator; with `token`, every `/v1/` request must carry it.
    pub fn start_with(listen: Listen, token: Option<&str>) -> Sim {
        Sim::start_full(listen, token, "agent-node")
    }

    /// Starts a simulator whose agent runs on the node `agent_node`.
    pub fn start_full(listen: Listen, token: Option<&str>, agent_node: &str) -> Sim {
        Sim::start_loaded(listen, token, agent_node, &[])
    }

    /// Starts a simulator holding `writes` (catalog registrations and KV pairs, as
    /// `writes_for` makes them) before it accepts its first connection.
    pub fn start_loaded(
        listen: Listen,
        token: Option<&str>,
        agent_node: &str,
        writes: &[Write],
    ) -> Sim {
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            data: Mutex::new(Data {
                index: BASE_INDEX,
                datacenter: "dc1".into(),
                agent_node: agent_node.into(),
                session_ttl_min: sessions::DEFAULT_TTL_MIN,
                ..Data::default()
            }),
            changed,
            token: token.map(str::to_string),
            faults: Mutex::new(Vec::new()),
            counters: Mutex::new(Counters::default()),
        });
        {
            // The agent's own node exists, as on a real agent.
            let mut d = lock(&shared.data);
            let idx = d.bump();
            let dc = d.datacenter.clone();
            d.nodes.insert(
                agent_node.into(),
                SimNode {
                    id: "00000000-0000-0000-0000-000000000001".into(),
                    address: "127.0.0.1".into(),
                    datacenter: dc,
                    index: idx,
                    ..SimNode::default()
                },
            );
            d.touch_node(agent_node, idx);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("simulator runtime");
        rt.block_on(async {
            for w in writes {
                let ok = match w {
                    Write::Register(body) => apply_register(&shared, body).is_ok(),
                    Write::Kv(key, value) => {
                        apply_kv_put(&shared, key, value.as_bytes(), &Params(Vec::new()))
                    }
                };
                assert!(ok, "preloading the simulator failed on {w:?}");
            }
        });
        rt.spawn(sessions::reaper(shared.clone()));
        let conns = Arc::new(conns::Conns::default());
        let app = router(shared.clone());
        let addr = rt.block_on(async {
            match listen {
                Listen::Tcp | Listen::TcpAt(_) => {
                    let at = match &listen {
                        Listen::TcpAt(a) => a.clone(),
                        _ => "127.0.0.1:0".to_string(),
                    };
                    let l = tokio::net::TcpListener::bind(&at).await.expect("bind");
                    let addr = l.local_addr().expect("addr").to_string();
                    let l = conns::Limited {
                        listener: l,
                        conns: conns.clone(),
                    };
                    tokio::spawn(async move { axum::serve(l, app).await.ok() });
                    addr
                }
                Listen::Unix(path) => {
                    let l = tokio::net::UnixListener::bind(&path).expect("bind unix socket");
                    tokio::spawn(async move { axum::serve(l, app).await.ok() });
                    path.display().to_string()
                }
                Listen::Tls { cert_pem, key_pem } => {
                    serve_tls(app, &cert_pem, &key_pem, conns.clone()).await
                }
            }
        });
        Sim {
            shared,
            conns,
            rt: Some(rt),
            addr,
        }
    }

    /// Queues `count` answers of `fault` for `/v1/` reads whose path starts with `path`.
    pub fn fault(&self, fault: Fault, count: u32, path: Option<&str>) {
        self.queue(fault, count, path, false);
    }

    /// Queues `count` answers of `fault` for `/v1/` writes (PUT, DELETE) whose path starts with
    /// `path` (a session Consul will not create, say).
    pub fn fault_writes(&self, fault: Fault, count: u32, path: &str) {
        self.queue(fault, count, Some(path), true);
    }

    fn queue(&self, fault: Fault, count: u32, path: Option<&str>, writes: bool) {
        lock(&self.shared.faults).push(state::Queued {
            fault,
            count,
            path: path.map(str::to_string),
            writes,
        });
    }

    /// Makes every index reported from now on lower than before (a snapshot restore).
    pub fn reset_index(&self) {
        let mut d = lock(&self.shared.data);
        d.reset_by = d.index - 1;
        drop(d);
        self.shared.changed.send_modify(|g| *g += 1);
    }

    /// Requests seen so far: total, per path.
    pub fn requests(&self) -> (u64, BTreeMap<String, u64>) {
        let c = lock(&self.shared.counters);
        (c.total, c.per_path.clone())
    }

    /// The last requests' paths and query strings (`/v1/kv/a?ns=x`), oldest first.
    pub fn queries(&self) -> Vec<String> {
        lock(&self.shared.counters)
            .queries
            .iter()
            .cloned()
            .collect()
    }

    /// Requests open now.
    pub fn in_flight(&self) -> u64 {
        lock(&self.shared.counters).in_flight
    }

    /// The most requests that were open at once.
    pub fn max_in_flight(&self) -> u64 {
        lock(&self.shared.counters).in_flight_max
    }

    /// Consul's `http_max_conns_per_client` (default 200): connections from one address beyond
    /// it get `429` and Consul's text.
    pub fn limit_connections(&self, limit: usize) {
        self.conns.set_limit(limit);
    }

    /// Consul's `session_ttl_min` (default 10s): the shortest session TTL accepted. Tests lower
    /// it, as an agent's configuration can, so that a session expires within seconds.
    pub fn session_ttl_min(&self, min: Duration) {
        lock(&self.shared.data).session_ttl_min = min;
    }

    /// Connections open now (TCP and TLS listeners).
    pub fn connections_open(&self) -> usize {
        self.conns.open()
    }

    /// The most connections one client had open at once.
    pub fn peak_connections(&self) -> usize {
        self.conns.peak()
    }

    /// Connections refused for being over the limit.
    pub fn refused_connections(&self) -> u64 {
        self.conns.refused()
    }

    pub fn reset_counters(&self) {
        self.conns.reset();
        *lock(&self.shared.counters) = Counters::default();
    }

    /// Stops serving: open connections are dropped and the port is free again.
    pub fn stop(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
