//! What to do about each table and index, and doing it.
//!
//! Tables are planned and carried out one at a time, each followed by its
//! indexes, so a run on a large database acts on fresh measurements and a
//! table that is locked costs at most one --lock-timeout: once a query on
//! it times out, nothing else is tried on it or its indexes. Ctrl-C cancels
//! the running statement (the connection is registered for that) and
//! nothing further starts.

use std::time::Instant;

use ops_backup::pg::conn::quote_ident;
use ops_shared::record::{human_bytes, Compact, Record};
use ops_shared::{Output, Status};
use postgres::Client;

use super::measure::{self, Index, Measure, Method, Table};
use super::{problem, Options};

/// Why a table or index was not measured or compacted.
#[derive(Clone, Debug)]
pub enum Problem {
    /// Its lock was not granted within --lock-timeout.
    Locked(String),
    /// A statement failed or ran out of time.
    Failed(String),
}

/// What the plan does about one relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Nothing,
    Vacuum,
    VacuumFull,
    Reindex,
    /// An index that its table's VACUUM FULL rebuilds.
    WithTable,
}

impl Action {
    fn name(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Action::Nothing, _) => "skipped",
            (Action::Vacuum, true) => "would-vacuum",
            (Action::Vacuum, false) => "vacuumed",
            (Action::VacuumFull, true) => "would-vacuum-full",
            (Action::VacuumFull, false) => "vacuumed-full",
            (Action::Reindex, true) => "would-reindex",
            (Action::Reindex, false) => "reindexed",
            (Action::WithTable, true) => "would-rebuild-with-table",
            (Action::WithTable, false) => "rebuilt-with-table",
        }
    }
}

/// One connection working through a database.
pub struct Session<'a> {
    pub client: &'a mut Client,
    pub database: &'a str,
    pub options: &'a Options,
    pub method: Method,
}

impl Session<'_> {
    /// Plans and carries out every table in turn, writing a record per
    /// table and per index.
    pub fn run(
        mut self,
        tables: &[Table],
        indexes: &[Index],
        out: &mut Output,
    ) -> anyhow::Result<Status> {
        let mut troubled = false;
        for table in tables {
            ops_shared::interrupt::stop_if_interrupted();
            let (record, table_action) = self.table(table);
            troubled |= self.report(&record);
            crate::report::write(out, self.options.mode, &record)?;
            let blocked = record.extra.contains_key("locked");
            for index in indexes.iter().filter(|i| i.table_oid == table.oid) {
                ops_shared::interrupt::stop_if_interrupted();
                let record = self.index(index, table, table_action, blocked);
                troubled |= self.report(&record);
                crate::report::write(out, self.options.mode, &record)?;
            }
        }
        Ok(Status::problem_if(troubled))
    }

    /// Warns about a locked or failed relation; whether it was one.
    fn report(&self, record: &Compact) -> bool {
        let Some(reason) = record.extra.get("error").and_then(|v| v.as_str()) else {
            return false;
        };
        let text = format!("{} in {}: {reason}", record.target, self.database);
        if record.extra.contains_key("locked") {
            ops_shared::entry::warn(format!("skipped {text}"));
        } else {
            ops_shared::entry::error(text);
        }
        true
    }

    /// pgstattuple is installed but this role may not use it: the
    /// statistics still tell, less exactly, and the user is told once.
    fn estimate_from_now_on(&mut self) {
        self.method = Method::Statistics;
        ops_shared::entry::note(format!(
            "pgstattuple is installed in {} but this role may not use it; bloat is estimated \
             from the statistics instead (GRANT pg_stat_scan_tables TO this role for exact figures)",
            self.database
        ));
    }

    /// Long, as one table's decision read top to bottom: size, bloat,
    /// locks, the action and the words that explain it.
    #[allow(clippy::too_many_lines)]
    fn table(&mut self, table: &Table) -> (Compact, Action) {
        let name = table.qualified();
        let measured = match measure::table(self.client, table, self.method) {
            Err(err) if denied(&err) && self.method == Method::Pgstattuple => {
                self.estimate_from_now_on();
                measure::table(self.client, table, Method::Statistics)
            }
            other => other,
        };
        let measure = match measured.map_err(|err| problem(&err, self.options)) {
            Ok(measure) => measure,
            Err(problem) => return (self.trouble(&name, "table", None, problem), Action::Nothing),
        };
        let options = self.options;
        let bloat = measure.bloat_percent().unwrap_or(0.0);
        let dead = measure.dead_percent.unwrap_or(0.0);
        let (action, reason) = if options.full && bloat >= options.min_bloat {
            (
                Action::VacuumFull,
                format!(
                    "{bloat:.0}% bloat, at least --min-bloat {}%",
                    options.min_bloat
                ),
            )
        } else if dead >= options.min_dead && measure.dead_tuples.unwrap_or(0) > 0 {
            (
                Action::Vacuum,
                format!(
                    "{dead:.0}% dead tuples, at least --min-dead {}%",
                    options.min_dead
                ),
            )
        } else if options.full {
            (Action::Nothing, format!(
                "{bloat:.0}% bloat, under --min-bloat {}%; {dead:.0}% dead tuples, under --min-dead {}%",
                options.min_bloat, options.min_dead
            ))
        } else {
            (
                Action::Nothing,
                format!(
                    "{dead:.0}% dead tuples, under --min-dead {}%",
                    options.min_dead
                ),
            )
        };
        let (action, reason) = match action {
            Action::Vacuum | Action::VacuumFull if !table.maintainable => {
                ops_shared::entry::warn(format!(
                    "{name} in {}: not vacuumed: only its owner or a superuser may",
                    self.database
                ));
                (
                    Action::Nothing,
                    format!("{reason}, but only its owner or a superuser may VACUUM it"),
                )
            }
            _ => (action, reason),
        };
        let mut record = self.record(&name, "table", None, &measure, action, &reason);
        let sql = match action {
            Action::Vacuum => format!("VACUUM (ANALYZE) {}", ident(&table.schema, &table.name)),
            Action::VacuumFull => format!(
                "VACUUM (FULL, ANALYZE) {}",
                ident(&table.schema, &table.name)
            ),
            _ => return (record, action),
        };
        if !options.dry_run {
            self.execute(&mut record, &sql, |client| {
                measure::table_bytes(client, table.oid)
            });
            let reclaimed = record.before_bytes.saturating_sub(record.after_bytes);
            let bloat = measure.bloat_bytes.unwrap_or(0);
            if action == Action::VacuumFull
                && !record.extra.contains_key("error")
                && reclaimed < bloat / 4
            {
                ops_shared::entry::warn(format!(
                    "VACUUM FULL of {name} reclaimed {} of an estimated {}: a transaction open \
                     since before the dead rows were deleted keeps them (see xact_start and \
                     backend_xmin in pg_stat_activity)",
                    human_bytes(reclaimed),
                    human_bytes(bloat)
                ));
            }
        }
        (record, action)
    }

    /// Long for the same reason as [`Self::table`].
    #[allow(clippy::too_many_lines)]
    fn index(
        &mut self,
        index: &Index,
        table: &Table,
        table_action: Action,
        blocked: bool,
    ) -> Compact {
        let name = index.qualified();
        let owner = table.qualified();
        if blocked {
            let problem = Problem::Locked(format!("not measured: its table {owner} is locked"));
            return self.trouble(&name, "index", Some(&owner), problem);
        }
        let measured = match measure::index(self.client, index, table.live_tuples, self.method) {
            Err(err) if denied(&err) && self.method == Method::Pgstattuple => {
                self.estimate_from_now_on();
                measure::index(self.client, index, table.live_tuples, Method::Statistics)
            }
            other => other,
        };
        let measure = match measured {
            Ok(measure) => measure,
            Err(err) => {
                return self.trouble(&name, "index", Some(&owner), problem(&err, self.options))
            }
        };
        let options = self.options;
        let bloat = measure.bloat_percent();
        let (action, reason) = if table_action == Action::VacuumFull {
            (
                Action::WithTable,
                format!("VACUUM FULL of {owner} rebuilds it"),
            )
        } else if !index.valid {
            (
                Action::Nothing,
                "invalid (a failed CREATE or REINDEX CONCURRENTLY?): drop it, or REINDEX it"
                    .to_owned(),
            )
        } else {
            match (bloat, options.reindex) {
                (None, _) => (
                    Action::Nothing,
                    "no bloat figure for this kind of index".to_owned(),
                ),
                (Some(b), true) if b >= options.min_bloat => (
                    Action::Reindex,
                    format!("{b:.0}% bloat, at least --min-bloat {}%", options.min_bloat),
                ),
                (Some(b), true) => (
                    Action::Nothing,
                    format!("{b:.0}% bloat, under --min-bloat {}%", options.min_bloat),
                ),
                (Some(b), false) => (
                    Action::Nothing,
                    format!("{b:.0}% bloat; --reindex rebuilds bloated indexes"),
                ),
            }
        };
        let (action, reason) = match action {
            Action::Reindex if !table.maintainable => (
                Action::Nothing,
                format!("{reason}, but only its owner or a superuser may REINDEX it"),
            ),
            _ => (action, reason),
        };
        let mut record = self.record(&name, "index", Some(&owner), &measure, action, &reason);
        if options.dry_run {
            return record;
        }
        // REINDEX CONCURRENTLY swaps in a new index with a new oid: the
        // size after is looked up by name.
        let qualified = ident(&index.schema, &index.name);
        let size = move |client: &mut Client| -> Result<u64, postgres::Error> {
            let row = client.query_one(
                "SELECT coalesce(pg_relation_size(to_regclass($1)), 0)::int8",
                &[&qualified],
            )?;
            Ok(row.try_get::<_, i64>(0)?.max(0) as u64)
        };
        match action {
            Action::Reindex => {
                let sql = format!(
                    "REINDEX INDEX CONCURRENTLY {}",
                    ident(&index.schema, &index.name)
                );
                self.execute(&mut record, &sql, size);
            }
            Action::WithTable => {
                if let Ok(after) = size(self.client) {
                    record.after_bytes = after;
                }
            }
            _ => {}
        }
        record
    }

    /// Runs `sql`, then measures the size after; a failure goes into the
    /// record as `error` (and `locked`), leaving the size as it was.
    fn execute(
        &mut self,
        record: &mut Compact,
        sql: &str,
        after: impl FnOnce(&mut Client) -> Result<u64, postgres::Error>,
    ) {
        let started = Instant::now();
        let interrupted = ops_shared::interrupt::note_on_interrupt(format!(
            "{sql} in {} was cancelled and rolled back; what ran before it stays done",
            self.database
        ));
        let result = self.client.batch_execute(sql);
        ops_shared::interrupt::stop_if_interrupted();
        drop(interrupted);
        let result = result.and_then(|()| after(self.client));
        record.annotate("sql", sql);
        record.annotate(
            "seconds",
            (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        );
        match result {
            Ok(bytes) => record.after_bytes = bytes,
            Err(err) => mark(record, problem(&err, self.options)),
        }
    }

    fn record(
        &self,
        name: &str,
        relation: &str,
        table: Option<&str>,
        measure: &Measure,
        action: Action,
        reason: &str,
    ) -> Compact {
        let dry_run = self.options.dry_run;
        let mut record = self.base(name, relation, table);
        record.action = action.name(dry_run).into();
        record.before_bytes = measure.bytes;
        record.after_bytes = match (dry_run, action) {
            (true, Action::VacuumFull | Action::Reindex | Action::WithTable) => {
                measure.bytes - measure.bloat_bytes.unwrap_or(0).min(measure.bytes)
            }
            _ => measure.bytes,
        };
        record.annotate("method", measure.method.name());
        if let Some(percent) = measure.bloat_percent() {
            record.annotate("bloat_percent", round1(percent));
        }
        if let Some(bytes) = measure.bloat_bytes {
            record.annotate("bloat_bytes", bytes);
        }
        if let Some(percent) = measure.dead_percent {
            record.annotate("dead_percent", round1(percent));
        }
        if let Some(live) = measure.live_tuples {
            record.annotate("live_tuples", live);
        }
        if let Some(dead) = measure.dead_tuples {
            record.annotate("dead_tuples", dead);
        }
        record.annotate("reason", reason);
        record
    }

    fn base(&self, name: &str, relation: &str, table: Option<&str>) -> Compact {
        let mut record = Compact {
            target: name.to_owned(),
            kind: "postgres".into(),
            action: "skipped".into(),
            before_bytes: 0,
            after_bytes: 0,
            extra: serde_json::Map::new(),
        };
        record.annotate("database", self.database);
        record.annotate("relation", relation);
        if let Some(table) = table {
            record.annotate("table", table);
        }
        record
    }

    /// The record of a relation that could not be measured.
    fn trouble(
        &self,
        name: &str,
        relation: &str,
        table: Option<&str>,
        problem: Problem,
    ) -> Compact {
        let mut record = self.base(name, relation, table);
        mark(&mut record, problem);
        record
    }
}

/// A relation that was locked is `skipped`; one whose statement failed is
/// `failed`. Either way the record says why in `error`.
fn mark(record: &mut Compact, problem: Problem) {
    match problem {
        Problem::Locked(reason) => {
            record.action = "skipped".into();
            record.annotate("locked", true);
            record.annotate("error", reason);
        }
        Problem::Failed(reason) => {
            record.action = "failed".into();
            record.annotate("error", reason);
        }
    }
}

fn denied(err: &postgres::Error) -> bool {
    err.as_db_error()
        .is_some_and(|db| db.code().code() == "42501")
}

fn ident(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}
