//! The in-memory directory: users, groups and memberships, with Graph's
//! queries (`$filter`, `$select`, `$top`, paging) and write rules.

mod deleted_items;
mod unique_name;

use super::error::SimError;
use super::validate;
use deleted_items::DeletedObject;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use unique_name::unique_name_of;

/// Properties `GET /users` returns without `$select` (user-list.md).
const USER_DEFAULT_SELECT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];
/// Properties `$filter` supports on users in the simulator.
const USER_FILTERABLE: &[&str] = &[
    "id",
    "userPrincipalName",
    "mail",
    "displayName",
    "mailNickname",
    "accountEnabled",
];
/// Properties `$filter` supports on groups in the simulator.
const GROUP_FILTERABLE: &[&str] = &[
    "id",
    "displayName",
    "mail",
    "mailNickname",
    "mailEnabled",
    "securityEnabled",
    "uniqueName",
];
/// Default and maximum page sizes (§0).
const DEFAULT_TOP: usize = 100;
const MAX_TOP: usize = 999;
/// Members per `members@odata.bind` PATCH (§6.2).
const MAX_BIND: usize = 20;

/// A user or group.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub props: Map<String, Value>,
    /// When the simulator created it; `None` for seeded objects, which are always replicated.
    created: Option<Instant>,
    /// Member ids (groups only).
    pub members: BTreeSet<String>,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Option<Value>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
        }
    }

    fn no_content() -> Self {
        Self {
            status: 204,
            body: None,
        }
    }
}

/// Decoded query options.
#[derive(Debug, Default, Clone)]
pub(crate) struct QueryOptions {
    pub filter: Option<String>,
    pub select: Option<Vec<String>>,
    pub top: Option<usize>,
    pub skiptoken: Option<String>,
    /// Every pair as received, to rebuild `@odata.nextLink`.
    pub raw: Vec<(String, String)>,
}

impl QueryOptions {
    /// Parses a raw query string; unknown `$` options are refused like Graph does.
    pub fn parse(query: Option<&str>) -> Result<Self, SimError> {
        let mut q = QueryOptions::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "$filter" => q.filter = Some(v.to_string()),
                "$select" => {
                    q.select = Some(
                        v.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect(),
                    );
                }
                "$top" => {
                    let top: usize = v
                        .parse()
                        .ok()
                        .filter(|t| (1..=MAX_TOP).contains(t))
                        .ok_or_else(|| SimError::bad_request(format!("Invalid page size specified: '{v}'. Must be between 1 and 999 inclusive.")))?;
                    q.top = Some(top);
                }
                "$skiptoken" => q.skiptoken = Some(v.to_string()),
                "$skip" => {
                    return Err(SimError::bad_request(
                        "'$skip' is not supported by the service.",
                    ));
                }
                k if k.starts_with('$')
                    && !matches!(k, "$count" | "$orderby" | "$expand" | "$search") =>
                {
                    return Err(SimError::bad_request(format!(
                        "Query option '{k}' is not allowed."
                    )));
                }
                _ => {}
            }
            q.raw.push((k.into_owned(), v.into_owned()));
        }
        Ok(q)
    }
}

/// One `$filter` clause: the property and the values it may equal.
#[derive(Debug, Clone, PartialEq)]
struct Clause {
    property: String,
    values: Vec<Value>,
}

/// Parses `p eq 'v'`, `p in ('a','b')` and `true`/`false` literals, joined by `or`.
fn parse_filter(filter: &str, allowed: &[&str], resource: &str) -> Result<Vec<Clause>, SimError> {
    let unsupported = || SimError::new(400, "Request_UnsupportedQuery", "Unsupported Query.");
    let mut clauses = Vec::new();
    let mut rest = filter.trim();
    loop {
        let (property, after) = rest.split_once(' ').ok_or_else(unsupported)?;
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(property)) {
            return Err(SimError::new(
                400,
                "Request_UnsupportedQuery",
                format!(
                    "Unsupported or invalid query filter clause specified for property '{property}' of resource '{resource}'."
                ),
            ));
        }
        let after = after.trim_start();
        let (values, after) = if let Some(a) = after.strip_prefix("eq ") {
            let (v, a) = literal(a.trim_start()).ok_or_else(unsupported)?;
            (vec![v], a)
        } else if let Some(a) = after.strip_prefix("in ") {
            let mut a = a.trim_start().strip_prefix('(').ok_or_else(unsupported)?;
            let mut values = Vec::new();
            loop {
                let (v, next) = literal(a.trim_start()).ok_or_else(unsupported)?;
                values.push(v);
                let next = next.trim_start();
                if let Some(n) = next.strip_prefix(',') {
                    a = n;
                } else {
                    a = next.strip_prefix(')').ok_or_else(unsupported)?;
                    break;
                }
            }
            (values, a)
        } else {
            return Err(unsupported());
        };
        let property = allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(property))
            .copied()
            .unwrap_or(property);
        clauses.push(Clause {
            property: property.to_string(),
            values,
        });
        let after = after.trim_start();
        if after.is_empty() {
            return Ok(clauses);
        }
        rest = after.strip_prefix("or ").ok_or_else(unsupported)?;
    }
}

/// A quoted string (`''` escapes `'`) or `true`/`false`; returns the rest.
fn literal(s: &str) -> Option<(Value, &str)> {
    if let Some(body) = s.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|(_, c)| *c) == Some('\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    return Some((Value::String(out), &body[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        None
    } else {
        for (word, value) in [("true", true), ("false", false)] {
            if let Some(rest) = s.strip_prefix(word) {
                return Some((Value::Bool(value), rest));
            }
        }
        None
    }
}

fn matches(object: &Map<String, Value>, clauses: &[Clause]) -> bool {
    clauses.iter().any(|c| {
        let have = object.get(&c.property).unwrap_or(&Value::Null);
        c.values.iter().any(|want| match (have, want) {
            (Value::String(h), Value::String(w)) => h.eq_ignore_ascii_case(w),
            (h, w) => h == w,
        })
    })
}

/// An opaque continuation token: the last id served, hex-encoded.
fn encode_token(last_id: &str) -> String {
    format!(
        "X{}",
        last_id
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn decode_token(token: &str) -> Result<String, SimError> {
    let invalid = || SimError::bad_request("Invalid value for $skiptoken.");
    let hex = token.strip_prefix('X').ok_or_else(invalid)?;
    if hex.len() % 2 != 0 {
        return Err(invalid());
    }
    let bytes: Result<Vec<u8>, _> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect();
    String::from_utf8(bytes.map_err(|_| invalid())?).map_err(|_| invalid())
}

/// The simulated directory of one tenant.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    users: BTreeMap<String, Object>,
    groups: BTreeMap<String, Object>,
    /// Lower-case UPN → user id.
    upns: HashMap<String, String>,
    /// Lower-case `uniqueName` → group id, of live and soft-deleted groups alike:
    /// a deleted group keeps its alternate key until it is restored or purged.
    unique_names: HashMap<String, String>,
    /// Objects whose every write answers 403 (a user holding a privileged admin role).
    refused_writes: BTreeSet<String>,
    /// Objects younger than this are invisible to get-by-id, PATCH and member adds.
    replication_delay: Duration,
    /// Deleted users and groups, by id, until restored or purged.
    deleted: BTreeMap<String, DeletedObject>,
}

/// Which collection a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Users,
    Groups,
}

impl Kind {
    fn segment(self) -> &'static str {
        match self {
            Kind::Users => "users",
            Kind::Groups => "groups",
        }
    }

    fn odata_type(self) -> &'static str {
        match self {
            Kind::Users => "#microsoft.graph.user",
            Kind::Groups => "#microsoft.graph.group",
        }
    }
}

impl Directory {
    /// An empty directory with this replication delay.
    pub fn new(replication_delay: Duration) -> Self {
        Self {
            replication_delay,
            ..Self::default()
        }
    }

    /// Number of users, for the tenant-size RU budget.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    fn map(&self, kind: Kind) -> &BTreeMap<String, Object> {
        match kind {
            Kind::Users => &self.users,
            Kind::Groups => &self.groups,
        }
    }

    fn visible(&self, o: &Object, now: Instant) -> bool {
        o.created
            .is_none_or(|c| now.saturating_duration_since(c) >= self.replication_delay)
    }

    /// Points the UPN index at user `id` under `upn` (lowercase) instead of
    /// under its current UPN.
    fn move_upn(&mut self, id: &str, upn: String) {
        let old = self.users[id]
            .props
            .get("userPrincipalName")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        if let Some(old) = old {
            self.upns.remove(&old);
        }
        self.upns.insert(upn, id.to_owned());
    }

    /// A user by id, or by UPN for `/users/{upn}`.
    fn resolve(&self, kind: Kind, key: &str) -> Option<String> {
        let key = key.to_ascii_lowercase();
        if kind == Kind::Users && key.contains('@') {
            return self.upns.get(&key).cloned();
        }
        self.map(kind).contains_key(&key).then_some(key)
    }

    /// The id of a visible object, or 404.
    fn visible_id(&self, kind: Kind, key: &str, now: Instant) -> Result<String, SimError> {
        self.resolve(kind, key)
            .filter(|id| self.visible(&self.map(kind)[id], now))
            .ok_or_else(|| SimError::not_found(key))
    }

    /// Makes every write to object `id` answer 403.
    pub fn refuse_writes(&mut self, id: &str) {
        self.refused_writes.insert(id.to_ascii_lowercase());
    }

    /// Whether group `key` exists and is role-assignable.
    pub fn role_assignable(&self, key: &str) -> bool {
        self.resolve(Kind::Groups, key)
            .is_some_and(|id| flag(&self.groups[&id], "isAssignableToRole"))
    }

    /// Refuses any write to an object whose writes are refused, or that is
    /// synchronised from on-premises.
    fn writable(&self, id: &str, object: &Object) -> Result<(), SimError> {
        if self.refused_writes.contains(id) {
            Err(SimError::insufficient_privileges())
        } else if flag(object, "onPremisesSyncEnabled") {
            Err(SimError::on_premises_mastered())
        } else {
            Ok(())
        }
    }

    /// Refuses member writes to group `id`: those of [`Directory::writable`], and
    /// groups whose members Graph won't let an app change.
    fn members_writable(&self, id: &str) -> Result<(), SimError> {
        let group = &self.groups[id];
        self.writable(id, group)?;
        if read_only(group) || has_group_type(group, "DynamicMembership") {
            return Err(SimError::insufficient_privileges());
        }
        Ok(())
    }

    /// Inserts an object as is (seeding): no validation, always replicated. A
    /// group without `groupTypes` gets `[]`, as Graph always returns one.
    pub fn seed(&mut self, kind: Kind, mut props: Map<String, Value>) -> Result<String, SimError> {
        let id = match props.get("id").and_then(Value::as_str) {
            Some(id) => uuid::Uuid::parse_str(id)
                .map_err(|_| SimError::bad_request(format!("Invalid object identifier '{id}'.")))?
                .hyphenated()
                .to_string(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        props.insert("id".into(), Value::String(id.clone()));
        if kind == Kind::Users
            && let Some(upn) = props.get("userPrincipalName").and_then(Value::as_str)
        {
            self.upns.insert(upn.to_ascii_lowercase(), id.clone());
        }
        if kind == Kind::Groups {
            props.entry("groupTypes").or_insert_with(|| json!([]));
            if let Some(key) = unique_name_of(&props) {
                self.unique_names.insert(key, id.clone());
            }
        }
        let object = Object {
            props,
            created: None,
            members: BTreeSet::new(),
        };
        match kind {
            Kind::Users => self.users.insert(id.clone(), object),
            Kind::Groups => self.groups.insert(id.clone(), object),
        };
        Ok(id)
    }

    /// Adds a member as is (seeding).
    pub fn seed_member(&mut self, group: &str, member: &str) -> Result<(), SimError> {
        let member = member.to_ascii_lowercase();
        if !self.users.contains_key(&member) && !self.groups.contains_key(&member) {
            return Err(SimError::not_found(&member));
        }
        let g = self
            .groups
            .get_mut(&group.to_ascii_lowercase())
            .ok_or_else(|| SimError::not_found(group))?;
        g.members.insert(member);
        Ok(())
    }

    /// `POST /users` or `POST /groups`.
    pub fn create(
        &mut self,
        kind: Kind,
        body: Value,
        domains: &[String],
        now: Instant,
    ) -> Result<Reply, SimError> {
        let mut props = properties(body)?;
        let binds = match kind {
            Kind::Groups => take_binds(&mut props)?,
            Kind::Users => Vec::new(),
        };
        validate_properties(kind, &props, true, domains)?;
        let mut bound = BTreeSet::new();
        for m in &binds {
            bound.insert(self.visible_member(m, now)?);
        }
        if kind == Kind::Users {
            let upn = props["userPrincipalName"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if self.upns.contains_key(&upn) {
                return Err(SimError::conflict("userPrincipalName"));
            }
        }
        let unique_name = match kind {
            Kind::Groups => self.free_unique_name(&props)?,
            Kind::Users => None,
        };
        let id = uuid::Uuid::new_v4().to_string();
        props.insert("id".into(), Value::String(id.clone()));
        props.insert(
            "createdDateTime".into(),
            Value::String(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
        if kind == Kind::Groups && !props.contains_key("groupTypes") {
            props.insert("groupTypes".into(), json!([]));
        }
        let mut answer = props.clone();
        answer.remove("passwordProfile");
        answer.insert(
            "@odata.context".into(),
            Value::String(format!(
                "https://graph.microsoft.com/v1.0/$metadata#{}/$entity",
                kind.segment()
            )),
        );
        let object = Object {
            props,
            created: Some(now),
            members: bound,
        };
        match kind {
            Kind::Users => {
                let upn = object.props["userPrincipalName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                self.upns.insert(upn, id.clone());
                self.users.insert(id, object);
            }
            Kind::Groups => {
                if let Some(key) = unique_name {
                    self.unique_names.insert(key, id.clone());
                }
                self.groups.insert(id, object);
            }
        }
        Ok(Reply::json(201, Value::Object(answer)))
    }

    /// `GET /users/{id}` or `GET /groups/{id}`.
    pub fn get(
        &self,
        kind: Kind,
        key: &str,
        q: &QueryOptions,
        now: Instant,
    ) -> Result<Reply, SimError> {
        let id = self.visible_id(kind, key, now)?;
        let body = project(kind, &self.map(kind)[&id].props, q.select.as_deref())?;
        Ok(Reply::json(200, Value::Object(body)))
    }

    /// `PATCH /users/{id}` or `PATCH /groups/{id}` (with `members@odata.bind`).
    pub fn update(
        &mut self,
        kind: Kind,
        key: &str,
        body: Value,
        domains: &[String],
        now: Instant,
    ) -> Result<Reply, SimError> {
        let mut props = properties(body)?;
        let id = self.visible_id(kind, key, now)?;
        self.writable(&id, &self.map(kind)[&id])?;
        let binds = match kind {
            Kind::Groups => take_binds(&mut props)?,
            Kind::Users => Vec::new(),
        };
        if kind == Kind::Groups && !binds.is_empty() {
            self.members_writable(&id)?;
        }
        if kind == Kind::Groups && !props.is_empty() && read_only(&self.groups[&id]) {
            return Err(SimError::mail_enabled_read_only());
        }
        validate_properties(kind, &props, false, domains)?;
        let unique_name = match kind {
            Kind::Groups => self.settable_unique_name(&id, &props)?,
            Kind::Users => None,
        };
        let mut new_members = BTreeSet::new();
        if kind == Kind::Groups && !binds.is_empty() {
            let group = &self.groups[&id];
            for m in &binds {
                let m = self.visible_member(m, now)?;
                if group.members.contains(&m) || !new_members.insert(m) {
                    return Err(SimError::already_member());
                }
            }
        }
        if kind == Kind::Users
            && let Some(upn) = props.get("userPrincipalName").and_then(Value::as_str)
        {
            let upn = upn.to_ascii_lowercase();
            if self.upns.get(&upn).is_some_and(|owner| *owner != id) {
                return Err(SimError::conflict("userPrincipalName"));
            }
            self.move_upn(&id, upn);
        }
        let object = match kind {
            Kind::Users => self.users.get_mut(&id),
            Kind::Groups => self.groups.get_mut(&id),
        }
        .ok_or_else(|| SimError::not_found(key))?;
        for (k, v) in props {
            if k == "passwordProfile" {
                continue;
            }
            object.props.insert(k, v);
        }
        object.members.extend(new_members);
        if let Some(key) = unique_name {
            self.unique_names.insert(key, id);
        }
        Ok(Reply::no_content())
    }

    /// `DELETE /users/{id}` or `DELETE /groups/{id}`: into the deleted items
    /// (see [`Directory::take_out`]).
    /// (inferred) An object Graph won't let an app PATCH can't be deleted either.
    pub fn delete(&mut self, kind: Kind, key: &str) -> Result<Reply, SimError> {
        let id = self
            .resolve(kind, key)
            .ok_or_else(|| SimError::not_found(key))?;
        let object = &self.map(kind)[&id];
        self.writable(&id, object)?;
        if kind == Kind::Groups && read_only(object) {
            return Err(SimError::mail_enabled_read_only());
        }
        self.take_out(kind, &id);
        Ok(Reply::no_content())
    }

    /// `GET /users` or `GET /groups`.
    pub fn list(&self, kind: Kind, q: &QueryOptions, link_base: &str) -> Result<Reply, SimError> {
        let allowed = match kind {
            Kind::Users => USER_FILTERABLE,
            Kind::Groups => GROUP_FILTERABLE,
        };
        let clauses = match &q.filter {
            Some(f) => Some(parse_filter(f, allowed, kind.resource_name())?),
            None => None,
        };
        let after = q.skiptoken.as_deref().map(decode_token).transpose()?;
        let map = self.map(kind);
        let candidates = map
            .range::<String, _>((
                after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
                std::ops::Bound::Unbounded,
            ))
            .filter(|(_, o)| clauses.as_deref().is_none_or(|c| matches(&o.props, c)))
            .map(|(id, o)| (id.as_str(), &o.props, kind));
        page(candidates, q, link_base, kind.segment())
    }

    /// `GET /groups/{id}/members`.
    pub fn list_members(
        &self,
        key: &str,
        q: &QueryOptions,
        link_base: &str,
    ) -> Result<Reply, SimError> {
        let id = self
            .resolve(Kind::Groups, key)
            .ok_or_else(|| SimError::not_found(key))?;
        let after = q.skiptoken.as_deref().map(decode_token).transpose()?;
        let members = self.groups[&id]
            .members
            .range::<String, _>((
                after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
                std::ops::Bound::Unbounded,
            ))
            .filter_map(|m| {
                if let Some(u) = self.users.get(m) {
                    Some((m.as_str(), &u.props, Kind::Users))
                } else {
                    self.groups
                        .get(m)
                        .map(|g| (m.as_str(), &g.props, Kind::Groups))
                }
            });
        page(members, q, link_base, "directoryObjects")
    }

    /// `POST /groups/{id}/members/$ref`.
    pub fn add_member(&mut self, key: &str, body: &Value, now: Instant) -> Result<Reply, SimError> {
        let reference = body
            .get("@odata.id")
            .and_then(Value::as_str)
            .ok_or_else(|| SimError::bad_request("Invalid request: '@odata.id' is required."))?;
        let gid = self
            .resolve(Kind::Groups, key)
            .ok_or_else(|| SimError::not_found(key))?;
        if !self.visible(&self.groups[&gid], now) {
            return Err(SimError::references_missing());
        }
        self.members_writable(&gid)?;
        let member = self.visible_member(reference, now)?;
        let group = self
            .groups
            .get_mut(&gid)
            .ok_or_else(|| SimError::not_found(key))?;
        if !group.members.insert(member) {
            return Err(SimError::already_member());
        }
        Ok(Reply::no_content())
    }

    /// `DELETE /groups/{id}/members/{member}/$ref`.
    pub fn remove_member(&mut self, key: &str, member: &str) -> Result<Reply, SimError> {
        let gid = self
            .resolve(Kind::Groups, key)
            .ok_or_else(|| SimError::not_found(key))?;
        self.members_writable(&gid)?;
        let group = self
            .groups
            .get_mut(&gid)
            .ok_or_else(|| SimError::not_found(key))?;
        if group.members.remove(&member.to_ascii_lowercase()) {
            Ok(Reply::no_content())
        } else {
            Err(SimError::not_found(member))
        }
    }

    /// The id a reference URL names, if that object exists and has replicated.
    fn visible_member(&self, reference: &str, now: Instant) -> Result<String, SimError> {
        let id = reference
            .trim_end_matches('/')
            .rsplit_once('/')
            .map(|(_, id)| id)
            .filter(|_| {
                ["/directoryObjects/", "/users/", "/groups/"]
                    .iter()
                    .any(|s| reference.contains(s))
            })
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .ok_or_else(|| {
                SimError::bad_request(format!("Invalid object identifier '{reference}'."))
            })?
            .hyphenated()
            .to_string();
        let object = self
            .users
            .get(&id)
            .or_else(|| self.groups.get(&id))
            .ok_or_else(|| SimError::not_found(&id))?;
        if self.visible(object, now) {
            Ok(id)
        } else {
            Err(SimError::references_missing())
        }
    }

    /// Every object and membership, for `GET /_sim/state`.
    pub fn dump(&self) -> Value {
        let all = |m: &BTreeMap<String, Object>| {
            m.values()
                .map(|o| Value::Object(o.props.clone()))
                .collect::<Vec<_>>()
        };
        let memberships: Map<String, Value> = self
            .groups
            .iter()
            .map(|(id, g)| (id.clone(), json!(g.members.iter().collect::<Vec<_>>())))
            .collect();
        json!({"users": all(&self.users), "groups": all(&self.groups), "memberships": memberships, "deletedItems": self.deleted_ids()})
    }
}

impl Kind {
    fn resource_name(self) -> &'static str {
        match self {
            Kind::Users => "User",
            Kind::Groups => "Group",
        }
    }
}

/// Whether a boolean property is `true`.
fn flag(object: &Object, property: &str) -> bool {
    object.props.get(property) == Some(&Value::Bool(true))
}

fn has_group_type(group: &Object, wanted: &str) -> bool {
    group
        .props
        .get("groupTypes")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| t.as_str() == Some(wanted)))
}

/// A mail-enabled security group or a distribution group: read-only through
/// Graph (groups-overview.md). Microsoft 365 groups are mail-enabled too, but managed.
fn read_only(group: &Object) -> bool {
    flag(group, "mailEnabled") && !has_group_type(group, "Unified")
}

/// Takes `members@odata.bind` out of a group body; at most 20 references.
/// The properties of a POST or PATCH body; anything but a JSON object is
/// refused as Graph refuses it.
fn properties(body: Value) -> Result<Map<String, Value>, SimError> {
    match body {
        Value::Object(props) => Ok(props),
        _ => Err(SimError::bad_request(
            "Empty Payload, JSON content expected.",
        )),
    }
}

/// Checks the properties of a user or group body (`creating`: a POST).
fn validate_properties(
    kind: Kind,
    props: &Map<String, Value>,
    creating: bool,
    domains: &[String],
) -> Result<(), SimError> {
    match kind {
        Kind::Users => validate::user(props, creating, domains),
        Kind::Groups => validate::group(props, creating),
    }
}

fn take_binds(props: &mut Map<String, Value>) -> Result<Vec<String>, SimError> {
    let Some(binds) = props.remove("members@odata.bind") else {
        return Ok(Vec::new());
    };
    let refs: Vec<String> = binds
        .as_array()
        .ok_or_else(|| {
            SimError::bad_request("Invalid value for 'members@odata.bind': an array is expected.")
        })?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            SimError::bad_request("Invalid value for 'members@odata.bind': strings are expected.")
        })?;
    if refs.len() > MAX_BIND {
        return Err(SimError::bad_request(
            "The request contains too many members. A maximum of 20 members can be added in a single request.",
        ));
    }
    Ok(refs)
}

/// `$select` projection; without it, users get Graph's default set and groups everything.
fn project(
    kind: Kind,
    props: &Map<String, Value>,
    select: Option<&[String]>,
) -> Result<Map<String, Value>, SimError> {
    let table = match kind {
        Kind::Users => super::properties::USER_PROPERTIES,
        Kind::Groups => super::properties::GROUP_PROPERTIES,
    };
    let mut out = Map::new();
    match select {
        Some(names) => {
            for name in names {
                let Some((canonical, _)) = table.iter().find(|(p, _)| p.eq_ignore_ascii_case(name))
                else {
                    return Err(SimError::bad_request(format!(
                        "Could not find a property named '{name}' on type 'microsoft.graph.{}'.",
                        kind.segment().trim_end_matches('s')
                    )));
                };
                out.insert(
                    (*canonical).to_string(),
                    props.get(*canonical).cloned().unwrap_or(Value::Null),
                );
            }
            out.insert("id".into(), props["id"].clone());
        }
        None if kind == Kind::Users => {
            for name in USER_DEFAULT_SELECT {
                out.insert(
                    (*name).to_string(),
                    props.get(*name).cloned().unwrap_or(Value::Null),
                );
            }
        }
        None => {
            out = props.clone();
        }
    }
    out.remove("passwordProfile");
    Ok(out)
}

/// One page of `candidates` and the next link if more remain.
fn page<'a>(
    candidates: impl Iterator<Item = (&'a str, &'a Map<String, Value>, Kind)>,
    q: &QueryOptions,
    link_base: &str,
    context: &str,
) -> Result<Reply, SimError> {
    let top = q.top.unwrap_or(DEFAULT_TOP);
    let mut candidates = candidates.peekable();
    let mut value = Vec::with_capacity(top.min(64));
    let mut last = None;
    while value.len() < top {
        let Some((id, props, kind)) = candidates.next() else {
            break;
        };
        let mut object = project(kind, props, q.select.as_deref())?;
        if context == "directoryObjects" {
            object.insert(
                "@odata.type".into(),
                Value::String(kind.odata_type().into()),
            );
        }
        value.push(Value::Object(object));
        last = Some(id);
    }
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(format!(
            "https://graph.microsoft.com/v1.0/$metadata#{context}"
        )),
    );
    if let (Some(last), Some(_)) = (last, candidates.peek()) {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in q.raw.iter().filter(|(k, _)| k != "$skiptoken") {
            ser.append_pair(k, v);
        }
        ser.append_pair("$skiptoken", &encode_token(last));
        body.insert(
            "@odata.nextLink".into(),
            Value::String(format!("{link_base}?{}", ser.finish())),
        );
    }
    body.insert("value".into(), Value::Array(value));
    Ok(Reply::json(200, Value::Object(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_eq_in_or_and_quotes() {
        let c = parse_filter(
            "userPrincipalName eq 'o''neil@contoso.com'",
            USER_FILTERABLE,
            "User",
        )
        .unwrap();
        assert_eq!(
            c,
            vec![Clause {
                property: "userPrincipalName".into(),
                values: vec![json!("o'neil@contoso.com")]
            }]
        );
        let c = parse_filter(
            "mail in ('a@x.com', 'b@x.com') or accountEnabled eq false",
            USER_FILTERABLE,
            "User",
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].values.len(), 2);
        assert_eq!(c[1].values, vec![json!(false)]);
        let e = parse_filter("jobTitle eq 'x'", USER_FILTERABLE, "User").unwrap_err();
        assert_eq!(e.code, "Request_UnsupportedQuery");
        assert!(parse_filter("displayName eq 'unterminated", USER_FILTERABLE, "User").is_err());
        assert!(parse_filter("displayName ne 'x'", USER_FILTERABLE, "User").is_err());
    }

    #[test]
    fn skiptokens_round_trip() {
        let id = "9a3d0000-0000-0000-0000-000000000001";
        let token = encode_token(id);
        assert!(!token.contains(id));
        assert_eq!(decode_token(&token).unwrap(), id);
        assert!(decode_token("nonsense").is_err());
    }
}
