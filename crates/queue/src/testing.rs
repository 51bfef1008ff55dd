//! One RabbitMQ vhost per test, made and removed through the management API.

/// The broker tests use: `ENTRA_SYNC_TEST_AMQP_HOST` or 127.0.0.1, as guest.
fn host() -> String {
    std::env::var("ENTRA_SYNC_TEST_AMQP_HOST").unwrap_or_else(|_| "127.0.0.1".to_owned())
}

/// A fresh vhost, deleted when dropped.
pub struct TestVhost {
    /// The vhost's name.
    pub name: String,
    /// The broker's AMQP address, `host:port`.
    amqp: String,
    /// The broker's management API, `http://host:port`.
    management: String,
}

impl TestVhost {
    /// Creates a vhost on the shared broker and gives `guest` full rights on it.
    pub async fn new() -> Self {
        Self::on(
            &format!("{}:5672", host()),
            &format!("http://{}:15672", host()),
        )
        .await
    }

    /// Creates a vhost on the broker at `amqp` (`host:port`) whose management
    /// API is at `management`, and gives `guest` full rights on it.
    pub async fn on(amqp: &str, management: &str) -> Self {
        let name = format!("t-{}", uuid::Uuid::new_v4().simple());
        let http = reqwest::Client::new();
        let base = format!("{management}/api");
        let created = http
            .put(format!("{base}/vhosts/{name}"))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .expect("RabbitMQ management API (run scripts/ensure-services)");
        assert!(
            created.status().is_success(),
            "create vhost: {}",
            created.status()
        );
        let granted = http
            .put(format!("{base}/permissions/{name}/guest"))
            .basic_auth("guest", Some("guest"))
            .json(&serde_json_body())
            .send()
            .await
            .expect("grant permissions");
        assert!(
            granted.status().is_success(),
            "grant permissions: {}",
            granted.status()
        );
        Self {
            name,
            amqp: amqp.to_owned(),
            management: management.to_owned(),
        }
    }

    /// The AMQP URL of the vhost.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/{}", self.amqp, self.name)
    }

    /// The broker's management API, e.g. `http://127.0.0.1:15672`.
    pub fn management_url(&self) -> &str {
        &self.management
    }
}

fn serde_json_body() -> std::collections::HashMap<&'static str, &'static str> {
    [("configure", ".*"), ("write", ".*"), ("read", ".*")]
        .into_iter()
        .collect()
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let url = format!("{}/api/vhosts/{}", self.management, self.name);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(
                reqwest::Client::new()
                    .delete(url)
                    .basic_auth("guest", Some("guest"))
                    .send(),
            )
            .ok()
        })
        .join();
    }
}
