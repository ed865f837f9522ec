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
use crossbeam_channel::{bounded, Receiver, Sender};
use filetime::FileTime;
use ops_shared::owner;
use ops_shared::record::Snapshot;
use ops_shared::sparse::SparseWriter;
use ops_shared::staging::Target;

use crate::reader::{open_reader, ChunkReader, LastPack};
use crate::repo::{record, Manifest};
use crate::tree::{Kind, Node, TreeReader};

/// What a restore wrote.
#[derive(Clone, Copy, Debug, Default)]
pub struct Restored {
    pub entries: u64,
    pub bytes: u64,
}

/// Says what a restore into `to` did (the summary line) and adds it to the
/// snapshot record as `"restore"`.
pub fn report_restored(snapshot: &mut Snapshot, to: &Path, restored: Restored) {
    ops_shared::progress::finish(format!(
        "restored snapshot {}: {} entries, {} to {}",
        ops_shared::ids::short(&snapshot.id),
        restored.entries,
        ops_shared::record::human_bytes(restored.bytes),
        to.display()
    ));
    let note = ops_shared::record::Restored {
        ok: true,
        to: to.to_owned(),
        entries: restored.entries,
        bytes: restored.bytes,
    };
    ops_shared::Record::annotate(snapshot, "restore", note);
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
    let restore = Restore {
        reader,
        root,
        as_root: owner::as_root(),
        bytes: AtomicU64::new(0),
    };
    reader.spill_into(root);
    let later = restore.write_files(manifest, only.as_deref(), threads);
    reader.stop_spilling();
    let later = later?;
    restore.hard_links(later.links)?;
    restore.symlinks(later.symlinks)?;
    restore.finish_dirs(later.dirs)?;
    Ok(Restored {
        entries: later.entries,
        bytes: restore.bytes.into_inner(),
    })
}

/// One restore: where it reads and writes, and the bytes written so far.
struct Restore<'a> {
    reader: &'a ChunkReader,
    root: &'a Path,
    as_root: bool,
    bytes: AtomicU64,
}

/// What the walk of the file list leaves until every file is written.
#[derive(Default)]
struct Later {
    entries: u64,
    dirs: Vec<(PathBuf, Node)>,
    links: Vec<(PathBuf, PathBuf, Node)>,
    symlinks: Vec<(PathBuf, Node)>,
}

/// Whether the entry at `relative` is restored with `--path only`: it is
/// under `only`, or a directory on the way there.
fn wanted(only: Option<&Path>, relative: &Path, node: &Node) -> bool {
    only.is_none_or(|only| {
        relative.starts_with(only) || (node.kind == Kind::Dir && only.starts_with(relative))
    })
}

impl Restore<'_> {
    /// Walks the file list: makes the directories, has `threads` writers
    /// write the files, and returns the rest for later.
    fn write_files(
        &self,
        manifest: &Manifest,
        only: Option<&Path>,
        threads: usize,
    ) -> anyhow::Result<Later> {
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        let mut later = Later::default();
        let (jobs_tx, jobs_rx) = bounded::<(PathBuf, Node)>(threads.max(1) * 16);
        let walked: anyhow::Result<()> = thread::scope(|scope| {
            for _ in 0..threads.max(1) {
                let jobs = jobs_rx.clone();
                let (failed, first_error) = (&failed, &first_error);
                scope.spawn(move || self.write_jobs(&jobs, failed, first_error));
            }
            drop(jobs_rx);
            let jobs_tx = jobs_tx;
            for node in TreeReader::new(self.reader, &manifest.tree) {
                let node = node?;
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let relative = safe_relative(&node.path)?;
                if !wanted(only, &relative, &node) {
                    continue;
                }
                later.entries += 1;
                self.place(relative, node, &jobs_tx, &mut later)?;
            }
            Ok(())
        });
        walked?;
        if let Some(err) = first_error.into_inner().ok().flatten() {
            return Err(err);
        }
        Ok(later)
    }

    /// Writes the files of `jobs` until they run out or one fails; the
    /// first failure is kept in `first_error`.
    fn write_jobs(
        &self,
        jobs: &Receiver<(PathBuf, Node)>,
        failed: &AtomicBool,
        first_error: &Mutex<Option<anyhow::Error>>,
    ) {
        let mut last = LastPack::default();
        for (dest, node) in jobs {
            if failed.load(Ordering::Relaxed) {
                continue;
            }
            match write_file(self.reader, &mut last, &dest, &node, self.as_root) {
                Ok(()) => {
                    self.bytes.fetch_add(node.size, Ordering::Relaxed);
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
    }

    /// Makes a directory, hands a file to the writers, or keeps a link for later.
    fn place(
        &self,
        relative: PathBuf,
        node: Node,
        files: &Sender<(PathBuf, Node)>,
        later: &mut Later,
    ) -> anyhow::Result<()> {
        let dest = self.root.join(&relative);
        match node.kind {
            Kind::Dir => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dest)
                    .with_context(|| format!("cannot create {}", dest.display()))?;
                later.dirs.push((dest, node));
            }
            Kind::File => {
                if let Some(parent) = dest.parent() {
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(parent)?;
                }
                files
                    .send((dest, node))
                    .map_err(|_| anyhow!("restore threads stopped"))?;
            }
            Kind::Hardlink => later.links.push((dest, safe_relative(&node.target)?, node)),
            Kind::Symlink => later.symlinks.push((relative, node)),
        }
        Ok(())
    }

    fn hard_links(&self, links: Vec<(PathBuf, PathBuf, Node)>) -> anyhow::Result<()> {
        for (dest, target, node) in links {
            let source = self.root.join(&target);
            if source.symlink_metadata().is_err() {
                bail!(
                    "{} is a hard link to {}, which is not restored (outside --path?)",
                    node.path.display(),
                    target.display()
                );
            }
            fs::hard_link(&source, &dest)
                .with_context(|| format!("cannot link {}", dest.display()))?;
            self.bytes.fetch_add(node.size, Ordering::Relaxed);
        }
        Ok(())
    }

    fn symlinks(&self, symlinks: Vec<(PathBuf, Node)>) -> anyhow::Result<()> {
        for (relative, node) in symlinks {
            check_parents(self.root, &relative)?;
            let dest = self.root.join(&relative);
            std::os::unix::fs::symlink(&node.target, &dest)
                .with_context(|| format!("cannot create symlink {}", dest.display()))?;
            owner::restore_symlink(&dest, Some(node.uid), Some(node.gid), self.as_root)?;
            let time = file_time(node.mtime);
            filetime::set_symlink_file_times(&dest, time, time)?;
        }
        Ok(())
    }

    /// The directories' owners, modes and times, deepest first.
    fn finish_dirs(&self, dirs: Vec<(PathBuf, Node)>) -> anyhow::Result<()> {
        for (dest, node) in dirs.into_iter().rev() {
            let dir = owner::open_dir(&dest)
                .with_context(|| format!("cannot open {}", dest.display()))?;
            finish_file(&dir, &node, self.as_root)?;
        }
        Ok(())
    }
}

fn write_file(
    reader: &ChunkReader,
    last: &mut LastPack,
    dest: &Path,
    node: &Node,
    as_root: bool,
) -> anyhow::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)?;
    let mut sparse = SparseWriter::new(&file);
    for id in &node.chunks {
        let data = reader.read(id, last)?;
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
