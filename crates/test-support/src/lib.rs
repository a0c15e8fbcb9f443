//! The workspace's test plumbing, shared by every crate's tests: service tests that skip (or,
//! under the README's test command, fail) by one rule, [`wait_until`] in place of fixed sleeps,
//! golden answers ([`assert_golden`]) and a slow client ([`trickle`]). The sample builders (EICAR,
//! archives, documents, bombs) stay with the formats they build, in `scan_core::testing`.
//!
//! A `publish = false` crate that only dev-dependencies name, so none of it reaches a release
//! build. Panics on failure, as test helpers should.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

/// The variable that turns a skipped service test into a failure: the README's test command
/// sets it, so a service that did not start can never pass as a skip there.
pub const REQUIRE_SERVICES: &str = "VERDICT_TEST_REQUIRE_SERVICES";

/// The value of the service variable `name` (an address `scripts/services.sh` exports), or
/// `None` after one line on stderr saying the test is skipped, when a plain `cargo test` runs
/// without the services. Panics instead when [`REQUIRE_SERVICES`] is set.
pub fn service_var(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) => Some(value),
        Err(_) if std::env::var_os(REQUIRE_SERVICES).is_some() => panic!(
            "{name} is not set, and {REQUIRE_SERVICES} says every service must be there: scripts/services.sh did not start it"
        ),
        Err(_) => {
            // Straight to the process's stderr: the test harness captures eprintln! of passing
            // tests, and a skip must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped {}: {name} is not set (scripts/test.sh starts the service; or `scripts/services.sh start` and source target/test-services/env)",
                std::thread::current().name().unwrap_or("a test")
            );
            None
        }
    }
}

/// The service variable's value, or return from the (test) function after saying it is
/// skipped; see [`service_var`].
#[macro_export]
macro_rules! service_or_skip {
    ($name:expr) => {
        match $crate::service_var($name) {
            Some(value) => value,
            None => return,
        }
    };
}

/// Waits until `check` holds, polling every 20 ms, or panics after `within` naming `what`: for
/// conditions that come true after some time (a job started, a slot taken, a result expired), in
/// place of a fixed sleep that is too short on a slow machine and wasted on a fast one.
pub async fn wait_until<F, Fut>(what: &str, within: std::time::Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A connection from `source` (another loopback address is another client to a server) to
/// `addr` that sends `head`, then trickles `body` a byte every `every`, until the server
/// answers or closes: the status line and headers it answered with (empty if it closed without
/// a word). How the servers' edge tests play a slow client.
pub async fn trickle(
    addr: std::net::SocketAddr,
    source: &str,
    head: String,
    body: Vec<u8>,
    every: std::time::Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(std::net::SocketAddr::new(
            source.parse().expect("a source address"),
            0,
        ))
        .expect("bind the source address");
    let stream = socket.connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for byte in body {
            tokio::time::sleep(every).await;
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    sender.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Compares `actual` with the golden JSON file at `path`, after `volatile` fields (dates,
/// timings, ids: JSON pointers such as `/dateScanned`) are replaced by `"<volatile>"`. With
/// `VERDICT_BLESS=1` the file is written instead, so a deliberate change of an API's answer is
/// one command and a reviewed diff.
pub fn assert_golden(path: &std::path::Path, mut actual: serde_json::Value, volatile: &[&str]) {
    for pointer in volatile {
        if let Some(value) = actual.pointer_mut(pointer) {
            *value = serde_json::Value::String("<volatile>".to_owned());
        }
    }
    let text = serde_json::to_string_pretty(&actual).expect("JSON") + "\n";
    if std::env::var_os("VERDICT_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("golden folder");
        std::fs::write(path, &text).expect("write the golden file");
        return;
    }
    let golden = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with VERDICT_BLESS=1 to write it from this answer:\n{text}",
            path.display()
        )
    });
    assert_eq!(
        golden,
        text,
        "the answer differs from {} (if that is intended, rerun with VERDICT_BLESS=1 and review the diff)",
        path.display()
    );
}

/// The fields of `answer` that the OpenAPI `document` does not describe, as JSON pointers: the
/// answer of `method path` with `status` is walked beside its documented schema (through
/// `$ref`, `allOf`, `oneOf`, `anyOf`, arrays and maps), and every object key that no schema on
/// its way names is listed. An empty list means every field the handler returned is documented.
pub fn undocumented_fields(
    document: &serde_json::Value,
    method: &str,
    path: &str,
    status: u16,
    answer: &serde_json::Value,
) -> Vec<String> {
    let escaped = path.replace('~', "~0").replace('/', "~1");
    let pointer = format!(
        "/paths/{escaped}/{}/responses/{status}/content/application~1json/schema",
        method.to_ascii_lowercase()
    );
    let Some(schema) = document.pointer(&pointer) else {
        return vec![format!(
            "(the document has no JSON schema for {method} {path} {status})"
        )];
    };
    let mut missing = Vec::new();
    walk_schema(document, &[schema], answer, "", &mut missing);
    missing
}

/// What a set of schemas (alternatives and parts together) allows at one place in an answer.
#[derive(Default)]
struct Allowed<'a> {
    properties: Vec<(&'a str, &'a serde_json::Value)>,
    /// `additionalProperties`: `Some(None)` for `true`, `Some(Some(schema))` for a map's values.
    additional: Option<Option<&'a serde_json::Value>>,
    items: Vec<&'a serde_json::Value>,
    /// No constraint at all (`{}` or a free-form `object`).
    anything: bool,
}

fn collect_schema<'a>(
    document: &'a serde_json::Value,
    schema: &'a serde_json::Value,
    allowed: &mut Allowed<'a>,
    depth: usize,
) {
    // A self-referencing schema cannot loop forever: documents here are shallow.
    if depth > 32 {
        return;
    }
    if let Some(reference) = schema.get("$ref").and_then(|r| r.as_str()) {
        let target = reference
            .strip_prefix('#')
            .and_then(|p| document.pointer(p));
        if let Some(target) = target {
            collect_schema(document, target, allowed, depth + 1);
        }
        return;
    }
    let Some(fields) = schema.as_object() else {
        return;
    };
    for combinator in ["allOf", "oneOf", "anyOf"] {
        for part in fields
            .get(combinator)
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            collect_schema(document, part, allowed, depth + 1);
        }
    }
    if let Some(properties) = fields.get("properties").and_then(|p| p.as_object()) {
        allowed
            .properties
            .extend(properties.iter().map(|(k, v)| (k.as_str(), v)));
    }
    match fields.get("additionalProperties") {
        Some(serde_json::Value::Bool(true)) => allowed.additional = Some(None),
        Some(extra @ serde_json::Value::Object(_)) => allowed.additional = Some(Some(extra)),
        _ => {}
    }
    if let Some(items) = fields.get("items") {
        allowed.items.push(items);
    }
    let typed = fields.contains_key("type") || fields.contains_key("$ref");
    let composed = ["allOf", "oneOf", "anyOf", "properties", "items"]
        .iter()
        .any(|k| fields.contains_key(*k));
    let object_without_shape = fields.get("type").and_then(|t| t.as_str()) == Some("object")
        && !fields.contains_key("properties")
        && !fields.contains_key("additionalProperties");
    if (!typed && !composed) || object_without_shape {
        allowed.anything = true;
    }
}

fn walk_schema(
    document: &serde_json::Value,
    schemas: &[&serde_json::Value],
    value: &serde_json::Value,
    at: &str,
    missing: &mut Vec<String>,
) {
    let mut allowed = Allowed::default();
    for schema in schemas {
        collect_schema(document, schema, &mut allowed, 0);
    }
    if allowed.anything {
        return;
    }
    match value {
        serde_json::Value::Object(fields) => {
            for (key, inner) in fields {
                let here = format!("{at}/{key}");
                let named: Vec<_> = allowed
                    .properties
                    .iter()
                    .filter(|(name, _)| name == key)
                    .map(|(_, schema)| *schema)
                    .collect();
                if !named.is_empty() {
                    walk_schema(document, &named, inner, &here, missing);
                } else if let Some(extra) = allowed.additional {
                    if let Some(extra) = extra {
                        walk_schema(document, &[extra], inner, &here, missing);
                    }
                } else {
                    missing.push(here);
                }
            }
        }
        serde_json::Value::Array(items) if !allowed.items.is_empty() => {
            for (i, inner) in items.iter().enumerate() {
                walk_schema(
                    document,
                    &allowed.items,
                    inner,
                    &format!("{at}/{i}"),
                    missing,
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::undocumented_fields;
    use serde_json::json;

    fn document() -> serde_json::Value {
        json!({
            "paths": {"/api/x": {"post": {"responses": {"200": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Answer"}}}}}}}},
            "components": {"schemas": {
                "Answer": {"allOf": [
                    {"$ref": "#/components/schemas/Base"},
                    {"type": "object", "properties": {
                        "engines": {"type": "array", "items": {"$ref": "#/components/schemas/Engine"}},
                        "action": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Engine"}]},
                        "headers": {"type": "object", "additionalProperties": {"type": "string"}}
                    }}
                ]},
                "Base": {"type": "object", "properties": {"result": {"type": "string"}}},
                "Engine": {"type": "object", "properties": {"engine": {"type": "string"}}}
            }}
        })
    }

    #[test]
    fn documented_fields_pass_through_refs_compositions_arrays_and_maps() {
        let answer = json!({"result": "Clean", "engines": [{"engine": "yara"}],
            "action": {"engine": "x"}, "headers": {"a": "b"}});
        assert_eq!(
            undocumented_fields(&document(), "POST", "/api/x", 200, &answer),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_field_the_schema_lacks_is_named_wherever_it_is() {
        let answer = json!({"result": "Clean", "extra": 1,
            "engines": [{"engine": "yara", "objects_scanned": 3}], "action": {"done": true}});
        assert_eq!(
            undocumented_fields(&document(), "post", "/api/x", 200, &answer),
            vec!["/action/done", "/engines/0/objects_scanned", "/extra"]
        );
    }

    #[test]
    fn an_undocumented_status_is_reported() {
        let missing = undocumented_fields(&document(), "POST", "/api/x", 404, &json!({}));
        assert_eq!(missing.len(), 1);
        assert!(missing[0].contains("no JSON schema"), "{missing:?}");
    }
}
