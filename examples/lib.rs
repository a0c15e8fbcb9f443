//! Runnable examples live beside this file; see `embed.rs` and `custom_engine.rs`.
