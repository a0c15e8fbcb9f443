//! scan-core integration tests: one binary, a module per area.

mod bombs;
mod broken;
mod engines;
mod formats;
mod testutil;
