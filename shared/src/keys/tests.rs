use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

fn sealed(encryption: &Encryption, plaintext: &[u8]) -> Vec<u8> {
    let mut out = encryption.wrap(Vec::new()).unwrap();
    out.write_all(plaintext).unwrap();
    out.finish().unwrap()
}

fn opened(ciphertext: &[u8]) -> io::Result<Vec<u8>> {
    let mut plain = Vec::new();
    decrypt(ciphertext, Path::new("backup.tar.zst.age"))?.read_to_end(&mut plain)?;
    Ok(plain)
}

fn recipients_of(keys: &[&Path]) -> Encryption {
    let files = keys
        .iter()
        .map(|k| k.with_extension("pub"))
        .collect::<Vec<_>>();
    SealArgs {
        recipients_file: files,
        ..SealArgs::default()
    }
    .encryption()
    .unwrap()
    .unwrap()
}

fn keygen(dir: &Path, name: &str) -> std::path::PathBuf {
    let key = dir.join(name);
    let public = generate(&key).unwrap();
    fs::write(key.with_extension("pub"), format!("# {name}\n{public}\n")).unwrap();
    key
}

fn identities(files: &[&Path]) -> anyhow::Result<()> {
    OpenArgs {
        identity: files.iter().map(|f| f.to_path_buf()).collect(),
    }
    .install()
}

// One test: the identities are the process's.
#[test]
fn encrypts_to_recipients_and_opens_only_with_their_identities() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, eve) = (
        keygen(dir.path(), "alice.key"),
        keygen(dir.path(), "bob.key"),
        keygen(dir.path(), "eve.key"),
    );
    assert_eq!(
        fs::metadata(&alice).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let encryption = recipients_of(&[&alice, &bob]);
    assert_eq!(encryption.sealing().recipients.len(), 2);
    let ciphertext = sealed(&encryption, b"secret table marker");
    assert!(!String::from_utf8_lossy(&ciphertext).contains("marker"));

    identities(&[]).unwrap();
    let missing = opened(&ciphertext).unwrap_err().to_string();
    assert!(
        missing.contains("--identity") && missing.contains(IDENTITY_FILE_VAR),
        "{missing}"
    );

    identities(&[&eve]).unwrap();
    let wrong = opened(&ciphertext).unwrap_err().to_string();
    assert!(wrong.contains("none of the identities"), "{wrong}");

    for key in [&alice, &bob] {
        identities(&[&eve, key]).unwrap();
        assert_eq!(opened(&ciphertext).unwrap(), b"secret table marker");
    }

    let mut cut = ciphertext.clone();
    cut.truncate(cut.len() - 5);
    assert!(opened(&cut).is_err());
    let mut flipped = ciphertext.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 1;
    assert!(opened(&flipped).is_err());
    assert!(opened(b"not age at all")
        .unwrap_err()
        .to_string()
        .contains("not a readable age file"));
}

#[test]
fn a_secret_key_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "host.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let Err(UsageError(err)) = read_identity_file(&key) else {
        panic!("the key file was accepted")
    };
    assert!(err.contains("chmod 600") && err.contains("0644"), "{err}");
}

#[test]
fn keygen_never_overwrites_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "host.key");
    let before = fs::read(&key).unwrap();
    let err = generate(&key).unwrap_err().to_string();
    assert!(err.contains("never overwrites"), "{err}");
    assert_eq!(fs::read(&key).unwrap(), before);
}

#[test]
fn a_recipient_that_is_not_a_public_key_is_a_usage_error() {
    let args = SealArgs {
        recipient: vec!["age1nope".into()],
        ..SealArgs::default()
    };
    let err = args.encryption().unwrap_err();
    assert!(err.downcast_ref::<UsageError>().is_some());
    assert!(
        err.to_string().contains("is not an age public key"),
        "{err}"
    );
}

#[test]
fn a_secret_key_line_is_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("broken.key");
    fs::write(&key, "AGE-SECRET-KEY-1SECRETBUTBROKEN\n").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let Err(UsageError(err)) = read_identity_file(&key) else {
        panic!("the key file was accepted")
    };
    assert!(
        err.contains("line 1") && !err.contains("SECRETBUTBROKEN"),
        "{err}"
    );
}
