//! ops-health: checks that report, never crash. Every check runs on its own
//! thread under one deadline, so a hung server cannot hold the others up;
//! each yields `check` records, and one that does not finish in time, or
//! fails to run at all, becomes `unknown` with the reason. The exit status
//! is the most severe status (crit, then warn, then unknown) as the
//! monitoring-plugins code: 0 ok, 1 warn, 2 crit, 3 unknown.

mod backups;
mod cli;
mod disk;
mod drain;
mod http;
mod level;
mod path;
mod postgres;
mod repo;
mod report;
mod sled;
mod sql_fix;

use std::ffi::OsString;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use clap::CommandFactory;
use ops_shared::record::Check;
use ops_shared::{Status, UsageError};

pub use cli::Cli;
use cli::Format;
use level::Level;

/// ops-health as a process: the monitoring-plugins statuses (0 ok, 1
/// warning, 2 critical, 3 unknown); a usage error or a panic is unknown.
pub const TOOL: ops_shared::entry::Tool = ops_shared::entry::Tool {
    name: "ops-health",
    usage: 3,
    failed: 1,
    internal: 3,
    classifiers: &[],
};

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// One check to run: what it is (for the unknown record if it never
/// finishes) and the work.
struct Job {
    check: &'static str,
    target: String,
    work: Box<dyn FnOnce() -> Vec<Check> + Send>,
}

impl Job {
    fn new(
        check: &'static str,
        target: String,
        work: impl FnOnce() -> Vec<Check> + Send + 'static,
    ) -> Self {
        Job {
            check,
            target,
            work: Box::new(work),
        }
    }
}

/// Runs ops-health with `args` (including the program name).
pub fn run(args: Vec<OsString>) -> anyhow::Result<Status> {
    let Some(cli) = ops_shared::entry::parse_args::<Cli>(args)? else {
        return Ok(Status::Success);
    };
    if !cli.has_checks() {
        return Err(UsageError(
            "no check given; ask for at least one: --disk PATH, --path PATH, --postgres URL, \
             --backups DIR, --repo REPO, --http URL, --sled PATH or --drain DIR"
                .into(),
        )
        .into());
    }
    if cli.prometheus_file.is_some() && cli.format != Format::Prometheus {
        return Err(UsageError("--prometheus-file goes with --format prometheus".into()).into());
    }
    if let Some((name, _)) = cli
        .sql_fix
        .iter()
        .find(|(name, _)| !cli.sql.iter().any(|(check, _)| check == name))
    {
        return Err(UsageError(format!(
            "--sql-fix {name}=... repairs the --sql check named {name}, and there is none; \
             give --sql {name}=QUERY too"
        ))
        .into());
    }
    // Repairs first, so the checks report what is left.
    let mut checks: Vec<Check> = Vec::new();
    if cli.fix {
        let dry_run = cli.dry_run;
        checks.extend(
            cli.backups
                .iter()
                .flat_map(|dir| backups::fix(dir, dry_run, cli.leftover_age)),
        );
        checks.extend(
            cli.repo
                .iter()
                .flat_map(|root| repo::fix(root, dry_run, cli.leftover_age)),
        );
        let batches = sql_fix::Batches {
            rows: cli.batch,
            dry_run,
        };
        for url in &cli.postgres {
            checks.extend(sql_fix::fix(&postgres_options(&cli, url), &batches));
        }
    }
    checks.extend(run_all(jobs(&cli), cli.timeout));
    if let Err(err) = report::write(&cli, &checks) {
        if err.is::<report::Unwritten>() {
            ops_shared::entry::error(&err);
            return Ok(Status::Code(Level::Unknown.exit_code()));
        }
        return Err(err);
    }
    let worst = checks
        .iter()
        .map(|check| Level::of(&check.status))
        .max()
        .unwrap_or(Level::Ok);
    Ok(Status::Code(worst.exit_code()))
}

fn jobs(cli: &Cli) -> Vec<Job> {
    let mut jobs = Vec::new();
    for path in &cli.disk {
        let (path, warn, crit) = (path.clone(), cli.disk_warn, cli.disk_crit);
        jobs.push(Job::new("disk", path.display().to_string(), move || {
            vec![disk::check(&path, warn, crit)]
        }));
    }
    for path in &cli.path {
        let path = path.clone();
        jobs.push(Job::new("path", path.display().to_string(), move || {
            vec![path::check(&path)]
        }));
    }
    for dir in &cli.drain {
        let (dir, max_age) = (dir.clone(), cli.drain_age);
        jobs.push(Job::new("drain", dir.display().to_string(), move || {
            vec![drain::check(&dir, max_age)]
        }));
    }
    for url in &cli.postgres {
        let options = postgres_options(cli, url);
        jobs.push(Job::new(
            "postgres",
            ops_shared::redact::redact(url),
            move || postgres::check(&options),
        ));
    }
    for dir in &cli.backups {
        let (dir, max_age, max_restore) = (dir.clone(), cli.max_age, cli.max_restore_time);
        jobs.push(Job::new("backups", dir.display().to_string(), move || {
            backups::check(&dir, max_age, max_restore)
        }));
    }
    for root in &cli.repo {
        let (root, max_age) = (root.clone(), cli.max_age);
        jobs.push(Job::new("repo", root.display().to_string(), move || {
            repo::check(&root, max_age)
        }));
    }
    for url in &cli.http {
        let (url, timeout) = (url.clone(), cli.timeout);
        jobs.push(Job::new("http", url.clone(), move || {
            vec![http::check(&url, timeout)]
        }));
    }
    for path in &cli.sled {
        let (path, deep) = (path.clone(), cli.deep);
        jobs.push(Job::new("sled", path.display().to_string(), move || {
            vec![sled::check(&path, deep)]
        }));
    }
    jobs
}

fn postgres_options(cli: &Cli, url: &str) -> postgres::Options {
    postgres::Options {
        url: url.to_owned(),
        sql: cli.sql.clone(),
        fixes: cli.sql_fix.clone(),
        sql_crit: cli.sql_crit,
        idle_warn: cli.idle_warn,
        timeout: cli.timeout,
    }
}

/// Checks get a moment beyond --timeout to report their own timeouts
/// (which say more) before they are declared unknown.
const GRACE: Duration = Duration::from_secs(1);

/// Runs every job at once; collects their records in the order given, with
/// an `unknown` record for a job that misses the deadline or dies.
fn run_all(jobs: Vec<Job>, timeout: Duration) -> Vec<Check> {
    let deadline = Instant::now() + timeout + GRACE;
    let pending: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let (done, result) = mpsc::channel();
            let work = job.work;
            thread::spawn(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                    .map_err(|panic| ops_shared::entry::panic_text(panic.as_ref()));
                let _ = done.send(outcome);
            });
            (job.check, job.target, result)
        })
        .collect();
    let mut checks = Vec::new();
    for (check, target, result) in pending {
        let wait = deadline.saturating_duration_since(Instant::now());
        match result.recv_timeout(wait) {
            Ok(Ok(records)) => checks.extend(records),
            Ok(Err(panic)) => checks.push(level::record(
                check,
                &target,
                Level::Unknown,
                format!("the check failed unexpectedly: {panic}"),
                std::collections::BTreeMap::default(),
            )),
            Err(_) => checks.push(level::record(
                check,
                &target,
                Level::Unknown,
                format!(
                    "did not finish within {}; raise --timeout or see why {target} is slow",
                    humantime::format_duration(timeout)
                ),
                std::collections::BTreeMap::default(),
            )),
        }
    }
    checks
}
