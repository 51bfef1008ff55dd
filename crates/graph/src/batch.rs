//! `$batch` and group membership writes (`microsoft-graph.md` §2, §6).

use crate::client::{Call, GraphClient, Sent};
use crate::gate::RequestCost;
use crate::outcome::{GraphFailure, RequestRecord, Written};
use crate::signals::ThrottleSignals;
use entra_sync_core::diff::MEMBER_ADD_CHUNK;
use entra_sync_core::failure::{
    FailureClass, FailureContext, GraphError, Operation, Target, classify,
};
use entra_sync_core::ids::EntraObjectId;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// Inner requests per `$batch`.
pub const MAX_BATCH: usize = 20;

/// One request inside a `$batch`.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    /// Unique within the batch (compared without regard to case).
    pub id: String,
    /// HTTP method.
    pub method: Method,
    /// URL relative to `/v1.0`, e.g. `/groups/{id}/members/$ref`.
    pub url: String,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// How to classify its failure.
    pub context: FailureContext,
    /// What it does, for messages, e.g. `add member X to group Y`.
    pub action: String,
}

/// The answer to one inner request.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    /// The request's id.
    pub id: String,
    /// Inner status.
    pub status: u16,
    /// Inner body, if any.
    pub body: Option<Value>,
    /// Inner throttling signals (its own Retry-After on a 429).
    pub signals: ThrottleSignals,
    /// The classified failure; `None` on success. `AlreadyDone` counts as success.
    pub failure: Option<GraphFailure>,
}

impl BatchItem {
    /// Success, or a failure that means the desired state is already there.
    pub fn succeeded(&self) -> bool {
        self.failure
            .as_ref()
            .is_none_or(|f| f.class == FailureClass::AlreadyDone)
    }
}

/// What [`GraphClient::add_members`] did per member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberAddReport {
    /// Added by this call.
    pub added: Vec<EntraObjectId>,
    /// Already members ("already exist"): success.
    pub already_present: Vec<EntraObjectId>,
    /// Could not be added, with the reason.
    pub failed: Vec<(EntraObjectId, GraphFailure)>,
}

impl MemberAddReport {
    /// Whether every member is now in the group.
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
    }
}

#[derive(Deserialize)]
struct BatchAnswer {
    responses: Vec<InnerAnswer>,
}

#[derive(Deserialize)]
struct InnerAnswer {
    id: Value,
    status: u16,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    body: Option<Value>,
}

fn id_key(id: &Value) -> String {
    match id {
        Value::String(s) => s.to_ascii_lowercase(),
        other => other.to_string(),
    }
}

/// The reference URL of a directory object; Graph expects its own absolute URL here.
fn directory_object(id: &EntraObjectId) -> String {
    format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")
}

impl GraphClient {
    /// Sends up to 20 requests in one `POST /$batch`, reads every inner answer and
    /// retries throttled or transient inner requests inline (only those, after the
    /// longest Retry-After) while the retry policy allows. The outer status may be 200 or 424.
    #[tracing::instrument(level = "debug", skip_all, fields(requests = requests.len()))]
    pub async fn batch(
        &self,
        requests: Vec<BatchRequest>,
    ) -> Result<Written<Vec<BatchItem>>, GraphFailure> {
        let operation = requests
            .first()
            .map_or(Operation::Read, |r| r.context.operation);
        let action = format!("$batch of {} requests", requests.len());
        if requests.len() > MAX_BATCH {
            return Err(GraphFailure::invalid_request(
                operation,
                &action,
                format!("a $batch holds at most {MAX_BATCH} requests"),
            ));
        }
        let url = format!("{}/$batch", self.root());
        if self.is_dry_run() && requests.iter().any(|r| r.method != Method::GET) {
            return Ok(Written::DryRun(RequestRecord::new(
                "POST",
                url,
                Some(batch_body(&requests)),
            )));
        }
        let mut done: HashMap<String, BatchItem> = HashMap::new();
        let order: Vec<String> = requests.iter().map(|r| r.id.to_ascii_lowercase()).collect();
        let mut pending = requests;
        let mut outer_signals = ThrottleSignals::default();
        let mut attempts = 0;
        while !pending.is_empty() {
            attempts += 1;
            let cost = pending
                .iter()
                .map(|r| RequestCost::estimate(&r.method, &r.url))
                .fold(RequestCost::default(), RequestCost::plus);
            let context = pending[0].context;
            let call = Call {
                method: Method::POST,
                url: url.clone(),
                body: Some(batch_body(&pending)),
                context,
                action: &action,
                cost: Some(cost),
                accept: &[424],
                prefer: None,
            };
            let answer = match self.execute(call).await? {
                Sent::Answer(a) => a,
                Sent::DryRun(record) => return Ok(Written::DryRun(record)),
            };
            outer_signals = answer.signals;
            let parsed: BatchAnswer = serde_json::from_slice(&answer.body).map_err(|e| {
                GraphFailure::transport(
                    operation,
                    &action,
                    format!("unreadable $batch answer: {e}"),
                )
            })?;
            let mut by_id: HashMap<String, InnerAnswer> = parsed
                .responses
                .into_iter()
                .map(|r| (id_key(&r.id), r))
                .collect();
            let mut retry = Vec::new();
            let mut wait = Duration::ZERO;
            for request in pending {
                let key = request.id.to_ascii_lowercase();
                let item = match by_id.remove(&key) {
                    Some(inner) => self.inner_item(&request, inner).await,
                    None => BatchItem {
                        id: request.id.clone(),
                        status: 0,
                        body: None,
                        signals: ThrottleSignals::default(),
                        failure: Some(GraphFailure::transport(
                            request.context.operation,
                            &request.action,
                            "the $batch answer has no response for this request".into(),
                        )),
                    },
                };
                let delay = item.failure.as_ref().and_then(|f| {
                    self.inner
                        .retry
                        .next_delay(attempts, f.class, f.retry_after)
                });
                match delay {
                    Some(d) => {
                        wait = wait.max(d);
                        retry.push(request);
                    }
                    None => {
                        done.insert(key, item);
                    }
                }
            }
            pending = retry;
            if !pending.is_empty() {
                tracing::debug!(
                    retrying = pending.len(),
                    wait_ms = wait.as_millis() as u64,
                    "retrying inner $batch requests"
                );
                tokio::time::sleep(wait).await;
            }
        }
        let items = order.iter().filter_map(|k| done.remove(k)).collect();
        Ok(Written::Done {
            value: items,
            signals: outer_signals,
        })
    }

    async fn inner_item(&self, request: &BatchRequest, inner: InnerAnswer) -> BatchItem {
        let signals = ThrottleSignals::from_pairs(
            inner
                .headers
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v))),
            SystemTime::now(),
        );
        self.inner.gate.observe(
            RequestCost::estimate(&request.method, &request.url),
            inner.status,
            &signals,
        );
        let error = match &inner.body {
            Some(body) if inner.status >= 400 => {
                GraphError::parse(&serde_json::to_vec(body).unwrap_or_default())
            }
            _ => GraphError::default(),
        };
        let failure = classify(inner.status, &error, request.context).map(|class| {
            GraphFailure::from_answer(
                class,
                request.context,
                &request.action,
                inner.status,
                error,
                signals.clone(),
            )
        });
        if inner.status == 429 {
            entra_sync_telemetry::series().graph_throttled(signals.retry_after);
            let pause = signals
                .retry_after
                .unwrap_or_else(|| self.inner.retry.backoff.ceiling(1));
            self.inner.gate.throttled(pause, &signals).await;
        }
        BatchItem {
            id: request.id.clone(),
            status: inner.status,
            body: inner.body,
            signals,
            failure,
        }
    }

    /// Adds up to 20 members with one `PATCH /groups/{id}` (`members@odata.bind`).
    /// If some are already members the PATCH fails whole, so it falls back to one
    /// `POST …/members/$ref` per member in a `$batch`, where "already exist" is success.
    /// Pass `recently_created` when the group or a member was just created.
    #[tracing::instrument(level = "debug", skip(self, members), fields(group = %group, members = members.len()))]
    pub async fn add_members(
        &self,
        group: &EntraObjectId,
        members: &[EntraObjectId],
        recently_created: bool,
    ) -> Result<Written<MemberAddReport>, GraphFailure> {
        let action = format!("add {} members to group {group}", members.len());
        let context = FailureContext {
            recently_created,
            ..FailureContext::new(Operation::AddMembers, Target::Group)
        };
        if members.len() > MEMBER_ADD_CHUNK {
            return Err(GraphFailure::invalid_request(
                Operation::AddMembers,
                &action,
                format!("at most {MEMBER_ADD_CHUNK} members per request"),
            ));
        }
        if members.is_empty() {
            return Ok(Written::Done {
                value: MemberAddReport::default(),
                signals: ThrottleSignals::default(),
            });
        }
        let binds: Vec<String> = members.iter().map(directory_object).collect();
        let call = Call {
            method: Method::PATCH,
            url: self.url(&format!("/groups/{group}"), &[]),
            body: Some(json!({ "members@odata.bind": binds })),
            context,
            action: &action,
            cost: Some(RequestCost::member_binds(members.len())),
            accept: &[],
            prefer: None,
        };
        match self.execute(call).await {
            Ok(Sent::DryRun(record)) => Ok(Written::DryRun(record)),
            Ok(Sent::Answer(answer)) => Ok(Written::Done {
                value: MemberAddReport {
                    added: members.to_vec(),
                    ..MemberAddReport::default()
                },
                signals: answer.signals,
            }),
            Err(f) if f.class == FailureClass::AlreadyDone => {
                tracing::debug!("some members already present; adding one by one");
                self.add_members_one_by_one(group, members, context).await
            }
            Err(f) => Err(f),
        }
    }

    async fn add_members_one_by_one(
        &self,
        group: &EntraObjectId,
        members: &[EntraObjectId],
        context: FailureContext,
    ) -> Result<Written<MemberAddReport>, GraphFailure> {
        let requests = members
            .iter()
            .enumerate()
            .map(|(i, m)| BatchRequest {
                id: i.to_string(),
                method: Method::POST,
                url: format!("/groups/{group}/members/$ref"),
                body: Some(json!({ "@odata.id": directory_object(m) })),
                context,
                action: format!("add member {m} to group {group}"),
            })
            .collect();
        let (items, signals) = match self.batch(requests).await? {
            Written::Done { value, signals } => (value, signals),
            Written::AlreadyDone { signals } => (Vec::new(), signals),
            Written::DryRun(record) => return Ok(Written::DryRun(record)),
        };
        let mut report = MemberAddReport::default();
        for item in items {
            let Some(member) = item
                .id
                .parse::<usize>()
                .ok()
                .and_then(|i| members.get(i))
                .cloned()
            else {
                continue;
            };
            match item.failure {
                None => report.added.push(member),
                Some(f) if f.class == FailureClass::AlreadyDone => {
                    report.already_present.push(member)
                }
                Some(f) => report.failed.push((member, f)),
            }
        }
        Ok(Written::Done {
            value: report,
            signals,
        })
    }
}

fn batch_body(requests: &[BatchRequest]) -> Value {
    let requests: Vec<Value> = requests
        .iter()
        .map(|r| {
            let mut inner = json!({"id": r.id, "method": r.method.as_str(), "url": r.url});
            if let Some(body) = &r.body {
                inner["headers"] = json!({"Content-Type": "application/json"});
                inner["body"] = body.clone();
            }
            inner
        })
        .collect();
    json!({ "requests": requests })
}
