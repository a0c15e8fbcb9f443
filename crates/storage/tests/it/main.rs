//! Storage against real services: an S3-compatible server (moto, started by
//! `scripts/services.sh`) through aws-sdk-s3, and real HTTP over loopback for guarded fetches
//! and the servers' edge.

#![allow(clippy::unwrap_used)]

#[cfg(feature = "edge")]
mod edge;
mod fetch;
mod s3;
