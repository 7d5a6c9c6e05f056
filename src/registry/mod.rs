//! The customer registry and the audit trail: every DNA write through the
//! gateway, in a database (SQLite embedded, or PostgreSQL for several
//! instances), and each customer as last known from those writes.
//!
//! A write goes through here twice. Before DNA is called, [`Registry::intend`]
//! records the intent (operation, target, principal, request id,
//! Idempotency-Key, the normalized request body); if it cannot, nothing is
//! sent (the route answers a 503). After the call, [`Registry::settle`]
//! records the outcome (`succeeded`, `refused` or `unknown`) and brings the
//! customer's row up to date, in one transaction; an outcome that cannot be
//! recorded is retried in the background until it is, and counted.
//!
//! Entries are append-only: no route changes them, and the database's own
//! triggers refuse an update, and a delete younger than the retention
//! (`migrations/*/0001_registry.sql`). One SQL text serves both backends
//! (sqlx's `Any` driver, `$N` parameters, `ON CONFLICT` upserts, row-value
//! comparisons); what differs is in each backend's migration (the triggers,
//! the text search's trigram index) and in the one clause that asks that
//! index (`read::search`).

pub mod read;

use std::{sync::Arc, time::Duration};

use secrecy::ExposeSecret;
use serde_json::Value;
use sqlx::{
    AnyPool, Row,
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
};

pub use read::{
    AuditEntry, AuditFilter, CursorPage, CustomerFilter, CustomerRecord, CustomerStatus,
    LastOperation, OutcomeName,
};

use crate::configuration::RegistrySettings;

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// What went wrong with the database; the route answers a 503 problem.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the registry's database cannot be used: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the registry's migrations failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Url(String),
}

/// Which database the registry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a `[registry] url` names, or why it names none.
    pub fn of_url(url: &str) -> Result<Self, RegistryError> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme);
        match scheme {
            Some("sqlite") => Ok(Self::Sqlite),
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            _ => Err(RegistryError::Url(
                "must start with sqlite:// (a file) or postgres:// (a server)".to_owned(),
            )),
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Self::Sqlite => &SQLITE,
            Self::Postgres => &POSTGRES,
        }
    }
}

/// A DNA write the registry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
pub enum Operation {
    #[strum(serialize = "customer.create")]
    Create,
    #[strum(serialize = "customer.activate")]
    Activate,
    #[strum(serialize = "customer.suspend")]
    Suspend,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub const ALL: [Self; 3] = [Self::Create, Self::Activate, Self::Suspend];
}

/// What is known before the call.
#[derive(Debug, Clone)]
pub struct Intent {
    pub operation: Operation,
    /// Who: the principal's name (`<key name>`, `service:…`, `person:…`).
    pub principal: String,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    /// The caller's `customer_id` (a create).
    pub customer_ref: Option<String>,
    /// DNA's id (activate, suspend).
    pub dna_id: Option<i64>,
    /// The normalized request body; never a secret.
    pub request: Value,
}

/// How a write ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// DNA did it: its id for the customer, and its answer as normalized.
    Succeeded { dna_id: i64, answer: Value },
    /// DNA provably did not act (it refused, or was never reached).
    Refused { status: u16, problem_type: String },
    /// Sent, and the answer was lost: DNA may or may not have acted.
    Unknown { status: u16, problem_type: String },
}

impl Outcome {
    fn name(&self) -> &'static str {
        match self {
            Self::Succeeded { .. } => "succeeded",
            Self::Refused { .. } => "refused",
            Self::Unknown { .. } => "unknown",
        }
    }
}

/// A recorded intent, to settle.
#[derive(Debug)]
pub struct Recorded {
    seq: i64,
    at_ms: i64,
    intent: Intent,
}

impl Recorded {
    /// The audit entry's id.
    pub fn id(&self) -> i64 {
        self.seq
    }
}

/// The registry: a pool on one database.
#[derive(Clone)]
pub struct Registry {
    pool: AnyPool,
    backend: Backend,
    retention_days: Option<u32>,
    migrated: Arc<tokio::sync::OnceCell<()>>,
    retry_every: Duration,
    /// The outcomes being retried in the background ([`Registry::settle`]),
    /// so shutdown can give each a last try and name those that fail.
    retrying: tokio_util::task::TaskTracker,
    /// Where they run: the runtime the registry was made on (the process's
    /// own), not a server worker's, which stops with the server.
    runtime: Option<tokio::runtime::Handle>,
    closing: tokio_util::sync::CancellationToken,
    /// How many of the newest customers the text search reads before it
    /// asks the index (`read::search`); smaller in tests.
    search_window: i64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// An error that the same write will meet again (a constraint the
/// database enforces), unlike a database that is away, busy or full.
fn refused_for_good(error: &RegistryError) -> bool {
    match error {
        RegistryError::Database(sqlx::Error::Database(e)) => {
            !matches!(e.kind(), sqlx::error::ErrorKind::Other)
        }
        _ => false,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Registry {
    /// The pool on `settings.url` (a SQLite file's directory is created
    /// now), connected when first used: a database down at start is
    /// waited for, not fatal, and the registry heals when it returns.
    /// The embedded migrations run on first use ([`Registry::ready`]).
    pub fn new(settings: &RegistrySettings) -> Result<Self, RegistryError> {
        sqlx::any::install_default_drivers();
        let url = settings.url.expose_secret();
        let backend = Backend::of_url(url)?;
        let mut url = url.to_owned();
        if backend == Backend::Sqlite {
            if let Some(dir) = sqlite_path(&url).and_then(|p| p.parent().map(ToOwned::to_owned))
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(&dir).map_err(|e| {
                    RegistryError::Url(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            if !url.contains("mode=") {
                url.push_str(if url.contains('?') { "&" } else { "?" });
                url.push_str("mode=rwc");
            }
        }
        let options: AnyConnectOptions = url.parse()?;
        // Exported from the start at 0, so an alert on their increase sees
        // the first one.
        metrics::counter!("gateway_registry_outcomes_refused_total").increment(0);
        metrics::gauge!("gateway_registry_outcomes_pending").increment(0.0);
        let busy_ms = settings.timeout_ms;
        let pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_millis(settings.timeout_ms))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never wait on the writer; NORMAL: a
                        // commit survives the gateway's death (not the
                        // machine's power); a busy writer is waited for.
                        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {busy_ms};"
                        )))
                        .execute(&mut *conn)
                        .await?;
                        // The planner's statistics refreshed where stale
                        // (SQLite's advice for a long-lived connection; the
                        // upkeep repeats it hourly). It may write: on a full
                        // or read-only disk it fails, and reads must go on.
                        if let Err(error) = sqlx::query("PRAGMA optimize = 0x10002")
                            .execute(&mut *conn)
                            .await
                        {
                            tracing::debug!(%error, "PRAGMA optimize failed");
                        }
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            backend,
            retention_days: settings.audit_retention_days,
            migrated: Arc::new(tokio::sync::OnceCell::new()),
            retry_every: Duration::from_millis(500),
            retrying: tokio_util::task::TaskTracker::new(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            closing: tokio_util::sync::CancellationToken::new(),
            search_window: read::SEARCH_WINDOW,
        })
    }

    /// Runs the embedded migrations and writes the retention the triggers
    /// enforce (when it changed), once; until that has worked, every use
    /// tries it again.
    pub async fn ready(&self) -> Result<(), RegistryError> {
        self.migrated
            .get_or_try_init(|| async {
                self.backend.migrator().run(&self.pool).await?;
                // Written only when it changed: a registry on a read-only
                // or full disk is still read.
                let retention = self.retention_days.map(i64::from);
                let written: Option<i64> = sqlx::query_scalar(
                    "SELECT audit_retention_days FROM registry_settings WHERE id = 1",
                )
                .fetch_one(&self.pool)
                .await?;
                if written != retention {
                    sqlx::query(
                        "UPDATE registry_settings SET audit_retention_days = $1 WHERE id = 1",
                    )
                    .bind(retention)
                    .execute(&self.pool)
                    .await?;
                }
                Ok::<(), RegistryError>(())
            })
            .await
            .map(|_| ())
    }

    /// The hourly upkeep, for a gateway's lifetime: the retention job
    /// (when one is set), and on SQLite `PRAGMA optimize` (the statistics
    /// its planner chooses an index by, refreshed where the tables grew).
    pub fn spawn_upkeep(&self) {
        let days = self.retention_days;
        if days.is_none() && self.backend != Backend::Sqlite {
            return;
        }
        let registry = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                every.tick().await;
                match registry.sweep(days).await {
                    Ok(0) => {}
                    Ok(removed) => {
                        tracing::info!(removed, "audit entries past the retention removed")
                    }
                    Err(error) => tracing::warn!(%error, "the audit retention job failed"),
                }
                if registry.backend == Backend::Sqlite
                    && let Err(error) = sqlx::query("PRAGMA optimize").execute(&registry.pool).await
                {
                    tracing::warn!(%error, "PRAGMA optimize failed");
                }
            }
        });
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs the migrations only (`gateway migrate`).
    pub async fn migrate(settings: &RegistrySettings) -> Result<Backend, RegistryError> {
        let registry = Self::new(settings)?;
        registry.ready().await?;
        registry.pool.close().await;
        Ok(registry.backend)
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> bool {
        self.ready().await.is_ok() && sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Records the intent, before anything is sent. An error means nothing
    /// may be sent.
    pub async fn intend(&self, intent: Intent) -> Result<Recorded, RegistryError> {
        self.ready().await?;
        let started = std::time::Instant::now();
        let at_ms = now_ms();
        // Every row read, to the statement's end: `INSERT … RETURNING` hands
        // its row back before the commit, and with `fetch_one` a commit that
        // then failed (a full disk) went unseen while the write was sent.
        // One statement, not a transaction (two more round trips).
        let rows = sqlx::query(
            "INSERT INTO audit_entries \
             (at_ms, operation, principal, request_id, idempotency_key, customer_ref, dna_id, request) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
        )
        .bind(at_ms)
        .bind(intent.operation.as_str())
        .bind(&intent.principal)
        .bind(&intent.request_id)
        .bind(intent.idempotency_key.as_deref())
        .bind(intent.customer_ref.as_deref())
        .bind(intent.dna_id)
        .bind(intent.request.to_string())
        .fetch_all(&self.pool)
        .await?;
        let seq: i64 = match rows.first() {
            Some(row) => row.try_get("seq")?,
            None => return Err(sqlx::Error::RowNotFound.into()),
        };
        metrics::histogram!("gateway_registry_write_seconds", "step" => "intent")
            .record(started.elapsed().as_secs_f64());
        Ok(Recorded { seq, at_ms, intent })
    }

    /// Records the outcome and the customer's new state, then runs
    /// `recorded` (a route publishes its `customer.*` event there, so a
    /// subscriber that reads the registry on an event finds the change).
    /// When the database cannot take it now, it is retried in the
    /// background until it can (counted in
    /// `gateway_registry_outcome_retries_total`), and `recorded` runs then;
    /// the caller's answer does not wait for that.
    pub async fn settle(
        &self,
        recorded: Recorded,
        outcome: Outcome,
        then: impl FnOnce() + Send + 'static,
    ) {
        let recorded = Arc::new(recorded);
        let started = std::time::Instant::now();
        let at_ms = now_ms();
        let written = self.record_outcome(&recorded, &outcome, at_ms).await;
        metrics::histogram!("gateway_registry_write_seconds", "step" => "outcome")
            .record(started.elapsed().as_secs_f64());
        let Err(error) = written else {
            then();
            return;
        };
        tracing::warn!(audit_id = recorded.seq, %error, "recording an outcome failed; retrying in the background");
        let registry = self.clone();
        metrics::gauge!("gateway_registry_outcomes_pending").increment(1.0);
        /// How the retries ended.
        enum Retried {
            Recorded,
            /// The database refuses it for good (retrying cannot help).
            Refused(RegistryError),
            /// The last try at shutdown failed too.
            ShutDown(RegistryError),
        }
        let retry = async move {
            let mut error = error;
            let mut last = false;
            let ended = loop {
                if refused_for_good(&error) {
                    break Retried::Refused(error);
                }
                if last {
                    break Retried::ShutDown(error);
                }
                metrics::counter!("gateway_registry_outcome_retries_total").increment(1);
                tokio::select! {
                    () = tokio::time::sleep(registry.retry_every) => {}
                    // Shutting down: one last try, now.
                    () = registry.closing.cancelled() => last = true,
                }
                match registry.record_outcome(&recorded, &outcome, at_ms).await {
                    Ok(()) => break Retried::Recorded,
                    Err(again) => {
                        tracing::debug!(audit_id = recorded.seq, error = %again, "an outcome is still unrecorded");
                        error = again;
                    }
                }
            };
            metrics::gauge!("gateway_registry_outcomes_pending").decrement(1.0);
            match ended {
                Retried::Recorded => {
                    tracing::info!(
                        audit_id = recorded.seq,
                        "an outcome recorded after retrying"
                    );
                    then();
                }
                Retried::Refused(error) => {
                    // Retrying cannot help: the entry keeps no outcome
                    // (listed as `unknown`), and it is said loudly.
                    metrics::counter!("gateway_registry_outcomes_refused_total").increment(1);
                    tracing::error!(audit_id = recorded.seq, %error, "the registry's database refuses this outcome; the entry stays without one (unknown)");
                }
                Retried::ShutDown(error) => {
                    // The process is going away with what only it knows:
                    // the line says what DNA answered, so the entry
                    // (listed as `unknown`) can be resolved by hand
                    // (docs/operations.md).
                    let (status, dna_id) = match &outcome {
                        Outcome::Succeeded { dna_id, .. } => (None, Some(*dna_id)),
                        Outcome::Refused { status, .. } | Outcome::Unknown { status, .. } => {
                            (Some(*status), None)
                        }
                    };
                    tracing::error!(
                        audit_id = recorded.seq,
                        outcome = outcome.name(),
                        status,
                        dna_id,
                        %error,
                        "shutting down with this outcome unrecorded; the entry stays unknown"
                    );
                }
            }
        };
        match &self.runtime {
            Some(runtime) => self.retrying.spawn_on(retry, runtime),
            None => self.retrying.spawn(retry),
        };
    }

    /// At shutdown, once no request is left: each outcome still being
    /// retried gets one last try (bounded by `registry.timeout_ms`); one
    /// that still fails is written to the log with what DNA answered. Then
    /// the pool closes (on SQLite, the last connection to close writes the
    /// WAL back into the database file).
    pub async fn close(&self) {
        self.closing.cancel();
        self.retrying.close();
        self.retrying.wait().await;
        self.pool.close().await;
    }

    async fn record_outcome(
        &self,
        recorded: &Recorded,
        outcome: &Outcome,
        at_ms: i64,
    ) -> Result<(), RegistryError> {
        let mut tx = self.pool.begin().await?;
        let (status, problem_type, dna_id, answer) = match outcome {
            Outcome::Succeeded { dna_id, answer } => {
                (None, None, Some(*dna_id), Some(answer.to_string()))
            }
            Outcome::Refused {
                status,
                problem_type,
            }
            | Outcome::Unknown {
                status,
                problem_type,
            } => (
                Some(i64::from(*status)),
                Some(problem_type.as_str()),
                recorded.intent.dna_id,
                None,
            ),
        };
        // A retry after a commit whose answer was lost: already there.
        let inserted = sqlx::query(
            "INSERT INTO audit_outcomes (seq, at_ms, outcome, status, problem_type, dna_id, answer) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (seq) DO NOTHING",
        )
        .bind(recorded.seq)
        .bind(at_ms)
        .bind(outcome.name())
        .bind(status)
        .bind(problem_type)
        .bind(dna_id)
        .bind(answer)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(());
        }
        self.update_customer(&mut tx, recorded, outcome, at_ms)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The customer's row, from the write that just settled.
    async fn update_customer(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        recorded: &Recorded,
        outcome: &Outcome,
        at_ms: i64,
    ) -> Result<(), RegistryError> {
        let intent = &recorded.intent;
        let operation = intent.operation.as_str();
        let by = intent.principal.as_str();
        let outcome_name = outcome.name();
        match (intent.operation, outcome) {
            (Operation::Create, Outcome::Refused { .. }) => {}
            (Operation::Create, Outcome::Succeeded { .. } | Outcome::Unknown { .. }) => {
                let (dna_id, ns_domain, status) = match outcome {
                    Outcome::Succeeded { dna_id, answer } => (
                        Some(*dna_id),
                        answer
                            .get("ns_domain")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        "pending",
                    ),
                    _ => (None, None, "unknown"),
                };
                let field = |name: &str| {
                    intent
                        .request
                        .get(name)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                let search = [field("first_name"), field("last_name"), field("email")]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase();
                // DNA gave this id to this customer: a row that had it
                // before (DNA's ids reused, as the sandbox's are when it
                // restarts and the registry's file stays) no longer has it.
                if let Some(dna_id) = dna_id {
                    sqlx::query(
                        "UPDATE customers SET dna_id = NULL \
                         WHERE dna_id = $1 AND COALESCE(customer_id, '') <> $2",
                    )
                    .bind(dna_id)
                    .bind(intent.customer_ref.as_deref().unwrap_or_default())
                    .execute(&mut **tx)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO customers (dna_id, customer_id, email, first_name, last_name, address, \
                     zipcode, billing_address, billing_zipcode, subreseller_id, ns_domain, status, search, \
                     created_at_ms, created_by, first_seen_ms, updated_at_ms, updated_by, last_seq, \
                     last_operation, last_outcome) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                     $18, $19, $20, $21) \
                     ON CONFLICT (customer_id) DO UPDATE SET \
                     dna_id = COALESCE(excluded.dna_id, customers.dna_id), \
                     ns_domain = COALESCE(excluded.ns_domain, customers.ns_domain), \
                     status = CASE WHEN customers.dna_id IS NOT NULL AND excluded.dna_id IS NULL \
                       THEN customers.status ELSE excluded.status END, \
                     updated_at_ms = excluded.updated_at_ms, updated_by = excluded.updated_by, \
                     last_seq = excluded.last_seq, last_operation = excluded.last_operation, \
                     last_outcome = excluded.last_outcome",
                )
                .bind(dna_id)
                .bind(intent.customer_ref.as_deref())
                .bind(field("email"))
                .bind(field("first_name"))
                .bind(field("last_name"))
                .bind(field("address"))
                .bind(field("zipcode"))
                .bind(field("billing_address"))
                .bind(field("billing_zipcode"))
                .bind(field("subreseller_id"))
                .bind(ns_domain)
                .bind(status)
                .bind(search)
                .bind(recorded.at_ms)
                .bind(by)
                .bind(recorded.at_ms)
                .bind(at_ms)
                .bind(by)
                .bind(recorded.seq)
                .bind(operation)
                .bind(outcome_name)
                .execute(&mut **tx)
                .await?;
            }
            (Operation::Activate | Operation::Suspend, Outcome::Refused { .. }) => {
                // Nothing changed at DNA: the row (if any) says what was tried.
                sqlx::query(
                    "UPDATE customers SET updated_at_ms = $1, updated_by = $2, last_seq = $3, \
                     last_operation = $4, last_outcome = $5 WHERE dna_id = $6",
                )
                .bind(at_ms)
                .bind(by)
                .bind(recorded.seq)
                .bind(operation)
                .bind(outcome_name)
                .bind(intent.dna_id)
                .execute(&mut **tx)
                .await?;
            }
            (Operation::Activate | Operation::Suspend, _) => {
                let status = match (intent.operation, outcome) {
                    (_, Outcome::Unknown { .. }) => "unknown",
                    (Operation::Activate, _) => "active",
                    _ => "suspended",
                };
                sqlx::query(
                    "INSERT INTO customers (dna_id, status, search, first_seen_ms, updated_at_ms, \
                     updated_by, last_seq, last_operation, last_outcome) \
                     VALUES ($1, $2, '', $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (dna_id) DO UPDATE SET status = excluded.status, \
                     updated_at_ms = excluded.updated_at_ms, updated_by = excluded.updated_by, \
                     last_seq = excluded.last_seq, last_operation = excluded.last_operation, \
                     last_outcome = excluded.last_outcome",
                )
                .bind(intent.dna_id)
                .bind(status)
                .bind(at_ms)
                .bind(at_ms)
                .bind(by)
                .bind(recorded.seq)
                .bind(operation)
                .bind(outcome_name)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }

    /// Removes the audit entries older than the retention (none when it is
    /// not set); the database refuses anything younger. Returns how many.
    pub async fn sweep(&self, retention_days: Option<u32>) -> Result<u64, RegistryError> {
        let Some(days) = retention_days else {
            return Ok(0);
        };
        self.ready().await?;
        let cutoff = now_ms().saturating_sub(i64::from(days).saturating_mul(86_400_000));
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM audit_outcomes WHERE seq IN (SELECT seq FROM audit_entries WHERE at_ms < $1)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        let removed = sqlx::query("DELETE FROM audit_entries WHERE at_ms < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(removed)
    }
}

/// The file a `sqlite://` URL names, if any.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| path.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A constraint is refused for good (retrying cannot help); a database
    /// that is away is not.
    #[tokio::test]
    async fn a_constraint_is_for_good_and_an_absent_database_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let settings = RegistrySettings {
            url: format!("sqlite://{}/registry.sqlite3", dir.path().display()).into(),
            timeout_ms: 200,
            ..Default::default()
        };
        let registry = Registry::new(&settings).unwrap();
        registry.ready().await.unwrap();
        let insert = "INSERT INTO customers (dna_id, status, search, first_seen_ms, updated_at_ms, \
                      updated_by, last_seq, last_operation, last_outcome) \
                      VALUES (7, 'active', '', 0, 0, 'x', 0, 'customer.activate', 'succeeded')";
        sqlx::query(insert).execute(&registry.pool).await.unwrap();
        let twice = sqlx::query(insert)
            .execute(&registry.pool)
            .await
            .unwrap_err();
        assert!(refused_for_good(&twice.into()), "a unique constraint");
        registry.pool.close().await;
        let closed = sqlx::query("SELECT 1")
            .execute(&registry.pool)
            .await
            .unwrap_err();
        assert!(!refused_for_good(&closed.into()), "a closed pool");
    }

    #[test]
    fn urls_name_their_backend() {
        assert_eq!(
            Backend::of_url("sqlite://data/r.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::of_url("postgres://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(Backend::of_url("mysql://h/db").is_err());
        assert!(Backend::of_url("data/r.db").is_err());
        assert_eq!(
            sqlite_path("sqlite://data/r.db?mode=rwc"),
            Some("data/r.db".into())
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    proptest::proptest! {
        /// Any text as a URL names a backend or says why not: never a panic.
        #[test]
        fn any_text_is_a_backend_or_an_error(url in ".*") {
            let _ = Backend::of_url(&url);
            let _ = sqlite_path(&url);
        }
    }
}
