//! What can be wrong with the settings, naming the layer and the key (`config c.hcl:
//! template[2].perms: …`, `flag -wait: …`, `environment CONSUL_HTTP_SSL: …`), and which exit code
//! that is (a flag or variable: 13, a file: 15).

use super::value::ValueError;
use std::fmt;
use std::path::PathBuf;

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    Flag(&'static str),
    Environment(&'static str),
    File(PathBuf),
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Flag(name) => write!(f, "flag -{name}"),
            Layer::Environment(var) => write!(f, "environment {var}"),
            Layer::File(path) => write!(f, "config {}", path.display()),
        }
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// One value is wrong; `key` is the path inside a file (`template[0].perms`).
    #[error("{layer}: {}{source}", key_prefix(.key.as_ref()))]
    Value {
        layer: Layer,
        key: Option<String>,
        #[source]
        source: ValueError,
    },
    /// A config file cannot be read or is not HCL or JSON of consul-template's keys.
    #[error("config {}: {source}", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: super::file::FileError,
    },
    /// Settings that do not go together, or a run with nothing to do.
    #[error("{0}")]
    Usage(String),
    /// A file or text a setting names (token file, CA, client certificate) cannot be used;
    /// `what` names it (`CA certificate /etc/ca.pem`).
    #[error("{what}: {why}")]
    Named { what: String, why: String },
}

fn key_prefix(key: Option<&String>) -> String {
    key.map(|k| format!("{k}: ")).unwrap_or_default()
}

impl ConfigError {
    /// A value from `layer`; `key` is the key inside a file, if any.
    pub fn value(layer: Layer, key: Option<String>, source: impl Into<ValueError>) -> ConfigError {
        ConfigError::Value {
            layer,
            key,
            source: source.into(),
        }
    }

    /// A file or text named by a setting that cannot be used.
    pub fn named(what: impl fmt::Display, why: impl fmt::Display) -> ConfigError {
        ConfigError::Named {
            what: what.to_string(),
            why: why.to_string(),
        }
    }

    /// consul-template's exit codes: 15 for a file's mistake, 13 for the command line's.
    pub fn exit_code(&self) -> u8 {
        match self {
            ConfigError::Value {
                layer: Layer::File(_),
                ..
            }
            | ConfigError::File { .. }
            | ConfigError::Named { .. } => 15,
            ConfigError::Value { .. } | ConfigError::Usage(_) => 13,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_layer_and_the_key() {
        let e = ConfigError::value(
            Layer::File("c.hcl".into()),
            Some("template[2].perms".into()),
            ValueError::ModeText("rw".into()),
        );
        assert_eq!(
            e.to_string(),
            "config c.hcl: template[2].perms: perms \"rw\" is not an octal mode"
        );
        assert_eq!(e.exit_code(), 15);
        let e = ConfigError::value(
            Layer::Environment("CONSUL_HTTP_SSL"),
            None,
            ValueError::Bool("yes please".into()),
        );
        assert_eq!(
            e.to_string(),
            "environment CONSUL_HTTP_SSL: \"yes please\" is not a boolean"
        );
        assert_eq!(e.exit_code(), 13);
    }
}
