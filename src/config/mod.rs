//! One resolved `Config`: defaults < environment < config files (in order) < flags, validated.
//!
//! Nothing outside this module sees clap or serde types. Errors say which flag, variable or file
//! is wrong, and whether it was a flag (exit 13) or a file (exit 15).

pub mod duration;
pub mod file;
pub mod hcl;
pub mod keys;

pub use keys::{LogFile, Syslog};
pub mod template_spec;

pub use duration::Wait;

use crate::cli::Args;
use file::{CommandFile, FileConfig};
use nix::sys::signal::Signal;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A configuration problem, with where it came from (which picks the exit code).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag or environment variable is wrong (exit 13).
    #[error("{0}")]
    Flag(String),
    /// A config file, template file or data file is wrong (exit 15).
    #[error("{0}")]
    File(String),
}

/// A secret string: never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone)]
pub struct Auth {
    pub username: String,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Default)]
pub struct Ssl {
    pub enabled: bool,
    pub verify: bool,
    pub ca_cert: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
    /// `ca_cert_bytes`: the CA certificate as PEM text.
    pub ca_cert_pem: Option<String>,
}

/// `consul { transport { … } }`, Go's HTTP transport settings as our client has them.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    pub dial_keep_alive: Option<Duration>,
    pub dial_timeout: Option<Duration>,
    pub disable_keep_alives: bool,
    pub idle_conn_timeout: Option<Duration>,
    pub max_idle_conns_per_host: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub enabled: bool,
    /// 0 = forever.
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

#[derive(Debug, Clone)]
pub struct Consul {
    pub address: String,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    pub auth: Option<Auth>,
    pub ssl: Ssl,
    pub retry: Retry,
    pub max_stale: Duration,
    pub block_query_wait: Duration,
    pub max_connections: u32,
    /// Largest answer body read (`limits::RESPONSE_BYTES` by default).
    pub max_response_bytes: u64,
    /// Consul Enterprise namespace and admin partition every request names (`ns=`,
    /// `partition=`) unless its query gives one; `CONSUL_NAMESPACE`, `CONSUL_PARTITION`.
    pub namespace: Option<String>,
    pub partition: Option<String>,
    pub transport: Transport,
}

/// One template to render.
#[derive(Debug, Clone)]
pub struct Template {
    /// Where the template text comes from (file path, or `contents` inline).
    pub source: TemplateSource,
    pub destination: Option<PathBuf>,
    /// consul-template's command list: one string with whitespace runs under `sh -c`.
    pub command: Vec<String>,
    pub command_timeout: Duration,
    pub check: Option<String>,
    pub perms: Option<u32>,
    pub backup: bool,
    pub rollback: bool,
    pub create_dest_dirs: bool,
    pub wait: Option<Wait>,
    pub error_on_missing_key: bool,
    /// consul-template's per-template `error_fatal` (watch mode): `-template-error-fatal` wins,
    /// then this, then the files' top-level `template_error_fatal`, then true. Always `Some`
    /// once resolved.
    pub error_fatal: Option<bool>,
    pub sandbox_path: Option<PathBuf>,
    /// `function_denylist` (`function_blacklist`): helpers this template may not call.
    pub function_denylist: Vec<String>,
    /// `user`/`uid`, `group`/`gid`: the written file's owner.
    pub owner: keys::Owner,
    /// The template's `exec { env { … } kill_signal kill_timeout }`: the command's environment
    /// and how a timed-out command is stopped (`None`: our environment, SIGKILL).
    pub command_exec: Option<Exec>,
    /// `syntax`: a Go template (converted when loaded) or handlebars; `None` = by extension
    /// (`.ctmpl`, `.tmpl`, `.tpl`, `.gotmpl` are Go).
    pub go_syntax: Option<bool>,
}

impl Template {
    /// A template with consul-template's defaults (30s command timeout, create parent dirs).
    pub fn new(source: TemplateSource) -> Template {
        Template {
            source,
            destination: None,
            command: Vec::new(),
            command_timeout: Duration::from_secs(30),
            check: None,
            perms: None,
            backup: false,
            rollback: false,
            create_dest_dirs: true,
            wait: None,
            error_on_missing_key: false,
            error_fatal: None,
            sandbox_path: None,
            function_denylist: Vec::new(),
            owner: keys::Owner::default(),
            command_exec: None,
            go_syntax: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    File(PathBuf),
    Inline(String),
}

impl TemplateSource {
    /// The name errors use: the file path, or `(inline N)`.
    pub fn display_name(&self, index: usize) -> String {
        match self {
            TemplateSource::File(p) => p.display().to_string(),
            TemplateSource::Inline(_) => format!("(inline template {})", index + 1),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Exec {
    pub command: Vec<String>,
    pub reload_signal: Option<Signal>,
    pub kill_signal: Option<Signal>,
    pub kill_timeout: Duration,
    pub splay: Duration,
    pub env_pristine: bool,
    pub env_custom: Vec<String>,
    pub env_allowlist: Vec<String>,
    pub env_denylist: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Err,
}

impl LogLevel {
    fn parse(s: &str) -> Option<LogLevel> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Some(LogLevel::Trace),
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" | "warning" => Some(LogLevel::Warn),
            "err" | "error" => Some(LogLevel::Err),
            _ => None,
        }
    }
    /// The `tracing` filter directive for this level.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Err => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything a run needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub consul: Consul,
    pub templates: Vec<Template>,
    pub data: Option<PathBuf>,
    pub once: bool,
    pub once_timeout: Duration,
    pub dry: bool,
    pub diff: bool,
    pub parse_only: bool,
    /// `err_on_failed_lookup`: in watch mode too, a key or file that does not exist ends the
    /// run instead of waiting for it.
    pub err_on_failed_lookup: bool,
    /// Where logs go besides stderr.
    pub syslog: Option<Syslog>,
    pub log_file: Option<LogFile>,
    /// `consul-render capture`, and where it writes the data file (None: stdout).
    pub capture: bool,
    pub capture_output: Option<PathBuf>,
    pub wait: Option<Wait>,
    /// The files' top-level `template_error_fatal`: the default of each template's `error_fatal`.
    pub template_error_fatal: Option<bool>,
    /// Whether a failing template command ends watch mode (consul-template: always).
    pub command_error_fatal: bool,
    pub exec: Option<Exec>,
    pub reload_signal: Option<Signal>,
    pub kill_signal: Option<Signal>,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    pub pid_file: Option<PathBuf>,
    pub status_addr: Option<String>,
    /// How long Consul may be unreachable before /ready says 503.
    pub status_consul_timeout: Duration,
    /// Said once logging is up (settings that are accepted but do nothing).
    pub warnings: Vec<String>,
}

/// Parses a signal name: full `SIG…` names, case-insensitive; `""` means none.
pub fn parse_signal(s: &str) -> Result<Option<Signal>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let upper = s.to_ascii_uppercase();
    if !upper.starts_with("SIG") {
        return Err(format!(
            "unknown signal {s:?}: use a full name such as SIGHUP"
        ));
    }
    Signal::from_str(&upper)
        .map(Some)
        .map_err(|_| format!("unknown signal {s:?}"))
}

/// Where a setting came from, for error messages and exit codes.
#[derive(Clone, Copy)]
enum Origin<'a> {
    Flag(&'a str),
    Env(&'a str),
    File(&'a std::path::Path),
}

impl Origin<'_> {
    fn error(self, what: &str, msg: impl fmt::Display) -> ConfigError {
        match self {
            Origin::Flag(f) => ConfigError::Flag(format!("invalid value for -{f}: {msg}")),
            Origin::Env(v) => ConfigError::Flag(format!("invalid value in ${v}: {msg}")),
            Origin::File(p) => ConfigError::File(format!("config {}: {what}: {msg}", p.display())),
        }
    }
}

/// A template's `exec { … }` beyond command and timeout: the command's environment and how a
/// timed-out command is stopped (`reload_signal` and `splay` have no use for a command that
/// runs once, and are only checked).
fn template_exec(o: Origin, what: &str, e: &file::TemplateExecFile) -> Result<Exec, ConfigError> {
    let mut x = Exec {
        kill_signal: Some(Signal::SIGKILL),
        ..Exec::default()
    };
    if let Some(s) = &e.kill_signal {
        x.kill_signal = signal(o, &format!("{what}.exec.kill_signal"), s)?;
    }
    if let Some(s) = &e.kill_timeout {
        x.kill_timeout = dur(o, &format!("{what}.exec.kill_timeout"), s)?;
    }
    if let Some(s) = &e.reload_signal {
        signal(o, &format!("{what}.exec.reload_signal"), s)?;
    }
    if let Some(s) = &e.splay {
        dur(o, &format!("{what}.exec.splay"), s)?;
    }
    if let Some(env) = &e.env {
        x.env_pristine = env.pristine.unwrap_or(false);
        x.env_custom = env.custom.clone();
        x.env_allowlist = env.allowlist.clone();
        x.env_denylist = env.denylist.clone();
        for kv in &x.env_custom {
            if !kv.contains('=') {
                return Err(o.error(
                    &format!("{what}.exec.env.custom"),
                    format!("{kv:?} is not K=V"),
                ));
            }
        }
    }
    Ok(x)
}

/// `go` or `handlebars`: whether a template is Go's syntax.
pub fn parse_syntax(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "go" | "gotmpl" | "go-template" => Ok(true),
        "handlebars" | "hbs" => Ok(false),
        other => Err(format!(
            "{other:?} is not a template syntax (go, handlebars)"
        )),
    }
}

fn dur(origin: Origin, what: &str, s: &str) -> Result<Duration, ConfigError> {
    duration::parse(s).map_err(|e| origin.error(what, e))
}

fn signal(origin: Origin, what: &str, s: &str) -> Result<Option<Signal>, ConfigError> {
    parse_signal(s).map_err(|e| origin.error(what, e))
}

fn env_bool(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(Origin::Env(name).error(name, format!("{v:?} is not a boolean"))),
    }
}

fn parse_auth(s: &str) -> Option<Auth> {
    if s.is_empty() {
        return None;
    }
    Some(match s.split_once(':') {
        Some((u, p)) => Auth {
            username: u.to_string(),
            password: Some(Secret::new(p)),
        },
        None => Auth {
            username: s.to_string(),
            password: None,
        },
    })
}

impl Config {
    /// Defaults < environment < each config file named by `-config` < flags.
    pub fn resolve(
        args: &Args,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut files = Vec::new();
        for path in &args.config {
            let loaded = file::load_path(std::path::Path::new(path))
                .map_err(|e| ConfigError::File(format!("{e:#}")))?;
            files.extend(loaded);
        }
        Self::resolve_with_files(args, env, &files)
    }

    fn resolve_with_files(
        args: &Args,
        env: &dyn Fn(&str) -> Option<String>,
        files: &[(PathBuf, FileConfig)],
    ) -> Result<Config, ConfigError> {
        let mut c = Config::defaults();
        let mut wait_spec: Option<(String, Origin)> = None;
        // consul-template's order: the environment only fills what config files and flags
        // leave unset (a host-wide CONSUL_HTTP_ADDR never overrides a service's config file).
        c.apply_env(env)?;
        for (path, f) in files {
            c.apply_file(path, f, &mut wait_spec)?;
        }
        c.apply_flags(args, &mut wait_spec)?;
        // consul-template: the flag overrides every template; else each template's own
        // `error_fatal`, else the files' `template_error_fatal`, else true.
        let default_fatal = c.template_error_fatal.unwrap_or(true);
        let syntax = match &args.template_syntax {
            Some(s) => {
                Some(parse_syntax(s).map_err(|e| Origin::Flag("template-syntax").error("", e))?)
            }
            None => None,
        };
        for t in &mut c.templates {
            t.go_syntax = t.go_syntax.or(syntax);
            t.error_fatal = Some(
                args.template_error_fatal
                    .or(t.error_fatal)
                    .unwrap_or(default_fatal),
            );
        }
        if let Some((spec, origin)) = wait_spec {
            c.wait = Some(Wait::parse(&spec).map_err(|e| origin.error("wait", e))?);
        }
        c.validate()?;
        Ok(c)
    }

    fn defaults() -> Config {
        Config {
            consul: Consul {
                address: "127.0.0.1:8500".into(),
                token: None,
                token_file: None,
                auth: None,
                ssl: Ssl {
                    verify: true,
                    ..Ssl::default()
                },
                retry: Retry {
                    enabled: true,
                    attempts: 12,
                    backoff: Duration::from_millis(250),
                    max_backoff: Duration::from_secs(60),
                },
                max_stale: Duration::from_secs(2),
                block_query_wait: Duration::from_secs(60),
                max_connections: 128,
                max_response_bytes: crate::limits::RESPONSE_BYTES,
                namespace: None,
                partition: None,
                transport: Transport::default(),
            },
            templates: Vec::new(),
            data: None,
            once: false,
            once_timeout: Duration::from_secs(30),
            dry: false,
            diff: false,
            parse_only: false,
            err_on_failed_lookup: false,
            syslog: None,
            log_file: None,
            capture: false,
            capture_output: None,
            wait: None,
            template_error_fatal: None,
            command_error_fatal: true,
            exec: None,
            reload_signal: Some(Signal::SIGHUP),
            kill_signal: Some(Signal::SIGINT),
            log_level: LogLevel::Warn,
            log_format: LogFormat::Text,
            pid_file: None,
            status_addr: None,
            status_consul_timeout: Duration::from_secs(60),
            warnings: Vec::new(),
        }
    }

    fn apply_file<'a>(
        &mut self,
        path: &'a std::path::Path,
        f: &'a FileConfig,
        wait_spec: &mut Option<(String, Origin<'a>)>,
    ) -> Result<(), ConfigError> {
        let o = Origin::File(path);
        keys::unsupported(f, &mut self.warnings).map_err(|(key, why)| o.error(&key, why))?;
        if let Some(d) = &f.default_delimiters {
            keys::default_delimiters(d).map_err(|e| o.error("default_delimiters", e))?;
        }
        if let Some(b) = f.err_on_failed_lookup {
            self.err_on_failed_lookup = b;
        }
        if let Some(sl) = &f.syslog {
            // As consul-template: any option turns syslog on unless `enabled = false`.
            if sl.enabled == Some(false) {
                self.syslog = None;
            } else {
                let x = self.syslog.get_or_insert_with(Syslog::default);
                if let Some(v) = &sl.facility {
                    x.facility = v.clone();
                }
                if let Some(v) = &sl.name {
                    x.name = v.clone();
                }
                if let Some(v) = &sl.socket {
                    x.socket = Some(resolve_relative(path, v));
                }
            }
        }
        if let Some(lf) = &f.log_file {
            if let Some(p) = lf.path.as_ref().filter(|p| !p.is_empty()) {
                self.log_file = Some(LogFile::new(resolve_relative(path, p)));
            }
            if let Some(x) = self.log_file.as_mut() {
                if let Some(n) = lf.log_rotate_bytes {
                    x.rotate_bytes = n;
                }
                if let Some(d) = &lf.log_rotate_duration {
                    x.rotate_duration = dur(o, "log_file.log_rotate_duration", d)?;
                }
                if let Some(n) = lf.log_rotate_max_files {
                    x.max_files = n;
                }
            }
        }
        if let Some(consul) = &f.consul {
            let k = &mut self.consul;
            if let Some(a) = &consul.address {
                k.address = a.clone();
            }
            // consul-template reads an empty string as unset (its documented example has
            // `token = ""`).
            if let Some(t) = consul.token.as_ref().filter(|t| !t.is_empty()) {
                k.token = Some(Secret::new(t));
            }
            if let Some(t) = consul.token_file.as_ref().filter(|t| !t.is_empty()) {
                k.token_file = Some(t.into());
            }
            if let Some(n) = consul.namespace.as_ref().filter(|n| !n.is_empty()) {
                k.namespace = Some(n.clone());
            }
            if let Some(p) = &consul.partition {
                k.partition = Some(p.clone());
            }
            if let Some(a) = &consul.auth {
                if a.enabled != Some(false) {
                    if let Some(user) = &a.username {
                        k.auth = Some(Auth {
                            username: user.clone(),
                            password: a.password.as_ref().map(Secret::new),
                        });
                    }
                } else {
                    k.auth = None;
                }
            }
            if let Some(r) = &consul.retry {
                if let Some(e) = r.enabled {
                    k.retry.enabled = e;
                }
                if let Some(a) = r.attempts {
                    k.retry.attempts = a;
                }
                if let Some(b) = &r.backoff {
                    k.retry.backoff = dur(o, "consul.retry.backoff", b)?;
                }
                if let Some(b) = &r.max_backoff {
                    k.retry.max_backoff = dur(o, "consul.retry.max_backoff", b)?;
                }
            }
            if let Some(s) = &consul.ssl {
                // consul-template: setting any ssl option turns ssl on unless said otherwise.
                k.ssl.enabled = s.enabled.unwrap_or(true);
                if let Some(v) = s.verify {
                    k.ssl.verify = v;
                }
                set_path(&mut k.ssl.ca_cert, &s.ca_cert);
                set_path(&mut k.ssl.ca_path, &s.ca_path);
                set_path(&mut k.ssl.cert, &s.cert);
                set_path(&mut k.ssl.key, &s.key);
                if let Some(n) = &s.server_name {
                    k.ssl.server_name = Some(n.clone());
                }
                if let Some(pem) = &s.ca_cert_bytes {
                    k.ssl.ca_cert_pem = Some(pem.clone());
                }
            }
            if let Some(t) = &consul.transport {
                let d = |key: &str, v: &Option<String>| -> Result<Option<Duration>, ConfigError> {
                    v.as_deref()
                        .map(|s| dur(o, &format!("consul.transport.{key}"), s))
                        .transpose()
                };
                let x = &mut k.transport;
                x.dial_keep_alive = d("dial_keep_alive", &t.dial_keep_alive)?.or(x.dial_keep_alive);
                x.dial_timeout = d("dial_timeout", &t.dial_timeout)?.or(x.dial_timeout);
                x.idle_conn_timeout =
                    d("idle_conn_timeout", &t.idle_conn_timeout)?.or(x.idle_conn_timeout);
                // Go's TLS handshake happens within the dial here: it bounds the connect.
                if let Some(h) = d("tls_handshake_timeout", &t.tls_handshake_timeout)? {
                    x.dial_timeout = Some(x.dial_timeout.map_or(h, |c| c.max(h)));
                }
                if let Some(b) = t.disable_keep_alives {
                    x.disable_keep_alives = b;
                }
                if let Some(n) = t.max_idle_conns_per_host.or(t.max_idle_conns) {
                    x.max_idle_conns_per_host = Some(n);
                }
                // One agent is one host: Go's per-host cap is our connection cap.
                if let Some(n) = t.max_conns_per_host.filter(|n| *n > 0) {
                    k.max_connections = n;
                }
            }
        }
        for (i, t) in f.template.iter().enumerate() {
            let what = format!("template[{i}]");
            let source = match (&t.source, &t.contents) {
                (Some(_), Some(_)) => {
                    return Err(o.error(&what, "cannot specify both 'source' and 'contents'"))
                }
                (Some(s), None) => TemplateSource::File(resolve_relative(path, s)),
                (None, Some(c)) => TemplateSource::Inline(c.clone()),
                (None, None) => {
                    return Err(o.error(&what, "must specify exactly one of 'source' or 'contents'"))
                }
            };
            let exec = t.exec.as_ref();
            let command = exec
                .filter(|e| e.enabled != Some(false))
                .and_then(|e| e.command.clone())
                .or_else(|| t.command.clone())
                .map(CommandFile::into_argv)
                .unwrap_or_default();
            for (side, v) in [("left", &t.left_delimiter), ("right", &t.right_delimiter)] {
                keys::delimiter(side, v.as_deref())
                    .map_err(|e| o.error(&format!("{what}.{side}_delimiter"), e))?;
            }
            let owner = keys::owner(t.user.as_ref(), t.uid, t.group.as_ref(), t.gid)
                .map_err(|e| o.error(&format!("{what}.user"), e))?;
            let command_exec = match exec {
                Some(e) => Some(template_exec(o, &what, e)?),
                None => None,
            };
            let timeout = exec
                .and_then(|e| e.timeout.as_deref())
                .or(t.command_timeout.as_deref());
            let command_timeout = match timeout {
                Some(s) => dur(o, &format!("{what}.command_timeout"), s)?,
                None => Duration::from_secs(30),
            };
            let perms = match &t.perms {
                Some(p) => Some(p.mode().map_err(|e| o.error(&format!("{what}.perms"), e))?),
                None => None,
            };
            let wait = match &t.wait {
                Some(w) => Some(
                    Wait::parse(&w.as_spec()).map_err(|e| o.error(&format!("{what}.wait"), e))?,
                ),
                None => None,
            };
            self.templates.push(Template {
                source,
                destination: t.destination.as_ref().map(|d| resolve_relative(path, d)),
                command,
                command_timeout,
                check: t.check.clone(),
                perms,
                backup: t.backup.unwrap_or(false),
                rollback: t.rollback.unwrap_or(false),
                create_dest_dirs: t.create_dest_dirs.unwrap_or(true),
                wait,
                error_on_missing_key: t.error_on_missing_key.unwrap_or(false),
                error_fatal: t.error_fatal,
                sandbox_path: t.sandbox_path.as_ref().map(PathBuf::from),
                function_denylist: t.function_denylist.clone(),
                owner,
                command_exec,
                go_syntax: match t.syntax.as_deref() {
                    None => None,
                    Some(s) => {
                        Some(parse_syntax(s).map_err(|e| o.error(&format!("{what}.syntax"), e))?)
                    }
                },
            });
        }
        if let Some(w) = &f.wait {
            *wait_spec = Some((w.as_spec(), o));
        }
        if let Some(e) = &f.exec {
            let mut x = self.exec.take().unwrap_or_else(|| Exec {
                kill_signal: Some(Signal::SIGINT),
                kill_timeout: Duration::from_secs(30),
                ..Exec::default()
            });
            if let Some(c) = &e.command {
                x.command = c.clone().into_argv();
            }
            // consul-template keeps `timeout` for template commands; the exec child has none.
            if let Some(t) = &e.timeout {
                dur(o, "exec.timeout", t)?;
            }
            if let Some(s) = &e.reload_signal {
                x.reload_signal = signal(o, "exec.reload_signal", s)?;
            }
            if let Some(s) = &e.kill_signal {
                x.kill_signal = signal(o, "exec.kill_signal", s)?;
            }
            if let Some(s) = &e.kill_timeout {
                x.kill_timeout = dur(o, "exec.kill_timeout", s)?;
            }
            if let Some(s) = &e.splay {
                x.splay = dur(o, "exec.splay", s)?;
            }
            if let Some(env) = &e.env {
                if let Some(p) = env.pristine {
                    x.env_pristine = p;
                }
                x.env_custom.extend(env.custom.iter().cloned());
                x.env_allowlist.extend(env.allowlist.iter().cloned());
                x.env_denylist.extend(env.denylist.iter().cloned());
            }
            // `enabled = false` turns the child off, whatever else the block says.
            self.exec = (e.enabled != Some(false)).then_some(x);
        }
        if let Some(l) = &f.log_level {
            self.log_level = LogLevel::parse(l)
                .ok_or_else(|| o.error("log_level", format!("unknown level {l:?}")))?;
        }
        if let Some(l) = &f.log_format {
            self.log_format = parse_log_format(l).map_err(|e| o.error("log_format", e))?;
        }
        if let Some(p) = &f.pid_file {
            self.pid_file = Some(p.into());
        }
        if let Some(s) = &f.kill_signal {
            self.kill_signal = signal(o, "kill_signal", s)?;
        }
        if let Some(s) = &f.reload_signal {
            self.reload_signal = signal(o, "reload_signal", s)?;
        }
        if let Some(s) = &f.max_stale {
            self.consul.max_stale = dur(o, "max_stale", s)?;
        }
        if let Some(s) = &f.block_query_wait {
            self.consul.block_query_wait = dur(o, "block_query_wait", s)?;
        }
        if let Some(s) = &f.once_timeout {
            self.once_timeout = dur(o, "once_timeout", s)?;
        }
        if let Some(b) = f.once {
            self.once = b;
        }
        if let Some(b) = f.template_error_fatal {
            self.template_error_fatal = Some(b);
        }
        if let Some(b) = f.command_error_fatal {
            self.command_error_fatal = b;
        }
        if let Some(n) = f.max_connections {
            self.consul.max_connections = n;
        }
        if let Some(n) = f.max_response_bytes {
            self.consul.max_response_bytes = n;
        }
        if let Some(a) = &f.status_addr {
            self.status_addr = Some(a.clone());
        }
        if let Some(t) = &f.status_consul_timeout {
            self.status_consul_timeout = dur(o, "status_consul_timeout", t)?;
        }
        if let Some(d) = &f.data {
            self.data = Some(resolve_relative(path, d));
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |name: &str| env(name).filter(|v| !v.is_empty());
        let k = &mut self.consul;
        if let Some(a) = get("CONSUL_HTTP_ADDR") {
            k.address = a;
        }
        if let Some(t) = get("CONSUL_TOKEN").or_else(|| get("CONSUL_HTTP_TOKEN")) {
            k.token = Some(Secret::new(t));
        }
        if let Some(t) = get("CONSUL_TOKEN_FILE").or_else(|| get("CONSUL_HTTP_TOKEN_FILE")) {
            k.token_file = Some(t.into());
        }
        if let Some(a) = get("CONSUL_HTTP_AUTH") {
            k.auth = parse_auth(&a);
        }
        if let Some(v) = get("CONSUL_HTTP_SSL") {
            k.ssl.enabled = env_bool("CONSUL_HTTP_SSL", &v)?;
        }
        if let Some(v) = get("CONSUL_HTTP_SSL_VERIFY") {
            k.ssl.verify = env_bool("CONSUL_HTTP_SSL_VERIFY", &v)?;
        }
        for (var, slot) in [
            ("CONSUL_CACERT", &mut k.ssl.ca_cert),
            ("CONSUL_CAPATH", &mut k.ssl.ca_path),
            ("CONSUL_CLIENT_CERT", &mut k.ssl.cert),
            ("CONSUL_CLIENT_KEY", &mut k.ssl.key),
        ] {
            if let Some(v) = get(var) {
                *slot = Some(v.into());
            }
        }
        if let Some(v) = get("CONSUL_TLS_SERVER_NAME") {
            k.ssl.server_name = Some(v);
        }
        if let Some(v) = get("CONSUL_NAMESPACE") {
            k.namespace = Some(v);
        }
        if let Some(v) = get("CONSUL_PARTITION") {
            k.partition = Some(v);
        }
        for var in ["CT_LOG", "CONSUL_TEMPLATE_LOG", "CONSUL_TEMPLATE_LOG_LEVEL"] {
            if let Some(v) = get(var) {
                self.log_level = LogLevel::parse(&v)
                    .ok_or_else(|| Origin::Env(var).error(var, format!("unknown level {v:?}")))?;
            }
        }
        Ok(())
    }

    fn apply_flags<'a>(
        &mut self,
        a: &'a Args,
        wait_spec: &mut Option<(String, Origin<'a>)>,
    ) -> Result<(), ConfigError> {
        let k = &mut self.consul;
        if let Some(v) = &a.consul_addr {
            k.address = v.clone();
        }
        if let Some(v) = &a.consul_token {
            k.token = Some(Secret::new(v));
        }
        if let Some(v) = &a.consul_token_file {
            k.token_file = Some(v.into());
        }
        if let Some(v) = &a.consul_auth {
            if v.is_empty() {
                return Err(Origin::Flag("consul-auth").error("", "cannot be empty"));
            }
            k.auth = parse_auth(v);
        }
        for (value, slot) in [
            (&a.consul_ssl_ca_cert, &mut k.ssl.ca_cert),
            (&a.consul_ssl_ca_path, &mut k.ssl.ca_path),
            (&a.consul_ssl_cert, &mut k.ssl.cert),
            (&a.consul_ssl_key, &mut k.ssl.key),
        ] {
            if let Some(v) = value {
                *slot = Some(v.into());
                k.ssl.enabled = true;
            }
        }
        if let Some(v) = &a.consul_ssl_server_name {
            k.ssl.server_name = Some(v.clone());
            k.ssl.enabled = true;
        }
        if let Some(v) = a.consul_ssl {
            k.ssl.enabled = v;
        }
        if let Some(v) = a.consul_ssl_verify {
            k.ssl.verify = v;
        }
        if let Some(v) = a.consul_retry {
            k.retry.enabled = v;
        }
        if let Some(v) = a.consul_retry_attempts {
            k.retry.attempts = v;
        }
        if let Some(v) = &a.consul_retry_backoff {
            k.retry.backoff = dur(Origin::Flag("consul-retry-backoff"), "", v)?;
        }
        if let Some(v) = &a.consul_retry_max_backoff {
            k.retry.max_backoff = dur(Origin::Flag("consul-retry-max-backoff"), "", v)?;
        }
        if let Some(v) = &a.max_stale {
            k.max_stale = dur(Origin::Flag("max-stale"), "", v)?;
        }
        if let Some(v) = &a.block_query_wait {
            k.block_query_wait = dur(Origin::Flag("block-query-wait"), "", v)?;
        }
        if let Some(v) = a.max_connections {
            if v == 0 {
                return Err(Origin::Flag("max-connections").error("", "must be at least 1"));
            }
            k.max_connections = v;
        }
        if let Some(v) = a.max_response_bytes {
            if v == 0 {
                return Err(Origin::Flag("max-response-bytes").error("", "must be at least 1"));
            }
            k.max_response_bytes = v;
        }
        for value in &a.template {
            let spec = template_spec::parse(value).map_err(ConfigError::Flag)?;
            self.templates.push(Template {
                destination: spec.destination.map(PathBuf::from),
                command: spec.command.into_iter().collect(),
                check: a.check.clone(),
                ..Template::new(TemplateSource::File(spec.source.into()))
            });
        }
        if let Some(v) = &a.data {
            self.data = Some(v.into());
        }
        if let Some(v) = a.once {
            self.once = v;
        }
        if let Some(v) = &a.once_timeout {
            self.once_timeout = dur(Origin::Flag("once-timeout"), "", v)?;
        }
        if let Some(v) = a.dry {
            self.dry = v;
        }
        if let Some(v) = a.diff {
            self.diff = v;
        }
        if let Some(v) = a.parse_only {
            self.parse_only = v;
        }
        self.capture = a.capture;
        if let Some(o) = &a.output {
            if !a.capture {
                return Err(ConfigError::Flag(
                    "-o names the data file of `consul-render capture`; there is no output flag \
                     otherwise (use -template \"src:dst\")"
                        .into(),
                ));
            }
            self.capture_output = Some(o.into());
        }
        if let Some(v) = &a.wait {
            *wait_spec = Some((v.clone(), Origin::Flag("wait")));
        }
        if let Some(v) = a.command_error_fatal {
            self.command_error_fatal = v;
        }
        let exec_options = a.exec_reload_signal.is_some()
            || a.exec_kill_signal.is_some()
            || a.exec_kill_timeout.is_some()
            || a.exec_splay.is_some()
            || a.exec_env_pristine.is_some()
            || !a.exec_env_custom.is_empty()
            || !a.exec_env_allowlist.is_empty()
            || !a.exec_env_denylist.is_empty();
        if exec_options && a.exec.is_none() && self.exec.is_none() {
            self.warnings.push(
                "-exec-* flags without -exec (or an exec block) are ignored: there is no child"
                    .into(),
            );
        } else if a.exec.is_some() || exec_options {
            let mut x = self.exec.take().unwrap_or_else(|| Exec {
                kill_signal: Some(Signal::SIGINT),
                kill_timeout: Duration::from_secs(30),
                ..Exec::default()
            });
            if let Some(c) = &a.exec {
                x.command = vec![c.clone()];
            }
            if let Some(s) = &a.exec_reload_signal {
                x.reload_signal = signal(Origin::Flag("exec-reload-signal"), "", s)?;
            }
            if let Some(s) = &a.exec_kill_signal {
                x.kill_signal = signal(Origin::Flag("exec-kill-signal"), "", s)?;
            }
            if let Some(s) = &a.exec_kill_timeout {
                x.kill_timeout = dur(Origin::Flag("exec-kill-timeout"), "", s)?;
            }
            if let Some(s) = &a.exec_splay {
                x.splay = dur(Origin::Flag("exec-splay"), "", s)?;
            }
            if let Some(p) = a.exec_env_pristine {
                x.env_pristine = p;
            }
            x.env_custom.extend(a.exec_env_custom.iter().cloned());
            x.env_allowlist.extend(a.exec_env_allowlist.iter().cloned());
            x.env_denylist.extend(a.exec_env_denylist.iter().cloned());
            for kv in &x.env_custom {
                if !kv.contains('=') {
                    return Err(
                        Origin::Flag("exec-env-custom").error("", format!("{kv:?} is not K=V"))
                    );
                }
            }
            self.exec = Some(x);
        }
        if let Some(s) = &a.reload_signal {
            self.reload_signal = signal(Origin::Flag("reload-signal"), "", s)?;
        }
        if let Some(s) = &a.kill_signal {
            self.kill_signal = signal(Origin::Flag("kill-signal"), "", s)?;
        }
        if let Some(l) = &a.log_level {
            self.log_level = LogLevel::parse(l).ok_or_else(|| {
                Origin::Flag("log-level").error(
                    "",
                    format!("unknown level {l:?} (trace, debug, info, warn, err)"),
                )
            })?;
        }
        if let Some(l) = &a.log_format {
            self.log_format =
                parse_log_format(l).map_err(|e| Origin::Flag("log-format").error("", e))?;
        }
        if let Some(on) = a.syslog {
            self.syslog = on.then(|| self.syslog.clone().unwrap_or_default());
        }
        if a.syslog_facility.is_some() || a.syslog_name.is_some() {
            let x = self.syslog.get_or_insert_with(Syslog::default);
            if let Some(v) = &a.syslog_facility {
                x.facility = v.clone();
            }
            if let Some(v) = &a.syslog_name {
                x.name = v.clone();
            }
        }
        if let Some(p) = &a.log_file {
            self.log_file = (!p.is_empty()).then(|| LogFile::new(p.into()));
        }
        if let Some(x) = self.log_file.as_mut() {
            if let Some(n) = a.log_rotate_bytes {
                x.rotate_bytes = n;
            }
            if let Some(d) = &a.log_rotate_duration {
                x.rotate_duration = dur(Origin::Flag("log-rotate-duration"), "", d)?;
            }
            if let Some(n) = a.log_rotate_max_files {
                x.max_files = n;
            }
        }
        if let Some(p) = &a.pid_file {
            self.pid_file = Some(p.into());
        }
        if let Some(s) = &a.status_addr {
            self.status_addr = Some(s.clone());
        }
        if let Some(t) = &a.status_consul_timeout {
            self.status_consul_timeout = dur(Origin::Flag("status-consul-timeout"), "", t)?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        // With -exec and no templates consul-render is a plain supervisor, as consul-template.
        if self.templates.is_empty() && !self.parse_only && !self.capture && self.exec.is_none() {
            return Err(ConfigError::Flag(
                "no templates: give at least one -template \"src:dst[:command]\" (or a -config file)".into(),
            ));
        }
        if self.diff && !self.dry {
            return Err(ConfigError::Flag("-diff needs -dry".into()));
        }
        if self.capture && self.data.is_some() {
            return Err(ConfigError::Flag(
                "capture reads Consul: -data cannot be used with it".into(),
            ));
        }
        if !self.dry && !self.parse_only && !self.capture {
            for (i, t) in self.templates.iter().enumerate() {
                if t.destination.is_none() {
                    return Err(ConfigError::Flag(format!(
                        "template {}: no destination (use \"src:dst\"; only -dry prints to stdout)",
                        t.source.display_name(i)
                    )));
                }
            }
        }
        if let Some(x) = &self.exec {
            if x.command.is_empty() || x.command.iter().all(|c| c.trim().is_empty()) {
                return Err(ConfigError::Flag(
                    "-exec: the command cannot be empty".into(),
                ));
            }
        }
        Ok(())
    }
}

fn set_path(slot: &mut Option<PathBuf>, value: &Option<String>) {
    if let Some(v) = value {
        *slot = Some(v.into());
    }
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("unknown log format {other:?} (text or json)")),
    }
}

/// Paths in config files are taken as written (consul-template resolves them against the
/// working directory, and so do we); this is the one place to change that.
fn resolve_relative(_config: &std::path::Path, p: &str) -> PathBuf {
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(list: &[&str]) -> Args {
        let mut v = vec!["consul-render"];
        v.extend(list);
        Args::try_parse_from(v).unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn precedence_defaults_env_files_flags() {
        let files = vec![(
            PathBuf::from("c.hcl"),
            file::parse("consul { address = \"file:1\" }\nmax_stale = \"5s\"\ntemplate {\n source = \"a\"\n destination = \"b\"\n}").unwrap(),
        )];
        let env = |k: &str| match k {
            "CONSUL_HTTP_ADDR" => Some("env:2".to_string()),
            "CONSUL_HTTP_TOKEN" => Some("env-token".to_string()),
            _ => None,
        };
        let c = Config::resolve_with_files(&args(&["--template=in.hbs:out.conf"]), &env, &files)
            .unwrap();
        assert_eq!(
            c.consul.address, "file:1",
            "a config file wins over the environment"
        );
        assert_eq!(
            c.consul.token.as_ref().map(Secret::expose),
            Some("env-token"),
            "the environment fills what the files leave unset"
        );
        assert_eq!(c.consul.max_stale, Duration::from_secs(5));
        assert_eq!(
            c.templates.len(),
            2,
            "flag templates come after file templates"
        );
        assert_eq!(
            c.templates[1].destination.as_deref(),
            Some(std::path::Path::new("out.conf"))
        );
        let c = Config::resolve_with_files(
            &args(&["--template=in.hbs:out.conf", "--consul-addr=flag:3"]),
            &env,
            &files,
        )
        .unwrap();
        assert_eq!(c.consul.address, "flag:3");
        let c = Config::resolve_with_files(&args(&["--template=in.hbs:out.conf"]), &no_env, &[])
            .unwrap();
        assert_eq!(c.consul.address, "127.0.0.1:8500");
        assert_eq!(c.consul.retry.attempts, 12);
    }

    #[test]
    fn token_env_order_and_secrecy() {
        let env = |k: &str| match k {
            "CONSUL_TOKEN" => Some("first".to_string()),
            "CONSUL_HTTP_TOKEN" => Some("second".to_string()),
            _ => None,
        };
        let c =
            Config::resolve_with_files(&args(&["--template=in.hbs:out.conf"]), &env, &[]).unwrap();
        assert_eq!(c.consul.token.as_ref().unwrap().expose(), "first");
        assert!(!format!("{c:?}").contains("first"));
    }

    #[test]
    fn flag_errors_name_the_flag() {
        let e = Config::resolve_with_files(
            &args(&["--template=in.hbs:out.conf", "--wait=10s:1s"]),
            &no_env,
            &[],
        )
        .unwrap_err();
        assert!(
            matches!(&e, ConfigError::Flag(m) if m.contains("-wait") && m.contains("greater")),
            "{e}"
        );
        let e = Config::resolve_with_files(
            &args(&["--template=in.hbs:out.conf", "--max-stale=30"]),
            &no_env,
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("-max-stale"), "{e}");
        let e = Config::resolve_with_files(
            &args(&["--template=in.hbs:out.conf", "--kill-signal=HUP"]),
            &no_env,
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("SIGHUP"), "{e}");
        let e =
            Config::resolve_with_files(&args(&["--template=in.hbs"]), &no_env, &[]).unwrap_err();
        assert!(e.to_string().contains("no destination"), "{e}");
        assert!(
            Config::resolve_with_files(&args(&["--template=x", "--dry"]), &no_env, &[]).is_ok()
        );
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("sigterm").unwrap(), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("").unwrap(), None);
        assert!(parse_signal("TERM").is_err());
        assert!(parse_signal("SIGBOGUS").is_err());
    }
}
