//! Connections: how long a client may take, and how many connections one address may hold.
//!
//! pingora gives each read of a request 60 s afresh, so a header trickled a byte at a time, or a
//! keep-alive left idle, would hold a connection for ever. [`Guarded`] wraps the proxy service:
//! - it counts each client address's open connections and closes those over
//!   `server.max_connections_per_address` (addresses in `server.trusted_proxies` are exempt:
//!   all their clients share them); [`Guarded`] is also pingora's connection filter, so an
//!   address at its cap is refused before a TLS handshake costs anything;
//! - it wraps each HTTP/1 connection's stream in a [`Paced`] stream, which ends the connection
//!   when a request's header is not complete `server.header_timeout` after it began (its first
//!   byte, or the connection's opening for the first request), or when no new request begins
//!   `server.idle_timeout` after the last answer.
//!
//! The gateway marks the phases ([`begin_request`] once a header is read, [`end_request`] once
//! the answer is written). The body is paced by pingora's own per-read and per-write timeouts,
//! set to `server.body_timeout` in [`begin_request`]. On HTTP/2 the idle timeout applies to the
//! whole connection (pingora's `h2_idle_timeout`); the h2 library bounds header frames itself.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use ipnet::IpNet;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN, IO,
};
use pingora::proxy::Session;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;

/// The limits, from `[server]`.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// From a request's first byte (or the connection's opening) to its complete header.
    pub header: Duration,
    /// From an answer to the next request's first byte.
    pub idle: Duration,
    /// Each read of a request body and each write of an answer.
    pub body: Duration,
    /// Open connections per client address.
    pub per_address: usize,
    /// Addresses the cap does not apply to (`server.trusted_proxies`).
    pub exempt: Vec<IpNet>,
}

impl Pacing {
    /// Whether the per-address cap spares `ip` (a trusted proxy carries many clients).
    fn exempts(&self, ip: &IpAddr) -> bool {
        self.exempt.iter().any(|n| n.contains(ip))
    }
}

/// A pingora service app (`A`, the proxy) behind the connection limits.
pub struct Guarded<A> {
    app: Arc<A>,
    pacing: Pacing,
    open: Arc<DashMap<IpAddr, usize>>,
}

impl<A> Guarded<A> {
    pub fn new(app: A, pacing: Pacing) -> Self {
        Guarded {
            app: Arc::new(app),
            pacing,
            open: Arc::new(DashMap::new()),
        }
    }

    /// The connection filter half: refuses an address already at its cap before its handshake.
    pub fn filter(&self) -> Arc<AtCap> {
        Arc::new(AtCap {
            open: Arc::clone(&self.open),
            pacing: self.pacing.clone(),
        })
    }

    /// A place for one more connection from `ip`, or `None` when it has its fill.
    fn claim(&self, ip: IpAddr) -> Option<Slot> {
        if self.pacing.exempts(&ip) {
            return Some(Slot(None));
        }
        let mut open = self.open.entry(ip).or_insert(0);
        if *open >= self.pacing.per_address {
            return None;
        }
        *open += 1;
        Some(Slot(Some((ip, Arc::clone(&self.open)))))
    }
}

/// One counted connection; dropping it gives the place back.
struct Slot(Option<(IpAddr, Arc<DashMap<IpAddr, usize>>)>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((ip, open)) = &self.0 {
            open.remove_if_mut(ip, |_, n| {
                *n -= 1;
                *n == 0
            });
        }
    }
}

/// Refuses, at accept, an address that already holds its cap of connections.
#[derive(Debug)]
pub struct AtCap {
    open: Arc<DashMap<IpAddr, usize>>,
    pacing: Pacing,
}

#[async_trait]
impl pingora::listeners::ConnectionFilter for AtCap {
    async fn should_accept(&self, addr: Option<&SocketAddr>) -> bool {
        let Some(ip) = addr.map(SocketAddr::ip) else {
            return true;
        };
        self.pacing.exempts(&ip)
            || self
                .open
                .get(&ip)
                .is_none_or(|n| *n < self.pacing.per_address)
    }
}

/// What a connection over the cap is told (HTTP/1 only; an HTTP/2 one is just closed).
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Length: 0\r\nRetry-After: 10\r\n\r\n";

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let slot = match peer {
            Some(ip) => match self.claim(ip) {
                Some(slot) => slot,
                None => {
                    tracing::debug!(client = %ip, cap = self.pacing.per_address, "connection refused: the address holds its cap of connections");
                    if !h2 {
                        let _ = stream.write_all(TOO_MANY).await;
                        let _ = stream.flush().await;
                    }
                    Shutdown::shutdown(stream.as_mut()).await;
                    return None;
                }
            },
            None => Slot(None),
        };
        let stream: Stream = if h2 {
            stream
        } else {
            Box::new(Paced::new(stream, &self.pacing))
        };
        // pingora's HTTP app runs the connection's keep-alive loop to its end.
        let reused = self.app.process_new(stream, shutdown).await;
        drop(slot);
        reused
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

/// Marks a request's header as read: the header deadline is off, and the body and the answer
/// get `body` per read and per write. An upgrade (WebSocket) keeps pingora's 60 s per read:
/// once upgraded, its "body" is a conversation whose pauses are the app's to decide.
pub fn begin_request(session: &mut Session, body: Duration) {
    if let Some(paced) = paced(session) {
        paced.phase.store(IN_REQUEST, Ordering::Relaxed);
    }
    if !session.is_upgrade_req() {
        session.set_read_timeout(Some(body));
        session.set_write_timeout(Some(body));
    }
}

/// Marks a request's answer as written: the idle deadline starts with the next read.
pub fn end_request(session: &Session) {
    if let Some(paced) = paced(session) {
        paced.phase.store(IDLE, Ordering::Relaxed);
    }
}

fn paced(session: &Session) -> Option<&Paced> {
    let io: &dyn IO = session.stream()?.as_ref();
    io.as_any().downcast_ref::<Paced>()
}

/// A request header is being read (or awaited, on a new connection).
const HEADER: u8 = 0;
/// A request is being served: no deadline from here.
const IN_REQUEST: u8 = 1;
/// Between an answer and the next request.
const IDLE: u8 = 2;

/// A connection's stream with the header and idle deadlines. Reads after a deadline end the
/// connection: an idle one, or a fresh one that sent nothing, looks closed by the client (pingora
/// closes it quietly); a half-sent header fails with `TimedOut`.
#[derive(Debug)]
pub struct Paced {
    inner: Stream,
    phase: AtomicU8,
    header: Duration,
    idle: Duration,
    /// The running deadline and the phase it is for.
    deadline: Option<(u8, Pin<Box<Sleep>>)>,
    /// Bytes arrived in the current header phase.
    begun: bool,
}

impl Paced {
    fn new(inner: Stream, pacing: &Pacing) -> Self {
        Paced {
            inner,
            phase: AtomicU8::new(HEADER),
            header: pacing.header,
            idle: pacing.idle,
            deadline: None,
            begun: false,
        }
    }
}

impl AsyncRead for Paced {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let phase = this.phase.load(Ordering::Relaxed);
        if phase == IN_REQUEST {
            this.deadline = None;
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.deadline.as_ref().map(|(p, _)| *p) != Some(phase) {
            let limit = if phase == IDLE {
                this.idle
            } else {
                this.header
            };
            this.deadline = Some((phase, Box::pin(tokio::time::sleep(limit))));
        }
        if let Some((_, sleep)) = this.deadline.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(if phase == HEADER && this.begun {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("request header not complete within {:?}", this.header),
                    ))
                } else {
                    // Nothing of a request came: as if the client closed.
                    Ok(())
                });
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            if phase == IDLE {
                // The next request began: its header gets `header` from now.
                this.phase.store(HEADER, Ordering::Relaxed);
            }
            this.begun = true;
        }
        read
    }
}

impl AsyncWrite for Paced {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Paced {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(self.inner.as_mut()).await;
    }
}

impl UniqueID for Paced {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Paced {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Paced {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Paced {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Paced {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Paced {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
