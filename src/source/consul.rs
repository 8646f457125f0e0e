//! Consul's HTTP API as a `Source`: endpoints, headers, TLS, tokens, retries (`CONSUL_API.md`).
//!
//! Every dependency maps to one read endpoint; answers go through `model` like the data file's.
//! The token travels only in `X-Consul-Token` and appears in no message. Errors name the request
//! (`GET /v1/health/service/blue: 403 ACL not found`) and say whether trying again may help:
//! 429, 5xx, connection trouble and bodies that are not Consul's JSON may; 400/403/404 not.
//! One call is one attempt: `source::retry` and the watchers decide about trying again.

use crate::config::{self, ConfigError, Consul, Secret};
use crate::dependency::Dependency;
use crate::source::model;
use crate::source::{Block, FetchFuture, Fetched, Source, SourceError};

mod client;
mod endpoints;
mod transport;
use http::StatusCode;
use serde_json::Value;
use std::time::Duration;
use url::Url;

/// Longest a non-blocking request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an error body a message quotes.
const BODY_CHARS: usize = 200;

/// A Consul agent reached over HTTP(S) or a Unix socket.
pub struct ConsulSource {
    http: transport::Http,
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
    fields: model::FieldSet,
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

/// A request's method and body.
struct Body {
    method: http::Method,
    bytes: bytes::Bytes,
}

impl Body {
    fn get() -> Body {
        Body {
            method: http::Method::GET,
            bytes: bytes::Bytes::new(),
        }
    }
}

/// What `ConsulSource::call` got back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// `X-Consul-Index` (0 when absent).
    pub index: u64,
    pub body: Vec<u8>,
    /// The request's path, for messages.
    pub path: String,
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
        let client::Client { http, base, token } = client::build(cfg)?;
        Ok(ConsulSource {
            http,
            base,
            token,
            auth: cfg.auth.clone(),
            max_stale: cfg.max_stale,
            max_response_bytes: cfg.max_response_bytes,
            namespace: cfg.namespace.clone().filter(|n| !n.is_empty()),
            partition: cfg.partition.clone().filter(|p| !p.is_empty()),
            agent_node: tokio::sync::OnceCell::new(),
            fields: model::FieldSet::default(),
        })
    }

    /// Builds `service` instances with only `fields` (what the templates can read).
    pub fn with_fields(mut self, fields: model::FieldSet) -> ConsulSource {
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
        let timeout = with_block(&mut query, block);
        let stale = !self.max_stale.is_zero();
        let mut q = query.clone();
        if stale {
            q.push(("stale".into(), String::new()));
        }
        let get = Body::get();
        let (answer, last_contact) = self.send(&get, segments, &q, timeout).await?;
        if stale && last_contact > self.max_stale {
            tracing::debug!(path = %answer.path, "answer is staler than -max-stale: asking the leader");
            query.push(("consistent".into(), String::new()));
            return self
                .send(&get, segments, &query, timeout)
                .await
                .map(|(a, _)| a);
        }
        Ok(answer)
    }

    /// One request to any endpoint (sessions, KV writes: `dedup`), one attempt: its status,
    /// index and body, whatever the status. With `block`, a blocking GET. Errors are
    /// connection trouble and timeouts (retryable).
    pub async fn call(
        &self,
        method: http::Method,
        segments: &[&str],
        mut query: Vec<(String, String)>,
        body: Vec<u8>,
        block: Option<Block>,
    ) -> Result<Reply, SourceError> {
        let timeout = with_block(&mut query, block);
        let body = Body {
            method,
            bytes: body.into(),
        };
        let (a, _) = self
            .send(&body, segments, &query, timeout)
            .await
            .map_err(|f| SourceError::Retryable(f.message))?;
        Ok(Reply {
            status: a.status.as_u16(),
            index: a.index,
            body: a.body,
            path: a.path,
        })
    }

    async fn send(
        &self,
        req: &Body,
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
        let result = self.send_inner(req, url, &path, timeout).await;
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
        req: &Body,
        url: Url,
        path: &str,
        timeout: Duration,
    ) -> Result<(Answer, Duration), Failed> {
        let method = &req.method;
        let timed_out = || {
            Failed::new(
                true,
                format!("{method} {path}: timed out after {timeout:?}"),
            )
        };
        tokio::time::timeout(timeout, self.exchange(req, url, path))
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }

    /// One request and its whole answer, following redirects within the origin.
    async fn exchange(
        &self,
        req: &Body,
        mut url: Url,
        path: &str,
    ) -> Result<(Answer, Duration), Failed> {
        let path = path.to_string();
        let origin = url.origin();
        let method = &req.method;
        let mut hops = 0;
        loop {
            let resp = self.request(req, &url, &path).await?;
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
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?");
                // `X-Consul-Token` is our own header: it may go only where the first request went.
                match url.join(to) {
                    Ok(next) if next.origin() == origin && hops < 5 => {
                        hops += 1;
                        url = next;
                        continue;
                    }
                    _ => {
                        return Err(Failed::new(
                            false,
                            format!(
                                "{method} {path}: {status} redirect to another origin ({to}) not \
                                 followed: Consul's API does not redirect, and the token is never \
                                 sent elsewhere; use that address as -consul-addr"
                            ),
                        ))
                    }
                }
            }
            let body = self
                .read_body(resp.into_body(), &format!("{method} {path}"))
                .await?;
            return Ok((
                Answer {
                    status,
                    index,
                    body,
                    path,
                },
                last_contact,
            ));
        }
    }

    /// Sends one request and waits for the answer's head.
    async fn request(
        &self,
        body: &Body,
        url: &Url,
        path: &str,
    ) -> Result<http::Response<hyper::body::Incoming>, Failed> {
        let method = &body.method;
        let failed = |e: String| Failed::new(true, format!("{method} {path}: {e}"));
        let uri: http::Uri = url
            .as_str()
            .parse()
            .map_err(|e| Failed::new(false, format!("{method} {path}: {e}")))?;
        let mut req = http::Request::builder()
            .method(method.clone())
            .uri(uri.clone())
            .header(
                http::header::USER_AGENT,
                concat!("consul-render/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(t) = &self.token {
            req = req.header("X-Consul-Token", t.expose());
        }
        if let Some(a) = &self.auth {
            use base64::Engine as _;
            let pair = format!(
                "{}:{}",
                a.username,
                a.password.as_ref().map_or("", Secret::expose)
            );
            let value = base64::engine::general_purpose::STANDARD.encode(pair);
            req = req.header(http::header::AUTHORIZATION, format!("Basic {value}"));
        }
        if let Some(p) = self.http.proxy_authorization(&uri) {
            req = req.header(http::header::PROXY_AUTHORIZATION, p);
        }
        let req = req
            .body(http_body_util::Full::new(body.bytes.clone()))
            .map_err(|e| failed(e.to_string()))?;
        // The error names no URL, so never the query's values nor the token (a header).
        self.http
            .client
            .request(req)
            .await
            .map_err(|e| failed(describe_transport(&e)))
    }

    /// The answer's body, refusing one over `max_response_bytes` before it is all read.
    async fn read_body(
        &self,
        mut body: hyper::body::Incoming,
        request: &str,
    ) -> Result<Vec<u8>, Failed> {
        use http_body_util::BodyExt as _;
        use hyper::body::Body as _;
        let limit = self.max_response_bytes;
        let too_big = || {
            Failed::new(
                true,
                format!("{request}: the answer is over the limit of {limit} bytes (-max-response-bytes)"),
            )
        };
        if body.size_hint().exact().is_some_and(|n| n > limit) {
            return Err(too_big());
        }
        // With a known length, each chunk is copied into the answer and dropped at once, which
        // lets hyper reuse its read buffer. Without one (Consul chunks every answer over 2 KiB),
        // chunks are kept as they come and joined once at the end: a growing buffer would leave
        // its doubled copies behind, several times the answer's size.
        let mut whole = body
            .size_hint()
            .exact()
            .and_then(|n| usize::try_from(n).ok())
            .map(Vec::with_capacity);
        let mut chunks = Vec::new();
        let mut total: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                Failed::new(
                    true,
                    format!("{request}: reading the answer: {}", describe_error(&e)),
                )
            })?;
            if let Ok(chunk) = frame.into_data() {
                total += chunk.len() as u64;
                if total > limit {
                    return Err(too_big());
                }
                match &mut whole {
                    Some(w) => w.extend_from_slice(&chunk),
                    None => chunks.push(chunk),
                }
            }
        }
        Ok(whole.unwrap_or_else(|| chunks.concat()))
    }

    /// The agent's own node name, asked once.
    async fn agent_node(&self) -> Result<String, Failed> {
        self.agent_node
            .get_or_try_init(|| async {
                let a = self.get(&["agent", "self"], Vec::new(), None).await?;
                let v: Value = endpoints::ok_json(&a)?;
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
}

impl Source for ConsulSource {
    fn fetch<'a>(&'a self, dep: &'a Dependency, block: Option<Block>) -> FetchFuture<'a> {
        Box::pin(self.attempt(dep, block))
    }
}

/// Adds a blocking query's `index` and `wait` to `query`; the request's timeout.
fn with_block(query: &mut Vec<(String, String)>, block: Option<Block>) -> Duration {
    match block {
        Some(b) => {
            query.push(("index".into(), b.index.max(1).to_string()));
            query.push(("wait".into(), config::duration::format(b.wait)));
            blocking_timeout(b.wait)
        }
        None => REQUEST_TIMEOUT,
    }
}

/// How long a blocking query with `wait` may take: Consul adds up to wait/16 of jitter.
fn blocking_timeout(wait: Duration) -> Duration {
    wait + wait / 16 + Duration::from_secs(5)
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

/// The client's error, saying whether connecting failed, with its cause chain.
fn describe_transport(e: &hyper_util::client::legacy::Error) -> String {
    let what = if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    format!("{what}{}", causes(e))
}

/// An error and its cause chain.
fn describe_error(e: &dyn std::error::Error) -> String {
    format!("{e}{}", causes(e))
}

/// `: cause: cause…` for each error under `e`.
fn causes(e: &dyn std::error::Error) -> String {
    let mut msg = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests;
