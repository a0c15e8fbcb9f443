//! The OpenAPI 3 document served at `GET /openapi.json`, generated from the handlers'
//! annotations and the wire types (utoipa).

use axum::Json;
use axum::response::IntoResponse;
use utoipa::{Modify, OpenApi};

use http_edge::ErrorBody;
use scan_core::Detection;
use storage::actions::ActionReport;

use crate::schema::{
    ExistingRequest, LoginRequest, Problem, ScanForm, ScanResponse, Timings, TokenResponse,
    UrlRequest,
};
use crate::wire::{DetectedInfection, EngineCounts, SyncScanResponse};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        http_edge::openapi::document_unauthorized(openapi);
        http_edge::openapi::empty_body_allowed(openapi, "/api/Scan");
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "verdict-sync", description = "Upload a file, get a malware verdict in the response."),
    paths(
        crate::handlers::token,
        crate::handlers::scan,
        crate::handlers::scan_existing,
        crate::handlers::scan_url,
        crate::handlers::health,
        crate::handlers::metrics,
    ),
    components(schemas(
        LoginRequest,
        TokenResponse,
        ScanForm,
        ScanResponse,
        SyncScanResponse,
        DetectedInfection,
        EngineCounts,
        Detection,
        Problem,
        Timings,
        ActionReport,
        ExistingRequest,
        UrlRequest,
        ErrorBody
    )),
    modifiers(&BearerAuth)
)]
pub(crate) struct ApiDoc;

/// `GET /openapi.json`: the OpenAPI 3 document of this API.
pub(crate) async fn serve() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
