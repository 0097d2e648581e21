//! The operator's console in a real browser: Playwright (`playwright-core`, from npm) drives
//! Debian's headless Chromium against the relay as a real process and a real target service.
//! The scenarios are in `console.test.mjs` (and the masking's own tests in `mask.test.mjs`),
//! run by Node's own test runner; this test runs them
//! as part of `cargo test`, with the relay just built. `bash .ci/test` installs Chromium and
//! the npm package when they are missing.
//!
//! The screenshots land in `target/console-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's package puts Chromium; `CHROMIUM` names another.
fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

#[test]
fn the_console_in_a_real_browser() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let missing = |what: &str| {
        panic!(
            "{what} is missing: `bash .ci/test` installs it (Debian's chromium, and `npm ci` in relay/tests/console)"
        )
    };
    if Command::new("node").arg("--version").output().is_err() {
        missing("Node.js");
    }
    if !chromium().exists() {
        missing("Chromium");
    }
    if !here.join("node_modules/playwright-core").exists() {
        missing("playwright-core");
    }
    // `target/tmp`'s parent: `target/`, wherever CARGO_TARGET_DIR puts it.
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("console-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let output = Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .arg(here.join("mask.test.mjs"))
        .arg(here.join("console.test.mjs"))
        .env("RELAY_BIN", env!("CARGO_BIN_EXE_airudder-relay"))
        .env("CHROMIUM", chromium())
        .env("SCREENSHOTS", &screenshots)
        .output()
        .expect("node runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the console's browser tests failed:\n{printed}"
    );
    // What each scenario took, in the test's own output (`cargo test -- --nocapture`).
    println!("{printed}");
    for view in ["overview", "notifications", "notification"] {
        for size in ["1280x800", "390x844"] {
            let shot = screenshots.join(format!("{view}-{size}.png"));
            assert!(
                std::fs::metadata(&shot).is_ok_and(|m| m.len() > 0),
                "no screenshot {}",
                shot.display()
            );
        }
    }
}
