//! The Redis queue and result store against a real Redis (started by scripts/services.sh).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use api_async::{Job, JobQueue, JobSpec, RedisStore, ResultStore, Source};

fn redis_url() -> String {
    std::env::var("VERDICT_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("VERDICT_TEST_REDIS_URL is not set: run the tests through scripts/test.sh, which starts Redis")
    })
}

fn namespace() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "verdict-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn job(id: &str) -> Job {
    Job {
        id: id.to_owned(),
        spec: JobSpec {
            source: Source::S3 {
                bucket: "b".into(),
                key: id.into(),
                version: None,
            },
            callback_url: None,
            callback_headers: Default::default(),
            trace_id: Some(id.to_owned()),
            custom_data: None,
        },
        attempts: 0,
    }
}

#[tokio::test]
async fn two_instances_share_one_queue_each_job_going_to_one() {
    let ns = namespace();
    let a = RedisStore::open(&redis_url(), &ns, "instance-a")
        .await
        .unwrap();
    let b = RedisStore::open(&redis_url(), &ns, "instance-b")
        .await
        .unwrap();
    for id in ["1", "2", "3"] {
        a.push(&job(id)).await.unwrap();
    }
    let lease = Duration::from_secs(60);
    let first = a.claim(lease).await.unwrap().unwrap();
    let second = b.claim(lease).await.unwrap().unwrap();
    assert_eq!((first.id.as_str(), second.id.as_str()), ("1", "2"));
    assert_eq!(first.attempts, 1);
    a.complete("1").await.unwrap();
    b.release("2").await.unwrap();
    // Released: the next claim, from either instance, takes it over.
    let again = a.claim(lease).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempts), ("2", 2));
    assert_eq!(b.claim(lease).await.unwrap().unwrap().id, "3");
    assert!(a.claim(lease).await.unwrap().is_none());
    assert_eq!(a.pending().await.unwrap(), 2);
}

#[tokio::test]
async fn a_dead_instances_job_is_taken_over_after_the_lease() {
    let ns = namespace();
    let dead = RedisStore::open(&redis_url(), &ns, "dead").await.unwrap();
    let alive = RedisStore::open(&redis_url(), &ns, "alive").await.unwrap();
    dead.push(&job("x")).await.unwrap();
    assert_eq!(
        dead.claim(Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap()
            .id,
        "x"
    );
    drop(dead); // never completes it
    assert!(
        alive
            .claim(Duration::from_secs(60))
            .await
            .unwrap()
            .is_none(),
        "still within the lease"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let taken = alive
        .claim(Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.id.as_str(), taken.attempts), ("x", 2));
    alive.complete("x").await.unwrap();
    assert_eq!(alive.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn results_are_shared_and_expire() {
    let ns = namespace();
    let a = RedisStore::open(&redis_url(), &ns, "a").await.unwrap();
    let b = RedisStore::open(&redis_url(), &ns, "b").await.unwrap();
    a.put(
        "t1",
        &serde_json::json!({"status": "infected", "finding": "EICAR"}),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    a.put(
        "t2",
        &serde_json::json!({"status": "clean"}),
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    assert_eq!(b.get("t1").await.unwrap().unwrap()["finding"], "EICAR");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(b.get("t2").await.unwrap(), None);
    assert_eq!(b.get("unknown").await.unwrap(), None);
}
