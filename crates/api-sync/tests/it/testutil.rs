//! Starts a verdict-sync server for a test and talks to it.

use std::path::PathBuf;

use api_sync::{AppState, Config};
use storage::StorageConfig;

pub(crate) const USER: &str = "alice";
pub(crate) const PASSWORD: &str = "correct horse battery staple";
pub(crate) const SECRET: &str = "test-signing-key-0123456789abcdef";
/// How long a test waits for something the server does in the background.
pub(crate) const WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) use test_support::wait_until;

pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        api_sync::users::add_user(&dir.path().join("users"), USER, PASSWORD).unwrap();
        std::fs::create_dir_all(dir.path().join("spool")).unwrap();
        std::fs::create_dir_all(dir.path().join("data/bucket")).unwrap();
        let mut config = Config {
            users_file: dir.path().join("users"),
            storage: StorageConfig::Local {
                root: dir.path().join("data"),
            },
            ..Config::default()
        };
        config.token.secret = Some(SECRET.to_owned());
        config.spool.temp_dir = Some(dir.path().join("spool"));
        config.spool.memory_threshold = 64 * 1024;
        config.fetch.allow = vec!["127.0.0.0/8".parse().unwrap()];
        tweak(&mut config);
        let state = AppState::from_config(&config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            api_sync::run(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Server {
            base,
            dir,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) async fn token(&self) -> String {
        token_at(&self.client, &self.base).await
    }

    /// Multipart upload the way the reference clients send it.
    pub(crate) async fn scan(
        &self,
        token: &str,
        name: &str,
        bytes: Vec<u8>,
        upload_to: Option<&str>,
    ) -> reqwest::Response {
        scan_at(&self.client, &self.base, token, name, bytes, upload_to).await
    }
}

/// A token for `alice` from the server at `base`.
pub(crate) async fn token_at(client: &reqwest::Client, base: &str) -> String {
    let response = client
        .post(format!("{base}/api/Token"))
        .json(&serde_json::json!({ "username": USER, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["accessToken"].as_str().unwrap().to_owned()
}

/// Multipart upload to the server at `base`, the way the reference clients send it.
pub(crate) async fn scan_at(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    bytes: Vec<u8>,
    upload_to: Option<&str>,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new()
        .part(
            "documents",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        )
        .text("composite", "NONE");
    if let Some(target) = upload_to {
        form = form.text("uploadTo", target.to_owned());
    }
    client
        .post(format!("{base}/api/Scan"))
        .bearer_auth(token)
        .header("Prefer", "respond-async")
        .multipart(form)
        .send()
        .await
        .unwrap()
}

impl Server {
    /// Starts an upload over a raw connection and leaves it unfinished: the head, then `first`
    /// of a body announced as `length` bytes. The caller writes more, or drops it to abort.
    pub(crate) async fn start_raw_upload(
        &self,
        token: &str,
        content_type: &str,
        length: u64,
        first: &str,
    ) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let addr = self.base.trim_start_matches("http://");
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /api/Scan HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n{first}"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket
    }

    /// The Prometheus text of `/metrics`.
    pub(crate) async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub(crate) async fn json(response: reqwest::Response) -> serde_json::Value {
    response.json().await.unwrap()
}

pub(crate) fn detection_files(body: &serde_json::Value) -> Vec<String> {
    let mut files: Vec<String> = body["detectedInfections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["file"].as_str().unwrap().to_owned())
        .collect();
    files.sort();
    files
}

/// The real `verdict-sync` binary, configured by a TOML file, with `alice` as its user.
pub(crate) struct Binary {
    child: std::process::Child,
    pub(crate) base: String,
    pub(crate) addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Binary {
    /// Starts it with `extra` appended to a configuration of local storage, a token secret and
    /// a users file holding `alice`, and waits until it answers.
    pub(crate) async fn start(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        api_sync::users::add_user(&dir.path().join("users"), USER, PASSWORD).unwrap();
        std::fs::create_dir_all(dir.path().join("data/bucket")).unwrap();
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let config = dir.path().join("sync.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"{addr}\"\nusers_file = \"{}\"\n{extra}\n[token]\nsecret = \"{SECRET}\"\n[storage]\ntype = \"local\"\nroot = \"{}\"\n",
                dir.path().join("users").display(),
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("sync.log")).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_verdict-sync"))
            .arg("--config")
            .arg(&config)
            .stderr(log)
            .spawn()
            .unwrap();
        let base = format!("http://{addr}");
        let client = reqwest::Client::new();
        wait_until("verdict-sync to answer", WITHIN, || {
            let health = client.get(format!("{base}/health")).send();
            async move { health.await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        Binary {
            child,
            base,
            addr,
            _dir: dir,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `signal` (`HUP`, `TERM`...) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal}");
    }

    /// What it logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("sync.log")).unwrap_or_default()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client whose connections come from `source` (another loopback address is another
/// client to the server).
pub(crate) fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}
