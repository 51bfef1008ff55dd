//! Throwaway PostgreSQL and RabbitMQ servers for the tests that stop them:
//! each in a temporary directory, on free ports, so the shared servers other
//! tests use are never touched.
//!
//! - [`ThrowawayPostgres`] runs `initdb` and `pg_ctl` from
//!   `/usr/lib/postgresql/*/bin` (or `PATH`); as root they run as the
//!   `postgres` user, since PostgreSQL refuses to run as root.
//! - [`ThrowawayRabbit`] runs `rabbitmq-server` and `rabbitmqctl` from
//!   `/usr/lib/rabbitmq/bin` (or `PATH`) as the current user, with its own
//!   node name, ports, data and cookie, and the management plugin (vhosts
//!   and policies are made through it).
//!
//! Both stop and clean up when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// A fresh temporary directory.
fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("entra-sync-{what}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `name` in the first of `dirs` that has it, or `name` alone (from `PATH`).
fn find_program(dirs: &[PathBuf], name: &str) -> PathBuf {
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs `command`, panicking with its output if it fails.
async fn run(mut command: Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A PostgreSQL cluster of its own.
pub struct ThrowawayPostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl ThrowawayPostgres {
    /// Creates and starts a cluster on a free port.
    pub async fn start() -> Self {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
            .unwrap_or_default();
        versions.sort();
        versions.reverse();
        let initdb = find_program(&versions, "initdb");
        let bin = initdb.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = temp_dir("pg");
        let as_postgres = is_root();
        if as_postgres {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres").arg(&dir);
                    c
                },
                "chown",
            )
            .await;
        }
        let pg = Self {
            port: crate::free_port(),
            dir,
            bin,
            as_postgres,
        };
        let mut initdb = pg.command("initdb");
        initdb.arg("-D").arg(pg.dir.join("data")).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        run(initdb, "initdb").await;
        pg.start_again().await;
        pg
    }

    fn command(&self, program: &str) -> Command {
        let program = if self.bin.as_os_str().is_empty() {
            PathBuf::from(program)
        } else {
            self.bin.join(program)
        };
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops it (fast shutdown: connections are cut).
    pub async fn stop(&self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"]);
        run(stop, "pg_ctl stop").await;
    }

    /// Starts it (again) and waits until it accepts connections.
    pub async fn start_again(&self) {
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                self.port,
                self.dir.display()
            ))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "start"]);
        run(start, "pg_ctl start").await;
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut stop = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_ctl);
            c
        } else {
            std::process::Command::new(pg_ctl)
        };
        let _ = stop
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A RabbitMQ node of its own, with the management plugin.
pub struct ThrowawayRabbit {
    dir: PathBuf,
    bin: Vec<PathBuf>,
    node: String,
    amqp_port: u16,
    management_port: u16,
    dist_port: u16,
    server: Option<tokio::process::Child>,
}

impl ThrowawayRabbit {
    /// Starts a node on free ports and waits until it runs.
    pub async fn start() -> Self {
        let dir = temp_dir("rabbit");
        let mut rabbit = Self {
            node: format!(
                "entra-sync-test-{}@localhost",
                uuid::Uuid::new_v4().simple()
            ),
            amqp_port: crate::free_port(),
            management_port: crate::free_port(),
            dist_port: crate::free_port(),
            bin: vec![PathBuf::from("/usr/lib/rabbitmq/bin")],
            server: None,
            dir,
        };
        std::fs::write(
            rabbit.dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{}\nmanagement.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {}\nloopback_users = none\n",
                rabbit.amqp_port, rabbit.management_port
            ),
        )
        .unwrap();
        std::fs::write(
            rabbit.dir.join("enabled_plugins"),
            "[rabbitmq_management].\n",
        )
        .unwrap();
        let mut server = rabbit.command("rabbitmq-server");
        let log = std::fs::File::create(rabbit.dir.join("server.log")).unwrap();
        server
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true);
        rabbit.server = Some(server.spawn().expect("start rabbitmq-server"));
        rabbit.wait_running().await;
        rabbit
    }

    fn command(&self, program: &str) -> Command {
        let dir = &self.dir;
        let mut c = Command::new(find_program(&self.bin, program));
        c.env("HOME", dir)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", dir.join("plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .stdin(Stdio::null());
        c
    }

    fn ctl(&self, args: &[&str]) -> Command {
        let mut c = self.command("rabbitmqctl");
        c.arg("-n").arg(&self.node).args(args);
        c
    }

    async fn wait_running(&self) {
        let pid = self.dir.join("pid");
        let pid = pid.to_string_lossy();
        run(
            self.ctl(&["wait", &pid, "--timeout", "120"]),
            "rabbitmqctl wait",
        )
        .await;
    }

    /// Its AMQP address, `127.0.0.1:port`.
    pub fn amqp_addr(&self) -> String {
        format!("127.0.0.1:{}", self.amqp_port)
    }

    /// Its management API, `http://127.0.0.1:port`.
    pub fn management_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.management_port)
    }

    /// Stops the RabbitMQ application: every connection is closed and the
    /// port no longer answers; the node and its data stay.
    pub async fn stop_app(&self) {
        run(self.ctl(&["stop_app"]), "rabbitmqctl stop_app").await;
    }

    /// Starts the RabbitMQ application again.
    pub async fn start_app(&self) {
        run(self.ctl(&["start_app"]), "rabbitmqctl start_app").await;
        run(
            self.ctl(&["await_startup", "--timeout", "120"]),
            "rabbitmqctl await_startup",
        )
        .await;
    }
}

impl Drop for ThrowawayRabbit {
    fn drop(&mut self) {
        let mut stop = std::process::Command::new(find_program(&self.bin, "rabbitmqctl"));
        let _ = stop
            .env("HOME", &self.dir)
            .arg("-n")
            .arg(&self.node)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut server) = self.server.take() {
            let _ = server.start_kill();
        }
        // Give the VM a moment to let go of its files.
        std::thread::sleep(Duration::from_millis(200));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
