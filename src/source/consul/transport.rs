//! The connections to one agent: TCP, TLS (HTTP/2 when the agent offers it) or a Unix socket,
//! through the environment's proxy when one applies, never more open at once than the budget.
//!
//! The budget is a semaphore whose permit each connection holds until it closes, so every
//! connection counts: those carrying a request, those idle in the pool, and those a request
//! started and then did not need (hyper races a new connection against one coming back to the
//! pool). A request that finds the budget spent waits for a pooled connection or a permit.

use bytes::Bytes;
use http_body_util::Full;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

/// What a failed connection attempt carries (hyper wants a boxed error).
pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// hyper's pooled client over our connector, and the proxies it goes through.
pub(super) struct Http {
    pub client: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    proxy: Option<Arc<Matcher>>,
    unix: bool,
}

impl Http {
    /// `Proxy-Authorization` for a plain request that goes through a proxy with credentials
    /// (a tunnelled one sends them with its `CONNECT`).
    pub(super) fn proxy_authorization(&self, dst: &http::Uri) -> Option<http::HeaderValue> {
        if self.unix || dst.scheme_str() != Some("http") {
            return None;
        }
        let proxy = self.proxy.as_ref()?.intercept(dst)?;
        proxy.basic_auth().cloned()
    }
}

/// How to reach the agent.
pub(super) struct Settings {
    /// Connections open at once, at most.
    pub budget: usize,
    /// Connecting (TCP, proxy, TLS) may take this long.
    pub dial_timeout: Duration,
    /// The longest the agent may take to close a connection after we closed ours: the longest
    /// a blocking query may be held.
    pub close_wait: Duration,
    pub keep_alive: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    /// Idle connections the pool keeps; 0 closes each after its request.
    pub max_idle: usize,
    /// `unix://` addresses: every connection goes to this socket.
    pub unix: Option<PathBuf>,
    pub tls: Option<Tls>,
    /// The environment's proxies (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`), unless the agent is
    /// on this machine.
    pub proxy: Option<Matcher>,
}

/// TLS for `https` addresses.
pub(super) struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    /// The name the certificate must carry, when not the address's host.
    pub server_name: Option<String>,
}

/// Builds the pooled client.
pub(super) fn build(s: Settings) -> Http {
    let proxy = s.proxy.map(Arc::new);
    let unix = s.unix.is_some();
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_keepalive(s.keep_alive);
    let connector = Connector {
        inner: Arc::new(Inner {
            budget: Arc::new(Semaphore::new(s.budget.max(1))),
            dial_timeout: s.dial_timeout,
            close_wait: s.close_wait,
            tcp,
            unix: s.unix,
            tls: s.tls,
            proxy: proxy.clone(),
        }),
    };
    let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_max_idle_per_host(s.max_idle)
        .pool_idle_timeout(s.idle_timeout.unwrap_or(Duration::from_secs(90)))
        // hyper's read buffer grows to 400 KiB on a large answer and keeps that size for the
        // connection's life: with 128 pooled connections that was 15 MB of mostly idle buffers
        // at 5,000 services. 16 KiB reads cost a few more syscalls on a large answer.
        .http1_max_buf_size(READ_BUFFER);
    Http {
        client: builder.build(connector),
        proxy,
        unix,
    }
}

/// The most an HTTP/1 connection's read buffer holds (a TLS record's size).
const READ_BUFFER: usize = 16 * 1024;

/// Opens connections within the budget.
#[derive(Clone)]
pub(super) struct Connector {
    inner: Arc<Inner>,
}

struct Inner {
    budget: Arc<Semaphore>,
    dial_timeout: Duration,
    close_wait: Duration,
    tcp: HttpConnector,
    unix: Option<PathBuf>,
    tls: Option<Tls>,
    proxy: Option<Arc<Matcher>>,
}

impl Service<http::Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: http::Uri) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            // The permit first, then the clock: waiting for the budget is not a slow dial.
            let permit = inner.budget.clone().acquire_owned().await?;
            let opened = tokio::time::timeout(inner.dial_timeout, inner.open(&dst))
                .await
                .map_err(|_| format!("connecting timed out after {:?}", inner.dial_timeout))??;
            Ok(Conn {
                io: Some(TokioIo::new(opened.stream)),
                proxied: opened.proxied,
                h2: opened.h2,
                permit: Some(permit),
                close_wait: inner.close_wait,
            })
        })
    }
}

impl Inner {
    async fn open(&self, dst: &http::Uri) -> Result<Opened, BoxError> {
        let https = dst.scheme_str() == Some("https");
        let mut proxied = false;
        let stream: Box<dyn Stream> = if let Some(path) = &self.unix {
            let s = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Box::new(s)
        } else if let Some(proxy) = self.proxy.as_ref().and_then(|m| m.intercept(dst)) {
            if https {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.tcp.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::new(tunnel.call(dst.clone()).await?.into_inner())
            } else {
                // A plain request goes to the proxy in absolute form.
                proxied = true;
                Box::new(
                    self.tcp
                        .clone()
                        .call(proxy.uri().clone())
                        .await?
                        .into_inner(),
                )
            }
        } else {
            Box::new(self.tcp.clone().call(dst.clone()).await?.into_inner())
        };
        if !https {
            return Ok(Opened {
                stream,
                proxied,
                h2: false,
            });
        }
        let tls = self
            .tls
            .as_ref()
            .ok_or("an https address needs the TLS settings")?;
        let host = dst.host().unwrap_or("localhost");
        let name = tls.server_name.clone().unwrap_or_else(|| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        });
        let name = rustls::pki_types::ServerName::try_from(name)?;
        let s = tokio_rustls::TlsConnector::from(tls.config.clone())
            .connect(name, stream)
            .await?;
        let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
        Ok(Opened {
            stream: Box::new(s),
            proxied,
            h2,
        })
    }
}

/// A connection just made, and how hyper must speak over it.
struct Opened {
    stream: Box<dyn Stream>,
    proxied: bool,
    h2: bool,
}

/// Any byte stream a connection runs over.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// One open connection, holding its share of the budget until it is closed, as the agent sees it.
pub(super) struct Conn {
    /// `None` once dropped (closing).
    io: Option<TokioIo<Box<dyn Stream>>>,
    /// Sent to a proxy in absolute form.
    proxied: bool,
    /// HTTP/2, as the TLS handshake agreed.
    h2: bool,
    permit: Option<OwnedSemaphorePermit>,
    close_wait: Duration,
}

impl Drop for Conn {
    /// Closes the connection, and frees its share of the budget once the agent has closed its
    /// side too: the agent counts a connection until it has closed it, and a share freed at once
    /// could open a new connection before that. An agent that goes on holding a cancelled
    /// blocking query keeps counting its connection until the query's wait is over, so the
    /// share is held as long (`close_wait`).
    fn drop(&mut self) {
        let (Some(io), Some(permit)) = (self.io.take(), self.permit.take()) else {
            return;
        };
        let close_wait = self.close_wait;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let mut stream = io.into_inner();
            let _ = tokio::time::timeout(close_wait, async {
                let _ = stream.shutdown().await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
            drop(stream);
            drop(permit);
        });
    }
}

impl Conn {
    fn io(self: Pin<&mut Self>) -> io::Result<Pin<&mut TokioIo<Box<dyn Stream>>>> {
        match self.get_mut().io.as_mut() {
            Some(io) => Ok(Pin::new(io)),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let c = Connected::new().proxy(self.proxied);
        if self.h2 {
            c.negotiated_h2()
        } else {
            c
        }
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.io() {
            Ok(io) => io.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.io() {
            Ok(io) => io.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.io() {
            Ok(io) => io.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.io() {
            Ok(io) => io.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(Write::is_write_vectored)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.io() {
            Ok(io) => io.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// A verifier that accepts any server certificate (`-consul-ssl-verify=false`), still checking
/// that the handshake's signatures are made with the certificate's key.
#[derive(Debug)]
pub(super) struct AcceptAnyCertificate(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
