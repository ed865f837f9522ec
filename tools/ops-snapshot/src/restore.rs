//! Restoring a snapshot into a new directory, never outside it.
//!
//! Entry paths must be relative and free of `..`. Directories are made as
//! the list streams by, files are written by several threads (each chunk
//! checked against its id as it is read), then hard links, then symlinks
//! (so nothing is ever written through a link the snapshot made), and last
//! the directories' modes and times, deepest first. Owners are restored
//! as recorded when root, before modes, and no setuid or setgid bit
//! survives on a file whose owner is not the recorded one
//! ([`ops_shared::owner`]); files keep their holes
//! ([`ops_shared::sparse`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use crossbeam_channel::bounded;
use filetime::FileTime;
use ops_shared::owner;
use ops_shared::record::Snapshot;
use ops_shared::sparse::SparseWriter;
use ops_shared::staging::Target;
use serde::Serialize;

use crate::reader::{open_reader, ChunkReader};
use crate::repo::{record, Manifest};
use crate::tree::{Kind, Node, TreeReader};

/// What a restore wrote.
#[derive(Clone, Copy, Debug, Default)]
pub struct Restored {
    pub entries: u64,
    pub bytes: u64,
}

/// What a restore adds to the snapshot record.
#[derive(Serialize)]
pub struct RestoredNote {
    pub ok: bool,
    #[serde(with = "ops_shared::path_text")]
    pub to: PathBuf,
    pub entries: u64,
    pub bytes: u64,
}

pub fn restored_note(to: &Path, restored: Restored) -> RestoredNote {
    RestoredNote {
        ok: true,
        to: to.to_owned(),
        entries: restored.entries,
        bytes: restored.bytes,
    }
}

/// Restores snapshot `wanted` of the repository at `root` into `target`.
///
/// Fails when the snapshot cannot be found or any of it cannot be restored;
/// the target is then left as it was.
pub fn restore_snapshot(
    root: &Path,
    wanted: &str,
    target: &Target,
    only: Option<&Path>,
    wait: Duration,
) -> anyhow::Result<(Snapshot, Restored)> {
    let (reader, _lock) = open_reader(root, wait, "ops-snapshot restore")?;
    let (id, manifest) = reader.repo.resolve(wanted)?;
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let restored = target
        .fill(manifest.root.as_ref(), |staging| {
            restore_into(&reader, &manifest, staging, only, threads)
        })
        .with_context(|| format!("restore of snapshot {} failed", &id[..8]))?;
    Ok((record(root, &id, &manifest), restored))
}

/// Restores `manifest` (or only `only` within it) into the empty
/// directory `root`.
///
/// Fails on the first entry that cannot be read or written, or that would
/// land outside `root`.
pub fn restore_into(
    reader: &ChunkReader,
    manifest: &Manifest,
    root: &Path,
    only: Option<&Path>,
    threads: usize,
) -> anyhow::Result<Restored> {
    let only = only.map(safe_relative).transpose()?;
    let as_root = owner::as_root();
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let bytes = AtomicU64::new(0);
    let mut entries = 0u64;
    let mut dirs = Vec::new();
    let mut links = Vec::new();
    let mut symlinks = Vec::new();
    let (jobs_tx, jobs_rx) = bounded::<(PathBuf, Node)>(threads.max(1) * 16);
    let walked: anyhow::Result<()> = thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            let jobs = jobs_rx.clone();
            let (failed, first_error, bytes) = (&failed, &first_error, &bytes);
            scope.spawn(move || {
                for (dest, node) in jobs {
                    if failed.load(Ordering::Relaxed) {
                        continue;
                    }
                    match write_file(reader, &dest, &node, as_root) {
                        Ok(()) => {
                            bytes.fetch_add(node.size, Ordering::Relaxed);
                        }
                        Err(err) => {
                            failed.store(true, Ordering::Relaxed);
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(
                                    err.context(format!("cannot restore {}", node.path.display())),
                                );
                            }
                        }
                    }
                }
            });
        }
        drop(jobs_rx);
        let jobs_tx = jobs_tx;
        for node in TreeReader::new(reader, &manifest.tree) {
            let node = node?;
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let relative = safe_relative(&node.path)?;
            if let Some(only) = &only {
                let wanted = relative.starts_with(only)
                    || (node.kind == Kind::Dir && only.starts_with(&relative));
                if !wanted {
                    continue;
                }
            }
            entries += 1;
            let dest = root.join(&relative);
            match node.kind {
                Kind::Dir => {
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(&dest)
                        .with_context(|| format!("cannot create {}", dest.display()))?;
                    dirs.push((dest, node));
                }
                Kind::File => {
                    if let Some(parent) = dest.parent() {
                        fs::DirBuilder::new()
                            .recursive(true)
                            .mode(0o700)
                            .create(parent)?;
                    }
                    jobs_tx
                        .send((dest, node))
                        .map_err(|_| anyhow!("restore threads stopped"))?;
                }
                Kind::Hardlink => links.push((dest, safe_relative(&node.target)?, node)),
                Kind::Symlink => symlinks.push((relative, node)),
            }
        }
        Ok(())
    });
    walked?;
    if let Some(err) = first_error.into_inner().ok().flatten() {
        return Err(err);
    }
    for (dest, target, node) in links {
        let source = root.join(&target);
        if source.symlink_metadata().is_err() {
            bail!(
                "{} is a hard link to {}, which is not restored (outside --path?)",
                node.path.display(),
                target.display()
            );
        }
        fs::hard_link(&source, &dest).with_context(|| format!("cannot link {}", dest.display()))?;
        bytes.fetch_add(node.size, Ordering::Relaxed);
    }
    for (relative, node) in symlinks {
        check_parents(root, &relative)?;
        let dest = root.join(&relative);
        std::os::unix::fs::symlink(&node.target, &dest)
            .with_context(|| format!("cannot create symlink {}", dest.display()))?;
        owner::restore_symlink(&dest, Some(node.uid), Some(node.gid), as_root)?;
        let time = file_time(node.mtime);
        filetime::set_symlink_file_times(&dest, time, time)?;
    }
    for (dest, node) in dirs.into_iter().rev() {
        let dir =
            owner::open_dir(&dest).with_context(|| format!("cannot open {}", dest.display()))?;
        finish_file(&dir, &node, as_root)?;
    }
    Ok(Restored {
        entries,
        bytes: bytes.into_inner(),
    })
}

fn write_file(reader: &ChunkReader, dest: &Path, node: &Node, as_root: bool) -> anyhow::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)?;
    let mut sparse = SparseWriter::new(&file);
    for id in &node.chunks {
        let data = reader.read(id)?;
        sparse.write_all(&data)?;
    }
    sparse.finish()?;
    finish_file(&file, node, as_root)?;
    Ok(())
}

fn finish_file(file: &File, node: &Node, as_root: bool) -> io::Result<()> {
    owner::restore(file, Some(node.uid), Some(node.gid), node.mode, as_root)?;
    let time = system_time(node.mtime);
    file.set_times(fs::FileTimes::new().set_accessed(time).set_modified(time))
}

/// Every parent of `relative` under `root` must be a real directory.
fn check_parents(root: &Path, relative: &Path) -> anyhow::Result<()> {
    let mut dir = root.to_owned();
    for component in relative.parent().into_iter().flat_map(Path::components) {
        dir.push(component);
        if !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            bail!(
                "{} passes through a symlink or file; refusing to write outside the target",
                relative.display()
            );
        }
    }
    Ok(())
}

/// `path` if it stays inside the target: relative, no `..`, not empty.
pub fn safe_relative(path: &Path) -> anyhow::Result<PathBuf> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => bail!(
                "snapshot entry {} is absolute or contains ..; refusing to write outside the target",
                path.display()
            ),
        }
    }
    if clean.as_os_str().is_empty() {
        bail!("a snapshot entry has an empty path");
    }
    Ok(clean)
}

/// Nanoseconds since the epoch as a `SystemTime`.
pub fn system_time(nanos: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

fn file_time(nanos: i64) -> FileTime {
    FileTime::from_system_time(system_time(nanos))
}
