//! The command line of ops-restore. Parsing does no I/O.

use std::path::PathBuf;

use clap::Parser;
use ops_shared::OutputArgs;

/// Restore a backup into a directory, checking every entry against the
/// manifest while extracting.
///
/// The backup is restored into a temporary directory beside the target and
/// renamed into place only when everything matched, so a failed restore
/// leaves no half-restored target. Takes an artifact path, or one `backup`
/// record on stdin (`ops-backup list DIR | tail -n 1 | ops-restore --to X`).
#[derive(Debug, Parser)]
#[command(name = "ops-restore", version, max_term_width = 100)]
pub struct Cli {
    /// The artifact to restore; without it, one backup record is read from stdin.
    #[arg(value_name = "ARTIFACT")]
    pub artifact: Option<PathBuf>,
    /// The directory to restore into; must be missing or empty unless --force.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Replace the contents of a non-empty target (the old contents are
    /// removed only after the restore succeeded).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}
