//! Verdict's storage: [`ObjectStore`] over S3 ([`S3Store`]) and a local directory
//! ([`LocalStore`], the embedded default), [`fetch`]: guarded HTTP(S)
//! downloads for URL scans; and [`actions`]: what is done to an object after its scan.
//!
//! ```
//! use storage::{LocalStore, ObjectRef, ObjectStore};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let root = tempfile::tempdir()?;
//! std::fs::create_dir_all(root.path().join("uploads/in"))?;
//! std::fs::write(root.path().join("uploads/in/report.txt"), "quarterly figures")?;
//! let store = LocalStore::new(root.path())?;
//!
//! // Listed a page at a time, in key order; the last key is where the next page starts.
//! let page = store.list_page("uploads", "in/", None, 1000).await?;
//! assert_eq!(page.objects[0].key, "in/report.txt");
//! assert!(!page.more);
//!
//! // Tags are merged into what the object has; a scan's outcome is one call.
//! let object = ObjectRef::new("uploads", "in/report.txt");
//! storage::tag_outcome(&store, &object, scan_core::Outcome::Clean, "2026-12-02T00:00:00Z").await?;
//! let tags = store.tags(&object).await?;
//! assert!(tags.contains(&("scan-result".to_owned(), "clean".to_owned())));
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

pub mod actions;
mod config;
pub mod fetch;
pub mod filters;
mod local;
mod s3;
pub mod scope;
pub mod verdict_cache;

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use scan_core::ScanInput;
use tokio::io::AsyncRead;

pub use config::StorageConfig;
pub use local::LocalStore;
pub use s3::{S3Config, S3Store};

/// An object's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Bucket (for the local store, a folder under its root).
    pub bucket: String,
    /// Key within the bucket.
    pub key: String,
    /// A specific version; the latest when `None`.
    pub version: Option<String>,
}

impl ObjectRef {
    /// The latest version of `bucket`/`key`.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
            version: None,
        }
    }
}

/// What a store knows about an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// Version id, when the store versions objects.
    pub version: Option<String>,
    /// Entity tag, when the store has one.
    pub etag: Option<String>,
    /// The SHA-256 of the whole object, when the store keeps it as a full-object checksum
    /// (S3's `x-amz-checksum-sha256` of type `FULL_OBJECT`; never a checksum of parts).
    pub sha256: Option<[u8; 32]>,
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Key within the bucket.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Entity tag, when the store has one.
    pub etag: Option<String>,
}

/// A page of a listing, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// The objects, keys ascending.
    pub objects: Vec<Listed>,
    /// Whether more objects follow the last one.
    pub more: bool,
}

/// How to copy an object (see [`ObjectStore::copy`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyRequest<'a> {
    /// The copy's tags (the source's are not carried over by themselves).
    pub tags: &'a [(String, String)],
    /// User metadata set on the copy over the source's own.
    pub metadata: &'a [(String, String)],
    /// The entity tag the source must still have for the copy to be made.
    pub if_match: Option<&'a str>,
}

/// S3's limit on an object's user metadata: names and values together, bytes.
pub const MAX_METADATA_BYTES: usize = 2048;

/// An object's bytes, as a stream.
pub type ByteReader = Pin<Box<dyn AsyncRead + Send>>;

/// A storage operation failed. Not-found and denied cases are distinct so servers can answer
/// 404 and 403.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The bucket does not exist.
    #[error("bucket {0:?} does not exist")]
    NoSuchBucket(String),
    /// The key does not exist in the bucket.
    #[error("object {key:?} does not exist in bucket {bucket:?}")]
    NoSuchKey {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// The version does not exist.
    #[error("version {version:?} of {key:?} does not exist")]
    NoSuchVersion {
        /// Key.
        key: String,
        /// Version.
        version: String,
    },
    /// The credentials may not do this.
    #[error("access denied to {0}")]
    AccessDenied(String),
    /// The bucket or key is not acceptable (escapes the local root, empty, ...).
    #[error("invalid object name: {0}")]
    InvalidName(String),
    /// The object is no longer what was read: a condition on its entity tag failed (412), so
    /// nothing was done to it.
    #[error("the object changed since it was read: {0}")]
    Changed(String),
    /// The store could not be reached or failed.
    #[error("storage failed: {0}")]
    Backend(String),
}

impl StorageError {
    /// What a server may tell its caller: the error itself, except that a failure of the
    /// backend (whose text may hold paths, OS errors or endpoints) becomes one stable sentence;
    /// log the error itself for the operator.
    pub fn public_message(&self) -> String {
        match self {
            StorageError::Backend(_) => {
                "the storage backend failed; the cause is in the server log".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// Whether the object (or its bucket or version) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            StorageError::NoSuchBucket(_)
                | StorageError::NoSuchKey { .. }
                | StorageError::NoSuchVersion { .. }
        )
    }
}

/// S3's limit on tags per object.
pub const MAX_TAGS: usize = 10;

/// An object's tags (or metadata), as key and value pairs in order.
pub type Tags = Vec<(String, String)>;

/// `existing` with `ours` set over it: keys of ours replace the same keys, others stay, so a
/// scan never wipes tags somebody else put on the object. Refused (as an invalid name, naming
/// the keys) when the result would pass S3's limit of [`MAX_TAGS`].
pub fn merge_tags(
    existing: &[(String, String)],
    ours: &[(String, String)],
) -> Result<Vec<(String, String)>, StorageError> {
    let mut merged: Vec<(String, String)> = existing
        .iter()
        .filter(|(key, _)| !ours.iter().any(|(k, _)| k == key))
        .cloned()
        .collect();
    merged.extend(ours.iter().cloned());
    if merged.len() > MAX_TAGS {
        // The count only: the object's tag keys are its owner's business, not the caller's.
        return Err(StorageError::InvalidName(format!(
            "the object already has {} tags; with the scan's {} it would pass S3's limit of {MAX_TAGS}",
            existing.len(),
            ours.len()
        )));
    }
    Ok(merged)
}

/// `ours` first, then as many of `existing` (those ours do not replace) as fit under S3's
/// limit of [`MAX_TAGS`], in their order; the ones that did not fit come second. For when the
/// scan's tags must land whatever the object already carries.
pub fn tags_making_room(existing: &[(String, String)], ours: &[(String, String)]) -> (Tags, Tags) {
    let mut kept: Vec<(String, String)> = ours.iter().take(MAX_TAGS).cloned().collect();
    let mut left_out = Vec::new();
    for tag in existing
        .iter()
        .filter(|(key, _)| !ours.iter().any(|(k, _)| k == key))
    {
        if kept.len() < MAX_TAGS {
            kept.push(tag.clone());
        } else {
            left_out.push(tag.clone());
        }
    }
    (kept, left_out)
}

/// Tags `object` with a scan's outcome, merged into the tags it already has: `scan-result`
/// (see [`outcome_tags`]) and `scan-date` (RFC 3339, UTC).
pub async fn tag_outcome(
    store: &dyn ObjectStore,
    object: &ObjectRef,
    outcome: scan_core::Outcome,
    date: &str,
) -> Result<(), StorageError> {
    tag_with(store, object, &outcome_tags(outcome, date)).await
}

/// Sets `ours` on `object`, merged into the tags it already has (see [`merge_tags`]).
pub async fn tag_with(
    store: &dyn ObjectStore,
    object: &ObjectRef,
    ours: &[(String, String)],
) -> Result<(), StorageError> {
    let existing = store.tags(object).await?;
    store.tag(object, &merge_tags(&existing, ours)?).await
}

/// The tag naming the engines and rules that decided (a short fingerprint of them), so an
/// object scanned by the same ones can be recognised and skipped.
pub const FINGERPRINT_TAG: &str = "scan-engines";

/// The tags a scan's outcome sets: `scan-result`, the outcome's name (`clean`, `infected`,
/// `unscannable`, `error` or `unread`, see [`scan_core::Outcome::as_str`]), and `scan-date`.
pub fn outcome_tags(outcome: scan_core::Outcome, date: &str) -> Vec<(String, String)> {
    vec![
        ("scan-result".to_owned(), outcome.as_str().to_owned()),
        ("scan-date".to_owned(), date.to_owned()),
    ]
}

/// S3's limit on a key, bytes; the local store keeps the same one.
pub const MAX_KEY_BYTES: usize = 1024;

/// Refuses keys longer than S3 allows, before any request or file system call is made.
pub(crate) fn check_key_length(key: &str) -> Result<(), StorageError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StorageError::InvalidName(format!(
            "the key is {} bytes long; at most {MAX_KEY_BYTES} are allowed",
            key.len()
        )));
    }
    Ok(())
}

/// Where objects are read from and stored.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The object's bytes as a stream, and what is known about it.
    async fn get(&self, object: &ObjectRef) -> Result<(ObjectInfo, ByteReader), StorageError>;

    /// Stores spooled bytes at `bucket`/`key`, streaming (multipart for large objects); returns
    /// what was written.
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        data: Arc<ScanInput>,
    ) -> Result<ObjectInfo, StorageError>;

    /// What is known about the object, without its bytes.
    async fn head(&self, object: &ObjectRef) -> Result<ObjectInfo, StorageError>;

    /// Replaces the object's tags.
    async fn tag(&self, object: &ObjectRef, tags: &[(String, String)]) -> Result<(), StorageError>;

    /// The object's tags.
    async fn tags(&self, object: &ObjectRef) -> Result<Vec<(String, String)>, StorageError>;

    /// Copies the object (its bytes, content type and metadata) to `to`, as `copy` says: its
    /// tags, metadata added to the object's own, and the entity tag the source must still have
    /// ([`StorageError::Changed`] when it has not). Returns what was written.
    async fn copy(
        &self,
        from: &ObjectRef,
        to: &ObjectRef,
        copy: &CopyRequest<'_>,
    ) -> Result<ObjectInfo, StorageError>;

    /// Deletes the object (the given version, on a versioned bucket); with `if_match`, only if
    /// its entity tag is still that ([`StorageError::Changed`] when it is not; a store that
    /// cannot make the condition part of the request checks it just before).
    async fn delete(&self, object: &ObjectRef, if_match: Option<&str>) -> Result<(), StorageError>;

    /// The object's user metadata (`x-amz-meta-*` on S3, names without that prefix).
    async fn metadata(&self, object: &ObjectRef) -> Result<Vec<(String, String)>, StorageError>;

    /// Up to `max` objects under `prefix` whose keys sort after `after` (from the first when
    /// `None`), in key order. The last key of a page is where the next one starts, so a listing
    /// can be stopped and resumed from that key alone.
    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<ListPage, StorageError>;

    /// A human-readable address such as `s3://bucket/key`.
    fn url(&self, bucket: &str, key: &str) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn merging_keeps_other_tags_replaces_ours_and_stops_at_ten() {
        let existing = pairs(&[("owner", "team-a"), ("scan-result", "clean")]);
        let ours = pairs(&[("scan-result", "infected"), ("scan-date", "2026-12-01")]);
        let merged = merge_tags(&existing, &ours).unwrap();
        assert_eq!(
            merged,
            pairs(&[
                ("owner", "team-a"),
                ("scan-result", "infected"),
                ("scan-date", "2026-12-01")
            ])
        );
        let nine: Vec<(String, String)> = (0..9)
            .map(|i| (format!("private-key-{i}"), "v".to_owned()))
            .collect();
        let err = merge_tags(&nine, &ours).unwrap_err();
        assert!(err.to_string().contains("limit of 10"), "{err}");
        assert!(
            !err.to_string().contains("private-key"),
            "the object's own tag keys are not the caller's to read: {err}"
        );
    }
}
