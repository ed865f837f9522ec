//! `--drain DIR`: a directory a service should keep empty (a spool, an
//! upload buffer it flushes to storage) holds files older than
//! --drain-age: what a crash or a stuck consumer leaves behind. Files are
//! counted as the directory is read, so a huge backlog costs time, not
//! memory; symlinks are not followed, since what they point at is not the
//! directory's to drain.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ops_shared::record::Check;
use walkdir::WalkDir;

use crate::level::{metrics, record, Level};

pub fn check(dir: &Path, max_age: Duration) -> Check {
    let target = dir.display().to_string();
    let fail = |level, message| record("drain", &target, level, message, metrics([]));
    match dir.metadata() {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return fail(Level::Crit, format!("{target} is not a directory")),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return fail(Level::Crit, format!("{target} does not exist"))
        }
        Err(err) => return fail(Level::Unknown, format!("cannot look at {target}: {err}")),
    }
    let now = SystemTime::now();
    let (mut files, mut stale, mut oldest) = (0u64, 0u64, Duration::ZERO);
    let mut unreadable = None;
    for entry in WalkDir::new(dir) {
        let meta = entry.and_then(|entry| {
            Ok(if entry.file_type().is_file() {
                Some(entry.metadata()?)
            } else {
                None
            })
        });
        match meta {
            Ok(Some(meta)) => {
                let modified = meta.modified().unwrap_or(now);
                let age = now.duration_since(modified).unwrap_or_default();
                files += 1;
                stale += u64::from(age > max_age);
                oldest = oldest.max(age);
            }
            Ok(None) => {}
            Err(err) => {
                unreadable.get_or_insert(err);
            }
        }
    }
    let values = metrics([
        ("files", files as f64),
        ("stale_files", stale as f64),
        ("oldest_age_seconds", oldest.as_secs() as f64),
    ]);
    let limit = humantime::format_duration(max_age);
    let oldest_text = humantime::format_duration(Duration::from_secs(oldest.as_secs()));
    let (level, message) = match (stale, unreadable) {
        (0, Some(err)) => (
            Level::Unknown,
            format!("cannot read all of {target}: {err}"),
        ),
        (0, None) if files == 0 => (Level::Ok, "empty".to_owned()),
        (0, None) => (
            Level::Ok,
            format!("{files} file(s), none older than {limit}"),
        ),
        (n, _) => (
            Level::Warn,
            format!(
                "{n} file{} of {files} older than {limit}, the oldest modified {oldest_text} \
                 ago: what drains it is stuck or crashed",
                if n == 1 { "" } else { "s" }
            ),
        ),
    };
    record("drain", &target, level, message, values)
}
