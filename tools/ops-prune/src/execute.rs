//! Carrying out a plan: every item judged for removal is removed, one by
//! one; a failure is reported and the rest still go.

use std::fs;

use anyhow::Context;
use ops_backup::catalog;
use ops_shared::entry::error;

use crate::candidates;
use crate::item::{Item, Subject};
use crate::plan::Plan;
use crate::snapshots::Repos;

/// What was done to each item.
pub struct Outcome {
    pub done: Vec<bool>,
    pub freed: u64,
    pub failures: usize,
}

impl Outcome {
    pub fn planned(plan: &Plan) -> Self {
        Outcome {
            done: vec![false; plan.decisions.len()],
            freed: 0,
            failures: 0,
        }
    }
}

/// Removes what `plan` says goes.
pub fn execute(items: &[Item], plan: &Plan, repos: &Repos) -> Outcome {
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
