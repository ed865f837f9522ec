//! ops-verify: check backups and snapshot repositories in full and annotate
//! their records.
//!
//! Inputs (arguments or stdin records) are verified by a pool of workers,
//! several artifacts at once, while output keeps the input order: each
//! input gets a slot in a queue, and slots are written as they complete
//! from the front. Snapshot records from stdin are verified together at the
//! end of the input (see [`snapshots`]); their slots wait until then.

mod cli;
mod snapshots;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use clap::CommandFactory;
use jiff::Timestamp;
use ops_backup::pg::check::NotTested;
use ops_backup::{catalog, Format, Level};
use ops_shared::entry::{error, warn};
use ops_shared::progress;
use ops_shared::record::{human_bytes, Snapshot};
use ops_shared::{
    read_records, Backup, Output, OutputMode, Record, Status, UsageError, Verification,
};
use ops_snapshot::ReadData;
use snapshots::{Checked, SnapshotDepth};

pub use cli::Cli;

/// ops-verify as a process: the standard exit statuses (0 ok, 1 a problem, 2 a
/// usage error).
pub const TOOL: ops_shared::entry::Tool = ops_shared::entry::Tool {
    name: "ops-verify",
    classifiers: &[
        ops_shared::entry::classify_as::<ops_backup::Error>,
        ops_shared::entry::classify_as::<ops_snapshot::RepoError>,
    ],
    ..ops_shared::entry::STANDARD
};

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs ops-verify with `args` (including the program name).
pub fn run(args: Vec<OsString>) -> anyhow::Result<Status> {
    let Some(cli) = ops_shared::entry::parse_args::<Cli>(args)? else {
        return Ok(Status::Success);
    };
    let mut plan = Plan::of(&cli)?;
    let input = std::mem::take(&mut plan.input);
    let mut emitter = Emitter {
        out: Output::stdout(cli.output.mode()),
        mode: cli.output.mode(),
        tally: Tally::default(),
        failed: false,
    };
    progress::start("verifying", Some(0));
    let troubles = thread::scope(|scope| -> anyhow::Result<Troubles> {
        let (jobs_in, jobs_out) = channel::<Job>();
        let jobs_out = Arc::new(Mutex::new(jobs_out));
        for _ in 0..plan.jobs {
            let jobs_out = Arc::clone(&jobs_out);
            let depth = plan.depth.clone();
            scope.spawn(move || worker(&jobs_out, &depth));
        }
        let mut queue = Queue {
            pending: VecDeque::new(),
            jobs: jobs_in,
            limit: plan.jobs * 2,
            deferred: Vec::new(),
        };
        let troubles =
            queue_everything(&mut queue, &cli, input, plan.snapshot_depth, &mut |done| {
                emitter.emit(done)
            })?;
        queue.drain(&mut |done| emitter.emit(done))?;
        Ok(troubles)
    })?;
    progress::finish(emitter.tally.summary());
    emitter.out.finish()?;
    Ok(Status::problem_if(
        emitter.failed || troubles.unusable_path || troubles.unused_damage,
    ))
}

/// What to verify and how, settled before anything is read.
struct Plan {
    depth: Depth,
    snapshot_depth: SnapshotDepth,
    jobs: usize,
    input: Vec<Input>,
}

impl Plan {
    /// Fails (a usage error) on a terminal for stdin, a path given to
    /// `--repo` that is not a repository, or a bad input record.
    fn of(cli: &Cli) -> anyhow::Result<Plan> {
        cli.keys.install()?;
        let depth = Depth {
            level: match cli.level {
                cli::LevelArg::Quick => Level::Quick,
                cli::LevelArg::Full => Level::Full,
            },
            restore_test: cli.restore_test.clone(),
        };
        let jobs = cli
            .jobs
            .unwrap_or_else(|| thread::available_parallelism().map_or(1, std::num::NonZero::get))
            .max(1);
        let snapshot_depth = SnapshotDepth {
            read: match (cli.read_data, cli.read_data_subset) {
                (_, Some(percent)) => ReadData::Subset(percent),
                (true, None) => ReadData::All,
                (false, None) => ReadData::None,
            },
            lock_wait: cli.lock_wait,
        };
        let from_stdin = (cli.paths.is_empty() && cli.repo.is_empty())
            || cli.paths.iter().any(|p| p.as_os_str() == "-");
        if from_stdin && io::stdin().is_terminal() {
            return Err(UsageError(
                "give artifacts, backup directories or --repo REPO to verify, or pipe backup \
                 or snapshot records in"
                    .into(),
            )
            .into());
        }
        snapshots::check_repos(&cli.repo)?;
        let input = if from_stdin {
            read_input()?
        } else {
            Vec::new()
        };
        Ok(Plan {
            depth,
            snapshot_depth,
            jobs,
            input,
        })
    }
}

/// Paths and repositories that could not be verified at all, or held damage
/// no record shows.
#[derive(Default)]
struct Troubles {
    unusable_path: bool,
    unused_damage: bool,
}

/// Hands every path, repository and input record to the queue, in order.
fn queue_everything(
    queue: &mut Queue,
    cli: &Cli,
    input: Vec<Input>,
    snapshot_depth: SnapshotDepth,
    emit: &mut impl FnMut(Done) -> io::Result<()>,
) -> io::Result<Troubles> {
    let mut troubles = Troubles::default();
    for path in cli.paths.iter().filter(|p| p.as_os_str() != "-") {
        match backups_at(path) {
            Ok((backups, refused)) => {
                troubles.unusable_path |= refused;
                for backup in backups {
                    queue.submit(backup, emit)?;
                }
            }
            Err(err) => {
                error(format!("{err:#}"));
                troubles.unusable_path = true;
            }
        }
    }
    for root in &cli.repo {
        match snapshots::verify_repo(root, snapshot_depth) {
            Ok((checked, damaged)) => {
                troubles.unused_damage |= damaged;
                for checked in checked {
                    queue.ready(Done::Snapshot(Box::new(checked)), emit)?;
                }
            }
            Err(err) => {
                error(format!("{}: {err}", root.display()));
                troubles.unusable_path = true;
            }
        }
    }
    for item in input {
        match item {
            Input::Backup(backup) => queue.submit(*backup, emit)?,
            Input::Snapshot(snapshot) => queue.defer(*snapshot),
            Input::Raw(raw) => queue.ready(Done::Raw(raw), emit)?,
        }
    }
    troubles.unused_damage |= queue.verify_deferred(snapshot_depth);
    Ok(troubles)
}

/// Writes finished results in input order and keeps count of them.
struct Emitter {
    out: Output,
    mode: OutputMode,
    tally: Tally,
    failed: bool,
}

impl Emitter {
    fn emit(&mut self, done: Done) -> io::Result<()> {
        match done {
            Done::Raw(line) => self.out.raw(&line),
            Done::Backup(backup) => {
                let verification = backup.verification();
                let ok = verification.as_ref().is_some_and(|v| v.ok);
                self.tally.count(Thing::Backup, ok);
                self.failed |= !ok || verification.is_some_and(|v| v.not_tested.is_some());
                self.out.record(backup.as_ref())
            }
            Done::Snapshot(checked) => {
                self.tally.count(Thing::Snapshot, checked.ok);
                self.failed |= !checked.ok;
                if self.mode == OutputMode::Human {
                    let header = Snapshot::verified_header();
                    self.out
                        .row(Snapshot::TYPE, &header, checked.snapshot.verified_row());
                    Ok(())
                } else {
                    self.out.record(&checked.snapshot)
                }
            }
        }
    }
}

/// What was verified, for the summary line.
#[derive(Default)]
struct Tally {
    backups: (u64, u64),
    snapshots: (u64, u64),
}

#[derive(Clone, Copy)]
enum Thing {
    Backup,
    Snapshot,
}

impl Tally {
    fn count(&mut self, thing: Thing, ok: bool) {
        let (all, failed) = match thing {
            Thing::Backup => &mut self.backups,
            Thing::Snapshot => &mut self.snapshots,
        };
        *all += 1;
        *failed += u64::from(!ok);
    }

    /// `verified 3 backups (1 FAILED) and 2 snapshots, 1.2 GiB read`.
    fn summary(&self) -> String {
        let part = |(all, failed): (u64, u64), what: &str| match (all, failed) {
            (0, _) => None,
            (1, 0) => Some(format!("1 {what}")),
            (all, 0) => Some(format!("{all} {what}s")),
            (all, failed) => Some(format!("{all} {what}s ({failed} FAILED)")),
        };
        let parts: Vec<String> = [
            part(self.backups, "backup"),
            part(self.snapshots, "snapshot"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            return "nothing to verify".to_owned();
        }
        format!(
            "verified {}, {} read",
            parts.join(" and "),
            human_bytes(progress::counted().bytes)
        )
    }
}

enum Input {
    Backup(Box<Backup>),
    Snapshot(Box<Snapshot>),
    Raw(String),
}

/// Reads and checks all of stdin before anything is verified or a result
/// written: a backup record's id and path become file names
/// ([`catalog::check_record`]).
///
/// Fails (exit 2) on the first line that does not parse or is refused.
fn read_input() -> Result<Vec<Input>, UsageError> {
    let mut input = Vec::new();
    for record in read_records(io::stdin().lock()) {
        let record = record?;
        if record.is::<Backup>() {
            let backup: Backup = record.parse()?;
            catalog::check_record(&backup).map_err(|err| {
                UsageError(format!(
                    "input line {}: {err}; nothing was verified or written",
                    record.line
                ))
            })?;
            input.push(Input::Backup(Box::new(backup)));
        } else if record.is::<Snapshot>() {
            input.push(Input::Snapshot(Box::new(record.parse()?)));
        } else {
            input.push(Input::Raw(record.raw().to_owned()));
        }
    }
    Ok(input)
}

/// The backups a path argument names: one artifact, or a directory's
/// catalog; and whether the directory holds manifests that were refused.
fn backups_at(path: &Path) -> anyhow::Result<(Vec<Backup>, bool)> {
    if ops_storage::is_place(path)? {
        let (backups, leftovers) = catalog::list(path)?;
        leftovers.warnings.iter().for_each(warn);
        leftovers.refused.iter().for_each(error);
        return Ok((backups, !leftovers.refused.is_empty()));
    }
    if !ops_storage::exists(path)? {
        anyhow::bail!("{}: no such artifact or directory", path.display());
    }
    Ok((vec![catalog::record_of(path)?], false))
}

enum Done {
    Raw(String),
    Backup(Box<Backup>),
    Snapshot(Box<Checked>),
}

type Job = (Backup, Sender<Done>);

struct Queue {
    pending: VecDeque<Slot>,
    jobs: Sender<Job>,
    limit: usize,
    /// Snapshot records waiting for the end of the input.
    deferred: Vec<(Snapshot, Sender<Done>)>,
}

struct Slot {
    done: Receiver<Done>,
    /// Filled only by [`Queue::verify_deferred`]: never waited for before.
    deferred: bool,
}

impl Queue {
    fn submit(
        &mut self,
        backup: Backup,
        emit: &mut impl FnMut(Done) -> io::Result<()>,
    ) -> io::Result<()> {
        let (done, slot) = channel();
        progress::add_total(backup.bytes);
        let _ = self.jobs.send((backup, done));
        self.pending.push_back(Slot {
            done: slot,
            deferred: false,
        });
        self.flush(emit, self.limit)
    }

    /// Takes a snapshot record whose verification waits for the end of the
    /// input, when all of its repository's records are known.
    fn defer(&mut self, snapshot: Snapshot) {
        let (done, slot) = channel();
        self.deferred.push((snapshot, done));
        self.pending.push_back(Slot {
            done: slot,
            deferred: true,
        });
    }

    /// Verifies the deferred snapshot records; returns whether a repository
    /// holds damage none of them is affected by.
    fn verify_deferred(&mut self, depth: SnapshotDepth) -> bool {
        let (snapshots, slots): (Vec<Snapshot>, Vec<Sender<Done>>) =
            std::mem::take(&mut self.deferred).into_iter().unzip();
        if snapshots.is_empty() {
            return false;
        }
        let (checked, unused_damage) = snapshots::verify_records(snapshots, depth);
        for (checked, slot) in checked.into_iter().zip(slots) {
            let _ = slot.send(Done::Snapshot(Box::new(checked)));
        }
        unused_damage
    }

    fn ready(
        &mut self,
        item: Done,
        emit: &mut impl FnMut(Done) -> io::Result<()>,
    ) -> io::Result<()> {
        let (done, slot) = channel();
        let _ = done.send(item);
        self.pending.push_back(Slot {
            done: slot,
            deferred: false,
        });
        self.flush(emit, self.limit)
    }

    /// Writes finished slots from the front; blocks while more than `keep`
    /// are pending, unless the front waits for the end of the input.
    fn flush(
        &mut self,
        emit: &mut impl FnMut(Done) -> io::Result<()>,
        keep: usize,
    ) -> io::Result<()> {
        while let Some(front) = self.pending.front() {
            let waits_for_input = front.deferred && !self.deferred.is_empty();
            let done = if self.pending.len() > keep && !waits_for_input {
                front.done.recv().ok()
            } else {
                front.done.try_recv().ok()
            };
            let Some(done) = done else { break };
            self.pending.pop_front();
            emit(done)?;
        }
        Ok(())
    }

    fn drain(&mut self, emit: &mut impl FnMut(Done) -> io::Result<()>) -> io::Result<()> {
        self.flush(emit, 0)
    }
}

fn worker(jobs: &Mutex<Receiver<Job>>, depth: &Depth) {
    loop {
        let job = jobs.lock().ok().and_then(|jobs| jobs.recv().ok());
        let Some((mut backup, done)) = job else {
            return;
        };
        let verification = verify(&backup, depth);
        for problem in &verification.errors {
            error(format!("{}: {problem}", backup.id));
        }
        if let Some(why) = &verification.not_tested {
            error(format!(
                "{}: the restore test could not run: {why}; the backup itself verified ({}), \
                 its restore is not tested",
                backup.id, verification.level
            ));
        }
        if let Err(err) = catalog::save_verification(&backup, &verification) {
            warn(format!(
                "{}: cannot keep the verification result beside the artifact: {err}",
                backup.id
            ));
        }
        backup.annotate("verify", &verification);
        let _ = done.send(Done::Backup(Box::new(backup)));
    }
}

/// How thoroughly to verify.
#[derive(Clone, Debug)]
pub struct Depth {
    pub level: Level,
    /// `Some(server)` restores database backups into a scratch database on
    /// that server (`None`: the backup's own server).
    pub restore_test: Option<Option<String>>,
}

/// Verifies one backup; every problem found is in the result's errors.
pub fn verify(backup: &Backup, depth: &Depth) -> Verification {
    let started = Instant::now();
    let mut verification = Verification {
        level: depth.level.name().into(),
        ..Verification::default()
    };
    let present = ops_storage::exists(&backup.path);
    match Format::of(&backup.format) {
        None => verification.errors.push(format!(
            "format {:?} is not one this version of ops-verify checks",
            backup.format
        )),
        Some(_) if !present.as_ref().is_ok_and(|there| *there) => {
            verification.errors.push(match &present {
                Err(err) => format!("cannot read artifact {}: {err}", backup.path.display()),
                Ok(_) => format!("artifact {} is missing", backup.path.display()),
            });
        }
        Some(format) => {
            let reachable = reachable_depth(backup, depth);
            verification.level = reachable.level.name().into();
            check(format, backup, &reachable, &mut verification);
            if depth.restore_test.is_some() && reachable.restore_test.is_none() {
                verification.not_tested = Some("it is encrypted and no key is at hand".into());
            }
        }
    }
    Verification {
        ok: verification.errors.is_empty(),
        time: Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH),
        duration_seconds: Some(seconds(started)),
        ..verification
    }
}

/// How deep `backup` can be checked: an encrypted one without a key at
/// hand only as stored (quick), with a note saying how to go further.
fn reachable_depth(backup: &Backup, depth: &Depth) -> Depth {
    if depth.level == Level::Quick {
        return depth.clone();
    }
    match ops_backup::sealed::sealing_of(&backup.path) {
        Some(sealing) if !ops_shared::keys::can_open(&sealing) => {
            let how = if sealing.passphrase {
                "set OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND"
            } else {
                "give its key with --identity FILE or OPS_IDENTITY_FILE"
            };
            ops_shared::entry::note(format!(
                "{} is encrypted and no key is at hand: checked as stored (level quick); \
                 {how} to check its content",
                backup.id
            ));
            Depth {
                level: Level::Quick,
                restore_test: None,
            }
        }
        _ => depth.clone(),
    }
}

/// The artifact against its manifest and the record, then the restore test
/// if asked for and everything else passed.
fn check(format: Format, backup: &Backup, depth: &Depth, verification: &mut Verification) {
    let errors = &mut verification.errors;
    let findings = format.verify(&backup.path, depth.level);
    let stale = findings
        .artifact_sha256
        .as_ref()
        .is_some_and(|sha| *sha != backup.sha256);
    errors.extend(findings.errors);
    if stale && errors.is_empty() {
        errors.push("the artifact is not the one this record describes (checksum differs)".into());
    }
    if let Some(problem) = catalog::checksum_file_problem(&backup.path, &backup.sha256) {
        errors.push(problem);
    }
    let (Some(server), true) = (&depth.restore_test, errors.is_empty()) else {
        return;
    };
    let restoring = Instant::now();
    match format.restore_test(&backup.path, server.as_deref()) {
        Some(Ok(findings)) => {
            verification.level = "restore".into();
            verification.restore_seconds = Some(seconds(restoring));
            verification.errors.extend(findings.errors);
        }
        Some(Err(NotTested(why))) => verification.not_tested = Some(why),
        None => {}
    }
}

/// Seconds since `start`, to the millisecond.
fn seconds(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}
