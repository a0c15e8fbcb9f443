//! `ClamdEngine`: ClamAV's clamd over TCP or a unix socket. Objects are streamed with
//! `zINSTREAM` inside an `IDSESSION`, so pooled connections are really reused; a pooled
//! connection that clamd has closed meanwhile is dropped and the scan retried once on a new one.

use std::time::Duration;

use async_trait::async_trait;
use scan_core::{Detection, Engine, EngineError, ScanObject, Scope, Signatures};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::net::{Address, Connection, Pool, SetupError};

/// clamd never scans streams of 2 GB or more, whatever its configuration says.
const CLAMD_HARD_LIMIT: u64 = (2 << 30) - 1;
/// INSTREAM chunk size.
const CHUNK: usize = 256 * 1024;
/// Longest reply we accept before calling the peer broken.
const MAX_REPLY: usize = 64 * 1024;

/// How to reach and use clamd.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClamdConfig {
    /// Name in reports; `clamd` by default (set it when running several clamd engines).
    pub name: String,
    /// `host:port`, `tcp://host:port`, `unix:/path` or `/path`.
    pub address: String,
    /// Connections kept and used at once.
    pub pool_size: usize,
    /// Connecting, in seconds.
    pub connect_timeout_secs: f64,
    /// One object, sent and answered, in seconds.
    pub timeout_secs: f64,
    /// clamd's `StreamMaxLength`. Larger objects are reported as not examined by clamd instead of
    /// being sent and cut off. Set it to what clamd.conf says (clamd's default is 25 MiB).
    pub stream_max_length: u64,
    /// Send expanded archive members too, not only the root (clamd unpacks archives itself).
    pub scan_members: bool,
}

impl Default for ClamdConfig {
    fn default() -> Self {
        ClamdConfig {
            name: "clamd".to_owned(),
            address: "/var/run/clamav/clamd.ctl".to_owned(),
            pool_size: 8,
            connect_timeout_secs: 5.0,
            timeout_secs: 120.0,
            stream_max_length: 25 << 20,
            scan_members: false,
        }
    }
}

/// ClamAV through clamd.
#[derive(Debug)]
pub struct ClamdEngine {
    name: String,
    address: Address,
    pool: Pool<Session>,
    connect_timeout: Duration,
    timeout: Duration,
    max_size: u64,
    scope: Scope,
    /// clamd's `VERSION` as last read (`ClamAV 1.4.3/27473/Tue Dec  1 09:23:41 2026`): the
    /// database version and date change when freshclam has clamd reload.
    seen: std::sync::Mutex<Signatures>,
}

/// A connection in `IDSESSION` mode, with the id of the last command sent on it.
#[derive(Debug)]
struct Session {
    conn: Connection,
    last_id: u64,
}

/// What clamd said about one stream.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Clean,
    Found(String),
    TooLarge,
    Error(String),
}

impl ClamdEngine {
    /// Checks the configuration; no connection is made until the first scan or health check.
    pub fn new(config: &ClamdConfig) -> Result<Self, SetupError> {
        let seconds = |s: f64, what: &'static str| crate::net::seconds("clamd", what, s);
        Ok(ClamdEngine {
            name: config.name.clone(),
            address: Address::parse(&config.address)?,
            pool: Pool::new(config.pool_size),
            connect_timeout: seconds(config.connect_timeout_secs, "connect_timeout_secs")?,
            timeout: seconds(config.timeout_secs, "timeout_secs")?,
            max_size: config.stream_max_length.min(CLAMD_HARD_LIMIT),
            scope: if config.scan_members {
                Scope::EveryObject
            } else {
                Scope::RootOnly
            },
            seen: std::sync::Mutex::new(Signatures::unknown()),
        })
    }

    /// Streams `data` to clamd and returns what it detected.
    pub async fn scan_bytes(&self, data: &[u8]) -> Result<Vec<Detection>, EngineError> {
        if data.len() as u64 > self.max_size {
            return Err(EngineError::Declined(format!(
                "{} bytes is over clamd's stream limit of {} bytes",
                data.len(),
                self.max_size
            )));
        }
        let _slot = self.pool.slot().await;
        let reply = tokio::time::timeout(self.timeout, self.scan_with_retry(data))
            .await
            .map_err(|_| EngineError::Timeout(self.timeout))??;
        match reply {
            Reply::Clean => Ok(Vec::new()),
            Reply::Found(name) if name.starts_with("Heuristics.Limits.Exceeded") => {
                // clamd hit one of its own limits inside the object: not examined, not a find.
                Err(EngineError::Declined(format!(
                    "clamd stopped early: {name}"
                )))
            }
            Reply::Found(name) => Ok(vec![Detection::named(name)]),
            Reply::TooLarge => Err(EngineError::Declined(
                "over clamd's StreamMaxLength (INSTREAM size limit exceeded)".to_owned(),
            )),
            Reply::Error(message) => Err(EngineError::Failed(format!("clamd: {message}"))),
        }
    }

    async fn scan_with_retry(&self, data: &[u8]) -> Result<Reply, EngineError> {
        if let Some(mut session) = self.pool.take() {
            match instream(&mut session, data).await {
                Ok(reply) => return Ok(self.keep(session, reply)),
                // clamd restarted, or closed an idle session: start afresh, once.
                Err(e) => {
                    tracing::debug!(engine = %self.name, error = %e, "pooled clamd session failed; retrying")
                }
            }
            self.pool.clear();
        }
        let mut session = self.open_session().await?;
        let reply = instream(&mut session, data)
            .await
            .map_err(|e| EngineError::Unavailable(format!("clamd at {}: {e}", self.address)))?;
        Ok(self.keep(session, reply))
    }

    /// Returns the session to the pool unless clamd closes it after this reply.
    fn keep(&self, session: Session, reply: Reply) -> Reply {
        if !matches!(reply, Reply::TooLarge | Reply::Error(_)) {
            self.pool.put(session);
        }
        reply
    }

    async fn open_session(&self) -> Result<Session, EngineError> {
        let unavailable =
            |e: std::io::Error| EngineError::Unavailable(format!("clamd at {}: {e}", self.address));
        let stream = self
            .address
            .connect(self.connect_timeout)
            .await
            .map_err(unavailable)?;
        let mut conn = BufReader::new(stream);
        conn.get_mut()
            .write_all(b"zIDSESSION\0")
            .await
            .map_err(unavailable)?;
        Ok(Session { conn, last_id: 0 })
    }

    /// Sends one plain command on a new connection (outside any session) and reads the reply.
    async fn command(&self, command: &[u8]) -> Result<String, EngineError> {
        let unavailable =
            |e: std::io::Error| EngineError::Unavailable(format!("clamd at {}: {e}", self.address));
        let exchange = async {
            let stream = self.address.connect(self.connect_timeout).await?;
            let mut conn = BufReader::new(stream);
            conn.get_mut().write_all(command).await?;
            read_frame(&mut conn).await
        };
        tokio::time::timeout(self.connect_timeout, exchange)
            .await
            .map_err(|_| EngineError::Timeout(self.connect_timeout))?
            .map_err(unavailable)
    }
}

/// One INSTREAM exchange on a session: `zINSTREAM`, 4-byte big-endian length-prefixed chunks,
/// a zero-length chunk, then one NUL-terminated reply `<id>: stream: ...`.
async fn instream(session: &mut Session, data: &[u8]) -> std::io::Result<Reply> {
    session.last_id += 1;
    let sent = async {
        let stream = session.conn.get_mut();
        stream.write_all(b"zINSTREAM\0").await?;
        for chunk in data.chunks(CHUNK) {
            stream
                .write_all(&(chunk.len() as u32).to_be_bytes())
                .await?;
            stream.write_all(chunk).await?;
        }
        stream.write_all(&0u32.to_be_bytes()).await?;
        stream.flush().await
    }
    .await;
    // Over its limit clamd answers and closes while we are still sending: read the answer
    // before giving up on a write error.
    let frame = match (sent, read_frame(&mut session.conn).await) {
        (_, Ok(frame)) => frame,
        (Err(write_err), Err(_)) => return Err(write_err),
        (Ok(()), Err(read_err)) => return Err(read_err),
    };
    let body = strip_session_id(&frame, session.last_id);
    Ok(parse_reply(body))
}

async fn read_frame(conn: &mut Connection) -> std::io::Result<String> {
    let mut frame = Vec::new();
    let n = (&mut *conn)
        .take(MAX_REPLY as u64)
        .read_until(b'\0', &mut frame)
        .await?;
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "clamd closed the connection",
        ));
    }
    if frame.last() != Some(&b'\0') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "clamd reply is not NUL-terminated",
        ));
    }
    frame.pop();
    Ok(String::from_utf8_lossy(&frame).into_owned())
}

/// In a session, replies start with the command's id: `3: stream: OK`.
fn strip_session_id(frame: &str, id: u64) -> &str {
    frame.strip_prefix(&format!("{id}: ")).unwrap_or(frame)
}

fn parse_reply(body: &str) -> Reply {
    if body.contains("INSTREAM size limit exceeded") {
        return Reply::TooLarge;
    }
    if body.ends_with(" ERROR") {
        return Reply::Error(body.to_owned());
    }
    let rest = body.strip_prefix("stream: ").unwrap_or(body);
    if rest == "OK" {
        Reply::Clean
    } else if let Some(name) = rest.strip_suffix(" FOUND") {
        Reply::Found(name.to_owned())
    } else {
        Reply::Error(format!("unexpected reply {body:?}"))
    }
}

#[async_trait]
impl Engine for ClamdEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn scope(&self) -> Scope {
        self.scope
    }

    fn max_object_size(&self) -> Option<u64> {
        Some(self.max_size)
    }

    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        self.scan_bytes(object.data).await
    }

    async fn health(&self) -> Result<String, EngineError> {
        let pong = self.command(b"zPING\0").await?;
        if pong != "PONG" {
            return Err(EngineError::Failed(format!(
                "clamd answered PING with {pong:?}"
            )));
        }
        let version = self.command(b"zVERSION\0").await?;
        if let Ok(mut seen) = self.seen.lock()
            && seen.version != version
        {
            *seen = Signatures::loaded(None, version.clone());
        }
        Ok(version)
    }

    fn signatures(&self) -> Signatures {
        self.seen
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_else(|_| Signatures::unknown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply("stream: OK"), Reply::Clean);
        assert_eq!(
            parse_reply("stream: Eicar-Signature FOUND"),
            Reply::Found("Eicar-Signature".into())
        );
        assert_eq!(
            parse_reply("INSTREAM size limit exceeded. ERROR"),
            Reply::TooLarge
        );
        assert!(matches!(
            parse_reply("stream: lstat() failed. ERROR"),
            Reply::Error(_)
        ));
        assert!(matches!(parse_reply("gibberish"), Reply::Error(_)));
        assert_eq!(strip_session_id("12: stream: OK", 12), "stream: OK");
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(
            Address::parse("127.0.0.1:3310"),
            Ok(Address::Tcp("127.0.0.1:3310".into()))
        );
        assert_eq!(Address::parse("tcp://h:1"), Ok(Address::Tcp("h:1".into())));
        assert_eq!(
            Address::parse("/run/clamd.sock"),
            Ok(Address::Unix("/run/clamd.sock".into()))
        );
        assert_eq!(
            Address::parse("unix:rel.sock"),
            Ok(Address::Unix("rel.sock".into()))
        );
        assert!(Address::parse("nohost").is_err());
    }
}
