//! `entra-sync sim graph` serves the Graph simulator as a process.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Starts `entra-sync sim <args>` on a free port and returns the first answer to `path`.
fn first_answer(args: &[&str], path: &str) -> String {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_entra-sync"))
        .args(["sim"])
        .args(args)
        .args(["--port", &port.to_string()])
        .env("AUTHENTIK_TOKEN", "sim-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let response = loop {
        if let Some(r) = get(port, path) {
            break r;
        }
        assert!(Instant::now() < deadline, "the simulator never answered");
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    response
}

#[test]
fn sim_graph_serves_graph_with_its_auth() {
    let response = first_answer(&["graph"], "/v1.0/organization");
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(
        response.contains("InvalidAuthenticationToken"),
        "{response}"
    );
}

#[test]
fn sim_authentik_serves_the_api_with_its_auth() {
    let response = first_answer(
        &["authentik", "--users", "50", "--groups", "5"],
        "/api/v3/core/users/",
    );
    assert!(
        response.starts_with("HTTP/1.1 401") || response.starts_with("HTTP/1.1 403"),
        "{response}"
    );
}
