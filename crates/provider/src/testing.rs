//! A provider for tests of the crates that hold one.

use crate::{DeletionPolicy, Provider, ScopeSettings};
use entra_sync_core::reconcile::DeleteAction;
use entra_sync_graph::GraphClient;
use std::time::Duration;

/// Provider `name` on `graph`: everyone in scope, deletes what is gone, up to
/// 500 deletions within 1 h, default mappings, members it does not link
/// left alone.
pub fn provider(name: &str, graph: GraphClient) -> Provider {
    Provider {
        name: name.into(),
        settings_hash: "h".into(),
        graph,
        scope: ScopeSettings::default(),
        deletions: DeletionPolicy {
            users: DeleteAction::Delete,
            groups: DeleteAction::Delete,
            threshold: 500,
            window: Duration::from_secs(3600),
        },
        mappings: Vec::new(),
        tenant_id: "t".into(),
        client_id: "c".into(),
        remove_unmanaged_members: false,
    }
}
