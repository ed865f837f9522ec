//! The command line of ops-health. Parsing does no I/O.

use std::path::PathBuf;

use clap::Parser;
use ops_shared::OutputArgs;

/// Tell whether the service's state is healthy, in a form people, jq and
/// monitors understand: one `check` record per check, and the
/// monitoring-plugins exit status of the worst: 0 ok, 1 warn, 2 crit,
/// 3 unknown (also for usage errors).
#[derive(Debug, Parser)]
#[command(name = "ops-health", version, max_term_width = 100)]
pub struct Cli {
    /// Check a sled database: size on disk, trees, keys, whether sled
    /// recovered it on open; in use by another process is reported, not
    /// critical (repeatable).
    #[arg(long, value_name = "PATH", required = true)]
    pub sled: Vec<PathBuf>,
    /// Also report sled's checksum of every key and value (all are read in
    /// any case, to count the keys).
    #[arg(long)]
    pub deep: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}
