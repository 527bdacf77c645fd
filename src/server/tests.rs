//! The loop on a fake clock: real loopback sockets, no processes and no sleeps. Each step sets
//! the time, then turns the loop until the kernel has delivered what the step caused.

use super::Server;
use crate::config::Config;
use crate::time::Millis;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn server(config: Config) -> Server {
    let mut server = Server::new(Config { listen: "127.0.0.1:0".parse().unwrap(), ..config }).unwrap();
    server.set_fake_time(Millis(0));
    server
}

/// A client socket whose reads never block.
fn client(server: &Server) -> TcpStream {
    let sock = TcpStream::connect(server.local_addr()).unwrap();
    sock.set_nonblocking(true).unwrap();
    sock
}

/// What the peer has sent so far, and whether it closed.
struct Seen {
    bytes: String,
    closed: bool,
}

fn read_all(sock: &mut TcpStream, seen: &mut Seen) {
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => {
                seen.closed = true;
                return;
            }
            Ok(n) => seen.bytes.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => {
                seen.closed = true;
                return;
            }
        }
    }
}

/// Sets the time to `ms` and turns the loop (each turn waits at most 1 ms of real time for the
/// kernel) until `done` holds for what the client has seen, or 200 turns.
fn step(server: &mut Server, ms: u64, sock: &mut TcpStream, seen: &mut Seen, done: impl Fn(&Seen) -> bool) -> bool {
    server.set_fake_time(Millis(ms));
    for _ in 0..200 {
        server.poll(Some(Duration::from_millis(1))).unwrap();
        read_all(sock, seen);
        if done(seen) {
            return true;
        }
    }
    false
}

fn seen() -> Seen {
    Seen { bytes: String::new(), closed: false }
}

const SUBSCRIBE: &[u8] = b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn heartbeat_is_due_after_silence_and_traffic_resets_it() {
    let mut s = server(Config { heartbeat_secs: 15, ..Config::default() });
    let mut c = client(&s);
    c.write_all(SUBSCRIBE).unwrap();
    let mut got = seen();
    assert!(step(&mut s, 0, &mut c, &mut got, |g| g.bytes.contains("retry:")));
    got.bytes.clear();
    assert!(!step(&mut s, 14_000, &mut c, &mut got, |g| !g.bytes.is_empty()), "no heartbeat before 15 s");
    s.publish(crate::Event::new("hello")).unwrap();
    assert!(step(&mut s, 10_000, &mut c, &mut got, |g| g.bytes.contains("data: hello")));
    got.bytes.clear();
    assert!(!step(&mut s, 24_000, &mut c, &mut got, |g| !g.bytes.is_empty()), "the event reset the heartbeat");
    assert!(step(&mut s, 25_000, &mut c, &mut got, |g| g.bytes == ":\n\n"), "heartbeat at 25 s: {:?}", got.bytes);
}

#[test]
fn a_silent_connection_is_closed_by_the_head_timeout_from_accept() {
    let mut s = server(Config { head_timeout_secs: 20, keepalive_timeout_secs: 30, ..Config::default() });
    let mut c = client(&s);
    let mut got = seen();
    step(&mut s, 0, &mut c, &mut got, |_| false); // accepted at 0
    assert!(!step(&mut s, 19_999, &mut c, &mut got, |g| g.closed), "open before the head timeout");
    assert!(step(&mut s, 20_000, &mut c, &mut got, |g| g.closed), "closed at the head timeout, not 30 s");
}

#[test]
fn a_head_in_pieces_is_timed_from_its_start() {
    let mut s = server(Config { head_timeout_secs: 5, ..Config::default() });
    let mut c = client(&s);
    let mut got = seen();
    c.write_all(b"GET /stats HTTP/1.1\r\n").unwrap();
    step(&mut s, 0, &mut c, &mut got, |_| false);
    assert!(!step(&mut s, 4_000, &mut c, &mut got, |g| g.closed));
    c.write_all(b"X-Slow: 1\r\n").unwrap();
    assert!(step(&mut s, 5_000, &mut c, &mut got, |g| g.closed), "dripping bytes does not extend the head timeout");
}

#[test]
fn an_idle_keep_alive_connection_closes_after_the_keepalive_timeout() {
    let mut s = server(Config { head_timeout_secs: 5, keepalive_timeout_secs: 30, ..Config::default() });
    let mut c = client(&s);
    let mut got = seen();
    c.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(step(&mut s, 1_000, &mut c, &mut got, |g| g.bytes.contains("\"clients\"")));
    assert!(!step(&mut s, 30_999, &mut c, &mut got, |g| g.closed), "kept alive past the head timeout");
    assert!(step(&mut s, 31_000, &mut c, &mut got, |g| g.closed));
}

#[test]
fn a_stream_ends_at_its_timeout_between_events() {
    let mut s = server(Config { stream_timeout_secs: 10, heartbeat_secs: 0, ..Config::default() });
    let mut c = client(&s);
    let mut got = seen();
    c.write_all(SUBSCRIBE).unwrap();
    assert!(step(&mut s, 0, &mut c, &mut got, |g| g.bytes.contains("retry:")));
    assert!(!step(&mut s, 9_999, &mut c, &mut got, |g| g.closed));
    assert!(step(&mut s, 10_000, &mut c, &mut got, |g| g.closed));
}

#[test]
fn the_stream_demo_is_paced_by_its_delay() {
    let mut s = server(Config::default());
    let mut c = client(&s);
    let mut got = seen();
    c.write_all(b"GET /stream?text=ab&delay_ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(step(&mut s, 0, &mut c, &mut got, |g| g.bytes.contains("data: a\n")));
    assert!(!step(&mut s, 999, &mut c, &mut got, |g| g.bytes.contains("data: b")), "b not before 1 s");
    assert!(step(&mut s, 1_000, &mut c, &mut got, |g| g.bytes.contains("data: b\n")));
    assert!(!got.bytes.contains("[DONE]"));
    assert!(step(&mut s, 2_000, &mut c, &mut got, |g| g.bytes.contains("data: [DONE]") && g.closed));
}
