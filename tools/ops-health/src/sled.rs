//! `--sled PATH`: what `grit db stats` and `grit db check` told, in one
//! check record.

use std::collections::BTreeMap;
use std::path::Path;

use ops_backup::sleddb::{self, SledError};
use ops_shared::record::{human_bytes, Check};

/// Checks one database; never fails: every outcome is a check record.
pub fn check(path: &Path, deep: bool) -> Check {
    let checked = sleddb::guarded(path, || Ok(inspect(path, deep)));
    checked.unwrap_or_else(|err| {
        record(
            &path.display().to_string(),
            "crit",
            err.to_string(),
            BTreeMap::new(),
        )
    })
}

fn inspect(path: &Path, deep: bool) -> Check {
    let target = path.display().to_string();
    let mut metrics = BTreeMap::new();
    if !path.exists() {
        return record(&target, "crit", format!("{target} does not exist"), metrics);
    }
    let db = match sleddb::open(path) {
        Ok(db) => db,
        Err(SledError::InUse { holder, .. }) => {
            metrics.insert("size_on_disk_bytes".into(), sleddb::disk_usage(path) as f64);
            metrics.insert("in_use".into(), 1.0);
            if let Some(pid) = sleddb::lock_holder(path) {
                metrics.insert("holder_pid".into(), f64::from(pid));
            }
            let message = format!("in use by another process{holder}; contents not inspected");
            return record(&target, "ok", message, metrics);
        }
        Err(err) => return record(&target, "crit", err.to_string(), metrics),
    };
    let size = db
        .size_on_disk()
        .unwrap_or_else(|_| sleddb::disk_usage(path));
    let recovered = db.was_recovered();
    let mut problem = None;
    let (trees, keys) = match sleddb::checksum(path, db) {
        Ok((_db, contents)) => {
            if deep {
                metrics.insert("checksum".into(), f64::from(contents.checksum));
            }
            (contents.trees.len(), contents.keys())
        }
        Err(err) => {
            problem = Some(format!("reading its keys failed: {err:#}"));
            (0, 0)
        }
    };
    metrics.insert("size_on_disk_bytes".into(), size as f64);
    metrics.insert("trees".into(), trees as f64);
    metrics.insert("keys".into(), keys as f64);
    metrics.insert("recovered".into(), if recovered { 1.0 } else { 0.0 });
    metrics.insert("in_use".into(), 0.0);
    if let Some(problem) = problem {
        return record(&target, "crit", problem, metrics);
    }
    if keys == 0 && size > 1 << 20 {
        // sled recovers a damaged log by dropping what follows the damage,
        // so a database that lost everything still opens.
        let message = format!(
            "no keys, but {} on disk: sled may have discarded damaged data when it opened it; \
             check the application and restore from a backup if data is missing",
            human_bytes(size)
        );
        return record(&target, "warn", message, metrics);
    }
    let message = format!(
        "{} trees, {keys} keys, {} on disk{}",
        trees,
        human_bytes(size),
        if deep {
            ", checksum of every key and value taken"
        } else {
            ""
        }
    );
    record(&target, "ok", message, metrics)
}

fn record(target: &str, status: &str, message: String, metrics: BTreeMap<String, f64>) -> Check {
    crate::level::record(
        "sled",
        target,
        crate::level::Level::of(status),
        message,
        metrics,
    )
}
