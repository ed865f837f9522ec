//! `--path PATH`: the thing a service needs is there, is what it should be
//! (a directory when written with a trailing `/`), and a directory can be
//! written by this user.

use std::fs;
use std::io;
use std::path::Path;

use ops_shared::record::Check;
use rustix::fs::{access, Access};

use crate::level::{metrics, record, Level};

pub fn check(path: &Path) -> Check {
    let target = path.display().to_string();
    let want_dir = target.ends_with('/');
    let trimmed = target.trim_end_matches('/');
    let path = Path::new(if trimmed.is_empty() { "/" } else { trimmed });
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return record(
                "path",
                &target,
                Level::Crit,
                format!("{target} does not exist"),
                metrics([("exists", 0.0)]),
            )
        }
        Err(err) => {
            return record(
                "path",
                &target,
                Level::Unknown,
                format!("cannot look at {target}: {err}"),
                metrics([]),
            )
        }
    };
    let is_dir = meta.is_dir();
    let writable = access(path, Access::WRITE_OK).is_ok();
    let values = metrics([
        ("exists", 1.0),
        ("is_dir", f64::from(u8::from(is_dir))),
        ("writable", f64::from(u8::from(writable))),
        ("bytes", meta.len() as f64),
    ]);
    let kind = if is_dir {
        "directory"
    } else if meta.is_file() {
        "file"
    } else {
        "special file"
    };
    let (level, message) = if want_dir && !is_dir {
        (
            Level::Crit,
            format!("{target} is a {kind}, not a directory"),
        )
    } else if is_dir && !writable {
        (
            Level::Warn,
            format!("{target} is a directory this user cannot write; check its owner and mode"),
        )
    } else {
        let access = if writable { "writable" } else { "read-only" };
        (Level::Ok, format!("{kind}, {access}"))
    };
    record("path", &target, level, message, values)
}
