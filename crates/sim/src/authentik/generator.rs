//! A seeded, deterministic organisation: departments and teams, nested groups,
//! service accounts, inactive users, a filter group, and hostile objects
//! (unicode and over-long names, e-mails on unverified domains, a duplicate e-mail).

use super::state::{SimGroup, SimUser, State, UserType};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgSpec {
    /// The seed: the same spec always builds the same organisation.
    pub seed: u64,
    /// Regular (internal) users, hostile ones included.
    pub users: usize,
    /// Groups, the filter group and hostile ones included (at least 4).
    pub groups: usize,
    /// Service accounts, on top of `users`.
    #[serde(default = "default_service_accounts")]
    pub service_accounts: usize,
    /// Percentage of regular users that are inactive.
    #[serde(default = "default_inactive")]
    pub inactive_percent: u8,
    /// Percentage of regular users in the filter group.
    #[serde(default = "default_filter_percent")]
    pub filter_percent: u8,
    /// The verified e-mail domain.
    #[serde(default = "default_domain")]
    pub domain: String,
}

fn default_service_accounts() -> usize {
    3
}
fn default_inactive() -> u8 {
    5
}
fn default_filter_percent() -> u8 {
    90
}
fn default_domain() -> String {
    "contoso.com".into()
}

impl OrgSpec {
    /// `users` users and `groups` groups with the defaults.
    pub fn new(seed: u64, users: usize, groups: usize) -> Self {
        Self {
            seed,
            users,
            groups,
            service_accounts: default_service_accounts(),
            inactive_percent: default_inactive(),
            filter_percent: default_filter_percent(),
            domain: default_domain(),
        }
    }
}

/// What was generated, with the objects tests look for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgSummary {
    /// Users made (service accounts included).
    pub users: usize,
    /// Groups made.
    pub groups: usize,
    /// Memberships made.
    pub memberships: usize,
    /// The filter group (`entra-sync`).
    pub filter_group: Uuid,
    /// The service accounts' pks.
    pub service_accounts: Vec<i64>,
    /// Inactive users' pks.
    pub inactive: Vec<i64>,
    /// Hostile users: unicode name, over-long name, unverified domain, duplicate e-mails.
    pub hostile_users: Vec<i64>,
    /// Hostile groups: unicode name, over-long name, punctuation.
    pub hostile_groups: Vec<Uuid>,
    /// The e-mail two users share.
    pub duplicate_email: String,
}

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Hedy",
    "Donald",
    "Katherine",
    "John",
    "Sophie",
    "Niklaus",
    "Adele",
    "Leslie",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Knuth",
    "Johnson",
    "Backus",
    "Wilson",
    "Wirth",
    "Goldberg",
    "Lamport",
];
const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Legal",
    "Support",
    "Operations",
    "Research",
];

fn uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// Builds the organisation into `state` (no events, as an import).
pub(crate) fn generate(state: &mut State, spec: &OrgSpec) -> OrgSummary {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let now: DateTime<Utc> = state.now();
    let new_group = |state: &mut State, rng: &mut StdRng, name: String, parents: Vec<Uuid>| {
        let pk = uuid(rng);
        let num_pk = state.alloc_group_num();
        state.groups.insert(
            pk,
            SimGroup {
                pk,
                num_pk,
                name,
                is_superuser: false,
                parents,
                attributes: Default::default(),
                members: Default::default(),
            },
        );
        pk
    };
    let groups = spec.groups.max(4);
    let filter_group = new_group(state, &mut rng, "entra-sync".into(), vec![]);
    let hostile_groups = vec![
        new_group(state, &mut rng, "Équipe Zürich — 東京 🚀".into(), vec![]),
        new_group(state, &mut rng, format!("Long {}", "x".repeat(300)), vec![]),
        new_group(state, &mut rng, "R&D / Ops: \"Core\" <team>".into(), vec![]),
    ];
    let mut departments = Vec::new();
    let mut teams = Vec::new();
    for i in 0..groups - 4 {
        if let Some(department) = DEPARTMENTS.get(i) {
            departments.push(new_group(state, &mut rng, (*department).into(), vec![]));
        } else {
            let parent = departments[rng.random_range(0..departments.len())];
            let parent_name = state.groups[&parent].name.clone();
            teams.push(new_group(
                state,
                &mut rng,
                format!("{parent_name} Team {}", i - DEPARTMENTS.len() + 1),
                vec![parent],
            ));
        }
    }
    let mut summary = OrgSummary {
        users: 0,
        groups,
        memberships: 0,
        filter_group,
        service_accounts: vec![],
        inactive: vec![],
        hostile_users: vec![],
        hostile_groups: hostile_groups.clone(),
        duplicate_email: format!("shared.mailbox@{}", spec.domain),
    };
    let add_user = |state: &mut State,
                    rng: &mut StdRng,
                    username: String,
                    name: String,
                    email: String,
                    user_type: UserType,
                    is_active: bool| {
        let pk = state.alloc_user_pk();
        state.users.insert(
            pk,
            SimUser {
                pk,
                uuid: uuid(rng),
                username,
                name,
                email,
                is_active,
                user_type,
                path: if user_type == UserType::Internal {
                    "users".into()
                } else {
                    "goauthentik.io/service-accounts".into()
                },
                attributes: Default::default(),
                date_joined: now,
                last_updated: now,
                groups: Default::default(),
            },
        );
        pk
    };
    for i in 0..spec.users {
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        let mut username = format!("{}.{}{}", first.to_lowercase(), last.to_lowercase(), i);
        let mut name = format!("{first} {last}");
        let mut email = format!("{username}@{}", spec.domain);
        let hostile = match i {
            0 => {
                name = "Zoë Ångström-Ñúñez 李小龍 🚀".into();
                true
            }
            1 => {
                name = format!("{first} {}", "Verylongsurname".repeat(20));
                username = format!("{}{i}", "u".repeat(140));
                email = format!("{username}@{}", spec.domain);
                true
            }
            2 => {
                email = format!(
                    "{}.{}@unverified.example",
                    first.to_lowercase(),
                    last.to_lowercase()
                );
                true
            }
            3 | 4 => {
                email = summary.duplicate_email.clone();
                true
            }
            _ => false,
        };
        let active = rng.random_range(0..100u8) >= spec.inactive_percent;
        let pk = add_user(
            state,
            &mut rng,
            username,
            name,
            email,
            UserType::Internal,
            active,
        );
        if hostile {
            summary.hostile_users.push(pk);
        }
        if !active {
            summary.inactive.push(pk);
        }
        let mut member_of = vec![];
        if !departments.is_empty() {
            member_of.push(departments[rng.random_range(0..departments.len())]);
        }
        for _ in 0..rng.random_range(0..=2) {
            if !teams.is_empty() {
                member_of.push(teams[rng.random_range(0..teams.len())]);
            }
        }
        if rng.random_range(0..100u8) < spec.filter_percent {
            member_of.push(filter_group);
        }
        if hostile {
            member_of.push(hostile_groups[i % hostile_groups.len()]);
        }
        for g in member_of {
            if state.link(g, pk) {
                summary.memberships += 1;
            }
        }
    }
    for i in 0..spec.service_accounts {
        let pk = add_user(
            state,
            &mut rng,
            format!("svc-ingest-{i}"),
            format!("Ingest service {i}"),
            String::new(),
            UserType::ServiceAccount,
            true,
        );
        if state.link(filter_group, pk) {
            summary.memberships += 1;
        }
        summary.service_accounts.push(pk);
    }
    summary.users = spec.users + spec.service_accounts;
    summary
}
