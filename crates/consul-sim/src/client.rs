//! The Consul tests talk to: this simulator, or the real agent named by `CONSUL_HTTP_ADDR`,
//! changed only through Consul's own write API; and the writes that make a Consul hold what a
//! consul-render data file describes.

use crate::{Listen, Sim};
use serde_json::{json, Value};

/// The Consul the tests talk to: the simulator, or the real agent named by `CONSUL_HTTP_ADDR`.
/// State is changed only through Consul's own write API, so tests run unchanged against both.
pub struct Consul {
    sim: Option<Sim>,
    /// What `-consul-addr` gets.
    pub addr: String,
    http: reqwest::blocking::Client,
    base: String,
}

impl Consul {
    /// A fresh simulator, or the real agent when `CONSUL_HTTP_ADDR` is set.
    pub fn start() -> Consul {
        match std::env::var("CONSUL_HTTP_ADDR") {
            Ok(addr) if !addr.is_empty() => Consul::real(&addr),
            _ => Consul::with_sim(Sim::start()),
        }
    }

    /// A TCP simulator started with other options.
    pub fn with_sim(sim: Sim) -> Consul {
        let addr = sim.addr.clone();
        let writer = |addr: &str| {
            let mut b = reqwest::blocking::Client::builder().no_proxy();
            // The tests' writes come from another loopback address, as an operator's would come
            // from another machine: the agent counts connections per client address, and the
            // tests count consul-render's alone.
            if addr.starts_with("127.0.0.1:") {
                b = b.local_address(std::net::IpAddr::from([127, 0, 0, 2]));
            }
            b.build().expect("client")
        };
        Consul {
            base: format!("http://{addr}"),
            http: writer(&addr),
            addr,
            sim: Some(sim),
        }
    }

    fn real(addr: &str) -> Consul {
        let base = if addr.starts_with("http") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        Consul {
            addr: addr.to_string(),
            sim: None,
            http: reqwest::blocking::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            base,
        }
    }

    /// The simulator, for tests that need fault injection or counters (None on a real agent:
    /// such tests return early, saying so).
    pub fn sim(&self) -> Option<&Sim> {
        if self.sim.is_none() {
            eprintln!("skipped against a real agent: this test needs the simulator's fault injection or counters");
        }
        self.sim.as_ref()
    }

    fn put(&self, path: &str, body: Vec<u8>) {
        let mut req = self.http.put(format!("{}{path}", self.base)).body(body);
        if let Ok(t) = std::env::var("CONSUL_HTTP_TOKEN") {
            req = req.header("X-Consul-Token", t);
        }
        let resp = req.send().unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        assert!(resp.status().is_success(), "PUT {path}: {}", resp.status());
    }

    /// A simulator holding `data_json`, and the address it listens on, for tests that stop it
    /// (drop the `Consul`) and start it again there (`Consul::restart_at`). `None` against a
    /// real agent, which a test cannot stop.
    pub fn restartable(data_json: &str) -> Option<(Consul, String)> {
        let probe = Consul::start();
        probe.sim()?;
        drop(probe);
        let sim = Sim::start_loaded(Listen::Tcp, None, "agent-node", &writes_for(data_json));
        let addr = sim.addr.clone();
        Some((Consul::with_sim(sim), addr))
    }

    /// A simulator holding `data_json` on `addr` again, after an outage.
    pub fn restart_at(addr: &str, data_json: &str) -> Sim {
        Sim::start_loaded(
            Listen::TcpAt(addr.to_string()),
            None,
            "agent-node",
            &writes_for(data_json),
        )
    }

    /// `GET path` as JSON: `None` on 404.
    pub fn get_json(&self, path: &str) -> Option<Value> {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Ok(t) = std::env::var("CONSUL_HTTP_TOKEN") {
            req = req.header("X-Consul-Token", t);
        }
        let resp = req.send().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        if resp.status() == 404 {
            return None;
        }
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        Some(resp.json().unwrap_or_else(|e| panic!("GET {path}: {e}")))
    }

    /// `PUT /v1/catalog/register`.
    pub fn register(&self, body: Value) {
        self.put("/v1/catalog/register", body.to_string().into_bytes());
    }

    /// Registers `svc-0` … `svc-{n-1}` (`numbered_service`), one instance each.
    pub fn register_numbered(&self, n: usize) {
        for i in 0..n {
            self.register(numbered_service(i));
        }
    }

    /// `PUT /v1/catalog/deregister`.
    pub fn deregister(&self, body: Value) {
        self.put("/v1/catalog/deregister", body.to_string().into_bytes());
    }

    /// `PUT /v1/kv/KEY`.
    pub fn put_kv(&self, key: &str, value: &str) {
        self.put_kv_bytes(key, value.as_bytes());
    }

    /// `PUT /v1/kv/KEY` with any bytes (Consul stores values as bytes).
    pub fn put_kv_bytes(&self, key: &str, value: &[u8]) {
        self.put(&format!("/v1/kv/{key}"), value.to_vec());
    }

    /// Registers a container's port as Registrator does: name from `SERVICE_<port>_NAME`, ID
    /// `<host>:<container>:<port>`, the host's address and the published port.
    pub fn register_container(
        &self,
        host: &str,
        host_ip: &str,
        name: &str,
        container: &str,
        published: u16,
        status: &str,
    ) {
        let id = format!("{host}:{container}:80");
        self.register(json!({
            "Node": host, "Address": host_ip,
            "Service": {"ID": id, "Service": name, "Tags": [], "Address": host_ip, "Port": published},
            "Check": {"CheckID": format!("service:{id}"), "Name": format!("Service '{name}' check"), "Status": status, "ServiceID": id},
        }));
    }

    /// Registers everything a data file (DESIGN.md section 5) describes.
    pub fn load(&self, data_json: &str) {
        for w in writes_for(data_json) {
            match w {
                Write::Register(body) => self.register(body),
                Write::Kv(k, v) => self.put_kv(&k, &v),
            }
        }
    }
}

/// One write to Consul: a catalog registration or a KV pair.
#[derive(Debug, Clone)]
pub enum Write {
    Register(Value),
    Kv(String, String),
}

/// The writes that make a Consul hold what a data file (DESIGN.md section 5) describes.
pub fn writes_for(data_json: &str) -> Vec<Write> {
    let data: consul_render::source::data::DataFile =
        serde_json::from_str(data_json).expect("data file");
    let dc = data.datacenter.clone().unwrap_or_else(|| "dc1".into());
    let mut out = Vec::new();
    for n in &data.nodes {
        out.push(Write::Register(json!({
            "Node": n.node, "Address": n.address, "ID": n.id,
            "Datacenter": n.datacenter.clone().unwrap_or_else(|| dc.clone()),
            "NodeMeta": n.meta, "TaggedAddresses": n.tagged_addresses,
            "Check": {"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing"},
        })));
    }
    for s in &data.services {
        let node = data
            .nodes
            .iter()
            .find(|n| n.node == s.node)
            .expect("service on a listed node");
        let id = if s.id.is_empty() {
            s.service.clone()
        } else {
            s.id.clone()
        };
        let checks: Vec<Value> = match &s.checks {
            // The long form: the service's own checks (the node's come with the node).
            Some(list) => list
                .iter()
                .filter(|c| !c.service_id.is_empty())
                .map(|c| {
                    json!({"CheckID": c.check_id, "Name": c.name, "Status": c.status,
                                "Notes": c.notes, "Output": c.output, "ServiceID": id})
                })
                .collect(),
            None => {
                let status = s.status.clone().unwrap_or_else(|| "passing".into());
                vec![if status == "maintenance" {
                    json!({"CheckID": format!("_service_maintenance:{id}"), "Name": "Service Maintenance Mode", "Status": "critical", "ServiceID": id})
                } else {
                    json!({"CheckID": format!("service:{id}"), "Name": format!("Service '{}' check", s.service), "Status": status, "ServiceID": id})
                }]
            }
        };
        out.push(Write::Register(json!({
            "Node": s.node, "Address": node.address, "ID": node.id,
            "Datacenter": node.datacenter.clone().unwrap_or_else(|| dc.clone()),
            "NodeMeta": node.meta, "TaggedAddresses": node.tagged_addresses,
            "Service": {"ID": id, "Service": s.service, "Tags": s.tags, "Address": s.address, "Port": s.port, "Meta": s.meta},
            "Checks": checks,
        })));
    }
    for (k, v) in &data.kv {
        out.push(Write::Kv(k.clone(), v.text().to_string()));
    }
    out
}

/// The registration of service `svc-{i}`: one instance, port 1000 + i, on one of ten nodes
/// (`node-{i % 10}`), without a check: what the tests of many services register.
pub fn numbered_service(i: usize) -> Value {
    json!({"Node": format!("node-{}", i % 10), "Address": format!("10.0.0.{}", i % 10),
        "Service": {"ID": format!("svc-{i}"), "Service": format!("svc-{i}"), "Port": 1000 + i}})
}
