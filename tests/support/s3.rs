//! A throwaway S3 server for tests: SeaweedFS's `weed mini` (master, volume
//! server, filer and S3 gateway in one process) on 127.0.0.1, its data in a
//! temporary directory, ports picked free, and one admin identity whose
//! access key and secret are made up per server. [`server`] is shared by the
//! tests of one binary and stopped by a watchdog when that binary exits;
//! [`start`] makes a private one, to kill and restart, stopped on drop.
//! `weed` and the AWS CLI come from the venv scripts/test-deps.sh makes.

use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long a start, a restart or a bucket creation may take.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `weed` gets to stop on SIGINT (it ignores SIGTERM) before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// SeaweedFS serves gRPC on each HTTP port plus this.
const GRPC_OFFSET: u16 = 10_000;
/// Made when the server starts; that it answers for it says the filer is up.
const PROBE_BUCKET: &str = "ops-ready-probe";

/// Variables of a user's own AWS setup that would change what the CLI or
/// a tool talks to or how; removed wherever [`S3Server::env`] is set.
pub const FOREIGN_AWS_ENV: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_ENDPOINT_URL_S3",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_CA_BUNDLE",
    "AWS_DEFAULT_OUTPUT",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
];

#[derive(Clone, Copy, Debug)]
struct Ports {
    master: u16,
    volume: u16,
    filer: u16,
    s3: u16,
    iceberg: u16,
    admin: u16,
}

impl Ports {
    fn all(self) -> [u16; 6] {
        [
            self.master,
            self.volume,
            self.filer,
            self.s3,
            self.iceberg,
            self.admin,
        ]
    }
}

/// A running (or, after [`S3Server::kill`], killed) SeaweedFS server.
pub struct S3Server {
    pub access_key: String,
    pub secret_key: String,
    /// The temporary directory: `data/`, `weed.log`, `s3.json`.
    pub dir: PathBuf,
    ports: Ports,
    weed: PathBuf,
    aws: PathBuf,
    child: Option<Child>,
}

/// The server of this test binary, started on first use.
pub fn server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(start)
}

/// A server of the caller's own, stopped and removed on drop.
pub fn start() -> S3Server {
    let weed = tool("weed");
    let aws = tool("aws");
    let dir = tempfile::Builder::new()
        .prefix("ops-s3-")
        .tempdir()
        .unwrap()
        .keep();
    let access_key = format!(
        "opsTESTkey{}",
        random_text(10, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    );
    let secret_key = format!("opsTESTsecret{}", random_text(19, ALPHANUMERIC));
    let config = serde_json::json!({"identities": [{
        "name": "admin",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]});
    fs::write(dir.join("s3.json"), config.to_string()).unwrap();
    let mut server = S3Server {
        access_key,
        secret_key,
        dir,
        ports: pick_ports(),
        weed,
        aws,
        child: None,
    };
    server.spawn_watchdog();
    // A port found free can be taken by another process before weed binds
    // it; then weed exits and the server starts afresh on other ports.
    for attempt in 1.. {
        server.spawn();
        match server.wait_ready() {
            Ok(()) => break,
            Err(NotReady::Exited(_))
                if attempt < 3 && server.log_tail(50).contains("address already in use") =>
            {
                server.remove_sockets();
                fs::remove_dir_all(server.dir.join("data")).unwrap();
                server.ports = pick_ports();
            }
            Err(why) => server.fail(&format!("SeaweedFS did not start: {why}")),
        }
    }
    server
}

impl S3Server {
    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.s3)
    }

    /// Creates a new, empty bucket named after `prefix` (made a valid S3
    /// name) and unique on this server; returns its name.
    pub fn bucket(&self, prefix: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut stem = String::new();
        for c in prefix.chars().map(|c| c.to_ascii_lowercase()) {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                stem.push(c);
            } else if !stem.is_empty() && !stem.ends_with('-') {
                stem.push('-');
            }
        }
        stem.truncate(40);
        let stem = stem.trim_end_matches('-');
        let stem = if stem.is_empty() { "bucket" } else { stem };
        let name = format!(
            "{stem}-{}-{}",
            NEXT.fetch_add(1, Ordering::Relaxed),
            random_text(6, b"abcdefghijklmnopqrstuvwxyz0123456789")
        );
        if let Err(why) = self.create_bucket(&name, Instant::now() + READY_TIMEOUT, false) {
            self.fail(&format!("creating bucket {name}: {why}"));
        }
        name
    }

    /// What points the AWS CLI or an SDK at this server, with its
    /// credentials, and keeps the user's own ~/.aws out.
    pub fn env(&self) -> Vec<(String, String)> {
        let missing = |name: &str| self.dir.join(name).to_string_lossy().into_owned();
        [
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", missing("no-aws-config")),
            ("AWS_SHARED_CREDENTIALS_FILE", missing("no-aws-credentials")),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }

    /// The AWS CLI that [`S3Server::aws`] runs, for shell pipelines.
    pub fn aws_path(&self) -> &Path {
        &self.aws
    }

    /// Runs the AWS CLI (`aws --endpoint-url ENDPOINT ARGS…`) against this
    /// server with [`S3Server::env`]; stdin is empty.
    pub fn aws(&self, args: &[&str]) -> Output {
        self.aws_command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.aws.display()))
    }

    /// SIGKILLs the server, which then refuses connections until
    /// [`S3Server::restart`]. For a server of [`start`], not [`server`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_file(self.dir.join("weed.pid"));
    }

    /// Starts the server again (stopping it first if it runs) on the same
    /// ports and data; returns once it serves requests.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        if let Err(why) = self.wait_ready() {
            self.fail(&format!("SeaweedFS did not restart: {why}"));
        }
    }

    fn aws_command(&self) -> Command {
        let mut command = Command::new(&self.aws);
        for key in FOREIGN_AWS_ENV {
            command.env_remove(key);
        }
        command
            .envs(self.env())
            .arg("--endpoint-url")
            .arg(self.endpoint())
            .stdin(Stdio::null());
        command
    }

    fn spawn(&mut self) {
        let data = self.dir.join("data");
        fs::create_dir_all(&data).unwrap();
        let ports = self.ports;
        let ports_line: Vec<String> = ports
            .all()
            .iter()
            .flat_map(|p| [p.to_string(), (p + GRPC_OFFSET).to_string()])
            .collect();
        fs::write(self.dir.join("ports"), ports_line.join(" ") + "\n").unwrap();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("weed.log"))
            .unwrap();
        let mut command = Command::new(&self.weed);
        command
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-admin.ui=false",
                "-webdav=false",
                // Its default port, 9101, is fixed: two servers would clash.
                "-s3.port.lance=0",
            ])
            .arg(format!("-master.port={}", ports.master))
            .arg(format!("-volume.port={}", ports.volume))
            .arg(format!("-filer.port={}", ports.filer))
            .arg(format!("-s3.port={}", ports.s3))
            .arg(format!("-s3.port.iceberg={}", ports.iceberg))
            // The admin server runs without its UI too, on 23646 by default.
            .arg(format!("-admin.port={}", ports.admin))
            .arg(format!("-s3.config={}", self.dir.join("s3.json").display()))
            // weed reads config files (security.toml, filer.toml…) from the
            // working directory and ~/.seaweedfs, and S3_* and AWS_*
            // variables: none of the user's.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("TMPDIR", std::env::temp_dir())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.weed.display()));
        fs::write(self.dir.join("weed.pid"), child.id().to_string()).unwrap();
        self.child = Some(child);
    }

    /// Waits until the S3 port answers HTTP and the probe bucket can be
    /// created, or is there already (after a restart).
    fn wait_ready(&mut self) -> Result<(), NotReady> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(NotReady::Exited(status.to_string()));
            }
            if answers_http(self.ports.s3) {
                break;
            }
            if Instant::now() > deadline {
                return Err(NotReady::TimedOut(format!(
                    "no HTTP answer on port {} within {READY_TIMEOUT:?}",
                    self.ports.s3
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.create_bucket(PROBE_BUCKET, deadline, true)
            .map_err(NotReady::TimedOut)
    }

    /// Creates a bucket, retrying until `deadline`: the first tries can fail
    /// while the filer starts, and one that failed on the way back may have
    /// been done, which a retry's BucketAlreadyOwnedByYou tells.
    fn create_bucket(
        &self,
        name: &str,
        deadline: Instant,
        owned_at_once: bool,
    ) -> Result<(), String> {
        for attempt in 0.. {
            let output = self
                .aws_command()
                .args(["--cli-connect-timeout", "5", "--cli-read-timeout", "15"])
                .args(["s3api", "create-bucket", "--bucket", name])
                .output()
                .unwrap_or_else(|e| panic!("running {}: {e}", self.aws.display()));
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.success()
                || ((attempt > 0 || owned_at_once) && stderr.contains("BucketAlreadyOwnedByYou"))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "aws s3api create-bucket --bucket {name} still failing after {} tries: {}",
                    attempt + 1,
                    stderr.trim()
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        unreachable!()
    }

    /// SIGINT, up to [`STOP_GRACE`] to finish, then SIGKILL.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + STOP_GRACE;
            while let Ok(None) = child.try_wait() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = child.wait();
        let _ = fs::remove_file(self.dir.join("weed.pid"));
    }

    /// Removes the Unix sockets weed leaves in the temporary directory, one
    /// per port (`seaweedfs-filer-PORT.sock`, …).
    fn remove_sockets(&self) {
        let ports: Vec<String> = self
            .ports
            .all()
            .iter()
            .flat_map(|p| [format!("-{p}.sock"), format!("-{}.sock", p + GRPC_OFFSET)])
            .collect();
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("seaweedfs-") && ports.iter().any(|p| name.ends_with(p.as_str())) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// A watchdog that outlives the test process: once that has exited, it
    /// stops the server (whose pid is in `weed.pid`) and removes its
    /// directory and sockets. It ends early when the directory goes (drop).
    fn spawn_watchdog(&self) {
        let script = r#"
d=$1 t=$2 parent=$3
while kill -0 "$parent" 2>/dev/null && [ -d "$d" ]; do sleep 0.5; done
[ -d "$d" ] || exit 0
pid=$(cat "$d/weed.pid" 2>/dev/null)
alive() { [ -n "$pid" ] && tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "-dir=$d/data"; }
if alive; then
  kill -INT "$pid"
  n=0
  while alive && [ "$n" -lt 30 ]; do sleep 0.1; n=$((n + 1)); done
  alive && kill -KILL "$pid"
fi
for p in $(cat "$d/ports" 2>/dev/null); do rm -f "$t"/seaweedfs-*-"$p".sock; done
rm -rf "$d"
"#;
        // The watchdog outlives this process on purpose.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("ops-s3-watchdog")
            .arg(&self.dir)
            .arg(std::env::temp_dir())
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- last lines of {}:\n{}",
            self.dir.join("weed.log").display(),
            self.log_tail(40)
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
        self.remove_sockets();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug)]
enum NotReady {
    Exited(String),
    TimedOut(String),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Exited(status) => write!(f, "weed exited ({status})"),
            NotReady::TimedOut(what) => f.write_str(what),
        }
    }
}

/// `$OPS_TEST_TOOLS/venv/bin/NAME` (by default under ~/.cache/ops-test-tools,
/// as scripts/test-deps.sh makes it), else NAME on PATH.
fn tool(name: &str) -> PathBuf {
    let tools = std::env::var_os("OPS_TEST_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/ops-test-tools"))
        });
    let venv = tools.map(|t| t.join("venv/bin").join(name));
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    venv.into_iter()
        .chain(on_path)
        .find(|p| is_executable(p))
        .unwrap_or_else(|| {
            panic!("`{name}` is neither in $OPS_TEST_TOOLS/venv/bin (~/.cache/ops-test-tools) nor on PATH; run scripts/test-deps.sh")
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Six ports, each free on 127.0.0.1 with its gRPC twin (+10000), none
/// handed out before by this process.
fn pick_ports() -> Ports {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut taken = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let mut chosen = Vec::new();
    for _ in 0..100_000 {
        if chosen.len() == 6 {
            break;
        }
        // 15000..30000, twins 25000..40000: below the gRPC limit (65535 -
        // 10000) and mostly below the ephemeral range (32768 on Linux).
        let port = 15_000 + (random_u64() % 15_000) as u16;
        let pair = [port, port + GRPC_OFFSET];
        if pair.iter().any(|p| taken.contains(p)) || !pair.iter().all(|&p| is_free(p)) {
            continue;
        }
        taken.extend(pair);
        chosen.push(port);
    }
    assert_eq!(chosen.len(), 6, "no six free port pairs on 127.0.0.1");
    Ports {
        master: chosen[0],
        volume: chosen[1],
        filer: chosen[2],
        s3: chosen[3],
        iceberg: chosen[4],
        admin: chosen[5],
    }
}

fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Whether something on the port answers an HTTP request.
fn answers_http(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut head = [0u8; 5];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut head).is_ok()
        && &head == b"HTTP/"
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_text(len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|_| char::from(alphabet[(random_u64() % alphabet.len() as u64) as usize]))
        .collect()
}

/// Random enough for names and made-up keys: std's randomly seeded hasher
/// over a counter, the time and the pid.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}
