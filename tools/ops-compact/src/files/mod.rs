//! `--files DIR|GLOB --older-than D`: compress old plain files to FILE.zst
//! in place, the logrotate/`find -exec zstd --rm` habit done safely.
//!
//! The plan ([`plan`]) decides about every file first; a dry run prints it.
//! A real run compresses the chosen files on several threads ([`compress`]),
//! writing one `compact` record per file in the plan's order, each as soon
//! as it and those before it are done.

mod compress;
mod plan;
mod writers;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
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
    let next = AtomicUsize::new(0);
    let (done, results) = mpsc::channel::<(usize, Result<Outcome, CompressError>)>();
    let jobs = options.jobs.clamp(1, work.len().max(1));
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..jobs {
            let done = done.clone();
            let (next, work, candidates) = (&next, &work, &candidates);
            let level = options.level;
            scope.spawn(move || {
                let mut codec = match Codec::new(level) {
                    Ok(codec) => codec,
                    Err(err) => {
                        ops_shared::entry::error(format!("zstd: {err}"));
                        return;
                    }
                };
                loop {
                    let at = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&index) = work.get(at) else { break };
                    let outcome = codec.compress(&candidates[index]);
                    if done.send((index, outcome)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done);
        // Records go out in the plan's order: skipped files as their turn
        // comes, compressed ones when their worker reports.
        let mut finished = BTreeMap::new();
        let mut emit_from = 0;
        let mut emit = |finished: &mut BTreeMap<usize, Result<Outcome, CompressError>>,
                        last: bool,
                        out: &mut Output|
         -> anyhow::Result<()> {
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
        for (index, outcome) in results {
            finished.insert(index, outcome);
            emit(&mut finished, false, out)?;
        }
        emit(&mut finished, true, out)?;
        Ok(())
    })?;
    summary.report(false);
    Ok(Status::problem_if(summary.failed > 0))
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
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            ops_shared::entry::note(text);
        }
    }
}
