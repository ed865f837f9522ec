//! The command line of ops-compact. Parsing does no I/O.

use clap::Parser;
use ops_shared::OutputArgs;

/// Reclaim space in a database when it is worth it, without ever leaving it
/// broken.
///
/// A sled database (sled:PATH, or a sled directory) is measured against its
/// live data; when the reclaimable share reaches --min-reclaim it is rebuilt
/// into a sibling directory, checked against sled's own checksum, and
/// swapped in atomically. Whenever the process is killed, a working database
/// with the same contents is at PATH. Writes a `compact` record.
#[derive(Debug, Parser)]
#[command(name = "ops-compact", version, max_term_width = 100)]
pub struct Cli {
    /// What to compact: sled:PATH.
    pub target: String,
    /// Say what would be reclaimed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rebuild only when at least this share of the space on disk is
    /// reclaimable, as a percentage.
    #[arg(long, value_name = "PERCENT", default_value = "20%", value_parser = parse_percent)]
    pub min_reclaim: f64,
    /// Rebuild whatever the reclaimable share.
    #[arg(long)]
    pub force: bool,
    /// Keep the old copy beside the database as PATH.old-<time> instead of
    /// removing it after success.
    #[arg(long)]
    pub keep_old: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(value) if (0.0..=100.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a percentage from 0% to 100%")),
    }
}
