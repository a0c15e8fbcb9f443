//! Re-verdicts (`[rescan]`): when the engines' fingerprint changes (a rule added, freshclam's
//! update), the configured buckets and prefixes are scanned again as bulk scans that skip every
//! object already tagged with the new fingerprint, at a bounded pace; an object that turns
//! infected gets the configured action and a signed notification with its old and new verdict.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::bulk::BulkScan;
use crate::state::AppState;

pub use crate::config::RescanConfig;

/// The bulk scan id of the re-verdict of `target` under `fingerprint`: the same on every
/// instance, so instances on one Redis start it once.
fn bulk_id(fingerprint: &str, bucket: &str, prefix: &str) -> String {
    use sha2::Digest;
    let target = sha2::Sha256::digest(format!("{bucket}/{prefix}").as_bytes());
    format!("rescan-{fingerprint}-{}", hex::encode(&target[..6]))
}

/// Watches the fingerprint and starts the re-verdicts; runs until aborted. At start too: rules
/// changed while the service was down count as a change.
pub(crate) async fn run(state: Arc<AppState>) {
    let config = state.settings.rescan.clone();
    if config.targets.is_empty() {
        return;
    }
    let every = Duration::try_from_secs_f64(config.check_every_secs)
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_millis(50));
    let mut started_for = String::new();
    loop {
        let fingerprint = state.fingerprint();
        if fingerprint != started_for && start_all(&state, &config, &fingerprint).await {
            started_for = fingerprint;
        }
        tokio::time::sleep(every).await;
    }
}

/// Starts each target's re-verdict under `fingerprint` unless it exists; whether all are.
async fn start_all(state: &AppState, config: &RescanConfig, fingerprint: &str) -> bool {
    let mut all = true;
    for (bucket, prefix) in config.targets() {
        let id = bulk_id(fingerprint, &bucket, &prefix);
        match state.bulks.bulk(&id).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, bucket, prefix, "cannot check for a re-verdict; trying again");
                all = false;
                continue;
            }
        }
        let bulk = BulkScan {
            id: id.clone(),
            owner: None,
            submitted_by: None,
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            callback_url: None,
            callback_headers: Default::default(),
            created: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            reverdict: true,
        };
        match crate::bulk::start(state, &bulk).await {
            Ok(_) => {
                tracing::info!(
                    bulk = id,
                    bucket,
                    prefix,
                    fingerprint,
                    "re-verdict started: objects judged by older rules are scanned again"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, bucket, prefix, "cannot start a re-verdict; trying again");
                all = false;
            }
        }
    }
    all
}

/// What an object's tags said before its re-verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Before {
    /// `scan-result`, if it had one.
    pub result: Option<String>,
    /// `scan-engines`, if it had one.
    pub fingerprint: Option<String>,
}

impl Before {
    pub(crate) fn of(tags: &[(String, String)]) -> Self {
        let tag = |name: &str| tags.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        Before {
            result: tag("scan-result"),
            fingerprint: tag(storage::FINGERPRINT_TAG),
        }
    }
}

/// The notification of an object whose re-verdict is infected where it was not.
#[derive(Debug, Serialize)]
struct TurnedInfected<'a> {
    event: &'static str,
    bucket: &'a str,
    key: &'a str,
    before: &'a Before,
    after: &'a crate::wire::ScanResult,
}

/// Sends the signed notification that `object` turned infected, in the background (it retries
/// like a callback, and must not hold a worker).
pub(crate) fn notify(
    state: &AppState,
    object: &storage::ObjectRef,
    before: &Before,
    after: &crate::wire::ScanResult,
    job_id: &str,
) {
    let Some(url) = state.settings.rescan.notify_url.clone() else {
        return;
    };
    let body = match serde_json::to_vec(&TurnedInfected {
        event: "reverdict.infected",
        bucket: &object.bucket,
        key: &object.key,
        before,
        after,
    }) {
        Ok(body) => bytes::Bytes::from(body),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a re-verdict notification");
            return;
        }
    };
    let (fetcher, policy) = (state.fetcher.clone(), state.callbacks.clone());
    let (job_id, key) = (job_id.to_owned(), object.key.clone());
    tokio::spawn(async move {
        let sent = crate::callback::deliver(
            &fetcher,
            &policy,
            &policy.secret,
            &url,
            &Default::default(),
            &job_id,
            body,
        )
        .await;
        match sent {
            Ok(_) => tracing::info!(key, "re-verdict notification delivered"),
            Err(why) => {
                tracing::error!(key, reason = %why, "re-verdict notification not delivered")
            }
        }
    });
}
