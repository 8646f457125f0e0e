//! One config file (HCL1 or JSON) as written, before precedence is applied.
//!
//! Keys are consul-template's; unknown keys are errors naming the key path and the file. Blocks
//! that consul-template flattens (`consul`, `exec`, `wait`, …) keep the last one when repeated;
//! `template` blocks accumulate.

use super::hcl;
use anyhow::{anyhow, Context, Result};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub consul: Option<ConsulFile>,
    #[serde(default)]
    pub template: Vec<TemplateFile>,
    pub wait: Option<WaitFile>,
    pub exec: Option<ExecFile>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub pid_file: Option<String>,
    pub kill_signal: Option<String>,
    pub reload_signal: Option<String>,
    pub max_stale: Option<String>,
    pub block_query_wait: Option<String>,
    pub once: Option<bool>,
    pub once_timeout: Option<String>,
    pub template_error_fatal: Option<bool>,
    pub command_error_fatal: Option<bool>,
    pub max_connections: Option<u32>,
    pub max_response_bytes: Option<u64>,
    pub status_addr: Option<String>,
    pub status_consul_timeout: Option<String>,
    pub data: Option<String>,
    pub default_delimiters: Option<DelimitersFile>,
    pub err_on_failed_lookup: Option<bool>,
    /// Refused unless disabled: see `config::keys`.
    pub deduplicate: Option<Value>,
    pub vault: Option<Value>,
    pub nomad: Option<Value>,
    pub syslog: Option<SyslogFile>,
    pub log_file: Option<LogFileFile>,
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
    pub log_rotate_duration: Option<String>,
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
    pub dial_keep_alive: Option<String>,
    pub dial_timeout: Option<String>,
    pub disable_keep_alives: Option<bool>,
    pub idle_conn_timeout: Option<String>,
    pub max_idle_conns: Option<u32>,
    pub max_idle_conns_per_host: Option<u32>,
    pub max_conns_per_host: Option<u32>,
    pub tls_handshake_timeout: Option<String>,
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
    pub backoff: Option<String>,
    pub max_backoff: Option<String>,
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

/// `wait = "2s:10s"` or `wait { min = "2s" max = "10s" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum WaitFile {
    Text(String),
    Block { min: String, max: Option<String> },
}

impl WaitFile {
    pub fn as_spec(&self) -> String {
        match self {
            WaitFile::Text(s) => s.clone(),
            WaitFile::Block {
                min,
                max: Some(max),
            } => format!("{min}:{max}"),
            WaitFile::Block { min, max: None } => min.clone(),
        }
    }
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

/// `perms = 0600` (HCL1 octal number) or `perms = "0600"` (octal string).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PermsFile {
    Number(u32),
    Text(String),
}

impl PermsFile {
    pub fn mode(&self) -> Result<u32, String> {
        let mode = match self {
            PermsFile::Number(n) => *n,
            PermsFile::Text(s) => u32::from_str_radix(s.trim(), 8)
                .map_err(|_| format!("perms {s:?} is not an octal mode"))?,
        };
        if mode > 0o7777 {
            return Err(format!("perms {mode:o} is not a file mode"));
        }
        Ok(mode)
    }
}

/// A template's `exec { … }`: its command, with consul-template's child settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateExecFile {
    pub command: Option<CommandFile>,
    pub timeout: Option<String>,
    pub enabled: Option<bool>,
    pub env: Option<ExecEnvFile>,
    pub kill_signal: Option<String>,
    pub kill_timeout: Option<String>,
    pub reload_signal: Option<String>,
    pub splay: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    pub source: Option<String>,
    pub contents: Option<String>,
    pub destination: Option<String>,
    pub command: Option<CommandFile>,
    pub command_timeout: Option<String>,
    pub exec: Option<TemplateExecFile>,
    pub check: Option<String>,
    pub perms: Option<PermsFile>,
    pub backup: Option<bool>,
    pub rollback: Option<bool>,
    pub wait: Option<WaitFile>,
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
    pub syntax: Option<String>,
    pub sandbox_path: Option<String>,
    #[serde(default, alias = "function_blacklist")]
    pub function_denylist: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecEnvFile {
    pub pristine: Option<bool>,
    #[serde(default)]
    pub custom: Vec<String>,
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
    pub timeout: Option<String>,
    pub reload_signal: Option<String>,
    pub kill_signal: Option<String>,
    pub kill_timeout: Option<String>,
    pub splay: Option<String>,
    pub env: Option<ExecEnvFile>,
}

/// Keys that consul-template flattens: a repeated block keeps the last one.
const SINGLE_BLOCKS: &[&str] = &["consul", "exec", "wait"];

/// Reads one config file, or every file of a directory in lexical order.
pub fn load_path(path: &Path) -> Result<Vec<(PathBuf, FileConfig)>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("config {}: cannot read", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![(path.to_path_buf(), load_file(path)?)]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("config {}: cannot list directory", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for entry in entries {
        // Like consul-template (filepath.Walk): recursive; symlinks are not followed.
        let meta = std::fs::symlink_metadata(&entry)
            .with_context(|| format!("config {}: cannot read", entry.display()))?;
        if meta.is_dir() {
            out.extend(load_path(&entry)?);
        } else if meta.is_file() {
            out.push((entry.clone(), load_file(&entry)?));
        }
    }
    Ok(out)
}

/// Parses one file: JSON when it starts with `{`, else HCL1.
pub fn load_file(path: &Path) -> Result<FileConfig> {
    let text = crate::fsread::read_text(path, crate::limits::INPUT_FILE_BYTES)
        .with_context(|| format!("config {}: cannot read", path.display()))?;
    parse(&text).map_err(|e| anyhow!("config {}: {e}", path.display()))
}

/// Parses config text (JSON or HCL1).
pub fn parse(text: &str) -> Result<FileConfig, String> {
    let mut value: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?
    } else {
        hcl::parse(text).map_err(|e| e.to_string())?
    };
    normalise(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
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
            assert_eq!(t.perms.as_ref().unwrap().mode().unwrap(), 0o640);
            assert_eq!(t.wait.as_ref().unwrap().as_spec(), "1s:2s");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("template {\n  sorce = \"x\"\n}").unwrap_err();
        assert!(e.contains("template[0]") && e.contains("sorce"), "{e}");
        let e = parse("bogus = 1").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn old_consul_string_form() {
        let c = parse("consul = \"1.2.3.4:8500\"").unwrap();
        assert_eq!(c.consul.unwrap().address.as_deref(), Some("1.2.3.4:8500"));
    }
}
