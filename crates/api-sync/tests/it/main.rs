//! verdict-sync end to end: the real server on a loopback port, a real HTTP client, a real
//! S3-compatible server (started by scripts/services.sh) and a real HTTP server for URL scans, and a real browser for the page.

#![allow(clippy::unwrap_used)]

mod auth;
mod documented;
mod edge;
mod freshness;
mod golden;
mod page;
mod scan;
mod storage_and_urls;
mod testutil;
