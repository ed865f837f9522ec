//! `ops-snapshot gc`: delete what no snapshot needs, in two phases so a
//! long gc does not hold up backups.
//!
//! 1. Plan and repack, holding the repository *shared* (snapshots can be
//!    created meanwhile): read every pack's table and every snapshot's
//!    file list, find unused chunks, and copy the used chunks of mostly
//!    unused packs into new, durable packs. Nothing is deleted yet.
//! 2. Commit, holding it *exclusive* (after running creates finish): read
//!    the snapshots made during phase 1 and spare every pack holding a
//!    chunk they need that has no other copy; point the index at the new
//!    copies and flush it; only then delete the old packs, and leftovers
//!    of crashed runs.
//!
//! Killed at any moment, the repository stays complete: a deleted pack's
//! chunks are either unused or already durable elsewhere and indexed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ops_shared::lock::Access;
use ops_shared::record::Compact;
use serde_json::{json, Map};

use crate::error::RepoError;
use crate::id::Id;
use crate::index::{Index, Location};
use crate::pack::{self, PackEntry, PackWriter};
use crate::reader::ChunkReader;
use crate::repo::Repo;
use crate::tree::TreeReader;

pub struct GcOptions {
    /// Percentage of the packs' bytes that may stay unused.
    pub max_unused: f64,
    pub dry_run: bool,
    pub lock_wait: Duration,
}

/// Every pack's table, and one location for every chunk.
#[derive(Default)]
struct Packs {
    tables: HashMap<Id, Vec<PackEntry>>,
    locations: HashMap<Id, Location>,
}

impl Packs {
    fn read(repo: &Repo, only_new: Option<&Packs>) -> Result<Packs, RepoError> {
        let mut packs = Packs::default();
        for pack in repo.packs()? {
            if only_new.is_some_and(|known| known.tables.contains_key(&pack)) {
                continue;
            }
            let entries = match pack::read_table(&repo.pack_path(&pack), repo.codec()?) {
                Ok(entries) => entries,
                Err(err) => {
                    ops_shared::entry::warn(format!(
                        "pack {pack}: {err}; left alone (ops-verify --repo {} --read-data tells more)",
                        repo.root.display()
                    ));
                    continue;
                }
            };
            for entry in &entries {
                packs
                    .locations
                    .entry(entry.id)
                    .or_insert(Location::of(pack, entry));
            }
            packs.tables.insert(pack, entries);
        }
        Ok(packs)
    }
}

/// The chunks that the snapshots `ids` need.
fn used_by(reader: &ChunkReader, repo: &Repo, ids: &[String]) -> Result<HashSet<Id>, RepoError> {
    let mut used = HashSet::new();
    for id in ids {
        let manifest = repo.manifest(id)?;
        used.extend(manifest.tree.iter().copied());
        for node in TreeReader::new(reader, &manifest.tree) {
            used.extend(node?.chunks);
        }
    }
    Ok(used)
}

/// What phase 1 decided.
struct Plan {
    delete: Vec<Id>,
    repack: Vec<Id>,
    unused_bytes: u64,
    reclaim_bytes: u64,
}

fn plan(packs: &Packs, used: &HashSet<Id>, max_unused: f64) -> Plan {
    let mut delete = Vec::new();
    let mut partly = Vec::new();
    let (mut total, mut unused_total) = (0u64, 0u64);
    for (pack, entries) in &packs.tables {
        let mut live = 0u64;
        let mut size = 0u64;
        for entry in entries {
            size += u64::from(entry.stored);
            let chosen = packs
                .locations
                .get(&entry.id)
                .is_some_and(|at| at.pack == *pack);
            if chosen && used.contains(&entry.id) {
                live += u64::from(entry.stored);
            }
        }
        total += size;
        if live == 0 {
            delete.push(*pack);
        } else if live < size {
            unused_total += size - live;
            partly.push((*pack, size - live, size));
        }
    }
    let deleted: u64 = delete
        .iter()
        .flat_map(|p| &packs.tables[p])
        .map(|e| u64::from(e.stored))
        .sum();
    // Most unused first, until what stays unused is within the limit.
    partly.sort_by(|a, b| (b.1 * a.2).cmp(&(a.1 * b.2)).then(a.0.cmp(&b.0)));
    let allowed = ((total - deleted) as f64 * max_unused / 100.0) as u64;
    let mut repack = Vec::new();
    let mut reclaim = deleted;
    for (pack, unused, _) in partly {
        if unused_total <= allowed {
            break;
        }
        unused_total -= unused;
        reclaim += unused;
        repack.push(pack);
    }
    Plan {
        delete,
        repack,
        unused_bytes: unused_total,
        reclaim_bytes: reclaim,
    }
}

/// Copies the used chunks of `plan.repack` into new durable packs.
fn repack(
    repo: &Repo,
    packs: &Packs,
    used: &HashSet<Id>,
    plan: &Plan,
) -> Result<Vec<(Id, Vec<PackEntry>)>, RepoError> {
    let io_error = |err| RepoError::io(repo.packs_dir(), err);
    let mut written = Vec::new();
    let mut writer: Option<PackWriter> = None;
    for pack in &plan.repack {
        let source = pack::PackSource::open(&repo.pack_path(pack)).map_err(io_error)?;
        for entry in &packs.tables[pack] {
            let chosen = packs
                .locations
                .get(&entry.id)
                .is_some_and(|at| at.pack == *pack);
            if !chosen || !used.contains(&entry.id) {
                continue;
            }
            let stored = source
                .read_stored(entry.offset, entry.stored)
                .map_err(io_error)?;
            // A damaged chunk is not copied as if it were good.
            pack::decode(repo.codec()?, &entry.id, &stored, entry.raw).map_err(|err| {
                RepoError::Damaged(format!(
                    "chunk {} in pack {pack}: {err}; gc stopped before deleting anything",
                    entry.id.short()
                ))
            })?;
            if let Some(full) = writer.take_if(|out| !out.fits(stored.len())) {
                let sealed = full.finish(repo).map_err(io_error)?;
                written.push((sealed.id, sealed.entries));
            }
            let out = writer.get_or_insert_with(PackWriter::default);
            out.add(entry.id, &stored, entry.raw).map_err(io_error)?;
        }
    }
    if let Some(last) = writer.take().filter(|w| !w.is_empty()) {
        let sealed = last.finish(repo).map_err(io_error)?;
        written.push((sealed.id, sealed.entries));
    }
    Ok(written)
}

/// Runs gc on the repository at `root`; the `compact` record says what it
/// reclaimed (or, with `dry_run`, would reclaim).
///
/// Fails when the repository cannot be read or locked, or a write fails;
/// nothing is deleted before everything it depends on is durable.
pub fn gc(root: &Path, options: &GcOptions) -> Result<Compact, RepoError> {
    let repo = Arc::new(Repo::open(root)?);
    let before = repo.packs_bytes();
    let shared = repo.lock(
        Access::Shared,
        options.lock_wait,
        "ops-snapshot gc (planning)",
    )?;
    let packs = Packs::read(&repo, None)?;
    let snapshots = repo.snapshot_ids()?;
    let reader = ChunkReader::with_map(Arc::clone(&repo), packs.locations.clone());
    let used = used_by(&reader, &repo, &snapshots)?;
    let plan = plan(&packs, &used, options.max_unused);
    let mut extra = Map::new();
    extra.insert("snapshots".into(), json!(snapshots.len()));
    extra.insert("packs_deleted".into(), json!(plan.delete.len()));
    extra.insert("packs_repacked".into(), json!(plan.repack.len()));
    extra.insert("unused_bytes_left".into(), json!(plan.unused_bytes));
    let record = |action: &str, after: u64, extra: Map<String, serde_json::Value>| Compact {
        target: root.display().to_string(),
        kind: "repo".into(),
        action: action.into(),
        before_bytes: before,
        after_bytes: after,
        extra,
    };
    if options.dry_run {
        return Ok(record(
            "plan",
            before.saturating_sub(plan.reclaim_bytes),
            extra,
        ));
    }
    let written = repack(&repo, &packs, &used, &plan)?;
    drop(shared);

    let exclusive = repo.lock(
        Access::Exclusive,
        options.lock_wait,
        "ops-snapshot gc (deleting)",
    )?;
    let mut removing = removable(&repo, &packs, &plan, &snapshots)?;
    // A repack can make a pack that exists already (an earlier gc's, killed
    // before it deleted): the same table, so the same name. It stays.
    removing.retain(|pack| !written.iter().any(|(id, _)| id == pack));
    update_index(&repo, options.lock_wait, &packs, &written, &removing)?;
    exclusive
        .ensure_held()
        .map_err(|err| RepoError::io(repo.root.clone(), err))?;
    delete_packs(&repo, &removing)?;
    let leftovers = remove_leftovers(&repo);
    extra.insert(
        "packs_deleted".into(),
        json!(removing.iter().filter(|p| plan.delete.contains(p)).count()),
    );
    extra.insert("packs_written".into(), json!(written.len()));
    extra.insert("temp_files_removed".into(), json!(leftovers));
    let after = repo.packs_bytes();
    extra.insert(
        "reclaimed_bytes".into(),
        json!(before.saturating_sub(after)),
    );
    let action = if removing.is_empty() && leftovers == 0 {
        "none"
    } else {
        "gc"
    };
    Ok(record(action, after, extra))
}

/// The packs `plan` deletes or repacked, less those holding the only copy
/// of a chunk that a snapshot made since the `planned` ones needs.
fn removable(
    repo: &Arc<Repo>,
    packs: &Packs,
    plan: &Plan,
    planned: &[String],
) -> Result<HashSet<Id>, RepoError> {
    let newer: Vec<String> = repo
        .snapshot_ids()?
        .into_iter()
        .filter(|id| !planned.contains(id))
        .collect();
    let mut removing: HashSet<Id> = plan.delete.iter().chain(&plan.repack).copied().collect();
    if newer.is_empty() {
        return Ok(removing);
    }
    let fresh = Packs::read(repo, Some(packs))?;
    let mut locations = packs.locations.clone();
    locations.extend(fresh.locations.iter().map(|(k, v)| (*k, *v)));
    let reader = ChunkReader::with_map(Arc::clone(repo), locations);
    let needed = used_by(&reader, repo, &newer)?;
    let elsewhere: HashSet<Id> = packs
        .tables
        .iter()
        .chain(&fresh.tables)
        .filter(|(pack, _)| !removing.contains(pack))
        .flat_map(|(_, entries)| entries.iter().map(|e| e.id))
        .collect();
    removing.retain(|pack| {
        !packs.tables[pack]
            .iter()
            .any(|e| needed.contains(&e.id) && !elsewhere.contains(&e.id))
    });
    Ok(removing)
}

/// Points the index at the `written` packs and away from the `removing`
/// ones, and flushes it.
fn update_index(
    repo: &Repo,
    wait: Duration,
    packs: &Packs,
    written: &[(Id, Vec<PackEntry>)],
    removing: &HashSet<Id>,
) -> Result<(), RepoError> {
    let index = Index::open(repo, wait, "ops-snapshot gc")?;
    for (pack, entries) in written {
        index.point_at(*pack, entries)?;
    }
    for pack in removing {
        index.remove_pack(*pack, &packs.tables[pack])?;
    }
    // A chunk the index placed in a removed pack may have another copy in a
    // pack that stays (a repack whose gc was killed before it indexed it):
    // point the index there rather than lose it.
    let orphaned: HashSet<Id> = removing
        .iter()
        .flat_map(|pack| &packs.tables[pack])
        .map(|entry| entry.id)
        .filter(|id| index.location(id).is_ok_and(|at| at.is_none()))
        .collect();
    for (pack, entries) in packs
        .tables
        .iter()
        .filter(|(pack, _)| !removing.contains(pack))
    {
        let copies: Vec<PackEntry> = entries
            .iter()
            .filter(|e| orphaned.contains(&e.id))
            .copied()
            .collect();
        if !copies.is_empty() {
            index.point_at(*pack, &copies)?;
        }
    }
    index.flush()
}

fn delete_packs(repo: &Repo, removing: &HashSet<Id>) -> Result<(), RepoError> {
    for pack in removing {
        let path = repo.pack_path(pack);
        ops_storage::delete(&path).map_err(|err| RepoError::io(path, err))?;
    }
    Ok(())
}

/// Removes temporary files of crashed runs; only safe while holding the
/// repository exclusively.
fn remove_leftovers(repo: &Repo) -> u64 {
    let mut removed = 0;
    for leftover in repo.leftovers() {
        if leftover.is_file && ops_storage::delete(&leftover.path).is_ok() {
            removed += 1;
        }
    }
    removed
}
