//! `S3Store`: S3 and S3-compatible servers through aws-sdk-s3, with the standard credential and
//! region chain, an optional custom endpoint and path-style addressing.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging};
use scan_core::ScanInput;
use serde::Deserialize;

use crate::{
    ByteReader, CopyRequest, ListPage, Listed, ObjectInfo, ObjectRef, ObjectStore, StorageError,
};

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
        (Some("PreconditionFailed"), _) | (_, Some(412)) => StorageError::Changed(format!(
            "s3://{bucket}/{key} no longer has the entity tag that was read"
        )),
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
            sha256: None,
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
            sha256: Some(*data.sha256()),
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
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| map_error(e, &object.bucket, &object.key, object.version.as_deref()))?;
        Ok(ObjectInfo {
            size: out.content_length().unwrap_or_default().max(0) as u64,
            version: out.version_id().map(str::to_owned),
            etag: out.e_tag().map(str::to_owned),
            sha256: full_object_sha256(out.checksum_sha256(), out.checksum_type()),
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
        copy: &CopyRequest<'_>,
    ) -> Result<ObjectInfo, StorageError> {
        crate::check_key_length(&from.key)?;
        crate::check_key_length(&to.key)?;
        // The source's content headers and metadata, at the version copied: adding metadata
        // means replacing it, so what the object had is sent again with ours over it. The
        // entity tag is compared here too, for servers that ignore the copy's own condition.
        let source = self
            .client
            .head_object()
            .bucket(&from.bucket)
            .key(&from.key)
            .set_version_id(from.version.clone())
            .send()
            .await
            .map_err(|e| map_error(e, &from.bucket, &from.key, from.version.as_deref()))?;
        if let Some(expected) = copy.if_match
            && source.e_tag() != Some(expected)
        {
            return Err(StorageError::Changed(format!(
                "s3://{}/{} no longer has the entity tag that was read",
                from.bucket, from.key
            )));
        }
        let mut metadata = source.metadata().cloned().unwrap_or_default();
        for (name, value) in copy.metadata {
            metadata.insert(name.clone(), value.clone());
        }
        let size: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > crate::MAX_METADATA_BYTES {
            return Err(StorageError::InvalidName(format!(
                "the copy's metadata would be {size} bytes, over S3's limit of {}",
                crate::MAX_METADATA_BYTES
            )));
        }
        let mut source_name = format!("{}/{}", from.bucket, encode_key(&from.key));
        if let Some(version) = &from.version {
            source_name.push_str("?versionId=");
            source_name.push_str(&encode_key(version));
        }
        let tagging = copy
            .tags
            .iter()
            .map(|(k, v)| format!("{}={}", encode_key(k), encode_key(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = self
            .client
            .copy_object()
            .copy_source(source_name)
            .set_copy_source_if_match(copy.if_match.map(str::to_owned))
            .bucket(&to.bucket)
            .key(&to.key)
            .tagging_directive(aws_sdk_s3::types::TaggingDirective::Replace)
            .tagging(tagging);
        let request = if copy.metadata.is_empty() {
            request.metadata_directive(aws_sdk_s3::types::MetadataDirective::Copy)
        } else {
            request
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                .set_metadata(Some(metadata))
                .set_content_type(source.content_type().map(str::to_owned))
                .set_content_encoding(source.content_encoding().map(str::to_owned))
                .set_content_disposition(source.content_disposition().map(str::to_owned))
                .set_content_language(source.content_language().map(str::to_owned))
                .set_cache_control(source.cache_control().map(str::to_owned))
                .set_website_redirect_location(
                    source.website_redirect_location().map(str::to_owned),
                )
        };
        let done = request
            .send()
            .await
            .map_err(|e| map_error(e, &from.bucket, &from.key, from.version.as_deref()))?;
        Ok(ObjectInfo {
            size: source.content_length().unwrap_or_default().max(0) as u64,
            version: done.version_id().map(str::to_owned),
            etag: done
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .map(str::to_owned),
            sha256: None,
        })
    }

    async fn delete(&self, object: &ObjectRef, if_match: Option<&str>) -> Result<(), StorageError> {
        crate::check_key_length(&object.key)?;
        self.client
            .delete_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version.clone())
            .set_if_match(if_match.map(str::to_owned))
            .send()
            .await
            .map_err(|e| map_error(e, &object.bucket, &object.key, object.version.as_deref()))?;
        Ok(())
    }

    async fn metadata(&self, object: &ObjectRef) -> Result<Vec<(String, String)>, StorageError> {
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
        let mut pairs: Vec<(String, String)> = out
            .metadata()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        pairs.sort();
        Ok(pairs)
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
            // Keys come percent-encoded, so a key holding a character XML 1.0 cannot carry
            // (a control character) cannot break the answer and stop its prefix's listing.
            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
            .send()
            .await
            .map_err(|e| map_error(e, bucket, prefix, None))?;
        let encoded = page.encoding_type() == Some(&aws_sdk_s3::types::EncodingType::Url);
        let objects = page
            .contents()
            .iter()
            .filter_map(|o| {
                let key = o.key()?;
                let key = if encoded {
                    match decode_listed_key(key) {
                        Some(key) => key,
                        None => {
                            tracing::warn!(
                                bucket,
                                key,
                                "a listed key does not decode to UTF-8; left out of the listing"
                            );
                            return None;
                        }
                    }
                } else {
                    key.to_owned()
                };
                Some(Listed {
                    key,
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

/// A key from a listing asked for with `encoding-type=url`: percent-decoded, with `+` for a
/// space (AWS writes spaces so; other servers write `%20`, and a real `+` comes as `%2B` from
/// both). `None` when the bytes are not UTF-8.
fn decode_listed_key(encoded: &str) -> Option<String> {
    let spaced = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|key| key.into_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_keys_decode_both_spellings_of_a_space_and_control_characters() {
        assert_eq!(
            decode_listed_key("in/invoice+%281%29.exe").as_deref(),
            Some("in/invoice (1).exe")
        );
        assert_eq!(decode_listed_key("a%20b%2Bc").as_deref(), Some("a b+c"));
        assert_eq!(decode_listed_key("x%01y").as_deref(), Some("x\u{1}y"));
        assert_eq!(decode_listed_key("%C3%A9t%C3%A9").as_deref(), Some("été"));
        assert_eq!(decode_listed_key("bad%FF"), None);
    }
}

/// The object's SHA-256 from its checksum, only when it is of the whole object: a checksum of
/// parts (type `COMPOSITE`, or a value with a `-N` part count) is not the content's hash.
fn full_object_sha256(
    value: Option<&str>,
    kind: Option<&aws_sdk_s3::types::ChecksumType>,
) -> Option<[u8; 32]> {
    use base64::Engine as _;
    if matches!(kind, Some(k) if *k != aws_sdk_s3::types::ChecksumType::FullObject) {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value?.trim())
        .ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod checksum_tests {
    use super::full_object_sha256;
    use aws_sdk_s3::types::ChecksumType;

    #[test]
    fn only_a_full_object_checksum_is_taken_for_the_contents_hash() {
        // SHA-256 of the empty string, as S3 writes it.
        let empty = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        let full = full_object_sha256(Some(empty), Some(&ChecksumType::FullObject)).unwrap();
        assert_eq!(full[..4], [0xe3, 0xb0, 0xc4, 0x42]);
        assert_eq!(full_object_sha256(Some(empty), None), Some(full));
        assert_eq!(
            full_object_sha256(Some(empty), Some(&ChecksumType::Composite)),
            None
        );
        assert_eq!(full_object_sha256(Some(&format!("{empty}-3")), None), None);
        assert_eq!(
            full_object_sha256(None, Some(&ChecksumType::FullObject)),
            None
        );
    }
}
