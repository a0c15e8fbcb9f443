//! Scopes: the buckets and prefixes a caller may reach, as a configuration writes them
//! (`"*"`, `"bucket"`, `"bucket/prefix"`), and the two questions asked of them: may it reach
//! this object, and every object under this prefix.

use serde::Deserialize;

/// A list of buckets and prefixes. Empty reaches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct Scopes {
    any: bool,
    /// (bucket, key prefix; empty for the whole bucket).
    places: Vec<(String, String)>,
}

/// A scope that does not name a bucket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a scope: write \"*\", \"bucket\" or \"bucket/prefix\"")]
pub struct ScopeError(String);

impl TryFrom<Vec<String>> for Scopes {
    type Error = ScopeError;

    fn try_from(written: Vec<String>) -> Result<Self, ScopeError> {
        let mut scopes = Scopes::default();
        for entry in written {
            if entry == "*" {
                scopes.any = true;
                continue;
            }
            let (bucket, prefix) = entry.split_once('/').unwrap_or((entry.as_str(), ""));
            if bucket.is_empty() || bucket.contains('*') {
                return Err(ScopeError(entry));
            }
            scopes.places.push((bucket.to_owned(), prefix.to_owned()));
        }
        Ok(scopes)
    }
}

impl Scopes {
    /// Every bucket and key.
    pub fn any() -> Self {
        Scopes {
            any: true,
            places: Vec::new(),
        }
    }

    /// These buckets, each under these prefixes (all keys when `prefixes` is empty).
    pub fn buckets(buckets: &[String], prefixes: &[String]) -> Self {
        let prefixes: Vec<&str> = if prefixes.is_empty() {
            vec![""]
        } else {
            prefixes.iter().map(String::as_str).collect()
        };
        Scopes {
            any: false,
            places: buckets
                .iter()
                .flat_map(|b| prefixes.iter().map(move |p| (b.clone(), (*p).to_owned())))
                .collect(),
        }
    }

    /// Whether it reaches nothing.
    pub fn is_empty(&self) -> bool {
        !self.any && self.places.is_empty()
    }

    /// Whether it reaches `bucket`/`key`.
    pub fn allows(&self, bucket: &str, key: &str) -> bool {
        self.any
            || self
                .places
                .iter()
                .any(|(b, p)| b == bucket && key.starts_with(p.as_str()))
    }

    /// Whether it reaches every key of `bucket` under `prefix`.
    pub fn covers(&self, bucket: &str, prefix: &str) -> bool {
        self.any
            || self
                .places
                .iter()
                .any(|(b, p)| b == bucket && prefix.starts_with(p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[&str]) -> Scopes {
        Scopes::try_from(list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn scopes_reach_what_they_name_and_nothing_beside() {
        let s = scopes(&["invoices/in/", "reports"]);
        assert!(s.allows("invoices", "in/a.pdf"));
        assert!(!s.allows("invoices", "out/a.pdf"));
        assert!(
            !s.allows("invoices", "in"),
            "the prefix itself is not under it"
        );
        assert!(s.allows("reports", "any/thing"));
        assert!(!s.allows("reports-2", "x"));
        assert!(s.covers("invoices", "in/2026/"));
        assert!(
            !s.covers("invoices", ""),
            "the whole bucket is more than in/"
        );
        assert!(!s.covers("invoices", "i"));
        assert!(s.covers("reports", ""));
        assert!(scopes(&["*"]).covers("anything", ""));
        assert!(Scopes::default().is_empty());
        assert!(!Scopes::default().allows("b", "k"));
        for bad in ["", "/prefix", "buck*"] {
            assert!(
                Scopes::try_from(vec![bad.to_owned()]).is_err(),
                "{bad:?} is refused"
            );
        }
        let watched = Scopes::buckets(&["up".into()], &["a/".into(), "b/".into()]);
        assert!(watched.allows("up", "b/x") && !watched.allows("up", "c/x"));
        assert!(Scopes::buckets(&["up".into()], &[]).covers("up", ""));
    }
}
