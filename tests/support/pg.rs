//! A throwaway PostgreSQL cluster for tests: `initdb` and `pg_ctl` in a
//! temporary directory, a Unix socket there and a free TCP port on
//! 127.0.0.1, trust authentication plus one password-protected role. It is
//! shared by the tests of one binary and stopped by a watchdog when that
//! binary exits. As root (CI), the server runs as the `postgres` user.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The role that needs a password, and its password.
pub const SECRET_USER: &str = "secret_role";
pub const SECRET_PASSWORD: &str = "hunter2-Zq9";

pub struct PgCluster {
    pub dir: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
    pub bin: PathBuf,
}

/// The cluster of this test binary, started on first use.
pub fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(PgCluster::start)
}

fn server_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").exists());
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().unwrap_or_else(|| {
        panic!("PostgreSQL server binaries not found under /usr/lib/postgresql; apt-get install postgresql")
    })
}

fn as_postgres(program: &Path) -> Command {
    if crate::is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl PgCluster {
    fn start() -> Self {
        Self::start_with("", &[])
    }

    /// A cluster of its own, `conf` appended to its postgresql.conf and
    /// `env` in its server's environment (what its archive_command sees).
    /// Stopped when the test binary exits, or by [`PgCluster::stop`].
    pub fn start_with(conf: &str, env: &[(String, String)]) -> Self {
        let cluster = Self::launch(conf, env, |bin, data| {
            run(
                as_postgres(&bin.join("initdb")).arg("-D").arg(data).args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ]),
                "initdb",
            );
        });
        cluster.psql(
            "postgres",
            &format!("CREATE ROLE {SECRET_USER} LOGIN SUPERUSER PASSWORD '{SECRET_PASSWORD}'"),
        );
        cluster
    }

    /// A cluster of its own on a copy of the data directory `base` (a base
    /// backup, with what recovery needs), `conf` appended to its
    /// postgresql.conf; started, but maybe still recovering.
    pub fn start_on_copy(base: &Path, conf: &str) -> Self {
        Self::launch(conf, &[], |_, data| {
            run(
                Command::new("cp").arg("-a").arg(base).arg(data),
                "cp -a of the base backup",
            );
            fs::set_permissions(data, fs::Permissions::from_mode(0o700)).unwrap();
            if crate::is_root() {
                run(
                    Command::new("chown")
                        .arg("-R")
                        .arg("postgres:postgres")
                        .arg(data),
                    "chown",
                );
            }
        })
    }

    fn launch(conf: &str, env: &[(String, String)], make_data: impl FnOnce(&Path, &Path)) -> Self {
        let bin = server_bin();
        let dir = tempfile::Builder::new()
            .prefix("ops-pg-")
            .tempdir()
            .unwrap()
            .keep();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let socket_dir = dir.join("sock");
        fs::create_dir(&socket_dir).unwrap();
        if crate::is_root() {
            run(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:postgres")
                    .arg(&dir),
                "chown",
            );
        }
        let data = dir.join("data");
        make_data(&bin, &data);
        let hba = format!(
            "local all {SECRET_USER} scram-sha-256\nhost all {SECRET_USER} 127.0.0.1/32 scram-sha-256\n\
             local all all trust\nhost all all 127.0.0.1/32 trust\nlocal replication all trust\n"
        );
        fs::write(data.join("pg_hba.conf"), hba).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = format!(
            "unix_socket_directories = '{}'\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 60\n{conf}\n",
            socket_dir.display()
        );
        let mut config = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut config, settings.as_bytes()).unwrap();
        run(
            as_postgres(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .envs(env.iter().map(|(k, v)| (k, v)))
                .args(["-w", "start"]),
            "pg_ctl start",
        );
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {runuser} {pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runuser = if crate::is_root() { "runuser -u postgres --" } else { "" },
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        // The watchdog outlives this process on purpose: it stops the
        // cluster once the test binary has exited.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .arg("-c")
            .arg(stop)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        PgCluster {
            dir,
            socket_dir,
            port,
            bin,
        }
    }

    /// Stops the server now (fast shutdown: every segment it has finished
    /// is archived first).
    pub fn stop(&self) {
        run(
            as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-w", "-m", "fast", "stop"]),
            "pg_ctl stop",
        );
    }

    /// A directory inside the cluster's own that its server may write
    /// (owned by postgres when tests run as root).
    pub fn private_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.join(name);
        fs::create_dir_all(&dir).unwrap();
        if crate::is_root() {
            run(
                Command::new("chown").arg("postgres:postgres").arg(&dir),
                "chown",
            );
        }
        dir
    }

    /// A copy of our tool `name` the server's user can run (the build's own
    /// directory may be private to root).
    pub fn tool(&self, name: &str) -> PathBuf {
        let bin = self.private_dir("bin");
        let copy = bin.join(name);
        if !copy.exists() {
            fs::copy(crate::bin_dir().join(name), &copy).unwrap();
            fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        }
        copy
    }

    /// Runs a server program (pg_basebackup, ...) as the server's user.
    pub fn as_postgres(&self, program: &str) -> Command {
        as_postgres(&self.bin.join(program))
    }

    /// A URL for database `db` over the Unix socket, as user postgres.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@/{db}?host={}&port={}",
            self.socket_dir.display(),
            self.port
        )
    }

    /// A URL over TCP with the password-protected role.
    pub fn secret_url(&self, db: &str, password: &str) -> String {
        format!(
            "postgres://{SECRET_USER}:{password}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// Runs SQL with psql in `db`; returns unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let output = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Creates a fresh, empty database.
    pub fn create_db(&self, name: &str) {
        self.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
    }

    /// Whether a database exists.
    pub fn has_db(&self, name: &str) -> bool {
        self.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        ) == "1"
    }
}

/// A schema with what round trips must keep: enums, composite types,
/// domains, sequences with advanced values, views and materialized views,
/// functions and triggers, a partitioned table, foreign keys, bytea, jsonb,
/// arrays, numeric, timestamps with time zone, Unicode text, NULLs, and a
/// table of one million rows.
pub const RICH_SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE address AS (street text, city text, zip text);
CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
CREATE SEQUENCE ticket_seq START 1000 INCREMENT 7;
SELECT setval('ticket_seq', 123456789);
CREATE TABLE subreddits (id serial PRIMARY KEY, name text UNIQUE NOT NULL, created timestamptz NOT NULL DEFAULT now());
CREATE TABLE posts (
  id bigserial PRIMARY KEY, subreddit_id int NOT NULL REFERENCES subreddits(id), title text, body text,
  mood mood, score positive_int, tags text[], meta jsonb, raw bytea, price numeric(20,6), home address,
  posted timestamptz, ticket bigint DEFAULT nextval('ticket_seq'));
CREATE TABLE audit (id serial PRIMARY KEY, post_id bigint, note text);
CREATE FUNCTION log_post() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO audit(post_id, note) VALUES (NEW.id, 'new post'); RETURN NEW; END $$;
CREATE TRIGGER post_audit AFTER INSERT ON posts FOR EACH ROW EXECUTE FUNCTION log_post();
CREATE TABLE events (id bigint, at timestamptz NOT NULL, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE VIEW hot_posts AS SELECT id, title FROM posts WHERE score > 50;
CREATE TABLE big (id bigint PRIMARY KEY, v text);
INSERT INTO subreddits(name) SELECT 'sub_' || g FROM generate_series(1, 50) g;
INSERT INTO posts(subreddit_id, title, body, mood, score, tags, meta, raw, price, home, posted)
  SELECT 1 + g % 50, 'title ' || g,
         CASE WHEN g % 7 = 0 THEN NULL ELSE 'body ünïcødé ✓ 🚀 «quotes» ' || g END,
         (ARRAY['sad','ok','happy'])[1 + g % 3]::mood, 1 + g % 100, ARRAY['a' || g, NULL, 'c'],
         jsonb_build_object('g', g, 'nested', jsonb_build_object('x', g * 1.5, 'arr', jsonb_build_array(1, 'two', null))),
         decode(md5(g::text), 'hex'), g * 1.123456, ROW('street ' || g, 'city', NULL)::address,
         '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 minute 3.5 seconds'
  FROM generate_series(1, 5000) g;
INSERT INTO events SELECT g, '2025-06-01'::timestamptz + g * interval '1 hour', '{"k": [1, 2]}' FROM generate_series(1, 10000) g;
CREATE MATERIALIZED VIEW sub_counts AS SELECT subreddit_id, count(*) AS n FROM posts GROUP BY subreddit_id;
INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 1000000) g;
"#;

impl PgCluster {
    /// Creates database `name` with [`RICH_SCHEMA`].
    pub fn create_rich_db(&self, name: &str) {
        self.create_db(name);
        self.psql(name, RICH_SCHEMA);
    }

    /// `pg_dump --schema-only` of a database, without the per-run
    /// `\restrict` tokens.
    pub fn schema(&self, db: &str) -> String {
        let output = Command::new("pg_dump")
            .args(["--schema-only", "-h"])
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", db])
            .output()
            .unwrap();
        assert!(output.status.success(), "pg_dump --schema-only {db}");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every user table of a database with a hash of its whole content.
    pub fn content_hashes(&self, db: &str) -> Vec<(String, String)> {
        let tables = self.psql(
            db,
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        );
        tables
            .lines()
            .map(|table| {
                let hash = self.psql(db, &format!("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"));
                (table.to_owned(), hash)
            })
            .collect()
    }

    /// Names of databases starting with `prefix`.
    pub fn databases_like(&self, prefix: &str) -> Vec<String> {
        let names = self.psql(
            "postgres",
            &format!("SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%' ORDER BY 1"),
        );
        names.lines().map(str::to_owned).collect()
    }
}

/// A streaming standby of a cluster, made with pg_basebackup; stopped and
/// removed on drop.
pub struct Standby {
    pub socket_dir: PathBuf,
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PgCluster {
    /// Starts a standby replicating this cluster.
    pub fn start_standby(&self) -> Standby {
        let dir = tempfile::Builder::new()
            .prefix("ops-pg-standby-")
            .tempdir()
            .unwrap()
            .keep();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let socket_dir = dir.join("sock");
        fs::create_dir(&socket_dir).unwrap();
        if crate::is_root() {
            run(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:postgres")
                    .arg(&dir),
                "chown",
            );
        }
        let data = dir.join("data");
        run(
            as_postgres(&self.bin.join("pg_basebackup"))
                .arg("-D")
                .arg(&data)
                .arg("-R")
                // Without it the primary spreads its checkpoint over minutes.
                .arg("--checkpoint=fast")
                .arg("-h")
                .arg(&self.socket_dir)
                .args(["-p", &self.port.to_string(), "-U", "postgres"]),
            "pg_basebackup",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-k {} -p {port} -c listen_addresses=''",
            socket_dir.display()
        );
        run(
            as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-w", "-o", &options, "start"]),
            "pg_ctl start (standby)",
        );
        Standby {
            socket_dir,
            port,
            dir,
            bin: self.bin.clone(),
        }
    }
}

impl Standby {
    /// A URL for database `db` on the standby.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@/{db}?host={}&port={}",
            self.socket_dir.display(),
            self.port
        )
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
