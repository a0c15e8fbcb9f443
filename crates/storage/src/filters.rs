//! The `[filters]` section: objects to leave alone, by name, size or tags. Bucket events and
//! bulk scans skip them before any byte is read; for objects a caller asks about, they are
//! scanned but never acted on (a legal hold stays a legal hold whoever asks).

use serde::Deserialize;

/// The `[filters]` section: objects to leave alone. A watched object (bucket event, bulk scan)
/// that matches is counted, logged and never scanned, reported clean or tagged; an object a
/// caller asks about is scanned, but the `[actions]` policy is not carried out on it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FiltersConfig {
    /// Keys starting with any of these.
    pub skip_prefixes: Vec<String>,
    /// Keys ending with any of these (case-insensitive), e.g. `.log`.
    pub skip_suffixes: Vec<String>,
    /// Objects smaller than this many bytes.
    pub min_size: Option<u64>,
    /// Objects larger than this many bytes.
    pub max_size: Option<u64>,
    /// Objects carrying any of these tags: `key=value`, or `key` for any value.
    pub skip_tagged: Vec<String>,
    /// Objects already tagged with a `scan-result` by the same engines and rules (their
    /// `scan-engines` tag is this instance's fingerprint), so a rescan of a bucket only scans
    /// what is new or was scanned by other rules.
    pub skip_already_scanned: bool,
}

impl FiltersConfig {
    /// Why `key` is skipped by its name alone, if it is.
    pub fn by_name(&self, key: &str) -> Option<String> {
        if let Some(prefix) = self
            .skip_prefixes
            .iter()
            .find(|p| key.starts_with(p.as_str()))
        {
            return Some(format!("its key starts with {prefix:?}"));
        }
        let lower = key.to_lowercase();
        self.skip_suffixes
            .iter()
            .find(|s| lower.ends_with(&s.to_lowercase()))
            .map(|suffix| format!("its key ends with {suffix:?}"))
    }

    /// Whether the size or tags need to be looked up.
    pub fn needs_head(&self) -> bool {
        self.min_size.is_some()
            || self.max_size.is_some()
            || !self.skip_tagged.is_empty()
            || self.skip_already_scanned
    }

    /// Why an object of `size` bytes with `tags` is skipped, if it is.
    pub fn by_head(&self, size: u64, tags: &[(String, String)]) -> Option<String> {
        self.by_size(size).or_else(|| self.by_tags(tags))
    }

    /// Why an object of `size` bytes is skipped, if it is.
    pub fn by_size(&self, size: u64) -> Option<String> {
        if let Some(min) = self.min_size.filter(|min| size < *min) {
            return Some(format!("it is {size} bytes, under min_size {min}"));
        }
        self.max_size
            .filter(|max| size > *max)
            .map(|max| format!("it is {size} bytes, over max_size {max}"))
    }

    /// Why an object with `tags` is skipped, if it is.
    pub fn by_tags(&self, tags: &[(String, String)]) -> Option<String> {
        self.skip_tagged
            .iter()
            .find(|rule| {
                let (key, value) = match rule.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (rule.as_str(), None),
                };
                tags.iter()
                    .any(|(k, v)| k == key && value.is_none_or(|value| v == value))
            })
            .map(|rule| format!("it is tagged {rule}"))
    }
}

impl FiltersConfig {
    /// Why `object` is left alone, if it is: by its key, then (only when a rule needs them) by
    /// its size and tags. With `fingerprint`, an object already tagged with a `scan-result` by
    /// engines of that fingerprint is left alone too (`skip_already_scanned`). An object whose
    /// size or tags cannot be read is not left alone: what happens next reports why.
    pub async fn leaves_alone(
        &self,
        store: &dyn crate::ObjectStore,
        object: &crate::ObjectRef,
        fingerprint: Option<&str>,
    ) -> Option<String> {
        if let Some(why) = self.by_name(&object.key) {
            return Some(why);
        }
        let already_scanned = self.skip_already_scanned && fingerprint.is_some();
        let sized = self.min_size.is_some() || self.max_size.is_some();
        if !sized && self.skip_tagged.is_empty() && !already_scanned {
            return None;
        }
        if sized {
            let info = store.head(object).await.ok()?;
            if let Some(why) = self.by_size(info.size) {
                return Some(why);
            }
        }
        if self.skip_tagged.is_empty() && !already_scanned {
            return None;
        }
        let tags = store.tags(object).await.ok()?;
        self.by_tags(&tags).or_else(|| {
            let ours = fingerprint.filter(|_| already_scanned)?;
            (tags
                .iter()
                .any(|(k, v)| k == crate::FINGERPRINT_TAG && v == ours)
                && tags.iter().any(|(k, _)| k == "scan-result"))
            .then(|| format!("it was scanned already by the same engines and rules ({ours})"))
        })
    }
}
