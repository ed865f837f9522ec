//! The one place that knows which kinds of artifact exist and which reader
//! checks, restores and restore-tests each.
//!
//! ops-verify and ops-restore ask [`Format::of`] once and call its entry
//! points; a new kind of artifact (physical base backups, encrypted
//! artifacts) is a new variant here, and the compiler then names every
//! place that must learn it.

use std::path::Path;

use ops_shared::Backup;

use crate::check::{EntrySink, Findings, Level};
use crate::error::Error;
use crate::pg::check::NotTested;
use crate::pg::DumpFormat;
use crate::{archive, catalog, create, pg, sealed, sleddb};

/// A kind of artifact this version reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A directory or file tree: `tar.zst` with a manifest of every entry.
    Tree,
    /// A PostgreSQL dump, plain SQL (`sql.zst`) or pg_dump's custom format
    /// (`dump`).
    Dump(DumpFormat),
    /// A sled database: every tree as one zstd stream (`sled.zst`).
    Sled,
}

/// Where a format restores to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A directory (a tree, or a sled database's directory).
    Directory,
    /// A PostgreSQL database.
    Database,
}

impl Format {
    /// The format a record's `format` names, if this version reads it.
    pub fn of(name: &str) -> Option<Format> {
        match name.strip_suffix(sealed::SUFFIX).unwrap_or(name) {
            create::FORMAT => Some(Format::Tree),
            sleddb::backup::FORMAT => Some(Format::Sled),
            other => DumpFormat::of(other).map(Format::Dump),
        }
    }

    /// The format's name, which is also the artifact's file extension
    /// (an encrypted artifact's adds `.age`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Tree => create::FORMAT,
            Format::Dump(dump) => dump.name(),
            Format::Sled => sleddb::backup::FORMAT,
        }
    }

    pub fn destination(self) -> Destination {
        match self {
            Format::Dump(_) => Destination::Database,
            Format::Tree | Format::Sled => Destination::Directory,
        }
    }

    /// Checks `artifact` against its manifest at `level`; every problem
    /// with the backup is a finding.
    pub fn verify(self, artifact: &Path, level: Level) -> Findings {
        let encrypted = artifact
            .file_name()
            .is_some_and(|name| sealed::is_sealed(&name.to_string_lossy()));
        if encrypted && level == Level::Quick {
            return sealed::quick_check(artifact);
        }
        match self {
            Format::Tree => archive::check(artifact, level, &mut crate::check::Discard)
                .unwrap_or_else(|err| Findings::failed(err.to_string())),
            Format::Dump(_) => pg::check::verify(artifact, level),
            Format::Sled => sleddb::backup::verify(artifact, level),
        }
    }

    /// Restores `artifact` where nobody uses it yet and proves the result:
    /// a dump into a scratch database on `server` (`None`: the server it
    /// was dumped from), a sled database into a scratch directory.
    ///
    /// `None` for a tree, whose full verification already reads every
    /// entry as a restore would; `Some(Err)` when the test could not run
    /// for reasons that are not the backup's.
    pub fn restore_test(
        self,
        artifact: &Path,
        server: Option<&str>,
    ) -> Option<Result<Findings, NotTested>> {
        match self {
            Format::Tree => None,
            Format::Dump(_) => Some(pg::check::restore_test(artifact, server)),
            Format::Sled => Some(Ok(sleddb::backup::restore_test(artifact))),
        }
    }

    /// Refuses, before anything is written, a backup whose manifest lists
    /// an entry that cannot be restored inside a target.
    pub fn check_restorable(self, backup: &Backup) -> Result<(), Error> {
        if self != Format::Tree {
            return Ok(());
        }
        let manifest = catalog::manifest_of(&backup.path)?;
        let entries =
            archive::unrestorable_entries(&manifest).map_err(|source| Error::ManifestOf {
                id: backup.id.clone(),
                source,
            })?;
        if entries.is_empty() {
            Ok(())
        } else {
            Err(Error::Unrestorable {
                id: backup.id.clone(),
                entries,
                before_writing: true,
            })
        }
    }

    /// Restores a tree or sled backup into `staging`, an empty directory,
    /// every byte checked against the manifest: a tree's entries go to
    /// `files`, which writes them; a sled database is written here.
    ///
    /// Returns the entries (sled: keys) and content bytes restored. Fails
    /// when the artifact is not the one `backup` describes, is damaged, or
    /// a write fails; the caller discards `staging` then.
    pub fn restore_into(
        self,
        backup: &Backup,
        staging: &Path,
        files: &mut dyn Restorer,
    ) -> Result<(u64, u64), Error> {
        let failed = |source: anyhow::Error| Error::Restore {
            id: backup.id.clone(),
            source: source.into(),
        };
        match self {
            Format::Dump(_) => Err(Error::NotADirectory {
                id: backup.id.clone(),
            }),
            Format::Sled => sleddb::backup::restore_into(&backup.path, staging).map_err(failed),
            Format::Tree => {
                let findings =
                    archive::extract(&backup.path, files).map_err(|err| failed(err.into()))?;
                if findings.ok()
                    && findings.recorded_sha256.as_deref() != Some(backup.sha256.as_str())
                {
                    return Err(Error::NotThisArtifact {
                        id: backup.id.clone(),
                    });
                }
                if findings.unrestorable {
                    return Err(Error::Unrestorable {
                        id: backup.id.clone(),
                        entries: findings.errors,
                        before_writing: false,
                    });
                }
                if !findings.ok() {
                    return Err(Error::Damaged {
                        id: backup.id.clone(),
                        errors: findings.errors,
                    });
                }
                files.finish().map_err(|err| failed(err.into()))
            }
        }
    }
}

/// Writes a tree's checked entries into a restore's staging directory.
pub trait Restorer: EntrySink {
    /// Called once every entry is written: applies what must wait for the
    /// end (directory times) and returns the entries and bytes written.
    fn finish(&mut self) -> std::io::Result<(u64, u64)>;
}
