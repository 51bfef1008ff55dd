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

/// The actions of model events.
pub(crate) const MODEL_ACTIONS: [&str; 3] = ["model_created", "model_updated", "model_deleted"];

/// The filters of `model_events_page` that `page` shows ignored: an event of
/// another action or app, or one newer than the event before it.
pub(crate) fn ignored_filters(page: &[AkEvent]) -> Vec<crate::Filter> {
    use crate::Filter;
    let mut out = Vec::new();
    if page
        .iter()
        .any(|e| !MODEL_ACTIONS.contains(&e.action.as_str()))
    {
        out.push(Filter::EventsActions);
    }
    if page
        .iter()
        .any(|e| e.model().is_none_or(|m| m.app != "authentik_core"))
    {
        out.push(Filter::EventsModelApp);
    }
    if page.windows(2).any(|w| w[1].created > w[0].created) {
        out.push(Filter::EventsOrdering);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Filter;

    fn event(action: &str, app: &str, created: &str) -> AkEvent {
        serde_json::from_value(serde_json::json!({
            "pk": uuid::Uuid::new_v4(), "action": action, "created": created,
            "context": {"model": {"app": app, "model_name": "user", "pk": 1}}
        }))
        .unwrap()
    }

    #[test]
    fn a_page_shows_which_filters_were_ignored() {
        let good = [
            event("model_updated", "authentik_core", "2026-01-01T10:00:02Z"),
            event("model_created", "authentik_core", "2026-01-01T10:00:01Z"),
        ];
        assert!(ignored_filters(&good).is_empty());
        let bad = [
            event("login", "authentik_core", "2026-01-01T10:00:01Z"),
            event("model_updated", "authentik_flows", "2026-01-01T10:00:02Z"),
        ];
        assert_eq!(
            ignored_filters(&bad),
            vec![
                Filter::EventsActions,
                Filter::EventsModelApp,
                Filter::EventsOrdering
            ]
        );
    }
}
