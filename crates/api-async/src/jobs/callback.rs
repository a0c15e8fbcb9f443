//! Callback delivery: POST the result to the caller's URL, signed, retried with exponential
//! backoff for a bounded time on connection errors, timeouts, 408, 429 and 5xx.
//!
//! Delivery is at least once: a worker that dies after the receiver accepted a callback but
//! before the job was marked done delivers it again from another worker. Every callback carries
//! `X-Verdict-Job-Id`, the same on every delivery of one job, so receivers can drop repeats.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use storage::fetch::{FetchError, Fetcher};

use crate::security::sign_callback;

/// How callbacks are sent.
#[derive(Debug, Clone)]
pub struct CallbackPolicy {
    /// The HMAC key, for jobs whose key has none of its own.
    pub secret: Vec<u8>,
    /// One attempt.
    pub timeout: Duration,
    /// No retry starts later than this after the first attempt.
    pub retry_for: Duration,
    /// First wait; doubled after each failure.
    pub first_backoff: Duration,
    /// Longest wait.
    pub max_backoff: Duration,
}

/// Headers we set ourselves; the caller's values for them are dropped.
const OURS: [&str; 5] = [
    "content-type",
    "content-length",
    "x-verdict-signature",
    "x-verdict-timestamp",
    "x-verdict-job-id",
];

/// Delivers `body` to `url`, signed with `secret`; `Ok(attempts)` once the receiver answered
/// 2xx, or why it gave up.
pub(crate) async fn deliver(
    fetcher: &Fetcher,
    policy: &CallbackPolicy,
    secret: &[u8],
    url: &str,
    caller_headers: &BTreeMap<String, String>,
    job_id: &str,
    body: bytes::Bytes,
) -> Result<u32, String> {
    let started = Instant::now();
    let mut backoff = policy.first_backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut headers: Vec<(String, String)> = caller_headers
            .iter()
            .filter(|(name, _)| !OURS.contains(&name.to_ascii_lowercase().as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        headers.extend([
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("X-Verdict-Timestamp".to_owned(), timestamp.to_string()),
            (
                "X-Verdict-Signature".to_owned(),
                sign_callback(secret, timestamp, &body),
            ),
            ("X-Verdict-Job-Id".to_owned(), job_id.to_owned()),
        ]);
        let failure = match fetcher
            .post(url, &headers, body.clone(), policy.timeout)
            .await
        {
            Ok(status) if (200..300).contains(&status) => return Ok(attempt),
            Ok(status) if status >= 500 || matches!(status, 408 | 429) => {
                format!("the receiver answered HTTP {status}")
            }
            Ok(status) => {
                return Err(format!("the receiver answered HTTP {status}; not retried"));
            }
            Err(e @ FetchError::Network { .. }) => e.to_string(),
            Err(e) => return Err(format!("{e}; not retried")),
        };
        if started.elapsed() + backoff > policy.retry_for {
            return Err(format!(
                "gave up after {attempt} attempts over {:.0} s; last: {failure}",
                started.elapsed().as_secs_f64()
            ));
        }
        tracing::info!(url = ?url, attempt, error = %failure, retry_in_ms = backoff.as_millis() as u64, "callback failed; will retry");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
}
