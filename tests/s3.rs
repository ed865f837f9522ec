//! The S3 test server itself (tests/support/s3.rs): a real SeaweedFS on
//! 127.0.0.1 that the AWS CLI can use, a second one beside it, and one
//! that is killed and restarted with its data kept.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::net::TcpStream;
use std::process::Output;
use std::time::Instant;

use ops_tests::s3::{server, start, S3Server};
use ops_tests::{pseudo_random, sh};

fn ok(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn refuses_connections(s3: &S3Server) -> bool {
    let address = s3.endpoint().trim_start_matches("http://").to_owned();
    TcpStream::connect(address).is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
}

#[test]
fn a_20_mib_file_goes_up_in_parts_and_comes_back_identical() {
    let started = Instant::now();
    let s3 = server();
    eprintln!("shared S3 server ready after {:?}", started.elapsed());
    let bucket = s3.bucket("Smoke_Test");
    assert!(bucket.starts_with("smoke-test-"), "{bucket}");
    let tmp = tempfile::tempdir().unwrap();
    let original = pseudo_random(20 << 20, 42);
    let up = tmp.path().join("up.bin");
    fs::write(&up, &original).unwrap();
    let key = format!("s3://{bucket}/dir/big.bin");

    ok(
        s3.aws(&["s3", "cp", up.to_str().unwrap(), &key]),
        "aws s3 cp up",
    );
    let head = ok(
        s3.aws(&[
            "s3api",
            "head-object",
            "--bucket",
            &bucket,
            "--key",
            "dir/big.bin",
        ]),
        "head-object",
    );
    let head: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(head["ContentLength"], 20 << 20, "{head}");
    // The CLI uploads files over 8 MiB in 8 MiB parts: an ETag of "MD5-3".
    assert!(
        head["ETag"].as_str().unwrap().ends_with("-3\""),
        "not a multipart upload: {head}"
    );

    let down = tmp.path().join("down.bin");
    ok(
        s3.aws(&["s3", "cp", &key, down.to_str().unwrap()]),
        "aws s3 cp down",
    );
    assert!(fs::read(&down).unwrap() == original, "the download differs");

    let listed = ok(
        s3.aws(&["s3", "ls", &format!("s3://{bucket}/dir/")]),
        "aws s3 ls",
    );
    assert!(listed.contains(" 20971520 big.bin"), "{listed}");

    // A run given the server's environment alone (AWS_ENDPOINT_URL, no
    // --endpoint-url) reaches it too, with the same credentials.
    let aws = s3.aws_path().to_str().unwrap().to_owned();
    let run = sh(&format!("'{aws}' s3 ls s3://{bucket}/dir/"))
        .s3(s3)
        .run()
        .success();
    assert!(run.stdout.contains("big.bin"), "{run:?}");
    assert!(!run.stdout.contains(&s3.secret_key) && !run.stderr.contains(&s3.secret_key));
}

#[test]
fn a_private_server_runs_beside_the_shared_one_and_survives_a_kill() {
    let shared = server();
    let started = Instant::now();
    let mut private = start();
    eprintln!("private S3 server ready after {:?}", started.elapsed());
    assert_ne!(shared.endpoint(), private.endpoint());
    assert_ne!(shared.secret_key, private.secret_key);

    let bucket = private.bucket("private");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("note.txt");
    fs::write(&file, "kept across a kill\n").unwrap();
    let key = format!("s3://{bucket}/note.txt");
    ok(
        private.aws(&["s3", "cp", file.to_str().unwrap(), &key]),
        "cp to private",
    );
    let shared_buckets = ok(shared.aws(&["s3api", "list-buckets"]), "list shared");
    assert!(!shared_buckets.contains(&bucket), "{shared_buckets}");

    private.kill();
    assert!(
        refuses_connections(&private),
        "{} still answers",
        private.endpoint()
    );
    ok(
        shared.aws(&["s3", "ls"]),
        "the shared server after the kill",
    );

    let started = Instant::now();
    private.restart();
    eprintln!("private S3 server restarted after {:?}", started.elapsed());
    let back = ok(private.aws(&["s3", "cp", &key, "-"]), "cp from restarted");
    assert_eq!(back, "kept across a kill\n");

    let dir = private.dir.clone();
    drop(private);
    assert!(!dir.exists(), "{} left behind", dir.display());
}
