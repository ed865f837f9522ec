//! Encrypted backups: the artifact and the full manifest are age files
//! (`age -d` reads them, and what comes out extracts or restores as the
//! clear format does), beside a clear outline of the manifest that says
//! what list, prune and health need and nothing of the content.
//!
//! Encryption is a layer under every format: a reader asks [`plaintext`]
//! for the artifact's bytes and knows nothing more of it. Without a key a
//! backup is still checked to its last stored byte ([`quick_check`]).
//!
//! Public-key encryption keeps backups secret, not authentic: anyone who
//! knows the public key can write a backup that decrypts.

use std::io::{self, Read};
use std::path::Path;

use ops_shared::keys::{self, Sealing};

use crate::catalog;
use crate::check::{compare_artifact, Findings};
use crate::hashing::HashingReader;
use crate::manifest;

/// What an encrypted format's name ends with: `tar.zst.age`.
pub const SUFFIX: &str = ".age";

/// Whether a format (or artifact name) is encrypted.
pub fn is_sealed(name: &str) -> bool {
    name.ends_with(SUFFIX)
}

/// The artifact's content as its clear format has it: `stored` itself, or
/// decrypted with this process's keys when the artifact is encrypted.
///
/// Fails if the keys at hand do not open it or it is not an age file.
pub fn plaintext<'a>(
    artifact: &Path,
    stored: impl Read + Send + 'a,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    let sealed = artifact
        .file_name()
        .is_some_and(|name| is_sealed(&name.to_string_lossy()));
    if sealed {
        Ok(Box::new(keys::decrypt(stored, artifact)?))
    } else {
        Ok(Box::new(stored))
    }
}

/// What an encrypted artifact is encrypted to, from its outline; `None`
/// for a clear one or an unreadable outline.
pub fn sealing_of(artifact: &Path) -> Option<Sealing> {
    let manifest = catalog::manifest_of(artifact).ok()?;
    manifest::read_outline(&manifest).ok()?.0.encryption
}

/// Checks an encrypted backup without its key: the outline's seal, the
/// sealed manifest against the outline, and the artifact as stored
/// against the outline's size and SHA-256 and its checksum file.
pub fn quick_check(artifact: &Path) -> Findings {
    let mut findings = Findings::default();
    let checked = catalog::manifest_of(artifact)
        .map_err(|err| err.to_string())
        .and_then(|path| manifest::check_stored(&path).map_err(|err| err.to_string()));
    let summary = match checked {
        Ok((_, summary)) => summary,
        Err(err) => {
            findings.fail(err);
            return findings.close();
        }
    };
    let read = ops_storage::open(artifact).and_then(|file| {
        let mut stored = HashingReader::new(ops_shared::progress::Counting(file));
        io::copy(&mut stored, &mut io::sink())?;
        Ok(stored.finish())
    });
    match read {
        Ok((sha256, bytes)) => {
            compare_artifact(artifact, &summary, &sha256, bytes, &mut findings);
            findings.artifact_sha256 = Some(sha256);
        }
        Err(err) => findings.fail(format!(
            "cannot read artifact {}: {err}",
            artifact.display()
        )),
    }
    findings.recorded_sha256 = Some(summary.sha256);
    findings.entries = summary.entries;
    findings.close()
}
