//! Paths as JSON strings, losslessly.
//!
//! A path that is valid UTF-8 is written as itself, so `jq -r .path` gives the
//! path a shell expects. A path that is not valid UTF-8 cannot be a JSON
//! string as is; it is written as a NUL character (which no path can contain)
//! followed by an escaped form: each byte of an invalid sequence becomes
//! `\xNN` and a backslash becomes `\\`. Reading reverses this exactly.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

const MARKER: char = '\0';

/// The JSON text of a path.
pub fn encode(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    out.push(MARKER);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The path a JSON text stands for.
///
/// Fails when the text starts with the non-UTF-8 marker but is not a valid
/// escaped form.
pub fn decode(text: &str) -> Result<PathBuf, String> {
    let Some(escaped) = text.strip_prefix(MARKER) else {
        return Ok(PathBuf::from(text));
    };
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('\\') => bytes.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = u8::from_str_radix(&hex, 16)
                    .map_err(|_| format!("bad escape \\x{hex} in path {text:?}"))?;
                bytes.push(byte);
            }
            other => return Err(format!("bad escape {other:?} in path {text:?}")),
        }
    }
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

/// `#[serde(with = "ops_shared::path_text")]` for `PathBuf` fields.
pub fn serialize<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&encode(path))
}

/// `#[serde(with = "ops_shared::path_text")]` for `PathBuf` fields.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let text: String = serde::Deserialize::deserialize(d)?;
    decode(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn utf8_paths_are_written_as_themselves() {
        assert_eq!(encode(Path::new("a/b c/ü\\x41.txt")), "a/b c/ü\\x41.txt");
    }

    #[test]
    fn invalid_bytes_are_escaped_after_the_marker() {
        let path = PathBuf::from(OsString::from_vec(b"a\\b\xff.txt".to_vec()));
        assert_eq!(encode(&path), "\0a\\\\b\\xff.txt");
    }

    proptest! {
        #[test]
        fn every_path_round_trips(bytes in proptest::collection::vec(1u8..=255, 0..40)) {
            let path = PathBuf::from(OsString::from_vec(bytes));
            let json = serde_json::to_string(&encode(&path)).unwrap();
            let text: String = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(decode(&text).unwrap(), path);
        }
    }
}
