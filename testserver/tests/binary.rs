//! Runs the `kalshi-test-server` binary: it must announce its URL on stdout and then serve.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// Kills the server when the test ends, even if an assertion failed.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to the binary's server");
    let head = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn binary_prints_its_url_and_serves_all_generations() {
    let child = Command::new(env!("CARGO_BIN_EXE_kalshi-test-server"))
        .args(["--port", "0", "--generation", "all"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start kalshi-test-server");
    let mut server = Running(child);
    let mut line = String::new();
    let stdout = server.0.stdout.take().unwrap();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let (address, base_path) = base.split_once('/').unwrap();
    assert!(address.starts_with("127.0.0.1:"));
    assert_eq!(base_path, "trade-api/v2");

    let response = get(address, "/trade-api/v2/markets?limit=1000");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split_once("\r\n\r\n").unwrap().1;
    let page: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(page["markets"].as_array().unwrap().len(), 301);
    assert_eq!(page["cursor"], "");
}

#[test]
fn binary_rejects_an_unknown_generation() {
    let status = Command::new(env!("CARGO_BIN_EXE_kalshi-test-server"))
        .args(["--generation", "future"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}
