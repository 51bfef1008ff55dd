//! Graph-shaped error answers (`microsoft-graph.md` §3.1, §3.2).

use serde_json::{Value, json};

/// An error answer: status, Graph's `code`, `message` and optional `details`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SimError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// `(code, target)` pairs for `details`.
    pub details: Vec<(&'static str, String)>,
}

impl SimError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 400 `Request_BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "Request_BadRequest", message)
    }

    /// 404 `Request_ResourceNotFound` for `id`.
    pub fn not_found(id: &str) -> Self {
        Self::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    /// 400 "Invalid value specified for property '…' of resource '…'."
    pub fn invalid_value(property: &str, resource: &str) -> Self {
        Self::bad_request(format!(
            "Invalid value specified for property '{property}' of resource '{resource}'."
        ))
    }

    /// 400 for a just-created object that has not replicated yet, on member adds.
    pub fn references_missing() -> Self {
        Self::bad_request(
            "The source resource object or one of the objects being referenced don't exist.",
        )
    }

    /// 400 "already exist" on adding a present member.
    pub fn already_member() -> Self {
        Self::bad_request(
            "One or more added object references already exist for the following modified properties: 'members'.",
        )
    }

    /// 403 `Authorization_RequestDenied`: the app's grants don't cover the request,
    /// or Graph won't let an app change this object (§3.2; Microsoft's support
    /// article "Troubleshoot 403 error when adding a user to a group").
    pub fn insufficient_privileges() -> Self {
        Self::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    /// 400 for a cloud write to an object synchronised from on-premises
    /// (`microsoft-graph-docs` issues #7301 and #18038 for user PATCH).
    pub fn on_premises_mastered() -> Self {
        Self::bad_request(
            "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.",
        )
    }

    /// 400 for a PATCH of a mail-enabled security or distribution group, which
    /// are read-only through Graph (message as seen in client code, second-hand).
    pub fn mail_enabled_read_only() -> Self {
        Self::bad_request("Cannot Update a mail-enabled security groups and or distribution list.")
    }

    /// 400 `ObjectConflict` on a taken unique property.
    pub fn conflict(property: &str) -> Self {
        let mut e = Self::bad_request(format!(
            "Another object with the same value for property {property} already exists."
        ));
        e.details.push(("ObjectConflict", property.to_string()));
        e
    }

    /// The JSON body `{"error": {...}}`.
    pub fn body(&self, request_id: &str) -> Value {
        let mut error = json!({
            "code": self.code,
            "message": self.message,
            "innerError": {
                "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": request_id,
                "client-request-id": request_id,
            }
        });
        if !self.details.is_empty() {
            error["details"] = self
                .details
                .iter()
                .map(|(code, target)| json!({"code": code, "target": target, "message": self.message}))
                .collect();
        }
        json!({ "error": error })
    }
}
