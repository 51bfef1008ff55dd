//! `entra-sync sim …` as processes, the way docker compose runs them: they
//! listen on the address given by `--host` (0.0.0.0 in a container) and stop
//! cleanly on SIGTERM (`docker stop`).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A loopback address other than 127.0.0.1, so that binding to it proves
/// `--host` is honoured.
const HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn free_port() -> u16 {
    TcpListener::bind((HOST, 0))
        .expect("bind 127.0.0.2")
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_sim(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_entra-sync"))
        .args(args)
        .env("SIM_PROCESS_TEST_TOKEN", "sim-process-test-token")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start entra-sync sim")
}

fn wait_listening(addr: SocketAddr, child: &mut Child) {
    let started = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "simulator exited early"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nothing listens on {addr}"
        );
        sleep(Duration::from_millis(50));
    }
}

fn sigterm_and_wait(child: &mut Child, within: Duration) -> ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > within {
            child.kill().ok();
            panic!("still running {within:?} after SIGTERM");
        }
        sleep(Duration::from_millis(50));
    }
}

fn check_sim(args: &[&str], port: u16) {
    let mut child = spawn_sim(args);
    wait_listening(SocketAddr::from((HOST, port)), &mut child);
    assert!(
        TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            Duration::from_millis(500)
        )
        .is_err(),
        "the simulator listens on 127.0.0.1:{port} although --host was 127.0.0.2"
    );
    let status = sigterm_and_wait(&mut child, Duration::from_secs(5));
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn the_graph_simulator_listens_on_host_and_stops_on_sigterm() {
    let port = free_port();
    check_sim(
        &[
            "sim",
            "graph",
            "--host",
            "127.0.0.2",
            "--port",
            &port.to_string(),
        ],
        port,
    );
}

#[test]
fn the_authentik_simulator_listens_on_host_and_stops_on_sigterm() {
    let port = free_port();
    check_sim(
        &[
            "sim",
            "authentik",
            "--host",
            "127.0.0.2",
            "--port",
            &port.to_string(),
            "--token-env",
            "SIM_PROCESS_TEST_TOKEN",
            "--users",
            "3",
            "--groups",
            "1",
        ],
        port,
    );
}
