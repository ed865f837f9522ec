//! Keys for encrypted backups, in age's format so that `age -d` reads every
//! encrypted artifact: X25519 recipients (public keys: a host that holds
//! only these writes backups it cannot read) with their identities, or a
//! passphrase (scrypt).
//!
//! Secrets come from files, a command or the terminal, never from argv or
//! the environment's values themselves: a key or password file that others
//! can read is refused. The identities a process was given are kept here
//! for every reader of an encrypted file to use.

use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::{Mutex, PoisonError, RwLock};

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use age::DecryptError;
use serde::{Deserialize, Serialize};

use crate::UsageError;

pub const RECIPIENTS_FILE_VAR: &str = "OPS_RECIPIENTS_FILE";
pub const IDENTITY_FILE_VAR: &str = "OPS_IDENTITY_FILE";
pub const PASSWORD_FILE_VAR: &str = "OPS_PASSWORD_FILE";
pub const PASSWORD_COMMAND_VAR: &str = "OPS_PASSWORD_COMMAND";

/// The longest key, recipients or password file read.
const MAX_KEY_FILE: u64 = 1 << 20;

/// scrypt's N = 2^this for what we seal with a passphrase: 64 MiB and
/// about 0.15 s, as restic's key derivation (at most 60 MiB), so a tool's
/// memory stays bounded and every run does not start with a second of
/// work (age's own default targets a second, 512 MiB on a fast machine).
const SCRYPT_WORK_FACTOR: u8 = 16;
/// The most work a passphrase-sealed file may ask of us (256 MiB, as the
/// age CLI seals), so a planted file cannot take gigabytes and minutes.
const SCRYPT_MAX_WORK_FACTOR: u8 = 18;

static IDENTITIES: RwLock<Option<Vec<x25519::Identity>>> = RwLock::new(None);
static PASSPHRASE: Mutex<Option<SecretString>> = Mutex::new(None);

/// How to encrypt what is written (ops-backup create).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SealArgs {
    /// Encrypt to this age public key (age1..., repeatable): only the
    /// holder of its identity can read the backup, not this host.
    #[arg(long, value_name = "AGE_PUBLIC_KEY")]
    pub recipient: Vec<String>,
    /// Encrypt to every public key in this file, one per line, `#`
    /// comments allowed (repeatable) [env: OPS_RECIPIENTS_FILE].
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Vec<PathBuf>,
    /// Encrypt with a passphrase (scrypt) read from the file
    /// OPS_PASSWORD_FILE names, the first line OPS_PASSWORD_COMMAND prints,
    /// or asked for on the terminal.
    #[arg(long, conflicts_with_all = ["recipient", "recipients_file"])]
    pub passphrase: bool,
}

impl SealArgs {
    /// The encryption asked for, if any.
    ///
    /// Fails (usage) on a recipient that is not an age public key, or a
    /// recipients file that cannot be read or holds none.
    pub fn encryption(&self) -> anyhow::Result<Option<Encryption>> {
        if self.passphrase {
            return Ok(Some(Encryption::Passphrase(passphrase(true)?)));
        }
        let mut files = self.recipients_file.clone();
        if self.recipient.is_empty() && files.is_empty() {
            files.extend(std::env::var_os(RECIPIENTS_FILE_VAR).map(PathBuf::from));
        }
        let mut recipients = self
            .recipient
            .iter()
            .map(|text| parse_recipient(text, "--recipient"))
            .collect::<Result<Vec<_>, _>>()?;
        for file in &files {
            recipients.extend(read_recipients_file(file)?);
        }
        Ok((!recipients.is_empty()).then_some(Encryption::Recipients(recipients)))
    }
}

/// The keys that open encrypted backups (every reading tool).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct OpenArgs {
    /// Read encrypted backups and repositories with the age identity (secret key) in this
    /// file, as ops-backup keygen or age-keygen writes it; the file must
    /// not be readable by others (repeatable) [env: OPS_IDENTITY_FILE].
    /// Passphrase-encrypted ones take OPS_PASSWORD_FILE or
    /// OPS_PASSWORD_COMMAND, or ask on the terminal.
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
}

impl OpenArgs {
    /// Reads the identity files and keeps their keys for this process.
    ///
    /// Fails (usage) if a file cannot be read, can be read by others, or
    /// holds anything but age X25519 identities.
    pub fn install(&self) -> anyhow::Result<()> {
        let mut files = self.identity.clone();
        if files.is_empty() {
            files.extend(std::env::var_os(IDENTITY_FILE_VAR).map(PathBuf::from));
        }
        let mut identities = Vec::new();
        for file in &files {
            identities.extend(read_identity_file(file)?);
        }
        *IDENTITIES.write().unwrap_or_else(PoisonError::into_inner) = Some(identities);
        Ok(())
    }
}

/// The identities this process was given, or (for tools without
/// `--identity`) those in the file OPS_IDENTITY_FILE names.
fn identities() -> io::Result<Vec<x25519::Identity>> {
    if let Some(given) = IDENTITIES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        return Ok(given.clone());
    }
    OpenArgs::default()
        .install()
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err.to_string()))?;
    Ok(IDENTITIES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .unwrap_or_default())
}

/// Whether a passphrase can be had without asking for one that is not needed.
fn passphrase_at_hand() -> bool {
    PASSPHRASE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some()
        || std::env::var_os(PASSWORD_FILE_VAR).is_some()
        || std::env::var_os(PASSWORD_COMMAND_VAR).is_some()
        || fs::File::open("/dev/tty").is_ok()
}

/// Opens the first of `sealed` (age files, each a key slot holding the same
/// secret) that this process's identities or passphrase open and whose
/// content `accept`s; returns its position and content. `None` when no key
/// for any of them is at hand, so the caller can say which to give.
///
/// Fails when keys were at hand but none opened a slot.
pub fn open_any(
    sealed: &[&[u8]],
    accept: impl Fn(&[u8]) -> bool,
) -> io::Result<Option<(usize, Vec<u8>)>> {
    let identities = identities()?;
    let mut tried = false;
    // Identities first: they cost nothing, a passphrase costs a second.
    for want_scrypt in [false, true] {
        for (at, bytes) in sealed.iter().enumerate() {
            let Ok(decryptor) = age::Decryptor::new(*bytes) else {
                continue;
            };
            if decryptor.is_scrypt() != want_scrypt {
                continue;
            }
            let opened = if want_scrypt {
                if !passphrase_at_hand() {
                    continue;
                }
                let identity = scrypt_identity(passphrase(false)?);
                decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))
            } else {
                if identities.is_empty() {
                    continue;
                }
                decryptor.decrypt(identities.iter().map(|i| i as &dyn age::Identity))
            };
            tried = true;
            let mut content = Vec::new();
            let read = opened.map(|mut reader| reader.read_to_end(&mut content));
            if matches!(read, Ok(Ok(_))) && accept(&content) {
                return Ok(Some((at, content)));
            }
        }
    }
    if tried {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "none of the keys given (--identity, {IDENTITY_FILE_VAR}, {PASSWORD_FILE_VAR}, \
                 {PASSWORD_COMMAND_VAR}) opens it"
            ),
        ));
    }
    Ok(None)
}

fn scrypt_identity(passphrase: SecretString) -> age::scrypt::Identity {
    let mut identity = age::scrypt::Identity::new(passphrase);
    identity.set_max_work_factor(SCRYPT_MAX_WORK_FACTOR);
    identity
}

/// Seals `secret` as one age file with `encryption`.
pub fn seal(encryption: &Encryption, secret: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = encryption.wrap(&mut out)?;
    writer.write_all(secret)?;
    writer.finish()?;
    Ok(out)
}

/// The passphrase in the first line of `path` (a new one, for a key slot);
/// the file must not be readable by others.
///
/// Fails (usage) if it cannot be read, others can, or it is empty.
pub fn read_password_file(path: &Path) -> Result<SecretString, UsageError> {
    let text = read_key_file(path, "password file", true)?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(UsageError(format!(
            "password file {} is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(line.to_owned()))
}

/// A passphrase for a new key slot: from the terminal, asked twice.
pub fn new_passphrase() -> io::Result<SecretString> {
    let text = read_passphrase_from_terminal(true)?;
    if text.is_empty() {
        return Err(io::Error::other("the passphrase is empty"));
    }
    Ok(SecretString::from(text))
}

/// What a backup is encrypted to, recorded in the clear so that tools
/// without a key can tell it is encrypted, and to what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealing {
    /// The age public keys that can open it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Opened with a passphrase instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passphrase: bool,
}

/// How to encrypt: to public keys, or with a passphrase.
#[derive(Clone)]
pub enum Encryption {
    Recipients(Vec<x25519::Recipient>),
    Passphrase(SecretString),
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.sealing())
    }
}

impl Encryption {
    /// A fresh encryptor for one file (each file has a key of its own).
    ///
    /// Fails only if age refuses the recipients.
    pub fn encryptor(&self) -> io::Result<age::Encryptor> {
        match self {
            Encryption::Recipients(recipients) => {
                age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                    .map_err(|err| io::Error::other(format!("cannot encrypt: {err}")))
            }
            Encryption::Passphrase(passphrase) => {
                let mut recipient = age::scrypt::Recipient::new(passphrase.clone());
                recipient.set_work_factor(SCRYPT_WORK_FACTOR);
                age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                    .map_err(|err| io::Error::other(format!("cannot encrypt: {err}")))
            }
        }
    }

    /// Encrypts everything written to `out`; finish the returned stream.
    pub fn wrap<W: Write>(&self, out: W) -> io::Result<age::stream::StreamWriter<W>> {
        self.encryptor()?.wrap_output(out)
    }

    pub fn sealing(&self) -> Sealing {
        match self {
            Encryption::Recipients(recipients) => Sealing {
                recipients: recipients.iter().map(ToString::to_string).collect(),
                passphrase: false,
            },
            Encryption::Passphrase(_) => Sealing {
                recipients: Vec::new(),
                passphrase: true,
            },
        }
    }
}

/// Whether this process holds what opens a file sealed as `sealing`
/// (whether it is the right key is only known on opening).
pub fn can_open(sealing: &Sealing) -> bool {
    if sealing.passphrase {
        passphrase_at_hand()
    } else {
        identities().is_ok_and(|found| !found.is_empty())
    }
}

/// Decrypts `input`, the age file `what`, with this process's identities
/// or passphrase.
///
/// Fails with a message naming `what` and the flag or variable to set when
/// no key is at hand, when the keys do not open it, or when it is not an age
/// file; damage later in the file fails the reads.
pub fn decrypt<R: Read>(input: R, what: &Path) -> io::Result<age::stream::StreamReader<R>> {
    let decryptor = age::Decryptor::new(input).map_err(|err| unreadable(what, &err))?;
    if decryptor.is_scrypt() {
        let identity = scrypt_identity(passphrase(false)?);
        return decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|err| match err {
                DecryptError::DecryptionFailed | DecryptError::NoMatchingKeys => io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "the passphrase does not open {}; check {PASSWORD_FILE_VAR} or \
                             {PASSWORD_COMMAND_VAR}",
                        what.display()
                    ),
                ),
                other => unreadable(what, &other),
            });
    }
    let identities = identities()?;
    if identities.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is encrypted; give the identity that opens it with --identity FILE \
                 or {IDENTITY_FILE_VAR}",
                what.display()
            ),
        ));
    }
    decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|err| match err {
            DecryptError::NoMatchingKeys => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "none of the identities given (--identity, {IDENTITY_FILE_VAR}) opens {}: \
                     it is encrypted to other keys",
                    what.display()
                ),
            ),
            other => unreadable(what, &other),
        })
}

fn unreadable(what: &Path, err: &DecryptError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is not a readable age file (damaged, truncated or not encrypted): {err}",
            what.display()
        ),
    )
}

/// Writes a new X25519 identity to `path` (mode 0600, never over an
/// existing file) in age-keygen's format; returns its public key.
///
/// Fails if `path` exists or cannot be written.
pub fn generate(path: &Path) -> anyhow::Result<String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", parent.display()))?;
    }
    let identity = x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| match err.kind() {
            io::ErrorKind::AlreadyExists => UsageError(format!(
                "{} exists; keygen never overwrites a key (every backup it encrypted \
                 would be lost with it)",
                path.display()
            ))
            .into(),
            _ => anyhow::anyhow!("cannot write key file {}: {err}", path.display()),
        })?;
    let created = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let text = format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        identity.to_string().expose_secret()
    );
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(err) = written {
        let _ = fs::remove_file(path);
        anyhow::bail!("cannot write key file {}: {err}", path.display());
    }
    Ok(public)
}

fn parse_recipient(text: &str, from: &str) -> Result<x25519::Recipient, UsageError> {
    x25519::Recipient::from_str(text.trim()).map_err(|_| {
        UsageError(format!(
            "{from}: {text:?} is not an age public key (age1...); make a key pair with \
             ops-backup keygen or age-keygen"
        ))
    })
}

fn read_recipients_file(path: &Path) -> Result<Vec<x25519::Recipient>, UsageError> {
    let text = read_key_file(path, "recipients file", false)?;
    let recipients = key_lines(&text)
        .map(|(number, line)| parse_recipient(line, &format!("{}:{number}", path.display())))
        .collect::<Result<Vec<_>, _>>()?;
    if recipients.is_empty() {
        return Err(UsageError(format!(
            "recipients file {} holds no public key",
            path.display()
        )));
    }
    Ok(recipients)
}

fn read_identity_file(path: &Path) -> Result<Vec<x25519::Identity>, UsageError> {
    let text = read_key_file(path, "identity file", true)?;
    let identities = key_lines(&text)
        .map(|(number, line)| {
            x25519::Identity::from_str(line).map_err(|_| {
                UsageError(format!(
                    "identity file {} line {number} is not an age secret key \
                     (AGE-SECRET-KEY-1...)",
                    path.display()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if identities.is_empty() {
        return Err(UsageError(format!(
            "identity file {} holds no secret key",
            path.display()
        )));
    }
    Ok(identities)
}

/// Numbered lines that are neither blank nor comments.
fn key_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

/// Reads a small key file; a secret one others can read is refused.
fn read_key_file(path: &Path, what: &str, secret: bool) -> Result<String, UsageError> {
    let cannot =
        |err: io::Error| UsageError(format!("cannot read {what} {}: {err}", path.display()));
    let file = fs::File::open(path).map_err(cannot)?;
    let mode = file.metadata().map_err(cannot)?.permissions().mode();
    if secret && mode & 0o077 != 0 {
        return Err(UsageError(format!(
            "{what} {} can be read by others (mode {:04o}); run chmod 600 {}",
            path.display(),
            mode & 0o7777,
            path.display()
        )));
    }
    let mut text = String::new();
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    Ok(text)
}

/// The passphrase: from OPS_PASSWORD_FILE, OPS_PASSWORD_COMMAND or the
/// terminal (asked twice when `confirm`), once per process.
fn passphrase(confirm: bool) -> io::Result<SecretString> {
    let mut kept = PASSPHRASE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(passphrase) = kept.as_ref() {
        return Ok(passphrase.clone());
    }
    let text = read_passphrase(confirm)?;
    if text.is_empty() {
        return Err(io::Error::other("the passphrase is empty"));
    }
    let passphrase = SecretString::from(text);
    *kept = Some(passphrase.clone());
    Ok(passphrase)
}

fn read_passphrase(confirm: bool) -> io::Result<String> {
    let first_line = |text: &str| text.lines().next().unwrap_or_default().to_owned();
    if let Some(path) = std::env::var_os(PASSWORD_FILE_VAR) {
        let text = read_key_file(Path::new(&path), "password file", true)
            .map_err(|err| io::Error::other(err.0))?;
        return Ok(first_line(&text));
    }
    if let Some(command) = std::env::var_os(PASSWORD_COMMAND_VAR) {
        let output = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|err| io::Error::other(format!("cannot run {PASSWORD_COMMAND_VAR}: {err}")))?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "{PASSWORD_COMMAND_VAR} failed ({})",
                output.status
            )));
        }
        return Ok(first_line(&String::from_utf8_lossy(&output.stdout)));
    }
    read_passphrase_from_terminal(confirm)
}

fn read_passphrase_from_terminal(confirm: bool) -> io::Result<String> {
    let no_terminal = || {
        io::Error::other(format!(
            "a passphrase is needed: set {PASSWORD_FILE_VAR} to a file holding it (mode 0600) \
             or {PASSWORD_COMMAND_VAR} to a command printing it, or run on a terminal"
        ))
    };
    if !io::stderr().is_terminal() && fs::File::open("/dev/tty").is_err() {
        return Err(no_terminal());
    }
    let first = rpassword::prompt_password("ops passphrase: ").map_err(|_| no_terminal())?;
    if confirm {
        let again =
            rpassword::prompt_password("ops passphrase again: ").map_err(|_| no_terminal())?;
        if again != first {
            return Err(io::Error::other("the passphrases differ"));
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests;
