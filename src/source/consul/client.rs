//! The HTTP client for one agent, built from the settings: the address forms (host:port, URL,
//! `unix://`), proxies, keep-alive and timeouts, TLS (CA file, directory or text, client
//! certificate, server name), the token, and redirects kept within the origin.

use crate::config::{ConfigError, Consul, Secret};
use reqwest::Url;
use std::time::Duration;

/// What `ConsulSource` talks through.
pub(super) struct Client {
    pub http: reqwest::Client,
    pub base: Url,
    pub token: Option<Secret>,
}

/// Builds the client. Bad addresses are flag errors; unreadable TLS or token files are file
/// errors.
pub(super) fn build(cfg: &Consul) -> Result<Client, ConfigError> {
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
            let text =
                crate::fsread::read_text(file, crate::limits::INPUT_FILE_BYTES).map_err(|e| {
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
    Ok(Client {
        http,
        base: with_server_name(base, cfg),
        token,
    })
}

/// True when `address` (`host:port`, or a URL) names this machine: 127.0.0.0/8, `::1`, localhost.
pub(super) fn is_loopback(address: &str) -> bool {
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
