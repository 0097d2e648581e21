//! `airudder-relay`: receives Airudder's task notifications, stores them, and prints them as
//! JSON lines on stdout or forwards them, signed per Standard Webhooks, to any team's service.
//!
//! Run with: `cargo run -p airudder-relay` (every setting: `cargo run -p airudder-relay --
//! --help`).

mod activity;
mod admin;
mod broker;
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
mod signing_key;
mod store;
mod time;

use std::io::IsTerminal;
use std::process::ExitCode;

use config::LogFormat;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let refused = |err| {
        eprintln!("airudder-relay: {err}");
        ExitCode::from(2)
    };
    let mut cli = match config::Cli::from_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(config::Refused::Usage(err)) => err.exit(),
        Err(config::Refused::Setting(err)) => return refused(err),
    };
    // The one TLS provider this binary carries (ring: no C toolchain beyond cc, no OpenSSL).
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(command) = cli.command.take() {
        return command.run(cli.admin_token()).await;
    }
    let config = match cli.load() {
        Ok(config) => config,
        Err(err) => return refused(err),
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The start-up and stop lines (where it listens, where it forwards) whatever the level,
    // unless RUST_LOG names them.
    if !std::env::var("RUST_LOG").is_ok_and(|log| log.contains(server::STARTUP))
        && let Ok(startup) = format!("{}=info", server::STARTUP).parse()
    {
        filter = filter.add_directive(startup);
    }
    // lapin logs a message RabbitMQ returned (unroutable) at WARN, body and signature included,
    // and a closed channel at ERROR in RabbitMQ's words, which may name the URL's user. The
    // relay says what happened in its own words (the broker's refusal, its credentials taken
    // out); lapin's lines are never written, whatever RUST_LOG asks.
    if let Ok(lapin) = "lapin=off".parse() {
        filter = filter.add_directive(lapin);
    }
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
    for deprecated in &config.deprecated {
        tracing::warn!("{deprecated}");
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
    /// Prints a fresh random key for AIRUDDER_FORWARD_SECRET (`whsec_` and 32 bytes in
    /// base64), to give the relay and the service that verifies its forwards.
    Secret,
}

impl Command {
    /// Runs the command; `admin_token` is the setting's, for the operator commands.
    pub(crate) async fn run(self, admin_token: Option<String>) -> ExitCode {
        match self {
            Self::Operate(operate) => operate.run(admin_token).await,
            Self::Rehearse(rehearse) => rehearse.run().await,
            Self::Secret => signing_key::print_new(),
        }
    }
}
