//! The command line of ops-prune, turned into a checked [`Config`] before any
//! work starts. Parsing does no I/O.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use ops_shared::{OutputArgs, UsageError};

use crate::policy::{Count, Period, RetentionPolicy, Window};

/// Age out backups, snapshots and plain files with retention rules that
/// never lose the backup you need.
///
/// Candidates are the backups in the DIR arguments, the snapshots of the
/// --repo repositories, the files found by --files, and the `backup`,
/// `snapshot` and `file` records on stdin (when stdin is not a terminal):
/// `ops-snapshot list --repo R | ops-prune --keep-daily 7`. Rules have the
/// meaning restic's `forget` gives them and are applied per series (see
/// --group-by); an item is kept if any rule keeps it. Every candidate record
/// is written to stdout with `"prune": {"action": "keep"|"remove",
/// "reasons": [...], "done": bool}`; other records pass through. All input
/// is read and checked before anything is deleted.
///
/// Safety: the newest good backup or snapshot of a series is never removed
/// (unless --allow-remove-all); a backup that a kept one depends on is kept;
/// if a record on stdin says its verification failed, its series is not
/// pruned at all and the exit status is 1; an item whose last verification
/// failed does not count towards any --keep-* quota and is left for you to
/// inspect. Backup directories and repositories are locked while items are
/// deleted, so a backup, snapshot, gc or another prune there waits.
///
/// Snapshots: removing one forgets it (its manifest goes); the data only it
/// needed is freed by `ops-snapshot gc --repo R`, so `freed` counts nothing
/// for snapshots and the summary estimates what gc can free. A snapshot
/// needs no parent to be restored, so parents are not kept for their
/// children. Snapshot records on stdin are checked against their repository
/// (the snapshot is there, name, time, parent and paths match), in a dry
/// run too.
///
/// Exit status: 0 done; 1 a series was not pruned, a deletion failed, or
/// the lock was not free in time; 2 usage or input error (nothing deleted).
#[derive(Debug, Parser)]
#[command(name = "ops-prune", version, max_term_width = 100)]
pub struct Cli {
    /// Backup directories whose backups are candidates.
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// An ops-snapshot repository whose snapshots are candidates (repeatable).
    #[arg(long = "repo", value_name = "REPO")]
    pub repos: Vec<PathBuf>,
    /// Plain files as candidates: every file under a directory, or a glob
    /// (quote it: 'backups/*.sql'); by modification time (repeatable).
    #[arg(long, value_name = "DIR|GLOB")]
    pub files: Vec<String>,

    /// Keep the N newest items.
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = "Rules")]
    pub keep_last: Option<Count>,
    /// Keep the newest item of each of the last N hours that have items.
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = "Rules")]
    pub keep_hourly: Option<Count>,
    /// Keep the newest item of each of the last N days that have items.
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = "Rules")]
    pub keep_daily: Option<Count>,
    /// Keep the newest item of each of the last N ISO weeks (Monday to Sunday) that have items.
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = "Rules")]
    pub keep_weekly: Option<Count>,
    /// Keep the newest item of each of the last N months that have items.
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = "Rules")]
    pub keep_monthly: Option<Count>,
    /// Keep the newest item of each of the last N years that have items
    /// (N may be `unlimited` for every --keep-* count).
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = "Rules")]
    pub keep_yearly: Option<Count>,
    /// Keep everything within DURATION (30d, 1y, 6months) of the newest item
    /// of its series; measured from the newest item, not from now.
    #[arg(long, value_name = "DURATION", value_parser = parse_window, help_heading = "Rules")]
    pub keep_within: Option<Window>,
    /// Keep the newest item of each hour within DURATION of the newest item.
    #[arg(long, value_name = "DURATION", value_parser = parse_window, help_heading = "Rules")]
    pub keep_within_hourly: Option<Window>,
    /// Keep the newest item of each day within DURATION of the newest item.
    #[arg(long, value_name = "DURATION", value_parser = parse_window, help_heading = "Rules")]
    pub keep_within_daily: Option<Window>,
    /// Keep the newest item of each ISO week within DURATION of the newest item.
    #[arg(long, value_name = "DURATION", value_parser = parse_window, help_heading = "Rules")]
    pub keep_within_weekly: Option<Window>,
    /// Keep the newest item of each month within DURATION of the newest item.
    #[arg(long, value_name = "DURATION", value_parser = parse_window, help_heading = "Rules")]
    pub keep_within_monthly: Option<Window>,
    /// Keep the newest item of each year within DURATION of the newest item.
    #[arg(long, value_name = "DURATION", value_parser = parse_window, help_heading = "Rules")]
    pub keep_within_yearly: Option<Window>,
    /// Remove what is older than DURATION, measured from now to the second
    /// (the `find -mtime +N -delete` habit); keeps everything younger.
    #[arg(long, value_name = "DURATION", value_parser = parse_window, help_heading = "Rules")]
    pub older_than: Option<Window>,

    /// Apply the rules per series name (backups and snapshots) or per
    /// --files argument (files), or to all items of a directory or
    /// repository together.
    #[arg(long, value_enum, default_value_t = GroupBy::Name, value_name = "HOW")]
    pub group_by: GroupBy,
    /// Calendar buckets in UTC instead of the local time zone (TZ is honoured).
    #[arg(long)]
    pub utc: bool,
    /// Evaluate every rule as of TIME (RFC 3339, e.g. 2026-11-22T03:00:00Z),
    /// to test and explain a policy.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<Timestamp>,
    /// Show what would be kept and removed, and why; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Allow removing every item, including the newest backup or snapshot
    /// of a series.
    #[arg(long)]
    pub allow_remove_all: bool,
    /// How long to wait for a backup directory or repository that a
    /// backup, snapshot, gc or another prune holds.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_wait)]
    pub lock_wait: Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GroupBy {
    Name,
    None,
}

/// What a run is asked to do, checked.
#[derive(Debug)]
pub struct Config {
    pub dirs: Vec<PathBuf>,
    pub repos: Vec<PathBuf>,
    pub files: Vec<String>,
    pub policy: RetentionPolicy,
    pub group_by: GroupBy,
    pub zone: TimeZone,
    pub now: Timestamp,
    pub dry_run: bool,
    pub allow_remove_all: bool,
    pub lock_wait: Duration,
}

impl Cli {
    /// The checked configuration.
    ///
    /// Fails when no rule is given (unless --allow-remove-all) or TZ names no
    /// time zone.
    pub fn config(self) -> Result<Config, UsageError> {
        let counts = [
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        let windows = [
            self.keep_within_hourly,
            self.keep_within_daily,
            self.keep_within_weekly,
            self.keep_within_monthly,
            self.keep_within_yearly,
        ];
        // As in restic, 0 means the rule is not set.
        let set = |count: Option<Count>| count.filter(|c| *c != Count::Limited(0));
        let counts = counts.map(set);
        let policy = RetentionPolicy {
            last: set(self.keep_last),
            periods: Period::ALL
                .into_iter()
                .zip(counts)
                .filter_map(|(period, count)| Some((period, count?)))
                .collect(),
            within: self.keep_within,
            within_periods: Period::ALL
                .into_iter()
                .zip(windows)
                .filter_map(|(period, window)| Some((period, window?)))
                .collect(),
            older_than: self.older_than,
        };
        if policy.is_empty() && !self.allow_remove_all {
            return Err(UsageError(
                "no rule given, so every item would be removed; give one, e.g. --keep-last 7, \
                 --keep-daily 7 --keep-weekly 4, --keep-within 30d or --older-than 30d \
                 (or --allow-remove-all if you mean it)"
                    .into(),
            ));
        }
        Ok(Config {
            dirs: self.dirs,
            repos: self.repos,
            files: self.files,
            policy,
            group_by: self.group_by,
            zone: if self.utc {
                TimeZone::UTC
            } else {
                local_zone()?
            },
            now: self.now.unwrap_or_else(Timestamp::now),
            dry_run: self.dry_run,
            allow_remove_all: self.allow_remove_all,
            lock_wait: self.lock_wait,
        })
    }
}

fn local_zone() -> Result<TimeZone, UsageError> {
    match std::env::var_os("TZ") {
        Some(tz) if !tz.is_empty() => TimeZone::try_system().map_err(|err| {
            UsageError(format!(
                "TZ={}: {err}; set TZ to a zone such as Europe/Berlin, or use --utc",
                tz.to_string_lossy()
            ))
        }),
        _ => Ok(TimeZone::system()),
    }
}

fn parse_count(text: &str) -> Result<Count, String> {
    if text == "unlimited" {
        return Ok(Count::Unlimited);
    }
    text.parse()
        .map(Count::Limited)
        .map_err(|_| "expected a number of items, or `unlimited`".to_owned())
}

fn parse_window(text: &str) -> Result<Window, String> {
    Window::parse(text)
}

fn parse_wait(text: &str) -> Result<Duration, String> {
    ops_shared::duration::parse(text).map_err(|err| err.to_string())
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    text.parse()
        .map_err(|err| format!("{err}; write a time in RFC 3339, e.g. 2026-11-22T03:00:00Z"))
}
