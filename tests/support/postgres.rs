//! A throwaway PostgreSQL cluster: initdb and postgres from Debian's `postgresql` package, in a
//! temporary directory, on a free loopback port. It stops when its `Cluster` is dropped, and
//! also when the test process ends, however it ends: the server runs under a shell that
//! stops it once the test's end of a pipe closes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::ports::free_port;

pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub(crate) port: u16,
    server: Option<(Child, ChildStdin)>,
}

/// The directory holding initdb and postgres: `AIRUDDER_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AIRUDDER_PG_BIN") {
        return dir.into();
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL's server is not installed: `apt-get install postgresql` (.ci/run does it), \
         or set AIRUDDER_PG_BIN to the directory holding initdb and postgres",
    )
}

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A command run as the `postgres` user when the tests run as root (the server refuses root).
fn as_server_user(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl Cluster {
    /// initdb, then start; blocks until the server accepts connections.
    pub(crate) fn start() -> Self {
        let temp = tempfile::Builder::new()
            .prefix("airudder-pg-")
            .tempdir()
            .unwrap();
        let dir = temp.path();
        if running_as_root() {
            let chown = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir)
                .status()
                .unwrap();
            assert!(chown.success(), "chown postgres {}", dir.display());
        }
        let bin = bin_dir();
        let out = as_server_user(&bin.join("initdb"))
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "-D",
            ])
            .arg(dir.join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cluster = Self {
            dir: temp,
            bin,
            port: free_port(),
            server: None,
        };
        cluster.resume();
        cluster
    }

    /// `postgres://` URL of the `postgres` database.
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server again (after [`stop`](Self::stop)) on the same port and data.
    pub(crate) fn resume(&mut self) {
        assert!(self.server.is_none(), "the server is running");
        let data = self.dir.path().join("data");
        // `read` returns when the test's end of stdin closes: on stop, or when the test dies.
        // Unless `stop` left a `keep` mark, the cluster's directory goes with the server.
        let script = format!(
            "'{postgres}' -D '{data}' -p {port} -k '{dir}' -c listen_addresses=127.0.0.1 \
             -c max_connections=200 -c logging_collector=off & pid=$!; \
             read _; kill -INT $pid; wait $pid; \
             if [ -e '{dir}/keep' ]; then rm '{dir}/keep'; else rm -rf '{dir}'; fi",
            postgres = self.bin.join("postgres").display(),
            data = data.display(),
            port = self.port,
            dir = self.dir.path().display(),
        );
        let mut child = as_server_user(Path::new("sh"))
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        self.server = Some((child, stdin));
        let started = Instant::now();
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .unwrap();
            if ready.success() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "PostgreSQL did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown: connections are cut) and waits for it; the data stay
    /// for [`resume`](Self::resume).
    pub(crate) fn stop(&mut self) {
        std::fs::write(self.dir.path().join("keep"), b"").unwrap();
        self.halt();
    }

    fn halt(&mut self) {
        if let Some((mut child, mut stdin)) = self.server.take() {
            let _ = stdin.write_all(b"\n");
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Stopped first: the temporary directory goes after, as the fields drop.
        self.halt();
    }
}
