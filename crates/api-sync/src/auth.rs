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

/// Slows down password guessing. Attempts are counted per client address (an IPv6 client's
/// /64) and per address and user name together, from the moment they start: an attempt still
/// being checked counts as a failure until it succeeds, so guesses sent in parallel meet the
/// throttle as guesses sent in a row do. Past a few, each further attempt on either count gets a
/// turn of its own, later by a delay that doubles with the count (capped); an attempt whose
/// turn is too far off is refused without touching the password hash.
///
/// Nothing is counted per user name alone, so guessing at a user's password from one address
/// never keeps that user out from another. (Guessing from many addresses at once is bounded by
/// the pool of password checks and argon2's cost, not by this.) A user's own successful login
/// clears that user's count from that address; the address's count is never cleared by a
/// success (another account's login from the same address must not wipe it), only by time.
#[derive(Debug, Default)]
pub struct Throttle {
    records: std::sync::Mutex<HashMap<Subject, Record>>,
}

/// What attempts are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Address(IpAddr),
    AddressUser(IpAddr, String),
}

#[derive(Debug, Clone, Copy)]
struct Record {
    /// Failed attempts not yet forgotten.
    failures: u32,
    /// Attempts started and not finished.
    pending: u32,
    last: Instant,
    /// The earliest time the next attempt may run.
    next_turn: Instant,
}

impl Record {
    fn counted(&self) -> u32 {
        self.failures + self.pending
    }
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

/// The wait before the next attempt once `count` attempts are counted.
fn step(count: u32) -> Duration {
    if count < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (count - FREE_FAILURES).min(10);
    (Duration::from_millis(250) * 2u32.pow(doublings)).min(MAX_DELAY)
}

fn subjects(client: IpAddr, user: &str) -> [Subject; 2] {
    let mut end = user.len().min(MAX_NAME);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    let client = http_edge::client_of(client);
    [
        Subject::Address(client),
        Subject::AddressUser(client, user[..end].to_owned()),
    ]
}

/// An attempt that holds its place in the counts until it is [`finished`](Attempt::finished);
/// one dropped unfinished (the client went away mid-check) counts as failed.
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    subjects: [Subject; 2],
    /// How long to wait before checking the password.
    pub wait: Duration,
    finished: bool,
}

impl Attempt<'_> {
    /// Ends the attempt: a failure stays counted; a success clears the user's count from this
    /// address.
    pub fn finished(mut self, succeeded: bool) {
        self.finished = true;
        self.throttle
            .finish(&self.subjects, succeeded, Instant::now());
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.throttle.finish(&self.subjects, false, Instant::now());
        }
    }
}

impl Throttle {
    /// Takes a turn for an attempt by `client` as `user`: how long to wait before checking the
    /// password, or [`Refused`] when the turn is too far off.
    pub fn attempt(&self, client: IpAddr, user: &str) -> Result<Attempt<'_>, Refused> {
        let subjects = subjects(client, user);
        let wait = self.reserve_at(Instant::now(), &subjects)?;
        Ok(Attempt {
            throttle: self,
            subjects,
            wait,
            finished: false,
        })
    }

    fn reserve_at(&self, now: Instant, subjects: &[Subject; 2]) -> Result<Duration, Refused> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= MAX_TRACKED {
            records.retain(|_, record| live(record, now) || record.pending > 0);
        }
        let mut turn = now;
        for subject in subjects {
            if let Some(record) = records.get(subject).filter(|r| live(r, now)) {
                turn = turn.max(record.next_turn);
            }
        }
        let wait = turn - now;
        if wait > MAX_WAIT {
            return Err(Refused(wait - MAX_WAIT));
        }
        for subject in subjects {
            if records.len() >= MAX_TRACKED && !records.contains_key(subject) {
                // Full of live records: an attacker's flood of names; the address still counts.
                continue;
            }
            let record = records.entry(subject.clone()).or_insert(Record {
                failures: 0,
                pending: 0,
                last: now,
                next_turn: now,
            });
            if !live(record, now) {
                record.failures = 0;
                record.next_turn = now;
            }
            record.pending += 1;
            record.last = now;
            let step = step(record.counted());
            if step > Duration::ZERO {
                record.next_turn = record.next_turn.max(turn) + step;
            }
        }
        Ok(wait)
    }

    fn finish(&self, subjects: &[Subject; 2], succeeded: bool, now: Instant) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        for subject in subjects {
            let Some(record) = records.get_mut(subject) else {
                continue;
            };
            record.pending = record.pending.saturating_sub(1);
            record.last = now;
            match (succeeded, subject) {
                (true, Subject::AddressUser(..)) => {
                    records.remove(subject);
                }
                (true, Subject::Address(_)) => {}
                (false, _) => record.failures += 1,
            }
        }
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

    /// `n` attempts by `client` as `user` at `now`, each finished as failed.
    fn fail(throttle: &Throttle, now: Instant, client: IpAddr, user: &str, n: usize) {
        for _ in 0..n {
            let subjects = subjects(client, user);
            let _ = throttle.reserve_at(now, &subjects);
            throttle.finish(&subjects, false, now);
        }
    }

    #[test]
    fn attempts_wait_longer_past_the_free_ones_and_the_users_success_clears_them() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        fail(&throttle, t0, A, "alice", FREE_FAILURES as usize);
        let wait = throttle.reserve_at(t0, &subjects(A, "alice")).unwrap();
        assert_eq!(wait, Duration::from_millis(250));
        throttle.finish(&subjects(A, "alice"), true, t0);
        // The address still counts the failures; the user from this address does not.
        let records = throttle.records.lock().unwrap();
        assert!(!records.contains_key(&subjects(A, "alice")[1]));
        assert_eq!(records[&subjects(A, "alice")[0]].failures, 3);
    }

    #[test]
    fn guessing_from_one_address_never_keeps_the_user_out_from_another() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        // A guess a second for a minute, as the attack did.
        for second in 0..60 {
            let at = t0 + Duration::from_secs(second);
            let subjects = subjects(A, "admin");
            let _ = throttle.reserve_at(at, &subjects);
            throttle.finish(&subjects, false, at);
        }
        let later = t0 + Duration::from_secs(61);
        assert_eq!(
            throttle.reserve_at(later, &subjects(B, "admin")),
            Ok(Duration::ZERO),
            "the owner, from elsewhere, is not held up"
        );
        assert_ne!(
            throttle.reserve_at(later, &subjects(A, "admin")),
            Ok(Duration::ZERO),
            "the guesser still is"
        );
    }

    #[test]
    fn another_users_success_does_not_clear_the_address() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        fail(&throttle, t0, A, "alice", 6);
        throttle.finish(&subjects(A, "mallory"), true, t0);
        let wait = throttle.reserve_at(t0, &subjects(A, "bob")).unwrap();
        assert!(wait >= Duration::from_secs(1), "{wait:?}");
    }

    #[test]
    fn parallel_attempts_count_before_they_fail_so_a_burst_is_bounded() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        // 46 attempts arriving together on a fresh address, none of them finished yet.
        let answers: Vec<_> = (0..46)
            .map(|i| throttle.reserve_at(t0, &subjects(A, &format!("user-{i}"))))
            .collect();
        let waits: Vec<Duration> = answers.iter().filter_map(|a| a.ok()).collect();
        assert_eq!(
            waits.iter().filter(|w| w.is_zero()).count(),
            FREE_FAILURES as usize,
            "only the free ones run at once: {waits:?}"
        );
        assert!(waits.iter().all(|w| *w <= MAX_WAIT));
        assert!(
            waits.len() <= 10,
            "{} of 46 get a password check at all",
            waits.len()
        );
    }

    #[test]
    fn an_abandoned_attempt_counts_as_failed() {
        let throttle = Throttle::default();
        for _ in 0..5 {
            let attempt = throttle.attempt(A, "alice").unwrap();
            drop(attempt);
        }
        let records = throttle.records.lock().unwrap();
        let address = &records[&Subject::Address(A)];
        assert_eq!((address.failures, address.pending), (5, 0));
    }

    #[test]
    fn counts_expire_names_are_bounded_and_ipv6_counts_by_its_64() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        let long = "é".repeat(1000);
        fail(&throttle, t0, A, &long, 8);
        let later = t0 + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(
            throttle.reserve_at(later, &subjects(A, &long)),
            Ok(Duration::ZERO)
        );
        {
            let records = throttle.records.lock().unwrap();
            assert!(records.keys().all(|k| match k {
                Subject::AddressUser(_, name) => name.len() <= MAX_NAME,
                Subject::Address(_) => true,
            }));
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        fail(&throttle, t0, v6, "alice", 8);
        assert_ne!(
            throttle.reserve_at(t0, &subjects(same_64, "bob")),
            Ok(Duration::ZERO),
            "another address of the same /64 is the same client"
        );
    }
}
