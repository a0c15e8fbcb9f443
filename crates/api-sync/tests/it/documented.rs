//! Every field verdict-sync answers is in its OpenAPI document: real answers of each endpoint
//! (verdicts with every optional part present, tokens, errors) are walked beside the schema the
//! served `/openapi.json` gives for that path and status.

use scan_core::testing::{demo_files, eicar};
use serde_json::{Value, json};
use test_support::undocumented_fields;

use crate::testutil::{PASSWORD, Server, USER, json};

#[tokio::test]
async fn every_field_of_every_answer_is_in_the_openapi_document() {
    let server = Server::start_with(|c| {
        c.actions = storage::actions::ActionsConfig {
            on_requests: true,
            infected: storage::actions::Action::Move,
            quarantine_bucket: Some("held".into()),
            quarantine_prefix: "q/".into(),
            ..Default::default()
        };
    })
    .await;
    let data = server.data_dir();
    std::fs::create_dir_all(data.join("uploads/in")).unwrap();
    std::fs::create_dir_all(data.join("held")).unwrap();
    std::fs::write(data.join("uploads/in/bad.com"), eicar()).unwrap();
    let document = json(
        server
            .client
            .get(server.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    let mut answers: Vec<(&str, &str, u16, Value)> = Vec::new();
    let login = server
        .client
        .post(server.url("/api/Token"))
        .json(&json!({ "username": USER, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    answers.push((
        "POST",
        "/api/Token",
        login.status().as_u16(),
        json(login).await,
    ));
    let token = server.token().await;
    let infected = server
        .scan(
            &token,
            "DemoFiles.zip",
            demo_files(),
            Some("uploads/demo.zip"),
        )
        .await;
    answers.push((
        "POST",
        "/api/Scan",
        infected.status().as_u16(),
        json(infected).await,
    ));
    let stored = server
        .scan(
            &token,
            "notes.txt",
            b"meeting at noon".to_vec(),
            Some("uploads/notes.txt"),
        )
        .await;
    answers.push((
        "POST",
        "/api/Scan",
        stored.status().as_u16(),
        json(stored).await,
    ));
    let existing = server
        .client
        .post(server.url("/api/Scan/Existing"))
        .bearer_auth(&token)
        .json(&json!({ "container": "uploads", "objectPath": "in/bad.com" }))
        .send()
        .await
        .unwrap();
    answers.push((
        "POST",
        "/api/Scan/Existing",
        existing.status().as_u16(),
        json(existing).await,
    ));
    let no_url = server
        .client
        .post(server.url("/api/Scan/URL"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    answers.push((
        "POST",
        "/api/Scan/URL",
        no_url.status().as_u16(),
        json(no_url).await,
    ));
    let unauthorized = server
        .client
        .post(server.url("/api/Scan"))
        .send()
        .await
        .unwrap();
    answers.push((
        "POST",
        "/api/Scan",
        unauthorized.status().as_u16(),
        json(unauthorized).await,
    ));

    // The answers above must hold what the test means to cover, or an empty answer would pass.
    assert!(answers[1].3["uploadError"].is_string(), "{}", answers[1].3);
    assert_eq!(answers[2].3["stored"], true, "{}", answers[2].3);
    assert_eq!(
        answers[3].3["objectAction"]["action"], "move",
        "{}",
        answers[3].3
    );
    assert_eq!(answers[4].2, 400);
    assert_eq!(answers[5].2, 401);
    for (method, path, status, answer) in &answers {
        let missing = undocumented_fields(&document, method, path, *status, answer);
        assert!(
            missing.is_empty(),
            "{method} {path} {status} answers fields its schema lacks: {missing:?}\n{answer:#}"
        );
    }
}
