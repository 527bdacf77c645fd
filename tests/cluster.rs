//! Cluster mode against a real redis-server (started here on a free loopback port, persistence
//! off): several tinysse instances on one stream deliver every event everywhere with the same
//! ids, answer publishes only once Redis took them, replay history across instances, route
//! targeted events to whichever instance holds the client, and keep streams open while Redis
//! is down. Needs Debian's redis-server (.ci/run installs it); run with `--features cluster`.
#![cfg(feature = "cluster")]

mod util;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use util::*;

struct Redis {
    child: Option<Child>,
    port: u16,
    dir: std::path::PathBuf,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("tinysse-cluster-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis { child: None, port, dir };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &self.dir.display().to_string(), "--logfile", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server installed (apt-get install redis-server)");
        self.child = Some(child);
        let until = Instant::now() + T;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < until, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn instance(redis: &Redis, stream: &str, extra: &[&str]) -> Server {
    let url = redis.url();
    let mut args = vec!["--redis", url.as_str(), "--redis-stream", stream];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    assert!(wait_connected(s.addr), "not connected: {}", s.log_text());
    s
}

fn wait_connected(addr: std::net::SocketAddr) -> bool {
    let until = Instant::now() + T;
    while Instant::now() < until {
        if stats(addr).contains("\"connected\": true") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The next event, past a `retry:` frame.
fn event(s: &mut SseStream) -> Frame {
    loop {
        let f = s.next_event(T);
        if f.is_event() {
            return f;
        }
    }
}

fn ids(s: &mut SseStream, n: usize) -> Vec<String> {
    (0..n).map(|_| event(s).id.unwrap_or_default()).collect()
}

#[test]
fn every_instance_delivers_every_event_with_the_same_ids() {
    let redis = Redis::start();
    let (a, b) = (instance(&redis, "t1", &[]), instance(&redis, "t1", &[]));
    assert!(wait_connected(a.addr) && wait_connected(b.addr));
    let mut sa = SseStream::open(a.addr, "/events");
    let mut sb = SseStream::open(b.addr, "/events");
    let mut acked = Vec::new();
    for i in 0..20 {
        let on = if i % 2 == 0 { a.addr } else { b.addr };
        acked.push(publish(on, &format!("e{i}")));
    }
    let got_a = ids(&mut sa, 20);
    let got_b = ids(&mut sb, 20);
    assert_eq!(got_a, got_b, "same ids, same order on both instances");
    let mut sorted = acked.clone();
    sorted.sort_by_key(|id| id.split_once('-').map(|(m, s)| (m.parse::<u64>().unwrap(), s.parse::<u64>().unwrap())));
    assert_eq!(got_a, sorted, "the ids the publishers were answered with, in stream order");
    // A publisher's own id is kept verbatim.
    let own = publish_ok(b.addr, &[("data", "x"), ("id", "my-id-1")]);
    assert_eq!(own, "my-id-1");
    assert_eq!(sa.next_event(T).id.as_deref(), Some("my-id-1"));
    // Replay on another instance than the one the client saw the id on.
    let mut again = SseStream::connect_raw(
        b.addr,
        format!("GET /events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {}\r\n\r\n", got_a[14]).as_bytes(),
    )
    .unwrap();
    assert_eq!(ids(&mut again, 6), [&got_a[15..], &["my-id-1".to_string()][..]].concat());
    assert!(stats(a.addr).contains("\"cluster\": {\"connected\": true"), "{}", stats(a.addr));
    assert!(get(a.addr, "/metrics").text().contains("tinysse_cluster_connected 1"));
}

#[test]
fn a_new_instance_loads_history_from_the_stream() {
    let redis = Redis::start();
    let a = instance(&redis, "t2", &[]);
    assert!(wait_connected(a.addr));
    let published: Vec<String> = (0..10).map(|i| publish(a.addr, &format!("h{i}"))).collect();
    let b = instance(&redis, "t2", &["--history", "5"]);
    assert!(wait_connected(b.addr));
    wait_stat(b.addr, "history", 5.0, T);
    let mut s = SseStream::open(b.addr, "/events?last=3");
    assert_eq!(ids(&mut s, 3), published[7..]);
    // An id older than what is kept: a gap.
    let mut old = SseStream::connect_raw(
        b.addr,
        format!("GET /events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {}\r\n\r\n", published[1]).as_bytes(),
    )
    .unwrap();
    assert_eq!(event(&mut old).event.as_deref(), Some("gap"));
}

#[test]
fn targeted_events_reach_the_client_wherever_it_streams() {
    let redis = Redis::start();
    let (a, b) = (instance(&redis, "t3", &[]), instance(&redis, "t3", &[]));
    assert!(wait_connected(a.addr) && wait_connected(b.addr));
    let mut alice = SseStream::open(b.addr, "/sse?clientId=alice");
    std::thread::sleep(Duration::from_millis(300)); // its claim reaches Redis
    let r = post_form(a.addr, "/sse/send", &[("clientId", "alice"), ("message", "hi")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(alice.next_event(T).data_str(), "hi");
    let r = post_form(a.addr, "/sse/send", &[("clientId", "nobody"), ("message", "hi")]);
    assert_eq!(r.status, 404, "{}", r.text());
    // A second stream with the same id on the other instance replaces the first.
    let mut again = SseStream::open(a.addr, "/sse?clientId=alice");
    assert!(alice.ends_after_retry(T), "the older stream ends");
    let r = post_form(b.addr, "/sse/send", &[("clientId", "alice"), ("message", "second")]);
    assert_eq!(r.status, 200);
    assert_eq!(again.next_event(T).data_str(), "second");
}

#[test]
fn redis_down_keeps_streams_open_and_publishes_get_503() {
    let mut redis = Redis::start();
    let a = instance(&redis, "t4", &["--heartbeat", "1"]);
    assert!(wait_connected(a.addr));
    let mut s = SseStream::open(a.addr, "/events");
    let first = publish(a.addr, "before");
    assert_eq!(s.next_event(T).id.as_deref(), Some(first.as_str()));
    redis.stop();
    let until = Instant::now() + T;
    let r = loop {
        let r = publish_form(a.addr, &[("data", "during")]);
        if r.status != 200 || Instant::now() > until {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    // Heartbeats go on: the stream is open.
    let f = s.next_frame(secs(3.0)).unwrap().expect("stream still open");
    assert!(f.is_comment_only(), "{f:?}");
    redis.spawn();
    assert!(wait_connected(a.addr), "reconnects: {}", a.log_text());
    let after = publish(a.addr, "after");
    assert_eq!(s.next_event(T).id.as_deref(), Some(after.as_str()));
    let warned = a.logs().iter().filter(|l| l.contains("WARN") && l.contains("redis")).count();
    assert!(warned <= 3, "rate-limited warnings: {}", a.log_text());
}

#[test]
fn bad_urls_exit_2_without_showing_the_password() {
    for bad in ["http://x:1", "redis://:secret@host:99999", "rediss://h:1"] {
        let (st, _out, err) = run_bounded(
            {
                let mut c = Server::command(&[]);
                c.args(["--redis", bad]);
                c
            },
            T,
        );
        assert_eq!(st.code(), Some(2), "{bad}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
}
