//! The record protocol: one compact JSON object per line on stdout/stdin.
//!
//! Every record has `"type"` and `"v": 1`; the fixed fields of each type are
//! the serde structs below, and `man/ops.7` is their user-facing spec. Fields
//! a tool does not know are kept (`extra`), so tools annotate a record by
//! adding one object and everything else passes on unchanged:
//! ops-verify adds `verify`, ops-prune adds `prune`.
//!
//! | type       | fixed fields |
//! |------------|--------------|
//! | `backup`   | id, name, time, path, source {kind, location}, format, mode, parent, bytes, sha256 |
//! | `snapshot` | id, name, time, repo, paths, parent, files, bytes, added_bytes |
//! | `file`     | path, time, bytes |
//! | `check`    | check, target, status, message, metrics |
//! | `compact`  | target, kind, action, before_bytes, after_bytes |

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::output::{paint, Colour};

/// The protocol version every record carries as `"v"`.
pub const VERSION: u64 = 1;

/// A record type of the protocol.
pub trait Record: Serialize + DeserializeOwned {
    /// The `"type"` field.
    const TYPE: &'static str;

    /// Fields beyond the fixed ones: annotations and fields of other tools.
    fn extra_mut(&mut self) -> &mut Map<String, Value>;

    /// Column names of the human table.
    fn human_header() -> Vec<&'static str>;

    /// One row of the human table.
    fn human_row(&self) -> Vec<String>;

    /// Adds (or replaces) one annotation object, keeping everything else.
    fn annotate(&mut self, key: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.extra_mut().insert(key.to_owned(), value);
    }

    /// The record as one compact JSON line, without the newline.
    fn to_line(&self) -> String {
        #[derive(Serialize)]
        struct Envelope<'a, T> {
            #[serde(rename = "type")]
            kind: &'static str,
            v: u64,
            #[serde(flatten)]
            body: &'a T,
        }
        let envelope = Envelope {
            kind: Self::TYPE,
            v: VERSION,
            body: self,
        };
        serde_json::to_string(&envelope).unwrap_or_default()
    }
}

/// Where a backup came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// dir, file, postgres or sled.
    pub kind: String,
    /// The path or connection string, with any password redacted.
    pub location: String,
}

/// One backup artifact: `{"type":"backup", ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    /// Unique; the artifact's file name without its extension.
    pub id: String,
    /// The series, e.g. the directory's or database's name.
    pub name: String,
    /// When it was taken (RFC 3339 UTC).
    pub time: Timestamp,
    /// The artifact.
    #[serde(with = "crate::path_text")]
    pub path: PathBuf,
    pub source: Source,
    /// The artifact format, e.g. `tar.zst`.
    pub format: String,
    /// full or incremental.
    pub mode: String,
    /// The id this backup depends on, if any.
    pub parent: Option<String>,
    /// The artifact's size.
    pub bytes: u64,
    /// The artifact's SHA-256, lowercase hex.
    pub sha256: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What ops-verify adds to a record as `"verify"`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub ok: bool,
    /// quick, full or restore.
    pub level: String,
    pub time: Timestamp,
    pub errors: Vec<String>,
    /// How long the whole verification took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Of that, how long the restore of a restore test took: the evidence
    /// for a recovery time objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    /// Why a restore test that was asked for could not run (the server
    /// could not be reached, a login failed, a tool is missing): the
    /// backup's fault it is not, so `ok` and `level` say what was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_tested: Option<String>,
}

impl Verification {
    /// The VERIFIED cell of a table: `-`, `ok (full, TIME)`, or the first
    /// error, red on a terminal.
    pub fn cell(verification: Option<&Verification>) -> String {
        match verification {
            None => "-".to_owned(),
            Some(v) if v.ok && v.not_tested.is_some() => {
                format!(
                    "ok ({}, {}), restore not tested",
                    v.level,
                    short_time(v.time)
                )
            }
            Some(v) if v.ok => format!("ok ({}, {})", v.level, short_time(v.time)),
            Some(v) => {
                let first = v.errors.first().map_or("", String::as_str);
                let short: String = first.chars().take(60).collect();
                let more = if short.len() < first.len() { "…" } else { "" };
                paint(Colour::Red, &format!("FAILED: {short}{more}"))
            }
        }
    }
}

impl Verification {
    /// The `verify` annotation among a record's fields: `Ok(None)` without
    /// one.
    ///
    /// Fails when the record carries a `verify` that is not a verification
    /// result.
    pub fn of(extra: &Map<String, Value>) -> Result<Option<Verification>, serde_json::Error> {
        match extra.get("verify") {
            None => Ok(None),
            Some(value) => Verification::deserialize(value).map(Some),
        }
    }
}

/// What ops-restore (and `ops-snapshot restore`) add to the record they
/// restored as `"restore"`, when the target is a directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Restored {
    pub ok: bool,
    #[serde(with = "crate::path_text")]
    pub to: PathBuf,
    pub entries: u64,
    pub bytes: u64,
}

impl Backup {
    /// The `verify` annotation, if the record carries a well-formed one.
    pub fn verification(&self) -> Option<Verification> {
        Verification::of(&self.extra).ok().flatten()
    }
}

impl Record for Backup {
    const TYPE: &'static str = "backup";

    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }

    fn human_header() -> Vec<&'static str> {
        vec!["ARTIFACT", "TIME", "SIZE", "VERIFIED", "SOURCE"]
    }

    fn human_row(&self) -> Vec<String> {
        let verified = Verification::cell(self.verification().as_ref());
        vec![
            crate::path_text::encode(&self.path),
            short_time(self.time),
            human_bytes(self.bytes),
            verified,
            format!("{} {}", self.source.kind, self.source.location),
        ]
    }
}

/// A snapshot in a repository: `{"type":"snapshot", ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub name: String,
    pub time: Timestamp,
    #[serde(with = "crate::path_text")]
    pub repo: PathBuf,
    pub paths: Vec<String>,
    pub parent: Option<String>,
    pub files: u64,
    /// Logical size of the snapshot's files.
    pub bytes: u64,
    /// New data the snapshot stored.
    pub added_bytes: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Snapshot {
    /// The `verify` annotation, if the record carries a well-formed one.
    pub fn verification(&self) -> Option<Verification> {
        Verification::of(&self.extra).ok().flatten()
    }

    /// The human table's columns with the verdict: the snapshot's own, and
    /// VERIFIED before the last (the paths, of any width).
    pub fn verified_header() -> Vec<&'static str> {
        let mut header = Snapshot::human_header();
        header.insert(header.len().saturating_sub(1), "VERIFIED");
        header
    }

    /// A row for [`Snapshot::verified_header`].
    pub fn verified_row(&self) -> Vec<String> {
        let mut row = self.human_row();
        row.insert(
            row.len().saturating_sub(1),
            Verification::cell(self.verification().as_ref()),
        );
        row
    }
}

impl Record for Snapshot {
    const TYPE: &'static str = "snapshot";

    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }

    fn human_header() -> Vec<&'static str> {
        vec!["ID", "TIME", "FILES", "SIZE", "ADDED", "PATHS"]
    }

    fn human_row(&self) -> Vec<String> {
        vec![
            crate::ids::short(&self.id),
            short_time(self.time),
            self.files.to_string(),
            human_bytes(self.bytes),
            human_bytes(self.added_bytes),
            self.paths.join(" "),
        ]
    }
}

/// A plain file that ops-prune can age out: `{"type":"file", ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct File {
    #[serde(with = "crate::path_text")]
    pub path: PathBuf,
    /// Modification time.
    pub time: Timestamp,
    pub bytes: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Record for File {
    const TYPE: &'static str = "file";

    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }

    fn human_header() -> Vec<&'static str> {
        vec!["PATH", "MODIFIED", "SIZE"]
    }

    fn human_row(&self) -> Vec<String> {
        vec![
            crate::path_text::encode(&self.path),
            short_time(self.time),
            human_bytes(self.bytes),
        ]
    }
}

/// One health check's result: `{"type":"check", ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// disk, path, postgres, sled, backups, repo, sql, http, ...
    pub check: String,
    pub target: String,
    /// ok, warn, crit or unknown.
    pub status: String,
    pub message: String,
    pub metrics: BTreeMap<String, f64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Record for Check {
    const TYPE: &'static str = "check";

    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }

    fn human_header() -> Vec<&'static str> {
        vec!["CHECK", "TARGET", "STATUS", "MESSAGE"]
    }

    fn human_row(&self) -> Vec<String> {
        vec![
            self.check.clone(),
            self.target.clone(),
            self.status.clone(),
            self.message.clone(),
        ]
    }
}

/// One compaction: `{"type":"compact", ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compact {
    pub target: String,
    /// sled, postgres, repo or file.
    pub kind: String,
    pub action: String,
    pub before_bytes: u64,
    pub after_bytes: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Record for Compact {
    const TYPE: &'static str = "compact";

    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }

    fn human_header() -> Vec<&'static str> {
        vec!["TARGET", "KIND", "ACTION", "BEFORE", "AFTER"]
    }

    fn human_row(&self) -> Vec<String> {
        vec![
            self.target.clone(),
            self.kind.clone(),
            self.action.clone(),
            human_bytes(self.before_bytes),
            human_bytes(self.after_bytes),
        ]
    }
}

/// `2026-11-21 12:00:00` (UTC), for tables.
pub fn short_time(time: Timestamp) -> String {
    time.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// `1.5 MiB`, for tables and messages.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup() -> Backup {
        Backup {
            id: "data_20261121_120000".into(),
            name: "data".into(),
            time: "2026-11-21T12:00:00Z"
                .parse()
                .unwrap_or(Timestamp::UNIX_EPOCH),
            path: "backups/data_20261121_120000.tar.zst".into(),
            source: Source {
                kind: "dir".into(),
                location: "/srv/data".into(),
            },
            format: "tar.zst".into(),
            mode: "full".into(),
            parent: None,
            bytes: 1234,
            sha256: "ab".repeat(32),
            extra: Map::new(),
        }
    }

    #[test]
    fn a_backup_line_starts_with_type_and_version() {
        let line = backup().to_line();
        assert!(
            line.starts_with(r#"{"type":"backup","v":1,"id":"data_20261121_120000""#),
            "{line}"
        );
        assert!(line.contains(r#""time":"2026-11-21T12:00:00Z""#), "{line}");
        assert!(line.contains(r#""parent":null"#), "{line}");
    }

    #[test]
    fn annotations_are_added_after_the_fixed_fields() {
        let mut record = backup();
        record.annotate("verify", serde_json::json!({"ok": true}));
        assert!(record.to_line().ends_with(r#""verify":{"ok":true}}"#));
    }

    #[test]
    fn sizes_read_like_ls_h() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
