//! Shared helpers for the black-box integration tests: spawning the server,
//! raw HTTP over `TcpStream`, an incremental SSE reader and publish helpers.
//! Std only. Every blocking read is bounded by a socket timeout.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

// Shared with the journal's unit tests.
#[path = "../../src/publish/journal/tests/temp_dir.rs"]
mod temp_dir;
#[allow(unused_imports)] // only the history tests use it
pub use temp_dir::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_tinysse");
/// Upper bound for any single blocking step (connect, read a response, ...).
pub const T: Duration = Duration::from_secs(10);

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ---------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------

pub struct Server {
    pub addr: SocketAddr,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `tinysse --listen 127.0.0.1:0 <args>` with RUST_LOG=debug.
    pub fn start(args: &[&str]) -> Server {
        Self::start_env(args, &[])
    }

    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Self::command(env);
        cmd.arg("--listen").arg("127.0.0.1:0").args(args);
        Self::spawn(cmd)
    }

    /// A command for the binary with a clean `TINYSSE_*` environment, the
    /// given variables and RUST_LOG=debug unless `env` sets RUST_LOG.
    pub fn command(env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("TINYSSE_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("RUST_LOG", "debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Spawn `cmd`, wait (bounded) for the `listening on <addr>` log line.
    pub fn spawn(cmd: Command) -> Server {
        Self::spawn_with_stdin(cmd, Stdio::null())
    }

    /// Like `spawn`, with the server's standard input given (a pipe, another process's output).
    pub fn spawn_with_stdin(mut cmd: Command, stdin: Stdio) -> Server {
        cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn tinysse");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for pipe in [out, err] {
            let logs = logs.clone();
            let tx = tx.clone();
            thread::spawn(move || {
                let mut r = BufReader::new(pipe);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match r.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let s = String::from_utf8_lossy(&line).trim_end().to_string();
                    if let Some(a) = parse_listening(&s) {
                        let _ = tx.send(a);
                    }
                    logs.lock().unwrap().push(s);
                }
            });
        }
        drop(tx);
        let deadline = Instant::now() + T;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => {
                    return Server { addr, child: Some(child), logs };
                }
                Err(_) => {
                    if let Ok(Some(st)) = child.try_wait() {
                        thread::sleep(Duration::from_millis(100));
                        panic!("tinysse exited ({st}) before listening; output:\n{}", logs.lock().unwrap().join("\n"));
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "no `listening on <addr>` line within {T:?}; output:\n{}",
                            logs.lock().unwrap().join("\n")
                        );
                    }
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server already reaped").id()
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    pub fn log_text(&self) -> String {
        self.logs().join("\n")
    }

    /// Poll the captured output until `pred` holds for the whole log (bounded).
    pub fn wait_logs(&self, timeout: Duration, pred: impl Fn(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.logs()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send a signal (by name: TERM, INT, ...) to the server via kill(1).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill").arg("-s").arg(sig).arg(self.pid().to_string()).status().expect("run kill");
        assert!(st.success(), "kill -s {sig} failed");
    }

    /// Wait for the server to exit; None if still running after `timeout`
    /// (it is then killed by Drop).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child(self.child.as_mut()?, timeout)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Run a command to completion (bounded); returns (status, stdout, stderr).
/// Panics (after killing it) if it runs longer than `timeout`.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> (ExitStatus, String, String) {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let ho = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let he = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let st = match wait_child(&mut child, timeout) {
        Some(st) => st,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process still running after {timeout:?}");
        }
    };
    let o = String::from_utf8_lossy(&ho.join().unwrap()).into_owned();
    let e = String::from_utf8_lossy(&he.join().unwrap()).into_owned();
    (st, o, e)
}

fn parse_listening(line: &str) -> Option<SocketAddr> {
    let i = line.find("listening on ")?;
    let rest = &line[i + "listening on ".len()..];
    let tok = rest.split_whitespace().next()?;
    let tok = tok.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || "[]:.".contains(c)));
    tok.parse().ok()
}

// ---------------------------------------------------------------------------
// Raw HTTP
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).count()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Header value contains `needle` (case-insensitive).
    pub fn header_has(&self, name: &str, needle: &str) -> bool {
        self.header(name).map(|v| v.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())).unwrap_or(false)
    }
}

pub struct Head {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn read_line_raw(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut l = Vec::new();
    r.read_until(b'\n', &mut l)?;
    Ok(l)
}

fn trim_eol(l: &[u8]) -> &[u8] {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// Read a status line and headers (accepts CRLF or bare LF).
pub fn read_head(r: &mut impl BufRead) -> io::Result<Head> {
    let first = read_line_raw(r)?;
    if first.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"));
    }
    let first = String::from_utf8_lossy(trim_eol(&first)).into_owned();
    let mut parts = first.splitn(3, ' ');
    let version = parts.next().unwrap_or("").to_string();
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {first:?}")))?;
    let reason = parts.next().unwrap_or("").to_string();
    if !version.starts_with("HTTP/") {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {first:?}")));
    }
    let mut headers = Vec::new();
    loop {
        let l = read_line_raw(r)?;
        if l.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof inside response head"));
        }
        let l = trim_eol(&l);
        if l.is_empty() {
            break;
        }
        let l = String::from_utf8_lossy(l).into_owned();
        let (k, v) =
            l.split_once(':').ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad header {l:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Head { version, status, reason, headers })
}

/// Incremental body decoder: Content-Length, chunked, or until EOF.
/// State survives read timeouts (partial lines are kept).
#[derive(Debug)]
pub enum Body {
    Length(u64),
    Eof,
    ChunkSize(Vec<u8>),
    ChunkData(u64),
    ChunkCrlf(Vec<u8>),
    Trailers(Vec<u8>),
    Done,
}

impl Body {
    pub fn for_head(h: &Head, is_head_request: bool) -> Body {
        let get = |n: &str| h.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
        if is_head_request || h.status / 100 == 1 || h.status == 204 || h.status == 304 {
            Body::Done
        } else if get("transfer-encoding").map(|v| v.to_ascii_lowercase().contains("chunked")) == Some(true) {
            Body::ChunkSize(Vec::new())
        } else if let Some(n) = get("content-length").and_then(|v| v.parse().ok()) {
            Body::Length(n)
        } else {
            Body::Eof
        }
    }

    /// Append some body bytes to `out`; Ok(0) means the body is complete.
    pub fn read_some(&mut self, r: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<usize> {
        let eof = || io::Error::new(io::ErrorKind::UnexpectedEof, "eof inside chunked body");
        loop {
            match self {
                Body::Done => return Ok(0),
                Body::Length(0) => *self = Body::Done,
                Body::Length(n) | Body::ChunkData(n) => {
                    let buf = r.fill_buf()?;
                    if buf.is_empty() {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof inside body"));
                    }
                    let k = buf.len().min(*n as usize);
                    out.extend_from_slice(&buf[..k]);
                    r.consume(k);
                    *n -= k as u64;
                    if let Body::ChunkData(0) = self {
                        *self = Body::ChunkCrlf(Vec::new());
                    }
                    return Ok(k);
                }
                Body::Eof => {
                    let buf = r.fill_buf()?;
                    if buf.is_empty() {
                        *self = Body::Done;
                        return Ok(0);
                    }
                    let k = buf.len();
                    out.extend_from_slice(buf);
                    r.consume(k);
                    return Ok(k);
                }
                Body::ChunkSize(line) => {
                    r.read_until(b'\n', line)?;
                    if !line.ends_with(b"\n") {
                        return Err(eof());
                    }
                    let s = String::from_utf8_lossy(trim_eol(line)).into_owned();
                    let hex = s.split(';').next().unwrap_or("").trim();
                    let n = u64::from_str_radix(hex, 16)
                        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size {s:?}")))?;
                    *self = if n == 0 { Body::Trailers(Vec::new()) } else { Body::ChunkData(n) };
                }
                Body::ChunkCrlf(line) => {
                    r.read_until(b'\n', line)?;
                    if !line.ends_with(b"\n") {
                        return Err(eof());
                    }
                    *self = Body::ChunkSize(Vec::new());
                }
                Body::Trailers(line) => {
                    r.read_until(b'\n', line)?;
                    if !line.ends_with(b"\n") {
                        return Err(eof());
                    }
                    if trim_eol(line).is_empty() {
                        *self = Body::Done;
                    } else {
                        line.clear();
                    }
                }
            }
        }
    }
}

/// A client connection that can carry several requests (keep-alive tests).
pub struct Conn {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect_timeout(&addr, T).expect("connect");
        s.set_read_timeout(Some(T)).unwrap();
        s.set_write_timeout(Some(T)).unwrap();
        s.set_nodelay(true).unwrap();
        Conn { r: BufReader::new(s.try_clone().unwrap()), w: s }
    }
    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("write request");
    }
    pub fn read_response(&mut self) -> io::Result<Response> {
        self.read_response_to(false)
    }
    pub fn read_response_to(&mut self, head_request: bool) -> io::Result<Response> {
        let h = read_head(&mut self.r)?;
        let mut body = Body::for_head(&h, head_request);
        let mut out = Vec::new();
        while body.read_some(&mut self.r, &mut out)? > 0 {}
        Ok(Response { version: h.version, status: h.status, reason: h.reason, headers: h.headers, body: out })
    }
    pub fn roundtrip(&mut self, bytes: &[u8]) -> Response {
        self.send(bytes);
        self.read_response().expect("read response")
    }
    /// True when the server closes the connection (EOF or reset) within
    /// `timeout`; false when it stays open (or sends more bytes).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.r.get_ref().set_read_timeout(Some(timeout)).unwrap();
        let mut b = [0u8; 1];
        let res = match self.r.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if timed_out(&e) => false,
            Err(_) => true, // reset counts as closed
        };
        self.r.get_ref().set_read_timeout(Some(T)).unwrap();
        res
    }
}

/// One raw request on a fresh connection; returns the first response.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Response {
    let mut c = Conn::open(addr);
    c.send(bytes);
    c.read_response().unwrap_or_else(|e| panic!("no response to {:?}: {e}", String::from_utf8_lossy(bytes)))
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    raw(addr, format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
}

pub fn request(addr: SocketAddr, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(ct) = content_type {
        req += &format!("Content-Type: {ct}\r\n");
    }
    req += &format!("Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes)
}

pub const FORM: &str = "application/x-www-form-urlencoded";

/// POST with an already encoded form body.
pub fn post_form_raw(addr: SocketAddr, path: &str, body: &str) -> Response {
    request(addr, "POST", path, Some(FORM), body.as_bytes())
}

/// POST a form built from (name, value) pairs (values get percent-encoded).
pub fn post_form(addr: SocketAddr, path: &str, fields: &[(&str, &str)]) -> Response {
    post_form_raw(addr, path, &form(fields))
}

/// POST /events with form fields.
pub fn publish_form(addr: SocketAddr, fields: &[(&str, &str)]) -> Response {
    post_form(addr, "/events", fields)
}

/// POST a raw body (data = body) with the given content type (or none).
pub fn publish_raw(addr: SocketAddr, query: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    let path = if query.is_empty() { "/events".to_string() } else { format!("/events?{query}") };
    request(addr, "POST", &path, content_type, body)
}

/// Publish `fields`, assert 200 and a `<id>\n` body, return the id.
pub fn publish_ok(addr: SocketAddr, fields: &[(&str, &str)]) -> String {
    let r = publish_form(addr, fields);
    assert_eq!(r.status, 200, "publish {fields:?} -> {} {:?}", r.status, r.text());
    id_of(&r)
}

pub fn publish(addr: SocketAddr, data: &str) -> String {
    publish_ok(addr, &[("data", data)])
}

/// The event id from a publish answer (`<id>\n`).
pub fn id_of(r: &Response) -> String {
    let t = r.text();
    assert!(
        t.ends_with('\n') && !t.trim_end_matches('\n').contains('\n'),
        "publish body should be `<id>\\n`, got {t:?}"
    );
    t.trim_end_matches('\n').to_string()
}

pub fn urlencode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o += &format!("%{b:02X}");
        }
    }
    o
}

pub fn form(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect::<Vec<_>>().join("&")
}

/// The number stored under `"key"` in a flat JSON object.
pub fn json_num(json: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\"");
    let i = json.find(&pat)? + pat.len();
    let rest = json[i..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || "-+.eE".contains(c))).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

pub fn stats(addr: SocketAddr) -> String {
    let r = get(addr, "/stats");
    assert_eq!(r.status, 200, "GET /stats: {} {:?}", r.status, r.text());
    r.text()
}

pub fn stat(addr: SocketAddr, key: &str) -> f64 {
    let s = stats(addr);
    json_num(&s, key).unwrap_or_else(|| panic!("no numeric {key:?} in /stats: {s}"))
}

/// Poll /stats until `key` == `want` (bounded); returns the last value seen.
pub fn wait_stat(addr: SocketAddr, key: &str, want: f64, timeout: Duration) -> f64 {
    let deadline = Instant::now() + timeout;
    loop {
        let v = stat(addr, key);
        if v == want || Instant::now() > deadline {
            return v;
        }
        thread::sleep(Duration::from_millis(25));
    }
}

// ---------------------------------------------------------------------------
// SSE
// ---------------------------------------------------------------------------

/// One SSE block: the lines up to and including the blank dispatch line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Frame {
    /// Exact bytes on the wire, including the final blank line.
    pub raw: String,
    pub id: Option<String>,
    pub event: Option<String>,
    pub retry: Option<String>,
    pub data: Vec<String>,
    pub comments: Vec<String>,
    pub other: Vec<String>,
}

impl Frame {
    pub fn is_comment_only(&self) -> bool {
        !self.comments.is_empty()
            && self.id.is_none()
            && self.event.is_none()
            && self.retry.is_none()
            && self.data.is_empty()
            && self.other.is_empty()
    }
    pub fn is_event(&self) -> bool {
        !self.data.is_empty() || self.event.is_some() || self.id.is_some()
    }
    pub fn data_str(&self) -> String {
        self.data.join("\n")
    }
}

fn field_value(line: &str, name: &str) -> Option<String> {
    if line == name {
        return Some(String::new());
    }
    let v = line.strip_prefix(name)?.strip_prefix(':')?;
    Some(v.strip_prefix(' ').unwrap_or(v).to_string())
}

pub struct SseStream {
    pub head: Head,
    r: BufReader<TcpStream>,
    pub w: TcpStream,
    body: Body,
    buf: Vec<u8>,
    eof: bool,
    /// Comment-only frames skipped by `next_event`.
    pub skipped_comments: usize,
}

impl SseStream {
    /// Connect, send `GET <path>` and read the response head (any status).
    pub fn connect(addr: SocketAddr, path: &str) -> io::Result<SseStream> {
        Self::connect_raw(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n").as_bytes(),
        )
    }

    /// The stream ends with nothing but (at most) a `retry:` line first, as the server says
    /// goodbye: true when EOF came that way within `timeout`.
    pub fn ends_after_retry(&mut self, timeout: Duration) -> bool {
        loop {
            match self.next_frame(timeout) {
                Ok(None) => return true,
                Ok(Some(f)) if f.retry.is_some() && !f.is_event() => continue,
                _ => return false,
            }
        }
    }

    /// Like `connect`, as curl asks: `Accept: */*`, not an EventSource.
    pub fn connect_as_curl(addr: SocketAddr, path: &str) -> io::Result<SseStream> {
        Self::connect_raw(addr, format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n").as_bytes())
    }

    pub fn connect_raw(addr: SocketAddr, request: &[u8]) -> io::Result<SseStream> {
        let s = TcpStream::connect_timeout(&addr, T)?;
        s.set_read_timeout(Some(T))?;
        s.set_write_timeout(Some(T))?;
        s.set_nodelay(true)?;
        let mut w = s.try_clone()?;
        w.write_all(request)?;
        let mut r = BufReader::new(s);
        let head = read_head(&mut r)?;
        let body = Body::for_head(&head, false);
        Ok(SseStream { head, r, w, body, buf: Vec::new(), eof: false, skipped_comments: 0 })
    }

    /// Subscribe: assert 200 and read the `retry:` preamble, after which
    /// the server has registered the subscriber.
    pub fn open(addr: SocketAddr, path: &str) -> SseStream {
        let mut s = Self::connect(addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        if s.head.status != 200 {
            let body = s.read_to_end(secs(2.0)).unwrap_or_default();
            panic!("GET {path}: status {} body {:?}", s.head.status, String::from_utf8_lossy(&body));
        }
        let f = s
            .next_frame(T)
            .unwrap_or_else(|e| panic!("GET {path}: no retry preamble: {e}"))
            .unwrap_or_else(|| panic!("GET {path}: EOF before retry preamble"));
        assert!(f.retry.is_some(), "GET {path}: first frame should be `retry: N`, got {:?}", f.raw);
        s
    }

    /// Read one raw line (with its terminator); Ok(None) at end of body.
    pub fn next_line(&mut self, timeout: Duration) -> io::Result<Option<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=p).collect();
                return Ok(Some(
                    String::from_utf8(line)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("non UTF-8 line: {e}")))?,
                ));
            }
            if self.eof {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out waiting for SSE data"));
            }
            self.r.get_ref().set_read_timeout(Some(left))?;
            match self.body.read_some(&mut self.r, &mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if timed_out(&e) => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out waiting for SSE data"));
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => self.eof = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// Next frame (block ended by a blank line); Ok(None) at EOF.
    pub fn next_frame(&mut self, timeout: Duration) -> io::Result<Option<Frame>> {
        let deadline = Instant::now() + timeout;
        let mut f = Frame::default();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.next_line(left)? else {
                return Ok(None);
            };
            f.raw.push_str(&line);
            let l = line.strip_suffix('\n').unwrap_or(&line);
            let l = l.strip_suffix('\r').unwrap_or(l);
            if l.is_empty() {
                if f.raw.len() == line.len() {
                    f.raw.clear(); // stray blank line
                    continue;
                }
                return Ok(Some(f));
            }
            if let Some(c) = l.strip_prefix(':') {
                f.comments.push(c.to_string());
            } else if let Some(v) = field_value(l, "data") {
                f.data.push(v);
            } else if let Some(v) = field_value(l, "id") {
                f.id = Some(v);
            } else if let Some(v) = field_value(l, "event") {
                f.event = Some(v);
            } else if let Some(v) = field_value(l, "retry") {
                f.retry = Some(v);
            } else {
                f.other.push(l.to_string());
            }
        }
    }

    /// Next frame that is an event (skips heartbeat comments); panics on EOF
    /// or when nothing arrives within `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> Frame {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_frame(left) {
                Ok(Some(f)) if f.is_comment_only() => self.skipped_comments += 1,
                Ok(Some(f)) => return f,
                Ok(None) => panic!("stream ended while waiting for an event"),
                Err(e) => panic!("waiting for an event: {e}"),
            }
        }
    }

    pub fn event(&mut self) -> Frame {
        self.next_event(T)
    }

    /// Read the rest of the body to its end (EOF / chunked end).
    pub fn read_to_end(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut out = std::mem::take(&mut self.buf);
        while !self.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "body did not end in time"));
            }
            self.r.get_ref().set_read_timeout(Some(left))?;
            match self.body.read_some(&mut self.r, &mut out) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if timed_out(&e) => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "body did not end in time"));
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => self.eof = true,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// True if the stream ends (EOF) within `timeout`, whatever comes first.
    pub fn ends_within(&mut self, timeout: Duration) -> bool {
        self.read_to_end(timeout).is_ok()
    }

    pub fn close(self) {
        let _ = self.w.shutdown(Shutdown::Both);
    }
}

// ---------------------------------------------------------------------------
// Other processes a test runs (nginx, brokers)
// ---------------------------------------------------------------------------

/// A child process stopped when the test ends, however it ends: SIGTERM first (nginx's master
/// then stops its workers), SIGKILL if it lingers.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        if wait_child(&mut self.0, Duration::from_secs(5)).is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A real nginx (Debian's) running in `dir`, with `conf` (server and upstream blocks) in its
/// `http` block, temporary files and logs in `dir`; returns once it listens on `port`.
pub fn start_nginx(dir: &std::path::Path, conf: &str, port: u16) -> Guard {
    let found = Command::new("sh").arg("-c").arg("command -v nginx").output().map(|o| o.status.success());
    assert!(found.unwrap_or(false), "nginx not found: install Debian's nginx (as .ci/run does)");
    let main = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 512; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{conf}\n}}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx");
    let guard = Guard(child);
    let deadline = Instant::now() + T;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "nginx does not listen on {port}:\n{log}");
        thread::sleep(Duration::from_millis(50));
    }
    guard
}
