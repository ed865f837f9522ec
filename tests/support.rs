//! The test harness: run an ops binary with arguments and stdin, get its
//! exit status, stderr and parsed records back; build sample trees; compare
//! trees the way a restore must reproduce them.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

#[path = "support/faults.rs"]
pub mod faults;
#[path = "support/pg.rs"]
pub mod pg;
#[path = "support/s3.rs"]
pub mod s3;
#[path = "support/sled_db.rs"]
pub mod sled_db;

/// The directory holding the built binaries: `OPS_BIN_DIR`, or the target
/// directory this test executable was built into.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OPS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir.parent().unwrap().to_owned()
    } else {
        dir.to_owned()
    }
}

/// A command for one of our binaries.
pub fn ops(tool: &str) -> Run {
    let path = bin_dir().join(tool);
    assert!(
        path.exists(),
        "{} not built; run `cargo build --workspace` (or set OPS_BIN_DIR)",
        path.display()
    );
    let mut command = Command::new(path);
    command.env("OPS_CACHE_DIR", test_cache());
    Run {
        command,
        stdin: Vec::new(),
    }
}

/// `tool` with no key at hand: none of the key variables, and no terminal
/// to ask for a passphrase on (`setsid`), as under cron.
pub fn ops_keyless(tool: &str) -> Run {
    let mut run = ops(tool);
    let mut command = Command::new("setsid");
    command.arg("--wait").arg(run.command.get_program());
    command.env("OPS_CACHE_DIR", test_cache());
    for name in [
        "OPS_PASSWORD_FILE",
        "OPS_PASSWORD_COMMAND",
        "OPS_IDENTITY_FILE",
        "OPS_RECIPIENTS_FILE",
    ] {
        command.env_remove(name);
    }
    run.command = command;
    run
}

/// Where the tests' ops-snapshot indexes go (not the user's cache), unless
/// OPS_CACHE_DIR says otherwise.
pub fn test_cache() -> PathBuf {
    std::env::var_os("OPS_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin_dir().join("test-cache"))
}

/// A shell pipeline with our binaries first on PATH.
pub fn sh(script: &str) -> Run {
    let mut command = Command::new("bash");
    command.arg("-o").arg("pipefail").arg("-c").arg(script);
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    command.env("PATH", path);
    command.env("OPS_CACHE_DIR", test_cache());
    Run {
        command,
        stdin: Vec::new(),
    }
}

/// A shell pipeline run on a pseudo-terminal (script(1)), as a person at
/// a terminal runs it: stdin, stdout and stderr are the terminal, so the
/// outcome's stdout is everything the terminal was sent, escapes included.
pub fn on_terminal(script: &str) -> Run {
    let mut run = sh("");
    run.command = Command::new("script");
    let shell = format!("bash -o pipefail -c {}", shell_quote(script));
    run.command.args(["-qefc", &shell, "/dev/null"]);
    run.command.env("TERM", "xterm");
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run.command.env("PATH", path);
    run.command.env("OPS_CACHE_DIR", test_cache());
    run.command.env_remove("NO_COLOR");
    run
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// What a terminal shows of `sent`: colour and cursor escapes removed,
/// one entry per line or carriage-return redraw.
pub fn terminal_lines(sent: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = sent.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .split(['\r', '\n'])
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

pub struct Run {
    pub command: Command,
    stdin: Vec<u8>,
}

/// What a run did.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// stdout parsed as records; panics on a line that is not JSON.
    pub fn records(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not a record: {line:?}: {e}"))
            })
            .collect()
    }

    /// The only record on stdout.
    pub fn record(&self) -> Value {
        let mut records = self.records();
        assert_eq!(records.len(), 1, "expected one record: {self:?}");
        records.remove(0)
    }

    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        self
    }

    pub fn fails_with(self, code: i32) -> Self {
        assert_eq!(self.code, code, "expected exit {code}: {self:?}");
        self
    }

    /// Asserts that stderr holds `needle`; on failure shows the exit code and all of stderr.
    #[track_caller]
    pub fn stderr_contains(&self, needle: &str) -> &Self {
        self.expect_text("stderr", &self.stderr, needle, true)
    }

    /// Asserts that stderr lacks `needle`; on failure shows the exit code and all of stderr.
    #[track_caller]
    pub fn stderr_lacks(&self, needle: &str) -> &Self {
        self.expect_text("stderr", &self.stderr, needle, false)
    }

    /// Asserts that stdout holds `needle`; on failure shows the exit code and all of stdout.
    #[track_caller]
    pub fn stdout_contains(&self, needle: &str) -> &Self {
        self.expect_text("stdout", &self.stdout, needle, true)
    }

    /// Asserts that stdout lacks `needle`; on failure shows the exit code and all of stdout.
    #[track_caller]
    pub fn stdout_lacks(&self, needle: &str) -> &Self {
        self.expect_text("stdout", &self.stdout, needle, false)
    }

    #[track_caller]
    fn expect_text(&self, name: &str, text: &str, needle: &str, wanted: bool) -> &Self {
        assert!(
            text.contains(needle) == wanted,
            "{name} should {}contain {needle:?} (exit {}); {name} was:\n{text}",
            if wanted { "" } else { "not " },
            self.code
        );
        self
    }
}

impl Run {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Points the run at an S3 server: its endpoint, credentials and region
    /// in the AWS_* variables, the user's own AWS setup left out.
    pub fn s3(mut self, server: &s3::S3Server) -> Self {
        for key in s3::FOREIGN_AWS_ENV {
            self.command.env_remove(key);
        }
        self.command.envs(server.env());
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = input.into();
        self
    }

    pub fn run(mut self) -> Outcome {
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = std::mem::take(&mut self.stdin);
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap();
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A tree with what backups must keep: nested and empty directories, a
/// symlink, a hard link, odd modes, a name that is not UTF-8, and a file
/// larger than the read buffer.
pub fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(root.join("hello.txt"), "hello\n").unwrap();
    fs::write(root.join("sub/notes.md"), "# notes\n".repeat(1000)).unwrap();
    fs::write(
        root.join("sub/deeper/data.jsonl"),
        "{\"n\":1}\n".repeat(5000),
    )
    .unwrap();
    fs::write(root.join("sub/big.bin"), pseudo_random(3 << 20, 7)).unwrap();
    fs::write(root.join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("script.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(
        root.join(OsStr::from_bytes(b"caf\xe9.txt")),
        "latin-1 name\n",
    )
    .unwrap();
    fs::write(
        root.join(format!("{}.txt", "long".repeat(40))),
        "long name\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("link")).unwrap();
    fs::hard_link(root.join("hello.txt"), root.join("sub/hello-again.txt")).unwrap();
    fs::set_permissions(root.join("empty"), fs::Permissions::from_mode(0o700)).unwrap();
}

/// Deterministic bytes that do not compress.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Asserts that `restored` holds what `original` holds: the same paths,
/// kinds, contents, permissions, modification times and link targets, and
/// that files hard-linked in the original are hard-linked in the copy.
pub fn assert_same_tree(original: &Path, restored: &Path) {
    let describe = |root: &Path| -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            let rel = entry.path().strip_prefix(root).unwrap().to_owned();
            let kind = if meta.is_dir() {
                "dir".to_owned()
            } else if meta.file_type().is_symlink() {
                format!(
                    "symlink -> {}",
                    fs::read_link(entry.path()).unwrap().display()
                )
            } else if meta.file_type().is_file() {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(&fs::read(entry.path()).unwrap(), &mut hasher);
                format!(
                    "file {:x} links={}",
                    std::hash::Hasher::finish(&hasher),
                    meta.nlink()
                )
            } else {
                continue;
            };
            let mtime = meta.mtime();
            let mode = if meta.file_type().is_symlink() {
                0
            } else {
                meta.mode() & 0o7777
            };
            out.push((rel, format!("{kind} mode={mode:o} mtime={mtime}")));
        }
        out
    };
    let mut theirs = describe(original);
    theirs.retain(|(path, _)| !is_special(&original.join(path)));
    assert_eq!(theirs, describe(restored));
}

fn is_special(path: &Path) -> bool {
    let meta = fs::symlink_metadata(path).unwrap();
    !(meta.is_dir() || meta.is_file() || meta.file_type().is_symlink())
}

/// The only file in `dir` whose name ends with `suffix`.
pub fn only_file(dir: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one *{suffix} in {}: {found:?}",
        dir.display()
    );
    found[0].clone()
}

/// Names of the entries in `dir`, sorted; the lock file `.ops-lock`, which
/// stays once a tool has locked the directory, is left out.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name != ".ops-lock")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Whether the tests run as root (CI does); root reads every file.
pub fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A sample tree (see [`sample_tree`]) backed up once: the temporary
/// directory holding both, the tree, and the backup record.
pub fn backed_up_sample() -> (tempfile::TempDir, PathBuf, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    let record = ops("ops-backup")
        .arg("create")
        .arg(&data)
        .arg("--to")
        .arg(tmp.path().join("backups"))
        .run()
        .success()
        .record();
    (tmp, data, record)
}

/// A 1 MiB tmpfs mounted at a new directory, unmounted on drop: a disk
/// that fills up. `None` (with a note) when not root, who alone can mount.
pub struct SmallDisk {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount() -> Option<Self> {
        if !is_root() {
            eprintln!("skipped: mounting a small tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        fs::create_dir(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(mounted.success(), "mount tmpfs failed");
        Some(SmallDisk { path, _dir: dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Backups of series `name` in `dir` as ops-backup would have made them at
/// each of `times` (RFC 3339): one real backup of a small tree, copied under
/// each time's id with its manifest rewritten, so they list and verify like
/// any other, all from one source (`<dir>/../<name>`). Returns the ids, in
/// the order of `times`.
pub fn dated_backups(dir: &Path, name: &str, times: &[&str]) -> Vec<String> {
    backups_made_at(dir, name, times, false)
}

/// Like [`dated_backups`], but each backup names the one before it as its
/// `parent`, as an incremental chain does.
pub fn chained_backups(dir: &Path, name: &str, times: &[&str]) -> Vec<String> {
    backups_made_at(dir, name, times, true)
}

fn backups_made_at(dir: &Path, name: &str, times: &[&str], chained: bool) -> Vec<String> {
    use ops_backup::catalog;
    use ops_backup::manifest::{ManifestReader, ManifestWriter};

    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join(name);
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("data.txt"), format!("{name}\n")).unwrap();
    let made = ops("ops-backup")
        .arg("create")
        .arg(&source)
        .arg("--to")
        .arg(scratch.path().join("made"))
        .run()
        .success()
        .record();
    let artifact = PathBuf::from(made["path"].as_str().unwrap());
    let manifest = catalog::manifest_path(artifact.parent().unwrap(), made["id"].as_str().unwrap());
    fs::create_dir_all(dir).unwrap();
    // One source per series, as ops-backup requires: `<dir>/../<name>`,
    // which is where a test's own `ops-backup create` of the series reads.
    let location = fs::canonicalize(dir.parent().unwrap()).unwrap().join(name);
    let mut ids = Vec::new();
    for time in times {
        let time: jiff::Timestamp = time.parse().unwrap();
        let mut reader = ManifestReader::open(&manifest).unwrap();
        let mut header = reader.header.clone();
        header.id = catalog::backup_id(name, time, 1);
        header.time = time;
        header.artifact = format!("{}.{}", header.id, header.format);
        header.source.location = location.to_string_lossy().into_owned();
        header.parent = if chained { ids.last().cloned() } else { None };
        if header.parent.is_some() {
            header.mode = "incremental".into();
        }
        let copy = dir.join(&header.artifact);
        fs::copy(&artifact, &copy).unwrap();
        let mut writer =
            ManifestWriter::create(&catalog::manifest_path(dir, &header.id), &header, None)
                .unwrap();
        while let Some(entry) = reader.next_entry().unwrap() {
            writer.entry(&entry).unwrap();
        }
        let summary = reader.finish().unwrap();
        fs::write(
            catalog::checksum_path(&copy),
            format!("{}  {}\n", summary.sha256, header.artifact),
        )
        .unwrap();
        for file in writer.finish(&summary).unwrap() {
            file.commit().unwrap();
        }
        ids.push(header.id);
    }
    ids
}

/// Sends SIGINT to a running tool (spawned with stderr piped), waits for it,
/// and returns its exit status and stderr.
pub fn interrupt(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    let signalled = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(signalled.success(), "kill -INT {}", child.id());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
    }
    (status, stderr)
}
