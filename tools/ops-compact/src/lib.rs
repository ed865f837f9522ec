//! ops-compact: reclaim space in databases, safely. Plans first (what would
//! be reclaimed and why), then executes; `--dry-run` prints the plan.

mod cli;
mod sled;

use std::ffi::OsString;

use clap::CommandFactory;
use ops_backup::sleddb;
use ops_shared::{Output, Status, UsageError};

pub use cli::Cli;

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs ops-compact with `args` (including the program name).
pub fn run(args: Vec<OsString>) -> anyhow::Result<Status> {
    let Some(cli) = ops_shared::entry::parse_args::<Cli>(args)? else {
        return Ok(Status::Success);
    };
    let Some(path) = sleddb::sled_path(&cli.target) else {
        return Err(UsageError(format!(
            "{}: not a sled database; ops-compact compacts sled databases (sled:PATH)",
            cli.target
        ))
        .into());
    };
    let record = sleddb::guarded(&path, || {
        let plan = sled::plan(&path, cli.min_reclaim, cli.force)?;
        if cli.dry_run || !plan.rebuild {
            Ok(plan.record(cli.dry_run))
        } else {
            plan.execute(cli.keep_old)
        }
    })?;
    let mut out = Output::stdout(cli.output.mode());
    out.record(&record)?;
    out.finish()?;
    Ok(Status::Success)
}
