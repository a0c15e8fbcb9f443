//! API keys and callback signatures.
//!
//! Callers authenticate with `Authorization: Bearer <key>` (or `x-api-key: <key>`, which the
//! original product's SDKs send when configured with an API key); keys come as a comma-separated list
//! (as the original product takes them) and/or a file with one key per line, and are compared in
//! constant time.
//!
//! Every callback carries `X-Verdict-Timestamp: <unix seconds>` and
//! `X-Verdict-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. A receiver
//! recomputes the HMAC over the timestamp, a dot and the raw body bytes, compares it in constant
//! time, and rejects timestamps too far from its clock (replays).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The keys that may call the API.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Vec<u8>>,
    /// Each key's id, in the same order: the first 16 hex digits of its SHA-256. Stored with
    /// jobs in place of the key, which never leaves memory.
    ids: Vec<String>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys themselves.
        f.debug_struct("ApiKeys")
            .field("count", &self.keys.len())
            .finish()
    }
}

impl ApiKeys {
    /// Keys from a comma-separated list and/or the lines of a file's text; blanks are ignored.
    pub fn new(list: Option<&str>, file_text: Option<&str>) -> Self {
        let from_list = list.into_iter().flat_map(|l| l.split(','));
        let from_file = file_text.into_iter().flat_map(str::lines);
        let keys = from_list
            .chain(from_file)
            .map(str::trim)
            .filter(|k| !k.is_empty() && !k.starts_with('#'))
            .map(|k| k.as_bytes().to_vec())
            .collect::<Vec<_>>();
        let ids = keys
            .iter()
            .map(|key| {
                use sha2::Digest;
                hex::encode(&Sha256::digest(key)[..8])
            })
            .collect();
        ApiKeys { keys, ids }
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether none are (then every request is refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether an `Authorization` header value is `Bearer <one of the keys>`.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        self.bearer_id(authorization).is_some()
    }

    /// The id of the key in an `Authorization: Bearer <key>` header value, if it is one.
    pub fn bearer_id(&self, authorization: Option<&str>) -> Option<&str> {
        authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .and_then(|key| self.id_of(key))
    }

    /// Whether `presented` is one of the keys.
    pub fn allows_key(&self, presented: &str) -> bool {
        self.id_of(presented).is_some()
    }

    /// The id of `presented` if it is one of the keys. Every configured key is compared, in
    /// constant time, so timing does not tell how close a guess was.
    pub fn id_of(&self, presented: &str) -> Option<&str> {
        let presented = presented.trim().as_bytes();
        if presented.is_empty() {
            return None;
        }
        let mut found = None;
        for (key, id) in self.keys.iter().zip(&self.ids) {
            if bool::from(key.as_slice().ct_eq(presented)) {
                found = Some(id.as_str());
            }
        }
        found
    }
}

/// The `X-Verdict-Signature` value for a callback body sent at `timestamp`.
pub fn sign_callback(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a signature as a receiver would (constant-time comparison).
pub fn verify_callback(secret: &[u8], timestamp: u64, body: &[u8], signature: &str) -> bool {
    let Some(Ok(expected)) = signature.strip_prefix("v1=").map(hex::decode) else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&expected).is_ok()
}

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_list_and_file_match_exactly() {
        let keys = ApiKeys::new(Some("secret1, secret2,,"), Some("# comment\nfrom-file\n\n"));
        assert_eq!(keys.len(), 3);
        assert!(keys.allows(Some("Bearer secret1")));
        assert!(keys.allows(Some("Bearer from-file")));
        for header in [
            None,
            Some("Bearer secret"),
            Some("Bearer secret12"),
            Some("secret1"),
            Some("Basic secret1"),
            Some("Bearer "),
        ] {
            assert!(!keys.allows(header), "{header:?}");
        }
        assert!(!ApiKeys::new(None, None).allows(Some("Bearer anything")));
        assert!(!format!("{keys:?}").contains("secret1"));
    }

    #[test]
    fn signatures_verify_and_any_change_breaks_them() {
        let body = br#"{"status":"clean","trace_id":"t1"}"#;
        let signature = sign_callback(b"shared secret", 1_700_000_000, body);
        assert!(signature.starts_with("v1=") && signature.len() == 3 + 64);
        assert!(verify_callback(
            b"shared secret",
            1_700_000_000,
            body,
            &signature
        ));
        assert!(!verify_callback(
            b"other secret",
            1_700_000_000,
            body,
            &signature
        ));
        assert!(!verify_callback(
            b"shared secret",
            1_700_000_001,
            body,
            &signature
        ));
        assert!(!verify_callback(
            b"shared secret",
            1_700_000_000,
            br#"{"status":"infected"}"#,
            &signature
        ));
        assert!(!verify_callback(
            b"shared secret",
            1_700_000_000,
            body,
            "v1=zz"
        ));
        // Known answer (computed independently with Python's hmac module), so receivers in other
        // languages can test their code against it.
        assert_eq!(
            sign_callback(b"key", 0, b"body"),
            "v1=e0af04d5c83b24373ff89f540d0c8fd9a4e097e2b3ee8318ab5541047697626d"
        );
    }
}
