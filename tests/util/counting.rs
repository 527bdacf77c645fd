//! The zero-allocation tests' harness: a global allocator that counts the allocations made on
//! threads that switched counting on (each test crate installs it), a server thread that counts
//! between two phases, and raw clients that do not go through the test helpers' buffering.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// The allocator itself, shared with the journal's unit test.
#[path = "../../src/mem/counting.rs"]
mod alloc;
pub use alloc::{ALLOCATIONS, COUNTING, Counting};

/// 0: warming up, 1: counting, 2: done.
pub static PHASE: AtomicU8 = AtomicU8::new(0);
/// Allocations counted on the server's thread between phases 1 and 2.
pub static COUNTED: AtomicU64 = AtomicU64::new(u64::MAX);

/// Runs a server built from `config` on its own thread, which counts its allocations from
/// `PHASE` 1 to 2 (then stops the server).
pub fn start_counted(config: tinysse::Config) -> (SocketAddr, tinysse::Publisher, JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut server = tinysse::Server::new(config).expect("server starts");
        tx.send((server.local_addr(), server.publisher())).unwrap();
        COUNTING.with(|on| on.set(true));
        let mut base = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            server.poll(Some(Duration::from_millis(5))).expect("poll");
            match PHASE.load(Ordering::SeqCst) {
                1 if base.is_none() => base = Some(ALLOCATIONS.with(|n| n.get())),
                2 => {
                    let now = ALLOCATIONS.with(|n| n.get());
                    COUNTED.store(now - base.unwrap_or(now), Ordering::SeqCst);
                    break;
                }
                _ => {}
            }
        }
        COUNTING.with(|on| on.set(false));
        server.shutdown();
    });
    let (addr, publisher) = rx.recv().unwrap();
    (addr, publisher, handle)
}

/// Runs `rounds` while the server thread counts, stops the server and returns the count.
pub fn count_during(server: JoinHandle<()>, rounds: impl FnOnce()) -> u64 {
    PHASE.store(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    rounds();
    PHASE.store(2, Ordering::SeqCst);
    server.join().unwrap();
    COUNTED.load(Ordering::SeqCst)
}

/// One request on its own connection, read to its end.
pub fn request(addr: SocketAddr, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A form publish on its own connection.
pub fn publish(addr: SocketAddr, form: &str) -> String {
    request(
        addr,
        &format!(
            "POST /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    )
}

/// A raw subscriber: what it has read so far.
pub struct Sub {
    pub sock: TcpStream,
    pub seen: String,
}

impl Sub {
    pub fn open(addr: SocketAddr, target: &str, last_id: Option<&str>) -> Sub {
        let mut sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let header = last_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
        sock.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n{header}\r\n").as_bytes()).unwrap();
        let mut sub = Sub { sock, seen: String::new() };
        sub.wait_for("retry: ");
        sub
    }

    /// Reads until `needle` has been seen (after what earlier waits consumed).
    pub fn wait_for(&mut self, needle: &str) {
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            let n = self.sock.read(&mut buf).expect("stream read");
            assert!(n > 0, "stream ended before {needle:?}; got {:?}", self.seen);
            self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    pub fn wait_end(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) => panic!("stream did not end: {e}"),
            }
        }
    }
}
