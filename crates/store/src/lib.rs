//! PostgreSQL state of entra-sync: links, runs, per-object outcomes, cursors,
//! halts, the deletion guard's count, the shared scope and the shared rate budget. The schema lives in `migrations/`.

pub mod authentik;
pub mod budget;
pub mod cursor;
pub mod dead_letters;
pub mod guard;
pub mod leader;
pub mod link_refs;
pub mod links;
pub mod locks;
pub mod migrate;
pub mod observations;
pub mod outcomes;
pub mod overview;
pub mod providers;
pub mod recovery;
pub mod retention;
pub mod runs;
pub mod scope;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tls;
pub mod wake;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres_rustls::MakeRustlsConnect;

/// A database failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The connection URL does not parse.
    #[error("invalid database url: {0}")]
    Url(String),
    /// No connection could be taken from the pool.
    #[error("cannot connect to PostgreSQL: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The TLS settings cannot be used (`sslrootcert` unreadable, no CA found).
    #[error("TLS to PostgreSQL: {0}")]
    Tls(String),
    /// A query failed.
    #[error("database error while {doing}: {source}")]
    Query {
        /// What was being done.
        doing: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A stored value does not parse; the database was edited by hand.
    #[error("corrupt row in the database: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether PostgreSQL could not be reached (no connection, a connection
    /// lost, the server shutting down or starting), as opposed to a query
    /// that failed on its own: waiting for the database is not a failed attempt.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::Query { source, .. } => {
                source.is_closed()
                    || source.code().is_some_and(|code| {
                        let code = code.code();
                        // Class 08: connection exception; 57P01-57P03: shutdown, crash, starting.
                        code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
                    })
                    || std::error::Error::source(source).is_some_and(|e| e.is::<std::io::Error>())
            }
            Self::Url(_) | Self::Tls(_) | Self::Migration(_) | Self::Corrupt(_) => false,
        }
    }
}

/// Wraps a query error with what was being done.
pub(crate) fn query_error(doing: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::Query { doing, source }
}

/// The connection pool, and the one entry point to the state.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Prefixes advisory-lock keys, so databases or schemas sharing one
    /// PostgreSQL server (tests, several installations) never block each other.
    lock_namespace: String,
    /// The connection settings, for a second pool and the wake listener.
    config: tokio_postgres::Config,
    /// TLS as the URL's `sslmode` and `sslrootcert` ask ([`tls`]).
    tls: MakeRustlsConnect,
    /// Connections that hold object locks, apart from `pool`, so tasks that
    /// hold a lock and need another connection can never starve each other.
    lock_pool: Option<Pool>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl Store {
    /// Opens a pool of at most `max_size` connections to `url`. `search_path`
    /// selects a schema (tests use one per test).
    pub fn connect(
        url: &str,
        max_size: usize,
        search_path: Option<&str>,
    ) -> Result<Self, StoreError> {
        let (mut config, tls, _) = tls::connect_settings(url)?;
        if let Some(schema) = search_path {
            config.options(format!("-c search_path={schema}"));
        }
        config.application_name("entra-sync");
        // The schema may come from `search_path` or from `options` in the URL.
        let lock_namespace = format!(
            "{}/{}",
            config.get_dbname().unwrap_or("postgres"),
            config.get_options().unwrap_or("public")
        );
        Ok(Self {
            pool: pool(&config, &tls, max_size)?,
            lock_namespace,
            config,
            tls,
            lock_pool: None,
        })
    }

    /// This store with a separate pool of `size` connections for object locks
    /// (one per task a worker runs at once).
    pub fn with_lock_pool(&self, size: usize) -> Result<Self, StoreError> {
        Ok(Self {
            lock_pool: Some(pool(&self.config, &self.tls, size)?),
            ..self.clone()
        })
    }

    /// A connection to hold an object lock on.
    pub(crate) async fn lock_conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        match &self.lock_pool {
            Some(pool) => Ok(pool.get().await?),
            None => self.conn().await,
        }
    }

    /// An advisory-lock key for `name`, unique to this database and schema.
    pub(crate) fn lock_key(&self, name: &str) -> String {
        format!("entra-sync/{}/{name}", self.lock_namespace)
    }

    /// A pooled connection.
    pub async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// The rows `sql` returns, each turned into a `T` as it streams in: a
    /// query of 100,000 rows never holds them all (a group of 90,000
    /// members reads that many links).
    pub(crate) async fn rows_as<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        doing: &'static str,
        of_row: impl Fn(&tokio_postgres::Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        use futures_util::TryStreamExt;
        let conn = self.conn().await?;
        let rows = conn
            .query_raw(sql, params.iter().copied())
            .await
            .map_err(query_error(doing))?;
        let mut rows = std::pin::pin!(rows);
        let mut all = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(query_error(doing))? {
            all.push(of_row(&row)?);
        }
        Ok(all)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.conn()
            .await?
            .simple_query("SELECT 1")
            .await
            .map_err(query_error("pinging the database"))?;
        Ok(())
    }
}

/// A pool of at most `max_size` connections.
fn pool(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    max_size: usize,
) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config.clone(),
        tls.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(std::time::Duration::from_secs(30)))
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Url(e.to_string()))
}
