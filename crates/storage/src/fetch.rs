//! Guarded HTTP(S) downloads for URL scans. A scanning service that fetches URLs for its callers
//! is a server-side request forgery target, so by default only public addresses are reached:
//! loopback, private, link-local (the cloud metadata address 169.254.169.254 above all), shared,
//! multicast and other special ranges are refused. The check runs on the *resolved* addresses
//! (through the client's resolver, so the address checked is the address connected to), on IP
//! literals, and again on every redirect. An allow-list opens specific ranges (tests use it for
//! loopback). Proxy environment variables are ignored, since a proxy would resolve the names
//! itself. Size and time are bounded.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use ipnet::IpNet;
use tokio::io::AsyncRead;

use crate::ByteReader;

/// What the fetcher may reach and how much it may take.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Ranges allowed even though they are not public (e.g. `127.0.0.0/8` for tests).
    pub allow: Vec<IpNet>,
    /// Largest body accepted.
    pub max_bytes: Option<u64>,
    /// Whole request, connect to last byte.
    pub timeout: Duration,
    /// Connecting.
    pub connect_timeout: Duration,
    /// Redirects followed.
    pub max_redirects: usize,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow: Vec::new(),
            max_bytes: Some(4 << 30),
            timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            max_redirects: 5,
        }
    }
}

/// Download settings as they appear in a service's configuration file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    /// Non-public ranges allowed anyway, e.g. `["10.0.0.0/8"]`.
    pub allow: Vec<IpNet>,
    /// Largest download, bytes.
    pub max_bytes: u64,
    /// Whole download, seconds.
    pub timeout_secs: u64,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            allow: Vec::new(),
            max_bytes: 4 << 30,
            timeout_secs: 300,
        }
    }
}

impl FetchConfig {
    /// The policy these settings describe.
    pub fn policy(&self) -> FetchPolicy {
        FetchPolicy {
            allow: self.allow.clone(),
            max_bytes: Some(self.max_bytes),
            timeout: Duration::from_secs(self.timeout_secs),
            ..FetchPolicy::default()
        }
    }
}

/// A download could not be made or was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Not an http(s) URL.
    #[error("{0}")]
    InvalidUrl(String),
    /// The destination is not allowed (non-public address, not allow-listed).
    #[error("refused to fetch {url}: {reason}")]
    Refused {
        /// The URL (or redirect target).
        url: String,
        /// Why.
        reason: Refusal,
    },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body is larger than allowed.
    #[error("the download is larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// Anything else on the way: DNS, connection, TLS, timeout.
    #[error("fetching {url} failed: {message}")]
    Network {
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
}

impl FetchError {
    /// What a server may tell its caller: the error itself, except that a refusal does not say
    /// what the name resolved to or which rule matched (that would map the server's network
    /// for the caller); log the error itself for the operator.
    pub fn public_message(&self) -> String {
        match self {
            FetchError::Refused { url, .. } => format!(
                "refused to fetch {url}: its destination is not allowed (not a public address, or outside the ranges this server may reach)"
            ),
            other => other.to_string(),
        }
    }
}

/// Downloads URLs under a [`FetchPolicy`].
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<FetchPolicy>,
}

/// A response body, with its length when the server said it.
pub struct Download {
    /// `Content-Length`, when given.
    pub length: Option<u64>,
    /// The body, capped at the policy's size.
    pub body: ByteReader,
}

impl Fetcher {
    /// A fetcher that enforces `policy`.
    pub fn new(policy: FetchPolicy) -> Result<Self, FetchError> {
        let policy = Arc::new(policy);
        let redirect_policy = {
            let policy = Arc::clone(&policy);
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > policy.max_redirects {
                    return attempt.error(format!("more than {} redirects", policy.max_redirects));
                }
                let target = attempt.url().clone();
                match check_url(&target, &policy) {
                    Ok(()) => attempt.follow(),
                    Err(reason) => attempt.error(format!("redirect to {target} refused: {reason}")),
                }
            })
        };
        let client = reqwest::Client::builder()
            // A proxy resolves names itself, out of the guard's sight: proxy variables
            // (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) would carry any fetch past it.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: Arc::clone(&policy),
            }))
            .redirect(redirect_policy)
            .timeout(policy.timeout)
            .connect_timeout(policy.connect_timeout)
            .build()
            .map_err(|e| FetchError::Network {
                url: String::new(),
                message: e.to_string(),
            })?;
        Ok(Fetcher { client, policy })
    }

    /// Parses `url` and checks its scheme and (for IP literals) its address against the policy;
    /// host names are checked again when they resolve.
    fn allowed(&self, url: &str) -> Result<url::Url, FetchError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| FetchError::InvalidUrl(format!("{url:?} is not a URL: {e}")))?;
        check_url(&parsed, &self.policy).map_err(|reason| FetchError::Refused {
            url: url.to_owned(),
            reason,
        })?;
        Ok(parsed)
    }

    /// GETs `url` with `headers`; the body streams, capped at the policy's size.
    pub async fn get(
        &self,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<Download, FetchError> {
        let parsed = self.allowed(url)?;
        check_headers(url, headers)?;
        let mut request = self.client.get(parsed);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.map_err(|e| describe(url, &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        let length = response.content_length();
        if let (Some(length), Some(max)) = (length, self.policy.max_bytes)
            && length > max
        {
            return Err(FetchError::TooLarge(max));
        }
        let url_owned = url.to_owned();
        let stream = response
            .bytes_stream()
            .map_err(move |e| std::io::Error::other(describe(&url_owned, &e)));
        let reader = tokio_util::io::StreamReader::new(stream);
        let body: ByteReader = match self.policy.max_bytes {
            Some(max) => Box::pin(Capped {
                inner: Box::pin(reader),
                left: max,
                max,
            }),
            None => Box::pin(reader),
        };
        Ok(Download { length, body })
    }
}

impl Fetcher {
    /// POSTs `body` to `url` with `headers` (a webhook, say) under the same address checks as
    /// downloads, within `timeout`, and returns the status. Up to 64 KiB of the answer is read
    /// and dropped so the connection can be reused; the rest is not waited for.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: bytes::Bytes,
        timeout: Duration,
    ) -> Result<u16, FetchError> {
        let parsed = self.allowed(url)?;
        check_headers(url, headers)?;
        let mut request = self.client.post(parsed).timeout(timeout);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut response = request
            .body(body)
            .send()
            .await
            .map_err(|e| describe(url, &e))?;
        let status = response.status().as_u16();
        let mut drained = 0;
        while drained < 64 * 1024 {
            match response.chunk().await {
                Ok(Some(chunk)) => drained += chunk.len(),
                _ => break,
            }
        }
        Ok(status)
    }
}

fn describe(url: &str, err: &reqwest::Error) -> FetchError {
    // Refusals from our resolver or redirect policy travel inside reqwest's error chain.
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        let text = e.to_string();
        if text.contains("refused:") || text.contains("redirect to") {
            return FetchError::Refused {
                url: url.to_owned(),
                reason: Refusal::OnTheWay(text),
            };
        }
        source = e.source();
    }
    let message = if err.is_timeout() {
        "timed out".to_owned()
    } else {
        chain(err)
    };
    FetchError::Network {
        url: url.to_owned(),
        message,
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Headers a caller may not set on a fetch or a callback: the target (`Host`), the framing
/// (`Content-Length`, `Transfer-Encoding`, `TE`, `Trailer`, `Expect`) and the hop-by-hop ones
/// (`Connection`, `Keep-Alive`, `Upgrade`, `Proxy-*`). The client sets what it needs of them;
/// a caller's copy would misroute the request or break its framing.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "expect",
    "connection",
    "keep-alive",
    "upgrade",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Why a caller may not set the header `name`, if it may not (framing, hop-by-hop and `Host`).
pub fn reserved_header(name: &str) -> Option<String> {
    RESERVED_HEADERS
        .iter()
        .any(|reserved| name.eq_ignore_ascii_case(reserved))
        .then(|| format!("{name} is set by the client itself (routing, framing or a hop-by-hop header) and may not be given"))
}

/// Refuses a request whose caller headers include a reserved one.
fn check_headers(url: &str, headers: &[(String, String)]) -> Result<(), FetchError> {
    match headers.iter().find_map(|(name, _)| reserved_header(name)) {
        Some(reason) => Err(FetchError::Refused {
            url: url.to_owned(),
            reason: Refusal::ReservedHeader(reason),
        }),
        None => Ok(()),
    }
}

/// The last path segment of `url` (`report.pdf` of `https://host/a/report.pdf?x=1`), to name
/// a download by; `download` when there is none.
pub fn file_name(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.next_back().map(str::to_owned))
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "download".to_owned())
}

/// Why a fetch is refused before any request leaves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Not http or https.
    #[error("only http and https URLs are fetched, not {0}")]
    Scheme(String),
    /// No host to go to.
    #[error("the URL has no host")]
    NoHost,
    /// The address is in a range that is not globally reachable (and not allow-listed).
    #[error("{ip} is a {range} address")]
    NotPublic {
        /// The address.
        ip: IpAddr,
        /// The special-purpose range it is in.
        range: String,
    },
    /// A caller header the client sets itself.
    #[error("{0}")]
    ReservedHeader(String),
    /// Refused on the way: a redirect or a name that resolved to a refused address.
    #[error("{0}")]
    OnTheWay(String),
}

/// Checks scheme and, for IP literals, the address (host names are checked when resolved).
fn check_url(url: &url::Url, policy: &FetchPolicy) -> Result<(), Refusal> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Scheme(url.scheme().to_owned()));
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip), policy),
        Some(url::Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip), policy),
        Some(url::Host::Domain(_)) => Ok(()),
        None => Err(Refusal::NoHost),
    }
}

/// Whether an address may be reached: public, or inside an allow-listed range.
pub fn check_ip(ip: IpAddr, policy: &FetchPolicy) -> Result<(), Refusal> {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    if policy.allow.iter().any(|net| net.contains(&ip)) {
        return Ok(());
    }
    match non_public_range(ip) {
        Some(range) => Err(Refusal::NotPublic { ip, range }),
        None => Ok(()),
    }
}

/// What a special-purpose range means for fetching: refused outright, or an IPv6 form that
/// carries an IPv4 address (at this bit offset), which is checked in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    Refused,
    EmbedsIpv4 { at_bit: u8 },
}

/// Every range of the IANA IPv4 and IPv6 special-purpose address registries that is not
/// globally reachable, plus multicast and the deprecated site-local and 6to4-relay ranges; and
/// the IPv6 forms that embed an IPv4 address, whose embedded address is checked instead (so
/// `2002:7f00:1::` is refused as 127.0.0.1). IPv4-mapped addresses (`::ffff:a.b.c.d`) are
/// checked as IPv4 before this table. The few globally reachable anycast entries inside these
/// blocks (192.0.0.9, 2001:1::1...) are refused with them: nothing serves files there.
const SPECIAL_RANGES: &[(&str, Special, &str)] = &[
    ("0.0.0.0/8", Special::Refused, "\"this network\""),
    ("10.0.0.0/8", Special::Refused, "private"),
    (
        "100.64.0.0/10",
        Special::Refused,
        "shared (carrier-grade NAT)",
    ),
    ("127.0.0.0/8", Special::Refused, "loopback"),
    (
        "169.254.0.0/16",
        Special::Refused,
        "link-local (cloud metadata)",
    ),
    ("172.16.0.0/12", Special::Refused, "private"),
    ("192.0.0.0/24", Special::Refused, "IETF protocol assignment"),
    ("192.0.2.0/24", Special::Refused, "documentation"),
    (
        "192.88.99.0/24",
        Special::Refused,
        "deprecated 6to4 relay anycast",
    ),
    ("192.168.0.0/16", Special::Refused, "private"),
    ("198.18.0.0/15", Special::Refused, "benchmarking"),
    ("198.51.100.0/24", Special::Refused, "documentation"),
    ("203.0.113.0/24", Special::Refused, "documentation"),
    ("224.0.0.0/4", Special::Refused, "multicast"),
    ("240.0.0.0/4", Special::Refused, "reserved"),
    (
        "::/96",
        Special::Refused,
        "IPv4-compatible, unspecified or loopback",
    ),
    (
        "::ffff:0:0:0/96",
        Special::Refused,
        "IPv4-translated (SIIT)",
    ),
    ("64:ff9b::/96", Special::EmbedsIpv4 { at_bit: 96 }, "NAT64"),
    ("64:ff9b:1::/48", Special::Refused, "local-use NAT64"),
    ("100::/64", Special::Refused, "discard-only"),
    ("100:0:0:1::/64", Special::Refused, "dummy prefix"),
    (
        "2001::/23",
        Special::Refused,
        "IETF protocol assignment (Teredo among them)",
    ),
    ("2001:db8::/32", Special::Refused, "documentation"),
    ("2002::/16", Special::EmbedsIpv4 { at_bit: 16 }, "6to4"),
    ("3fff::/20", Special::Refused, "documentation"),
    ("5f00::/16", Special::Refused, "segment routing (SRv6 SID)"),
    ("fc00::/7", Special::Refused, "unique local (private)"),
    ("fe80::/10", Special::Refused, "link-local"),
    ("fec0::/10", Special::Refused, "site-local"),
    ("ff00::/8", Special::Refused, "multicast"),
];

/// Why `ip` is not a public address, if it is not.
fn non_public_range(ip: IpAddr) -> Option<String> {
    let (net, special, name) = SPECIAL_RANGES
        .iter()
        .find(|(net, _, _)| net.parse::<IpNet>().is_ok_and(|net| net.contains(&ip)))?;
    match (special, ip) {
        (Special::Refused, _) => Some((*name).to_owned()),
        (Special::EmbedsIpv4 { at_bit }, IpAddr::V6(v6)) => {
            let embedded = Ipv4Addr::from((u128::from(v6) >> (96 - u32::from(*at_bit))) as u32);
            non_public_range(IpAddr::V4(embedded))
                .map(|range| format!("{name} ({net}) form of {embedded}, a {range}"))
        }
        (Special::EmbedsIpv4 { .. }, IpAddr::V4(_)) => None,
    }
}

/// Resolves names and keeps only addresses the policy allows, so the connection can only go
/// to a checked address (no window between check and connect for DNS rebinding).
struct GuardedResolver {
    policy: Arc<FetchPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = Vec::new();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|addr| match check_ip(addr.ip(), &policy) {
                    Ok(()) => true,
                    Err(reason) => {
                        refused.push(reason);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let reason = refused
                    .first()
                    .map_or_else(|| "no address".to_owned(), ToString::to_string);
                return Err(format!("refused: {host} resolves to {reason}").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Stops a body at the policy's size.
struct Capped {
    inner: ByteReader,
    left: u64,
    max: u64,
}

impl AsyncRead for Capped {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = self.inner.as_mut().poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &poll {
            let n = (buf.filled().len() - before) as u64;
            if n > self.left {
                let max = self.max;
                return std::task::Poll::Ready(Err(std::io::Error::other(FetchError::TooLarge(
                    max,
                ))));
            }
            self.left -= n;
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_ranges_are_refused_unless_allowed() {
        let policy = FetchPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "192.168.1.1",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(check_ip(ip.parse().unwrap(), &policy).is_err(), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "1.1.1.1"] {
            assert!(check_ip(ip.parse().unwrap(), &policy).is_ok(), "{ip}");
        }
        let open = FetchPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            ..FetchPolicy::default()
        };
        assert!(check_ip("127.0.0.1".parse().unwrap(), &open).is_ok());
        assert!(check_ip("169.254.169.254".parse().unwrap(), &open).is_err());
    }

    #[test]
    fn every_special_range_is_refused_row_by_row() {
        let policy = FetchPolicy::default();
        for (net, special, name) in SPECIAL_RANGES {
            let net: IpNet = net.parse().unwrap();
            match special {
                Special::Refused => {
                    for ip in [net.network(), net.broadcast()] {
                        let err = check_ip(ip, &policy).expect_err(&format!("{ip} in {net}"));
                        assert!(err.to_string().contains(name), "{ip}: {err}");
                    }
                }
                Special::EmbedsIpv4 { at_bit } => {
                    let IpAddr::V6(prefix) = net.network() else {
                        panic!("{net} embeds IPv4 but is not IPv6");
                    };
                    let with = |v4: Ipv4Addr| {
                        let shift = 96 - u32::from(*at_bit);
                        IpAddr::V6(
                            (u128::from(prefix) | (u128::from(u32::from(v4)) << shift)).into(),
                        )
                    };
                    for inner in ["127.0.0.1", "10.0.0.1", "169.254.169.254"] {
                        let ip = with(inner.parse().unwrap());
                        let err = check_ip(ip, &policy).expect_err(&format!("{ip}"));
                        assert!(err.to_string().contains(inner), "{ip}: {err}");
                    }
                    let public = with("93.184.216.34".parse().unwrap());
                    assert!(check_ip(public, &policy).is_ok(), "{public}");
                }
            }
        }
        // The forms an outside attack used, literally.
        for ip in [
            "fec0::1",
            "2002:7f00:1::",
            "64:ff9b:1::7f00:1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::127.0.0.1",
            "::ffff:0:7f00:1",
            "192.88.99.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(check_ip(ip.parse().unwrap(), &policy).is_err(), "{ip}");
        }
    }

    #[test]
    fn routing_framing_and_hop_by_hop_headers_are_reserved() {
        for name in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "Connection",
            "TE",
            "Upgrade",
            "Proxy-Authorization",
            "Expect",
            "Keep-Alive",
            "Trailer",
        ] {
            let reason = reserved_header(name).expect(name);
            assert!(reason.starts_with(name), "{reason}");
        }
        for name in [
            "Authorization",
            "X-Api-Key",
            "Cookie",
            "User-Agent",
            "Accept",
        ] {
            assert_eq!(reserved_header(name), None, "{name}");
        }
    }

    #[tokio::test]
    async fn a_fetch_with_a_reserved_header_is_refused_before_it_is_sent() {
        let fetcher = Fetcher::new(FetchPolicy::default()).unwrap();
        let headers = [("Host".to_owned(), "internal.example".to_owned())];
        // The address is public, so only the header can be the reason; nothing is sent.
        let Err(err) = fetcher.get("http://93.184.216.34/x", &headers).await else {
            panic!("fetched with a Host header");
        };
        assert!(matches!(err, FetchError::Refused { .. }), "{err}");
        assert!(err.to_string().contains("Host"), "{err}");
    }

    #[test]
    fn only_http_and_https_urls() {
        let policy = FetchPolicy::default();
        for url in ["file:///etc/passwd", "ftp://example.com/x", "gopher://x"] {
            assert!(
                check_url(&url::Url::parse(url).unwrap(), &policy).is_err(),
                "{url}"
            );
        }
        assert!(
            check_url(
                &url::Url::parse("http://169.254.169.254/latest").unwrap(),
                &policy
            )
            .is_err()
        );
        assert!(check_url(&url::Url::parse("https://example.com/x").unwrap(), &policy).is_ok());
    }
}
