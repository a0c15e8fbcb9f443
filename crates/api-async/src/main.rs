//! The `verdict-async` binary: configuration, logging, then serve and work until a signal.

use std::path::PathBuf;

use anyhow::Context;
use api_async::{AppState, Config};
use clap::Parser;
use http_edge::config_file::ServiceConfig;

#[derive(Parser)]
#[command(
    name = "verdict-async",
    version,
    about = "Verdict's asynchronous scanning API: jobs, callbacks, polling"
)]
struct Cli {
    /// Configuration file (TOML); also VERDICT_CONFIG.
    #[arg(long, short, env = "VERDICT_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    http_edge::init_logging();
    let config = Config::load(cli.config.as_deref())?;
    let state = AppState::from_config(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    api_async::run(listener, state, http_edge::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
