//! Proves the server does not allocate once it runs in cluster mode: a counting global allocator
//! counts the allocations made on the server's thread, against a real redis-server (started here
//! on a free loopback port), while real clients (over loopback) publish over HTTP (answered once
//! Redis took the event), publish from a host thread's Publisher, send targeted events (to a
//! client held here, and to none), subscribe (with a client id: a claim and presence), replay
//! with Last-Event-ID and disconnect. The count is the assertion. Run with `--features cluster`.
#![cfg(feature = "cluster")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "util/counting.rs"]
mod counting;
use counting::{ALLOCATIONS, ON_SERVER_THREAD};

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// 0: warming up, 1: counting, 2: done.
static PHASE: AtomicU8 = AtomicU8::new(0);
static COUNTED: AtomicU64 = AtomicU64::new(u64::MAX);

/// A redis-server on a free loopback port, persistence off, killed when the test ends.
struct Redis(Child, u16);

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server installed (apt-get install redis-server)");
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis(child, port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(redis_port: u16) -> (SocketAddr, tinysse::Publisher, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let url = tinysse::RedisUrl::parse(&format!("redis://127.0.0.1:{redis_port}")).unwrap();
        let config = tinysse::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_clients: 64,
            heartbeat_secs: 1,
            history: 16,
            request_buffers: 4,
            redis: Some(url),
            redis_stream: format!("zero-alloc-{}", std::process::id()),
            ..Default::default()
        };
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

fn request(addr: SocketAddr, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn publish(addr: SocketAddr, form: &str) -> String {
    request(
        addr,
        &format!(
            "POST /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    )
}

struct Sub {
    sock: TcpStream,
    seen: String,
}

impl Sub {
    fn open(addr: SocketAddr, target: &str, last_id: Option<&str>) -> Sub {
        let mut sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let header = last_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
        sock.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n{header}\r\n").as_bytes()).unwrap();
        let mut sub = Sub { sock, seen: String::new() };
        sub.wait_for("retry: ");
        sub
    }

    /// Reads until `needle` has been seen (after what earlier waits consumed).
    fn wait_for(&mut self, needle: &str) {
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            let n = self.sock.read(&mut buf).expect("stream read");
            assert!(n > 0, "stream ended before {needle:?}; got {:?}", self.seen);
            self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
}

/// The body of a response read to its end.
fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b.trim())
}

/// One round of what the server does in cluster mode; returns the first event id published.
fn workload(addr: SocketAddr, publisher: &tinysse::Publisher, round: u32) -> String {
    let mut all = Sub::open(addr, "/events", None);
    let mut alice = Sub::open(addr, "/sse?clientId=alice", None);
    let mut bob = Sub::open(addr, "/events?client=bob", None);
    // Their claims reach Redis (the presence a targeted publish checks).
    std::thread::sleep(Duration::from_millis(200));

    let first = publish(addr, &format!("data=hello+{round}"));
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let id = body(&first).to_string();
    all.wait_for(&format!("id: {id}\ndata: hello {round}\n\n"));
    let own = publish(addr, &format!("data=mine&id=own{round}&event=e&topic=t"));
    assert!(own.starts_with("HTTP/1.1 200") && body(&own) == format!("own{round}"), "{own}");
    all.wait_for(&format!("id: own{round}\nevent: e\ndata: mine\n\n"));
    let to_bob = publish(addr, "data=for+bob&client=bob");
    assert!(to_bob.starts_with("HTTP/1.1 200"), "{to_bob}");
    let to_alice = request(
        addr,
        "POST /sse/send HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 26\r\n\r\nclientId=alice&message=hey",
    );
    assert!(to_alice.starts_with("HTTP/1.1 200"), "{to_alice}");
    let nobody = publish(addr, "data=x&client=nobody");
    assert!(nobody.starts_with("HTTP/1.1 404"), "{nobody}");
    bob.wait_for("data: for bob");
    alice.wait_for("data: hey");
    publisher.publish(tinysse::Event::new(&format!("from a host thread {round}"))).unwrap();
    all.wait_for(&format!("data: from a host thread {round}"));
    assert!(!all.seen.contains("for bob") && !all.seen.contains("hey"));

    // Replay from a known id; a heartbeat (1 s).
    let mut replay = Sub::open(addr, "/events", Some(&id));
    replay.wait_for(&format!("id: own{round}"));
    all.wait_for("\n:");
    assert!(request(addr, "GET /stats HTTP/1.0\r\n\r\n").contains("\"connected\": true"));
    // Disconnects: alice's client id leaves this instance's presence set.
    drop((all, alice, bob, replay));
    std::thread::sleep(Duration::from_millis(100));
    id
}

#[test]
fn no_allocation_after_start_in_cluster_mode() {
    let redis = Redis::start();
    let (addr, publisher, server) = start_server(redis.1);
    // Warm-up, once the link is up.
    let until = Instant::now() + Duration::from_secs(10);
    while !request(addr, "GET /stats HTTP/1.0\r\n\r\n").contains("\"connected\": true") {
        assert!(Instant::now() < until, "never connected to redis");
        std::thread::sleep(Duration::from_millis(20));
    }
    workload(addr, &publisher, 0);
    PHASE.store(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    workload(addr, &publisher, 1);
    workload(addr, &publisher, 2);
    PHASE.store(2, Ordering::SeqCst);
    server.join().unwrap();
    drop(redis);
    assert_eq!(COUNTED.load(Ordering::SeqCst), 0, "allocations on the server thread after start-up");
}
