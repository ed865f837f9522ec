//! Checking a repository, for ops-verify.
//!
//! Structure: every snapshot's manifest matches its id, its file list
//! reads back, and every chunk it names is in the index and in a pack that
//! exists. With read-data, every pack (or a random share of them) is read
//! whole: the file against its name, and each chunk decompressed and
//! hashed. Damage is reported against the snapshots and files it hits.
//!
//! An encrypted repository opened without its key is checked as stored:
//! each manifest against its id and, with read-data, each pack's bytes
//! against its name; what the snapshots need cannot be known without it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ops_shared::record::Snapshot;

use crate::error::RepoError;
use crate::id::Id;
use crate::index::Index;
use crate::pack::{self, PackCheck, PackError};
use crate::reader::{reader_for, ChunkReader};
use crate::repo::{record, Manifest, Repo};
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
    /// Encrypted and checked without its key: stored bytes only.
    pub locked: bool,
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
    let repo = Repo::open_without_key(root)?;
    if repo.is_locked() {
        return verify_stored(&repo, only, read, wait);
    }
    let (reader, _lock) = reader_for(repo, wait, "ops-verify")?;
    let repo = &reader.repo;
    let index = reader
        .index()
        .ok_or_else(|| RepoError::Index("no index".into()))?;
    let packs = packs_to_read(repo, read)?;
    let (packs_read, damage) = if read == ReadData::None {
        (0, Damage::default())
    } else {
        (packs.len(), read_packs(repo, packs))
    };
    let mut checker = Checker {
        index,
        damage: &damage,
        affected: HashSet::new(),
        referenced: HashSet::new(),
    };
    let snapshots = snapshot_list(repo, only)?
        .into_iter()
        .map(|(id, manifest)| checker.snapshot(&reader, root, id, manifest))
        .collect();
    let mut unused_damage = checker.unused_damage();
    unused_damage.extend(slot_damage(repo)?);
    Ok(RepoCheck {
        snapshots,
        unused_damage,
        packs_read,
        locked: false,
    })
}

/// What is wrong with an encrypted repository's key slots.
fn slot_damage(repo: &Repo) -> Result<Vec<String>, RepoError> {
    if !repo.is_encrypted() {
        return Ok(Vec::new());
    }
    Ok(crate::slots::list(&repo.root)?.damaged)
}

/// [`verify`] of an encrypted repository without its key.
fn verify_stored(
    repo: &Repo,
    only: Option<&[String]>,
    read: ReadData,
    wait: Duration,
) -> Result<RepoCheck, RepoError> {
    let _lock = repo.lock(ops_shared::lock::Access::Shared, wait, "ops-verify")?;
    let ids = match only {
        Some(ids) => ids.to_vec(),
        None => repo.snapshot_ids()?,
    };
    let mut snapshots: Vec<SnapshotCheck> = ids
        .into_iter()
        .map(|id| {
            let errors = match repo.manifest_bytes(&id) {
                Ok(_) => Vec::new(),
                Err(err) => vec![err.to_string()],
            };
            // Its time only as stored: the manifest's own is sealed.
            let mut snapshot = unreadable_record(&repo.root, &id);
            if let Ok(Some(stored)) = ops_storage::stat(&repo.snapshot_path(&id)) {
                snapshot.time = stored.modified.unwrap_or(snapshot.time);
            }
            SnapshotCheck { snapshot, errors }
        })
        .collect();
    snapshots.sort_by(|a, b| a.snapshot.id.cmp(&b.snapshot.id));
    let packs = if read == ReadData::None {
        Vec::new()
    } else {
        packs_to_read(repo, read)?
    };
    let packs_read = packs.len();
    let damage = read_packs(repo, packs);
    let mut unused_damage: Vec<String> = damage
        .packs
        .into_values()
        .chain(damage.tables.into_values())
        .collect();
    unused_damage.extend(slot_damage(repo)?);
    Ok(RepoCheck {
        snapshots,
        unused_damage,
        packs_read,
        locked: true,
    })
}

/// Every pack, or with [`ReadData::Subset`] a random share of them.
fn packs_to_read(repo: &Repo, read: ReadData) -> Result<Vec<Id>, RepoError> {
    let mut packs: Vec<Id> = repo.packs()?.into_iter().collect();
    packs.sort();
    if let ReadData::Subset(percent) = read {
        let seed = jiff::Timestamp::now().as_nanosecond().to_le_bytes();
        packs.retain(|pack| {
            let roll = Id::of(&[&pack.0[..], &seed[..]].concat());
            f64::from(u16::from_le_bytes([roll.0[0], roll.0[1]])) < percent / 100.0 * 65536.0
        });
    }
    Ok(packs)
}

/// What reading the packs found.
#[derive(Default)]
struct Damage {
    /// Chunks that do not decompress to their id, and where they are.
    chunks: HashMap<Id, String>,
    /// Packs that cannot be read, or whose table cannot.
    packs: HashMap<Id, String>,
    /// Packs whose chunks are intact but whose table is not: the index still
    /// finds the chunks, a rebuilt one would not.
    tables: HashMap<Id, String>,
}

impl Damage {
    fn record(&mut self, pack: Id, result: Result<PackCheck, PackError>) {
        match result {
            Ok(check) => {
                for (entry, err) in check.damaged {
                    self.chunks.insert(
                        entry.id,
                        format!("pack {pack} at offset {}: {err}", entry.offset),
                    );
                }
                if !check.whole_ok {
                    self.tables.insert(
                        pack,
                        format!("pack {pack}: it does not match its name (damaged)"),
                    );
                }
            }
            Err(PackError::BadTable) => {
                self.packs
                    .insert(pack, format!("pack {pack}: its table is damaged"));
            }
            Err(PackError::Io(err)) => {
                self.packs
                    .insert(pack, format!("pack {pack}: cannot be read: {err}"));
            }
        }
    }
}

/// Reads `packs` whole, on every core.
fn read_packs(repo: &Repo, packs: Vec<Id>) -> Damage {
    let found = Mutex::new(Damage::default());
    let queue = Mutex::new(packs.into_iter());
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let Some(pack) = queue.lock().ok().and_then(|mut q| q.next()) else {
                    return;
                };
                let codec = repo.codec().ok();
                let result = pack::check_pack(&repo.pack_path(&pack), &pack, codec);
                let Ok(mut found) = found.lock() else { return };
                found.record(pack, result);
            });
        }
    });
    found.into_inner().unwrap_or_default()
}

/// Checks snapshots against the index and the damage found, remembering
/// which damage hit them.
struct Checker<'a> {
    index: &'a Index,
    damage: &'a Damage,
    /// Damaged or missing packs a checked snapshot needs.
    affected: HashSet<Id>,
    /// Every chunk a checked snapshot needs.
    referenced: HashSet<Id>,
}

impl Checker<'_> {
    fn snapshot(
        &mut self,
        reader: &ChunkReader,
        root: &Path,
        id: String,
        manifest: Result<Manifest, String>,
    ) -> SnapshotCheck {
        let mut errors = Vec::new();
        let manifest = match manifest {
            Ok(manifest) => manifest,
            Err(why) => {
                return SnapshotCheck {
                    snapshot: unreadable_record(root, &id),
                    errors: vec![why],
                }
            }
        };
        for chunk in &manifest.tree {
            self.chunk("file list", chunk, &mut errors);
        }
        for node in TreeReader::new(reader, &manifest.tree) {
            match node {
                Ok(node) => {
                    let what = node.path.display().to_string();
                    for chunk in &node.chunks {
                        self.chunk(&what, chunk, &mut errors);
                    }
                }
                Err(err) => {
                    errors.push(format!("file list: {err}"));
                    break;
                }
            }
        }
        SnapshotCheck {
            snapshot: record(root, &id, &manifest),
            errors,
        }
    }

    /// Adds what is wrong with `chunk` (needed by `what`) to `errors`.
    fn chunk(&mut self, what: &str, chunk: &Id, errors: &mut Vec<String>) {
        self.referenced.insert(*chunk);
        if let Some(problem) = self.problem(chunk) {
            if errors.len() < MAX_ERRORS {
                errors.push(format!("{what}: {problem}"));
            } else if errors.len() == MAX_ERRORS {
                errors.push("more errors not shown".into());
            }
        }
    }

    fn problem(&mut self, chunk: &Id) -> Option<String> {
        match self.index.location(chunk) {
            Ok(None) => Some(format!("chunk {} is in no pack", chunk.short())),
            Err(err) => Some(err.to_string()),
            Ok(Some(at)) if !self.index.has_pack(&at.pack) => {
                self.affected.insert(at.pack);
                Some(format!(
                    "chunk {}: pack {} is missing",
                    chunk.short(),
                    at.pack
                ))
            }
            Ok(Some(at)) => {
                let damage = self.damage;
                if let Some(why) = damage.chunks.get(chunk) {
                    self.affected.insert(at.pack);
                    Some(format!("chunk {}: {why}", chunk.short()))
                } else if let Some(why) = damage.packs.get(&at.pack).or(damage.tables.get(&at.pack))
                {
                    self.affected.insert(at.pack);
                    Some(why.clone())
                } else {
                    None
                }
            }
        }
    }

    /// The damage none of the checked snapshots needs.
    fn unused_damage(&self) -> Vec<String> {
        let damage = self.damage;
        damage
            .packs
            .iter()
            .filter(|(pack, _)| !self.affected.contains(*pack))
            .map(|(_, why)| why.clone())
            .chain(
                damage
                    .chunks
                    .iter()
                    .filter(|(chunk, _)| !self.referenced.contains(*chunk))
                    .map(|(chunk, why)| {
                        format!(
                            "chunk {} (used by none of the snapshots checked): {why}",
                            chunk.short()
                        )
                    }),
            )
            .chain(
                damage
                    .tables
                    .iter()
                    .filter(|(pack, _)| !self.affected.contains(*pack))
                    .map(|(_, why)| why.clone()),
            )
            .collect()
    }
}

/// The snapshots to check, oldest first, each with its manifest or why it
/// cannot be read.
type Listed = (String, Result<Manifest, String>);

fn snapshot_list(repo: &Repo, only: Option<&[String]>) -> Result<Vec<Listed>, RepoError> {
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
