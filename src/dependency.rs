//! What a helper needs (a `Dependency`), and consul-template's query-string grammar for naming it.
//!
//! Grammar (consul-template's `dependency/*.go`): `[tag.]name[?query][@dc][~near][|filter,…]`.
//! Tags may hold `[\w=:.-]` (the last `.` splits tag from name), service names `[\w-]`, node
//! names may hold dots, filters are `any`, `passing`, `warning`, `critical`, `maintenance`.
//! Two helpers naming the same thing get equal `Dependency` values, so it is fetched once.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::sync::LazyLock;

/// An instance's aggregated health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Status {
    Passing,
    Warning,
    Critical,
    Maintenance,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Maintenance => "maintenance",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "passing" => Some(Status::Passing),
            "warning" => Some(Status::Warning),
            "critical" => Some(Status::Critical),
            "maintenance" => Some(Status::Maintenance),
            _ => None,
        }
    }
}

/// Which instances a `service` query keeps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HealthFilter {
    /// No filter given: Consul's `passing` filter, server side.
    PassingOnly,
    /// `|any`: every instance.
    Any,
    /// `|passing,warning`: instances whose aggregated status is in the list.
    Statuses(Vec<Status>),
}

impl HealthFilter {
    pub fn accepts(&self, status: Status) -> bool {
        match self {
            HealthFilter::PassingOnly => status == Status::Passing,
            HealthFilter::Any => true,
            HealthFilter::Statuses(list) => list.contains(&status),
        }
    }
}

/// Enterprise and peering parameters of `?query` (passed to Consul as they are).
pub type QueryParams = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceQuery {
    pub name: String,
    pub tag: Option<String>,
    pub dc: Option<String>,
    pub near: Option<String>,
    pub filter: HealthFilter,
    pub query: QueryParams,
}

/// Something a template needs from outside (serialized in dedup mode's shared data).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dependency {
    /// `service`: healthy instances with node and checks.
    Service(ServiceQuery),
    /// `services`: service names and tags.
    Services {
        dc: Option<String>,
        query: QueryParams,
    },
    /// `nodes`.
    Nodes {
        dc: Option<String>,
        near: Option<String>,
        query: QueryParams,
    },
    /// `node`: one node and its services; `None` = the agent's own node.
    Node {
        name: Option<String>,
        dc: Option<String>,
        query: QueryParams,
    },
    /// `datacenters`, or `datacenters true`: only those that answer a query.
    Datacenters { ignore_failing: bool },
    /// `key`, `keyExists`, `keyOrDefault`: one KV entry.
    Key {
        path: String,
        dc: Option<String>,
        query: QueryParams,
    },
    /// `ls`, `tree`, `safeLs`, `safeTree`: every entry under a prefix.
    KeyPrefix {
        prefix: String,
        dc: Option<String>,
        query: QueryParams,
    },
    /// Every health check in the agent's datacenter (`/v1/health/state/any`): what watch mode
    /// blocks on to learn which services changed when it watches more of them than it has
    /// connections. No helper asks for it.
    HealthState,
    /// Every service's tags in the agent's datacenter (`/v1/catalog/services`), as a number per
    /// service: the change detector's catalog query beside `HealthState`, which needs no copy of
    /// the `services` list. No helper asks for it.
    ServiceTags,
    /// One node and its services (`/v1/catalog/node/:node`) as numbers: the change detector's
    /// query on each node, which needs no copy of the `node` helper's value. No helper asks
    /// for it.
    NodeServices { name: String },
    /// `file`: a local file's contents, read within the template's `sandbox_path` if any.
    File {
        path: PathBuf,
        sandbox: Option<PathBuf>,
    },
}

impl Dependency {
    /// True when the value comes from Consul (or the data file standing in for it).
    pub fn is_consul(&self) -> bool {
        !matches!(self, Dependency::File { .. })
    }
}

fn suffix(dc: &Option<String>, near: Option<&String>, query: &QueryParams) -> String {
    let mut s = String::new();
    if !query.is_empty() {
        let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push('?');
        s.push_str(&q.join("&"));
    }
    if let Some(dc) = dc {
        s.push('@');
        s.push_str(dc);
    }
    if let Some(n) = near {
        s.push('~');
        s.push_str(n);
    }
    s
}

impl fmt::Display for Dependency {
    /// consul-template's dependency names, so users can match them with its docs and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dependency::Service(q) => {
                write!(f, "health.service(")?;
                if let Some(t) = &q.tag {
                    write!(f, "{t}.")?;
                }
                write!(f, "{}{}", q.name, suffix(&q.dc, q.near.as_ref(), &q.query))?;
                match &q.filter {
                    HealthFilter::PassingOnly => write!(f, "|passing")?,
                    HealthFilter::Any => write!(f, "|any")?,
                    HealthFilter::Statuses(l) => {
                        let names: Vec<&str> = l.iter().map(|s| s.as_str()).collect();
                        write!(f, "|{}", names.join(","))?;
                    }
                }
                write!(f, ")")
            }
            Dependency::Services { dc, query } => {
                write!(f, "catalog.services({})", suffix(dc, None, query))
            }
            Dependency::Nodes { dc, near, query } => {
                write!(f, "catalog.nodes({})", suffix(dc, near.as_ref(), query))
            }
            Dependency::Node { name, dc, query } => write!(
                f,
                "catalog.node({}{})",
                name.as_deref().unwrap_or(""),
                suffix(dc, None, query)
            ),
            Dependency::Datacenters { ignore_failing } => {
                write!(f, "catalog.datacenters(ignore_failing={ignore_failing})")
            }
            Dependency::Key { path, dc, query } => {
                write!(f, "kv.block({path}{})", suffix(dc, None, query))
            }
            Dependency::KeyPrefix { prefix, dc, query } => {
                write!(f, "kv.list({prefix}{})", suffix(dc, None, query))
            }
            Dependency::HealthState => f.write_str("health.state(any)"),
            Dependency::ServiceTags => f.write_str("catalog.services(tags)"),
            Dependency::NodeServices { name } => write!(f, "catalog.node({name})(services)"),
            Dependency::File { path, .. } => write!(f, "file({})", path.display()),
        }
    }
}

/// A query string that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} query {input:?}: {reason}")]
pub struct QueryError {
    pub kind: &'static str,
    pub input: String,
    pub reason: String,
}

fn qerr(kind: &'static str, input: &str, reason: impl Into<String>) -> QueryError {
    QueryError {
        kind,
        input: input.to_string(),
        reason: reason.into(),
    }
}

const QUERY_KEYS: &[&str] = &["ns", "partition", "peer", "sameness-group"];

fn parse_query_params(
    kind: &'static str,
    input: &str,
    q: Option<&str>,
) -> Result<QueryParams, QueryError> {
    let Some(q) = q else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !QUERY_KEYS.contains(&k) {
            return Err(qerr(
                kind,
                input,
                format!(
                    "unsupported query parameter {k:?} (supported: {})",
                    QUERY_KEYS.join(", ")
                ),
            ));
        }
        out.push((k.to_string(), v.to_string()));
    }
    if out.iter().any(|(k, _)| k == "peer") && out.iter().any(|(k, _)| k == "sameness-group") {
        return Err(qerr(
            kind,
            input,
            "peer and sameness-group cannot be used together",
        ));
    }
    out.sort();
    Ok(out)
}

/// Parses `[tag.]name[?query][@dc][~near][|filter,…]`.
pub fn parse_service(input: &str) -> Result<ServiceQuery, QueryError> {
    // The common case, a plain name, without the regex (a template may ask for thousands).
    if !input.is_empty()
        && input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Ok(ServiceQuery {
            name: input.to_string(),
            tag: None,
            dc: None,
            near: None,
            filter: HealthFilter::PassingOnly,
            query: Vec::new(),
        });
    }
    parse_service_query(input)
}

/// `parse_service` for any input, by the grammar's regex.
fn parse_service_query(input: &str) -> Result<ServiceQuery, QueryError> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^((?P<tag>[\w=:.\-]+)\.)?(?P<name>[\w\-]+)(\?(?P<query>[\w\-=&]+))?(@(?P<dc>[\w.\-]+))?(~(?P<near>[\w.\-]+))?(\|(?P<filter>[\w,]+))?$",
        )
        .expect("static regex")
    });
    let caps = RE.captures(input).ok_or_else(|| {
        qerr(
            "service",
            input,
            "expected [tag.]name[?query][@dc][~near][|filter]",
        )
    })?;
    let get = |n: &str| caps.name(n).map(|m| m.as_str().to_string());
    let filter = match caps.name("filter").map(|m| m.as_str()) {
        None => HealthFilter::PassingOnly,
        Some(list) => {
            let mut statuses = Vec::new();
            let mut any = false;
            for word in list.split(',').filter(|w| !w.is_empty()) {
                if word == "any" {
                    any = true;
                } else {
                    let s = Status::parse(word).ok_or_else(|| {
                        qerr(
                            "service",
                            input,
                            format!("unknown health filter {word:?} (any, passing, warning, critical, maintenance)"),
                        )
                    })?;
                    if !statuses.contains(&s) {
                        statuses.push(s);
                    }
                }
            }
            statuses.sort();
            if any {
                HealthFilter::Any
            } else if statuses.is_empty() {
                HealthFilter::PassingOnly
            } else {
                HealthFilter::Statuses(statuses)
            }
        }
    };
    Ok(ServiceQuery {
        name: get("name").unwrap_or_default(),
        tag: get("tag"),
        dc: get("dc"),
        near: get("near"),
        filter,
        query: parse_query_params("service", input, caps.name("query").map(|m| m.as_str()))?,
    })
}

/// `?query@dc~near` for `services`, `nodes`: no name.
pub fn parse_catalog(
    kind: &'static str,
    input: &str,
    allow_near: bool,
) -> Result<(Option<String>, Option<String>, QueryParams), QueryError> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(\?(?P<query>[\w\-=&]+))?(@(?P<dc>[\w.\-]+))?(~(?P<near>[\w.\-]+))?$")
            .expect("static regex")
    });
    let caps = RE
        .captures(input)
        .ok_or_else(|| qerr(kind, input, "expected [?query][@dc][~near]"))?;
    let near = caps.name("near").map(|m| m.as_str().to_string());
    if near.is_some() && !allow_near {
        return Err(qerr(kind, input, "~near is not supported here"));
    }
    Ok((
        caps.name("dc").map(|m| m.as_str().to_string()),
        near,
        parse_query_params(kind, input, caps.name("query").map(|m| m.as_str()))?,
    ))
}

/// `name[?query][@dc]` for `node`; an empty input means the agent's node.
pub fn parse_node(input: &str) -> Result<Dependency, QueryError> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?P<name>[\w.\-]*)(\?(?P<query>[\w\-=&]+))?(@(?P<dc>[\w.\-]+))?$")
            .expect("static regex")
    });
    let caps = RE
        .captures(input)
        .ok_or_else(|| qerr("node", input, "expected name[?query][@dc]"))?;
    let name = caps
        .name("name")
        .map(|m| m.as_str())
        .filter(|s| !s.is_empty());
    Ok(Dependency::Node {
        name: name.map(str::to_string),
        dc: caps.name("dc").map(|m| m.as_str().to_string()),
        query: parse_query_params("node", input, caps.name("query").map(|m| m.as_str()))?,
    })
}

/// `path[?query][@dc]` for the KV helpers; a leading `/` is dropped. Returns (path, dc, query).
pub fn parse_kv(
    kind: &'static str,
    input: &str,
) -> Result<(String, Option<String>, QueryParams), QueryError> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        // consul-template's keyRe/prefixRe: at least one character of key before `?` or `@`
        // (`"@dc1"` alone is not a query; `"/"` is the root).
        Regex::new(r"^/?(?P<key>[^@?]+)(\?(?P<query>[\w\-=&]+))?(@(?P<dc>[\w.\-]+))?$")
            .expect("static regex")
    });
    // The common case, a plain path, without the regex (a template may ask for thousands).
    if !input.is_empty() && !input.contains(['@', '?']) {
        return Ok((input.trim_start_matches('/').to_string(), None, Vec::new()));
    }
    let caps = RE
        .captures(input)
        .ok_or_else(|| qerr(kind, input, "expected path[?query][@dc]"))?;
    let key = caps
        .name("key")
        .map(|m| m.as_str())
        .unwrap_or_default()
        .trim_start_matches('/');
    Ok((
        key.to_string(),
        caps.name("dc").map(|m| m.as_str().to_string()),
        parse_query_params(kind, input, caps.name("query").map(|m| m.as_str()))?,
    ))
}

#[cfg(test)]
mod tests;
