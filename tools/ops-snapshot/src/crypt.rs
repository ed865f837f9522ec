//! Encrypted repositories: what is sealed, with which key, and the key
//! slots that hold that key.
//!
//! A repository created with `--encrypt` has a master key of 64 random
//! bytes: the first half keys XChaCha20-Poly1305, which seals every chunk
//! (file data and file lists), every pack's table and every snapshot
//! manifest; the second half keys HMAC-SHA256, which names chunks, so the
//! store does not reveal whether it holds a file someone else also has.
//! Sealed bytes are `nonce (24) | ciphertext | tag (16)`; the associated
//! data binds a chunk to its id and a table or manifest to its role.
//!
//! The master key is kept only in key slots, `REPO/keys/<id>`: each is an
//! age file holding it, for a passphrase (scrypt) or an age public key.
//! Adding or removing a slot rewrites no data. The config carries a check
//! value of the key (a hash of it), so a slot holding another key, such as
//! one a stranger wrote for our public key, is not taken; a stranger's
//! whole new config is caught by `known`.

use std::sync::atomic::{AtomicU64, Ordering};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::id::Id;

const NONCE: usize = 24;
const TAG: usize = 16;
/// What sealing adds to a plaintext.
pub const OVERHEAD: usize = NONCE + TAG;
pub const MASTER_KEY_BYTES: usize = 64;

/// What a sealed piece of the repository is, bound into its seal.
#[derive(Clone, Copy)]
pub enum Role<'a> {
    Chunk(&'a Id),
    Table,
    Manifest,
}

impl Role<'_> {
    fn aad(&self) -> &[u8] {
        match self {
            Role::Chunk(id) => &id.0,
            Role::Table => b"ops-snapshot pack table",
            Role::Manifest => b"ops-snapshot manifest",
        }
    }
}

/// How the repository's config says it is encrypted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Encryption {
    pub cipher: String,
    pub chunk_ids: String,
    /// SHA-256 of [`CHECK_INPUT`] and the master key, in hex: no chunk id.
    pub key_check: String,
}

const CIPHER: &str = "xchacha20-poly1305";
const CHUNK_IDS: &str = "hmac-sha256";
const CHECK_INPUT: &[u8] = b"ops-snapshot key check";

/// The repository's master key, as the codec uses it.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    ids: Hmac<Sha256>,
    /// Nonces are this random prefix and a counter: unique per process.
    prefix: [u8; 16],
    counter: AtomicU64,
    /// The config's check value of this key.
    check: String,
}

impl Sealer {
    /// The sealer of `master`, or `None` if it is not the key `encryption`
    /// checks for.
    pub fn new(master: &[u8], encryption: &Encryption) -> Option<Sealer> {
        if master.len() != MASTER_KEY_BYTES
            || encryption.cipher != CIPHER
            || encryption.chunk_ids != CHUNK_IDS
        {
            return None;
        }
        let sealer = Sealer::unchecked(master)?;
        (sealer.check() == encryption.key_check).then_some(sealer)
    }

    fn unchecked(master: &[u8]) -> Option<Sealer> {
        let (cipher, ids) = master.split_at(32);
        let mut prefix = [0; 16];
        getrandom::getrandom(&mut prefix).ok()?;
        Some(Sealer {
            cipher: XChaCha20Poly1305::new_from_slice(cipher).ok()?,
            ids: <Hmac<Sha256> as Mac>::new_from_slice(ids).ok()?,
            prefix,
            counter: AtomicU64::new(0),
            check: hex::encode(
                Sha256::new()
                    .chain_update(CHECK_INPUT)
                    .chain_update(master)
                    .finalize(),
            ),
        })
    }

    fn check(&self) -> String {
        self.check.clone()
    }
}

/// A new master key, and how the config records it.
///
/// Fails only when the system has no randomness to give.
pub fn new_master_key() -> std::io::Result<(Vec<u8>, Encryption)> {
    let mut master = vec![0; MASTER_KEY_BYTES];
    getrandom::getrandom(&mut master).map_err(std::io::Error::other)?;
    let sealer = Sealer::unchecked(&master).ok_or_else(|| std::io::Error::other("bad key"))?;
    let encryption = Encryption {
        cipher: CIPHER.into(),
        chunk_ids: CHUNK_IDS.into(),
        key_check: sealer.check(),
    };
    Ok((master, encryption))
}

/// How the repository names and stores what it holds: in the clear (SHA-256
/// ids) or sealed under its master key (keyed ids).
pub struct Codec {
    sealer: Option<Sealer>,
}

impl Codec {
    pub fn clear() -> Codec {
        Codec { sealer: None }
    }

    pub fn sealed(sealer: Sealer) -> Codec {
        Codec {
            sealer: Some(sealer),
        }
    }

    pub fn is_sealed(&self) -> bool {
        self.sealer.is_some()
    }

    /// The id of a chunk of `data`.
    pub fn id_of(&self, data: &[u8]) -> Id {
        match &self.sealer {
            None => Id::of(data),
            Some(sealer) => Id(sealer
                .ids
                .clone()
                .chain_update(data)
                .finalize()
                .into_bytes()
                .into()),
        }
    }

    /// Bytes to leave free before a plaintext that [`Codec::seal_tail`] seals.
    pub fn head(&self) -> usize {
        if self.is_sealed() {
            NONCE
        } else {
            0
        }
    }

    /// Seals `buffer[start + head..]` in place, the nonce going into the
    /// `head` bytes left free at `start`; nothing happens in the clear.
    pub fn seal_tail(&self, role: Role<'_>, buffer: &mut Vec<u8>, start: usize) {
        let Some(sealer) = &self.sealer else { return };
        let mut nonce = [0; NONCE];
        nonce[..16].copy_from_slice(&sealer.prefix);
        let count = sealer.counter.fetch_add(1, Ordering::Relaxed);
        nonce[16..].copy_from_slice(&count.to_le_bytes());
        let nonce = XNonce::from(nonce);
        buffer[start..start + NONCE].copy_from_slice(&nonce);
        let tag = sealer
            .cipher
            .encrypt_in_place_detached(&nonce, role.aad(), &mut buffer[start + NONCE..])
            .unwrap_or_default();
        buffer.extend_from_slice(&tag);
    }

    /// `plain`, sealed (or as it is, in the clear).
    pub fn seal(&self, role: Role<'_>, plain: &[u8]) -> Vec<u8> {
        let mut buffer = Vec::with_capacity(plain.len() + OVERHEAD);
        buffer.resize(self.head(), 0);
        buffer.extend_from_slice(plain);
        self.seal_tail(role, &mut buffer, 0);
        buffer
    }

    /// The plaintext of `stored`.
    ///
    /// Fails when it was changed, sealed under another key or as something
    /// else.
    pub fn open(&self, role: Role<'_>, stored: &[u8]) -> Result<Vec<u8>, Unsealable> {
        let mut plain = Vec::new();
        self.open_into(role, stored, &mut plain)?;
        Ok(plain)
    }

    /// [`Codec::open`] into `plain` (emptied first), so that a reader of
    /// many chunks reuses one buffer.
    pub fn open_into(
        &self,
        role: Role<'_>,
        stored: &[u8],
        plain: &mut Vec<u8>,
    ) -> Result<(), Unsealable> {
        plain.clear();
        let Some(sealer) = &self.sealer else {
            plain.extend_from_slice(stored);
            return Ok(());
        };
        if stored.len() < OVERHEAD {
            return Err(Unsealable);
        }
        let (nonce, rest) = stored.split_at(NONCE);
        let (body, tag) = rest.split_at(rest.len() - TAG);
        plain.extend_from_slice(body);
        sealer
            .cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                role.aad(),
                plain,
                Tag::from_slice(tag),
            )
            .map_err(|_| Unsealable)
    }

    /// What sealing adds to each piece.
    pub fn overhead(&self) -> usize {
        if self.is_sealed() {
            OVERHEAD
        } else {
            0
        }
    }
}

/// Sealed bytes that do not open: changed, or not sealed with this key.
#[derive(Debug, thiserror::Error)]
#[error("does not decrypt (changed, or sealed with another key)")]
pub struct Unsealable;

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> (Codec, Encryption, Vec<u8>) {
        let (master, encryption) = new_master_key().unwrap();
        let sealer = Sealer::new(&master, &encryption).unwrap();
        (Codec::sealed(sealer), encryption, master)
    }

    #[test]
    fn sealed_bytes_open_only_as_what_they_were_sealed_as() {
        let (codec, _, _) = codec();
        let id = codec.id_of(b"data");
        let stored = codec.seal(Role::Chunk(&id), b"data");
        assert_eq!(stored.len(), 4 + OVERHEAD);
        assert_eq!(codec.open(Role::Chunk(&id), &stored).unwrap(), b"data");
        let other = codec.id_of(b"other");
        assert!(codec.open(Role::Chunk(&other), &stored).is_err());
        assert!(codec.open(Role::Manifest, &stored).is_err());
        for at in 0..stored.len() {
            let mut flipped = stored.clone();
            flipped[at] ^= 1;
            assert!(codec.open(Role::Chunk(&id), &flipped).is_err(), "byte {at}");
        }
    }

    #[test]
    fn chunk_ids_are_keyed_and_a_key_that_fails_the_check_is_refused() {
        let (codec, encryption, master) = codec();
        assert_ne!(codec.id_of(b"data"), Id::of(b"data"));
        let (other, _) = new_master_key().unwrap();
        assert!(Sealer::new(&other, &encryption).is_none());
        let again = Codec::sealed(Sealer::new(&master, &encryption).unwrap());
        assert_eq!(again.id_of(b"data"), codec.id_of(b"data"));
        let stored = codec.seal(Role::Table, b"table");
        assert_eq!(again.open(Role::Table, &stored).unwrap(), b"table");
    }

    #[test]
    fn nonces_never_repeat_within_a_process() {
        let (codec, _, _) = codec();
        let a = codec.seal(Role::Manifest, b"same");
        let b = codec.seal(Role::Manifest, b"same");
        assert_ne!(a[..NONCE], b[..NONCE]);
        assert_ne!(a, b);
    }
}
