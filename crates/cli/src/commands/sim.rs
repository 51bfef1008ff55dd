//! `entra-sync sim …`: the simulators of the remote systems, as servers.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

/// Serves the Microsoft Graph simulator on `addr` until SIGTERM or Ctrl-C. Its
/// settings come from a JSON file (`SimConfig`'s fields), else the defaults.
pub async fn graph(addr: SocketAddr, settings: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config: entra_sync_sim::graph::SimConfig = match settings {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a Graph simulator config", path.display()))?
        }
        None => Default::default(),
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        url = %format!("http://{}", listener.local_addr()?),
        tenant = %config.tenant_id,
        domains = ?config.domains,
        "Microsoft Graph simulator listening"
    );
    tokio::select! {
        served = entra_sync_sim::graph::serve(listener, config) => served?,
        _ = super::shutdown_signal() => tracing::info!("stopping"),
    }
    Ok(ExitCode::SUCCESS)
}

/// What `entra-sync sim authentik` builds and serves.
#[derive(Debug)]
pub struct AuthentikSimArgs {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Environment variable holding the API token clients must send.
    pub token_env: String,
    /// Users to generate (0 for an empty directory).
    pub users: usize,
    /// Groups to generate.
    pub groups: usize,
    /// Seed of the generator.
    pub seed: u64,
    /// The authentik release imitated.
    pub release: entra_sync_sim::authentik::Release,
}

/// Serves the authentik simulator, optionally with a generated organisation,
/// until SIGTERM or Ctrl-C.
pub async fn authentik(args: AuthentikSimArgs) -> anyhow::Result<ExitCode> {
    use entra_sync_sim::authentik::{AuthentikSim, OrgSpec, SimConfig};
    let token = std::env::var(&args.token_env).with_context(|| {
        format!(
            "set {} to the API token the simulator accepts",
            args.token_env
        )
    })?;
    let sim = AuthentikSim::new(SimConfig::new(token).with_release(args.release));
    if args.users > 0 || args.groups > 0 {
        let summary = sim.generate(&OrgSpec::new(args.seed, args.users, args.groups));
        tracing::info!(
            users = summary.users,
            groups = summary.groups,
            memberships = summary.memberships,
            "generated an organisation"
        );
    }
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    tracing::info!(url = %format!("http://{}", listener.local_addr()?), release = %args.release, "authentik simulator listening");
    tokio::select! {
        served = sim.serve_on(listener) => served?,
        _ = super::shutdown_signal() => tracing::info!("stopping"),
    }
    Ok(ExitCode::SUCCESS)
}
