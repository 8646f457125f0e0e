//! A Consul agent simulator for tests, following ../`shared/CONSUL_API.md`.
//!
//! Read endpoints with real blocking queries (`index`, `wait`, `X-Consul-*` headers) and
//! per-resource indexes, so a write to one service or key does not wake watchers of another;
//! Consul's write endpoints (catalog register/deregister, KV put/delete) with Go's
//! case-insensitive field names; ACL checking; fault injection and request counters under
//! `/_test/`. It does less than a real agent (no `filter=`, no `near` sorting, no sessions, one
//! agent node) but never answers differently.

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Reported indexes start here, so an index reset can go lower.
const BASE_INDEX: u64 = 1000;
/// Consul caps `wait` at 10 minutes.
const MAX_WAIT: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, Default, PartialEq)]
struct SimNode {
    id: String,
    address: String,
    datacenter: String,
    meta: Map<String, Value>,
    tagged: Map<String, Value>,
    index: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct SimService {
    id: String,
    name: String,
    tags: Vec<String>,
    address: String,
    port: u64,
    meta: Map<String, Value>,
    index: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct SimCheck {
    id: String,
    name: String,
    status: String,
    service_id: String,
    notes: String,
    output: String,
}

#[derive(Clone, Debug, Default)]
struct SimKv {
    value: Vec<u8>,
    flags: u64,
    create: u64,
    modify: u64,
}

/// A fault to inject into `/v1/` reads.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and body.
    Status(u16, String),
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Never answer.
    Hang,
}

#[derive(Default)]
struct Data {
    index: u64,
    /// Subtracted from every reported index (an index reset).
    reset_by: u64,
    datacenter: String,
    agent_node: String,
    nodes: BTreeMap<String, SimNode>,
    /// (node, service id)
    services: BTreeMap<(String, String), SimService>,
    /// (node, check id)
    checks: BTreeMap<(String, String), SimCheck>,
    kv: BTreeMap<String, SimKv>,
    /// Last change per service name, per node, per key (deleted ones kept as tombstones).
    service_index: HashMap<String, u64>,
    node_index: HashMap<String, u64>,
    kv_index: BTreeMap<String, u64>,
    services_table: u64,
    nodes_table: u64,
}

#[derive(Default)]
struct Counters {
    total: u64,
    /// The query strings of the last requests (at most 1,000).
    queries: std::collections::VecDeque<String>,
    per_path: BTreeMap<String, u64>,
    in_flight: u64,
    in_flight_max: u64,
}

struct Shared {
    data: Mutex<Data>,
    changed: watch::Sender<u64>,
    token: Option<String>,
    faults: Mutex<Vec<(Fault, u32, Option<String>)>>,
    counters: Mutex<Counters>,
}

type St = Arc<Shared>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Data {
    fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    fn reported(&self, index: u64) -> u64 {
        index.saturating_sub(self.reset_by).max(1)
    }

    fn service_names_on(&self, node: &str) -> Vec<String> {
        self.services
            .iter()
            .filter(|((n, _), _)| n == node)
            .map(|(_, s)| s.name.clone())
            .collect()
    }

    fn touch_node(&mut self, node: &str, idx: u64) {
        self.node_index.insert(node.to_string(), idx);
        self.nodes_table = idx;
        for name in self.service_names_on(node) {
            self.service_index.insert(name, idx);
        }
    }
}

// ----- case-insensitive request bodies (Go's JSON decoding) -----

fn field<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn text(obj: &Value, name: &str) -> String {
    match field(obj, name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn map(obj: &Value, name: &str) -> Map<String, Value> {
    field(obj, name)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn bad_request(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, msg.to_string()).into_response()
}

// ----- the server -----

/// A running simulator; dropping it stops it.
pub struct Sim {
    shared: St,
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
    /// `support::writes_for` makes them) before it accepts its first connection.
    pub fn start_loaded(
        listen: Listen,
        token: Option<&str>,
        agent_node: &str,
        writes: &[super::Write],
    ) -> Sim {
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            data: Mutex::new(Data {
                index: BASE_INDEX,
                datacenter: "dc1".into(),
                agent_node: agent_node.into(),
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
                    super::Write::Register(body) => apply_register(&shared, body).is_ok(),
                    super::Write::Kv(key, value) => {
                        apply_kv_put(&shared, key, value.as_bytes(), &Params(Vec::new()))
                    }
                };
                assert!(ok, "preloading the simulator failed on {w:?}");
            }
        });
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
                    tokio::spawn(async move { axum::serve(l, app).await.ok() });
                    addr
                }
                Listen::Unix(path) => {
                    let l = tokio::net::UnixListener::bind(&path).expect("bind unix socket");
                    tokio::spawn(async move { axum::serve(l, app).await.ok() });
                    path.display().to_string()
                }
                Listen::Tls { cert_pem, key_pem } => serve_tls(app, &cert_pem, &key_pem).await,
            }
        });
        Sim {
            shared,
            rt: Some(rt),
            addr,
        }
    }

    /// Queues `count` answers of `fault` for `/v1/` reads whose path starts with `path`.
    pub fn fault(&self, fault: Fault, count: u32, path: Option<&str>) {
        lock(&self.shared.faults).push((fault, count, path.map(str::to_string)));
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

    pub fn reset_counters(&self) {
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

async fn serve_tls(app: Router, cert_pem: &str, key_pem: &str) -> String {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let service = TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                }
            });
        }
    });
    addr
}

fn router(st: St) -> Router {
    let v1 = Router::new()
        .route("/v1/health/service/{name}", get(health_service))
        .route("/v1/catalog/service/{name}", get(catalog_service))
        .route("/v1/catalog/services", get(catalog_services))
        .route("/v1/catalog/nodes", get(catalog_nodes))
        .route("/v1/catalog/node/{name}", get(catalog_node))
        .route("/v1/catalog/datacenters", get(datacenters))
        .route("/v1/catalog/register", put(register))
        .route("/v1/catalog/deregister", put(deregister))
        .route(
            "/v1/kv/",
            get(kv_get_root).put(kv_put_root).delete(kv_delete_root),
        )
        .route("/v1/kv/{*key}", get(kv_get).put(kv_put).delete(kv_delete))
        .route(
            "/v1/status/leader",
            get(|| async { Json(json!("127.0.0.1:8300")) }),
        )
        .route("/v1/agent/self", get(agent_self))
        .layer(middleware::from_fn_with_state(st.clone(), faults_and_acl));
    Router::new()
        .merge(v1)
        .layer(middleware::from_fn_with_state(st.clone(), count))
        .with_state(st)
}

async fn count(State(st): State<St>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    {
        let mut c = lock(&st.counters);
        c.total += 1;
        if c.queries.len() >= 1000 {
            c.queries.pop_front();
        }
        c.queries
            .push_back(format!("{path}?{}", req.uri().query().unwrap_or_default()));
        *c.per_path.entry(path).or_default() += 1;
        c.in_flight += 1;
        c.in_flight_max = c.in_flight_max.max(c.in_flight);
    }
    struct Done(St);
    impl Drop for Done {
        fn drop(&mut self) {
            lock(&self.0.counters).in_flight -= 1;
        }
    }
    let _done = Done(st.clone());
    next.run(req).await
}

async fn faults_and_acl(State(st): State<St>, req: Request, next: Next) -> Response {
    if let Some(want) = &st.token {
        let header = req
            .headers()
            .get("X-Consul-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bearer = req
            .headers()
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let query = req.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|p| p.strip_prefix("token=").map(str::to_string))
        });
        if header.or(bearer).or(query).as_deref() != Some(want.as_str()) {
            return (StatusCode::FORBIDDEN, "ACL not found").into_response();
        }
    }
    if req.method() == axum::http::Method::GET {
        let path = req.uri().path().to_string();
        let fault = {
            let mut faults = lock(&st.faults);
            let pos = faults.iter().position(|(_, n, p)| {
                *n > 0 && p.as_ref().is_none_or(|p| path.starts_with(p.as_str()))
            });
            pos.map(|i| {
                faults[i].1 -= 1;
                let f = faults[i].0.clone();
                faults.retain(|(_, n, _)| *n > 0);
                f
            })
        };
        match fault {
            Some(Fault::Status(code, body)) => {
                let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return (code, body).into_response();
            }
            Some(Fault::Garbage) => {
                let idx = lock(&st.data).index;
                let mut r = (
                    StatusCode::OK,
                    "<html><body>502 Bad Gateway from a proxy</body></html>",
                )
                    .into_response();
                r.headers_mut()
                    .insert("X-Consul-Index", HeaderValue::from(idx));
                return r;
            }
            Some(Fault::Hang) => {
                tokio::time::sleep(MAX_WAIT).await;
                return StatusCode::GATEWAY_TIMEOUT.into_response();
            }
            None => {}
        }
    }
    next.run(req).await
}

// ----- blocking reads -----

/// Query parameters of the read endpoints (repeatable `tag` kept as a list).
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    fn has(&self, k: &str) -> bool {
        self.0.iter().any(|(key, _)| key == k)
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn parse_wait(s: &str) -> Duration {
    consul_render::config::duration::parse(s)
        .unwrap_or(Duration::from_secs(300))
        .min(MAX_WAIT)
}

/// What a read computes: the body (or a status), and the index of the resource it read.
enum Read {
    Json(Value, u64),
    Status(StatusCode, String, u64),
    Raw(Vec<u8>, u64),
}

impl Read {
    fn index(&self) -> u64 {
        match self {
            Read::Json(_, i) | Read::Status(_, _, i) | Read::Raw(_, i) => *i,
        }
    }
}

/// Answers at once, or (with `index`) when the resource's index passes it or `wait` runs out.
async fn blocking(st: &St, params: &Params, read: impl Fn(&Data, &Params) -> Read) -> Response {
    let want = params
        .get("index")
        .and_then(|i| i.parse::<u64>().ok())
        .unwrap_or(0);
    let wait = params
        .get("wait")
        .map_or(Duration::from_secs(300), parse_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let mut rx = st.changed.subscribe();
    loop {
        rx.borrow_and_update();
        let (read, reported, stale) = {
            let d = lock(&st.data);
            if let Some(dc) = params.get("dc") {
                let known = dc == d.datacenter || d.nodes.values().any(|n| n.datacenter == dc);
                if !known {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter")
                        .into_response();
                }
            }
            let r = read(&d, params);
            let reported = d.reported(r.index().max(1));
            (r, reported, params.has("stale"))
        };
        // Consul answers when the index moved either way (a lower one is a reset).
        if want == 0 || reported != want {
            return respond(read, reported, stale);
        }
        tokio::select! {
            _ = rx.changed() => {}
            () = tokio::time::sleep_until(deadline) => return respond(read, reported, stale),
        }
    }
}

fn respond(read: Read, index: u64, stale: bool) -> Response {
    let mut r = match read {
        Read::Json(v, _) => Json(v).into_response(),
        Read::Status(code, body, _) => (code, body).into_response(),
        Read::Raw(bytes, _) => bytes.into_response(),
    };
    let h = r.headers_mut();
    h.insert("X-Consul-Index", HeaderValue::from(index));
    h.insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
    h.insert("X-Consul-LastContact", HeaderValue::from_static("0"));
    h.insert(
        "X-Consul-Effective-Consistency",
        HeaderValue::from_static(if stale { "stale" } else { "leader" }),
    );
    r
}

fn params(raw: axum::extract::RawQuery) -> Params {
    let q = raw.0.unwrap_or_default();
    Params(
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect(),
    )
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn dc_of(d: &Data, p: &Params) -> String {
    p.get("dc")
        .map_or_else(|| d.datacenter.clone(), str::to_string)
}

fn node_json(name: &str, n: &SimNode) -> Value {
    json!({"ID": n.id, "Node": name, "Address": n.address, "Datacenter": n.datacenter,
           "TaggedAddresses": n.tagged, "Meta": n.meta, "CreateIndex": n.index, "ModifyIndex": n.index})
}

fn service_json(s: &SimService) -> Value {
    json!({"ID": s.id, "Service": s.name, "Tags": s.tags, "Address": s.address, "Meta": s.meta,
           "Port": s.port, "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": false,
           "TaggedAddresses": {}, "CreateIndex": s.index, "ModifyIndex": s.index})
}

fn check_json(node: &str, c: &SimCheck, service_name: &str) -> Value {
    json!({"Node": node, "CheckID": c.id, "Name": c.name, "Status": c.status, "Notes": c.notes,
           "Output": c.output, "ServiceID": c.service_id, "ServiceName": service_name,
           "ServiceTags": [], "Type": "", "CreateIndex": 1, "ModifyIndex": 1})
}

/// (node name, node, service) for instances of `name` in the query's datacenter with its tags.
fn instances<'a>(
    d: &'a Data,
    p: &Params,
    name: &str,
) -> Vec<(&'a String, &'a SimNode, &'a SimService)> {
    let dc = dc_of(d, p);
    let tags = p.all("tag");
    d.services
        .iter()
        .filter(|(_, s)| s.name == name && tags.iter().all(|t| s.tags.contains(t)))
        .filter_map(|((node, _), s)| d.nodes.get(node).map(|n| (node, n, s)))
        .filter(|(_, n, _)| n.datacenter == dc)
        .collect()
}

fn service_index(d: &Data, name: &str) -> u64 {
    d.service_index
        .get(name)
        .copied()
        .unwrap_or(d.services_table)
}

async fn health_service(
    State(st): State<St>,
    Path(name): Path<String>,
    raw: axum::extract::RawQuery,
) -> Response {
    let p = params(raw);
    if p.has("filter") {
        return bad_request("filter expressions are not supported by the test simulator");
    }
    blocking(&st, &p, |d, p| {
        let mut out = Vec::new();
        for (node, n, s) in instances(d, p, &name) {
            let checks: Vec<&SimCheck> = d
                .checks
                .iter()
                .filter(|((cn, _), c)| {
                    cn == node && (c.service_id.is_empty() || c.service_id == s.id)
                })
                .map(|(_, c)| c)
                .collect();
            if p.has("passing") && checks.iter().any(|c| c.status != "passing") {
                continue;
            }
            let checks: Vec<Value> = checks
                .iter()
                .map(|c| check_json(node, c, if c.service_id.is_empty() { "" } else { &s.name }))
                .collect();
            out.push(
                json!({"Node": node_json(node, n), "Service": service_json(s), "Checks": checks}),
            );
        }
        Read::Json(Value::Array(out), service_index(d, &name))
    })
    .await
}

async fn catalog_service(
    State(st): State<St>,
    Path(name): Path<String>,
    raw: axum::extract::RawQuery,
) -> Response {
    let p = params(raw);
    blocking(&st, &p, |d, p| {
        let out: Vec<Value> = instances(d, p, &name)
            .into_iter()
            .map(|(node, n, s)| {
                json!({"ID": n.id, "Node": node, "Address": n.address, "Datacenter": n.datacenter,
                       "TaggedAddresses": n.tagged, "NodeMeta": n.meta, "ServiceKind": "",
                       "ServiceID": s.id, "ServiceName": s.name, "ServiceTags": s.tags,
                       "ServiceAddress": s.address, "ServiceTaggedAddresses": {}, "ServiceMeta": s.meta,
                       "ServicePort": s.port, "ServiceWeights": {"Passing": 1, "Warning": 1},
                       "ServiceEnableTagOverride": false, "CreateIndex": s.index, "ModifyIndex": s.index})
            })
            .collect();
        Read::Json(Value::Array(out), service_index(d, &name))
    })
    .await
}

async fn catalog_services(State(st): State<St>, raw: axum::extract::RawQuery) -> Response {
    let p = params(raw);
    blocking(&st, &p, |d, p| {
        let dc = dc_of(d, p);
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for ((node, _), s) in &d.services {
            if d.nodes.get(node).is_some_and(|n| n.datacenter == dc) {
                let tags = out.entry(s.name.clone()).or_default();
                for t in &s.tags {
                    if !tags.contains(t) {
                        tags.push(t.clone());
                    }
                }
            }
        }
        Read::Json(json!(out), d.services_table)
    })
    .await
}

async fn catalog_nodes(State(st): State<St>, raw: axum::extract::RawQuery) -> Response {
    let p = params(raw);
    blocking(&st, &p, |d, p| {
        let dc = dc_of(d, p);
        let out: Vec<Value> = d
            .nodes
            .iter()
            .filter(|(_, n)| n.datacenter == dc)
            .map(|(name, n)| node_json(name, n))
            .collect();
        Read::Json(Value::Array(out), d.nodes_table)
    })
    .await
}

async fn catalog_node(
    State(st): State<St>,
    Path(name): Path<String>,
    raw: axum::extract::RawQuery,
) -> Response {
    let p = params(raw);
    blocking(&st, &p, |d, p| {
        let dc = dc_of(d, p);
        let idx = d.node_index.get(&name).copied().unwrap_or(d.nodes_table);
        match d.nodes.get(&name).filter(|n| n.datacenter == dc) {
            None => Read::Json(Value::Null, idx),
            Some(n) => {
                let services: Map<String, Value> = d
                    .services
                    .iter()
                    .filter(|((node, _), _)| node == &name)
                    .map(|(_, s)| (s.id.clone(), service_json(s)))
                    .collect();
                Read::Json(
                    json!({"Node": node_json(&name, n), "Services": services}),
                    idx,
                )
            }
        }
    })
    .await
}

async fn datacenters(State(st): State<St>) -> Response {
    let d = lock(&st.data);
    let mut dcs: Vec<String> = d.nodes.values().map(|n| n.datacenter.clone()).collect();
    dcs.push(d.datacenter.clone());
    dcs.sort();
    dcs.dedup();
    Json(dcs).into_response()
}

async fn agent_self(State(st): State<St>) -> Response {
    let d = lock(&st.data);
    Json(
        json!({"Config": {"Datacenter": d.datacenter, "NodeName": d.agent_node},
                "Member": {"Name": d.agent_node, "Addr": "127.0.0.1"}}),
    )
    .into_response()
}

// ----- writes -----

fn notify(st: &St) {
    st.changed.send_modify(|g| *g += 1);
}

async fn register(State(st): State<St>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Request decode failed: invalid JSON");
    };
    match apply_register(&st, &v) {
        Ok(()) => Json(true).into_response(),
        Err(msg) => bad_request(&msg),
    }
}

/// `PUT /v1/catalog/register` on the state (Go's case-insensitive field names).
fn apply_register(st: &St, v: &Value) -> Result<(), String> {
    let bad_request = |m: &str| -> Result<(), String> { Err(m.to_string()) };
    let node = text(v, "Node");
    let address = text(v, "Address");
    if node.is_empty() || address.is_empty() {
        return bad_request("Must provide node and address");
    }
    {
        let mut d = lock(&st.data);
        let idx = d.bump();
        let dc = match text(v, "Datacenter") {
            s if s.is_empty() => d.datacenter.clone(),
            s => s,
        };
        // Only what changed gets a new index: re-registering an unchanged node must not wake
        // the watchers of every service on it.
        let existing = d.nodes.get(&node).cloned();
        let mut n = existing.clone().unwrap_or_default();
        n.address = address;
        n.datacenter = dc;
        if let Some(id) = field(v, "ID").and_then(Value::as_str) {
            n.id = id.to_string();
        }
        if field(v, "NodeMeta").is_some() {
            n.meta = map(v, "NodeMeta");
        }
        if field(v, "TaggedAddresses").is_some() {
            n.tagged = map(v, "TaggedAddresses");
        }
        if existing.as_ref() != Some(&n) {
            n.index = idx;
            d.nodes.insert(node.clone(), n);
            d.touch_node(&node, idx);
        }
        if let Some(s) = field(v, "Service").filter(|s| s.is_object()) {
            let name = text(s, "Service");
            if name.is_empty() {
                return bad_request("Must provide service name");
            }
            let id = match text(s, "ID") {
                i if i.is_empty() => name.clone(),
                i => i,
            };
            let tags = field(s, "Tags")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let port = field(s, "Port").and_then(Value::as_u64).unwrap_or(0);
            let key = (node.clone(), id.clone());
            let old = d.services.get(&key).cloned();
            let mut service = SimService {
                id,
                name: name.clone(),
                tags,
                address: text(s, "Address"),
                port,
                meta: map(s, "Meta"),
                index: 0,
            };
            service.index = old.as_ref().map_or(0, |o| o.index);
            if old.as_ref() != Some(&service) {
                service.index = idx;
                if let Some(old) = old {
                    d.service_index.insert(old.name, idx);
                }
                d.services.insert(key, service);
                d.service_index.insert(name, idx);
                d.services_table = idx;
            }
        }
        let mut checks: Vec<Value> = field(v, "Checks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(c) = field(v, "Check").filter(|c| c.is_object()) {
            checks.push(c.clone());
        }
        for c in checks {
            let id = match (text(&c, "CheckID"), text(&c, "Name")) {
                (i, _) if !i.is_empty() => i,
                (_, n) if !n.is_empty() => n,
                _ => return bad_request("Must provide a CheckID or Name"),
            };
            let status = match text(&c, "Status") {
                s if s.is_empty() => "critical".to_string(),
                s if ["passing", "warning", "critical"].contains(&s.as_str()) => s,
                other => return bad_request(&format!("Invalid check status: {other:?}")),
            };
            let service_id = text(&c, "ServiceID");
            let check = SimCheck {
                id: id.clone(),
                name: text(&c, "Name"),
                status,
                service_id: service_id.clone(),
                notes: text(&c, "Notes"),
                output: text(&c, "Output"),
            };
            if d.checks.get(&(node.clone(), id.clone())) == Some(&check) {
                continue;
            }
            d.checks.insert((node.clone(), id), check);
            if service_id.is_empty() {
                d.touch_node(&node, idx);
            } else if let Some(s) = d.services.get(&(node.clone(), service_id)).cloned() {
                d.service_index.insert(s.name, idx);
            }
        }
    }
    notify(st);
    Ok(())
}

async fn deregister(State(st): State<St>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Request decode failed: invalid JSON");
    };
    let node = text(&v, "Node");
    if node.is_empty() {
        return bad_request("Must provide node");
    }
    {
        let mut d = lock(&st.data);
        let idx = d.bump();
        let service_id = text(&v, "ServiceID");
        let check_id = text(&v, "CheckID");
        if !service_id.is_empty() {
            if let Some(s) = d.services.remove(&(node.clone(), service_id.clone())) {
                d.service_index.insert(s.name, idx);
                d.services_table = idx;
            }
            d.checks
                .retain(|(n, _), c| !(n == &node && c.service_id == service_id));
            d.node_index.insert(node.clone(), idx);
        } else if !check_id.is_empty() {
            if let Some(c) = d.checks.remove(&(node.clone(), check_id)) {
                match d
                    .services
                    .get(&(node.clone(), c.service_id.clone()))
                    .cloned()
                {
                    Some(s) => {
                        d.service_index.insert(s.name, idx);
                    }
                    None => d.touch_node(&node, idx),
                }
            }
        } else {
            d.touch_node(&node, idx);
            d.nodes.remove(&node);
            d.services.retain(|(n, _), _| n != &node);
            d.checks.retain(|(n, _), _| n != &node);
            d.services_table = idx;
        }
    }
    notify(&st);
    Json(true).into_response()
}

fn kv_pair_json(key: &str, e: &SimKv) -> Value {
    let value = if e.value.is_empty() {
        Value::Null
    } else {
        Value::String(base64::engine::general_purpose::STANDARD.encode(&e.value))
    };
    json!({"Key": key, "Value": value, "Flags": e.flags, "Session": "", "LockIndex": 0,
           "CreateIndex": e.create, "ModifyIndex": e.modify})
}

fn kv_read(d: &Data, p: &Params, key: &str) -> Read {
    if p.get("dc").is_some_and(|dc| dc != d.datacenter) {
        return Read::Status(StatusCode::NOT_FOUND, String::new(), d.index);
    }
    let prefix_index = || {
        d.kv_index
            .range(key.to_string()..)
            .take_while(|(k, _)| k.starts_with(key))
            .map(|(_, i)| *i)
            .max()
            .unwrap_or(d.index)
    };
    if p.has("keys") {
        let sep = p.get("separator").filter(|s| !s.is_empty());
        let mut keys: Vec<String> = Vec::new();
        for k in
            d.kv.range(key.to_string()..)
                .map(|(k, _)| k)
                .take_while(|k| k.starts_with(key))
        {
            let shown = match sep.and_then(|s| k[key.len()..].find(s).map(|i| (i, s.len()))) {
                Some((i, len)) => k[..key.len() + i + len].to_string(),
                None => k.clone(),
            };
            if keys.last() != Some(&shown) {
                keys.push(shown);
            }
        }
        return if keys.is_empty() {
            Read::Status(StatusCode::NOT_FOUND, String::new(), prefix_index())
        } else {
            Read::Json(json!(keys), prefix_index())
        };
    }
    if p.has("recurse") {
        let pairs: Vec<Value> =
            d.kv.range(key.to_string()..)
                .take_while(|(k, _)| k.starts_with(key))
                .map(|(k, e)| kv_pair_json(k, e))
                .collect();
        return if pairs.is_empty() {
            Read::Status(StatusCode::NOT_FOUND, String::new(), prefix_index())
        } else {
            Read::Json(Value::Array(pairs), prefix_index())
        };
    }
    let idx = d.kv_index.get(key).copied().unwrap_or(d.index);
    match d.kv.get(key) {
        None => Read::Status(StatusCode::NOT_FOUND, String::new(), idx),
        Some(e) if p.has("raw") => Read::Raw(e.value.clone(), idx),
        Some(e) => Read::Json(json!([kv_pair_json(key, e)]), idx),
    }
}

async fn kv_get_root(st: State<St>, raw: axum::extract::RawQuery) -> Response {
    kv_get(st, Path(String::new()), raw).await
}

async fn kv_get(
    State(st): State<St>,
    Path(key): Path<String>,
    raw: axum::extract::RawQuery,
) -> Response {
    let p = params(raw);
    let key = key.trim_start_matches('/').to_string();
    blocking(&st, &p, |d, p| kv_read(d, p, &key)).await
}

async fn kv_put_root(st: State<St>, raw: axum::extract::RawQuery, body: Bytes) -> Response {
    kv_put(st, Path(String::new()), raw, body).await
}

async fn kv_put(
    State(st): State<St>,
    Path(key): Path<String>,
    raw: axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    let p = params(raw);
    let key = key.trim_start_matches('/').to_string();
    if key.is_empty() {
        return bad_request("Missing key name");
    }
    Json(apply_kv_put(&st, &key, &body, &p)).into_response()
}

/// `PUT /v1/kv/KEY` on the state (`?flags`, `?cas`); returns Consul's true/false.
fn apply_kv_put(st: &St, key: &str, body: &[u8], p: &Params) -> bool {
    let key = key.to_string();
    let flags = p.get("flags").and_then(|f| f.parse().ok()).unwrap_or(0);
    let ok = {
        let mut d = lock(&st.data);
        let current = d.kv.get(&key).map(|e| e.modify);
        let allowed = match p.get("cas").and_then(|c| c.parse::<u64>().ok()) {
            None => true,
            Some(0) => current.is_none(),
            Some(cas) => current.map(|m| d.reported(m)) == Some(cas),
        };
        if allowed {
            let idx = d.bump();
            let create = d.kv.get(&key).map_or(idx, |e| e.create);
            d.kv.insert(
                key.clone(),
                SimKv {
                    value: body.to_vec(),
                    flags,
                    create,
                    modify: idx,
                },
            );
            d.kv_index.insert(key, idx);
        }
        allowed
    };
    if ok {
        notify(st);
    }
    ok
}

async fn kv_delete_root(st: State<St>, raw: axum::extract::RawQuery) -> Response {
    kv_delete(st, Path(String::new()), raw).await
}

async fn kv_delete(
    State(st): State<St>,
    Path(key): Path<String>,
    raw: axum::extract::RawQuery,
) -> Response {
    let p = params(raw);
    let key = key.trim_start_matches('/').to_string();
    {
        let mut d = lock(&st.data);
        let idx = d.bump();
        let doomed: Vec<String> = if p.has("recurse") {
            d.kv.keys()
                .filter(|k| k.starts_with(&key))
                .cloned()
                .collect()
        } else {
            d.kv.contains_key(&key)
                .then(|| key.clone())
                .into_iter()
                .collect()
        };
        for k in doomed {
            d.kv.remove(&k);
            d.kv_index.insert(k, idx);
        }
    }
    notify(&st);
    Json(true).into_response()
}
