//! The entry helper: parse the command line, run the tool, report errors on
//! stderr as `ops-x: error: ...`, and turn the outcome into an exit status.
//!
//! Exit statuses (all tools but ops-health): 0 success; 1 the work found or
//! hit a problem; 2 a usage or input error. A closed stdout (`| head`) is a
//! quiet success. Ctrl-C or SIGTERM: 130, after [`crate::interrupt`] has
//! undone what was under way.

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

/// Runs a tool's `run` function as a process: the shared `main`.
///
/// `usage_code` is the exit status for usage errors (2; ops-health uses 3).
pub fn main(
    tool: &str,
    usage_code: u8,
    run: impl FnOnce(Vec<OsString>) -> anyhow::Result<Status>,
) -> ExitCode {
    let _ = TOOL.set(tool.to_owned());
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
        Ok(Err(err)) => ExitCode::from(report(tool, usage_code, &err)),
        // ops-health (usage code 3) says "unknown"; the others "failed".
        Err(_) => ExitCode::from(if usage_code == 3 { 3 } else { 1 }),
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

fn report(tool: &str, usage_code: u8, err: &anyhow::Error) -> u8 {
    if is_closed_stdout(err) {
        return 0;
    }
    let _ = writeln!(io::stderr(), "{tool}: error: {err:#}");
    let refused_lock = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<crate::lock::LockError>(),
            Some(crate::lock::LockError::Refused { .. })
        )
    });
    if err.downcast_ref::<UsageError>().is_some() || refused_lock {
        usage_code
    } else {
        1
    }
}

fn is_closed_stdout(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
