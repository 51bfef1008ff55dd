//! authentik events, as `GET /api/v3/events/events/` returns them.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// One event. Only the fields the events follower needs are read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AkEvent {
    /// The event's UUID.
    pub pk: uuid::Uuid,
    /// `model_created`, `model_updated`, `model_deleted`, `login`, …
    pub action: String,
    /// When authentik recorded it.
    pub created: DateTime<Utc>,
    /// When authentik will delete it (its retention), if the version says.
    #[serde(default)]
    pub expires: Option<DateTime<Utc>>,
    /// Free-form context; model events carry `model: {app, model_name, pk, name}`.
    #[serde(default)]
    pub context: serde_json::Value,
}

/// The object a model event is about.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRef {
    /// Django app label, `authentik_core` for users and groups.
    pub app: String,
    /// Lower-case model name, e.g. `user`, `group`.
    pub model_name: String,
    /// The primary key as authentik wrote it: an integer, or a UUID (authentik
    /// stores UUID pks as hex without dashes).
    pub pk: serde_json::Value,
}

impl AkEvent {
    /// `context.model`, if the event has one.
    pub fn model(&self) -> Option<ModelRef> {
        let m = self.context.get("model")?;
        Some(ModelRef {
            app: m.get("app")?.as_str()?.to_owned(),
            model_name: m.get("model_name")?.as_str()?.to_owned(),
            pk: m.get("pk")?.clone(),
        })
    }
}
