//! The ICAP wire (RFC 3507) as the engine needs it: reading a response's head and headers within
//! a size bound, the encapsulated HTTP status, chunked bodies, and the vendors' detection
//! headers turned into threat names.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::net::Connection;

pub(super) const MAX_HEADER_BYTES: u64 = 64 * 1024;

/// An ICAP response: status, headers, and the encapsulated HTTP status if there was one.
#[derive(Debug, Default)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) reason: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) http_status: Option<u16>,
    pub(super) close: bool,
}

impl Response {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub(super) async fn write_chunk(
    stream: &mut crate::net::Stream,
    data: &[u8],
) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    stream
        .write_all(format!("{:x}\r\n", data.len()).as_bytes())
        .await?;
    stream.write_all(data).await?;
    stream.write_all(b"\r\n").await
}

/// Extracts detection names from one header's value, per the vendor conventions above.
pub(super) fn threat_names(header: &str, value: &str) -> Vec<String> {
    let value = value.trim();
    if header.eq_ignore_ascii_case("X-Infection-Found") {
        return value
            .split(';')
            .filter_map(|part| part.trim().strip_prefix("Threat="))
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect();
    }
    if header.eq_ignore_ascii_case("X-Violations-Found") {
        // "<count>" then, per violation: filename, threat name, id, disposition.
        let lines: Vec<&str> = value.lines().map(str::trim).collect();
        return lines
            .iter()
            .skip(1)
            .collect::<Vec<_>>()
            .chunks(4)
            .filter_map(|group| group.get(1).map(|name| name.to_string()))
            .filter(|name| !name.is_empty() && name != "-")
            .collect();
    }
    if value.is_empty() {
        Vec::new()
    } else {
        vec![value.to_owned()]
    }
}

/// Reads one ICAP response: status line, headers (with continuation lines), then whatever
/// it encapsulates, drained so the connection can be reused.
pub(super) async fn read_response(conn: &mut Connection) -> std::io::Result<Response> {
    let head = read_head(conn).await?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code, reason) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
    let status = match (version, code.and_then(|c| c.parse::<u16>().ok())) {
        (Some(v), Some(code)) if v.starts_with("ICAP/") => code,
        _ => return Err(invalid(format!("not an ICAP status line: {status_line:?}"))),
    };
    let mut response = Response {
        status,
        reason: reason.to_owned(),
        ..Response::default()
    };
    for line in lines.filter(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = response.headers.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            response
                .headers
                .push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    response.close = response
        .header("Connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    if status == 100 {
        return Ok(response);
    }
    let encapsulated = response
        .header("Encapsulated")
        .unwrap_or("null-body=0")
        .to_owned();
    let mut offsets: Vec<(&str, usize)> = Vec::new();
    for part in encapsulated.split(',') {
        if let Some((name, at)) = part.trim().split_once('=') {
            let at = at
                .trim()
                .parse()
                .map_err(|_| invalid(format!("bad Encapsulated: {encapsulated}")))?;
            offsets.push((name.trim(), at));
        }
    }
    // Everything before the body (or null-body) is encapsulated header bytes.
    let (body_kind, body_at) = offsets
        .iter()
        .copied()
        .find(|(name, _)| name.ends_with("-body"))
        .unwrap_or(("null-body", 0));
    if body_at > MAX_HEADER_BYTES as usize {
        return Err(invalid("encapsulated headers too large".to_owned()));
    }
    let mut headers = vec![0u8; body_at];
    conn.read_exact(&mut headers).await?;
    if let Some(res_at) = offsets
        .iter()
        .find(|(name, _)| *name == "res-hdr")
        .map(|(_, at)| *at)
    {
        let http = String::from_utf8_lossy(headers.get(res_at..).unwrap_or_default()).into_owned();
        response.http_status = http.split(' ').nth(1).and_then(|code| code.parse().ok());
    }
    if body_kind != "null-body" {
        drain_chunked(conn).await?;
    }
    Ok(response)
}

pub(super) async fn read_head(conn: &mut Connection) -> std::io::Result<String> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = (&mut *conn)
            .take(MAX_HEADER_BYTES)
            .read_until(b'\n', &mut head)
            .await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "ICAP server closed the connection",
            ));
        }
        if head.len() as u64 > MAX_HEADER_BYTES {
            return Err(invalid("ICAP response headers too large".to_owned()));
        }
        if &head[before..] == b"\r\n" || &head[before..] == b"\n" {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Reads and discards a chunked body (a block page, or the object echoed back).
pub(super) async fn drain_chunked(conn: &mut Connection) -> std::io::Result<()> {
    loop {
        let mut line = Vec::new();
        (&mut *conn).take(1024).read_until(b'\n', &mut line).await?;
        let text = String::from_utf8_lossy(&line);
        let size_text = text
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        if size_text.is_empty() && line.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "ICAP body cut short",
            ));
        }
        let size = u64::from_str_radix(&size_text, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailer: lines up to an empty one.
            loop {
                let mut trailer = Vec::new();
                (&mut *conn)
                    .take(1024)
                    .read_until(b'\n', &mut trailer)
                    .await?;
                if trailer.is_empty() || trailer == b"\r\n" || trailer == b"\n" {
                    return Ok(());
                }
            }
        }
        tokio::io::copy(&mut (&mut *conn).take(size + 2), &mut tokio::io::sink()).await?;
    }
}

pub(super) fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}
