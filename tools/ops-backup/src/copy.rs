//! `ops-backup copy`: backups from one place to another (a directory or a
//! bucket, either way), as a backup is written: artifact, checksum file,
//! manifest last, so an interrupted copy never lists as a backup.
//!
//! The artifact is hashed on its way and must arrive with the SHA-256 its
//! manifest records, or nothing is committed. A backup already at the
//! destination with the same checksum is skipped, so the copy can run from
//! cron; one with the same id and another checksum is refused.

use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{bail, Context};
use ops_shared::Backup;
use ops_storage::Mode;
use sha2::{Digest, Sha256};

use crate::catalog;
use crate::hashing::hex;
use crate::manifest;

/// What became of one record.
pub enum Copied {
    /// Written to the destination now.
    Written(Backup),
    /// Already there, checksum for checksum.
    Present(Backup),
}

/// Copies the backup `backup` describes into `to`.
///
/// Fails, committing nothing, if the record is not one of ours, does not
/// match the manifest beside its artifact, the destination holds another
/// backup of that id or another source in that series, the record says its
/// verification failed, or the bytes that
/// arrive are not the ones the manifest records.
pub fn copy(backup: &Backup, to: &Path) -> anyhow::Result<Copied> {
    catalog::check_record(backup)?;
    if let Some(failed) = backup.verification().filter(|v| !v.ok) {
        bail!(
            "its verification failed at {} ({}); not copied",
            failed.time,
            failed.errors.first().map_or("", String::as_str)
        );
    }
    let from = catalog::parent_dir(&backup.path);
    let manifest = catalog::manifest_path(from, &backup.id);
    let (header, summary) = catalog::read_manifest(&manifest)?;
    if summary.sha256 != backup.sha256 || header.time != backup.time {
        bail!(
            "{}: the record does not match its manifest {}; list the backups again and copy from that",
            backup.path.display(),
            manifest.display()
        );
    }
    ops_storage::prepare(to)
        .with_context(|| format!("cannot write backups to {}", to.display()))?;
    let lock = crate::pending::lock(to)?;
    let target_manifest = catalog::manifest_path(to, &backup.id);
    if ops_storage::stat(&target_manifest)?.is_some() {
        let present = catalog::record_of(&to.join(&header.artifact))?;
        if present.sha256 != summary.sha256 {
            bail!(
                "{} holds another backup {} (checksum {}, not {}); nothing was copied",
                to.display(),
                backup.id,
                present.sha256,
                summary.sha256
            );
        }
        return Ok(Copied::Present(present));
    }
    catalog::check_series_source(to, &header.name, &header.source)?;
    let artifact = to.join(&header.artifact);
    let arrived = transfer(&backup.path, &artifact, &summary.sha256)?;
    let mut checksum = ops_storage::create(&catalog::checksum_path(&artifact), Mode::Replace)?;
    writeln!(checksum, "{}  {}", summary.sha256, header.artifact)?;
    let sealed_copy = match header.encryption {
        Some(_) => Some(copy_file(
            &manifest::sealed_path(&manifest),
            &manifest::sealed_path(&target_manifest),
        )?),
        None => None,
    };
    let manifest_copy = copy_file(&manifest, &target_manifest)?;
    arrived.commit().with_context(|| cannot_write(&artifact))?;
    checksum.commit().with_context(|| cannot_write(&artifact))?;
    if let Some(sealed_copy) = sealed_copy {
        sealed_copy
            .commit()
            .with_context(|| cannot_write(&target_manifest))?;
    }
    lock.ensure_held()
        .with_context(|| cannot_write(&target_manifest))?;
    manifest_copy
        .commit()
        .with_context(|| cannot_write(&target_manifest))?;
    // The manifest was read twice; the copy that now exists is the one
    // checked, and withdrawn (manifest first, as a prune does) if it differs.
    if let Err(err) = check_copied(&target_manifest, &summary.sha256) {
        let _ = ops_storage::delete(&target_manifest);
        bail!(
            "the manifest copied from {} {err}; the copy was withdrawn",
            manifest.display()
        );
    }
    Ok(Copied::Written(catalog::record_of(&artifact)?))
}

/// Streams `from` into an upload of `to` and checks what was read hashes
/// to `sha256`; returns the upload, not yet committed.
fn transfer(from: &Path, to: &Path, sha256: &str) -> anyhow::Result<Box<dyn ops_storage::Upload>> {
    let mut source = ops_storage::open(from)
        .with_context(|| format!("cannot read artifact {}", from.display()))?;
    let mut upload = ops_storage::create(to, Mode::Replace).with_context(|| cannot_write(to))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("cannot read artifact {}", from.display()))
            }
        };
        hasher.update(&buffer[..n]);
        ops_shared::progress::add_bytes(n as u64);
        upload
            .write_all(&buffer[..n])
            .with_context(|| cannot_write(to))?;
    }
    let got = hex(hasher);
    if got != sha256 {
        bail!(
            "{} reads with SHA-256 {got}, its manifest says {sha256}: the artifact is damaged; \
             nothing was copied (ops-verify it)",
            from.display()
        );
    }
    Ok(upload)
}

/// An upload of `to` holding what `from` holds, not yet committed.
fn copy_file(from: &Path, to: &Path) -> anyhow::Result<Box<dyn ops_storage::Upload>> {
    let mut copy = ops_storage::create(to, Mode::New).with_context(|| cannot_write(to))?;
    io::copy(&mut ops_storage::open(from)?, &mut copy)
        .with_context(|| format!("cannot copy {}", from.display()))?;
    Ok(copy)
}

/// Checks a manifest as stored (seal; an encrypted backup's sealed
/// manifest too) and that it records `sha256`.
fn check_copied(manifest: &Path, sha256: &str) -> anyhow::Result<()> {
    let (_, summary) = manifest::check_stored(manifest)?;
    if summary.sha256 != sha256 {
        bail!("records another artifact (SHA-256 {})", summary.sha256);
    }
    Ok(())
}

fn cannot_write(path: &Path) -> String {
    format!("cannot write {}", path.display())
}
