//! Failure classification: from an HTTP status and Graph's error body to one of
//! the classes of DESIGN invariant 6.
//!
//! Classification looks at the status and Graph's error `code` and `details[].code`
//! first, and at the message only where Entra gives no other way to tell
//! conditions apart (`microsoft-graph.md` §3.2, §3.3).

use serde::{Deserialize, Serialize};

/// What to do about a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Network failure, 429, 5xx, replication delay: retry later with backoff, honouring Retry-After.
    Transient,
    /// The desired state is already there (already a member, not a member, already deleted): success.
    AlreadyDone,
    /// The object already exists in Entra (the UPN is taken): adopt the existing object.
    Conflict,
    /// The linked Entra object no longer exists: re-create it.
    StaleLink,
    /// Graph rejects this object's data: record it and move on.
    Permanent,
    /// Graph refused, with 403, a write to this one object (a user holding an
    /// admin role, a role-assignable or mail-enabled group): a permanent failure
    /// of this object only. Kept apart so that many refusals in a row, which
    /// mean a permission was removed, can be counted.
    Forbidden,
    /// Bad credentials, missing permission or an invalid mapping: halt the provider until fixed.
    Configuration,
}

impl FailureClass {
    /// Every class, for exhaustive tests.
    pub const ALL: [FailureClass; 7] = [
        Self::Transient,
        Self::AlreadyDone,
        Self::Conflict,
        Self::StaleLink,
        Self::Permanent,
        Self::Forbidden,
        Self::Configuration,
    ];
}

/// The kind of request that failed; the same status means different things for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// The OAuth2 token request.
    Token,
    /// A GET: list, get by id, lookup.
    Read,
    /// POST `/users`, or a group's upsert by `uniqueName`.
    Create,
    /// PATCH of a user or group's properties.
    Update,
    /// DELETE of a user or group.
    Delete,
    /// Adding members (`members@odata.bind` or `members/$ref`).
    AddMembers,
    /// DELETE `…/members/{id}/$ref`.
    RemoveMember,
}

impl Operation {
    /// Whether the request changes one existing object (its properties, its
    /// existence or its members), so that a refusal concerns that object only.
    pub fn writes_one_object(self) -> bool {
        matches!(
            self,
            Self::Update | Self::Delete | Self::AddMembers | Self::RemoveMember
        )
    }
}

/// What a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The tenant as a whole: the token, the organization.
    Tenant,
    /// Users: one user, or the users list.
    User,
    /// Groups: one group, its members, or the groups list.
    Group,
}

/// What the classifier needs to know besides the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureContext {
    /// The request that failed.
    pub operation: Operation,
    /// What it was about.
    pub target: Target,
    /// Whether the target object (or a referenced one) was created by us so
    /// recently that Entra may not have replicated it yet.
    pub recently_created: bool,
}

impl FailureContext {
    /// A context for `operation` on `target`, not just created.
    pub fn new(operation: Operation, target: Target) -> Self {
        Self {
            operation,
            target,
            recently_created: false,
        }
    }

    /// Why Graph may have refused a write with 403 ([`FailureClass::Forbidden`]),
    /// for the operator reading the failure.
    pub fn forbidden_hint(&self) -> &'static str {
        match (self.target, self.operation) {
            (Target::User, _) => {
                "the user may hold a privileged admin role; the app cannot modify it with User.ReadWrite.All"
            }
            (Target::Group, Operation::AddMembers | Operation::RemoveMember) => {
                "the group may be role-assignable (its members need RoleManagement.ReadWrite.Directory), dynamic, mail-enabled or a distribution group, whose members the app cannot change"
            }
            (Target::Group, _) => {
                "the group may be role-assignable or mail-enabled; the app cannot modify it with Group.ReadWrite.All"
            }
            (Target::Tenant, _) => "the app may lack a permission this request needs",
        }
    }
}

/// Graph's error body: `{"error": {"code", "message", "details": [{"code", "target"}], "innerError"}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphError {
    /// Machine-readable code, e.g. `Request_BadRequest`.
    #[serde(default)]
    pub code: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Detail entries; uniqueness conflicts carry `ObjectConflict` here.
    #[serde(default)]
    pub details: Vec<GraphErrorDetail>,
}

/// One entry of a Graph error's `details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphErrorDetail {
    /// Detail code, e.g. `ObjectConflict`.
    #[serde(default)]
    pub code: String,
    /// The property at fault, e.g. `userPrincipalName`.
    #[serde(default)]
    pub target: String,
    /// Detail message.
    #[serde(default)]
    pub message: String,
}

impl GraphError {
    /// Reads a Graph error body, or an OAuth2 token error (`error`, `error_description`).
    /// Anything else yields an empty error, so classification still has the status.
    pub fn parse(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Envelope {
            error: serde_json::Value,
            #[serde(default)]
            error_description: Option<String>,
        }
        let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
            return Self::default();
        };
        match envelope.error {
            serde_json::Value::String(code) => Self {
                code,
                message: envelope.error_description.unwrap_or_default(),
                details: Vec::new(),
            },
            value => serde_json::from_value(value).unwrap_or_default(),
        }
    }

    fn has_detail(&self, code: &str) -> bool {
        self.details
            .iter()
            .any(|d| d.code.eq_ignore_ascii_case(code))
    }

    fn message_has(&self, needle: &str) -> bool {
        self.message
            .to_ascii_lowercase()
            .contains(&needle.to_ascii_lowercase())
    }
}

/// Classifies a response. Returns `None` for a success (1xx, 2xx, 3xx) and a
/// class for every other status: the function is total.
pub fn classify(status: u16, error: &GraphError, ctx: FailureContext) -> Option<FailureClass> {
    use FailureClass::*;
    use Operation::*;
    if status < 400 {
        return None;
    }
    let class = match (status, ctx.operation) {
        // The token endpoint: a bad secret, client or tenant is 400/401.
        (500.., Token) | (429, Token) => Transient,
        (_, Token) => Configuration,
        (429 | 408, _) => Transient,
        (401, _) => Configuration,
        (403, _) if error.message_has("exceed the maximum quota") => Permanent,
        // A write refused for one object fails that object; a refused read or
        // create means the app lacks a permission.
        (403, operation) if operation.writes_one_object() => Forbidden,
        (403, _) => Configuration,
        (404, RemoveMember | Delete) => AlreadyDone,
        (404, _) if ctx.recently_created => Transient,
        (404, Update | AddMembers | Read) => StaleLink,
        (404, Create) => Permanent,
        (400, _)
            if error.has_detail("ObjectConflict")
                || error.message_has("another object with the same value for property") =>
        {
            Conflict
        }
        (400, AddMembers) if error.message_has("added object references already exist") => {
            AlreadyDone
        }
        (400, RemoveMember) if error.message_has("removed object references do not exist") => {
            AlreadyDone
        }
        (400, AddMembers) if error.message_has("objects being referenced don't exist") => {
            if ctx.recently_created {
                Transient
            } else {
                StaleLink
            }
        }
        (400..=499, _) => Permanent,
        (500..=599, _) => Transient,
        _ => Permanent,
    };
    Some(class)
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureClass::*;
    use Operation::*;
    use proptest::prelude::*;

    /// Real error bodies from `microsoft-graph.md` §1.4 and §3.2.
    const TOO_MANY: &str = r#"{"error":{"code":"TooManyRequests","innerError":{"code":"429","date":"2020-08-18T12:51:51","message":"Please retry after","request-id":"94fb3b52-452a-4535-a601-69e0a90e3aa2","status":"429"},"message":"Please retry again later."}}"#;
    const UPN_CONFLICT: &str = r#"{"error":{"code":"Request_BadRequest","message":"Another object with the same value for property userPrincipalName already exists.","innerError":{"request-id":"1"},"details":[{"target":"userPrincipalName","code":"ObjectConflict"}]}}"#;
    const NOT_FOUND: &str = r#"{"error":{"code":"Request_ResourceNotFound","message":"Resource '9a3d0000-0000-0000-0000-000000000001' does not exist or one of its queried reference-property objects are not present.","innerError":{"request-id":"1"}}}"#;
    const DENIED: &str = r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"request-id":"1"}}}"#;
    const BAD_TOKEN: &str = r#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token is empty.","innerError":{"request-id":"1"}}}"#;
    const WEAK_PASSWORD: &str = r#"{"error":{"code":"Request_BadRequest","message":"The specified password does not comply with password complexity requirements. Please provide a different password."}}"#;
    const BAD_UPN: &str = r#"{"error":{"code":"Request_BadRequest","message":"Property userPrincipalName is invalid."}}"#;
    const BAD_NICK: &str = r#"{"error":{"code":"Request_BadRequest","message":"Invalid value specified for property 'mailNickname' of resource 'User'."}}"#;
    const ALREADY_MEMBER: &str = r#"{"error":{"code":"Request_BadRequest","message":"One or more added object references already exist for the following modified properties: 'members'."}}"#;
    const NOT_MEMBER_400: &str = r#"{"error":{"code":"Request_BadRequest","message":"One or more removed object references do not exist for the following modified properties: 'members'."}}"#;
    const NOT_REPLICATED: &str = r#"{"error":{"code":"Request_BadRequest","message":"The source resource object or one of the objects being referenced don't exist."}}"#;
    const QUOTA: &str = r#"{"error":{"code":"Directory_QuotaExceeded","message":"The operation would exceed the maximum quota count of 50000 for forward-link members."}}"#;
    const MAIL_ENABLED: &str = r#"{"error":{"code":"Request_BadRequest","message":"Cannot Update a mail-enabled security groups and or distribution list."}}"#;
    const ON_PREMISES: &str = r#"{"error":{"code":"Request_BadRequest","message":"Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration."}}"#;
    const UNSUPPORTED_QUERY: &str =
        r#"{"error":{"code":"Request_UnsupportedQuery","message":"Unsupported Query."}}"#;
    const TOKEN_BAD_SECRET: &str = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;
    const TOKEN_BAD_TENANT: &str = r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found.","error_codes":[90002]}"#;

    /// A context for `operation` on what it usually concerns.
    fn ctx(operation: Operation) -> FailureContext {
        let target = match operation {
            Token => Target::Tenant,
            AddMembers | RemoveMember => Target::Group,
            _ => Target::User,
        };
        FailureContext::new(operation, target)
    }

    fn on_group(operation: Operation) -> FailureContext {
        FailureContext::new(operation, Target::Group)
    }

    fn fresh(operation: Operation) -> FailureContext {
        FailureContext {
            recently_created: true,
            ..ctx(operation)
        }
    }

    #[test]
    fn table_of_real_graph_errors() {
        let cases: &[(u16, &str, FailureContext, FailureClass)] = &[
            (429, TOO_MANY, ctx(Create), Transient),
            (429, TOO_MANY, ctx(Read), Transient),
            (503, "", ctx(Update), Transient),
            (504, "", ctx(Update), Transient),
            (502, "", ctx(Delete), Transient),
            (500, "", ctx(Create), Transient),
            (400, UPN_CONFLICT, ctx(Create), Conflict),
            (404, NOT_FOUND, ctx(Update), StaleLink),
            (404, NOT_FOUND, fresh(Update), Transient),
            (404, NOT_FOUND, fresh(AddMembers), Transient),
            (404, NOT_FOUND, ctx(AddMembers), StaleLink),
            (404, NOT_FOUND, ctx(Delete), AlreadyDone),
            (404, NOT_FOUND, ctx(RemoveMember), AlreadyDone),
            (404, NOT_FOUND, ctx(Read), StaleLink),
            (403, DENIED, ctx(Token), Configuration),
            (403, DENIED, ctx(Create), Configuration),
            (403, DENIED, ctx(Read), Configuration),
            (403, DENIED, on_group(Read), Configuration),
            (403, DENIED, on_group(Create), Configuration),
            (403, DENIED, ctx(Update), Forbidden),
            (403, DENIED, ctx(Delete), Forbidden),
            (403, DENIED, on_group(Update), Forbidden),
            (403, DENIED, on_group(Delete), Forbidden),
            (403, DENIED, ctx(AddMembers), Forbidden),
            (403, DENIED, ctx(RemoveMember), Forbidden),
            (401, BAD_TOKEN, ctx(Read), Configuration),
            (400, WEAK_PASSWORD, ctx(Create), Permanent),
            (400, BAD_UPN, ctx(Create), Permanent),
            (400, BAD_NICK, ctx(Update), Permanent),
            (400, ALREADY_MEMBER, ctx(AddMembers), AlreadyDone),
            (400, NOT_MEMBER_400, ctx(RemoveMember), AlreadyDone),
            (400, NOT_REPLICATED, fresh(AddMembers), Transient),
            (400, NOT_REPLICATED, ctx(AddMembers), StaleLink),
            (403, QUOTA, ctx(AddMembers), Permanent),
            (400, MAIL_ENABLED, on_group(Update), Permanent),
            (400, ON_PREMISES, ctx(Update), Permanent),
            (400, UNSUPPORTED_QUERY, ctx(Read), Permanent),
            (409, "", ctx(Create), Permanent),
            (400, TOKEN_BAD_SECRET, ctx(Token), Configuration),
            (400, TOKEN_BAD_TENANT, ctx(Token), Configuration),
            (401, TOKEN_BAD_SECRET, ctx(Token), Configuration),
            (503, "", ctx(Token), Transient),
        ];
        for (status, body, context, want) in cases {
            let error = GraphError::parse(body.as_bytes());
            assert_eq!(
                classify(*status, &error, *context),
                Some(*want),
                "{status} {body} {context:?}"
            );
        }
    }

    #[test]
    fn a_refused_write_names_the_likely_cause() {
        assert!(
            ctx(Update)
                .forbidden_hint()
                .contains("privileged admin role")
        );
        assert!(ctx(Delete).forbidden_hint().contains("User.ReadWrite.All"));
        assert!(
            on_group(Update)
                .forbidden_hint()
                .contains("Group.ReadWrite.All")
        );
        assert!(
            ctx(AddMembers)
                .forbidden_hint()
                .contains("RoleManagement.ReadWrite.Directory")
        );
    }

    #[test]
    fn parses_graph_and_token_bodies() {
        let e = GraphError::parse(UPN_CONFLICT.as_bytes());
        assert_eq!(e.code, "Request_BadRequest");
        assert_eq!(e.details[0].code, "ObjectConflict");
        assert_eq!(e.details[0].target, "userPrincipalName");
        let t = GraphError::parse(TOKEN_BAD_SECRET.as_bytes());
        assert_eq!(t.code, "invalid_client");
        assert!(t.message.starts_with("AADSTS7000215"));
        assert_eq!(GraphError::parse(b"<html>"), GraphError::default());
    }

    #[test]
    fn success_is_not_a_failure() {
        for status in [200, 201, 204, 302] {
            assert_eq!(classify(status, &GraphError::default(), ctx(Create)), None);
        }
    }

    fn any_operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            Just(Token),
            Just(Read),
            Just(Create),
            Just(Update),
            Just(Delete),
            Just(AddMembers),
            Just(RemoveMember)
        ]
    }

    proptest! {
        /// Every error status gets a class, whatever the body says.
        #[test]
        fn classification_is_total(
            status in 400u16..1000,
            code in ".{0,20}",
            message in ".{0,80}",
            detail in prop::option::of(".{0,20}"),
            operation in any_operation(),
            recently_created: bool,
        ) {
            let error = GraphError {
                code,
                message,
                details: detail.into_iter().map(|code| GraphErrorDetail { code, ..Default::default() }).collect(),
            };
            let class = classify(status, &error, FailureContext { recently_created, ..ctx(operation) });
            prop_assert!(class.is_some());
        }

        /// A 403 halts the provider for a read, a create or the token; for a
        /// write to one existing object it fails that object only.
        #[test]
        fn forbidden_only_for_writes_to_one_object(
            message in ".{0,80}",
            operation in any_operation(),
            on_groups: bool,
        ) {
            prop_assume!(!message.to_ascii_lowercase().contains("exceed the maximum quota"));
            let error = GraphError { code: "Authorization_RequestDenied".into(), message, details: Vec::new() };
            let context = if on_groups && operation != Token { on_group(operation) } else { ctx(operation) };
            let want = if operation.writes_one_object() { Forbidden } else { Configuration };
            prop_assert_eq!(classify(403, &error, context), Some(want));
        }

        /// Throttling and server errors are always retried, never fatal.
        #[test]
        fn throttling_and_5xx_are_transient(status in prop_oneof![Just(429u16), 500u16..600], operation in any_operation()) {
            prop_assert_eq!(classify(status, &GraphError::default(), ctx(operation)), Some(Transient));
        }
    }
}
