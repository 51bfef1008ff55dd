//! The `entra-sync` binary: one command per process role, wired from the crates.

mod commands;
mod telemetry;

use clap::{Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

/// Keeps Microsoft Entra ID in step with authentik.
#[derive(Debug, Parser)]
#[command(
    name = "entra-sync",
    version,
    about = "Keeps Microsoft Entra ID in step with authentik."
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "ENTRA_SYNC_CONFIG")]
    config: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(
        long,
        global = true,
        env = "ENTRA_SYNC_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Applies the database migrations; safe to run twice or concurrently.
    Migrate,
    /// Validates the configuration and compiles every property mapping.
    CheckConfig,
    /// Schedules full syncs, follows authentik's changes, serves the webhook, health and metrics.
    Producer {
        /// Address of the webhook, health and metrics (overrides `[producer] listen`).
        #[arg(long, env = "ENTRA_SYNC_LISTEN", value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Consumes tasks and writes to Microsoft Graph until SIGTERM.
    Worker {
        /// Tasks reconciled at once (overrides `[worker] concurrency`).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Address of health and metrics (overrides `[worker] listen`; port 0 takes a free port).
        #[arg(long, env = "ENTRA_SYNC_LISTEN", value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Starts a full sync of a provider now, or syncs one object (--object).
    /// Needs the database and the broker, not the Graph or authentik secrets.
    Sync {
        /// Provider name, as configured.
        #[arg(long)]
        provider: String,
        /// Wait for the sync to end, showing its progress; exit 0 if no object
        /// failed, 1 if some did, 2 on any other error.
        #[arg(long)]
        wait: bool,
        /// With --wait or --object: give up (exit 2) after this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// Sync only this object now, as a direct task, and print its outcome
        /// (exit 0 ok, 1 failed, 2 error or timeout): user:<pk> or group:<uuid>.
        #[arg(long, value_name = "OBJECT", conflicts_with = "wait")]
        object: Option<String>,
    },
    /// Prints the state of the providers: halts, last full sync, links, dead
    /// letters, recent failures. Exit codes: 0 when the state was printed, even
    /// with a provider halted; with --check, 1 when a provider is halted; 2 on
    /// any error. Needs only the database.
    Status {
        /// Only this provider.
        #[arg(long)]
        provider: Option<String>,
        /// Print one JSON document (the stable, scriptable form).
        #[arg(long)]
        json: bool,
        /// Exit 1 when a provider is halted (for scripts and probes).
        #[arg(long)]
        check: bool,
    },
    /// Explains an object's state from the database: halt, scope, link, the body
    /// last written, the decision and the recent outcomes with their reasons.
    /// Needs only the database (no --live mode yet, which would need the secrets).
    Why {
        /// Provider name, as configured.
        #[arg(long)]
        provider: String,
        /// user:<pk> or group:<uuid>.
        object: String,
    },
    /// Lists, retries or drops a provider's dead letters. Needs the database
    /// (and the broker, to retry).
    DeadLetters {
        /// list, retry or drop.
        #[arg(value_enum)]
        action: commands::dead_letters::Action,
        /// Provider name, as configured.
        #[arg(long)]
        provider: String,
        /// Only these dead letters (as `list` numbers them); all when left out.
        #[arg(long = "id", value_name = "ID")]
        ids: Vec<i64>,
    },
    /// Clears a provider's halt after its configuration was fixed, and starts a
    /// full sync. Needs only the database.
    Resume {
        /// Provider name, as configured.
        #[arg(long)]
        provider: String,
        /// Only for a halt by the deletion guard: clear it and let the full sync
        /// it starts delete what the guard held back.
        #[arg(long)]
        allow_deletions: bool,
    },
    /// Runs a simulator of a remote system, for tests and the demo.
    Sim {
        #[command(subcommand)]
        system: SimSystem,
    },
}

#[derive(Debug, Subcommand)]
enum SimSystem {
    /// The Microsoft Graph simulator (token endpoint, users, groups, members, $batch).
    Graph {
        /// Address to listen on (0.0.0.0 to be reachable from other containers).
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// Port to listen on.
        #[arg(long, default_value_t = 9100)]
        port: u16,
        /// JSON settings (tenant, domains, apps, throttling, faults); defaults otherwise.
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// The authentik simulator (core users and groups, events feed, webhooks, control API).
    Authentik {
        /// Address to listen on (0.0.0.0 to be reachable from other containers).
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// Port to listen on.
        #[arg(long, default_value_t = 9000)]
        port: u16,
        /// Environment variable holding the API token the simulator accepts.
        #[arg(long, default_value = "AUTHENTIK_TOKEN")]
        token_env: String,
        /// Users to generate.
        #[arg(long, default_value_t = 0)]
        users: usize,
        /// Groups to generate.
        #[arg(long, default_value_t = 0)]
        groups: usize,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The authentik release to imitate: 2024.2, 2024.12, 2025.4, 2025.10 or 2026.8.
        #[arg(long, default_value = "2026.8")]
        release: entra_sync_sim::authentik::Release,
    },
}

/// The `service.name` traces carry: one per role, so a trace shows which
/// process did what.
fn service_name(command: &Command) -> &'static str {
    match command {
        Command::Producer { .. } => "entra-sync-producer",
        Command::Worker { .. } => "entra-sync-worker",
        _ => "entra-sync",
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.command {
        Command::Sync { .. }
        | Command::Status { .. }
        | Command::Resume { .. }
        | Command::Why { .. }
        | Command::DeadLetters { .. } => "warn",
        _ => "info",
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("entra-sync: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // Within the runtime: the gRPC exporter needs it. Dropped before the
    // runtime, so the last spans are flushed while it still runs.
    let _telemetry = {
        let _entered = runtime.enter();
        telemetry::init(cli.log_format, service_name(&cli.command), level)
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Migrate => commands::migrate::run(cli.config.as_deref()).await,
            Command::CheckConfig => commands::check_config::run(cli.config.as_deref()),
            Command::Producer { listen } => {
                commands::producer::run(cli.config.as_deref(), listen).await
            }
            Command::Worker {
                concurrency,
                listen,
            } => commands::worker::run(cli.config.as_deref(), concurrency, listen).await,
            Command::Sync {
                provider,
                wait,
                timeout,
                object,
            } => {
                let timeout = timeout.map(std::time::Duration::from_secs);
                match object {
                    Some(object) => {
                        commands::object::run(cli.config.as_deref(), &provider, &object, timeout)
                            .await
                    }
                    None => {
                        commands::sync::run(cli.config.as_deref(), &provider, wait, timeout).await
                    }
                }
            }
            Command::Status {
                provider,
                json,
                check,
            } => {
                let args = commands::status::StatusArgs { json, check };
                commands::status::run(cli.config.as_deref(), provider.as_deref(), args).await
            }
            Command::Why { provider, object } => {
                commands::why::run(cli.config.as_deref(), &provider, &object).await
            }
            Command::DeadLetters {
                action,
                provider,
                ids,
            } => commands::dead_letters::run(cli.config.as_deref(), &provider, action, &ids).await,
            Command::Resume {
                provider,
                allow_deletions,
            } => commands::resume::run(cli.config.as_deref(), &provider, allow_deletions).await,
            Command::Sim {
                system:
                    SimSystem::Graph {
                        host,
                        port,
                        settings,
                    },
            } => commands::sim::graph(SocketAddr::new(host, port), settings.as_deref()).await,
            Command::Sim {
                system:
                    SimSystem::Authentik {
                        host,
                        port,
                        token_env,
                        users,
                        groups,
                        seed,
                        release,
                    },
            } => {
                let args = commands::sim::AuthentikSimArgs {
                    addr: SocketAddr::new(host, port),
                    token_env,
                    users,
                    groups,
                    seed,
                    release,
                };
                commands::sim::authentik(args).await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("entra-sync: {e:#}");
            ExitCode::from(2)
        }
    }
}
