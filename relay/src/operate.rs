//! The operator commands: the admin API of a running relay, for a person (tables and sentences)
//! or a script (`--json`).

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

/// What an operator asks a running relay.
#[derive(Debug, Subcommand)]
pub(crate) enum Operate {
    /// The relay's counters: answers by status and reason, notifications by fate.
    Stats(Common),
    /// Notifications stored and not delivered yet.
    Pending(Common),
    /// Notifications given up on, kept until replayed.
    DeadLetters(Common),
    /// One dead letter, body included.
    Show(WithId),
    /// Hands a dead letter to the relay again, at once.
    Replay(WithId),
    /// Bodies refused with a 4xx, kept with their raw bytes.
    Rejected(Common),
    /// One refused body, bytes included.
    ShowRejected(WithId),
    /// Takes a refused body in again, once it is valid (after a fix).
    ReplayRejected(WithId),
}

/// What every command takes.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// The relay's admin API; the token comes from AIRUDDER_ADMIN_TOKEN [default:
    /// http://127.0.0.1:3001]
    #[arg(
        long,
        env = "AIRUDDER_ADMIN_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    admin: Option<String>,
    /// JSON for a script instead of text for a person.
    #[arg(long)]
    json: bool,
}

/// A command about one record.
#[derive(Debug, Args)]
pub(crate) struct WithId {
    /// The record's id, as the lists show it.
    id: u64,
    #[command(flatten)]
    common: Common,
}

impl Operate {
    fn common(&self) -> &Common {
        match self {
            Self::Stats(common)
            | Self::Pending(common)
            | Self::DeadLetters(common)
            | Self::Rejected(common) => common,
            Self::Show(with)
            | Self::Replay(with)
            | Self::ShowRejected(with)
            | Self::ReplayRejected(with) => &with.common,
        }
    }

    /// Runs the command; what it prints goes to stdout, what went wrong to stderr.
    pub(crate) async fn run(self) -> ExitCode {
        let common = self.common();
        let admin = common
            .admin
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:3001".into());
        let client = Client {
            http: reqwest::Client::new(),
            admin: admin.trim_end_matches('/').to_owned(),
            token: std::env::var("AIRUDDER_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        };
        let json = common.json;
        let result = match &self {
            Self::Stats(_) => client.get("/admin/stats").await.map(|v| (v, Shape::Stats)),
            Self::Pending(_) => client.all("/admin/pending").await.map(|v| (v, Shape::Records("pending notifications"))),
            Self::DeadLetters(_) => client.all("/admin/dead-letters").await.map(|v| (v, Shape::Records("dead letters"))),
            Self::Rejected(_) => client.all("/admin/rejected").await.map(|v| (v, Shape::Rejected)),
            Self::Show(with) => client.get(&format!("/admin/dead-letters/{}", with.id)).await.map(|v| (v, Shape::One)),
            Self::ShowRejected(with) => client.get(&format!("/admin/rejected/{}", with.id)).await.map(|v| (v, Shape::One)),
            Self::Replay(with) => client
                .post(&format!("/admin/dead-letters/{}/replay", with.id))
                .await
                .map(|v| (v, Shape::Said(format!("Dead letter {} is pending again: the relay delivers it now.", with.id)))),
            Self::ReplayRejected(with) => client
                .post(&format!("/admin/rejected/{}/replay", with.id))
                .await
                .map(|v| {
                    let stored = v["stored"].clone();
                    (v, Shape::Said(format!("Refused body {} is stored again as notification {stored}: the relay delivers it now.", with.id)))
                }),
        };
        match result {
            Ok((value, shape)) => {
                let text = if json {
                    crate::shown::json(&format!("{value:#}"))
                } else {
                    shape.render(&value)
                };
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("airudder-relay: {}", crate::shown::cell(&message, 2048));
                ExitCode::FAILURE
            }
        }
    }
}

struct Client {
    http: reqwest::Client,
    admin: String,
    token: Option<String>,
}

impl Client {
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, String> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|_| {
            format!(
                "cannot reach the relay's admin API at {}: is the relay running? (set --admin or AIRUDDER_ADMIN_URL)",
                crate::shown::url(&self.admin)
            )
        })?;
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            format!(
                "the admin API at {} answered {status} with no JSON",
                crate::shown::url(&self.admin)
            )
        })?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(value["error"]
                .as_str()
                .map_or_else(|| format!("the admin API answered {status}"), str::to_owned))
        }
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        self.send(self.http.get(format!("{}{path}", self.admin)))
            .await
    }

    async fn post(&self, path: &str) -> Result<Value, String> {
        // JSON, as the admin API asks of every change (a page elsewhere cannot send it
        // cross-site without the browser asking first).
        let request = self
            .http
            .post(format!("{}{path}", self.admin))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body("{}");
        self.send(request).await
    }

    /// Every page of a list.
    async fn all(&self, path: &str) -> Result<Value, String> {
        let mut items = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .get(&format!("{path}?after={after}&limit=1000"))
                .await?;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_after"].as_u64() {
                Some(next) => after = next,
                None => return Ok(Value::Array(items)),
            }
        }
    }
}

/// The most bytes of one value in a table or a record's fields.
const CELL_LIMIT: usize = 256;

/// How an answer reads for a person.
enum Shape {
    Stats,
    Records(&'static str),
    Rejected,
    One,
    Said(String),
}

impl Shape {
    fn render(&self, value: &Value) -> String {
        // Every value is the sender's or a service's to choose: escaped, so that none moves the
        // cursor, clears the screen or starts a row of its own; cut, so that a row stays a row.
        let text = |v: &Value| match v {
            Value::Null => "-".to_owned(),
            Value::String(s) => crate::shown::cell(s, CELL_LIMIT),
            other => crate::shown::cell(&other.to_string(), CELL_LIMIT),
        };
        let mut out = String::new();
        match self {
            Self::Stats => {
                for key in [
                    "ready",
                    "queued",
                    "handled",
                    "failed",
                    "returned",
                    "pending",
                    "rejected",
                    "unavailable",
                    "duplicates",
                ] {
                    let _ = writeln!(out, "{key:<12} {}", text(&value[key]));
                }
                let answers = |out: &mut String, stats: &Value| {
                    for answer in stats["answers"].as_array().into_iter().flatten() {
                        let _ = writeln!(
                            out,
                            "  {} {:<26} {}",
                            text(&answer["status"]),
                            text(&answer["reason"]),
                            text(&answer["count"])
                        );
                    }
                };
                let _ = writeln!(out, "answers:");
                answers(&mut out, value);
                // Several callbacks seen: each one's answers apart.
                let kinds = value["kinds"].as_object().filter(|kinds| kinds.len() > 1);
                for (kind, stats) in kinds.into_iter().flatten() {
                    let _ = writeln!(out, "{kind}:");
                    answers(&mut out, stats);
                }
            }
            Self::Records(what) => {
                let rows = value.as_array().cloned().unwrap_or_default();
                if rows.is_empty() {
                    return format!("No {what}.");
                }
                let _ = writeln!(
                    out,
                    "{:>6}  {:<26} {:<34} {:>8}  LAST ERROR",
                    "ID", "KIND", "TASK", "ATTEMPTS"
                );
                for row in rows {
                    let _ = writeln!(
                        out,
                        "{:>6}  {:<26} {:<34} {:>8}  {}",
                        text(&row["id"]),
                        text(&row["kind"]),
                        text(&row["task_id"]),
                        text(&row["attempts"]),
                        text(&row["last_error"])
                    );
                }
            }
            Self::Rejected => {
                let rows = value.as_array().cloned().unwrap_or_default();
                if rows.is_empty() {
                    return "No refused bodies.".to_owned();
                }
                let _ = writeln!(
                    out,
                    "{:>6}  {:<26} {:>6}  {:>8}  REASON",
                    "ID", "KIND", "STATUS", "BYTES"
                );
                for row in rows {
                    let _ = writeln!(
                        out,
                        "{:>6}  {:<26} {:>6}  {:>8}  {}",
                        text(&row["id"]),
                        text(&row["kind"]),
                        text(&row["status"]),
                        text(&row["bytes"]),
                        text(&row["reason"])
                    );
                }
            }
            Self::One => {
                if let Some(fields) = value.as_object() {
                    for (key, field) in fields.iter().filter(|(key, _)| *key != "body") {
                        let _ =
                            writeln!(out, "{:<15} {}", crate::shown::cell(key, 64), text(field));
                    }
                }
                let body = format!("{:#}", value["body"]);
                let _ = writeln!(out, "body:\n{}", crate::shown::lines(&body));
            }
            Self::Said(sentence) => return crate::shown::cell(sentence, 2048),
        }
        out.trim_end().to_owned()
    }
}
