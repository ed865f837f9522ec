//! `ops-snapshot diff A B`: what changed between two snapshots, found by
//! merging their file lists (both in walk order), so memory stays flat.

use std::cmp::Ordering;
use std::path::PathBuf;

use ops_shared::{Output, Record, Status};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cli::DiffArgs;
use crate::tree::{Node, TreeReader};

/// One changed path: `{"type":"diff", ...}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(clippy::struct_field_names)] // `change` is the record's field name
pub struct Change {
    /// added, removed, modified (content or kind) or metadata (mode, owner, mtime).
    pub change: String,
    #[serde(with = "ops_shared::path_text")]
    pub path: PathBuf,
    pub kind: crate::tree::Kind,
    /// Size in the newer snapshot (the older one for removed paths).
    pub bytes: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Record for Change {
    const TYPE: &'static str = "diff";

    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }

    fn human_header() -> Vec<&'static str> {
        vec!["CHANGE", "PATH", "SIZE"]
    }

    fn human_row(&self) -> Vec<String> {
        vec![
            self.change.clone(),
            ops_shared::path_text::encode(&self.path),
            ops_shared::record::human_bytes(self.bytes),
        ]
    }
}

fn change(what: &str, node: &Node) -> Change {
    Change {
        change: what.into(),
        path: node.path.clone(),
        kind: node.kind,
        bytes: node.size,
        extra: Map::new(),
    }
}

/// The change between two entries of one path, if any.
fn compare(old: &Node, new: &Node) -> Option<Change> {
    if !old.same_content(new) {
        Some(change("modified", new))
    } else if (old.mode, old.uid, old.gid, old.mtime) != (new.mode, new.uid, new.gid, new.mtime) {
        Some(change("metadata", new))
    } else {
        None
    }
}

pub fn run(args: &DiffArgs) -> anyhow::Result<Status> {
    let root = args.repo.path()?;
    let (reader, _lock) =
        crate::reader::open_reader(root, args.repo.lock_wait, "ops-snapshot diff")?;
    let (_, from) = reader.repo.resolve(&args.from)?;
    let (_, to) = reader.repo.resolve(&args.to)?;
    let mut old = TreeReader::new(&reader, &from.tree).peekable();
    let mut new = TreeReader::new(&reader, &to.tree).peekable();
    let mut out = Output::stdout(args.output.mode());
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(Err(_)), _) => {
                return Err(old
                    .next()
                    .and_then(Result::err)
                    .map_or_else(|| anyhow::anyhow!("unreadable tree"), Into::into))
            }
            (_, Some(Err(_))) => {
                return Err(new
                    .next()
                    .and_then(Result::err)
                    .map_or_else(|| anyhow::anyhow!("unreadable tree"), Into::into))
            }
            (Some(Ok(_)), None) => Ordering::Less,
            (None, Some(Ok(_))) => Ordering::Greater,
            (Some(Ok(a)), Some(Ok(b))) => a.path.cmp(&b.path),
        };
        let found = match order {
            Ordering::Less => old.next().transpose()?.map(|n| change("removed", &n)),
            Ordering::Greater => new.next().transpose()?.map(|n| change("added", &n)),
            Ordering::Equal => {
                let a = old.next().transpose()?;
                let b = new.next().transpose()?;
                a.zip(b).and_then(|(a, b)| compare(&a, &b))
            }
        };
        if let Some(found) = found {
            out.record(&found)?;
        }
    }
    out.finish()?;
    Ok(Status::Success)
}
