//! Ctrl-C and SIGTERM: stop what we started, say what was left, exit 130.
//!
//! While a tool works it registers what an interruption must undo: a
//! server-side statement to cancel, a client program to stop, a temporary
//! file to remove, a database it created to drop. Each registration is a
//! [`Guard`] that unregisters when dropped, so only what is still under way
//! is undone. On the first SIGINT, SIGTERM or SIGHUP the undo actions run,
//! newest first, on a thread of their own; one line says the tool was
//! interrupted and what the actions left; the process exits with 130. A
//! second signal exits at once. The main thread may meet the effects (a
//! cancelled query fails): the entry helper then waits for the exit instead
//! of reporting that failure, and work loops call [`stop_if_interrupted`]
//! before starting more.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Once};

/// An undo action; what it returns is said in the "interrupted" line.
type Action = Box<dyn FnOnce() -> Option<String> + Send>;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static NEXT: AtomicU64 = AtomicU64::new(0);
static ACTIONS: Mutex<Vec<(u64, Action)>> = Mutex::new(Vec::new());

/// A registered undo action; dropping it unregisters the action.
#[derive(Debug)]
#[must_use = "dropping the guard unregisters the action at once"]
pub struct Guard(Option<u64>);

impl Guard {
    /// Keeps the action registered for the rest of the run.
    pub fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(id) = self.0 {
            if let Ok(mut actions) = ACTIONS.lock() {
                actions.retain(|(key, _)| *key != id);
            }
        }
    }
}

/// Installs the signal handler (the entry helper does, for every tool).
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            // The handler thread must stay free for a second signal.
            std::thread::spawn(undo_and_exit);
        });
    });
}

/// Registers `action` to run if the run is interrupted.
pub fn on_interrupt(action: impl FnOnce() -> Option<String> + Send + 'static) -> Guard {
    let id = NEXT.fetch_add(1, Ordering::SeqCst);
    match ACTIONS.lock() {
        Ok(mut actions) => {
            actions.push((id, Box::new(action)));
            Guard(Some(id))
        }
        Err(_) => Guard(None),
    }
}

/// Registers `note` to be said if the run is interrupted while the guard
/// lives ("no backup was written").
pub fn note_on_interrupt(note: impl Into<String>) -> Guard {
    let note = note.into();
    on_interrupt(move || Some(note))
}

/// Whether SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

thread_local! {
    static UNDOING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Never returns once the run is interrupted: the undo thread is ending the
/// process, and nothing new may start meanwhile. (On the undo thread itself,
/// which may connect to drop a database, it returns.)
pub fn stop_if_interrupted() {
    if UNDOING.with(std::cell::Cell::get) {
        return;
    }
    while interrupted() {
        std::thread::park();
    }
}

fn undo_and_exit() {
    UNDOING.with(|undoing| undoing.set(true));
    let actions = ACTIONS.lock().map(|mut a| std::mem::take(&mut *a));
    let mut notes = Vec::new();
    for (_, action) in actions.unwrap_or_default().into_iter().rev() {
        if let Some(note) = action() {
            notes.push(note);
        }
    }
    notes.reverse();
    if notes.is_empty() {
        crate::entry::error("interrupted");
    } else {
        crate::entry::error(format!("interrupted; {}", notes.join("; ")));
    }
    // The one exit outside the entry helper: the main thread may be blocked
    // in a query or a write for a long time, and the cleanup is done.
    std::process::exit(130);
}
