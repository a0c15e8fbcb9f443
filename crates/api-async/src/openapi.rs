//! The OpenAPI 3 document served at `GET /openapi.json`, generated from the handlers'
//! annotations and the wire types (utoipa), so clients can generate their own SDKs.

use axum::Json;
use axum::response::IntoResponse;
use http_edge::ErrorBody;
use utoipa::{Modify, OpenApi};

use scan_core::EngineSummary;
use storage::actions::ActionReport;

use crate::bulk::BulkStatus;
use crate::schema::{
    AsyncDownloadRequest, AsyncS3Request, BulkRequest, Delivery, EventsQueued, SyncDownloadRequest,
    SyncS3Request,
};

/// Both ways to present an API key: `Authorization: Bearer <key>` and `x-api-key: <key>`.
struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
        http_edge::openapi::document_unauthorized(openapi);
        http_edge::openapi::empty_body_allowed(openapi, "/api/v1/scan/sync/binary");
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "verdict-async", description = "Submit a URL or an S3 object; get the malware verdict by signed callback or by polling. Synchronous siblings scan in the request."),
    paths(
        crate::handlers::async_download,
        crate::handlers::async_s3,
        crate::handlers::async_result,
        crate::handlers::test,
        crate::handlers::sync_download,
        crate::handlers::sync_s3,
        crate::handlers::sync_binary,
        crate::handlers::s3_events,
        crate::handlers::bulk_start,
        crate::handlers::bulk_status,
        crate::handlers::health,
        crate::handlers::metrics,
    ),
    components(schemas(
        AsyncDownloadRequest,
        AsyncS3Request,
        SyncDownloadRequest,
        SyncS3Request,
        Delivery,
        EventsQueued,
        BulkRequest,
        BulkStatus,
        ErrorBody,
        crate::wire::ScanResult,
        crate::wire::Status,
        ActionReport,
        EngineSummary
    )),
    modifiers(&ApiKeyAuth)
)]
pub(crate) struct ApiDoc;

/// `GET /openapi.json`: the OpenAPI 3 document of this API.
pub(crate) async fn serve() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
