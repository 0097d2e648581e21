use std::ffi::OsString;

use super::*;

fn parse(args: &[&str]) -> Result<Config, ConfigError> {
    let mut all = vec!["airudder-relay"];
    all.extend_from_slice(args);
    match Cli::from_args(all.into_iter().map(OsString::from)) {
        Ok(cli) => cli.load(),
        Err(Refused::Setting(err)) => Err(err),
        Err(Refused::Usage(err)) => panic!("the flags parse: {err}"),
    }
}

#[test]
fn the_defaults_print_on_loopback_with_the_embedded_store() {
    let config = parse(&[]).unwrap();
    assert_eq!(config.listen, "127.0.0.1:3000".parse().unwrap());
    assert_eq!(config.ack, Ack::Durable);
    assert_eq!(config.data_dir, PathBuf::from("./airudder-data"));
    assert!(config.forward.is_none() && config.database_url.is_none() && config.token.is_none());
    assert_eq!(config.lease, Duration::from_secs(15));
}

#[test]
fn the_intake_metrics_and_log_settings_are_checked() {
    let config = parse(&["--workers", "2", "--log-format", "json"]).unwrap();
    assert_eq!(
        (config.workers, config.log_format, config.metrics_interval),
        (Some(2), LogFormat::Json, Duration::from_secs(5))
    );
    assert_eq!(config.body_limit, 32 * 1024 * 1024);
    for (args, message) in [
        (
            &["--log-format", "xml"][..],
            "AIRUDDER_LOG_FORMAT: \"xml\" is not one of: text, json",
        ),
        (
            &["--metrics-interval", "0s"],
            "AIRUDDER_METRICS_INTERVAL: must be longer than zero, like 5s",
        ),
        (
            &["--queue-capacity", "0"],
            "AIRUDDER_QUEUE_CAPACITY: \"0\" is not a whole number of at least 1",
        ),
        (
            &["--body-limit", "5000000000"],
            "AIRUDDER_BODY_LIMIT: 5000000000 is over the largest, 4294967295",
        ),
    ] {
        assert_eq!(parse(args).unwrap_err().to_string(), message);
    }
}

#[test]
fn a_bad_value_names_its_key_and_what_it_accepts() {
    let cases: [(&[&str], &str); 11] = [
        (
            &["--forward-url", "http://x", "--forward-rate", "fast"],
            "AIRUDDER_FORWARD_RATE: \"fast\" is not a rate: use a whole number per second, minute or hour, like 50/s or 600/min",
        ),
        (
            &["--forward-rate", "50/s"],
            "AIRUDDER_FORWARD_RATE: is set, but AIRUDDER_FORWARD_URL is not",
        ),
        (
            &["--listen", "nowhere"],
            "AIRUDDER_LISTEN: \"nowhere\" is not an address",
        ),
        (
            &["--ack", "later"],
            "AIRUDDER_ACK: \"later\" is not one of: durable, memory, handled",
        ),
        (
            &["--lease-secs", "0"],
            "AIRUDDER_LEASE_SECS: \"0\" is not a whole number of at least 1",
        ),
        (
            &["--forward-url", "ftp://x"],
            "AIRUDDER_FORWARD_URL: ftp://x/ is not an http:// or https:// URL",
        ),
        (
            &["--forward-url", "http://x", "--forward-timeout", "ten"],
            "AIRUDDER_FORWARD_TIMEOUT: \"ten\" is not a duration",
        ),
        (
            &["--forward-url", "http://x", "--forward-secret", "s3cret"],
            "AIRUDDER_FORWARD_SECRET: is not a Standard Webhooks key",
        ),
        (
            &["--retry-for", "1h"],
            "AIRUDDER_RETRY_FOR: is set, but AIRUDDER_FORWARD_URL is not",
        ),
        (
            &["--forward-url", "http://x", "--handler-delay-ms", "5"],
            "AIRUDDER_HANDLER_DELAY_MS: applies to the printing mode only",
        ),
        (
            &["--admin-listen", "0.0.0.0:3001"],
            "AIRUDDER_ADMIN_LISTEN: 0.0.0.0:3001 is not on loopback, and AIRUDDER_ADMIN_TOKEN is not set",
        ),
    ];
    for (args, says) in cases {
        let err = parse(args).unwrap_err().to_string();
        assert!(err.starts_with(says), "{args:?}: {err}");
    }
}

#[test]
fn a_token_that_is_blank_short_or_padded_is_refused_with_how_to_make_one() {
    for flag in ["--token", "--admin-token"] {
        let key = if flag == "--token" {
            "AIRUDDER_TOKEN"
        } else {
            "AIRUDDER_ADMIN_TOKEN"
        };
        for (token, problem) in [
            ("", "is set but blank"),
            ("   ", "is set but blank"),
            ("a", "is shorter than 16 bytes"),
            ("0123456789abcde", "is shorter than 16 bytes"),
            (" 0123456789abcdef", "has white space at its start or end"),
            ("0123456789abcdef\n", "has white space at its start or end"),
        ] {
            let err = parse(&[flag, token]).unwrap_err().to_string();
            assert!(
                err.starts_with(key)
                    && err.contains(problem)
                    && err.contains("openssl rand -hex 32"),
                "{flag} {token:?}: {err}"
            );
        }
        let config = parse(&[flag, "0123456789abcdef"]).unwrap();
        assert!(config.token.is_some() || config.admin_token.is_some());
    }
}

#[test]
fn no_error_repeats_a_secret() {
    let secret = "hunter2-s3cret-pass";
    for args in [
        vec![
            "--forward-url".to_owned(),
            format!("ftp://user:{secret}@host/x"),
        ],
        vec![
            "--forward-url".to_owned(),
            format!("https//user:{secret}@host"),
        ],
        vec!["--token".to_owned(), format!(" {secret}")],
        vec![
            "--forward-url".to_owned(),
            "http://x".to_owned(),
            "--forward-secret".to_owned(),
            secret.to_owned(),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = parse(&args).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{args:?}: {err}");
    }
    // A file whose secret's line is broken: the error names the line, not its text.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("relay.toml");
    std::fs::write(
        &file,
        format!("listen = \"127.0.0.1:3000\"\ntoken = \"{secret}\n"),
    )
    .unwrap();
    let err = parse(&["--config", file.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2") && !err.contains("hunter2"), "{err}");
}

#[test]
fn the_refused_bodies_and_connection_settings_are_checked() {
    let config = parse(&[]).unwrap();
    assert_eq!(
        (config.rejected_max_bytes, config.rejected_max_age),
        (64 * 1024 * 1024, Duration::from_secs(7 * 24 * 3600))
    );
    assert_eq!(config.max_connections, None);
    let config = parse(&[
        "--rejected-max-bytes",
        "0",
        "--rejected-max-age",
        "1h",
        "--max-connections",
        "500",
    ])
    .unwrap();
    assert_eq!(
        (
            config.rejected_max_bytes,
            config.rejected_max_age,
            config.max_connections
        ),
        (0, Duration::from_secs(3600), Some(500))
    );
    for (args, says) in [
        (
            &["--rejected-max-age", "2years"][..],
            "AIRUDDER_REJECTED_MAX_AGE: 2years ",
        ),
        (
            &["--forward-url", "http://x", "--retry-for", "1000years"],
            "AIRUDDER_RETRY_FOR: 1000years ",
        ),
        (
            &["--max-connections", "0"],
            "AIRUDDER_MAX_CONNECTIONS: \"0\" is not a whole number of at least 1",
        ),
    ] {
        let err = parse(args).unwrap_err().to_string();
        assert!(err.starts_with(says), "{args:?}: {err}");
    }
}

#[test]
fn the_file_fills_what_the_flags_and_environment_leave_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("relay.toml");
    std::fs::write(
        &file,
        "listen = \"0.0.0.0:8080\"\nforward_url = \"https://team.example/hooks\"\nretry_for = \"25s\"\nforward_concurrency = 4\nforward_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let config = parse(&["--config", path, "--listen", "127.0.0.1:9000"]).unwrap();
    assert_eq!(
        config.listen,
        "127.0.0.1:9000".parse().unwrap(),
        "the flag wins"
    );
    let forward = config.forward.unwrap();
    assert_eq!(forward.url.as_str(), "https://team.example/hooks");
    assert_eq!(forward.retry_for, Duration::from_secs(25));
    assert_eq!(
        (forward.concurrency, forward.timeout),
        (4, Duration::from_secs(10))
    );
    assert_eq!(forward.secret.unwrap().len(), 24);
    assert_eq!(forward.rate, None);
    let config = parse(&["--config", path, "--forward-rate", "600/min"]).unwrap();
    let rate = config.forward.unwrap().rate.map(|rate| rate.to_string());
    assert_eq!(rate.as_deref(), Some("600/min"));

    std::fs::write(&file, "listen = \"0.0.0.0:8080\"\nforwrd_url = \"x\"\n").unwrap();
    let err = parse(&["--config", path]).unwrap_err().to_string();
    assert!(
        err.contains("AIRUDDER_CONFIG") && err.contains("forwrd_url"),
        "{err}"
    );
}

#[test]
fn a_refusal_names_the_file_key_only_when_a_file_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("relay.toml");
    let path = file.to_str().unwrap();
    let cases: [(Option<&str>, &[&str], &str); 5] = [
        (
            None,
            &["--metrics-interval", "0s"],
            "AIRUDDER_METRICS_INTERVAL: must be longer than zero, like 5s",
        ),
        (
            None,
            &["--queue-capacity", "0"],
            "AIRUDDER_QUEUE_CAPACITY: \"0\" is not a whole number of at least 1",
        ),
        (
            Some("metrics_interval = \"0s\""),
            &[],
            "AIRUDDER_METRICS_INTERVAL (metrics_interval in the file): must be longer than zero, like 5s",
        ),
        (
            Some("queue_capacity = 0"),
            &[],
            "AIRUDDER_QUEUE_CAPACITY (queue_capacity in the file): \"0\" is not a whole number of at least 1",
        ),
        // The flag's value is refused before the file is read: not the file's to fix.
        (
            Some("listen = \"127.0.0.1:3000\""),
            &["--queue-capacity", "0"],
            "AIRUDDER_QUEUE_CAPACITY: \"0\" is not a whole number of at least 1",
        ),
    ];
    for (text, args, says) in cases {
        let mut all = args.to_vec();
        if let Some(text) = text {
            std::fs::write(&file, text).unwrap();
            all.extend(["--config", path]);
        }
        assert_eq!(
            parse(&all).unwrap_err().to_string(),
            says,
            "{text:?} {args:?}"
        );
    }

    std::fs::write(&file, "lease_secs = 3").unwrap();
    let config = parse(&["--config", path]).unwrap();
    assert_eq!(
        config.deprecated,
        [
            "AIRUDDER_LEASE_SECS (lease_secs in the file) is deprecated: use AIRUDDER_LEASE (lease in the file), a duration such as 10s"
        ]
    );
}

#[test]
fn the_old_duration_spellings_are_read_with_a_warning_naming_the_new() {
    let config = parse(&["--lease-secs", "3", "--handler-delay-ms", "250"]).unwrap();
    assert_eq!(
        (config.lease, config.handler_delay),
        (Duration::from_secs(3), Duration::from_millis(250))
    );
    assert_eq!(config.deprecated.len(), 2);
    assert_eq!(
        config.deprecated[0],
        "AIRUDDER_LEASE_SECS is deprecated: use AIRUDDER_LEASE, a duration such as 10s"
    );
    let config = parse(&[
        "--lease",
        "250ms",
        "--lease-secs",
        "3",
        "--handler-delay",
        "1m",
    ])
    .unwrap();
    assert_eq!(
        (config.lease, config.handler_delay),
        (Duration::from_millis(250), Duration::from_secs(60)),
        "the new spelling wins"
    );
    assert!(parse(&[]).unwrap().deprecated.is_empty());
}

#[test]
fn the_file_sends_a_kind_elsewhere_and_refuses_a_kind_not_served() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("relay.toml");
    let path = file.to_str().unwrap();
    let urls = "raw_names = \"crm\"\nlease = \"1m\"\n[forward.urls]\nraw_crm = \"https://crm.example/in\"\n";
    std::fs::write(
        &file,
        format!("forward_url = \"https://team.example/hooks\"\n{urls}"),
    )
    .unwrap();
    let config = parse(&["--config", path]).unwrap();
    assert_eq!(config.lease, Duration::from_secs(60));
    let forward = config.forward.unwrap();
    assert_eq!(
        forward.url_for("raw_crm").as_str(),
        "https://crm.example/in"
    );
    assert_eq!(
        forward.url_for("pds_event").as_str(),
        "https://team.example/hooks"
    );
    for (text, says) in [
        (
            urls.to_owned(),
            "AIRUDDER_FORWARD_URL (forward_url in the file): is not set, and AIRUDDER_FORWARD_URL_RAW_CRM is",
        ),
        (
            "forward_url = \"https://x\"\n[forward.urls]\ntask = \"https://y\"".to_owned(),
            "AIRUDDER_FORWARD_URL_<KIND> (forward.urls in the file): \"task\" is not a kind served",
        ),
        (
            "forward_url = \"https://x\"\n[forward.urls]\npds_event = \"ftp://y\"".to_owned(),
            "AIRUDDER_FORWARD_URL_PDS_EVENT (forward.urls.pds_event in the file): ftp://y/ is not",
        ),
        (
            "forward_url = [\"https://x\"]".to_owned(),
            "AIRUDDER_FORWARD_URL (forward_url in the file): is not one value",
        ),
        (
            "lease = \"soon\"".to_owned(),
            "AIRUDDER_LEASE (lease in the file): \"soon\" is not a duration",
        ),
        ("help = true".to_owned(), "AIRUDDER_CONFIG (--config): "),
    ] {
        std::fs::write(&file, text).unwrap();
        let err = parse(&["--config", path]).unwrap_err().to_string();
        assert!(err.starts_with(says), "{err}");
    }
}

#[test]
fn the_ordered_kinds_are_typed_kinds_kept_in_order_by_the_durable_store() {
    let config = parse(&[]).unwrap();
    assert!(config.ordered().is_empty() && config.ordered_dead_letter_holds);
    let config = parse(&["--ordered", " pds_event,task_notification , pds_event"]).unwrap();
    assert_eq!(config.ordered(), ["pds_event", "task_notification"]);
    assert!(config.is_ordered("pds_event") && !config.is_ordered("chatbot_session_end"));
    assert!(
        config.ordered_dead_letter_holds,
        "a dead letter holds by default"
    );
    let args = [
        "--ordered",
        "pds_event",
        "--ordered-dead-letter-holds",
        "false",
    ];
    assert!(!parse(&args).unwrap().ordered_dead_letter_holds);
    assert!(
        parse(&["--ordered", ""]).unwrap().ordered().is_empty(),
        "blank: none"
    );
    let known = "use any of task_notification, workflow_call_completion, workflow_list_completion, workflow_status_change, chatbot_session_end, pds_event";
    let cases: [(&[&str], String); 6] = [
        (
            &["--ordered", "pds_event,pds"],
            format!("AIRUDDER_ORDERED: \"pds\" is not a kind that can be ordered: {known}"),
        ),
        (
            &["--raw-names", "crm", "--ordered", "raw_crm"],
            format!(
                "AIRUDDER_ORDERED: \"raw_crm\" is not a kind that can be ordered (a raw callback has no key to order by): {known}"
            ),
        ),
        (
            &["--ordered", "pds_event", "--ack", "memory"],
            "AIRUDDER_ORDERED: needs the durable ack (AIRUDDER_ACK=durable, the default), whose store keeps the order: drop one".to_owned(),
        ),
        (
            &["--ordered", "task_notification", "--ack", "handled"],
            "AIRUDDER_ORDERED: needs the durable ack".to_owned(),
        ),
        (
            &["--ordered-dead-letter-holds", "false"],
            "AIRUDDER_ORDERED_DEAD_LETTER_HOLDS: is set, but AIRUDDER_ORDERED is not: list the kinds to order, or drop this".to_owned(),
        ),
        (
            &["--ordered", "pds_event", "--ordered-dead-letter-holds", "no"],
            "AIRUDDER_ORDERED_DEAD_LETTER_HOLDS: \"no\" is not one of: true, false".to_owned(),
        ),
    ];
    for (args, says) in cases {
        let err = parse(args).unwrap_err().to_string();
        assert!(err.starts_with(&says), "{args:?}: {err}");
    }
}

#[test]
fn the_file_lists_the_ordered_kinds_as_a_list_or_a_string() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("relay.toml");
    let path = file.to_str().unwrap();
    for text in [
        "ordered = [\"pds_event\", \"workflow_status_change\"]\nordered_dead_letter_holds = false",
        "ordered = \"pds_event, workflow_status_change\"\nordered_dead_letter_holds = false",
    ] {
        std::fs::write(&file, text).unwrap();
        let config = parse(&["--config", path]).unwrap();
        assert_eq!(
            config.ordered(),
            ["pds_event", "workflow_status_change"],
            "{text}"
        );
        assert!(!config.ordered_dead_letter_holds, "{text}");
    }
    // The flag wins over the file, as for every setting.
    let config = parse(&["--config", path, "--ordered", "task_notification"]).unwrap();
    assert_eq!(config.ordered(), ["task_notification"]);
    std::fs::write(&file, "ordered = []").unwrap();
    assert!(parse(&["--config", path]).unwrap().ordered().is_empty());
    for (text, says) in [
        (
            "ordered = [\"pds_event\", 3]",
            "AIRUDDER_ORDERED (ordered in the file): is not a list of names: write it as [\"pds_event\", \"task_notification\"], or one string",
        ),
        (
            "ordered = [\"pds_event\", \"tasks\"]",
            "AIRUDDER_ORDERED (ordered in the file): \"tasks\" is not a kind that can be ordered: use any of",
        ),
        (
            "ordered = [\"pds_event\"]\nack = \"memory\"",
            "AIRUDDER_ORDERED (ordered in the file): needs the durable ack",
        ),
        (
            "ordered_dead_letter_holds = true",
            "AIRUDDER_ORDERED_DEAD_LETTER_HOLDS (ordered_dead_letter_holds in the file): is set, but AIRUDDER_ORDERED is not",
        ),
        // A list only where the setting is a list of names.
        (
            "raw_names = [\"crm\"]",
            "AIRUDDER_RAW_NAMES (raw_names in the file): is not one value",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let err = parse(&["--config", path]).unwrap_err().to_string();
        assert!(err.starts_with(says), "{text}: {err}");
    }
}
