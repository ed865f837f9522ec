//! ops-prune: age out backups, snapshots and plain files with retention
//! rules.
//!
//! A run reads and checks all of its input first (stdin to the end, every
//! argument), locks the backup directories and snapshot repositories it may
//! delete from, lists them, and judges every candidate (`plan`); only then
//! does it delete (`execute`), or, with `--dry-run`, say what it would
//! delete. `prune` holds the steps of a run, `policy` the rules,
//! `candidates` where items come from, `snapshots` what is special about
//! snapshots, `report` what is written out.

mod candidates;
mod cli;
mod execute;
mod item;
mod plan;
mod policy;
mod prune;
mod report;
mod snapshots;

use std::ffi::OsString;

use clap::CommandFactory;
use ops_shared::Status;

pub use cli::Cli;

/// ops-prune as a process: the standard exit statuses (0 ok, 1 a problem, 2 a
/// usage error).
pub const TOOL: ops_shared::entry::Tool = ops_shared::entry::Tool {
    name: "ops-prune",
    classifiers: &[ops_shared::entry::classify_as::<ops_snapshot::RepoError>],
    ..ops_shared::entry::STANDARD
};

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs ops-prune with `args` (including the program name).
pub fn run(args: Vec<OsString>) -> anyhow::Result<Status> {
    let Some(cli) = ops_shared::entry::parse_args::<Cli>(args)? else {
        return Ok(Status::Success);
    };
    let mode = cli.output.mode();
    prune::prune(&cli.config()?, mode)
}
