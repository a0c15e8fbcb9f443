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
    pub fn verify(&self, token: &str) -> Result<Claims, TokenRefused> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(TokenRefused)
    }
}

/// Why a token is not accepted (bad signature, expired, malformed): for the log; callers get
/// one answer for all of them.
#[derive(Debug, thiserror::Error)]
#[error("token refused: {0}")]
pub struct TokenRefused(#[source] jsonwebtoken::errors::Error);

/// Slows down password guessing. Failures are counted per client address and per user name;
/// past a few, each further attempt on either count gets a turn of its own, later by a delay
/// that doubles with the failures (capped). Turns are handed out when attempts arrive, so
/// parallel guesses queue behind each other instead of all running at once, and an attempt
/// whose turn is too far off is refused without touching the password hash. Only the user's own
/// successful login clears the user's count; the address's count is never cleared by a
/// success (another account's login from the same address must not wipe it), only by time.
#[derive(Debug, Default)]
pub struct Throttle {
    records: std::sync::Mutex<HashMap<Subject, Record>>,
}

/// What failures are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Address(IpAddr),
    User(String),
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    /// The earliest time the next attempt may run.
    next_turn: Instant,
}

const FREE_FAILURES: u32 = 3;
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
const MAX_DELAY: Duration = Duration::from_secs(10);
/// An attempt whose turn is further off than this is refused at once (429).
const MAX_WAIT: Duration = Duration::from_secs(10);
const MAX_TRACKED: usize = 100_000;
/// User names are counted by at most this many bytes (a name is the caller's to choose).
const MAX_NAME: usize = 256;

/// A login attempt may not run yet; the client should retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub Duration);

fn step(failures: u32) -> Duration {
    if failures <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES).min(10);
    (Duration::from_millis(250) * 2u32.pow(doublings - 1)).min(MAX_DELAY)
}

fn subjects(client: IpAddr, user: &str) -> [Subject; 2] {
    let mut end = user.len().min(MAX_NAME);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    [
        Subject::Address(client),
        Subject::User(user[..end].to_owned()),
    ]
}

impl Throttle {
    /// Takes a turn for an attempt by `client` as `user`: how long to wait before checking the
    /// password, or [`Refused`] when the turn is too far off.
    pub fn reserve(&self, client: IpAddr, user: &str) -> Result<Duration, Refused> {
        self.reserve_at(Instant::now(), client, user)
    }

    fn reserve_at(&self, now: Instant, client: IpAddr, user: &str) -> Result<Duration, Refused> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let subjects = subjects(client, user);
        let mut turn = now;
        for subject in &subjects {
            if let Some(record) = records
                .get(subject)
                .filter(|r| live(r, now) && step(r.failures) > Duration::ZERO)
            {
                turn = turn.max(record.next_turn);
            }
        }
        let wait = turn - now;
        if wait > MAX_WAIT {
            return Err(Refused(wait - MAX_WAIT));
        }
        for subject in &subjects {
            if let Some(record) = records.get_mut(subject).filter(|r| live(r, now)) {
                let step = step(record.failures);
                if step > Duration::ZERO {
                    record.next_turn = turn + step;
                }
            }
        }
        Ok(wait)
    }

    /// Records a failed login by `client` as `user`.
    pub fn failed(&self, client: IpAddr, user: &str) {
        self.failed_at(Instant::now(), client, user);
    }

    fn failed_at(&self, now: Instant, client: IpAddr, user: &str) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= MAX_TRACKED {
            records.retain(|_, record| live(record, now));
        }
        for subject in subjects(client, user) {
            if records.len() >= MAX_TRACKED && !records.contains_key(&subject) {
                // Full of live records: an attacker's flood of names; the address still counts.
                continue;
            }
            let record = records.entry(subject).or_insert(Record {
                failures: 0,
                last: now,
                next_turn: now,
            });
            if !live(record, now) {
                record.failures = 0;
                record.next_turn = now;
            }
            record.failures += 1;
            record.last = now;
            // The first throttled turn is one step after this failure.
            record.next_turn = record.next_turn.max(now + step(record.failures));
        }
    }

    /// Clears `user`'s count after the user logged in. The address's count stays.
    pub fn succeeded(&self, user: &str) {
        let [_, user] = subjects(IpAddr::from([0, 0, 0, 0]), user);
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&user);
    }
}

fn live(record: &Record, now: Instant) -> bool {
    now.saturating_duration_since(record.last) < FORGET_AFTER
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

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn attempts_wait_longer_after_the_free_failures_and_the_users_success_clears_them() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            throttle.failed_at(t0, A, "alice");
        }
        assert_eq!(throttle.reserve_at(t0, A, "alice"), Ok(Duration::ZERO));
        throttle.failed_at(t0, A, "alice");
        assert_eq!(
            throttle.reserve_at(t0, A, "alice"),
            Ok(Duration::from_millis(250))
        );
        // From another address the user's own count still applies.
        let t1 = t0 + Duration::from_secs(1);
        throttle.failed_at(t1, B, "alice");
        assert_eq!(
            throttle.reserve_at(t1, B, "alice"),
            Ok(Duration::from_millis(500))
        );
        throttle.succeeded("alice");
        assert_eq!(
            throttle.reserve_at(t1 + Duration::from_secs(1), B, "alice"),
            Ok(Duration::ZERO),
            "B has one failure and alice none"
        );
    }

    #[test]
    fn another_users_success_does_not_clear_the_address() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        for _ in 0..6 {
            throttle.failed_at(t0, A, "alice");
        }
        throttle.succeeded("mallory");
        let wait = throttle.reserve_at(t0, A, "bob").unwrap();
        assert!(wait >= Duration::from_secs(1), "{wait:?}");
    }

    #[test]
    fn parallel_attempts_queue_and_the_far_ones_are_refused() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            throttle.failed_at(t0, A, "alice");
        }
        // 32 attempts arriving together, before any of them has failed.
        let answers: Vec<_> = (0..32)
            .map(|_| throttle.reserve_at(t0, A, "alice"))
            .collect();
        let waits: Vec<Duration> = answers.iter().filter_map(|a| a.ok()).collect();
        assert!(
            waits.windows(2).all(|w| w[1] > w[0]),
            "each attempt waits longer than the one before: {waits:?}"
        );
        assert!(waits.iter().all(|w| *w <= MAX_WAIT));
        let refused = answers.iter().filter(|a| a.is_err()).count();
        assert!(refused >= 10, "{refused} of 32 refused");
    }

    #[test]
    fn counts_expire_and_names_are_bounded() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        let long = "é".repeat(1000);
        for _ in 0..8 {
            throttle.failed_at(t0, A, &long);
        }
        let later = t0 + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(throttle.reserve_at(later, A, &long), Ok(Duration::ZERO));
        let records = throttle.records.lock().unwrap();
        assert!(records.keys().all(|k| match k {
            Subject::User(name) => name.len() <= MAX_NAME,
            Subject::Address(_) => true,
        }));
    }
}
