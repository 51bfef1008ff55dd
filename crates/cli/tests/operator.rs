//! The operator's commands as processes: `status` (table, JSON, `--check`),
//! `why`, `sync --object`, `sync --wait`'s progress lines and `dead-letters`,
//! all without the Graph and authentik secrets; and the schema check.

mod common;

use common::run;
use entra_sync_core::drift::Observed;
use entra_sync_core::task::ObjectKind;
use entra_sync_sim::authentik::Mode;
use entra_sync_store::outcomes::Outcome;
use entra_sync_store::testing::TestDatabase;
use entra_sync_tests::{ProviderSpec, Stack};
use std::process::Command;

/// Removes the secret files the stack wrote: what runs after needs none.
/// The stack's configuration, copied where none of its secret files are
/// (the running services keep theirs, which they read again at each use).
fn config_without_secrets(stack: &Stack) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("entra-sync-op-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::copy(stack.config_path(), &config).unwrap();
    for file in ["client-secret", "authentik-token", "webhook-secret"] {
        assert!(!dir.join(file).exists());
    }
    config
}

#[tokio::test]
async fn a_database_behind_this_build_says_run_migrate() {
    let db = TestDatabase::empty().await;
    let dir = std::env::temp_dir().join(format!("entra-sync-op-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n[authentik]\nurl = \"http://127.0.0.1:9\"\n\
             token_env = \"UNSET_TOKEN\"\nwebhook_secret_env = \"UNSET_SECRET\"\n\
             [[providers]]\nname = \"p\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"UNSET_CLIENT\"\n",
            db.url_with_schema()
        ),
    )
    .unwrap();
    for args in [
        &["status"][..],
        &["sync", "--provider", "p"],
        &["resume", "--provider", "p"],
        &["why", "--provider", "p", "user:1"],
        &["dead-letters", "list", "--provider", "p"],
    ] {
        let (code, _, stderr) = run(&config, args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("schema is at version none")
                && stderr.contains("run entra-sync migrate"),
            "{args:?}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn status_why_sync_object_and_dead_letters_need_only_the_database_and_broker() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let sim = &stack.authentik.sim;
    let pk = sim.create_user(entra_sync_tests::new_user("alice"), Mode::Silent);
    let staff = sim.create_group(entra_sync_tests::new_group("staff"), Mode::Silent);
    let services = stack.services().await;
    let config = config_without_secrets(&stack);
    let config = config.as_path();
    let store = &stack.db.store;

    // sync --wait, not on a terminal: one line per phase.
    let (code, out, err) = run(
        config,
        &["sync", "--provider", "p", "--wait", "--timeout", "60"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": phase "), "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "no escape codes off a terminal: {out:?}"
    );

    // On a terminal (a pseudo-terminal from script(1)): a live bar instead.
    let terminal = Command::new("script")
        .args([
            "-qec",
            &format!(
                "{} sync --provider p --wait --timeout 60",
                env!("CARGO_BIN_EXE_entra-sync")
            ),
            "/dev/null",
        ])
        .env("ENTRA_SYNC_CONFIG", config)
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .output()
        .expect("run script(1)");
    let screen = String::from_utf8_lossy(&terminal.stdout);
    assert_eq!(terminal.status.code(), Some(0), "{screen}");
    assert!(screen.contains(" objects, "), "the bar: {screen:?}");
    assert!(
        !screen.contains(": phase "),
        "no phase lines on a terminal: {screen:?}"
    );

    // why, for a group: its link and the members last written.
    let (code, out, err) = run(
        config,
        &["why", "--provider", "p", &format!("group:{staff}")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("group {staff} of provider p")),
        "{out}"
    );
    assert!(
        out.contains("link:      Entra id ") && out.contains("members last written: 0"),
        "{out}"
    );
    assert!(out.contains("displayName = \"staff\""), "{out}");
    assert!(
        out.contains("entra:     not observed since the last write"),
        "{out}"
    );
    // A full sync that observes the group renamed in the portal: why shows it.
    let group = entra_sync_core::ids::AkGroupPk(staff);
    let renamed = serde_json::json!({ "displayName": "renamed in the portal" });
    let at = store.clock().await.unwrap();
    store
        .observe(
            "p",
            at,
            &[(
                group,
                Observed::Listed(renamed.as_object().unwrap().clone()),
            )],
        )
        .await
        .unwrap();
    let (code, out, err) = run(
        config,
        &["why", "--provider", "p", &format!("group:{staff}")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "entra, as the last full sync observed it:\n  displayName = \"renamed in the portal\""
        ),
        "{out}"
    );

    // sync --object: a direct task, its outcome printed.
    let bob = sim.create_user(entra_sync_tests::new_user("bob"), Mode::Silent);
    let (code, out, err) = run(
        config,
        &[
            "sync",
            "--provider",
            "p",
            "--object",
            &format!("user:{bob}"),
            "--timeout",
            "60",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    // Created by this task, or already by the watermark follower: either way its outcome.
    let line = out.lines().last().unwrap();
    assert!(
        line == format!("user {bob}: created (ok)")
            || line == format!("user {bob}: unchanged (ok)"),
        "{out}"
    );
    let (code, _, err) = run(config, &["sync", "--provider", "p", "--object", "user:x"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("\"user:x\" is not user:<pk> or group:<uuid>"),
        "{err}"
    );

    // why: the link, the body last written, the decision and the outcomes.
    let (code, out, err) = run(config, &["why", "--provider", "p", &format!("user:{pk}")]);
    assert_eq!(code, 0, "{err}");
    let link = store
        .link::<entra_sync_core::ids::AkUserPk>("p", entra_sync_core::ids::AkUserPk(pk))
        .await
        .unwrap()
        .expect("alice is linked");
    assert!(
        out.contains(&format!(
            "link:      Entra id {}, created, active",
            link.entra_id
        )),
        "{out}"
    );
    assert!(
        out.contains("userPrincipalName = \"alice@contoso.com\""),
        "{out}"
    );
    assert!(out.contains("decision:  in scope and in step ("), "{out}");
    assert!(out.contains("provider:  running (not halted)"), "{out}");
    let (_, out, _) = run(config, &["why", "--provider", "p", "user:999999"]);
    assert!(out.contains("link:      none"), "{out}");
    assert!(out.contains("never synced"), "{out}");

    // A failure and a halt, as the table, JSON and --check show them.
    store
        .record_outcome(&Outcome {
            provider: "p",
            run_id: None,
            kind: ObjectKind::User,
            object_id: "77",
            action: "none",
            result: "failed",
            detail: Some(serde_json::json!({ "error": "Graph refused the UPN" })),
            attempt: 1,
        })
        .await
        .unwrap();
    store
        .halt("p", "the app lost User.ReadWrite.All")
        .await
        .unwrap();
    let (code, out, _) = run(config, &["status"]);
    assert_eq!(code, 0, "printed, even halted: {out}");
    assert!(
        out.starts_with("authentik 2026.8"),
        "the release first: {out}"
    );
    let mut table = out.lines().skip(1);
    let header = table.next().unwrap();
    assert!(
        header.starts_with("PROVIDER  STATE   LAST FULL SYNC"),
        "{out}"
    );
    let row = table.next().unwrap();
    assert!(row.starts_with("p         HALTED  done "), "{out}");
    assert!(out.contains("p is HALTED since "), "{out}");
    assert!(out.contains("the app lost User.ReadWrite.All"), "{out}");
    assert!(
        out.contains("user:77  failed  Graph refused the UPN"),
        "{out}"
    );
    let (code, _, _) = run(config, &["status", "--check"]);
    assert_eq!(code, 1, "--check: a halted provider exits 1");
    let (code, out, _) = run(config, &["status", "--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["providers"][0]["halted"], true);
    let (_, out, _) = run(config, &["why", "--provider", "p", "user:77"]);
    assert!(out.contains("provider:  HALTED since"), "{out}");
    assert!(
        out.contains("not synced: the last attempt failed: Graph refused the UPN"),
        "{out}"
    );
    store.resume("p").await.unwrap();
    let (code, _, _) = run(config, &["status", "--check"]);
    assert_eq!(code, 0);

    // dead-letters: list, drop one, retry the other (it comes back as a direct task).
    for object in [pk.to_string(), "424242".to_owned()] {
        let task = entra_sync_core::task::Task::new(
            "p",
            entra_sync_core::task::ObjectRef::parse(ObjectKind::User, &object).unwrap(),
            entra_sync_core::task::TaskReason::Event,
        );
        store
            .record_dead_letter(
                Some("p"),
                Some(ObjectKind::User),
                Some(&object),
                Some(serde_json::from_slice(&task.encode()).unwrap()),
                "out of attempts: Graph answered 503 eight times",
            )
            .await
            .unwrap();
    }
    let letters = store.dead_letters("p", None).await.unwrap();
    let (code, out, _) = run(config, &["dead-letters", "list", "--provider", "p"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ID"), "{out}");
    assert!(
        out.contains(&format!("user:{pk}")) && out.contains("user:424242"),
        "{out}"
    );
    assert!(out.contains("Graph answered 503 eight times"), "{out}");
    let drop_id = letters[1].id.to_string();
    let (code, out, _) = run(
        config,
        &["dead-letters", "drop", "--provider", "p", "--id", &drop_id],
    );
    assert_eq!(code, 0);
    assert!(out.contains("dropped 1 dead letter(s)"), "{out}");
    let (code, _, err) = run(
        config,
        &["dead-letters", "drop", "--provider", "p", "--id", &drop_id],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("no dead letter with id {drop_id}")),
        "{err}"
    );
    let before = store.last_log_id().await.unwrap();
    let (code, out, err) = run(config, &["dead-letters", "retry", "--provider", "p"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 task(s) published"), "{out}");
    assert!(store.dead_letters("p", None).await.unwrap().is_empty());
    stack
        .eventually(
            "the retried task reached the worker",
            std::time::Duration::from_secs(30),
            || async {
                !store
                    .object_log_after("p", &["user"], &pk.to_string(), before)
                    .await
                    .unwrap()
                    .is_empty()
            },
        )
        .await;
    services.stop().await;
}
