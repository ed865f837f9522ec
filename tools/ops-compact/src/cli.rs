//! The command line of ops-compact. Parsing does no I/O; [`Cli::check`]
//! refuses flags that do not fit the kind of target before any work starts.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ops_shared::{OutputArgs, UsageError};

/// Reclaim space where it is worth it, without ever leaving anything broken.
///
/// TARGET is a PostgreSQL database (postgres://..., or postgres: for
/// libpq's environment), a sled database (sled:PATH, or a sled directory),
/// or, with --files, plain files. One `compact` record per table, index,
/// database or file says what was measured and done (a table on a
/// terminal); --dry-run prints the plan and changes nothing.
///
/// PostgreSQL: bloat is measured per table and index with pgstattuple when
/// the extension is installed in the database, otherwise estimated from
/// the planner's statistics (the record's `method` says which). Tables
/// whose dead-tuple share reaches --min-dead get VACUUM (ANALYZE); with
/// --full, tables whose bloat reaches --min-bloat get VACUUM FULL; with
/// --reindex, indexes whose bloat reaches --min-bloat get REINDEX
/// CONCURRENTLY. A table that cannot be locked within --lock-timeout is
/// skipped with a warning, never waited on.
///
/// sled: when the reclaimable share reaches --min-reclaim the database is
/// rebuilt into a sibling directory, checked against sled's own checksum,
/// and swapped in atomically.
///
/// Files: each plain file older than --older-than becomes FILE.zst (written
/// under a temporary name, fsynced, decompressed and compared, mode and
/// times kept), then the original is removed. Compressed files (archives,
/// images, media) and columnar formats (parquet, ORC, Arrow, Avro, which
/// compress inside and whose readers need them as they are) are never
/// candidates; files modified recently, open for writing by a process, or
/// with more than one hard link are left alone.
///
/// Exit status: 0 done; 1 something failed or was skipped because it was
/// locked; 2 usage or input error.
#[derive(Debug, Parser)]
#[command(name = "ops-compact", version, max_term_width = 100)]
pub struct Cli {
    /// What to compact: postgres://USER@HOST/DB, postgres:, sled:PATH or a
    /// sled directory.
    #[arg(required_unless_present_any = ["files", "repo"], conflicts_with_all = ["files", "repo"])]
    pub target: Option<String>,
    /// Say what would be done and why; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Compact an ops-snapshot repository: the same as `ops-snapshot gc`
    /// (remove data no snapshot needs, repack mostly unused packs).
    #[arg(
        long,
        value_name = "REPO",
        conflicts_with = "files",
        help_heading = "Snapshot repositories"
    )]
    pub repo: Option<PathBuf>,
    /// Repack until at most this share of the packs' bytes is unused [default: 10%].
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, help_heading = "Snapshot repositories")]
    pub max_unused: Option<f64>,

    /// Compress plain files: every file under DIR, or what a GLOB matches
    /// (quote it: 'data/raw/*.jsonl'); repeatable.
    #[arg(long, value_name = "DIR|GLOB", help_heading = "Files")]
    pub files: Vec<String>,
    /// Only files last modified longer ago than this [default: 1d].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Files")]
    pub older_than: Option<Duration>,
    /// zstd compression level, 1 to 19 [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=19), help_heading = "Files")]
    pub level: Option<i32>,
    /// Files compressed at once [default: the number of CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..), help_heading = "Files")]
    pub jobs: Option<u16>,

    /// VACUUM (ANALYZE) tables with at least this share of dead tuples
    /// [default: 10%].
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, help_heading = "PostgreSQL")]
    pub min_dead: Option<f64>,
    /// With --full or --reindex: act on tables and indexes with at least
    /// this share of bloat [default: 20%].
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, help_heading = "PostgreSQL")]
    pub min_bloat: Option<f64>,
    /// VACUUM FULL bloated tables. It rewrites each table under an ACCESS
    /// EXCLUSIVE lock (no reads or writes until it is done), so it needs
    /// --yes.
    #[arg(long, help_heading = "PostgreSQL")]
    pub full: bool,
    /// Go ahead with --full.
    #[arg(long, help_heading = "PostgreSQL")]
    pub yes: bool,
    /// REINDEX CONCURRENTLY bloated indexes (reads and writes go on).
    #[arg(long, help_heading = "PostgreSQL")]
    pub reindex: bool,
    /// Only this table (NAME or SCHEMA.NAME); repeatable.
    #[arg(long, value_name = "TABLE", help_heading = "PostgreSQL")]
    pub table: Vec<String>,
    /// Give up on a table whose lock is not granted within this long, and
    /// go on with the next [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "PostgreSQL")]
    pub lock_timeout: Option<Duration>,
    /// Cancel any one statement (a VACUUM FULL, a bloat scan) that runs
    /// longer than this; 0s for no limit [default: 1h].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "PostgreSQL")]
    pub statement_timeout: Option<Duration>,

    /// sled: rebuild only when at least this share of the space on disk is
    /// reclaimable [default: 20%].
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, help_heading = "sled")]
    pub min_reclaim: Option<f64>,
    /// sled: rebuild whatever the reclaimable share.
    #[arg(long, help_heading = "sled")]
    pub force: bool,
    /// sled: keep the old copy beside the database as PATH.old-<time>
    /// instead of removing it after success.
    #[arg(long, help_heading = "sled")]
    pub keep_old: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// The kinds of target, for saying which flags belong to which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Sled,
    Files,
    Repo,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Postgres => "PostgreSQL targets",
            Kind::Sled => "sled targets",
            Kind::Files => "--files",
            Kind::Repo => "--repo",
        }
    }
}

impl Cli {
    /// Refuses flags that mean nothing for a target of `kind`, and
    /// --full without --yes (unless it is a dry run).
    pub fn check(&self, kind: Kind) -> Result<(), UsageError> {
        let flags: [(&str, bool, Kind); 15] = [
            ("--older-than", self.older_than.is_some(), Kind::Files),
            ("--max-unused", self.max_unused.is_some(), Kind::Repo),
            ("--level", self.level.is_some(), Kind::Files),
            ("--jobs", self.jobs.is_some(), Kind::Files),
            ("--min-dead", self.min_dead.is_some(), Kind::Postgres),
            ("--min-bloat", self.min_bloat.is_some(), Kind::Postgres),
            ("--full", self.full, Kind::Postgres),
            ("--yes", self.yes, Kind::Postgres),
            ("--reindex", self.reindex, Kind::Postgres),
            ("--table", !self.table.is_empty(), Kind::Postgres),
            (
                "--lock-timeout",
                self.lock_timeout.is_some(),
                Kind::Postgres,
            ),
            (
                "--statement-timeout",
                self.statement_timeout.is_some(),
                Kind::Postgres,
            ),
            ("--min-reclaim", self.min_reclaim.is_some(), Kind::Sled),
            ("--force", self.force, Kind::Sled),
            ("--keep-old", self.keep_old, Kind::Sled),
        ];
        if let Some((flag, _, owner)) = flags
            .iter()
            .find(|(_, given, owner)| *given && *owner != kind)
        {
            return Err(UsageError(format!(
                "{flag} applies to {}, not to {}",
                owner.name(),
                kind.name()
            )));
        }
        if self.full && !self.yes && !self.dry_run {
            return Err(UsageError(
                "--full runs VACUUM FULL, which holds an ACCESS EXCLUSIVE lock on each table \
                 while it is rewritten (no reads or writes meanwhile); add --yes to go ahead, \
                 or --dry-run to see which tables it would rewrite"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(value) if (0.0..=100.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a percentage from 0% to 100%")),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    ops_shared::duration::parse(text).map_err(|err| err.to_string())
}
