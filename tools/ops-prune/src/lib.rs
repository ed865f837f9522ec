//! ops-prune: age out backups, snapshots and plain files with retention
//! rules.
//!
//! A run reads and checks all of its input first (stdin to the end, every
//! argument), locks the backup directories and snapshot repositories it may
//! delete from, lists them, and judges every candidate ([`plan`]); only then
//! does it delete, or, with `--dry-run`, say what it would delete.
//! [`policy`] holds the rules, [`candidates`] where items come from,
//! [`snapshots`] what is special about snapshots.

pub mod candidates;
mod cli;
pub mod plan;
pub mod policy;
pub mod snapshots;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use ops_backup::catalog;
use ops_shared::entry::{error, note};
use ops_shared::ids::compare_dated;
use ops_shared::lock::{Access, DirLock, LockError};
use ops_shared::output::OutputMode;
use ops_shared::record::human_bytes;
use ops_shared::{read_records, Output, Record, Status, UsageError};
use serde::Serialize;

use candidates::{Candidates, Item, Line, Subject};
pub use cli::Cli;
use plan::{Plan, Rules};
use snapshots::Repos;

/// ops-prune as a process: the standard exit statuses (0 ok, 1 a problem, 2 a
/// usage error).
pub const TOOL: ops_shared::entry::Tool = ops_shared::entry::Tool {
    name: "ops-prune",
    classifiers: &[ops_shared::entry::classify_as::<ops_snapshot::RepoError>],
    ..ops_shared::entry::STANDARD
};

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// What ops-prune adds to each candidate record as `"prune"`.
#[derive(Clone, Debug, Serialize)]
pub struct PruneNote {
    /// keep or remove.
    pub action: &'static str,
    pub reasons: Vec<String>,
    /// Whether the action was carried out (false in a dry run).
    pub done: bool,
}

/// Runs ops-prune with `args` (including the program name).
pub fn run(args: Vec<OsString>) -> anyhow::Result<Status> {
    let Some(cli) = ops_shared::entry::parse_args::<Cli>(args)? else {
        return Ok(Status::Success);
    };
    let mode = cli.output.mode();
    let config = cli.config()?;
    let stdin_is_terminal = io::stdin().is_terminal();
    if config.dirs.is_empty()
        && config.files.is_empty()
        && config.repos.is_empty()
        && stdin_is_terminal
    {
        return Err(UsageError(
            "nothing to prune: give backup directories, --repo REPO, --files DIR|GLOB, \
             or pipe records in"
                .into(),
        )
        .into());
    }
    for dir in &config.dirs {
        if !dir.is_dir() {
            let hint = if dir.is_file() {
                "; to prune plain files use --files (quote a glob: --files 'backups/*.sql')"
            } else {
                ""
            };
            return Err(
                UsageError(format!("{}: not a backup directory{hint}", dir.display())).into(),
            );
        }
    }

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
    let _locks = if config.dry_run {
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
    let outcome = if config.dry_run {
        Outcome::planned(&plan)
    } else {
        execute(&candidates.items, &plan, &repos)
    };
    for why in &plan.halted {
        error(format!(
            "{why}; re-verify it (ops-verify) or remove it by hand, then prune again"
        ));
    }
    mixed.iter().for_each(error);
    write(&candidates, &plan, &outcome, mode)?;
    summarize(&candidates.items, &plan, &outcome, config.dry_run);
    Ok(Status::problem_if(
        !plan.halted.is_empty() || !mixed.is_empty() || outcome.failures > 0,
    ))
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
) -> anyhow::Result<Vec<DirLock>> {
    let mut all = BTreeSet::new();
    for dir in dirs {
        all.insert(fs::canonicalize(dir).with_context(|| format!("cannot use {}", dir.display()))?);
    }
    // A series halted by a failed verification upstream loses nothing, so
    // its records lock nothing either.
    for item in &candidates.items {
        if let (Subject::Backup(_), false) = (&item.subject, item.candidate.failed_upstream) {
            all.insert(catalog::parent_dir(&item.path).to_owned());
        }
    }
    all.iter()
        .map(|dir| {
            DirLock::acquire(dir, Access::Exclusive, wait, "ops-prune").map_err(|err| match err {
                LockError::Io { .. } => anyhow::anyhow!(
                    "cannot lock backup directory {} to delete from it: {err}; \
                     run ops-prune as the user that owns it",
                    dir.display()
                ),
                held => held.into(),
            })
        })
        .collect()
}

/// What was done to each item.
struct Outcome {
    done: Vec<bool>,
    freed: u64,
    failures: usize,
}

impl Outcome {
    fn planned(plan: &Plan) -> Self {
        Outcome {
            done: vec![false; plan.decisions.len()],
            freed: 0,
            failures: 0,
        }
    }
}

fn execute(items: &[Item], plan: &Plan, repos: &Repos) -> Outcome {
    let mut outcome = Outcome {
        done: plan.decisions.iter().map(|d| d.keep).collect(),
        freed: 0,
        failures: 0,
    };
    for (index, (item, decision)) in items.iter().zip(&plan.decisions).enumerate() {
        if decision.keep {
            continue;
        }
        match remove(item, repos) {
            Ok(freed) => {
                outcome.freed += freed;
                outcome.done[index] = true;
            }
            Err(err) => {
                error(format!("{err:#}"));
                outcome.failures += 1;
            }
        }
    }
    outcome
}

/// Removes one item; returns the bytes freed now (a snapshot frees its
/// data only when gc runs).
fn remove(item: &Item, repos: &Repos) -> anyhow::Result<u64> {
    match &item.subject {
        Subject::Snapshot(_) => repos.forget(item).map(|()| 0),
        Subject::Backup(backup) => {
            let mut backup = backup.clone();
            backup.path = item.path.clone();
            Ok(catalog::remove(&backup)?)
        }
        Subject::File(file) => {
            let meta = fs::symlink_metadata(&item.path)
                .with_context(|| format!("cannot remove {}", item.path.display()))?;
            if candidates::mtime(&meta) != file.time {
                anyhow::bail!(
                    "{} was modified while ops-prune ran; not removed",
                    item.path.display()
                );
            }
            fs::remove_file(&item.path)
                .with_context(|| format!("cannot remove {}", item.path.display()))?;
            Ok(meta.len())
        }
    }
}

fn write(
    candidates: &Candidates,
    plan: &Plan,
    outcome: &Outcome,
    mode: OutputMode,
) -> anyhow::Result<()> {
    let mut out = Output::stdout(mode);
    let note = |index: usize| PruneNote {
        action: if plan.decisions[index].keep {
            "keep"
        } else {
            "remove"
        },
        reasons: plan.decisions[index].reasons.clone(),
        done: outcome.done[index],
    };
    let order = candidates.lines.iter().map(|line| match line {
        Line::Raw(raw) => Err(raw.as_str()),
        Line::Item(index) => Ok(*index),
    });
    let unlisted = candidates.unlisted().into_iter().map(Ok);
    let mut table = Vec::new();
    for entry in order.chain(unlisted) {
        match entry {
            Err(raw) => out.raw(raw)?,
            Ok(index) => {
                let item = &candidates.items[index];
                let note = note(index);
                if mode == OutputMode::Human {
                    table.push((&item.candidate, human_row(item, &note)));
                    continue;
                }
                match &item.subject {
                    Subject::Backup(backup) => {
                        let mut backup = backup.clone();
                        backup.annotate("prune", &note);
                        out.record(&backup)?;
                    }
                    Subject::File(file) => {
                        let mut file = file.clone();
                        file.annotate("prune", &note);
                        out.record(&file)?;
                    }
                    Subject::Snapshot(snapshot) => {
                        let mut snapshot = snapshot.clone();
                        snapshot.annotate("prune", &note);
                        out.record(&snapshot)?;
                    }
                }
            }
        }
    }
    table.sort_by(|(a, _), (b, _)| {
        a.group
            .cmp(&b.group)
            .then_with(|| compare_dated((a.time, &a.id), (b.time, &b.id)))
    });
    for (_, row) in table {
        out.row("prune", &HUMAN_HEADER, row);
    }
    out.finish()?;
    Ok(())
}

const HUMAN_HEADER: [&str; 5] = ["ACTION", "ITEM", "TIME", "SIZE", "WHY"];

fn human_row(item: &Item, note: &PruneNote) -> Vec<String> {
    let action = match (note.action, note.done) {
        ("remove", true) => "removed",
        ("remove", false) => "remove",
        _ => "keep",
    };
    let shown = match &item.subject {
        Subject::Snapshot(snapshot) => ops_shared::ids::short(&snapshot.id),
        _ => item.candidate.id.clone(),
    };
    vec![
        action.to_owned(),
        shown,
        ops_shared::record::short_time(item.candidate.time),
        human_bytes(item.candidate.bytes),
        note.reasons.join("; "),
    ]
}

fn summarize(items: &[Item], plan: &Plan, outcome: &Outcome, dry_run: bool) {
    let removing: Vec<usize> = (0..items.len())
        .filter(|&i| !plan.decisions[i].keep)
        .collect();
    let kept = items.len() - removing.len();
    let is_snapshot = |i: usize| matches!(items[i].subject, Subject::Snapshot(_));
    let snapshots = |done: bool| {
        let mut by_repo: BTreeMap<&Path, (usize, u64)> = BTreeMap::new();
        for &i in removing.iter().filter(|&&i| is_snapshot(i)) {
            if outcome.done[i] == done {
                let entry = by_repo.entry(snapshots::root_of(&items[i])).or_default();
                entry.0 += 1;
                if let Subject::Snapshot(snapshot) = &items[i].subject {
                    entry.1 += snapshot.added_bytes;
                }
            }
        }
        by_repo
    };
    if dry_run {
        let bytes: u64 = removing
            .iter()
            .filter(|&&i| !is_snapshot(i))
            .map(|&i| items[i].candidate.bytes)
            .sum();
        note(format!(
            "dry run: would keep {kept} and remove {} ({}); nothing was changed",
            removing.len(),
            human_bytes(bytes)
        ));
        for (repo, (count, added)) in snapshots(false) {
            note(format!(
                "{count} snapshot(s) of {} would be removed; their data stays until \
                 ops-snapshot gc --repo {} (they added {} when made: an estimate of what gc frees)",
                repo.display(),
                repo.display(),
                human_bytes(added)
            ));
        }
    } else {
        let removed = removing.iter().filter(|&&i| outcome.done[i]).count();
        note(format!(
            "kept {kept}, removed {removed}, freed {}{}",
            human_bytes(outcome.freed),
            if outcome.failures > 0 {
                format!("; {} could not be removed", outcome.failures)
            } else {
                String::new()
            }
        ));
        for (repo, (count, added)) in snapshots(true) {
            note(format!(
                "removed {count} snapshot(s) from {}; their data stays until gc: run \
                 ops-snapshot gc --repo {} to free the space (they added {} when made: \
                 an estimate of what gc frees)",
                repo.display(),
                repo.display(),
                human_bytes(added)
            ));
        }
    }
}
