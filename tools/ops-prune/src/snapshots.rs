//! Snapshot candidates: `snapshot` records on stdin and the snapshots of
//! `--repo` repositories (ops-snapshot's).
//!
//! A snapshot does not depend on its parent (the parent only spared
//! re-reading unchanged files), so removing one never breaks another.
//! Removing a snapshot forgets it: its manifest goes, and the data only it
//! needed stays until `ops-snapshot gc` frees it.
//!
//! Every repository involved is opened before anything is locked. A real
//! run then holds each one exclusively (as `ops_snapshot::forget` would)
//! from its listing to the last removal, so records from stdin are checked
//! against what is really there and nothing changes between the check and
//! the removal. A dry run lists without the lock.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ops_shared::lock::Access;
use ops_shared::record::Snapshot;
use ops_shared::{UsageError, Verification};
use ops_snapshot::Repo;
use ops_storage::PlaceLock;

use crate::cli::GroupBy;
use crate::item::{Candidate, Item, Subject};

/// The `verify` annotation of a snapshot record: `Ok(None)` without one.
///
/// Fails when the record carries a `verify` that is not a verification result.
pub fn verification(snapshot: &Snapshot) -> Result<Option<Verification>, serde_json::Error> {
    Verification::of(&snapshot.extra)
}

/// The candidate for a snapshot of the repository at (canonical) `root`.
pub fn item(snapshot: Snapshot, root: &Path, group_by: GroupBy) -> Item {
    let group = match group_by {
        GroupBy::Name => format!("series {} in {}", snapshot.name, root.display()),
        GroupBy::None => format!("snapshots in {}", root.display()),
    };
    let failed = verification(&snapshot)
        .ok()
        .flatten()
        .filter(|v| !v.ok)
        .map(|v| {
            let first = v.errors.first().cloned().unwrap_or_default();
            format!("verification failed at {}: {first}", v.time)
        });
    let candidate = Candidate {
        group,
        id: snapshot.id.clone(),
        time: snapshot.time,
        // Snapshots share data by content, not through their parent.
        parent: None,
        bytes: snapshot.bytes,
        failed,
        failed_upstream: false,
        guard_newest: true,
    };
    Item {
        path: root.to_owned(),
        candidate,
        subject: Subject::Snapshot(snapshot),
        line: None,
    }
}

/// The repository a snapshot item belongs to (canonical).
pub fn root_of(item: &Item) -> &Path {
    &item.path
}

struct Opened {
    repo: Repo,
    /// The snapshots there, by id, once listed.
    listed: HashMap<String, Snapshot>,
}

/// The repositories of a run, by canonical root.
#[derive(Default)]
pub struct Repos {
    open: BTreeMap<PathBuf, Opened>,
    locks: Vec<PlaceLock>,
}

impl Repos {
    /// Opens every repository (given by canonical root).
    ///
    /// Fails (exit 2) on a path that is not a repository or is one of a
    /// newer format; fails (exit 1) when one cannot be read.
    pub fn open<'a>(roots: impl IntoIterator<Item = &'a Path>) -> anyhow::Result<Repos> {
        let mut repos = Repos::default();
        for root in roots {
            if repos.open.contains_key(root) {
                continue;
            }
            let repo = Repo::open(root)?;
            let listed = HashMap::new();
            repos.open.insert(root.to_owned(), Opened { repo, listed });
        }
        Ok(repos)
    }

    /// Holds every repository exclusively, in a fixed order so two prunes
    /// cannot deadlock; a running `ops-snapshot create` or `gc` finishes first.
    ///
    /// Fails when a repository stays locked past `wait`.
    pub fn lock(&mut self, wait: Duration) -> anyhow::Result<()> {
        for opened in self.open.values() {
            let lock = opened
                .repo
                .lock(Access::Exclusive, wait, crate::TOOL.name)?;
            self.locks.push(lock);
        }
        Ok(())
    }

    /// Lists every repository's snapshots; the records of `roots` (the
    /// --repo arguments, canonical) are returned, oldest first, to become
    /// candidates.
    ///
    /// Fails when a repository cannot be read or one of its manifests is damaged.
    pub fn list(&mut self, roots: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, Snapshot)>> {
        let mut candidates = Vec::new();
        for (root, opened) in &mut self.open {
            let snapshots = opened
                .repo
                .manifests()?
                .iter()
                .map(|(id, manifest)| ops_snapshot::record(root, id, manifest))
                .collect::<Vec<_>>();
            if roots.contains(root) {
                candidates.extend(snapshots.iter().map(|s| (root.clone(), s.clone())));
            }
            opened.listed = snapshots.into_iter().map(|s| (s.id.clone(), s)).collect();
        }
        Ok(candidates)
    }

    /// Checks a snapshot record read from stdin (`line`) against its
    /// repository's listing: a record that is stale or was edited must not
    /// steer what goes.
    ///
    /// Fails (exit 2) when the snapshot is not there or differs.
    pub fn check(&self, item: &Item, line: usize) -> Result<(), UsageError> {
        let Subject::Snapshot(record) = &item.subject else {
            return Ok(());
        };
        let root = root_of(item);
        let fail = |what: String| {
            UsageError(format!(
                "input line {line}: snapshot {} {what}; nothing was deleted. List the repository \
                 again (ops-snapshot list --repo {}) and prune from that",
                record.id,
                root.display()
            ))
        };
        let found = self
            .open
            .get(root)
            .and_then(|opened| opened.listed.get(&record.id))
            .ok_or_else(|| fail(format!("is not in {}", root.display())))?;
        let differs = [
            ("name", found.name != record.name),
            ("time", found.time != record.time),
            ("parent", found.parent != record.parent),
            ("paths", found.paths != record.paths),
        ];
        match differs.iter().find(|(_, differs)| *differs) {
            Some((field, _)) => Err(fail(format!(
                "does not match the repository ({field} differs)"
            ))),
            None => Ok(()),
        }
    }

    /// Forgets one snapshot (its manifest; gc frees its data later), under
    /// the lock taken by [`Self::lock`].
    ///
    /// Fails when the manifest cannot be removed.
    pub fn forget(&self, item: &Item) -> anyhow::Result<()> {
        let opened = self
            .open
            .get(root_of(item))
            .ok_or_else(|| anyhow::anyhow!("{}: repository not open", item.path.display()))?;
        for lock in &self.locks {
            lock.ensure_held()?;
        }
        opened.repo.remove_snapshot(&item.candidate.id)?;
        Ok(())
    }
}
