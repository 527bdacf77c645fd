//! The zero-allocation tests' harness: a global allocator that counts the allocations made on
//! threads that switched counting on (each test crate installs it), a server thread that counts
//! between two phases, and raw clients that do not go through the test helpers' buffering.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Forwards to the system allocator, counting on threads where `ON_SERVER_THREAD` is set.
pub struct Counting;

thread_local! {
    pub static ON_SERVER_THREAD: Cell<bool> = const { Cell::new(false) };
    pub static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ON_SERVER_THREAD.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

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
        ON_SERVER_THREAD.with(|on| on.set(true));
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
        ON_SERVER_THREAD.with(|on| on.set(false));
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
