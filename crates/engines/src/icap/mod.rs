//! `IcapEngine`: any scanner that speaks ICAP (RFC 3507), which is how commercial engines are
//! usually offered. The object travels as the body of an encapsulated HTTP response in a
//! `RESPMOD` request, with a preview (and `ieof` when it fits) and `Allow: 204`.
//!
//! How vendors report a detection differs; the headers read, in order:
//!
//! | header | used by | value |
//! |---|---|---|
//! | `X-Infection-Found` | c-icap, Sophos, ESET, Kaspersky | `Type=0; Resolution=2; Threat=<name>;` |
//! | `X-Violations-Found` | c-icap, McAfee, Symantec | count, then 4 lines per violation (file, name, id, disposition) |
//! | `X-Virus-ID` | Symantec, Trend Micro, Kaspersky | the name |
//! | `X-Virus-Name` | some appliances | the name |
//! | `X-Blocked-Reason`, `X-Response-Info` | McAfee | a reason text |
//!
//! The list is configurable (`infection_headers`). A `200` that encapsulates an HTTP `403` block
//! page without any of them still counts as infected, under a generic name.

use std::time::Duration;

use async_trait::async_trait;
use scan_core::{Detection, Engine, EngineError, ScanObject, Scope, Signatures};
use serde::Deserialize;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::OnceCell;

use crate::net::{Address, Connection, Pool, SetupError};

mod protocol;

use protocol::{Response, read_response, threat_names, write_chunk};

/// How to reach and use an ICAP service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IcapConfig {
    /// Name in reports; `icap` by default.
    pub name: String,
    /// `icap://host[:port]/service` (port 1344 when omitted).
    pub url: String,
    /// Connections kept and used at once (lowered to the server's `Max-Connections`).
    pub pool_size: usize,
    /// Connecting, in seconds.
    pub connect_timeout_secs: f64,
    /// One object, sent and answered, in seconds.
    pub timeout_secs: f64,
    /// Largest object sent; larger ones are reported as not examined by this engine.
    pub max_object_size: Option<u64>,
    /// Preview size to use instead of the server's `Preview` (0 disables preview).
    pub preview: Option<usize>,
    /// Send expanded archive members too, not only the root (ICAP scanners unpack themselves).
    pub scan_members: bool,
    /// Response headers that carry a detection name.
    pub infection_headers: Vec<String>,
}

impl Default for IcapConfig {
    fn default() -> Self {
        IcapConfig {
            name: "icap".to_owned(),
            url: "icap://127.0.0.1:1344/avscan".to_owned(),
            pool_size: 4,
            connect_timeout_secs: 5.0,
            timeout_secs: 120.0,
            max_object_size: None,
            preview: None,
            scan_members: false,
            infection_headers: [
                "X-Infection-Found",
                "X-Violations-Found",
                "X-Virus-ID",
                "X-Virus-Name",
                "X-Blocked-Reason",
                "X-Response-Info",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// What `OPTIONS` told us about the service.
#[derive(Debug, Clone, Default)]
struct ServiceOptions {
    preview: Option<usize>,
    allow_204: bool,
    istag: Option<String>,
    max_connections: Option<usize>,
}

/// A scanner behind ICAP.
#[derive(Debug)]
pub struct IcapEngine {
    name: String,
    address: Address,
    host: String,
    uri: String,
    pool: Pool<Connection>,
    connect_timeout: Duration,
    timeout: Duration,
    max_object_size: Option<u64>,
    preview_override: Option<usize>,
    scope: Scope,
    infection_headers: Vec<String>,
    options: OnceCell<ServiceOptions>,
    /// The service tag (ISTag) as the last OPTIONS gave it: it changes when the service's
    /// signatures do (RFC 3507, 4.7).
    seen: std::sync::Mutex<Signatures>,
}

impl IcapEngine {
    /// Checks the configuration; no connection is made until the first scan or health check.
    pub fn new(config: &IcapConfig) -> Result<Self, SetupError> {
        let rest = config
            .url
            .strip_prefix("icap://")
            .ok_or_else(|| SetupError::IcapUrl(config.url.clone()))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let hostport = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:1344")
        };
        let seconds = |s: f64, what: &'static str| crate::net::seconds("ICAP", what, s);
        Ok(IcapEngine {
            name: config.name.clone(),
            address: Address::parse(&hostport)?,
            host: authority.to_owned(),
            uri: format!("icap://{authority}/{path}"),
            pool: Pool::new(config.pool_size),
            connect_timeout: seconds(config.connect_timeout_secs, "connect_timeout_secs")?,
            timeout: seconds(config.timeout_secs, "timeout_secs")?,
            max_object_size: config.max_object_size,
            preview_override: config.preview,
            scope: if config.scan_members {
                Scope::EveryObject
            } else {
                Scope::RootOnly
            },
            infection_headers: config.infection_headers.clone(),
            options: OnceCell::new(),
            seen: std::sync::Mutex::new(Signatures::unknown()),
        })
    }

    /// Sends `data` for scanning under the name `name` and returns the detections.
    pub async fn scan_bytes(&self, name: &str, data: &[u8]) -> Result<Vec<Detection>, EngineError> {
        let options = self
            .options
            .get_or_try_init(|| self.fetch_options())
            .await?
            .clone();
        let _slot = self.pool.slot().await;
        let response =
            tokio::time::timeout(self.timeout, self.respmod_with_retry(name, data, &options))
                .await
                .map_err(|_| EngineError::Timeout(self.timeout))??;
        self.judge(&response)
    }

    async fn respmod_with_retry(
        &self,
        name: &str,
        data: &[u8],
        options: &ServiceOptions,
    ) -> Result<Response, EngineError> {
        if let Some(mut conn) = self.pool.take() {
            match self.respmod(&mut conn, name, data, options).await {
                Ok(response) => return Ok(self.keep(conn, response)),
                Err(e) => {
                    tracing::debug!(engine = %self.name, error = %e, "pooled ICAP connection failed; retrying")
                }
            }
            self.pool.clear();
        }
        let mut conn = self.connect().await?;
        let response = self
            .respmod(&mut conn, name, data, options)
            .await
            .map_err(|e| EngineError::Unavailable(format!("ICAP server {}: {e}", self.address)))?;
        Ok(self.keep(conn, response))
    }

    fn keep(&self, conn: Connection, response: Response) -> Response {
        if !response.close {
            self.pool.put(conn);
        }
        response
    }

    async fn connect(&self) -> Result<Connection, EngineError> {
        let stream = self
            .address
            .connect(self.connect_timeout)
            .await
            .map_err(|e| EngineError::Unavailable(format!("ICAP server {}: {e}", self.address)))?;
        Ok(BufReader::new(stream))
    }

    async fn fetch_options(&self) -> Result<ServiceOptions, EngineError> {
        let mut conn = self.connect().await?;
        let request = format!(
            "OPTIONS {} ICAP/1.0\r\nHost: {}\r\nEncapsulated: null-body=0\r\n\r\n",
            self.uri, self.host
        );
        let exchange = async {
            conn.get_mut().write_all(request.as_bytes()).await?;
            read_response(&mut conn).await
        };
        let response = tokio::time::timeout(self.connect_timeout, exchange)
            .await
            .map_err(|_| EngineError::Timeout(self.connect_timeout))?
            .map_err(|e| EngineError::Unavailable(format!("ICAP server {}: {e}", self.address)))?;
        if response.status != 200 {
            return Err(EngineError::Failed(format!(
                "ICAP OPTIONS for {} answered {} {}",
                self.uri, response.status, response.reason
            )));
        }
        let options = ServiceOptions {
            preview: response
                .header("Preview")
                .and_then(|v| v.trim().parse().ok()),
            allow_204: response
                .header("Allow")
                .is_some_and(|v| v.split(',').any(|a| a.trim() == "204")),
            istag: response
                .header("ISTag")
                .map(|v| v.trim_matches('"').to_owned()),
            max_connections: response
                .header("Max-Connections")
                .and_then(|v| v.trim().parse().ok()),
        };
        if let Some(max) = options.max_connections {
            // Respect the server's limit by holding back the permits above it.
            let pool_size = self.pool.size();
            if max < pool_size {
                self.pool.reduce_to(max);
            }
        }
        if !response.close {
            self.pool.put(conn);
        }
        tracing::info!(engine = %self.name, istag = ?options.istag, preview = ?options.preview, "ICAP service ready");
        Ok(options)
    }

    /// One RESPMOD exchange: preview first, the rest after `100 Continue`.
    async fn respmod(
        &self,
        conn: &mut Connection,
        name: &str,
        data: &[u8],
        options: &ServiceOptions,
    ) -> std::io::Result<Response> {
        let preview = self
            .preview_override
            .or(options.preview)
            .map(|p| p.min(data.len()));
        let safe_name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '%' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let req_hdr = format!("GET /{safe_name} HTTP/1.1\r\nHost: verdict.scan\r\n\r\n");
        let res_hdr = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            data.len()
        );
        let mut head = format!("RESPMOD {} ICAP/1.0\r\nHost: {}\r\n", self.uri, self.host);
        if options.allow_204 {
            head.push_str("Allow: 204\r\n");
        }
        if let Some(p) = preview {
            head.push_str(&format!("Preview: {p}\r\n"));
        }
        head.push_str(&format!(
            "Encapsulated: req-hdr=0, res-hdr={}, res-body={}\r\n\r\n{req_hdr}{res_hdr}",
            req_hdr.len(),
            req_hdr.len() + res_hdr.len()
        ));
        let stream = conn.get_mut();
        stream.write_all(head.as_bytes()).await?;
        let rest = match preview {
            Some(p) => {
                write_chunk(stream, &data[..p]).await?;
                if p == data.len() {
                    stream.write_all(b"0; ieof\r\n\r\n").await?;
                    stream.flush().await?;
                    return read_response(conn).await;
                }
                stream.write_all(b"0\r\n\r\n").await?;
                stream.flush().await?;
                let interim = read_response(conn).await?;
                if interim.status != 100 {
                    // The server decided from the preview alone.
                    return Ok(interim);
                }
                &data[p..]
            }
            None => data,
        };
        let stream = conn.get_mut();
        for chunk in rest.chunks(256 * 1024) {
            write_chunk(stream, chunk).await?;
        }
        stream.write_all(b"0\r\n\r\n").await?;
        stream.flush().await?;
        read_response(conn).await
    }

    /// Turns a final response into detections or an error.
    fn judge(&self, response: &Response) -> Result<Vec<Detection>, EngineError> {
        match response.status {
            204 => Ok(Vec::new()),
            200 => {
                let mut names: Vec<String> = Vec::new();
                for header in &self.infection_headers {
                    if let Some(value) = response.header(header) {
                        for name in threat_names(header, value) {
                            if !names.contains(&name) {
                                names.push(name);
                            }
                        }
                    }
                }
                if names.is_empty() && response.http_status == Some(403) {
                    names.push(format!("{}.Blocked.Unnamed", self.name));
                }
                Ok(names.into_iter().map(Detection::named).collect())
            }
            status => Err(EngineError::Failed(format!(
                "ICAP server answered {status} {}",
                response.reason
            ))),
        }
    }
}

#[async_trait]
impl Engine for IcapEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn scope(&self) -> Scope {
        self.scope
    }

    fn max_object_size(&self) -> Option<u64> {
        self.max_object_size
    }

    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        let name = object.path.rsplit('/').next().unwrap_or(object.path);
        self.scan_bytes(name, object.data).await
    }

    async fn health(&self) -> Result<String, EngineError> {
        let options = self.fetch_options().await?;
        if let Some(istag) = &options.istag
            && let Ok(mut seen) = self.seen.lock()
            && seen.version != *istag
        {
            *seen = Signatures::loaded(None, istag.clone());
        }
        Ok(format!(
            "ICAP {} ISTag {}",
            self.uri,
            options.istag.unwrap_or_default()
        ))
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
    fn vendor_headers_yield_names() {
        assert_eq!(
            threat_names(
                "X-Infection-Found",
                "Type=0; Resolution=2; Threat=EICAR-Test;"
            ),
            ["EICAR-Test"]
        );
        assert_eq!(
            threat_names(
                "X-Violations-Found",
                "2\n-\nOne.Name\n0\n0\nf.zip\nTwo.Name\n1\n0"
            ),
            ["One.Name", "Two.Name"]
        );
        assert_eq!(threat_names("X-Virus-ID", " Trojan.X "), ["Trojan.X"]);
        assert!(threat_names("X-Virus-ID", "").is_empty());
    }
}
