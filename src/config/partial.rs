//! `Settings`: what one layer (environment, a config file, the flags) says, every field an
//! `Option` of its typed value; layers merge field by field, the later one winning, and lists
//! append. `finish` turns the merged whole into a `Config`.

use super::duration::Wait;
use super::keys::Owner;
use super::value::{LogFormat, LogLevel, Secret, Syntax};
use nix::sys::signal::Signal;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::PathBuf;
use std::time::Duration;

/// Declares a settings struct and its `merge`: `set` fields are `Option`s the later layer
/// overrides, `nested` fields merge recursively, `append` fields are lists that add up.
macro_rules! settings {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident: $ty:ty, )*
        }
        $(nested { $( $nfield:ident: $nty:ty, )* })?
        $(append { $( $(#[$lmeta:meta])* $lfield:ident: $lty:ty, )* })?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: Option<$ty>, )*
            $($( pub $nfield: $nty, )*)?
            $($( $(#[$lmeta])* pub $lfield: Vec<$lty>, )*)?
        }

        impl $name {
            /// Takes every value `later` sets; lists add up.
            pub fn merge(&mut self, later: $name) {
                $( if later.$field.is_some() { self.$field = later.$field; } )*
                $($( self.$nfield.merge(later.$nfield); )*)?
                $($( self.$lfield.extend(later.$lfield); )*)?
            }
        }
    };
}

settings! {
    /// Everything but the templates' own settings.
    pub struct Settings {
        data: PathBuf,
        once: bool,
        once_timeout: Duration,
        dry: bool,
        diff: bool,
        parse_only: bool,
        capture: bool,
        capture_output: PathBuf,
        err_on_failed_lookup: bool,
        wait: Wait,
        /// The files' top-level `template_error_fatal`: each template's default.
        template_error_fatal: bool,
        /// `-template-error-fatal`: overrides every template's own `error_fatal`.
        template_error_fatal_override: bool,
        /// `-template-syntax`: the syntax of templates that do not say.
        template_syntax: Syntax,
        command_error_fatal: bool,
        reload_signal: Option<Signal>,
        kill_signal: Option<Signal>,
        log_level: LogLevel,
        log_format: LogFormat,
        pid_file: PathBuf,
        status_addr: String,
        status_consul_timeout: Duration,
    }
    nested {
        consul: ConsulSettings,
        exec: ExecSettings,
        syslog: SyslogSettings,
        log_file: LogFileSettings,
        dedup: DedupSettings,
    }
    append {
        templates: TemplateSettings,
        /// Said once logging is up (settings accepted that do nothing).
        warnings: String,
    }
}

settings! {
    pub struct ConsulSettings {
        address: String,
        token: Secret,
        token_file: PathBuf,
        max_stale: Duration,
        block_query_wait: Duration,
        max_connections: NonZeroU32,
        max_response_bytes: NonZeroU64,
        namespace: String,
        partition: String,
    }
    nested {
        auth: AuthSettings,
        ssl: SslSettings,
        retry: RetrySettings,
        transport: TransportSettings,
    }
}

settings! {
    /// Basic auth; on when a user name is set, unless `enabled = false`.
    pub struct AuthSettings {
        enabled: bool,
        username: String,
        password: Secret,
    }
}

settings! {
    pub struct SslSettings {
        enabled: bool,
        verify: bool,
        ca_cert: PathBuf,
        ca_path: PathBuf,
        cert: PathBuf,
        key: PathBuf,
        server_name: String,
        ca_cert_pem: String,
    }
}

settings! {
    pub struct RetrySettings {
        enabled: bool,
        attempts: u32,
        backoff: Duration,
        max_backoff: Duration,
    }
}

settings! {
    pub struct TransportSettings {
        dial_keep_alive: Duration,
        dial_timeout: Duration,
        disable_keep_alives: bool,
        idle_conn_timeout: Duration,
        max_idle_conns_per_host: u32,
    }
}

settings! {
    /// The exec child (`-exec`, `exec {}`); on when it has a command, unless `enabled = false`.
    pub struct ExecSettings {
        enabled: bool,
        command: Vec<String>,
        reload_signal: Option<Signal>,
        kill_signal: Option<Signal>,
        kill_timeout: Duration,
        splay: Duration,
        env_pristine: bool,
    }
    append {
        env_custom: String,
        env_allowlist: String,
        env_denylist: String,
    }
}

impl ExecSettings {
    /// Whether anything but the command is set (options without a command do nothing).
    pub fn has_options(&self) -> bool {
        self.reload_signal.is_some()
            || self.kill_signal.is_some()
            || self.kill_timeout.is_some()
            || self.splay.is_some()
            || self.env_pristine.is_some()
            || !self.env_custom.is_empty()
            || !self.env_allowlist.is_empty()
            || !self.env_denylist.is_empty()
    }
}

settings! {
    /// De-duplication mode (`-dedup`, `deduplicate {}`); on when any of its settings is given,
    /// unless `enabled = false` (consul-template's `DedupConfig.Finalize`).
    pub struct DedupSettings {
        enabled: bool,
        prefix: String,
        ttl: Duration,
        max_stale: Duration,
        block_query_wait: Duration,
    }
}

settings! {
    /// Syslog; on when a facility or name is set, unless `enabled = false` (consul-template).
    pub struct SyslogSettings {
        enabled: bool,
        facility: String,
        name: String,
        socket: PathBuf,
    }
}

settings! {
    /// The log file; on when its path is not empty.
    pub struct LogFileSettings {
        path: PathBuf,
        rotate_bytes: u64,
        rotate_duration: Duration,
        max_files: i64,
    }
}

/// Where a template's text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    File(PathBuf),
    Inline(String),
}

impl TemplateSource {
    /// The name errors use: the file path, or `(inline template N)`.
    pub fn display_name(&self, index: usize) -> String {
        match self {
            TemplateSource::File(p) => p.display().to_string(),
            TemplateSource::Inline(_) => format!("(inline template {})", index + 1),
        }
    }
}

/// One template as a layer gives it; `finish` fills in the defaults.
#[derive(Debug, Clone)]
pub struct TemplateSettings {
    pub source: TemplateSource,
    pub destination: Option<PathBuf>,
    pub command: Vec<String>,
    pub command_timeout: Option<Duration>,
    pub check: Option<String>,
    pub perms: Option<u32>,
    pub backup: Option<bool>,
    pub rollback: Option<bool>,
    pub create_dest_dirs: Option<bool>,
    pub wait: Option<Wait>,
    pub error_on_missing_key: Option<bool>,
    pub error_fatal: Option<bool>,
    pub sandbox_path: Option<PathBuf>,
    pub function_denylist: Vec<String>,
    pub owner: Owner,
    /// The template's `exec { env kill_signal kill_timeout … }`.
    pub command_exec: Option<ExecSettings>,
    pub syntax: Option<Syntax>,
}

impl TemplateSettings {
    pub fn new(source: TemplateSource) -> TemplateSettings {
        TemplateSettings {
            source,
            destination: None,
            command: Vec::new(),
            command_timeout: None,
            check: None,
            perms: None,
            backup: None,
            rollback: None,
            create_dest_dirs: None,
            wait: None,
            error_on_missing_key: None,
            error_fatal: None,
            sandbox_path: None,
            function_denylist: Vec::new(),
            owner: Owner::default(),
            command_exec: None,
            syntax: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win_field_by_field_and_lists_add_up() {
        let mut a = Settings::default();
        a.consul.address = Some("env:1".into());
        a.consul.retry.attempts = Some(3);
        a.exec.env_custom.push("A=1".into());
        let mut b = Settings::default();
        b.consul.retry.backoff = Some(Duration::from_secs(1));
        b.exec.env_custom.push("B=2".into());
        b.once = Some(true);
        a.merge(b);
        assert_eq!(a.consul.address.as_deref(), Some("env:1"));
        assert_eq!(a.consul.retry.attempts, Some(3));
        assert_eq!(a.consul.retry.backoff, Some(Duration::from_secs(1)));
        assert_eq!(a.exec.env_custom, ["A=1", "B=2"]);
        assert_eq!(a.once, Some(true));
    }
}
