//! The library API as a host program uses it: Publisher from other threads, a full queue giving
//! the event back, request-scoped streams fed by host code, ShutdownHandle, --tick and the page.

mod util;

use std::time::Duration;
use tinysse::{Config, Event, SendError};

type Server = tinysse::Server;
use util::*;

fn config() -> Config {
    Config { listen: "127.0.0.1:0".parse().unwrap(), heartbeat_secs: 0, ..Config::default() }
}

/// Runs `server` on its own thread until the returned handle's `shutdown`.
fn spawn(mut server: Server) -> (std::net::SocketAddr, tinysse::ShutdownHandle, std::thread::JoinHandle<()>) {
    let addr = server.local_addr();
    let stop = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run().unwrap());
    (addr, stop, thread)
}

#[test]
fn publisher_from_other_threads_reaches_subscribers_by_topic() {
    let server = Server::new(config()).unwrap();
    let publisher = server.publisher();
    let (addr, stop, thread) = spawn(server);
    let mut temp = SseStream::open(addr, "/events?topic=sensors/temperature");
    let mut all = SseStream::open(addr, "/events?topic=sensors/*");
    let sensors: Vec<_> = ["temperature", "humidity"]
        .into_iter()
        .map(|name| {
            let p = publisher.clone();
            std::thread::spawn(move || {
                for i in 0..5 {
                    let data = format!("{name} {i}");
                    let topic = format!("sensors/{name}");
                    let mut event = Event::new(&data).event("reading").topic(&topic);
                    // A full queue gives the event back; retry it.
                    while let Err(SendError::Full(back)) = p.publish(event) {
                        event = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    for s in sensors {
        s.join().unwrap();
    }
    let got: Vec<String> = (0..5).map(|_| temp.next_event(T).data_str()).collect();
    assert_eq!(got, (0..5).map(|i| format!("temperature {i}")).collect::<Vec<_>>());
    let mut both: Vec<String> = (0..10).map(|_| all.next_event(T).data_str()).collect();
    both.sort();
    assert_eq!(both.len(), 10);
    assert!(both.iter().all(|d| d.starts_with("humidity") || d.starts_with("temperature")));
    stop.shutdown();
    thread.join().unwrap();
    // Streams ended by the shutdown; a stopped server refuses further events.
    assert!(temp.ends_after_retry(T));
    assert!(matches!(publisher.publish(Event::new("late")), Err(SendError::Stopped(_))));
}

#[test]
fn full_queue_and_bad_events_come_back_to_the_caller() {
    let server = Server::new(config()).unwrap();
    let publisher = server.publisher();
    // The loop is not running, so nothing drains the queue.
    let mut accepted = 0;
    let refused = loop {
        match publisher.publish(Event::new("x").id("same")) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted <= tinysse::QUEUE_LEN, "queue never filled");
    };
    assert_eq!(accepted, tinysse::QUEUE_LEN);
    assert_eq!(refused, SendError::Full(Event::new("x").id("same")));
    let big = "x".repeat(config().max_event_bytes + 1);
    assert!(matches!(publisher.publish(Event::new(&big)), Err(SendError::TooLarge(_))));
    assert!(matches!(publisher.publish(Event::new("x").event("a\nb")), Err(SendError::Invalid(..))));
    assert!(matches!(publisher.publish(Event::new("x").client("not ok")), Err(SendError::Invalid(..))));
    drop(server);
}

#[test]
fn request_scoped_stream_is_fed_by_host_code_then_ends() {
    let mut server = Server::new(config()).unwrap();
    let publisher = server.publisher();
    let (tx, rx) = std::sync::mpsc::channel();
    server
        .stream_route("/generate", move |req| {
            tx.send((req.id, req.param("prompt").unwrap_or("").to_string())).unwrap();
        })
        .unwrap();
    let (addr, stop, thread) = spawn(server);
    let mut s = SseStream::connect(addr, "/generate?prompt=tell+me").unwrap();
    assert_eq!(s.head.status, 200);
    assert!(
        s.head.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.contains("text/event-stream"))
    );
    let (id, prompt) = rx.recv_timeout(T).unwrap();
    assert_eq!(prompt, "tell me");
    for token in ["Once ", "upon ", "a ", "time"] {
        publisher.send_frame(id, token).unwrap();
        assert_eq!(s.next_event(T).data_str(), token, "each token arrives before the next is sent");
    }
    publisher.send_frame(id, "[DONE]").unwrap();
    publisher.end(id).unwrap();
    assert_eq!(s.next_event(T).data_str(), "[DONE]");
    assert!(s.next_frame(T).unwrap().is_none(), "the response ends");
    // The id is stale now: the host learns the stream is gone, nothing breaks.
    assert_eq!(publisher.send_frame(id, "ignored"), Err(SendError::Closed("ignored")));
    assert_eq!(publisher.end(id), Err(SendError::Closed(id)));
    assert_eq!(get(addr, "/stats").status, 200);
    assert_eq!(SseStream::connect(addr, "/generate").unwrap().head.status, 200);
    assert_eq!(request(addr, "POST", "/generate", None, b"").status, 405);
    stop.shutdown();
    thread.join().unwrap();
}

#[test]
fn tick_publishes_ping_with_the_time() {
    let server = util::Server::start(&["--tick", "1"]);
    let mut s = SseStream::open(server.addr, "/events");
    let ping = s.next_event(T);
    assert_eq!(ping.event.as_deref(), Some("ping"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as f64;
    let time = json_num(&ping.data_str(), "time").expect("{\"time\": N}");
    assert!((time - now).abs() < 5.0, "{time} vs {now}");
    assert!(ping.id.is_some(), "ticks take ids and enter history");
}

#[test]
fn built_in_page_is_self_contained() {
    let server = util::Server::start(&[]);
    let r = get(server.addr, "/");
    assert_eq!(r.status, 200);
    assert!(r.header_has("content-type", "text/html"));
    let page = r.text();
    for needle in ["import { subscribe } from '/tinysse.js'", "fetch('/events'"] {
        assert!(page.contains(needle), "page lacks {needle}");
    }
    let js = get(server.addr, "/tinysse.js");
    assert_eq!(js.status, 200);
    assert!(js.header_has("content-type", "text/javascript"));
    for needle in ["export function subscribe", "BroadcastChannel", "Last-Event-ID"] {
        assert!(js.text().contains(needle), "tinysse.js lacks {needle}");
    }
    // No external resources: the only URLs are the page's own (and one help text naming localhost).
    for text in [page, js.text()] {
        for (i, _) in text.match_indices("://") {
            let around = &text[i.saturating_sub(8)..(i + 20).min(text.len())];
            assert!(around.contains("localhost") || around.contains("http:// to"), "external URL? {around:?}");
        }
    }
}
