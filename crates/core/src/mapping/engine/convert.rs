//! Conversions between our types and Starlark values: the handler's arguments
//! (structs, so `user.name` works, with `attributes` as dicts, so `.get()`
//! works) and its result (a dict → a JSON body).

use super::super::{Connection, MappingInput, MappingOutput, ProviderInfo, Subject};
use crate::authentik::{AkGroup, AkUser, AkUserType};
use starlark::const_frozen_string as key;
use starlark::values::dict::DictRef;
use starlark::values::float::StarlarkFloat;
use starlark::values::list::{AllocList, ListRef};
use starlark::values::structs::AllocStruct;
use starlark::values::tuple::TupleRef;
use starlark::values::{Heap, Value, ValueLike};

/// Which of the handler's parameters an expression mentions at all. One it
/// never names cannot be read, so it is passed as `None` instead of being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Uses {
    user: bool,
    group: bool,
    provider: bool,
    connection: bool,
    request: bool,
}

impl Uses {
    /// Scans `expression` for the parameter names as whole words (in code,
    /// strings or comments alike, which errs on the side of building them).
    pub(super) fn scan(expression: &str) -> Self {
        Self {
            user: mentions(expression, "user"),
            group: mentions(expression, "group"),
            provider: mentions(expression, "provider"),
            connection: mentions(expression, "connection"),
            request: mentions(expression, "request"),
        }
    }
}

/// Whether `word` occurs in `text` and is not part of a longer identifier.
fn mentions(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The handler's arguments: `user, group, provider, connection, request`.
pub(super) fn arguments<'v>(
    input: &MappingInput<'_>,
    uses: Uses,
    heap: Heap<'v>,
) -> [Value<'v>; 5] {
    let none = Value::new_none();
    let (user, group) = match input.subject {
        Subject::User(user) if uses.user || uses.request => (self::user(user, heap), none),
        Subject::Group(group) if uses.group => (none, self::group(group, heap)),
        _ => (none, none),
    };
    let request = if uses.request {
        heap.alloc(AllocStruct([
            (key!("user"), user),
            (key!("http_request"), none),
        ]))
    } else {
        none
    };
    let provider = if uses.provider {
        self::provider(input.provider, heap)
    } else {
        none
    };
    let connection = match input.connection {
        Some(c) if uses.connection => self::connection(c, heap),
        _ => none,
    };
    [user, group, provider, connection, request]
}

fn optional<'v>(value: Option<Value<'v>>) -> Value<'v> {
    value.unwrap_or_else(Value::new_none)
}

fn user_type(t: &AkUserType) -> &str {
    match t {
        AkUserType::Internal => "internal",
        AkUserType::External => "external",
        AkUserType::ServiceAccount => "service_account",
        AkUserType::InternalServiceAccount => "internal_service_account",
        AkUserType::Other(other) => other,
    }
}

/// A UUID as a Starlark string, without an intermediate `String`.
fn uuid<'v>(id: &uuid::Uuid, heap: Heap<'v>) -> Value<'v> {
    let mut buf = uuid::Uuid::encode_buffer();
    heap.alloc(&*id.hyphenated().encode_lower(&mut buf))
}

fn user<'v>(user: &AkUser, heap: Heap<'v>) -> Value<'v> {
    heap.alloc(AllocStruct([
        (key!("pk"), heap.alloc(user.pk.0)),
        (key!("username"), heap.alloc(user.username.as_str())),
        (key!("name"), heap.alloc(user.name.as_str())),
        (key!("email"), heap.alloc(user.email.as_str())),
        (key!("is_active"), Value::new_bool(user.is_active)),
        (key!("uid"), heap.alloc(user.uid.as_str())),
        (key!("type"), heap.alloc(user_type(&user.user_type))),
        (
            key!("groups"),
            heap.alloc(AllocList(user.groups.iter().map(|g| uuid(&g.0, heap)))),
        ),
        (key!("attributes"), heap.alloc(&user.attributes)),
        (key!("is_superuser"), Value::new_bool(user.is_superuser)),
        (key!("path"), heap.alloc(user.path.as_str())),
        (key!("uuid"), optional(user.uuid.map(|u| uuid(&u, heap)))),
        (
            key!("last_updated"),
            optional(user.last_updated.map(|t| heap.alloc(t.to_rfc3339()))),
        ),
    ]))
}

fn group<'v>(group: &AkGroup, heap: Heap<'v>) -> Value<'v> {
    heap.alloc(AllocStruct([
        (key!("pk"), uuid(&group.pk.0, heap)),
        (
            key!("num_pk"),
            optional(group.num_pk.map(|n| heap.alloc(n))),
        ),
        (key!("name"), heap.alloc(group.name.as_str())),
        (
            key!("users"),
            heap.alloc(AllocList(group.users.iter().map(|u| u.0))),
        ),
        (key!("attributes"), heap.alloc(&group.attributes)),
        (key!("is_superuser"), Value::new_bool(group.is_superuser)),
        (
            key!("parents"),
            heap.alloc(AllocList(group.parents.iter().map(|g| uuid(&g.0, heap)))),
        ),
    ]))
}

fn provider<'v>(provider: &ProviderInfo, heap: Heap<'v>) -> Value<'v> {
    heap.alloc(AllocStruct([
        (key!("name"), heap.alloc(provider.name.as_str())),
        (key!("tenant_id"), heap.alloc(provider.tenant_id.as_str())),
        (key!("client_id"), heap.alloc(provider.client_id.as_str())),
        (
            key!("domains"),
            heap.alloc(AllocList(provider.domains.iter().map(String::as_str))),
        ),
    ]))
}

fn connection<'v>(connection: Connection<'_>, heap: Heap<'v>) -> Value<'v> {
    let id = heap.alloc(connection.entra_id.as_str());
    heap.alloc(AllocStruct([
        (key!("entra_id"), id),
        // authentik's name for the same column, so its mappings port verbatim.
        (key!("microsoft_id"), id),
        (key!("attributes"), heap.alloc(connection.attributes)),
    ]))
}

/// The handler's result: a dict becomes a body, `None` nothing; anything else
/// is an error message.
pub(super) fn output(result: Value<'_>) -> Result<MappingOutput, String> {
    if result.is_none() {
        return Ok(MappingOutput::Nothing);
    }
    if DictRef::from_value(result).is_none() {
        return Err(format!(
            "a mapping must return a dict, None or skip_object(), not a {} ({})",
            result.get_type(),
            truncated(&result.to_repr()),
        ));
    }
    match to_json(result, 0)? {
        serde_json::Value::Object(body) => Ok(MappingOutput::Body(body)),
        other => Err(format!("the dict became {other}, not a JSON object")),
    }
}

/// How deeply a result may nest; deeper is almost surely a value that contains itself.
const MAX_DEPTH: usize = 32;

/// Converts a Starlark value to JSON directly, which is several times faster
/// than going through serde; unusual values (big ints, structs) take the slow path.
fn to_json(value: Value<'_>, depth: usize) -> Result<serde_json::Value, String> {
    use serde_json::Value as Json;
    if depth > MAX_DEPTH {
        return Err(format!(
            "the returned dict nests deeper than {MAX_DEPTH} levels or contains itself"
        ));
    }
    if value.is_none() {
        return Ok(Json::Null);
    }
    if let Some(b) = value.unpack_bool() {
        return Ok(Json::Bool(b));
    }
    if let Some(n) = value.unpack_i32() {
        return Ok(Json::from(n));
    }
    if let Some(s) = value.unpack_str() {
        return Ok(Json::String(s.to_owned()));
    }
    if let Some(f) = value.downcast_ref::<StarlarkFloat>() {
        return serde_json::Number::from_f64(f.0)
            .map(Json::Number)
            .ok_or_else(|| format!("the returned dict holds {}, which is not valid JSON", f.0));
    }
    if let Some(dict) = DictRef::from_value(value) {
        let mut map = serde_json::Map::new();
        for (k, v) in dict.iter() {
            let Some(k) = k.unpack_str() else {
                return Err(format!(
                    "dict keys must be strings, not {} ({})",
                    k.get_type(),
                    truncated(&k.to_repr())
                ));
            };
            map.insert(k.to_owned(), to_json(v, depth + 1)?);
        }
        return Ok(Json::Object(map));
    }
    let items = match (ListRef::from_value(value), TupleRef::from_value(value)) {
        (Some(list), _) => list.content(),
        (None, Some(tuple)) => tuple.content(),
        (None, None) => {
            return value
                .to_json_value()
                .map_err(|e| format!("the returned dict is not valid JSON: {e}"));
        }
    };
    items
        .iter()
        .map(|v| to_json(*v, depth + 1))
        .collect::<Result<_, _>>()
        .map(Json::Array)
}

/// At most 80 characters of `text`, for messages.
fn truncated(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_found_as_whole_words_only() {
        let uses =
            Uses::scan("x = users + my_group + provider_x\n# connection\nreturn request.user");
        assert_eq!(
            uses,
            Uses {
                user: true,
                group: false,
                provider: false,
                connection: true,
                request: true
            }
        );
        assert!(mentions("(user)", "user"));
        assert!(!mentions("éuser", "user"));
        assert!(!mentions("", "user"));
    }
}
