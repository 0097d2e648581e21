//! Rehearsing Airudder: `send` posts a notification exactly as Airudder does (its headers, a
//! retry a minute after each answer other than 200, at most 5), and `example` prints one.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use airudder_webhook::model::TaskNotification;
use airudder_webhook::test_util::{Example, NotificationBuilder, Reply, Sender};
use clap::{Args, Subcommand};

use crate::forward::describe;

/// Commands for teams rehearsing their endpoint, or the relay itself.
#[derive(Debug, Subcommand)]
pub(crate) enum Rehearse {
    /// Posts a notification as Airudder does, prints each attempt and its answer; exits 0
    /// once answered 200, 1 after the last retry fails.
    Send(SendArgs),
    /// Prints a valid task notification on stdout.
    Example(ExampleArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Where to post: your endpoint, or a relay's `http://…/airudder/task`.
    #[arg(long, value_name = "URL")]
    to: String,
    /// The body to send, as is (valid or not) [default: a valid notification]
    #[arg(long, value_name = "BODY.json", conflicts_with_all = ["calls", "task_id"])]
    file: Option<PathBuf>,
    #[command(flatten)]
    made: ExampleArgs,
    /// The wait after an answer other than 200 [default: 60s, Airudder's]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    retry_interval: Option<Duration>,
    /// Retries after the first try [default: 5, Airudder's]
    #[arg(long, value_name = "N")]
    max_retries: Option<u32>,
    /// Appended to the URL as `?token=…`, as Airudder's configured URL carries it.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "AIRUDDER_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ExampleArgs {
    /// How many calls in `details`, each its own id and number [default: 1]
    #[arg(long, value_name = "N")]
    calls: Option<usize>,
    /// The notification's `task_id` [default: the contract example's]
    #[arg(long, value_name = "ID")]
    task_id: Option<String>,
}

impl ExampleArgs {
    fn build(&self) -> NotificationBuilder {
        let mut builder = NotificationBuilder::new().calls(self.calls.unwrap_or(1));
        if let Some(id) = &self.task_id {
            builder = builder.task_id(id.clone());
        }
        builder
    }
}

impl Rehearse {
    pub(crate) async fn run(self) -> ExitCode {
        match self {
            Self::Example(args) => {
                let text = match (args.calls, &args.task_id) {
                    (None, None) => String::from_utf8_lossy(TaskNotification::EXAMPLE).into_owned(),
                    _ => format!("{:#}\n", args.build().to_value()),
                };
                print!("{text}");
                ExitCode::SUCCESS
            }
            Self::Send(args) => match send(args).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(message) => {
                    eprintln!("airudder-relay send: {message}");
                    ExitCode::from(2)
                }
            },
        }
    }
}

/// Sends; `Ok(true)` once answered 200.
async fn send(args: SendArgs) -> Result<bool, String> {
    let mut url = reqwest::Url::parse(&args.to)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
        .ok_or_else(|| {
            format!(
                "--to {} is not an http:// or https:// URL",
                crate::shown::url(&args.to)
            )
        })?;
    if let Some(token) = args.token.as_deref().filter(|t| !t.is_empty()) {
        url.query_pairs_mut().append_pair("token", token);
    }
    let body = match &args.file {
        Some(path) => std::fs::read(path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?
            .into(),
        None => args.made.build().to_bytes(),
    };
    // An attempt's line holds what the endpoint answered: escaped for the terminal.
    let mut sender = Sender::new(body)
        .on_attempt(|attempt| println!("{}", crate::shown::cell(&attempt.to_string(), 2048)));
    if let Some(interval) = args.retry_interval {
        sender = sender.retry_interval(interval);
    }
    if let Some(retries) = args.max_retries {
        sender = sender.max_retries(retries);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|err| err.to_string())?;
    // The URL as given (its token included) goes to the client; the sender's request carries
    // the method, the headers and the body.
    let report = sender
        .send_with(url.as_str(), |request| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let (parts, body) = request.into_parts();
                // Why, to the root cause, and without the URL: the URL carries the token.
                let response = client
                    .post(url)
                    .headers(parts.headers)
                    .body(body)
                    .send()
                    .await
                    .map_err(|err| describe(&err))?;
                let status = response.status();
                let body = response.bytes().await.map_err(|err| describe(&err))?;
                Ok(Reply::new(status, body))
            }
        })
        .await;
    let tries = report.attempts().len();
    if report.delivered() {
        println!("delivered: answered 200 after {tries} attempt(s)");
    } else {
        println!(
            "not delivered: {tries} attempt(s), none answered 200; Airudder would drop it now"
        );
    }
    Ok(report.delivered())
}
