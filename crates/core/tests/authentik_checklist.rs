//! The cases of authentik's own provider tests (`authentik-provider.md` §11)
//! that need no I/O, as core decisions: what is mapped, what is planned, what
//! matches. The Graph and database sides are tested in their own crates.

use entra_sync_core::authentik::{AkGroup, AkUser};
use entra_sync_core::diff::{self, Body};
use entra_sync_core::entra::{EntraGroup, EntraUser};
use entra_sync_core::ids::EntraObjectId;
use entra_sync_core::mapping::defaults::{add_initial_password, add_user_immutable_id};
use entra_sync_core::mapping::{
    AppliesTo, CompiledMapping, Connection, Mapped, Mapper, MappingInput, ProviderInfo, Subject,
};
use entra_sync_core::matching::{Match, Matcher};
use entra_sync_core::password::meets_complexity;
use entra_sync_core::reconcile::{DeleteAction, Desired, Kind, Known, Patch, Plan, plan};
use rand::SeedableRng;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn provider() -> ProviderInfo {
    ProviderInfo {
        name: "entra".into(),
        domains: vec!["goauthentik.io".into()],
        ..Default::default()
    }
}

fn user(name: &str) -> AkUser {
    serde_json::from_value(json!({
        "pk": 7, "username": "jdoe", "name": name, "email": "jdoe@goauthentik.io",
        "is_active": true, "uid": "9f1c0de", "type": "internal"
    }))
    .unwrap()
}

fn group(name: &str) -> AkGroup {
    serde_json::from_value(json!({"pk": uuid::Uuid::from_u128(5), "name": name})).unwrap()
}

fn id(n: u128) -> EntraObjectId {
    EntraObjectId::parse(&uuid::Uuid::from_u128(n).to_string()).unwrap()
}

fn map(mapper: &Mapper, subject: Subject<'_>, connection: Option<Connection<'_>>) -> Mapped {
    let provider = provider();
    mapper
        .map(&MappingInput {
            subject,
            provider: &provider,
            connection,
        })
        .unwrap()
}

fn body(mapped: Mapped) -> Body {
    match mapped {
        Mapped::Body(b) => b,
        Mapped::Skip(by) => panic!("skipped by {by}"),
    }
}

/// The attributes remembered after a create.
fn written_after_create(create: &Body) -> Body {
    diff::written_attributes(create, &["passwordProfile"])
}

/// The plan for a linked object whose last write was `written`, when it is `desired`.
fn plan_linked(
    kind: Kind,
    entra_id: &EntraObjectId,
    written: &Body,
    desired: &Desired,
    action: DeleteAction,
) -> Plan {
    let known = Known {
        entra_id,
        attributes: written,
        suspended: false,
    };
    plan(kind, desired, Some(&known), action)
}

/// The patch planned for a linked object whose last write was `written`, now desired as `desired`.
fn planned_update(kind: Kind, entra_id: &EntraObjectId, written: &Body, desired: Body) -> Patch {
    let desired = Desired::Present(desired);
    match plan_linked(kind, entra_id, written, &desired, DeleteAction::Delete) {
        Plan::Update { patch, .. } => patch,
        other => panic!("a rename is an update, not {other:?}"),
    }
}

/// The plan for a linked object deleted in authentik, under the delete action `action`.
fn planned_deletion(kind: Kind, entra_id: &EntraObjectId, action: DeleteAction) -> Plan {
    plan_linked(kind, entra_id, &Body::new(), &Desired::Deleted, action)
}

/// test_user_create: one POST with the default user body; the password is random, never a hash.
#[test]
fn user_create() {
    let mapper = Mapper::default();
    let mut desired = body(map(&mapper, Subject::User(&user("John Doe")), None));
    add_user_immutable_id(&mut desired, &user("John Doe"));
    let Plan::Create(mut create) = plan(
        Kind::User,
        &Desired::Present(desired),
        None,
        DeleteAction::Delete,
    ) else {
        panic!("a new user is created");
    };
    add_initial_password(&mut create, &mut rand::rngs::StdRng::seed_from_u64(3));
    assert_eq!(create["displayName"], "John Doe");
    assert_eq!(create["accountEnabled"], true);
    assert_eq!(create["mailNickname"], "jdoe");
    assert_eq!(create["userPrincipalName"], "jdoe@goauthentik.io");
    assert_eq!(create["onPremisesImmutableId"], "9f1c0de");
    assert!(meets_complexity(
        create["passwordProfile"]["password"].as_str().unwrap()
    ));
    assert!(
        !written_after_create(&create).contains_key("passwordProfile"),
        "the password is never stored"
    );
}

/// test_user_not_created: with a mapping that skips the user, nothing is written.
#[test]
fn user_not_created_when_a_mapping_skips_it() {
    let skip =
        CompiledMapping::compile("00-skip", AppliesTo::User, "return skip_object()").unwrap();
    let mapper = Mapper::new(vec![skip]);
    assert_eq!(
        map(&mapper, Subject::User(&user("John Doe")), None),
        Mapped::Skip("00-skip".into())
    );
    assert_eq!(
        plan(
            Kind::User,
            &Desired::Skipped("00-skip".into()),
            None,
            DeleteAction::Delete
        ),
        Plan::Skipped("00-skip".into())
    );
}

/// test_user_create_update: a rename after the create is one PATCH of `displayName` only.
#[test]
fn user_create_update() {
    let mapper = Mapper::default();
    let created = written_after_create(&body(map(&mapper, Subject::User(&user("John Doe")), None)));
    let entra_id = id(1);
    let connection = Connection {
        entra_id: &entra_id,
        attributes: &created,
    };
    let renamed = body(map(
        &mapper,
        Subject::User(&user("new name")),
        Some(connection),
    ));
    let patch = planned_update(Kind::User, &entra_id, &created, renamed);
    assert_eq!(patch.entra_id, id(1));
    assert_eq!(
        Value::Object(patch.changes),
        json!({"displayName": "new name"})
    );
}

/// test_user_create_delete, _suspend, _do_nothing: the delete action decides.
#[test]
fn user_delete_actions() {
    let deleted = |action| planned_deletion(Kind::User, &id(1), action);
    assert_eq!(deleted(DeleteAction::Delete), Plan::Delete(id(1)));
    assert_eq!(
        deleted(DeleteAction::Suspend),
        Plan::Suspend(Patch {
            entra_id: id(1),
            changes: json!({"accountEnabled": false})
                .as_object()
                .cloned()
                .unwrap(),
            attributes: json!({"accountEnabled": false})
                .as_object()
                .cloned()
                .unwrap(),
        })
    );
    assert_eq!(deleted(DeleteAction::DoNothing), Plan::Unlink);
}

/// test_sync_task (users): discovery links the Entra user whose mail is the
/// authentik e-mail; entra-sync also matches an unlicensed user by UPN.
#[test]
fn user_discovery() {
    let by_mail: EntraUser = serde_json::from_value(json!({"id": id(1), "mail": "jdoe@goauthentik.io", "userPrincipalName": "x@goauthentik.io"})).unwrap();
    let john = user("John Doe");
    let matcher = |entra: &EntraUser| Matcher::for_users_matching([entra], [john.email.as_str()]);
    assert_eq!(matcher(&by_mail).match_user(&john.email), Match::One(id(1)));
    let by_upn: EntraUser =
        serde_json::from_value(json!({"id": id(2), "userPrincipalName": "JDoe@goauthentik.io"}))
            .unwrap();
    assert_eq!(matcher(&by_upn).match_user(&john.email), Match::One(id(2)));
}

/// test_group_create: one POST of a security group with a slug nickname.
#[test]
fn group_create() {
    let desired = body(map(
        &Mapper::default(),
        Subject::Group(&group("Engineering Team")),
        None,
    ));
    assert_eq!(
        Value::Object(desired.clone()),
        json!({"displayName": "Engineering Team", "mailEnabled": false, "securityEnabled": true, "mailNickname": "engineering-team"})
    );
    assert!(matches!(
        plan(
            Kind::Group,
            &Desired::Present(desired),
            None,
            DeleteAction::Delete
        ),
        Plan::Create(_)
    ));
}

/// test_group_not_created: a group mapping that skips means no POST.
#[test]
fn group_not_created_when_a_mapping_skips_it() {
    let skip = CompiledMapping::compile("skip", AppliesTo::Group, "return skip_object()").unwrap();
    assert_eq!(
        map(&Mapper::new(vec![skip]), Subject::Group(&group("g")), None),
        Mapped::Skip("skip".into())
    );
}

/// test_group_create_update: a rename PATCHes the name and its slug, nothing else.
#[test]
fn group_create_update() {
    let mapper = Mapper::default();
    let created = body(map(&mapper, Subject::Group(&group("Engineering")), None));
    let renamed = body(map(&mapper, Subject::Group(&group("Platform")), None));
    let patch = planned_update(Kind::Group, &id(9), &created, renamed);
    assert_eq!(patch.entra_id, id(9));
    assert_eq!(
        Value::Object(patch.changes),
        json!({"displayName": "Platform", "mailNickname": "platform"})
    );
}

/// test_group_create_delete and _do_nothing.
#[test]
fn group_delete_actions() {
    let deleted = |action| planned_deletion(Kind::Group, &id(9), action);
    assert_eq!(deleted(DeleteAction::Delete), Plan::Delete(id(9)));
    assert_eq!(deleted(DeleteAction::DoNothing), Plan::Unlink);
}

/// test_group_create_member_add and _remove: one add, then one removal, and
/// nothing re-sent for members already written (authentik re-adds every member).
#[test]
fn group_member_add_and_remove() {
    let member: BTreeSet<_> = [id(1)].into();
    let none = BTreeSet::new();
    let add = diff::membership(&member, &none);
    assert_eq!((add.add, add.remove), (vec![vec![id(1)]], vec![]));
    assert!(
        diff::membership(&member, &member).is_empty(),
        "no re-add of existing members"
    );
    let remove = diff::membership(&none, &member);
    assert_eq!(
        (remove.add, remove.remove),
        (Vec::<Vec<EntraObjectId>>::new(), vec![id(1)])
    );
}

/// test_sync_task (groups): discovery links by `displayName`, even when `uniqueName` differs.
#[test]
fn group_discovery() {
    let g: EntraGroup = serde_json::from_value(
        json!({"id": id(3), "displayName": "Engineering", "uniqueName": "eng-7",
            "securityEnabled": true, "mailEnabled": false, "groupTypes": []}),
    )
    .unwrap();
    assert_eq!(
        Matcher::for_groups([&g]).match_group(&group("Engineering")),
        Match::One(id(3))
    );
}
