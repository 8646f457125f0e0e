//! Writing rendered files: compare, then temp file in the destination's directory, fsync,
//! keep mode and owner, optional backup, rename over the destination. A reader sees the old file
//! or the new one, never a partial one; a failed write leaves the destination untouched.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Why a rendered file was not put in place (the destination is then as it was).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A step failed: what was being done (`writing backup /etc/x.bak`), and the system's error.
    #[error("{doing}: {source}")]
    Io {
        doing: String,
        #[source]
        source: std::io::Error,
    },
    /// The destination or the temp file is not what it must be; the text says why.
    #[error("{0}")]
    Refused(String),
}

type Result<T> = std::result::Result<T, OutputError>;

/// `.doing(|| "what")` on an I/O result: the error says what was being done.
trait Doing<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Doing<T> for std::io::Result<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| OutputError::Io {
            doing: what(),
            source,
        })
    }
}

/// How to write one destination (a template's `perms`, `backup`, `create_dest_dirs`).
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    pub perms: Option<u32>,
    pub backup: bool,
    pub create_dest_dirs: bool,
    /// A template's `user`/`group`: set on the new file (otherwise the old file's are kept).
    pub owner: crate::config::keys::Owner,
}

/// True when `contents` differs from what `dest` holds now (a missing file differs).
pub fn differs(dest: &Path, contents: &[u8]) -> Result<bool> {
    match crate::fsread::read(dest, crate::limits::INPUT_FILE_BYTES) {
        Ok(old) => Ok(old != contents),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).doing(|| format!("reading {}", dest.display())),
    }
}

/// A rendered file written beside its destination, not yet in place.
pub struct Candidate {
    temp: NamedTempFile,
    dest: PathBuf,
    backup: bool,
}

impl Candidate {
    /// Where the candidate is, for a check command.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Renames the candidate over the destination (keeping a `.bak` first when asked).
    pub fn install(self) -> Result<()> {
        let dest = self.dest;
        // The temp file's name is public in a shared directory: install only what we wrote.
        let ours = self
            .temp
            .as_file()
            .metadata()
            .doing(|| format!("reading the temp file for {}", dest.display()))?;
        match fs::symlink_metadata(self.temp.path()) {
            Ok(now) if now.is_file() && (now.dev(), now.ino()) == (ours.dev(), ours.ino()) => {}
            _ => {
                return Err(OutputError::Refused(format!(
                    "{}: the temp file {} was replaced by someone else; nothing installed",
                    dest.display(),
                    self.temp.path().display()
                )))
            }
        }
        if self.backup && dest.exists() {
            let bak = backup_path(&dest);
            let _ = fs::remove_file(&bak);
            if fs::hard_link(&dest, &bak).is_err() {
                fs::copy(&dest, &bak).doing(|| format!("writing backup {}", bak.display()))?;
            }
        }
        let renamed = match self.temp.persist(&dest) {
            Ok(_) => true,
            Err(e) if e.error.raw_os_error() == Some(nix::libc::EBUSY) => {
                // A single-file bind mount cannot be renamed over: write it in place instead.
                tracing::warn!(dest = %dest.display(), "destination is busy (a bind mount?): writing in place, not atomically");
                let contents =
                    fs::read(e.file.path()).doing(|| "reading the candidate file".into())?;
                fs::write(&dest, contents).doing(|| format!("writing {}", dest.display()))?;
                false
            }
            Err(e) => {
                return Err(e.error)
                    .doing(|| format!("renaming the new file over {}", dest.display()))
            }
        };
        // The name may have been swapped between the check above and the rename: then what
        // landed is not ours. Take it out again rather than leave someone else's file there.
        match fs::symlink_metadata(&dest) {
            Ok(now) if !renamed || (now.dev(), now.ino()) == (ours.dev(), ours.ino()) => {}
            Ok(now) if !now.is_dir() => {
                let _ = fs::remove_file(&dest);
                return Err(OutputError::Refused(format!(
                    "{}: the temp file was replaced by someone else during the rename; removed \
                     what was installed",
                    dest.display()
                )));
            }
            _ => {}
        }
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// The prefix of our temp files (`.consul-render-XXXXXX` beside the destination).
const TEMP_PREFIX: &str = ".consul-render-";

/// Removes our temp files older than `age` from `dir`: what a kill -9 between write and rename
/// left. Younger ones may belong to a render in progress (ours or another instance's).
pub fn sweep_stale(dir: &Path, age: std::time::Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        // Regular files only (not followed through a symlink), untouched for `age`.
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|e| e >= age);
        if meta.is_file() && old && fs::remove_file(entry.path()).is_ok() {
            tracing::info!(file = %entry.path().display(), "removed a temp file an interrupted run left");
            removed += 1;
        }
    }
    removed
}

/// `DEST.bak`.
pub fn backup_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".bak");
    PathBuf::from(s)
}

/// Writes `contents` to a temp file beside `dest` with the mode and owner `dest` will have.
/// Returns `None` when `dest` already holds exactly these bytes.
pub fn prepare(dest: &Path, contents: &[u8], opts: WriteOptions) -> Result<Option<Candidate>> {
    if !differs(dest, contents)? {
        return Ok(None);
    }
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        if !opts.create_dest_dirs {
            return Err(OutputError::Refused(format!(
                "{}: parent directory is missing (create_dest_dirs is off)",
                dest.display()
            )));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .doing(|| format!("creating directory {}", dir.display()))?;
    }
    let existing = fs::metadata(dest).ok();
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(&dir)
        .doing(|| format!("creating a temp file in {}", dir.display()))?;
    temp.write_all(contents)
        .and_then(|()| temp.as_file().sync_all())
        .doing(|| format!("writing a temp file in {}", dir.display()))?;
    let mode = opts
        .perms
        .or_else(|| existing.as_ref().map(|m| m.mode() & 0o7777))
        .unwrap_or(0o644);
    // On the open descriptor, not the path: whatever is renamed over the temp path meanwhile,
    // only our own file's mode and owner change.
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .doing(|| format!("setting mode {mode:o} on the new {}", dest.display()))?;
    let owner = opts.owner;
    if owner.is_set() {
        // Asked for: failing to give the file its owner is an error, nothing is installed.
        let uid = owner.uid.or(existing.as_ref().map(MetadataExt::uid));
        let gid = owner.gid.or(existing.as_ref().map(MetadataExt::gid));
        std::os::unix::fs::fchown(temp.as_file(), uid, gid).doing(|| {
            format!(
                "giving the new {} owner {} and group {}",
                dest.display(),
                uid.map_or("(kept)".into(), |u| u.to_string()),
                gid.map_or("(kept)".into(), |g| g.to_string())
            )
        })?;
    } else if let Some(m) = &existing {
        if let Err(e) = std::os::unix::fs::fchown(temp.as_file(), Some(m.uid()), Some(m.gid())) {
            tracing::warn!(dest = %dest.display(), error = %e, "could not keep the file's owner");
        }
    }
    Ok(Some(Candidate {
        temp,
        dest: dest.to_path_buf(),
        backup: opts.backup,
    }))
}

/// A unified diff of `dest` (empty when missing) against `new`, or `None` when they are equal.
pub fn diff(dest: &Path, new: &str) -> Result<Option<String>> {
    let old = match crate::fsread::read(dest, crate::limits::INPUT_FILE_BYTES) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).doing(|| format!("reading {}", dest.display())),
    };
    if old == new {
        return Ok(None);
    }
    let name = dest.display().to_string();
    Ok(Some(
        similar::TextDiff::from_lines(old.as_str(), new)
            .unified_diff()
            .header(&name, &name)
            .to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: WriteOptions = WriteOptions {
        perms: None,
        backup: false,
        create_dest_dirs: true,
        owner: crate::config::keys::Owner {
            uid: None,
            gid: None,
        },
    };

    #[test]
    fn writes_only_changes_and_keeps_mode() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/out.conf");
        prepare(&dest, b"one", OPTS)
            .unwrap()
            .unwrap()
            .install()
            .unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"one");
        assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o777, 0o644);
        assert!(prepare(&dest, b"one", OPTS).unwrap().is_none());
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o600)).unwrap();
        prepare(&dest, b"two", OPTS)
            .unwrap()
            .unwrap()
            .install()
            .unwrap();
        assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o777, 0o600);
        let opts = WriteOptions {
            perms: Some(0o640),
            backup: true,
            ..OPTS
        };
        prepare(&dest, b"three", opts)
            .unwrap()
            .unwrap()
            .install()
            .unwrap();
        assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o777, 0o640);
        assert_eq!(fs::read(backup_path(&dest)).unwrap(), b"two");
        let leftovers: Vec<_> = fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".consul-render-")
            })
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn dropped_candidate_leaves_destination_alone() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        fs::write(&dest, "old").unwrap();
        let c = prepare(&dest, b"new", OPTS).unwrap().unwrap();
        let candidate_path = c.path().to_path_buf();
        drop(c);
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert!(!candidate_path.exists());
    }

    #[test]
    fn missing_parent_without_create_dest_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WriteOptions {
            create_dest_dirs: false,
            ..OPTS
        };
        let err = prepare(&dir.path().join("no/out"), b"x", opts)
            .err()
            .unwrap();
        assert!(err.to_string().contains("parent directory is missing"));
    }

    #[test]
    fn a_replaced_temp_file_is_not_installed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let victim = dir.path().join("victim");
        fs::write(&victim, "v").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        let c = prepare(&dest, b"new", OPTS).unwrap().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        fs::rename(&link, c.path()).unwrap();
        let e = c.install().unwrap_err().to_string();
        assert!(e.contains("was replaced by someone else"), "{e}");
        assert!(!dest.exists());
        assert_eq!(fs::metadata(&victim).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn stale_temp_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".consul-render-abc"), "x").unwrap();
        fs::write(dir.path().join("keep"), "x").unwrap();
        assert_eq!(
            sweep_stale(dir.path(), std::time::Duration::from_secs(60)),
            0
        );
        assert_eq!(sweep_stale(dir.path(), std::time::Duration::ZERO), 1);
        assert!(dir.path().join("keep").exists());
    }

    #[test]
    fn diffs() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        fs::write(&dest, "a\nb\n").unwrap();
        assert!(diff(&dest, "a\nb\n").unwrap().is_none());
        let d = diff(&dest, "a\nc\n").unwrap().unwrap();
        assert!(d.contains("-b\n") && d.contains("+c\n"), "{d}");
    }
}
