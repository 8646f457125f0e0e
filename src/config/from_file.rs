//! A config file's layer: `FileConfig` (values already typed by serde) onto `Settings`, with
//! consul-template's rules for its blocks (an `ssl` block turns TLS on, an empty token is unset,
//! `transport`'s Go names mapped onto our client) and the checks that need a whole block.

use super::error::{ConfigError, Layer};
use super::file::{CommandFile, ConsulFile, ExecEnvFile, FileConfig, TemplateFile};
use super::keys;
use super::partial::{ExecSettings, Settings, TemplateSettings, TemplateSource};
use super::value::{Secret, ValueError};
use std::path::{Path, PathBuf};

/// What one config file says.
pub fn layer(path: &Path, f: FileConfig) -> Result<Settings, ConfigError> {
    let err =
        |key: String, e: ValueError| ConfigError::value(Layer::File(path.into()), Some(key), e);
    let mut s = Settings::default();
    keys::unsupported(&f, &mut s.warnings);
    if let Some(d) = &f.default_delimiters {
        keys::default_delimiters(d).map_err(|e| err("default_delimiters".into(), e))?;
    }
    s.err_on_failed_lookup = f.err_on_failed_lookup;
    if let Some(sl) = f.syslog {
        s.syslog.enabled = sl.enabled;
        s.syslog.facility = sl.facility;
        s.syslog.name = sl.name;
        s.syslog.socket = sl.socket.map(|p| resolve_relative(path, &p));
    }
    if let Some(d) = f.deduplicate {
        s.dedup.enabled = d.enabled;
        s.dedup.prefix = d.prefix;
        s.dedup.ttl = d.ttl.map(|d| d.0);
        s.dedup.max_stale = d.max_stale.map(|d| d.0);
        s.dedup.block_query_wait = d.block_query_wait.map(|d| d.0);
    }
    if let Some(lf) = f.log_file {
        s.log_file.path = lf.path.map(|p| resolve_relative(path, &p));
        s.log_file.rotate_bytes = lf.log_rotate_bytes;
        s.log_file.rotate_duration = lf.log_rotate_duration.map(|d| d.0);
        s.log_file.max_files = lf.log_rotate_max_files;
    }
    if let Some(consul) = f.consul {
        consul_block(&mut s, consul);
    }
    for (i, t) in f.template.into_iter().enumerate() {
        let t = template(path, t).map_err(|(key, e)| err(format!("template[{i}]{key}"), e))?;
        s.templates.push(t);
    }
    s.wait = f.wait;
    if let Some(e) = f.exec {
        let x = &mut s.exec;
        x.enabled = e.enabled;
        x.command = e.command.map(CommandFile::into_argv);
        // consul-template keeps `timeout` for template commands; the exec child has none.
        x.reload_signal = e.reload_signal.map(|n| n.0);
        x.kill_signal = e.kill_signal.map(|n| n.0);
        x.kill_timeout = e.kill_timeout.map(|d| d.0);
        x.splay = e.splay.map(|d| d.0);
        if let Some(env) = e.env {
            exec_env(x, env);
        }
    }
    s.log_level = f.log_level;
    s.log_format = f.log_format;
    s.pid_file = f.pid_file.map(Into::into);
    s.kill_signal = f.kill_signal.map(|n| n.0);
    s.reload_signal = f.reload_signal.map(|n| n.0);
    s.consul.max_stale = f.max_stale.map(|d| d.0);
    s.consul.block_query_wait = f.block_query_wait.map(|d| d.0);
    s.once_timeout = f.once_timeout.map(|d| d.0);
    s.once = f.once;
    s.template_error_fatal = f.template_error_fatal;
    s.command_error_fatal = f.command_error_fatal;
    if f.max_connections.is_some() {
        s.consul.max_connections = f.max_connections;
    }
    s.consul.max_response_bytes = f.max_response_bytes;
    s.status_addr = f.status_addr;
    s.status_consul_timeout = f.status_consul_timeout.map(|d| d.0);
    s.data = f.data.map(|d| resolve_relative(path, &d));
    Ok(s)
}

fn consul_block(s: &mut Settings, consul: ConsulFile) {
    let k = &mut s.consul;
    k.address = consul.address;
    // consul-template reads an empty string as unset (its documented example has `token = ""`).
    k.token = consul.token.filter(|t| !t.is_empty()).map(Secret::new);
    k.token_file = consul.token_file.filter(|t| !t.is_empty()).map(Into::into);
    k.namespace = consul.namespace.filter(|n| !n.is_empty());
    k.partition = consul.partition;
    if let Some(a) = consul.auth {
        k.auth.enabled = a.enabled;
        k.auth.username = a.username;
        k.auth.password = a.password.map(Secret::new);
    }
    if let Some(r) = consul.retry {
        k.retry.enabled = r.enabled;
        k.retry.attempts = r.attempts;
        k.retry.backoff = r.backoff.map(|d| d.0);
        k.retry.max_backoff = r.max_backoff.map(|d| d.0);
    }
    if let Some(ssl) = consul.ssl {
        // consul-template: setting any ssl option turns TLS on unless said otherwise.
        k.ssl.enabled = Some(ssl.enabled.unwrap_or(true));
        k.ssl.verify = ssl.verify;
        k.ssl.ca_cert = ssl.ca_cert.map(Into::into);
        k.ssl.ca_path = ssl.ca_path.map(Into::into);
        k.ssl.cert = ssl.cert.map(Into::into);
        k.ssl.key = ssl.key.map(Into::into);
        k.ssl.server_name = ssl.server_name;
        k.ssl.ca_cert_pem = ssl.ca_cert_bytes;
    }
    if let Some(t) = consul.transport {
        let x = &mut k.transport;
        x.dial_keep_alive = t.dial_keep_alive.map(|d| d.0);
        x.idle_conn_timeout = t.idle_conn_timeout.map(|d| d.0);
        // Go's TLS handshake happens within the dial here: it bounds the connect.
        x.dial_timeout = match (t.dial_timeout, t.tls_handshake_timeout) {
            (Some(d), Some(h)) => Some(d.0.max(h.0)),
            (d, h) => d.or(h).map(|d| d.0),
        };
        x.disable_keep_alives = t.disable_keep_alives;
        x.max_idle_conns_per_host = t.max_idle_conns_per_host.or(t.max_idle_conns);
        // One agent is one host: Go's per-host cap is our connection cap (0 is Go's "none").
        k.max_connections = t.max_conns_per_host.and_then(std::num::NonZeroU32::new);
    }
}

fn exec_env(x: &mut ExecSettings, env: ExecEnvFile) {
    x.env_pristine = env.pristine;
    x.env_custom = env.custom.into_iter().map(|p| p.0).collect();
    x.env_allowlist = env.allowlist;
    x.env_denylist = env.denylist;
}

/// One `template {}`; an error is the key below the template (`.perms`) and why.
fn template(path: &Path, t: TemplateFile) -> Result<TemplateSettings, (String, ValueError)> {
    let refused = |why: &str| (String::new(), ValueError::Refused(why.into()));
    let source = match (t.source, t.contents) {
        (Some(_), Some(_)) => return Err(refused("cannot specify both 'source' and 'contents'")),
        (Some(s), None) => TemplateSource::File(resolve_relative(path, &s)),
        (None, Some(c)) => TemplateSource::Inline(c),
        (None, None) => {
            return Err(refused(
                "must specify exactly one of 'source' or 'contents'",
            ))
        }
    };
    for (side, v) in [("left", &t.left_delimiter), ("right", &t.right_delimiter)] {
        keys::delimiter(side, v.as_deref()).map_err(|e| (format!(".{side}_delimiter"), e))?;
    }
    let mut x = TemplateSettings::new(source);
    x.owner = keys::owner(t.user.as_ref(), t.uid, t.group.as_ref(), t.gid)
        .map_err(|e| (".user".to_string(), e))?;
    let exec = t.exec;
    // `exec { command }` is the newer spelling of `command`; `enabled = false` drops it.
    x.command = exec
        .as_ref()
        .filter(|e| e.enabled != Some(false))
        .and_then(|e| e.command.clone())
        .or(t.command)
        .map(CommandFile::into_argv)
        .unwrap_or_default();
    x.command_timeout = exec
        .as_ref()
        .and_then(|e| e.timeout)
        .or(t.command_timeout)
        .map(|d| d.0);
    if let Some(e) = exec {
        // `reload_signal` and `splay` mean nothing for a command that runs once: checked by
        // their types, then dropped.
        let mut c = ExecSettings {
            kill_signal: e.kill_signal.map(|n| n.0),
            kill_timeout: e.kill_timeout.map(|d| d.0),
            ..ExecSettings::default()
        };
        if let Some(env) = e.env {
            exec_env(&mut c, env);
        }
        x.command_exec = Some(c);
    }
    x.destination = t.destination.map(|d| resolve_relative(path, &d));
    x.check = t.check;
    x.perms = t.perms.map(|m| m.0);
    x.backup = t.backup;
    x.rollback = t.rollback;
    x.create_dest_dirs = t.create_dest_dirs;
    x.wait = t.wait;
    x.error_on_missing_key = t.error_on_missing_key;
    x.error_fatal = t.error_fatal;
    x.sandbox_path = t.sandbox_path.map(PathBuf::from);
    x.function_denylist = t.function_denylist;
    x.syntax = t.syntax;
    Ok(x)
}

/// Paths in config files are taken as written (consul-template resolves them against the
/// working directory, and so do we); this is the one place to change that.
fn resolve_relative(_config: &Path, p: &str) -> PathBuf {
    PathBuf::from(p)
}
