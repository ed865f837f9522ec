//! Giving a restored object its recorded owner and mode without minting
//! privilege, the rules of GNU tar's `--same-owner` / `--no-same-owner`.
//!
//! As root, the recorded owner and group are set first and the mode after
//! (chown clears setuid bits, and a setuid file must never exist, even for
//! a moment, under an owner it was not recorded with). Whoever runs it, a
//! setuid bit is kept only when the file's owner is the recorded one and a
//! setgid bit only when its group is: a user's `chmod 4755` copy of `id`
//! comes back owned by that user, or without the bit, never setuid root.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const SETUID: u32 = 0o4000;
const SETGID: u32 = 0o2000;

/// Whether this process may give files away (restores owners).
pub fn as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Sets `file`'s owner (as root) to the recorded `uid` and `gid`, then its
/// permission bits to `mode`, less setuid/setgid where the owner or group
/// is not the recorded one. Unrecorded owners count as not matching.
pub fn restore(
    file: &File,
    uid: Option<u32>,
    gid: Option<u32>,
    mode: u32,
    as_root: bool,
) -> io::Result<()> {
    if as_root && (uid.is_some() || gid.is_some()) {
        std::os::unix::fs::fchown(file, uid, gid)?;
    }
    let mode = if mode & (SETUID | SETGID) == 0 {
        mode & 0o7777
    } else {
        safe_mode(&file.metadata()?, uid, gid, mode)
    };
    file.set_permissions(fs::Permissions::from_mode(mode))
}

/// Sets a symlink's owner to the recorded one (as root; symlinks have no
/// mode of their own).
pub fn restore_symlink(
    path: &Path,
    uid: Option<u32>,
    gid: Option<u32>,
    as_root: bool,
) -> io::Result<()> {
    if as_root && (uid.is_some() || gid.is_some()) {
        std::os::unix::fs::lchown(path, uid, gid)?;
    }
    Ok(())
}

/// `mode` (permission bits) without the setuid/setgid bit whose owner or
/// group `meta` does not have as recorded.
pub fn safe_mode(meta: &fs::Metadata, uid: Option<u32>, gid: Option<u32>, mode: u32) -> u32 {
    let mut mode = mode & 0o7777;
    if uid != Some(meta.uid()) {
        mode &= !SETUID;
    }
    if gid != Some(meta.gid()) {
        mode &= !SETGID;
    }
    mode
}

/// Opens the directory `path` to set its owner, mode and times through,
/// refusing a symlink in its place.
pub fn open_dir(path: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::open(path, flags, Mode::empty())?))
}

/// The owner, group, mode and modification time (seconds) of a tree's
/// top directory, recorded when it is backed up so a restore can give
/// them back: archives hold only what is inside it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits, as octal text (`"0750"`), as in manifests' entries.
    #[serde(with = "octal")]
    pub mode: u32,
    pub mtime: i64,
}

impl Recorded {
    /// What `meta` says.
    pub fn of(meta: &fs::Metadata) -> Recorded {
        Recorded {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            mtime: meta.mtime(),
        }
    }
}

/// Permission bits as octal text (`"0644"`), for serde.
pub mod octal {
    pub fn serialize<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:04o}"))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        u32::from_str_radix(&text, 8).map_err(serde::de::Error::custom)
    }
}
