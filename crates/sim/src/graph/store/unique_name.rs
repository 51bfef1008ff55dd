//! A group's alternate key `uniqueName`.
//!
//! - `uniqueName` is "an alternate key. Immutable." (group resource page); it
//!   "can be updated only if `null` and is immutable once set" (group-update
//!   page). It is unique among groups, compared without regard to case
//!   (inferred, as for other Entra keys).
//! - `PATCH /groups(uniqueName='…')` with `Prefer: create-if-missing` creates
//!   the group (201 with the group) or updates it (204); without the header a
//!   missing group is 404 (group-upsert page).
//! - A deleted group goes to `directory/deletedItems` whole, and "can be
//!   restored within 30 days" (group-delete page): it keeps its properties,
//!   `uniqueName` included. Microsoft does not document whether that key is
//!   then free for a new group; the simulator takes the strict reading: it
//!   stays taken until the group is restored or purged, so a create with it
//!   answers 400 `ObjectConflict`.

use super::{Directory, Kind, QueryOptions, Reply, properties};
use crate::graph::error::SimError;
use serde_json::{Map, Value};
use std::time::Instant;

/// The lower-case `uniqueName` of a group's properties, if set.
pub(super) fn unique_name_of(props: &Map<String, Value>) -> Option<String> {
    props
        .get("uniqueName")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
}

impl Directory {
    /// The `uniqueName` a new group's body sets, if any, once checked free.
    pub(super) fn free_unique_name(
        &self,
        props: &Map<String, Value>,
    ) -> Result<Option<String>, SimError> {
        match props.get("uniqueName") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => {
                let key = s.to_ascii_lowercase();
                if self.unique_names.contains_key(&key) {
                    Err(SimError::conflict("uniqueName"))
                } else {
                    Ok(Some(key))
                }
            }
            Some(_) => Err(SimError::invalid_value("uniqueName", "Group")),
        }
    }

    /// The `uniqueName` a PATCH of group `id` sets: only where it is still
    /// null; the same value again changes nothing.
    pub(super) fn settable_unique_name(
        &self,
        id: &str,
        props: &Map<String, Value>,
    ) -> Result<Option<String>, SimError> {
        if !props.contains_key("uniqueName") {
            return Ok(None);
        }
        match unique_name_of(&self.groups[id].props) {
            None => self.free_unique_name(props),
            Some(current) if unique_name_of(props).as_deref() == Some(current.as_str()) => Ok(None),
            // (inferred) message: Microsoft documents the rule, not the answer.
            Some(_) => Err(SimError::bad_request(
                "Property 'uniqueName' is immutable once set and cannot be updated.",
            )),
        }
    }

    /// The id of the live group whose `uniqueName` is `key`.
    fn live_by_unique_name(&self, key: &str) -> Option<String> {
        self.unique_names
            .get(&key.to_ascii_lowercase())
            .filter(|id| self.groups.contains_key(*id))
            .cloned()
    }

    /// `GET /groups(uniqueName='…')`.
    pub fn get_by_unique_name(
        &self,
        key: &str,
        q: &QueryOptions,
        now: Instant,
    ) -> Result<Reply, SimError> {
        let id = self
            .live_by_unique_name(key)
            .ok_or_else(|| SimError::not_found(key))?;
        self.get(Kind::Groups, &id, q, now)
    }

    /// `PATCH /groups(uniqueName='…')`: updates the group holding `key`, or
    /// with `create_if_missing` creates it with that key. A key held by a
    /// soft-deleted group is taken (see the module docs). A group that exists
    /// but has not replicated yet answers 404, like any PATCH of it.
    pub fn upsert_group(
        &mut self,
        key: &str,
        body: Value,
        create_if_missing: bool,
        domains: &[String],
        now: Instant,
    ) -> Result<Reply, SimError> {
        let mut props = properties(body)?;
        if unique_name_of(&props).is_some_and(|k| !k.eq_ignore_ascii_case(key)) {
            return Err(SimError::bad_request(
                "The uniqueName in the request body does not match the key in the URL.",
            ));
        }
        props.remove("uniqueName");
        if let Some(id) = self.live_by_unique_name(key) {
            return self.update(Kind::Groups, &id, Value::Object(props), domains, now);
        }
        if !create_if_missing {
            return Err(SimError::not_found(key));
        }
        props.insert("uniqueName".into(), Value::String(key.to_owned()));
        self.create(Kind::Groups, Value::Object(props), domains, now)
    }
}
