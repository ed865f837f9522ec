//! `ops-snapshot key list/add/remove`: the key slots of an encrypted
//! repository. Every slot holds the same master key, so adding or removing
//! one rewrites no data; a new password is a new slot and the old one's
//! removal.

use std::path::PathBuf;

use jiff::Timestamp;
use ops_shared::keys::{self, Encryption as SlotKey, SealArgs};
use ops_shared::{Output, Record, Status, UsageError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cli::{KeyAddArgs, KeyCommand, KeyRemoveArgs, RepoArgs};
use crate::error::RepoError;
use crate::repo::Repo;
use crate::slots::{self, Slot};

/// One key slot: `{"type":"key", ...}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Key {
    pub id: String,
    /// `passphrase` or `recipient`.
    pub kind: String,
    pub created: Timestamp,
    pub host: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Whether this slot opened the repository in this run.
    pub current: bool,
    #[serde(with = "ops_shared::path_text")]
    pub repo: PathBuf,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Record for Key {
    const TYPE: &'static str = "key";

    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }

    fn human_header() -> Vec<&'static str> {
        vec!["", "ID", "KIND", "CREATED", "HOST", "RECIPIENTS"]
    }

    fn human_row(&self) -> Vec<String> {
        vec![
            if self.current { "*" } else { "" }.into(),
            self.id[..8.min(self.id.len())].into(),
            self.kind.clone(),
            ops_shared::record::short_time(self.created),
            self.host.clone(),
            self.recipients.join(" "),
        ]
    }
}

fn key(repo: &Repo, id: String, slot: Slot) -> Key {
    Key {
        current: repo.slot.as_deref() == Some(id.as_str()),
        id,
        kind: slot.kind,
        created: slot.created,
        host: slot.host,
        recipients: slot.recipients,
        repo: crate::repo::absolute(&repo.root),
        extra: Map::new(),
    }
}

pub fn run(command: &KeyCommand) -> anyhow::Result<Status> {
    match command {
        KeyCommand::List(args) => list(args),
        KeyCommand::Add(args) => add(args),
        KeyCommand::Remove(args) => remove(args),
    }
}

fn not_encrypted(repo: &Repo) -> anyhow::Error {
    UsageError(format!(
        "{} is not encrypted, so it has no keys; an encrypted repository is made by \
         `ops-snapshot create --encrypt` into a new one, and `ops-snapshot copy` cannot \
         encrypt an existing one",
        repo.root.display()
    ))
    .into()
}

/// Lists the slots; a key at hand marks the one it opens, none is needed.
fn list(args: &RepoArgs) -> anyhow::Result<Status> {
    let repo = Repo::open_without_key(args.repo.path()?)?;
    if !repo.is_encrypted() {
        return Err(not_encrypted(&repo));
    }
    let mut out = Output::stdout(args.output.mode());
    let listing = slots::list(&repo.root)?;
    for damaged in &listing.damaged {
        ops_shared::entry::warn(damaged.clone());
    }
    for (id, slot) in listing.slots {
        out.record(&key(&repo, id, slot))?;
    }
    out.finish()?;
    Ok(Status::Success)
}

fn add(args: &KeyAddArgs) -> anyhow::Result<Status> {
    let (repo, master) = Repo::open_keyed(args.repo.path()?)?;
    let Some(master) = master else {
        return Err(not_encrypted(&repo));
    };
    let new_key = if let Some(file) = &args.new_password_file {
        SlotKey::Passphrase(keys::read_password_file(file)?)
    } else if !args.recipient.is_empty() {
        let seal = SealArgs {
            recipient: args.recipient.clone(),
            ..SealArgs::default()
        };
        seal.encryption()?
            .ok_or_else(|| UsageError("give --recipient an age public key".into()))?
    } else {
        let passphrase = keys::new_passphrase().map_err(|err| {
            UsageError(format!(
                "{err}; or give the new passphrase with --new-password-file FILE, or \
                 --recipient AGE_PUBLIC_KEY for a slot an age identity opens"
            ))
        })?;
        SlotKey::Passphrase(passphrase)
    };
    let (id, slot) = slots::add(&repo.root, &new_key, &master.0)
        .map_err(|err| RepoError::io(repo.root.join(slots::DIR), err))?;
    ops_shared::entry::note(format!(
        "added key {} ({}) to {}",
        &id[..8],
        slot.kind,
        repo.root.display()
    ));
    let mut out = Output::stdout(args.output.mode());
    out.record(&key(&repo, id, slot))?;
    out.finish()?;
    Ok(Status::Success)
}

fn remove(args: &KeyRemoveArgs) -> anyhow::Result<Status> {
    let (repo, master) = Repo::open_keyed(args.repo.path()?)?;
    if master.is_none() {
        return Err(not_encrypted(&repo));
    }
    let all = slots::list(&repo.root)?.slots;
    let matching: Vec<_> = all
        .iter()
        .filter(|(id, _)| !args.id.is_empty() && id.starts_with(&args.id))
        .collect();
    let (id, slot) = match matching.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(UsageError(format!(
                "{} has no key {:?}; `ops-snapshot key list` shows its keys",
                repo.root.display(),
                args.id
            ))
            .into())
        }
        _ => {
            return Err(UsageError(format!(
                "{:?} is the start of {} keys' ids in {}; give more of it",
                args.id,
                matching.len(),
                repo.root.display()
            ))
            .into())
        }
    };
    if repo.slot.as_deref() == Some(id.as_str()) {
        return Err(UsageError(format!(
            "key {} is the one that opened {} in this run; open it with another key to remove \
             this one",
            &id[..8],
            repo.root.display()
        ))
        .into());
    }
    slots::remove(&repo.root, &id)?;
    ops_shared::entry::note(format!(
        "removed key {} from {}",
        &id[..8],
        repo.root.display()
    ));
    let mut out = Output::stdout(args.output.mode());
    let mut removed = key(&repo, id, slot);
    removed.annotate("removed", true);
    out.record(&removed)?;
    out.finish()?;
    Ok(Status::Success)
}
