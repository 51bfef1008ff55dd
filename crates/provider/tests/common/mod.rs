//! Setup shared by the provider room's tests.

#![allow(dead_code, reason = "each test binary uses a different part of it")]

use entra_sync_graph::{GraphClient, GraphConfig, Secret};
use entra_sync_provider::Provider;
use entra_sync_sim::graph::SimConfig;

/// Provider `p` on `graph`, deleting what leaves, with a threshold of 500 per hour.
pub fn provider(graph: GraphClient) -> Provider {
    entra_sync_provider::testing::provider("p", graph)
}

/// The Graph configuration of the simulator's app at `base_url`.
pub fn graph_config(base_url: &str) -> GraphConfig {
    GraphConfig::new(
        SimConfig::TENANT_ID,
        SimConfig::CLIENT_ID,
        Secret::new(SimConfig::CLIENT_SECRET),
    )
    .with_base_url(base_url)
}

/// A Graph client of the simulator's app at `base_url`.
pub fn graph_client(base_url: &str) -> GraphClient {
    GraphClient::new(graph_config(base_url)).unwrap()
}
