//! Where a database is, the way libpq users expect to say it.
//!
//! A location is a `postgres://` or `postgresql://` URL (or the bare
//! `postgres:`; the scheme in any case) or a libpq keyword string
//! (`host=/run/postgresql dbname=app`); whatever it leaves out comes from libpq's environment
//! (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`), then from
//! `~/.pgpass` (or `PGPASSFILE`) for the password, then libpq's defaults.
//! The same settings reach our own connections and the client programs we
//! run (pg_dump, psql, pg_restore), the latter through their environment so
//! a password never appears in a process list. A password never appears in
//! [`PgTarget::location`] or any message.
//!
//! Every connection we open is cancelled on Ctrl-C or SIGTERM (the
//! protocol's cancel request, through [`ops_shared::interrupt`]), so an
//! interrupted tool leaves no statement running on the server. A cancel
//! request for a connection already closed is ignored by the server, so the
//! registration simply lasts the run.

use std::fmt;
use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use ops_shared::UsageError;

/// libpq's connection keywords (all of them, as of PostgreSQL 17): a source
/// whose first word is `KEY=` with one of them is a keyword string
/// (`host=db dbname=app`, `sslrootcert=/etc/ca.pem host=db`).
const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// Whether `source` names a PostgreSQL database rather than a path: a
/// `postgres:` or `postgresql:` URL, the scheme in any case, or a libpq
/// keyword string.
pub fn is_postgres(source: &str) -> bool {
    let scheme = source
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    if matches!(scheme.as_deref(), Some("postgres" | "postgresql")) {
        return true;
    }
    let first = source.trim_start().split([' ', '\t']).next().unwrap_or("");
    let key = first.split('=').next().unwrap_or("").trim();
    (first.contains('=')
        || source.trim_start()[key.len()..]
            .trim_start()
            .starts_with('='))
        && KEYWORDS.contains(&key.to_ascii_lowercase().as_str())
}

/// `location` with its URL scheme in lower case, as the parser wants it.
fn lower_scheme(location: &str) -> String {
    match location.split_once(':') {
        Some((scheme, rest))
            if matches!(
                scheme.to_ascii_lowercase().as_str(),
                "postgres" | "postgresql"
            ) =>
        {
            format!("{}:{rest}", scheme.to_ascii_lowercase())
        }
        _ => location.to_owned(),
    }
}

/// A database on a server, with everything needed to connect.
#[derive(Clone)]
pub struct PgTarget {
    /// A host name, an IP address, or a Unix socket directory.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    password: Option<String>,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.location())
    }
}

/// Why a database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("database not reachable at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error(
        "authentication failed for user {user} at {endpoint}: {reason}; \
         give the password in PGPASSWORD, ~/.pgpass or the URL"
    )]
    Authentication {
        user: String,
        endpoint: String,
        reason: String,
    },
    #[error("database {dbname} does not exist on {endpoint}; create it or check the name")]
    NoSuchDatabase { dbname: String, endpoint: String },
    #[error("{context} on {endpoint}: {reason}")]
    Query {
        context: String,
        endpoint: String,
        reason: String,
    },
}

impl PgTarget {
    /// Parses a location, filling the gaps from the environment.
    ///
    /// Fails with a usage error when the URL cannot be parsed.
    pub fn parse(location: &str) -> Result<Self, UsageError> {
        let location = &lower_scheme(location);
        let bare = matches!(location.as_str(), "postgres:" | "postgresql:");
        let config = if bare {
            postgres::Config::new()
        } else {
            postgres::Config::from_str(location).map_err(|err| {
                UsageError(format!(
                    "invalid database URL {}: {err}",
                    ops_shared::redact::redact(location)
                ))
            })?
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            Some(postgres::config::Host::Unix(path)) => path.to_string_lossy().into_owned(),
            None => env("PGHOST").unwrap_or_else(|| "/var/run/postgresql".into()),
        };
        let port = match config.get_ports().first() {
            Some(port) => *port,
            None => match env("PGPORT") {
                Some(port) => port
                    .parse()
                    .map_err(|_| UsageError(format!("PGPORT {port:?} is not a port number")))?,
                None => 5432,
            },
        };
        let user = config
            .get_user()
            .map(str::to_owned)
            .or_else(|| env("PGUSER"))
            .unwrap_or_else(os_user);
        let dbname = config
            .get_dbname()
            .map(str::to_owned)
            .or_else(|| env("PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        let mut target = PgTarget {
            host,
            port,
            user,
            dbname,
            password: None,
        };
        target.password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .or_else(|| env("PGPASSWORD"))
            .or_else(|| target.password_from_pgpass());
        Ok(target)
    }

    /// The same server and credentials, another database.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        PgTarget {
            dbname: dbname.to_owned(),
            ..self.clone()
        }
    }

    /// A URL for records, manifests and messages: never the password.
    pub fn location(&self) -> String {
        if self.host.starts_with('/') {
            format!(
                "postgres://{}@/{}?host={}&port={}",
                self.user, self.dbname, self.host, self.port
            )
        } else {
            format!(
                "postgres://{}@{}:{}/{}",
                self.user, self.host, self.port, self.dbname
            )
        }
    }

    /// `HOST:PORT`, or the socket for a local server, for messages.
    pub fn endpoint(&self) -> String {
        if self.host.starts_with('/') {
            format!("{}/.s.PGSQL.{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Opens a connection.
    ///
    /// Fails with a [`PgError`] that says whether the server was not
    /// reachable, refused the credentials, or has no such database.
    pub fn connect(&self) -> Result<postgres::Client, PgError> {
        ops_shared::interrupt::stop_if_interrupted();
        let mut config = postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("ops")
            .connect_timeout(Duration::from_secs(10));
        if let Some(password) = &self.password {
            config.password(password);
        }
        let client = config
            .connect(postgres::NoTls)
            .map_err(|err| self.classify(&err))?;
        let cancel = client.cancel_token();
        ops_shared::interrupt::on_interrupt(move || {
            let _ = cancel.cancel_query(postgres::NoTls);
            None
        })
        .keep();
        Ok(client)
    }

    /// A client program (pg_dump, psql, ...) set up to reach this database.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("PGHOST", &self.host)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGDATABASE", &self.dbname)
            .env("PGAPPNAME", "ops")
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGSERVICE");
        match &self.password {
            Some(password) => command.env("PGPASSWORD", password),
            None => command.env_remove("PGPASSWORD"),
        };
        command
    }

    /// An error from a query, with what we were doing.
    pub fn query_error(&self, context: &str, err: &postgres::Error) -> PgError {
        PgError::Query {
            context: context.to_owned(),
            endpoint: self.endpoint(),
            reason: describe(err),
        }
    }

    fn classify(&self, err: &postgres::Error) -> PgError {
        let endpoint = self.endpoint();
        let reason = describe(err);
        if let Some(db) = err.as_db_error() {
            let code = db.code().code();
            if code == "3D000" {
                return PgError::NoSuchDatabase {
                    dbname: self.dbname.clone(),
                    endpoint,
                };
            }
            if code.starts_with("28") {
                return PgError::Authentication {
                    user: self.user.clone(),
                    endpoint,
                    reason,
                };
            }
            return PgError::Query {
                context: "connecting failed".into(),
                endpoint,
                reason,
            };
        }
        if reason.contains("password missing") {
            return PgError::Authentication {
                user: self.user.clone(),
                endpoint,
                reason,
            };
        }
        PgError::Unreachable { endpoint, reason }
    }

    fn password_from_pgpass(&self) -> Option<String> {
        let path = std::env::var_os("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pgpass")))?;
        let text = std::fs::read_to_string(path).ok()?;
        let host = if self.host.starts_with('/') {
            "localhost"
        } else {
            self.host.as_str()
        };
        let wanted = [host, &self.port.to_string(), &self.dbname, &self.user].map(str::to_owned);
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let fields = split_pgpass(line);
                let matches = fields.len() == 5
                    && fields[..4]
                        .iter()
                        .zip(&wanted)
                        .all(|(f, w)| f == "*" || f == w);
                matches.then(|| fields[4].clone())
            })
    }
}

/// The error text PostgreSQL gave, without the crate's prefixes.
pub fn describe(err: &postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        db.message().to_owned()
    } else {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        text
    }
}

/// `host:port:db:user:password` with `\:` and `\\` escapes.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        let c = match c {
            '\\' => chars.next().unwrap_or('\\'),
            ':' if fields.len() < 5 => {
                fields.push(String::new());
                continue;
            }
            c => c,
        };
        if let Some(field) = fields.last_mut() {
            field.push(c);
        }
    }
    fields
}

fn os_user() -> String {
    if let Some(user) = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok())
    {
        return user;
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|u| u.split_whitespace().next().unwrap_or("").to_owned())
            })
        });
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    uid.and_then(|uid| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.get(2) == Some(&uid.as_str())).then(|| fields[0].to_owned())
        })
    })
    .unwrap_or_else(|| "postgres".into())
}

/// Quotes an identifier for SQL: `"my ""odd"" table"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_split_on_unescaped_colons() {
        assert_eq!(
            split_pgpass(r"db\:1:5432:*:app:pa\:ss"),
            ["db:1", "5432", "*", "app", "pa:ss"]
        );
    }

    #[test]
    fn locations_never_show_the_password() {
        let target = PgTarget::parse("postgres://app:s3cret@db.example:5433/shop").unwrap();
        assert_eq!(target.location(), "postgres://app@db.example:5433/shop");
        assert_eq!(target.endpoint(), "db.example:5433");
        assert!(!format!("{target:?}").contains("s3cret"));
    }

    #[test]
    fn keyword_strings_and_any_scheme_case_are_databases() {
        for source in [
            "host=db password=x dbname=app",
            "  dbname = app",
            "POSTGRES://app@db/app",
            "PostgreSQL:",
            "sslrootcert=/etc/ca.pem host=db password=x",
            "keepalives=1 host=db",
        ] {
            assert!(is_postgres(source), "{source}");
        }
        for source in [
            "/srv/data",
            "./host=x",
            "backups",
            "hots=x password=y",
            "sled:/x",
        ] {
            assert!(!is_postgres(source), "{source}");
        }
        let target =
            PgTarget::parse("host=db.example port=5433 user=app password=s3cret dbname=shop")
                .unwrap();
        assert_eq!(target.location(), "postgres://app@db.example:5433/shop");
        let target = PgTarget::parse("POSTGRES://app:s3cret@db.example/shop").unwrap();
        assert_eq!(target.location(), "postgres://app@db.example:5432/shop");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
