//! A server that is there but unwell, or watched: a proxy on 127.0.0.1 in
//! front of the real S3 server that answers its first requests with
//! `503 Slow Down`, as S3 does under load, passes the rest through
//! untouched (one request per connection) and keeps every request line.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// The proxy; it runs until the test binary exits.
pub struct Proxy {
    addr: SocketAddr,
    refused: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
    <Message>Please reduce your request rate.</Message></Error>";

impl Proxy {
    /// Answers the first `failures` requests with 503, then forwards to
    /// `upstream` (`http://host:port`).
    pub fn start(upstream: &str, failures: usize) -> Proxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let refused = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (counter, seen) = (Arc::clone(&refused), Arc::clone(&requests));
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (counter, seen) = (Arc::clone(&counter), Arc::clone(&seen));
                thread::spawn(move || serve(client, upstream, failures, &counter, &seen));
            }
        });
        Proxy {
            addr,
            refused,
            requests,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests were answered 503.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// The request lines seen so far (`GET /bucket/key?... HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    failures: usize,
    refused: &AtomicUsize,
    seen: &Mutex<Vec<String>>,
) {
    let Some(request) = read_request(&mut client) else {
        return;
    };
    let request = one_per_connection(&request);
    let line = String::from_utf8_lossy(&request);
    seen.lock()
        .unwrap()
        .push(line.lines().next().unwrap_or_default().to_owned());
    if refused.fetch_add(1, Ordering::SeqCst) < failures {
        let answer = format!(
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{SLOW_DOWN}",
            SLOW_DOWN.len()
        );
        let _ = client.write_all(answer.as_bytes());
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    refused.fetch_sub(1, Ordering::SeqCst);
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    if server.write_all(&request).is_err() {
        return;
    }
    let (mut from_client, mut to_server) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// The request with `Connection: close`, so the client sends its next
/// request on a new connection, where the proxy sees it.
fn one_per_connection(request: &[u8]) -> Vec<u8> {
    let head_end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(request.len(), |at| at + 2);
    let head = String::from_utf8_lossy(&request[..head_end]);
    let mut out: String = head
        .split_inclusive("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    out.push_str("Connection: close\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&request[head_end..]);
    out
}

/// One request's head and its body (by Content-Length), as sent.
fn read_request(client: &mut TcpStream) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut buf = [0; 8192];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = client.read(&mut buf).ok().filter(|n| *n > 0)?;
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while bytes.len() < head_end + length {
        let n = client.read(&mut buf).ok().filter(|n| *n > 0)?;
        bytes.extend_from_slice(&buf[..n]);
    }
    Some(bytes)
}
