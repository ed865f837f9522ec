//! How `compact` records reach stdout: as records in a pipe, and on a
//! terminal as a table that also shows why each thing was or was not
//! compacted (bloat and dead tuples for PostgreSQL, the reason or error).

use std::sync::Mutex;

use ops_shared::record::{human_bytes, Compact};
use ops_shared::{Output, OutputMode};
use serde_json::Value;

const POSTGRES: [&str; 7] = [
    "TARGET", "ACTION", "BEFORE", "AFTER", "BLOAT", "DEAD", "NOTE",
];
const OTHERS: [&str; 5] = ["TARGET", "ACTION", "BEFORE", "AFTER", "NOTE"];

/// What the run's records add up to, for its summary line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub targets: u64,
    pub acted: u64,
    pub failed: u64,
    pub before: u64,
    pub after: u64,
}

static TOTALS: Mutex<Totals> = Mutex::new(Totals {
    targets: 0,
    acted: 0,
    failed: 0,
    before: 0,
    after: 0,
});

/// The summary line of the records written so far:
/// `compacted 3 of 12 targets, 1.2 GiB -> 800.0 MiB`.
pub fn summary(dry_run: bool) -> String {
    let totals = *TOTALS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let failed = match totals.failed {
        0 => String::new(),
        n => format!(", {n} failed"),
    };
    format!(
        "{} {} of {} targets{failed}, {} -> {}",
        if dry_run {
            "would compact"
        } else {
            "compacted"
        },
        totals.acted,
        totals.targets,
        human_bytes(totals.before),
        human_bytes(totals.after)
    )
}

/// Writes one record (or table row, in human mode).
pub fn write(out: &mut Output, mode: OutputMode, record: &Compact) -> std::io::Result<()> {
    {
        let mut totals = TOTALS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        totals.targets += 1;
        match record.action.as_str() {
            "skipped" => {}
            "failed" => totals.failed += 1,
            _ => totals.acted += 1,
        }
        totals.before += record.before_bytes;
        totals.after += record.after_bytes;
    }
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
