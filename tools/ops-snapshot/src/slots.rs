//! Key slots of an encrypted repository (see `crypt`): `REPO/keys/<id>`,
//! one JSON object each, the master key sealed in age's format inside.
//!
//! ```text
//! {"created":"...","host":"web01","kind":"passphrase","sealed":"<hex of an age file>"}
//! {"created":"...","host":"web01","kind":"recipient","recipients":["age1..."],"sealed":"..."}
//! ```
//!
//! What a slot shows in the clear (when, from which host, what kind, to
//! which public keys) is what `key list` prints; the key itself needs the
//! passphrase or an identity.

use std::io;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use jiff::Timestamp;
use ops_shared::keys::{self, Encryption as SlotKey};
use ops_storage::Mode;
use serde::{Deserialize, Serialize};

use crate::crypt::{Encryption, Sealer};
use crate::error::RepoError;

/// Master keys opened in this process, with their slots: a passphrase
/// costs a second of scrypt, paid once however often a repository opens.
static UNLOCKED: Mutex<Vec<(String, Vec<u8>)>> = Mutex::new(Vec::new());

/// The largest slot read (one for a dozen public keys is a few KiB).
const MAX_SLOT: u64 = 64 << 10;
/// The most slots a repository may have: each costs an open a try.
const MAX_SLOTS: usize = 64;
pub const DIR: &str = "keys";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Slot {
    pub created: Timestamp,
    pub host: String,
    /// `passphrase` or `recipient`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    pub sealed: String,
}

/// Whether `name` is shaped as a slot id.
fn is_slot_id(name: &str) -> bool {
    name.len() == 32
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Seals `master` for `key` into a new slot of the repository at `root`;
/// returns the slot with its id.
pub fn add(root: &Path, key: &SlotKey, master: &[u8]) -> io::Result<(String, Slot)> {
    let sealing = key.sealing();
    let slot = Slot {
        created: Timestamp::from_second(Timestamp::now().as_second())
            .unwrap_or(Timestamp::UNIX_EPOCH),
        host: crate::create::hostname(),
        kind: if sealing.passphrase {
            "passphrase"
        } else {
            "recipient"
        }
        .into(),
        recipients: sealing.recipients,
        sealed: hex::encode(keys::seal(key, master)?),
    };
    let id = crate::repo::random_id();
    let text = serde_json::to_vec_pretty(&slot).unwrap_or_default();
    let dir = root.join(DIR);
    if !ops_storage::is_remote(root) {
        crate::repo::make_dir(&dir)?;
    }
    ops_storage::write(&dir.join(&id), Mode::New, text)?;
    Ok((id, slot))
}

/// The slots of a repository: those that read, by id, oldest first, and
/// what is wrong with those that do not.
pub struct Listing {
    pub slots: Vec<(String, Slot)>,
    pub damaged: Vec<String>,
}

/// Every slot.
///
/// Fails when `keys/` cannot be listed or holds more than [`MAX_SLOTS`].
pub fn list(root: &Path) -> Result<Listing, RepoError> {
    let dir = root.join(DIR);
    let listing = match ops_storage::list(&dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
        listing => listing.map_err(|err| RepoError::io(dir.clone(), err))?,
    };
    let ids: Vec<String> = listing
        .into_iter()
        .map(|object| object.name)
        .filter(|name| is_slot_id(name))
        .collect();
    if ids.len() > MAX_SLOTS {
        return Err(RepoError::Damaged(format!(
            "{} holds {} key slots, more than the {MAX_SLOTS} a repository may have: \
             someone wrote them there; remove those `ops-snapshot key list` does not know",
            dir.display(),
            ids.len()
        )));
    }
    let mut found = Listing {
        slots: Vec::new(),
        damaged: Vec::new(),
    };
    for id in ids {
        let path = dir.join(&id);
        let read = ops_storage::read_small(&path, MAX_SLOT)
            .map_err(|err| err.to_string())
            .and_then(|bytes| serde_json::from_slice::<Slot>(&bytes).map_err(|err| err.to_string()))
            .and_then(|slot| match hex::decode(&slot.sealed) {
                Ok(_) => Ok(slot),
                Err(err) => Err(format!("its sealed key is not hex: {err}")),
            });
        match read {
            Ok(slot) => found.slots.push((id, slot)),
            Err(why) => found
                .damaged
                .push(format!("key slot {}: unreadable ({why})", path.display())),
        }
    }
    found
        .slots
        .sort_by(|a, b| a.1.created.cmp(&b.1.created).then_with(|| a.0.cmp(&b.0)));
    Ok(found)
}

/// The master key from the first slot this process's keys open, with the
/// slot's id; `None` when no key for any slot is at hand.
///
/// Fails when keys were at hand but none opened a slot holding the key the
/// config checks for.
pub fn unlock(
    root: &Path,
    encryption: &Encryption,
) -> Result<Option<(String, Sealer, Vec<u8>)>, RepoError> {
    let unlocked = UNLOCKED.lock().unwrap_or_else(PoisonError::into_inner);
    for (slot, master) in unlocked.iter() {
        if let Some(sealer) = Sealer::new(master, encryption) {
            return Ok(Some((slot.clone(), sealer, master.clone())));
        }
    }
    drop(unlocked);
    let Listing { slots, damaged } = list(root)?;
    if slots.is_empty() {
        return Err(RepoError::Damaged(format!(
            "{}: the repository is encrypted but has no readable key slot in {DIR}/{}, so \
             nobody can open it; put back {DIR}/ from a copy of the repository",
            root.display(),
            if damaged.is_empty() {
                String::new()
            } else {
                format!(" ({})", damaged.join("; "))
            }
        )));
    }
    let sealed: Vec<Vec<u8>> = slots
        .iter()
        .map(|(_, slot)| hex::decode(&slot.sealed).unwrap_or_default())
        .collect();
    let refs: Vec<&[u8]> = sealed.iter().map(Vec::as_slice).collect();
    let opened = keys::open_any(&refs, |master| Sealer::new(master, encryption).is_some())
        .map_err(|err| match err.kind() {
            io::ErrorKind::PermissionDenied => RepoError::WrongKey {
                repo: root.to_owned(),
                why: err.to_string(),
            },
            _ => RepoError::Refused(format!("{}: {err}; nothing was done", root.display())),
        })?;
    let Some((at, master)) = opened else {
        return Ok(None);
    };
    let slot = slots[at].0.clone();
    let Some(sealer) = Sealer::new(&master, encryption) else {
        return Ok(None);
    };
    UNLOCKED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((slot.clone(), master.clone()));
    Ok(Some((slot, sealer, master)))
}

/// Removes slot `id`.
pub fn remove(root: &Path, id: &str) -> Result<(), RepoError> {
    let path = root.join(DIR).join(id);
    ops_storage::delete(&path).map_err(|err| RepoError::io(path, err))
}
