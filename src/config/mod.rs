//! One resolved `Config`, built by one pipeline: each layer (environment, each config file in
//! order, the flags) gives a typed `Settings` of `Option`s; they merge in consul-template's order
//! (defaults < environment < config files < flags; templates append), and `finish` applies the
//! defaults and checks the whole once.
//!
//! Nothing outside this module sees clap or serde types. Errors name the layer and the key, and
//! pick the exit code (a flag or variable: 13, a file: 15).

pub mod duration;
mod env;
mod error;
pub mod file;
mod finish;
mod flags;
mod from_file;
pub mod hcl;
pub mod keys;
mod partial;
pub mod template_spec;
mod value;

pub use duration::Wait;
pub use error::{ConfigError, Layer};
pub use finish::defaults;
pub use keys::{LogFile, Syslog};
pub use partial::TemplateSource;
pub use value::{
    Command, EnvPair, GoDuration, LogFormat, LogLevel, Mode, Secret, SignalName, Syntax, ValueError,
};

use crate::cli::Args;
use file::FileConfig;
use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::time::Duration;

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
    /// What runs after the file changed.
    pub command: Option<Command>,
    pub command_timeout: Duration,
    pub check: Option<String>,
    pub perms: Option<u32>,
    pub backup: bool,
    pub rollback: bool,
    pub create_dest_dirs: bool,
    pub wait: Option<Wait>,
    pub error_on_missing_key: bool,
    /// consul-template's per-template `error_fatal` (watch mode): whether its error ends the run.
    pub error_fatal: bool,
    pub sandbox_path: Option<PathBuf>,
    /// `function_denylist` (`function_blacklist`): helpers this template may not call.
    pub function_denylist: Vec<String>,
    /// `user`/`uid`, `group`/`gid`: the written file's owner.
    pub owner: keys::Owner,
    /// The template's `exec { env { … } kill_signal kill_timeout }`: the command's environment
    /// and how a timed-out command is stopped (`None`: our environment, SIGKILL).
    pub command_exec: Option<CommandExec>,
    /// `syntax`: a Go template (converted when loaded) or handlebars; `None` = by extension
    /// (`.ctmpl`, `.tmpl`, `.tpl`, `.gotmpl` are Go).
    pub go_syntax: Option<bool>,
}

impl Template {
    /// A template with every default, as if a layer gave only its source.
    pub fn new(source: TemplateSource) -> Template {
        finish::template(partial::TemplateSettings::new(source), None, true, None)
    }
}

/// A child's environment (`exec { env { … } }`): ours or none (`pristine`), kept where the
/// allowlist matches, dropped where the denylist matches, then `custom` (`K=V`) added.
#[derive(Debug, Clone, Default)]
pub struct ChildEnv {
    pub pristine: bool,
    pub custom: Vec<String>,
    pub allowlist: Vec<String>,
    pub denylist: Vec<String>,
}

/// A template's `exec { env kill_signal kill_timeout }`.
#[derive(Debug, Clone)]
pub struct CommandExec {
    pub env: ChildEnv,
    pub kill_signal: Option<Signal>,
    pub kill_timeout: Duration,
}

/// The exec child (`-exec`, `exec {}`).
#[derive(Debug, Clone)]
pub struct Exec {
    pub command: Command,
    pub reload_signal: Option<Signal>,
    pub kill_signal: Option<Signal>,
    pub kill_timeout: Duration,
    pub splay: Duration,
    pub env: ChildEnv,
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
    /// De-duplication mode (`-dedup`, `deduplicate {}`), when on.
    pub dedup: Option<Dedup>,
    /// Said once logging is up (settings that are accepted but do nothing).
    pub warnings: Vec<String>,
}

/// De-duplication mode's settings (consul-template's `deduplicate {}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedup {
    /// The KV prefix under which each template's lock and data live (ends with `/`).
    pub prefix: String,
    /// The session's TTL: a leader that stops renewing loses it within twice this.
    pub ttl: Duration,
    /// How long a follower renders from data no leader holds before it says so.
    pub max_stale: Duration,
    /// The followers' blocking wait on the shared data.
    pub block_query_wait: Duration,
}

impl Config {
    /// Defaults < environment < each config file named by `-config` < flags.
    pub fn resolve(
        args: &Args,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut files = Vec::new();
        for path in &args.config {
            files.extend(file::load_path(std::path::Path::new(path))?);
        }
        Self::resolve_with_files(args, env, files)
    }

    fn resolve_with_files(
        args: &Args,
        env: &dyn Fn(&str) -> Option<String>,
        files: Vec<(PathBuf, FileConfig)>,
    ) -> Result<Config, ConfigError> {
        // consul-template's order: the environment only fills what config files and flags
        // leave unset (a host-wide CONSUL_HTTP_ADDR never overrides a service's config file).
        let mut settings = env::layer(env)?;
        for (path, f) in files {
            settings.merge(from_file::layer(&path, f)?);
        }
        settings.merge(flags::layer(args)?);
        finish::finish(settings)
    }
}

#[cfg(test)]
mod tests;
