//! `S3Store`: S3 and S3-compatible servers through aws-sdk-s3, with the standard credential and
//! region chain, an optional custom endpoint and path-style addressing.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging};
use scan_core::ScanInput;
use serde::Deserialize;

use crate::{ByteReader, ListPage, Listed, ObjectInfo, ObjectRef, ObjectStore, StorageError};

/// Objects at or above this size are uploaded in parts of this size, so no upload ever holds
/// more than one part in memory.
const PART_SIZE: usize = 16 << 20;

/// How to reach S3.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Region; the standard chain (`AWS_REGION`, profile) when `None`.
    pub region: Option<String>,
    /// A custom endpoint, e.g. `http://127.0.0.1:9000` for an S3-compatible server.
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
}

/// S3 through aws-sdk-s3.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

impl S3Store {
    /// Loads credentials and region the standard way (environment, profile, instance role).
    pub async fn new(config: &S3Config) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let shared = loader.load().await;
        let mut builder =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.path_style);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        S3Store {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
        }
    }

    /// The underlying client (tests use it to create buckets).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    async fn put_multipart(
        &self,
        bucket: &str,
        key: &str,
        data: &[u8],
    ) -> Result<Option<String>, StorageError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_error(e, bucket, key, None))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let result = async {
            let mut parts = Vec::new();
            for (i, chunk) in data.chunks(PART_SIZE).enumerate() {
                let number = i as i32 + 1;
                let part = self
                    .client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .content_length(chunk.len() as i64)
                    .body(ByteStream::from(bytes::Bytes::copy_from_slice(chunk)))
                    .send()
                    .await
                    .map_err(|e| map_error(e, bucket, key, None))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag)
                        .build(),
                );
            }
            let done = self
                .client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| map_error(e, bucket, key, None))?;
            Ok(done.version_id)
        }
        .await;
        if result.is_err() {
            // Do not leave billable parts behind.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }
}

/// Turns an SDK error into a [`StorageError`] that says what was missing or denied.
fn map_error<E, R>(
    err: SdkError<E, R>,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let status = match &err {
        SdkError::ServiceError(service) => {
            let raw = format!("{:?}", service.raw());
            raw.split("status: ")
                .nth(1)
                .and_then(|s| s.get(..3))
                .and_then(|s| s.parse::<u16>().ok())
        }
        _ => None,
    };
    let code = err.code().map(str::to_owned);
    match (code.as_deref(), status) {
        (Some("NoSuchBucket"), _) => StorageError::NoSuchBucket(bucket.to_owned()),
        (Some("NoSuchVersion"), _) => StorageError::NoSuchVersion {
            key: key.to_owned(),
            version: version.unwrap_or_default().to_owned(),
        },
        (Some("NoSuchKey" | "NotFound"), _) | (None, Some(404)) => match version {
            Some(version) => StorageError::NoSuchVersion {
                key: key.to_owned(),
                version: version.to_owned(),
            },
            None => StorageError::NoSuchKey {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            },
        },
        (
            Some("AccessDenied" | "Forbidden" | "InvalidAccessKeyId" | "SignatureDoesNotMatch"),
            _,
        )
        | (None, Some(403)) => StorageError::AccessDenied(format!("s3://{bucket}/{key}")),
        // An invalid version id is a 400 on some servers.
        (Some("InvalidArgument"), _) if version.is_some() => StorageError::NoSuchVersion {
            key: key.to_owned(),
            version: version.unwrap_or_default().to_owned(),
        },
        _ => StorageError::Backend(format!(
            "s3://{bucket}/{key}: {}",
            aws_sdk_s3::error::DisplayErrorContext(&err)
        )),
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn get(&self, object: &ObjectRef) -> Result<(ObjectInfo, ByteReader), StorageError> {
        crate::check_key_length(&object.key)?;
        let out = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version.clone())
            .send()
            .await
            .map_err(|e| map_error(e, &object.bucket, &object.key, object.version.as_deref()))?;
        let info = ObjectInfo {
            size: out.content_length().unwrap_or_default().max(0) as u64,
            version: out.version_id().map(str::to_owned),
            etag: out.e_tag().map(str::to_owned),
        };
        Ok((info, Box::pin(out.body.into_async_read())))
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        data: Arc<ScanInput>,
    ) -> Result<ObjectInfo, StorageError> {
        crate::check_key_length(key)?;
        let bytes = data.data().as_slice();
        let version = if bytes.len() >= PART_SIZE {
            self.put_multipart(bucket, key, bytes).await?
        } else {
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_length(bytes.len() as i64)
                .body(ByteStream::from(bytes::Bytes::copy_from_slice(bytes)))
                .send()
                .await
                .map_err(|e| map_error(e, bucket, key, None))?
                .version_id
        };
        Ok(ObjectInfo {
            size: data.size(),
            version,
            etag: None,
        })
    }

    async fn head(&self, object: &ObjectRef) -> Result<ObjectInfo, StorageError> {
        crate::check_key_length(&object.key)?;
        let out = self
            .client
            .head_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version.clone())
            .send()
            .await
            .map_err(|e| map_error(e, &object.bucket, &object.key, object.version.as_deref()))?;
        Ok(ObjectInfo {
            size: out.content_length().unwrap_or_default().max(0) as u64,
            version: out.version_id().map(str::to_owned),
            etag: out.e_tag().map(str::to_owned),
        })
    }

    async fn tag(&self, object: &ObjectRef, tags: &[(String, String)]) -> Result<(), StorageError> {
        crate::check_key_length(&object.key)?;
        let tag_set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(tag_set))
            .build()
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        self.client
            .put_object_tagging()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version.clone())
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| map_error(e, &object.bucket, &object.key, object.version.as_deref()))?;
        Ok(())
    }

    async fn tags(&self, object: &ObjectRef) -> Result<Vec<(String, String)>, StorageError> {
        crate::check_key_length(&object.key)?;
        let answer = self
            .client
            .get_object_tagging()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version.clone())
            .send()
            .await
            .map_err(|e| map_error(e, &object.bucket, &object.key, object.version.as_deref()))?;
        Ok(answer
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect())
    }

    async fn copy(
        &self,
        from: &ObjectRef,
        to: &ObjectRef,
        tags: &[(String, String)],
    ) -> Result<(), StorageError> {
        crate::check_key_length(&from.key)?;
        crate::check_key_length(&to.key)?;
        let mut source = format!("{}/{}", from.bucket, encode_key(&from.key));
        if let Some(version) = &from.version {
            source.push_str("?versionId=");
            source.push_str(&encode_key(version));
        }
        let tagging = tags
            .iter()
            .map(|(k, v)| format!("{}={}", encode_key(k), encode_key(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.client
            .copy_object()
            .copy_source(source)
            .bucket(&to.bucket)
            .key(&to.key)
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Copy)
            .tagging_directive(aws_sdk_s3::types::TaggingDirective::Replace)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| map_error(e, &from.bucket, &from.key, from.version.as_deref()))?;
        Ok(())
    }

    async fn delete(&self, object: &ObjectRef) -> Result<(), StorageError> {
        crate::check_key_length(&object.key)?;
        self.client
            .delete_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version.clone())
            .send()
            .await
            .map_err(|e| map_error(e, &object.bucket, &object.key, object.version.as_deref()))?;
        Ok(())
    }

    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<ListPage, StorageError> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_start_after(after.map(str::to_owned))
            .max_keys(max.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| map_error(e, bucket, prefix, None))?;
        let objects = page
            .contents()
            .iter()
            .filter_map(|o| {
                Some(Listed {
                    key: o.key()?.to_owned(),
                    size: o.size().unwrap_or_default().max(0) as u64,
                    etag: o.e_tag().map(str::to_owned),
                })
            })
            .collect();
        Ok(ListPage {
            objects,
            more: page.is_truncated().unwrap_or(false),
        })
    }

    fn url(&self, bucket: &str, key: &str) -> String {
        format!("s3://{bucket}/{key}")
    }
}

/// Percent-encodes everything but unreserved characters and `/`, as `x-amz-copy-source` and
/// `x-amz-tagging` want it.
fn encode_key(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
