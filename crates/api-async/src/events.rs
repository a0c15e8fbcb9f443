//! S3 event notifications: the records AWS S3 sends (through SQS) and S3-compatible servers
//! (MinIO, Ceph, Garage) post as webhooks, read into the objects that were created, and the
//! intake that queues a job for each (`queue_created`), which the webhook and SQS share.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::job::{Job, JobSpec, Source};
use crate::state::{AppState, Caller};
use crate::store::{Pushed, StoreError};

/// An object that an `ObjectCreated:*` record announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    /// Bucket.
    pub bucket: String,
    /// Key, decoded.
    pub key: String,
    /// The version created, on a versioned bucket.
    pub version: Option<String>,
}

/// What a notification held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Notification {
    /// The objects created.
    pub created: Vec<CreatedObject>,
    /// Records of other events (removals, restores...), which need no scan.
    pub other_events: usize,
}

/// A notification that is not S3 event JSON.
#[derive(Debug, thiserror::Error)]
#[error("not an S3 event notification: {0}")]
pub struct EventError(String);

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "Records", default)]
    records: Option<Vec<Record>>,
    /// `s3:TestEvent` when a notification target is first set up.
    #[serde(rename = "Event", default)]
    event: Option<String>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventName")]
    event_name: String,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: BucketEntity,
    object: ObjectEntity,
}

#[derive(Deserialize)]
struct BucketEntity {
    name: String,
}

#[derive(Deserialize)]
struct ObjectEntity {
    key: String,
    #[serde(rename = "versionId", default)]
    version_id: Option<String>,
}

/// Reads a notification body. AWS writes `ObjectCreated:Put`, S3-compatible servers
/// `s3:ObjectCreated:Put`; keys arrive URL-encoded with `+` for a space (and `/` sometimes as
/// `%2F`). A test event holds nothing to scan.
pub fn parse(body: &[u8]) -> Result<Notification, EventError> {
    let body: Body = serde_json::from_slice(body).map_err(|e| EventError(e.to_string()))?;
    let Some(records) = body.records else {
        return match body.event.as_deref() {
            Some("s3:TestEvent") => Ok(Notification::default()),
            _ => Err(EventError("no Records".to_owned())),
        };
    };
    let mut notification = Notification::default();
    for record in records {
        let name = record
            .event_name
            .strip_prefix("s3:")
            .unwrap_or(&record.event_name);
        if !name.starts_with("ObjectCreated:") {
            notification.other_events += 1;
            continue;
        }
        let key = decode_key(&record.s3.object.key)?;
        if record.s3.bucket.name.is_empty() || key.is_empty() {
            return Err(EventError("a record without a bucket or key".to_owned()));
        }
        notification.created.push(CreatedObject {
            bucket: record.s3.bucket.name,
            key,
            version: record
                .s3
                .object
                .version_id
                .filter(|v| !v.is_empty() && v != "null"),
        });
    }
    Ok(notification)
}

/// `dir%2Fa+b.txt` -> `dir/a b.txt`.
fn decode_key(raw: &str) -> Result<String, EventError> {
    let spaced = raw.replace('+', " ");
    let bytes = percent_decode(&spaced)
        .ok_or_else(|| EventError(format!("key {raw:?} is not URL-encoded")))?;
    String::from_utf8(bytes).map_err(|_| EventError(format!("key {raw:?} is not UTF-8")))
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Why created objects were not all queued; the jobs queued before it stay queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The calling key has as many jobs queued as its quota allows.
    #[error("{0}")]
    OverQuota(String),
    /// The job queue is full.
    #[error("{0}")]
    Full(String),
    /// The queue could not be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues a job for each created object the `[events]` section watches (scan, then act on
/// it), in order; how many were queued and how many were for buckets or prefixes not watched
/// (or, for a `caller`, outside its key's events scope), or the failure that stopped it (jobs
/// before it stay queued). `None` for the service's own intake (SQS).
pub(crate) async fn queue_created(
    state: &AppState,
    caller: Option<&Caller>,
    created: Vec<CreatedObject>,
) -> Result<(usize, usize), QueueError> {
    let mut queued = 0;
    let mut elsewhere = 0;
    for object in created {
        if !state.settings.events.wants(&object.bucket, &object.key)
            || state
                .settings
                .actions
                .in_quarantine(&object.bucket, &object.key)
            || caller.is_some_and(|c| !c.grant.events.allows(&object.bucket, &object.key))
        {
            tracing::debug!(bucket = ?object.bucket, key = ?object.key, "an event for a bucket or prefix not watched (or not this key's); ignored");
            elsewhere += 1;
            continue;
        }
        let mut id = [0u8; 16];
        rand::fill(&mut id[..]);
        let job = Job {
            id: hex::encode(id),
            spec: JobSpec {
                source: Source::S3 {
                    bucket: object.bucket,
                    key: object.key,
                    version: object.version,
                },
                callback_url: None,
                callback_headers: BTreeMap::new(),
                trace_id: None,
                custom_data: None,
                owner: caller.and_then(|c| c.scope.clone()),
                submitted_by: caller.map(|c| c.grant.id.clone()),
                tag_object: true,
                watched: true,
                bulk: None,
                rescans: 0,
                reverdict: false,
            },
            attempts: 0,
            receipt: String::new(),
        };
        let quota = caller.map(|c| c.grant.max_queued_jobs);
        match state.queue.push_limited(&job, quota).await? {
            Pushed::Queued => {
                state.metrics.submitted("queued");
                queued += 1;
            }
            Pushed::OverQuota => {
                state.metrics.submitted("over_quota");
                return Err(QueueError::OverQuota(format!(
                    "this API key has as many jobs queued as its quota allows, after {queued} of this notification's objects; send it again shortly"
                )));
            }
            Pushed::Full | Pushed::TraceIdPending => {
                state.metrics.submitted("full");
                return Err(QueueError::Full(format!(
                    "the job queue is full after {queued} of this notification's objects; send it again shortly"
                )));
            }
        }
    }
    Ok((queued, elsewhere))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_records_with_encoded_keys_and_versions() {
        let body = br#"{"Records":[
            {"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put",
             "s3":{"bucket":{"name":"uploads"},"object":{"key":"dir%2Fa+b%C3%A9.txt","size":5,"versionId":"v1"}}},
            {"eventSource":"aws:s3","eventName":"ObjectRemoved:Delete",
             "s3":{"bucket":{"name":"uploads"},"object":{"key":"gone.txt"}}},
            {"eventSource":"aws:s3","eventName":"ObjectCreated:CompleteMultipartUpload",
             "s3":{"bucket":{"name":"uploads"},"object":{"key":"big/x.bin","versionId":"null"}}}
        ]}"#;
        let n = parse(body).unwrap();
        assert_eq!(n.other_events, 1);
        assert_eq!(
            n.created,
            [
                CreatedObject {
                    bucket: "uploads".into(),
                    key: "dir/a bé.txt".into(),
                    version: Some("v1".into())
                },
                CreatedObject {
                    bucket: "uploads".into(),
                    key: "big/x.bin".into(),
                    version: None
                },
            ]
        );
    }

    #[test]
    fn minio_webhooks_and_the_test_event() {
        let body = br#"{"EventName":"s3:ObjectCreated:Put","Key":"media/in/photo.png","Records":[
            {"eventVersion":"2.0","eventSource":"minio:s3","eventName":"s3:ObjectCreated:Put",
             "s3":{"bucket":{"name":"media"},"object":{"key":"in%2Fphoto.png","size":9,"contentType":"image/png","userDefined":{},"versionId":""}}}]}"#;
        let n = parse(body).unwrap();
        assert_eq!(n.created[0].key, "in/photo.png");
        assert_eq!(n.created[0].version, None);
        let test = br#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-01T00:00:00Z","Bucket":"media"}"#;
        assert_eq!(parse(test).unwrap(), Notification::default());
        assert!(parse(b"{\"hello\": 1}").is_err());
        assert!(parse(b"not json").is_err());
        let bad_key = br#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}"#;
        assert!(parse(bad_key).is_err());
    }
}
