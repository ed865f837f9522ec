//! PostgreSQL: VACUUM (ANALYZE) where dead tuples warrant it, VACUUM FULL
//! (with --full --yes) and REINDEX CONCURRENTLY (with --reindex) where
//! bloat does, never stalling production: every statement runs under
//! lock_timeout and statement_timeout, and a table that cannot be locked in
//! time is skipped with a warning.
//!
//! [`measure`] owns the catalog and bloat queries; [`plan`] decides what to
//! do about each table and index, and carries the plan out.

mod measure;
mod plan;

use std::time::Duration;

use ops_backup::pg::conn::describe;
use ops_backup::pg::PgTarget;
use ops_shared::{Output, OutputMode, Status, UsageError};

use crate::cli::Cli;
use measure::Method;

/// What a PostgreSQL compaction is asked to do.
pub struct Options {
    pub min_dead: f64,
    pub min_bloat: f64,
    pub full: bool,
    pub reindex: bool,
    pub tables: Vec<String>,
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    pub dry_run: bool,
    pub mode: OutputMode,
}

impl From<&Cli> for Options {
    fn from(cli: &Cli) -> Self {
        Options {
            min_dead: cli.min_dead.unwrap_or(10.0),
            min_bloat: cli.min_bloat.unwrap_or(20.0),
            full: cli.full,
            reindex: cli.reindex,
            tables: cli.table.clone(),
            lock_timeout: cli.lock_timeout.unwrap_or(Duration::from_secs(5)),
            statement_timeout: cli.statement_timeout.unwrap_or(Duration::from_secs(3600)),
            dry_run: cli.dry_run,
            mode: cli.output.mode(),
        }
    }
}

/// Measures the database at `location` and compacts what is worth it.
///
/// Fails when the database cannot be reached (exit 1), or with a usage
/// error when the URL is malformed or --table names no table; a table that
/// is locked or fails is reported and the run goes on, ending in
/// [`Status::Problem`].
pub fn run(location: &str, options: &Options, out: &mut Output) -> anyhow::Result<Status> {
    let target = PgTarget::parse(location)?;
    let mut client = target.connect()?;
    let shown = target.location();
    let query_error = |context: &str, err: &postgres::Error| target.query_error(context, err);
    // Milliseconds: PostgreSQL reads a bare number as such; 0 is no limit.
    client
        .batch_execute(&format!(
            "SET lock_timeout = {}; SET statement_timeout = {}; \
             SET idle_in_transaction_session_timeout = 0",
            options.lock_timeout.as_millis().max(1),
            options.statement_timeout.as_millis()
        ))
        .map_err(|err| query_error("setting the session's timeouts failed", &err))?;
    let mut tables =
        measure::tables(&mut client).map_err(|err| query_error("listing tables failed", &err))?;
    if !options.tables.is_empty() {
        tables = select(tables, &options.tables, &target.dbname)?;
    }
    let oids: Vec<i64> = tables.iter().map(|t| t.oid).collect();
    let indexes = measure::indexes(&mut client, &oids)
        .map_err(|err| query_error("listing indexes failed", &err))?;
    let method = if measure::has_pgstattuple(&mut client)
        .map_err(|err| query_error("looking for the pgstattuple extension failed", &err))?
    {
        Method::Pgstattuple
    } else {
        if measure::pgstattuple_available(&mut client) && io_is_terminal() {
            ops_shared::entry::note(format!(
                "bloat is estimated from statistics; for measured figures run \
                 CREATE EXTENSION pgstattuple in {}",
                target.dbname
            ));
        }
        Method::Statistics
    };
    let session = plan::Session {
        client: &mut client,
        database: &shown,
        options,
        method,
    };
    session.run(&tables, &indexes, out)
}

/// The tables that --table names, in catalog order.
///
/// Fails with a usage error naming the first that matches no table.
fn select(
    tables: Vec<measure::Table>,
    wanted: &[String],
    dbname: &str,
) -> Result<Vec<measure::Table>, UsageError> {
    let matches =
        |table: &measure::Table, name: &str| name == table.name || name == table.qualified();
    if let Some(missing) = wanted
        .iter()
        .find(|name| !tables.iter().any(|t| matches(t, name)))
    {
        return Err(UsageError(format!(
            "--table {missing}: no such table in database {dbname} (write NAME or SCHEMA.NAME)"
        )));
    }
    Ok(tables
        .into_iter()
        .filter(|t| wanted.iter().any(|name| matches(t, name)))
        .collect())
}

fn io_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// An error from PostgreSQL as a user should read it.
pub fn problem(err: &postgres::Error, options: &Options) -> plan::Problem {
    let code = err.as_db_error().map(|db| db.code().code().to_owned());
    match code.as_deref() {
        Some("55P03") => plan::Problem::Locked(format!(
            "locked by another session: no lock within --lock-timeout {}",
            humantime::format_duration(options.lock_timeout)
        )),
        Some("57014") if describe(err).contains("statement timeout") => {
            plan::Problem::Failed(format!(
                "cancelled after --statement-timeout {}; raise it for this table",
                humantime::format_duration(options.statement_timeout)
            ))
        }
        _ => plan::Problem::Failed(describe(err)),
    }
}
