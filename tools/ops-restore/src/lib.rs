//! ops-restore: bring a backup back, checked, all or nothing.
//!
//! The plan (which backup, where, whether anything is replaced) is settled
//! and validated before anything is written; then the backup is extracted
//! into a temporary directory beside the target and renamed into place.

mod cli;
mod database;
mod extract;

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::CommandFactory;
use ops_backup::archive::{self, Level};
use ops_backup::{catalog, manifest, sleddb};
use ops_shared::staging::Target;
use ops_shared::{read_records, Backup, Output, Record, Status, UsageError};
use serde::Serialize;

pub use cli::Cli;

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// What ops-restore adds to the backup record it restored.
#[derive(Serialize)]
struct Restored {
    ok: bool,
    #[serde(with = "ops_shared::path_text")]
    to: PathBuf,
    entries: u64,
    bytes: u64,
}

/// Runs ops-restore with `args` (including the program name).
pub fn run(args: Vec<OsString>) -> anyhow::Result<Status> {
    let Some(cli) = ops_shared::entry::parse_args::<Cli>(args)? else {
        return Ok(Status::Success);
    };
    let mut out = Output::stdout(cli.output.mode());
    let mut passed_through = Vec::new();
    let backup = match &cli.artifact {
        Some(path) => backup_at(path)?,
        None => {
            if io::stdin().is_terminal() {
                return Err(UsageError(
                    "give the artifact to restore, or pipe one backup record in".into(),
                )
                .into());
            }
            let mut backups = Vec::new();
            for record in read_records(io::stdin().lock()) {
                let record = record?;
                if record.is::<Backup>() {
                    backups.push(record.parse::<Backup>()?);
                } else {
                    passed_through.push(record.raw().to_owned());
                }
            }
            match backups.len() {
                1 => backups.remove(0),
                0 => return Err(UsageError("no backup record on stdin".into()).into()),
                n => {
                    return Err(UsageError(format!(
                        "{n} backup records on stdin; restore one at a time (for example with tail -n 1)"
                    ))
                    .into())
                }
            }
        }
    };
    for line in &passed_through {
        out.raw(line)?;
    }
    let mut backup = backup;
    let to = cli.to.to_string_lossy();
    if ops_backup::pg::is_postgres(&to) {
        if ops_backup::pg::DumpFormat::of(&backup.format).is_none() {
            bail!(
                "{} is a {} backup; restore it into a directory, not a database",
                backup.id,
                backup.format
            );
        }
        let choices = database::Choices {
            clean: cli.clean,
            yes: cli.yes,
            jobs: cli.jobs,
        };
        let restored = database::restore(&backup.path, &to, &choices)?;
        for mismatch in &restored.mismatches {
            ops_shared::entry::error(format!("{}: {mismatch}", backup.id));
        }
        let ok = restored.ok;
        backup.annotate("restore", restored);
        out.record(&backup)?;
        out.finish()?;
        return Ok(Status::problem_if(!ok));
    }
    if ops_backup::pg::DumpFormat::of(&backup.format).is_some() {
        bail!(
            "{} is a database dump; restore it with --to postgres://USER@HOST/DB",
            backup.id
        );
    }
    let target = Target::plan(&cli.to, cli.force)?;
    let (entries, bytes) = restore(&backup, &target)?;
    backup.annotate(
        "restore",
        Restored {
            ok: true,
            to: cli.to.clone(),
            entries,
            bytes,
        },
    );
    out.record(&backup)?;
    out.finish()?;
    Ok(Status::Success)
}

fn backup_at(path: &Path) -> anyhow::Result<Backup> {
    if !path.is_file() {
        bail!("{}: no such artifact", path.display());
    }
    let manifest = catalog::manifest_of(path)?;
    let (header, summary) = manifest::read_outline(&manifest)?;
    let mut backup = catalog::record(catalog::parent_dir(path), &header, &summary);
    backup.path = path.to_owned();
    Ok(backup)
}

fn restore(backup: &Backup, target: &Target) -> anyhow::Result<(u64, u64)> {
    let sled = backup.format == sleddb::backup::FORMAT;
    if backup.format != ops_backup::create::FORMAT && !sled {
        bail!(
            "{}: format {:?} is not one this version of ops-restore restores",
            backup.id,
            backup.format
        );
    }
    target.fill(|staging| {
        if sled {
            sleddb::backup::restore_into(&backup.path, staging)
                .with_context(|| format!("restore of {} failed", backup.id))
        } else {
            extract_into(backup, staging)
        }
    })
}

fn extract_into(backup: &Backup, staging: &Path) -> anyhow::Result<(u64, u64)> {
    let mut extractor = extract::Extractor::new(staging);
    let findings = archive::check(&backup.path, Level::Full, &mut extractor)
        .with_context(|| format!("restore of {} failed", backup.id))?;
    if findings.ok() && findings.artifact_sha256.as_deref() != Some(backup.sha256.as_str()) {
        bail!(
            "{}: the artifact is not the one the record describes (checksum differs)",
            backup.id
        );
    }
    if !findings.ok() {
        bail!(
            "{} failed verification while restoring: {}",
            backup.id,
            findings.errors.join("; ")
        );
    }
    extractor
        .finish()
        .with_context(|| format!("restore of {} failed", backup.id))?;
    Ok((extractor.entries, extractor.bytes))
}
