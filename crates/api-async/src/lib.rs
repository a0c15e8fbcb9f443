//! `verdict-async` (contract section 2): submit a URL or an S3 object, get the verdict by signed
//! callback or by polling; synchronous siblings scan in the request. Jobs and results live in an
//! embedded durable store ([`EmbeddedStore`], one process) or in Redis ([`RedisStore`], any
//! number of instances), behind the [`JobQueue`] and [`ResultStore`] traits (`jobs` holds a
//! job's whole life). Bucket events ([`events`], [`sqs`]) and bulk scans ([`bulk`]) become jobs
//! that scan each object and act on it.

pub mod config;
mod error;
pub mod events;
mod handlers;
mod jobs;
pub mod keys;
mod metrics;
mod openapi;
mod pace;
pub mod rescan;
mod schema;
mod security;
mod server;
pub mod sqs;
mod state;
pub mod wire;

// The job modules by their short names, as the rest of the crate refers to them.
pub use jobs::bulk;
use jobs::{callback, clock, embedded, job, queue as store, redis_store, source, worker};

pub use callback::CallbackPolicy;
pub use clock::{Clock, ManualClock};
pub use config::Config;
pub use embedded::EmbeddedStore;
pub use job::{Job, JobSpec, Source};
pub use keys::{ApiKeys, Grant, KeyConfig};
pub use redis_store::RedisStore;
pub use schema::{MAX_CUSTOM_DATA, MAX_TRACE_ID};
pub use security::{sign_callback, verify_callback};
pub use server::{router, run};
pub use state::{AppState, Settings};
pub use store::{JobQueue, Pushed, ResultStore, StoreError};
