//! Every flag consul-render accepts, with consul-template's names, as one clap definition.
//!
//! Every field is an `Option` (or a list) so that `config::Config::resolve` can layer
//! defaults < environment < config files < flags; nothing outside `config` reads these.
//! Go-style booleans (`-once`, `-once=false`) are `Option<bool>` with `num_args = 0..=1`;
//! the argv rewrite normalises their values before clap sees them.

// The doc comments are the --help text, not rustdoc: no backticks in them.
#![allow(clippy::doc_markdown)]

use crate::config::template_spec::TemplateSpec;
use crate::config::{EnvPair, GoDuration, LogFormat, LogLevel, SignalName, Syntax, Wait};
use clap::{ArgAction, Parser};
use std::num::{NonZeroU32, NonZeroU64};

const AFTER_HELP: &str = "\
Flags are consul-template's: single or double dash (-once, --once), value joined or separate
(-wait=5s, -wait 5s). Booleans take no value or a joined one (-once=false).
Environment: CONSUL_HTTP_ADDR, CONSUL_TOKEN / CONSUL_HTTP_TOKEN, CONSUL_TOKEN_FILE /
CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_AUTH, CONSUL_HTTP_SSL, CONSUL_HTTP_SSL_VERIFY, CONSUL_CACERT,
CONSUL_CAPATH, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME,
CONSUL_NAMESPACE, CONSUL_PARTITION, CONSUL_TEMPLATE_LOG_LEVEL. As consul-template: flags beat
config files, which beat the environment.

Exit codes: 0 ok, 13 bad flags, 14 runtime failure, 15 configuration or template file error;
with -dry -diff, 1 when something would change.

Subcommands: `consul-render check -template ...` reports template syntax errors and unknown
helpers without contacting Consul (same as -parse-only). `consul-render capture -template ...
[-o data.json]` renders the templates against Consul and writes a data file (for -data) holding
exactly what they read; with no -template it captures the whole datacenter.";

/// The parsed command line.
#[derive(Parser, Debug, Default, Clone)]
#[command(
    name = "consul-render",
    version,
    about = "Render handlebars templates from Consul or a data file, write them atomically, run a command on change.",
    disable_help_flag = true,
    disable_version_flag = true,
    after_help = AFTER_HELP,
    max_term_width = 100,
    // Go's flag package: a flag given twice keeps the last value (wrapper scripts append
    // overrides); repeatable flags (-template, -config, …) still collect every value.
    args_override_self = true
)]
pub struct Args {
    /// Print help.
    #[arg(short = 'h', long = "help", action = ArgAction::Help, help_heading = "General")]
    pub help: Option<bool>,

    /// Print the version.
    #[arg(short = 'v', long = "version", action = ArgAction::Version, help_heading = "General")]
    pub version: Option<bool>,

    // ----- Consul connection -----
    /// Consul agent address: host:port, http://…, https://… or unix:///path [env CONSUL_HTTP_ADDR; default 127.0.0.1:8500].
    #[arg(
        long = "consul-addr",
        alias = "consul",
        value_name = "ADDR",
        help_heading = "Consul"
    )]
    pub consul_addr: Option<String>,

    /// ACL token, sent as X-Consul-Token [env CONSUL_TOKEN, then CONSUL_HTTP_TOKEN].
    #[arg(
        long = "consul-token",
        alias = "token",
        value_name = "TOKEN",
        help_heading = "Consul"
    )]
    pub consul_token: Option<String>,

    /// File holding the ACL token [env CONSUL_TOKEN_FILE, then CONSUL_HTTP_TOKEN_FILE].
    #[arg(
        long = "consul-token-file",
        value_name = "PATH",
        help_heading = "Consul"
    )]
    pub consul_token_file: Option<String>,

    /// HTTP basic auth, user[:password] [env CONSUL_HTTP_AUTH].
    #[arg(
        long = "consul-auth",
        alias = "auth",
        value_name = "USER[:PASS]",
        help_heading = "Consul"
    )]
    pub consul_auth: Option<String>,

    /// Use HTTPS to talk to Consul [env CONSUL_HTTP_SSL].
    #[arg(long = "consul-ssl", alias = "ssl", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", help_heading = "Consul")]
    pub consul_ssl: Option<bool>,

    /// Verify Consul's TLS certificate (default true) [env CONSUL_HTTP_SSL_VERIFY].
    #[arg(long = "consul-ssl-verify", alias = "ssl-verify", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", help_heading = "Consul")]
    pub consul_ssl_verify: Option<bool>,

    /// CA certificate file for Consul's TLS [env CONSUL_CACERT].
    #[arg(
        long = "consul-ssl-ca-cert",
        alias = "ssl-ca-cert",
        value_name = "PATH",
        help_heading = "Consul"
    )]
    pub consul_ssl_ca_cert: Option<String>,

    /// Directory of CA certificates [env CONSUL_CAPATH].
    #[arg(
        long = "consul-ssl-ca-path",
        value_name = "PATH",
        help_heading = "Consul"
    )]
    pub consul_ssl_ca_path: Option<String>,

    /// Client certificate for mutual TLS [env CONSUL_CLIENT_CERT].
    #[arg(
        long = "consul-ssl-cert",
        alias = "ssl-cert",
        value_name = "PATH",
        help_heading = "Consul"
    )]
    pub consul_ssl_cert: Option<String>,

    /// Client key for mutual TLS [env CONSUL_CLIENT_KEY].
    #[arg(
        long = "consul-ssl-key",
        alias = "ssl-key",
        value_name = "PATH",
        help_heading = "Consul"
    )]
    pub consul_ssl_key: Option<String>,

    /// Server name to verify and send as SNI [env CONSUL_TLS_SERVER_NAME].
    #[arg(
        long = "consul-ssl-server-name",
        value_name = "NAME",
        help_heading = "Consul"
    )]
    pub consul_ssl_server_name: Option<String>,

    /// Retry failed Consul requests (default true).
    #[arg(long = "consul-retry", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", help_heading = "Consul")]
    pub consul_retry: Option<bool>,

    /// Retry attempts, 0 = forever (default 12).
    #[arg(
        long = "consul-retry-attempts",
        value_name = "N",
        help_heading = "Consul"
    )]
    pub consul_retry_attempts: Option<u32>,

    /// First retry delay, doubled per attempt (default 250ms). Old name: -retry.
    #[arg(
        long = "consul-retry-backoff",
        alias = "retry",
        value_name = "DURATION",
        help_heading = "Consul"
    )]
    pub consul_retry_backoff: Option<GoDuration>,

    /// Longest retry delay (default 1m).
    #[arg(
        long = "consul-retry-max-backoff",
        value_name = "DURATION",
        help_heading = "Consul"
    )]
    pub consul_retry_max_backoff: Option<GoDuration>,

    /// Allow stale reads up to this lag; 0 turns stale reads off (default 2s).
    #[arg(long = "max-stale", value_name = "DURATION", help_heading = "Consul")]
    pub max_stale: Option<GoDuration>,

    /// How long one blocking query waits in Consul (default 1m).
    #[arg(
        long = "block-query-wait",
        value_name = "DURATION",
        help_heading = "Consul"
    )]
    pub block_query_wait: Option<GoDuration>,

    /// Most connections open to Consul at once, idle ones included (default 128).
    #[arg(long = "max-connections", value_name = "N", help_heading = "Consul")]
    pub max_connections: Option<NonZeroU32>,

    /// Largest Consul answer read, in bytes (default 64 MiB); a larger one is an error.
    #[arg(
        long = "max-response-bytes",
        value_name = "BYTES",
        help_heading = "Consul"
    )]
    pub max_response_bytes: Option<NonZeroU64>,

    // ----- Templates and modes -----
    /// A template: "src:dst[:command]" (repeatable).
    ///
    /// Parsed as consul-template does: parts may start with a drive letter (C:\in.hbs);
    /// fourth and later parts are joined back into the command (in:out:echo a:b).
    #[arg(long = "template", value_name = "SRC:DST[:CMD]", action = ArgAction::Append, help_heading = "Templates")]
    pub template: Vec<TemplateSpec>,

    /// Config file or directory, HCL or JSON (repeatable; a directory is read in lexical order).
    #[arg(long = "config", value_name = "PATH", action = ArgAction::Append, help_heading = "Templates")]
    pub config: Vec<String>,

    /// Render from this JSON data file instead of Consul.
    #[arg(long = "data", value_name = "FILE", help_heading = "Templates")]
    pub data: Option<String>,

    /// De-duplication mode: renderers of the same template elect one leader (a Consul session
    /// and lock) that watches its dependencies and shares them in Consul KV; the others render
    /// from that (settings: the config file's deduplicate {}).
    #[arg(long = "dedup", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", help_heading = "Templates")]
    pub dedup: Option<bool>,

    /// Render once and exit instead of watching.
    #[arg(long = "once", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", help_heading = "Templates")]
    pub once: Option<bool>,

    /// Give up once mode after this long, listing what never arrived (default 30s).
    #[arg(
        long = "once-timeout",
        value_name = "DURATION",
        help_heading = "Templates"
    )]
    pub once_timeout: Option<GoDuration>,

    /// Print what would be written ("> DEST" then the content) instead of writing; run nothing.
    #[arg(long = "dry", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", help_heading = "Templates")]
    pub dry: Option<bool>,

    /// With -dry: print a unified diff against each destination; exit 1 when something would change.
    #[arg(long = "diff", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", help_heading = "Templates")]
    pub diff: Option<bool>,

    /// Check templates for syntax errors and unknown helpers, contacting nothing, then exit.
    #[arg(long = "parse-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", help_heading = "Templates")]
    pub parse_only: Option<bool>,

    /// Quiescence: wait for MIN without changes, at most MAX (default 4 x MIN) [watch mode].
    #[arg(long = "wait", value_name = "MIN[:MAX]", help_heading = "Templates")]
    pub wait: Option<Wait>,

    /// Validate each candidate before it replaces the destination; {{path}} is its quoted path.
    #[arg(long = "check", value_name = "CMD", help_heading = "Templates")]
    pub check: Option<String>,

    /// Whether a template error ends watch mode (exit 14); overrides every template's
    /// error_fatal (default true, as consul-template).
    #[arg(long = "template-error-fatal", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", help_heading = "Templates")]
    pub template_error_fatal: Option<bool>,

    /// Whether a failing template command ends watch mode (exit 14); default true, as
    /// consul-template. =false logs the failure and keeps watching.
    #[arg(long = "command-error-fatal", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", help_heading = "Templates")]
    pub command_error_fatal: Option<bool>,

    // ----- Exec mode -----
    /// Supervise this command: start it after the first render, reload or restart it on change.
    #[arg(long = "exec", value_name = "CMD", help_heading = "Exec")]
    pub exec: Option<String>,

    /// Signal sent to the exec child on change; unset = restart it.
    #[arg(
        long = "exec-reload-signal",
        value_name = "SIGNAL",
        help_heading = "Exec"
    )]
    pub exec_reload_signal: Option<SignalName>,

    /// Signal that stops the exec child (default SIGINT).
    #[arg(
        long = "exec-kill-signal",
        value_name = "SIGNAL",
        help_heading = "Exec"
    )]
    pub exec_kill_signal: Option<SignalName>,

    /// Wait this long after the kill signal before SIGKILL (default 30s).
    #[arg(
        long = "exec-kill-timeout",
        value_name = "DURATION",
        help_heading = "Exec"
    )]
    pub exec_kill_timeout: Option<GoDuration>,

    /// Random delay up to this before reloading the exec child.
    #[arg(long = "exec-splay", value_name = "DURATION", help_heading = "Exec")]
    pub exec_splay: Option<GoDuration>,

    /// Give the exec child no inherited environment.
    #[arg(long = "exec-env-pristine", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", help_heading = "Exec")]
    pub exec_env_pristine: Option<bool>,

    /// Extra K=V for the exec child's environment (repeatable).
    #[arg(long = "exec-env-custom", value_name = "K=V", action = ArgAction::Append, help_heading = "Exec")]
    pub exec_env_custom: Vec<EnvPair>,

    /// Pass only variables matching this glob (repeatable).
    #[arg(long = "exec-env-allowlist", value_name = "GLOB", action = ArgAction::Append, help_heading = "Exec")]
    pub exec_env_allowlist: Vec<String>,

    /// Never pass variables matching this glob (repeatable).
    #[arg(long = "exec-env-denylist", value_name = "GLOB", action = ArgAction::Append, help_heading = "Exec")]
    pub exec_env_denylist: Vec<String>,

    // ----- Process -----
    /// Signal that re-reads config and templates (default SIGHUP).
    #[arg(
        long = "reload-signal",
        value_name = "SIGNAL",
        help_heading = "Process"
    )]
    pub reload_signal: Option<SignalName>,

    /// Signal that stops consul-render (default SIGINT; SIGTERM always stops it too).
    #[arg(long = "kill-signal", value_name = "SIGNAL", help_heading = "Process")]
    pub kill_signal: Option<SignalName>,

    /// Log level: trace, debug, info, warn, err [env CONSUL_TEMPLATE_LOG_LEVEL; default warn].
    #[arg(long = "log-level", value_name = "LEVEL", help_heading = "Process")]
    pub log_level: Option<LogLevel>,

    /// Log format: text or json (default text).
    #[arg(long = "log-format", value_name = "FORMAT", help_heading = "Process")]
    pub log_format: Option<LogFormat>,

    /// Write our PID to this file.
    #[arg(long = "pid-file", value_name = "PATH", help_heading = "Process")]
    pub pid_file: Option<String>,

    /// Serve /health, /ready and /metrics on this address (HOST:PORT; a bare PORT binds
    /// 127.0.0.1) in watch and exec mode.
    #[arg(long = "status-addr", value_name = "ADDR", help_heading = "Process")]
    pub status_addr: Option<String>,

    /// How long Consul may be unreachable before /ready answers 503 (default 1m).
    #[arg(
        long = "status-consul-timeout",
        value_name = "DURATION",
        help_heading = "Process"
    )]
    pub status_consul_timeout: Option<GoDuration>,

    /// Template syntax when a template does not say: go (converted when loaded) or handlebars.
    /// Default: by extension (.ctmpl, .tmpl, .tpl, .gotmpl are Go).
    #[arg(
        long = "template-syntax",
        value_name = "SYNTAX",
        help_heading = "Templates"
    )]
    pub template_syntax: Option<Syntax>,

    /// Log to syslog as well (default facility LOCAL0, name consul-render).
    #[arg(long = "syslog", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Logging")]
    pub syslog: Option<bool>,

    /// The syslog facility (LOCAL0…LOCAL7, USER, DAEMON, …); turns syslog on.
    #[arg(
        long = "syslog-facility",
        value_name = "FACILITY",
        help_heading = "Logging"
    )]
    pub syslog_facility: Option<String>,

    /// The program name syslog lines carry; turns syslog on.
    #[arg(long = "syslog-name", value_name = "NAME", help_heading = "Logging")]
    pub syslog_name: Option<String>,

    /// Log to files as well: DIR/NAME-UNIXNANO.log, rotated (consul-template's naming).
    #[arg(long = "log-file", value_name = "PATH", help_heading = "Logging")]
    pub log_file: Option<String>,

    /// Start a new log file after this many bytes (default: no limit).
    #[arg(
        long = "log-rotate-bytes",
        value_name = "BYTES",
        help_heading = "Logging"
    )]
    pub log_rotate_bytes: Option<u64>,

    /// Start a new log file after this long (default 24h).
    #[arg(
        long = "log-rotate-duration",
        value_name = "DURATION",
        help_heading = "Logging"
    )]
    pub log_rotate_duration: Option<GoDuration>,

    /// Older log files kept (default 0: all; -1: none).
    #[arg(
        long = "log-rotate-max-files",
        value_name = "N",
        allow_negative_numbers = true,
        help_heading = "Logging"
    )]
    pub log_rotate_max_files: Option<i64>,

    /// `capture`: write the data file here, atomically (default: stdout).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        help_heading = "Capture"
    )]
    pub output: Option<String>,

    /// Set by the `capture` subcommand (not a flag).
    #[arg(skip)]
    pub capture: bool,
}

#[cfg(test)]
mod tests;
