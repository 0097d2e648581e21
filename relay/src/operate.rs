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
    /// Notifications stored and not delivered yet, with when each is tried next and why the
    /// last try failed.
    Pending(Common),
    /// Notifications given up on, kept until replayed.
    DeadLetters(Common),
    /// Notifications in any state (pending, dead, handled) by task id, kind or time.
    Find(Find),
    /// One notification: its state, its attempts (when, how long, the service's status, the
    /// error) and its body.
    Show(WithId),
    /// Hands a dead letter (or a handled notification) to the relay again, at once.
    Replay(WithId),
    /// Replays every dead letter that matches the filters (asks first).
    ReplayDead(Bulk),
    /// Makes every pending notification that matches the filters due now, instead of after
    /// its backoff: for when the service is back (asks first).
    RetryNow(Bulk),
    /// Forgets the dead letters that became dead before a time (asks first).
    PurgeDead(Purge),
    /// The kinds of notification served, whether each is paused, and how many are pending
    /// and dead.
    Kinds(Common),
    /// Stops forwarding a kind (kept across restarts): its notifications are still taken in,
    /// stored and answered 200, and wait.
    Pause(WithKind),
    /// Forwards a paused kind again, its waiting notifications first.
    Resume(WithKind),
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
    /// The relay's admin API; the token comes from AIRUDDER_ADMIN_TOKEN, or admin_token in the
    /// file of `airudder-relay --config FILE <command>` [default: http://127.0.0.1:3001]
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

/// A command about one kind.
#[derive(Debug, Args)]
pub(crate) struct WithKind {
    /// The kind, as `kinds` lists it (task_notification, workflow_call_completion, …).
    kind: String,
    #[command(flatten)]
    common: Common,
}

/// Which notifications: every filter given must match.
#[derive(Debug, Args)]
pub(crate) struct Filters {
    /// Only the notifications of this task (the event's id).
    #[arg(long, value_name = "ID")]
    task_id: Option<String>,
    /// Only this kind (see `kinds`).
    #[arg(long, value_name = "KIND")]
    kind: Option<String>,
    /// Only those received at or after this time: RFC 3339 (2026-12-02T13:00:00Z), a date
    /// (2026-12-02), or a while ago (2h, 3days).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only those received before this time (as --since).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Only those whose last error contains this text.
    #[arg(long, value_name = "TEXT")]
    error: Option<String>,
}

/// `find`.
#[derive(Debug, Args)]
pub(crate) struct Find {
    /// Only those in this state: pending, dead or handled.
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    #[command(flatten)]
    filters: Filters,
    /// At most this many (the oldest first).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    limit: usize,
    #[command(flatten)]
    common: Common,
}

/// A bulk action.
#[derive(Debug, Args)]
pub(crate) struct Bulk {
    #[command(flatten)]
    filters: Filters,
    /// Do it without asking (for a script; needed when there is no terminal to ask on).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    common: Common,
}

/// `purge-dead`.
#[derive(Debug, Args)]
pub(crate) struct Purge {
    /// Purge the dead letters that became dead before this time (as --since of `find`: RFC
    /// 3339, a date, or a while ago such as 30days).
    #[arg(long, value_name = "TIME")]
    before: String,
    /// Do it without asking (for a script; needed when there is no terminal to ask on).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    common: Common,
}

/// A time as the CLI takes it (RFC 3339, a date, or a while ago), as the admin API takes it.
fn time_arg(flag: &str, text: &str) -> Result<String, String> {
    if let Ok(ago) = humantime::parse_duration(text.trim()) {
        let at = std::time::SystemTime::now()
            .checked_sub(ago)
            .ok_or_else(|| format!("--{flag} {text}: too long ago"))?;
        return Ok(humantime::format_rfc3339_millis(at).to_string());
    }
    crate::time::parse(text)
        .map(|at| humantime::format_rfc3339_millis(at).to_string())
        .map_err(|err| format!("--{flag}: {err}, or a while ago such as 2h"))
}

impl Filters {
    /// The query parameters.
    fn params(&self) -> Result<Vec<(&'static str, String)>, String> {
        let mut params = Vec::new();
        for (name, value) in [
            ("task_id", &self.task_id),
            ("kind", &self.kind),
            ("error", &self.error),
        ] {
            if let Some(value) = value {
                params.push((name, value.clone()));
            }
        }
        for (name, value) in [("since", &self.since), ("until", &self.until)] {
            if let Some(value) = value {
                params.push((name, time_arg(name, value)?));
            }
        }
        Ok(params)
    }
}

impl Operate {
    fn common(&self) -> &Common {
        match self {
            Self::Stats(common)
            | Self::Pending(common)
            | Self::DeadLetters(common)
            | Self::Kinds(common)
            | Self::Rejected(common) => common,
            Self::Find(find) => &find.common,
            Self::ReplayDead(bulk) | Self::RetryNow(bulk) => &bulk.common,
            Self::PurgeDead(purge) => &purge.common,
            Self::Pause(with) | Self::Resume(with) => &with.common,
            Self::Show(with)
            | Self::Replay(with)
            | Self::ShowRejected(with)
            | Self::ReplayRejected(with) => &with.common,
        }
    }

    /// Runs the command; what it prints goes to stdout, what went wrong to stderr.
    pub(crate) async fn run(self, token: Option<String>) -> ExitCode {
        let common = self.common();
        let admin = common
            .admin
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:3001".into());
        let client = Client {
            http: reqwest::Client::new(),
            admin: admin.trim_end_matches('/').to_owned(),
            token,
        };
        let json = common.json;
        match self.ask(&client).await {
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

    /// Asks the admin API; the answer, and how it reads for a person.
    async fn ask(&self, client: &Client) -> Result<(Value, Shape), String> {
        Ok(match self {
            Self::Stats(_) => (client.get("/admin/stats", &[]).await?, Shape::Stats),
            Self::Pending(_) => (
                client.all("/admin/pending", &[], usize::MAX).await?.0,
                Shape::Records("pending notifications", "NEXT TRY", "due_at"),
            ),
            Self::DeadLetters(_) => (
                client.all("/admin/dead-letters", &[], usize::MAX).await?.0,
                Shape::Records("dead letters", "DEAD SINCE", "dead_since"),
            ),
            Self::Rejected(_) => (
                client.all("/admin/rejected", &[], usize::MAX).await?.0,
                Shape::Rejected,
            ),
            Self::Find(find) => {
                let mut params = find.filters.params()?;
                if let Some(state) = &find.state {
                    params.push(("state", state.clone()));
                }
                let (found, more) = client
                    .all("/admin/notifications", &params, find.limit)
                    .await?;
                if more {
                    eprintln!(
                        "airudder-relay: the first {} shown; there are more: narrow the filters or raise --limit",
                        find.limit
                    );
                }
                (found, Shape::Found)
            }
            Self::Show(with) => (
                client
                    .get(&format!("/admin/notifications/{}", with.id), &[])
                    .await?,
                Shape::One,
            ),
            Self::ShowRejected(with) => (
                client
                    .get(&format!("/admin/rejected/{}", with.id), &[])
                    .await?,
                Shape::One,
            ),
            Self::Replay(with) => (
                client
                    .post(&format!("/admin/notifications/{}/replay", with.id), &[])
                    .await?,
                Shape::Said(format!(
                    "Notification {} is pending again: the relay delivers it now.",
                    with.id
                )),
            ),
            Self::ReplayRejected(with) => {
                let value = client
                    .post(&format!("/admin/rejected/{}/replay", with.id), &[])
                    .await?;
                let stored = value["stored"].clone();
                let said = format!(
                    "Refused body {} is stored again as notification {stored}: the relay delivers it now.",
                    with.id
                );
                (value, Shape::Said(said))
            }
            Self::Kinds(_) => (client.get("/admin/kinds", &[]).await?, Shape::Kinds),
            Self::Pause(with) | Self::Resume(with) => {
                let pause = matches!(self, Self::Pause(_));
                let action = if pause { "pause" } else { "resume" };
                let value = client
                    .post(
                        &format!("/admin/kinds/{}/{action}", path_segment(&with.kind)),
                        &[],
                    )
                    .await?;
                let said = if pause {
                    format!(
                        "{} is paused: its notifications are taken in and stored, and wait until `airudder-relay resume {}`.",
                        with.kind, with.kind
                    )
                } else {
                    format!(
                        "{} is forwarded again, its waiting notifications first.",
                        with.kind
                    )
                };
                (value, Shape::Said(said))
            }
            Self::ReplayDead(bulk) => {
                let params = bulk.filters.params()?;
                let mut listed = params.clone();
                listed.push(("state", "dead".into()));
                let count = client.count("/admin/notifications", &listed).await?;
                if count == 0 {
                    return Ok(nothing("No dead letter matches: nothing replayed."));
                }
                confirm(&format!("Replay {}?", many(count, "dead letter")), bulk.yes).await?;
                let value = client.post("/admin/dead-letters/replay", &params).await?;
                let said = format!(
                    "Replayed {}: the relay delivers them now.",
                    many(number(&value["replayed"]), "dead letter")
                );
                (value, Shape::Said(said))
            }
            Self::RetryNow(bulk) => {
                let params = bulk.filters.params()?;
                let mut listed = params.clone();
                listed.push(("state", "pending".into()));
                let count = client.count("/admin/notifications", &listed).await?;
                if count == 0 {
                    return Ok(nothing(
                        "No pending notification matches: nothing to retry.",
                    ));
                }
                confirm(
                    &format!("Make {} due now?", many(count, "pending notification")),
                    bulk.yes,
                )
                .await?;
                let value = client
                    .post("/admin/notifications/retry-now", &params)
                    .await?;
                let said = format!(
                    "Due now: {}; the relay tries them at once (those in flight aside).",
                    many(number(&value["due_now"]), "notification")
                );
                (value, Shape::Said(said))
            }
            Self::PurgeDead(purge) => {
                let before = time_arg("before", &purge.before)?;
                let cut = crate::time::parse(&before)?;
                let (dead, _) = client.all("/admin/dead-letters", &[], usize::MAX).await?;
                let count = dead
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|row| {
                        row["dead_since"]
                            .as_str()
                            .and_then(|since| crate::time::parse(since).ok())
                            .is_some_and(|since| since < cut)
                    })
                    .count();
                if count == 0 {
                    return Ok(nothing(&format!(
                        "No dead letter became dead before {before}: nothing purged."
                    )));
                }
                confirm(
                    &format!(
                        "Purge {}, dead before {before}, for good?",
                        many(count, "dead letter")
                    ),
                    purge.yes,
                )
                .await?;
                let value = client
                    .post("/admin/dead-letters/purge", &[("before", before)])
                    .await?;
                let said = format!("Purged {}.", many(number(&value["purged"]), "dead letter"));
                (value, Shape::Said(said))
            }
        })
    }
}

/// `1 dead letter`, `2 dead letters`.
fn many(count: usize, what: &str) -> String {
    if count == 1 {
        format!("1 {what}")
    } else {
        format!("{count} {what}s")
    }
}

/// A count in an answer.
fn number(value: &Value) -> usize {
    value
        .as_u64()
        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// The answer of a bulk action that found nothing to do.
fn nothing(said: &str) -> (Value, Shape) {
    (
        serde_json::json!({ "matched": 0 }),
        Shape::Said(said.to_owned()),
    )
}

/// A kind as one segment of a path: the characters a kind may have pass, any other is
/// escaped (the relay answers that no such kind exists).
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Asks on the terminal before a bulk action; `--yes` skips it, and with no terminal (a
/// script, a pipe) and no `--yes` the action is refused.
async fn confirm(question: &str, yes: bool) -> Result<(), String> {
    use std::io::IsTerminal;
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "{question} Not without --yes: there is no terminal to ask on"
        ));
    }
    eprint!("{question} [y/N] ");
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|_| "could not read the answer".to_owned())?
    .map_err(|err| format!("could not read the answer: {err}"))?;
    match answer.trim().to_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err("not done: the answer was not yes".into()),
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
        } else if status == reqwest::StatusCode::UNAUTHORIZED {
            Err(match self.token {
                None => "the admin API asks for a token, and none is set: set AIRUDDER_ADMIN_TOKEN (or admin_token in the --config file) to the relay's".to_owned(),
                Some(_) => "the admin API refused the token: AIRUDDER_ADMIN_TOKEN (or admin_token in the --config file) is not the relay's".to_owned(),
            })
        } else {
            Err(value["error"]
                .as_str()
                .map_or_else(|| format!("the admin API answered {status}"), str::to_owned))
        }
    }

    /// The admin API's URL for `path` and its query.
    fn url(&self, path: &str, params: &[(&str, String)]) -> Result<reqwest::Url, String> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.admin)).map_err(|_| {
            format!(
                "{} is not a URL: set --admin or AIRUDDER_ADMIN_URL to http://HOST:PORT",
                crate::shown::url(&self.admin)
            )
        })?;
        if !params.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(params.iter().map(|(name, value)| (*name, value.as_str())));
        }
        Ok(url)
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        self.send(self.http.get(self.url(path, params)?)).await
    }

    async fn post(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        // JSON, as the admin API asks of every change (a page elsewhere cannot send it
        // cross-site without the browser asking first).
        let request = self
            .http
            .post(self.url(path, params)?)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body("{}");
        self.send(request).await
    }

    /// The pages of a list, up to `most` items; and whether there were more.
    async fn all(
        &self,
        path: &str,
        params: &[(&str, String)],
        most: usize,
    ) -> Result<(Value, bool), String> {
        let mut items = Vec::new();
        let mut after = 0;
        loop {
            let mut asked = params.to_vec();
            asked.push(("after", after.to_string()));
            asked.push(("limit", (most - items.len()).min(1000).to_string()));
            let page = self.get(path, &asked).await?;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_after"].as_u64() {
                Some(_) if items.len() >= most => return Ok((Value::Array(items), true)),
                Some(next) => after = next,
                None => return Ok((Value::Array(items), false)),
            }
        }
    }

    /// How many items a list has, every page read (none kept).
    async fn count(&self, path: &str, params: &[(&str, String)]) -> Result<usize, String> {
        let (mut count, mut after) = (0, 0);
        loop {
            let mut asked = params.to_vec();
            asked.push(("after", after.to_string()));
            asked.push(("limit", "1000".into()));
            let page = self.get(path, &asked).await?;
            count += page["items"].as_array().map_or(0, Vec::len);
            match page["next_after"].as_u64() {
                Some(next) => after = next,
                None => return Ok(count),
            }
        }
    }
}

/// The most bytes of one value in a table or a record's fields.
const CELL_LIMIT: usize = 256;

/// How an answer reads for a person.
enum Shape {
    Stats,
    /// Pending notifications or dead letters: what they are, and the header and field of the
    /// time shown (when tried next, since when dead).
    Records(&'static str, &'static str, &'static str),
    /// What `find` found.
    Found,
    Kinds,
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
            Self::Records(what, header, field) => {
                let rows = value.as_array().cloned().unwrap_or_default();
                if rows.is_empty() {
                    return format!("No {what}.");
                }
                let _ = writeln!(
                    out,
                    "{:>6}  {:<26} {:<34} {:>8}  {:<24}  LAST ERROR",
                    "ID", "KIND", "TASK", "ATTEMPTS", header
                );
                for row in rows {
                    let _ = writeln!(
                        out,
                        "{:>6}  {:<26} {:<34} {:>8}  {:<24}  {}",
                        text(&row["id"]),
                        text(&row["kind"]),
                        text(&row["task_id"]),
                        text(&row["attempts"]),
                        text(&row[*field]),
                        text(&row["last_error"])
                    );
                }
            }
            Self::Found => {
                let rows = value.as_array().cloned().unwrap_or_default();
                if rows.is_empty() {
                    return "No notification matches.".to_owned();
                }
                let _ = writeln!(
                    out,
                    "{:>6}  {:<8} {:<26} {:<34} {:<24}  {:>8}  LAST ERROR",
                    "ID", "STATE", "KIND", "TASK", "RECEIVED", "ATTEMPTS"
                );
                for row in rows {
                    let _ = writeln!(
                        out,
                        "{:>6}  {:<8} {:<26} {:<34} {:<24}  {:>8}  {}",
                        text(&row["id"]),
                        text(&row["state"]),
                        text(&row["kind"]),
                        text(&row["task_id"]),
                        text(&row["received_at"]),
                        text(&row["attempts"]),
                        text(&row["last_error"])
                    );
                }
            }
            Self::Kinds => {
                let _ = writeln!(
                    out,
                    "{:<34} {:<7} {:>8} {:>8}",
                    "KIND", "PAUSED", "PENDING", "DEAD"
                );
                for row in value["items"].as_array().into_iter().flatten() {
                    let paused = if row["paused"].as_bool() == Some(true) {
                        "paused"
                    } else {
                        "-"
                    };
                    let _ = writeln!(
                        out,
                        "{:<34} {:<7} {:>8} {:>8}",
                        text(&row["kind"]),
                        paused,
                        text(&row["pending"]),
                        text(&row["dead"])
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
                    for (key, field) in fields
                        .iter()
                        .filter(|(key, _)| !["body", "attempts"].contains(&key.as_str()))
                    {
                        let _ =
                            writeln!(out, "{:<17} {}", crate::shown::cell(key, 64), text(field));
                    }
                }
                match &value["attempts"] {
                    // The history: one row an attempt, oldest first.
                    Value::Array(attempts) => {
                        let _ = writeln!(out, "attempts:");
                        if attempts.is_empty() {
                            let _ = writeln!(out, "  none yet");
                        } else {
                            let _ = writeln!(
                                out,
                                "  {:<24}  {:>9}  {:<7}  {:>6}  ERROR",
                                "AT", "TOOK (MS)", "OUTCOME", "STATUS"
                            );
                        }
                        for attempt in attempts {
                            let _ = writeln!(
                                out,
                                "  {:<24}  {:>9}  {:<7}  {:>6}  {}",
                                text(&attempt["at"]),
                                text(&attempt["duration_ms"]),
                                text(&attempt["outcome"]),
                                text(&attempt["status"]),
                                text(&attempt["error"])
                            );
                        }
                    }
                    Value::Null => {}
                    count => {
                        let _ = writeln!(out, "{:<17} {}", "attempts", text(count));
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
