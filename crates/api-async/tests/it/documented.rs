//! Every field verdict-async answers is in its OpenAPI document: real answers of each endpoint
//! (verdicts with an object action and engines, a polled result, bulk counts, bucket events,
//! errors) are walked beside the schema the served `/openapi.json` gives for that path and
//! status.

use std::time::Duration;

use scan_core::testing::eicar;
use serde_json::{Value, json};
use test_support::undocumented_fields;

use crate::testutil::{KEY, Server};

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn every_field_of_every_answer_is_in_the_openapi_document() {
    let server = Server::start_with(|c| {
        c.actions.on_requests = true;
        c.actions.infected = storage::actions::Action::Move;
        c.actions.quarantine_bucket = Some("held".into());
    })
    .await;
    let data = server.data_dir();
    for bucket in ["b", "held"] {
        std::fs::create_dir_all(data.join(bucket)).unwrap();
    }
    std::fs::write(data.join("b/bad.com"), eicar()).unwrap();
    std::fs::write(data.join("b/later.com"), eicar()).unwrap();
    std::fs::write(data.join("b/fine.txt"), b"fine").unwrap();
    let document: Value = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let mut answers: Vec<(&str, &str, u16, Value)> = Vec::new();
    let binary = server
        .client
        .post(server.url("/api/v1/scan/sync/binary"))
        .bearer_auth(KEY)
        .body(eicar())
        .send()
        .await
        .unwrap();
    let (status, body) = answer(binary).await;
    answers.push(("POST", "/api/v1/scan/sync/binary", status, body));
    let moved = server
        .post(
            "/api/v1/scan/sync/s3",
            &json!({"bucket": "b", "key": "bad.com"}),
        )
        .await;
    let (status, body) = answer(moved).await;
    answers.push(("POST", "/api/v1/scan/sync/s3", status, body));
    let no_url = server.post("/api/v1/scan/sync/download", &json!({})).await;
    let (status, body) = answer(no_url).await;
    answers.push(("POST", "/api/v1/scan/sync/download", status, body));
    let queued = server
        .post(
            "/api/v1/scan/async/s3",
            &json!({"bucket": "b", "key": "later.com", "trace_id": "documented-1"}),
        )
        .await;
    assert_eq!(queued.status(), 201);
    let polled = server.result("documented-1", Duration::from_secs(20)).await;
    answers.push(("GET", "/api/v1/scan/async/result", 200, polled));
    let unknown = server.poll("no-such-trace").await;
    let (status, body) = answer(unknown).await;
    answers.push(("GET", "/api/v1/scan/async/result", status, body));
    let events = server
        .post(
            "/api/v1/events/s3",
            &json!({"Records": [
                {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "fine.txt"}}},
                {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "gone.txt"}}}]}),
        )
        .await;
    let (status, body) = answer(events).await;
    answers.push(("POST", "/api/v1/events/s3", status, body));
    let bulk = server
        .post("/api/v1/scan/async/s3/bulk", &json!({"bucket": "b"}))
        .await;
    let (status, started) = answer(bulk).await;
    let id = started["id"].as_str().unwrap_or_default().to_owned();
    answers.push(("POST", "/api/v1/scan/async/s3/bulk", status, started));
    let counts = server
        .client
        .get(server.url(&format!("/api/v1/scan/async/s3/bulk/{id}")))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let (status, body) = answer(counts).await;
    answers.push(("GET", "/api/v1/scan/async/s3/bulk/{id}", status, body));
    let unauthorized = server
        .client
        .post(server.url("/api/v1/scan/sync/binary"))
        .body("x")
        .send()
        .await
        .unwrap();
    let (status, body) = answer(unauthorized).await;
    answers.push(("POST", "/api/v1/scan/sync/binary", status, body));

    // The answers above must hold what the test means to cover, or an empty answer would pass.
    let covered = |i: usize| &answers[i].3;
    assert_eq!(answers[0].2, 200);
    assert!(
        covered(0)["engines"][0]["objects_scanned"].is_u64(),
        "{}",
        covered(0)
    );
    assert_eq!(
        covered(1)["object_action"]["action"],
        "move",
        "{}",
        covered(1)
    );
    assert!(
        covered(1)["object_action"]["to"].is_string(),
        "{}",
        covered(1)
    );
    assert_eq!(answers[2].2, 400);
    assert_eq!(
        covered(3)["object_action"]["action"],
        "move",
        "{}",
        covered(3)
    );
    assert_eq!(answers[4].2, 404);
    assert_eq!(
        (answers[5].2, covered(5)["ignored"].as_u64()),
        (200, Some(1))
    );
    assert_eq!(answers[6].2, 201, "{}", covered(6));
    assert_eq!(answers[7].2, 200, "{}", covered(7));
    assert_eq!(answers[8].2, 401);
    for (method, path, status, answer) in &answers {
        let missing = undocumented_fields(&document, method, path, *status, answer);
        assert!(
            missing.is_empty(),
            "{method} {path} {status} answers fields its schema lacks: {missing:?}\n{answer:#}"
        );
    }
}
