//! The RabbitMQ policies of the topology: the delivery limit and the
//! dead-letter strategy live here, never in queue arguments.
//!
//! A queue's arguments are fixed when it is declared: redeclaring it with a
//! different argument fails with 406 PRECONDITION_FAILED, so an upgrade that
//! changed one could not start. A policy can change at any time, and applies
//! to queues declared before it.
//!
//! - The work queues hand a message out at most [`DELIVERY_LIMIT`] times, then
//!   dead-letter it to `<prefix>.dlq`, at least once: quorum queues
//!   dead-letter at most once unless `dead-letter-strategy` is
//!   `at-least-once`, which needs `overflow` `reject-publish`.
//! - The delay tiers dead-letter back to the work queues at least once too
//!   (their target exchange stays an argument; their routing key is the
//!   message's own).
//!
//! [`apply`] sets them through the management HTTP API; the README gives the
//! equivalent `rabbitmqctl set_policy` commands.

use crate::topology::Topology;
use serde_json::{Value, json};

/// How often a work queue hands one message out before dead-lettering it.
/// It only guards against a task that crashes its worker: the worker never
/// requeues, so only a crash, a closed channel or a broker restart counts.
pub const DELIVERY_LIMIT: u32 = 20;

/// Our policies outrank an operator's catch-all policy of priority 0.
const PRIORITY: i64 = 10;

/// One policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// The regular expression of the queue names it applies to.
    pub pattern: String,
    /// Its keys.
    pub definition: Value,
}

impl Policy {
    /// The body of `PUT /api/policies/{vhost}/{name}`.
    pub fn body(&self) -> Value {
        json!({
            "pattern": self.pattern,
            "definition": self.definition,
            "apply-to": "queues",
            "priority": PRIORITY,
        })
    }
}

impl Topology {
    /// The policies of this topology's queues.
    pub fn policies(&self) -> Vec<Policy> {
        let prefix = escape(self.prefix());
        vec![
            Policy {
                name: format!("{}.work", self.prefix()),
                pattern: format!("^{prefix}\\.(direct|bulk)$"),
                definition: json!({
                    "delivery-limit": DELIVERY_LIMIT,
                    "dead-letter-exchange": "",
                    "dead-letter-routing-key": self.dead_letter_queue(),
                    "dead-letter-strategy": "at-least-once",
                    "overflow": "reject-publish",
                }),
            },
            Policy {
                name: format!("{}.retry", self.prefix()),
                pattern: format!("^{prefix}\\.retry\\."),
                definition: json!({
                    "dead-letter-strategy": "at-least-once",
                    "overflow": "reject-publish",
                }),
            },
        ]
    }
}

/// `text` with the regular-expression metacharacters escaped.
fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// A policy could not be set.
#[derive(Debug, thiserror::Error)]
#[error("cannot set RabbitMQ policy {policy} through {url}: {reason}")]
pub struct PolicyError {
    /// The policy.
    pub policy: String,
    /// The management API's base URL.
    pub url: String,
    /// Why.
    pub reason: String,
}

/// Sets `topology`'s policies on the vhost of `amqp_url` through the
/// management HTTP API at `management_url` (e.g. `http://rabbitmq:15672`),
/// as the user of `amqp_url`, who needs the `policymaker` tag.
pub async fn apply(
    topology: &Topology,
    amqp_url: &str,
    management_url: &str,
) -> Result<(), PolicyError> {
    let base = management_url.trim_end_matches('/');
    let error = |policy: &str, reason: String| PolicyError {
        policy: policy.to_owned(),
        url: base.to_owned(),
        reason,
    };
    let uri: lapin::uri::AMQPUri = amqp_url
        .parse()
        .map_err(|e: String| error("(all)", format!("the AMQP URL does not parse: {e}")))?;
    let vhost = percent_encode(&uri.vhost);
    let user = &uri.authority.userinfo;
    let http = reqwest::Client::new();
    for policy in topology.policies() {
        let url = format!(
            "{base}/api/policies/{vhost}/{}",
            percent_encode(&policy.name)
        );
        let response = http
            .put(url)
            .basic_auth(&user.username, Some(&user.password))
            .json(&policy.body())
            .send()
            .await
            .map_err(|e| error(&policy.name, e.without_url().to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(error(&policy.name, format!("HTTP {status}: {body}")));
        }
    }
    Ok(())
}

/// `text` as one URL path segment.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_match_the_work_queues_and_the_tiers_only() {
        let topology = Topology::new("entra-sync.x");
        let [work, retry] = topology.policies().try_into().unwrap();
        assert_eq!(work.pattern, "^entra-sync\\.x\\.(direct|bulk)$");
        assert_eq!(work.definition["delivery-limit"], 20);
        assert_eq!(work.definition["dead-letter-strategy"], "at-least-once");
        assert_eq!(work.definition["overflow"], "reject-publish");
        assert_eq!(
            work.definition["dead-letter-routing-key"],
            "entra-sync.x.dlq"
        );
        assert_eq!(retry.pattern, "^entra-sync\\.x\\.retry\\.");
        assert!(
            retry.definition.get("dead-letter-routing-key").is_none(),
            "a retry keeps its own routing key back to its lane"
        );
        assert_eq!(work.body()["apply-to"], "queues");
    }

    #[test]
    fn vhost_and_names_are_encoded_as_path_segments() {
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode("t-1.work"), "t-1.work");
    }
}
