//! `verdict-async` (contract section 2, issue 4), in progress: what exists is the job model and
//! the [`JobQueue`]/[`ResultStore`] traits with their embedded, durable implementation
//! ([`EmbeddedStore`], on redb), and the same on Redis ([`RedisStore`]) for scale-out. The HTTP API, workers and callbacks are still to come; nothing here serves requests yet.

mod embedded;
mod job;
mod redis_store;
mod store;

pub use embedded::EmbeddedStore;
pub use job::{Job, JobSpec, Source};
pub use redis_store::RedisStore;
pub use store::{JobQueue, ResultStore, StoreError};
