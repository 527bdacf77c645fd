//! Reliable delivery: Last-Event-ID replay and gaps, topics, per-client sends, slow consumers,
//! stream timeouts, and a real EventSource client reconnecting through all of them.

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::*;

/// Subscribes with a `Last-Event-ID` header.
fn open_after(addr: std::net::SocketAddr, path: &str, last_id: &str) -> SseStream {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {last_id}\r\n\r\n");
    let mut s = SseStream::connect_raw(addr, req.as_bytes()).unwrap();
    assert_eq!(s.head.status, 200);
    let f = s.next_frame(T).unwrap().unwrap();
    assert!(f.retry.is_some(), "{:?}", f.raw);
    s
}

fn v(xs: &[&String]) -> Vec<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

fn ids(s: &mut SseStream, n: usize) -> Vec<String> {
    (0..n).map(|_| s.next_event(T).id.unwrap_or_default()).collect()
}

#[test]
fn replay_after_last_event_id_then_live_without_gap_or_duplicate() {
    let server = Server::start(&[]);
    let a = server.addr;
    let published: Vec<String> = (0..5).map(|i| publish(a, &format!("e{i}"))).collect();
    let mut s = open_after(a, "/events", &published[1]);
    let live = publish(a, "live");
    assert_eq!(ids(&mut s, 4), v(&[&published[2], &published[3], &published[4], &live]));
    // Query parameter forms, for clients that cannot set headers.
    for key in ["lastEventId", "last_event_id"] {
        let mut q = SseStream::open(a, &format!("/events?{key}={}", published[3]));
        assert_eq!(ids(&mut q, 2), v(&[&published[4], &live]));
    }
    // The header wins over the query parameter.
    let mut both = open_after(a, &format!("/events?lastEventId={}", published[0]), &published[3]);
    assert_eq!(ids(&mut both, 1), v(&[&published[4]]));
}

#[test]
fn unknown_or_too_old_id_starts_with_a_gap_event() {
    let server = Server::start(&["--history", "4"]);
    let a = server.addr;
    // Empty history: oldest is null.
    let mut s = SseStream::open(a, "/events?lastEventId=from-an-earlier-run");
    let gap = s.next_event(T);
    assert_eq!((gap.event.as_deref(), gap.id.as_deref()), (Some("gap"), None), "{:?}", gap.raw);
    assert_eq!(gap.data_str(), r#"{"last_event_id": "from-an-earlier-run", "oldest": null}"#);

    let published: Vec<String> = (0..10).map(|i| publish(a, &format!("e{i}"))).collect();
    let mut s = open_after(a, "/events", &published[0]);
    let gap = s.next_event(T);
    assert_eq!(gap.event.as_deref(), Some("gap"));
    assert_eq!(gap.data_str(), format!(r#"{{"last_event_id": "{}", "oldest": "{}"}}"#, published[0], published[6]));
    assert_eq!(ids(&mut s, 4), published[6..]);
}

#[test]
fn topics_exact_prefix_and_everything() {
    let server = Server::start(&[]);
    let a = server.addr;
    let mut exact = SseStream::open(a, "/events?topic=a&topic=b");
    let mut prefix = SseStream::open(a, "/events?topic=sensors/*");
    let mut all = SseStream::open(a, "/events");
    publish_ok(a, &[("data", "to-a"), ("topic", "a")]);
    publish_ok(a, &[("data", "to-c"), ("topic", "c")]);
    publish_ok(a, &[("data", "to-temp"), ("topic", "sensors/temp")]);
    publish_ok(a, &[("data", "to-b"), ("topic", "b")]);
    publish_ok(a, &[("data", "untopiced")]);
    let data = |s: &mut SseStream, n| (0..n).map(|_| s.next_event(T).data_str()).collect::<Vec<_>>();
    assert_eq!(data(&mut exact, 3), ["to-a", "to-b", "untopiced"]);
    assert_eq!(data(&mut prefix, 2), ["to-temp", "untopiced"]);
    assert_eq!(data(&mut all, 5), ["to-a", "to-c", "to-temp", "to-b", "untopiced"]);

    // Bounds: at most 8 topics, each at most 64 bytes.
    let nine = (0..9).map(|i| format!("topic=t{i}")).collect::<Vec<_>>().join("&");
    assert_eq!(get(a, &format!("/events?{nine}")).status, 400);
    assert_eq!(get(a, &format!("/events?topic={}", "x".repeat(65))).status, 400);
    let eight = (0..8).map(|i| format!("topic=t{i}")).collect::<Vec<_>>().join("&");
    SseStream::open(a, &format!("/events?{eight}&topic=&"));
}

#[test]
fn targeted_events_reach_only_their_client_and_replay_on_reconnect() {
    let server = Server::start(&[]);
    let a = server.addr;
    let mut alice = SseStream::open(a, "/events?client=alice");
    let mut other = SseStream::open(a, "/events");
    let before = publish(a, "before");
    let secret = publish_ok(a, &[("data", "for alice"), ("client", "alice")]);
    let after = publish(a, "after");
    assert_eq!(ids(&mut alice, 3), v(&[&before, &secret, &after]));
    assert_eq!(ids(&mut other, 2), v(&[&before, &after]));

    // Not connected: 404, and nothing stored (nobody ever sees it, published is unchanged).
    let published = stat(a, "published");
    let r = publish_form(a, &[("data", "lost"), ("client", "carol")]);
    assert_eq!((r.status, r.text().contains("client not connected")), (404, true));
    assert_eq!(stat(a, "published"), published);

    // Alice reconnects with her last id before the secret: replayed to her, not to others.
    drop(alice);
    let mut alice2 = open_after(a, "/events?client=alice", &before);
    assert_eq!(ids(&mut alice2, 2), v(&[&secret, &after]));
    let mut eve = open_after(a, "/events?client=eve", &before);
    assert_eq!(ids(&mut eve, 1), v(&[&after]));

    // A new stream with the same id replaces the older one, which is closed.
    let mut alice3 = SseStream::open(a, "/events?client=alice");
    assert!(alice2.ends_after_retry(T), "older stream should be closed");
    let last = publish_ok(a, &[("data", "again"), ("client", "alice")]);
    assert_eq!(ids(&mut alice3, 1), v(&[&last]));

    // Malformed client ids are refused.
    assert_eq!(get(a, "/events?client=bad%20id").status, 400);
    assert_eq!(get(a, &format!("/events?client={}", "x".repeat(65))).status, 400);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn slow_consumer_is_dropped_while_others_get_everything() {
    let server = Server::start(&["--max-event-bytes", "65536", "--history", "16"]);
    let a = server.addr;
    // Connects and never reads again.
    let stalled = SseStream::open(a, "/events");
    let mut fast = SseStream::open(a, "/events");
    let body = "x".repeat(60_000);
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for _ in 0..900 {
            tx.send(fast.next_event(T).id.unwrap()).unwrap();
        }
    });
    let mut published = Vec::new();
    let mut got = Vec::new();
    let mut rss = Vec::new();
    // Round 0 outruns what the stalled socket's kernel buffers (a few MB) and the ring's slots
    // (history + 256 slack) can absorb; round 1 shows memory staying flat afterwards.
    for (round, batches) in [(0, 60), (1, 30)] {
        for batch in 0..batches {
            for _ in 0..10 {
                let r = publish_raw(a, "", Some("text/plain"), body.as_bytes());
                assert_eq!(r.status, 200);
                published.push(id_of(&r));
            }
            // Paced by the reading subscriber (a debug-built test parser), never by the stalled one.
            for _ in 0..10 {
                got.push(rx.recv_timeout(T).unwrap_or_else(|_| panic!("fast subscriber stalled in batch {batch}")));
            }
        }
        if round == 0 {
            wait_stat(a, "dropped_slow", 1.0, T);
        }
        rss.push(rss_kib(server.pid()));
    }
    reader.join().unwrap();
    assert_eq!(got, published, "the fast subscriber got every event, in order");
    assert_eq!(stat(a, "dropped_slow"), 1.0);
    assert!(server.log_text().contains("dropped slow subscriber"));
    // Memory stays flat while events keep flowing past the dropped subscriber.
    assert!(rss[1] < rss[0] + 2048, "RSS grew from {} KiB to {} KiB", rss[0], rss[1]);
    drop(stalled);
}

#[test]
fn stream_timeout_ends_cleanly_and_reconnect_misses_nothing() {
    let server = Server::start(&["--stream-timeout", "1", "--heartbeat", "0"]);
    let a = server.addr;
    let mut s = SseStream::open(a, "/events");
    let first = publish(a, "first");
    assert_eq!(ids(&mut s, 1), v(&[&first]));
    let started = Instant::now();
    assert!(s.ends_after_retry(T), "stream should end");
    assert!(started.elapsed() < Duration::from_secs(5));
    let missed = publish(a, "while away");
    let mut again = open_after(a, "/events", &first);
    assert_eq!(ids(&mut again, 1), v(&[&missed]));
}

/// Installs the npm EventSource client next to its script if it is not there yet.
fn eventsource_client() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    if !dir.join("node_modules/eventsource").exists() {
        let (status, _, err) = run_bounded(
            {
                let mut c = Command::new("npm");
                c.args(["install", "--no-audit", "--no-fund", "--silent"]).current_dir(&dir);
                c
            },
            Duration::from_secs(120),
        );
        assert!(status.success(), "npm install in tests/js failed: {err}");
    }
    dir.join("collect.mjs")
}

#[test]
fn real_eventsource_reconnects_after_timeout_and_forced_close_and_gets_every_event_once() {
    let script = eventsource_client();
    let server = Server::start(&["--stream-timeout", "1", "--retry", "100"]);
    let a = server.addr;
    let total = 40;
    let mut child = Command::new("node")
        .arg(&script)
        .arg(format!("http://{a}/events?client=es1"))
        .arg(total.to_string())
        .arg("30000")
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("\"open\""));

    let mut published = Vec::new();
    for i in 0..total {
        published.push(publish(a, &format!("n{i}")));
        std::thread::sleep(Duration::from_millis(75));
        if i == total / 2 {
            // Forced close: a new stream with the same client id replaces the EventSource's,
            // whose reconnect (same id, Last-Event-ID) then replaces this one.
            let _intruder = SseStream::open(a, "/events?client=es1");
        }
    }
    let mut opens = 1;
    let mut got = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("\"open\"") {
            opens += 1;
        } else if line.contains("\"message\"") {
            let id = line.split("\"id\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();
            got.push(id);
        }
    }
    let status = wait_child(&mut child, T).expect("node exits");
    assert!(status.success(), "EventSource client timed out; got {got:?}");
    assert_eq!(got, published, "every event exactly once, in order");
    assert!(opens >= 3, "expected reconnects after the stream timeout and the forced close, saw {opens} opens");
}

/// More subscribers than one flush chunk (512) and a burst of pipelined publishes: events
/// published while a pass is under way need another pass, which must run without waiting for
/// an unrelated wakeup (heartbeats are off, so nothing else would come).
#[test]
fn bursts_reach_every_subscriber_of_a_multi_chunk_pass_without_other_wakeups() {
    use std::io::{Read, Write};
    let server = Server::start(&["--heartbeat", "0", "--max-clients", "700"]);
    let a = server.addr;
    let mut subs: Vec<std::net::TcpStream> = (0..600)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(a).unwrap();
            s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s
        })
        .collect();
    wait_stat(a, "subscribers", 600.0, T);
    let burst: String =
        (0..60).map(|i| format!("POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ne{i:03}")).collect();
    let mut publisher = Conn::open(a);
    publisher.send(burst.as_bytes());
    for _ in 0..60 {
        assert_eq!(publisher.read_response().unwrap().status, 200);
    }
    let started = Instant::now();
    for (i, s) in subs.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 8192];
        while !seen.contains("data: e059\n") {
            let n = s
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("subscriber {i} stalled after {:?}: {e}", started.elapsed()));
            assert!(n > 0, "subscriber {i} closed");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert_eq!(seen.matches("data: e").count(), 60, "subscriber {i}");
    }
}
