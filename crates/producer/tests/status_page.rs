//! The status page over HTTP and in headless Chromium (Debian's `chromium`;
//! `scripts/ensure-chromium` installs it): what it shows of a halted
//! provider, a running full sync, failures and dead letters, escaped.

use entra_sync_core::task::ObjectKind;
use entra_sync_producer::status::{StateGauges, Watched, page};
use entra_sync_store::outcomes::Outcome;
use entra_sync_store::runs::RunTrigger;
use entra_sync_store::testing::TestDatabase;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const HALT_REASON: &str = "mapping 40-department: key <no-such-key> is missing";
const FAILURE: &str = "Graph rejected userPrincipalName \"a&b@contoso.com\"";

fn watched(name: &str) -> Watched {
    Watched {
        name: name.into(),
        full_sync_interval: Duration::from_secs(3600),
    }
}

/// A database where `fabrikam` is halted and `contoso` runs a full sync that
/// did 2 of its 3 users (one failed), with a failure and a dead letter.
async fn state() -> TestDatabase {
    let db = TestDatabase::migrated().await;
    let store = &db.store;
    for name in ["contoso", "fabrikam"] {
        store.register_provider(name, "hash").await.unwrap();
    }
    store.halt("fabrikam", HALT_REASON).await.unwrap();
    let run = store
        .start_run("contoso", RunTrigger::Schedule)
        .await
        .unwrap()
        .id();
    let users: Vec<String> = ["1", "2", "3"].map(String::from).to_vec();
    store
        .plan_run_objects(run, ObjectKind::User, &users)
        .await
        .unwrap();
    store.set_run_phase(run, "users").await.unwrap();
    store
        .finish_run_object(run, ObjectKind::User, "1", false)
        .await
        .unwrap();
    store
        .finish_run_object(run, ObjectKind::User, "2", true)
        .await
        .unwrap();
    store
        .record_outcome(&Outcome {
            provider: "contoso",
            run_id: Some(run),
            kind: ObjectKind::User,
            object_id: "2",
            action: "none",
            result: "failed",
            detail: Some(json!({ "error": FAILURE })),
            attempt: 0,
        })
        .await
        .unwrap();
    store
        .record_dead_letter(
            Some("contoso"),
            Some(ObjectKind::Group),
            Some("g-7"),
            None,
            "gave up after 8 attempts: 503 <ServiceUnavailable>",
        )
        .await
        .unwrap();
    db
}

/// Serves the status page of both providers; its base URL.
async fn serve(db: &TestDatabase) -> String {
    let router = page::router(
        db.store.clone(),
        vec![watched("contoso"), watched("fabrikam")],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/")
}

#[tokio::test]
async fn the_page_shows_halts_progress_failures_and_dead_letters_escaped() {
    let db = state().await;
    let url = serve(&db).await;
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let html = response.text().await.unwrap();
    for shown in [
        "<section id=\"provider-fabrikam\"><h2>fabrikam <span class=\"state halted\">halted</span>",
        "<strong class=\"halt-reason\">mapping 40-department: key &lt;no-such-key&gt; is missing</strong>",
        "<section id=\"provider-contoso\"><h2>contoso <span class=\"state ok\">active</span>",
        "(schedule)",
        "<td>users</td>",
        "2 of 3 (1 failed)",
        "Graph rejected userPrincipalName &quot;a&amp;b@contoso.com&quot;",
        "<span class=\"dead-letter-count\">1</span>",
        "group g-7",
        "gave up after 8 attempts: 503 &lt;ServiceUnavailable&gt;",
        "A full sync starts every 1h.",
    ] {
        assert!(html.contains(shown), "{shown:?} missing from\n{html}");
    }
    assert!(!html.contains("<no-such-key>"), "unescaped:\n{html}");
    assert!(!html.contains("<script"), "no script:\n{html}");
}

#[tokio::test]
async fn the_gauges_read_the_same_state() {
    let db = state().await;
    let gauges = StateGauges::default();
    let mut registry = entra_sync_telemetry::registry();
    gauges.register(&mut registry);
    gauges
        .refresh(&db.store, &[watched("contoso"), watched("fabrikam")])
        .await
        .unwrap();
    let text = entra_sync_telemetry::render(&registry).unwrap();
    for line in [
        "entra_sync_provider_halted{provider=\"fabrikam\"} 1\n",
        "entra_sync_provider_halted{provider=\"contoso\"} 0\n",
        "entra_sync_full_sync_phase{provider=\"contoso\",phase=\"users\"} 1\n",
        "entra_sync_full_sync_phase{provider=\"contoso\",phase=\"idle\"} 0\n",
        "entra_sync_full_sync_phase{provider=\"fabrikam\",phase=\"idle\"} 1\n",
        "entra_sync_full_sync_objects{provider=\"contoso\",state=\"total\"} 3\n",
        "entra_sync_full_sync_objects{provider=\"contoso\",state=\"done\"} 1\n",
        "entra_sync_full_sync_objects{provider=\"contoso\",state=\"failed\"} 1\n",
        "entra_sync_full_sync_interval_seconds{provider=\"contoso\"} 3600.0\n",
        "entra_sync_dead_letters{provider=\"contoso\"} 1\n",
        "entra_sync_dead_letters{provider=\"fabrikam\"} 0\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    assert!(
        !text.contains("entra_sync_full_sync_last_success_timestamp_seconds{"),
        "no successful sync yet:\n{text}"
    );
}

/// `chromium --headless --dump-dom URL`: the DOM after the page loaded.
fn dump_dom(url: &str) -> String {
    let profile =
        std::env::temp_dir().join(format!("entra-sync-chromium-{}", uuid::Uuid::new_v4()));
    let mut command = Command::new("chromium");
    command.args([
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        &format!("--user-data-dir={}", profile.display()),
    ]);
    if running_as_root() {
        // Chromium's sandbox refuses to run as root.
        command.arg("--no-sandbox");
    }
    let output = command
        .args(["--dump-dom", url])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run chromium ({e}); install it with scripts/ensure-chromium")
        });
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_renders_the_page_with_the_halted_providers_reason() {
    let db = state().await;
    let url = serve(&db).await;
    let dom = tokio::task::spawn_blocking(move || dump_dom(&url))
        .await
        .unwrap();
    assert!(dom.contains("<title>entra-sync status</title>"), "{dom}");
    let fabrikam = dom
        .split("<section id=\"provider-fabrikam\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no section for fabrikam in\n{dom}"));
    assert!(
        fabrikam.contains(
            "<strong class=\"halt-reason\">mapping 40-department: key &lt;no-such-key&gt; is missing</strong>"
        ),
        "the halted provider's reason is not shown:\n{dom}"
    );
    assert!(
        !dom.contains("<no-such-key>"),
        "the reason became markup:\n{dom}"
    );
}
