//! systemd's readiness protocol (`sd_notify`, `Type=notify`): when systemd starts us with
//! `NOTIFY_SOCKET` set, tell it `READY=1` once every template has rendered, `RELOADING=1` and
//! `READY=1` around a reload signal, `STOPPING=1` when stopping, and a `STATUS=` line with each.
//! The variable is taken out of our environment at start, so neither template commands nor
//! the exec child can speak for us.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where systemd listens, if it does.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// Reads and removes `NOTIFY_SOCKET`. Call before any thread starts.
    pub fn from_env() -> Notifier {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier { target: None };
        };
        std::env::remove_var("NOTIFY_SOCKET");
        let path = path.to_string_lossy().into_owned();
        let addr = match path.strip_prefix('@') {
            // An abstract socket (Linux): `@name`.
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes())
            }
            None => SocketAddr::from_pathname(&path),
        };
        let target = match (UnixDatagram::unbound(), addr) {
            (Ok(sock), Ok(addr)) => Some((sock, addr)),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(socket = %path, error = %e, "NOTIFY_SOCKET is unusable; systemd will not hear from us");
                None
            }
        };
        Notifier { target }
    }

    /// A notifier that says nothing (tests, once mode).
    pub fn none() -> Notifier {
        Notifier { target: None }
    }

    /// Sends `lines` (`KEY=value`, one per line) as one datagram; failures are logged only.
    pub fn send(&self, lines: &[&str]) {
        let Some((sock, addr)) = &self.target else {
            return;
        };
        let msg = lines.join("\n");
        if let Err(e) = sock.send_to_addr(msg.as_bytes(), addr) {
            tracing::warn!(error = %e, "could not notify systemd");
        }
    }

    /// `RELOADING=1` with the monotonic time systemd's `Type=notify-reload` asks for.
    pub fn reloading(&self) {
        let usec = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
            t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000
        });
        self.send(&[
            "RELOADING=1",
            &format!("MONOTONIC_USEC={usec}"),
            "STATUS=reloading configuration and templates",
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_reach_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                SocketAddr::from_pathname(&path).unwrap(),
            )),
        };
        n.send(&["READY=1", "STATUS=ok"]);
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=ok");
        Notifier::none().send(&["READY=1"]);
    }
}
