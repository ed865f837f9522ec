//! Encrypted repositories this user has opened, by place, in the cache:
//! `CACHE/known/<hash of the place>` holds the config's id and key check.
//!
//! Whoever can write a repository can replace its config and slots with a
//! key of their own, or delete it, and the next snapshot would be written
//! for them to read, or in the clear. So a place once known encrypted
//! stays so: a config found changed there, or gone, is refused until the
//! user removes the record.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::RepoError;
use crate::id::Id;
use crate::repo::Config;

#[derive(Serialize, Deserialize, PartialEq)]
struct Known {
    id: String,
    key_check: String,
}

/// The record of `root`, if there is a cache to keep it in.
fn record_path(root: &Path) -> Option<PathBuf> {
    let place = if ops_storage::is_remote(root) {
        root.to_owned()
    } else {
        // The same place whether or not the repository is there now.
        let parent = root.parent().filter(|p| !p.as_os_str().is_empty());
        let parent = fs::canonicalize(parent.unwrap_or(Path::new("."))).ok()?;
        parent.join(root.file_name()?)
    };
    let hash = Id::of(place.as_os_str().as_encoded_bytes()).to_hex();
    Some(crate::repo::cache_base()?.join("known").join(&hash[..32]))
}

/// Fails when `root` was known encrypted and `config` (`None`: no
/// repository is there now) is not that repository.
pub fn check(root: &Path, config: Option<&Config>) -> Result<(), RepoError> {
    let Some(path) = record_path(root) else {
        return Ok(());
    };
    let Ok(text) = fs::read(&path) else {
        return Ok(());
    };
    let Ok(known) = serde_json::from_slice::<Known>(&text) else {
        return Ok(());
    };
    let now = config.map(|config| Known {
        id: config.id.clone(),
        key_check: config
            .encryption
            .as_ref()
            .map(|e| e.key_check.clone())
            .unwrap_or_default(),
    });
    if now.as_ref() == Some(&known) {
        return Ok(());
    }
    let found = match (config, now) {
        (None, _) => "no repository is there now",
        (Some(config), _) if config.encryption.is_none() => "it is now unencrypted",
        (Some(config), _) if config.id != known.id => "it is now another repository",
        _ => "it now has another key",
    };
    Err(RepoError::Replaced {
        repo: root.to_owned(),
        found: found.into(),
        record: path,
    })
}

/// Records `config` as the encrypted repository at `root`, unless known.
pub fn remember(root: &Path, config: &Config) -> io::Result<()> {
    let (Some(path), Some(encryption)) = (record_path(root), &config.encryption) else {
        return Ok(());
    };
    if path.exists() {
        return Ok(());
    }
    let known = Known {
        id: config.id.clone(),
        key_check: encryption.key_check.clone(),
    };
    if let Some(dir) = path.parent() {
        crate::repo::make_dir(dir)?;
    }
    ops_shared::atomic::write_replace(&path, &serde_json::to_vec(&known).unwrap_or_default())
}
