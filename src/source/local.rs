//! Local files for the `file` helper: contents, or `None` when the file does not exist.
//!
//! The file is opened first and judged by what was opened, never by its path alone: a FIFO or
//! device is refused without blocking (opened non-blocking, then `fstat`), and the sandbox is
//! checked against the opened file's real path (`/proc/self/fd`), so swapping a symlink between
//! a check and the read cannot lead outside it.

use crate::dependency::Dependency;
use crate::fsread;
use crate::source::{Fetched, SourceError};
use serde_json::Value;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Reads a file for `file`. A missing file is `None` (the render waits or once mode fails);
/// anything else that keeps it from being read (a directory, a FIFO, no permission, outside
/// the sandbox, too large, not UTF-8) is an error naming the path.
pub fn read(path: &Path, sandbox: Option<&Path>) -> Result<Fetched, SourceError> {
    let fail = |why: String| SourceError::Fatal(format!("file {}: {why}", path.display()));
    let file = match fsread::open(path, fsread::Fifo::Refuse) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Ok(Fetched {
                value: None,
                index: 0,
            })
        }
        Err(e) if e.kind() == ErrorKind::InvalidInput => {
            return Err(fail(format!("{e}; file reads regular files only")))
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    if let Some(sandbox) = sandbox {
        let opened = opened_path(&file, path).map_err(|e| fail(e.to_string()))?;
        let root = sandbox
            .canonicalize()
            .map_err(|e| fail(format!("sandbox_path {}: {e}", sandbox.display())))?;
        if !opened.starts_with(&root) {
            return Err(fail(format!(
                "'{}' is outside of sandbox {}",
                opened.display(),
                root.display()
            )));
        }
    }
    let text = fsread::read_all(file, crate::limits::FILE_BYTES)
        .and_then(fsread::text)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidData => fail(format!("{e}; templates render text only")),
            _ => fail(e.to_string()),
        })?;
    Ok(Fetched {
        value: Some(Value::String(text)),
        index: 0,
    })
}

/// The value of a `file` dependency for a watcher: its contents, or `None` (missing, or an
/// error, which is logged: the template waits as for a missing file).
pub fn read_dependency(dep: &Dependency) -> Option<Value> {
    let Dependency::File { path, sandbox } = dep else {
        return None;
    };
    match read(path, sandbox.as_deref()) {
        Ok(f) => f.value,
        Err(e) => {
            tracing::error!("{e}");
            None
        }
    }
}

/// Where the open file really is: `/proc/self/fd/N`, or (without /proc) the path resolved
/// again and checked to be the same file as the one opened.
fn opened_path(file: &std::fs::File, path: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;
    if let Ok(p) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        return Ok(p);
    }
    let resolved = path.canonicalize()?;
    let (a, b) = (file.metadata()?, std::fs::metadata(&resolved)?);
    if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
        return Err(std::io::Error::other("changed while it was being opened"));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        // Not the mkfifo program: this test binary's reaper would take its exit status.
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = read(&fifo, None).unwrap_err().to_string();
        assert!(e.contains("a FIFO"), "{e}");
        let e = read(dir.path(), None).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
        assert_eq!(read(&dir.path().join("none"), None).unwrap().value, None);
    }

    #[test]
    fn the_sandbox_judges_the_opened_file() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("sandbox");
        std::fs::create_dir(&inside).unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::fs::write(inside.join("ok"), "fine").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), inside.join("link")).unwrap();
        let ok = read(&inside.join("ok"), Some(&inside)).unwrap();
        assert_eq!(ok.value, Some(Value::String("fine".into())));
        let e = read(&inside.join("link"), Some(&inside))
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside of sandbox"), "{e}");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin");
        std::fs::write(&p, b"ok\xff\xfe").unwrap();
        let e = read(&p, None).unwrap_err().to_string();
        assert!(
            e.contains("not UTF-8 text (invalid byte at offset 2)"),
            "{e}"
        );
    }
}
