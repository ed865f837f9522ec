//! `ops-snapshot copy`: snapshots from one repository into another (a
//! directory or a bucket, either way), chunks moved as stored.
//!
//! Only chunks the target does not have travel, compressed as they are and
//! each checked against its id on the way; nothing is re-chunked. The
//! manifest is copied byte for byte (so the snapshot keeps its id) and
//! written last, once every chunk it needs is durable in the target: a
//! killed copy leaves packs a later copy or gc uses, never a snapshot with
//! holes. A snapshot the target has already is skipped, so a copy can run
//! from cron.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ops_shared::lock::Access;

use crate::error::RepoError;
use crate::id::Id;
use crate::index::Index;
use crate::pack::PackWriter;
use crate::reader::{open_reader, ChunkReader};
use crate::repo::{Manifest, Repo};
use crate::tree::TreeReader;

const TOOL: &str = "ops-snapshot copy";

/// One snapshot's copy.
pub struct Outcome {
    pub id: String,
    pub manifest: Manifest,
    /// False when the target had it already.
    pub copied: bool,
    /// Stored bytes of the chunks that travelled.
    pub stored_bytes: u64,
}

/// Copies the snapshots `wanted` (ids, unique prefixes or `latest`) of the
/// repository at `from` into the one at `to`, created if missing with the
/// source's zstd level, handing each outcome to `done` as it comes. Both
/// are held shared while it runs.
///
/// Fails on the first snapshot that cannot be read or written (or that
/// `done` fails on); those before it are copied.
pub fn copy(
    from: &Path,
    wanted: &[String],
    to: &Path,
    wait: Duration,
    done: &mut dyn FnMut(Outcome) -> Result<(), RepoError>,
) -> Result<(), RepoError> {
    let (reader, _from_lock) = open_reader(from, wait, TOOL)?;
    let source = Arc::clone(&reader.repo);
    if source.is_encrypted()
        || Repo::read_config(to).is_ok_and(|config| config.encryption.is_some())
    {
        return Err(RepoError::Refused(format!(
            "copying snapshots of encrypted repositories is not supported yet ({} to {}): \
             chunk ids are keyed per repository; copy the whole repository as it is stored \
             instead (cp -a, aws s3 sync)",
            from.display(),
            to.display()
        )));
    }
    let target = Repo::open_or_init(to, source.config.level, None, wait, TOOL)?;
    if target.config.id == source.config.id && same_place(from, to) {
        return Err(RepoError::io(
            to.to_owned(),
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "is the repository the snapshots are copied from; give another --to",
            ),
        ));
    }
    let to_lock = target.lock(Access::Shared, wait, TOOL)?;
    let index = Index::open(&target, wait, TOOL)?;
    for wanted in wanted {
        let (id, manifest) = source.resolve(wanted)?;
        if target.has_snapshot(&id)? {
            done(Outcome {
                id,
                manifest,
                copied: false,
                stored_bytes: 0,
            })?;
            continue;
        }
        let stored_bytes = copy_chunks(&reader, &manifest, &target, &index)?;
        let bytes = source.manifest_bytes(&id)?;
        to_lock
            .ensure_held()
            .map_err(|err| RepoError::io(target.root.clone(), err))?;
        target.write_manifest_bytes(&bytes)?;
        done(Outcome {
            id,
            manifest,
            copied: true,
            stored_bytes,
        })?;
    }
    Ok(())
}

/// Whether two repository paths name one place (local paths resolved).
fn same_place(a: &Path, b: &Path) -> bool {
    let resolved = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    resolved(a) == resolved(b)
}

/// Stores in `target` every chunk of `manifest` it lacks, durably and
/// indexed; returns their stored bytes.
fn copy_chunks(
    reader: &ChunkReader,
    manifest: &Manifest,
    target: &Repo,
    index: &Index,
) -> Result<u64, RepoError> {
    let io_error = |err| RepoError::io(target.packs_dir(), err);
    let mut queued = HashSet::new();
    let mut pack = PackWriter::default();
    let mut bytes = 0;
    let mut add = |chunk: Id, pack: &mut PackWriter| -> Result<(), RepoError> {
        if !queued.insert(chunk) || index.stored(&chunk)?.is_some() {
            return Ok(());
        }
        let (stored, raw) = reader.read_stored(&chunk)?;
        if !pack.fits(stored.len()) {
            bytes += seal(std::mem::take(pack), target, index)?;
        }
        pack.add(chunk, &stored, raw).map_err(io_error)?;
        Ok(())
    };
    for chunk in &manifest.tree {
        add(*chunk, &mut pack)?;
    }
    for node in TreeReader::new(reader, &manifest.tree) {
        for chunk in node?.chunks {
            add(chunk, &mut pack)?;
        }
    }
    if !pack.is_empty() {
        bytes += seal(pack, target, index)?;
    }
    index.flush()?;
    Ok(bytes)
}

fn seal(pack: PackWriter, target: &Repo, index: &Index) -> Result<u64, RepoError> {
    let sealed = pack
        .finish(target)
        .map_err(|err| RepoError::io(target.packs_dir(), err))?;
    index.point_at(sealed.id, &sealed.entries)?;
    Ok(sealed.bytes)
}
