//! What the tests run against: a verdict-async server (in-process, or the real binary as a child
//! process), and `Peer`, a loopback HTTP server that plays both the file origin jobs download
//! from and the callback receiver that records what it got.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_async::{AppState, Config};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::Value;
use storage::StorageConfig;

/// Two keys that may do everything (`[[keys]]` entries scoped to `*`), as one tenant's services.
pub(crate) const KEY: &str = "test-key-1-0123456789";
pub(crate) const OTHER_KEY: &str = "test-key-2-0123456789";
/// A plain key (`api_keys`): scans anything, posts no events, bulk-scans watched buckets only.
pub(crate) const PLAIN_KEY: &str = "test-plain-key-0123456789";
pub(crate) const CALLBACK_SECRET: &str = "callback-secret-0123456789";

/// A callback as the receiver got it.
#[derive(Debug, Clone)]
pub(crate) struct Callback {
    pub(crate) headers: HeaderMap,
    pub(crate) raw: Bytes,
    pub(crate) body: Value,
    /// What the receiver answered.
    pub(crate) answered: u16,
}

impl Callback {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct PeerState {
    files: HashMap<String, Vec<u8>>,
    /// File name -> how many more GETs answer 503.
    failing: HashMap<String, u32>,
    /// File name -> GETs seen, with their headers.
    downloads: HashMap<String, Vec<HeaderMap>>,
    /// Statuses the receiver answers, in order; 200 once used up.
    callback_script: Vec<u16>,
    callbacks: Vec<Callback>,
    delay: Duration,
}

/// A loopback file origin and callback receiver.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) base: String,
    state: Arc<Mutex<PeerState>>,
    callback_arrived: Arc<tokio::sync::Notify>,
}

impl Peer {
    pub(crate) async fn start() -> Self {
        let state: Arc<Mutex<PeerState>> = Arc::default();
        let callback_arrived = Arc::new(tokio::sync::Notify::new());
        let app = axum::Router::new()
            .route("/files/{name}", get(serve_file))
            .route("/callback/{name}", post(receive_callback))
            .with_state((Arc::clone(&state), Arc::clone(&callback_arrived)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Peer {
            base,
            state,
            callback_arrived,
        }
    }

    /// Serves `bytes` at `/files/<name>` and returns its URL.
    pub(crate) fn file(&self, name: &str, bytes: Vec<u8>) -> String {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(name.to_owned(), bytes);
        format!("{}/files/{name}", self.base)
    }

    /// The next `times` GETs of `name` answer 503.
    pub(crate) fn fail_file(&self, name: &str, times: u32) {
        self.state
            .lock()
            .unwrap()
            .failing
            .insert(name.to_owned(), times);
    }

    /// Every download waits this long before answering.
    pub(crate) fn delay_downloads(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    pub(crate) fn downloads_of(&self, name: &str) -> Vec<HeaderMap> {
        self.state
            .lock()
            .unwrap()
            .downloads
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// The receiver answers these statuses first, then 200.
    pub(crate) fn script_callbacks(&self, statuses: &[u16]) {
        self.state.lock().unwrap().callback_script = statuses.to_vec();
    }

    pub(crate) fn callback_url(&self, name: &str) -> String {
        format!("{}/callback/{name}", self.base)
    }

    pub(crate) fn callbacks(&self) -> Vec<Callback> {
        self.state.lock().unwrap().callbacks.clone()
    }

    /// Waits until `count` callbacks were answered 2xx, or panics after `within`.
    pub(crate) async fn accepted_callbacks(&self, count: usize, within: Duration) -> Vec<Callback> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.callback_arrived.notified();
            let accepted: Vec<Callback> = self
                .callbacks()
                .into_iter()
                .filter(|c| c.answered < 300)
                .collect();
            if accepted.len() >= count {
                return accepted;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "only {} of {count} callbacks accepted within {within:?}",
                    accepted.len()
                );
            }
        }
    }
}

type Shared = (Arc<Mutex<PeerState>>, Arc<tokio::sync::Notify>);

async fn serve_file(
    State((state, _)): State<Shared>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Vec<u8>, StatusCode> {
    // Recorded on arrival, so a download cut short by a shutdown still counts.
    let delay = {
        let mut state = state.lock().unwrap();
        state
            .downloads
            .entry(name.clone())
            .or_default()
            .push(headers);
        state.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut state = state.lock().unwrap();
    if let Some(left) = state.failing.get_mut(&name)
        && *left > 0
    {
        *left -= 1;
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    state.files.get(&name).cloned().ok_or(StatusCode::NOT_FOUND)
}

async fn receive_callback(
    State((state, arrived)): State<Shared>,
    headers: HeaderMap,
    raw: Bytes,
) -> StatusCode {
    let status = {
        let mut state = state.lock().unwrap();
        let status = if state.callback_script.is_empty() {
            200
        } else {
            state.callback_script.remove(0)
        };
        state.callbacks.push(Callback {
            headers,
            body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            raw,
            answered: status,
        });
        status
    };
    arrived.notify_waiters();
    StatusCode::from_u16(status).unwrap()
}

/// The configuration every test server starts from: loopback allowed, fast retries, files in a
/// temp dir.
pub(crate) fn base_config(dir: &Path) -> Config {
    let everything = |name: &str, key: &str| api_async::KeyConfig {
        name: name.to_owned(),
        key: Some(key.to_owned()),
        scan: storage::scope::Scopes::any(),
        bulk: storage::scope::Scopes::any(),
        events: storage::scope::Scopes::any(),
        ..api_async::KeyConfig::default()
    };
    let mut config = Config {
        api_keys: Some(PLAIN_KEY.to_owned()),
        keys: vec![everything("one", KEY), everything("other", OTHER_KEY)],
        storage: StorageConfig::Local {
            root: dir.join("data"),
        },
        queue: api_async::config::QueueConfig::Embedded {
            path: dir.join("queue.redb"),
        },
        workers: 4,
        ..Config::default()
    };
    config.callback.secret = Some(CALLBACK_SECRET.to_owned());
    config.callback.first_backoff_ms = 100;
    config.callback.retry_for_secs = 10;
    config.callback.timeout_secs = 2;
    config.download.first_backoff_ms = 50;
    config.fetch.allow = vec!["127.0.0.0/8".parse().unwrap()];
    config.spool.temp_dir = Some(dir.join("spool"));
    config.spool.memory_threshold = 64 * 1024;
    config.shutdown_grace_secs = 2;
    config
}

/// verdict-async running in this process.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    /// Kept alive as long as the server, which keeps its files there.
    dir: Arc<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut config = base_config(dir.path());
        tweak(&mut config);
        Self::start_in(dir, &config).await
    }

    /// Starts with exactly `config`, keeping `dir` alive as long as the server.
    pub(crate) async fn start_in(dir: Arc<tempfile::TempDir>, config: &Config) -> Self {
        std::fs::create_dir_all(dir.path().join("spool")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let state = AppState::from_config(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stopped = tokio::spawn(async move {
            api_async::run(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Server {
            base,
            client: reqwest::Client::new(),
            dir,
            shutdown: Some(tx),
            stopped: Some(stopped),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The local object store's root (each bucket a folder).
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn poll(&self, trace_id: &str) -> reqwest::Response {
        poll(&self.client, &self.base, trace_id).await
    }

    /// Polls until the result exists (200), or panics after `within`.
    pub(crate) async fn result(&self, trace_id: &str, within: Duration) -> Value {
        wait_for_result(&self.client, &self.base, trace_id, within).await
    }

    /// GETs `path` without a key and parses the JSON answer.
    pub(crate) async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET /metrics` (no token configured), as text.
    pub(crate) async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    pub(crate) async fn pending_jobs(&self) -> u64 {
        self.get_json("/health").await["pending_jobs"]
            .as_u64()
            .unwrap()
    }

    /// Stops it the way SIGTERM does and waits until it has drained.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            stopped.await.unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub(crate) async fn poll(
    client: &reqwest::Client,
    base: &str,
    trace_id: &str,
) -> reqwest::Response {
    client
        .get(format!("{base}/api/v1/scan/async/result"))
        .query(&[("trace_id", trace_id)])
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn wait_for_result(
    client: &reqwest::Client,
    base: &str,
    trace_id: &str,
    within: Duration,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let response = poll(client, base, trace_id).await;
        match response.status().as_u16() {
            200 => return response.json().await.unwrap(),
            404 => {}
            other => panic!("polling {trace_id}: unexpected {other}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no result for {trace_id} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The real `verdict-async` binary as a child process, configured by a TOML file.
pub(crate) struct Process {
    child: std::process::Child,
    pub(crate) base: String,
}

impl Process {
    /// Starts the binary with `config_toml` (written to `dir`), listening on a free port, and
    /// waits until it answers.
    pub(crate) async fn start(dir: &Path, name: &str, config_toml: &str) -> Self {
        let addr: SocketAddr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        let config_path: PathBuf = dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, format!("listen = \"{addr}\"\n{config_toml}")).unwrap();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_verdict-async"))
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let process = Process {
            child,
            base: format!("http://{addr}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{}/health", process.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{name} did not come up; its log: {}",
            std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
        );
    }

    /// Sends `signal` (`STOP`, `CONT`...) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal}");
    }

    /// The consumer name its Redis store claims jobs under starts `<host>-<pid>-`.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs.
    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// SIGKILLs `doomed` while it holds claims in the Redis job stream of namespace `space`, and
/// returns the ids it held. A kill between two claims would leave nothing to take over, so the
/// instance is frozen (SIGSTOP: it can neither finish nor renew a claim), its claims are read
/// from Redis, and only then is it killed; frozen with none held, it is let go and caught again.
pub(crate) async fn kill_holding_claims(doomed: &mut Process, space: &str) -> Vec<String> {
    let mine = format!("-{}-", doomed.pid());
    for _ in 0..500 {
        doomed.signal("STOP");
        let held: Vec<String> = pending_claims(space)
            .await
            .into_iter()
            .filter(|(_, consumer)| consumer.contains(&mine))
            .map(|(id, _)| id)
            .collect();
        if !held.is_empty() {
            doomed.kill();
            return held;
        }
        doomed.signal("CONT");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the instance never held a claim to be killed with");
}

/// Every claimed, unfinished job in the Redis job stream of namespace `space`: its id and the
/// consumer holding it.
pub(crate) async fn pending_claims(space: &str) -> Vec<(String, String)> {
    let redis = redis::Client::open(redis_url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let stream = format!("{{{space}}}:jobs");
    let pending: redis::streams::StreamPendingCountReply =
        redis::AsyncCommands::xpending_count(&mut conn, &stream, "workers", "-", "+", 10_000)
            .await
            .unwrap();
    pending
        .ids
        .into_iter()
        .map(|p| (p.id, p.consumer))
        .collect()
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The TOML lines every child process shares: keys, secret, loopback allowed, fast retries.
pub(crate) fn process_toml(dir: &Path) -> String {
    format!(
        r#"shutdown_grace_secs = 2
[[keys]]
name = "tests"
key = "{KEY}"
scan = ["*"]
bulk = ["*"]
events = ["*"]
[callback]
secret = "{CALLBACK_SECRET}"
first_backoff_ms = 100
retry_for_secs = 10
[download]
first_backoff_ms = 50
[fetch]
allow = ["127.0.0.0/8"]
[spool]
temp_dir = "{spool}"
[storage]
type = "local"
root = "{data}"
"#,
        spool = dir.display(),
        data = dir.join("data").display(),
    )
}

pub(crate) fn redis_url() -> String {
    std::env::var("VERDICT_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("VERDICT_TEST_REDIS_URL is not set: run the tests through scripts/test.sh, which starts Redis")
    })
}

/// A Redis key namespace no other test (or earlier run) uses.
pub(crate) fn namespace() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "verdict-test-{}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The test S3 server (moto, started by scripts/services.sh): its address, the storage settings
/// for a server, a client, and a suffix that makes this test's bucket names its own.
pub(crate) async fn test_s3() -> (String, storage::S3Config, aws_sdk_s3::Client, String) {
    let endpoint = std::env::var("VERDICT_TEST_S3_ENDPOINT")
        .expect("VERDICT_TEST_S3_ENDPOINT: run the tests through scripts/test.sh, which starts the S3 server");
    let config = storage::S3Config {
        endpoint: Some(endpoint.clone()),
        path_style: true,
        region: None,
    };
    let client = storage::S3Store::new(&config).await.client().clone();
    let suffix = namespace().replace('-', "").to_lowercase()[12..].to_owned();
    (endpoint, config, client, suffix)
}

/// Puts each `(key, bytes)` into `bucket` (content type `application/x-test`, with `tagging`).
pub(crate) async fn put_all(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    objects: Vec<(&str, Vec<u8>)>,
    tagging: Option<&str>,
) {
    for (key, body) in objects {
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/x-test")
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .set_tagging(tagging.map(str::to_owned))
            .send()
            .await
            .unwrap();
    }
}

/// A bucket `name` whose created objects are notified, by moto itself, to a new SQS queue of
/// the same name (the standard S3 -> SQS set-up): an SQS client and the queue's URL.
pub(crate) async fn notifying_queue(
    endpoint: &str,
    s3: &aws_sdk_s3::Client,
    name: &str,
) -> (aws_sdk_sqs::Client, String) {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&shared)
            .endpoint_url(endpoint)
            .build(),
    );
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    s3.create_bucket().bucket(name).send().await.unwrap();
    // The standard set-up: the bucket notifies the queue of every created object; moto then
    // delivers real S3 event JSON (a test event first) to the queue itself.
    s3.put_bucket_notification_configuration()
        .bucket(name)
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .queue_configurations(
                    aws_sdk_s3::types::QueueConfiguration::builder()
                        .queue_arn(arn)
                        .events(aws_sdk_s3::types::Event::from("s3:ObjectCreated:*"))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    (sqs, queue_url)
}

/// [`process_toml`] with the S3 server at `endpoint` as the object store in place of a folder.
pub(crate) fn s3_process_toml(dir: &Path, endpoint: &str) -> String {
    let local = format!(
        "[storage]\ntype = \"local\"\nroot = \"{}\"\n",
        dir.join("data").display()
    );
    let shared = process_toml(dir);
    assert!(shared.contains(&local));
    shared.replace(
        &local,
        &format!("[storage]\ntype = \"s3\"\nendpoint = \"{endpoint}\"\npath_style = true\n"),
    )
}

pub(crate) use test_support::wait_until;

/// Messages in the SQS queue at `url`, visible and in flight together.
pub(crate) async fn sqs_messages(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName;
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    answer
        .attributes()
        .unwrap()
        .values()
        .map(|v| v.parse::<usize>().unwrap())
        .sum()
}
