//! The command line of ops-health. Parsing does no I/O.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ops_shared::OutputArgs;

/// Tell whether the service is healthy, in a form people, jq and monitors
/// understand: one `check` record per finding (a coloured table on a
/// terminal), or Prometheus textfile or Nagios output. The exit status is
/// the most severe status found (crit over warn over unknown) in the
/// monitoring-plugins convention: 0 ok, 1 warn, 2 crit, 3 unknown (also for
/// usage errors, and when --prometheus-file cannot be written).
///
/// Every check is a repeatable flag; all run at once, each within
/// --timeout. A check that cannot finish (timeout, permission denied) is
/// `unknown` with the reason, never silently ok.
#[derive(Debug, Parser)]
#[command(name = "ops-health", version, max_term_width = 100)]
pub struct Cli {
    /// Space and inodes used on the filesystem holding PATH.
    #[arg(long, value_name = "PATH", help_heading = "Checks")]
    pub disk: Vec<PathBuf>,
    /// PATH exists (a directory if written with a trailing /); a
    /// directory must be writable by this user.
    #[arg(long, value_name = "PATH", help_heading = "Checks")]
    pub path: Vec<PathBuf>,
    /// A PostgreSQL server: reachable and how fast, version, connections
    /// against max_connections, database size, old and idle-in-transaction
    /// sessions, longest query, replication lag on a standby, dead tuples,
    /// and whether the installed pg_dump can dump it.
    #[arg(long, value_name = "URL", help_heading = "Checks")]
    pub postgres: Vec<String>,
    /// With --postgres: a query returning one number; 0 is ok, more is
    /// warn (crit with --sql-crit). E.g. 'orphans=SELECT count(*) FROM ...'.
    /// It runs in a READ ONLY transaction, which stops writes to tables but
    /// not functions that act on the server (pg_terminate_backend,
    /// pg_cancel_backend, nextval): connect as a role that may only read,
    /// such as a member of pg_monitor.
    #[arg(long, value_name = "NAME=QUERY", value_parser = parse_sql, requires = "postgres", help_heading = "Checks")]
    pub sql: Vec<(String, String)>,
    /// With --fix: the repair of the --sql check of the same NAME, one
    /// statement taking the batch size as $1, e.g. 'orphans=DELETE FROM
    /// posts WHERE id IN (SELECT ... LIMIT $1)'. It runs in batches of
    /// --batch rows, each its own transaction with a `fix` record, until
    /// the check is 0; it stops when a batch changes nothing or the check
    /// does not go down. Without --fix it is not run.
    #[arg(long, value_name = "NAME=STATEMENT", value_parser = parse_fix, requires = "sql", help_heading = "Checks")]
    pub sql_fix: Vec<(String, String)>,
    /// Backup directory: per series the newest backup's age (crit past
    /// --max-age), its verification, count and size; leftovers of crashed
    /// runs (warn).
    #[arg(long, value_name = "DIR", help_heading = "Checks")]
    pub backups: Vec<PathBuf>,
    /// An ops-snapshot repository: per series (snapshot name) the newest
    /// snapshot's age (crit past --max-age, or when there is none); the
    /// chunk index (crit when damaged; a missing one is rebuilt, as
    /// ops-snapshot does); temporary files of crashed runs older than an
    /// hour (warn).
    #[arg(long, value_name = "REPO", help_heading = "Checks")]
    pub repo: Vec<PathBuf>,
    /// An HTTP endpoint: a 2xx answer within the timeout, and how fast.
    #[arg(long, value_name = "URL", help_heading = "Checks")]
    pub http: Vec<String>,
    /// A sled database: size on disk, trees, keys, whether sled recovered
    /// it on open; in use by another process is reported, not critical.
    #[arg(long, value_name = "PATH", help_heading = "Checks")]
    pub sled: Vec<PathBuf>,
    /// A directory that should drain (a spool or buffer a service empties):
    /// files under it older than --drain-age are left behind, by a crash or
    /// a stuck consumer (warn, with how many and the oldest's age).
    /// Symlinks are not followed.
    #[arg(long, value_name = "DIR", help_heading = "Checks")]
    pub drain: Vec<PathBuf>,

    /// --disk: warn at this share of space or inodes used.
    #[arg(long, value_name = "PERCENT", default_value = "80%", value_parser = parse_percent)]
    pub disk_warn: f64,
    /// --disk: crit at this share of space or inodes used.
    #[arg(long, value_name = "PERCENT", default_value = "90%", value_parser = parse_percent)]
    pub disk_crit: f64,
    /// --backups, --repo: the newest backup or snapshot of a series may be
    /// this old (the recovery point objective).
    #[arg(long, value_name = "DURATION", default_value = "26h", value_parser = parse_duration)]
    pub max_age: Duration,
    /// --backups: the newest restore test of each series (ops-verify
    /// --restore-test) may have taken this long (the recovery time
    /// objective): warn when it took longer, crit when there is none, it
    /// failed, or it is older than --max-age.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_restore_time: Option<Duration>,
    /// --drain: files may stay this long (--max-age is the backups').
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub drain_age: Duration,
    /// --postgres: warn about transactions open, or sessions idle in a
    /// transaction, for longer than this.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub idle_warn: Duration,
    /// --sql: a nonzero result is crit instead of warn.
    #[arg(long)]
    pub sql_crit: bool,
    /// --sled: also report sled's checksum of every key and value.
    #[arg(long)]
    pub deep: bool,
    /// How long each check may take before it is reported unknown.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Repair what is safe to repair, and say what was done: temporary
    /// files of crashed runs in --backups directories and --repo
    /// repositories, and unfinished uploads in --backups buckets, older than
    /// --leftover-age (only while nothing else holds them), a
    /// damaged chunk index of a --repo repository, rebuilt from its packs
    /// (while no gc or prune runs), and what --sql checks find, with their
    /// --sql-fix repairs. Repairs run first; the checks then report what
    /// is left. Locks need no repair: flock(2) locks are dropped by the
    /// kernel when their holder dies, lock objects in a bucket go stale.
    #[arg(long)]
    pub fix: bool,
    /// With --fix: how old a temporary file or unfinished upload must be to
    /// be removed (a younger one may belong to a run still going, when the
    /// place cannot be locked).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration, requires = "fix")]
    pub leftover_age: Duration,
    /// --sql-fix: rows per batch, the $1 of each statement.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..))]
    pub batch: i64,
    /// With --fix: say what would be repaired, change nothing.
    #[arg(long, requires = "fix")]
    pub dry_run: bool,
    /// Output format: records (a table on a terminal), prometheus
    /// (node_exporter textfile format) or nagios (status line and perfdata).
    #[arg(long, value_enum, default_value_t = Format::Records)]
    pub format: Format,
    /// With --format prometheus: write to FILE atomically instead of stdout
    /// (for node_exporter's textfile collector). A FILE it replaces keeps
    /// its owner, group and mode; a new one is made readable by all (0644).
    /// One that cannot be written is an error (exit 3), whatever the checks
    /// found.
    #[arg(long, value_name = "FILE")]
    pub prometheus_file: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Records,
    Prometheus,
    Nagios,
}

impl Cli {
    /// Whether any check was asked for.
    pub fn has_checks(&self) -> bool {
        !(self.disk.is_empty()
            && self.path.is_empty()
            && self.postgres.is_empty()
            && self.backups.is_empty()
            && self.repo.is_empty()
            && self.http.is_empty()
            && self.sled.is_empty()
            && self.drain.is_empty())
    }
}

fn parse_sql(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, query)) if !name.trim().is_empty() && !query.trim().is_empty() => {
            Ok((name.trim().to_owned(), query.trim().to_owned()))
        }
        _ => Err("write NAME=QUERY, e.g. 'orphans=SELECT count(*) FROM posts WHERE ...'".into()),
    }
}

fn parse_fix(text: &str) -> Result<(String, String), String> {
    parse_sql(text).map_err(|_| {
        "write NAME=STATEMENT with the NAME of a --sql check, e.g. \
         'orphans=DELETE FROM posts WHERE id IN (SELECT ... LIMIT $1)'"
            .into()
    })
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(value) if (0.0..=100.0).contains(&value) => Ok(value),
        _ => Err("expected a percentage from 0 to 100, e.g. 80%".into()),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    ops_shared::duration::parse(text).map_err(|err| err.to_string())
}
