//! ops-restore: bring a backup or a snapshot back, checked, all or nothing.
//!
//! The plan (which backup, where, whether anything is replaced) is settled
//! and validated before anything is written; then the backup is extracted
//! into a temporary directory beside the target and renamed into place. A
//! snapshot is restored the same way by ops-snapshot's own reader.

mod cli;
mod database;
mod extract;

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::CommandFactory;
use ops_backup::archive;
use ops_backup::{catalog, manifest, sleddb};
use ops_shared::progress;
use ops_shared::record::{human_bytes, Snapshot};
use ops_shared::staging::Target;
use ops_shared::{read_records, Backup, Output, Record, Status, UsageError};
use serde::Serialize;

pub use cli::Cli;

/// ops-restore as a process: the standard exit statuses (0 ok, 1 a problem, 2 a
/// usage error).
pub const TOOL: ops_shared::entry::Tool = ops_shared::entry::Tool {
    name: "ops-restore",
    classifiers: &[ops_shared::entry::classify_as::<ops_snapshot::RepoError>],
    ..ops_shared::entry::STANDARD
};

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
    let item = match &cli.artifact {
        Some(path) => Item::Backup(backup_at(path)?),
        None => {
            if io::stdin().is_terminal() {
                return Err(UsageError(
                    "give the artifact to restore, or pipe one backup or snapshot record in".into(),
                )
                .into());
            }
            let mut items = Vec::new();
            for record in read_records(io::stdin().lock()) {
                let record = record?;
                if record.is::<Backup>() {
                    let line = record.line;
                    let backup = record.parse::<Backup>()?;
                    catalog::check_record(&backup)
                        .map_err(|err| UsageError(format!("input line {line}: {err}")))?;
                    items.push(Item::Backup(backup));
                } else if record.is::<Snapshot>() {
                    items.push(Item::Snapshot(record.parse::<Snapshot>()?));
                } else {
                    passed_through.push(record.raw().to_owned());
                }
            }
            match items.len() {
                1 => items.remove(0),
                0 => return Err(UsageError("no backup or snapshot record on stdin".into()).into()),
                n => {
                    let snapshots = items
                        .iter()
                        .filter(|item| matches!(item, Item::Snapshot(_)))
                        .count();
                    let kind = match snapshots {
                        0 => "backup",
                        s if s == n => "snapshot",
                        _ => "backup and snapshot",
                    };
                    return Err(UsageError(format!(
                        "{n} {kind} records on stdin; restore one at a time (for example with \
                         tail -n 1)"
                    ))
                    .into());
                }
            }
        }
    };
    for line in &passed_through {
        out.raw(line)?;
    }
    let mut backup = match item {
        Item::Backup(backup) => backup,
        Item::Snapshot(snapshot) => {
            progress::start(
                &format!(
                    "restoring snapshot {}",
                    ops_shared::ids::short(&snapshot.id)
                ),
                None,
            );
            let snapshot = restore_snapshot(&snapshot, &cli)?;
            out.record(&snapshot)?;
            out.finish()?;
            return Ok(Status::Success);
        }
    };
    progress::start(&format!("restoring {}", backup.id), Some(backup.bytes));
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
        progress::finish(format!(
            "restored {} into {}: {} tables, {}",
            backup.id,
            restored.to,
            restored.tables,
            match restored.mismatches.len() {
                0 => "row counts match the backup".to_owned(),
                n => format!("{n} with row counts that differ from the backup"),
            }
        ));
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
    progress::finish(format!(
        "restored {}: {entries} entries, {} to {}",
        backup.id,
        human_bytes(bytes),
        cli.to.display()
    ));
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

/// The one thing to restore.
enum Item {
    Backup(Backup),
    Snapshot(Snapshot),
}

/// Restores `snapshot` into `--to` with ops-snapshot's reader; returns the
/// record annotated with `"restore"`.
///
/// Fails (a usage error) when the target is a database or the snapshot or
/// its repository cannot be found; fails when any of it cannot be restored,
/// leaving the target as it was.
fn restore_snapshot(snapshot: &Snapshot, cli: &Cli) -> anyhow::Result<Snapshot> {
    if ops_backup::pg::is_postgres(&cli.to.to_string_lossy()) {
        return Err(UsageError(format!(
            "snapshot {} is a directory tree; restore it into a directory, not a database",
            snapshot.id
        ))
        .into());
    }
    let target = Target::plan(&cli.to, cli.force)?;
    let (_, restored) =
        ops_snapshot::restore_snapshot(&snapshot.repo, &snapshot.id, &target, None, cli.lock_wait)?;
    let mut snapshot = snapshot.clone();
    progress::finish(format!(
        "restored snapshot {}: {} entries, {} to {}",
        ops_shared::ids::short(&snapshot.id),
        restored.entries,
        human_bytes(restored.bytes),
        cli.to.display()
    ));
    snapshot.annotate("restore", ops_snapshot::restored_note(&cli.to, restored));
    Ok(snapshot)
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
    if !sled {
        refuse_unrestorable(backup)?;
    }
    let header = manifest::read_outline(&catalog::manifest_of(&backup.path)?)?.0;
    target.fill(header.root.as_ref(), |staging| {
        if sled {
            sleddb::backup::restore_into(&backup.path, staging)
                .with_context(|| format!("restore of {} failed", backup.id))
        } else {
            extract_into(backup, staging)
        }
    })
}

/// Refuses (a usage error, exit 2) a backup whose manifest lists an entry
/// that cannot be restored inside the target, before anything is written.
fn refuse_unrestorable(backup: &Backup) -> anyhow::Result<()> {
    let manifest = catalog::manifest_of(&backup.path)?;
    let refused = archive::unrestorable_entries(&manifest)
        .with_context(|| format!("cannot read the manifest of {}", backup.id))?;
    if refused.is_empty() {
        return Ok(());
    }
    Err(UsageError(format!(
        "{}: refusing to restore: {}; nothing was written (ops-verify reports such a backup \
         as failed)",
        backup.id,
        refused.join("; ")
    ))
    .into())
}

fn extract_into(backup: &Backup, staging: &Path) -> anyhow::Result<(u64, u64)> {
    let mut extractor = extract::Extractor::new(staging);
    let findings = archive::extract(&backup.path, &mut extractor)
        .with_context(|| format!("restore of {} failed", backup.id))?;
    if findings.ok() && findings.recorded_sha256.as_deref() != Some(backup.sha256.as_str()) {
        bail!(
            "{}: the artifact is not the one the record describes (checksum differs)",
            backup.id
        );
    }
    if findings.unrestorable {
        return Err(UsageError(format!(
            "{}: refusing to restore: {}",
            backup.id,
            findings.errors.join("; ")
        ))
        .into());
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
