//! One run of ops-prune, step by step: check the arguments, gather every
//! candidate and check it under the locks, judge them all, and only then
//! delete (or, with `--dry-run`, say what would go) and report.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, IsTerminal};
use std::path::PathBuf;

use anyhow::Context;
use ops_backup::catalog;
use ops_shared::entry::error;
use ops_shared::lock::{Access, LockError};
use ops_shared::output::OutputMode;
use ops_shared::{read_records, Status, UsageError};
use ops_storage::PlaceLock;

use crate::candidates::Candidates;
use crate::cli::Config;
use crate::execute::{execute, Outcome};
use crate::item::{Item, Subject};
use crate::plan::{self, Plan, Rules};
use crate::report;
use crate::snapshots::Repos;

/// Runs the prune `config` asks for, writing records in `mode`.
pub fn prune(config: &Config, mode: OutputMode) -> anyhow::Result<Status> {
    let stdin_is_terminal = io::stdin().is_terminal();
    check_arguments(config, stdin_is_terminal)?;
    let gathered = gather(config, stdin_is_terminal)?;
    let candidates = &gathered.candidates;
    let (plan, mixed) = judge(candidates, config);
    let outcome = if config.dry_run {
        Outcome::planned(&plan)
    } else {
        for lock in &gathered.locks {
            lock.ensure_held()?;
        }
        execute(&candidates.items, &plan, &gathered.repos)
    };
    for why in &plan.halted {
        error(format!(
            "{why}; re-verify it (ops-verify) or remove it by hand, then prune again"
        ));
    }
    mixed.iter().for_each(error);
    report::write(candidates, &plan, &outcome, mode)?;
    report::summarize(&candidates.items, &plan, &outcome, config.dry_run);
    Ok(Status::problem_if(
        !plan.halted.is_empty() || !mixed.is_empty() || outcome.failures > 0,
    ))
}

/// Fails (exit 2) when there is nothing to prune, or a DIR is not a directory.
fn check_arguments(config: &Config, stdin_is_terminal: bool) -> Result<(), UsageError> {
    if config.dirs.is_empty()
        && config.files.is_empty()
        && config.repos.is_empty()
        && stdin_is_terminal
    {
        return Err(UsageError(
            "nothing to prune: give backup directories, --repo REPO, --files DIR|GLOB, \
             or pipe records in"
                .into(),
        ));
    }
    for dir in &config.dirs {
        // A bucket's errors are said when it is listed.
        if !ops_storage::is_remote(dir) && !dir.is_dir() {
            let hint = if dir.is_file() {
                "; to prune plain files use --files (quote a glob: --files 'backups/*.sql')"
            } else {
                ""
            };
            return Err(UsageError(format!(
                "{}: not a backup directory{hint}",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Every candidate, checked, with what a real run holds while it deletes.
struct Gathered {
    locks: Vec<PlaceLock>,
    repos: Repos,
    candidates: Candidates,
}

/// Reads stdin, opens the repositories, takes the locks (not in a dry
/// run), then lists the directories, repositories and files and checks
/// the records from stdin against what is there.
fn gather(config: &Config, stdin_is_terminal: bool) -> anyhow::Result<Gathered> {
    let mut candidates = Candidates::default();
    if !stdin_is_terminal {
        candidates.add_stdin(read_records(io::stdin().lock()), config.group_by)?;
    }
    let repo_args: Vec<PathBuf> = config
        .repos
        .iter()
        .map(|root| candidates.canonical_repo(root))
        .collect();
    let mut repo_roots = candidates.snapshot_repos();
    repo_roots.extend(repo_args.iter().cloned());
    let mut repos = Repos::open(repo_roots.iter().map(PathBuf::as_path))?;
    let locks = if config.dry_run {
        Vec::new()
    } else {
        let locks = lock_backup_dirs(&candidates, &config.dirs, config.lock_wait)?;
        repos.lock(config.lock_wait)?;
        locks
    };
    for dir in &config.dirs {
        candidates.add_dir(dir, config.group_by)?;
    }
    let mut listed: BTreeMap<PathBuf, Vec<_>> = BTreeMap::new();
    for (root, snapshot) in repos.list(&repo_args)? {
        listed.entry(root).or_default().push(snapshot);
    }
    for root in &repo_args {
        let snapshots = listed.remove(root).unwrap_or_default();
        candidates.add_snapshots(root, snapshots, config.group_by);
    }
    for files in &config.files {
        candidates.add_files(files, config.group_by)?;
    }
    if !config.dry_run {
        candidates.check_stdin_backups()?;
    }
    candidates.check_stdin_snapshots(&repos)?;
    Ok(Gathered {
        locks,
        repos,
        candidates,
    })
}

/// The plan for every candidate, with the groups of mixed sources kept
/// whole; returns the plan and why those groups were kept.
fn judge(candidates: &Candidates, config: &Config) -> (Plan, Vec<String>) {
    let judged: Vec<_> = candidates
        .items
        .iter()
        .map(|item| item.candidate.clone())
        .collect();
    let mut plan = plan::plan(
        &judged,
        &Rules {
            policy: &config.policy,
            now: config.now,
            zone: &config.zone,
            allow_remove_all: config.allow_remove_all,
        },
    );
    let mixed = plan::keep_groups(&mut plan, &judged, &mixed_series(&candidates.items));
    (plan, mixed)
}

/// The groups of backups that hold more than one source, with why each is
/// left whole (see [`catalog::mixed_series`]).
fn mixed_series(items: &[Item]) -> BTreeMap<String, String> {
    let mut groups: BTreeMap<&str, Vec<ops_shared::Backup>> = BTreeMap::new();
    for item in items {
        if let Subject::Backup(backup) = &item.subject {
            groups
                .entry(&item.candidate.group)
                .or_default()
                .push(backup.clone());
        }
    }
    groups
        .into_iter()
        .filter_map(|(group, backups)| {
            let (_, sources) = catalog::mixed_series(&backups).pop()?;
            let why = format!(
                "{group} is not pruned: it holds backups of {} sources ({}), which retention \
                 cannot tell apart; back each up with its own --name (ops-backup create \
                 --name) and sort out the backups already there by hand",
                sources.len(),
                sources.join(", ")
            );
            Some((group.to_owned(), why))
        })
        .collect()
}

/// Exclusive locks on every backup directory an item may be removed from,
/// taken in a fixed order so two prunes cannot deadlock.
fn lock_backup_dirs(
    candidates: &Candidates,
    dirs: &[PathBuf],
    wait: std::time::Duration,
) -> anyhow::Result<Vec<PlaceLock>> {
    let mut all = BTreeSet::new();
    for dir in dirs {
        if ops_storage::is_remote(dir) {
            all.insert(dir.clone());
            continue;
        }
        all.insert(fs::canonicalize(dir).with_context(|| format!("cannot use {}", dir.display()))?);
    }
    // A series halted by a failed verification upstream loses nothing, so
    // its records lock nothing either.
    for item in &candidates.items {
        if let (Subject::Backup(_), false) = (&item.subject, item.candidate.failed_upstream) {
            let dir = catalog::parent_dir(&item.path);
            all.insert(dir.to_owned());
        }
    }
    all.iter()
        .map(|dir| {
            ops_storage::lock(dir, Access::Exclusive, wait, crate::TOOL.name).map_err(|err| {
                match err {
                    LockError::Io { .. } => anyhow::anyhow!(
                        "cannot lock backup directory {} to delete from it: {err}; \
                     run ops-prune as the user that owns it",
                        dir.display()
                    ),
                    held => held.into(),
                }
            })
        })
        .collect()
}
