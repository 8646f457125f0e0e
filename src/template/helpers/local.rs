//! Local values: `env`, `envOrDefault`, `mustEnv`, `file`, `timestamp`.

use super::{spec, Call, HelperError, HelperResult, Spec};
use crate::dependency::Dependency;
use crate::template::scope::{self, Lookup, Missing};
use serde_json::Value;
use std::path::{Component, Path, PathBuf};

pub const HELPERS: &[Spec] = &[
    spec("env", 1, 1, env),
    spec("envOrDefault", 2, 2, env_or_default),
    spec("mustEnv", 1, 1, must_env),
    spec("file", 1, 1, file),
    spec("timestamp", 0, 1, timestamp),
];

fn env(c: &Call) -> HelperResult {
    Ok(Value::String(std::env::var(c.str(0)?).unwrap_or_default()))
}

/// The default only when the variable is unset (an empty value is kept).
fn env_or_default(c: &Call) -> HelperResult {
    let name = c.str(0)?;
    Ok(Value::String(match std::env::var_os(name) {
        Some(v) => v.to_string_lossy().into_owned(),
        None => c.text(1)?,
    }))
}

fn must_env(c: &Call) -> HelperResult {
    let name = c.str(0)?;
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Value::String(v)),
        _ => Err(format!("required environment variable {name} is empty").into()),
    }
}

/// Lexically cleans a path (Go's `filepath.Clean`).
fn clean(p: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in Path::new(p.trim()).components() {
        match comp {
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `file`: the file's contents; a missing file keeps the template unrendered.
fn file(c: &Call) -> HelperResult {
    let raw = c.str(0)?;
    if raw.is_empty() {
        // As consul-template: nothing yet (an inner value that has not arrived), no dependency.
        return Ok(Value::String(String::new()));
    }
    let path = clean(raw);
    let sandbox = scope::sandbox();
    if let Some(sandbox) = &sandbox {
        check_sandbox(sandbox, &path)?;
    }
    // The sandbox is checked again on the file actually opened (`source::local`).
    let dep = Dependency::File { path, sandbox };
    Ok(match scope::lookup(dep.clone()) {
        Lookup::Present(v) => v.value().clone(),
        Lookup::Pending => Value::String(String::new()),
        Lookup::Absent => {
            scope::mark_missing(Missing::Absent(dep));
            Value::String(String::new())
        }
    })
}

/// A path outside the sandbox, after resolving symlinks, is an error.
fn check_sandbox(sandbox: &Path, path: &Path) -> Result<(), HelperError> {
    let sandbox = sandbox
        .canonicalize()
        .map_err(|e| format!("sandbox_path {}: {e}", sandbox.display()))?;
    // Resolve as much of the path as exists, so a symlink anywhere on it is followed.
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    let resolved = loop {
        match existing.canonicalize() {
            Ok(p) => break p,
            Err(_) => match (
                existing.file_name().map(std::ffi::OsStr::to_os_string),
                existing.parent(),
            ) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    existing = parent.to_path_buf();
                }
                _ => break std::env::current_dir().unwrap_or_default().join(path),
            },
        }
    };
    let full = rest.iter().rev().fold(resolved, |acc, n| acc.join(n));
    if full.starts_with(&sandbox) {
        Ok(())
    } else {
        Err(format!("'{}' is outside of sandbox", path.display()).into())
    }
}

/// `timestamp` (RFC 3339 UTC), `timestamp "unix"`, or a Go layout such as `2006-01-02`.
fn timestamp(c: &Call) -> HelperResult {
    let now = chrono::Utc::now();
    if c.args.is_empty() {
        return Ok(Value::String(now.format("%Y-%m-%dT%H:%M:%SZ").to_string()));
    }
    let layout = c.str(0)?;
    if layout == "unix" {
        return Ok(Value::String(now.timestamp().to_string()));
    }
    Ok(Value::String(
        now.format(&go_layout_to_strftime(layout)).to_string(),
    ))
}

/// Translates a Go time layout (reference time `Mon Jan 2 15:04:05 MST 2006`) to strftime.
pub fn go_layout_to_strftime(layout: &str) -> String {
    // Longest tokens first so `2006` is not read as `2` then `006`.
    const TOKENS: &[(&str, &str)] = &[
        ("January", "%B"),
        ("Monday", "%A"),
        ("2006", "%Y"),
        // Always UTC here, which Go prints as "Z" for these two.
        ("Z07:00", "Z"),
        ("Z0700", "Z"),
        ("-07:00", "%:z"),
        ("-0700", "%z"),
        (".000000000", "%.9f"),
        (".000000", "%.6f"),
        (".000", "%.3f"),
        ("Jan", "%b"),
        ("Mon", "%a"),
        ("MST", "%Z"),
        ("01", "%m"),
        ("02", "%d"),
        ("_2", "%e"),
        ("15", "%H"),
        ("03", "%I"),
        ("04", "%M"),
        ("05", "%S"),
        ("06", "%y"),
        ("PM", "%p"),
        ("pm", "%P"),
        ("1", "%-m"),
        ("2", "%-d"),
        ("3", "%-I"),
        ("4", "%-M"),
        ("5", "%-S"),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (go, fmt) in TOKENS {
            if let Some(r) = rest.strip_prefix(go) {
                out.push_str(fmt);
                rest = r;
                continue 'outer;
            }
        }
        let ch = rest.chars().next().unwrap_or_default();
        if ch == '%' {
            out.push_str("%%");
        } else {
            out.push(ch);
        }
        rest = &rest[ch.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_layouts() {
        assert_eq!(go_layout_to_strftime("2006-01-02"), "%Y-%m-%d");
        assert_eq!(
            go_layout_to_strftime("2006-01-02T15:04:05Z07:00"),
            "%Y-%m-%dT%H:%M:%SZ"
        );
        assert_eq!(go_layout_to_strftime("Jan 2 15:04"), "%b %-d %H:%M");
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean(" /a/./b/../c "), PathBuf::from("/a/c"));
    }
}
