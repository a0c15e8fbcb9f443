//! Users: a file of `name:argon2-hash` lines. Passwords are only ever stored as argon2id hashes;
//! checking an unknown name still runs a hash verification, so the answer takes the same time.

use std::collections::HashMap;
use std::path::Path;

use argon2::password_hash::{self, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The users file could not be read or written, or an entry is invalid.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Reading or writing the file.
    #[error("users file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line that is not `name:hash`.
    #[error("users file {path}, line {line}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A name with `:` or white space, or an empty password.
    #[error("{0}")]
    BadInput(String),
}

/// Loaded users.
#[derive(Debug, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
    /// Verified against when the name is unknown, to take the same time.
    decoy: String,
}

impl Users {
    /// Loads the file; a missing file is no users (the server then says how to add one).
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(UsersError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let mut hashes = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let invalid = |message: &str| UsersError::Invalid {
                path: path.display().to_string(),
                line: i + 1,
                message: message.to_owned(),
            };
            let (name, hash) = line
                .split_once(':')
                .ok_or_else(|| invalid("expected name:hash"))?;
            PasswordHash::new(hash).map_err(|_| invalid("not an argon2 hash"))?;
            hashes.insert(name.to_owned(), hash.to_owned());
        }
        Ok(Users {
            hashes,
            decoy: hash_password("decoy password for unknown users").unwrap_or_default(),
        })
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether a user of this name exists (a token names its user; one removed since the token
    /// was issued is refused).
    pub fn contains(&self, name: &str) -> bool {
        self.hashes.contains_key(name)
    }

    /// Whether `name` exists and `password` is right. Takes the same time for unknown names.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        self.verify_in(name, password, &mut Vec::new())
    }

    /// [`Users::verify`] with argon2's working memory in `memory` (grown to what the hash's
    /// parameters need, and kept by the caller for the next check).
    pub fn verify_in(&self, name: &str, password: &str, memory: &mut Vec<Block>) -> bool {
        let (hash, known) = match self.hashes.get(name) {
            Some(hash) => (hash.as_str(), true),
            None => (self.decoy.as_str(), false),
        };
        check(hash, password, memory).unwrap_or(false) && known
    }
}

/// Whether `password` matches the argon2 PHC string `hash`, computed in `memory`.
fn check(hash: &str, password: &str, memory: &mut Vec<Block>) -> Option<bool> {
    let parsed = PasswordHash::new(hash).ok()?;
    let params = Params::try_from(&parsed).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = parsed
        .version
        .map_or(Some(Version::default()), |v| Version::try_from(v).ok())?;
    let expected = parsed.hash?;
    let mut salt = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
        .ok()?;
    // `Output`'s comparison takes the same time wherever the bytes differ.
    Some(password_hash::Output::new(&out).ok()? == expected)
}

/// Working memory for password checks, kept between them. Each argon2 check needs about
/// 19 MiB; allocated afresh, that much is kept by the allocator on each thread that ran a
/// check, so a burst of logins would leave the process hundreds of MiB larger. A check
/// borrows one set of blocks and gives it back; there are as many sets as checks may run.
#[derive(Debug, Default)]
pub struct CheckMemory {
    free: std::sync::Mutex<Vec<Vec<Block>>>,
}

impl CheckMemory {
    /// A set of blocks to check a password in (empty the first time; it grows on first use).
    pub fn take(&self) -> Vec<Block> {
        self.free
            .lock()
            .map(|mut free| free.pop().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Gives a set back for the next check.
    pub fn give(&self, blocks: Vec<Block>) {
        if let Ok(mut free) = self.free.lock() {
            free.push(blocks);
        }
    }
}

/// The users file, re-read when it changes, so `verdict-sync user add` takes effect without a
/// restart.
#[derive(Debug)]
pub struct UserStore {
    path: std::path::PathBuf,
    loaded: std::sync::RwLock<(Option<Stamp>, std::sync::Arc<Users>)>,
}

/// What tells one version of the users file from another. The modification time alone is not
/// enough: two writes within one tick of the file system's clock share it. Every write by
/// [`add_user`] is a new file renamed into place, so the inode changes each time too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

impl UserStore {
    /// Loads `path` now; fails if it exists but is invalid.
    pub fn open(path: &Path) -> Result<Self, UsersError> {
        let version = stamp(path);
        let users = Users::load(path)?;
        Ok(UserStore {
            path: path.to_owned(),
            loaded: std::sync::RwLock::new((version, std::sync::Arc::new(users))),
        })
    }

    /// The current users, reloaded first if the file changed. A file that became invalid keeps
    /// the previous users (and logs why).
    pub fn current(&self) -> std::sync::Arc<Users> {
        let version = stamp(&self.path);
        {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            if loaded.0 == version {
                return std::sync::Arc::clone(&loaded.1);
            }
        }
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        match Users::load(&self.path) {
            Ok(users) => {
                tracing::info!(users = users.len(), "users file reloaded");
                *loaded = (version, std::sync::Arc::new(users));
            }
            Err(e) => {
                tracing::error!(error = %e, "users file changed but is invalid; keeping the previous users")
            }
        }
        std::sync::Arc::clone(&loaded.1)
    }
}

/// An argon2id hash of `password` with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    let mut salt_bytes = [0u8; 16];
    rand::fill(&mut salt_bytes[..]);
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| UsersError::BadInput(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::BadInput(format!("hashing failed: {e}")))
}

/// Adds or replaces a user in the file (written atomically, mode 0600).
pub fn add_user(path: &Path, name: &str, password: &str) -> Result<(), UsersError> {
    if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
        return Err(UsersError::BadInput(format!(
            "user name {name:?} must be non-empty, without ':' or spaces"
        )));
    }
    if password.is_empty() {
        return Err(UsersError::BadInput("the password is empty".to_owned()));
    }
    let io = |source| UsersError::Io {
        path: path.display().to_string(),
        source,
    };
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let mut lines: Vec<String> = existing
        .lines()
        .filter(|l| l.split_once(':').map(|(n, _)| n) != Some(name))
        .map(str::to_owned)
        .collect();
    lines.push(format!("{name}:{}", hash_password(password)?));
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n").map_err(io)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// The first user's name, made by [`init_admin`].
pub const FIRST_USER: &str = "admin";

/// On a first start: when `path` holds no users, adds [`FIRST_USER`] with a random password and
/// returns that password (to be shown once; only its hash is stored). When users exist, changes
/// nothing and returns `None`.
pub fn init_admin(path: &Path) -> Result<Option<String>, UsersError> {
    let users = match Users::load(path) {
        Ok(users) => users,
        Err(UsersError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Users::default()
        }
        Err(e) => return Err(e),
    };
    if !users.is_empty() {
        return Ok(None);
    }
    // 18 random bytes, 24 characters of URL-safe base64-like text: 144 bits.
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_";
    let password: String = (0..24)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    add_user(path, FIRST_USER, &password)?;
    Ok(Some(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_with_the_same_modification_time_is_still_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        add_user(&path, "alice", "alice's password").unwrap();
        let store = UserStore::open(&path).unwrap();
        assert_eq!(store.current().len(), 1);
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        add_user(&path, "bob", "bob's password").unwrap();
        // As if both writes fell within one tick of the file system's clock.
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(before)
            .unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
        assert_eq!(store.current().len(), 2);
    }

    #[test]
    fn the_first_start_makes_one_admin_and_later_starts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let password = init_admin(&path)
            .unwrap()
            .expect("a password for the new admin");
        assert!(password.len() >= 20);
        let users = Users::load(&path).unwrap();
        assert_eq!(users.len(), 1);
        assert!(users.verify(FIRST_USER, &password));
        assert!(
            !std::fs::read_to_string(&path).unwrap().contains(&password),
            "only the hash is stored"
        );
        assert_eq!(
            init_admin(&path).unwrap(),
            None,
            "users exist: nothing made"
        );
        assert_eq!(Users::load(&path).unwrap().len(), 1);
        let other = dir.path().join("other");
        assert_ne!(
            init_admin(&other).unwrap().unwrap(),
            password,
            "random each time"
        );
    }

    #[test]
    fn add_then_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        add_user(&path, "alice", "s3cret").unwrap();
        add_user(&path, "bob", "other").unwrap();
        add_user(&path, "alice", "new-secret").unwrap();
        let users = Users::load(&path).unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.verify("alice", "new-secret"));
        assert!(!users.verify("alice", "s3cret"));
        assert!(!users.verify("mallory", "new-secret"));
        assert!(
            !std::fs::read_to_string(&path)
                .unwrap()
                .contains("new-secret")
        );
        assert!(add_user(&path, "bad name", "x").is_err());
    }

    #[test]
    fn checks_reuse_their_memory_and_agree_with_the_reference_verifier() {
        use argon2::PasswordVerifier;
        let hash = hash_password("right one").unwrap();
        let parsed = PasswordHash::new(&hash).unwrap();
        let memory = CheckMemory::default();
        let mut blocks = memory.take();
        for (password, right) in [
            ("right one", true),
            ("wrong one", false),
            ("right one", true),
        ] {
            assert_eq!(
                check(&hash, password, &mut blocks),
                Some(right),
                "{password}"
            );
            let reference = Argon2::default().verify_password(password.as_bytes(), &parsed);
            assert_eq!(reference.is_ok(), right, "{password}");
        }
        let needed = Params::try_from(&parsed).unwrap().block_count();
        assert_eq!(blocks.len(), needed);
        let address = blocks.as_ptr();
        memory.give(blocks);
        // The same set comes back for the next check, already grown.
        let again = memory.take();
        assert_eq!((again.as_ptr(), again.len()), (address, needed));
        assert_eq!(check("not a hash", "x", &mut Vec::new()), None);
    }
}
