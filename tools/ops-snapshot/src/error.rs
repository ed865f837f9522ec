//! What can go wrong with a repository, and which exit status says so.

use std::io;
use std::path::PathBuf;

use ops_shared::entry::{Classify, ErrorKind};
use ops_shared::lock::LockError;

use crate::repo::FORMAT_VERSION;

/// What can go wrong with a repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{}: not an ops-snapshot repository (no readable config); `ops-snapshot create PATH --repo {}` makes one", .0.display(), .0.display())]
    NotARepo(PathBuf),
    #[error("{}: repository format version {version} is newer than this ops-snapshot reads (up to {FORMAT_VERSION}); upgrade ops", repo.display())]
    TooNew { repo: PathBuf, version: u32 },
    #[error("{}: repository id {id:?} is not 32 hex digits: the config was changed or damaged, and nothing was done; put back the config from a copy of the repository", repo.join("config").display())]
    BadId { repo: PathBuf, id: String },
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error(transparent)]
    Lock(LockError),
    #[error("chunk index: {0}")]
    Index(String),
    #[error("{0}")]
    Damaged(String),
    #[error("no snapshot {wanted:?} in {}; `ops-snapshot list --repo {}` shows them", repo.display(), repo.display())]
    NoSnapshot { repo: PathBuf, wanted: String },
    #[error("{wanted:?} matches {count} snapshots; give more of the id")]
    Ambiguous { wanted: String, count: usize },
    #[error("{}: the repository is encrypted; give its key: OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND for a passphrase, --identity FILE or OPS_IDENTITY_FILE for an age identity", .0.display())]
    Locked(PathBuf),
    #[error("{}: {why}; nothing was done", repo.display())]
    WrongKey { repo: PathBuf, why: String },
    #[error("{}: the repository exists unencrypted, and encryption is chosen when a repository is created; drop --encrypt, or snapshot into a new repository", .0.display())]
    ClearNotEncrypted(PathBuf),
    #[error("{0}")]
    Refused(String),
    #[error("{}: it was an encrypted repository when last opened here, but {found}: someone may have replaced it to read what is written next; nothing was done. If you replaced it yourself, remove {}", repo.display(), record.display())]
    Replaced {
        repo: PathBuf,
        found: String,
        record: PathBuf,
    },
}

impl RepoError {
    pub fn io(path: PathBuf, error: io::Error) -> RepoError {
        RepoError::Io { path, error }
    }

    /// Whether the user asked for something that is not there (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RepoError::NotARepo(_)
                | RepoError::BadId { .. }
                | RepoError::TooNew { .. }
                | RepoError::NoSnapshot { .. }
                | RepoError::Ambiguous { .. }
                | RepoError::Locked(_)
                | RepoError::ClearNotEncrypted(_)
                | RepoError::Refused(_)
                | RepoError::Lock(LockError::Refused { .. })
        )
    }
}

impl Classify for RepoError {
    fn kind(&self) -> ErrorKind {
        if self.is_usage() {
            ErrorKind::Usage
        } else {
            ErrorKind::Failed
        }
    }
}
