//! `entra-sync sim …`: the simulators of the remote systems, as servers.

use anyhow::Context;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;

/// Serves the Microsoft Graph simulator on `port` until interrupted. Its
/// settings come from a JSON file (`SimConfig`'s fields), else the defaults.
pub async fn graph(port: u16, settings: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config: entra_sync_sim::graph::SimConfig = match settings {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a Graph simulator config", path.display()))?
        }
        None => Default::default(),
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .with_context(|| format!("cannot listen on port {port}"))?;
    tracing::info!(
        url = %format!("http://{}", listener.local_addr()?),
        tenant = %config.tenant_id,
        domains = ?config.domains,
        "Microsoft Graph simulator listening"
    );
    tokio::select! {
        served = entra_sync_sim::graph::serve(listener, config) => served?,
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    Ok(ExitCode::SUCCESS)
}
