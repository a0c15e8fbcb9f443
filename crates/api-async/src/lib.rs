//! `verdict-async` (contract section 2, issue 4), in progress: what exists is the job model and
//! the [`JobQueue`]/[`ResultStore`] traits with their embedded, durable implementation
//! ([`EmbeddedStore`], on redb). The HTTP API, workers, callbacks and the Redis implementation
//! are still to come; nothing here serves requests yet.

mod embedded;
mod job;
mod store;

pub use embedded::EmbeddedStore;
pub use job::{Job, JobSpec, Source};
pub use store::{JobQueue, ResultStore, StoreError};
