//! ops-backup: back up directories and files into checked `tar.zst`
//! artifacts, and list backup directories.
//!
//! This crate owns the directory backup format: [`create`] writes it,
//! [`archive`] reads it back checked (for ops-verify and ops-restore), and
//! [`catalog`] turns a backup directory back into records.

pub mod archive;
pub mod catalog;
mod cli;
pub mod create;
pub mod hashing;
pub mod manifest;
mod tar_writer;

use std::ffi::OsString;

use clap::CommandFactory;
use ops_shared::{entry::warn, Output, Status};

pub use cli::Cli;

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
            let request = create::Request {
                source: args.source,
                to: args.to,
                name: args.name,
                level: args.level,
                threads: if args.threads == 0 {
                    default_threads()
                } else {
                    args.threads
                },
                excludes: args.exclude,
                skip_unreadable: args.skip_unreadable,
            };
            let backup = create::create(&request)?;
            let mut out = Output::stdout(args.output.mode());
            out.record(&backup)?;
            out.finish()?;
            Ok(Status::Success)
        }
        cli::Command::List(args) => {
            let mut out = Output::stdout(args.output.mode());
            let mut failed = false;
            let mut all = Vec::new();
            for dir in &args.dirs {
                match catalog::list(dir) {
                    Ok((backups, leftovers)) => {
                        leftovers.warnings.iter().for_each(warn);
                        all.extend(backups);
                    }
                    Err(err) => {
                        ops_shared::entry::error(format!("{err:#}"));
                        failed = true;
                    }
                }
            }
            all.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
            for backup in &all {
                out.record(backup)?;
            }
            out.finish()?;
            Ok(Status::problem_if(failed))
        }
    }
}

fn default_threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
}
