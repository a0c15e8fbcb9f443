//! The web page at `/`, in a real browser: headless Chromium from Debian's packages, driven by
//! Selenium (both installed by scripts/services.sh) through `tests/browser/page_test.py`.

use scan_core::testing::{self, eicar};

use crate::testutil::Server;

#[tokio::test]
async fn the_page_is_served_with_its_assets_and_a_strict_policy() {
    let server = Server::start().await;
    let page = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("/assets/app.js") && html.contains("id=\"drop\""));
    for (path, kind) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        let asset = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        assert!(
            asset.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(!asset.text().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn in_a_browser_a_new_user_logs_in_drops_files_and_reads_the_verdict_tree() {
    let python = test_support::service_or_skip!("VERDICT_TEST_BROWSER_PYTHON");
    let files = tempfile::tempdir().unwrap();
    // The first start's generated admin, as scripts/run.sh makes it.
    let users = files.path().join("users");
    let password = api_sync::users::init_admin(&users).unwrap().unwrap();
    let server = Server::start_with(|c| {
        c.users_file = users.clone();
        c.max_body_bytes = Some(1 << 20);
    })
    .await;
    let clean = files.path().join("notes.txt");
    std::fs::write(&clean, b"an ordinary note").unwrap();
    let level3 = testing::zip(&[("eicar.com", &eicar())]);
    let level2 = testing::zip(&[("level3.zip", &level3)]);
    let nested = files.path().join("nested.zip");
    std::fs::write(
        &nested,
        testing::zip(&[("level2.zip", &level2), ("readme.txt", b"hi")]),
    )
    .unwrap();
    let big = files.path().join("big.bin");
    std::fs::write(&big, vec![0x5a; 3 << 20]).unwrap();
    let deep = files.path().join("deep.zip");
    let deep_name = format!("{}eicar.com", "d/".repeat(1500));
    std::fs::write(&deep, testing::zip(&[(deep_name.as_str(), &eicar())])).unwrap();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("page-screenshots");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/page_test.py");
    let mut command = std::process::Command::new(python);
    command
        .arg(script)
        .arg(&server.base)
        .arg(api_sync::users::FIRST_USER)
        .arg(&password)
        .args([&clean, &nested, &big, &deep])
        .arg(&out);
    // The browser talks to the server on this test's runtime: wait for it off that runtime.
    let run = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("{said}");
    assert!(run.status.success(), "{said}");
    assert!(said.contains("page test passed"), "{said}");
    for shot in [
        "1-login",
        "3-clean",
        "4-infected-tree",
        "5-too-large",
        "6-deep-tree",
        "7-after-reload",
    ] {
        let png = out.join(format!("{shot}.png"));
        assert!(
            std::fs::metadata(&png).unwrap().len() > 1000,
            "{}",
            png.display()
        );
    }
}
