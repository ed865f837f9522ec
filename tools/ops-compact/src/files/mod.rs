//! `--files DIR|GLOB --older-than D`: compress old plain files to FILE.zst
//! in place, the logrotate/`find -exec zstd --rm` habit done safely.
//!
//! The plan ([`plan`]) decides about every file first; a dry run prints it.
//! A real run compresses the chosen files on several threads ([`compress`]),
//! writing one `compact` record per file in the plan's order, as soon as it
//! and those before it are done.

mod compress;
mod plan;
mod writers;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ops_shared::path_text::encode;
use ops_shared::record::{human_bytes, Compact, Record};
use ops_shared::{Output, OutputMode, Status};

use crate::cli::Cli;
use compress::{Codec, CompressError, Outcome};
use plan::Candidate;

/// What --files is asked to do.
pub struct Options {
    pub older_than: Duration,
    pub level: i32,
    pub jobs: usize,
    pub dry_run: bool,
    pub mode: OutputMode,
}

impl From<&Cli> for Options {
    fn from(cli: &Cli) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Options {
            older_than: cli.older_than.unwrap_or(Duration::from_secs(86400)),
            level: cli.level.unwrap_or(3),
            jobs: cli.jobs.map_or(cpus, usize::from),
            dry_run: cli.dry_run,
            mode: cli.output.mode(),
        }
    }
}

/// Compresses what `args` name (see the module docs).
///
/// Fails with a usage error for arguments that name nothing or a backup
/// directory, before anything is compressed; a file that fails is reported
/// and the run goes on, ending in [`Status::Problem`].
pub fn run(args: &[String], options: &Options, out: &mut Output) -> anyhow::Result<Status> {
    let candidates = plan::plan(args, options.older_than)?;
    let mut summary = Summary::default();
    if options.dry_run {
        for candidate in &candidates {
            let record = match &candidate.skip {
                None => record(candidate, "would-compress", candidate.meta.len(), None),
                Some(reason) => skipped(candidate, reason),
            };
            summary.add(&record);
            crate::report::write(out, options.mode, &record)?;
        }
        summary.report(true);
        return Ok(Status::Success);
    }
    let work: Vec<usize> = (0..candidates.len())
        .filter(|&i| candidates[i].skip.is_none())
        .collect();
    let pool = Pool {
        candidates: &candidates,
        work: &work,
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        finished: Mutex::new(BTreeMap::new()),
        level: options.level,
    };
    let helpers = options.jobs.clamp(1, work.len().max(1)) - 1;
    let mut emit_from = 0;
    let mut emit = |last: bool, out: &mut Output| -> anyhow::Result<()> {
        let mut finished = pool
            .finished
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while emit_from < candidates.len() {
            let candidate = &candidates[emit_from];
            let record = match (&candidate.skip, finished.remove(&emit_from)) {
                (Some(reason), _) => skipped(candidate, reason),
                (None, Some(outcome)) => done_record(candidate, outcome),
                (None, None) if last => done_record(candidate, Err(CompressError::NotRun)),
                (None, None) => return Ok(()),
            };
            summary.add(&record);
            crate::report::write(out, options.mode, &record)?;
            emit_from += 1;
        }
        Ok(())
    };
    let unsynced = std::thread::scope(|scope| -> anyhow::Result<bool> {
        let helpers: Vec<_> = (0..helpers)
            .map(|_| scope.spawn(|| pool.work(|| Ok(()))))
            .collect();
        // This thread compresses too, and between its files writes the
        // records that are ready, in the plan's order.
        let mut unsynced = pool.work(|| emit(false, out))?;
        for helper in helpers {
            unsynced |= helper.join().unwrap_or(Ok(true))?;
        }
        emit(true, out)?;
        Ok(unsynced)
    })?;
    summary.report(false);
    Ok(Status::problem_if(summary.failed > 0 || unsynced))
}

/// The files to compress, shared by the threads that compress them.
struct Pool<'a> {
    candidates: &'a [Candidate],
    work: &'a [usize],
    next: AtomicUsize,
    /// Set when records can no longer be written (stdout closed): the
    /// others finish the file they are on and start no other.
    stop: AtomicBool,
    finished: Mutex<BTreeMap<usize, Result<Outcome, CompressError>>>,
    level: i32,
}

impl Pool<'_> {
    /// Compresses files until none is left, calling `between` after each;
    /// whether some directory could not be fsynced at the end.
    fn work(&self, mut between: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<bool> {
        let mut codec = match Codec::new(self.level) {
            Ok(codec) => codec,
            Err(err) => {
                // The other threads take this one's share.
                ops_shared::entry::error(format!("zstd: {err}"));
                return Ok(false);
            }
        };
        let mut stopped = Ok(());
        while !self.stop.load(Ordering::Relaxed) {
            let at = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(&index) = self.work.get(at) else {
                break;
            };
            let outcome = codec.compress(&self.candidates[index]);
            self.finished
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(index, outcome);
            if let Err(err) = between() {
                self.stop.store(true, Ordering::Relaxed);
                stopped = Err(err);
            }
        }
        let synced = codec.sync_dirs();
        stopped?;
        if let Err(err) = synced {
            ops_shared::entry::error(format!("cannot fsync a directory of removed files: {err}"));
            return Ok(true);
        }
        Ok(false)
    }
}

fn record(candidate: &Candidate, action: &str, after: u64, reason: Option<&str>) -> Compact {
    let mut record = Compact {
        target: encode(&candidate.path),
        kind: "file".into(),
        action: action.into(),
        before_bytes: candidate.meta.len(),
        after_bytes: after,
        extra: serde_json::Map::new(),
    };
    if action != "skipped" {
        record.annotate("output", encode(&candidate.output()));
    }
    if let Some(reason) = reason {
        record.annotate("reason", reason);
    }
    record
}

fn skipped(candidate: &Candidate, reason: &str) -> Compact {
    record(candidate, "skipped", candidate.meta.len(), Some(reason))
}

fn done_record(candidate: &Candidate, outcome: Result<Outcome, CompressError>) -> Compact {
    match outcome {
        Ok(Outcome::Compressed { after_bytes }) => {
            record(candidate, "compressed", after_bytes, None)
        }
        Ok(Outcome::Skipped(reason)) => skipped(candidate, &reason),
        Err(err) => {
            ops_shared::entry::error(&err);
            let mut record = record(candidate, "failed", candidate.meta.len(), None);
            record.annotate("error", err.to_string());
            record
        }
    }
}

/// Totals for the closing line on stderr.
#[derive(Default)]
struct Summary {
    compressed: u64,
    skipped: u64,
    failed: u64,
    before: u64,
    after: u64,
}

impl Summary {
    fn add(&mut self, record: &Compact) {
        ops_shared::progress::add_files(1);
        ops_shared::progress::add_bytes(record.before_bytes);
        match record.action.as_str() {
            "compressed" | "would-compress" => {
                self.compressed += 1;
                self.before += record.before_bytes;
                self.after += record.after_bytes;
            }
            "skipped" => self.skipped += 1,
            _ => self.failed += 1,
        }
    }

    fn report(&self, dry_run: bool) {
        let text = if dry_run {
            format!(
                "would compress {} files ({}); {} left alone",
                self.compressed,
                human_bytes(self.before),
                self.skipped
            )
        } else {
            format!(
                "compressed {} files, {} -> {}; {} left alone, {} failed",
                self.compressed,
                human_bytes(self.before),
                human_bytes(self.after),
                self.skipped,
                self.failed
            )
        };
        ops_shared::progress::finish(text);
    }
}
