//! Multipart uploads that never finished: a run killed mid-upload leaves
//! its parts on the server, invisible to listings and billed all the same.
//!
//! opendal aborts the uploads it starts but cannot list others, so these
//! two requests (ListMultipartUploads, AbortMultipartUpload) are sent here:
//! signed by reqsign (opendal's own signer, with the same credential chain:
//! variables, profile files, no instance metadata) and sent by opendal's
//! HTTP transport, in path style as every other request.

use std::io;
use std::time::Duration;

use jiff::Timestamp;
use opendal::{Buffer, HttpTransporter};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqsign_aws_v4::{DefaultCredentialProvider, RequestSigner, EMPTY_STRING_SHA256};
use reqsign_core::{Context, OsEnv, Signer};
use reqsign_file_read_tokio::TokioFileRead;
use serde::Deserialize;

use crate::place::ObjectPath;

/// An upload started and neither completed nor aborted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unfinished {
    /// The object it would have made, relative to the listed place.
    pub name: String,
    pub started: Option<Timestamp>,
    upload_id: String,
}

/// What S3 keeps unescaped in a query value or a path segment.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listing {
    #[serde(default)]
    upload: Vec<Upload>,
    #[serde(default)]
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_upload_id_marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Upload {
    key: String,
    #[serde(rename = "UploadId")]
    id: String,
    initiated: Option<String>,
}

fn region() -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "us-east-1".into())
}

/// How long one of these requests may take.
const TIMEOUT: Duration = Duration::from_secs(60);

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", region()))
        .trim_end_matches('/')
        .to_owned()
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// Sends one signed request with an empty body; the response body.
async fn send(method: http::Method, url: &str) -> io::Result<(http::StatusCode, Vec<u8>)> {
    let ctx = Context::new().with_file_read(TokioFileRead).with_env(OsEnv);
    let provider = DefaultCredentialProvider::builder().no_imds().build();
    let signer = Signer::new(ctx, provider, RequestSigner::new("s3", &region()));
    let (mut parts, ()) = http::Request::builder()
        .method(method)
        .uri(url)
        .header("x-amz-content-sha256", EMPTY_STRING_SHA256)
        .body(())
        .map_err(io::Error::other)?
        .into_parts();
    signer
        .sign(&mut parts, None)
        .await
        .map_err(|err| io::Error::other(format!("cannot sign the request: {err}")))?;
    let request = http::Request::from_parts(parts, Buffer::new());
    let unanswered = |why: &str| {
        io::Error::other(format!(
            "the S3 server at {} did not answer ({why}); check AWS_ENDPOINT_URL",
            crate::s3::without_userinfo(endpoint())
        ))
    };
    let response = tokio::time::timeout(TIMEOUT, HttpTransporter::default().send(request))
        .await
        .map_err(|_| unanswered("no answer within a minute"))?
        .map_err(|err| unanswered(&err.kind().to_string()))?;
    Ok((response.status(), response.into_body().to_vec()))
}

fn failed(place: &ObjectPath, what: &str, status: http::StatusCode, body: &[u8]) -> io::Error {
    let text = String::from_utf8_lossy(body);
    let code: String = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or("", |(code, _)| code)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect();
    let kind = match status.as_u16() {
        403 => io::ErrorKind::PermissionDenied,
        404 => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{place}: {what} failed: {status} {code}"))
}

/// The unfinished uploads of objects directly in the place `place`.
pub fn list(place: &ObjectPath) -> io::Result<Vec<Unfinished>> {
    let prefix = if place.key.is_empty() {
        String::new()
    } else {
        format!("{}/", place.key)
    };
    let mut found = Vec::new();
    let mut markers = String::new();
    loop {
        let url = format!(
            "{}/{}?delimiter=%2F&prefix={}&uploads={markers}",
            endpoint(),
            place.bucket,
            encode(&prefix)
        );
        let runtime = crate::s3::runtime()?;
        let (status, body) = runtime.block_on(send(http::Method::GET, &url))?;
        if !status.is_success() {
            return Err(failed(place, "listing unfinished uploads", status, &body));
        }
        let listing: Listing = quick_xml::de::from_reader(&body[..]).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{place}: the list of unfinished uploads is not S3's XML"),
            )
        })?;
        for upload in listing.upload {
            let Some(name) = upload.key.strip_prefix(&prefix) else {
                continue;
            };
            if name.is_empty() || name.contains('/') {
                continue;
            }
            found.push(Unfinished {
                name: name.to_owned(),
                started: upload.initiated.and_then(|time| time.parse().ok()),
                upload_id: upload.id,
            });
        }
        match (listing.is_truncated, listing.next_key_marker) {
            (true, Some(key)) => {
                markers = format!(
                    "&key-marker={}&upload-id-marker={}",
                    encode(&key),
                    encode(&listing.next_upload_id_marker.unwrap_or_default())
                );
            }
            _ => break,
        }
    }
    Ok(found)
}

/// Aborts `upload`, found in the place `place`: its parts are deleted.
pub fn abort(place: &ObjectPath, upload: &Unfinished) -> io::Result<()> {
    let key = if place.key.is_empty() {
        upload.name.clone()
    } else {
        format!("{}/{}", place.key, upload.name)
    };
    // The name came from the server: checked as any key is.
    let url = std::path::PathBuf::from(format!("s3://{}/{key}", place.bucket));
    crate::Place::of(&url)?;
    let path: Vec<String> = key.split('/').map(encode).collect();
    let url = format!(
        "{}/{}/{}?uploadId={}",
        endpoint(),
        place.bucket,
        path.join("/"),
        encode(&upload.upload_id)
    );
    let (status, body) = crate::s3::runtime()?.block_on(send(http::Method::DELETE, &url))?;
    match status.as_u16() {
        200..=299 | 404 => Ok(()),
        _ => Err(failed(
            place,
            "aborting an unfinished upload",
            status,
            &body,
        )),
    }
}
