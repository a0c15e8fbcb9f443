//! The endpoints of contract section 1: token, scan (multipart or binary body, optionally
//! storing clean files), scan an existing object, scan a URL; plus health and metrics.
//! Uploads stream through scan-core's input pipeline as they arrive, never buffered whole.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use http_edge::body::{self, Form};
use http_edge::{ApiError, InFlight};
use scan_core::{InputError, Report, ScanInput, SpoolPolicy, Verdict};
use storage::ObjectRef;
use storage::fetch::FetchError;

use crate::schema::{ExistingRequest, LoginRequest, ScanResponse, TokenResponse, UrlRequest};
use crate::state::{AppState, User};

/// Text fields (`uploadTo`, `composite`, `url`) are small; anything longer is refused.
const MAX_TEXT_FIELD: usize = 64 * 1024;
/// The multipart preamble and each part's head must end within this many bytes.
const MAX_PART_HEAD: usize = 16 * 1024;

/// Refuses a login a web page could make a visitor's browser send: a body type an HTML form
/// or a simple cross-origin request can carry (`text/plain`, form encodings; 415), or a request
/// the browser itself marks as coming from another site (403). JSON, and no content type at all
/// (as some clients send it), are what the contract's clients use; a browser only sends a body
/// without a type along with `Sec-Fetch-Site` or `Origin`, which say where it came from.
fn refuse_cross_site_login(headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(content_type) = text(header::CONTENT_TYPE.as_str()) {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the login body must be JSON (Content-Type: application/json), not {essence}"
            )));
        }
    }
    let cross_site = match text("sec-fetch-site") {
        Some(site) => !matches!(site, "same-origin" | "none"),
        None => text(header::ORIGIN.as_str()).is_some_and(|origin| {
            let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
            Some(authority) != text(header::HOST.as_str())
        }),
    };
    if cross_site {
        return Err(ApiError::Forbidden(
            "a login from a page of another site is refused".to_owned(),
        ));
    }
    Ok(())
}

/// `POST /api/Token`: the body is JSON, with that Content-Type or none (some clients send
/// none); a login another site's page could send is refused.
#[utoipa::path(post, path = "/api/Token", tag = "auth",
    request_body = crate::schema::LoginRequest,
    responses(
        (status = 200, description = "A bearer token", body = crate::schema::TokenResponse),
        (status = 400, description = "Not JSON", body = http_edge::ErrorBody),
        (status = 401, description = "Wrong username or password", body = http_edge::ErrorBody),
        (status = 403, description = "Sent by a page of another site", body = http_edge::ErrorBody),
        (status = 408, description = "The body stalled or trickled", body = http_edge::ErrorBody),
        (status = 415, description = "A Content-Type other than JSON", body = http_edge::ErrorBody),
        (status = 429, description = "Too many failed logins from this address; retry after Retry-After seconds", body = http_edge::ErrorBody),
        (status = 503, description = "Too many password checks at once; retry shortly", body = http_edge::ErrorBody)))]
pub(crate) async fn token(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    refuse_cross_site_login(&headers)?;
    let body = body.map_err(|rejection| match body::BodyError::from_cause(&rejection) {
        slow @ (body::BodyError::Stalled(_) | body::BodyError::TooSlow(_)) => ApiError::from(slow),
        _ => ApiError::BadRequest(format!("the body could not be read: {rejection}")),
    })?;
    let login: LoginRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be JSON {{\"username\": ..., \"password\": ...}}: {e}"
        ))
    })?;
    let attempt = state
        .throttle
        .attempt(client.ip(), &login.username)
        .map_err(|refused| ApiError::Throttled(refused.0))?;
    if !attempt.wait.is_zero() {
        tokio::time::sleep(attempt.wait).await;
    }
    // The throttle above runs first, so a throttled guess never reaches the hash.
    let permit = tokio::time::timeout(
        state.login_wait,
        Arc::clone(&state.password_checks).acquire_owned(),
    )
    .await
    .map_err(|_| ApiError::busy())?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let checker = Arc::clone(&state);
    let user = login.username.clone();
    // argon2 is deliberately slow CPU work: keep it off the reactor.
    let valid = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut memory = checker.check_memory.take();
        let valid = checker
            .users
            .current()
            .verify_in(&user, &login.password, &mut memory);
        checker.check_memory.give(memory);
        valid
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    attempt.finished(valid);
    if !valid {
        tracing::info!(client = %client.ip(), user = ?login.username, "failed login");
        return Err(ApiError::Unauthorized(
            "wrong username or password".to_owned(),
        ));
    }
    let token = state
        .tokens
        .issue(&login.username)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(TokenResponse {
        access_token: token,
        token_type: "Bearer",
        expires_in: state.tokens.ttl().as_secs(),
    }))
}

#[utoipa::path(post, path = "/api/Scan", tag = "scan", security(("bearer" = [])),
    request_body(content = crate::schema::ScanForm, content_type = "multipart/form-data",
        description = "Or a raw application/octet-stream body with optional File-Name and Upload-To headers. An empty raw body is an empty file: it is scanned like any other and answered 200 (Clean, size 0); a multipart body without a file part is 400."),
    responses(
        (status = 200, description = "The verdict", body = crate::schema::ScanResponse),
        (status = 400, description = "No file part or a malformed body", body = http_edge::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = http_edge::ErrorBody),
        (status = 403, description = "The user may not store uploads where uploadTo says", body = http_edge::ErrorBody),
        (status = 408, description = "The body stalled", body = http_edge::ErrorBody),
        (status = 413, description = "Over the body limit", body = http_edge::ErrorBody),
        (status = 503, description = "Too many scans at once", body = http_edge::ErrorBody)))]
/// `POST /api/Scan`: multipart (`documents` or the first part with a filename, optional
/// `uploadTo` and `composite`), or a raw body with optional `File-Name` and `Upload-To` headers.
pub(crate) async fn scan(
    State(state): State<Arc<AppState>>,
    Extension(user): Extension<User>,
    request: Request,
) -> Result<Json<ScanResponse>, ApiError> {
    // A body announced as larger than the limit is answered before a byte of it is read (and
    // before it takes a scan slot).
    let spool = state.scanner.spool_policy().clone();
    spool
        .check_declared(declared_length(request.headers()))
        .map_err(input_error)?;
    let Some(_slot) = state.scans.try_take() else {
        if declared_length(request.headers()).is_some_and(|n| n <= body::DISCARD_MAX as u64) {
            body::discard_small(request.into_body()).await;
        }
        return Err(ApiError::busy());
    };
    let headers = request.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (name, input, upload_to) = if content_type.to_ascii_lowercase().starts_with("multipart/") {
        read_multipart(content_type, request, &spool).await?
    } else {
        let name = header_text(&headers, "file-name").unwrap_or_else(|| "upload".to_owned());
        let upload_to = header_text(&headers, "upload-to");
        let input = body::spool(request.into_body().into_data_stream(), spool).await?;
        (name, input, upload_to)
    };
    answer(&state, &name, input, upload_to, Some(&user))
        .await
        .map(Json)
}

/// The body's length as its `Content-Length` announces it.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

async fn read_multipart(
    content_type: &str,
    request: Request,
    spool: &SpoolPolicy,
) -> Result<(String, ScanInput, Option<String>), ApiError> {
    let boundary = Form::boundary(content_type)?;
    let mut form = Form::new(request.into_body(), boundary, MAX_PART_HEAD);
    let mut file: Option<(String, ScanInput, bool)> = None;
    let mut upload_to = None;
    while let Some(field) = form.next_field().await? {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let is_documents = name.eq_ignore_ascii_case("documents");
        if name.eq_ignore_ascii_case("uploadTo") {
            upload_to = Some(body::read_text(field, MAX_TEXT_FIELD).await?)
                .filter(|t| !t.trim().is_empty());
        } else if is_documents || file_name.is_some() {
            // `documents` wins over any other file part; otherwise the first file part counts.
            let wanted = match &file {
                None => true,
                Some((_, _, had_documents)) => is_documents && !had_documents,
            };
            if wanted {
                let input = body::spool(field, spool.clone()).await?;
                let shown = file_name
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| name.clone());
                file = Some((shown, input, is_documents));
            } else {
                body::drain(field).await?;
            }
        } else {
            // `composite` and unknown text fields: accepted and ignored.
            body::read_text(field, MAX_TEXT_FIELD).await?;
        }
    }
    let (name, input, _) = file.ok_or_else(|| {
        ApiError::BadRequest("no file in the request: send it as a multipart part named \"documents\" (or any part with a filename)".to_owned())
    })?;
    Ok((name, input, upload_to))
}

fn input_error(err: InputError) -> ApiError {
    match err {
        InputError::TooLarge { limit } => ApiError::TooLarge(format!(
            "the file is larger than the limit of {limit} bytes"
        )),
        InputError::Read(e) => ApiError::BadRequest(format!("the file did not arrive whole: {e}")),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Like [`input_error`] for bytes we fetched ourselves (from storage or a URL): a stream that
/// breaks is the upstream's failure (502), not the client's.
fn upstream_input_error(err: InputError) -> ApiError {
    match err {
        InputError::Read(e) => match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<FetchError>())
        {
            Some(FetchError::TooLarge(limit)) => ApiError::TooLarge(format!(
                "the download is larger than the limit of {limit} bytes"
            )),
            _ => ApiError::BadGateway(format!("reading the object failed part-way: {e}")),
        },
        other => input_error(other),
    }
}

/// Scans, records, and stores a clean upload when asked (where `user` may store it: refused
/// before the scan otherwise).
async fn answer(
    state: &AppState,
    name: &str,
    input: ScanInput,
    upload_to: Option<String>,
    user: Option<&User>,
) -> Result<ScanResponse, ApiError> {
    let target = upload_to
        .map(|target| upload_target(&target, name))
        .transpose()?;
    if let (Some((bucket, key)), Some(user)) = (&target, user)
        && !user.scopes.upload.allows(bucket, key)
    {
        return Err(ApiError::Forbidden(format!(
            "user {:?} may not store uploads in {bucket}/{key}",
            user.name
        )));
    }
    let input = Arc::new(input);
    let report = scan_recorded(state, name, Arc::clone(&input)).await;
    let mut response = ScanResponse::from(&report);
    if let Some((bucket, key)) = target {
        if report.verdict == Verdict::Clean {
            match state.store.put(&bucket, &key, input).await {
                Ok(_) => {
                    response.uploaded_to = Some(state.store.url(&bucket, &key));
                    response.stored = Some(true);
                }
                Err(e) => {
                    tracing::warn!(bucket = ?bucket, key = ?key, error = %e, "storing a clean upload failed");
                    response.stored = Some(false);
                    response.upload_error = Some(e.public_message());
                }
            }
        } else {
            response.stored = Some(false);
            response.upload_error = Some(format!("not stored: the verdict is {}", report.verdict));
        }
    }
    Ok(response)
}

async fn scan_recorded(state: &AppState, name: &str, input: Arc<ScanInput>) -> Report {
    let _counted = InFlight::enter(&state.metrics.scans.in_flight);
    let report = state.scanner.scan_input(name, input).await;
    state.metrics.scans.record(&report);
    report
}

/// `bucket/path/to/file.ext` -> (bucket, key). A bucket alone (or a trailing `/`) gets a
/// generated key, keeping the upload's extension.
fn upload_target(target: &str, name: &str) -> Result<(String, String), ApiError> {
    let target = target.trim().trim_start_matches('/');
    let (bucket, key) = target.split_once('/').unwrap_or((target, ""));
    if bucket.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "uploadTo {target:?} must be bucket/path/to/file"
        )));
    }
    let key = if key.is_empty() || key.ends_with('/') {
        let mut random = [0u8; 8];
        rand::fill(&mut random[..]);
        let extension = std::path::Path::new(name)
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        format!("{key}verdict-{}{extension}", hex::encode(random))
    } else {
        key.to_owned()
    };
    Ok((bucket.to_owned(), key))
}

/// Carries out the `[actions]` policy on a scanned existing object (see
/// [`storage::actions::act`]): the verdict is about the bytes that were read, so a newer object
/// is left alone, as are objects the `[filters]` name.
async fn act_on_existing(
    state: &AppState,
    object: &ObjectRef,
    read: &storage::ObjectInfo,
    report: &Report,
    response: &ScanResponse,
) -> storage::actions::ActionReport {
    use storage::actions;
    let tags = actions::tags_for(
        report.outcome(),
        &response.verdict.date_scanned,
        &report.fingerprint,
    );
    actions::act(
        state.store.as_ref(),
        &state.actions,
        Some(&state.filters),
        actions::Scanned {
            object,
            read: Some(read),
            judgement: actions::Judgement::of(report),
        },
        &tags,
    )
    .await
    .into_report()
}

/// `POST /api/Scan/Existing`: scans an object already in the store.
#[utoipa::path(post, path = "/api/Scan/Existing", tag = "scan", security(("bearer" = [])),
    request_body = crate::schema::ExistingRequest,
    responses(
        (status = 200, description = "The verdict", body = crate::schema::ScanResponse),
        (status = 400, description = "container or objectPath missing", body = http_edge::ErrorBody),
        (status = 403, description = "The user may not scan this object", body = http_edge::ErrorBody),
        (status = 404, description = "No such bucket, object or version", body = http_edge::ErrorBody)))]
pub(crate) async fn scan_existing(
    State(state): State<Arc<AppState>>,
    Extension(user): Extension<User>,
    body: Bytes,
) -> Result<Json<ScanResponse>, ApiError> {
    let _slot = state.scans.try_take().ok_or_else(ApiError::busy)?;
    let request: ExistingRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be JSON {{\"container\", \"objectPath\"}}: {e}"
        ))
    })?;
    let bucket = request
        .container
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::BadRequest("container is required".to_owned()))?;
    let key = request
        .object_path
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::BadRequest("objectPath is required".to_owned()))?;
    if !user.scopes.scan.allows(&bucket, &key) {
        return Err(ApiError::Forbidden(format!(
            "user {:?} may not scan objects in {bucket}/{key}",
            user.name
        )));
    }
    let object = ObjectRef {
        bucket,
        key,
        version: request.version_id.filter(|v| !v.is_empty()),
    };
    let (read, reader) = state.store.get(&object).await?;
    let input = state
        .scanner
        .input_from_async_reader(reader)
        .await
        .map_err(upstream_input_error)?;
    let report = scan_recorded(&state, &object.key, Arc::new(input)).await;
    tracing::info!(bucket = ?object.bucket, key = ?object.key, uploaded_by = ?request.uploaded_by, verdict = %report.verdict, "scanned existing object");
    let mut response = ScanResponse::from(&report);
    if state.actions.on_requests {
        let done = act_on_existing(&state, &object, &read, &report, &response).await;
        if !done.done {
            response.tag_error.clone_from(&done.error);
        }
        response.object_action = Some(done);
    }
    Ok(Json(response))
}

#[utoipa::path(post, path = "/api/Scan/URL", tag = "scan", security(("bearer" = [])),
    request_body = crate::schema::UrlRequest,
    responses(
        (status = 200, description = "The verdict", body = crate::schema::ScanResponse),
        (status = 400, description = "No or bad URL", body = http_edge::ErrorBody),
        (status = 403, description = "The destination is not allowed", body = http_edge::ErrorBody),
        (status = 413, description = "The download is over the limit", body = http_edge::ErrorBody),
        (status = 502, description = "The URL's server failed or answered an error", body = http_edge::ErrorBody)))]
/// `POST /api/Scan/URL`: a multipart `url` field or JSON `{"url": ...}`, whatever the
/// Content-Type claims (reference clients send multipart labelled as JSON).
pub(crate) async fn scan_url(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ScanResponse>, ApiError> {
    let _slot = state.scans.try_take().ok_or_else(ApiError::busy)?;
    let url = url_from_body(&headers, &body).await?;
    let download = state.fetcher.get(&url, &[]).await.map_err(fetch_error)?;
    let input = state
        .scanner
        .input_from_async_reader(download.body)
        .await
        .map_err(upstream_input_error)?;
    let name = storage::fetch::file_name(&url);
    Ok(Json(answer(&state, &name, input, None, None).await?))
}

async fn url_from_body(headers: &HeaderMap, raw: &Bytes) -> Result<String, ApiError> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8".to_owned()))?;
    let trimmed = text.trim_start();
    let url = if trimmed.starts_with('{') {
        serde_json::from_str::<UrlRequest>(trimmed)
            .map_err(|e| ApiError::BadRequest(format!("bad JSON: {e}")))?
            .url
    } else {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let boundary = Form::boundary(content_type).ok().or_else(|| {
            // The body itself says its boundary: its first line is `--<boundary>`.
            trimmed
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("--"))
                .map(|b| b.trim_end().to_owned())
        });
        let boundary = boundary.ok_or_else(|| {
            ApiError::BadRequest(
                "send the URL as a multipart field \"url\" or JSON {\"url\": ...}".to_owned(),
            )
        })?;
        let mut form = Form::new(axum::body::Body::from(raw.clone()), boundary, MAX_PART_HEAD);
        let mut url = None;
        while let Some(field) = form.next_field().await? {
            if field.name() == Some("url") {
                url = Some(body::read_text(field, MAX_TEXT_FIELD).await?);
            } else {
                body::drain(field).await?;
            }
        }
        url
    };
    url.map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::BadRequest("url is required".to_owned()))
}

fn fetch_error(err: FetchError) -> ApiError {
    match err {
        e @ FetchError::InvalidUrl(_) => ApiError::BadRequest(e.to_string()),
        e @ FetchError::Refused { .. } => {
            tracing::info!(error = %e, "URL refused");
            ApiError::Forbidden(e.public_message())
        }
        e @ FetchError::TooLarge(_) => ApiError::TooLarge(e.to_string()),
        e => ApiError::BadGateway(e.to_string()),
    }
}

/// `GET /health`: no auth; 200 while the server runs. Whoever may read the metrics also sees
/// the engines, their rule sets and the fingerprint.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "Running; with the engines, their rule sets and the fingerprint unless http.metrics_token is set and not given")))]
pub(crate) async fn health(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    if !state.http.metrics_allowed(&headers) {
        return Json(serde_json::json!({ "status": "ok" }));
    }
    let mut body = http_edge::status::engines_json(&state.scanner);
    body["status"] = serde_json::json!("ok");
    Json(body)
}

/// `GET /metrics`: Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub(crate) async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if !state.http.metrics_allowed(&headers) {
        return Err(ApiError::Unauthorized(
            "the metrics need Authorization: Bearer <metrics token>".to_owned(),
        ));
    }
    let mut text = state.metrics.render();
    let reloads = state.reloader.stats();
    http_edge::status::append_metrics(
        &mut text,
        &state.scanner,
        http_edge::status::Reloads {
            installed: reloads.reloaded,
            refused: reloads.refused,
        },
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

/// The page's files, compiled into the binary: no CDN, nothing fetched at run time.
const PAGE: &str = include_str!("../assets/index.html");
const PAGE_SCRIPT: &str = include_str!("../assets/app.js");
const PAGE_STYLE: &str = include_str!("../assets/app.css");

/// Headers every page file carries: only this origin's own scripts and styles, never framed.
fn page_file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `GET /`: the page to log in and drop files on.
pub(crate) async fn page() -> impl IntoResponse {
    page_file("text/html; charset=utf-8", PAGE)
}

/// `GET /assets/app.js`.
pub(crate) async fn page_script() -> impl IntoResponse {
    page_file("text/javascript; charset=utf-8", PAGE_SCRIPT)
}

/// `GET /assets/app.css`.
pub(crate) async fn page_style() -> impl IntoResponse {
    page_file("text/css; charset=utf-8", PAGE_STYLE)
}
