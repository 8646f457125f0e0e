//! Consul's per-client connection limit (`limits.http_max_conns_per_client`, `CONSUL_API.md` §9):
//! connections from one address beyond the limit get `429` with Consul's text and are closed.
//! Every connection is counted while it is open, so tests can assert a client's peak.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Consul's default `http_max_conns_per_client`.
pub const DEFAULT_LIMIT: usize = 200;

/// Consul's answer to a connection over the limit (consul #7527).
pub const REFUSAL: &str =
    "Your IP is issuing too many concurrent connections, please rate limit your calls\n";

/// Open connections per client address, the peak, and how many were refused.
#[derive(Debug)]
pub struct Conns {
    limit: AtomicUsize,
    open: Mutex<HashMap<IpAddr, usize>>,
    peak: AtomicUsize,
    refused: AtomicU64,
}

impl Default for Conns {
    fn default() -> Conns {
        Conns {
            limit: AtomicUsize::new(DEFAULT_LIMIT),
            open: Mutex::new(HashMap::new()),
            peak: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        }
    }
}

impl Conns {
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::SeqCst);
    }

    /// Connections open now, from every client.
    pub fn open(&self) -> usize {
        self.lock().values().sum()
    }

    /// The most connections one client had open at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// Starts counting the peak and refusals anew; the peak from what one client has open now.
    pub fn reset(&self) {
        let now = self.lock().values().copied().max().unwrap_or(0);
        self.peak.store(now, Ordering::SeqCst);
        self.refused.store(0, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a new connection from `ip`; false when it is over the limit (not counted).
    fn admit(&self, ip: IpAddr) -> bool {
        let mut open = self.lock();
        let n = open.entry(ip).or_default();
        if *n >= self.limit.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        *n += 1;
        self.peak.fetch_max(*n, Ordering::SeqCst);
        true
    }

    fn release(&self, ip: IpAddr) {
        if let Some(n) = self.lock().get_mut(&ip) {
            *n = n.saturating_sub(1);
        }
    }
}

/// A TCP listener that admits connections under the per-client limit.
pub struct Limited {
    pub listener: TcpListener,
    pub conns: Arc<Conns>,
}

/// An admitted connection; it stops counting when dropped (closed).
pub struct Counted {
    stream: TcpStream,
    ip: IpAddr,
    conns: Arc<Conns>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.conns.release(self.ip);
    }
}

impl axum::serve::Listener for Limited {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            let Ok((mut stream, addr)) = self.listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            if self.conns.admit(addr.ip()) {
                let conns = self.conns.clone();
                return (
                    Counted {
                        stream,
                        ip: addr.ip(),
                        conns,
                    },
                    addr,
                );
            }
            tokio::spawn(async move {
                let answer = format!(
                    "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{REFUSAL}",
                    REFUSAL.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
