//! The client for one agent, built from the settings: the address forms (host:port, URL,
//! `unix://`), proxies, keep-alive and timeouts, TLS (CA file, directory or text, client
//! certificate, server name, ALPN), the token, and the connection budget.

use super::transport::{self, Http};
use crate::config::{ConfigError, Consul, Secret};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// What `ConsulSource` talks through.
pub(super) struct Client {
    pub http: Http,
    pub base: Url,
    pub token: Option<Secret>,
}

/// Builds the client. Bad addresses are flag errors; unreadable TLS or token files are file
/// errors.
pub(super) fn build(cfg: &Consul) -> Result<Client, ConfigError> {
    let t = &cfg.transport;
    let max_idle = if t.disable_keep_alives {
        0
    } else {
        t.max_idle_conns_per_host.unwrap_or(cfg.max_connections) as usize
    };
    let address = cfg.address.trim();
    let scheme = if cfg.ssl.enabled { "https" } else { "http" };
    let (base, unix) = if let Some(path) = address.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(ConfigError::Usage(format!(
                "invalid Consul address {address:?}: no socket path"
            )));
        }
        (
            parse_url(&format!("{scheme}://localhost"))?,
            Some(std::path::PathBuf::from(path)),
        )
    } else if address.starts_with("http://") || address.starts_with("https://") {
        (parse_url(address)?, None)
    } else {
        (parse_url(&format!("{scheme}://{address}"))?, None)
    };
    let tls = if base.scheme() == "https" || cfg.ssl.enabled {
        Some(tls(cfg)?)
    } else {
        None
    };
    // HTTP_PROXY, HTTPS_PROXY and NO_PROXY apply as in Go's consul-template: never to a Unix
    // socket, nor to the loopback (Go does not proxy requests to localhost).
    let proxy = if unix.is_some() || is_loopback(address) {
        None
    } else {
        Some(hyper_util::client::proxy::matcher::Matcher::from_env())
    };
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
        // No request could carry it; that is a configuration error.
        if http::HeaderValue::from_str(t.expose()).is_err() {
            return Err(ConfigError::Usage(
                "the Consul token holds a character a header cannot carry (a newline or \
                 another control character)"
                    .into(),
            ));
        }
    }
    let http = transport::build(transport::Settings {
        budget: cfg.max_connections as usize,
        dial_timeout: t.dial_timeout.unwrap_or(Duration::from_secs(10)),
        close_wait: super::blocking_timeout(cfg.block_query_wait),
        keep_alive: t.dial_keep_alive,
        idle_timeout: t.idle_conn_timeout,
        max_idle,
        unix,
        tls,
        proxy,
    });
    Ok(Client { http, base, token })
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

fn parse_url(s: &str) -> Result<Url, ConfigError> {
    Url::parse(s).map_err(|e| ConfigError::Usage(format!("invalid Consul address {s:?}: {e}")))
}

fn read_file(what: &str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    crate::fsread::read(path, crate::limits::INPUT_FILE_BYTES)
        .map_err(|e| ConfigError::named(format_args!("{what} {}", path.display()), e))
}

/// TLS settings: the trust roots (the system's, or the given CA file, directory or text, which
/// replace them: a public CA must not vouch for the agent), the client certificate, verification,
/// the server name, and ALPN offering h2.
fn tls(cfg: &Consul) -> Result<transport::Tls, ConfigError> {
    let ssl = &cfg.ssl;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let mut given = 0;
    let mut add = |pem: &[u8]| -> usize {
        CertificateDer::pem_slice_iter(pem)
            .filter_map(Result::ok)
            .filter(|c| roots.add(c.clone()).is_ok())
            .count()
    };
    if let Some(ca) = &ssl.ca_cert {
        let n = add(&read_file("CA certificate", ca)?);
        if n == 0 {
            return Err(ConfigError::named(
                format_args!("CA certificate {}", ca.display()),
                "no PEM certificate in the file",
            ));
        }
        given += n;
    }
    if let Some(pem) = &ssl.ca_cert_pem {
        let n = add(pem.as_bytes());
        if n == 0 {
            return Err(ConfigError::named(
                "consul.ssl.ca_cert_bytes",
                "no PEM certificate in it",
            ));
        }
        given += n;
    }
    if let Some(dir) = &ssl.ca_path {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| ConfigError::named(format_args!("CA path {}", dir.display()), e))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        let mut n = 0;
        for p in paths {
            // A directory may hold other files (hash links, READMEs): what is not a
            // certificate adds nothing.
            n += add(&read_file("CA certificate", &p)?);
        }
        if n == 0 {
            return Err(ConfigError::named(
                format_args!("CA path {}", dir.display()),
                "no PEM certificate in the directory",
            ));
        }
        given += n;
    }
    if given == 0 {
        // The system's trust store, as Go's consul-template.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Usage(format!("TLS: {e}")))?;
    let builder = if ssl.verify {
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(transport::AcceptAnyCertificate(provider)))
    };
    let mut config = match (&ssl.cert, &ssl.key) {
        (Some(cert), key) => {
            let cert_pem = read_file("client certificate", cert)?;
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    ConfigError::named(format_args!("client certificate {}", cert.display()), e)
                })?;
            if chain.is_empty() {
                return Err(ConfigError::named(
                    format_args!("client certificate {}", cert.display()),
                    "no PEM certificate in the file",
                ));
            }
            // The key comes from its own file, or from the certificate's.
            let (key_path, key_pem) = match key {
                Some(k) => (k, read_file("client key", k)?),
                None => (cert, cert_pem.clone()),
            };
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                ConfigError::named(format_args!("client key {}", key_path.display()), e)
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                ConfigError::named(format_args!("client certificate {}", cert.display()), e)
            })?
        }
        (None, Some(key)) => {
            return Err(ConfigError::Usage(format!(
                "-consul-ssl-key {} needs -consul-ssl-cert",
                key.display()
            )));
        }
        (None, None) => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(transport::Tls {
        config: Arc::new(config),
        server_name: ssl.server_name.clone(),
    })
}
