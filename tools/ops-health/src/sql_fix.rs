//! `--fix` with `--sql-fix NAME=STATEMENT`: the repair of what the `--sql`
//! check of the same name finds (orphaned rows, say), which nothing else
//! removes. It runs in batches of `--batch` rows, each its own transaction,
//! so a big repair holds its locks only briefly and a failure loses one
//! batch, not the work before it; the check runs again after every batch,
//! and the repair stops when it passes. A batch that changes nothing, or
//! after which the check does not go down, stops it: that statement does
//! not repair what the check counts, and running it again would only
//! change more of what it should not.

use std::time::{Duration, Instant};

use ops_backup::pg::conn::describe;
use ops_backup::pg::PgTarget;
use ops_shared::record::Check;
use postgres::types::Type;
use postgres::Statement;

use crate::level::{metrics, record, Level};
use crate::postgres::{Options, Session};

/// What the batches are told, and whether they may change anything.
pub struct Batches {
    pub rows: i64,
    pub dry_run: bool,
}

/// One `fix` record per batch (or one saying why none ran), for every
/// repair in `options`.
pub fn fix(options: &Options, batches: &Batches) -> Vec<Check> {
    if options.fixes.is_empty() {
        return Vec::new();
    }
    let refused = |why: String| {
        let names = options.fixes.iter().map(|(name, _)| name.as_str());
        names
            .map(|name| record("fix", name, Level::Unknown, why.clone(), metrics([])))
            .collect()
    };
    let target = match PgTarget::parse(&options.url) {
        Ok(target) => target,
        Err(err) => return refused(format!("not repaired: {err}")),
    };
    let location = target.location();
    let mut client = match target.connect() {
        Ok(client) => client,
        Err(err) => return refused(format!("not repaired: {err}")),
    };
    let timeout_ms = options.timeout.as_millis();
    if let Err(err) = client.batch_execute(&format!("SET statement_timeout = {timeout_ms}")) {
        return refused(format!("not repaired: {}", describe(&err)));
    }
    let mut session = Session {
        client: &mut client,
        location: &location,
    };
    let mut records = Vec::new();
    for (name, statement) in &options.fixes {
        let Some((_, query)) = options.sql.iter().find(|(check, _)| check == name) else {
            continue;
        };
        records.extend(repair(&mut session, name, query, statement, batches));
    }
    records
}

fn repair(
    session: &mut Session,
    name: &str,
    query: &str,
    statement: &str,
    batches: &Batches,
) -> Vec<Check> {
    let not_repaired = |why: String| {
        vec![say(
            name,
            Level::Unknown,
            format!("not repaired: {why}"),
            &[],
        )]
    };
    let value = match session.value(query) {
        Ok(value) => value,
        Err(why) => return not_repaired(why),
    };
    if value == 0.0 {
        return vec![say(
            name,
            Level::Ok,
            format!("nothing to repair: {name} = 0"),
            &[("value", 0.0)],
        )];
    }
    let prepared = match prepare(session.client, statement) {
        Ok(prepared) => prepared,
        Err(why) => return not_repaired(why),
    };
    if batches.dry_run {
        let count = (value / batches.rows as f64).ceil();
        return vec![say(
            name,
            Level::Ok,
            format!(
                "would repair {name} = {value} in batches of {} rows (about {count} \
                 transaction(s)); nothing changed (--dry-run)",
                batches.rows
            ),
            &[("value", value)],
        )];
    }
    run_batches(session, name, query, &prepared, batches.rows, value)
}

/// Runs the repair one transaction at a time, the check after each, until
/// the check reaches 0 or a batch fails, changes nothing, or does not make
/// the check go down.
fn run_batches(
    session: &mut Session,
    name: &str,
    query: &str,
    prepared: &Statement,
    rows: i64,
    mut value: f64,
) -> Vec<Check> {
    let mut records = Vec::new();
    for batch in 1.. {
        let at = f64::from(batch);
        let started = Instant::now();
        let changed = session.client.transaction().and_then(|mut transaction| {
            let changed = transaction.execute(prepared, &[&rows])?;
            transaction.commit().map(|()| changed)
        });
        let changed = match changed {
            Ok(changed) => changed,
            Err(err) => {
                records.push(say(
                    name,
                    Level::Warn,
                    format!(
                        "batch {batch} failed and was rolled back: {}; {name} = {value} left",
                        describe(&err)
                    ),
                    &[("batch", at), ("value", value)],
                ));
                break;
            }
        };
        let after = match session.value(query) {
            Ok(after) => after,
            Err(why) => {
                records.push(say(
                    name,
                    Level::Unknown,
                    format!("batch {batch} changed {changed} row(s), then the check failed: {why}"),
                    &[("batch", at), ("rows", changed as f64)],
                ));
                break;
            }
        };
        let took = Duration::from_millis(started.elapsed().as_millis() as u64);
        records.push(say(
            name,
            Level::Ok,
            format!(
                "batch {batch}: {changed} row(s) changed in {}; {name} = {after}",
                humantime::format_duration(took)
            ),
            &[("batch", at), ("rows", changed as f64), ("value", after)],
        ));
        match after_batch(name, changed, value, after) {
            Next::Continue => {}
            Next::Stop(why) => {
                records.extend(why);
                break;
            }
        }
        value = after;
    }
    records
}

/// What comes after a batch.
enum Next {
    Continue,
    /// With the record that says why, unless the check reached 0.
    Stop(Option<Check>),
}

/// Whether to go on after a batch that changed `changed` rows and took the
/// check from `before` to `after`.
fn after_batch(name: &str, changed: u64, before: f64, after: f64) -> Next {
    if after == 0.0 {
        return Next::Stop(None);
    }
    if changed == 0 {
        return Next::Stop(Some(say(
            name,
            Level::Warn,
            format!(
                "stopped: the batch changed nothing and {name} = {after} is left; the \
                 --sql-fix statement does not reach what the check counts"
            ),
            &[("value", after)],
        )));
    }
    if after >= before {
        return Next::Stop(Some(say(
            name,
            Level::Crit,
            format!(
                "stopped: the batch changed {changed} row(s) but {name} went from {before} \
                 to {after}; the --sql-fix statement changes rows the check does not count"
            ),
            &[("value", after)],
        )));
    }
    Next::Continue
}

/// A `fix` record for the repair of check `name`.
fn say(name: &str, level: Level, message: String, values: &[(&str, f64)]) -> Check {
    let values = values
        .iter()
        .map(|(key, value)| ((*key).to_owned(), *value));
    record("fix", name, level, message, values.collect())
}

/// The repair, prepared (which runs nothing) with the batch size as its one
/// parameter, a bigint whatever it is compared with.
fn prepare(client: &mut postgres::Client, statement: &str) -> Result<Statement, String> {
    let cannot = |err: postgres::Error| {
        format!(
            "the statement cannot run: {}; a repair is one statement",
            describe(&err)
        )
    };
    if client.prepare(statement).map_err(cannot)?.params().len() != 1 {
        return Err("the statement must take the batch size as $1, e.g. \
                    DELETE FROM posts WHERE id IN (SELECT ... LIMIT $1)"
            .into());
    }
    client
        .prepare_typed(statement, &[Type::INT8])
        .map_err(cannot)
}
