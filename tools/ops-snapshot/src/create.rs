//! `ops-snapshot create`: walk a tree, read only what changed since the
//! parent snapshot, store new chunks, and commit the snapshot last.
//!
//! One walker (in sorted order, merging the parent's file list as it goes),
//! reader threads (open, chunk, hash, deduplicate, compress short chunks),
//! the store's compressors and pack writer, and this thread putting entries
//! back in walk order into the new file list. A bounded number of entries
//! is in flight, so memory does not grow with the tree. The manifest is
//! written only after every pack it needs is durable and indexed.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use jiff::Timestamp;
use ops_shared::entry::warn;
use ops_shared::exclude::Excludes;
use ops_shared::lock::Access;

use crate::chunker::{Chunker, Params};
use crate::error::RepoError;
use crate::id::Id;
use crate::index::Index;
use crate::live::Locked;
use crate::reader::ChunkReader;
use crate::repo::{Manifest, Repo};
use crate::store::{Added, ChunkStore, Putter};
use crate::tree::{Kind, Node, TreeReader, TreeWriter};

/// What to snapshot and how.
pub struct Request {
    pub source: PathBuf,
    pub name: Option<String>,
    pub excludes: Vec<String>,
    pub skip_unreadable: bool,
    pub threads: usize,
    pub level: i32,
    /// The first key slot of a new, encrypted repository.
    pub encrypt: Option<ops_shared::keys::Encryption>,
    pub lock_wait: Duration,
}

/// Entries walked but not yet written to the file list, at most.
const IN_FLIGHT: usize = 4096;

enum Outcome {
    /// An entry, and whether its file was read (not taken from the parent).
    Node(Node, bool),
    Skipped,
    Unreadable(PathBuf, String),
    /// Deleted or replaced by a non-file after it was listed: a warning,
    /// as in GNU tar.
    Vanished(PathBuf, String),
    /// Storing failed; the run stops.
    Fatal(RepoError),
}

struct Job {
    seq: u64,
    node: Node,
    full: PathBuf,
}

/// A snapshot just taken.
pub struct Created {
    pub id: String,
    pub manifest: Manifest,
    /// Files read; the others were unchanged since the parent.
    pub files_read: u64,
    /// Paths left out because they vanished after they were listed.
    pub vanished: u64,
    /// Files that changed (or were replaced) while they were read.
    pub changed: u64,
}

/// Takes a snapshot.
///
/// Fails when the source or repository cannot be used, when files could not
/// be read (unless `skip_unreadable`), or when storing fails; the snapshot
/// is then not recorded, and data already stored waits for the next run or gc.
pub fn create(root: &Path, request: &Request) -> anyhow::Result<Created> {
    let source = fs::canonicalize(&request.source)
        .with_context(|| format!("cannot snapshot {}", request.source.display()))?;
    let name = match &request.name {
        Some(name) => name.clone(),
        None => source
            .file_name()
            .map_or_else(|| "root".into(), |n| n.to_string_lossy().into_owned()),
    };
    let excludes = Excludes::new(&request.excludes)?;
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    let repo = Arc::new(Repo::open_or_init(
        root,
        request.level,
        request.encrypt.as_ref(),
        request.lock_wait,
        "ops-snapshot create",
    )?);
    let lock = repo.lock(Access::Shared, request.lock_wait, "ops-snapshot create")?;
    let index = Arc::new(Index::open(
        &repo,
        request.lock_wait,
        "ops-snapshot create",
    )?);
    let source_text = ops_shared::path_text::encode(&source);
    let parent = repo
        .manifests()?
        .into_iter()
        .rfind(|(_, m)| m.name == name && m.paths == [source_text.clone()]);
    let store = ChunkStore::start(Arc::clone(&repo), Arc::clone(&index), request.threads)?;
    let started = Timestamp::now();
    let walked = Walked {
        source: &source,
        excludes: &excludes,
        parent_tree: parent.as_ref().map_or(&[], |(_, m)| &m.tree[..]),
        repo: &repo,
        index: &index,
    };
    let (tree, tally) = walked.store_tree(request, &store)?;
    let (tree, added) = finish_storing(tree, store)?;
    if tally.unreadable > 0 {
        bail!(
            "{} path(s) could not be read (above); the snapshot was not recorded. \
             Fix their permissions, or pass --skip-unreadable to leave them out",
            tally.unreadable
        );
    }
    let manifest = Manifest {
        name,
        time: started,
        host: hostname(),
        paths: vec![source_text],
        parent: parent.map(|(id, _)| id),
        excludes: request.excludes.clone(),
        tree,
        files: tally.files,
        dirs: tally.dirs,
        bytes: tally.bytes,
        added_bytes: added.stored_bytes,
        root: fs::symlink_metadata(&source)
            .ok()
            .filter(fs::Metadata::is_dir)
            .map(|meta| ops_shared::owner::Recorded::of(&meta)),
    };
    lock.ensure_held()
        .map_err(|err| RepoError::io(repo.root.clone(), err))?;
    let id = repo.write_manifest(&manifest)?;
    Ok(Created {
        id,
        manifest,
        files_read: tally.read,
        vanished: tally.vanished,
        changed: tally.changed,
    })
}

/// What a snapshot walks: the source, the file list of its parent
/// snapshot, and the repository it stores into.
struct Walked<'a> {
    source: &'a Path,
    excludes: &'a Excludes,
    parent_tree: &'a [Id],
    repo: &'a Arc<Repo>,
    index: &'a Arc<Index>,
}

impl Walked<'_> {
    /// Walks the source while reader threads read and store what changed,
    /// and writes the entries in walk order into the new file list. Returns
    /// the file list (or why it could not be made) and what was counted.
    fn store_tree(
        &self,
        request: &Request,
        store: &ChunkStore,
    ) -> anyhow::Result<(anyhow::Result<Vec<Id>>, Tally)> {
        let reader = ChunkReader::new(Arc::clone(self.repo), Arc::clone(self.index));
        let abort = AtomicBool::new(false);
        let (jobs_tx, jobs_rx) = bounded::<Job>(request.threads * 64);
        let (done_tx, done_rx) = unbounded::<(u64, Outcome)>();
        let (permit_tx, permit_rx) = bounded::<()>(IN_FLIGHT);
        let mut tree = TreeWriter::new(store.putter()?, self.repo.config.tree_chunks);
        let putters = (0..request.threads.max(1))
            .map(|_| store.putter())
            .collect::<Result<Vec<_>, _>>()?;
        let mut tally = Tally::default();
        let mut fatal: Option<anyhow::Error> = None;
        thread::scope(|scope| {
            let walker = Walker {
                source: self.source,
                excludes: self.excludes,
                parent: TreeReader::new(&reader, self.parent_tree).peekable(),
                index: self.index,
                abort: &abort,
                jobs: jobs_tx,
                done: done_tx.clone(),
                permits: permit_tx,
                hard_links: HashMap::new(),
                locked: Locked::read(),
            };
            scope.spawn(move || walker.walk());
            for putter in putters {
                let jobs = jobs_rx.clone();
                let done = done_tx.clone();
                let (abort, params) = (&abort, self.repo.config.data_chunks);
                scope.spawn(move || read_files(&jobs, &done, putter, params, abort));
            }
            drop(done_tx);
            let mut pending = BTreeMap::new();
            let mut next = 0u64;
            for (seq, outcome) in &done_rx {
                pending.insert(seq, outcome);
                while let Some(outcome) = pending.remove(&next) {
                    next += 1;
                    let _ = permit_rx.recv();
                    if fatal.is_some() {
                        continue;
                    }
                    if let Err(err) = tally.add(outcome, &mut tree, request.skip_unreadable) {
                        fatal = Some(err.into());
                        abort.store(true, Ordering::Relaxed);
                    }
                }
            }
        });
        let tree = match fatal {
            Some(err) => {
                drop(tree);
                Err(err)
            }
            None => tree.finish().map_err(anyhow::Error::from),
        };
        Ok((tree, tally))
    }
}

/// The file list and what was added, once the store has written its last
/// pack.
///
/// Fails when either failed. The pack writer's own error (a full disk, say)
/// says more than the "storing stopped" that the other stages then see.
fn finish_storing(
    tree: anyhow::Result<Vec<Id>>,
    store: ChunkStore,
) -> anyhow::Result<(Vec<Id>, Added)> {
    match (tree, store.finish()) {
        (Ok(tree), Ok(added)) => Ok((tree, added)),
        (_, Err(err)) => Err(anyhow::Error::from(err).context("the snapshot was not recorded")),
        (Err(err), Ok(_)) => Err(err.context("the snapshot was not recorded")),
    }
}

#[derive(Default)]
struct Tally {
    files: u64,
    read: u64,
    dirs: u64,
    bytes: u64,
    unreadable: u64,
    vanished: u64,
    changed: u64,
}

impl Tally {
    fn add(
        &mut self,
        outcome: Outcome,
        tree: &mut TreeWriter,
        skip: bool,
    ) -> Result<(), RepoError> {
        match outcome {
            Outcome::Node(node, read) => {
                self.read += u64::from(read);
                self.changed += u64::from(read && node.changed);
                match node.kind {
                    Kind::File | Kind::Hardlink => {
                        self.files += 1;
                        self.bytes += node.size;
                    }
                    Kind::Dir => self.dirs += 1,
                    Kind::Symlink => {}
                }
                tree.push(&node)?;
            }
            Outcome::Skipped => {}
            Outcome::Vanished(path, why) => {
                warn(format!("{}: {why}; left out", path.display()));
                self.vanished += 1;
            }
            Outcome::Fatal(err) => return Err(err),
            Outcome::Unreadable(path, why) if skip => {
                warn(format!("{}: {why}; left out", path.display()));
            }
            Outcome::Unreadable(path, why) => {
                ops_shared::entry::error(format!("{}: {why}", path.display()));
                self.unreadable += 1;
            }
        }
        Ok(())
    }
}

struct Walker<'a> {
    source: &'a Path,
    excludes: &'a Excludes,
    parent: std::iter::Peekable<TreeReader<'a>>,
    index: &'a Index,
    abort: &'a AtomicBool,
    jobs: Sender<Job>,
    done: Sender<(u64, Outcome)>,
    permits: Sender<()>,
    hard_links: HashMap<(u64, u64), PathBuf>,
    locked: Locked,
}

impl Walker<'_> {
    fn walk(mut self) {
        let source = self.source;
        let single_file = !source.is_dir();
        let base = if single_file {
            source.parent().unwrap_or(Path::new("/"))
        } else {
            source
        };
        let walk = walkdir::WalkDir::new(source)
            .follow_links(false)
            .sort_by_file_name()
            .min_depth(usize::from(!single_file))
            .into_iter()
            .filter_entry(|entry| {
                let relative = entry.path().strip_prefix(base).unwrap_or(entry.path());
                entry.depth() == 0 || !self.excludes.matches(relative)
            });
        for (seq, entry) in (0u64..).zip(walk) {
            if self.abort.load(Ordering::Relaxed) || self.permits.send(()).is_err() {
                break;
            }
            let outcome = match entry {
                Ok(entry) => {
                    let relative = entry.path().strip_prefix(base).unwrap_or(entry.path());
                    match entry.metadata() {
                        Ok(meta) => self.visit(seq, entry.path(), relative.to_owned(), &meta),
                        Err(err) if vanished(err.io_error()) => {
                            Some(Outcome::Vanished(entry.path().to_owned(), REMOVED.into()))
                        }
                        Err(err) => Some(Outcome::Unreadable(
                            entry.path().to_owned(),
                            err.to_string(),
                        )),
                    }
                }
                Err(err) if err.depth() > 0 && vanished(err.io_error()) => {
                    let path = err.path().unwrap_or(source).to_owned();
                    Some(Outcome::Vanished(path, REMOVED.into()))
                }
                Err(err) => {
                    let path = err.path().unwrap_or(source).to_owned();
                    let why = err
                        .io_error()
                        .map_or_else(|| err.to_string(), io::Error::to_string);
                    Some(Outcome::Unreadable(path, why))
                }
            };
            if let Some(outcome) = outcome {
                if self.done.send((seq, outcome)).is_err() {
                    break;
                }
            }
        }
    }

    /// The entry's outcome, or `None` when a reader thread will give it.
    fn visit(
        &mut self,
        seq: u64,
        full: &Path,
        path: PathBuf,
        meta: &fs::Metadata,
    ) -> Option<Outcome> {
        let file_type = meta.file_type();
        let mut node = Node {
            path,
            kind: Kind::File,
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            ino: meta.ino(),
            size: 0,
            chunks: Vec::new(),
            target: PathBuf::new(),
            changed: false,
        };
        if file_type.is_dir() {
            node.kind = Kind::Dir;
            return Some(Outcome::Node(node, false));
        }
        if file_type.is_symlink() {
            node.kind = Kind::Symlink;
            return Some(match fs::read_link(full) {
                Ok(target) => {
                    node.target = target;
                    Outcome::Node(node, false)
                }
                Err(err) if vanished(Some(&err)) || err.kind() == io::ErrorKind::InvalidInput => {
                    Outcome::Vanished(full.to_owned(), REMOVED.into())
                }
                Err(err) => Outcome::Unreadable(full.to_owned(), err.to_string()),
            });
        }
        if !file_type.is_file() {
            warn(format!(
                "{}: not a file, directory or symlink; skipped",
                full.display()
            ));
            return Some(Outcome::Skipped);
        }
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.hard_links.get(&key) {
                node.kind = Kind::Hardlink;
                node.target = first.clone();
                node.size = meta.len();
                return Some(Outcome::Node(node, false));
            }
            self.hard_links.insert(key, node.path.clone());
        }
        node.size = meta.len();
        self.locked.warn_if_held(full, meta);
        if let Some(parent) = self.unchanged(&node) {
            ops_shared::progress::add_files(1);
            ops_shared::progress::add_bytes(node.size);
            node.chunks = parent.chunks;
            return Some(Outcome::Node(node, false));
        }
        let job = Job {
            seq,
            node,
            full: full.to_owned(),
        };
        match self.jobs.send(job) {
            Ok(()) => None,
            Err(_) => Some(Outcome::Skipped),
        }
    }

    /// The parent's entry for `node` if the file is unchanged since then
    /// and all its chunks are still stored.
    fn unchanged(&mut self, node: &Node) -> Option<Node> {
        while let Some(Ok(parent)) = self.parent.peek() {
            if parent.path < node.path {
                self.parent.next();
                continue;
            }
            let same = parent.path == node.path
                && parent.kind == Kind::File
                && !parent.changed
                && parent.size == node.size
                && parent.mtime == node.mtime
                && parent.ctime == node.ctime
                && parent.ino == node.ino;
            if !same {
                return None;
            }
            let parent = self.parent.next()?.ok()?;
            let stored = parent
                .chunks
                .iter()
                .all(|id| self.index.stored(id).is_ok_and(|at| at.is_some()));
            return stored.then_some(parent);
        }
        None
    }
}

fn read_files(
    jobs: &Receiver<Job>,
    done: &Sender<(u64, Outcome)>,
    mut putter: Putter,
    params: Params,
    abort: &AtomicBool,
) {
    let mut chunker = Chunker::new(params);
    for Job {
        seq,
        mut node,
        full,
    } in jobs
    {
        let outcome = if abort.load(Ordering::Relaxed) {
            Outcome::Skipped
        } else {
            match read_file(&full, &mut node, &mut chunker, &mut putter) {
                Ok(()) => Outcome::Node(node, true),
                Err(ReadError::Source(err)) => Outcome::Unreadable(full, err.to_string()),
                Err(ReadError::Vanished(why)) => Outcome::Vanished(full, why.into()),
                Err(ReadError::Store(err)) => {
                    abort.store(true, Ordering::Relaxed);
                    Outcome::Fatal(err)
                }
            }
        };
        if done.send((seq, outcome)).is_err() {
            return;
        }
    }
}

enum ReadError {
    Source(io::Error),
    Vanished(&'static str),
    Store(RepoError),
}

fn read_file(
    full: &Path,
    node: &mut Node,
    chunker: &mut Chunker,
    putter: &mut Putter,
) -> Result<(), ReadError> {
    // Not following links: a file replaced by a symlink after it was
    // listed must not make us read what the link points to (as root).
    // Non-blocking, so one replaced by a FIFO cannot hang the run.
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(full);
    let mut file = match opened {
        Ok(file) => file,
        Err(err) if vanished(Some(&err)) => return Err(ReadError::Vanished(REMOVED)),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            return Err(ReadError::Vanished(REPLACED))
        }
        Err(err) => return Err(ReadError::Source(err)),
    };
    let now = file.metadata().map_err(ReadError::Source)?;
    if !now.is_file() {
        return Err(ReadError::Vanished(REPLACED));
    }
    if now.ino() != node.ino {
        // Another file under the same name: store it as it is now.
        warn(format!(
            "{}: replaced after it was listed; stored as read, marked changed",
            full.display()
        ));
        node.mode = now.permissions().mode() & 0o7777;
        (node.uid, node.gid, node.ino) = (now.uid(), now.gid(), now.ino());
        node.mtime = now.mtime() * 1_000_000_000 + now.mtime_nsec();
        node.ctime = now.ctime() * 1_000_000_000 + now.ctime_nsec();
        node.size = now.len();
        node.changed = true;
    }
    chunker.reset(node.size);
    let mut size = 0u64;
    while let Some(chunk) = chunker.next(&mut file).map_err(ReadError::Source)? {
        let id = putter.id_of(chunk);
        putter.put(id, chunk).map_err(ReadError::Store)?;
        node.chunks.push(id);
        size += chunk.len() as u64;
        ops_shared::progress::add_bytes(chunk.len() as u64);
    }
    ops_shared::progress::add_files(1);
    let after = file.metadata().map_err(ReadError::Source)?;
    let ctime = after.ctime() * 1_000_000_000 + after.ctime_nsec();
    let mtime = after.mtime() * 1_000_000_000 + after.mtime_nsec();
    if size != node.size || mtime != node.mtime || ctime != node.ctime {
        warn(format!(
            "{}: changed while it was read; stored as read, marked changed",
            full.display()
        ));
        node.changed = true;
        node.size = size;
    }
    Ok(())
}

const REMOVED: &str = "removed before it was read";
const REPLACED: &str = "replaced by something that is not a file before it was read";

/// Whether `err` says the path is gone (deleted, or a directory on its way
/// replaced) since it was listed.
fn vanished(err: Option<&io::Error>) -> bool {
    err.is_some_and(|err| {
        err.kind() == io::ErrorKind::NotFound || err.raw_os_error() == Some(libc::ENOTDIR)
    })
}

pub(crate) fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}
