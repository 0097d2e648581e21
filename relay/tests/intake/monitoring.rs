//! The dashboard and the alert rules in `deploy/`, checked with Prometheus' own `promtool`
//! (Debian's `prometheus` package; `.ci/test` installs it): the rules load and their unit
//! tests pass, and every query of the dashboard parses.
//!
//! That every metric they name is exported is checked against a real scrape in
//! `tests/delivery/metrics.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// `promtool` with `args` in `dir`; `None` (and a line saying so) where it is not installed.
fn promtool(dir: &Path, args: &[&str]) -> Option<(bool, String)> {
    let output = match Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("promtool is not installed (apt-get install prometheus): not checked");
            return None;
        }
        Err(err) => panic!("promtool: {err}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output.status.success(), text))
}

#[test]
fn the_alert_rules_load_and_fire_as_their_unit_tests_say() {
    let dir = deploy();
    if let Some((ok, text)) = promtool(&dir, &["check", "rules", "airudder-alerts.yml"]) {
        assert!(ok, "{text}");
        assert!(text.contains("SUCCESS: 5 rules found"), "{text}");
    }
    if let Some((ok, text)) = promtool(&dir, &["test", "rules", "airudder-alerts.test.yml"]) {
        assert!(ok, "{text}");
    }
    let rules = std::fs::read_to_string(dir.join("airudder-alerts.yml")).unwrap();
    for alert in [
        "AirudderDeadLetters",
        "AirudderRefusing",
        "AirudderOldestPending",
        "AirudderNotReady",
        "AirudderStoreRecovering",
    ] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert}");
    }
}

#[test]
fn every_dashboard_query_parses_and_the_on_call_panels_are_there() {
    let text = std::fs::read_to_string(deploy().join("airudder-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "Received a second",
        "Refusals by reason",
        "Time to 200 (p50, p99)",
        "Queue depth and handlers running",
        "Pending in the store",
        "Oldest pending",
        "Dead letters",
        "Forward errors by status",
    ] {
        assert!(
            titles.contains(&wanted),
            "no panel {wanted:?} in {titles:?}"
        );
    }
    // Each query as a recording rule, with Grafana's variables given values, for promtool.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut count = 0;
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*");
            count += 1;
            rules.push_str(&format!(
                "      - record: dashboard:query{count}\n        expr: {}\n",
                serde_json::to_string(&expr).unwrap()
            ));
        }
    }
    assert!(count >= 12, "{count} queries");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("queries.yml"), &rules).unwrap();
    if let Some((ok, out)) = promtool(dir, &["check", "rules", "queries.yml"]) {
        assert!(ok, "{out}\n{rules}");
        assert!(
            out.contains(&format!("SUCCESS: {count} rules found")),
            "{out}"
        );
    }
}
