//! The PostgreSQL client programs we run (pg_dump, psql, pg_restore):
//! finding them, checking their version against the server, and running
//! them with their stderr kept for the error message. A program still
//! running on Ctrl-C or SIGTERM is stopped.

use std::io::{self, Read};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::{self, JoinHandle};

use anyhow::{bail, Context};

use super::conn::PgTarget;

/// A PostgreSQL version: `15.18 (Debian 15.18-0+deb12u1)`, major 15.
#[derive(Clone, Debug)]
pub struct Version {
    pub major: u32,
    pub text: String,
}

/// The server's version.
///
/// Fails if the query fails.
pub fn server_version(target: &PgTarget, client: &mut postgres::Client) -> anyhow::Result<Version> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
            &[],
        )
        .map_err(|e| target.query_error("reading the server version", &e))?;
    let text: String = row.get(0);
    let number: i32 = row.get(1);
    Ok(Version {
        major: u32::try_from(number / 10000).unwrap_or(0),
        text,
    })
}

/// The pg_dump that will run.
pub struct PgDump {
    pub path: String,
    pub version: Version,
}

impl PgDump {
    /// Finds pg_dump on PATH and reads its version.
    ///
    /// Fails with an install hint when it is missing.
    pub fn locate() -> anyhow::Result<Self> {
        let version = client_version("pg_dump")?;
        Ok(PgDump {
            path: "pg_dump".into(),
            version,
        })
    }

    /// Refuses a pg_dump older than the server, which cannot dump it.
    pub fn check_can_dump(&self, server: &Version) -> anyhow::Result<()> {
        if self.version.major < server.major {
            bail!(
                "pg_dump {} is older than the server ({}) and cannot dump it; \
                 install the PostgreSQL {} client tools (Debian: apt-get install postgresql-client-{}) \
                 and put their pg_dump first in PATH",
                self.version.text,
                server.text,
                server.major,
                server.major
            );
        }
        Ok(())
    }
}

/// The version a client program reports with `--version`.
///
/// Fails with an install hint when the program is missing.
pub fn client_version(program: &str) -> anyhow::Result<Version> {
    let output = Command::new(program).arg("--version").output();
    let output = match output {
        Ok(output) => output,
        Err(err) if err.kind() == io::ErrorKind::NotFound => bail!(
            "{program} not found in PATH; install the PostgreSQL client tools \
             (Debian: apt-get install postgresql-client)"
        ),
        Err(err) => return Err(err).with_context(|| format!("cannot run {program}")),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text
        .split_once("(PostgreSQL)")
        .map(|(_, rest)| rest.trim().to_owned())
        .unwrap_or_default();
    let major = version
        .split(['.', ' '])
        .next()
        .and_then(|m| m.parse().ok())
        .with_context(|| format!("cannot read the version of {program} from {text:?}"))?;
    Ok(Version {
        major,
        text: version,
    })
}

/// A client program running with piped stdout and its stderr collected.
pub struct Running {
    name: String,
    child: Child,
    stderr: Option<JoinHandle<String>>,
    waited: bool,
    stop_on_interrupt: Option<ops_shared::interrupt::Guard>,
}

/// Starts `command` (stdout piped, stderr collected, stdin piped if
/// `with_stdin`).
///
/// Fails with an install hint when the program is missing.
pub fn spawn(command: &mut Command, name: &str) -> anyhow::Result<Running> {
    spawn_with(command, name, false)
}

/// A PostgreSQL client tool that is not installed: the machine's problem,
/// not the backup's.
#[derive(Debug)]
pub struct ToolMissing(pub String);

impl std::fmt::Display for ToolMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} not found in PATH; install the PostgreSQL client tools \
             (Debian: apt-get install postgresql-client)",
            self.0
        )
    }
}

impl std::error::Error for ToolMissing {}

/// Like [`spawn`], with stdin piped for feeding.
pub fn spawn_with(command: &mut Command, name: &str, with_stdin: bool) -> anyhow::Result<Running> {
    command
        .stdin(if with_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ops_shared::interrupt::stop_if_interrupted();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(ToolMissing(name.to_owned()).into())
        }
        Err(err) => return Err(err).with_context(|| format!("cannot run {name}")),
    };
    let stderr = child.stderr.take().map(|mut pipe| {
        thread::spawn(move || {
            let mut text = Vec::new();
            let mut buffer = [0; 8192];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                text.extend_from_slice(&buffer[..n]);
                if text.len() > 64 << 10 {
                    text.drain(..text.len() - (64 << 10));
                }
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    });
    let pid = rustix::process::Pid::from_raw(child.id() as i32);
    let stop_on_interrupt = ops_shared::interrupt::on_interrupt(move || {
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        None
    });
    Ok(Running {
        name: name.to_owned(),
        child,
        stderr,
        waited: false,
        stop_on_interrupt: Some(stop_on_interrupt),
    })
}

impl Running {
    /// Its stdout, once.
    pub fn stdout(&mut self) -> io::Result<ChildStdout> {
        self.child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("stdout already taken"))
    }

    /// Its stdin, once (when started with [`spawn_with`]).
    pub fn stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// Stops it (after a failure on our side).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits for it; on failure, how it failed and the end of its stderr.
    pub fn wait_with_status_text(&mut self) -> Result<(), String> {
        drop(self.child.stdout.take());
        drop(self.child.stdin.take());
        let status = self.child.wait();
        self.waited = true;
        self.stop_on_interrupt = None;
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let detail = last_lines(&stderr, 5);
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => {
                let how = match (
                    status.code(),
                    std::os::unix::process::ExitStatusExt::signal(&status),
                ) {
                    (Some(code), _) => format!("{} exited with status {code}", self.name),
                    (None, Some(signal)) => format!("{} was killed by signal {signal}", self.name),
                    _ => format!("{} failed", self.name),
                };
                Err(if detail.is_empty() {
                    how
                } else {
                    format!("{how}: {detail}")
                })
            }
            Err(err) => Err(format!("waiting for {} failed: {err}", self.name)),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(count)..].join(" / ")
}
