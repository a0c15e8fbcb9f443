//! Users: a file of `name:argon2-hash` lines. Passwords are only ever stored as argon2id hashes;
//! checking an unknown name still runs a hash verification, so the answer takes the same time.

use std::collections::HashMap;
use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

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

    /// Whether `name` exists and `password` is right. Takes the same time for unknown names.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let (hash, known) = match self.hashes.get(name) {
            Some(hash) => (hash.as_str(), true),
            None => (self.decoy.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        matches && known
    }
}

/// The users file, re-read when it changes, so `verdict-sync user add` takes effect without a
/// restart.
#[derive(Debug)]
pub struct UserStore {
    path: std::path::PathBuf,
    loaded: std::sync::RwLock<(Option<std::time::SystemTime>, std::sync::Arc<Users>)>,
}

impl UserStore {
    /// Loads `path` now; fails if it exists but is invalid.
    pub fn open(path: &Path) -> Result<Self, UsersError> {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let users = Users::load(path)?;
        Ok(UserStore {
            path: path.to_owned(),
            loaded: std::sync::RwLock::new((modified, std::sync::Arc::new(users))),
        })
    }

    /// The current users, reloaded first if the file changed. A file that became invalid keeps
    /// the previous users (and logs why).
    pub fn current(&self) -> std::sync::Arc<Users> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            if loaded.0 == modified {
                return std::sync::Arc::clone(&loaded.1);
            }
        }
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        match Users::load(&self.path) {
            Ok(users) => {
                tracing::info!(users = users.len(), "users file reloaded");
                *loaded = (modified, std::sync::Arc::new(users));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
