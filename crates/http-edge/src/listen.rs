//! The listener: HTTP/1.1 connections with a header timeout (which is also the keep-alive idle
//! timeout), a bound on the request head, a cap on open connections and a lower one per client
//! address, every request body under the idle timeout and minimum pace of [`crate::body`], and
//! a graceful shutdown with a drain deadline.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::EdgeConfig;
use crate::body::TimedBody;

/// Open connections per client (see [`client_of`]); an entry leaves with its last connection.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// A connection counted against its client, for as long as it lives.
struct Counted {
    clients: Arc<PerClient>,
    client: IpAddr,
}

impl PerClient {
    /// Counts a connection from `client`, unless it already has `max`.
    fn enter(self: &Arc<Self>, client: IpAddr, max: usize) -> Option<Counted> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Counted {
            clients: Arc::clone(self),
            client,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// Whom a connection (or a failed login) is counted against: its IPv4 address, or an IPv6
/// address's /64 (one client commonly holds a whole /64). An IPv4 address mapped into IPv6
/// counts as itself.
pub fn client_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 => v4,
    }
}

/// What a connection past its client's cap is told before it is closed.
const TOO_MANY_FROM_HERE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 75\r\n\r\n{\"error\":\"too many open connections from this address; retry\",\"status\":503}";

/// Serves `service` on `listener` until `shutdown` resolves; then stops accepting, lets
/// in-flight requests finish for up to `drain_secs`, and closes what is left.
///
/// Each request carries [`ConnectInfo<std::net::SocketAddr>`] of its client, and its body is a
/// [`TimedBody`] that fails when the client sends nothing for `body_idle`, or sends slower than
/// the configured pace.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    config: &EdgeConfig,
    body_idle: Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout())
        .max_header_size(config.max_header_bytes.max(1024))
        .keep_alive(true);
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let per_client = Arc::new(PerClient::default());
    let per_client_max = config
        .max_connections_per_address
        .clamp(1, config.max_connections.max(1));
    let pace = config.body_pace();
    let graceful = GracefulShutdown::new();
    // Every connection's task, so those still running at the drain deadline can be cut off.
    let mut tasks = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        while tasks.try_join_next().is_some() {}
        // At the cap, nothing is accepted: new connections wait in the backlog until one closes.
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Some(counted) = per_client.enter(client_of(client.ip()), per_client_max) else {
            tracing::warn!(client = %client, max = per_client_max, "too many open connections from one address; refused");
            drop(permit);
            tasks.spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = stream.write_all(TOO_MANY_FROM_HERE).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
            continue;
        };
        let service = service.clone();
        let per_request = hyper::service::service_fn(move |request: hyper::Request<_>| {
            let mut request =
                request.map(|incoming| Body::new(TimedBody::new(incoming, body_idle, pace)));
            request.extensions_mut().insert(ConnectInfo(client));
            let mut service = service.clone();
            async move { tower::Service::call(&mut service, request).await }
        });
        let connection = http.serve_connection(TokioIo::new(stream), per_request);
        let connection = graceful.watch(connection);
        tasks.spawn(async move {
            if let Err(e) = connection.await {
                // Timeouts, resets and malformed requests: the client's doing, not ours.
                tracing::debug!(client = %client, error = %e, "connection ended");
            }
            drop(counted);
            drop(permit);
        });
    }
    drop(listener);
    let drain = Duration::from_secs(config.drain_secs);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = config.drain_secs,
            connections = tasks.len(),
            "requests still running after the drain deadline were cut off"
        );
    }
    tasks.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_counted_by_address_and_ipv6_by_its_64() {
        let clients = Arc::new(PerClient::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = clients.enter(a, 2).unwrap();
        let second = clients.enter(a, 2).unwrap();
        assert!(clients.enter(a, 2).is_none(), "the third from one address");
        assert!(clients.enter("192.0.2.2".parse().unwrap(), 2).is_some());
        drop(first);
        assert!(clients.enter(a, 2).is_some(), "one closed: room again");
        drop(second);
        assert_eq!(
            client_of("2001:db8:1:2:aaaa::1".parse().unwrap()),
            client_of("2001:db8:1:2:bbbb::9".parse().unwrap())
        );
        assert_ne!(
            client_of("2001:db8:1:2::1".parse().unwrap()),
            client_of("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(client_of("::ffff:192.0.2.1".parse().unwrap()), a);
    }
}
