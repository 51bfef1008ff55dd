//! Setup shared by the provider room's tests.

use entra_sync_core::reconcile::DeleteAction;
use entra_sync_graph::{GraphClient, GraphConfig, Secret};
use entra_sync_provider::{DeletionPolicy, Provider, ScopeSettings};
use entra_sync_sim::graph::SimConfig;

/// Provider `p` on `graph`, deleting what leaves, with a threshold of 500 per hour.
pub fn provider(graph: GraphClient) -> Provider {
    Provider {
        name: "p".into(),
        settings_hash: "h".into(),
        graph,
        scope: ScopeSettings::default(),
        deletions: DeletionPolicy {
            users: DeleteAction::Delete,
            groups: DeleteAction::Delete,
            threshold: 500,
            window: std::time::Duration::from_secs(3600),
        },
        mappings: Vec::new(),
        tenant_id: SimConfig::TENANT_ID.into(),
        client_id: SimConfig::CLIENT_ID.into(),
        remove_unmanaged_members: false,
    }
}

/// A Graph client of the simulator's app at `base_url`.
pub fn graph_client(base_url: &str) -> GraphClient {
    let config = GraphConfig::new(
        SimConfig::TENANT_ID,
        SimConfig::CLIENT_ID,
        Secret::new(SimConfig::CLIENT_SECRET),
    )
    .with_base_url(base_url);
    GraphClient::new(config).unwrap()
}
