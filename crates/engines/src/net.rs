//! Network plumbing shared by the clamd and ICAP clients: one stream type over TCP or a unix
//! socket, and a bounded pool of idle connections.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Where a service listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `host:port`.
    Tcp(String),
    /// A unix socket path.
    Unix(PathBuf),
}

/// A network engine's settings that cannot be used; nothing was connected yet.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// Not an address a service can be reached at.
    #[error("{0:?} is not host:port, tcp://host:port or a unix socket path")]
    Address(String),
    /// A timeout that is not a number of seconds (negative, not finite, too large).
    #[error("{engine} {setting} {value} is not a duration")]
    Duration {
        /// Which engine.
        engine: &'static str,
        /// Which setting.
        setting: &'static str,
        /// What it was set to.
        value: f64,
    },
    /// An ICAP service address without its scheme.
    #[error("ICAP url {0:?} must start with icap://")]
    IcapUrl(String),
}

/// `secs` as a duration, or why not.
pub(crate) fn seconds(
    engine: &'static str,
    setting: &'static str,
    secs: f64,
) -> Result<Duration, SetupError> {
    Duration::try_from_secs_f64(secs).map_err(|_| SetupError::Duration {
        engine,
        setting,
        value: secs,
    })
}

impl Address {
    /// Parses `unix:/path`, `/path` (unix), `tcp://host:port` or `host:port`.
    pub fn parse(text: &str) -> Result<Self, SetupError> {
        if let Some(path) = text.strip_prefix("unix:") {
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if text.starts_with('/') {
            return Ok(Address::Unix(PathBuf::from(text)));
        }
        let hostport = text.strip_prefix("tcp://").unwrap_or(text);
        match hostport.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Address::Tcp(hostport.to_owned()))
            }
            _ => Err(SetupError::Address(text.to_owned())),
        }
    }

    pub(crate) async fn connect(&self, timeout: Duration) -> std::io::Result<Stream> {
        let connect = async {
            Ok(match self {
                Address::Tcp(hostport) => {
                    let tcp = TcpStream::connect(hostport).await?;
                    tcp.set_nodelay(true)?;
                    Stream::Tcp(tcp)
                }
                Address::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
            })
        };
        tokio::time::timeout(timeout, connect).await.map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to {self} timed out"),
            )
        })?
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(hostport) => write!(f, "{hostport}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A connected stream, TCP or unix.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A buffered connection: replies are read into the buffer and parsed only when whole.
pub(crate) type Connection = BufReader<Stream>;

/// Idle connections for reuse, and a semaphore that bounds how many are in use at once.
#[derive(Debug)]
pub(crate) struct Pool<C> {
    idle: std::sync::Mutex<Vec<C>>,
    permits: Semaphore,
    max_idle: std::sync::atomic::AtomicUsize,
}

impl<C> Pool<C> {
    pub(crate) fn new(size: usize) -> Self {
        let size = size.max(1);
        Pool {
            idle: std::sync::Mutex::new(Vec::new()),
            permits: Semaphore::new(size),
            max_idle: std::sync::atomic::AtomicUsize::new(size),
        }
    }

    /// How many connections may be in use at once.
    pub(crate) fn size(&self) -> usize {
        self.max_idle.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lowers the bound (a server's own connection limit, say); never raises it.
    pub(crate) fn reduce_to(&self, size: usize) {
        let size = size.max(1);
        let current = self.size();
        if size < current {
            self.permits.forget_permits(current - size);
            self.max_idle
                .store(size, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Waits for a slot; the permit bounds concurrent use of the service.
    pub(crate) async fn slot(&self) -> SemaphorePermit<'_> {
        // The semaphore is never closed, so acquiring cannot fail.
        self.permits
            .acquire()
            .await
            .unwrap_or_else(|_| unreachable!("pool semaphore closed"))
    }

    /// An idle connection, if any.
    pub(crate) fn take(&self) -> Option<C> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Returns a healthy connection for reuse.
    pub(crate) fn put(&self, conn: C) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.size() {
            idle.push(conn);
        }
    }

    /// Drops every idle connection (after the service restarted, say).
    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
