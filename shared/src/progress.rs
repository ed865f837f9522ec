//! Progress for people watching: a line on stderr that counts bytes and
//! files while a run works, and one summary line when it ends. Both appear
//! only when stderr is a terminal, so cron mail, logs and records never see
//! them.
//!
//! One run shows one progress line, so it is process-wide: the readers and
//! writers that move an artifact's bytes count them with [`add_bytes`]
//! wherever they are, without a handle threaded through every layer.
//! Counting costs an atomic add, and nothing when no line is shown.

use std::fmt::Display;
use std::io::{self, IsTerminal};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

static SHOWN: AtomicBool = AtomicBool::new(false);
static ACTIVE: Mutex<Option<Active>> = Mutex::new(None);

struct Active {
    bar: ProgressBar,
    files: Arc<AtomicU64>,
    started: Instant,
}

/// Starts the progress line for `what` ("backing up /srv/data"), with the
/// number of bytes the run will count if known (then it shows an ETA).
/// Does nothing when stderr is not a terminal.
pub fn start(what: &str, total_bytes: Option<u64>) {
    if !io::stderr().is_terminal() {
        return;
    }
    let files = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&files);
    let template = if total_bytes.is_some() {
        "{prefix} {bytes}/{total_bytes} ({percent}%), {files}{binary_bytes_per_sec}, ETA {eta}"
    } else {
        "{prefix} {spinner} {bytes}, {files}{binary_bytes_per_sec}, {elapsed}"
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key(
            "files",
            move |_: &ProgressState, out: &mut dyn std::fmt::Write| {
                let n = counted.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = write!(out, "{n} files, ");
                }
            },
        );
    let bar = ProgressBar::with_draw_target(total_bytes, ProgressDrawTarget::stderr())
        .with_style(style)
        .with_prefix(format!("{}: {what}", crate::entry::tool_name()));
    bar.tick();
    bar.enable_steady_tick(Duration::from_millis(200));
    *lock() = Some(Active {
        bar,
        files,
        started: Instant::now(),
    });
    SHOWN.store(true, Ordering::Release);
}

/// A reader that counts what passes as bytes done.
pub struct Counting<R>(pub R);

impl<R: io::Read> io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        add_bytes(n as u64);
        Ok(n)
    }
}

/// Counts `n` bytes done.
pub fn add_bytes(n: u64) {
    if SHOWN.load(Ordering::Acquire) {
        if let Some(active) = lock().as_ref() {
            active.bar.inc(n);
        }
    }
}

/// Counts `n` files (or entries) done.
pub fn add_files(n: u64) {
    if SHOWN.load(Ordering::Acquire) {
        if let Some(active) = lock().as_ref() {
            active.files.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Adds `n` to the bytes the run will count.
pub fn add_total(n: u64) {
    if SHOWN.load(Ordering::Acquire) {
        if let Some(active) = lock().as_ref() {
            active.bar.inc_length(n);
        }
    }
}

/// What the progress line has counted so far (zeros when none is shown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub bytes: u64,
    pub files: u64,
}

/// The bytes and files counted so far.
pub fn counted() -> Counted {
    lock()
        .as_ref()
        .map_or_else(Counted::default, |active| Counted {
            bytes: active.bar.position(),
            files: active.files.load(Ordering::Relaxed),
        })
}

/// Ends the progress line and prints `ops-x: SUMMARY in 1.2 s` on a
/// terminal's stderr (whether or not a line was started).
pub fn finish(summary: impl Display) {
    let active = lock().take();
    SHOWN.store(false, Ordering::Release);
    let started = active.as_ref().map(|a| a.started);
    if let Some(active) = active {
        active.bar.finish_and_clear();
    }
    if io::stderr().is_terminal() {
        let took = started.map_or(String::new(), |s| format!(" in {}", took(s.elapsed())));
        crate::entry::note(format!("{summary}{took}"));
    }
}

/// Ends the progress line without a summary (a run that failed).
pub fn clear() {
    SHOWN.store(false, Ordering::Release);
    if let Some(active) = lock().take() {
        active.bar.finish_and_clear();
    }
}

/// Runs `print` with the progress line out of the way, so a message on
/// stderr is not drawn over.
pub fn suspend<T>(print: impl FnOnce() -> T) -> T {
    if !SHOWN.load(Ordering::Acquire) {
        return print();
    }
    let bar = lock().as_ref().map(|a| a.bar.clone());
    match bar {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// A duration as people read it in a summary: `0.4 s`, `12.3 s`, `4m 05s`.
pub fn took(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        format!("{}m {:02}s", elapsed.as_secs() / 60, elapsed.as_secs() % 60)
    } else {
        let minutes = elapsed.as_secs() / 60;
        format!("{}h {:02}m", minutes / 60, minutes % 60)
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<Active>> {
    ACTIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(took(Duration::from_millis(420)), "0.4 s");
        assert_eq!(took(Duration::from_secs(245)), "4m 05s");
        assert_eq!(took(Duration::from_secs(2 * 3600 + 7 * 60 + 5)), "2h 07m");
    }

    #[test]
    fn counting_without_a_line_does_nothing() {
        add_bytes(10);
        add_files(1);
        add_total(10);
        assert!(lock().is_none());
    }
}
