//! Getting a job's bytes: a URL through the guarded fetcher, or an object from storage, spooled
//! into a [`ScanInput`]. Failures that may pass (connection, timeout, 5xx, 429, a stream that
//! breaks) are retried with backoff; the rest (404, refused address, too large) are final at once.

use std::collections::BTreeMap;
use std::time::Duration;

use scan_core::{InputError, ScanInput};
use storage::fetch::{FetchError, Fetcher};
use storage::{ObjectRef, ObjectStore, StorageError};

use crate::job::Source;

/// Why a download failed, and whether trying again may help.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) transient: bool,
}

impl Failure {
    fn of_fetch(err: &FetchError) -> Self {
        let transient = match err {
            FetchError::Network { .. } => true,
            FetchError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            _ => false,
        };
        if matches!(err, FetchError::Refused { .. }) {
            tracing::info!(error = %err, "download refused");
        }
        Failure {
            message: err.public_message(),
            transient,
        }
    }

    fn of_storage(err: &StorageError) -> Self {
        let permanent = err.is_not_found()
            || matches!(
                err,
                StorageError::AccessDenied(_) | StorageError::InvalidName(_)
            );
        if matches!(err, StorageError::Backend(_)) {
            tracing::warn!(error = %err, "reading an object failed");
        }
        Failure {
            message: err.public_message(),
            transient: !permanent,
        }
    }

    fn of_input(err: InputError) -> Self {
        let transient = !matches!(err, InputError::TooLarge { .. });
        let message = match &err {
            InputError::Read(e) => match e.get_ref().and_then(|i| i.downcast_ref::<FetchError>()) {
                Some(fetch) => fetch.public_message(),
                None => format!("the download broke off: {e}"),
            },
            _ => err.to_string(),
        };
        Failure { message, transient }
    }
}

/// A source's bytes, and for an object, what the store said of the version that was read
/// (so an action can tell whether the object changed since).
pub(crate) struct Fetched {
    pub(crate) content: Content,
    pub(crate) object: Option<storage::ObjectInfo>,
}

/// What a fetch brought: the bytes, or the verdict the cache holds for them.
pub(crate) enum Content {
    /// The bytes, spooled.
    Read(ScanInput),
    /// An S3 object whose full-object SHA-256 checksum the verdict cache knew under the current
    /// fingerprint: its bytes were not downloaded.
    Cached(Box<scan_core::Report>),
}

/// Where the bytes come from and how to get them.
pub(crate) struct Sources<'a> {
    pub(crate) scanner: &'a scan_core::Scanner,
    pub(crate) fetcher: &'a Fetcher,
    pub(crate) objects: &'a dyn ObjectStore,
    /// Tries in all for transient failures.
    pub(crate) attempts: u32,
    pub(crate) first_backoff: Duration,
}

impl Sources<'_> {
    /// The name to report the root under and the address to tell the caller.
    pub(crate) fn describe(&self, source: &Source) -> (String, String) {
        match source {
            Source::Url { url, .. } => (storage::fetch::file_name(url), url.clone()),
            Source::S3 {
                bucket,
                key,
                version,
            } => {
                let name = key.rsplit('/').next().unwrap_or(key).to_owned();
                let mut address = self.objects.url(bucket, key);
                if let Some(version) = version {
                    address.push_str("?versionId=");
                    address.extend(url::form_urlencoded::byte_serialize(version.as_bytes()));
                }
                (name, address)
            }
            Source::Listing { bulk, page } => (
                format!("bulk {bulk}"),
                format!("bulk scan {bulk}, page {page}"),
            ),
        }
    }

    /// Fetches and spools the source, retrying transient failures; the error says why the last
    /// attempt failed and how many were made.
    pub(crate) async fn fetch(&self, source: &Source) -> Result<Fetched, String> {
        let attempts = self.attempts.max(1);
        let mut backoff = self.first_backoff;
        let mut tried = 0;
        loop {
            tried += 1;
            match self.fetch_once(source).await {
                Ok(input) => return Ok(input),
                Err(failure) if failure.transient && tried < attempts => {
                    tracing::info!(attempt = tried, error = %failure.message, "download failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                Err(failure) => {
                    let tries = if tried == 1 {
                        String::new()
                    } else {
                        format!(" (after {tried} attempts)")
                    };
                    return Err(format!("download failed{tries}: {}", failure.message));
                }
            }
        }
    }

    /// The cached verdict of `object` when the store gives its full-object SHA-256 (a HEAD,
    /// no download) and the verdict cache holds it under the current fingerprint.
    async fn judged_by_checksum(
        &self,
        object: &ObjectRef,
    ) -> Option<(scan_core::Report, storage::ObjectInfo)> {
        if !self.scanner.has_cache() {
            return None;
        }
        let info = self.objects.head(object).await.ok()?;
        let sha256 = info.sha256?;
        let name = object.key.rsplit('/').next().unwrap_or(&object.key);
        let report = self.scanner.cached(name, &sha256).await?;
        tracing::info!(
            bucket = object.bucket,
            key = object.key,
            "judged by its SHA-256 checksum from the verdict cache; not downloaded"
        );
        Some((report, info))
    }

    async fn fetch_once(&self, source: &Source) -> Result<Fetched, Failure> {
        let mut object_info = None;
        let reader = match source {
            Source::Url { url, headers } => {
                self.fetcher
                    .get(url, &header_list(headers))
                    .await
                    .map_err(|e| Failure::of_fetch(&e))?
                    .body
            }
            Source::S3 {
                bucket,
                key,
                version,
            } => {
                let object = ObjectRef {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    version: version.clone(),
                };
                if let Some((report, info)) = self.judged_by_checksum(&object).await {
                    return Ok(Fetched {
                        content: Content::Cached(Box::new(report)),
                        object: Some(info),
                    });
                }
                let (info, reader) = self
                    .objects
                    .get(&object)
                    .await
                    .map_err(|e| Failure::of_storage(&e))?;
                object_info = Some(info);
                reader
            }
            Source::Listing { .. } => {
                return Err(Failure {
                    message: "a listing job has no bytes of its own".to_owned(),
                    transient: false,
                });
            }
        };
        let input = self
            .scanner
            .input_from_async_reader(reader)
            .await
            .map_err(Failure::of_input)?;
        Ok(Fetched {
            content: Content::Read(input),
            object: object_info,
        })
    }
}

pub(crate) fn header_list(headers: &BTreeMap<String, String>) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
