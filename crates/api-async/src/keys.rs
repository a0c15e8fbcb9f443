//! API keys and what each may do.
//!
//! Callers authenticate with `Authorization: Bearer <key>` (or `x-api-key: <key>`, which the
//! original product's SDKs send when configured with an API key); every configured key is
//! compared in constant time. Each key has a [`Grant`]: the buckets and prefixes whose objects
//! it may scan, bulk-scan and post bucket events for, how many jobs it may have queued, and the
//! key its callbacks are signed with.
//!
//! Plain keys (`api_keys`, `api_keys_file`, `VERDICT_API_KEYS`, as the original product takes
//! them) may scan URLs and any object; they may bulk-scan only the buckets `[events]` names,
//! and may not post bucket events. `[[keys]]` entries say exactly what each key may do.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use storage::scope::Scopes;
use subtle::ConstantTimeEq;

/// One `[[keys]]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// What logs call it.
    pub name: String,
    /// The key itself. Prefer `key_file`.
    pub key: Option<String>,
    /// A file holding the key (trailing white space ignored).
    pub key_file: Option<PathBuf>,
    /// Objects it may scan through `async/s3` and `sync/s3`: `"*"`, `"bucket"` or
    /// `"bucket/prefix"`.
    #[serde(default)]
    pub scan: Scopes,
    /// Where it may start bulk scans (a bulk scan's whole prefix must be inside one).
    #[serde(default)]
    pub bulk: Scopes,
    /// Objects it may post bucket events for (`/api/v1/events/s3`); records outside are
    /// ignored, and a key without any gets 403.
    #[serde(default)]
    pub events: Scopes,
    /// Most jobs it may have queued at once (`max_queued_jobs_per_key` when unset).
    pub max_queued_jobs: Option<usize>,
    /// Its own callback signing key, so its receivers cannot verify (or replay) another key's
    /// callbacks; `callback.secret` when unset.
    pub callback_secret: Option<String>,
    /// A file holding that key.
    pub callback_secret_file: Option<PathBuf>,
}

/// What one key may do.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The key's id: the first 16 hex digits of its SHA-256. Stored with jobs in place of the
    /// key, which never leaves memory.
    pub id: String,
    /// What logs call it.
    pub name: String,
    /// Objects it may scan.
    pub scan: Scopes,
    /// Where it may start bulk scans.
    pub bulk: Scopes,
    /// Objects it may post bucket events for.
    pub events: Scopes,
    /// Most jobs it may have queued.
    pub max_queued_jobs: usize,
    /// Its callbacks' signing key, when it has its own.
    pub callback_secret: Option<Arc<[u8]>>,
}

/// The id of `key` (see [`Grant::id`]).
pub fn key_id(key: &[u8]) -> String {
    hex::encode(&Sha256::digest(key)[..8])
}

/// The keys that may call the API, each with its grant.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<(Vec<u8>, Arc<Grant>)>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys themselves.
        f.debug_struct("ApiKeys")
            .field("count", &self.keys.len())
            .finish()
    }
}

/// A key configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

impl ApiKeys {
    /// Plain keys from a comma-separated list and/or the lines of a file's text (blanks and `#`
    /// comments ignored), each granted `plain`.
    pub fn plain(list: Option<&str>, file_text: Option<&str>, plain: &Grant) -> Self {
        let from_list = list.into_iter().flat_map(|l| l.split(','));
        let from_file = file_text.into_iter().flat_map(str::lines);
        let keys = from_list
            .chain(from_file)
            .map(str::trim)
            .filter(|k| !k.is_empty() && !k.starts_with('#'))
            .map(|k| {
                let id = key_id(k.as_bytes());
                let grant = Grant {
                    name: format!("key-{id}"),
                    id,
                    ..plain.clone()
                };
                (k.as_bytes().to_vec(), Arc::new(grant))
            })
            .collect();
        ApiKeys { keys }
    }

    /// Adds the `[[keys]]` entries; `default_quota` for those that set none, `read` to read
    /// the files they name. Refuses an entry without exactly one key, and a key given twice.
    pub fn with_entries(
        mut self,
        entries: &[KeyConfig],
        default_quota: usize,
        read: impl Fn(&std::path::Path) -> std::io::Result<String>,
    ) -> Result<Self, KeyError> {
        for entry in entries {
            let named = |what: &str| KeyError(format!("[[keys]] {:?}: {what}", entry.name));
            let from_file = |path: &PathBuf| {
                read(path)
                    .map(|text| text.trim_end().to_owned())
                    .map_err(|e| named(&format!("{}: {e}", path.display())))
            };
            let key = match (&entry.key, &entry.key_file) {
                (Some(key), None) => key.trim().to_owned(),
                (None, Some(path)) => from_file(path)?,
                _ => return Err(named("set exactly one of key and key_file")),
            };
            if key.len() < 16 {
                return Err(named("the key must be at least 16 characters"));
            }
            let callback_secret = match (&entry.callback_secret, &entry.callback_secret_file) {
                (Some(secret), None) => Some(secret.clone()),
                (None, Some(path)) => Some(from_file(path)?),
                (None, None) => None,
                (Some(_), Some(_)) => {
                    return Err(named(
                        "set callback_secret or callback_secret_file, not both",
                    ));
                }
            };
            if callback_secret.as_ref().is_some_and(|s| s.len() < 16) {
                return Err(named("the callback secret must be at least 16 bytes"));
            }
            if self.find(&key).is_some() {
                return Err(named("this key is configured twice"));
            }
            let grant = Grant {
                id: key_id(key.as_bytes()),
                name: entry.name.clone(),
                scan: entry.scan.clone(),
                bulk: entry.bulk.clone(),
                events: entry.events.clone(),
                max_queued_jobs: entry.max_queued_jobs.unwrap_or(default_quota),
                callback_secret: callback_secret.map(|s| Arc::from(s.into_bytes())),
            };
            self.keys.push((key.into_bytes(), Arc::new(grant)));
        }
        Ok(self)
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether none are (then every request is refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The grant of `presented` if it is one of the keys. Every configured key is compared, in
    /// constant time, so timing does not tell how close a guess was.
    pub fn find(&self, presented: &str) -> Option<&Arc<Grant>> {
        let presented = presented.trim().as_bytes();
        if presented.is_empty() {
            return None;
        }
        let mut found = None;
        for (key, grant) in &self.keys {
            if bool::from(key.as_slice().ct_eq(presented)) {
                found = Some(grant);
            }
        }
        found
    }

    /// The grant of the key in an `Authorization: Bearer <key>` header value, if it is one.
    pub fn bearer(&self, authorization: Option<&str>) -> Option<&Arc<Grant>> {
        authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .and_then(|key| self.find(key))
    }

    /// The grant of the key with id `id`, if it is still configured.
    pub fn by_id(&self, id: &str) -> Option<&Arc<Grant>> {
        self.keys
            .iter()
            .map(|(_, grant)| grant)
            .find(|grant| grant.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain_grant() -> Grant {
        Grant {
            id: String::new(),
            name: String::new(),
            scan: Scopes::any(),
            bulk: Scopes::default(),
            events: Scopes::default(),
            max_queued_jobs: 10,
            callback_secret: None,
        }
    }

    #[test]
    fn keys_from_list_and_file_match_exactly() {
        let keys = ApiKeys::plain(
            Some("secret1, secret2,,"),
            Some("# comment\nfrom-file\n\n"),
            &plain_grant(),
        );
        assert_eq!(keys.len(), 3);
        assert!(keys.bearer(Some("Bearer secret1")).is_some());
        assert!(keys.bearer(Some("Bearer from-file")).is_some());
        for header in [
            None,
            Some("Bearer secret"),
            Some("Bearer secret12"),
            Some("secret1"),
            Some("Basic secret1"),
            Some("Bearer "),
        ] {
            assert!(keys.bearer(header).is_none(), "{header:?}");
        }
        assert!(
            ApiKeys::plain(None, None, &plain_grant())
                .bearer(Some("Bearer anything"))
                .is_none()
        );
        assert!(!format!("{keys:?}").contains("secret1"));
        let grant = keys.find("secret2").unwrap();
        assert_eq!(grant.id, key_id(b"secret2"));
        assert!(grant.scan.allows("any", "thing") && grant.events.is_empty());
    }

    #[test]
    fn entries_carry_their_scopes_quota_and_secret_and_bad_ones_are_refused() {
        let entries: Vec<KeyConfig> =
            toml::from_str::<std::collections::BTreeMap<String, Vec<KeyConfig>>>(
                r#"
            [[keys]]
            name = "billing"
            key = "billing-key-0123456789"
            scan = ["invoices/in/"]
            events = ["invoices"]
            max_queued_jobs = 5
            callback_secret = "billing-callbacks-0123"
            "#,
            )
            .unwrap()
            .remove("keys")
            .unwrap();
        let keys = ApiKeys::default()
            .with_entries(&entries, 100, |_| unreachable!())
            .unwrap();
        let grant = keys.find("billing-key-0123456789").unwrap();
        assert_eq!(grant.name, "billing");
        assert!(grant.scan.allows("invoices", "in/a") && !grant.scan.allows("invoices", "a"));
        assert!(grant.bulk.is_empty());
        assert_eq!(grant.max_queued_jobs, 5);
        assert_eq!(
            grant.callback_secret.as_deref(),
            Some(&b"billing-callbacks-0123"[..])
        );
        assert!(keys.by_id(&grant.id).is_some());

        let twice = ApiKeys::default().with_entries(
            &[entries[0].clone(), entries[0].clone()],
            1,
            |_| unreachable!(),
        );
        assert!(twice.unwrap_err().to_string().contains("twice"));
        let short = KeyConfig {
            name: "short".into(),
            key: Some("abc".into()),
            ..KeyConfig::default()
        };
        assert!(
            ApiKeys::default()
                .with_entries(&[short], 1, |_| unreachable!())
                .is_err()
        );
        let none = KeyConfig {
            name: "none".into(),
            ..KeyConfig::default()
        };
        assert!(
            ApiKeys::default()
                .with_entries(&[none], 1, |_| unreachable!())
                .is_err()
        );
        let from_file = KeyConfig {
            name: "file".into(),
            key_file: Some("/keys/f".into()),
            ..KeyConfig::default()
        };
        let keys = ApiKeys::default()
            .with_entries(&[from_file], 7, |path| {
                assert_eq!(path, std::path::Path::new("/keys/f"));
                Ok("from-a-file-0123456789\n".to_owned())
            })
            .unwrap();
        assert_eq!(
            keys.find("from-a-file-0123456789").unwrap().max_queued_jobs,
            7
        );
    }
}
