//! Proves the server does not allocate once it runs: a counting global allocator counts the
//! allocations made on the server's thread while real clients (over loopback) connect, publish
//! (broadcast, topic, targeted, from a host thread's Publisher), replay history, get heartbeats and stream timeouts, use /stream
//! and /stats, send bad requests and disconnect. The count is the assertion.

use std::net::SocketAddr;

#[path = "util/counting.rs"]
mod counting;
use counting::{Sub, count_during, publish, request, start_counted};

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

fn journal_path() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("zero-alloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("history")
}

fn start_server() -> (SocketAddr, tinysse::Publisher, std::thread::JoinHandle<()>) {
    let config = tinysse::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_clients: 64,
        heartbeat_secs: 1,
        stream_timeout_secs: 3,
        history: 16,
        request_buffers: 4,
        // The history file is on: appending, its one write per turn, rotation (a small
        // budget rotates often) and fdatasync must not allocate either.
        history_file: Some(journal_path()),
        history_file_bytes: 65_536,
        fsync: tinysse::Fsync::Always,
        ..Default::default()
    };
    start_counted(config)
}

/// One round of everything the server does; returns the last event id published.
fn workload(addr: SocketAddr, publisher: &tinysse::Publisher, round: u32) -> String {
    let mut all = Sub::open(addr, "/events", None);
    let mut topic = Sub::open(addr, "/events?topic=sensors/*", None);
    let mut alice = Sub::open(addr, "/sse?clientId=alice", None);
    let mut bob = Sub::open(addr, "/events?client=bob&topic=x", None);

    let id = publish(addr, &format!("data=hello+{round}"));
    let id = id.rsplit("\r\n\r\n").next().unwrap().trim().to_string();
    publish(addr, "data=t1&topic=sensors/t1&event=reading");
    publish(addr, "data=for+bob&client=bob");
    request(
        addr,
        "POST /sse/send HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 26\r\n\r\nclientId=alice&message=hey",
    );
    let raw = format!(
        "POST /events?event=raw&id=r{round} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 9\r\n\r\nline\nline"
    );
    request(addr, &raw);
    all.wait_for(&format!("id: r{round}\nevent: raw\ndata: line\ndata: line\n\n"));
    publisher.publish(tinysse::Event::new("from a host thread").topic("sensors/p")).unwrap();
    all.wait_for("data: from a host thread");
    topic.wait_for("data: t1");
    topic.wait_for(&format!("id: r{round}"));
    alice.wait_for("data: hey");
    bob.wait_for("data: for bob");
    assert!(!all.seen.contains("for bob") && !all.seen.contains("hey"));

    // Replay from a known id, and a gap for an unknown one.
    let mut replay = Sub::open(addr, "/events", Some(&id));
    replay.wait_for(&format!("id: r{round}"));
    let mut gap = Sub::open(addr, "/events?lastEventId=nope", None);
    gap.wait_for("event: gap");

    // Heartbeat (1 s), then the stream timeout (3 s) ends every stream.
    all.wait_for("\n:");
    all.wait_end();

    // Short requests: stats, /stream, errors, a pipelined pair on one keep-alive connection.
    assert!(request(addr, "GET /stats HTTP/1.0\r\n\r\n").contains("\"subscribers\""));
    assert!(request(addr, "GET /stream?text=ab%C3%A9&delay_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n").contains("data: [DONE]"));
    assert!(request(addr, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(request(addr, "BAD\r\n\r\n").starts_with("HTTP/1.1 400"));
    let two = request(
        addr,
        "GET /stats HTTP/1.1\r\nHost: x\r\n\r\nGET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(two.matches("HTTP/1.1 200").count(), 2);
    drop((topic, alice, bob, replay, gap));
    id
}

#[test]
fn no_allocation_after_start() {
    let (addr, publisher, server) = start_server();
    workload(addr, &publisher, 0);
    let counted = count_during(server, || {
        workload(addr, &publisher, 1);
        workload(addr, &publisher, 2);
    });
    assert_eq!(counted, 0, "allocations on the server thread after start-up");
}
