//! `--backups DIR`: "is last night's backup there?" per series: the newest
//! backup's age against --max-age (the recovery point objective), whether it
//! verified, count and size; and the leftovers of crashed runs, which
//! `--fix` removes when that is safe.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use ops_backup::catalog;
use ops_shared::lock::{Access, LockError};
use ops_shared::record::{human_bytes, Check};
use ops_shared::{Backup, Record};

use crate::level::{metrics, record, Level};

/// One record per series, plus one for leftovers if there are any.
///
/// Long, as one series' verdict read top to bottom: age, verification,
/// restore evidence, size, each adding to the same message.
#[allow(clippy::too_many_lines)]
pub fn check(dir: &Path, max_age: Duration, max_restore: Option<Duration>) -> Vec<Check> {
    let target = dir.display().to_string();
    let (backups, leftovers) = match catalog::list(dir) {
        Ok(found) => found,
        Err(err) => {
            let missing = match &err {
                _ if !ops_storage::is_remote(dir) => !dir.exists(),
                ops_backup::Error::Io { error, .. } => error.kind() == std::io::ErrorKind::NotFound,
                _ => false,
            };
            let level = if missing { Level::Crit } else { Level::Unknown };
            return vec![record(
                "backups",
                &target,
                level,
                format!("{err:#}"),
                metrics([]),
            )];
        }
    };
    let mut checks = Vec::new();
    if backups.is_empty() {
        checks.push(record(
            "backups",
            &target,
            Level::Crit,
            format!("no backups in {target}; make one with ops-backup create SOURCE --to {target}"),
            metrics([("stored", 0.0)]),
        ));
    }
    let mut series: BTreeMap<&str, Vec<&Backup>> = BTreeMap::new();
    for backup in &backups {
        series.entry(&backup.name).or_default().push(backup);
    }
    let now = Timestamp::now();
    let mixed: BTreeMap<String, Vec<String>> =
        catalog::mixed_series(&backups).into_iter().collect();
    for (name, list) in series {
        let mut check = check_series(&target, name, &list, now, max_age);
        restore_evidence(&mut check, &list, now, max_age, max_restore);
        if let Some(sources) = mixed.get(name) {
            check.status = Level::Crit.name().into();
            check.message = format!(
                "{}; newest of them all: {}",
                catalog::mixed_series_message(dir, name, sources),
                check.message
            );
        }
        checks.push(check);
    }
    if !leftovers.refused.is_empty() {
        checks.push(record(
            "backups",
            &target,
            Level::Crit,
            leftovers.refused.join("; "),
            metrics([("refused_manifests", leftovers.refused.len() as f64)]),
        ));
    }
    let problems = leftovers.warnings.len();
    if problems > 0 {
        let (temps, orphans) = (leftovers.temp_files.len(), leftovers.orphans.len());
        let unfinished = leftovers.unfinished.len();
        let mut parts = Vec::new();
        if temps > 0 {
            parts.push(format!(
                "{temps} temporary file(s) of interrupted runs (ops-health --backups {target} --fix \
                 removes those older than an hour)"
            ));
        }
        if unfinished > 0 {
            parts.push(format!(
                "{unfinished} upload(s) that never finished (ops-health --backups {target} --fix \
                 aborts those older than an hour; a lifecycle rule on the bucket does too)"
            ));
        }
        if orphans > 0 {
            parts.push(format!(
                "{orphans} artifact(s) without a manifest (not listed, cannot be verified; \
                 inspect and remove by hand)"
            ));
        }
        let other = problems - temps - orphans - unfinished;
        if other > 0 {
            parts.push(format!(
                "{other} damaged manifest(s) (run ops-backup list {target})"
            ));
        }
        checks.push(record(
            "backups",
            &target,
            Level::Warn,
            parts.join("; "),
            metrics([
                ("temp_files", temps as f64),
                ("unfinished_uploads", unfinished as f64),
                ("orphan_artifacts", orphans as f64),
                ("damaged_manifests", other as f64),
            ]),
        ));
    }
    checks
}

fn check_series(
    target: &str,
    name: &str,
    list: &[&Backup],
    now: Timestamp,
    max_age: Duration,
) -> Check {
    let Some(newest) = list.last() else {
        return record(
            "backups",
            target,
            Level::Unknown,
            "no backups".into(),
            metrics([]),
        );
    };
    let age = now.duration_since(newest.time).as_secs_f64().max(0.0);
    let bytes: u64 = list.iter().map(|b| b.bytes).sum();
    let verification = newest.verification();
    let (verified, passed) = match &verification {
        None => (0.0, 0.0),
        Some(v) => (1.0, f64::from(u8::from(v.ok))),
    };
    let age_text = humantime::format_duration(Duration::from_secs(age as u64));
    let max_text = humantime::format_duration(max_age);
    let mut level = Level::Ok;
    let mut message = format!("newest {} is {age_text} old", newest.id);
    if age > max_age.as_secs_f64() {
        level = Level::Crit;
        message.push_str(&format!(
            ", older than --max-age {max_text}: check that the backup job runs"
        ));
    }
    match &verification {
        Some(v) if !v.ok => {
            level = Level::Crit;
            let first = v.errors.first().map_or("", String::as_str);
            message.push_str(&format!("; its verification FAILED: {first}"));
        }
        Some(v) => message.push_str(&format!("; verified ok ({}) at {}", v.level, v.time)),
        None => message.push_str("; not verified yet (ops-verify)"),
    }
    message.push_str(&format!(
        "; {} backup(s), {}",
        list.len(),
        human_bytes(bytes)
    ));
    let mut check = record(
        "backups",
        target,
        level,
        message,
        metrics([
            ("newest_age_seconds", age.round()),
            ("newest_timestamp_seconds", newest.time.as_second() as f64),
            ("stored", list.len() as f64),
            ("bytes", bytes as f64),
            ("verified", verified),
            ("verify_ok", passed),
        ]),
    );
    check.annotate("name", name);
    check
}

/// The newest restore test of the series: its time and duration as
/// metrics, and with `max_restore` (the recovery time objective) whether it
/// is recent, passed and was fast enough.
fn restore_evidence(
    check: &mut Check,
    list: &[&Backup],
    now: Timestamp,
    max_age: Duration,
    max_restore: Option<Duration>,
) {
    let newest = list
        .iter()
        .filter_map(|backup| catalog::verification_history(backup).remove("restore"))
        .max_by_key(|test| test.time);
    if let Some(test) = &newest {
        let metrics = &mut check.metrics;
        metrics.insert(
            "restore_test_timestamp_seconds".into(),
            test.time.as_second() as f64,
        );
        if let Some(seconds) = test.restore_seconds {
            metrics.insert("restore_test_duration_seconds".into(), seconds);
        }
    }
    let Some(budget) = max_restore else {
        return;
    };
    let budget_text = humantime::format_duration(budget);
    let (level, finding) = match &newest {
        None => (
            Level::Crit,
            "never restore-tested: run ops-verify --restore-test on its newest backup".to_owned(),
        ),
        Some(test) if !test.ok => (
            Level::Crit,
            format!(
                "its newest restore test FAILED at {}: {}",
                test.time,
                test.errors.first().map_or("", String::as_str)
            ),
        ),
        Some(test) if now.duration_since(test.time).as_secs_f64() > max_age.as_secs_f64() => (
            Level::Crit,
            format!(
                "its newest restore test, at {}, is older than --max-age {}: run ops-verify \
                 --restore-test again",
                test.time,
                humantime::format_duration(max_age)
            ),
        ),
        Some(test) => match test.restore_seconds {
            None => (
                Level::Warn,
                format!(
                    "its newest restore test, at {}, recorded no duration (an older ops-verify); \
                     run ops-verify --restore-test again",
                    test.time
                ),
            ),
            Some(seconds) => {
                let took = humantime::format_duration(Duration::from_secs(seconds.ceil() as u64));
                if seconds > budget.as_secs_f64() {
                    (
                        Level::Warn,
                        format!(
                            "its newest restore test took {took}, longer than \
                             --max-restore-time {budget_text}"
                        ),
                    )
                } else {
                    (
                        Level::Ok,
                        format!(
                            "restore tested at {} in {took} (budget {budget_text})",
                            test.time
                        ),
                    )
                }
            }
        },
    };
    if level > Level::of(&check.status) {
        check.status = level.name().into();
    }
    check.message.push_str(&format!("; {finding}"));
}

/// A leftover `fix` may remove, and how.
struct Stray<'a> {
    shown: String,
    since: Option<Timestamp>,
    bytes: u64,
    what: String,
    remove: Box<dyn Fn() -> std::io::Result<()> + 'a>,
}

/// Removes temporary files and aborts unfinished uploads of crashed runs
/// at least `age` old, while no backup or prune holds the place. One record
/// per leftover removed (or that could not be, or with `dry_run` that would
/// be).
pub fn fix(dir: &Path, dry_run: bool, age: Duration) -> Vec<Check> {
    let target = dir.display().to_string();
    let Ok((_, leftovers)) = catalog::list(dir) else {
        return Vec::new();
    };
    if leftovers.temp_files.is_empty() && leftovers.unfinished.is_empty() {
        return Vec::new();
    }
    let _lock = match ops_storage::lock(dir, Access::Exclusive, Duration::ZERO, "ops-health") {
        Ok(lock) => lock,
        Err(err @ LockError::Held { .. }) => {
            return vec![record(
                "fix",
                &target,
                Level::Ok,
                format!("leftovers not touched: {err}"),
                metrics([]),
            )]
        }
        Err(err) => {
            return vec![record(
                "fix",
                &target,
                Level::Warn,
                err.to_string(),
                metrics([]),
            )]
        }
    };
    let now = Timestamp::now();
    strays(dir, &leftovers)
        .into_iter()
        .filter_map(|stray| stray.fix(now, age, dry_run))
        .collect()
}

/// The temporary files and unfinished uploads among `leftovers`.
fn strays<'a>(dir: &'a Path, leftovers: &'a catalog::Leftovers) -> Vec<Stray<'a>> {
    let temps = leftovers.temp_files.iter().filter_map(|path| {
        let object = ops_storage::stat(path).ok().flatten()?;
        Some(Stray {
            shown: path.display().to_string(),
            since: object.modified,
            bytes: object.size,
            what: format!(
                "a temporary file left by a crashed run ({})",
                human_bytes(object.size)
            ),
            remove: Box::new(move || ops_storage::delete(path)),
        })
    });
    let uploads = leftovers.unfinished.iter().map(|upload| Stray {
        shown: dir.join(&upload.name).display().to_string(),
        since: upload.started,
        bytes: 0,
        what: "an upload that never finished".to_owned(),
        remove: Box::new(move || ops_storage::abort(dir, upload)),
    });
    temps.chain(uploads).collect()
}

impl Stray<'_> {
    /// Removes it if it is at least `age` old; the record saying so.
    fn fix(self, now: Timestamp, age: Duration, dry_run: bool) -> Option<Check> {
        let old = self
            .since
            .and_then(|since| Duration::try_from(now.duration_since(since)).ok())
            .unwrap_or_default();
        if old < age {
            return None;
        }
        let old = humantime::format_duration(Duration::from_secs(old.as_secs()));
        let (shown, what) = (&self.shown, &self.what);
        let bytes = metrics([("bytes", self.bytes as f64)]);
        if dry_run {
            return Some(record(
                "fix",
                shown,
                Level::Ok,
                format!("would remove {what}, {old} old; nothing changed (--dry-run)"),
                bytes,
            ));
        }
        Some(match (self.remove)() {
            Ok(()) => record(
                "fix",
                shown,
                Level::Ok,
                format!("removed {what}, {old} old"),
                bytes,
            ),
            Err(err) => record(
                "fix",
                shown,
                Level::Warn,
                format!("cannot remove this leftover: {err}"),
                metrics([]),
            ),
        })
    }
}
