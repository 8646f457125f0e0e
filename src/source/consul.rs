//! Consul's HTTP API as a `Source`: endpoints, headers, TLS, tokens, retries (`CONSUL_API.md`).
//!
//! Every dependency maps to one read endpoint; answers go through `model` like the data file's.
//! The token travels only in `X-Consul-Token` and appears in no message. Errors name the request
//! (`GET /v1/health/service/blue: 403 ACL not found`) and say whether trying again may help:
//! 429, 5xx, connection trouble and bodies that are not Consul's JSON may; 400/403/404 not.
//! One call is one attempt: `source::retry` and the watchers decide about trying again.

use crate::config::{self, ConfigError, Consul, Secret};
use crate::dependency::{Dependency, HealthFilter, QueryParams};
use crate::source::model::{self, CatalogNode, HealthEntry, KvPair, Node};
use crate::source::{Block, FetchFuture, Fetched, Source, SourceError};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest a non-blocking request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an error body a message quotes.
const BODY_CHARS: usize = 200;

/// A Consul agent reached over HTTP(S) or a Unix socket.
pub struct ConsulSource {
    http: reqwest::Client,
    base: Url,
    token: Option<Secret>,
    auth: Option<config::Auth>,
    max_stale: Duration,
    max_response_bytes: u64,
    /// Sent as `ns=` / `partition=` with every request whose query names none.
    namespace: Option<String>,
    partition: Option<String>,
    agent_node: tokio::sync::OnceCell<String>,
    /// The fields `service` instances carry.
    fields: model::Fields,
}

/// One failed attempt, and whether another may succeed.
#[derive(Debug)]
struct Failed {
    retryable: bool,
    message: String,
}

impl Failed {
    fn new(retryable: bool, message: String) -> Failed {
        Failed { retryable, message }
    }
}

/// What an endpoint answered.
struct Answer {
    status: StatusCode,
    index: u64,
    body: Vec<u8>,
    path: String,
}

impl ConsulSource {
    /// Builds the client from the resolved configuration. Bad addresses are flag errors; unreadable
    /// TLS or token files are file errors.
    pub fn new(cfg: &Consul) -> Result<ConsulSource, ConfigError> {
        let t = &cfg.transport;
        let idle_per_host = if t.disable_keep_alives {
            0
        } else {
            t.max_idle_conns_per_host.unwrap_or(cfg.max_connections) as usize
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(t.dial_timeout.unwrap_or(Duration::from_secs(10)))
            .pool_max_idle_per_host(idle_per_host)
            .user_agent(concat!("consul-render/", env!("CARGO_PKG_VERSION")))
            .use_rustls_tls()
            // The system's trust store (built with reqwest's native roots only), as Go's
            // consul-template; a CA flag replaces it.
            .tls_built_in_native_certs(true)
            .redirect(same_origin_redirects());
        if let Some(k) = t.dial_keep_alive {
            builder = builder.tcp_keepalive(k);
        }
        if let Some(i) = t.idle_conn_timeout {
            builder = builder.pool_idle_timeout(i);
        }
        let address = cfg.address.trim();
        // HTTP_PROXY, HTTPS_PROXY and NO_PROXY apply as in Go's consul-template: never to a Unix
        // socket, nor to the loopback (Go does not proxy requests to localhost).
        if address.starts_with("unix://") || is_loopback(address) {
            builder = builder.no_proxy();
        }
        let base = if let Some(path) = address.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(ConfigError::Usage(format!(
                    "invalid Consul address {address:?}: no socket path"
                )));
            }
            builder = builder.unix_socket(std::path::PathBuf::from(path));
            let scheme = if cfg.ssl.enabled { "https" } else { "http" };
            parse_url(&format!("{scheme}://localhost"))?
        } else if address.starts_with("http://") || address.starts_with("https://") {
            parse_url(address)?
        } else {
            let scheme = if cfg.ssl.enabled { "https" } else { "http" };
            parse_url(&format!("{scheme}://{address}"))?
        };
        if base.scheme() == "https" || cfg.ssl.enabled {
            builder = tls(builder, cfg, &base)?;
        }
        let token = match (&cfg.token, &cfg.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(file)) => {
                let text = crate::fsread::read_text(file, crate::limits::INPUT_FILE_BYTES)
                    .map_err(|e| {
                        ConfigError::named(format_args!("Consul token file {}", file.display()), e)
                    })?;
                Some(Secret::new(text.trim()))
            }
            (None, None) => None,
        };
        if let Some(t) = &token {
            // reqwest refuses such a header on every request; that is a configuration error.
            if reqwest::header::HeaderValue::from_str(t.expose()).is_err() {
                return Err(ConfigError::Usage(
                    "the Consul token holds a character a header cannot carry (a newline or \
                     another control character)"
                        .into(),
                ));
            }
        }
        let http = builder
            .build()
            .map_err(|e| ConfigError::Usage(format!("building the Consul client: {e}")))?;
        Ok(ConsulSource {
            http,
            base: with_server_name(base, cfg),
            token,
            auth: cfg.auth.clone(),
            max_stale: cfg.max_stale,
            max_response_bytes: cfg.max_response_bytes,
            namespace: cfg.namespace.clone().filter(|n| !n.is_empty()),
            partition: cfg.partition.clone().filter(|p| !p.is_empty()),
            agent_node: tokio::sync::OnceCell::new(),
            fields: model::Fields::All,
        })
    }

    /// Builds `service` instances with only `fields` (once mode: what the templates can read).
    pub fn with_fields(mut self, fields: model::Fields) -> ConsulSource {
        self.fields = fields;
        self
    }

    /// The URL for `/v1/<segments…>` with `query`.
    fn url(&self, segments: &[&str], query: &[(String, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear().push("v1");
            for s in segments {
                path.push(s);
            }
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                if v.is_empty() {
                    pairs.append_key_only(k);
                } else {
                    pairs.append_pair(k, v);
                }
            }
        }
        url
    }

    /// One GET, with `stale` when allowed (re-asked `consistent` when too stale).
    async fn get(
        &self,
        segments: &[&str],
        mut query: Vec<(String, String)>,
        block: Option<Block>,
    ) -> Result<Answer, Failed> {
        let timeout = match block {
            Some(b) => {
                query.push(("index".into(), b.index.max(1).to_string()));
                query.push(("wait".into(), config::duration::format(b.wait)));
                b.wait + b.wait / 16 + Duration::from_secs(5)
            }
            None => REQUEST_TIMEOUT,
        };
        let stale = !self.max_stale.is_zero();
        let mut q = query.clone();
        if stale {
            q.push(("stale".into(), String::new()));
        }
        let (answer, last_contact) = self.send(segments, &q, timeout).await?;
        if stale && last_contact > self.max_stale {
            tracing::debug!(path = %answer.path, "answer is staler than -max-stale: asking the leader");
            query.push(("consistent".into(), String::new()));
            return self.send(segments, &query, timeout).await.map(|(a, _)| a);
        }
        Ok(answer)
    }

    async fn send(
        &self,
        segments: &[&str],
        query: &[(String, String)],
        timeout: Duration,
    ) -> Result<(Answer, Duration), Failed> {
        let mut query = query.to_vec();
        for (key, value) in [("ns", &self.namespace), ("partition", &self.partition)] {
            if let Some(v) = value {
                if !query.iter().any(|(k, _)| k == key) {
                    query.push((key.to_string(), v.clone()));
                }
            }
        }
        let url = self.url(segments, &query);
        let path = url.path().to_string();
        let endpoint = endpoint(segments);
        let metrics = crate::status::metrics::get();
        let started = std::time::Instant::now();
        metrics.open_connections.inc();
        let result = self.send_inner(url, &path, timeout).await;
        metrics.open_connections.dec();
        metrics
            .consul_request_duration
            .observe(started.elapsed().as_secs_f64());
        let code = match &result {
            Ok((a, _)) => a.status.as_u16().to_string(),
            Err(_) => "error".to_string(),
        };
        metrics
            .consul_requests
            .get_or_create(&crate::status::metrics::EndpointCode { endpoint, code })
            .inc();
        match &result {
            Ok((a, _)) if !a.status.is_server_error() => crate::status::state().consul_ok(),
            _ => crate::status::state().consul_failed(),
        }
        result
    }

    async fn send_inner(
        &self,
        url: Url,
        path: &str,
        timeout: Duration,
    ) -> Result<(Answer, Duration), Failed> {
        let path = path.to_string();
        let mut req = self.http.get(url).timeout(timeout);
        if let Some(t) = &self.token {
            req = req.header("X-Consul-Token", t.expose());
        }
        if let Some(a) = &self.auth {
            req = req.basic_auth(&a.username, a.password.as_ref().map(Secret::expose));
        }
        let resp = req.send().await.map_err(|e| {
            // reqwest's message names the URL (never the token, which is a header).
            Failed::new(true, format!("GET {path}: {}", describe_transport(&e)))
        })?;
        let status = resp.status();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let index = header("X-Consul-Index").unwrap_or(0);
        let last_contact = Duration::from_millis(header("X-Consul-LastContact").unwrap_or(0));
        if status.is_redirection() {
            let to = resp
                .headers()
                .get("Location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            return Err(Failed::new(
                false,
                format!(
                    "GET {path}: {status} redirect to another origin ({to}) not followed: Consul's \
                     API does not redirect, and the token is never sent elsewhere; use that \
                     address as -consul-addr"
                ),
            ));
        }
        let body = self.read_body(resp, &path).await?;
        Ok((
            Answer {
                status,
                index,
                body,
                path,
            },
            last_contact,
        ))
    }

    /// The answer's body, refusing one over `max_response_bytes` before it is all read.
    async fn read_body(&self, mut resp: reqwest::Response, path: &str) -> Result<Vec<u8>, Failed> {
        let limit = self.max_response_bytes;
        let too_big = || {
            Failed::new(
                true,
                format!("GET {path}: the answer is over the limit of {limit} bytes (-max-response-bytes)"),
            )
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_big());
        }
        // Chunks are kept as they come and joined once at the end: a growing buffer would
        // leave its doubled copies behind, several times the answer's size.
        let mut chunks = Vec::new();
        let mut total: u64 = 0;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    total += chunk.len() as u64;
                    if total > limit {
                        return Err(too_big());
                    }
                    chunks.push(chunk);
                }
                Ok(None) => return Ok(chunks.concat()),
                Err(e) => {
                    return Err(Failed::new(
                        true,
                        format!("GET {path}: reading the answer: {}", describe_transport(&e)),
                    ))
                }
            }
        }
    }

    /// The agent's own node name, asked once.
    async fn agent_node(&self) -> Result<String, Failed> {
        self.agent_node
            .get_or_try_init(|| async {
                let a = self.get(&["agent", "self"], Vec::new(), None).await?;
                let v: Value = ok_json(&a)?;
                v.pointer("/Config/NodeName")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        Failed::new(
                            false,
                            format!("GET {}: no Config.NodeName in the answer", a.path),
                        )
                    })
            })
            .await
            .cloned()
    }

    /// One attempt at a dependency.
    async fn attempt(
        &self,
        dep: &Dependency,
        block: Option<Block>,
    ) -> Result<Fetched, SourceError> {
        self.try_fetch(dep, block).await.map_err(|f| {
            if f.retryable {
                SourceError::Retryable(f.message)
            } else {
                SourceError::Fatal(f.message)
            }
        })
    }

    async fn try_fetch(&self, dep: &Dependency, block: Option<Block>) -> Result<Fetched, Failed> {
        match dep {
            Dependency::Service(q) => {
                let mut query = common(&q.dc, q.near.as_ref(), &q.query);
                if let Some(t) = &q.tag {
                    query.push(("tag".into(), t.clone()));
                }
                if q.filter == HealthFilter::PassingOnly {
                    query.push(("passing".into(), String::new()));
                }
                let a = self
                    .get(&["health", "service", &q.name], query, block)
                    .await?;
                let entries: Vec<HealthEntry> = ok_json(&a)?;
                Ok(fetched(
                    Some(model::instances(&entries, q, &self.fields)),
                    a.index,
                ))
            }
            Dependency::Services { dc, query } => {
                let a = self
                    .get(&["catalog", "services"], common(dc, None, query), block)
                    .await?;
                let map: BTreeMap<String, Option<Vec<String>>> = ok_json(&a)?;
                let map = map
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect();
                Ok(fetched(Some(model::services(&map)), a.index))
            }
            Dependency::Nodes { dc, near, query } => {
                let a = self
                    .get(
                        &["catalog", "nodes"],
                        common(dc, near.as_ref(), query),
                        block,
                    )
                    .await?;
                let nodes: Vec<Node> = ok_json(&a)?;
                Ok(fetched(Some(model::nodes(&nodes, near.is_some())), a.index))
            }
            Dependency::Node { name, dc, query } => {
                let name = match name {
                    Some(n) => n.clone(),
                    None => self.agent_node().await?,
                };
                let a = self
                    .get(&["catalog", "node", &name], common(dc, None, query), block)
                    .await?;
                let node: Option<CatalogNode> = ok_json(&a)?;
                let value = node.as_ref().map_or_else(model::empty_node, model::node);
                Ok(fetched(Some(value), a.index))
            }
            Dependency::Datacenters { ignore_failing } => {
                let a = self
                    .get(&["catalog", "datacenters"], Vec::new(), None)
                    .await?;
                let mut dcs: Vec<String> = ok_json(&a)?;
                dcs.sort();
                if *ignore_failing {
                    // consul-template asks each for its services (consistent) and keeps those
                    // that answer.
                    let mut answering = Vec::with_capacity(dcs.len());
                    for dc in dcs {
                        let q = vec![
                            ("dc".to_string(), dc.clone()),
                            ("consistent".to_string(), String::new()),
                        ];
                        if self
                            .send(&["catalog", "services"], &q, REQUEST_TIMEOUT)
                            .await
                            .is_ok_and(|(a, _)| a.status.is_success())
                        {
                            answering.push(dc);
                        }
                    }
                    dcs = answering;
                }
                Ok(fetched(Some(Value::from(dcs)), a.index))
            }
            Dependency::Key { path, dc, query } => {
                let segments: Vec<&str> = std::iter::once("kv").chain(path.split('/')).collect();
                let a = self.get(&segments, common(dc, None, query), block).await?;
                if a.status == StatusCode::NOT_FOUND {
                    return Ok(fetched(None, a.index));
                }
                let pairs: Vec<KvPair> = ok_json(&a)?;
                text_only(&pairs, &a.path)?;
                Ok(fetched(pairs.first().map(model::kv_pair), a.index))
            }
            Dependency::KeyPrefix { prefix, dc, query } => {
                let segments: Vec<&str> = std::iter::once("kv").chain(prefix.split('/')).collect();
                let mut q = common(dc, None, query);
                q.push(("recurse".into(), String::new()));
                let a = self.get(&segments, q, block).await?;
                let pairs: Vec<KvPair> = if a.status == StatusCode::NOT_FOUND {
                    Vec::new()
                } else {
                    ok_json(&a)?
                };
                text_only(&pairs, &a.path)?;
                Ok(fetched(Some(model::kv_list(&pairs, prefix)), a.index))
            }
            Dependency::File { .. } => Err(Failed::new(
                false,
                format!("{dep} is not a Consul dependency"),
            )),
        }
    }
}

impl Source for ConsulSource {
    fn fetch<'a>(&'a self, dep: &'a Dependency, block: Option<Block>) -> FetchFuture<'a> {
        Box::pin(self.attempt(dep, block))
    }
}

/// True when `address` (`host:port`, or a URL) names this machine: 127.0.0.0/8, `::1`, localhost.
fn is_loopback(address: &str) -> bool {
    let url = if address.contains("://") {
        Url::parse(address)
    } else {
        Url::parse(&format!("http://{address}"))
    };
    let Some(url) = url.ok() else { return false };
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The endpoint a request went to, without its names (`health/service`, `kv`), for metrics.
fn endpoint(segments: &[&str]) -> String {
    match segments {
        ["kv", ..] => "kv".into(),
        [a, b, ..] => format!("{a}/{b}"),
        [a] => (*a).to_string(),
        [] => String::new(),
    }
}

/// Follows a redirect only within the origin the request went to: `X-Consul-Token` is our own
/// header, which reqwest would carry to any host (it strips only `Authorization` and cookies).
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if !same || attempt.previous().len() > 5 {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// Refuses KV values that are not UTF-8 text, naming the key (not worth a retry).
fn text_only(pairs: &[KvPair], path: &str) -> Result<(), Failed> {
    for p in pairs {
        p.check_text()
            .map_err(|why| Failed::new(false, format!("GET {path}: {why}")))?;
    }
    Ok(())
}

fn parse_url(s: &str) -> Result<Url, ConfigError> {
    Url::parse(s).map_err(|e| ConfigError::Usage(format!("invalid Consul address {s:?}: {e}")))
}

/// `-consul-ssl-server-name`: connect to the configured address but verify (and send SNI for)
/// the given name, by addressing the name and resolving it to the configured host.
fn with_server_name(base: Url, cfg: &Consul) -> Url {
    match (&cfg.ssl.server_name, base.scheme()) {
        (Some(name), "https") if base.host_str() != Some(name.as_str()) => {
            let mut u = base.clone();
            if u.set_host(Some(name)).is_ok() {
                u
            } else {
                base
            }
        }
        _ => base,
    }
}

fn read_file(what: &str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    crate::fsread::read(path, crate::limits::INPUT_FILE_BYTES)
        .map_err(|e| ConfigError::named(format_args!("{what} {}", path.display()), e))
}

/// TLS settings: CA file or directory, client certificate and key, verify, server name.
fn tls(
    mut b: reqwest::ClientBuilder,
    cfg: &Consul,
    base: &Url,
) -> Result<reqwest::ClientBuilder, ConfigError> {
    let ssl = &cfg.ssl;
    let bad = |what: &str, p: &std::path::Path, e: reqwest::Error| {
        ConfigError::named(format_args!("{what} {}", p.display()), e)
    };
    if ssl.ca_cert.is_some() || ssl.ca_path.is_some() || ssl.ca_cert_pem.is_some() {
        // The given CA replaces the trust roots: a public CA must not vouch for the agent.
        b = b.tls_built_in_root_certs(false);
    }
    let mut roots = 0;
    if let Some(ca) = &ssl.ca_cert {
        let certs = reqwest::Certificate::from_pem_bundle(&read_file("CA certificate", ca)?)
            .map_err(|e| bad("CA certificate", ca, e))?;
        if certs.is_empty() {
            return Err(ConfigError::named(
                format_args!("CA certificate {}", ca.display()),
                "no PEM certificate in the file",
            ));
        }
        for cert in certs {
            b = b.add_root_certificate(cert);
            roots += 1;
        }
    }
    if let Some(pem) = &ssl.ca_cert_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| ConfigError::named("consul.ssl.ca_cert_bytes", e))?;
        if certs.is_empty() {
            return Err(ConfigError::named(
                "consul.ssl.ca_cert_bytes",
                "no PEM certificate in it",
            ));
        }
        for cert in certs {
            b = b.add_root_certificate(cert);
            roots += 1;
        }
    }
    if let Some(dir) = &ssl.ca_path {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| ConfigError::named(format_args!("CA path {}", dir.display()), e))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        for p in paths {
            let pem = read_file("CA certificate", &p)?;
            // A directory may hold other files (hash links, READMEs): skip what is not a certificate.
            if let Ok(certs) = reqwest::Certificate::from_pem_bundle(&pem) {
                for cert in certs {
                    b = b.add_root_certificate(cert);
                    roots += 1;
                }
            }
        }
        if roots == 0 {
            return Err(ConfigError::named(
                format_args!("CA path {}", dir.display()),
                "no PEM certificate in the directory",
            ));
        }
    }
    match (&ssl.cert, &ssl.key) {
        (Some(cert), key) => {
            let mut pem = read_file("client certificate", cert)?;
            if let Some(key) = key {
                pem.push(b'\n');
                pem.extend(read_file("client key", key)?);
            }
            b = b.identity(
                reqwest::Identity::from_pem(&pem)
                    .map_err(|e| bad("client certificate", cert, e))?,
            );
        }
        (None, Some(key)) => {
            return Err(ConfigError::Usage(format!(
                "-consul-ssl-key {} needs -consul-ssl-cert",
                key.display()
            )));
        }
        (None, None) => {}
    }
    if !ssl.verify {
        b = b.danger_accept_invalid_certs(true);
    }
    if let (Some(name), Some(host)) = (&ssl.server_name, base.host_str()) {
        if name != host {
            let port = base.port_or_known_default().unwrap_or(443);
            let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
                .ok()
                .and_then(|mut addrs| addrs.next())
                .ok_or_else(|| {
                    ConfigError::Usage(format!("cannot resolve the Consul address {host}"))
                })?;
            b = b.resolve(name, addr);
        }
    }
    Ok(b)
}

fn common(
    dc: &Option<String>,
    near: Option<&String>,
    extra: &QueryParams,
) -> Vec<(String, String)> {
    let mut q = Vec::new();
    if let Some(dc) = dc {
        q.push(("dc".into(), dc.clone()));
    }
    if let Some(n) = near {
        q.push(("near".into(), n.clone()));
    }
    q.extend(extra.iter().cloned());
    q
}

fn fetched(value: Option<Value>, index: u64) -> Fetched {
    Fetched { value, index }
}

/// A 200 answer's JSON, or why not: Consul's status and body, or a body that is not the JSON
/// this endpoint returns (a proxy in the way, a broken agent).
fn ok_json<T: DeserializeOwned>(a: &Answer) -> Result<T, Failed> {
    if a.status != StatusCode::OK {
        let body = String::from_utf8_lossy(&a.body);
        let body: String = body.trim().chars().take(BODY_CHARS).collect();
        let code = a.status.as_u16();
        let retryable = code == 429 || a.status.is_server_error();
        return Err(Failed::new(
            retryable,
            format!("GET {}: {} {body}", a.path, code)
                .trim_end()
                .to_string(),
        ));
    }
    serde_json::from_slice(&a.body).map_err(|e| {
        let start: String = String::from_utf8_lossy(&a.body).chars().take(60).collect();
        Failed::new(
            true,
            format!(
                "GET {}: the answer is not Consul's JSON ({e}); it starts {start:?}",
                a.path
            ),
        )
    })
}

/// reqwest's error without the URL's query string, with its cause chain.
fn describe_transport(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consul(address: &str) -> Consul {
        let mut c = crate::config::Config::resolve(
            &<crate::cli::Args as clap::Parser>::parse_from(["x", "--template=in.hbs:out.conf"]),
            &|_| None,
        )
        .unwrap()
        .consul;
        c.address = address.into();
        c
    }

    #[test]
    fn loopback_addresses_are_never_proxied() {
        for a in [
            "127.0.0.1:8500",
            "http://localhost:8500",
            "https://[::1]:8501",
            "127.9.9.9",
        ] {
            assert!(is_loopback(a), "{a}");
        }
        for a in [
            "consul.internal:8500",
            "http://10.0.0.1:8500",
            "https://[2001:db8::1]",
        ] {
            assert!(!is_loopback(a), "{a}");
        }
    }

    #[test]
    fn address_forms() {
        let s = ConsulSource::new(&consul("127.0.0.1:8500")).unwrap();
        assert_eq!(s.base.as_str(), "http://127.0.0.1:8500/");
        let s = ConsulSource::new(&consul("https://consul.example:8501")).unwrap();
        assert_eq!(s.base.scheme(), "https");
        let s = ConsulSource::new(&consul("unix:///tmp/consul.sock")).unwrap();
        assert_eq!(s.base.as_str(), "http://localhost/");
        assert!(ConsulSource::new(&consul("unix://")).is_err());
        assert!(ConsulSource::new(&consul("http://[bad")).is_err());
    }

    #[test]
    fn urls_encode_keys_and_flags() {
        let s = ConsulSource::new(&consul("127.0.0.1:8500")).unwrap();
        let u = s.url(
            &["kv", "a b", "c?d", ""],
            &[
                ("recurse".into(), String::new()),
                ("dc".into(), "dc1".into()),
            ],
        );
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8500/v1/kv/a%20b/c%3Fd/?recurse&dc=dc1"
        );
    }
}
