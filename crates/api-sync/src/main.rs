//! The `verdict-sync` binary: configuration, logging, then serve (or manage users).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::Context;
use api_sync::{AppState, Config, run, users};
use clap::{Parser, Subcommand};
use http_edge::config_file::ServiceConfig;

#[derive(Parser)]
#[command(
    name = "verdict-sync",
    version,
    about = "Verdict's synchronous scanning API"
)]
struct Cli {
    /// Configuration file (TOML); also VERDICT_CONFIG.
    #[arg(long, short, env = "VERDICT_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// On a first start (no users yet), create the user `admin` with a random password and
    /// print the password once.
    #[arg(long, global = true)]
    init: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add or replace a user; the password is read from stdin (prompted on a terminal).
    Add {
        /// The user name.
        name: String,
        /// The users file [default: the configured one].
        #[arg(long)]
        users: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    http_edge::init_logging();
    let config = Config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            if cli.init {
                first_start(&config)?;
            }
            let state = AppState::from_config(&config).await?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            run(listener, state, http_edge::shutdown_signal()).await?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::User {
            command: UserCommand::Add { name, users: file },
        } => {
            let file = file.unwrap_or(config.users_file);
            let password = if std::io::stdin().is_terminal() {
                rpassword::prompt_password(format!("password for {name}: "))?
            } else {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            };
            users::add_user(&file, &name, &password)?;
            eprintln!("user {name} saved in {}", file.display());
            Ok(())
        }
    }
}

/// Makes the first user when there is none, and shows its password this once.
fn first_start(config: &Config) -> anyhow::Result<()> {
    let file = &config.users_file;
    let Some(password) = users::init_admin(file)
        .with_context(|| format!("creating the first user in {}", file.display()))?
    else {
        return Ok(());
    };
    let name = users::FIRST_USER;
    eprintln!(
        "\nFirst start: created the user `{name}` with the password\n\n    {password}\n\n\
         It is shown only this once; {} keeps only its hash. Log in at http://{}/ (or\n\
         POST /api/Token). Change it with `verdict-sync user add {name}` (scripts/run.sh user add {name}).\n",
        file.display(),
        config.listen
    );
    Ok(())
}
