//! `verdict-async` (contract section 2): submit a URL or an S3 object, get the verdict by signed
//! callback or by polling; synchronous siblings scan in the request. Jobs and results live in an
//! embedded durable store ([`EmbeddedStore`], one process) or in Redis ([`RedisStore`], any
//! number of instances), behind the [`JobQueue`] and [`ResultStore`] traits. Bucket event
//! webhooks ([`events`]) become jobs that scan and tag each new object.

pub mod bulk;
mod callback;
pub mod config;
mod embedded;
mod error;
pub mod events;
mod handlers;
mod job;
mod metrics;
mod openapi;
mod redis_store;
mod security;
mod server;
mod source;
pub mod sqs;
mod store;
pub mod wire;
mod worker;

pub use callback::CallbackPolicy;
pub use config::Config;
pub use embedded::EmbeddedStore;
pub use handlers::{MAX_CUSTOM_DATA, MAX_TRACE_ID};
pub use job::{Job, JobSpec, Source};
pub use redis_store::RedisStore;
pub use security::{ApiKeys, sign_callback, verify_callback};
pub use server::{AppState, Settings, router, run};
pub use store::{JobQueue, Pushed, ResultStore, StoreError};
