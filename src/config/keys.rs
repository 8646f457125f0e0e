//! consul-template's config keys beyond the core: file owners, delimiters, the HTTP transport,
//! and the blocks consul-render does not act on, each accepted with a warning or refused with
//! the reason and what to use instead.

use super::file::{DelimitersFile, FileConfig, UserFile};
use super::value::ValueError;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Logs to syslog as well (`syslog {}`, `-syslog`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog {
    pub facility: String,
    pub name: String,
    /// Ours: the socket (default: /dev/log, /var/run/syslog or /var/run/log).
    pub socket: Option<PathBuf>,
}

impl Default for Syslog {
    fn default() -> Syslog {
        Syslog {
            facility: "LOCAL0".into(),
            name: "consul-render".into(),
            socket: None,
        }
    }
}

/// Logs to a file as well (`log_file {}`, `-log-file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub path: PathBuf,
    /// A new file after this many bytes (0: no limit).
    pub rotate_bytes: u64,
    pub rotate_duration: Duration,
    /// Older files kept (0: all, negative: none).
    pub max_files: i64,
}

impl LogFile {
    pub fn new(path: PathBuf) -> LogFile {
        LogFile {
            path,
            rotate_bytes: 0,
            rotate_duration: crate::logging::ROTATE_DURATION,
            max_files: 0,
        }
    }
}

/// Who owns a written file (`user`/`uid`, `group`/`gid`); `None` keeps what is there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Owner {
    pub fn is_set(&self) -> bool {
        self.uid.is_some() || self.gid.is_some()
    }
}

/// Resolves a template's `user`/`uid` and `group`/`gid` (names through the system's user and
/// group databases, as consul-template does).
pub fn owner(
    user: Option<&UserFile>,
    uid: Option<u32>,
    group: Option<&UserFile>,
    gid: Option<u32>,
) -> Result<Owner, ValueError> {
    let refused = ValueError::Refused;
    let uid = match (user, uid) {
        (Some(_), Some(_)) => return Err(refused("give user or uid, not both".into())),
        (Some(UserFile::Id(n)), None) => Some(*n),
        (None, Some(n)) => Some(n),
        (Some(UserFile::Name(name)), None) => Some(match name.trim().parse::<u32>() {
            Ok(n) => n,
            Err(_) => nix::unistd::User::from_name(name)
                .map_err(|e| refused(format!("user {name:?}: {e}")))?
                .ok_or_else(|| refused(format!("user {name:?} does not exist")))?
                .uid
                .as_raw(),
        }),
        (None, None) => None,
    };
    let gid = match (group, gid) {
        (Some(_), Some(_)) => return Err(refused("give group or gid, not both".into())),
        (Some(UserFile::Id(n)), None) => Some(*n),
        (None, Some(n)) => Some(n),
        (Some(UserFile::Name(name)), None) => Some(match name.trim().parse::<u32>() {
            Ok(n) => n,
            Err(_) => nix::unistd::Group::from_name(name)
                .map_err(|e| refused(format!("group {name:?}: {e}")))?
                .ok_or_else(|| refused(format!("group {name:?} does not exist")))?
                .gid
                .as_raw(),
        }),
        (None, None) => None,
    };
    Ok(Owner { uid, gid })
}

/// Templates are handlebars: `{{` and `}}` are the only delimiters.
pub fn delimiter(which: &str, value: Option<&str>) -> Result<(), ValueError> {
    let want = if which == "left" { "{{" } else { "}}" };
    match value {
        None | Some("") => Ok(()),
        Some(v) if v == want => Ok(()),
        Some(v) => Err(ValueError::Refused(format!(
            "{which} delimiter {v:?}: handlebars templates use {want:?} only; write the \
             template with {{{{ }}}} (a literal {{{{ is \\{{{{)"
        ))),
    }
}

/// `default_delimiters { left right }`.
pub fn default_delimiters(d: &DelimitersFile) -> Result<(), ValueError> {
    delimiter("left", d.left.as_deref())?;
    delimiter("right", d.right.as_deref())
}

/// A block that says `enabled = false` (or holds nothing) asks for nothing.
fn disabled(v: &Value) -> bool {
    match v.get("enabled") {
        Some(Value::Bool(false)) => true,
        _ => v.as_object().is_some_and(serde_json::Map::is_empty),
    }
}

/// Blocks consul-render does not act on: warnings for Vault and Nomad (a template calling
/// their functions is refused on its own).
pub fn unsupported(f: &FileConfig, warnings: &mut Vec<String>) {
    if f.vault.as_ref().is_some_and(|v| !disabled(v)) {
        warnings.push(
            "vault { } is not used: Vault is out of scope, consul-render reads Consul only \
             (templates calling secret or pkiCert are refused; render secrets with Vault Agent's \
             templates, or keep consul-template for those files)"
                .into(),
        );
    }
    if f.nomad.as_ref().is_some_and(|v| !disabled(v)) {
        warnings.push(
            "nomad { } is not used: Nomad is out of scope, consul-render reads Consul only \
             (templates calling nomadService and the like are refused)"
                .into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_by_name_or_number() {
        let root = owner(Some(&UserFile::Name("root".into())), None, None, Some(0)).unwrap();
        assert_eq!(
            root,
            Owner {
                uid: Some(0),
                gid: Some(0)
            }
        );
        let n = owner(
            Some(&UserFile::Name("33".into())),
            None,
            Some(&UserFile::Id(4)),
            None,
        );
        assert_eq!(
            n.unwrap(),
            Owner {
                uid: Some(33),
                gid: Some(4)
            }
        );
        let e = owner(
            Some(&UserFile::Name("no-such-user-x".into())),
            None,
            None,
            None,
        );
        assert!(e.unwrap_err().to_string().contains("does not exist"));
        assert!(owner(Some(&UserFile::Id(1)), Some(1), None, None).is_err());
    }

    #[test]
    fn only_handlebars_delimiters() {
        assert!(delimiter("left", Some("{{")).is_ok());
        assert!(delimiter("right", None).is_ok());
        let e = delimiter("left", Some("[[")).unwrap_err();
        assert!(e.to_string().contains("handlebars"), "{e}");
    }
}
