//! Answers lost after the directory committed a request: a `504` from the
//! gateway, or a connection dropped, once Graph has already created, changed
//! or deleted the object. This is how a create's outcome becomes unknown to
//! the client (`microsoft-graph.md` §3 ★: POST `/users` and `/groups` are not
//! idempotent, and a 5xx or a timeout may come after the commit).
//!
//! Rules are chosen per method and path class (as the request counters name
//! them, e.g. `POST` `groups`, `PATCH` `groups(uniqueName)`), or for the next
//! N requests; set through [`super::GraphSim::fail_after_commit`] or
//! `POST /_sim/faults/after-commit`, cleared with `DELETE` on the same path.
//! A rule fires only on a request the directory accepted (status below 400),
//! so what it hides was really done; it applies to whole requests, not to the
//! inner requests of a `$batch`.

use serde::{Deserialize, Serialize};

/// What the client gets instead of the committed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostAnswer {
    /// An error status with Graph's body for it, e.g. 504 `GatewayTimeout`.
    Status(u16),
    /// The connection drops before the body.
    Drop,
}

/// Fails up to `times` matching requests after they were committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitFault {
    /// The HTTP method to match, e.g. `POST`; any method when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// The path class to match, e.g. `users` or `groups(uniqueName)`; any
    /// path when absent.
    #[serde(default)]
    pub path: Option<String>,
    /// How many matching requests fail; then the rule is used up.
    pub times: u32,
    /// What they answer instead.
    pub answer: LostAnswer,
}

impl CommitFault {
    /// The next `times` committed requests of `method` on path class `path`
    /// answer `answer`.
    pub fn on(method: &str, path: &str, times: u32, answer: LostAnswer) -> Self {
        Self {
            method: Some(method.to_owned()),
            path: Some(path.to_owned()),
            times,
            answer,
        }
    }

    /// The next `times` committed requests, whatever they are, answer `answer`.
    pub fn next(times: u32, answer: LostAnswer) -> Self {
        Self {
            method: None,
            path: None,
            times,
            answer,
        }
    }

    fn matches(&self, method: &str, class: &str) -> bool {
        self.times > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.as_deref().is_none_or(|p| p == class)
    }
}

/// The rules in force, first added first used.
#[derive(Debug, Default)]
pub(crate) struct CommitFaults(Vec<CommitFault>);

impl CommitFaults {
    /// Adds a rule.
    pub fn add(&mut self, fault: CommitFault) {
        self.0.push(fault);
    }

    /// Drops every rule.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Uses one failure of the first rule matching a committed request, if any.
    pub fn take(&mut self, method: &str, class: &str) -> Option<LostAnswer> {
        let rule = self.0.iter_mut().find(|r| r.matches(method, class))?;
        rule.times -= 1;
        let answer = rule.answer;
        self.0.retain(|r| r.times > 0);
        Some(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_method_and_path_and_are_used_up() {
        let mut faults = CommitFaults::default();
        faults.add(CommitFault::on(
            "POST",
            "groups",
            1,
            LostAnswer::Status(504),
        ));
        faults.add(CommitFault::next(1, LostAnswer::Drop));
        assert_eq!(faults.take("GET", "groups"), Some(LostAnswer::Drop));
        assert_eq!(faults.take("GET", "groups"), None);
        assert_eq!(faults.take("post", "groups"), Some(LostAnswer::Status(504)));
        assert_eq!(faults.take("POST", "groups"), None);
    }

    #[test]
    fn a_rule_reads_from_json() {
        let rule: CommitFault = serde_json::from_str(
            r#"{"method":"POST","path":"users","times":2,"answer":{"status":504}}"#,
        )
        .unwrap();
        assert_eq!(
            rule,
            CommitFault::on("POST", "users", 2, LostAnswer::Status(504))
        );
        let drop: CommitFault = serde_json::from_str(r#"{"times":1,"answer":"drop"}"#).unwrap();
        assert_eq!(drop, CommitFault::next(1, LostAnswer::Drop));
    }
}
