//! Reading a path as a place: `s3://BUCKET/KEY` or a local path.
//!
//! An S3 path is checked for shape before any request: a bucket name as S3
//! allows it, and a key of plain segments (no empty, `.` or `..` segment, no
//! control characters), so a name from a record cannot address another
//! bucket or a surprising key.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

const SCHEME: &str = "s3://";

/// A local path, or an object (or prefix) in a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    Local(PathBuf),
    S3(ObjectPath),
}

/// `s3://bucket/key`: `key` has no leading or trailing `/` and is empty for
/// the bucket's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectPath {
    pub bucket: String,
    pub key: String,
}

pub(crate) fn is_s3(path: &Path) -> bool {
    path.as_os_str()
        .as_encoded_bytes()
        .starts_with(SCHEME.as_bytes())
}

impl Place {
    /// Fails (`InvalidInput`) for an `s3://` path of the wrong shape.
    pub fn of(path: &Path) -> io::Result<Place> {
        if !is_s3(path) {
            return Ok(Place::Local(path.to_owned()));
        }
        let text = path.to_str().ok_or_else(|| invalid(path, "is not UTF-8"))?;
        let rest = &text[SCHEME.len()..];
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if !is_bucket_name(bucket) {
            return Err(invalid(
                path,
                "does not start with a valid bucket name (3 to 63 of a-z, 0-9, '.', '-')",
            ));
        }
        let key = key.trim_end_matches('/');
        if !key.is_empty() && !key.split('/').all(is_plain_segment) {
            return Err(invalid(
                path,
                "has an empty, '.' or '..' segment or a control character",
            ));
        }
        Ok(Place::S3(ObjectPath {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }))
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.bucket, self.key)
    }
}

fn is_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !name.starts_with(['.', '-'])
        && !name.ends_with(['.', '-'])
}

fn is_plain_segment(segment: &str) -> bool {
    !matches!(segment, "" | "." | "..") && !segment.chars().any(char::is_control)
}

fn invalid(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} {why}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s3(text: &str) -> io::Result<Place> {
        Place::of(Path::new(text))
    }

    #[test]
    fn s3_paths_name_a_bucket_and_a_key() {
        let place = s3("s3://backups/web01/data_x.tar.zst").unwrap();
        let Place::S3(object) = place else {
            unreachable!()
        };
        assert_eq!(object.bucket, "backups");
        assert_eq!(object.key, "web01/data_x.tar.zst");
        assert_eq!(object.to_string(), "s3://backups/web01/data_x.tar.zst");
        let Place::S3(root) = s3("s3://backups/").unwrap() else {
            unreachable!()
        };
        assert_eq!(root.key, "");
    }

    #[test]
    fn path_arithmetic_keeps_the_url() {
        let dir = Path::new("s3://backups/web01");
        let artifact = dir.join("x.tar.zst");
        assert_eq!(artifact, Path::new("s3://backups/web01/x.tar.zst"));
        assert_eq!(artifact.parent(), Some(dir));
        assert_eq!(artifact.file_name().unwrap(), "x.tar.zst");
    }

    #[test]
    fn badly_shaped_s3_paths_are_refused() {
        for bad in [
            "s3://",
            "s3://ab/x",
            "s3://Backups/x",
            "s3://backups/../other",
            "s3://backups/a//b",
            "s3://backups/./b",
            "s3://backups/a\nb",
        ] {
            let err = s3(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn other_paths_are_local() {
        assert_eq!(
            s3("backups/s3:/x").unwrap(),
            Place::Local(PathBuf::from("backups/s3:/x"))
        );
    }
}
