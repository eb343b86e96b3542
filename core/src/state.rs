//! The state database: what the monitor remembers between cycles and runs,
//! and the outbox of alerts it still has to deliver.
//!
//! It is a SQLite file, `state.sqlite3` in the data directory, in WAL mode
//! so that `kalshi alerts history` and `alerts list` read it while a daemon
//! writes. `alerts.json` stays the list of conditions people edit; this file
//! holds only what the monitor learnt:
//!
//! - per condition: the last value measured, whether it held, when it last
//!   fired, and whether a `once` condition is spent;
//! - per watched market: its last quote, so that a crossing that happened
//!   while the monitor was down is seen at the next check;
//! - every fired alert, written before any notifier is called, with one
//!   delivery row per target instance: the outbox. A delivery is retried
//!   until it succeeds, fails for good, or grows older than its instance's
//!   `max_delivery_age`.
//!
//! Writes of one cycle go in one transaction: a crash leaves the file as it
//! was after the last cycle that committed, never half of one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OpenFlags};
use rust_decimal::Decimal;

use crate::alert::FiredAlert;
use crate::condition::ConditionState;
use crate::market::Market;

/// The database's name inside the data directory.
pub const FILE_NAME: &str = "state.sqlite3";

/// How long a writer waits for another one (the CLI while a daemon
/// commits, say) before giving up.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// The schema this build reads and writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

/// What takes a database of an older schema to this one.
const MIGRATIONS: &[(i64, &str)] = &[(
    2,
    "ALTER TABLE delivery ADD COLUMN leased INTEGER NOT NULL DEFAULT 0;",
)];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS condition_state (
    condition_id  TEXT PRIMARY KEY,
    fingerprint   TEXT NOT NULL,
    last_value    TEXT,
    is_true       INTEGER NOT NULL DEFAULT 0,
    last_fired_at INTEGER,
    spent         INTEGER NOT NULL DEFAULT 0,
    checked_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rearm_request (
    condition_id TEXT PRIMARY KEY,
    requested_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS market_state (
    scope   TEXT NOT NULL,
    ticker  TEXT NOT NULL,
    title   TEXT NOT NULL,
    status  TEXT NOT NULL,
    yes_bid TEXT,
    yes_ask TEXT,
    volume  TEXT,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (scope, ticker)
);
CREATE TABLE IF NOT EXISTS fired_alert (
    id           TEXT PRIMARY KEY,
    condition_id TEXT NOT NULL,
    ticker       TEXT NOT NULL,
    fired_at     INTEGER NOT NULL,
    alert        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fired_alert_by_time ON fired_alert (fired_at);
CREATE TABLE IF NOT EXISTS delivery (
    alert_id        TEXT NOT NULL REFERENCES fired_alert (id) ON DELETE CASCADE,
    instance        TEXT NOT NULL,
    status          TEXT NOT NULL
                    CHECK (status IN ('pending', 'delivered', 'failed', 'gave_up')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    leased          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (alert_id, instance)
);
CREATE INDEX IF NOT EXISTS delivery_due ON delivery (status, next_attempt_at);
";

/// A problem with the state database, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state database {path}: {message}")]
pub struct StateError {
    pub path: String,
    pub message: String,
}

/// Why the database could not be opened or set up, with what to do about
/// it when SQLite's code tells. A disk that takes no write (full, or
/// failing) gives "disk I/O error" or "database or disk is full", and the
/// file is then likely whole: moving it away would lose what the monitor
/// knows for nothing. Only a damaged file is worth moving away.
fn opening_failure(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode;

    match e.sqlite_error_code() {
        Some(ErrorCode::SystemIoFailure | ErrorCode::DiskFull) => format!(
            "{e}: the disk holding the data directory may be full or unwritable; free space \
             on it and start again, and keep the file, which is likely whole"
        ),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => format!(
            "{e}: the file is damaged; move it away and the monitor starts afresh without \
             it, forgetting what fired"
        ),
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            format!(
                "{e}: the database and the directory holding it must be writable (its journal \
                 goes beside it); check the data directory's permissions and whether its file \
                 system is mounted read-only"
            )
        }
        _ => e.to_string(),
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not attempted yet, or failed in a way that may pass: will be tried.
    Pending,
    Delivered,
    /// Failed in a way retrying cannot fix (a bad address, a 400).
    Failed,
    /// Still failing when it grew older than `max_delivery_age`.
    GaveUp,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::GaveUp => "gave_up",
        }
    }

    fn parse(text: &str) -> DeliveryStatus {
        match text {
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            "gave_up" => DeliveryStatus::GaveUp,
            _ => DeliveryStatus::Pending,
        }
    }
}

/// A delivery that is due: the alert and the instance it goes to.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub alert: FiredAlert,
    pub instance: String,
    /// Attempts made so far.
    pub attempts: u32,
    pub fired_at: DateTime<Utc>,
}

/// What one attempt at a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed for good.
    Failed(String),
    /// Failed; try again at this time.
    Retry {
        error: String,
        at: DateTime<Utc>,
    },
    /// Failed, and too old to try again.
    GaveUp(String),
}

/// One delivery as history shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryRecord {
    pub instance: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// When it is tried next; only while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One fired alert and its deliveries.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryEntry {
    pub alert: FiredAlert,
    pub deliveries: Vec<DeliveryRecord>,
}

/// A condition's stored state and the fingerprint it was learnt under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCondition {
    pub fingerprint: String,
    pub state: ConditionState,
}

/// What one cycle changed, written in one transaction.
#[derive(Debug, Default)]
pub struct CycleCommit<'a> {
    /// Whose quotes these are (the exchange environment), so that two
    /// environments sharing a data dir do not mix their markets.
    pub scope: &'a str,
    /// Conditions whose state changed: id, fingerprint, state.
    pub conditions: Vec<(&'a str, String, ConditionState)>,
    pub markets: Vec<&'a Market>,
    /// Fired alerts with the instances each goes to.
    pub fired: Vec<(&'a FiredAlert, Vec<String>)>,
    /// State keys to forget: markets of an event or series that are no
    /// longer open, conditions no longer in the set.
    pub forget_conditions: Vec<&'a str>,
    /// Markets (in `scope`) whose last quote is no longer needed.
    pub forget_markets: Vec<&'a str>,
}

/// The state database.
pub struct StateStore {
    conn: Mutex<Connection>,
    /// The file, or `:memory:`; for messages.
    label: String,
    /// The data directory, for a database kept in a file.
    dir: Option<PathBuf>,
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// A time to wait for, rounded up to the millisecond: a retry stored this
/// way is never made before the time it was given.
fn millis_up(at: DateTime<Utc>) -> i64 {
    let ms = at.timestamp_millis();
    if at.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        ms
    } else {
        ms.saturating_add(1)
    }
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn decimal_text(value: Option<Decimal>) -> Option<String> {
    value.map(|v| v.to_string())
}

fn decimal_of(text: Option<String>) -> Option<Decimal> {
    text.and_then(|t| Decimal::from_str(&t).ok())
}

impl StateStore {
    /// Opens the database in `data_dir`, creating it (private to the user)
    /// and its tables if need be.
    pub fn open(data_dir: &Path) -> Result<StateStore, StateError> {
        let path = data_dir.join(FILE_NAME);
        let fail = |message: String| StateError {
            path: path.display().to_string(),
            message,
        };
        if !path.exists() {
            crate::private::create_dir(data_dir)
                .map_err(|e| fail(format!("cannot create the data directory: {e}")))?;
            // SQLite would create it with the umask's mode; make it private
            // first. Its journal files take the mode of the database.
            crate::private::new_file_options()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| fail(format!("cannot create: {e}")))?;
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| fail(opening_failure(&e)))?;
        let mut store = StateStore::prepare(conn, path.display().to_string())?;
        store.dir = Some(data_dir.to_path_buf());
        Ok(store)
    }

    /// Whether the database's file was removed (with its data directory,
    /// say) while it was open: writes then fail, and only a new file helps.
    pub fn file_is_gone(&self) -> bool {
        self.dir
            .as_ref()
            .is_some_and(|dir| !dir.join(FILE_NAME).exists())
    }

    /// Opens a new database where this one's file was.
    pub fn reopen(&self) -> Result<StateStore, StateError> {
        match &self.dir {
            Some(dir) => StateStore::open(dir),
            None => Ok(StateStore::in_memory()),
        }
    }

    /// Opens the database in `data_dir` if there is one; `None` when no
    /// monitor has run there yet. Creates nothing.
    pub fn open_existing(data_dir: &Path) -> Result<Option<StateStore>, StateError> {
        let path = data_dir.join(FILE_NAME);
        if !path.exists() {
            return Ok(None);
        }
        StateStore::open(data_dir).map(Some)
    }

    /// A database in memory, gone with the process: for replays and tests.
    pub fn in_memory() -> StateStore {
        let conn = Connection::open_in_memory().expect("SQLite opens an in-memory database");
        StateStore::prepare(conn, ":memory:".into())
            .expect("an in-memory database takes the schema")
    }

    fn prepare(conn: Connection, label: String) -> Result<StateStore, StateError> {
        let fail = |e: rusqlite::Error| StateError {
            path: label.clone(),
            message: opening_failure(&e),
        };
        conn.busy_timeout(BUSY_WAIT).map_err(fail)?;
        // WAL lets readers in while the monitor writes; FULL syncs each
        // commit, so a power cut loses no committed alert.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(fail)?;
        if mode != "wal" && mode != "memory" {
            tracing::debug!(database = %label, mode = %mode, "WAL not available; using the default journal");
        }
        // A page cache of 512 KiB rather than SQLite's 2 MiB: the monitor
        // touches a few rows a cycle, and the operating system caches the
        // file anyway; a daemon's memory then levels off sooner and lower.
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -512;",
        )
        .map_err(fail)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(fail)?;
        if version > SCHEMA_VERSION {
            return Err(StateError {
                path: label,
                message: format!(
                    "written by a newer kalshi (schema {version}; this one reads {SCHEMA_VERSION}); \
                     upgrade kalshi, or move the file away to start afresh"
                ),
            });
        }
        if version == 0 {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(fail)?;
        } else if version < SCHEMA_VERSION {
            let steps: String = MIGRATIONS
                .iter()
                .filter(|(to, _)| *to > version)
                .map(|(_, sql)| *sql)
                .collect();
            conn.execute_batch(&format!(
                "BEGIN; {steps} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(fail)?;
        }
        Ok(StateStore {
            conn: Mutex::new(conn),
            label,
            dir: None,
        })
    }

    /// Whether SQLite could open the file for reading only (a file the
    /// user may not write, or an immutable one): a monitor cannot keep its
    /// state there.
    pub fn is_read_only(&self) -> bool {
        self.with(|conn| conn.is_readonly(rusqlite::MAIN_DB))
            .unwrap_or(true)
    }

    /// The file, or `:memory:`.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&mut conn).map_err(|e| StateError {
            path: self.label.clone(),
            message: e.to_string(),
        })
    }

    /// Every condition's stored state, by state key: the condition's id, or
    /// `ID@TICKER` for each market of an event or series condition.
    pub fn conditions(&self) -> Result<HashMap<String, StoredCondition>, StateError> {
        self.with(|conn| {
            let mut query = conn.prepare(
                "SELECT condition_id, fingerprint, last_value, is_true, last_fired_at, spent
                 FROM condition_state",
            )?;
            let rows = query.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    StoredCondition {
                        fingerprint: row.get(1)?,
                        state: ConditionState {
                            last_value: decimal_of(row.get(2)?),
                            is_true: row.get(3)?,
                            last_fired_at: row.get::<_, Option<i64>>(4)?.map(from_millis),
                            spent: row.get(5)?,
                        },
                    },
                ))
            })?;
            rows.collect()
        })
    }

    /// The last quote of every market seen in `scope`, by ticker.
    pub fn markets(&self, scope: &str) -> Result<HashMap<String, Market>, StateError> {
        self.with(|conn| {
            let mut query = conn.prepare(
                "SELECT ticker, title, status, yes_bid, yes_ask, volume
                 FROM market_state WHERE scope = ?1",
            )?;
            let rows = query.query_map([scope], |row| {
                let market = Market {
                    ticker: row.get(0)?,
                    title: row.get(1)?,
                    status: row.get(2)?,
                    event_ticker: String::new(),
                    yes_bid: decimal_of(row.get(3)?),
                    yes_ask: decimal_of(row.get(4)?),
                    volume: decimal_of(row.get(5)?),
                };
                Ok((market.ticker.clone(), market))
            })?;
            rows.collect()
        })
    }

    /// Writes one cycle's changes: condition states, market quotes, and the
    /// fired alerts with a pending delivery per target instance. All or
    /// nothing.
    pub fn commit_cycle(&self, cycle: &CycleCommit<'_>) -> Result<(), StateError> {
        let now = millis(Utc::now());
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                // Forgotten first: a market back on the listing since is
                // written again below.
                let mut forget =
                    tx.prepare_cached("DELETE FROM condition_state WHERE condition_id = ?1")?;
                for key in &cycle.forget_conditions {
                    forget.execute([key])?;
                }
                let mut unquote =
                    tx.prepare_cached("DELETE FROM market_state WHERE scope = ?1 AND ticker = ?2")?;
                for ticker in &cycle.forget_markets {
                    unquote.execute([cycle.scope, ticker])?;
                }
                let mut save = tx.prepare_cached(
                    "INSERT INTO condition_state
                       (condition_id, fingerprint, last_value, is_true, last_fired_at, spent, checked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (condition_id) DO UPDATE SET
                       fingerprint = excluded.fingerprint, last_value = excluded.last_value,
                       is_true = excluded.is_true, last_fired_at = excluded.last_fired_at,
                       spent = excluded.spent, checked_at = excluded.checked_at",
                )?;
                for (id, fingerprint, state) in &cycle.conditions {
                    save.execute(params![
                        id,
                        fingerprint,
                        decimal_text(state.last_value),
                        state.is_true,
                        state.last_fired_at.map(millis),
                        state.spent,
                        now
                    ])?;
                }
                let mut quote = tx.prepare_cached(
                    "INSERT INTO market_state
                       (scope, ticker, title, status, yes_bid, yes_ask, volume, seen_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (scope, ticker) DO UPDATE SET
                       title = excluded.title, status = excluded.status,
                       yes_bid = excluded.yes_bid, yes_ask = excluded.yes_ask,
                       volume = excluded.volume, seen_at = excluded.seen_at",
                )?;
                for market in &cycle.markets {
                    quote.execute(params![
                        cycle.scope,
                        market.ticker,
                        market.title,
                        market.status,
                        decimal_text(market.yes_bid),
                        decimal_text(market.yes_ask),
                        decimal_text(market.volume),
                        now
                    ])?;
                }
                let mut fired = tx.prepare_cached(
                    "INSERT INTO fired_alert (id, condition_id, ticker, fired_at, alert)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                let mut delivery = tx.prepare_cached(
                    "INSERT INTO delivery (alert_id, instance, status, attempts, next_attempt_at, updated_at)
                     VALUES (?1, ?2, 'pending', 0, ?3, ?3)",
                )?;
                for (alert, instances) in &cycle.fired {
                    let record = serde_json::to_string(alert).expect("an alert serialises");
                    fired.execute(params![
                        alert.id,
                        alert.condition_id,
                        alert.ticker,
                        millis(alert.triggered_at),
                        record
                    ])?;
                    for instance in instances {
                        delivery.execute(params![alert.id, instance, now])?;
                    }
                }
            }
            tx.commit()
        })
    }

    /// Takes the pending deliveries to `instances` that are due at `now`
    /// (oldest alert first, at most `limit`, none of `skip`), and leases
    /// them: their next attempt is put at `lease`, in the same transaction,
    /// so that no other pass takes them while they are being made, and a
    /// monitor that dies meanwhile makes them again once the lease is over.
    pub fn take_due(
        &self,
        instances: &[String],
        skip: &[(String, String)],
        now: DateTime<Utc>,
        limit: usize,
        lease: DateTime<Utc>,
    ) -> Result<Vec<DueDelivery>, StateError> {
        let rows = self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let rows = {
                let mut query = tx.prepare_cached(
                    "SELECT f.alert, d.instance, d.attempts, f.fired_at, d.alert_id
                     FROM delivery d JOIN fired_alert f ON f.id = d.alert_id
                     WHERE d.status = 'pending' AND d.next_attempt_at <= ?1
                     ORDER BY f.fired_at, f.id, d.instance",
                )?;
                let rows = query.query_map([millis(now)], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, u32>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, String>(4)?,
                    ))
                })?;
                let mut taken = Vec::new();
                for row in rows {
                    let row = row?;
                    let key = (row.4.clone(), row.1.clone());
                    if !instances.contains(&row.1) || skip.contains(&key) {
                        continue;
                    }
                    taken.push(row);
                    if taken.len() >= limit {
                        break;
                    }
                }
                taken
            };
            {
                let mut hold = tx.prepare_cached(
                    "UPDATE delivery SET next_attempt_at = ?3, leased = 1
                     WHERE alert_id = ?1 AND instance = ?2",
                )?;
                for row in &rows {
                    hold.execute(params![row.4, row.1, millis_up(lease)])?;
                }
            }
            tx.commit()?;
            Ok(rows)
        })?;
        let mut due = Vec::new();
        for (record, instance, attempts, fired_at, _) in rows {
            match serde_json::from_str::<FiredAlert>(&record) {
                Ok(alert) => due.push(DueDelivery {
                    alert,
                    instance,
                    attempts,
                    fired_at: from_millis(fired_at),
                }),
                Err(e) => {
                    tracing::error!(database = %self.label, error = %e, "a stored alert cannot be read; skipped")
                }
            }
        }
        Ok(due)
    }

    /// Makes every delivery leased by a pass that never finished (its
    /// monitor died) due at once. Only the monitor holding the lock calls
    /// this, at its start, when no pass of another can be under way.
    pub fn release_leases(&self) -> Result<usize, StateError> {
        let now = millis(Utc::now());
        self.with(|conn| {
            conn.execute(
                "UPDATE delivery SET next_attempt_at = ?1, leased = 0
                 WHERE leased = 1 AND status = 'pending'",
                [now],
            )
        })
    }

    /// When the next pending delivery to one of `instances` falls due.
    pub fn next_due(&self, instances: &[String]) -> Result<Option<DateTime<Utc>>, StateError> {
        let rows: Vec<(String, i64)> = self.with(|conn| {
            let mut query = conn.prepare_cached(
                "SELECT instance, MIN(next_attempt_at) FROM delivery
                 WHERE status = 'pending' GROUP BY instance",
            )?;
            let rows = query.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })?;
        Ok(rows
            .into_iter()
            .filter(|(instance, _)| instances.contains(instance))
            .map(|(_, at)| from_millis(at))
            .min())
    }

    /// Pending deliveries, by instance: how many, and the last error of
    /// those that failed at least once.
    pub fn pending(&self) -> Result<HashMap<String, (u64, Option<String>)>, StateError> {
        self.with(|conn| {
            let mut query = conn.prepare_cached(
                "SELECT instance, COUNT(*),
                        (SELECT last_error FROM delivery e
                         WHERE e.instance = d.instance AND e.status = 'pending'
                           AND e.last_error IS NOT NULL
                         ORDER BY e.updated_at DESC LIMIT 1)
                 FROM delivery d WHERE status = 'pending' GROUP BY instance",
            )?;
            let rows = query.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, (row.get(1)?, row.get(2)?)))
            })?;
            rows.collect()
        })
    }

    /// Records how an attempt at delivering `alert_id` to `instance` went.
    pub fn record(
        &self,
        alert_id: &str,
        instance: &str,
        outcome: &AttemptOutcome,
    ) -> Result<(), StateError> {
        let now = millis(Utc::now());
        let (status, error, next) = match outcome {
            AttemptOutcome::Delivered => (DeliveryStatus::Delivered, None, now),
            AttemptOutcome::Failed(e) => (DeliveryStatus::Failed, Some(e.as_str()), now),
            AttemptOutcome::GaveUp(e) => (DeliveryStatus::GaveUp, Some(e.as_str()), now),
            AttemptOutcome::Retry { error, at } => (
                DeliveryStatus::Pending,
                Some(error.as_str()),
                millis_up(*at),
            ),
        };
        self.with(|conn| {
            conn.execute(
                "UPDATE delivery SET status = ?3, attempts = attempts + 1,
                   last_error = COALESCE(?4, last_error), next_attempt_at = ?5, updated_at = ?6,
                   leased = 0
                 WHERE alert_id = ?1 AND instance = ?2",
                params![alert_id, instance, status.as_str(), error, next, now],
            )
            .map(drop)
        })
    }

    /// Gives up pending deliveries to instances not in `instances` (removed
    /// from the notifiers file) whose alert fired before `cutoff`. Returns
    /// them as (alert id, instance).
    pub fn give_up_orphans(
        &self,
        instances: &[String],
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StateError> {
        let now = millis(Utc::now());
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let stale: Vec<(String, String)> = {
                let mut query = tx.prepare(
                    "SELECT d.alert_id, d.instance FROM delivery d
                     JOIN fired_alert f ON f.id = d.alert_id
                     WHERE d.status = 'pending' AND f.fired_at < ?1",
                )?;
                let rows = query.query_map([millis(cutoff)], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<(String, String)>>>()?
                    .into_iter()
                    .filter(|(_, instance)| !instances.contains(instance))
                    .collect()
            };
            for (alert, instance) in &stale {
                tx.execute(
                    "UPDATE delivery SET status = 'gave_up', updated_at = ?3,
                       last_error = COALESCE(last_error || '; ', '') || 'no such notifier instance any more'
                     WHERE alert_id = ?1 AND instance = ?2",
                    params![alert, instance, now],
                )?;
            }
            tx.commit()?;
            Ok(stale)
        })
    }

    /// Fired alerts since `since` (all when `None`), oldest first, each
    /// with its deliveries.
    pub fn history(&self, since: Option<DateTime<Utc>>) -> Result<Vec<HistoryEntry>, StateError> {
        let from = since.map_or(i64::MIN, millis);
        self.with(|conn| {
            let mut alerts = conn.prepare(
                "SELECT id, alert FROM fired_alert WHERE fired_at >= ?1 ORDER BY fired_at, id",
            )?;
            let mut deliveries = conn.prepare(
                "SELECT instance, status, attempts, last_error, updated_at, next_attempt_at
                 FROM delivery WHERE alert_id = ?1 ORDER BY instance",
            )?;
            let rows = alerts
                .query_map([from], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut entries = Vec::new();
            for (id, record) in rows {
                let Ok(alert) = serde_json::from_str::<FiredAlert>(&record) else {
                    continue;
                };
                let records = deliveries
                    .query_map([&id], |row| {
                        let status = DeliveryStatus::parse(&row.get::<_, String>(1)?);
                        Ok(DeliveryRecord {
                            instance: row.get(0)?,
                            status,
                            attempts: row.get(2)?,
                            last_error: row.get(3)?,
                            updated_at: from_millis(row.get(4)?),
                            next_attempt_at: (status == DeliveryStatus::Pending)
                                .then(|| row.get::<_, i64>(5).map(from_millis))
                                .transpose()?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                entries.push(HistoryEntry {
                    alert,
                    deliveries: records,
                });
            }
            Ok(entries)
        })
    }

    /// Forgets that a condition fired: a spent `once` condition fires
    /// again, a `rearm` one fires at its next check that holds, a cooldown
    /// starts afresh. A running monitor picks the request up at its next
    /// cycle. Returns whether there was anything to forget (it had fired,
    /// or holds now).
    pub fn rearm(&self, condition_id: &str) -> Result<bool, StateError> {
        let now = millis(Utc::now());
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let changed = tx.execute(
                // An event or series condition keeps one state per market,
                // under `ID@TICKER` (see `condition::state_key`).
                "UPDATE condition_state SET is_true = 0, spent = 0, last_fired_at = NULL
                 WHERE (condition_id = ?1
                        OR substr(condition_id, 1, length(?1) + 1) = ?1 || '@')
                   AND (is_true = 1 OR spent = 1 OR last_fired_at IS NOT NULL)",
                [condition_id],
            )?;
            tx.execute(
                "INSERT INTO rearm_request (condition_id, requested_at) VALUES (?1, ?2)
                 ON CONFLICT (condition_id) DO UPDATE SET requested_at = excluded.requested_at",
                params![condition_id, now],
            )?;
            tx.commit()?;
            Ok(changed > 0)
        })
    }

    /// Takes the rearm requests made since the last call (by `alerts
    /// rearm`, while this monitor ran).
    pub fn take_rearm_requests(&self) -> Result<Vec<String>, StateError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let ids = {
                let mut query = tx.prepare("SELECT condition_id FROM rearm_request")?;
                let rows = query.query_map([], |row| row.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            if !ids.is_empty() {
                tx.execute("DELETE FROM rearm_request", [])?;
            }
            tx.commit()?;
            Ok(ids)
        })
    }

    /// Deletes fired alerts older than `cutoff` whose deliveries are all
    /// finished, with their deliveries. Returns how many alerts went.
    pub fn forget_before(&self, cutoff: DateTime<Utc>) -> Result<usize, StateError> {
        self.with(|conn| {
            conn.execute(
                "DELETE FROM fired_alert WHERE fired_at < ?1 AND NOT EXISTS
                   (SELECT 1 FROM delivery d WHERE d.alert_id = fired_alert.id
                    AND d.status = 'pending')",
                [millis(cutoff)],
            )
        })
    }

    /// Makes every write fail, as a full disk does (tests only).
    #[cfg(test)]
    pub(crate) fn refuse_writes(&self, refuse: bool) {
        self.with(|conn| conn.pragma_update(None, "query_only", refuse))
            .expect("query_only is a pragma SQLite knows");
    }

    /// Checks the file's integrity (`PRAGMA quick_check`).
    pub fn check(&self) -> Result<(), StateError> {
        let verdict: String =
            self.with(|conn| conn.query_row("PRAGMA quick_check", [], |row| row.get(0)))?;
        if verdict == "ok" {
            Ok(())
        } else {
            Err(StateError {
                path: self.label.clone(),
                message: format!("integrity check failed: {verdict}"),
            })
        }
    }

    /// The database file in `data_dir`.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(FILE_NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(condition_id: &str) -> FiredAlert {
        let mut alert = FiredAlert::sample("state test");
        alert.id = uuid::Uuid::new_v4().to_string();
        alert.condition_id = condition_id.to_string();
        alert
    }

    /// What a pass would take at `at`, leased only until `at` itself: the
    /// deliveries' next attempt stays due, so the call changes nothing.
    fn due(store: &StateStore, instances: &[String], at: DateTime<Utc>) -> Vec<DueDelivery> {
        store.take_due(instances, &[], at, 100, at).unwrap()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_cycle_commits_states_quotes_and_the_outbox_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let fired = alert("c1");
        let market = Market {
            ticker: "T".into(),
            title: "A market".into(),
            status: "active".into(),
            event_ticker: String::new(),
            yes_bid: Some(Decimal::new(4, 1)),
            yes_ask: Some(Decimal::new(4500, 4)),
            volume: None,
        };
        let state = ConditionState {
            last_value: Some(Decimal::new(425, 3)),
            is_true: true,
            last_fired_at: Some(fired.triggered_at),
            spent: false,
        };
        store
            .commit_cycle(&CycleCommit {
                scope: "prod",
                conditions: vec![("c1", "fp".into(), state.clone())],
                markets: vec![&market],
                fired: vec![(&fired, names(&["a", "b"]))],
                ..CycleCommit::default()
            })
            .unwrap();
        drop(store);

        let store = StateStore::open(dir.path()).unwrap();
        let conditions = store.conditions().unwrap();
        assert!(conditions["c1"].state.is_true);
        assert_eq!(conditions["c1"].state.last_value, state.last_value);
        assert_eq!(store.markets("prod").unwrap()["T"], market);
        assert!(store.markets("demo").unwrap().is_empty());
        // An instance that is not configured gets nothing.
        let now = Utc::now();
        assert_eq!(due(&store, &names(&["a"]), now).len(), 1);
        // Past the lease that call took (up to the next millisecond).
        let both = due(
            &store,
            &names(&["a", "b"]),
            now + chrono::Duration::seconds(1),
        );
        assert_eq!(both.len(), 2);
        assert_eq!(both[0].alert, fired);
    }

    #[test]
    fn attempts_move_deliveries_along() {
        let store = StateStore::in_memory();
        let fired = alert("c1");
        store
            .commit_cycle(&CycleCommit {
                scope: "prod",
                fired: vec![(&fired, names(&["a", "b", "c"]))],
                ..Default::default()
            })
            .unwrap();
        let later = Utc::now() + chrono::Duration::seconds(60);
        store
            .record(&fired.id, "a", &AttemptOutcome::Delivered)
            .unwrap();
        store
            .record(
                &fired.id,
                "b",
                &AttemptOutcome::Retry {
                    error: "503".into(),
                    at: later,
                },
            )
            .unwrap();
        store
            .record(&fired.id, "c", &AttemptOutcome::Failed("400 bad".into()))
            .unwrap();
        let all = names(&["a", "b", "c"]);
        assert!(due(&store, &all, Utc::now()).is_empty());
        // Stored rounded up: never due before the time given.
        let next = store.next_due(&all).unwrap().unwrap();
        assert!(next >= later && next - later < chrono::Duration::milliseconds(1));
        assert!(due(&store, &all, later - chrono::Duration::milliseconds(1)).is_empty());
        let taken = due(&store, &all, next);
        assert_eq!((taken.len(), taken[0].attempts), (1, 1));

        let history = store.history(None).unwrap();
        let statuses: Vec<_> = history[0]
            .deliveries
            .iter()
            .map(|d| {
                (
                    d.instance.as_str(),
                    d.status,
                    d.attempts,
                    d.last_error.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            statuses,
            [
                ("a", DeliveryStatus::Delivered, 1, None),
                ("b", DeliveryStatus::Pending, 1, Some("503")),
                ("c", DeliveryStatus::Failed, 1, Some("400 bad")),
            ]
        );
        assert_eq!(store.pending().unwrap()["b"], (1, Some("503".to_string())));
    }

    #[test]
    fn rearm_clears_the_state_and_leaves_a_request() {
        let store = StateStore::in_memory();
        let spent = ConditionState {
            spent: true,
            is_true: true,
            last_fired_at: Some(Utc::now()),
            ..Default::default()
        };
        store
            .commit_cycle(&CycleCommit {
                scope: "prod",
                conditions: vec![("c1", "fp".into(), spent)],
                ..Default::default()
            })
            .unwrap();
        assert!(store.rearm("c1").unwrap());
        assert!(!store.rearm("unknown").unwrap());
        assert_eq!(
            store.conditions().unwrap()["c1"].state,
            ConditionState::default()
        );
        let mut taken = store.take_rearm_requests().unwrap();
        taken.sort();
        assert_eq!(taken, ["c1", "unknown"]);
        assert!(store.take_rearm_requests().unwrap().is_empty());
    }

    #[test]
    fn orphans_and_old_history_are_cleared() {
        let store = StateStore::in_memory();
        let fired = alert("c1");
        store
            .commit_cycle(&CycleCommit {
                scope: "prod",
                fired: vec![(&fired, names(&["gone", "kept"]))],
                ..Default::default()
            })
            .unwrap();
        let future = Utc::now() + chrono::Duration::seconds(5);
        let orphans = store.give_up_orphans(&names(&["kept"]), future).unwrap();
        assert_eq!(orphans, [(fired.id.clone(), "gone".to_string())]);
        // A pending delivery keeps its alert.
        assert_eq!(store.forget_before(future).unwrap(), 0);
        store
            .record(&fired.id, "kept", &AttemptOutcome::Delivered)
            .unwrap();
        assert_eq!(store.forget_before(future).unwrap(), 1);
        assert!(store.history(None).unwrap().is_empty());
        store.check().unwrap();
    }

    #[test]
    fn a_disk_that_takes_no_write_and_a_damaged_file_get_their_own_advice() {
        use rusqlite::ffi;

        let disk = "the disk holding the data directory may be full or unwritable";
        let damaged = "the file is damaged; move it away";
        for (code, advice) in [
            (ffi::SQLITE_IOERR, Some(disk)),
            (ffi::SQLITE_IOERR_WRITE, Some(disk)),
            (ffi::SQLITE_IOERR_FSYNC, Some(disk)),
            (ffi::SQLITE_FULL, Some(disk)),
            (ffi::SQLITE_CORRUPT, Some(damaged)),
            (ffi::SQLITE_NOTADB, Some(damaged)),
            (ffi::SQLITE_CANTOPEN, None),
            (ffi::SQLITE_READONLY, None),
            (ffi::SQLITE_BUSY, None),
        ] {
            let e = rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some("why".into()));
            let message = opening_failure(&e);
            assert!(message.starts_with("why"), "{code}: {message}");
            for any in [disk, damaged] {
                assert_eq!(
                    message.contains(any),
                    advice == Some(any),
                    "{code}: {message}"
                );
            }
        }
    }

    #[test]
    fn a_newer_schema_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        let err = StateStore::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("newer kalshi"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        drop(StateStore::open(dir.path()).unwrap());
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
