//! ops-health: checks that report, never crash. Each check yields a
//! `check` record; the exit status is the worst status, in the
//! monitoring-plugins convention (0 ok, 1 warn, 2 crit, 3 unknown).

mod cli;
mod sled;

use std::ffi::OsString;

use clap::CommandFactory;
use ops_shared::{Output, Status};

pub use cli::Cli;

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs ops-health with `args` (including the program name).
pub fn run(args: Vec<OsString>) -> anyhow::Result<Status> {
    let Some(cli) = ops_shared::entry::parse_args::<Cli>(args)? else {
        return Ok(Status::Success);
    };
    let checks: Vec<_> = cli
        .sled
        .iter()
        .map(|path| sled::check(path, cli.deep))
        .collect();
    let mut out = Output::stdout(cli.output.mode());
    let mut worst = 0;
    for check in &checks {
        worst = worst.max(severity(&check.status));
        out.record(check)?;
    }
    out.finish()?;
    Ok(Status::Code(worst))
}

/// The monitoring-plugins exit status of a check status.
fn severity(status: &str) -> u8 {
    match status {
        "ok" => 0,
        "warn" => 1,
        "crit" => 2,
        _ => 3,
    }
}
