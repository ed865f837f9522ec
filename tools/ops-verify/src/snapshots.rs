//! Snapshot repositories: checked by ops-snapshot's own reader
//! ([`ops_snapshot::verify`]), and what that adds to each `snapshot` record.
//!
//! A repository is read once however many of its snapshots are asked about
//! (reading the packs is the expensive part), so snapshot records from stdin
//! are grouped by their `repo` and each group is verified in one call.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use ops_shared::entry::error;
use ops_shared::record::Snapshot;
use ops_shared::{Record, Verification};
use ops_snapshot::{verify, ReadData, Repo, RepoCheck, RepoError};

/// How thoroughly to check snapshots.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotDepth {
    pub read: ReadData,
    pub lock_wait: Duration,
}

/// A snapshot record with its `verify` annotation.
pub struct Checked {
    pub snapshot: Snapshot,
    pub ok: bool,
}

/// Checks that every `--repo` is a repository this version reads, before
/// any work starts.
///
/// Fails (a usage error) on the first that is not a repository or is of a
/// newer format; fails when a repository's config cannot be read.
pub fn check_repos(repos: &[PathBuf]) -> anyhow::Result<()> {
    for root in repos {
        Repo::read_config(root)?;
    }
    Ok(())
}

/// Every snapshot of the repository at `root`, oldest first, and whether
/// the repository holds damage no snapshot is affected by (reported here).
///
/// Fails when the repository cannot be opened or locked.
pub fn verify_repo(root: &Path, depth: SnapshotDepth) -> Result<(Vec<Checked>, bool), RepoError> {
    let check = verify(root, None, depth.read, depth.lock_wait)?;
    let unused_damage = report_unused_damage(root, &check);
    let read = level_reached(root, &check, depth.read);
    let checked = check
        .snapshots
        .into_iter()
        .map(|found| annotate(found.snapshot, found.errors, read))
        .collect();
    Ok((checked, unused_damage))
}

/// The snapshot records `snapshots` (from stdin), verified and in the same
/// order, and whether any of their repositories holds damage no snapshot is
/// affected by. A repository that cannot be checked fails its snapshots.
pub fn verify_records(snapshots: Vec<Snapshot>, depth: SnapshotDepth) -> (Vec<Checked>, bool) {
    let mut by_repo: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for snapshot in &snapshots {
        let ids = by_repo.entry(snapshot.repo.clone()).or_default();
        if !ids.contains(&snapshot.id) {
            ids.push(snapshot.id.clone());
        }
    }
    let mut errors: HashMap<(PathBuf, String), Vec<String>> = HashMap::new();
    let mut reached: HashMap<PathBuf, ReadData> = HashMap::new();
    let mut unused_damage = false;
    for (root, ids) in by_repo {
        let found: Vec<(String, Vec<String>)> =
            match verify(&root, Some(&ids), depth.read, depth.lock_wait) {
                Ok(check) => {
                    unused_damage |= report_unused_damage(&root, &check);
                    reached.insert(root.clone(), level_reached(&root, &check, depth.read));
                    check
                        .snapshots
                        .into_iter()
                        .map(|found| (found.snapshot.id, found.errors))
                        .collect()
                }
                Err(err) => {
                    let why = format!("cannot check the repository: {err}");
                    ids.into_iter().map(|id| (id, vec![why.clone()])).collect()
                }
            };
        for (id, found) in found {
            errors.insert((root.clone(), id), found);
        }
    }
    let checked = snapshots
        .into_iter()
        .map(|snapshot| {
            let found = errors
                .get(&(snapshot.repo.clone(), snapshot.id.clone()))
                .cloned()
                .unwrap_or_else(|| vec!["the repository did not report on it".into()]);
            let read = reached.get(&snapshot.repo).copied().unwrap_or(depth.read);
            annotate(snapshot, found, read)
        })
        .collect();
    (checked, unused_damage)
}

/// How far the snapshots of `root` were checked: as stored only (quick)
/// when it is encrypted and no key opened it, which is said on stderr.
fn level_reached(root: &Path, check: &RepoCheck, read: ReadData) -> ReadData {
    if !check.locked {
        return read;
    }
    ops_shared::entry::note(format!(
        "{}: encrypted, and no key given opens it: its manifests{} were checked as stored, \
         not what the snapshots hold; give its passphrase (OPS_PASSWORD_FILE, \
         OPS_PASSWORD_COMMAND) or --identity for a full check",
        root.display(),
        if read == ReadData::None {
            ""
        } else {
            " and packs"
        }
    ));
    ReadData::None
}

fn report_unused_damage(root: &Path, check: &RepoCheck) -> bool {
    for damage in &check.unused_damage {
        error(format!("{}: {damage}", root.display()));
    }
    !check.unused_damage.is_empty()
}

/// Adds `"verify"` to `snapshot` and reports its errors on stderr.
fn annotate(mut snapshot: Snapshot, errors: Vec<String>, read: ReadData) -> Checked {
    for problem in &errors {
        error(format!("snapshot {}: {problem}", short_id(&snapshot.id)));
    }
    let verification = Verification {
        ok: errors.is_empty(),
        level: match read {
            ReadData::None => "quick",
            ReadData::All | ReadData::Subset(_) => "full",
        }
        .into(),
        time: Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH),
        errors,
        ..Verification::default()
    };
    let ok = verification.ok;
    let mut note = serde_json::to_value(&verification).unwrap_or_default();
    if let (ReadData::Subset(percent), Some(fields)) = (read, note.as_object_mut()) {
        fields.insert("subset_percent".into(), percent.into());
    }
    snapshot.annotate("verify", note);
    Checked { snapshot, ok }
}

fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
