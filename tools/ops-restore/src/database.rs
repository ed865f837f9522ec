//! Restoring a database dump into a database: plan (does it exist, does it
//! hold tables, may it be dropped), then restore in one transaction, then
//! compare row counts with the manifest. Ctrl-C stops the restore and drops
//! a database it created.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::bail;
use ops_backup::pg::check::{self, drop_database, maintenance_target, RestoreOptions};
use ops_backup::pg::conn::quote_ident;
use ops_backup::pg::{count_rows, DumpFormat, PgTarget};
use serde::Serialize;

/// What ops-restore adds to a database backup's record.
#[derive(Serialize)]
pub struct DatabaseRestored {
    pub ok: bool,
    /// The target, password redacted.
    pub to: String,
    pub tables: u64,
    /// Tables whose row counts differ from the manifest.
    pub mismatches: Vec<String>,
}

enum Existing {
    Missing,
    Empty,
    Replace,
}

/// The settings that decide what may be changed.
pub struct Choices {
    pub clean: bool,
    pub yes: bool,
    pub jobs: u32,
}

/// Restores `artifact` into the database at `url`.
///
/// Fails, changing nothing, when the database has tables and --clean was
/// not given and confirmed; fails with the restore's own message when it
/// fails, leaving no database it created behind.
pub fn restore(artifact: &Path, url: &str, choices: &Choices) -> anyhow::Result<DatabaseRestored> {
    let manifest = check::read_manifest(artifact)?;
    let format = DumpFormat::of(&manifest.header.format).unwrap_or(DumpFormat::Plain);
    let target = PgTarget::parse(url)?;
    let maintenance = maintenance_target(&target)?;
    let existing = plan(&target, &maintenance, choices)?;
    let mut admin = maintenance.connect()?;
    let name = quote_ident(&target.dbname);
    if matches!(existing, Existing::Replace) {
        admin
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .map_err(|e| maintenance.query_error("dropping the target database", &e))?;
    }
    let created = !matches!(existing, Existing::Empty);
    if created {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| maintenance.query_error("creating the target database", &e))?;
    }
    let _interrupted = if created {
        let (maintenance, dbname) = (maintenance.clone(), target.dbname.clone());
        let replaced = matches!(existing, Existing::Replace);
        ops_shared::interrupt::on_interrupt(move || {
            let dropped = drop_database(&maintenance, &dbname);
            Some(match (dropped, replaced) {
                (true, false) => format!("database {dbname} it had created was dropped"),
                (true, true) => format!(
                    "database {dbname} was dropped by --clean and is not restored; \
                     the half-restored copy was dropped"
                ),
                (false, _) => format!("database {dbname} is half-restored; drop it by hand"),
            })
        })
    } else {
        ops_shared::interrupt::note_on_interrupt(format!(
            "nothing was restored into database {} (one transaction){}",
            target.dbname,
            if choices.jobs > 1 {
                "; with --jobs some tables may be; check it"
            } else {
                ""
            }
        ))
    };
    let options = RestoreOptions {
        single_transaction: choices.jobs <= 1,
        jobs: choices.jobs,
    };
    if let Err(err) = check::restore_into(artifact, format, &target, &options) {
        if created {
            drop_database(&maintenance, &target.dbname);
        }
        return Err(err.context(format!("nothing was restored into {}", target.location())));
    }
    let mismatches = check::compare_counts(&target, &manifest.tables)?;
    Ok(DatabaseRestored {
        ok: mismatches.is_empty(),
        to: target.location(),
        tables: manifest.tables.len() as u64,
        mismatches,
    })
}

fn plan(target: &PgTarget, maintenance: &PgTarget, choices: &Choices) -> anyhow::Result<Existing> {
    let mut admin = maintenance.connect()?;
    let exists = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&target.dbname],
        )
        .map_err(|e| maintenance.query_error("looking for the target database", &e))?
        .get::<_, i64>(0)
        > 0;
    if !exists {
        return Ok(Existing::Missing);
    }
    let tables = count_rows(target, &mut target.connect()?)?;
    if tables.is_empty() {
        return Ok(Existing::Empty);
    }
    if !choices.clean {
        bail!(
            "database {} on {} already has {} table(s); pass --clean to drop and recreate it",
            target.dbname,
            target.endpoint(),
            tables.len()
        );
    }
    if !choices.yes {
        if !io::stdin().is_terminal() {
            bail!(
                "--clean drops database {} on {}; pass --yes to confirm (stdin is not a terminal)",
                target.dbname,
                target.endpoint()
            );
        }
        eprint!(
            "Drop database {} on {} ({} tables) and restore into it? [y/N] ",
            target.dbname,
            target.endpoint(),
            tables.len()
        );
        io::stderr().flush()?;
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("not confirmed; nothing was changed");
        }
    }
    Ok(Existing::Replace)
}
