//! The environment layer: the `CONSUL_*` variables consul-template reads, and its log-level
//! variables. An empty variable counts as unset, as in consul-template.

use super::error::{ConfigError, Layer};
use super::partial::Settings;
use super::value::{go_bool, LogLevel, Secret};

/// What the environment says.
pub fn layer(env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    let mut s = Settings::default();
    let k = &mut s.consul;
    k.address = get("CONSUL_HTTP_ADDR");
    k.token = get("CONSUL_TOKEN")
        .or_else(|| get("CONSUL_HTTP_TOKEN"))
        .map(Secret::new);
    k.token_file = get("CONSUL_TOKEN_FILE")
        .or_else(|| get("CONSUL_HTTP_TOKEN_FILE"))
        .map(Into::into);
    if let Some(a) = get("CONSUL_HTTP_AUTH") {
        let (user, password) = match a.split_once(':') {
            Some((u, p)) => (u.to_string(), Some(Secret::new(p))),
            None => (a, None),
        };
        k.auth.username = Some(user);
        k.auth.password = password;
    }
    for (var, slot) in [
        ("CONSUL_HTTP_SSL", &mut k.ssl.enabled),
        ("CONSUL_HTTP_SSL_VERIFY", &mut k.ssl.verify),
    ] {
        if let Some(v) = get(var) {
            *slot = Some(
                go_bool(&v).map_err(|e| ConfigError::value(Layer::Environment(var), None, e))?,
            );
        }
    }
    k.ssl.ca_cert = get("CONSUL_CACERT").map(Into::into);
    k.ssl.ca_path = get("CONSUL_CAPATH").map(Into::into);
    k.ssl.cert = get("CONSUL_CLIENT_CERT").map(Into::into);
    k.ssl.key = get("CONSUL_CLIENT_KEY").map(Into::into);
    k.ssl.server_name = get("CONSUL_TLS_SERVER_NAME");
    k.namespace = get("CONSUL_NAMESPACE");
    k.partition = get("CONSUL_PARTITION");
    for var in ["CT_LOG", "CONSUL_TEMPLATE_LOG", "CONSUL_TEMPLATE_LOG_LEVEL"] {
        if let Some(v) = get(var) {
            let level = v
                .parse::<LogLevel>()
                .map_err(|e| ConfigError::value(Layer::Environment(var), None, e))?;
            s.log_level = Some(level);
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_and_their_errors() {
        let env = |k: &str| match k {
            "CONSUL_HTTP_AUTH" => Some("u:p".to_string()),
            "CONSUL_HTTP_SSL" => Some("T".to_string()),
            "CONSUL_NAMESPACE" => Some(String::new()),
            _ => None,
        };
        let s = layer(&env).unwrap();
        assert_eq!(s.consul.auth.username.as_deref(), Some("u"));
        assert_eq!(s.consul.ssl.enabled, Some(true));
        assert_eq!(s.consul.namespace, None, "empty is unset");
        let bad = |k: &str| (k == "CONSUL_HTTP_SSL_VERIFY").then(|| "maybe".to_string());
        let e = layer(&bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment CONSUL_HTTP_SSL_VERIFY: \"maybe\" is not a boolean"
        );
    }
}
