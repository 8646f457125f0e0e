//! The merged `Settings` made into a `Config`: every default applied here and nowhere else, and
//! the checks that need more than one setting made once, whichever layer set them.

use super::error::ConfigError;
use super::partial::{ExecSettings, Settings, TemplateSettings};
use super::value::{LogFormat, LogLevel, Syntax};
use super::{
    Auth, ChildEnv, Command, CommandExec, Config, Consul, Dedup, Exec, LogFile, Retry, Ssl, Syslog,
    Template, Transport,
};
use nix::sys::signal::Signal;
use std::time::Duration;

/// consul-template's defaults (its `config/*.go` `Default…` values), ours where it has none.
pub mod defaults {
    use super::{Duration, LogLevel, Signal};

    pub const ADDRESS: &str = "127.0.0.1:8500";
    pub const RETRY_ATTEMPTS: u32 = 12;
    pub const RETRY_BACKOFF: Duration = Duration::from_millis(250);
    pub const RETRY_MAX_BACKOFF: Duration = Duration::from_secs(60);
    pub const MAX_STALE: Duration = Duration::from_secs(2);
    /// consul-template's `DefaultDedupPrefix` with our name.
    pub const DEDUP_PREFIX: &str = "service/consul-render/dedup/";
    pub const DEDUP_TTL: Duration = Duration::from_secs(15);
    pub const BLOCK_QUERY_WAIT: Duration = Duration::from_secs(60);
    /// Below Consul's `http_max_conns_per_client` (200).
    pub const MAX_CONNECTIONS: u32 = 128;
    pub const ONCE_TIMEOUT: Duration = Duration::from_secs(30);
    pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
    pub const RELOAD_SIGNAL: Signal = Signal::SIGHUP;
    pub const KILL_SIGNAL: Signal = Signal::SIGINT;
    pub const EXEC_KILL_SIGNAL: Signal = Signal::SIGINT;
    pub const EXEC_KILL_TIMEOUT: Duration = Duration::from_secs(30);
    /// A template command that timed out is killed outright unless its `exec {}` says otherwise.
    pub const COMMAND_KILL_SIGNAL: Signal = Signal::SIGKILL;
    pub const LOG_LEVEL: LogLevel = LogLevel::Warn;
    pub const STATUS_CONSUL_TIMEOUT: Duration = Duration::from_secs(60);
    pub const SYSLOG_FACILITY: &str = "LOCAL0";
    pub const SYSLOG_NAME: &str = "consul-render";
}

/// Applies the defaults and checks the whole.
pub fn finish(s: Settings) -> Result<Config, ConfigError> {
    let template_fatal = s.template_error_fatal.unwrap_or(true);
    let templates = s
        .templates
        .into_iter()
        .map(|t| {
            template(
                t,
                s.template_error_fatal_override,
                template_fatal,
                s.template_syntax,
            )
        })
        .collect();
    let mut warnings = s.warnings;
    let exec = exec(s.exec, &mut warnings)?;
    let config = Config {
        consul: consul(s.consul),
        templates,
        data: s.data,
        once: s.once.unwrap_or(false),
        once_timeout: s.once_timeout.unwrap_or(defaults::ONCE_TIMEOUT),
        dry: s.dry.unwrap_or(false),
        diff: s.diff.unwrap_or(false),
        parse_only: s.parse_only.unwrap_or(false),
        err_on_failed_lookup: s.err_on_failed_lookup.unwrap_or(false),
        syslog: syslog(s.syslog),
        log_file: log_file(s.log_file),
        capture: s.capture.unwrap_or(false),
        capture_output: s.capture_output,
        wait: s.wait,
        command_error_fatal: s.command_error_fatal.unwrap_or(true),
        exec,
        reload_signal: s.reload_signal.unwrap_or(Some(defaults::RELOAD_SIGNAL)),
        kill_signal: s.kill_signal.unwrap_or(Some(defaults::KILL_SIGNAL)),
        log_level: s.log_level.unwrap_or(defaults::LOG_LEVEL),
        log_format: s.log_format.unwrap_or(LogFormat::Text),
        pid_file: s.pid_file,
        status_addr: s.status_addr,
        status_consul_timeout: s
            .status_consul_timeout
            .unwrap_or(defaults::STATUS_CONSUL_TIMEOUT),
        dedup: dedup(s.dedup),
        warnings,
    };
    validate(&config)?;
    Ok(config)
}

fn consul(k: super::partial::ConsulSettings) -> Consul {
    let auth = match (k.auth.enabled, k.auth.username) {
        (Some(false), _) | (_, None) => None,
        (_, Some(username)) => Some(Auth {
            username,
            password: k.auth.password,
        }),
    };
    Consul {
        address: k.address.unwrap_or_else(|| defaults::ADDRESS.into()),
        token: k.token,
        token_file: k.token_file,
        auth,
        ssl: Ssl {
            enabled: k.ssl.enabled.unwrap_or(false),
            verify: k.ssl.verify.unwrap_or(true),
            ca_cert: k.ssl.ca_cert,
            ca_path: k.ssl.ca_path,
            cert: k.ssl.cert,
            key: k.ssl.key,
            server_name: k.ssl.server_name,
            ca_cert_pem: k.ssl.ca_cert_pem,
        },
        retry: Retry {
            enabled: k.retry.enabled.unwrap_or(true),
            attempts: k.retry.attempts.unwrap_or(defaults::RETRY_ATTEMPTS),
            backoff: k.retry.backoff.unwrap_or(defaults::RETRY_BACKOFF),
            max_backoff: k.retry.max_backoff.unwrap_or(defaults::RETRY_MAX_BACKOFF),
        },
        max_stale: k.max_stale.unwrap_or(defaults::MAX_STALE),
        block_query_wait: k.block_query_wait.unwrap_or(defaults::BLOCK_QUERY_WAIT),
        max_connections: k
            .max_connections
            .map_or(defaults::MAX_CONNECTIONS, std::num::NonZero::get),
        max_response_bytes: k
            .max_response_bytes
            .map_or(crate::limits::RESPONSE_BYTES, std::num::NonZero::get),
        namespace: k.namespace,
        partition: k.partition,
        transport: Transport {
            dial_keep_alive: k.transport.dial_keep_alive,
            dial_timeout: k.transport.dial_timeout,
            disable_keep_alives: k.transport.disable_keep_alives.unwrap_or(false),
            idle_conn_timeout: k.transport.idle_conn_timeout,
            max_idle_conns_per_host: k.transport.max_idle_conns_per_host,
        },
    }
}

/// consul-template's per-template `error_fatal`: `-template-error-fatal` wins, then the
/// template's own, then the files' top-level `template_error_fatal`, then true.
pub(super) fn template(
    t: TemplateSettings,
    fatal_override: Option<bool>,
    fatal_default: bool,
    syntax: Option<Syntax>,
) -> Template {
    Template {
        source: t.source,
        destination: t.destination,
        command: Command::from_list(t.command),
        command_timeout: t.command_timeout.unwrap_or(defaults::COMMAND_TIMEOUT),
        check: t.check,
        perms: t.perms,
        backup: t.backup.unwrap_or(false),
        rollback: t.rollback.unwrap_or(false),
        create_dest_dirs: t.create_dest_dirs.unwrap_or(true),
        wait: t.wait,
        error_on_missing_key: t.error_on_missing_key.unwrap_or(false),
        error_fatal: fatal_override.or(t.error_fatal).unwrap_or(fatal_default),
        sandbox_path: t.sandbox_path,
        function_denylist: t.function_denylist,
        owner: t.owner,
        command_exec: t.command_exec.map(|x| CommandExec {
            kill_signal: x.kill_signal.unwrap_or(Some(defaults::COMMAND_KILL_SIGNAL)),
            kill_timeout: x.kill_timeout.unwrap_or(Duration::ZERO),
            env: child_env(x),
        }),
        go_syntax: t.syntax.or(syntax).map(|s| s == Syntax::Go),
    }
}

/// The exec child: on when it has a command, unless `enabled = false` (consul-template).
fn exec(mut x: ExecSettings, warnings: &mut Vec<String>) -> Result<Option<Exec>, ConfigError> {
    let enabled = x.enabled != Some(false);
    let options = x.has_options();
    let Some(command) = x.command.take().filter(|_| enabled) else {
        if enabled && options {
            warnings.push(
                "-exec-* flags without -exec (or an exec block) are ignored: there is no child"
                    .into(),
            );
        }
        return Ok(None);
    };
    let Some(command) = Command::from_list(command) else {
        return Err(ConfigError::Usage(
            "-exec: the command cannot be empty".into(),
        ));
    };
    Ok(Some(Exec {
        command,
        reload_signal: x.reload_signal.flatten(),
        kill_signal: x.kill_signal.unwrap_or(Some(defaults::EXEC_KILL_SIGNAL)),
        kill_timeout: x.kill_timeout.unwrap_or(defaults::EXEC_KILL_TIMEOUT),
        splay: x.splay.unwrap_or(Duration::ZERO),
        env: child_env(x),
    }))
}

fn child_env(x: ExecSettings) -> ChildEnv {
    ChildEnv {
        pristine: x.env_pristine.unwrap_or(false),
        custom: x.env_custom,
        allowlist: x.env_allowlist,
        denylist: x.env_denylist,
    }
}

/// consul-template's `SyslogConfig.Finalize`: on when a facility or name is set, unless
/// `enabled = false`.
fn syslog(x: super::partial::SyslogSettings) -> Option<Syslog> {
    let implied = x.facility.is_some() || x.name.is_some() || x.socket.is_some();
    x.enabled.unwrap_or(implied).then(|| Syslog {
        facility: x
            .facility
            .unwrap_or_else(|| defaults::SYSLOG_FACILITY.into()),
        name: x.name.unwrap_or_else(|| defaults::SYSLOG_NAME.into()),
        socket: x.socket,
    })
}

/// consul-template's `DedupConfig.Finalize`: on when any setting is given, unless
/// `enabled = false`; the prefix always ends with `/`.
fn dedup(x: super::partial::DedupSettings) -> Option<Dedup> {
    let implied = x.prefix.is_some()
        || x.ttl.is_some()
        || x.max_stale.is_some()
        || x.block_query_wait.is_some();
    x.enabled.unwrap_or(implied).then(|| {
        let mut prefix = x.prefix.unwrap_or_else(|| defaults::DEDUP_PREFIX.into());
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Dedup {
            prefix: prefix.trim_start_matches('/').to_string(),
            ttl: x.ttl.unwrap_or(defaults::DEDUP_TTL),
            max_stale: x.max_stale.unwrap_or(defaults::MAX_STALE),
            block_query_wait: x.block_query_wait.unwrap_or(defaults::BLOCK_QUERY_WAIT),
        }
    })
}

/// On when the path is not empty (`-log-file=""` turns a file's `log_file` off).
fn log_file(x: super::partial::LogFileSettings) -> Option<LogFile> {
    let path = x.path.filter(|p| !p.as_os_str().is_empty())?;
    let mut f = LogFile::new(path);
    f.rotate_bytes = x.rotate_bytes.unwrap_or(f.rotate_bytes);
    f.rotate_duration = x.rotate_duration.unwrap_or(f.rotate_duration);
    f.max_files = x.max_files.unwrap_or(f.max_files);
    Some(f)
}

fn validate(c: &Config) -> Result<(), ConfigError> {
    let usage = |m: &str| Err(ConfigError::Usage(m.into()));
    // With -exec and no templates consul-render is a plain supervisor, as consul-template.
    if c.templates.is_empty() && !c.parse_only && !c.capture && c.exec.is_none() {
        return usage(
            "no templates: give at least one -template \"src:dst[:command]\" (or a -config file)",
        );
    }
    if c.diff && !c.dry {
        return usage("-diff needs -dry");
    }
    if c.capture && c.data.is_some() {
        return usage("capture reads Consul: -data cannot be used with it");
    }
    if !c.dry && !c.parse_only && !c.capture {
        for (i, t) in c.templates.iter().enumerate() {
            if t.destination.is_none() {
                return Err(ConfigError::Usage(format!(
                    "template {}: no destination (use \"src:dst\"; only -dry prints to stdout)",
                    t.source.display_name(i)
                )));
            }
        }
    }
    Ok(())
}
