//! The command line of ops-verify. Parsing does no I/O.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ops_shared::keys::OpenArgs;
use ops_shared::OutputArgs;

/// Prove that backups are intact: in one read of each artifact, check its
/// SHA-256, decompress the whole stream and check every entry against the
/// manifest (a database dump: that it is complete), and check that its
/// `.sha256` file passes `sha256sum -c`; with --restore-test, prove a
/// database backup restores.
///
/// An encrypted backup is read with --identity (or a passphrase); without
/// a key it is checked as stored: the artifact's and the sealed manifest's
/// checksums (level quick, said on stderr).
///
/// Records on stdin are read and checked in full first: a record whose id
/// or path does not have the shape ops-backup writes is an input error (exit
/// 2) and nothing is verified or written.
///
/// Takes artifacts and backup directories as arguments, or `backup` records
/// on stdin (other records pass through unchanged). Writes each backup
/// record annotated with "verify": {ok, level, time, errors}, and keeps the
/// result beside the artifact for `ops-backup list`. Exits 1 if any backup
/// fails.
///
/// Snapshot repositories (ops-snapshot) are checked with --repo, or through
/// `snapshot` records on stdin (`ops-snapshot list --repo R | ops-verify`):
/// every chunk a snapshot needs must be in the index and in a pack that
/// exists (level quick); with --read-data every pack is read and every chunk
/// decompressed and hashed (level full). One `snapshot` record is written per
/// snapshot, annotated the same way; damage no snapshot is affected by is
/// reported on stderr. Exits 1 if any snapshot or the repository is damaged.
#[derive(Debug, Parser)]
#[command(name = "ops-verify", version, max_term_width = 100)]
pub struct Cli {
    /// Artifacts or backup directories; `-` or none reads records from stdin.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Backups: quick checks the checksums of artifact and manifest only;
    /// full also decompresses and checks every entry.
    #[arg(long, value_enum, default_value_t = LevelArg::Full)]
    pub level: LevelArg,
    /// Also restore each database backup into a scratch database with a
    /// unique name, compare every table's row count with the manifest, and
    /// drop it again (also on failure or Ctrl-C). The server defaults to the
    /// backup's source; give another as --restore-test=URL. A sled backup is
    /// imported into a temporary database and sled's checksum compared.
    #[arg(long, value_name = "URL", num_args = 0..=1, require_equals = true)]
    pub restore_test: Option<Option<String>>,
    /// Verify every snapshot of this ops-snapshot repository (repeatable).
    #[arg(long, value_name = "REPO")]
    pub repo: Vec<PathBuf>,
    /// Snapshots: also read every pack, checking its table against its
    /// name, and decompress and hash every chunk.
    #[arg(long)]
    pub read_data: bool,
    /// Snapshots: like --read-data, for a random share of the packs (e.g.
    /// 10%), so that repeated runs cover the repository over time.
    #[arg(long, value_name = "PERCENT", conflicts_with = "read_data", value_parser = parse_percent)]
    pub read_data_subset: Option<f64>,
    /// How long to wait for a repository that another process holds.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub lock_wait: Duration,
    /// How many artifacts to verify at once [default: the number of cores].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub keys: OpenArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LevelArg {
    Quick,
    Full,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    ops_shared::duration::parse(text).map_err(|err| err.to_string())
}

/// `10%` or `10`: a share of the packs, more than 0% and at most 100%.
fn parse_percent(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(value) if value > 0.0 && value <= 100.0 => Ok(value),
        _ => Err(format!(
            "{text:?} is not a percentage from 0% to 100%, such as 10%"
        )),
    }
}
