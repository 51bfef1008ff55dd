//! Deleted items (`/directory/deletedItems`): a deleted user or group is kept
//! for restore with its id and memberships, as Graph keeps it for 30 days
//! (`user-delete.md`, `group-delete.md`: users, Microsoft 365 and security
//! groups; distribution groups are deleted permanently at once). Restoring
//! (`directory-deleteditems-restore.md`) answers 200 with the object and puts
//! its memberships back; a user whose UPN was taken meanwhile is refused.
//! The retention period is not simulated: items stay until restored or purged.
//! A deleted group keeps its `uniqueName` taken meanwhile (see `unique_name.rs`).

use super::unique_name::unique_name_of;
use super::{
    Directory, Kind, Object, QueryOptions, Reply, SimError, page, parse_filter, project, read_only,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Properties `$filter` supports on deleted items in the simulator.
const DELETED_FILTERABLE: &[&str] = &["id", "displayName", "uniqueName", "userPrincipalName"];

/// A soft-deleted user or group.
#[derive(Debug, Clone)]
pub(crate) struct DeletedObject {
    kind: Kind,
    object: Object,
    /// The groups it was a member of when it was deleted.
    member_of: BTreeSet<String>,
}

impl Directory {
    /// Takes object `id` out of the directory with its memberships, into the
    /// deleted items unless it is a distribution group (deleted permanently).
    /// No permission or write rule is checked: callers do.
    pub(crate) fn take_out(&mut self, kind: Kind, id: &str) -> Option<()> {
        let mut object = match kind {
            Kind::Users => self.users.remove(id),
            Kind::Groups => self.groups.remove(id),
        }?;
        if let Some(upn) = object
            .props
            .get("userPrincipalName")
            .and_then(Value::as_str)
        {
            self.upns.remove(&upn.to_ascii_lowercase());
        }
        let member_of = self
            .groups
            .iter_mut()
            .filter_map(|(gid, g)| g.members.remove(id).then(|| gid.clone()))
            .collect();
        let distribution = kind == Kind::Groups
            && read_only(&object)
            && object.props.get("securityEnabled") != Some(&Value::Bool(true));
        if distribution {
            if let Some(name) = unique_name_of(&object.props) {
                self.unique_names.remove(&name);
            }
        } else {
            object.props.insert(
                "deletedDateTime".into(),
                Value::String(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            );
            self.deleted.insert(
                id.to_owned(),
                DeletedObject {
                    kind,
                    object,
                    member_of,
                },
            );
        }
        Some(())
    }

    /// The kind of deleted item `key`, if there is one.
    pub fn deleted_kind(&self, key: &str) -> Option<Kind> {
        self.deleted.get(&key.to_ascii_lowercase()).map(|d| d.kind)
    }

    /// `GET /directory/deletedItems/{id}`.
    pub fn get_deleted(&self, key: &str, q: &QueryOptions) -> Result<Reply, SimError> {
        let deleted = self
            .deleted
            .get(&key.to_ascii_lowercase())
            .ok_or_else(|| SimError::not_found(key))?;
        let mut body = project(deleted.kind, &deleted.object.props, q.select.as_deref())?;
        if q.select.is_none() {
            body.insert(
                "deletedDateTime".into(),
                deleted.object.props["deletedDateTime"].clone(),
            );
        }
        body.insert(
            "@odata.context".into(),
            json!("https://graph.microsoft.com/v1.0/$metadata#directory/deletedItems/$entity"),
        );
        body.insert("@odata.type".into(), json!(deleted.kind.odata_type()));
        Ok(Reply::json(200, Value::Object(body)))
    }

    /// `GET /directory/deletedItems/microsoft.graph.user` (or `.group`).
    pub fn list_deleted(
        &self,
        kind: Kind,
        q: &QueryOptions,
        link_base: &str,
    ) -> Result<Reply, SimError> {
        let after = q
            .skiptoken
            .as_deref()
            .map(super::decode_token)
            .transpose()?;
        let clauses = match &q.filter {
            Some(f) => Some(parse_filter(f, DELETED_FILTERABLE, kind.resource_name())?),
            None => None,
        };
        let items = self
            .deleted
            .range::<String, _>((
                after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
                std::ops::Bound::Unbounded,
            ))
            .filter(|(_, d)| d.kind == kind)
            .filter(|(_, d)| {
                clauses
                    .as_deref()
                    .is_none_or(|c| super::matches(&d.object.props, c))
            })
            .map(|(id, d)| (id.as_str(), &d.object.props, d.kind));
        page(items, q, link_base, "directoryObjects")
    }

    /// `POST /directory/deletedItems/{id}/restore`: back with the same id, and
    /// back into the groups it was in (a group: with its members) that still exist.
    pub fn restore(&mut self, key: &str) -> Result<Reply, SimError> {
        let id = key.to_ascii_lowercase();
        let deleted = self
            .deleted
            .get(&id)
            .ok_or_else(|| SimError::not_found(key))?;
        let upn = deleted
            .object
            .props
            .get("userPrincipalName")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        if let Some(upn) = &upn
            && self.upns.contains_key(upn)
        {
            return Err(SimError::conflict("userPrincipalName"));
        }
        let DeletedObject {
            kind,
            mut object,
            member_of,
        } = self
            .deleted
            .remove(&id)
            .ok_or_else(|| SimError::not_found(key))?;
        object.props.remove("deletedDateTime");
        object.created = None;
        let existing: BTreeSet<String> = object
            .members
            .iter()
            .filter(|m| self.users.contains_key(*m) || self.groups.contains_key(*m))
            .cloned()
            .collect();
        object.members = existing;
        for gid in member_of {
            if let Some(g) = self.groups.get_mut(&gid) {
                g.members.insert(id.clone());
            }
        }
        let mut body = project(kind, &object.props, None)?;
        body.insert(
            "@odata.context".into(),
            json!("https://graph.microsoft.com/v1.0/$metadata#directoryObjects/$entity"),
        );
        body.insert("@odata.type".into(), json!(kind.odata_type()));
        match kind {
            Kind::Users => {
                if let Some(upn) = upn {
                    self.upns.insert(upn, id.clone());
                }
                self.users.insert(id, object);
            }
            Kind::Groups => {
                self.groups.insert(id, object);
            }
        }
        Ok(Reply::json(200, Value::Object(body)))
    }

    /// `DELETE /directory/deletedItems/{id}`: deleted permanently; a group's
    /// `uniqueName` is free again.
    pub fn purge(&mut self, key: &str) -> Result<Reply, SimError> {
        let deleted = self
            .deleted
            .remove(&key.to_ascii_lowercase())
            .ok_or_else(|| SimError::not_found(key))?;
        if let Some(name) = unique_name_of(&deleted.object.props) {
            self.unique_names.remove(&name);
        }
        Ok(Reply::no_content())
    }

    /// The ids of the deleted items, for `GET /_sim/state`.
    pub(crate) fn deleted_ids(&self) -> Vec<String> {
        self.deleted.keys().cloned().collect()
    }

    /// A change made "in the portal": merges `changes` into object `id` (a
    /// `null` removes the property), bypassing Graph's validation and write rules.
    pub fn portal_update(
        &mut self,
        id: &str,
        changes: serde_json::Map<String, Value>,
    ) -> Result<(), SimError> {
        let id = id.to_ascii_lowercase();
        let kind = if self.users.contains_key(&id) {
            Kind::Users
        } else if self.groups.contains_key(&id) {
            Kind::Groups
        } else {
            return Err(SimError::not_found(&id));
        };
        if kind == Kind::Users
            && let Some(upn) = changes.get("userPrincipalName").and_then(Value::as_str)
        {
            self.move_upn(&id, upn.to_ascii_lowercase());
        }
        let object = match kind {
            Kind::Users => self.users.get_mut(&id),
            Kind::Groups => self.groups.get_mut(&id),
        }
        .ok_or_else(|| SimError::not_found(&id))?;
        for (k, v) in changes {
            if v.is_null() {
                object.props.remove(&k);
            } else {
                object.props.insert(k, v);
            }
        }
        Ok(())
    }

    /// A deletion made "in the portal", bypassing the app's write rules.
    pub fn portal_delete(&mut self, id: &str) -> Result<(), SimError> {
        let id = id.to_ascii_lowercase();
        let kind = if self.users.contains_key(&id) {
            Kind::Users
        } else {
            Kind::Groups
        };
        self.take_out(kind, &id)
            .ok_or_else(|| SimError::not_found(&id))
    }

    /// A member removed "in the portal", bypassing the app's write rules.
    pub fn portal_remove_member(&mut self, group: &str, member: &str) -> Result<(), SimError> {
        let removed = self
            .groups
            .get_mut(&group.to_ascii_lowercase())
            .ok_or_else(|| SimError::not_found(group))?
            .members
            .remove(&member.to_ascii_lowercase());
        if removed {
            Ok(())
        } else {
            Err(SimError::not_found(member))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_deleted_user_is_restored_with_its_id_and_memberships() {
        let mut dir = Directory::new(std::time::Duration::ZERO);
        let user = dir
            .seed(Kind::Users, props(json!({"userPrincipalName": "a@x.com"})))
            .unwrap();
        let group = dir
            .seed(
                Kind::Groups,
                props(json!({"displayName": "g", "securityEnabled": true})),
            )
            .unwrap();
        dir.seed_member(&group, &user).unwrap();
        dir.portal_delete(&user).unwrap();
        assert!(dir.groups[&group].members.is_empty());
        assert_eq!(dir.deleted_kind(&user), Some(Kind::Users));
        let restored = dir.restore(&user).unwrap();
        assert_eq!(restored.status, 200);
        assert_eq!(restored.body.unwrap()["id"], json!(user));
        assert!(dir.groups[&group].members.contains(&user));
        assert_eq!(dir.restore(&user).unwrap_err().status, 404);
    }

    #[test]
    fn a_taken_upn_refuses_the_restore_and_distribution_groups_are_gone_for_good() {
        let mut dir = Directory::new(std::time::Duration::ZERO);
        let user = dir
            .seed(Kind::Users, props(json!({"userPrincipalName": "a@x.com"})))
            .unwrap();
        dir.portal_delete(&user).unwrap();
        dir.seed(Kind::Users, props(json!({"userPrincipalName": "A@x.com"})))
            .unwrap();
        assert_eq!(dir.restore(&user).unwrap_err().status, 400);
        let dl = dir
            .seed(
                Kind::Groups,
                props(json!({"displayName": "dl", "mailEnabled": true, "securityEnabled": false})),
            )
            .unwrap();
        dir.portal_delete(&dl).unwrap();
        assert_eq!(dir.deleted_kind(&dl), None);
    }
}
