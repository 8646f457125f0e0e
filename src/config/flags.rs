//! The flags layer: clap has parsed every value to its type already; this maps `Args` onto
//! `Settings`, with the few rules that belong to flags (a CA or key flag turns TLS on,
//! `-check` applies to the `-template` flags, `-o` only with `capture`).

use super::error::{ConfigError, Layer};
use super::partial::{Settings, TemplateSettings, TemplateSource};
use super::value::{Secret, ValueError};
use crate::cli::Args;

/// What the flags say.
pub fn layer(a: &Args) -> Result<Settings, ConfigError> {
    let mut s = Settings::default();
    let k = &mut s.consul;
    k.address.clone_from(&a.consul_addr);
    k.token = a.consul_token.as_ref().map(Secret::new);
    k.token_file = a.consul_token_file.as_ref().map(Into::into);
    if let Some(v) = &a.consul_auth {
        if v.is_empty() {
            return Err(refused("consul-auth", "cannot be empty"));
        }
        let (user, password) = match v.split_once(':') {
            Some((u, p)) => (u.to_string(), Some(Secret::new(p))),
            None => (v.clone(), None),
        };
        k.auth.username = Some(user);
        k.auth.password = password;
        k.auth.enabled = Some(true);
    }
    let ssl = &mut k.ssl;
    ssl.ca_cert = a.consul_ssl_ca_cert.as_ref().map(Into::into);
    ssl.ca_path = a.consul_ssl_ca_path.as_ref().map(Into::into);
    ssl.cert = a.consul_ssl_cert.as_ref().map(Into::into);
    ssl.key = a.consul_ssl_key.as_ref().map(Into::into);
    ssl.server_name.clone_from(&a.consul_ssl_server_name);
    // A TLS flag means TLS, unless -consul-ssl=false says otherwise.
    let any_tls = ssl.ca_cert.is_some()
        || ssl.ca_path.is_some()
        || ssl.cert.is_some()
        || ssl.key.is_some()
        || ssl.server_name.is_some();
    ssl.enabled = a.consul_ssl.or(any_tls.then_some(true));
    ssl.verify = a.consul_ssl_verify;
    k.retry.enabled = a.consul_retry;
    k.retry.attempts = a.consul_retry_attempts;
    k.retry.backoff = a.consul_retry_backoff.map(|d| d.0);
    k.retry.max_backoff = a.consul_retry_max_backoff.map(|d| d.0);
    k.max_stale = a.max_stale.map(|d| d.0);
    k.block_query_wait = a.block_query_wait.map(|d| d.0);
    k.max_connections = a.max_connections;
    k.max_response_bytes = a.max_response_bytes;

    for spec in &a.template {
        let mut t = TemplateSettings::new(TemplateSource::File(spec.source.clone().into()));
        t.destination = spec.destination.as_ref().map(Into::into);
        t.command = spec.command.iter().cloned().collect();
        t.check.clone_from(&a.check);
        s.templates.push(t);
    }
    s.data = a.data.as_ref().map(Into::into);
    s.once = a.once;
    s.dedup.enabled = a.dedup;
    s.once_timeout = a.once_timeout.map(|d| d.0);
    s.dry = a.dry;
    s.diff = a.diff;
    s.parse_only = a.parse_only;
    s.capture = a.capture.then_some(true);
    if let Some(o) = &a.output {
        if !a.capture {
            return Err(ConfigError::Usage(
                "-o names the data file of `consul-render capture`; there is no output flag \
                 otherwise (use -template \"src:dst\")"
                    .into(),
            ));
        }
        s.capture_output = Some(o.into());
    }
    s.wait = a.wait;
    s.template_error_fatal_override = a.template_error_fatal;
    s.template_syntax = a.template_syntax;
    s.command_error_fatal = a.command_error_fatal;

    let x = &mut s.exec;
    x.command = a.exec.as_ref().map(|c| vec![c.clone()]);
    x.reload_signal = a.exec_reload_signal.map(|n| n.0);
    x.kill_signal = a.exec_kill_signal.map(|n| n.0);
    x.kill_timeout = a.exec_kill_timeout.map(|d| d.0);
    x.splay = a.exec_splay.map(|d| d.0);
    x.env_pristine = a.exec_env_pristine;
    x.env_custom = a.exec_env_custom.iter().map(|p| p.0.clone()).collect();
    x.env_allowlist.clone_from(&a.exec_env_allowlist);
    x.env_denylist.clone_from(&a.exec_env_denylist);

    s.reload_signal = a.reload_signal.map(|n| n.0);
    s.kill_signal = a.kill_signal.map(|n| n.0);
    s.log_level = a.log_level;
    s.log_format = a.log_format;
    s.syslog.enabled = a.syslog;
    s.syslog.facility.clone_from(&a.syslog_facility);
    s.syslog.name.clone_from(&a.syslog_name);
    s.log_file.path = a.log_file.as_ref().map(Into::into);
    s.log_file.rotate_bytes = a.log_rotate_bytes;
    s.log_file.rotate_duration = a.log_rotate_duration.map(|d| d.0);
    s.log_file.max_files = a.log_rotate_max_files;
    s.pid_file = a.pid_file.as_ref().map(Into::into);
    s.status_addr.clone_from(&a.status_addr);
    s.status_consul_timeout = a.status_consul_timeout.map(|d| d.0);
    Ok(s)
}

fn refused(flag: &'static str, why: &str) -> ConfigError {
    ConfigError::value(Layer::Flag(flag), None, ValueError::Refused(why.into()))
}
