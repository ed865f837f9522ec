//! A backup being written, whatever its kind: the target directory made
//! ready and locked (shared: backups run side by side, ops-prune waits), an
//! id reserved, the manifest started, and at the end the commit that makes
//! the backup exist (artifact, checksum file, manifest last).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use jiff::Timestamp;
use ops_shared::keys::Encryption;
use ops_shared::lock::{Access, LockError};
use ops_shared::{Backup, Source};
use ops_storage::{Mode, PlaceLock, Upload};

use crate::catalog;
use crate::manifest::{DatabaseInfo, Header, ManifestWriter, SledInfo, Summary};

/// How long a backup waits for an ops-prune that holds its directory.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// What every backup's header needs to know up front.
pub struct Plan<'a> {
    pub to: &'a Path,
    pub name: &'a str,
    pub format: &'a str,
    pub source: Source,
    pub level: i32,
    pub database: Option<DatabaseInfo>,
    pub sled: Option<SledInfo>,
    pub root: Option<ops_shared::owner::Recorded>,
    /// Encrypts artifact and manifest (the format gains `.age`).
    pub encryption: Option<&'a Encryption>,
}

/// A reserved id with its manifest under way; the artifact's temporary
/// file is handed out separately to whatever writes it.
pub struct PendingBackup {
    pub header: Header,
    to: PathBuf,
    artifact_path: PathBuf,
    pub manifest: ManifestWriter,
    encryption: Option<Encryption>,
    lock: PlaceLock,
    _interrupted: ops_shared::interrupt::Guard,
}

impl PendingBackup {
    /// Makes the target directory ready and reserves the next free id for
    /// this series and second.
    ///
    /// Fails if the directory cannot be created or written.
    pub fn start(plan: Plan) -> anyhow::Result<(Self, Box<dyn Upload>)> {
        prepare_target(plan.to)?;
        let lock = lock(plan.to)?;
        catalog::check_series_source(plan.to, plan.name, &plan.source)?;
        let time =
            Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
        let format = match plan.encryption {
            Some(_) => format!("{}{}", plan.format, crate::sealed::SUFFIX),
            None => plan.format.to_owned(),
        };
        let (id, artifact) = reserve(plan.to, plan.name, &format, time)?;
        let header = Header {
            v: 1,
            id: id.clone(),
            name: plan.name.to_owned(),
            time,
            artifact: format!("{id}.{format}"),
            format,
            mode: "full".into(),
            parent: None,
            source: plan.source,
            tool: format!("ops-backup {}", env!("CARGO_PKG_VERSION")),
            zstd_level: plan.level,
            database: plan.database,
            sled: plan.sled,
            root: plan.root,
            encryption: plan.encryption.map(Encryption::sealing),
        };
        let artifact_path = plan.to.join(&header.artifact);
        let manifest = ManifestWriter::create(
            &catalog::manifest_path(plan.to, &id),
            &header,
            plan.encryption,
        )
        .map_err(|err| write_error(&artifact_path, err))?;
        let pending = PendingBackup {
            header,
            to: plan.to.to_owned(),
            artifact_path,
            manifest,
            encryption: plan.encryption.cloned(),
            lock,
            _interrupted: ops_shared::interrupt::note_on_interrupt(format!(
                "no backup was written to {} and its temporary files are removed",
                plan.to.display()
            )),
        };
        Ok((pending, artifact))
    }

    /// How the artifact is to be encrypted, if it is.
    pub fn encryption(&self) -> Option<&Encryption> {
        self.encryption.as_ref()
    }

    /// A write failure, said in the user's terms (a full disk gets a hint).
    pub fn write_error(&self, err: io::Error) -> anyhow::Error {
        write_error(&self.artifact_path, err)
    }

    /// Makes the backup exist: summary and seal, then artifact, checksum
    /// file and manifest (an encrypted backup's sealed manifest, then its
    /// outline) are committed in that order. The lock is released
    /// on return, before the caller writes the record, so a prune reading
    /// that record finds the directory free.
    ///
    /// Fails on write errors; nothing is then left under a final name
    /// except, at worst, an artifact without a manifest.
    pub fn commit(self, artifact: Box<dyn Upload>, summary: Summary) -> anyhow::Result<Backup> {
        let manifest = self
            .manifest
            .finish(&summary)
            .map_err(|e| write_error(&self.artifact_path, e))?;
        let fail = |err| write_error(&self.artifact_path, err);
        let mut checksum =
            ops_storage::create(&catalog::checksum_path(&self.artifact_path), Mode::Replace)
                .map_err(fail)?;
        writeln!(checksum, "{}  {}", summary.sha256, self.header.artifact).map_err(fail)?;
        artifact.commit().map_err(fail)?;
        checksum.commit().map_err(fail)?;
        self.lock.ensure_held().map_err(fail)?;
        for file in manifest {
            file.commit().map_err(fail)?;
        }
        Ok(catalog::record(&self.to, &self.header, &summary))
    }
}

fn write_error(artifact: &Path, err: io::Error) -> anyhow::Error {
    let full = err.raw_os_error() == Some(libc::ENOSPC) || err.kind() == io::ErrorKind::StorageFull;
    let hint = if full {
        "; free space or choose another --to directory"
    } else {
        ""
    };
    anyhow::anyhow!("writing backup {} failed: {err}{hint}", artifact.display())
}

/// Holds the directory (or bucket prefix) shared: backups run side by
/// side, ops-prune waits; see ops(7), CONCURRENCY.
pub fn lock(to: &Path) -> anyhow::Result<PlaceLock> {
    ops_storage::lock(to, Access::Shared, LOCK_WAIT, "ops-backup").map_err(|err| match err {
        LockError::Io { .. } => {
            anyhow::anyhow!("cannot write to backup directory {}: {err}", to.display())
        }
        held => held.into(),
    })
}

/// Creates the backup directory if missing; a run that creates it at the
/// same moment is no failure. A bucket must exist.
fn prepare_target(to: &Path) -> anyhow::Result<()> {
    if ops_storage::is_remote(to) {
        return ops_storage::prepare(to)
            .with_context(|| format!("cannot write backups to {}", to.display()));
    }
    let created = fs::DirBuilder::new().mode(0o700).create(to);
    match (created, fs::metadata(to)) {
        (_, Ok(meta)) if meta.is_dir() => Ok(()),
        (_, Ok(_)) => bail!("--to {} is not a directory", to.display()),
        (Err(err), _) if err.kind() != io::ErrorKind::AlreadyExists => {
            Err(err).with_context(|| {
                format!(
                    "cannot create backup directory {}; create its parent first or pick another --to",
                    to.display()
                )
            })
        }
        (_, Err(err)) => {
            Err(err).with_context(|| format!("cannot use backup directory {}", to.display()))
        }
    }
}

/// Picks the first free id for this series and second, holding its
/// artifact's temporary name so no other run can take it.
fn reserve(
    to: &Path,
    name: &str,
    format: &str,
    time: Timestamp,
) -> anyhow::Result<(String, Box<dyn Upload>)> {
    for attempt in 1..1000 {
        let id = catalog::backup_id(name, time, attempt);
        let taken = ops_storage::stat(&catalog::manifest_path(to, &id))
            .with_context(|| format!("cannot read backup directory {}", to.display()))?;
        if taken.is_some() {
            continue;
        }
        match ops_storage::create(&to.join(format!("{id}.{format}")), Mode::New) {
            Ok(file) => return Ok((id, file)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("cannot write to backup directory {}", to.display()))
            }
        }
    }
    bail!(
        "more than 999 backups of {name} in one second in {}",
        to.display()
    )
}
