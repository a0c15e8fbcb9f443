//! verdict-async over real HTTP on loopback: the API and its status codes, callbacks and polling,
//! S3 jobs against the S3 server, Redis scale-out and crash durability with the real binary.

#![allow(clippy::unwrap_used)]

mod api;
mod bulk;
mod documented;
mod durability;
mod edge;
mod freshness;
mod golden;
mod jobs;
mod redis_queue;
mod sdk;
mod tenants;
mod testutil;
