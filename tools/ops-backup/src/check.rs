//! What every format's check shares: how deep to look ([`Level`]), what was
//! found ([`Findings`]), where checked entries go ([`EntrySink`]), and the
//! comparison of an artifact as read with what its manifest recorded.
//!
//! The readers of each format (tar in [`crate::archive`], dumps in
//! [`crate::pg`], sled in [`crate::sleddb`]) fill these in; ops-verify and
//! ops-restore see only them.

use std::io::{self, Read};
use std::path::Path;

use crate::catalog;
use crate::manifest::{Entry, Summary};

const MAX_REPORTED: usize = 20;

/// How much to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// The artifact's checksum and the manifest's seal.
    Quick,
    /// Also decompress everything and check every entry against the manifest.
    Full,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Quick => "quick",
            Level::Full => "full",
        }
    }
}

/// Receives each entry that matched the manifest, in archive order.
pub trait EntrySink {
    /// `content` yields a file's bytes (empty for other kinds); whatever the
    /// sink leaves unread is read and hashed after it returns.
    ///
    /// An error ends the whole read (restore: a write failed).
    fn entry(&mut self, entry: &Entry, content: &mut dyn Read) -> io::Result<()>;
}

/// A sink that keeps nothing: verification only.
pub struct Discard;

impl EntrySink for Discard {
    fn entry(&mut self, _entry: &Entry, _content: &mut dyn Read) -> io::Result<()> {
        Ok(())
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Findings {
    /// What is wrong, one line each; empty when the backup is good.
    pub errors: Vec<String>,
    hidden: usize,
    pub entries: u64,
    pub raw_bytes: u64,
    /// The SHA-256 of the artifact as read, when it could be read and
    /// was hashed.
    pub artifact_sha256: Option<String>,
    /// The SHA-256 the manifest records for the artifact.
    pub recorded_sha256: Option<String>,
    /// Some entry breaks the rules of [`Names`]: ops-restore refuses it.
    pub unrestorable: bool,
}

impl Findings {
    /// Findings of one problem that stopped the check.
    pub fn failed(message: String) -> Self {
        Findings {
            errors: vec![message],
            ..Findings::default()
        }
    }

    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn fail(&mut self, message: String) {
        if self.errors.len() < MAX_REPORTED {
            self.errors.push(message);
        } else {
            self.hidden += 1;
        }
    }

    pub(crate) fn close(mut self) -> Self {
        if self.hidden > 0 {
            self.errors
                .push(format!("... and {} more problems", self.hidden));
        }
        self
    }
}

/// The artifact as read against the manifest's size and checksum, and the
/// `sha256sum` checksum file beside it, if any.
pub fn compare_artifact(
    artifact: &Path,
    summary: &Summary,
    sha256: &str,
    bytes: u64,
    findings: &mut Findings,
) {
    compare_size(summary, bytes, findings);
    if sha256 != summary.sha256 {
        findings.fail(format!(
            "artifact checksum mismatch: manifest says {}, artifact is {sha256}",
            summary.sha256
        ));
    }
    let checksum_file = catalog::checksum_path(artifact);
    if let Ok(text) = std::fs::read_to_string(&checksum_file) {
        if text.split_whitespace().next() != Some(summary.sha256.as_str()) {
            findings.fail(format!(
                "checksum file {} disagrees with the manifest",
                checksum_file.display()
            ));
        }
    }
}

pub(crate) fn compare_size(summary: &Summary, bytes: u64, findings: &mut Findings) {
    if bytes != summary.bytes {
        findings.fail(format!(
            "artifact is {bytes} bytes, the manifest says {} (truncated or appended to)",
            summary.bytes
        ));
    }
}
