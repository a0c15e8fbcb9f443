//! `verdict-sync`: the synchronous scanning API (contract section 1). Trade a username and
//! password for a token, then upload a file and get the verdict in the response; store clean
//! files, scan existing objects, scan URLs. The server is a library: [`AppState::from_config`],
//! [`router`], [`run`]; the binary only parses arguments, installs logging and calls them.

pub mod auth;
pub mod config;
mod handlers;
mod metrics;
mod openapi;
mod schema;
mod server;
mod slots;
mod state;
pub mod users;
pub mod wire;

pub use config::Config;
pub use http_edge::ApiError;
pub use server::{app, router, run};
pub use state::AppState;
