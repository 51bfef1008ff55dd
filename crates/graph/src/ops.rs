//! Reads and writes of users, groups and the organization.

use crate::client::{Call, GraphClient, Sent};
use crate::outcome::{GraphFailure, Written};
use entra_sync_core::entra::{EntraGroup, EntraUser, GROUP_SELECT, USER_SELECT};
use entra_sync_core::failure::{FailureClass, FailureContext, Operation, Target};
use entra_sync_core::ids::EntraObjectId;
use futures_util::Stream;
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::marker::PhantomData;

/// Page size for lists (`$top`, at most 999).
const PAGE_SIZE: &str = "999";

/// A verified domain of the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedDomain {
    /// The domain name, e.g. `contoso.com`.
    pub name: String,
    /// Whether it is the default domain.
    #[serde(default)]
    pub is_default: bool,
    /// Whether it is the initial `*.onmicrosoft.com` domain.
    #[serde(default)]
    pub is_initial: bool,
}

/// A member as `GET /groups/{id}/members?$select=id` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemberRef {
    /// The member's object id.
    pub id: EntraObjectId,
    /// `#microsoft.graph.user`, `#microsoft.graph.group`, …
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
}

/// User properties that conflict adoption can look a user up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserLookup {
    /// `userPrincipalName`.
    UserPrincipalName,
    /// `mail`.
    Mail,
    /// `displayName`.
    DisplayName,
}

/// Group properties a group can be looked up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupLookup {
    /// `displayName`.
    DisplayName,
    /// `mailNickname`.
    MailNickname,
}

impl UserLookup {
    fn property(self) -> &'static str {
        match self {
            UserLookup::UserPrincipalName => "userPrincipalName",
            UserLookup::Mail => "mail",
            UserLookup::DisplayName => "displayName",
        }
    }
}

impl GroupLookup {
    fn property(self) -> &'static str {
        match self {
            GroupLookup::DisplayName => "displayName",
            GroupLookup::MailNickname => "mailNickname",
        }
    }
}

/// `property eq 'value'`, with `'` doubled as OData requires.
pub fn eq_filter(property: &str, value: &str) -> String {
    format!("{property} eq '{}'", value.replace('\'', "''"))
}

#[derive(Deserialize)]
struct PageBody<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

/// A list read page by page, following `@odata.nextLink` exactly as given.
pub struct Pager<T> {
    client: GraphClient,
    next: Option<String>,
    target: Target,
    action: String,
    _item: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Pager<T> {
    fn new(client: GraphClient, first: String, target: Target, action: String) -> Self {
        Self {
            client,
            next: Some(first),
            target,
            action,
            _item: PhantomData,
        }
    }

    /// The next page, or `None` after the last one. A page can be empty.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, GraphFailure> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let page: PageBody<T> = self
            .client
            .get_json(
                url.clone(),
                FailureContext::new(Operation::Read, self.target),
                &self.action,
            )
            .await
            .inspect_err(|_| {
                self.next = Some(url);
            })?;
        self.next = page.next_link;
        Ok(Some(page.value))
    }

    /// Every remaining item, in one vector.
    pub async fn collect_all(mut self) -> Result<Vec<T>, GraphFailure> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    /// The pages as a stream; it ends after the last page or the first failure.
    pub fn into_stream(self) -> impl Stream<Item = Result<Vec<T>, GraphFailure>> + Send
    where
        T: Send + 'static,
    {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut pager = state?;
            match pager.next_page().await {
                Ok(Some(page)) => Some((Ok(page), Some(pager))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}

impl GraphClient {
    pub(crate) fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}{path}", self.root());
        if !query.is_empty() {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in query {
                ser.append_pair(k, v);
            }
            url.push('?');
            url.push_str(&ser.finish());
        }
        url
    }

    /// GET and decode JSON; `context` is a read.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        url: String,
        context: FailureContext,
        action: &str,
    ) -> Result<T, GraphFailure> {
        let call = Call {
            method: Method::GET,
            url,
            body: None,
            context,
            action,
            cost: None,
            accept: &[],
            prefer: None,
        };
        match self.execute(call).await? {
            Sent::Answer(answer) => serde_json::from_slice(&answer.body).map_err(|e| {
                GraphFailure::transport(
                    Operation::Read,
                    action,
                    format!("unreadable Graph answer: {e}"),
                )
            }),
            Sent::DryRun(_) => Err(GraphFailure::invalid_request(
                Operation::Read,
                action,
                "a GET was withheld".into(),
            )),
        }
    }

    /// Sends a write and decodes its answer with `decode` (`None` for an empty body).
    pub(crate) async fn write<T>(
        &self,
        method: Method,
        url: String,
        body: Option<Value>,
        context: FailureContext,
        action: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<Written<T>, GraphFailure> {
        let call = Call {
            method,
            url,
            body,
            context,
            action,
            cost: None,
            accept: &[],
            prefer: None,
        };
        match self.execute(call).await {
            Ok(Sent::DryRun(record)) => Ok(Written::DryRun(record)),
            Ok(Sent::Answer(answer)) => {
                let value = decode(&answer.body).map_err(|e| {
                    GraphFailure::transport(
                        context.operation,
                        action,
                        format!("unreadable Graph answer: {e}"),
                    )
                })?;
                Ok(Written::Done {
                    value,
                    signals: answer.signals,
                })
            }
            Err(f) if f.class == FailureClass::AlreadyDone => {
                Ok(Written::AlreadyDone { signals: f.signals })
            }
            Err(f) => Err(f),
        }
    }

    /// The tenant's verified domains (`GET /organization`).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn verified_domains(&self) -> Result<Vec<VerifiedDomain>, GraphFailure> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Org {
            #[serde(default)]
            verified_domains: Vec<VerifiedDomain>,
        }
        let url = self.url("/organization", &[("$select", "verifiedDomains")]);
        let page: PageBody<Org> = self
            .get_json(
                url,
                FailureContext::new(Operation::Read, Target::Tenant),
                "read the organization's verified domains",
            )
            .await?;
        Ok(page
            .value
            .into_iter()
            .flat_map(|o| o.verified_domains)
            .collect())
    }

    /// Every user, `$select`ed to [`USER_SELECT`], 999 per page.
    pub fn list_users(&self) -> Pager<EntraUser> {
        let select = USER_SELECT.join(",");
        let url = self.url("/users", &[("$select", &select), ("$top", PAGE_SIZE)]);
        Pager::new(self.clone(), url, Target::User, "list users".into())
    }

    /// Every group, `$select`ed to [`GROUP_SELECT`], 999 per page.
    pub fn list_groups(&self) -> Pager<EntraGroup> {
        let select = GROUP_SELECT.join(",");
        let url = self.url("/groups", &[("$select", &select), ("$top", PAGE_SIZE)]);
        Pager::new(self.clone(), url, Target::Group, "list groups".into())
    }

    /// The direct members of a group, 999 per page.
    pub fn list_members(&self, group: &EntraObjectId) -> Pager<MemberRef> {
        let url = self.url(
            &format!("/groups/{group}/members"),
            &[("$select", "id"), ("$top", PAGE_SIZE)],
        );
        Pager::new(
            self.clone(),
            url,
            Target::Group,
            format!("list members of group {group}"),
        )
    }

    /// One user by id. Pass `recently_created` for a user this engine just created,
    /// so a replication-delay 404 is transient rather than a stale link.
    #[tracing::instrument(level = "debug", skip(self), fields(user = %id))]
    pub async fn get_user(
        &self,
        id: &EntraObjectId,
        recently_created: bool,
    ) -> Result<EntraUser, GraphFailure> {
        let select = USER_SELECT.join(",");
        let url = self.url(&format!("/users/{id}"), &[("$select", &select)]);
        let context = FailureContext {
            recently_created,
            ..FailureContext::new(Operation::Read, Target::User)
        };
        self.get_json(url, context, &format!("get user {id}")).await
    }

    /// One group by id; see [`GraphClient::get_user`] for `recently_created`.
    #[tracing::instrument(level = "debug", skip(self), fields(group = %id))]
    pub async fn get_group(
        &self,
        id: &EntraObjectId,
        recently_created: bool,
    ) -> Result<EntraGroup, GraphFailure> {
        let select = GROUP_SELECT.join(",");
        let url = self.url(&format!("/groups/{id}"), &[("$select", &select)]);
        let context = FailureContext {
            recently_created,
            ..FailureContext::new(Operation::Read, Target::Group)
        };
        self.get_json(url, context, &format!("get group {id}"))
            .await
    }

    /// Users whose `property` equals `value` (for conflict adoption).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn find_users(
        &self,
        property: UserLookup,
        value: &str,
    ) -> Result<Vec<EntraUser>, GraphFailure> {
        self.find(Target::User, USER_SELECT, property.property(), value)
            .await
    }

    /// Groups whose `property` equals `value`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn find_groups(
        &self,
        property: GroupLookup,
        value: &str,
    ) -> Result<Vec<EntraGroup>, GraphFailure> {
        self.find(Target::Group, GROUP_SELECT, property.property(), value)
            .await
    }

    /// Every user or group whose `property` equals `value`.
    async fn find<T: DeserializeOwned>(
        &self,
        target: Target,
        select: &[&str],
        property: &str,
        value: &str,
    ) -> Result<Vec<T>, GraphFailure> {
        let collection = collection(target);
        let select = select.join(",");
        let filter = eq_filter(property, value);
        let url = self.url(
            &format!("/{collection}"),
            &[
                ("$filter", &filter),
                ("$select", &select),
                ("$top", PAGE_SIZE),
            ],
        );
        let action = format!("look up {collection} by {property} '{value}'");
        Pager::new(self.clone(), url, target, action)
            .collect_all()
            .await
    }

    /// `POST /users` with `body` as given; returns the created user.
    #[tracing::instrument(level = "debug", skip_all, fields(upn = %describe(body, "userPrincipalName")))]
    pub async fn create_user(
        &self,
        body: &Map<String, Value>,
    ) -> Result<Written<EntraUser>, GraphFailure> {
        self.create_object(Target::User, body, "userPrincipalName")
            .await
    }

    /// POST of a user or group, named in errors by the body's `name_property`.
    async fn create_object<T: DeserializeOwned>(
        &self,
        target: Target,
        body: &Map<String, Value>,
        name_property: &str,
    ) -> Result<Written<T>, GraphFailure> {
        let action = format!(
            "create {} '{}'",
            noun(target),
            describe(body, name_property)
        );
        let url = self.url(&format!("/{}", collection(target)), &[]);
        self.write(
            Method::POST,
            url,
            Some(Value::Object(body.clone())),
            FailureContext::new(Operation::Create, target),
            &action,
            decode_json,
        )
        .await
    }

    /// `PATCH /users/{id}` with exactly `body`.
    #[tracing::instrument(level = "debug", skip(self, body), fields(user = %id))]
    pub async fn update_user(
        &self,
        id: &EntraObjectId,
        body: &Map<String, Value>,
        recently_created: bool,
    ) -> Result<Written<()>, GraphFailure> {
        self.patch_object(Target::User, id, body, recently_created)
            .await
    }

    /// `PATCH /groups/{id}` with exactly `body`.
    #[tracing::instrument(level = "debug", skip(self, body), fields(group = %id))]
    pub async fn update_group(
        &self,
        id: &EntraObjectId,
        body: &Map<String, Value>,
        recently_created: bool,
    ) -> Result<Written<()>, GraphFailure> {
        self.patch_object(Target::Group, id, body, recently_created)
            .await
    }

    /// `DELETE /users/{id}`; a user already gone is [`Written::AlreadyDone`].
    #[tracing::instrument(level = "debug", skip(self), fields(user = %id))]
    pub async fn delete_user(&self, id: &EntraObjectId) -> Result<Written<()>, GraphFailure> {
        self.delete_object(Target::User, id).await
    }

    /// `DELETE /groups/{id}`; a group already gone is [`Written::AlreadyDone`].
    #[tracing::instrument(level = "debug", skip(self), fields(group = %id))]
    pub async fn delete_group(&self, id: &EntraObjectId) -> Result<Written<()>, GraphFailure> {
        self.delete_object(Target::Group, id).await
    }

    /// PATCH of a user or group.
    async fn patch_object(
        &self,
        target: Target,
        id: &EntraObjectId,
        body: &Map<String, Value>,
        recently_created: bool,
    ) -> Result<Written<()>, GraphFailure> {
        let context = FailureContext {
            recently_created,
            ..FailureContext::new(Operation::Update, target)
        };
        let url = self.url(&format!("/{}/{id}", collection(target)), &[]);
        let action = format!("update {} {id}", noun(target));
        self.write(
            Method::PATCH,
            url,
            Some(Value::Object(body.clone())),
            context,
            &action,
            ignore_body,
        )
        .await
    }

    /// DELETE of a user or group.
    async fn delete_object(
        &self,
        target: Target,
        id: &EntraObjectId,
    ) -> Result<Written<()>, GraphFailure> {
        let url = self.url(&format!("/{}/{id}", collection(target)), &[]);
        let action = format!("delete {} {id}", noun(target));
        self.write(
            Method::DELETE,
            url,
            None,
            FailureContext::new(Operation::Delete, target),
            &action,
            ignore_body,
        )
        .await
    }

    /// `DELETE /groups/{g}/members/{m}/$ref`; a non-member is [`Written::AlreadyDone`].
    #[tracing::instrument(level = "debug", skip(self), fields(group = %group, member = %member))]
    pub async fn remove_member(
        &self,
        group: &EntraObjectId,
        member: &EntraObjectId,
    ) -> Result<Written<()>, GraphFailure> {
        let url = self.url(&format!("/groups/{group}/members/{member}/$ref"), &[]);
        let action = format!("remove member {member} from group {group}");
        self.write(
            Method::DELETE,
            url,
            None,
            FailureContext::new(Operation::RemoveMember, Target::Group),
            &action,
            ignore_body,
        )
        .await
    }
}

/// The collection of a user or group: `users` or `groups`.
fn collection(target: Target) -> &'static str {
    match target {
        Target::User => "users",
        Target::Group => "groups",
        Target::Tenant => "organization",
    }
}

/// A user or group in messages.
fn noun(target: Target) -> &'static str {
    match target {
        Target::User => "user",
        Target::Group => "group",
        Target::Tenant => "organization",
    }
}

/// A property of a body for messages (UPNs and names are not secrets).
fn describe(body: &Map<String, Value>, property: &str) -> String {
    body.get(property)
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string()
}

fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

fn ignore_body(_: &[u8]) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_escape_quotes() {
        assert_eq!(
            eq_filter("userPrincipalName", "o'neil@x.com"),
            "userPrincipalName eq 'o''neil@x.com'"
        );
    }
}
