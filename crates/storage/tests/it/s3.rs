//! S3Store through the real aws-sdk-s3 client against a real S3-compatible server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use scan_core::ScanInput;
use storage::{ObjectRef, ObjectStore, S3Config, S3Store, StorageError};
use tokio::io::AsyncReadExt;

async fn store() -> S3Store {
    let endpoint = std::env::var("VERDICT_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("VERDICT_TEST_S3_ENDPOINT is not set: run the tests through scripts/test.sh, which starts the S3 server")
    });
    S3Store::new(&S3Config {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint),
        path_style: true,
    })
    .await
}

async fn bucket(store: &S3Store, versioned: bool) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "verdict-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    store
        .client()
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap();
    if versioned {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        store
            .client()
            .put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    name
}

async fn read_all(store: &S3Store, object: &ObjectRef) -> Vec<u8> {
    let (_, mut reader) = store.get(object).await.unwrap();
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).await.unwrap();
    bytes
}

#[tokio::test]
async fn small_and_multipart_objects_round_trip() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let store = store().await;
    let bucket = bucket(&store, false).await;
    store
        .put(
            &bucket,
            "small.txt",
            Arc::new(ScanInput::from_bytes(b"hello s3".to_vec())),
        )
        .await
        .unwrap();
    assert_eq!(
        read_all(&store, &ObjectRef::new(&bucket, "small.txt")).await,
        b"hello s3"
    );

    // 40 MiB: three parts of at most 16 MiB, spooled to a file as uploads are.
    let big: Vec<u8> = (0..40u32 << 20).map(|i| (i % 251) as u8).collect();
    let input = ScanInput::from_reader(&big[..], &scan_core::SpoolPolicy::default()).unwrap();
    assert!(input.data().is_file_backed());
    let info = store
        .put(&bucket, "dir/big.bin", Arc::new(input))
        .await
        .unwrap();
    assert_eq!(info.size, 40 << 20);
    let object = ObjectRef::new(&bucket, "dir/big.bin");
    assert_eq!(store.head(&object).await.unwrap().size, 40 << 20);
    assert!(
        read_all(&store, &object).await == big,
        "multipart upload changed the bytes"
    );
    assert_eq!(
        store.url(&bucket, "dir/big.bin"),
        format!("s3://{bucket}/dir/big.bin")
    );
}

#[tokio::test]
async fn versions_tags_and_missing_things() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let store = store().await;
    let bucket = bucket(&store, true).await;
    let v1 = store
        .put(
            &bucket,
            "doc",
            Arc::new(ScanInput::from_bytes(b"first".to_vec())),
        )
        .await
        .unwrap();
    store
        .put(
            &bucket,
            "doc",
            Arc::new(ScanInput::from_bytes(b"second".to_vec())),
        )
        .await
        .unwrap();
    let version = v1.version.expect("a versioned bucket returns version ids");
    let old = ObjectRef {
        version: Some(version.clone()),
        ..ObjectRef::new(&bucket, "doc")
    };
    assert_eq!(read_all(&store, &old).await, b"first");
    assert_eq!(
        read_all(&store, &ObjectRef::new(&bucket, "doc")).await,
        b"second"
    );

    store
        .tag(&old, &[("scan-result".into(), "clean".into())])
        .await
        .unwrap();
    let tags = store
        .client()
        .get_object_tagging()
        .bucket(&bucket)
        .key("doc")
        .version_id(&version)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tag_set()[0].key(), "scan-result");
    assert_eq!(tags.tag_set()[0].value(), "clean");

    let err = store
        .get(&ObjectRef::new(&bucket, "nope"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StorageError::NoSuchKey { .. }), "{err}");
    let err = store
        .head(&ObjectRef::new(&bucket, "nope"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = store
        .get(&ObjectRef::new("no-such-bucket-here", "x"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StorageError::NoSuchBucket(_)), "{err}");
    let missing_version = ObjectRef {
        version: Some("not-a-version".into()),
        ..ObjectRef::new(&bucket, "doc")
    };
    let err = store.get(&missing_version).await.err().unwrap();
    assert!(err.is_not_found(), "{err}");
}

/// Puts `body` at `bucket`/`key` with a content type, user metadata and `tags`, straight
/// through the client (as an uploader would).
async fn upload(store: &S3Store, bucket: &str, key: &str, body: &[u8], tags: &[(String, String)]) {
    let tagging = tags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    store
        .client()
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/x-msdownload")
        .metadata("uploader", "alice")
        .set_tagging((!tagging.is_empty()).then_some(tagging))
        .body(body.to_vec().into())
        .send()
        .await
        .unwrap();
}

fn moving(quarantine: &str) -> storage::actions::ActionsConfig {
    toml::from_str(&format!(
        "infected = \"move\"\nnot_examined = \"delete\"\nquarantine_bucket = \"{quarantine}\"\nquarantine_prefix = \"held/\""
    ))
    .unwrap()
}

fn infected() -> storage::actions::Judgement {
    storage::actions::Judgement {
        outcome: scan_core::Outcome::Infected,
        may_change: false,
    }
}

async fn act(
    store: &dyn ObjectStore,
    policy: &storage::actions::ActionsConfig,
    object: &ObjectRef,
    read: &storage::ObjectInfo,
) -> storage::actions::Acted {
    let tags = storage::actions::tags_for(
        scan_core::Outcome::Infected,
        "2026-12-02T10:00:00Z",
        "0123456789ab",
    );
    storage::actions::act(
        store,
        policy,
        None,
        storage::actions::Scanned {
            object,
            read: Some(read),
            judgement: infected(),
        },
        &tags,
    )
    .await
}

#[tokio::test]
async fn quarantine_holds_for_everyday_names_long_keys_and_objects_with_many_tags() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let store = store().await;
    let live = bucket(&store, false).await;
    let quarantine = bucket(&store, false).await;
    let policy = moving(&quarantine);
    let seven: Vec<(String, String)> = (0..7)
        .map(|i| (format!("team{i}"), "x".to_owned()))
        .collect();
    let ten: Vec<(String, String)> = (0..10)
        .map(|i| (format!("team{i}"), "x".to_owned()))
        .collect();
    let long = format!("deep/{}.exe", "a".repeat(1000));
    let cases: Vec<(&str, &[(String, String)])> = vec![
        ("invoice (1).exe", &[]),
        ("report#2.exe", &[]),
        ("it's.exe", &[]),
        ("[1].exe", &[]),
        ("dir/ünïcödé € 100%.exe", &[]),
        (long.as_str(), &[]),
        ("seven-tags.exe", &seven),
        ("ten-tags.exe", &ten),
    ];
    for (key, tags) in cases {
        upload(&store, &live, key, b"payload", tags).await;
        let object = ObjectRef::new(&live, key);
        let read = store.head(&object).await.unwrap();
        let report = act(&store, &policy, &object, &read).await.into_report();
        assert!(report.done, "{key:?}: {report:?}");
        assert!(
            store.head(&object).await.unwrap_err().is_not_found(),
            "{key:?} left the live bucket"
        );
        let moved = ObjectRef::new(&quarantine, format!("held/{key}"));
        let copy_tags = store.tags(&moved).await.unwrap();
        assert!(
            copy_tags.contains(&("scan-result".to_owned(), "infected".to_owned())),
            "{key:?}: {copy_tags:?}"
        );
        assert!(copy_tags.len() <= storage::MAX_TAGS);
        let metadata: std::collections::BTreeMap<_, _> =
            store.metadata(&moved).await.unwrap().into_iter().collect();
        assert_eq!(
            metadata[storage::actions::ORIGIN_METADATA],
            storage::actions::origin_of(&object),
            "{key:?}"
        );
        assert_eq!(
            metadata["uploader"], "alice",
            "the object's own metadata stays"
        );
        if tags.len() == 10 {
            let kept: Vec<(String, String)> = url::form_urlencoded::parse(
                metadata[storage::actions::ORIGINAL_TAGS_METADATA].as_bytes(),
            )
            .into_owned()
            .collect();
            assert_eq!(
                kept.len(),
                3,
                "the 3 tags that made room for the scan's are kept"
            );
        }
        let head = store
            .client()
            .head_object()
            .bucket(&quarantine)
            .key(format!("held/{key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_type(), Some("application/x-msdownload"));
    }
    assert_eq!(
        storage::actions::origin_of(&ObjectRef::new("b", "invoice (1).exe")),
        "b/invoice%20%281%29.exe"
    );
}

/// A fault no request can make happen on purpose: the object is written again right after the
/// last look before the act (the first `head` once armed answers, then uploads `bytes`).
/// Everything else goes to the real store.
struct WrittenAgainAfterTheLook {
    inner: S3Store,
    bytes: Vec<u8>,
    armed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ObjectStore for WrittenAgainAfterTheLook {
    async fn get(
        &self,
        o: &ObjectRef,
    ) -> Result<(storage::ObjectInfo, storage::ByteReader), StorageError> {
        self.inner.get(o).await
    }
    async fn put(
        &self,
        b: &str,
        k: &str,
        d: Arc<ScanInput>,
    ) -> Result<storage::ObjectInfo, StorageError> {
        self.inner.put(b, k, d).await
    }
    async fn head(&self, o: &ObjectRef) -> Result<storage::ObjectInfo, StorageError> {
        let answer = self.inner.head(o).await;
        if self.armed.swap(false, Ordering::SeqCst) {
            upload(&self.inner, &o.bucket, &o.key, &self.bytes, &[]).await;
        }
        answer
    }
    async fn tag(&self, o: &ObjectRef, t: &[(String, String)]) -> Result<(), StorageError> {
        self.inner.tag(o, t).await
    }
    async fn tags(&self, o: &ObjectRef) -> Result<Vec<(String, String)>, StorageError> {
        self.inner.tags(o).await
    }
    async fn copy(
        &self,
        f: &ObjectRef,
        t: &ObjectRef,
        c: &storage::CopyRequest<'_>,
    ) -> Result<storage::ObjectInfo, StorageError> {
        self.inner.copy(f, t, c).await
    }
    async fn delete(&self, o: &ObjectRef, if_match: Option<&str>) -> Result<(), StorageError> {
        self.inner.delete(o, if_match).await
    }
    async fn metadata(&self, o: &ObjectRef) -> Result<Vec<(String, String)>, StorageError> {
        self.inner.metadata(o).await
    }
    async fn list_page(
        &self,
        b: &str,
        p: &str,
        a: Option<&str>,
        m: usize,
    ) -> Result<storage::ListPage, StorageError> {
        self.inner.list_page(b, p, a, m).await
    }
    fn url(&self, b: &str, k: &str) -> String {
        self.inner.url(b, k)
    }
}

#[tokio::test]
async fn bytes_written_after_the_scan_are_never_moved_or_deleted() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let store = store().await;
    let quarantine = bucket(&store, false).await;
    for versioned in [false, true] {
        let live = bucket(&store, versioned).await;
        for action in ["delete", "move"] {
            let policy: storage::actions::ActionsConfig = toml::from_str(&format!(
                "infected = \"{action}\"\nquarantine_bucket = \"{quarantine}\""
            ))
            .unwrap();
            let key = format!("{action}.exe");
            upload(&store, &live, &key, b"the infected bytes", &[]).await;
            let object = ObjectRef::new(&live, &key);
            let read = store.head(&object).await.unwrap();
            let racing = WrittenAgainAfterTheLook {
                inner: store.clone(),
                bytes: b"clean bytes uploaded again".to_vec(),
                armed: true.into(),
            };
            let acted = act(&racing, &policy, &object, &read).await;
            assert_eq!(
                read_all(&store, &object).await,
                b"clean bytes uploaded again",
                "versioned {versioned}, {action}: the new upload stays"
            );
            if versioned {
                // The scanned version is the one acted on; the new one is another version.
                assert!(
                    matches!(&acted, storage::actions::Acted::Reported(r) if r.done),
                    "{acted:?}"
                );
            } else {
                assert!(
                    matches!(&acted, storage::actions::Acted::Changed(_)),
                    "versioned {versioned}, {action}: {acted:?}"
                );
            }
            let held = store.list_page(&quarantine, "", None, 100).await.unwrap();
            let clean_held = futures::future::join_all(held.objects.iter().map(|o| {
                let store = store.clone();
                let object = ObjectRef::new(&quarantine, &o.key);
                async move { read_all(&store, &object).await }
            }))
            .await;
            assert!(
                !clean_held
                    .iter()
                    .any(|b| b == b"clean bytes uploaded again"),
                "versioned {versioned}, {action}: clean bytes were quarantined"
            );
        }
    }
}

#[tokio::test]
async fn listing_decodes_keys_and_a_control_character_does_not_stop_the_prefix() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let store = store().await;
    let live = bucket(&store, false).await;
    let keys = [
        "in/a\u{1}ctl.txt",
        "in/b plus+space.txt",
        "in/c%41.txt",
        "in/d é.txt",
        "in/e.txt",
    ];
    for key in keys {
        upload(&store, &live, key, b"x", &[]).await;
    }
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_page(&live, "in/", after.as_deref(), 2)
            .await
            .unwrap();
        listed.extend(page.objects.iter().map(|o| o.key.clone()));
        after = page.objects.last().map(|o| o.key.clone());
        if !page.more {
            break;
        }
    }
    assert_eq!(listed, keys, "every key, decoded, in order, across pages");
}
