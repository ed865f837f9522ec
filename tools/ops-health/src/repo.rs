//! `--repo REPO`: an ops-snapshot repository. Per series (snapshot name) the
//! newest snapshot's age against --max-age; the chunk index (a cache: a
//! missing one is rebuilt on open, a damaged one is critical until it is
//! rebuilt); temporary files of crashed runs. `--fix` rebuilds a damaged
//! index and removes old temporary files while nothing else uses the
//! repository.
//!
//! Locks need no check: on disk they are flock(2) locks, which the kernel
//! drops when their holder dies; in a bucket, lock objects go stale by
//! themselves (see `ops_storage::lock`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use ops_shared::lock::{Access, LockError};
use ops_shared::record::{human_bytes, Check, Snapshot};
use ops_shared::Record;
use ops_snapshot::{Index, Repo, RepoError};
use ops_storage::PlaceLock;

use crate::level::{metrics, record, Level};

/// Temporary files younger than this may belong to a run still going.
const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

const TOOL: &str = "ops-health";

/// One record per series, one for the index, and one for old temporary
/// files if there are any; a single crit or unknown record when `root` is
/// not a repository this version can read.
pub fn check(root: &Path, max_age: Duration) -> Vec<Check> {
    let target = root.display().to_string();
    let repo = match Repo::open(root) {
        Ok(repo) => repo,
        Err(err) => return vec![not_open(&target, &err)],
    };
    let mut checks = Vec::new();
    match repo.manifests() {
        Ok(manifests) => {
            let snapshots: Vec<Snapshot> = manifests
                .iter()
                .map(|(id, manifest)| ops_snapshot::record(root, id, manifest))
                .collect();
            checks.extend(check_series(&target, &snapshots, max_age));
        }
        Err(err) => checks.push(record(
            "repo",
            &target,
            Level::Crit,
            format!("cannot list the snapshots: {err}; ops-verify --repo {target} tells more"),
            metrics([]),
        )),
    }
    checks.push(check_index(&repo, &target));
    let old = old_temp_files(&repo, LEFTOVER_AGE);
    if !old.is_empty() {
        let bytes: u64 = old.iter().map(|(_, len)| len).sum();
        checks.push(record(
            "repo",
            &target,
            Level::Warn,
            format!(
                "{} temporary file(s) of interrupted runs older than an hour ({}); \
                 ops-health --repo {target} --fix removes them when nothing uses the repository \
                 (ops-snapshot gc does too)",
                old.len(),
                human_bytes(bytes)
            ),
            metrics([
                ("temp_files", old.len() as f64),
                ("temp_bytes", bytes as f64),
            ]),
        ));
    }
    checks
}

/// Why the repository cannot be looked at: not one is critical (the
/// snapshots are not where they should be), a newer format or an I/O
/// error unknown (this version cannot tell).
fn not_open(target: &str, err: &RepoError) -> Check {
    let (level, message) = match err {
        RepoError::NotARepo(_) => (
            Level::Crit,
            format!("{target}: not an ops-snapshot repository (no readable config): no snapshots are kept there"),
        ),
        RepoError::BadId { .. } => (Level::Crit, format!("{err}")),
        RepoError::TooNew { version, .. } => (
            Level::Unknown,
            format!(
                "{target}: repository format version {version} is newer than this ops-health \
                 reads; upgrade ops to check it"
            ),
        ),
        other => (Level::Unknown, format!("cannot open the repository: {other}")),
    };
    record("repo", target, level, message, metrics([]))
}

fn check_series(target: &str, snapshots: &[Snapshot], max_age: Duration) -> Vec<Check> {
    if snapshots.is_empty() {
        return vec![record(
            "repo",
            target,
            Level::Crit,
            format!(
                "no snapshots in {target}; make one with ops-snapshot create PATH --repo {target}"
            ),
            metrics([("stored", 0.0)]),
        )];
    }
    let mut series: BTreeMap<&str, Vec<&Snapshot>> = BTreeMap::new();
    for snapshot in snapshots {
        series.entry(&snapshot.name).or_default().push(snapshot);
    }
    let now = Timestamp::now();
    let max_text = humantime::format_duration(max_age);
    series
        .into_iter()
        .map(|(name, list)| {
            // Manifests come oldest first.
            let newest = list[list.len() - 1];
            let age = now.duration_since(newest.time).as_secs_f64().max(0.0);
            let age_text = humantime::format_duration(Duration::from_secs(age as u64));
            let added: u64 = list.iter().map(|s| s.added_bytes).sum();
            let mut level = Level::Ok;
            let mut message = format!(
                "newest snapshot {} is {age_text} old",
                &newest.id[..newest.id.len().min(8)]
            );
            if age > max_age.as_secs_f64() {
                level = Level::Crit;
                message.push_str(&format!(
                    ", older than --max-age {max_text}: check that the snapshot job runs"
                ));
            }
            message.push_str(&format!(
                "; {} snapshot(s), newest {} in {} file(s)",
                list.len(),
                human_bytes(newest.bytes),
                newest.files
            ));
            let mut check = record(
                "repo",
                target,
                level,
                message,
                metrics([
                    ("newest_age_seconds", age.round()),
                    ("newest_timestamp_seconds", newest.time.as_second() as f64),
                    ("stored", list.len() as f64),
                    ("newest_bytes", newest.bytes as f64),
                    ("newest_files", newest.files as f64),
                    ("added_bytes", added as f64),
                ]),
            );
            check.annotate("name", name);
            check
        })
        .collect()
}

/// The chunk index: opened as ops-snapshot opens it (which brings it up to
/// date with the packs, or builds it when it is missing), without waiting.
fn check_index(repo: &Repo, target: &str) -> Check {
    let packs = repo.packs().map_or(0, |p| p.len()) as f64;
    match Index::open_unrepaired(repo, Duration::ZERO, TOOL) {
        Ok(index) if !index.missing.is_empty() => record(
            "repo",
            target,
            Level::Crit,
            format!(
                "{} pack(s) the index lists are gone from disk: snapshots that need them cannot \
                 be restored; ops-verify --repo {target} names them",
                index.missing.len()
            ),
            metrics([
                ("packs", packs),
                ("missing_packs", index.missing.len() as f64),
            ]),
        ),
        Ok(_) => record(
            "repo",
            target,
            Level::Ok,
            format!("the chunk index is up to date with {packs} pack(s)"),
            metrics([("packs", packs), ("missing_packs", 0.0)]),
        ),
        Err(RepoError::Lock(LockError::Held { owner, .. })) => record(
            "repo",
            target,
            Level::Ok,
            format!(
                "the chunk index is in use by {}; not checked now",
                owner.map_or("another process".into(), |o| o.to_string())
            ),
            metrics([("packs", packs)]),
        ),
        Err(RepoError::Index(err)) => record(
            "repo",
            target,
            Level::Crit,
            format!(
                "index damaged ({err}); run ops-health --repo {target} --fix or \
                 ops-snapshot rebuild-index --repo {target}"
            ),
            metrics([("packs", packs)]),
        ),
        Err(err @ RepoError::Damaged(_)) => record(
            "repo",
            target,
            Level::Crit,
            format!("{err}"),
            metrics([("packs", packs)]),
        ),
        Err(err) => record(
            "repo",
            target,
            Level::Unknown,
            format!("cannot check the chunk index: {err}"),
            metrics([("packs", packs)]),
        ),
    }
}

/// Temporary files of crashed runs at least `age` old, with their sizes.
fn old_temp_files(repo: &Repo, age: Duration) -> Vec<(PathBuf, u64)> {
    let mut found: Vec<(PathBuf, u64)> = repo
        .leftovers()
        .into_iter()
        .filter(|leftover| leftover.is_file && leftover.age >= age)
        .map(|leftover| (leftover.path, leftover.bytes))
        .collect();
    found.sort();
    found
}

/// Repairs: old temporary files go while the repository can be held
/// exclusively at once (no create, gc or prune runs); a damaged index is
/// rebuilt from the packs while no gc or prune runs. One record per action
/// (with `dry_run`, per action it would take).
pub fn fix(root: &Path, dry_run: bool, age: Duration) -> Vec<Check> {
    let target = root.display().to_string();
    let Ok(repo) = Repo::open(root) else {
        return Vec::new();
    };
    if dry_run {
        return planned(&repo, &target, age);
    }
    let mut fixes = Vec::new();
    let old = old_temp_files(&repo, age);
    let mut held = None;
    if !old.is_empty() {
        match lock(
            &repo,
            Access::Exclusive,
            &target,
            "temporary files not removed",
        ) {
            Ok(lock) => {
                held = Some(lock);
                fixes.extend(old.iter().map(|(path, bytes)| remove_temp(path, *bytes)));
            }
            Err(check) => fixes.push(*check),
        }
    }
    let damaged = matches!(
        Index::open_unrepaired(&repo, Duration::ZERO, TOOL),
        Err(RepoError::Index(_))
    );
    if damaged {
        // gc and prune change what the packs hold; a shared hold keeps them out.
        if held.is_none() {
            match lock(&repo, Access::Shared, &target, "index not rebuilt") {
                Ok(lock) => held = Some(lock),
                Err(check) => {
                    fixes.push(*check);
                    return fixes;
                }
            }
        }
        fixes.push(rebuild(&repo, &target));
    }
    drop(held);
    fixes
}

/// What `fix` would do, doing none of it.
fn planned(repo: &Repo, target: &str, age: Duration) -> Vec<Check> {
    let mut plans: Vec<Check> = old_temp_files(repo, age)
        .iter()
        .map(|(path, bytes)| {
            record(
                "fix",
                &path.display().to_string(),
                Level::Ok,
                format!(
                    "would remove a temporary file left by a crashed run ({}); nothing \
                     changed (--dry-run)",
                    human_bytes(*bytes)
                ),
                metrics([("bytes", *bytes as f64)]),
            )
        })
        .collect();
    if matches!(
        Index::open_unrepaired(repo, Duration::ZERO, TOOL),
        Err(RepoError::Index(_))
    ) {
        plans.push(record(
            "fix",
            target,
            Level::Ok,
            "would rebuild the damaged chunk index from the packs; nothing changed (--dry-run)"
                .into(),
            metrics([]),
        ));
    }
    plans
}

/// The repository's lock, at once; a record saying why not otherwise.
fn lock(repo: &Repo, access: Access, target: &str, what: &str) -> Result<PlaceLock, Box<Check>> {
    repo.lock(access, Duration::ZERO, "ops-health --fix")
        .map_err(|err| {
            let (level, why) = match err {
                RepoError::Lock(held @ LockError::Held { .. }) => (Level::Ok, held.to_string()),
                other => (Level::Warn, other.to_string()),
            };
            Box::new(record(
                "fix",
                target,
                level,
                format!("{what}: {why}"),
                metrics([]),
            ))
        })
}

fn remove_temp(path: &Path, bytes: u64) -> Check {
    let shown = path.display().to_string();
    match ops_storage::delete(path) {
        Ok(()) => record(
            "fix",
            &shown,
            Level::Ok,
            format!(
                "removed a temporary file left by a crashed run ({})",
                human_bytes(bytes)
            ),
            metrics([("bytes", bytes as f64)]),
        ),
        Err(err) => record(
            "fix",
            &shown,
            Level::Warn,
            format!("cannot remove this leftover: {err}"),
            metrics([]),
        ),
    }
}

fn rebuild(repo: &Repo, target: &str) -> Check {
    let rebuilt = Index::rebuild(repo, Duration::ZERO, "ops-health --fix")
        .and_then(|index| index.flush().map(|()| index.chunks()));
    match rebuilt {
        Ok(chunks) => record(
            "fix",
            target,
            Level::Ok,
            format!("rebuilt the damaged chunk index from the packs: {chunks} chunk(s)"),
            metrics([("chunks", chunks as f64)]),
        ),
        Err(err) => record(
            "fix",
            target,
            Level::Warn,
            format!("cannot rebuild the chunk index: {err}"),
            metrics([]),
        ),
    }
}
