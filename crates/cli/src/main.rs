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
    /// Starts a full sync of a provider now.
    Sync {
        /// Provider name, as configured.
        #[arg(long)]
        provider: String,
        /// Wait for the sync to end; exit 0 if no object failed, 1 if some did, 2 on any other error.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up (exit 2) after this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// Prints the state of the providers: halts, last full sync, links, dead letters.
    Status {
        /// Only this provider.
        #[arg(long)]
        provider: Option<String>,
        /// Print one JSON document (the stable, scriptable form).
        #[arg(long)]
        json: bool,
    },
    /// Clears a provider's halt after its configuration was fixed, and starts a full sync.
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
        telemetry::init(cli.log_format, service_name(&cli.command))
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
            } => {
                let timeout = timeout.map(std::time::Duration::from_secs);
                commands::sync::run(cli.config.as_deref(), &provider, wait, timeout).await
            }
            Command::Status { provider, json } => {
                commands::status::run(cli.config.as_deref(), provider.as_deref(), json).await
            }
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
                    },
            } => {
                let args = commands::sim::AuthentikSimArgs {
                    addr: SocketAddr::new(host, port),
                    token_env,
                    users,
                    groups,
                    seed,
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
