//! What a run writes: every candidate record annotated with its verdict
//! (or a table of them), and a summary on stderr.

use std::collections::BTreeMap;
use std::path::Path;

use ops_shared::entry::note;
use ops_shared::ids::compare_dated;
use ops_shared::output::OutputMode;
use ops_shared::record::human_bytes;
use ops_shared::{Output, Record};
use serde::Serialize;

use crate::candidates::{Candidates, Line};
use crate::execute::Outcome;
use crate::item::{Item, Subject};
use crate::plan::Plan;
use crate::snapshots;

/// What ops-prune adds to each candidate record as `"prune"`.
#[derive(Clone, Debug, Serialize)]
pub struct PruneNote {
    /// keep or remove.
    pub action: &'static str,
    pub reasons: Vec<String>,
    /// Whether the action was carried out (false in a dry run).
    pub done: bool,
}

/// Writes every candidate with its verdict, in input order, then those
/// no input line stands for.
pub fn write(
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

/// Says on stderr what was (or would be) kept and removed.
pub fn summarize(items: &[Item], plan: &Plan, outcome: &Outcome, dry_run: bool) {
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
