//! The broker servers the tests and the brokers' bench start: Debian's `rabbitmq-server` and
//! `nats-server` (and `redis-server`), each on 127.0.0.1 in a temporary directory of its own,
//! killed when dropped.

#[cfg(feature = "nats")]
pub(crate) use self::nats::NatsServer;
#[cfg(feature = "amqp")]
pub(crate) use self::rabbitmq::Node;
#[cfg(feature = "redis")]
pub(crate) use self::redis::RedisServer;

#[cfg(feature = "amqp")]
mod rabbitmq {
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    use lapin::{Connection, ConnectionProperties};

    use crate::ports::free_port;

    /// The server's own script (Debian's `/usr/sbin/rabbitmq-server` would switch users).
    pub(crate) const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

    /// The shell that keeps a node: starts it (`$0`), waits until its standard input, a pipe from
    /// the test, closes (the node dropped, or the test process gone, even killed), then kills it
    /// and removes its directory. With `RABBITMQ_ALLOW_INPUT` the script execs the VM itself, so
    /// `$!` is the node (without it, a shell between would outlive a SIGKILL).
    pub(crate) const KEEPER: &str = r#""$0" </dev/null >"$NODE_DIR/node.log" 2>&1 &
    node=$!
    read -r _
    kill -KILL "$node" 2>/dev/null
    wait "$node"
    rm -rf "$NODE_DIR""#;

    /// A RabbitMQ node of its own on 127.0.0.1 (AMQP and distribution ports), in a temporary
    /// directory (its database, log, config and Erlang cookie): SIGKILLed when dropped.
    pub(crate) struct Node {
        pub(crate) port: u16,
        keeper: Child,
        dir: tempfile::TempDir,
    }

    impl Node {
        /// Starts one on `port`, with `definitions` (RabbitMQ's JSON) loaded before it listens.
        /// It takes some seconds: [`Node::connect`] waits.
        pub(crate) fn start(port: u16, definitions: Option<&str>) -> Self {
            static STARTED: AtomicU32 = AtomicU32::new(0);
            let dir = tempfile::Builder::new()
                .prefix("airudder-rabbitmq-test-")
                .tempdir()
                .unwrap();
            let path = dir.path();
            std::fs::write(path.join("enabled_plugins"), "[].\n").unwrap();
            let mut config = String::new();
            if let Some(definitions) = definitions {
                let file = path.join("definitions.json");
                std::fs::write(&file, definitions).unwrap();
                config = format!("load_definitions = {}\n", file.display());
            }
            std::fs::write(path.join("rabbitmq.conf"), config).unwrap();
            let name = format!(
                "rabbit-test-{}-{}@localhost",
                std::process::id(),
                STARTED.fetch_add(1, Ordering::SeqCst)
            );
            let keeper = Command::new("sh")
                .args(["-c", KEEPER, SERVER])
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("HOME", path)
                .env("NODE_DIR", path)
                .env("RABBITMQ_NODENAME", name)
                .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                .env("RABBITMQ_NODE_PORT", port.to_string())
                .env("RABBITMQ_DIST_PORT", free_port().to_string())
                .env("RABBITMQ_MNESIA_BASE", path.join("mnesia"))
                .env("RABBITMQ_LOG_BASE", path.join("log"))
                .env("RABBITMQ_LOGS", "-")
                .env("RABBITMQ_CONFIG_FILE", path.join("rabbitmq.conf"))
                .env(
                    "RABBITMQ_ENABLED_PLUGINS_FILE",
                    path.join("enabled_plugins"),
                )
                // Not /etc/rabbitmq/rabbitmq-env.conf.
                .env("RABBITMQ_CONF_ENV_FILE", path.join("rabbitmq-env.conf"))
                .env("RABBITMQ_ALLOW_INPUT", "1")
                .env(
                    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                    "-noinput -kernel inet_dist_use_interface {127,0,0,1}",
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            Self { port, keeper, dir }
        }

        /// `amqp://` for the test's own connection.
        pub(crate) fn uri(&self) -> String {
            format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
        }

        /// The end of its log, for a failure's message.
        pub(crate) fn log(&self) -> String {
            let log = std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        }

        /// A connection once the node takes one (within 60 s of its start).
        pub(crate) async fn connect(&self) -> Connection {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                // A lapin connection only once the port accepts (each try has a thread of its own).
                if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
                {
                    let tried = tokio::time::timeout(
                        Duration::from_secs(5),
                        Connection::connect(&self.uri(), ConnectionProperties::default()),
                    )
                    .await;
                    if let Ok(Ok(connection)) = tried {
                        return connection;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "RabbitMQ on port {} up within 60 s:\n{}",
                    self.port,
                    self.log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    impl Drop for Node {
        fn drop(&mut self) {
            // Its input closed, the keeper kills the node and waits for it.
            drop(self.keeper.stdin.take());
            let _ = self.keeper.wait();
        }
    }
}

#[cfg(feature = "nats")]
mod nats {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// A `nats-server` with JetStream on 127.0.0.1, its store and log in a temporary directory;
    /// SIGKILLed when dropped.
    pub(crate) struct NatsServer {
        child: Child,
        dir: tempfile::TempDir,
    }

    impl NatsServer {
        /// Starts it on `port` with `args` added; returns once the port takes connections.
        pub(crate) async fn start(port: u16, args: &[&str]) -> Self {
            let dir = tempfile::Builder::new()
                .prefix("airudder-nats-test-")
                .tempdir()
                .unwrap();
            let log = std::fs::File::create(dir.path().join("nats.log")).unwrap();
            let child = Command::new("/usr/sbin/nats-server")
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(dir.path().join("store"))
                .args(args)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("nats-server runs (Debian's nats-server package)");
            let mut server = Self { child, dir };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = server.child.try_wait().unwrap() {
                    panic!("nats-server exited ({status}):\n{}", server.log());
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return server;
                }
                assert!(
                    Instant::now() < deadline,
                    "nats-server not listening on {port} within 10 s:\n{}",
                    server.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        pub(crate) fn log(&self) -> String {
            std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
        }

        /// SIGKILL, as a crash.
        pub(crate) fn kill(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Drop for NatsServer {
        fn drop(&mut self) {
            self.kill();
        }
    }
}

#[cfg(feature = "redis")]
mod redis {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use redis::aio::MultiplexedConnection;

    /// A `redis-server` of its own on 127.0.0.1, keeping nothing on disk (its working directory a
    /// temporary one), SIGKILLed when dropped.
    pub(crate) struct RedisServer {
        child: Child,
        pub(crate) port: u16,
        _dir: tempfile::TempDir,
    }

    impl RedisServer {
        /// Starts one on `port` with `extra` settings; returns once it answers PING.
        pub(crate) async fn start(port: u16, extra: &[&str]) -> Self {
            let dir = tempfile::Builder::new()
                .prefix("airudder-redis-test-")
                .tempdir()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let mut child = Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                    .arg("--dir")
                    .arg(dir.path())
                    .args(extra)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("Debian's redis-server (apt-get install redis-server)");
                loop {
                    // The port may be held a moment by a process another test forks: it exits
                    // then, and is started again.
                    if child.try_wait().unwrap().is_some() {
                        break;
                    }
                    if let Ok(mut connection) = connect(port).await
                        && redis::cmd("PING")
                            .query_async::<String>(&mut connection)
                            .await
                            .is_ok()
                    {
                        return Self {
                            child,
                            port,
                            _dir: dir,
                        };
                    }
                    assert!(
                        Instant::now() < deadline,
                        "redis-server answers on {port} within 10 s"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert!(
                    Instant::now() < deadline,
                    "redis-server starts on {port} within 10 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        pub(crate) async fn connection(&self) -> MultiplexedConnection {
            connect(self.port)
                .await
                .expect("a connection to the test's redis-server")
        }

        /// SIGKILL, as a crash.
        pub(crate) fn kill(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            self.kill();
        }
    }

    async fn connect(port: u16) -> redis::RedisResult<MultiplexedConnection> {
        redis::Client::open(format!("redis://127.0.0.1:{port}/0"))?
            .get_multiplexed_async_connection()
            .await
    }
}
