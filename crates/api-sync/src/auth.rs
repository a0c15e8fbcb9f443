//! Tokens and login throttling. Tokens are HS256 JWTs with `exp`, signed with a key every
//! replica shares, so any replica verifies any token. Only HS256 is accepted: `none`, other
//! algorithms, tampered and expired tokens are all refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Expires at (seconds since the epoch).
    pub exp: u64,
}

/// Issues and verifies tokens.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl Tokens {
    /// Tokens signed with `key`, valid for `ttl`.
    pub fn new(key: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Tokens {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            ttl,
        }
    }

    /// Validity of new tokens.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new token for `user`.
    pub fn issue(&self, user: &str) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: user.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
}

/// Slows down repeated failed logins from one client: after a few failures each answer waits
/// longer (doubling, capped), so guessing passwords is slow; a success clears the record.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: std::sync::Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

const FREE_FAILURES: u32 = 3;
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
const MAX_DELAY: Duration = Duration::from_secs(10);
const MAX_TRACKED: usize = 100_000;

impl Throttle {
    /// How long to wait before answering this client.
    pub fn delay(&self, client: IpAddr) -> Duration {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(&client) {
            Some((count, last)) if *count > FREE_FAILURES && last.elapsed() < FORGET_AFTER => {
                let doublings = (count - FREE_FAILURES).min(10);
                (Duration::from_millis(250) * 2u32.pow(doublings - 1)).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    /// Records a failed login.
    pub fn failed(&self, client: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, (_, last)| last.elapsed() < FORGET_AFTER);
        }
        let entry = failures.entry(client).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = Instant::now();
    }

    /// Clears the record after a successful login.
    pub fn succeeded(&self, client: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_other_keys() {
        let tokens = Tokens::new(b"key one", Duration::from_secs(60));
        let token = tokens.issue("alice").unwrap();
        assert_eq!(tokens.verify(&token).unwrap().sub, "alice");
        let other = Tokens::new(b"key two", Duration::from_secs(60));
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn throttle_grows_after_free_failures_and_resets_on_success() {
        let throttle = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            throttle.failed(ip);
        }
        assert_eq!(throttle.delay(ip), Duration::ZERO);
        throttle.failed(ip);
        assert_eq!(throttle.delay(ip), Duration::from_millis(250));
        throttle.failed(ip);
        assert_eq!(throttle.delay(ip), Duration::from_millis(500));
        throttle.succeeded(ip);
        assert_eq!(throttle.delay(ip), Duration::ZERO);
    }
}
