//! Storage against real services: an S3-compatible server (moto, started by
//! `scripts/services.sh`) through aws-sdk-s3, and real HTTP over loopback for guarded fetches
//! (the servers' edge is tested in the http-edge crate).

#![allow(clippy::unwrap_used)]

mod fetch;
mod s3;
