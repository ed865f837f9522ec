//! The command line of ops-verify. Parsing does no I/O.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use ops_shared::OutputArgs;

/// Prove that backups are intact: in one read of each artifact, check its
/// SHA-256, decompress the whole stream and check every entry against the
/// manifest (a database dump: that it is complete); with --restore-test,
/// prove a database backup restores.
///
/// Takes artifacts and backup directories as arguments, or `backup` records
/// on stdin (other records pass through unchanged). Writes each backup
/// record annotated with "verify": {ok, level, time, errors}, and keeps the
/// result beside the artifact for `ops-backup list`. Exits 1 if any backup
/// fails.
#[derive(Debug, Parser)]
#[command(name = "ops-verify", version, max_term_width = 100)]
pub struct Cli {
    /// Artifacts or backup directories; `-` or none reads records from stdin.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// quick: checksums of artifact and manifest only; full: also decompress
    /// and check every entry.
    #[arg(long, value_enum, default_value_t = LevelArg::Full)]
    pub level: LevelArg,
    /// Also restore each database backup into a scratch database with a
    /// unique name, compare every table's row count with the manifest, and
    /// drop it again (also on failure or Ctrl-C). The server defaults to the
    /// backup's source; give another as --restore-test=URL. A sled backup is
    /// imported into a temporary database and sled's checksum compared.
    #[arg(long, value_name = "URL", num_args = 0..=1, require_equals = true)]
    pub restore_test: Option<Option<String>>,
    /// How many artifacts to verify at once [default: the number of cores].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LevelArg {
    Quick,
    Full,
}
