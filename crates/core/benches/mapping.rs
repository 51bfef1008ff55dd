//! Per-object cost of property mappings and diffing.
//!
//! Targets: `Mapper::map` with the default mapping plus one realistic custom
//! mapping ≤ 20 µs per object; `diff::patch` on a realistic user body ≤ 5 µs.
//!
//! `cargo bench -p entra-sync-core --bench mapping -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, criterion_main};
use entra_sync_core::authentik::AkUser;
use entra_sync_core::diff::{self, Body};
use entra_sync_core::ids::EntraObjectId;
use entra_sync_core::mapping::{
    AppliesTo, CompiledMapping, Connection, Mapped, Mapper, MappingInput, ProviderInfo, Subject,
};
use serde_json::json;
use std::hint::black_box;

/// A realistic custom user mapping, as an authentik admin writes one.
const REALISTIC: &str = include_str!("../testdata/realistic-user-mapping.py");

fn user() -> AkUser {
    serde_json::from_value(json!({
        "pk": 1042,
        "username": "adele.vance",
        "name": "Adele Vance",
        "email": "adele.vance@contoso.com",
        "is_active": true,
        "uid": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "type": "internal",
        "groups": [
            "00000000-0000-0000-0000-000000000001",
            "00000000-0000-0000-0000-000000000002",
            "00000000-0000-0000-0000-000000000003",
        ],
        "attributes": {
            "department": "Sales",
            "title": "Account Executive",
            "phone": "+47 22 00 00 00",
            "settings": {"locale": "nb_NO", "theme": "dark"},
        },
        "path": "users",
    }))
    .expect("a valid user")
}

fn provider() -> ProviderInfo {
    ProviderInfo {
        name: "entra".into(),
        tenant_id: "7b1c2d3e-0000-4000-8000-00000000000a".into(),
        client_id: "7b1c2d3e-0000-4000-8000-00000000000b".into(),
        domains: vec!["contoso.com".into(), "contoso.onmicrosoft.com".into()],
    }
}

fn mapping(c: &mut Criterion) {
    let user = user();
    let provider = provider();
    let id = EntraObjectId::parse("5f2c1b3a-0000-4000-8000-000000000001").expect("an id");
    // What we wrote last time: the realistic mapping's result.
    let last: Body = serde_json::from_value(json!({
        "displayName": "Adele Vance", "accountEnabled": true, "mailNickname": "adele.vance",
        "userPrincipalName": "adele.vance@contoso.com", "givenName": "Adele", "surname": "Vance",
        "department": "Sales", "jobTitle": "Account Executive", "companyName": "Contoso",
        "onPremisesImmutableId": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    }))
    .expect("a body");
    let input = MappingInput {
        subject: Subject::User(&user),
        provider: &provider,
        connection: Some(Connection {
            entra_id: &id,
            attributes: &last,
        }),
    };
    let custom = CompiledMapping::compile("50-realistic", AppliesTo::User, REALISTIC)
        .expect("the mapping compiles");
    // The fixed cost of a call that reads every parameter and computes nothing.
    let nothing = CompiledMapping::compile(
        "nothing",
        AppliesTo::User,
        "if user and provider and connection and request:\n    return None",
    )
    .expect("the mapping compiles");
    let defaults_only = Mapper::new(Vec::new());
    c.bench_function("evaluate/all-parameters-no-work", |b| {
        b.iter(|| nothing.evaluate(black_box(&input)))
    });
    c.bench_function("evaluate/realistic", |b| {
        b.iter(|| custom.evaluate(black_box(&input)))
    });
    let mapper = Mapper::new(vec![custom]);
    assert!(matches!(mapper.map(&input), Ok(Mapped::Body(_))));

    c.bench_function("map/defaults", |b| {
        b.iter(|| defaults_only.map(black_box(&input)))
    });
    c.bench_function("map/defaults+realistic", |b| {
        b.iter(|| mapper.map(black_box(&input)))
    });
    let runaway = CompiledMapping::compile(
        "runaway",
        AppliesTo::User,
        "n = 0\nfor i in range(1000000000):\n    n = i\nreturn {'n': n}",
    )
    .expect("the mapping compiles");
    c.benchmark_group("evaluate")
        .sample_size(10)
        .bench_function("runaway-loop-until-tick-limit", |b| {
            b.iter(|| runaway.evaluate(black_box(&input)).expect_err("a limit"))
        });
    c.bench_function("compile/realistic", |b| {
        b.iter(|| CompiledMapping::compile("50-realistic", AppliesTo::User, black_box(REALISTIC)))
    });
}

fn patch(c: &mut Criterion) {
    let user = user();
    let provider = provider();
    let custom = CompiledMapping::compile("50-realistic", AppliesTo::User, REALISTIC)
        .expect("the mapping compiles");
    let input = MappingInput {
        subject: Subject::User(&user),
        provider: &provider,
        connection: None,
    };
    let Ok(Mapped::Body(desired)) = Mapper::new(vec![custom]).map(&input) else {
        panic!("the user maps to a body");
    };
    // Last written: the same body with one changed property and one extra.
    let mut last = desired.clone();
    last.insert("jobTitle".into(), json!("Sales Intern"));
    last.insert("onPremisesImmutableId".into(), json!(user.uid));
    assert_eq!(diff::patch(&desired, &last, &[]).len(), 1);

    c.bench_function("diff/patch", |b| {
        b.iter(|| {
            diff::patch(
                black_box(&desired),
                black_box(&last),
                black_box(&["passwordProfile", "onPremisesImmutableId"]),
            )
        })
    });
}

/// The benchmark group, private so that criterion's generated function needs no docs.
mod group {
    criterion::criterion_group!(benches, super::mapping, super::patch);
}
criterion_main!(group::benches);
