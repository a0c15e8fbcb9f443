//! Guarded fetches over real HTTP on loopback.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use storage::fetch::{FetchError, FetchPolicy, Fetcher};
use tokio::io::AsyncReadExt;

async fn server() -> String {
    let app = Router::new()
        .route("/clean.txt", get(|| async { "just text" }))
        .route("/big.bin", get(|| async { vec![b'x'; 1 << 20] }))
        .route(
            "/to-clean",
            get(|| async { Redirect::temporary("/clean.txt") }),
        )
        .route(
            "/to-metadata",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
        )
        .route(
            "/to-localhost-name",
            get(|| async { Redirect::temporary("http://localhost:9/") }),
        )
        .route(
            "/needs-header",
            get(|headers: axum::http::HeaderMap| async move {
                if headers.get("x-token").is_some_and(|v| v == "secret") {
                    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response()
                } else {
                    StatusCode::FORBIDDEN.into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn loopback_allowed() -> FetchPolicy {
    FetchPolicy {
        allow: vec!["127.0.0.0/8".parse().unwrap()],
        ..FetchPolicy::default()
    }
}

async fn body(
    fetcher: &Fetcher,
    url: &str,
    headers: &[(String, String)],
) -> Result<Vec<u8>, FetchError> {
    let mut download = fetcher.get(url, headers).await?;
    let mut bytes = Vec::new();
    download
        .body
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| match e.into_inner() {
            Some(inner) => match inner.downcast::<FetchError>() {
                Ok(fetch) => *fetch,
                Err(other) => FetchError::InvalidUrl(other.to_string()),
            },
            None => FetchError::InvalidUrl("io".into()),
        })?;
    Ok(bytes)
}

#[tokio::test]
async fn allow_listed_loopback_is_fetched_with_headers_and_redirects() {
    let base = server().await;
    let fetcher = Fetcher::new(loopback_allowed()).unwrap();
    assert_eq!(
        body(&fetcher, &format!("{base}/clean.txt"), &[])
            .await
            .unwrap(),
        b"just text"
    );
    assert_eq!(
        body(&fetcher, &format!("{base}/to-clean"), &[])
            .await
            .unwrap(),
        b"just text"
    );
    let token = [("x-token".to_owned(), "secret".to_owned())];
    assert_eq!(
        body(&fetcher, &format!("{base}/needs-header"), &token)
            .await
            .unwrap(),
        b"ok"
    );
    let err = body(&fetcher, &format!("{base}/needs-header"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Status { status: 403, .. }),
        "{err}"
    );
    let err = body(&fetcher, &format!("{base}/missing"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Status { status: 404, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn non_public_destinations_are_refused() {
    let base = server().await;
    let strict = Fetcher::new(FetchPolicy::default()).unwrap();
    let err = body(&strict, &format!("{base}/clean.txt"), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Refused { .. }), "{err}");
    let port = base.rsplit(':').next().unwrap();
    let err = body(&strict, &format!("http://localhost:{port}/clean.txt"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Refused { .. }),
        "resolved name must be checked: {err}"
    );
    let err = body(&strict, "http://169.254.169.254/latest/meta-data/", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Refused { .. }), "{err}");
    let err = body(&strict, "file:///etc/passwd", &[]).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Refused { .. } | FetchError::InvalidUrl(_)),
        "{err}"
    );

    // Allowed start, denied redirect target: refused at the redirect.
    let fetcher = Fetcher::new(loopback_allowed()).unwrap();
    let err = body(&fetcher, &format!("{base}/to-metadata"), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Refused { .. }), "{err}");
}

#[tokio::test]
async fn size_limit_is_enforced() {
    let base = server().await;
    let fetcher = Fetcher::new(FetchPolicy {
        max_bytes: Some(1000),
        ..loopback_allowed()
    })
    .unwrap();
    let err = body(&fetcher, &format!("{base}/big.bin"), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::TooLarge(1000)), "{err}");
}
