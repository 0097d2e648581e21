//! `airudder-relay`: receives Airudder's task notifications, stores them, and prints them as
//! JSON lines on stdout or forwards them, signed per Standard Webhooks, to any team's service.
//!
//! Run with: `cargo run -p airudder-relay` (every setting: `cargo run -p airudder-relay --
//! --help`).

mod admin;
mod config;
mod event;
mod forward;
mod kinds;
mod listen;
mod metrics;
mod operate;
mod pace;
mod print;
mod rehearse;
mod server;
mod shown;
mod store;
mod time;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use config::LogFormat;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = config::Cli::parse();
    // The one TLS provider this binary carries (ring: no C toolchain beyond cc, no OpenSSL).
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(command) = cli.command.take() {
        return command.run().await;
    }
    let config = match cli.load() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("airudder-relay: {err}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => log.json().flatten_event(true).init(),
        LogFormat::Text => log
            .fmt_fields(shown::LogFields)
            .with_ansi(std::io::stderr().is_terminal())
            .init(),
    }
    let metrics = metrics::install();
    match server::run(config, metrics).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("airudder-relay: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The relay's commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    #[command(flatten)]
    Operate(crate::operate::Operate),
    #[command(flatten)]
    Rehearse(crate::rehearse::Rehearse),
}

impl Command {
    pub(crate) async fn run(self) -> std::process::ExitCode {
        match self {
            Self::Operate(operate) => operate.run().await,
            Self::Rehearse(rehearse) => rehearse.run().await,
        }
    }
}
