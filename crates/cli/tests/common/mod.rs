//! What the CLI's process tests share: an `entra-sync` command on a
//! configuration file, running one to its end, and reading a page a process serves.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// `entra-sync ARGS` on `config`, without the database and broker URLs of
/// this environment (the configuration file names them).
pub fn command(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_entra-sync"));
    command
        .args(args)
        .env("ENTRA_SYNC_CONFIG", config)
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL");
    command
}

/// Runs `entra-sync ARGS` with `config`; (exit code, stdout, stderr).
pub fn run(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = command(config, args).output().expect("run entra-sync");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The body of a GET of `url`.
pub async fn page(url: String) -> String {
    let answer = reqwest::get(url).await.unwrap();
    answer.text().await.unwrap()
}
