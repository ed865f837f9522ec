//! ops-compact: reclaim space in PostgreSQL and sled databases and in
//! directories of plain files, safely. Each kind plans first (what would be
//! reclaimed and why), then executes; `--dry-run` prints the plan.

mod cli;
mod failpoint;
mod files;
mod pg;
mod report;
mod sled;
mod target;

use std::ffi::OsString;

use clap::CommandFactory;
use ops_backup::sleddb;
use ops_shared::{Output, Status};

pub use cli::Cli;
use target::Target;

/// ops-compact as a process: the standard exit statuses (0 ok, 1 a problem, 2 a
/// usage error).
pub const TOOL: ops_shared::entry::Tool = ops_shared::entry::Tool {
    name: "ops-compact",
    classifiers: &[ops_shared::entry::classify_as::<ops_snapshot::RepoError>],
    ..ops_shared::entry::STANDARD
};

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs ops-compact with `args` (including the program name).
pub fn run(args: Vec<OsString>) -> anyhow::Result<Status> {
    let Some(cli) = ops_shared::entry::parse_args::<Cli>(args)? else {
        return Ok(Status::Success);
    };
    let target = Target::of(&cli)?;
    let mut out = Output::stdout(cli.output.mode());
    // Files say what they did themselves (compressed, left alone).
    let own_summary = matches!(target, Target::Files(_));
    ops_shared::progress::start(&format!("compacting {}", target.shown()), None);
    let status = match target {
        Target::Postgres(location) => pg::run(&location, &pg::Options::from(&cli), &mut out)?,
        Target::Files(args) => files::run(&args, &files::Options::from(&cli), &mut out)?,
        Target::Repo(repo) => {
            let options = ops_snapshot::GcOptions {
                max_unused: cli.max_unused.unwrap_or(10.0),
                dry_run: cli.dry_run,
                lock_wait: std::time::Duration::from_secs(600),
            };
            let record = ops_snapshot::gc(&repo, &options)?;
            report::write(&mut out, cli.output.mode(), &record)?;
            Status::Success
        }
        Target::Sled(path) => {
            let min_reclaim = cli.min_reclaim.unwrap_or(20.0);
            let record = sleddb::guarded(&path, || {
                let owners = sleddb::Owners::read(&path)?;
                let plan = sled::plan(&path, min_reclaim, cli.force)?;
                if cli.dry_run || !plan.rebuild {
                    return Ok(plan.record(cli.dry_run));
                }
                plan.execute(cli.keep_old, &owners)
            })?;
            report::write(&mut out, cli.output.mode(), &record)?;
            Status::Success
        }
    };
    if !own_summary {
        ops_shared::progress::finish(report::summary(cli.dry_run));
    }
    out.finish()?;
    Ok(status)
}
