//! Deep merge of mapping results, remembering which mapping set each property.

use crate::diff::Body;
use serde_json::Value;
use std::collections::HashMap;

/// A body being merged, with the mapping that last set each top-level property.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    body: Body,
    origin: HashMap<String, String>,
}

impl Merged {
    /// Starts from `body`, produced by the mapping named `by`.
    pub fn new(body: Body, by: &str) -> Self {
        let origin = body.keys().map(|k| (k.clone(), by.to_owned())).collect();
        Self { body, origin }
    }

    /// Deep-merges `layer` over the body: objects merge key by key, anything
    /// else (scalars, lists, null) replaces what was there.
    pub fn merge(&mut self, layer: Body, by: &str) {
        for (key, value) in layer {
            self.origin.insert(key.clone(), by.to_owned());
            match self.body.get_mut(&key) {
                Some(existing) => deep_merge(existing, value),
                None => {
                    self.body.insert(key, value);
                }
            }
        }
    }

    /// The merged body.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The name of the mapping that last set `key`.
    pub fn origin(&self, key: &str) -> &str {
        self.origin
            .get(key)
            .map(String::as_str)
            .unwrap_or("default")
    }

    /// Takes the merged body.
    pub fn into_body(self) -> Body {
        self.body
    }
}

/// Merges `over` into `base`: objects recursively, everything else replaced.
pub fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn later_values_win_and_objects_merge() {
        let base =
            json!({"displayName": "A", "passwordProfile": {"password": "p"}, "otherMails": ["a"]});
        let mut m = Merged::new(base.as_object().cloned().unwrap(), "default");
        m.merge(
            json!({"displayName": "B", "passwordProfile": {"forceChangePasswordNextSignIn": true}, "otherMails": ["b"]})
                .as_object()
                .cloned()
                .unwrap(),
            "10-x",
        );
        assert_eq!(
            Value::Object(m.body().clone()),
            json!({"displayName": "B", "passwordProfile": {"password": "p", "forceChangePasswordNextSignIn": true}, "otherMails": ["b"]})
        );
        assert_eq!(m.origin("displayName"), "10-x");
        assert_eq!(m.origin("missing"), "default");
    }
}
