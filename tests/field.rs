//! Field behaviour seen from outside, with real clients: a full server keeps EventSources
//! retrying, restarts and stream timeouts spread reconnects, silent sockets cannot starve the
//! server, HTTP/1.0 framing, HEAD on every GET route, and what the log says about requests.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use util::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// One Node client (or Chromium) at a time: on a small machine several at once only make every
/// wait longer, and the restart test's spread is measured, not assumed.
fn one_client_process() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// tests/js, with its npm packages installed.
fn js_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    if !dir.join("node_modules/eventsource").exists() || !dir.join("node_modules/playwright-core").exists() {
        let mut npm = Command::new("npm");
        npm.args(["install", "--no-audit", "--no-fund", "--silent"]).current_dir(&dir);
        let (status, _, err) = run_bounded(npm, Duration::from_secs(180));
        assert!(status.success(), "npm install in tests/js failed: {err}");
    }
    dir
}

/// A node script whose JSON lines are read as they come (each wait bounded); killed on drop.
struct NodeScript {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, for failure messages.
    seen: Vec<String>,
}

impl NodeScript {
    fn spawn(script: &str, args: &[&str]) -> NodeScript {
        let mut cmd = Command::new("node");
        cmd.arg(js_dir().join(script)).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        if let Ok(chromium) = std::env::var("CHROMIUM") {
            cmd.env("CHROMIUM", chromium);
        }
        let mut child = cmd.spawn().expect("node runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        NodeScript { child, lines, seen: Vec::new() }
    }

    /// The next line within `timeout`; None when none came (or the script ended).
    fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Reads lines until one satisfies `pred`; panics after `timeout`.
    fn wait_for(&mut self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) if pred(&line) => return line,
                Some(_) => {}
                None => panic!("no {what} within {timeout:?}; the client printed:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn exit_status(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        wait_child(&mut self.child, timeout)
    }
}

impl Drop for NodeScript {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_type(line: &str, ty: &str) -> bool {
    line.contains(&format!("\"type\":\"{ty}\""))
}

/// A loopback port nobody listens on right now (for a server that must come back on it).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn epoch_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Sends `request` on a fresh connection and reads until the server closes it (bounded).
fn bytes_to_eof(addr: SocketAddr, request: &[u8]) -> (Vec<u8>, SocketAddr) {
    let mut s = TcpStream::connect_timeout(&addr, T).expect("connect");
    s.set_read_timeout(Some(T)).unwrap();
    let local = s.local_addr().expect("local addr");
    s.write_all(request).expect("write request");
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("reading the answer to {:?}: {e} (got {out:?} so far)", String::from_utf8_lossy(request)),
    }
    (out, local)
}

/// A response as bytes: status, headers in order, and whatever followed the blank line.
struct Wire {
    status: u16,
    headers: Vec<(String, String)>,
    after_head: Vec<u8>,
}

impl Wire {
    fn parse(bytes: &[u8]) -> Wire {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete head in {:?}", String::from_utf8_lossy(bytes)));
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Wire { status, headers, after_head: bytes[end + 4..].to_vec() }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn names(&self) -> Vec<&str> {
        self.headers.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// The value of every `retry:` line in `text`, in order.
fn retry_values(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("retry:"))
        .map(|v| v.trim().parse().expect("retry is a number"))
        .collect()
}

// ---------------------------------------------------------------------------
// 1. A full server and EventSource
// ---------------------------------------------------------------------------

/// On the wire: a refused EventSource gets 200, `text/event-stream`, one random `retry:` in
/// [retry, 2 x retry) and the close; a curl-like client keeps 503 with Retry-After; both count.
#[test]
fn full_server_answers_an_eventsource_200_with_a_random_retry_and_curl_503() {
    let server = Server::start(&["--max-clients", "2", "--retry", "500", "--heartbeat", "0"]);
    let a = server.addr;
    let _held = [SseStream::open(a, "/events"), SseStream::open(a, "/events")];
    let before = stat(a, "rejected_full");

    let mut delays = Vec::new();
    for _ in 0..8 {
        let mut s = SseStream::connect(a, "/events").expect("connect as an EventSource");
        assert_eq!(s.head.status, 200, "an EventSource must never see a status that ends it for good");
        let ct = s.head.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.clone());
        assert_eq!(ct.as_deref(), Some("text/event-stream"));
        let body = String::from_utf8(s.read_to_end(T).expect("the refusal ends")).expect("UTF-8 body");
        let retries = retry_values(&body);
        assert_eq!(retries.len(), 1, "exactly one retry line, nothing else: {body:?}");
        assert!(!body.contains("data:") && !body.contains("id:"), "no event in a refusal: {body:?}");
        delays.push(retries[0]);
    }
    assert!(delays.iter().all(|d| (500..1000).contains(d)), "retry delays outside [500, 1000): {delays:?}");
    assert!(delays.iter().any(|&d| d != delays[0]), "retry delays should be random, all were {}", delays[0]);

    let mut curl = SseStream::connect_as_curl(a, "/events").expect("connect as curl");
    assert_eq!(curl.head.status, 503, "curl-like clients keep the 503");
    assert!(curl.head.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("retry-after")), "503 without Retry-After");
    let _ = curl.read_to_end(T);

    assert_eq!(stat(a, "rejected_full"), before + 9.0, "8 EventSource refusals and one 503 count in rejected_full");
    assert_eq!(stat(a, "subscribers"), 2.0, "refusals never take a subscriber slot");
}

/// Drives `full.mjs` in `mode`: refused at least twice without ever being CLOSED, then a held
/// stream goes and the client, reconnecting on its own, receives a published event.
fn eventsource_waits_out_a_full_server(mode: &str, first_line: Duration) {
    let _one = one_client_process();
    let server = Server::start(&["--max-clients", "2", "--retry", "500", "--heartbeat", "0"]);
    let a = server.addr;
    let held = SseStream::open(a, "/events");
    let mut other = SseStream::open(a, "/events");
    let before = stat(a, "rejected_full");

    let mut es = NodeScript::spawn("full.mjs", &[mode, &format!("http://{a}"), "45000"]);
    let mut refusals = 0;
    let mut first = Some(first_line);
    while refusals < 2 {
        let line = es.wait_for(first.take().unwrap_or(T), "EventSource error", |l| is_type(l, "error"));
        assert!(line.contains("\"readyState\":0"), "a refused EventSource must stay CONNECTING, got {line}");
        refusals += 1;
    }
    assert!(stat(a, "rejected_full") >= before + 2.0, "each refusal counts in rejected_full");

    held.close();
    // Publish until the EventSource, back in a free slot, shows one (it may be between two
    // attempts when the slot frees).
    let deadline = Instant::now() + Duration::from_secs(15);
    let got = loop {
        assert!(Instant::now() < deadline, "EventSource never received an event:\n{}", es.seen.join("\n"));
        publish(a, "after the slot freed");
        match es.next_line(Duration::from_millis(400)) {
            Some(l) if is_type(&l, "message") => break l,
            Some(l) => assert!(!l.contains("\"readyState\":2"), "EventSource closed for good: {l}"),
            None => {}
        }
    };
    println!("{mode} EventSource:\n{}", es.seen.join("\n"));
    assert!(got.contains("after the slot freed") && got.contains("\"readyState\":1"), "{got}");
    let status = es.exit_status(T).expect("client exits after its message");
    assert!(status.success(), "client failed:\n{}", es.seen.join("\n"));
    assert!(!es.seen.iter().any(|l| l.contains("\"readyState\":2")), "{}", es.seen.join("\n"));
    assert_eq!(other.event().data_str(), "after the slot freed", "the stream still held keeps receiving");
}

#[test]
fn full_server_keeps_the_npm_eventsource_retrying_until_a_slot_frees() {
    eventsource_waits_out_a_full_server("node", T);
}

#[test]
fn full_server_keeps_chromium_eventsource_retrying_until_a_slot_frees() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&chromium).exists(), "{chromium} not found: install Debian's chromium, as .ci/run does");
    eventsource_waits_out_a_full_server("chromium", Duration::from_secs(40));
}

/// At the subscriber limit the refusal keeps the --cors-origin allow-list: a listed origin is
/// echoed with credentials (a `withCredentials` EventSource refuses `*` and closes for good).
#[test]
fn full_server_refusal_keeps_the_cors_allow_list() {
    let server = Server::start(&["--max-clients", "1", "--cors-origin", "http://app.example", "--retry", "500"]);
    let a = server.addr;
    let _held = SseStream::open(a, "/events");
    for (origin, want) in [("http://app.example", Some("http://app.example")), ("http://other.example", None)] {
        let req = format!("GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nOrigin: {origin}\r\n\r\n");
        let w = Wire::parse(&bytes_to_eof(a, req.as_bytes()).0);
        assert_eq!(w.status, 200, "Origin {origin}");
        assert_eq!(w.header("access-control-allow-origin"), want, "Origin {origin}: {:?}", w.headers);
        if want.is_some() {
            assert_eq!(w.header("access-control-allow-credentials"), Some("true"), "{:?}", w.headers);
        }
    }
}

/// Every slot of the table taken by something that cannot be evicted: `--max-clients` streams
/// and 8 requests whose heads never complete. Returns what holds them.
fn fill_table(a: SocketAddr, max_clients: usize) -> (Vec<SseStream>, Vec<TcpStream>) {
    let streams = (0..max_clients).map(|_| SseStream::open(a, "/events")).collect();
    let partial = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect_timeout(&a, T).expect("connect");
            s.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\n").expect("write a partial head");
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let curl = SseStream::connect_as_curl(a, "/events").expect("connect as curl");
    assert_eq!(curl.head.status, 503, "the table should be full");
    (streams, partial)
}

/// When the whole connection table is full (not only the subscriber limit), an EventSource
/// must still get the 200 + `retry:` refusal: a 503 closes it for good.
#[test]
fn full_table_answers_every_eventsource_200_not_503() {
    let server = Server::start(&["--max-clients", "2", "--retry", "500"]);
    let a = server.addr;
    let _hold = fill_table(a, 2);
    let statuses: Vec<u16> = (0..20)
        .map(|_| {
            let mut s = SseStream::connect(a, "/events").expect("connect as an EventSource");
            let _ = s.read_to_end(T);
            s.head.status
        })
        .collect();
    assert!(statuses.iter().all(|&s| s == 200), "an EventSource got a status that ends it for good: {statuses:?}");
}

/// The full-table refusal keeps the --cors-origin allow-list too.
#[test]
fn full_table_refusal_keeps_the_cors_allow_list() {
    let server = Server::start(&["--max-clients", "2", "--retry", "500", "--cors-origin", "http://app.example"]);
    let a = server.addr;
    let _hold = fill_table(a, 2);
    let req = b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nOrigin: http://app.example\r\n\r\n";
    for _ in 0..10 {
        let w = Wire::parse(&bytes_to_eof(a, req).0);
        assert_eq!(
            w.header("access-control-allow-origin"),
            Some("http://app.example"),
            "{} with {:?}",
            w.status,
            w.headers
        );
    }
}

// ---------------------------------------------------------------------------
// 2. Restart spread
// ---------------------------------------------------------------------------

/// 200 real EventSources, SIGTERM, the server back on the same port at once: the clients,
/// each told its own `retry:` at shutdown, return spread over at least a third of --retry.
#[test]
fn restart_spreads_the_reconnects_of_200_real_eventsources() {
    let _one = one_client_process();
    let listen = format!("127.0.0.1:{}", free_port());
    let start = || {
        let mut cmd = Server::command(&[]);
        cmd.args(["--listen", &listen, "--retry", "3000", "--heartbeat", "0"]);
        Server::spawn(cmd)
    };
    let mut first = start();
    let a = first.addr;
    let mut es = NodeScript::spawn("spread.mjs", &[&format!("http://{listen}/events"), "200", "28000"]);
    es.wait_for(Duration::from_secs(15), "all 200 clients open", |l| is_type(l, "ready"));
    let mut raw = SseStream::open(a, "/events");
    assert_eq!(wait_stat(a, "subscribers", 201.0, T), 201.0);

    let t0 = epoch_ms();
    first.signal("TERM");
    let exit = first.wait_exit(T).expect("server exits after SIGTERM");
    assert!(exit.success(), "exit status {exit}");
    let second = start();
    assert_eq!(second.addr, a);

    // What each stream was told just before the close.
    let tail = String::from_utf8(raw.read_to_end(T).expect("stream ends at shutdown")).expect("UTF-8");
    let told = retry_values(&tail);
    assert!(told.len() == 1 && (3000..6000).contains(&told[0]), "shutdown retry line: {tail:?}");

    let mut delays = Vec::new();
    while delays.len() < 200 {
        let line = es.wait_for(Duration::from_secs(15), "every client reconnecting", |l| is_type(l, "reopen"));
        let t = json_num(&line, "t").unwrap_or_else(|| panic!("no time in {line}"));
        delays.push(t - t0);
    }
    es.wait_for(T, "done", |l| is_type(l, "done"));
    let (min, max) = delays.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &d| (lo.min(d), hi.max(d)));
    println!("reconnect delays after SIGTERM: min {min:.0} ms, max {max:.0} ms");
    assert!(min >= 2500.0, "a client came back after {min:.0} ms, before its retry delay");
    assert!(max < 12_000.0, "a client took {max:.0} ms to come back");
    assert!(max - min >= 1000.0, "reconnects bunched within {:.0} ms ({min:.0}..{max:.0})", max - min);
    assert_eq!(wait_stat(a, "subscribers", 200.0, T), 200.0, "every client is back on the new server");
}

// ---------------------------------------------------------------------------
// 3. Stream timeout
// ---------------------------------------------------------------------------

/// Streams ended by --stream-timeout end with a `retry:` of their own, random in
/// [retry, 2 x retry).
#[test]
fn stream_timeout_ends_each_stream_with_its_own_random_retry() {
    let server = Server::start(&["--stream-timeout", "1", "--retry", "1000", "--heartbeat", "0"]);
    let a = server.addr;
    let mut streams: Vec<SseStream> = (0..10).map(|_| SseStream::open(a, "/events")).collect();
    let mut last = Vec::new();
    for s in &mut streams {
        let tail = String::from_utf8(s.read_to_end(T).expect("stream times out")).expect("UTF-8");
        let told = retry_values(&tail);
        assert_eq!(told.len(), 1, "one retry line at the end of the stream: {tail:?}");
        last.push(told[0]);
    }
    assert!(last.iter().all(|d| (1000..2000).contains(d)), "final retry outside [1000, 2000): {last:?}");
    assert!(last.iter().any(|&d| d != last[0]), "every stream was told the same retry: {last:?}");
}

/// A stream replaced by a new one with the same client id is told a random retry too.
#[test]
fn replaced_stream_ends_with_a_random_retry() {
    let server = Server::start(&["--retry", "1000", "--heartbeat", "0"]);
    let a = server.addr;
    let mut last = Vec::new();
    for _ in 0..6 {
        let mut old = SseStream::open(a, "/events?client=twin");
        let _new = SseStream::open(a, "/events?client=twin");
        let tail = String::from_utf8(old.read_to_end(T).expect("the replaced stream ends")).expect("UTF-8");
        let told = retry_values(&tail);
        assert_eq!(told.len(), 1, "one retry line at the end of the replaced stream: {tail:?}");
        last.push(told[0]);
    }
    assert!(last.iter().all(|d| (1000..2000).contains(d)), "final retry outside [1000, 2000): {last:?}");
    assert!(last.iter().any(|&d| d != last[0]), "every stream was told the same retry: {last:?}");
}

// ---------------------------------------------------------------------------
// 4. Silent sockets, head and keep-alive timeouts
// ---------------------------------------------------------------------------

/// True when the server has closed `s` (EOF or reset) by `deadline`, after any bytes it sent.
fn closed_by(s: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {} // a 503 on the way out
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// 100 sockets that never send a byte cannot keep a publisher, /stats or the streams waiting,
/// and all of them are gone within the head timeout.
#[test]
fn silent_sockets_do_not_block_publish_and_are_closed_by_the_head_timeout() {
    let server = Server::start(&["--max-clients", "4", "--head-timeout", "2", "--heartbeat", "0"]);
    let a = server.addr;
    let mut streams: Vec<SseStream> = (0..4).map(|_| SseStream::open(a, "/events")).collect();
    let mut silent: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect_timeout(&a, T).expect("connect")).collect();
    let connected = Instant::now();
    // Let the server accept them all before the publisher arrives.
    thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let r = publish_form(a, &[("data", "past the silent ones")]);
    let took = started.elapsed();
    assert_eq!(r.status, 200, "publish: {} {:?}", r.status, r.text());
    assert!(took < Duration::from_secs(2), "publish took {took:?}");
    for s in &mut streams {
        assert_eq!(s.event().data_str(), "past the silent ones");
    }
    assert_eq!(stat(a, "subscribers"), 4.0);

    let deadline = connected + Duration::from_secs(2 + 3);
    for (i, s) in silent.iter_mut().enumerate() {
        assert!(closed_by(s, deadline), "silent socket {i} still open {:?} after connecting", connected.elapsed());
    }
    assert!(
        server.wait_logs(T, |l| l.iter().any(|l| l.contains("closed (head timeout)"))),
        "no head timeout in the log:\n{}",
        server.log_text()
    );
    assert!(server.log_text().contains("no request after 2 s"), "no warn line for the head timeout");
    for s in &mut streams {
        assert!(!s.ends_within(Duration::from_millis(100)), "streams are never closed for silent sockets");
    }
}

/// On a server with free slots, a silent socket is closed by --head-timeout, not by the far
/// longer --keep-alive timeout.
#[test]
fn silent_socket_with_free_slots_is_closed_by_the_head_timeout() {
    let server = Server::start(&["--head-timeout", "1", "--keepalive-timeout", "30"]);
    let mut c = Conn::open(server.addr);
    assert!(c.closed_within(Duration::from_secs(3)), "silent socket still open after 3 s");
    assert!(server.wait_logs(T, |l| l.iter().any(|l| l.contains("closed (head timeout)"))), "{}", server.log_text());
}

/// A keep-alive connection that has been answered is then idle: --keepalive-timeout closes it,
/// not the head timeout.
#[test]
fn answered_keepalive_connection_is_closed_by_the_keepalive_timeout() {
    // Generous margins: the other tests of this file load the machine (200 EventSources,
    // Chromium), and a late read here must not pass for an early close.
    let server = Server::start(&["--head-timeout", "1", "--keepalive-timeout", "8"]);
    let mut c = Conn::open(server.addr);
    let r = c.roundtrip(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    let answered = std::time::Instant::now();
    let closed_early = c.closed_within(Duration::from_millis(3000));
    assert!(
        !closed_early || answered.elapsed() >= Duration::from_secs(8),
        "closed by the 1 s head timeout after an answer"
    );
    assert!(c.closed_within(Duration::from_secs(12)), "idle keep-alive connection still open after 15 s");
    // The server's log is read from its pipe by another thread: wait for the line.
    assert!(
        server.wait_logs(T, |l| l.iter().any(|l| l.contains("closed (keep-alive timeout)"))),
        "{}",
        server.log_text()
    );
    assert!(!server.log_text().contains("closed (head timeout)"), "{}", server.log_text());
}

// ---------------------------------------------------------------------------
// 5. HTTP/1.0 and Transfer-Encoding
// ---------------------------------------------------------------------------

#[test]
fn http10_with_transfer_encoding_is_400_and_closes() {
    let server = Server::start(&[]);
    let a = server.addr;
    let mut sub = SseStream::open(a, "/events");
    let mut c = Conn::open(a);
    c.send(b"POST /events HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    let r = c.read_response().expect("an answer");
    assert_eq!(r.status, 400, "{:?}", r.text());
    assert!(r.header_has("connection", "close"), "{:?}", r.headers);
    assert!(c.closed_within(T), "connection stays open after the 400");
    assert_eq!(stat(a, "published"), 0.0, "nothing was published");
    assert!(sub.next_frame(Duration::from_millis(300)).is_err(), "a subscriber saw something");
}

// ---------------------------------------------------------------------------
// 6. HEAD
// ---------------------------------------------------------------------------

const GET_ROUTES: [&str; 7] = ["/", "/tinysse.js", "/stats", "/metrics", "/events", "/sse?clientId=x", "/stream"];

fn is_stream(path: &str) -> bool {
    ["/events", "/sse", "/stream"].iter().any(|p| path.split('?').next() == Some(*p))
}

/// The GET answer's status and headers (for a stream route, only its head).
fn get_head(a: SocketAddr, path: &str) -> Wire {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if is_stream(path) {
        let s = SseStream::connect_raw(a, req.as_bytes()).expect("GET a stream");
        let headers = s.head.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
        return Wire { status: s.head.status, headers, after_head: Vec::new() };
    }
    let (bytes, _) = bytes_to_eof(a, req.as_bytes());
    let w = Wire::parse(&bytes);
    let len: usize = w.header("content-length").and_then(|v| v.parse().ok()).expect("GET has a Content-Length");
    assert_eq!(w.after_head.len(), len, "GET {path}: body and Content-Length disagree");
    w
}

#[test]
fn head_on_every_get_route_is_the_get_head_without_a_body() {
    let server = Server::start(&["--heartbeat", "0"]);
    let a = server.addr;
    for path in GET_ROUTES {
        let get = get_head(a, path);
        let started = Instant::now();
        let (bytes, _) =
            bytes_to_eof(a, format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        assert!(started.elapsed() < Duration::from_secs(5), "HEAD {path} was not closed promptly");
        let head = Wire::parse(&bytes);
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert!(
            head.after_head.is_empty(),
            "HEAD {path} sent body bytes: {:?}",
            String::from_utf8_lossy(&head.after_head)
        );
        assert_eq!(head.names(), get.names(), "HEAD {path}: header names");
        assert_eq!(head.header("content-type"), get.header("content-type"), "HEAD {path}");
        match path {
            // Counters change between two requests; the length stays near.
            "/stats" | "/metrics" => {
                let n = |w: &Wire| w.header("content-length").and_then(|v| v.parse::<i64>().ok()).unwrap_or(-1);
                assert!(n(&head) > 0 && (n(&head) - n(&get)).abs() < 64, "HEAD {path}: Content-Length {}", n(&head));
            }
            _ => assert_eq!(head.headers, get.headers, "HEAD {path}: headers"),
        }
    }
    // Keep-alive: a HEAD's answer ends at its blank line, so the next answer parses.
    let mut c = Conn::open(a);
    c.send(b"HEAD /tinysse.js HTTP/1.1\r\nHost: x\r\n\r\nGET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = c.read_response_to(true).expect("HEAD answer");
    assert!(head.status == 200 && head.header("content-length").is_some_and(|n| n != "0"), "{:?}", head.headers);
    let next = c.read_response().expect("the pipelined GET's answer");
    assert!(next.status == 200 && next.text().starts_with('{'), "{} {:?}", next.status, next.text());
    // An error to a HEAD has no body either.
    let (bytes, _) = bytes_to_eof(a, b"HEAD /stream?delay_ms=99999 HTTP/1.1\r\nHost: x\r\n\r\n");
    let w = Wire::parse(&bytes);
    assert!(w.status == 400 && w.after_head.is_empty(), "{} {:?}", w.status, String::from_utf8_lossy(&bytes));
    // A HEAD is not a subscriber: nothing counts (once the GET streams above have gone),
    // nothing stays registered under its client id.
    assert_eq!(wait_stat(a, "subscribers", 0.0, T), 0.0);
    let (_, _) = bytes_to_eof(a, b"HEAD /sse?clientId=ghost HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = post_form(a, "/sse/send", &[("clientId", "ghost"), ("message", "boo")]);
    assert_eq!(r.status, 404, "a HEAD left a client behind: {:?}", r.text());
    // A HEAD with a topic leaves no filter behind for the next stream in its slot.
    let (_, _) = bytes_to_eof(a, b"HEAD /events?topic=only/this HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut s = SseStream::open(a, "/events");
    publish_ok(a, &[("data", "any topic"), ("topic", "other/topic")]);
    assert_eq!(s.event().data_str(), "any topic");
}

#[test]
fn head_with_a_bad_subscribe_token_is_401_without_a_body() {
    let server = Server::start(&["--subscribe-token", "right"]);
    let a = server.addr;
    for path in ["/events?token=wrong", "/sse?clientId=x&token=wrong", "/stream?token=wrong"] {
        let get = Wire::parse(&bytes_to_eof(a, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).0);
        let (bytes, _) = bytes_to_eof(a, format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let head = Wire::parse(&bytes);
        assert_eq!((get.status, head.status), (401, 401), "GET/HEAD {path}");
        assert!(head.after_head.is_empty(), "HEAD {path} sent a body: {:?}", String::from_utf8_lossy(&head.after_head));
        assert_eq!(head.headers, get.headers, "HEAD {path}: headers");
        assert!(head.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{:?}", head.headers);
    }
}

#[test]
fn curl_head_gets_the_head_and_returns() {
    let server = Server::start(&[]);
    for path in ["/stats", "/events"] {
        let mut curl = Command::new("curl");
        curl.args(["-sS", "-I", "--max-time", "5", &format!("http://{}{path}", server.addr)]);
        let (status, out, err) = run_bounded(curl, Duration::from_secs(10));
        assert!(status.success(), "curl -I {path}: {status} {err}");
        assert!(out.starts_with("HTTP/1.1 200"), "curl -I {path}: {out}");
        let ct = if path == "/stats" { "application/json" } else { "text/event-stream" };
        assert!(out.to_ascii_lowercase().contains(&format!("content-type: {ct}")), "curl -I {path}: {out}");
    }
}

// ---------------------------------------------------------------------------
// 7. Log lines
// ---------------------------------------------------------------------------

#[test]
fn log_names_method_and_path_never_the_query_and_keeps_favicon_quiet() {
    let server = Server::start(&[]);
    let a = server.addr;
    assert_eq!(get(a, "/nope?token=secret").status, 404);
    assert_eq!(get(a, "/favicon.ico").status, 404);
    assert!(server.wait_logs(T, |l| l.iter().any(|l| l.contains("/favicon.ico"))), "{}", server.log_text());
    let logs = server.logs();
    let nope: Vec<&String> = logs.iter().filter(|l| l.contains("/nope")).collect();
    assert!(nope.iter().any(|l| l.contains("WARN") && l.contains("GET /nope") && l.contains("404")), "{nope:?}");
    for l in &nope {
        assert!(!l.contains('?'), "the query reached the log: {l}");
    }
    assert!(!server.log_text().contains("secret"), "a token reached the log:\n{}", server.log_text());
    let icon: Vec<&String> = logs.iter().filter(|l| l.contains("favicon")).collect();
    assert!(icon.iter().all(|l| !l.contains("WARN")), "favicon 404 logged as a warning: {icon:?}");
    assert!(icon.iter().any(|l| l.contains("DEBUG") && l.contains("GET /favicon.ico 404")), "{icon:?}");
}

/// One debug line per request, with method, path (no query), status and the bytes sent.
#[test]
fn each_request_gets_one_debug_access_line_with_the_bytes_sent() {
    let server = Server::start(&[]);
    let a = server.addr;
    let requests: [(&[u8], &str); 4] = [
        (b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET /stats 200"),
        (b"GET /tinysse.js?v=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET /tinysse.js 200"),
        (b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi", "POST /events 200"),
        (b"HEAD /events HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD /events 200"),
    ];
    for (req, want) in requests {
        let (bytes, local) = bytes_to_eof(a, req);
        let me = format!("{local}: ");
        let line = |l: &String| l.contains(&me) && l.contains(want);
        assert!(server.wait_logs(T, |l| l.iter().any(line)), "no `{want}` line for {local}:\n{}", server.log_text());
        let logs = server.logs();
        let mine: Vec<&String> = logs.iter().filter(|l| line(l)).collect();
        assert_eq!(mine.len(), 1, "one access line per request: {mine:?}");
        assert!(mine[0].contains("DEBUG") && !mine[0].contains('?'), "{}", mine[0]);
        let n: usize = mine[0].rsplit(' ').next().and_then(|n| n.parse().ok()).expect("bytes at the end");
        assert_eq!(n, bytes.len(), "`{}` but {} bytes arrived", mine[0], bytes.len());
    }
}

/// The log names `/stream` requests by their method and path, whatever the handler does with
/// the request's bytes.
#[test]
fn stream_demo_requests_are_logged_by_method_and_path() {
    let server = Server::start(&[]);
    let a = server.addr;
    let (_, ok) = bytes_to_eof(a, b"GET /stream?delay_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n");
    let (_, bad) = bytes_to_eof(a, b"GET /stream?delay_ms=99999 HTTP/1.1\r\nHost: x\r\n\r\n");
    for (local, want) in [(ok, "GET /stream 200"), (bad, "GET /stream: 400")] {
        let me = format!("{local}: ");
        assert!(
            server.wait_logs(Duration::from_secs(2), |l| l.iter().any(|l| l.contains(&me) && l.contains(want))),
            "no `{want}` line for {local}:\n{}",
            server.log_text()
        );
    }
}
