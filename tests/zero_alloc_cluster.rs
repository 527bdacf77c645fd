//! Proves the server does not allocate once it runs in cluster mode: a counting global allocator
//! counts the allocations made on the server's thread, against a real redis-server (started here
//! on a free loopback port), while real clients (over loopback) publish over HTTP (answered once
//! Redis took the event), publish from a host thread's Publisher, send targeted events (to a
//! client held here, and to none), subscribe (with a client id: a claim and presence), replay
//! with Last-Event-ID and disconnect. The count is the assertion. Run with `--features cluster`.
#![cfg(feature = "cluster")]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "util/counting.rs"]
mod counting;
use counting::{Sub, count_during, publish, request, start_counted};

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

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
    start_counted(config)
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
    let counted = count_during(server, || {
        workload(addr, &publisher, 1);
        workload(addr, &publisher, 2);
    });
    drop(redis);
    assert_eq!(counted, 0, "allocations on the server thread after start-up");
}
