//! Real sled databases for tests: several trees (one with a binary name),
//! binary keys and values, values of several MiB, and fragmentation from
//! insert/delete churn.

use std::path::Path;

use crate::pseudo_random;

/// Builds the test database at `path`; returns sled's checksum of it.
pub fn churned_db(path: &Path) -> u32 {
    let db = sled::open(path).unwrap();
    let trees: [&[u8]; 4] = [b"users", b"sessions", b"\xff\x00binary-tree", b"blobs"];
    for (t, name) in trees.iter().enumerate() {
        let tree = db.open_tree(name).unwrap();
        for i in 0..2000u32 {
            let key = [&i.to_be_bytes()[..], &[0, 255, t as u8]].concat();
            tree.insert(
                key,
                pseudo_random(100 + (i as usize % 300), u64::from(i) + t as u64),
            )
            .unwrap();
        }
    }
    let blobs = db.open_tree(b"blobs").unwrap();
    for i in 0..3u64 {
        blobs
            .insert(format!("big-{i}"), pseudo_random((3 << 20) + i as usize, i))
            .unwrap();
    }
    db.insert(b"default-key", b"default-value".to_vec())
        .unwrap();
    let churn = db.open_tree(b"sessions").unwrap();
    for round in 0..14u64 {
        for i in 0..1500u32 {
            churn
                .insert(
                    format!("tmp-{i}"),
                    pseudo_random(2000, round * 10_000 + u64::from(i)),
                )
                .unwrap();
        }
        db.flush().unwrap();
        for i in 0..1500u32 {
            churn.remove(format!("tmp-{i}")).unwrap();
        }
        db.flush().unwrap();
    }
    let checksum = db.checksum().unwrap();
    db.flush().unwrap();
    checksum
}

/// sled's checksum of the database at `path` (opened and closed again).
pub fn checksum(path: &Path) -> u32 {
    let db = sled::open(path).unwrap();
    db.checksum().unwrap()
}

/// Another process holding a database's lock, as a running application
/// does (flock(1) on sled's `db` file); released on drop.
pub struct LockHolder(std::process::Child);

impl LockHolder {
    pub fn hold(db: &Path) -> Self {
        let child = std::process::Command::new("flock")
            .arg(db.join("db"))
            .args(["sleep", "60"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        LockHolder(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Gives every entry of the database at `path` to the application's
/// user and group (4242:4343), directories 0750 and files 0640, as a
/// service account keeps its data; returns [`ownership`] of it.
pub fn give_to_application(path: &Path) -> Vec<(String, u32, u32, u32)> {
    use std::os::unix::fs::PermissionsExt;
    for entry in walkdir::WalkDir::new(path) {
        let entry = entry.unwrap();
        let mode = if entry.file_type().is_dir() {
            0o750
        } else {
            0o640
        };
        std::os::unix::fs::lchown(entry.path(), Some(4242), Some(4343)).unwrap();
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    ownership(path)
}

/// The distinct (kind, uid, gid, mode) of every entry under `root`.
pub fn ownership(root: &Path) -> Vec<(String, u32, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut seen: Vec<_> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|entry| {
            let meta = entry.unwrap().metadata().unwrap();
            let kind = if meta.is_dir() { "dir" } else { "file" };
            (
                kind.to_owned(),
                meta.uid(),
                meta.gid(),
                meta.mode() & 0o7777,
            )
        })
        .collect();
    seen.sort();
    seen.dedup();
    seen
}
