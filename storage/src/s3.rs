//! The S3 backend, on opendal: it signs, retries with backoff and uploads
//! in parts; this module only gives it a blocking face and says its errors
//! in a user's terms.
//!
//! Credentials, region and endpoint come from the standard AWS variables
//! and files (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_PROFILE` with `~/.aws/credentials` and
//! `~/.aws/config`, `AWS_REGION`, `AWS_ENDPOINT_URL`). Requests use path
//! style (`ENDPOINT/BUCKET/KEY`), which self-hosted servers need; the region
//! defaults to us-east-1, which they ignore. The instance metadata service
//! is not asked: on a machine without one that would only add a long wait
//! to a missing-credentials error.
//!
//! Uploads go out in parts of [`PART`] bytes, up to [`PARTS_IN_FLIGHT`] at
//! once, while the producer goes on; memory is bounded by those. An upload
//! dropped before commit is aborted, so nothing appears under its name.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::place::ObjectPath;
use crate::{Mode, Object, Upload};

/// Bytes per uploaded part: S3 allows 10,000 parts, so an object may be up
/// to 156 GiB.
pub const PART: usize = 16 << 20;
/// Bytes per ranged read.
pub const RANGE: usize = 8 << 20;
/// Parts uploading at once behind a writer.
pub const PARTS_IN_FLIGHT: usize = 3;

struct Bucket {
    name: String,
    op: Operator,
}

pub(crate) fn runtime() -> io::Result<&'static Runtime> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ops-s3")
                .enable_all()
                .build()
                .map_err(|err| err.to_string())
        })
        .as_ref()
        .map_err(|err| io::Error::other(format!("cannot start the S3 client: {err}")))
}

fn bucket(name: &str) -> io::Result<Arc<Bucket>> {
    static BUCKETS: OnceLock<Mutex<HashMap<String, Arc<Bucket>>>> = OnceLock::new();
    let mut buckets = BUCKETS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(bucket) = buckets.get(name) {
        return Ok(Arc::clone(bucket));
    }
    let mut builder = opendal::services::S3::default()
        .bucket(name)
        .root("/")
        .disable_ec2_metadata();
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        builder = builder.region("us-east-1");
    }
    let op = Operator::new(builder)
        .map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot use bucket {name}: {}", err.message()),
            )
        })?
        .layer(
            TimeoutLayer::new()
                .with_timeout(Duration::from_secs(300))
                .with_io_timeout(Duration::from_secs(120)),
        )
        .layer(
            RetryLayer::new()
                .with_jitter()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(4))
                .with_max_times(5),
        );
    let bucket = Arc::new(Bucket {
        name: name.to_owned(),
        op,
    });
    buckets.insert(name.to_owned(), Arc::clone(&bucket));
    Ok(bucket)
}

pub fn list(place: &ObjectPath) -> io::Result<Vec<Object>> {
    let bucket = bucket(&place.bucket)?;
    let prefix = if place.key.is_empty() {
        String::new()
    } else {
        format!("{}/", place.key)
    };
    let entries = runtime()?
        .block_on(bucket.op.list_with(&prefix).recursive(false).into_future())
        .map_err(|err| say(&err, place, &bucket, true))?;
    let mut objects = Vec::new();
    for entry in entries {
        let Some(name) = entry.path().strip_prefix(&prefix) else {
            continue;
        };
        let dir = name.ends_with('/');
        let name = name.trim_end_matches('/');
        if name.is_empty() {
            continue;
        }
        let meta = entry.metadata();
        objects.push(Object {
            name: name.to_owned(),
            size: meta.content_length(),
            modified: meta.last_modified().map(Timestamp::from),
            regular: !dir,
        });
    }
    Ok(objects)
}

pub fn list_deep(place: &ObjectPath) -> io::Result<Vec<Object>> {
    let bucket = bucket(&place.bucket)?;
    let prefix = if place.key.is_empty() {
        String::new()
    } else {
        format!("{}/", place.key)
    };
    let entries = runtime()?
        .block_on(bucket.op.list_with(&prefix).recursive(true).into_future())
        .map_err(|err| say(&err, place, &bucket, true))?;
    Ok(entries
        .into_iter()
        .filter_map(|entry| {
            let name = entry.path().strip_prefix(&prefix)?;
            if name.is_empty() || name.ends_with('/') {
                return None;
            }
            let meta = entry.metadata();
            Some(Object {
                name: name.to_owned(),
                size: meta.content_length(),
                modified: meta.last_modified().map(Timestamp::from),
                regular: true,
            })
        })
        .collect())
}

pub fn read_range(place: &ObjectPath, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let bucket = bucket(&place.bucket)?;
    fetch(runtime()?, &bucket, place, offset, offset + len)
}

/// Bytes `start..end` of an object, received straight into memory of that
/// size (not gathered first and then copied).
fn fetch(
    runtime: &Runtime,
    bucket: &Bucket,
    place: &ObjectPath,
    start: u64,
    end: u64,
) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity((end - start) as usize);
    runtime
        .block_on(async {
            let reader = bucket.op.reader(&place.key).await?;
            reader.read_into(&mut bytes, start..end).await
        })
        .map_err(|err| say(&err, place, bucket, false))?;
    Ok(bytes)
}

pub fn stat(place: &ObjectPath) -> io::Result<Option<Object>> {
    let bucket = bucket(&place.bucket)?;
    match runtime()?.block_on(bucket.op.stat(&place.key)) {
        Ok(meta) => Ok(Some(Object {
            name: place.key.rsplit('/').next().unwrap_or_default().to_owned(),
            size: meta.content_length(),
            modified: meta.last_modified().map(Timestamp::from),
            regular: meta.is_file(),
        })),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(say(&err, place, &bucket, false)),
    }
}

pub fn delete(place: &ObjectPath) -> io::Result<()> {
    let bucket = bucket(&place.bucket)?;
    runtime()?
        .block_on(bucket.op.delete(&place.key))
        .map_err(|err| say(&err, place, &bucket, false))
}

pub fn read_ends(place: &ObjectPath, head: u64, tail: u64) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let bucket = bucket(&place.bucket)?;
    let runtime = runtime()?;
    let size = runtime
        .block_on(bucket.op.stat(&place.key))
        .map_err(|err| say(&err, place, &bucket, false))?
        .content_length();
    let range = |start: u64, end: u64| -> io::Result<Vec<u8>> {
        if start >= end {
            return Ok(Vec::new());
        }
        fetch(runtime, &bucket, place, start, end)
    };
    let first = range(0, head.min(size))?;
    let last = range(size - tail.min(size), size)?;
    Ok((first, last))
}

pub fn open(place: &ObjectPath) -> io::Result<Box<dyn Read + Send>> {
    let bucket = bucket(&place.bucket)?;
    let size = runtime()?
        .block_on(bucket.op.stat(&place.key))
        .map_err(|err| say(&err, place, &bucket, false))?
        .content_length();
    let mut reader = Download {
        bucket,
        place: place.clone(),
        size,
        next: 0,
        ahead: None,
        current: Bytes::new(),
    };
    reader.fetch_ahead()?;
    Ok(Box::new(reader))
}

/// Reads an object in ranges of [`RANGE`] bytes, one range ahead of the
/// reader, and checks each range has the length it asked for.
struct Download {
    bucket: Arc<Bucket>,
    place: ObjectPath,
    size: u64,
    next: u64,
    ahead: Option<(u64, JoinHandle<opendal::Result<opendal::Buffer>>)>,
    current: Bytes,
}

impl Download {
    fn fetch_ahead(&mut self) -> io::Result<()> {
        if self.next >= self.size {
            return Ok(());
        }
        let end = (self.next + RANGE as u64).min(self.size);
        let op = self.bucket.op.clone();
        let key = self.place.key.clone();
        let start = self.next;
        let task = runtime()?.spawn(async move { op.read_with(&key).range(start..end).await });
        self.ahead = Some((end - start, task));
        self.next = end;
        Ok(())
    }
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.current.is_empty() {
            let Some((wanted, task)) = self.ahead.take() else {
                return Ok(0);
            };
            let got = runtime()?
                .block_on(task)
                .map_err(io::Error::other)?
                .map_err(|err| say(&err, &self.place, &self.bucket, false))?;
            if got.len() as u64 != wanted {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: the download was cut short ({} of {wanted} bytes of a range)",
                        self.place,
                        got.len()
                    ),
                ));
            }
            self.current = got.to_bytes();
            self.fetch_ahead()?;
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

pub fn write(place: &ObjectPath, mode: Mode, bytes: Vec<u8>) -> io::Result<()> {
    if mode == Mode::New && stat(place)?.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{place} exists already"),
        ));
    }
    let bucket = bucket(&place.bucket)?;
    runtime()?
        .block_on(bucket.op.write(&place.key, Bytes::from(bytes)))
        .map(drop)
        .map_err(|err| say(&err, place, &bucket, false))
}

pub fn create(place: &ObjectPath, mode: Mode) -> io::Result<Box<dyn Upload>> {
    if mode == Mode::New && stat(place)?.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{place} exists already"),
        ));
    }
    let bucket = bucket(&place.bucket)?;
    let writer = runtime()?
        .block_on(
            bucket
                .op
                .writer_with(&place.key)
                .chunk(PART)
                .concurrent(PARTS_IN_FLIGHT)
                .into_future(),
        )
        .map_err(|err| say(&err, place, &bucket, false))?;
    Ok(Box::new(S3Upload {
        bucket,
        place: place.clone(),
        writer: Some(writer),
        pending: Vec::with_capacity(PART),
    }))
}

struct S3Upload {
    bucket: Arc<Bucket>,
    place: ObjectPath,
    writer: Option<opendal::Writer>,
    pending: Vec<u8>,
}

impl S3Upload {
    fn send(&mut self) -> io::Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(io::Error::other("upload already ended"));
        };
        let part = Bytes::from(std::mem::replace(
            &mut self.pending,
            Vec::with_capacity(PART),
        ));
        let sent = runtime()?.block_on(writer.write(part));
        sent.map_err(|err| {
            // A lost part must not let later writes and a commit go on.
            if let Some(mut writer) = self.writer.take() {
                let _ = runtime().map(|runtime| runtime.block_on(writer.abort()));
            }
            say(&err, &self.place, &self.bucket, false)
        })
    }
}

impl Write for S3Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(PART - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == PART {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Upload for S3Upload {
    fn commit(mut self: Box<Self>) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.send()?;
        }
        let Some(mut writer) = self.writer.take() else {
            return Err(io::Error::other("upload already ended"));
        };
        let runtime = runtime()?;
        runtime.block_on(writer.close()).map(drop).map_err(|err| {
            let _ = runtime.block_on(writer.abort());
            say(&err, &self.place, &self.bucket, false)
        })
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        if let (Some(mut writer), Ok(runtime)) = (self.writer.take(), runtime()) {
            let _ = runtime.block_on(writer.abort());
        }
    }
}

/// An S3 error in the user's terms, with what to do; never a credential.
fn say(err: &opendal::Error, place: &ObjectPath, bucket: &Bucket, listing: bool) -> io::Error {
    let name = &bucket.name;
    let no_bucket = err.to_string().contains("NoSuchBucket");
    let (kind, text) = match err.kind() {
        _ if no_bucket || (listing && err.kind() == ErrorKind::NotFound) => (
            io::ErrorKind::NotFound,
            format!(
                "bucket {name} does not exist (or these credentials cannot see it); \
                 create it first (aws s3 mb s3://{name}): we never create buckets"
            ),
        ),
        ErrorKind::NotFound => (io::ErrorKind::NotFound, format!("{place}: no such object")),
        ErrorKind::PermissionDenied => (
            io::ErrorKind::PermissionDenied,
            format!(
                "{place}: access denied by the S3 server; check AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket's policy"
            ),
        ),
        ErrorKind::ConfigInvalid => (
            io::ErrorKind::InvalidInput,
            format!("{place}: {}", err.message()),
        ),
        _ if err.is_temporary() || err.is_persistent() => (
            io::ErrorKind::Other,
            format!(
                "{place}: the S3 server at {} did not answer or kept failing ({}); \
                 check AWS_ENDPOINT_URL and that the server runs, then run again",
                endpoint(),
                brief(err)
            ),
        ),
        _ => (io::ErrorKind::Other, format!("{place}: {}", brief(err))),
    };
    io::Error::new(kind, text)
}

/// The endpoint as configured, without any `user:password@`.
fn endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) => without_userinfo(url),
        Err(_) => "the default AWS endpoint".into(),
    }
}

pub(crate) fn without_userinfo(url: String) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}{path}")
}

/// The error's message and its innermost cause, without the request
/// context opendal appends, cut to a line: a body that is not S3's XML is
/// the server's own text, and a proxy may echo a request's headers in it.
fn brief(err: &opendal::Error) -> String {
    let mut cause = std::error::Error::source(err);
    let mut last = None;
    while let Some(inner) = cause {
        last = Some(inner.to_string());
        cause = inner.source();
    }
    let text = match last {
        Some(last) => format!("{}: {last}", err.message()),
        None => err.message().to_owned(),
    };
    let line: String = text
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    if line.trim().is_empty() {
        "the server gave no reason; check the bucket name and AWS_REGION".into()
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_shown_without_credentials() {
        let shown = |url: &str| without_userinfo(url.to_owned());
        assert_eq!(shown("http://127.0.0.1:8333"), "http://127.0.0.1:8333");
        assert_eq!(
            shown("https://key:secret@s3.example/x"),
            "https://s3.example/x"
        );
        assert_eq!(shown("http://a@b@host:1"), "http://host:1");
        assert_eq!(shown("host:1"), "host:1");
    }
}
