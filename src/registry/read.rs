//! Reading the registry: customers as last known, one customer with its
//! history, and the audit trail; filtered, newest first, one page at a
//! time behind an opaque cursor that stays stable while rows are added
//! (a page ends at a row; the next starts strictly before it).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
// Only constants and numbered placeholders are formatted into the SQL
// texts here (`AssertSqlSafe`); every value a caller sent is bound.
use sqlx::{AssertSqlSafe, Row, any::AnyRow};
use utoipa::ToSchema;

use super::{Registry, RegistryError};

mod search;

pub(super) use search::SEARCH_WINDOW;

/// One page, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CursorPage<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next (older) page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A customer's status as last known. `unknown`: the last write's outcome
/// was lost (DNA may or may not have made it); see the customer's history.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum CustomerStatus {
    Pending,
    Active,
    Suspended,
    Unknown,
}

/// How a recorded write ended. `unknown`: sent and the answer lost, or no
/// outcome recorded (`outcome_at` is then `null`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum OutcomeName {
    Succeeded,
    Refused,
    Unknown,
}

/// The last write the gateway saw for a customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastOperation {
    /// The audit entry's id.
    pub audit_id: i64,
    /// `customer.create`, `customer.activate` or `customer.suspend`.
    pub operation: String,
    pub outcome: OutcomeName,
}

/// A customer as last known from the writes through the gateway.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 6519, "customer_id": "CUST-2001", "status": "suspended",
    "email": "steve@example.com", "first_name": "Steve", "last_name": "Harris",
    "address": "126 Mendoza Avenue, apt 7A", "zipcode": "33134", "billing_address": null,
    "billing_zipcode": null, "subreseller_id": null, "ns_domain": "harris6519.res.nexogy.com",
    "created_at": "2026-11-23T18:30:10.120Z", "created_by": "frontend",
    "updated_at": "2026-11-25T09:01:44.007Z", "updated_by": "person:alice",
    "last_operation": {"audit_id": 42, "operation": "customer.suspend", "outcome": "succeeded"}}))]
pub struct CustomerRecord {
    /// DNA's id; `null` while a create's outcome is unknown.
    pub id: Option<i64>,
    /// Your id, as sent to create; `null` for a customer the gateway only
    /// saw activated or suspended.
    pub customer_id: Option<String>,
    pub status: CustomerStatus,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub address: Option<String>,
    pub zipcode: Option<String>,
    pub billing_address: Option<String>,
    pub billing_zipcode: Option<String>,
    pub subreseller_id: Option<String>,
    pub ns_domain: Option<String>,
    /// When the create was sent (RFC 3339, UTC); `null` when the gateway
    /// never saw it.
    pub created_at: Option<String>,
    /// Who created it: a key's name, `service:<client_id>` or `person:<sub>`.
    pub created_by: Option<String>,
    pub updated_at: String,
    pub updated_by: String,
    pub last_operation: LastOperation,
}

/// One write through the gateway: its intent, and its outcome once recorded.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 42, "at": "2026-11-25T09:01:43.880Z", "operation": "customer.suspend",
    "principal": "person:alice", "request_id": "0b9c0b8e-4f5e-4a59-9d4e-2f3c1f0c7a10",
    "idempotency_key": null, "customer_id": null, "dna_id": 6519, "request": {},
    "outcome": "succeeded", "outcome_at": "2026-11-25T09:01:44.007Z", "status": null,
    "problem_type": null, "answer": {"status": "suspended", "changed_at": "2026-11-25T09:01:44+00:00"}}))]
pub struct AuditEntry {
    pub id: i64,
    /// When the intent was recorded (before DNA was called).
    pub at: String,
    pub operation: String,
    /// Who: a key's name, `service:<client_id>` or `person:<sub>`.
    pub principal: String,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    /// The caller's customer id (a create).
    pub customer_id: Option<String>,
    /// DNA's id: the target (activate, suspend) or the created customer's.
    pub dna_id: Option<i64>,
    /// The request as the gateway normalized it.
    #[schema(value_type = Object)]
    pub request: Value,
    pub outcome: OutcomeName,
    /// When the outcome was recorded; `null` when none was.
    pub outcome_at: Option<String>,
    /// The status the gateway answered, for `refused` and `unknown`.
    pub status: Option<i64>,
    /// The problem type the gateway answered, for `refused` and `unknown`.
    pub problem_type: Option<String>,
    /// DNA's answer as the gateway normalized it (`succeeded`).
    #[schema(value_type = Option<Object>)]
    pub answer: Option<Value>,
}

/// The filters of `GET /v1/customers`, parsed.
#[derive(Debug, Default)]
pub struct CustomerFilter {
    pub status: Option<CustomerStatus>,
    pub customer_id: Option<String>,
    pub email: Option<String>,
    pub created_by: Option<String>,
    /// Words found in the name or email, case-insensitively.
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: u32,
}

/// The filters of `GET /v1/audit`, parsed.
#[derive(Debug, Default)]
pub struct AuditFilter {
    pub principal: Option<String>,
    pub operation: Option<String>,
    pub outcome: Option<OutcomeName>,
    /// DNA's id, or the caller's customer id.
    pub customer: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub cursor: Option<String>,
    pub limit: u32,
}

/// A cursor the caller sent that this registry never made.
#[derive(Debug, thiserror::Error)]
#[error("is not a cursor this list gave")]
pub struct BadCursor;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Cursor(#[from] BadCursor),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<sqlx::Error> for ReadError {
    fn from(e: sqlx::Error) -> Self {
        Self::Registry(e.into())
    }
}

fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `a.b` (two integers) as an opaque token.
fn encode_cursor(parts: &[i64]) -> String {
    let text = parts
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    URL_SAFE_NO_PAD.encode(text)
}

fn decode_cursor<const N: usize>(token: &str) -> Result<[i64; N], BadCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| BadCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| BadCursor)?;
    let numbers: Vec<i64> = text
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| BadCursor)?;
    numbers.try_into().map_err(|_| BadCursor)
}

/// A bound value of a query built from filters.
#[derive(Clone)]
enum Arg {
    Text(String),
    Int(i64),
}

/// A `WHERE` built clause by clause, numbering its `$N`.
#[derive(Default, Clone)]
struct Where {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Where {
    /// The next placeholder, for `arg`.
    fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    fn push(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn bind<'q>(
        &'q self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        for arg in &self.args {
            query = match arg {
                Arg::Text(text) => query.bind(text.as_str()),
                Arg::Int(int) => query.bind(*int),
            };
        }
        query
    }
}

/// Rows strictly after the cursor's position in the order `(a DESC, b
/// DESC)`: a page ends at a row, the next starts before it.
fn before(w: &mut Where, cursor: Option<&str>, [a, b]: [&str; 2]) -> Result<(), BadCursor> {
    if let Some(cursor) = cursor {
        let [x, y] = decode_cursor::<2>(cursor)?;
        let x = w.arg(Arg::Int(x));
        let y = w.arg(Arg::Int(y));
        w.push(format!("({a} < {x} OR ({a} = {x} AND {b} < {y}))"));
    }
    Ok(())
}

/// A page from up to `limit + 1` rows: the first `limit`, and when there
/// were more, a cursor at the last of them (its columns `keys`).
fn page_of<T, const N: usize>(
    rows: &[AnyRow],
    limit: u32,
    item_of: fn(&AnyRow) -> Result<T, sqlx::Error>,
    keys: [&str; N],
) -> Result<CursorPage<T>, sqlx::Error> {
    let limit = limit as usize;
    let items = rows
        .iter()
        .take(limit)
        .map(item_of)
        .collect::<Result<Vec<_>, _>>()?;
    let last = limit.checked_sub(1).and_then(|i| rows.get(i));
    let next_cursor = match last {
        Some(last) if rows.len() > limit => Some(encode_cursor(
            &keys
                .iter()
                .map(|key| last.try_get::<i64, _>(*key))
                .collect::<Result<Vec<_>, _>>()?,
        )),
        _ => None,
    };
    Ok(CursorPage { items, next_cursor })
}

const CUSTOMER_COLUMNS: &str = "row_id, dna_id, customer_id, status, email, \
    first_name, last_name, address, zipcode, billing_address, billing_zipcode, subreseller_id, \
    ns_domain, created_at_ms, created_by, updated_at_ms, updated_by, last_seq, last_operation, \
    last_outcome";

const AUDIT_SELECT: &str = "SELECT e.seq, e.at_ms, e.operation, e.principal, e.request_id, \
    e.idempotency_key, e.customer_ref, COALESCE(o.dna_id, e.dna_id) AS dna_id, e.request, \
    o.at_ms AS outcome_at_ms, COALESCE(o.outcome, 'unknown') AS outcome, o.status, \
    o.problem_type, o.answer \
    FROM audit_entries e LEFT JOIN audit_outcomes o ON o.seq = e.seq";

fn customer_of(row: &AnyRow) -> Result<CustomerRecord, sqlx::Error> {
    let text = |name: &str| row.try_get::<Option<String>, _>(name);
    let status: String = row.try_get("status")?;
    let outcome: String = row.try_get("last_outcome")?;
    Ok(CustomerRecord {
        id: row.try_get("dna_id")?,
        customer_id: text("customer_id")?,
        status: status.parse().unwrap_or(CustomerStatus::Unknown),
        email: text("email")?,
        first_name: text("first_name")?,
        last_name: text("last_name")?,
        address: text("address")?,
        zipcode: text("zipcode")?,
        billing_address: text("billing_address")?,
        billing_zipcode: text("billing_zipcode")?,
        subreseller_id: text("subreseller_id")?,
        ns_domain: text("ns_domain")?,
        created_at: row.try_get::<Option<i64>, _>("created_at_ms")?.map(time),
        created_by: text("created_by")?,
        updated_at: time(row.try_get("updated_at_ms")?),
        updated_by: row.try_get("updated_by")?,
        last_operation: LastOperation {
            audit_id: row.try_get("last_seq")?,
            operation: row.try_get("last_operation")?,
            outcome: outcome.parse().unwrap_or(OutcomeName::Unknown),
        },
    })
}

fn audit_of(row: &AnyRow) -> Result<AuditEntry, sqlx::Error> {
    let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    let outcome: String = row.try_get("outcome")?;
    Ok(AuditEntry {
        id: row.try_get("seq")?,
        at: time(row.try_get("at_ms")?),
        operation: row.try_get("operation")?,
        principal: row.try_get("principal")?,
        request_id: row.try_get("request_id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        customer_id: row.try_get("customer_ref")?,
        dna_id: row.try_get("dna_id")?,
        request: json(row.try_get("request")?).unwrap_or(Value::Null),
        outcome: outcome.parse().unwrap_or(OutcomeName::Unknown),
        outcome_at: row.try_get::<Option<i64>, _>("outcome_at_ms")?.map(time),
        status: row.try_get("status")?,
        problem_type: row.try_get("problem_type")?,
        answer: json(row.try_get("answer")?),
    })
}

impl Registry {
    /// A page of customers, newest first.
    pub async fn customers(
        &self,
        filter: &CustomerFilter,
    ) -> Result<CursorPage<CustomerRecord>, ReadError> {
        self.ready().await?;
        let mut w = Where::default();
        if let Some(status) = filter.status {
            let p = w.arg(Arg::Text(<&str>::from(status).to_owned()));
            w.push(format!("status = {p}"));
        }
        if let Some(id) = &filter.customer_id {
            let p = w.arg(Arg::Text(id.clone()));
            w.push(format!("customer_id = {p}"));
        }
        if let Some(email) = &filter.email {
            let p = w.arg(Arg::Text(email.to_lowercase()));
            w.push(format!("lower(email) = {p}"));
        }
        if let Some(by) = &filter.created_by {
            let p = w.arg(Arg::Text(by.clone()));
            w.push(format!("created_by = {p}"));
        }
        // Customers are in the order the registry first recorded them.
        let after = (filter.cursor.as_deref())
            .map(|cursor| decode_cursor::<1>(cursor).map(|[row_id]| row_id))
            .transpose()?;
        let words: Vec<&str> = filter
            .q
            .as_deref()
            .map(|q| q.split_whitespace().collect())
            .unwrap_or_default();
        let rows = if words.is_empty() {
            (self.newest_customers(w, "customers", "row_id", after, filter.limit)).await?
        } else {
            self.search_customers(w, after, &words, filter.limit)
                .await?
        };
        Ok(page_of(&rows, filter.limit, customer_of, ["row_id"])?)
    }

    /// Up to `limit + 1` customers under `w` from `from` (the table, or
    /// the text search's join), newest first: by `key` descending (the
    /// customers' `row_id`, or what it is joined to), below `after` (a
    /// cursor's position).
    async fn newest_customers(
        &self,
        mut w: Where,
        from: &str,
        key: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        if let Some(after) = after {
            let p = w.arg(Arg::Int(after));
            w.push(format!("{key} < {p}"));
        }
        let n = w.arg(Arg::Int(i64::from(limit).saturating_add(1)));
        let sql = format!(
            "SELECT {CUSTOMER_COLUMNS} FROM {from} {} ORDER BY {key} DESC LIMIT {n}",
            w.sql()
        );
        w.bind(sqlx::query(AssertSqlSafe(sql.clone())))
            .fetch_all(&self.pool)
            .await
    }

    /// One customer by DNA's id, with its history (newest first, at most
    /// `history` entries).
    pub async fn customer(
        &self,
        dna_id: i64,
        history: u32,
    ) -> Result<Option<(CustomerRecord, Vec<AuditEntry>)>, ReadError> {
        self.ready().await?;
        let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE dna_id = $1");
        let Some(row) = sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(dna_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let customer = customer_of(&row)?;
        let sql = format!(
            "{AUDIT_SELECT} WHERE e.seq IN (SELECT seq FROM audit_entries WHERE dna_id = $1 \
             UNION SELECT seq FROM audit_outcomes WHERE dna_id = $1 \
             UNION SELECT seq FROM audit_entries WHERE customer_ref = $2) \
             ORDER BY e.at_ms DESC, e.seq DESC LIMIT $3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(dna_id)
            .bind(customer.customer_id.clone().unwrap_or_default())
            .bind(i64::from(history))
            .fetch_all(&self.pool)
            .await?;
        let entries = rows.iter().map(audit_of).collect::<Result<_, _>>()?;
        Ok(Some((customer, entries)))
    }

    /// A page of the audit trail, newest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<CursorPage<AuditEntry>, ReadError> {
        self.ready().await?;
        let mut w = Where::default();
        if let Some(principal) = &filter.principal {
            let p = w.arg(Arg::Text(principal.clone()));
            w.push(format!("e.principal = {p}"));
        }
        if let Some(operation) = &filter.operation {
            let p = w.arg(Arg::Text(operation.clone()));
            w.push(format!("e.operation = {p}"));
        }
        // A lookup per entry while walking the newest first: both planners
        // keep that walk (SQLite turned `o.outcome = …` into a scan of every
        // outcome and a sort; PostgreSQL could not weigh a COALESCE and
        // joined everything). No outcome recorded is unknown.
        match filter.outcome {
            Some(OutcomeName::Unknown) => w.push(
                "NOT EXISTS (SELECT 1 FROM audit_outcomes x WHERE x.seq = e.seq \
                 AND x.outcome <> 'unknown')"
                    .to_owned(),
            ),
            Some(outcome) => {
                let p = w.arg(Arg::Text(<&str>::from(outcome).to_owned()));
                w.push(format!(
                    "EXISTS (SELECT 1 FROM audit_outcomes x WHERE x.seq = e.seq AND x.outcome = {p})"
                ));
            }
            None => {}
        }
        if let Some(customer) = &filter.customer {
            let p = w.arg(Arg::Text(customer.clone()));
            // One indexed lookup per way an entry names a customer, not an
            // OR across the join (which no index serves).
            match customer.parse::<i64>() {
                Ok(id) => {
                    let n = w.arg(Arg::Int(id));
                    w.push(format!(
                        "e.seq IN (SELECT seq FROM audit_entries WHERE customer_ref = {p} \
                         UNION SELECT seq FROM audit_entries WHERE dna_id = {n} \
                         UNION SELECT seq FROM audit_outcomes WHERE dna_id = {n})"
                    ));
                }
                Err(_) => w.push(format!("e.customer_ref = {p}")),
            }
        }
        if let Some(since) = filter.since_ms {
            let p = w.arg(Arg::Int(since));
            w.push(format!("e.at_ms >= {p}"));
        }
        if let Some(until) = filter.until_ms {
            let p = w.arg(Arg::Int(until));
            w.push(format!("e.at_ms < {p}"));
        }
        before(&mut w, filter.cursor.as_deref(), ["e.at_ms", "e.seq"])?;
        let limit = w.arg(Arg::Int(i64::from(filter.limit).saturating_add(1)));
        let sql = format!(
            "{AUDIT_SELECT} {} ORDER BY e.at_ms DESC, e.seq DESC LIMIT {limit}",
            w.sql()
        );
        let rows = w
            .bind(sqlx::query(AssertSqlSafe(sql.clone())))
            .fetch_all(&self.pool)
            .await?;
        Ok(page_of(&rows, filter.limit, audit_of, ["at_ms", "seq"])?)
    }

    /// Every audit entry recorded in `[since, until)`, oldest first (by time, then id), each
    /// handed to `each` (for `gateway audit export`), in batches.
    pub async fn export(
        &self,
        since_ms: i64,
        until_ms: i64,
        mut each: impl FnMut(&AuditEntry) -> std::io::Result<()>,
    ) -> Result<u64, RegistryError> {
        self.ready().await?;
        let sql = format!(
            "{AUDIT_SELECT} WHERE e.at_ms >= $1 AND e.at_ms < $2 \
             AND (e.at_ms > $3 OR (e.at_ms = $3 AND e.seq > $4)) ORDER BY e.at_ms, e.seq LIMIT 1000"
        );
        let mut after = (i64::MIN, 0_i64);
        let mut count = 0_u64;
        loop {
            let rows = sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(since_ms)
                .bind(until_ms)
                .bind(after.0)
                .bind(after.1)
                .fetch_all(&self.pool)
                .await?;
            if rows.is_empty() {
                return Ok(count);
            }
            for row in &rows {
                let entry = audit_of(row)?;
                each(&entry).map_err(|e| RegistryError::Url(format!("writing the export: {e}")))?;
                after = (row.try_get("at_ms")?, entry.id);
                count = count.saturating_add(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        let token = encode_cursor(&[1_700_000_000_000, 42]);
        assert_eq!(
            decode_cursor::<2>(&token).ok(),
            Some([1_700_000_000_000, 42])
        );
        assert!(
            decode_cursor::<1>(&token).is_err(),
            "two numbers are not one"
        );
        for stranger in ["", "x", "!!", "MQ", "MS4y.3"] {
            assert!(decode_cursor::<2>(stranger).is_err(), "{stranger}");
        }
    }

    proptest::proptest! {
        /// Any text as a cursor is a position or a refusal: never a panic.
        #[test]
        fn any_text_is_a_cursor_or_refused(text in ".*") {
            let _ = decode_cursor::<2>(&text);
            let _ = decode_cursor::<1>(&text);
        }

        #[test]
        fn any_position_round_trips(a in proptest::prelude::any::<i64>(), b in proptest::prelude::any::<i64>()) {
            proptest::prop_assert_eq!(decode_cursor::<2>(&encode_cursor(&[a, b])).ok(), Some([a, b]));
        }
    }
}
