//! ops-snapshot: deduplicated, incremental-forever snapshots of data trees.
//!
//! This crate owns the repository format (see `repo`) and is the only
//! code that reads or writes it: ops-verify, ops-restore, ops-prune,
//! ops-health and ops-compact call what is exported here.

mod chunker;
mod cli;
mod commands;
mod copy;
mod create;
mod crypt;
mod diff;
mod error;
mod export;
mod gc;
mod id;
mod index;
mod key;
mod known;
mod live;
mod pack;
mod place;
mod reader;
mod repo;
mod restore;
mod slots;
mod store;
mod tree;
mod verify;

use std::ffi::OsString;

use clap::CommandFactory;
use ops_shared::entry::{classify_as, Tool, STANDARD};
use ops_shared::Status;

pub use cli::Cli;
pub use error::RepoError;
pub use gc::{gc, GcOptions};
pub use id::Id;
pub use index::Index;
pub use pack::PackWriter;
pub use place::{is_repository, repository_of};
pub use repo::{forget, list, record, Leftover, Manifest, Repo};
pub use restore::{report_restored, restore_snapshot};
pub use verify::{verify, ReadData, RepoCheck};

/// ops-snapshot as a process: the standard exit statuses.
pub const TOOL: Tool = Tool {
    name: "ops-snapshot",
    classifiers: &[classify_as::<RepoError>],
    ..STANDARD
};

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs ops-snapshot with `args` (including the program name).
pub fn run(args: Vec<OsString>) -> anyhow::Result<Status> {
    let Some(cli) = ops_shared::entry::parse_args::<Cli>(args)? else {
        return Ok(Status::Success);
    };
    commands::dispatch(cli)
}
