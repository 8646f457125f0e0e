//! One config file (HCL1 or JSON) as written, before precedence is applied.
//!
//! Keys are consul-template's; unknown keys are errors naming the key path and the file. Blocks
//! that consul-template flattens (`consul`, `exec`, `wait`, …) keep the last one when repeated;
//! `template` blocks accumulate.

use super::duration::Wait;
use super::error::ConfigError;
use super::hcl;
use super::value::{EnvPair, GoDuration, LogFormat, LogLevel, Mode, SignalName, Syntax};
use serde::Deserialize;
use serde_json::Value;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};

/// Why a config file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error(transparent)]
    Hcl(#[from] hcl::HclError),
    /// A key that is unknown or holds a wrong value; `key` is its path (`template[0].perms`).
    #[error("{key}: {message}")]
    Key { key: String, message: String },
    /// The file as a whole is not an object of consul-template's keys.
    #[error("{0}")]
    Shape(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub consul: Option<ConsulFile>,
    #[serde(default)]
    pub template: Vec<TemplateFile>,
    pub wait: Option<Wait>,
    pub exec: Option<ExecFile>,
    pub log_level: Option<LogLevel>,
    pub log_format: Option<LogFormat>,
    pub pid_file: Option<String>,
    pub kill_signal: Option<SignalName>,
    pub reload_signal: Option<SignalName>,
    pub max_stale: Option<GoDuration>,
    pub block_query_wait: Option<GoDuration>,
    pub once: Option<bool>,
    pub once_timeout: Option<GoDuration>,
    pub template_error_fatal: Option<bool>,
    pub command_error_fatal: Option<bool>,
    pub max_connections: Option<NonZeroU32>,
    pub max_response_bytes: Option<NonZeroU64>,
    pub status_addr: Option<String>,
    pub status_consul_timeout: Option<GoDuration>,
    pub data: Option<String>,
    pub default_delimiters: Option<DelimitersFile>,
    pub err_on_failed_lookup: Option<bool>,
    pub deduplicate: Option<DedupFile>,
    pub vault: Option<Value>,
    pub nomad: Option<Value>,
    pub syslog: Option<SyslogFile>,
    pub log_file: Option<LogFileFile>,
}

/// `deduplicate { enabled prefix ttl max_stale block_query_wait }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupFile {
    pub enabled: Option<bool>,
    pub prefix: Option<String>,
    #[serde(alias = "TTL")]
    pub ttl: Option<GoDuration>,
    pub max_stale: Option<GoDuration>,
    pub block_query_wait: Option<GoDuration>,
}

/// `syslog { enabled facility name }`, plus ours: `socket` (default /dev/log).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogFile {
    pub enabled: Option<bool>,
    pub facility: Option<String>,
    pub name: Option<String>,
    pub socket: Option<String>,
}

/// `log_file { path log_rotate_bytes log_rotate_duration log_rotate_max_files }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFileFile {
    pub path: Option<String>,
    pub log_rotate_bytes: Option<u64>,
    pub log_rotate_duration: Option<GoDuration>,
    pub log_rotate_max_files: Option<i64>,
}

/// `default_delimiters { left = "{{" right = "}}" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelimitersFile {
    pub left: Option<String>,
    pub right: Option<String>,
}

/// `consul { transport { … } }`: Go's HTTP transport settings, mapped onto our client.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportFile {
    pub dial_keep_alive: Option<GoDuration>,
    pub dial_timeout: Option<GoDuration>,
    pub disable_keep_alives: Option<bool>,
    pub idle_conn_timeout: Option<GoDuration>,
    pub max_idle_conns: Option<u32>,
    pub max_idle_conns_per_host: Option<u32>,
    pub max_conns_per_host: Option<u32>,
    pub tls_handshake_timeout: Option<GoDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulFile {
    pub address: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub auth: Option<AuthFile>,
    pub retry: Option<RetryFile>,
    pub ssl: Option<SslFile>,
    pub namespace: Option<String>,
    pub partition: Option<String>,
    pub transport: Option<TransportFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub enabled: Option<bool>,
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    pub enabled: Option<bool>,
    pub attempts: Option<u32>,
    pub backoff: Option<GoDuration>,
    pub max_backoff: Option<GoDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SslFile {
    pub enabled: Option<bool>,
    pub verify: Option<bool>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub ca_cert: Option<String>,
    pub ca_path: Option<String>,
    pub server_name: Option<String>,
    /// PEM text instead of a file.
    pub ca_cert_bytes: Option<String>,
}

/// A command as a string (`sh -c` when it has whitespace) or an argv list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CommandFile {
    Text(String),
    List(Vec<String>),
}

impl CommandFile {
    pub fn into_argv(self) -> Vec<String> {
        match self {
            CommandFile::Text(s) => vec![s],
            CommandFile::List(v) => v,
        }
    }
}

/// A template's `exec { … }`: its command, with consul-template's child settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateExecFile {
    pub command: Option<CommandFile>,
    pub timeout: Option<GoDuration>,
    pub enabled: Option<bool>,
    pub env: Option<ExecEnvFile>,
    pub kill_signal: Option<SignalName>,
    pub kill_timeout: Option<GoDuration>,
    pub reload_signal: Option<SignalName>,
    pub splay: Option<GoDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    pub source: Option<String>,
    pub contents: Option<String>,
    pub destination: Option<String>,
    pub command: Option<CommandFile>,
    pub command_timeout: Option<GoDuration>,
    pub exec: Option<TemplateExecFile>,
    pub check: Option<String>,
    pub perms: Option<Mode>,
    pub backup: Option<bool>,
    pub rollback: Option<bool>,
    pub wait: Option<Wait>,
    pub error_on_missing_key: Option<bool>,
    pub error_fatal: Option<bool>,
    pub create_dest_dirs: Option<bool>,
    pub user: Option<UserFile>,
    pub group: Option<UserFile>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub left_delimiter: Option<String>,
    pub right_delimiter: Option<String>,
    /// Ours: "go" or "handlebars" (default: by the file name's extension).
    pub syntax: Option<Syntax>,
    pub sandbox_path: Option<String>,
    #[serde(default, alias = "function_blacklist")]
    pub function_denylist: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecEnvFile {
    pub pristine: Option<bool>,
    #[serde(default)]
    pub custom: Vec<EnvPair>,
    #[serde(default, alias = "whitelist")]
    pub allowlist: Vec<String>,
    #[serde(default, alias = "blacklist")]
    pub denylist: Vec<String>,
}

/// `user = "www-data"` or `user = 33` (a name, or a number as text or number).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum UserFile {
    Id(u32),
    Name(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecFile {
    pub command: Option<CommandFile>,
    pub enabled: Option<bool>,
    pub timeout: Option<GoDuration>,
    pub reload_signal: Option<SignalName>,
    pub kill_signal: Option<SignalName>,
    pub kill_timeout: Option<GoDuration>,
    pub splay: Option<GoDuration>,
    pub env: Option<ExecEnvFile>,
}

/// Keys that consul-template flattens: a repeated block keeps the last one.
const SINGLE_BLOCKS: &[&str] = &["consul", "exec", "wait"];

/// Reads one config file, or every file of a directory in lexical order.
pub fn load_path(path: &Path) -> Result<Vec<(PathBuf, FileConfig)>, ConfigError> {
    let failed = |e| ConfigError::File {
        path: path.to_path_buf(),
        source: FileError::Read(e),
    };
    let meta = std::fs::metadata(path).map_err(failed)?;
    if !meta.is_dir() {
        return Ok(vec![(path.to_path_buf(), load_file(path)?)]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(failed)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for entry in entries {
        // Like consul-template (filepath.Walk): recursive; symlinks are not followed.
        let meta = std::fs::symlink_metadata(&entry).map_err(|e| ConfigError::File {
            path: entry.clone(),
            source: FileError::Read(e),
        })?;
        if meta.is_dir() {
            out.extend(load_path(&entry)?);
        } else if meta.is_file() {
            out.push((entry.clone(), load_file(&entry)?));
        }
    }
    Ok(out)
}

/// Parses one file: JSON when it starts with `{`, else HCL1.
pub fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    crate::fsread::read_text(path, crate::limits::INPUT_FILE_BYTES)
        .map_err(FileError::Read)
        .and_then(|text| parse(&text))
        .map_err(|source| ConfigError::File {
            path: path.to_path_buf(),
            source,
        })
}

/// Parses config text (JSON or HCL1).
pub fn parse(text: &str) -> Result<FileConfig, FileError> {
    let mut value: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(FileError::Json)?
    } else {
        hcl::parse(text)?
    };
    normalise(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let message = e.into_inner().to_string();
        if key == "." {
            FileError::Shape(message)
        } else {
            FileError::Key { key, message }
        }
    })
}

fn normalise(value: &mut Value) {
    let Some(map) = value.as_object_mut() else {
        return;
    };
    for key in SINGLE_BLOCKS {
        if let Some(Value::Array(list)) = map.get_mut(*key) {
            if list.iter().all(Value::is_object) {
                let last = list.pop().unwrap_or(Value::Null);
                map.insert((*key).to_string(), last);
            }
        }
    }
    if let Some(t) = map.get_mut("template") {
        if t.is_object() {
            *t = Value::Array(vec![t.take()]);
        }
    }
    // consul-template's deprecated `consul = "addr"`.
    if let Some(Value::String(addr)) = map.get("consul") {
        let addr = addr.clone();
        map.insert("consul".into(), serde_json::json!({ "address": addr }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcl_and_json_agree() {
        let hcl = r#"
consul { address = "10.0.0.1:8500" }
template {
  source = "in.hbs"
  destination = "out.conf"
  perms = 0640
  wait { min = "1s" max = "2s" }
}"#;
        let json = r#"{"consul": {"address": "10.0.0.1:8500"},
            "template": [{"source": "in.hbs", "destination": "out.conf", "perms": "0640", "wait": "1s:2s"}]}"#;
        for text in [hcl, json] {
            let c = parse(text).unwrap();
            assert_eq!(c.consul.unwrap().address.as_deref(), Some("10.0.0.1:8500"));
            let t = &c.template[0];
            assert_eq!(t.perms.unwrap().0, 0o640);
            assert_eq!(
                t.wait.map(|w| (w.min, w.max)),
                Some((
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(2)
                ))
            );
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("template {\n  sorce = \"x\"\n}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("template[0]") && e.contains("sorce"), "{e}");
        let e = parse("bogus = 1").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = parse("template {\n perms = \"rw\"\n}")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "template[0].perms: perms \"rw\" is not an octal mode");
    }

    #[test]
    fn old_consul_string_form() {
        let c = parse("consul = \"1.2.3.4:8500\"").unwrap();
        assert_eq!(c.consul.unwrap().address.as_deref(), Some("1.2.3.4:8500"));
    }
}
