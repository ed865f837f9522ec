//! ops-backup: back up directories, files and PostgreSQL and sled databases
//! into checked artifacts, and list backup directories.
//!
//! This crate owns the backup formats. Other tools see a few things, all
//! exported here: [`Format`], the one table of artifact kinds with their
//! verify, restore and restore-test entry points; [`catalog`], a backup
//! directory read back into records; [`manifest`] and [`hashing`], the
//! manifest format and its checksums; [`Error`], what can go wrong; and
//! [`pg`] and [`sleddb`], the database access layers that ops-restore,
//! ops-compact and ops-health share. The writers (`create`, `artifact`,
//! `pending`) and readers (`archive`, `sleddb::backup`) behind
//! them are private.

mod archive;
mod artifact;
pub mod catalog;
mod check;
mod cli;
mod copy;
mod create;
mod error;
mod format;
pub mod hashing;
pub mod manifest;
mod pending;
pub mod pg;
pub mod sealed;
pub mod sleddb;
mod tar_writer;
pub mod wal;

pub use archive::restorable_path;
pub use check::{Discard, EntrySink, Findings, Level};
pub use error::Error;
pub use format::{Destination, Format, Restorer};
pub use pg::check::NotTested;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use ops_shared::record::human_bytes;
use ops_shared::{entry::warn, progress, Backup, Output, Status, UsageError};

pub use cli::Cli;

/// ops-backup as a process: the standard exit statuses (0 ok, 1 a problem, 2 a
/// usage error).
pub const TOOL: ops_shared::entry::Tool = ops_shared::entry::Tool {
    name: "ops-backup",
    classifiers: &[ops_shared::entry::classify_as::<Error>],
    ..ops_shared::entry::STANDARD
};

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs ops-backup with `args` (including the program name).
pub fn run(args: Vec<OsString>) -> anyhow::Result<Status> {
    let Some(cli) = ops_shared::entry::parse_args::<Cli>(args)? else {
        return Ok(Status::Success);
    };
    match cli.command {
        cli::Command::Create(args) => {
            let mut out = Output::stdout(args.output.mode());
            let source = args.source.to_string_lossy().into_owned();
            progress::start(
                &format!("backing up {}", ops_shared::redact::redact(&source)),
                None,
            );
            let backup = if pg::is_postgres(&source) {
                dump_database(&source, args)?
            } else if let Some(path) = sleddb::sled_path(&source) {
                back_up_sled(path, args)?
            } else {
                back_up_tree(args)?
            };
            progress::finish(backed_up(&backup, progress::counted()));
            out.record(&backup)?;
            out.finish()?;
            Ok(Status::Success)
        }
        cli::Command::List(args) => {
            let mut out = Output::stdout(args.output.mode());
            let mut failed = false;
            let mut all = Vec::new();
            for dir in &args.dirs {
                failed |= list_into(dir, &mut all);
            }
            all.sort_by(ops_shared::ids::compare_backups);
            for backup in &all {
                out.record(backup)?;
            }
            out.finish()?;
            Ok(Status::problem_if(failed))
        }
        cli::Command::Copy(args) => copy_from_stdin(&args),
        cli::Command::WalPush(args) => {
            wal::push(&args.file, &args.to)?;
            Ok(Status::Success)
        }
        cli::Command::WalGet(args) => Ok(if wal::get(&args.name, &args.dest, &args.from)? {
            Status::Success
        } else {
            Status::Problem
        }),
        cli::Command::Keygen(args) => {
            let public = ops_shared::keys::generate(&args.output)?;
            println!("{public}");
            ops_shared::entry::note(format!(
                "wrote the identity (secret key) to {}; keep a copy off this host: \
                 without it no backup encrypted to {public} can be read",
                args.output.display()
            ));
            Ok(Status::Success)
        }
    }
}

/// Copies every backup record on stdin to `--to`; other records pass
/// through. A backup that cannot be copied is an error and the rest go on.
fn copy_from_stdin(args: &cli::CopyArgs) -> anyhow::Result<Status> {
    let mut out = Output::stdout(args.output.mode());
    let (mut copied, mut present, mut failed, mut bytes) = (0, 0, 0, 0);
    for record in ops_shared::read_records(std::io::stdin().lock()) {
        let record = record?;
        if !record.is::<Backup>() {
            out.raw(record.raw())?;
            continue;
        }
        let backup: Backup = record.parse()?;
        match copy::copy(&backup, &args.to) {
            Ok(copy::Copied::Written(backup)) => {
                copied += 1;
                bytes += backup.bytes;
                out.record(&backup)?;
            }
            Ok(copy::Copied::Present(backup)) => {
                present += 1;
                out.record(&backup)?;
            }
            Err(err) => {
                failed += 1;
                ops_shared::entry::error(format!("{}: {err:#}", backup.id));
            }
        }
    }
    out.finish()?;
    ops_shared::entry::note(format!(
        "copied {copied} backup(s), {} to {}; {present} already there{}",
        human_bytes(bytes),
        args.to.display(),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    ));
    Ok(Status::problem_if(failed > 0))
}

fn dump_database(source: &str, args: cli::CreateArgs) -> anyhow::Result<Backup> {
    if !args.exclude.is_empty() || args.skip_unreadable {
        return Err(UsageError(
            "--exclude and --skip-unreadable apply to directories, not databases".into(),
        )
        .into());
    }
    pg::dump::dump(&pg::dump::Request {
        target: pg::PgTarget::parse(source)?,
        format: match args.format {
            Some(cli::FormatArg::Custom) => pg::DumpFormat::Custom,
            _ => pg::DumpFormat::Plain,
        },
        threads: threads(args.threads),
        to: args.to,
        name: args.name,
        level: args.level,
        encryption: args.seal.encryption()?,
    })
}

fn back_up_sled(path: PathBuf, args: cli::CreateArgs) -> anyhow::Result<Backup> {
    if !args.exclude.is_empty() || args.skip_unreadable || args.format.is_some() {
        return Err(UsageError(
            "--exclude, --skip-unreadable and --format do not apply to sled databases".into(),
        )
        .into());
    }
    sleddb::backup::backup(&sleddb::backup::Request {
        path,
        to: args.to,
        name: args.name,
        level: args.level,
        // Reading sled is the bottleneck; more threads only cost memory.
        threads: if args.threads == 0 { 1 } else { args.threads },
        encryption: args.seal.encryption()?,
    })
}

fn back_up_tree(args: cli::CreateArgs) -> anyhow::Result<Backup> {
    if args.format.is_some() {
        return Err(UsageError(
            "--format applies to databases; directories are always tar.zst".into(),
        )
        .into());
    }
    create::create(&create::Request {
        threads: threads(args.threads),
        source: args.source,
        to: args.to,
        name: args.name,
        level: args.level,
        excludes: args.exclude,
        skip_unreadable: args.skip_unreadable,
        encryption: args.seal.encryption()?,
    })
}

/// Adds the backups of `dir` to `all`, reporting what is wrong with the
/// directory on stderr; returns whether anything was.
fn list_into(dir: &Path, all: &mut Vec<Backup>) -> bool {
    let (backups, leftovers) = match catalog::list(dir) {
        Ok(listed) => listed,
        Err(err) => {
            ops_shared::entry::error(format!("{err:#}"));
            return true;
        }
    };
    let mut failed = false;
    leftovers.warnings.iter().for_each(warn);
    for why in &leftovers.refused {
        ops_shared::entry::error(why);
        failed = true;
    }
    if backups.is_empty() && leftovers.refused.is_empty() {
        match catalog::emptiness(dir) {
            catalog::Emptiness::BackupDirectory => {
                ops_shared::entry::note(format!("no backups in {} (yet)", dir.display()));
            }
            other => {
                ops_shared::entry::error(other.explain(dir));
                failed = true;
            }
        }
    }
    for (name, sources) in catalog::mixed_series(&backups) {
        ops_shared::entry::error(catalog::mixed_series_message(dir, &name, &sources));
        failed = true;
    }
    all.extend(backups);
    failed
}

/// The summary line: `backed up SOURCE: 120 files, 4.1 MiB into PATH (1.2 MiB)`.
fn backed_up(backup: &Backup, counted: progress::Counted) -> String {
    let files = match counted.files {
        0 => String::new(),
        n => format!("{n} files, "),
    };
    format!(
        "backed up {}: {files}{} into {} ({})",
        backup.source.location,
        human_bytes(counted.bytes),
        backup.path.display(),
        human_bytes(backup.bytes)
    )
}

/// `--threads`, where 0 means one per core.
fn threads(asked: u32) -> u32 {
    if asked != 0 {
        return asked;
    }
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
}
