//! The errors ops-backup's readers and catalog return to the other tools.
//!
//! Each says what happened and what to do, in the words users already see,
//! and whose it is ([`Classify`]): ops-restore refusing a backup whose
//! entries would land outside the target is the user's to look at (exit 2);
//! a damaged artifact or a failed write is the work's (exit 1).

use std::path::PathBuf;

use ops_shared::entry::{Classify, ErrorKind};

use crate::catalog::Refused;
use crate::manifest::ManifestError;

/// What can go wrong reading, checking or restoring a backup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name, record or manifest that does not have the shape we write.
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(
        "{} has no manifest ({}) beside it, so it cannot be checked; \
         if you trust it, extract it with standard tools (tar --zstd -xf)",
        artifact.display(),
        manifest.display()
    )]
    NoManifest {
        artifact: PathBuf,
        manifest: PathBuf,
    },
    #[error("cannot read the manifest of {id}")]
    ManifestOf {
        id: String,
        #[source]
        source: ManifestError,
    },
    #[error(
        "{id}: refusing to restore: {}{}",
        entries.join("; "),
        if *before_writing {
            "; nothing was written (ops-verify reports such a backup as failed)"
        } else {
            ""
        }
    )]
    Unrestorable {
        id: String,
        entries: Vec<String>,
        /// Found in the manifest, before anything was written.
        before_writing: bool,
    },
    #[error("{id}: the artifact is not the one the record describes (checksum differs)")]
    NotThisArtifact { id: String },
    #[error("{id} failed verification while restoring: {}", errors.join("; "))]
    Damaged { id: String, errors: Vec<String> },
    #[error("{id} is a database dump; restore it with --to postgres://USER@HOST/DB")]
    NotADirectory { id: String },
    #[error("{0}")]
    MixedSeries(String),
    #[error(
        "{} does not describe {} any more (different artifact, checksum or time); not removed. \
         List the directory again (ops-backup list) and prune from that",
        manifest.display(),
        artifact.display()
    )]
    Changed {
        manifest: PathBuf,
        artifact: PathBuf,
    },
    /// Shown with its cause, also where it is formatted on its own
    /// (ops-health's messages) rather than as an error chain.
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
    #[error("restore of {id} failed")]
    Restore {
        id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// An I/O error, with what was being done (`cannot read backup directory X`).
    pub fn io(what: String, error: std::io::Error) -> Self {
        Error::Io { what, error }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Unrestorable { .. } | Error::MixedSeries(_) => ErrorKind::Usage,
            _ => ErrorKind::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_says_what_was_done_and_why_it_failed() {
        let err = Error::io(
            "cannot read backup directory /srv/b".into(),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(
            err.to_string(),
            "cannot read backup directory /srv/b: entity not found"
        );
    }
}
