//! What a candidate is: the facts the policy judges ([`Candidate`]) and the
//! thing itself ([`Subject`]), wherever it came from.

use std::path::PathBuf;

use jiff::Timestamp;
use ops_shared::record::{File, Snapshot};
use ops_shared::Backup;

/// What the policy needs to know about an item.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Items are judged per group: a series in a directory, or a --files argument.
    pub group: String,
    pub id: String,
    pub time: Timestamp,
    pub parent: Option<String>,
    pub bytes: u64,
    /// Why its last verification failed, if it did.
    pub failed: Option<String>,
    /// A record on stdin said so: the whole group must stay as it is.
    pub failed_upstream: bool,
    /// Backups: the newest good one of a group is never removed.
    pub guard_newest: bool,
}

/// The thing itself, as it is written back out and deleted.
#[derive(Clone, Debug)]
pub enum Subject {
    Backup(Backup),
    File(File),
    Snapshot(Snapshot),
}

#[derive(Clone, Debug)]
pub struct Item {
    pub candidate: Candidate,
    pub subject: Subject,
    /// Canonical: the artifact or file, which is what is deleted; for a
    /// snapshot, the repository it is in.
    pub path: PathBuf,
    /// The stdin line it came from, if it did: such a record is checked
    /// against its manifest before anything is deleted.
    pub line: Option<usize>,
}

impl Item {
    /// What makes the same item reached twice one: its path, and for a
    /// snapshot also its id.
    pub fn key(&self) -> (PathBuf, Option<String>) {
        let id = match &self.subject {
            Subject::Snapshot(snapshot) => Some(snapshot.id.clone()),
            Subject::Backup(_) | Subject::File(_) => None,
        };
        (self.path.clone(), id)
    }
}
