//! scan-core integration tests: one binary, a module per area.

#![allow(clippy::unwrap_used)]

mod blocking;
mod bombs;
mod broken;
mod documents;
mod engines;
mod formats;
mod fuzz;
mod images;
mod installers;
mod mail;
mod testutil;
