//! What both servers' OpenAPI documents say the same way: the answers the edge itself gives
//! (401 on every operation that needs credentials, with [`ErrorBody`](crate::ErrorBody)).

use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// Adds a 401 answer (with [`ErrorBody`](crate::ErrorBody)) to every operation that has a security requirement
/// and does not document one yet, and to `GET /metrics` (which answers 401 when a metrics token
/// is configured).
pub fn document_unauthorized(openapi: &mut OpenApi) {
    let unauthorized = || {
        RefOr::T(
            ResponseBuilder::new()
                .description("Missing, unknown or expired credentials")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let guarded =
                operation.security.as_ref().is_some_and(|s| !s.is_empty()) || path == "/metrics";
            if guarded {
                operation
                    .responses
                    .responses
                    .entry("401".to_owned())
                    .or_insert_with(unauthorized);
            }
        }
    }
}

/// Marks the request body of `POST path` as optional: an empty body there is an empty file,
/// scanned and answered like any other, and the document must not say otherwise.
pub fn empty_body_allowed(openapi: &mut OpenApi, path: &str) {
    if let Some(body) = openapi
        .paths
        .paths
        .get_mut(path)
        .and_then(|item| item.post.as_mut())
        .and_then(|operation| operation.request_body.as_mut())
    {
        body.required = Some(utoipa::openapi::Required::False);
    }
}
