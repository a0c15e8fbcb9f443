//! What happens to an object once its scan has decided: the `[actions]` policy (tag, move to
//! quarantine, delete or nothing, per outcome, per bucket and prefix) and carrying it out, with
//! retries, on the version that was scanned. Both servers act through this one module.

use scan_core::Verdict;
use serde::{Deserialize, Serialize};

use crate::{ObjectInfo, ObjectRef, ObjectStore, StorageError};

/// A policy that cannot be carried out, or would remove clean files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(String);

/// What to do with an object once its scan has decided.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Tag it with `scan-result` and `scan-date` (merged into its tags).
    #[default]
    Tag,
    /// Tag it and move it to the quarantine bucket (copy, then delete the original version).
    Move,
    /// Delete it.
    Delete,
    /// Leave it as it is.
    None,
}

/// The `[actions]` section: the action for each outcome of a scan.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    /// For a clean object: `tag` or `none`.
    pub clean: Action,
    /// For an infected object.
    pub infected: Action,
    /// For an object not fully examined (unscannable, error, unreadable); `not_clean` is
    /// read as well, its earlier name.
    #[serde(alias = "not_clean")]
    pub not_examined: Action,
    /// Where `move` puts objects.
    pub quarantine_bucket: Option<String>,
    /// Prefix before the original key in the quarantine bucket.
    pub quarantine_prefix: String,
    /// Also act on objects scanned because a caller asked (verdict-async's `async/s3` and
    /// `sync/s3`, verdict-sync's `/api/Scan/Existing`); bucket events and bulk scans always
    /// act. Off by default: a caller asking for a verdict need not expect the object to move.
    pub on_requests: bool,
    /// Policies for particular buckets and prefixes, over the ones above: the rule with the
    /// longest matching prefix in the object's bucket wins, and what it leaves out comes from
    /// above.
    pub rules: Vec<ActionRule>,
}

/// One `[[actions.rules]]` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ActionRule {
    /// The bucket it applies to.
    pub bucket: String,
    /// Only keys starting with this (all keys when empty).
    #[serde(default)]
    pub prefix: String,
    /// For a clean object.
    pub clean: Option<Action>,
    /// For an infected object.
    pub infected: Option<Action>,
    /// For an object not fully examined (`not_clean`, its earlier name, is read as well).
    #[serde(alias = "not_clean")]
    pub not_examined: Option<Action>,
    /// Where `move` puts objects.
    pub quarantine_bucket: Option<String>,
    /// Prefix before the original key in the quarantine bucket.
    pub quarantine_prefix: Option<String>,
}

/// The actions that apply to one object, resolved from `[actions]` and its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// For a clean object.
    pub clean: Action,
    /// For an infected object.
    pub infected: Action,
    /// For an object not fully examined.
    pub not_examined: Action,
    /// Where `move` puts objects.
    pub quarantine_bucket: Option<String>,
    /// Prefix before the original key in the quarantine bucket.
    pub quarantine_prefix: String,
}

impl Policy {
    /// What to do for an outcome (`None`: the object could not be read at all, so it was never
    /// judged: tagged `error` at most, never moved or deleted on a guess).
    pub fn action_for(&self, verdict: Option<scan_core::Verdict>) -> Action {
        let action = match verdict {
            Some(scan_core::Verdict::Clean) => self.clean,
            Some(scan_core::Verdict::Infected) => self.infected,
            _ => self.not_examined,
        };
        match (verdict, action) {
            (None, Action::Move | Action::Delete) => Action::Tag,
            (_, action) => action,
        }
    }

    /// Refuses a policy that could not be carried out or would remove clean files; `scope`
    /// names where it comes from.
    fn check(&self, scope: &str) -> Result<(), PolicyError> {
        if !matches!(self.clean, Action::Tag | Action::None) {
            return Err(PolicyError(format!(
                "{scope}: clean must be \"tag\" or \"none\": clean objects are never moved or deleted"
            )));
        }
        let moves = self.infected == Action::Move || self.not_examined == Action::Move;
        let quarantine = self
            .quarantine_bucket
            .as_deref()
            .is_some_and(|b| !b.is_empty());
        if moves && !quarantine {
            return Err(PolicyError(format!(
                "{scope}: \"move\" needs quarantine_bucket"
            )));
        }
        Ok(())
    }
}

impl Default for ActionsConfig {
    fn default() -> Self {
        ActionsConfig {
            clean: Action::Tag,
            infected: Action::Tag,
            not_examined: Action::Tag,
            quarantine_bucket: None,
            quarantine_prefix: String::new(),
            on_requests: false,
            rules: Vec::new(),
        }
    }
}

impl ActionsConfig {
    /// Refuses a policy, or a rule's, that could not be carried out or would remove clean
    /// files.
    pub fn check(&self) -> Result<(), PolicyError> {
        self.base().check("actions")?;
        for rule in &self.rules {
            if rule.bucket.is_empty() {
                return Err(PolicyError(
                    "actions.rules: every rule needs a bucket".to_owned(),
                ));
            }
            self.with(rule).check(&format!(
                "actions.rules (bucket {:?}, prefix {:?})",
                rule.bucket, rule.prefix
            ))?;
        }
        Ok(())
    }

    /// The policy for `bucket`/`key`.
    pub fn policy_for(&self, bucket: &str, key: &str) -> Policy {
        self.rules
            .iter()
            .filter(|rule| rule.bucket == bucket && key.starts_with(&rule.prefix))
            .max_by_key(|rule| rule.prefix.len())
            .map_or_else(|| self.base(), |rule| self.with(rule))
    }

    fn base(&self) -> Policy {
        Policy {
            clean: self.clean,
            infected: self.infected,
            not_examined: self.not_examined,
            quarantine_bucket: self.quarantine_bucket.clone(),
            quarantine_prefix: self.quarantine_prefix.clone(),
        }
    }

    fn with(&self, rule: &ActionRule) -> Policy {
        Policy {
            clean: rule.clean.unwrap_or(self.clean),
            infected: rule.infected.unwrap_or(self.infected),
            not_examined: rule.not_examined.unwrap_or(self.not_examined),
            quarantine_bucket: rule
                .quarantine_bucket
                .clone()
                .or_else(|| self.quarantine_bucket.clone()),
            quarantine_prefix: rule
                .quarantine_prefix
                .clone()
                .unwrap_or_else(|| self.quarantine_prefix.clone()),
        }
    }
}

/// What was done to an object, as results and callbacks report it in `object_action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionReport {
    /// `tag`, `move`, `delete` or `none`.
    pub action: String,
    /// Whether it was carried out.
    pub done: bool,
    /// Where `move` put the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Why it was not, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Tries of an action whose failure may pass (the store down or slow).
const TRIES: u32 = 3;

/// Carries out `action` on `object`: `tags` are what `tag` sets (merged into the object's own)
/// and what a moved object gets. Storage failures that may pass are tried again, up to 3 times
/// with a pause that doubles; the report says what was done, or why not.
pub async fn apply(
    store: &dyn ObjectStore,
    action: Action,
    policy: &Policy,
    object: &ObjectRef,
    tags: &[(String, String)],
) -> ActionReport {
    let name = match action {
        Action::None => {
            return ActionReport {
                action: "none".to_owned(),
                done: true,
                to: None,
                error: None,
            };
        }
        Action::Tag => "tag",
        Action::Move => "move",
        Action::Delete => "delete",
    };
    let mut tries = 0;
    let mut pause = std::time::Duration::from_millis(250);
    let done = loop {
        tries += 1;
        let attempt = match action {
            Action::None | Action::Tag => crate::tag_with(store, object, tags).await.map(|()| None),
            Action::Delete => store.delete(object).await.map(|()| None),
            Action::Move => {
                let to_bucket = policy.quarantine_bucket.as_deref().unwrap_or_default();
                crate::quarantine(store, object, to_bucket, &policy.quarantine_prefix, tags)
                    .await
                    .map(|to| Some(store.url(&to.bucket, &to.key)))
            }
        };
        match attempt {
            Err(StorageError::Backend(e)) if tries < TRIES => {
                tracing::warn!(bucket = ?object.bucket, key = ?object.key, action = name, attempt = tries, error = %e, "acting on the object failed; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            other => break other,
        }
    };
    match done {
        Ok(to) => {
            if let Some(to) = &to {
                tracing::info!(from = ?object.key, to = ?to, "moved to quarantine");
            }
            ActionReport {
                action: name.to_owned(),
                done: true,
                to,
                error: None,
            }
        }
        Err(e) => {
            tracing::error!(bucket = ?object.bucket, key = ?object.key, action = name, error = %e, "acting on the scanned object failed");
            ActionReport {
                action: name.to_owned(),
                done: false,
                to: None,
                error: Some(e.public_message()),
            }
        }
    }
}

/// Why `object` is no longer what was read as `read` (another entity tag or version, or gone),
/// if it is not. A failure to look counts as changed: acting on a guess could tag new bytes
/// clean.
pub async fn changed_since(
    store: &dyn ObjectStore,
    object: &ObjectRef,
    read: &ObjectInfo,
) -> Option<String> {
    match store.head(object).await {
        Ok(now) => {
            if read.etag.is_some() && now.etag != read.etag {
                Some(format!(
                    "its entity tag is now {:?}, was {:?}",
                    now.etag, read.etag
                ))
            } else if read.version.is_some() && now.version != read.version {
                Some(format!(
                    "its version is now {:?}, was {:?}",
                    now.version, read.version
                ))
            } else {
                None
            }
        }
        Err(e) => Some(format!(
            "it could not be looked up again: {}",
            e.public_message()
        )),
    }
}

/// A short fingerprint of `scanner`'s engines (the first 12 hex digits of a SHA-256 over each
/// engine's name and what its health check says of it: version, signature database, rule
/// count), so it changes when they do. Tagged as [`crate::FINGERPRINT_TAG`].
pub async fn fingerprint(scanner: &scan_core::Scanner) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for engine in scanner.engines() {
        hash.update(engine.name().as_bytes());
        hash.update([0]);
        match engine.health().await {
            Ok(description) => hash.update(description.as_bytes()),
            Err(_) => hash.update(b"unavailable"),
        }
        hash.update([0]);
    }
    hash.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The tags a scan's outcome sets: [`crate::outcome_tags`] and the engines' fingerprint.
pub fn tags_for(verdict: Option<Verdict>, date: &str, fingerprint: &str) -> Vec<(String, String)> {
    let mut tags = crate::outcome_tags(verdict, date);
    tags.push((crate::FINGERPRINT_TAG.to_owned(), fingerprint.to_owned()));
    tags
}

/// The address to act on: the version that was read, when the store keeps versions, so a newer
/// version written meanwhile is never the one tagged, moved or deleted.
pub fn scanned_version(object: &ObjectRef, read: Option<&ObjectInfo>) -> ObjectRef {
    let version = object.version.clone().or_else(|| {
        read.and_then(|info| info.version.clone())
            .filter(|v| v != "null")
    });
    ObjectRef {
        version,
        ..object.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_matching_rule_decides_and_fills_in_from_the_section() {
        let actions: ActionsConfig = toml::from_str(
            r#"
            infected = "tag"
            quarantine_bucket = "q"
            [[rules]]
            bucket = "uploads"
            infected = "delete"
            [[rules]]
            bucket = "uploads"
            prefix = "keep/"
            infected = "move"
            quarantine_prefix = "kept/"
            "#,
        )
        .unwrap();
        actions.check().unwrap();
        assert_eq!(
            actions.policy_for("uploads", "a.bin").infected,
            Action::Delete
        );
        let kept = actions.policy_for("uploads", "keep/a.bin");
        assert_eq!(kept.infected, Action::Move);
        assert_eq!(kept.quarantine_bucket.as_deref(), Some("q"));
        assert_eq!(kept.quarantine_prefix, "kept/");
        assert_eq!(
            kept.clean,
            Action::Tag,
            "left out of the rule: from the section"
        );
        assert_eq!(
            actions.policy_for("other", "keep/a.bin").infected,
            Action::Tag
        );

        let bad: ActionsConfig = toml::from_str(
            r#"
            [[rules]]
            bucket = "uploads"
            clean = "delete"
            "#,
        )
        .unwrap();
        let err = bad.check().unwrap_err().to_string();
        assert!(
            err.contains("uploads") && err.contains("never moved or deleted"),
            "{err}"
        );
        let no_quarantine: ActionsConfig = toml::from_str(
            r#"
            [[rules]]
            bucket = "uploads"
            infected = "move"
            "#,
        )
        .unwrap();
        assert!(
            no_quarantine
                .check()
                .unwrap_err()
                .to_string()
                .contains("quarantine_bucket")
        );
    }

    #[test]
    fn the_earlier_name_not_clean_is_still_read() {
        let actions: ActionsConfig = toml::from_str("not_clean = \"delete\"").unwrap();
        assert_eq!(actions.not_examined, Action::Delete);
        let actions: ActionsConfig = toml::from_str("not_examined = \"none\"").unwrap();
        assert_eq!(actions.not_examined, Action::None);
    }

    #[tokio::test]
    async fn actions_report_what_was_done_and_an_object_changed_since_its_scan_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::LocalStore::new(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        std::fs::create_dir_all(dir.path().join("q")).unwrap();
        std::fs::write(dir.path().join("b/x.bin"), "first").unwrap();
        let object = ObjectRef::new("b", "x.bin");
        let read = store.head(&object).await.unwrap();
        assert_eq!(changed_since(&store, &object, &read).await, None);

        let policy = Policy {
            clean: Action::Tag,
            infected: Action::Move,
            not_examined: Action::Delete,
            quarantine_bucket: Some("q".into()),
            quarantine_prefix: "held/".into(),
        };
        assert_eq!(
            policy.action_for(None),
            Action::Tag,
            "never moved on a guess"
        );
        let tags = vec![("scan-result".to_owned(), "infected".to_owned())];
        let moved = apply(&store, Action::Move, &policy, &object, &tags).await;
        assert!(moved.done, "{moved:?}");
        assert_eq!(moved.to.as_deref(), Some("local://q/held/x.bin"));
        assert!(
            changed_since(&store, &object, &read).await.is_some(),
            "gone since"
        );
        let failed = apply(&store, Action::Delete, &policy, &object, &tags).await;
        assert!(!failed.done);
        assert!(failed.error.unwrap().contains("does not exist"));

        std::fs::write(dir.path().join("b/y.bin"), "one").unwrap();
        let other = ObjectRef::new("b", "y.bin");
        let read = store.head(&other).await.unwrap();
        std::fs::write(dir.path().join("b/y.bin"), "longer now").unwrap();
        let why = changed_since(&store, &other, &read).await.unwrap();
        assert!(why.contains("entity tag"), "{why}");
        let none = apply(&store, Action::None, &policy, &other, &tags).await;
        assert_eq!((none.action.as_str(), none.done), ("none", true));
    }
}
