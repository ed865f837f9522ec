//! The command line of ops-restore. Parsing does no I/O.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ops_shared::keys::OpenArgs;
use ops_shared::OutputArgs;

/// Restore a backup into a directory, checking every entry against the
/// manifest while extracting, a database dump into a database, or a
/// snapshot of an ops-snapshot repository into a directory.
///
/// A directory backup is restored into a temporary directory beside the
/// target and renamed into place only when everything matched, so a failed
/// restore leaves no half-restored target. A database dump is restored in a
/// single transaction, and every table's row count is compared with the
/// manifest afterwards. Takes an artifact path, or one `backup` or
/// `snapshot` record on stdin (`ops-backup list DIR | tail -n 1 |
/// ops-restore --to X`, `ops-snapshot list --repo R | tail -n 1 |
/// ops-restore --to X`); a snapshot is restored the way `ops-snapshot
/// restore` does, every chunk checked against its hash.
#[derive(Debug, Parser)]
#[command(name = "ops-restore", version, max_term_width = 100)]
pub struct Cli {
    /// The artifact to restore; without it, one backup record is read from stdin.
    #[arg(value_name = "ARTIFACT")]
    pub artifact: Option<PathBuf>,
    /// The directory to restore into (must be missing or empty unless --force), or for a
    /// database backup a database URL, postgres://USER@HOST:PORT/DB (created if missing).
    #[arg(long, value_name = "DIR|URL")]
    pub to: PathBuf,
    /// Replace the contents of a non-empty target directory (the old contents are
    /// removed only after the restore succeeded).
    #[arg(long)]
    pub force: bool,
    /// Drop and recreate a target database that already has tables.
    #[arg(long)]
    pub clean: bool,
    /// Confirm --clean without asking (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Parallel pg_restore jobs for custom-format dumps (gives up the single
    /// transaction).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub jobs: u32,
    /// How long to wait for a snapshot repository that another process holds.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub lock_wait: Duration,
    #[command(flatten)]
    pub keys: OpenArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    ops_shared::duration::parse(text).map_err(|err| err.to_string())
}
