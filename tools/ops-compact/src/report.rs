//! How `compact` records reach stdout: as records in a pipe, and on a
//! terminal as a table that also shows why each thing was or was not
//! compacted (bloat and dead tuples for PostgreSQL, the reason or error).

use ops_shared::record::{human_bytes, Compact};
use ops_shared::{Output, OutputMode};
use serde_json::Value;

const POSTGRES: [&str; 7] = [
    "TARGET", "ACTION", "BEFORE", "AFTER", "BLOAT", "DEAD", "NOTE",
];
const OTHERS: [&str; 5] = ["TARGET", "ACTION", "BEFORE", "AFTER", "NOTE"];

/// Writes one record (or table row, in human mode).
pub fn write(out: &mut Output, mode: OutputMode, record: &Compact) -> std::io::Result<()> {
    if mode == OutputMode::Records {
        return out.record(record);
    }
    let percent = |key: &str| match record.extra.get(key).and_then(Value::as_f64) {
        Some(value) => format!("{value:.0}%"),
        None => "-".into(),
    };
    let note = ["error", "reason"]
        .iter()
        .find_map(|key| record.extra.get(*key).and_then(Value::as_str))
        .unwrap_or("");
    let mut row = vec![
        record.target.clone(),
        record.action.clone(),
        human_bytes(record.before_bytes),
        human_bytes(record.after_bytes),
    ];
    if record.kind == "postgres" {
        row.extend([percent("bloat_percent"), percent("dead_percent")]);
        row.push(note.to_owned());
        out.row("compact-postgres", &POSTGRES, row);
    } else {
        row.push(note.to_owned());
        out.row("compact", &OTHERS, row);
    }
    Ok(())
}
