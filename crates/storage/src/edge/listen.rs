//! The listener: HTTP/1.1 connections with a header timeout (which is also the keep-alive idle
//! timeout), a bound on the request head, a cap on open connections, every request body under
//! the idle timeout of [`super::body`], and a graceful shutdown with a drain deadline.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::EdgeConfig;
use super::body::IdleBody;

/// Serves `service` on `listener` until `shutdown` resolves; then stops accepting, lets
/// in-flight requests finish for up to `drain_secs`, and closes what is left.
///
/// Each request carries [`ConnectInfo<std::net::SocketAddr>`] of its client, and its body is an
/// [`IdleBody`] that fails with [`super::body::Stalled`] when the client sends nothing for
/// `body_idle`.
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
        let service = service.clone();
        let per_request = hyper::service::service_fn(move |request: hyper::Request<_>| {
            let mut request = request.map(|incoming| Body::new(IdleBody::new(incoming, body_idle)));
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
