//! Reading the files a user names (templates, config and data files, destinations, token and
//! CA files) so that none can hang or exhaust us: a FIFO is opened without waiting for a
//! writer (no writer reads as empty; `-data <(cmd)` still reads what `cmd` writes), sockets,
//! devices and directories are refused, and at most `limit` bytes are read.

use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Whether a FIFO may be read (a pipe from `<(cmd)`) or is refused like a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fifo {
    Read,
    Refuse,
}

/// Opens `path` for reading without ever blocking in `open`: a regular file, or a FIFO when
/// `fifo` allows it (then switched back to blocking reads, as a pipe is read). Sockets,
/// devices and directories are refused with the kind named.
pub fn open(path: &Path, fifo: Fifo) -> io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_fifo() && fifo == Fifo::Read {
        let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    } else if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file ({what})"),
        ));
    }
    Ok(file)
}

/// Everything `file` holds, at most `limit` bytes (more is an error).
pub fn read_all(file: std::fs::File, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than the limit of {} MiB", limit >> 20),
        ));
    }
    Ok(bytes)
}

/// The whole file (a FIFO read as a pipe), or an error naming what is wrong with it (the
/// caller adds the path).
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read_all(open(path, Fifo::Read)?, limit)
}

/// `bytes` as UTF-8 text, or an error giving the offset of the first bad byte.
pub fn text(bytes: Vec<u8>) -> io::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// `read`, as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    text(read(path, limit)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_without_a_writer_reads_as_empty_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(read(&fifo, 100).unwrap(), b"");
        let e = read(dir.path(), 100).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
        let e = read(Path::new("/dev/zero"), 100).unwrap_err().to_string();
        assert!(e.contains("a device"), "{e}");
    }

    #[test]
    fn limits_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello\xff").unwrap();
        assert!(read(&p, 3).unwrap_err().to_string().contains("larger than"));
        assert!(read_text(&p, 100)
            .unwrap_err()
            .to_string()
            .contains("offset 5"));
    }
}
