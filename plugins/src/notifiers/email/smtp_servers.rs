//! Real SMTP servers on loopback for the email notifier's tests.
//!
//! Shared by the plugin's unit tests and the CLI's integration tests
//! (`cli/tests/notifier_email.rs` includes this file with `#[path]`), so it
//! uses nothing but std and `tempfile`. The servers are Debian's `aiosmtpd`
//! (package `python3-aiosmtpd`, run with `/usr/bin/python3`), delivering
//! into a Maildir that the tests read back. Every wait is bounded and every
//! process is killed when its handle is dropped.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The Python that sees Debian's `aiosmtpd`.
pub const PYTHON: &str = "/usr/bin/python3";

/// The one login the authenticating servers accept.
pub const LOGIN: &str = "alerts@example.com";
pub const PASSWORD: &str = "correct-horse-battery-staple";

/// How long a server may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Local parts the scripted servers refuse at RCPT: for good, and for now.
pub const REJECTED_RECIPIENT: &str = "rejected@example.com";
pub const BUSY_RECIPIENT: &str = "busy@example.com";

/// The scripted servers. Three listeners on ports the system picks:
/// plain (no TLS, no AUTH, refuses two recipients), STARTTLS with AUTH
/// required, implicit TLS with AUTH required. Their ports are written to
/// the ready file, through a rename so that a reader never sees half.
const SERVERS_PY: &str = r#"
import asyncio, os, ssl, sys
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

cert, key, maildir, ready, login, password = sys.argv[1:7]
LOGIN, PASSWORD = login.encode(), password.encode()

class Recipients(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local == "rejected":
            return "550 5.1.1 no such mailbox here"
        if local == "busy":
            return "451 4.2.1 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == LOGIN and auth_data.password == PASSWORD)
    # handled=False: aiosmtpd itself answers a failure (535); with True
    # it would answer nothing and leave the client waiting.
    return AuthResult(success=ok, handled=False)

async def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    handler = Recipients(maildir)
    loop = asyncio.get_running_loop()
    host = "127.0.0.1"
    plain = await loop.create_server(lambda: SMTP(handler, hostname="localhost"), host, 0)
    starttls = await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", tls_context=ctx, require_starttls=True,
                     auth_required=True, auth_require_tls=True, authenticator=authenticator),
        host, 0)
    # aiosmtpd 1.4 does not count a TLS-wrapped socket as encrypted, so
    # auth_require_tls would refuse AUTH on the implicit-TLS port.
    implicit = await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", auth_required=True,
                     auth_require_tls=False, authenticator=authenticator),
        host, 0, ssl=ctx)
    ports = [s.sockets[0].getsockname()[1] for s in (plain, starttls, implicit)]
    with open(ready + ".tmp", "w") as f:
        f.write(" ".join(str(p) for p in ports) + "\n")
    os.rename(ready + ".tmp", ready)
    await asyncio.Event().wait()

asyncio.run(main())
"#;

/// One delivered message, as the server stored it.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Header fields in order, continuation lines unfolded.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub raw: String,
}

impl Mail {
    fn parse(raw: String) -> Mail {
        let text = raw.replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        Mail {
            headers,
            body: body.to_string(),
            raw,
        }
    }

    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The messages in `maildir/new`, oldest file name first.
pub fn read_maildir(maildir: &Path) -> Vec<Mail> {
    let Ok(entries) = fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .map(Mail::parse)
        .collect()
}

/// Waits (bounded) until `maildir` holds at least `count` messages.
pub fn wait_for_mail(maildir: &Path, count: usize, limit: Duration) -> Vec<Mail> {
    let start = Instant::now();
    loop {
        let mails = read_maildir(maildir);
        if mails.len() >= count || start.elapsed() > limit {
            return mails;
        }
        sleep(Duration::from_millis(20));
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

fn spawn_logged(command: &mut Command, log: &Path) -> Child {
    let out = fs::File::create(log).expect("server log");
    let err = out.try_clone().expect("server log");
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {PYTHON}: {e} (install python3-aiosmtpd)"))
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether an SMTP server answers on `port` with its 220 greeting.
fn greets(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    let greeted = BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with("220");
    let _ = (&stream).write_all(b"QUIT\r\n");
    greeted
}

/// `aiosmtpd` run from its command line: plain SMTP on loopback, no TLS,
/// no authentication, delivering into a Maildir.
pub struct PlainServer {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

impl PlainServer {
    pub fn start() -> PlainServer {
        let dir = tempfile::tempdir().expect("temp dir");
        // The port is chosen before the server binds it, so another
        // process may take it in between: then the server exits, and we
        // try another.
        for _ in 0..5 {
            let port = free_port();
            let maildir = dir.path().join("Maildir");
            let mut child = spawn_logged(
                Command::new(PYTHON)
                    .args(["-m", "aiosmtpd", "-n", "-l"])
                    .arg(format!("127.0.0.1:{port}"))
                    .args(["-c", "aiosmtpd.handlers.Mailbox"])
                    .arg(&maildir),
                &dir.path().join("server.log"),
            );
            let start = Instant::now();
            while start.elapsed() < START_LIMIT {
                if greets(port) {
                    return PlainServer { dir, child, port };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                sleep(Duration::from_millis(25));
            }
            stop(&mut child);
        }
        let log = fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        panic!("aiosmtpd did not start listening; its output:\n{log}");
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("Maildir")
    }

    pub fn wait_for_mail(&self, count: usize) -> Vec<Mail> {
        wait_for_mail(&self.maildir(), count, Duration::from_secs(10))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for PlainServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// The scripted servers (see [`SERVERS_PY`]) with a certificate for
/// 127.0.0.1 and localhost made for them.
pub struct SecureServers {
    dir: tempfile::TempDir,
    child: Child,
    /// No TLS, no AUTH; refuses [`REJECTED_RECIPIENT`] (550) and
    /// [`BUSY_RECIPIENT`] (451).
    pub plain: u16,
    /// STARTTLS required, then AUTH with [`LOGIN`] / [`PASSWORD`].
    pub starttls: u16,
    /// TLS from the first byte, then AUTH with [`LOGIN`] / [`PASSWORD`].
    pub implicit: u16,
}

impl SecureServers {
    pub fn start() -> SecureServers {
        SecureServers::start_with(false)
    }

    /// The servers with a self-signed certificate that also says it is a
    /// CA, as `openssl req -x509` makes by default.
    pub fn start_with_ca_certificate() -> SecureServers {
        SecureServers::start_with(true)
    }

    fn start_with(ca_certificate: bool) -> SecureServers {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name);
        let openssl = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .arg("-keyout")
            .arg(path("key.pem"))
            .arg("-out")
            .arg(path("cert.pem"))
            .args(["-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            // A certificate that is its own trust anchor must not also say
            // it is a CA: webpki refuses a CA certificate as a server's.
            .args(if ca_certificate {
                ["-addext", "basicConstraints=critical,CA:TRUE"]
            } else {
                ["-addext", "basicConstraints=critical,CA:FALSE"]
            })
            .output()
            .expect("run openssl (install openssl)");
        assert!(
            openssl.status.success(),
            "openssl req failed: {}",
            String::from_utf8_lossy(&openssl.stderr)
        );
        fs::write(path("servers.py"), SERVERS_PY).expect("write servers.py");

        let ready = path("ready");
        let mut child = spawn_logged(
            Command::new(PYTHON)
                .arg(path("servers.py"))
                .arg(path("cert.pem"))
                .arg(path("key.pem"))
                .arg(path("Maildir"))
                .arg(&ready)
                .args([LOGIN, PASSWORD]),
            &path("server.log"),
        );
        let start = Instant::now();
        let ports = loop {
            if let Ok(text) = fs::read_to_string(&ready) {
                break text;
            }
            let exited = child.try_wait().ok().flatten().is_some();
            if exited || start.elapsed() > START_LIMIT {
                stop(&mut child);
                let log = fs::read_to_string(path("server.log")).unwrap_or_default();
                panic!("the SMTP test servers did not start; their output:\n{log}");
            }
            sleep(Duration::from_millis(25));
        };
        let ports: Vec<u16> = ports
            .split_whitespace()
            .map(|p| p.parse().expect("a port number"))
            .collect();
        SecureServers {
            plain: ports[0],
            starttls: ports[1],
            implicit: ports[2],
            dir,
            child,
        }
    }

    /// The server certificate, for a client to trust.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("Maildir")
    }

    pub fn wait_for_mail(&self, count: usize) -> Vec<Mail> {
        wait_for_mail(&self.maildir(), count, Duration::from_secs(10))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for SecureServers {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
