//! `--postgres URL` and `--sql NAME=QUERY`: what people otherwise learn from
//! `psql -c 'SELECT count(*) FROM pg_stat_activity'` and friends, over one
//! connection, each finding its own record so a monitor can tell them apart:
//! `postgres` (reachable, latency, version, size), `pg_connections`,
//! `pg_sessions` (old transactions, idle in transaction, longest query),
//! `pg_replication` (standbys only), `pg_dead_tuples`, `pg_dump` (a backup
//! would work) and one `sql` record per query.
//!
//! A health check must not change the database: the session's transactions
//! default to read only, and each `--sql` query must be one statement
//! (checked by preparing it, which runs nothing) and runs in a read-only
//! transaction that has already taken its snapshot, so it can neither
//! write nor switch to read-write, and is rolled back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ops_backup::pg::{server_version, PgDump, PgTarget, Version};
use ops_shared::record::{human_bytes, Check};

use crate::level::{metrics, record, Level};

/// Standby replay lag: warn and crit thresholds, in seconds.
const LAG_WARN: f64 = 300.0;
const LAG_CRIT: f64 = 1800.0;
/// Dead tuples worth a VACUUM: share of a table, and at least this many.
const DEAD_RATIO_WARN: f64 = 0.2;
const DEAD_TUPLES_MIN: i64 = 1000;

pub struct Options {
    pub url: String,
    pub sql: Vec<(String, String)>,
    /// --sql-fix repairs, by the name of their check.
    pub fixes: Vec<(String, String)>,
    pub sql_crit: bool,
    pub idle_warn: Duration,
    pub timeout: Duration,
}

pub fn check(options: &Options) -> Vec<Check> {
    let target = match PgTarget::parse(&options.url) {
        Ok(target) => target,
        Err(err) => {
            let shown = ops_shared::redact::redact(&options.url);
            return vec![record(
                "postgres",
                &shown,
                Level::Unknown,
                err.to_string(),
                metrics([]),
            )];
        }
    };
    let location = target.location();
    let started = Instant::now();
    let mut client = match target.connect() {
        Ok(client) => client,
        Err(err) => {
            let mut checks = vec![record(
                "postgres",
                &location,
                Level::Crit,
                err.to_string(),
                metrics([("up", 0.0)]),
            )];
            for (name, _) in &options.sql {
                checks.push(record(
                    "sql",
                    name,
                    Level::Unknown,
                    format!("not run: {location} cannot be reached"),
                    metrics([]),
                ));
            }
            return checks;
        }
    };
    let connect_ms = round(started.elapsed().as_secs_f64() * 1000.0);
    let mut session = Session {
        client: &mut client,
        location: &location,
    };
    let timeout_ms = options.timeout.as_millis();
    let _ = session.client.batch_execute(&format!(
        "SET statement_timeout = {timeout_ms}; SET default_transaction_read_only = on"
    ));
    let mut checks = Vec::new();
    let server = server_version(&target, session.client).ok();
    checks.push(session.overview(connect_ms, server.as_ref()));
    checks.push(session.connections());
    checks.push(session.sessions(options.idle_warn));
    checks.extend(session.replication());
    checks.push(session.dead_tuples());
    checks.push(dump_compatibility(&location, server.as_ref()));
    for (name, query) in &options.sql {
        let repairable = options.fixes.iter().any(|(fix, _)| fix == name);
        checks.push(session.sql(name, query, options.sql_crit, repairable));
    }
    checks
}

pub(crate) struct Session<'a> {
    pub(crate) client: &'a mut postgres::Client,
    pub(crate) location: &'a str,
}

impl Session<'_> {
    /// One row of a query, or an unknown record saying why not.
    fn row(&mut self, check: &str, sql: &str) -> Result<postgres::Row, Box<Check>> {
        self.client.query_one(sql, &[]).map_err(|err| {
            Box::new(record(
                check,
                self.location,
                Level::Unknown,
                format!("cannot query: {}", ops_backup::pg::conn::describe(&err)),
                metrics([]),
            ))
        })
    }

    fn overview(&mut self, connect_ms: f64, server: Option<&Version>) -> Check {
        let row = match self.row(
            "postgres",
            "SELECT current_database(), pg_database_size(current_database()), \
             current_setting('server_version_num')::int",
        ) {
            Ok(row) => row,
            Err(unknown) => return *unknown,
        };
        let (name, size, number): (String, i64, i32) = (row.get(0), row.get(1), row.get(2));
        let version = server.map_or("?", |v| v.text.as_str());
        record(
            "postgres",
            self.location,
            Level::Ok,
            format!(
                "PostgreSQL {version} reachable in {connect_ms} ms; database {name} is {}",
                human_bytes(size.max(0) as u64)
            ),
            metrics([
                ("up", 1.0),
                ("connect_ms", connect_ms),
                ("server_version_num", f64::from(number)),
                ("database_size_bytes", size as f64),
            ]),
        )
    }

    fn connections(&mut self) -> Check {
        let row = match self.row(
            "pg_connections",
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), \
             current_setting('max_connections')::int8",
        ) {
            Ok(row) => row,
            Err(unknown) => return *unknown,
        };
        let (used, max): (i64, i64) = (row.get(0), row.get(1));
        let percent = used as f64 * 100.0 / max.max(1) as f64;
        let level = Level::by_threshold(percent, 80.0, 90.0);
        let hint = if level == Level::Ok {
            ""
        } else {
            " (warn at 80%, crit at 90%); look for connection leaks or use a pooler"
        };
        record(
            "pg_connections",
            self.location,
            level,
            format!("{used} of max_connections {max} in use ({percent:.0}%){hint}"),
            metrics([
                ("connections", used as f64),
                ("max_connections", max as f64),
                ("used_percent", round(percent)),
            ]),
        )
    }

    fn sessions(&mut self, idle_warn: Duration) -> Check {
        let row = match self.row(
            "pg_sessions",
            "SELECT \
               coalesce(max(extract(epoch FROM now() - xact_start)), 0)::float8, \
               count(*) FILTER (WHERE state LIKE 'idle in transaction%'), \
               coalesce(max(extract(epoch FROM now() - state_change)) \
                 FILTER (WHERE state LIKE 'idle in transaction%'), 0)::float8, \
               coalesce(max(extract(epoch FROM now() - query_start)) \
                 FILTER (WHERE state = 'active'), 0)::float8 \
             FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        ) {
            Ok(row) => row,
            Err(unknown) => return *unknown,
        };
        let (oldest, idle, oldest_idle, longest): (f64, i64, f64, f64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let limit = idle_warn.as_secs_f64();
        let seconds = |s: f64| humantime::format_duration(Duration::from_secs(s.max(0.0) as u64));
        let mut problems = Vec::new();
        if oldest_idle > limit {
            problems.push(format!(
                "{idle} session(s) idle in a transaction, the oldest for {} (it holds locks and \
                 stops VACUUM; find it in pg_stat_activity and end it)",
                seconds(oldest_idle)
            ));
        }
        if oldest > limit && oldest_idle <= limit {
            problems.push(format!(
                "a transaction has been open for {}",
                seconds(oldest)
            ));
        }
        let (level, message) = if problems.is_empty() {
            (
                Level::Ok,
                format!(
                    "oldest transaction {}, {idle} idle in transaction, longest running query {}",
                    seconds(oldest),
                    seconds(longest)
                ),
            )
        } else {
            (Level::Warn, problems.join("; "))
        };
        record(
            "pg_sessions",
            self.location,
            level,
            message,
            metrics([
                ("oldest_transaction_seconds", round(oldest)),
                ("idle_in_transaction", idle as f64),
                ("oldest_idle_in_transaction_seconds", round(oldest_idle)),
                ("longest_query_seconds", round(longest)),
            ]),
        )
    }

    /// A record only on a standby: how far behind the primary it replays.
    fn replication(&mut self) -> Option<Check> {
        let row = match self.row(
            "pg_replication",
            "SELECT pg_is_in_recovery(), \
             coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)::float8",
        ) {
            Ok(row) => row,
            Err(unknown) => return Some(*unknown),
        };
        let (standby, lag): (bool, f64) = (row.get(0), row.get(1));
        if !standby {
            return None;
        }
        let level = Level::by_threshold(lag, LAG_WARN, LAG_CRIT);
        Some(record(
            "pg_replication",
            self.location,
            level,
            format!(
                "standby, replaying {lag:.0} s behind the primary (warn at {LAG_WARN:.0} s, crit at {LAG_CRIT:.0} s)"
            ),
            metrics([("replay_lag_seconds", round(lag))]),
        ))
    }

    fn dead_tuples(&mut self) -> Check {
        let rows = match self.client.query(
            "SELECT schemaname || '.' || relname, n_dead_tup, \
               n_dead_tup::float8 / greatest(n_live_tup + n_dead_tup, 1) AS ratio \
             FROM pg_stat_user_tables WHERE n_dead_tup > 0 \
             ORDER BY ratio DESC, n_dead_tup DESC LIMIT 3",
            &[],
        ) {
            Ok(rows) => rows,
            Err(err) => {
                return record(
                    "pg_dead_tuples",
                    self.location,
                    Level::Unknown,
                    format!("cannot query: {}", ops_backup::pg::conn::describe(&err)),
                    metrics([]),
                )
            }
        };
        let top: Vec<(String, i64, f64)> = rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        let Some((table, dead, ratio)) = top.first().cloned() else {
            return record(
                "pg_dead_tuples",
                self.location,
                Level::Ok,
                "no dead tuples".into(),
                metrics([("max_dead_ratio", 0.0)]),
            );
        };
        let listed: Vec<String> = top
            .iter()
            .map(|(t, d, r)| format!("{t} {:.0}% ({d})", r * 100.0))
            .collect();
        let bloated = ratio >= DEAD_RATIO_WARN && dead >= DEAD_TUPLES_MIN;
        let (level, advice) = if bloated {
            (Level::Warn, format!("; VACUUM {table} (ops-compact)"))
        } else {
            (Level::Ok, String::new())
        };
        record(
            "pg_dead_tuples",
            self.location,
            level,
            format!("most dead tuples: {}{advice}", listed.join(", ")),
            metrics([
                ("max_dead_ratio", round(ratio)),
                ("max_dead_tuples", dead as f64),
            ]),
        )
    }

    fn sql(&mut self, name: &str, query: &str, crit: bool, repairable: bool) -> Check {
        let value = match self.value(query) {
            Ok(value) => value,
            Err(why) => return record("sql", name, Level::Unknown, why, metrics([])),
        };
        let level = match (value == 0.0, crit) {
            (true, _) => Level::Ok,
            (false, false) => Level::Warn,
            (false, true) => Level::Crit,
        };
        let hint = if value != 0.0 && repairable {
            "; --fix runs its --sql-fix repair"
        } else {
            ""
        };
        let mut values = BTreeMap::new();
        values.insert("value".to_owned(), value);
        record(
            "sql",
            name,
            level,
            format!("{name} = {value}{hint}"),
            values,
        )
    }

    /// The one number a check query returns, in a read-only transaction;
    /// why there is none otherwise.
    pub(crate) fn value(&mut self, query: &str) -> Result<f64, String> {
        if let Err(err) = self.client.prepare(query) {
            return Err(format!(
                "the query cannot run: {}; a check is one read-only statement",
                ops_backup::pg::conn::describe(&err)
            ));
        }
        let messages = self
            .read_only(query)
            .map_err(|err| format!("the query failed: {}", ops_backup::pg::conn::describe(&err)))?;
        let first = messages.iter().find_map(|message| match message {
            postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned)),
            _ => None,
        });
        match first {
            Some(Some(text)) => text
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("the query returned {text:?}, not a number")),
            Some(None) => Err("the query returned NULL, not a number".into()),
            None => Err("the query returned no row; it must return one number".into()),
        }
    }
}

impl Session<'_> {
    /// Runs one statement in a read-only transaction, then rolls it back.
    fn read_only(
        &mut self,
        query: &str,
    ) -> Result<Vec<postgres::SimpleQueryMessage>, postgres::Error> {
        let mut transaction = self.client.build_transaction().read_only(true).start()?;
        // Taking the snapshot first makes `SET TRANSACTION READ WRITE` fail.
        transaction.batch_execute("SELECT 1")?;
        let result = transaction.simple_query(query);
        let _ = transaction.rollback();
        result
    }
}

/// Whether the pg_dump on PATH can dump this server: a backup would work.
fn dump_compatibility(location: &str, server: Option<&Version>) -> Check {
    let Some(server) = server else {
        return record(
            "pg_dump",
            location,
            Level::Unknown,
            "the server's version could not be read".into(),
            metrics([]),
        );
    };
    match PgDump::locate().and_then(|dump| dump.check_can_dump(server).map(|()| dump)) {
        Ok(dump) => record(
            "pg_dump",
            location,
            Level::Ok,
            format!(
                "pg_dump {} can dump server {}",
                dump.version.text, server.text
            ),
            metrics([("pg_dump_major", f64::from(dump.version.major))]),
        ),
        Err(err) => record(
            "pg_dump",
            location,
            Level::Crit,
            format!("{err:#}"),
            metrics([]),
        ),
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
