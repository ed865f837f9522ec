//! Checking a repository, for ops-verify.
//!
//! Structure: every snapshot's manifest matches its id, its file list
//! reads back, and every chunk it names is in the index and in a pack that
//! exists. With read-data, every pack (or a random share of them) is read
//! whole: the file against its name, and each chunk decompressed and
//! hashed. Damage is reported against the snapshots and files it hits.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ops_shared::record::Snapshot;

use crate::error::RepoError;
use crate::id::Id;
use crate::pack::{self, PackError};
use crate::tree::TreeReader;

/// How much data to read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReadData {
    /// Structure only.
    None,
    All,
    /// This percentage of the packs, chosen at random.
    Subset(f64),
}

/// One snapshot's findings.
pub struct SnapshotCheck {
    pub snapshot: Snapshot,
    pub errors: Vec<String>,
}

/// What [`verify`] found.
pub struct RepoCheck {
    pub snapshots: Vec<SnapshotCheck>,
    /// Damage that none of the checked snapshots is affected by, and
    /// damaged pack tables.
    pub unused_damage: Vec<String>,
    pub packs_read: usize,
}

/// At most this many errors are listed per snapshot.
const MAX_ERRORS: usize = 20;

/// Verifies the snapshots `only` (all when `None`) of the repository at `root`.
///
/// Fails when the repository cannot be opened or locked; everything found
/// wrong inside it is in the result.
pub fn verify(
    root: &Path,
    only: Option<&[String]>,
    read: ReadData,
    wait: Duration,
) -> Result<RepoCheck, RepoError> {
    let (reader, _lock) = crate::reader::open_reader(root, wait, "ops-verify")?;
    let repo = &reader.repo;
    let index = reader
        .index()
        .ok_or_else(|| RepoError::Index("no index".into()))?;
    let mut damaged: HashMap<Id, String> = HashMap::new();
    let mut bad_packs: HashMap<Id, String> = HashMap::new();
    // Packs whose chunks are intact but whose table is not: the index still
    // finds the chunks, a rebuilt one would not.
    let mut damaged_tables: HashMap<Id, String> = HashMap::new();
    let mut packs: Vec<Id> = repo.packs()?.into_iter().collect();
    packs.sort();
    if let ReadData::Subset(percent) = read {
        let seed = jiff::Timestamp::now().as_nanosecond().to_le_bytes();
        packs.retain(|pack| {
            let roll = Id::of(&[&pack.0[..], &seed[..]].concat());
            f64::from(u16::from_le_bytes([roll.0[0], roll.0[1]])) < percent / 100.0 * 65536.0
        });
    }
    let packs_read = if read == ReadData::None {
        0
    } else {
        packs.len()
    };
    if read != ReadData::None {
        let found = Mutex::new((HashMap::new(), HashMap::new(), HashMap::new()));
        let queue = Mutex::new(packs.into_iter());
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    let Some(pack) = queue.lock().ok().and_then(|mut q| q.next()) else {
                        return;
                    };
                    let result = pack::check_pack(&repo.pack_path(&pack), &pack);
                    let Ok(mut found) = found.lock() else { return };
                    let (damaged, bad_packs, tables) = &mut *found;
                    match result {
                        Ok(check) => {
                            for (entry, err) in check.damaged {
                                damaged.insert(
                                    entry.id,
                                    format!("pack {pack} at offset {}: {err}", entry.offset),
                                );
                            }
                            if !check.whole_ok {
                                tables.insert(
                                    pack,
                                    format!(
                                        "pack {pack}: its table does not match its name (damaged)"
                                    ),
                                );
                            }
                        }
                        Err(PackError::BadTable) => {
                            bad_packs.insert(pack, format!("pack {pack}: its table is damaged"));
                        }
                        Err(PackError::Io(err)) => {
                            bad_packs.insert(pack, format!("pack {pack}: cannot be read: {err}"));
                        }
                    }
                });
            }
        });
        (damaged, bad_packs, damaged_tables) = found.into_inner().unwrap_or_default();
    }

    let mut checks = Vec::new();
    let mut affected = HashSet::new();
    let mut referenced = HashSet::new();
    for (id, manifest) in snapshot_list(repo, only)? {
        let mut errors = Vec::new();
        let manifest = match manifest {
            Ok(manifest) => manifest,
            Err(why) => {
                checks.push(SnapshotCheck {
                    snapshot: unreadable_record(root, &id),
                    errors: vec![why],
                });
                continue;
            }
        };
        let mut check = |what: &str, chunk: &Id, errors: &mut Vec<String>| {
            referenced.insert(*chunk);
            let problem = match index.location(chunk) {
                Ok(None) => Some(format!("chunk {} is in no pack", chunk.short())),
                Err(err) => Some(err.to_string()),
                Ok(Some(at)) if !index.has_pack(&at.pack) => {
                    affected.insert(at.pack);
                    Some(format!(
                        "chunk {}: pack {} is missing",
                        chunk.short(),
                        at.pack
                    ))
                }
                Ok(Some(at)) => {
                    if let Some(why) = damaged.get(chunk) {
                        affected.insert(at.pack);
                        Some(format!("chunk {}: {why}", chunk.short()))
                    } else if let Some(why) =
                        bad_packs.get(&at.pack).or(damaged_tables.get(&at.pack))
                    {
                        affected.insert(at.pack);
                        Some(why.clone())
                    } else {
                        None
                    }
                }
            };
            if let Some(problem) = problem {
                if errors.len() < MAX_ERRORS {
                    errors.push(format!("{what}: {problem}"));
                } else if errors.len() == MAX_ERRORS {
                    errors.push("more errors not shown".into());
                }
            }
        };
        for chunk in &manifest.tree {
            check("file list", chunk, &mut errors);
        }
        for node in TreeReader::new(&reader, &manifest.tree) {
            match node {
                Ok(node) => {
                    let what = node.path.display().to_string();
                    for chunk in &node.chunks {
                        check(&what, chunk, &mut errors);
                    }
                }
                Err(err) => {
                    errors.push(format!("file list: {err}"));
                    break;
                }
            }
        }
        checks.push(SnapshotCheck {
            snapshot: crate::repo::record(root, &id, &manifest),
            errors,
        });
    }
    let unused_damage = bad_packs
        .iter()
        .filter(|(pack, _)| !affected.contains(*pack))
        .map(|(_, why)| why.clone())
        .chain(
            damaged
                .iter()
                .filter(|(chunk, _)| !referenced.contains(*chunk))
                .map(|(chunk, why)| {
                    format!(
                        "chunk {} (used by none of the snapshots checked): {why}",
                        chunk.short()
                    )
                }),
        )
        .chain(
            damaged_tables
                .iter()
                .filter(|(pack, _)| !affected.contains(*pack))
                .map(|(_, why)| why.clone()),
        )
        .collect();
    Ok(RepoCheck {
        snapshots: checks,
        unused_damage,
        packs_read,
    })
}

/// The snapshots to check, oldest first, each with its manifest or why it
/// cannot be read.
type Listed = (String, Result<crate::repo::Manifest, String>);

fn snapshot_list(
    repo: &crate::repo::Repo,
    only: Option<&[String]>,
) -> Result<Vec<Listed>, RepoError> {
    let ids = match only {
        Some(ids) => ids.to_vec(),
        None => repo.snapshot_ids()?,
    };
    let mut list: Vec<Listed> = ids
        .into_iter()
        .map(|id| {
            let manifest = repo.manifest(&id).map_err(|err| err.to_string());
            (id, manifest)
        })
        .collect();
    list.sort_by(|a, b| match (&a.1, &b.1) {
        (Ok(x), Ok(y)) => x.time.cmp(&y.time),
        _ => a.0.cmp(&b.0),
    });
    Ok(list)
}

fn unreadable_record(root: &Path, id: &str) -> Snapshot {
    Snapshot {
        id: id.to_owned(),
        name: String::new(),
        time: jiff::Timestamp::UNIX_EPOCH,
        repo: root.to_owned(),
        paths: Vec::new(),
        parent: None,
        files: 0,
        bytes: 0,
        added_bytes: 0,
        extra: serde_json::Map::new(),
    }
}
