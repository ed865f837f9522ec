//! `--disk PATH`: what `df -h` and `df -i` tell, as one check: the worse of
//! space and inodes used decides.

use std::path::Path;

use ops_shared::record::{human_bytes, Check};

use crate::level::{metrics, record, Level};

/// Space and inodes used on the filesystem holding `path`.
pub fn check(path: &Path, warn: f64, crit: f64) -> Check {
    let target = path.display().to_string();
    let stat = match rustix::fs::statvfs(path) {
        Ok(stat) => stat,
        Err(err) => {
            let level = if err == rustix::io::Errno::NOENT {
                Level::Crit
            } else {
                Level::Unknown
            };
            return record(
                "disk",
                &target,
                level,
                format!("{target}: {err}"),
                metrics([]),
            );
        }
    };
    let block = stat.f_frsize;
    let size = stat.f_blocks * block;
    let free_to_root = stat.f_bfree * block;
    let available = stat.f_bavail * block;
    let used = size.saturating_sub(free_to_root);
    // As df does: the share of what ordinary users can ever have.
    let used_percent = percent(used, used + available);
    let inodes_used = stat.f_files.saturating_sub(stat.f_ffree);
    let inodes_percent = percent(inodes_used, stat.f_files);
    let level = Level::by_threshold(used_percent.max(inodes_percent), warn, crit);
    let message = format!(
        "{used_percent:.0}% of {} used, {} free; inodes {inodes_percent:.0}% used{}",
        human_bytes(size),
        human_bytes(available),
        match level {
            Level::Ok => String::new(),
            _ => format!(
                " (warn at {warn:.0}%, crit at {crit:.0}%); free space or grow the filesystem"
            ),
        }
    );
    record(
        "disk",
        &target,
        level,
        message,
        metrics([
            ("size_bytes", size as f64),
            ("used_bytes", used as f64),
            ("available_bytes", available as f64),
            ("used_percent", round(used_percent)),
            ("inodes", stat.f_files as f64),
            ("inodes_used", inodes_used as f64),
            ("inodes_used_percent", round(inodes_percent)),
        ]),
    )
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
