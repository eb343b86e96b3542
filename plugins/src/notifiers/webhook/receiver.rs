//! A webhook receiver for tests: a loopback HTTP/1.1 server, or HTTPS with
//! a self-signed certificate made by openssl, that records every request
//! and answers each from a script of replies.
//!
//! The plugin's unit tests and the CLI's integration tests
//! (`cli/tests/notifier_webhook.rs`, through `#[path]`) share this file, so
//! it uses nothing but `std`, `serde_json` and `rustls` (with its `ring`
//! provider). Every connection gets one request and is closed, and every
//! read has a time limit.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a connection may take to deliver its request.
const READ_LIMIT: Duration = Duration::from_secs(5);
/// A request head larger than this is refused; none of ours comes close.
const HEAD_MAX: usize = 64 * 1024;

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    /// Answers only after `delay` (a receiver that hangs).
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.to_string();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status the receiver answered with. A client that gave up
    /// waiting (a delayed reply) may never have seen it.
    pub answered: u16,
}

impl Request {
    /// The first value of header `name`, matched without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

struct Shared {
    stop: AtomicBool,
    /// Connections accepted, whether or not a request came of them.
    connections: AtomicUsize,
    /// Replies still to give, in order; once empty, every request gets
    /// `rest`.
    script: Mutex<VecDeque<Reply>>,
    rest: Mutex<Reply>,
    requests: Mutex<Vec<Request>>,
}

/// A certificate for 127.0.0.1 and localhost, signed by its own key, with
/// the key, in a temporary directory that lives as long as it does.
pub struct SelfSigned {
    dir: tempfile::TempDir,
}

impl SelfSigned {
    /// A certificate that is not marked as a CA, so that a client can take
    /// it as its own trust anchor (`ca_file`).
    pub fn generate() -> SelfSigned {
        SelfSigned::make("basicConstraints=critical,CA:FALSE")
    }

    /// One marked as a CA, as `openssl req -x509` makes by default: no
    /// client takes it as a server's own.
    pub fn generate_marked_as_ca() -> SelfSigned {
        SelfSigned::make("basicConstraints=critical,CA:TRUE")
    }

    fn make(constraints: &str) -> SelfSigned {
        let dir = tempfile::tempdir().expect("temp dir");
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .arg("-keyout")
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .args(["-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .args(["-addext", constraints])
            .output()
            .expect("run openssl (install openssl)");
        assert!(
            made.status.success(),
            "openssl req failed: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        SelfSigned { dir }
    }

    /// The certificate, PEM: what a client is given to trust.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let chain = vec![CertificateDer::from_pem_file(self.cert_path()).expect("cert.pem")];
        let key = PrivateKeyDer::from_pem_file(self.dir.path().join("key.pem")).expect("key.pem");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a certificate and its key");
        Arc::new(config)
    }
}

/// The running receiver; dropping it stops it.
pub struct Receiver {
    port: u16,
    /// `https` when it speaks TLS.
    scheme: &'static str,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on a free loopback port and answers requests with `script`,
    /// then with 200 `ok`.
    pub fn start(script: impl IntoIterator<Item = Reply>) -> Receiver {
        Receiver::listen(script, None)
    }

    /// The same over TLS, presenting `certificate`.
    pub fn start_tls(
        certificate: &SelfSigned,
        script: impl IntoIterator<Item = Reply>,
    ) -> Receiver {
        Receiver::listen(script, Some(certificate.server_config()))
    }

    fn listen(
        script: impl IntoIterator<Item = Reply>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            script: Mutex::new(script.into_iter().collect()),
            rest: Mutex::new(Reply::status(200).body("ok")),
            requests: Mutex::new(Vec::new()),
        });
        let state = Arc::clone(&shared);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let acceptor = std::thread::spawn(move || accept(listener, state, tls));
        Receiver {
            port,
            scheme,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT` (or `https://`) followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    /// Replaces the replies still to give with `script`.
    pub fn replace_script(&self, script: impl IntoIterator<Item = Reply>) {
        *self.shared.script.lock().unwrap() = script.into_iter().collect();
    }

    /// Answers every request after the script with `reply` (200 `ok` by
    /// default), from now on.
    pub fn answer_rest_with(&self, reply: Reply) {
        *self.shared.rest.lock().unwrap() = reply;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// How many connections were accepted: with no request recorded, each
    /// was dropped before one arrived (a client refusing the certificate).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The requests received once there are `count`, or whatever arrived
    /// within `limit`.
    pub fn wait_for(&self, count: usize, limit: Duration) -> Vec<Request> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.requests();
            if got.len() >= count || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Polls for connections until told to stop, serving each on its own
/// thread; a connection thread ends within [`READ_LIMIT`].
fn accept(listener: TcpListener, shared: Arc<Shared>, tls: Option<Arc<rustls::ServerConfig>>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&shared);
                let tls = tls.clone();
                std::thread::spawn(move || serve(stream, &state, tls));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn serve(mut stream: TcpStream, shared: &Shared, tls: Option<Arc<rustls::ServerConfig>>) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(READ_LIMIT)).is_err()
    {
        return;
    }
    match tls {
        None => answer(&mut stream, shared),
        // The handshake happens on the first read; a client that refuses
        // the certificate ends it there, and no request is recorded.
        Some(config) => {
            let Ok(session) = rustls::ServerConnection::new(config) else {
                return;
            };
            let mut stream = rustls::StreamOwned::new(session, stream);
            answer(&mut stream, shared);
            stream.conn.send_close_notify();
            let _ = stream.flush();
        }
    }
}

fn answer(stream: &mut (impl Read + Write), shared: &Shared) {
    let Some(mut request) = read_request(stream) else {
        return;
    };
    let reply = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| shared.rest.lock().unwrap().clone());
    request.answered = reply.status;
    // Recorded before the answer, so a client that has its response can
    // already see its request here.
    shared.requests.lock().unwrap().push(request);
    if !reply.delay.is_zero() {
        let deadline = Instant::now() + reply.delay;
        while Instant::now() < deadline && !shared.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut head = format!(
        "HTTP/1.1 {} Scripted\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(reply.body.as_bytes());
    let _ = stream.flush();
}

/// Reads one request with a `Content-Length` body (or none).
fn read_request(stream: &mut impl Read) -> Option<Request> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if data.len() > HEAD_MAX {
            return None;
        }
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buffer[..n]);
    };

    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let target = request_line.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);

    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&buffer[..n]);
    }
    body.truncate(length);
    Some(Request {
        method,
        target,
        headers,
        body,
        answered: 0,
    })
}
