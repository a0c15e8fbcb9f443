//! Engines through the real Scanner: embedded YARA and hashes, and real clamd and c-icap started
//! by `scripts/services.sh` (their addresses come from its env file; see `testutil`).

#![allow(clippy::unwrap_used)]

mod carriers;
mod clamd;
mod embedded;
mod freshness;
mod icap;
mod multi;
mod testutil;
