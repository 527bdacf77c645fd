//! Real clients: curl and netcat, and netcat-style bare-LF requests.
mod util;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};
use util::*;

fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Kills the child process on drop.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut l = Vec::new();
        while matches!(r.read_until(b'\n', &mut l), Ok(n) if n > 0) {
            if tx.send(String::from_utf8_lossy(&l).trim_end_matches(['\r', '\n']).to_string()).is_err() {
                break;
            }
            l.clear();
        }
    });
    rx
}

/// Wait (bounded) for a line matching `pred`; returns all lines read so far.
fn wait_line(rx: &Receiver<String>, seen: &mut Vec<String>, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = pred(&l);
                seen.push(l);
                if hit {
                    return;
                }
            }
            Err(e) => panic!("wanted line not seen ({e}); lines so far: {seen:?}"),
        }
    }
}

#[test]
fn curl_subscriber_sees_event_published_by_curl() {
    if !have("curl") {
        eprintln!("NOTE: curl not found, skipping");
        return;
    }
    let s = Server::start(&[]);
    let url = format!("http://{}/events", s.addr);
    let mut sub = Guard(
        Command::new("curl")
            .args(["-N", "-s", &url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn curl"),
    );
    let rx = lines_of(sub.0.stdout.take().unwrap());
    let mut seen = Vec::new();
    wait_line(&rx, &mut seen, |l| l == "retry: 3000");

    let mut publish = Command::new("curl");
    publish.args(["-s", "-d", "data=hello", &url]);
    let (st, out, _) = run_bounded(publish, T);
    assert!(st.success());
    let id = out.strip_suffix('\n').unwrap_or_else(|| panic!("publish output {out:?}"));
    assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()), "publish output {out:?}");

    wait_line(&rx, &mut seen, |l| l == "data: hello");
    let n = seen.len();
    assert_eq!(seen[n - 2], format!("id: {id}"), "{seen:?}");
}

#[test]
fn curl_sees_stream_route_and_cors() {
    if !have("curl") {
        eprintln!("NOTE: curl not found, skipping");
        return;
    }
    let s = Server::start(&[]);
    let mut c = Command::new("curl");
    c.args(["-s", "-N", "-i", &format!("http://{}/stream?text=ab&delay_ms=0", s.addr)]);
    let (st, out, _) = run_bounded(c, T);
    assert!(st.success(), "curl failed: {out}");
    let out = out.replace("\r\n", "\n");
    assert!(out.to_ascii_lowercase().contains("access-control-allow-origin: *"), "{out}");
    assert!(out.ends_with("\n\ndata: a\n\ndata: b\n\ndata: [DONE]\n\n"), "{out:?}");
}

#[test]
fn bare_lf_requests_work() {
    let s = Server::start(&[]);
    let r = raw(s.addr, b"GET /stats HTTP/1.1\nHost: x\n\n");
    assert_eq!(r.status, 200);
    assert!(json_num(&r.text(), "subscribers").is_some(), "{:?}", r.text());

    let mut sub = SseStream::connect_raw(s.addr, b"GET /events HTTP/1.1\nHost: x\n\n").unwrap();
    assert_eq!(sub.head.status, 200);
    assert!(sub.next_frame(T).unwrap().unwrap().retry.is_some());

    let r = raw(s.addr, b"POST /events HTTP/1.1\nHost: x\nContent-Type: application/x-www-form-urlencoded\nContent-Length: 10\n\ndata=typed");
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_eq!(sub.event().data_str(), "typed");

    // two bare-LF requests on one connection
    let mut c = Conn::open(s.addr);
    assert_eq!(c.roundtrip(b"GET /stats HTTP/1.1\nHost: x\n\n").status, 200);
    assert_eq!(c.roundtrip(b"OPTIONS / HTTP/1.1\nHost: x\n\n").status, 204);
}

#[test]
fn netcat_one_shot_request() {
    if !have("nc") {
        eprintln!("NOTE: nc not found, skipping (CI installs netcat-openbsd)");
        return;
    }
    let s = Server::start(&[]);
    let mut nc = Guard(
        Command::new("nc")
            .args(["-N", "-w", "5", "127.0.0.1", &s.addr.port().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nc"),
    );
    let mut stdin = nc.0.stdin.take().unwrap();
    stdin.write_all(b"GET /stats HTTP/1.1\nHost: x\n\n").unwrap();
    drop(stdin); // -N: shut the socket's write side, like ^D
    let mut out = String::new();
    let mut so = nc.0.stdout.take().unwrap();
    let h = thread::spawn(move || {
        let _ = so.read_to_string(&mut out);
        out
    });
    let st = wait_child(&mut nc.0, Duration::from_secs(10));
    assert!(st.is_some(), "nc did not finish within 10 s");
    let out = h.join().unwrap();
    assert!(out.starts_with("HTTP/1."), "{out:?}");
    assert!(out.lines().next().unwrap().contains(" 200"), "{out:?}");
    assert!(out.contains("\"subscribers\""), "{out:?}");
}

#[test]
fn netcat_typed_subscription() {
    if !have("nc") {
        eprintln!("NOTE: nc not found, skipping (CI installs netcat-openbsd)");
        return;
    }
    let s = Server::start(&[]);
    let mut nc = Guard(
        Command::new("nc")
            .args(["127.0.0.1", &s.addr.port().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nc"),
    );
    let mut stdin = nc.0.stdin.take().unwrap();
    stdin.write_all(b"GET /events HTTP/1.1\nHost: x\n\n").unwrap();
    stdin.flush().unwrap();
    let rx = lines_of(nc.0.stdout.take().unwrap());
    let mut seen = Vec::new();
    wait_line(&rx, &mut seen, |l| l == "retry: 3000");
    assert!(seen[0].starts_with("HTTP/1.1 200"), "{seen:?}");
    let id = publish_ok(s.addr, &[("data", "to netcat"), ("event", "nc")]);
    wait_line(&rx, &mut seen, |l| l == "data: to netcat");
    let n = seen.len();
    assert_eq!(seen[n - 3..n - 1], [format!("id: {id}"), "event: nc".to_string()], "{seen:?}");
    drop(stdin);
}
