//! The HTTP endpoints of contract section 2, and the synchronous siblings: validation of every
//! field with a clear 400, then a job on the queue (async) or a scan in the request (sync).

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_edge::body;
use scan_core::InputError;
use serde::Deserialize;
use serde_json::json;

use crate::bulk::BulkStatus;
use crate::error::ApiError;
use crate::events::QueueError;
use crate::job::{Job, JobSpec, Source};
use crate::schema::{
    AsyncDownloadRequest, AsyncS3Request, BulkRequest, EventsQueued, SyncDownloadRequest,
    SyncS3Request, buffered,
};
use crate::state::{AppState, Caller};
use crate::store::Pushed;
use crate::wire::ScanResult;

/// Queues the job and answers 204 (callback) or 201 with `Location` (polling).
async fn submit(
    state: &AppState,
    caller: Caller,
    request_headers: &HeaderMap,
    mut spec: JobSpec,
) -> Response {
    spec.owner = caller.scope.clone();
    spec.submitted_by = Some(caller.grant.id.clone());
    let mut id = [0u8; 16];
    rand::fill(&mut id[..]);
    let job = Job {
        id: hex::encode(id),
        spec,
        attempts: 0,
        receipt: String::new(),
    };
    // Worked out before queueing, so a bad Host cannot leave a queued job behind an error.
    let location = if job.spec.callback_url.is_some() {
        None
    } else {
        let trace = job.spec.trace_id.as_deref().unwrap_or_default();
        let Some(base) = state.base_url(request_headers) else {
            return ApiError::BadRequest(
                "the Host header is not a host name with an optional port, so no result address can be given; set public_url or send a valid Host".to_owned(),
            )
            .into_response();
        };
        let location = format!(
            "{base}/api/v1/scan/async/result?trace_id={}",
            url::form_urlencoded::byte_serialize(trace.as_bytes()).collect::<String>()
        );
        match HeaderValue::from_str(&location) {
            Ok(location) => Some(location),
            Err(_) => {
                return ApiError::BadRequest(format!(
                    "cannot build a result address from the Host header ({location:?})"
                ))
                .into_response();
            }
        }
    };
    let pushed = match state
        .queue
        .push_within(&job, caller.grant.max_queued_jobs)
        .await
    {
        Ok(pushed) => pushed,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match pushed {
        Pushed::Queued => state.metrics.submitted("queued"),
        Pushed::TraceIdPending => {
            state.metrics.submitted("conflict");
            return ApiError::Conflict(format!(
                "trace_id {:?} belongs to a job that is still pending; wait for its result or use another trace_id",
                job.spec.trace_id.as_deref().unwrap_or_default()
            ))
            .into_response();
        }
        Pushed::Full => {
            state.metrics.submitted("full");
            return ApiError::Unavailable("the job queue is full; retry shortly".to_owned())
                .into_response();
        }
        Pushed::OverQuota => {
            state.metrics.submitted("over_quota");
            return quota_full(&caller).into_response();
        }
    }
    tracing::info!(job = job.id, key = caller.grant.name, trace_id = ?job.spec.trace_id, "job queued");
    match location {
        Some(location) => (StatusCode::CREATED, [(header::LOCATION, location)]).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// 429: the caller's key has as many jobs queued as its quota allows.
fn quota_full(caller: &Caller) -> ApiError {
    ApiError::QuotaFull(format!(
        "this API key has {} jobs queued, as many as its quota allows; retry once some are done",
        caller.grant.max_queued_jobs
    ))
}

#[utoipa::path(post, path = "/api/v1/scan/async/download", tag = "async", security(("bearer" = []), ("api_key" = [])),
    request_body = crate::schema::AsyncDownloadRequest, responses(crate::schema::Submitted))]
/// `POST /api/v1/scan/async/download`.
pub(crate) async fn async_download(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    request_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let spec = AsyncDownloadRequest::parse(body)
        .map(|request| request.delivery.job(request.source.source()));
    match spec {
        Ok(spec) => submit(&state, caller, &request_headers, spec).await,
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(post, path = "/api/v1/scan/async/s3", tag = "async", security(("bearer" = []), ("api_key" = [])),
    request_body = crate::schema::AsyncS3Request, responses(crate::schema::Submitted))]
/// `POST /api/v1/scan/async/s3`.
pub(crate) async fn async_s3(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    request_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let spec = AsyncS3Request::parse(body).and_then(|request| {
        caller.may_scan(&request.source.bucket, &request.source.key)?;
        let mut spec = request.delivery.job(request.source.source());
        spec.tag_object = state.settings.actions.on_requests;
        Ok(spec)
    });
    match spec {
        Ok(spec) => submit(&state, caller, &request_headers, spec).await,
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct ResultQuery {
    trace_id: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/scan/async/result", tag = "async", security(("bearer" = []), ("api_key" = [])),
    params(("trace_id" = String, Query, description = "The id given when submitting")),
    responses(
        (status = 200, description = "The verdict", body = crate::wire::ScanResult),
        (status = 400, description = "No trace_id", body = http_edge::ErrorBody),
        (status = 404, description = "Not finished, unknown, or expired", body = http_edge::ErrorBody)))]
/// `GET /api/v1/scan/async/result?trace_id=ID`.
pub(crate) async fn async_result(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<ResultQuery>,
) -> Result<Json<ScanResult>, ApiError> {
    let trace_id = query.trace_id.filter(|t| !t.is_empty()).ok_or_else(|| {
        ApiError::BadRequest("the trace_id query parameter is required".to_owned())
    })?;
    state
        .results
        .get(&crate::job::scoped(caller.scope.as_deref(), &trace_id))
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no result for trace_id {trace_id:?}: not finished yet, unknown, or expired"
            ))
        })
}

#[utoipa::path(get, path = "/api/v1/test", tag = "operations", security(("bearer" = []), ("api_key" = [])),
    responses((status = 204, description = "The key is valid"), (status = 401, description = "It is not", body = http_edge::ErrorBody)))]
/// `GET /api/v1/test`: 204 for a valid key (the middleware refused the rest).
pub(crate) async fn test() -> StatusCode {
    StatusCode::NO_CONTENT
}

#[utoipa::path(post, path = "/api/v1/scan/sync/download", tag = "sync", security(("bearer" = []), ("api_key" = [])),
    request_body = crate::schema::SyncDownloadRequest,
    responses(
        (status = 200, description = "The verdict (status no with a reason when the download failed)", body = crate::wire::ScanResult),
        (status = 400, description = "A field is missing or invalid", body = http_edge::ErrorBody),
        (status = 503, description = "Too many scans at once", body = http_edge::ErrorBody)))]
/// `POST /api/v1/scan/sync/download`: fetch and scan in the request.
pub(crate) async fn sync_download(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ScanResult>, ApiError> {
    let request = SyncDownloadRequest::parse(body)?;
    scan_now(&state, request.source()).await
}

#[utoipa::path(post, path = "/api/v1/scan/sync/s3", tag = "sync", security(("bearer" = []), ("api_key" = [])),
    request_body = crate::schema::SyncS3Request,
    responses(
        (status = 200, description = "The verdict (status no with a reason when the object could not be read)", body = crate::wire::ScanResult),
        (status = 400, description = "A field is missing or invalid", body = http_edge::ErrorBody),
        (status = 403, description = "The key may not scan this object", body = http_edge::ErrorBody),
        (status = 503, description = "Too many scans at once", body = http_edge::ErrorBody)))]
/// `POST /api/v1/scan/sync/s3` (the original product has it beside the two the contract names):
/// `{bucket, key, version?}`, scanned in the request.
pub(crate) async fn sync_s3(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ScanResult>, ApiError> {
    let request = SyncS3Request::parse(body)?;
    caller.may_scan(&request.bucket, &request.key)?;
    scan_now(&state, request.source()).await
}

/// Fetches (with the job's retries) and scans in the request; a download that fails is
/// `status: "no"` with the reason, as it would be for a job.
async fn scan_now(state: &AppState, source: Source) -> Result<Json<ScanResult>, ApiError> {
    let _slot = state.sync_slot()?;
    let sources = state.sources();
    let (name, _) = sources.describe(&source);
    let (mut result, judgement, read) = match sources.fetch(&source).await {
        Ok(fetched) => {
            let report = state.scan(&name, fetched.content).await;
            (
                ScanResult::of(&report),
                storage::actions::Judgement::of(&report),
                fetched.object,
            )
        }
        Err(why) => (
            ScanResult::not_scanned(why),
            storage::actions::Judgement::unread(),
            None,
        ),
    };
    // The caller waits for the verdict, so an object that changed since is not re-scanned
    // here: it is simply not acted on, and the answer says so.
    if state.settings.actions.on_requests
        && let Source::S3 {
            bucket,
            key,
            version,
        } = &source
    {
        let object = storage::ObjectRef {
            bucket: bucket.clone(),
            key: key.clone(),
            version: version.clone(),
        };
        let judged_by = result.fingerprint.clone();
        let acted = crate::worker::act_on_object(
            state,
            &object,
            read.as_ref(),
            (judgement, judged_by.as_deref()),
            true,
        )
        .await;
        result.object_action = Some(acted.into_report());
    }
    Ok(Json(result))
}

#[utoipa::path(post, path = "/api/v1/scan/sync/binary", tag = "sync", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file. An empty body is an empty file: it is scanned like any other and answered 200 (clean, size 0)."),
    responses(
        (status = 200, description = "The verdict", body = crate::wire::ScanResult),
        (status = 408, description = "The body stalled", body = http_edge::ErrorBody),
        (status = 413, description = "The body is over max_body_bytes", body = http_edge::ErrorBody),
        (status = 503, description = "Too many scans at once", body = http_edge::ErrorBody)))]
/// `POST /api/v1/scan/sync/binary`: the raw body is the file.
pub(crate) async fn sync_binary(
    State(state): State<Arc<AppState>>,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Json<ScanResult>, ApiError> {
    // A body announced as larger than the limit is answered before a byte of it is read (and
    // before it takes a scan slot).
    let declared = request_headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    if let Err(InputError::TooLarge { limit }) =
        state.scanner.spool_policy().check_declared(declared)
    {
        return Err(ApiError::TooLarge(format!(
            "the body is larger than the limit of {limit} bytes"
        )));
    }
    let _slot = match state.sync_slot() {
        Ok(slot) => slot,
        Err(busy) => {
            if declared.is_some_and(|n: u64| n <= body::DISCARD_MAX as u64) {
                body::discard_small(body).await;
            }
            return Err(busy);
        }
    };
    let input = body::spool(
        body.into_data_stream(),
        state.scanner.spool_policy().clone(),
    )
    .await?;
    let report = state
        .scan("binary", crate::source::Content::Read(input))
        .await;
    Ok(Json(ScanResult::of(&report)))
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
/// `GET /metrics`: Prometheus text; no key needed (like /health).
pub(crate) async fn metrics(
    State(state): State<Arc<AppState>>,
    request_headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if !state.settings.http.metrics_allowed(&request_headers) {
        return Err(ApiError::Unauthorized(
            "the metrics need Authorization: Bearer <metrics token>".to_owned(),
        ));
    }
    let pending = state.queue.pending().await.ok();
    let mut text = state.metrics.render(pending);
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

#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "Running; with pending_jobs unless http.metrics_token is set and not given"), (status = 503, description = "The queue does not answer", body = http_edge::ErrorBody)))]
/// `GET /health`: no key needed; 200 while the queue answers, 503 when it does not. The count
/// of pending jobs is shown to whoever may read the metrics.
pub(crate) async fn health(
    State(state): State<Arc<AppState>>,
    request_headers: HeaderMap,
) -> Response {
    match state.queue.pending().await {
        Ok(pending) if state.settings.http.metrics_allowed(&request_headers) => {
            let mut body = http_edge::status::engines_json(&state.scanner);
            body["status"] = json!("ok");
            body["pending_jobs"] = json!(pending);
            Json(body).into_response()
        }
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[utoipa::path(post, path = "/api/v1/events/s3", tag = "events", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Object, description = "An S3 event notification: AWS's records, or the same records as MinIO, Ceph and Garage post them"),
    responses(
        (status = 200, description = "Every created object is queued as a job; the answer counts them", body = crate::schema::EventsQueued),
        (status = 400, description = "Not an S3 event notification", body = http_edge::ErrorBody),
        (status = 403, description = "The key may not post bucket events", body = http_edge::ErrorBody),
        (status = 429, description = "The key has as many jobs queued as its quota allows; send the notification again later", body = http_edge::ErrorBody),
        (status = 503, description = "The queue is full or unreachable; send the notification again", body = http_edge::ErrorBody)))]
/// `POST /api/v1/events/s3`: a bucket's event webhook. Each `ObjectCreated:*` object becomes a
/// job that scans it and tags it with the outcome; the answer comes once every job is durably
/// queued, so a sender that sees an error sends again (an object may then be scanned twice,
/// never not at all).
pub(crate) async fn s3_events(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EventsQueued>, ApiError> {
    if caller.grant.events.is_empty() {
        return Err(ApiError::Forbidden(
            "this API key may not post bucket events; give it an events scope in [[keys]]"
                .to_owned(),
        ));
    }
    let body = buffered(body)?;
    let notification =
        crate::events::parse(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (queued, elsewhere) =
        crate::events::queue_created(&state, Some(&caller), notification.created)
            .await
            .map_err(|e| match e {
                QueueError::OverQuota(why) => ApiError::QuotaFull(why),
                QueueError::Full(why) => ApiError::Unavailable(why),
                QueueError::Store(e) => e.into(),
            })?;
    tracing::info!(
        queued,
        other_events = notification.other_events,
        not_watched = elsewhere,
        "bucket events queued"
    );
    Ok(Json(EventsQueued {
        queued,
        ignored: notification.other_events + elsewhere,
    }))
}

#[utoipa::path(post, path = "/api/v1/scan/async/s3/bulk", tag = "async", security(("bearer" = []), ("api_key" = [])),
    request_body = crate::schema::BulkRequest,
    responses(
        (status = 201, description = "The bulk scan is started; `Location` is where its counts are read", body = crate::bulk::BulkStatus),
        (status = 400, description = "A field is missing or invalid", body = http_edge::ErrorBody),
        (status = 403, description = "The key may not bulk-scan this bucket and prefix, or the bucket may not be listed", body = http_edge::ErrorBody),
        (status = 404, description = "No such bucket", body = http_edge::ErrorBody),
        (status = 503, description = "The queue or the storage is unavailable", body = http_edge::ErrorBody)))]
/// `POST /api/v1/scan/async/s3/bulk`: scans every object under `prefix` in `bucket`; each is
/// acted on by the `[actions]` policy, and called back to `callback_url` when given.
pub(crate) async fn bulk_start(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    request_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let BulkRequest {
        bucket,
        prefix,
        callback_url,
        callback_headers,
    } = match BulkRequest::parse(body) {
        Ok(request) => request,
        Err(e) => return e.into_response(),
    };
    // Within the key's bulk scope only: a bulk scan acts on every object it lists and names
    // them in its callbacks and counts.
    if !caller.grant.bulk.covers(&bucket, &prefix) {
        return ApiError::Forbidden(format!(
            "this API key may not bulk-scan s3://{bucket}/{prefix}; plain keys may bulk-scan the buckets [events] names, other keys what their bulk scope names"
        ))
        .into_response();
    }
    // Listed once here, so a missing bucket or a refusal is answered now, not found later.
    if let Err(e) = state.objects.list_page(&bucket, &prefix, None, 1).await {
        tracing::warn!(bucket = ?bucket, error = %e, "a bulk scan's bucket cannot be listed");
        let message = e.public_message();
        return match e {
            storage::StorageError::NoSuchBucket(_) => ApiError::NotFound(message),
            storage::StorageError::AccessDenied(_) => ApiError::Forbidden(message),
            storage::StorageError::InvalidName(_) => ApiError::BadRequest(message),
            _ => ApiError::Unavailable(message),
        }
        .into_response();
    }
    let bulk = crate::bulk::new_bulk(
        caller.scope.clone(),
        Some(caller.grant.id.clone()),
        bucket,
        prefix,
        callback_url,
        callback_headers,
    );
    match crate::bulk::start(&state, &bulk).await {
        Ok(Pushed::Queued) => {}
        Ok(_) => {
            return ApiError::Unavailable("the job queue is full; retry shortly".to_owned())
                .into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    tracing::info!(bulk = bulk.id, bucket = ?bulk.bucket, prefix = ?bulk.prefix, "bulk scan started");
    let body = Json(BulkStatus::of(&bulk, &crate::bulk::Progress::default()));
    let location = state
        .base_url(&request_headers)
        .map(|base| format!("{base}/api/v1/scan/async/s3/bulk/{}", bulk.id))
        .and_then(|l| HeaderValue::from_str(&l).ok());
    match location {
        Some(location) => {
            (StatusCode::CREATED, [(header::LOCATION, location)], body).into_response()
        }
        None => (StatusCode::CREATED, body).into_response(),
    }
}

#[utoipa::path(get, path = "/api/v1/scan/async/s3/bulk/{id}", tag = "async", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The bulk scan's id")),
    responses(
        (status = 200, description = "Its counts", body = crate::bulk::BulkStatus),
        (status = 404, description = "No such bulk scan for this key", body = http_edge::ErrorBody)))]
/// `GET /api/v1/scan/async/s3/bulk/{id}`: a bulk scan's counts, from any instance.
pub(crate) async fn bulk_status(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<BulkStatus>, ApiError> {
    let found = state.bulks.bulk(&id).await?;
    match found {
        // Another key's bulk scan is as good as unknown to this one.
        Some((bulk, progress)) if caller.scope.is_none() || bulk.owner == caller.scope => {
            Ok(Json(BulkStatus::of(&bulk, &progress)))
        }
        _ => Err(ApiError::NotFound(format!("no bulk scan {id:?}"))),
    }
}

/// `GET /`: a status page for people, needing no key and showing nothing secret: the queue,
/// what this instance finished in the last hour, its workers, and its engines' health. With
/// `http.metrics_token` set it is closed like the metrics: it needs that token too.
pub(crate) async fn status_page(
    State(state): State<Arc<AppState>>,
    request_headers: HeaderMap,
) -> Response {
    if !state.settings.http.metrics_allowed(&request_headers) {
        return ApiError::Unauthorized(
            "the status page needs Authorization: Bearer <metrics token>".to_owned(),
        )
        .into_response();
    }
    let queue = match state.queue.pending().await {
        Ok(pending) => format!("{pending} jobs waiting or running"),
        Err(e) => {
            tracing::warn!(error = %e, "the queue does not answer");
            "the queue does not answer".to_owned()
        }
    };
    let engines = engine_rows(&state).await;
    let finished = state.metrics.last_hour.totals();
    let count = |status: &str| finished.get(status).copied().unwrap_or(0);
    let page = format!(
        include_str!("../assets/status.html"),
        queue = escape_html(&queue),
        clean = count("clean"),
        infected = count("infected"),
        no = count("no"),
        workers = state.settings.workers,
        engines = engines,
        version = env!("CARGO_PKG_VERSION"),
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        page,
    )
        .into_response()
}

/// The engines' health as table rows, each with its rule set, checked at most every 10 s
/// however often the page is loaded (it needs no key, so it must not let anyone make us call
/// clamd or ICAP at will).
async fn engine_rows(state: &AppState) -> String {
    let mut cached = state.engine_health.lock().await;
    if let Some((at, rows)) = cached.as_ref()
        && at.elapsed() < std::time::Duration::from_secs(10)
    {
        return rows.clone();
    }
    let mut rows = String::new();
    let set = state.scanner.engine_set();
    for (engine, held) in set.engines().iter().zip(set.signatures()) {
        let health = tokio::time::timeout(std::time::Duration::from_secs(3), engine.health()).await;
        let (class, said) = match health {
            Ok(Ok(version)) => ("ok", format!("ok: {version}")),
            Ok(Err(e)) => {
                // Addresses and the engine's own words are for the operator, not a public page.
                tracing::warn!(engine = engine.name(), error = %e, "engine health check failed");
                ("bad", "failing (the cause is in the server log)".to_owned())
            }
            Err(_) => ("bad", "no answer within 3 s".to_owned()),
        };
        let loaded = held
            .loaded_at
            .and_then(|at| {
                at.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        rows.push_str(&format!(
            "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape_html(engine.name()),
            escape_html(&said),
            held.count.map(|n| n.to_string()).unwrap_or_default(),
            escape_html(&held.version),
            escape_html(&loaded),
        ));
    }
    rows.push_str(&format!(
        "<tr><td colspan=\"5\">fingerprint <code>{}</code></td></tr>",
        escape_html(set.fingerprint())
    ));
    *cached = Some((std::time::Instant::now(), rows.clone()));
    rows
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
