//! The embedded verdict cache: [`scan_core::VerdictCache`] in a redb file, with a time to live
//! and a bound on its entries (the oldest go first), and `[cache]`, the setting every binary
//! reads it from.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use redb::{TableDefinition, WriteTransaction};
use scan_core::{CacheError, CacheKey, CachedVerdict, VerdictCache};
use serde::Deserialize;

/// Key (the content's SHA-256 and the fingerprint) to (stored at, in ms since the epoch; JSON).
const VERDICTS: TableDefinition<&[u8], (u64, &[u8])> = TableDefinition::new("verdicts");
/// (stored at, key): the order entries leave in when the cache is full.
const BY_AGE: TableDefinition<(u64, &[u8]), ()> = TableDefinition::new("verdicts_by_age");

/// `[cache]`: the verdict cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Whether outcomes are cached at all.
    pub enabled: bool,
    /// The embedded cache's file; each server has its own default beside its other files.
    /// (verdict-async on Redis keeps the cache in Redis, shared by every instance.)
    pub path: Option<PathBuf>,
    /// How long an outcome is kept, in seconds.
    pub ttl_secs: u64,
    /// How many outcomes are kept at most; the oldest leave first.
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            path: None,
            ttl_secs: 24 * 3600,
            max_entries: 1_000_000,
        }
    }
}

impl CacheConfig {
    /// The time to live.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs.max(1))
    }

    /// Opens the embedded cache this section asks for (`default_path` when it names none), or
    /// `None` when caching is off.
    pub fn open_embedded(
        &self,
        default_path: &Path,
    ) -> Result<Option<Arc<dyn VerdictCache>>, CacheError> {
        if !self.enabled {
            return Ok(None);
        }
        let path = self.path.as_deref().unwrap_or(default_path);
        let cache = RedbCache::open(path, self.ttl(), self.max_entries)?;
        tracing::info!(path = %path.display(), ttl_secs = self.ttl_secs, max_entries = self.max_entries, "verdict cache in an embedded file");
        Ok(Some(Arc::new(cache)))
    }
}

/// Verdicts in a redb file.
#[derive(Clone)]
pub struct RedbCache {
    db: Arc<Database>,
    ttl: Duration,
    max_entries: u64,
}

impl std::fmt::Debug for RedbCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbCache")
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

fn failed(what: &str) -> impl Fn(&dyn std::fmt::Display) -> CacheError + '_ {
    move |e| CacheError(format!("{what}: {e}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn key_bytes(key: &CacheKey) -> Vec<u8> {
    let mut bytes = key.sha256.to_vec();
    bytes.extend_from_slice(key.fingerprint.as_bytes());
    bytes
}

impl RedbCache {
    /// Opens (or creates) the cache file.
    pub fn open(path: &Path, ttl: Duration, max_entries: u64) -> Result<Self, CacheError> {
        let open = |e: &dyn std::fmt::Display| {
            CacheError(format!(
                "cannot open the cache file {}: {e}",
                path.display()
            ))
        };
        let db = Database::create(path).map_err(|e| open(&e))?;
        let txn = db.begin_write().map_err(|e| open(&e))?;
        txn.open_table(VERDICTS).map_err(|e| open(&e))?;
        txn.open_table(BY_AGE).map_err(|e| open(&e))?;
        txn.commit().map_err(|e| open(&e))?;
        Ok(RedbCache {
            db: Arc::new(db),
            ttl,
            max_entries: max_entries.max(1),
        })
    }

    fn get_now(&self, key: &CacheKey) -> Result<Option<CachedVerdict>, CacheError> {
        let txn = self.db.begin_read().map_err(|e| failed("read")(&e))?;
        let table = txn.open_table(VERDICTS).map_err(|e| failed("read")(&e))?;
        let Some(entry) = table
            .get(key_bytes(key).as_slice())
            .map_err(|e| failed("read")(&e))?
        else {
            return Ok(None);
        };
        let (stored_at, json) = entry.value();
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        if now_ms().saturating_sub(stored_at) >= ttl_ms {
            return Ok(None);
        }
        // An entry that no longer reads (written by another version) is a miss, not an error.
        Ok(serde_json::from_slice(json).ok())
    }

    fn put_now(&self, key: &CacheKey, verdict: &CachedVerdict) -> Result<(), CacheError> {
        let json = serde_json::to_vec(verdict).map_err(|e| failed("encode")(&e))?;
        let key = key_bytes(key);
        let mut txn = self.db.begin_write().map_err(|e| failed("write")(&e))?;
        // A cache may lose its last entries in a crash; it must not make every scan wait for
        // a disk flush.
        txn.set_durability(Durability::None)
            .map_err(|e| failed("write")(&e))?;
        self.insert(&txn, &key, &json)
            .map_err(|e| failed("write")(&e))?;
        txn.commit().map_err(|e| failed("write")(&e))
    }

    fn insert(&self, txn: &WriteTransaction, key: &[u8], json: &[u8]) -> Result<(), redb::Error> {
        let now = now_ms();
        let mut verdicts = txn.open_table(VERDICTS)?;
        let mut by_age = txn.open_table(BY_AGE)?;
        let previous = verdicts.insert(key, (now, json))?.map(|old| old.value().0);
        if let Some(previous) = previous {
            by_age.remove((previous, key))?;
        }
        by_age.insert((now, key), ())?;
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        // Expired entries and those past the bound leave oldest first, a few per write, so no
        // single write pays for a big clean-up.
        for _ in 0..8 {
            let full = verdicts.len()? > self.max_entries;
            let Some(oldest) = by_age.first()? else { break };
            let (stored_at, old_key) = oldest.0.value();
            if !full && now.saturating_sub(stored_at) < ttl_ms {
                break;
            }
            let old_key = old_key.to_vec();
            drop(oldest);
            by_age.remove((stored_at, old_key.as_slice()))?;
            verdicts.remove(old_key.as_slice())?;
        }
        Ok(())
    }

    /// How many outcomes are stored (expired ones not yet removed included).
    pub fn len(&self) -> Result<u64, CacheError> {
        let txn = self.db.begin_read().map_err(|e| failed("read")(&e))?;
        let table = txn.open_table(VERDICTS).map_err(|e| failed("read")(&e))?;
        table.len().map_err(|e| failed("read")(&e))
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> Result<bool, CacheError> {
        Ok(self.len()? == 0)
    }
}

#[async_trait::async_trait]
impl VerdictCache for RedbCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedVerdict>, CacheError> {
        // A read is one lookup in a small B-tree, mostly in redb's own page cache: cheaper done
        // here than handed to a blocking thread and back, which is most of a hit's cost.
        self.get_now(key)
    }

    async fn put(&self, key: &CacheKey, verdict: &CachedVerdict) -> Result<(), CacheError> {
        let (cache, key, verdict) = (self.clone(), key.clone(), verdict.clone());
        tokio::task::spawn_blocking(move || cache.put_now(&key, &verdict))
            .await
            .map_err(|e| failed("write")(&e))?
    }
}
