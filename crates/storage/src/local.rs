//! `LocalStore`: a directory as the root of buckets (one folder each). Keys can never leave it:
//! `..`, absolute paths, NUL bytes and symbolic links anywhere on the way are refused, and so are
//! names of the form of the scan-tags file kept beside each object.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Longest file name most file systems take (ext4, XFS, btrfs), bytes.
const MAX_NAME_BYTES: usize = 255;

use async_trait::async_trait;
use scan_core::ScanInput;

use crate::{
    ByteReader, CopyRequest, ListPage, Listed, ObjectInfo, ObjectRef, ObjectStore, StorageError,
};

/// Objects as files under a root directory: `<root>/<bucket>/<key>`.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

/// The end of the name of the file beside each object that holds its tags (and, when it has
/// any, its metadata).
const TAGS_SUFFIX: &str = ".tags.json";

/// What the file beside an object holds: a plain map of its tags, or, when it has metadata too,
/// both under `tags` and `metadata`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Sidecar {
    tags: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    metadata: std::collections::BTreeMap<String, String>,
}

impl Sidecar {
    fn parse(text: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Sidecar(Sidecar),
            Tags(std::collections::BTreeMap<String, String>),
        }
        Ok(match serde_json::from_slice(text)? {
            Stored::Sidecar(sidecar) => sidecar,
            Stored::Tags(tags) => Sidecar {
                tags,
                ..Sidecar::default()
            },
        })
    }
}

impl LocalStore {
    /// A store rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(LocalStore {
            root: root.canonicalize()?,
        })
    }

    /// The file for `bucket`/`key`, after checking that neither can escape the root.
    fn path(&self, bucket: &str, key: &str) -> Result<PathBuf, StorageError> {
        let bucket_dir = self.bucket_dir(bucket)?;
        crate::check_key_length(key)?;
        let key_path = Path::new(key);
        let mut path = bucket_dir.clone();
        let mut parts = 0;
        for component in key_path.components() {
            match component {
                Component::Normal(part) if part.len() > MAX_NAME_BYTES => {
                    return Err(StorageError::InvalidName(format!(
                        "a part of the key between slashes is {} bytes long; this store allows {MAX_NAME_BYTES}",
                        part.len()
                    )));
                }
                Component::Normal(part) => {
                    path.push(part);
                    parts += 1;
                }
                Component::CurDir => {}
                _ => {
                    return Err(StorageError::InvalidName(format!(
                        "key {key:?} must stay inside its bucket"
                    )));
                }
            }
        }
        if parts == 0 || key.contains('\0') || key.ends_with('/') {
            return Err(StorageError::InvalidName(format!(
                "key {key:?} is not a file name"
            )));
        }
        // `.<name>.tags.json` beside a file holds its scan tags: an object of that name would
        // overwrite another object's tags.
        let file_name = path.file_name().map(|n| n.to_string_lossy());
        if file_name.is_some_and(|n| n.starts_with('.') && n.ends_with(TAGS_SUFFIX)) {
            return Err(StorageError::InvalidName(format!(
                "key {key:?} has the form of a scan-tags file (.NAME{TAGS_SUFFIX}), which this store keeps beside each object"
            )));
        }
        // A link anywhere between the bucket and the file could point outside the root.
        let mut walk = bucket_dir;
        for component in path.strip_prefix(&walk).unwrap_or(&path).components() {
            walk.push(component);
            if std::fs::symlink_metadata(&walk).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(StorageError::InvalidName(format!(
                    "key {key:?} passes through a symbolic link"
                )));
            }
        }
        Ok(path)
    }

    fn bucket_dir(&self, bucket: &str) -> Result<PathBuf, StorageError> {
        let valid = !bucket.is_empty()
            && bucket != "."
            && bucket != ".."
            && !bucket.contains(['/', '\\', '\0']);
        if !valid {
            return Err(StorageError::InvalidName(format!("bucket {bucket:?}")));
        }
        let dir = self.root.join(bucket);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => Ok(dir),
            Ok(_) => Err(StorageError::InvalidName(format!(
                "bucket {bucket:?} is not a folder"
            ))),
            Err(_) => Err(StorageError::NoSuchBucket(bucket.to_owned())),
        }
    }

    fn no_versions(object: &ObjectRef) -> Result<(), StorageError> {
        match &object.version {
            Some(version) => Err(StorageError::NoSuchVersion {
                key: object.key.clone(),
                version: version.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Where `bucket`/`key`'s scan tags are kept: `.<file name>.tags.json` beside it.
    fn tags_path(&self, bucket: &str, key: &str) -> Result<PathBuf, StorageError> {
        let file = self.path(bucket, key)?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(file.with_file_name(format!(".{name}{TAGS_SUFFIX}")))
    }

    /// What is kept beside `object` (nothing yet: empty), after checking it exists.
    async fn sidecar(&self, object: &ObjectRef) -> Result<Sidecar, StorageError> {
        self.head(object).await?;
        let path = self.tags_path(&object.bucket, &object.key)?;
        match tokio::fs::read(&path).await {
            Ok(text) => Sidecar::parse(&text)
                .map_err(|e| StorageError::Backend(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Sidecar::default()),
            Err(e) => Err(not_found_or(e, object)),
        }
    }

    async fn write_sidecar(
        &self,
        object: &ObjectRef,
        sidecar: &Sidecar,
    ) -> Result<(), StorageError> {
        self.head(object).await?;
        let path = self.tags_path(&object.bucket, &object.key)?;
        // Plain tags are written as the plain map they always were; the wrapped form only when
        // there is metadata to keep too.
        let text = if sidecar.metadata.is_empty() {
            serde_json::to_vec_pretty(&sidecar.tags)
        } else {
            serde_json::to_vec_pretty(sidecar)
        }
        .map_err(|e| StorageError::Backend(e.to_string()))?;
        tokio::fs::write(&path, text)
            .await
            .map_err(|e| not_found_or(e, object))
    }
}

/// An entity tag for a file: its modification time and size, so a file written again between
/// a scan and an action on it is seen to have changed.
fn etag_of(meta: &std::fs::Metadata) -> Option<String> {
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!("{}-{}", modified.as_nanos(), meta.len()))
}

/// Collects the objects under `dir` (keys starting with `base`) whose keys start with `prefix`,
/// skipping the scan-tags files and anything that is not a plain file or folder.
fn walk(dir: &Path, base: &str, prefix: &str, found: &mut Vec<Listed>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            // No S3 key can name it, so no request could scan it either; said, not hidden.
            tracing::warn!(path = ?entry.path(), "a file whose name is not UTF-8 is left out of the listing");
            continue;
        };
        let key = format!("{base}{name}");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            let below = format!("{key}/");
            // A folder is entered only when keys under it can match the prefix.
            if below.starts_with(prefix) || prefix.starts_with(&below) {
                walk(&entry.path(), &below, prefix, found)?;
            }
        } else if kind.is_file()
            && key.starts_with(prefix)
            && !(name.starts_with('.') && name.ends_with(TAGS_SUFFIX))
        {
            let meta = entry.metadata()?;
            found.push(Listed {
                key,
                size: meta.len(),
                etag: etag_of(&meta),
            });
        }
    }
    Ok(())
}

fn not_found_or(err: std::io::Error, object: &ObjectRef) -> StorageError {
    if err.kind() == std::io::ErrorKind::NotFound {
        StorageError::NoSuchKey {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
        }
    } else if err.kind() == std::io::ErrorKind::PermissionDenied {
        StorageError::AccessDenied(format!("{}/{}", object.bucket, object.key))
    } else {
        StorageError::Backend(err.to_string())
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn get(&self, object: &ObjectRef) -> Result<(ObjectInfo, ByteReader), StorageError> {
        Self::no_versions(object)?;
        let path = self.path(&object.bucket, &object.key)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| not_found_or(e, object))?;
        let meta = file.metadata().await.map_err(|e| not_found_or(e, object))?;
        if !meta.is_file() {
            return Err(StorageError::NoSuchKey {
                bucket: object.bucket.clone(),
                key: object.key.clone(),
            });
        }
        Ok((
            ObjectInfo {
                size: meta.len(),
                etag: etag_of(&meta),
                ..ObjectInfo::default()
            },
            Box::pin(file),
        ))
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        data: Arc<ScanInput>,
    ) -> Result<ObjectInfo, StorageError> {
        let path = self.path(bucket, key)?;
        let size = data.size();
        let object = ObjectRef::new(bucket, key);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            // Written beside the target and renamed, so nobody ever sees half a file.
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            tmp.write_all(data.data().as_slice())?;
            tmp.as_file().sync_all()?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        })
        .await
        .map_err(|e| StorageError::Backend(e.to_string()))?
        .map_err(|e| not_found_or(e, &object))?;
        Ok(ObjectInfo {
            size,
            ..ObjectInfo::default()
        })
    }

    async fn head(&self, object: &ObjectRef) -> Result<ObjectInfo, StorageError> {
        Self::no_versions(object)?;
        let path = self.path(&object.bucket, &object.key)?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| not_found_or(e, object))?;
        Ok(ObjectInfo {
            size: meta.len(),
            etag: etag_of(&meta),
            ..ObjectInfo::default()
        })
    }

    async fn tag(&self, object: &ObjectRef, tags: &[(String, String)]) -> Result<(), StorageError> {
        let mut sidecar = self.sidecar(object).await?;
        sidecar.tags = tags.iter().cloned().collect();
        self.write_sidecar(object, &sidecar).await
    }

    async fn tags(&self, object: &ObjectRef) -> Result<Vec<(String, String)>, StorageError> {
        Ok(self.sidecar(object).await?.tags.into_iter().collect())
    }

    async fn metadata(&self, object: &ObjectRef) -> Result<Vec<(String, String)>, StorageError> {
        Ok(self.sidecar(object).await?.metadata.into_iter().collect())
    }

    async fn copy(
        &self,
        from: &ObjectRef,
        to: &ObjectRef,
        copy: &CopyRequest<'_>,
    ) -> Result<ObjectInfo, StorageError> {
        Self::no_versions(from)?;
        let source = self.path(&from.bucket, &from.key)?;
        let target = self.path(&to.bucket, &to.key)?;
        let mut sidecar = self.sidecar(from).await?;
        let object = from.clone();
        let expected = copy.if_match.map(str::to_owned);
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            let io = |e| not_found_or(e, &object);
            let dir = target.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir).map_err(io)?;
            let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
            let mut file = std::fs::File::open(&source).map_err(io)?;
            // Compared on the open file, so the bytes copied are the ones that matched.
            if let Some(expected) = &expected
                && etag_of(&file.metadata().map_err(io)?).as_ref() != Some(expected)
            {
                return Err(StorageError::Changed(format!(
                    "{}/{} was written again since it was read",
                    object.bucket, object.key
                )));
            }
            std::io::copy(&mut file, &mut tmp.as_file()).map_err(io)?;
            tmp.persist(&target).map_err(|e| io(e.error))?;
            Ok(())
        })
        .await
        .map_err(|e| StorageError::Backend(e.to_string()))??;
        sidecar.tags = copy.tags.iter().cloned().collect();
        sidecar.metadata.extend(copy.metadata.iter().cloned());
        self.write_sidecar(to, &sidecar).await?;
        self.head(to).await
    }

    async fn delete(&self, object: &ObjectRef, if_match: Option<&str>) -> Result<(), StorageError> {
        Self::no_versions(object)?;
        let path = self.path(&object.bucket, &object.key)?;
        if let Some(expected) = if_match {
            // A file system has no conditional delete: checked just before, which leaves only
            // the time between the two calls.
            let now = self.head(object).await?;
            if now.etag.as_deref() != Some(expected) {
                return Err(StorageError::Changed(format!(
                    "{}/{} was written again since it was read",
                    object.bucket, object.key
                )));
            }
        }
        tokio::fs::remove_file(&path)
            .await
            .map_err(|e| not_found_or(e, object))?;
        let tags = self.tags_path(&object.bucket, &object.key)?;
        match tokio::fs::remove_file(&tags).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::Backend(format!("{}: {e}", tags.display()))),
        }
    }

    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<ListPage, StorageError> {
        let dir = self.bucket_dir(bucket)?;
        let prefix = prefix.to_owned();
        let after = after.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            walk(&dir, "", &prefix, &mut found)
                .map_err(|e| StorageError::Backend(format!("listing {}: {e}", dir.display())))?;
            found.retain(|o| after.as_deref().is_none_or(|after| o.key.as_str() > after));
            found.sort_by(|a, b| a.key.cmp(&b.key));
            let more = found.len() > max;
            found.truncate(max);
            Ok(ListPage {
                objects: found,
                more,
            })
        })
        .await
        .map_err(|e| StorageError::Backend(e.to_string()))?
    }

    /// `local://bucket/key`: the object's name, not where the server keeps it on disk.
    fn url(&self, bucket: &str, key: &str) -> String {
        format!("local://{bucket}/{key}")
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn copies_carry_tags_and_metadata_and_conditions_on_the_entity_tag_hold() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_path_buf()).unwrap();
        for bucket in ["in", "held"] {
            std::fs::create_dir_all(dir.path().join(bucket)).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("in/a")).unwrap();
        std::fs::write(dir.path().join("in/a/bad.bin"), b"payload").unwrap();
        let object = ObjectRef::new("in", "a/bad.bin");
        let read = store.head(&object).await.unwrap();
        let to = ObjectRef::new("held", "q/a/bad.bin");
        let tags = [("scan-result".to_owned(), "infected".to_owned())];
        let metadata = [("quarantined-from".to_owned(), "in/a/bad.bin".to_owned())];
        let copy = CopyRequest {
            tags: &tags,
            metadata: &metadata,
            if_match: read.etag.as_deref(),
        };
        store.copy(&object, &to, &copy).await.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("held/q/a/bad.bin")).unwrap(),
            b"payload"
        );
        assert_eq!(store.tags(&to).await.unwrap(), tags);
        assert_eq!(store.metadata(&to).await.unwrap(), metadata);

        // Written again: neither copied nor deleted on the old entity tag.
        std::fs::write(dir.path().join("in/a/bad.bin"), b"other bytes").unwrap();
        let stale = store
            .copy(&object, &ObjectRef::new("held", "again"), &copy)
            .await;
        assert!(matches!(stale, Err(StorageError::Changed(_))), "{stale:?}");
        assert!(!dir.path().join("held/again").exists());
        let stale = store.delete(&object, read.etag.as_deref()).await;
        assert!(matches!(stale, Err(StorageError::Changed(_))), "{stale:?}");
        let now = store.head(&object).await.unwrap();
        store.delete(&object, now.etag.as_deref()).await.unwrap();
        assert!(!dir.path().join("in/a/bad.bin").exists());
        assert!(matches!(
            store.delete(&object, None).await,
            Err(StorageError::NoSuchKey { .. })
        ));
    }

    #[tokio::test]
    async fn tag_files_written_before_metadata_existed_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/f"), "x").unwrap();
        std::fs::write(
            dir.path().join("b/.f.tags.json"),
            r#"{"scan-result": "clean"}"#,
        )
        .unwrap();
        let object = ObjectRef::new("b", "f");
        assert_eq!(
            store.tags(&object).await.unwrap(),
            [("scan-result".to_owned(), "clean".to_owned())]
        );
        assert!(store.metadata(&object).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn listing_pages_in_key_order_from_a_checkpoint_without_tag_files_or_links() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        for key in [
            "in/b.txt",
            "in/a/z.txt",
            "in/c.txt",
            "in/c.txt0",
            "out/x.txt",
            "inside.txt",
        ] {
            let path = dir.path().join("bk").join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, key).unwrap();
        }
        store
            .tag(
                &ObjectRef::new("bk", "in/b.txt"),
                &[("k".into(), "v".into())],
            )
            .await
            .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("bk/in/link")).unwrap();

        let keys = |page: &ListPage| {
            page.objects
                .iter()
                .map(|o| o.key.clone())
                .collect::<Vec<_>>()
        };
        let first = store.list_page("bk", "in/", None, 2).await.unwrap();
        assert_eq!(keys(&first), ["in/a/z.txt", "in/b.txt"]);
        assert!(first.more);
        assert_eq!(first.objects[1].size, "in/b.txt".len() as u64);
        let rest = store
            .list_page("bk", "in/", Some("in/b.txt"), 2)
            .await
            .unwrap();
        assert_eq!(keys(&rest), ["in/c.txt", "in/c.txt0"]);
        assert!(!rest.more, "the tag file and the link are not objects");
        let all = store.list_page("bk", "in", None, 10).await.unwrap();
        assert_eq!(all.objects.len(), 5, "a prefix need not end at a folder");

        // The entity tag changes when the file is written again, so a scan can tell.
        let before = store.head(&ObjectRef::new("bk", "in/c.txt")).await.unwrap();
        assert_eq!(before.etag, rest.objects[0].etag);
        std::fs::write(dir.path().join("bk/in/c.txt"), "new bytes").unwrap();
        let after = store.head(&ObjectRef::new("bk", "in/c.txt")).await.unwrap();
        assert_ne!(before.etag, after.etag);
        assert!(matches!(
            store.list_page("nope", "", None, 1).await,
            Err(StorageError::NoSuchBucket(_))
        ));
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("root")).unwrap();
        std::fs::create_dir_all(dir.path().join("root/bucket")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("outside"),
            dir.path().join("root/bucket/link"),
        )
        .unwrap();
        for key in [
            "../escape",
            "/etc/passwd",
            "a/../../b",
            "link/file",
            "",
            "dir/",
            ".y.txt.tags.json",
            "x/.report.pdf.tags.json",
        ] {
            let err = store.path("bucket", key).unwrap_err();
            assert!(matches!(err, StorageError::InvalidName(_)), "{key}: {err}");
        }
        for bucket in ["..", "a/b", ""] {
            assert!(
                matches!(store.path(bucket, "k"), Err(StorageError::InvalidName(_))),
                "{bucket}"
            );
        }
        assert!(matches!(
            store.path("missing", "k"),
            Err(StorageError::NoSuchBucket(_))
        ));
    }

    #[tokio::test]
    async fn put_get_head_and_tag_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        let input = Arc::new(ScanInput::from_bytes(b"hello".to_vec()));
        store.put("b", "x/y.txt", input).await.unwrap();
        let object = ObjectRef::new("b", "x/y.txt");
        let (info, mut reader) = store.get(&object).await.unwrap();
        let mut body = String::new();
        reader.read_to_string(&mut body).await.unwrap();
        assert_eq!((info.size, body.as_str()), (5, "hello"));
        store
            .tag(&object, &[("scan-result".into(), "clean".into())])
            .await
            .unwrap();
        let tags = std::fs::read_to_string(dir.path().join("b/x/.y.txt.tags.json")).unwrap();
        assert!(tags.contains("\"scan-result\": \"clean\""), "{tags}");
        let missing = store.head(&ObjectRef::new("b", "nope")).await.unwrap_err();
        assert!(missing.is_not_found());
    }
}
