//! The Redis queue and result store against a real Redis (started by scripts/services.sh).

use std::time::Duration;

use api_async::{Job, JobQueue, JobSpec, Pushed, RedisStore, ResultStore, Source};

use crate::testutil::{namespace, redis_url};

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
            owner: None,
            submitted_by: None,
            tag_object: false,
            watched: false,
            bulk: None,
            rescans: 0,
            reverdict: false,
        },
        attempts: 0,
        receipt: String::new(),
    }
}

const LEASE: Duration = Duration::from_secs(60);

async fn open(ns: &str, consumer: &str, lease: Duration) -> RedisStore {
    RedisStore::open(&redis_url(), ns, consumer, lease, 1000)
        .await
        .unwrap()
}

async fn claim_one(store: &RedisStore) -> Option<Job> {
    store.claim(1, Duration::ZERO).await.unwrap().pop()
}

#[tokio::test]
async fn two_instances_share_one_queue_each_job_going_to_one() {
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    let ns = namespace();
    let a = open(&ns, "instance-a", LEASE).await;
    let b = open(&ns, "instance-b", LEASE).await;
    for id in ["1", "2", "3"] {
        assert_eq!(a.push(&job(id)).await.unwrap(), Pushed::Queued);
    }
    let first = claim_one(&a).await.unwrap();
    let second = claim_one(&b).await.unwrap();
    assert_eq!((first.id.as_str(), second.id.as_str()), ("1", "2"));
    assert_eq!(first.attempts, 1);
    a.complete(&first).await.unwrap();
    b.release(&second).await.unwrap();
    // Released: the next takeover, from either instance, picks it up at once.
    let c = open(&ns, "instance-c", LEASE).await;
    let again = claim_one(&c).await.unwrap();
    assert_eq!((again.id.as_str(), again.attempts), ("2", 2));
    assert_eq!(claim_one(&b).await.unwrap().id, "3");
    assert!(claim_one(&a).await.is_none());
    assert_eq!(a.pending().await.unwrap(), 2);
}

#[tokio::test]
async fn a_blocked_claim_wakes_when_another_instance_pushes() {
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    let ns = namespace();
    let worker = open(&ns, "worker", LEASE).await;
    let front = open(&ns, "front", LEASE).await;
    let waiting = tokio::spawn(async move { worker.claim(8, Duration::from_secs(30)).await });
    // A head start for the blocking read, not a condition: had the push come first, the claim
    // would still return at once. Redis offers no way to see that this read is the one blocked
    // (the embedded store's test polls its claim to the wait instead).
    tokio::time::sleep(Duration::from_millis(100)).await;
    front.push(&job("late")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the blocked read should return long before its 30 s")
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, "late");
}

#[tokio::test]
async fn a_dead_instances_job_is_taken_over_after_the_lease_and_a_renewed_one_is_not() {
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    let ns = namespace();
    // Redis measures a claim's idle time itself, so the lease runs on its clock: the test waits
    // for the takeover instead of guessing how long it takes.
    let lease = Duration::from_millis(500);
    let dead = open(&ns, "dead", lease).await;
    let busy = open(&ns, "busy", lease).await;
    let alive = open(&ns, "alive", lease).await;
    dead.push(&job("x")).await.unwrap();
    dead.push(&job("y")).await.unwrap();
    assert_eq!(claim_one(&dead).await.unwrap().id, "x");
    let slow = claim_one(&busy).await.unwrap();
    assert_eq!(slow.id, "y");
    drop(dead); // never completes x
    assert!(claim_one(&alive).await.is_none(), "still within the lease");
    // busy renews y just before every look, so only x (never renewed) can have gone quiet for
    // a whole lease.
    let taken = std::sync::Mutex::new(Vec::new());
    crate::testutil::wait_until("x is taken over", Duration::from_secs(20), || async {
        busy.renew(std::slice::from_ref(&slow)).await.unwrap();
        let claimed = alive.claim(10, Duration::ZERO).await.unwrap();
        let found = !claimed.is_empty();
        taken.lock().unwrap().extend(claimed);
        found
    })
    .await;
    let taken = taken.into_inner().unwrap();
    let taken: Vec<_> = taken.iter().map(|j| (j.id.as_str(), j.attempts)).collect();
    assert_eq!(taken, [("x", 2)], "y was renewed, so it stays with busy");
}

#[tokio::test]
async fn a_pending_trace_id_is_refused_until_completed_and_a_full_queue_refuses() {
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    let ns = namespace();
    let store = RedisStore::open(&redis_url(), &ns, "solo", LEASE, 2)
        .await
        .unwrap();
    let mut twin = job("2");
    twin.spec.trace_id = Some("1".into());
    assert_eq!(store.push(&job("1")).await.unwrap(), Pushed::Queued);
    assert_eq!(store.push(&twin).await.unwrap(), Pushed::TraceIdPending);
    assert_eq!(store.push(&job("3")).await.unwrap(), Pushed::Queued);
    assert_eq!(store.push(&job("4")).await.unwrap(), Pushed::Full);
    let first = claim_one(&store).await.unwrap();
    store
        .put(
            "1",
            &api_async::wire::ScanResult::not_scanned("for the test"),
            LEASE,
        )
        .await
        .unwrap();
    store.complete(&first).await.unwrap();
    assert_eq!(store.push(&twin).await.unwrap(), Pushed::Queued);
    assert_eq!(
        store.get("1").await.unwrap(),
        None,
        "the old result is forgotten"
    );
}

#[tokio::test]
async fn results_are_shared_and_expire() {
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    let ns = namespace();
    let a = open(&ns, "a", LEASE).await;
    let b = open(&ns, "b", LEASE).await;
    let mut infected = api_async::wire::ScanResult::not_scanned("for the test");
    infected.status = api_async::wire::Status::Infected;
    infected.finding = Some("EICAR".to_owned());
    a.put("t1", &infected, Duration::from_secs(60))
        .await
        .unwrap();
    a.put(
        "t2",
        &api_async::wire::ScanResult::not_scanned("short-lived"),
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    assert_eq!(b.get("t1").await.unwrap(), Some(infected));
    crate::testutil::wait_until(
        "t2 expired after its 50 ms TTL",
        Duration::from_secs(5),
        || async { b.get("t2").await.unwrap().is_none() },
    )
    .await;
    assert_eq!(b.get("unknown").await.unwrap(), None);
}

#[tokio::test]
async fn an_unreadable_entry_is_dropped_and_does_not_block_the_queue() {
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    let ns = namespace();
    let store = open(&ns, "reader", LEASE).await;
    // Something else wrote to our stream: no parsable job in it.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(format!("{{{ns}}}:jobs"))
        .arg("*")
        .arg("job")
        .arg("{not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    store.push(&job("good")).await.unwrap();
    let claimed = store.claim(10, Duration::ZERO).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["good"]);
    assert_eq!(
        store.pending().await.unwrap(),
        1,
        "the garbage entry is gone"
    );
}

#[tokio::test]
async fn a_consumer_group_lost_with_its_data_is_created_again() {
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    let ns = namespace();
    let store = open(&ns, "survivor", LEASE).await;
    // Redis restarted without persistence: the stream and its group are gone.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{{{ns}}}:jobs"))
        .query_async(&mut conn)
        .await
        .unwrap();
    // A push recreates the stream, not the group.
    store.push(&job("after-restart")).await.unwrap();
    let mut claimed = Vec::new();
    for _ in 0..3 {
        match store.claim(1, Duration::ZERO).await {
            Ok(jobs) if !jobs.is_empty() => {
                claimed = jobs;
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("claims must recover, not fail: {e}"),
        }
    }
    assert_eq!(
        claimed.len(),
        1,
        "the job pushed while the group was missing is delivered"
    );
    assert_eq!(claimed[0].id, "after-restart");
}

#[tokio::test]
async fn a_keys_quota_counts_its_queued_jobs_until_they_are_done() {
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    let store = RedisStore::open(
        &redis_url(),
        &namespace(),
        "quota",
        Duration::from_secs(5),
        100,
    )
    .await
    .unwrap();
    let of = |id: &str, key: Option<&str>| {
        let mut job = job(id);
        job.spec.submitted_by = key.map(str::to_owned);
        job
    };
    assert_eq!(
        store.push_within(&of("1", Some("k")), 2).await.unwrap(),
        Pushed::Queued
    );
    assert_eq!(
        store.push_within(&of("2", Some("k")), 2).await.unwrap(),
        Pushed::Queued
    );
    assert_eq!(
        store.push_within(&of("3", Some("k")), 2).await.unwrap(),
        Pushed::OverQuota
    );
    assert_eq!(
        store.push_within(&of("4", Some("other")), 2).await.unwrap(),
        Pushed::Queued,
        "another key's quota is its own"
    );
    let claimed = store.claim(10, Duration::ZERO).await.unwrap();
    let first = claimed.iter().find(|j| j.id == "1").unwrap();
    store.complete(first).await.unwrap();
    // Completed twice (a job taken over can be): counted down once.
    store.complete(first).await.unwrap();
    assert_eq!(
        store.push_within(&of("5", Some("k")), 2).await.unwrap(),
        Pushed::Queued
    );
    assert_eq!(
        store.push_within(&of("6", Some("k")), 2).await.unwrap(),
        Pushed::OverQuota
    );
}
