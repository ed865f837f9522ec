//! The entry helper: parse the command line, run the tool, report errors on
//! stderr as `ops-x: error: ...`, and turn the outcome into an exit status.
//!
//! Each tool states its exit statuses in one [`Tool`] table ([`STANDARD`]
//! for all but ops-health): 0 success; 1 the work found or hit a problem; 2 a
//! usage or input error. Whether an error is a usage error is the error's
//! own say ([`Classify`]), asked of every cause in its chain. A closed stdout
//! (`| head`) is a quiet success. Ctrl-C or SIGTERM: 130, after
//! [`crate::interrupt`] has undone what was under way.

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::OnceLock;

static TOOL: OnceLock<String> = OnceLock::new();

/// How a run ended when it did not fail outright.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Everything worked: exit 0.
    Success,
    /// The work found or hit a problem on some item (already reported): exit 1.
    Problem,
    /// A tool-specific status (ops-health's monitoring-plugins codes).
    Code(u8),
}

impl Status {
    /// `Problem` if `failed`, else `Success`.
    pub fn problem_if(failed: bool) -> Self {
        if failed {
            Status::Problem
        } else {
            Status::Success
        }
    }

    fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Problem => 1,
            Status::Code(code) => code,
        }
    }
}

/// A usage or input error: bad flags, malformed input records. Exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Whose an error is, which decides the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user asked for something wrong or absent (bad flags or input, a
    /// path that is not what it should be, a lock held by another run).
    Usage,
    /// The work itself failed.
    Failed,
}

/// An error that says whose it is.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
}

impl Classify for UsageError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

impl Classify for crate::lock::LockError {
    fn kind(&self) -> ErrorKind {
        match self {
            crate::lock::LockError::Refused { .. } => ErrorKind::Usage,
            _ => ErrorKind::Failed,
        }
    }
}

/// Asks one cause of an error chain whether it is an `E` and, if so, whose.
pub type Classifier = fn(&(dyn std::error::Error + 'static)) -> Option<ErrorKind>;

/// The [`Classifier`] for errors of type `E`.
pub fn classify_as<E: Classify + std::error::Error + 'static>(
    cause: &(dyn std::error::Error + 'static),
) -> Option<ErrorKind> {
    cause.downcast_ref::<E>().map(Classify::kind)
}

/// A tool as a process: its name, its exit statuses, and the error types
/// (beyond this crate's) that can say they are usage errors.
pub struct Tool {
    pub name: &'static str,
    /// The exit status of a usage error.
    pub usage: u8,
    /// The exit status of an error the work hit.
    pub failed: u8,
    /// The exit status of an internal error (a panic).
    pub internal: u8,
    pub classifiers: &'static [Classifier],
}

/// The exit statuses of every tool but ops-health: usage 2, failure 1.
pub const STANDARD: Tool = Tool {
    name: "ops",
    usage: 2,
    failed: 1,
    internal: 1,
    classifiers: &[],
};

impl Tool {
    /// Whose `err` is: a usage error if any cause in its chain says so.
    pub fn kind_of(&self, err: &anyhow::Error) -> ErrorKind {
        let shared: [Classifier; 2] = [
            classify_as::<UsageError>,
            classify_as::<crate::lock::LockError>,
        ];
        let usage = err.chain().any(|cause| {
            shared
                .iter()
                .chain(self.classifiers)
                .any(|classify| classify(cause) == Some(ErrorKind::Usage))
        });
        if usage {
            ErrorKind::Usage
        } else {
            ErrorKind::Failed
        }
    }

    fn code(&self, kind: ErrorKind) -> u8 {
        match kind {
            ErrorKind::Usage => self.usage,
            ErrorKind::Failed => self.failed,
        }
    }
}

/// Runs a tool's `run` function as a process: the shared `main`.
pub fn main(tool: &Tool, run: impl FnOnce(Vec<OsString>) -> anyhow::Result<Status>) -> ExitCode {
    let _ = TOOL.set(tool.name.to_owned());
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(
            io::stderr(),
            "{}: internal error: {}",
            tool_name(),
            panic_text(info.payload())
        );
    }));
    crate::interrupt::install();
    let args: Vec<OsString> = std::env::args_os().collect();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || run(args)));
    crate::progress::clear();
    // A failure after Ctrl-C is the interruption's doing: its own exit
    // (130, one line) comes from the undo thread.
    crate::interrupt::stop_if_interrupted();
    match outcome {
        Ok(Ok(status)) => ExitCode::from(status.code()),
        Ok(Err(err)) => ExitCode::from(report(tool, &err)),
        Err(_) => ExitCode::from(tool.internal),
    }
}

/// Parses `args` with clap; `--help` and `--version` are printed here and end
/// the run with `Ok(None)`.
pub fn parse_args<P: clap::Parser>(args: Vec<OsString>) -> anyhow::Result<Option<P>> {
    match P::try_parse_from(args) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(err) if !err.use_stderr() => {
            err.print()?;
            Ok(None)
        }
        Err(err) => {
            let text = err.render().to_string();
            let text = text.trim_end().trim_start_matches("error: ");
            Err(UsageError(text.to_owned()).into())
        }
    }
}

/// Prints `ops-x: warning: ...` on stderr.
pub fn warn(message: impl std::fmt::Display) {
    crate::progress::suspend(|| writeln!(io::stderr(), "{}: warning: {message}", tool_name())).ok();
}

/// Prints `ops-x: ...` on stderr: a summary or progress for people.
pub fn note(message: impl std::fmt::Display) {
    crate::progress::suspend(|| writeln!(io::stderr(), "{}: {message}", tool_name())).ok();
}

/// Prints `ops-x: error: ...` on stderr for a problem the tool moves past.
pub fn error(message: impl std::fmt::Display) {
    crate::progress::suspend(|| writeln!(io::stderr(), "{}: error: {message}", tool_name())).ok();
}

/// The message a panic carried.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

pub(crate) fn tool_name() -> &'static str {
    TOOL.get().map_or("ops", String::as_str)
}

fn report(tool: &Tool, err: &anyhow::Error) -> u8 {
    if is_closed_stdout(err) {
        return 0;
    }
    let _ = writeln!(io::stderr(), "{}: error: {err:#}", tool.name);
    tool.code(tool.kind_of(err))
}

fn is_closed_stdout(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
