//! Event streams: headers, preamble, wire format, heartbeats, targeted
//! sends, the /stream demo route, the full-server case.
mod util;
use std::thread;
use std::time::{Duration, Instant};
use util::*;

#[test]
fn stream_head_and_retry_preamble() {
    let s = Server::start(&[]);
    let mut st = SseStream::connect(s.addr, "/events").unwrap();
    let h = &st.head;
    assert_eq!(h.status, 200);
    let hv = |n: &str| h.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.to_ascii_lowercase());
    assert!(hv("content-type").is_some_and(|v| v.starts_with("text/event-stream")), "{:?}", h.headers);
    assert_eq!(hv("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(hv("x-accel-buffering").as_deref(), Some("no"));
    assert_eq!(hv("content-length"), None, "stream must not have Content-Length");
    assert_eq!(hv("access-control-allow-origin").as_deref(), Some("*"));
    let f = st.next_frame(T).unwrap().expect("preamble");
    assert_eq!(f.raw, "retry: 3000\n\n", "body must start with the retry preamble");
}

#[test]
fn retry_flag_sets_preamble() {
    let s = Server::start(&["--retry", "750"]);
    let mut st = SseStream::connect(s.addr, "/events").unwrap();
    assert_eq!(st.next_frame(T).unwrap().unwrap().raw, "retry: 750\n\n");
}

#[test]
fn published_event_wire_format() {
    let s = Server::start(&[]);
    let mut st = SseStream::open(s.addr, "/events");
    let id = publish_ok(s.addr, &[("data", "hello"), ("event", "greet")]);
    assert_eq!(st.event().raw, format!("id: {id}\nevent: greet\ndata: hello\n\n"));
    let id = publish(s.addr, "plain");
    assert_eq!(st.event().raw, format!("id: {id}\ndata: plain\n\n"));
    publish_ok(s.addr, &[("data", "mine"), ("id", "custom-1")]);
    assert_eq!(st.event().raw, "id: custom-1\ndata: mine\n\n");
}

#[test]
fn multiline_data_splits_into_data_lines() {
    let s = Server::start(&[]);
    let mut st = SseStream::open(s.addr, "/events");
    let cases: &[(&[u8], &str)] = &[
        (b"a\nb", "data: a\ndata: b\n"),
        (b"a\r\nb", "data: a\ndata: b\n"),
        (b"a\rb", "data: a\ndata: b\n"),
        (b"a\r\n\r\nb", "data: a\ndata: \ndata: b\n"),
        (b"a\n\rb", "data: a\ndata: \ndata: b\n"),
        (b"tail\n", "data: tail\ndata: \n"),
        (b"tail\r\n", "data: tail\ndata: \n"),
        (b"", "data: \n"),
        (b"\n", "data: \ndata: \n"),
    ];
    for (body, want) in cases {
        let r = publish_raw(s.addr, "", Some("text/plain"), body);
        assert_eq!(r.status, 200, "{body:?}: {:?}", r.text());
        let id = id_of(&r);
        assert_eq!(st.event().raw, format!("id: {id}\n{want}\n"), "raw body {:?}", String::from_utf8_lossy(body));
    }
    // the same through a form body
    let id = publish_ok(s.addr, &[("data", "x\r\ny\rz\n")]);
    assert_eq!(st.event().raw, format!("id: {id}\ndata: x\ndata: y\ndata: z\ndata: \n\n"));
    let r = post_form_raw(s.addr, "/events", "data=");
    let id = id_of(&r);
    assert_eq!(st.event().raw, format!("id: {id}\ndata: \n\n"));
}

#[test]
fn form_is_percent_decoded_raw_body_is_not() {
    let s = Server::start(&[]);
    let mut st = SseStream::open(s.addr, "/events");
    post_form_raw(s.addr, "/events", "data=hello+world%21%20%C3%A9%F0%9F%98%80&event=a+b%2Fc");
    let f = st.event();
    assert_eq!(f.data, vec!["hello world! é😀"]);
    assert_eq!(f.event.as_deref(), Some("a b/c"));
    // raw body: taken verbatim; fields from the query string (decoded)
    let r = publish_raw(s.addr, "event=q+ev%21&id=rid", Some("text/plain"), b"raw+body%20&data=no");
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_eq!(st.event().raw, "id: rid\nevent: q ev!\ndata: raw+body%20&data=no\n\n");
    // no content type at all: also raw
    let r = publish_raw(s.addr, "", None, b"data=not-a-form");
    let id = id_of(&r);
    assert_eq!(st.event().raw, format!("id: {id}\ndata: data=not-a-form\n\n"));
    // form content type with a charset parameter is still a form
    let r = request(s.addr, "POST", "/events", Some("application/x-www-form-urlencoded; charset=UTF-8"), b"data=f%26g");
    assert_eq!(r.status, 200);
    assert_eq!(st.event().data, vec!["f&g"]);
}

#[test]
fn events_reach_all_subscribers_in_order() {
    let s = Server::start(&[]);
    let mut subs: Vec<_> = (0..3).map(|_| SseStream::open(s.addr, "/events")).collect();
    let ids: Vec<_> = (0..5).map(|i| publish(s.addr, &format!("m{i}"))).collect();
    for sub in subs.iter_mut() {
        for (i, id) in ids.iter().enumerate() {
            let f = sub.event();
            assert_eq!((f.id.as_deref(), f.data_str()), (Some(id.as_str()), format!("m{i}")));
        }
    }
}

#[test]
fn heartbeat_comment_on_idle_stream() {
    let s = Server::start(&["--heartbeat", "1"]);
    let mut st = SseStream::open(s.addr, "/events");
    let f = st.next_frame(secs(5.0)).expect("a heartbeat within 5 s").expect("stream ended");
    assert!(f.is_comment_only(), "expected a comment frame, got {:?}", f.raw);
    assert!(f.raw.starts_with(':') && f.raw.ends_with("\n\n"), "{:?}", f.raw);
    // and it keeps coming
    let f = st.next_frame(secs(5.0)).expect("a second heartbeat").expect("stream ended");
    assert!(f.is_comment_only(), "{:?}", f.raw);
}

#[test]
fn no_heartbeat_while_events_flow() {
    let s = Server::start(&["--heartbeat", "2"]);
    let mut st = SseStream::open(s.addr, "/events");
    let addr = s.addr;
    let n = 20; // one every 200 ms for ~4 s (twice the heartbeat interval)
    let publisher = thread::spawn(move || {
        for i in 0..n {
            publish(addr, &format!("tick{i}"));
            thread::sleep(Duration::from_millis(200));
        }
    });
    let mut comments = Vec::new();
    let mut got = 0;
    while got < n {
        let f = st.next_frame(secs(10.0)).expect("frame").expect("stream ended");
        if f.is_comment_only() {
            comments.push(f.raw);
        } else {
            assert_eq!(f.data_str(), format!("tick{got}"));
            got += 1;
        }
    }
    publisher.join().unwrap();
    assert!(comments.is_empty(), "heartbeats sent although events flowed every 200 ms: {comments:?}");
}

#[test]
fn seed_routes_sse_and_send_target_one_client() {
    let s = Server::start(&[]);
    let mut alice = SseStream::open(s.addr, "/sse?clientId=alice");
    let mut bob = SseStream::open(s.addr, "/sse?clientId=bob");
    let mut anon = SseStream::open(s.addr, "/events");

    let r = post_form(s.addr, "/sse/send", &[("clientId", "alice"), ("message", "for alice")]);
    assert_eq!(r.status, 200, "{:?}", r.text());
    let marker = publish(s.addr, "broadcast");

    assert_eq!(alice.event().data_str(), "for alice");
    assert_eq!(alice.event().id.as_deref(), Some(marker.as_str()));
    // others see only the broadcast: its arrival first proves they got nothing before it
    for (name, st) in [("bob", &mut bob), ("anon", &mut anon)] {
        let f = st.event();
        assert_eq!(f.data_str(), "broadcast", "{name} got a message for alice");
    }
}

#[test]
fn sse_send_with_query_parameters() {
    let s = Server::start(&[]);
    let mut alice = SseStream::open(s.addr, "/sse?clientId=alice");
    // clientId and message in the query string, empty body without a content type
    let r = request(s.addr, "POST", "/sse/send?clientId=alice&message=second+one", None, b"");
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_eq!(alice.event().data_str(), "second one");
}

#[test]
fn targeted_publish_via_events_client_field() {
    let s = Server::start(&[]);
    let mut alice = SseStream::open(s.addr, "/events?client=alice");
    let mut bob = SseStream::open(s.addr, "/events?client=bob");
    let id = publish_ok(s.addr, &[("data", "secret"), ("client", "alice"), ("event", "dm")]);
    publish(s.addr, "all");
    assert_eq!(alice.event().raw, format!("id: {id}\nevent: dm\ndata: secret\n\n"));
    assert_eq!(alice.event().data_str(), "all");
    assert_eq!(bob.event().data_str(), "all", "bob saw alice's event");
    // /events?client=... and /sse?clientId=... are the same registry
    let r = post_form(s.addr, "/sse/send", &[("clientId", "bob"), ("message", "via seed")]);
    assert_eq!(r.status, 200);
    assert_eq!(bob.event().data_str(), "via seed");
    // raw publish, client in the query
    let r = publish_raw(s.addr, "client=bob", Some("text/plain"), b"raw dm");
    assert_eq!(r.status, 200);
    assert_eq!(bob.event().data_str(), "raw dm");
}

#[test]
fn sse_send_to_disconnected_client_is_404() {
    let s = Server::start(&[]);
    let st = SseStream::open(s.addr, "/sse?clientId=carol");
    let r = post_form(s.addr, "/sse/send", &[("clientId", "carol"), ("message", "hi")]);
    assert_eq!(r.status, 200, "{:?}", r.text());
    drop(st);
    // after the disconnect is noticed the client is gone
    let deadline = Instant::now() + secs(5.0);
    let r = loop {
        let r = post_form(s.addr, "/sse/send", &[("clientId", "carol"), ("message", "hi")]);
        if r.status != 200 || Instant::now() > deadline {
            break r;
        }
        thread::sleep(Duration::from_millis(25));
    };
    assert_eq!(r.status, 404, "{:?}", r.text());
    assert!(r.text().contains("client not connected"), "{:?}", r.text());
}

fn stream_body(addr: std::net::SocketAddr, query: &str) -> (Response, Duration) {
    let t0 = Instant::now();
    let mut c = Conn::open(addr);
    c.send(format!("GET /stream{query} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let r = c.read_response().expect("read /stream to its end");
    (r, t0.elapsed())
}

fn frames_for(chars: &str) -> String {
    let mut s: String = chars.chars().map(|c| format!("data: {c}\n\n")).collect();
    s += "data: [DONE]\n\n";
    s
}

#[test]
fn stream_route_multibyte_text() {
    let s = Server::start(&[]);
    for delay in ["0", "10"] {
        let (r, took) = stream_body(s.addr, &format!("?text=h%C3%A9llo%F0%9F%98%80&delay_ms={delay}"));
        assert_eq!(r.status, 200);
        assert!(r.header_has("content-type", "text/event-stream"), "{:?}", r.headers);
        assert_eq!(r.text(), frames_for("héllo😀"), "delay_ms={delay}");
        assert!(took < secs(8.0), "took {took:?}");
    }
}

#[test]
fn stream_route_defaults() {
    let s = Server::start(&[]);
    let (r, took) = stream_body(s.addr, "");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), frames_for("Hello World"));
    // 11 chars at the default 100 ms; the lower bound only checks the delay is applied
    assert!(took >= Duration::from_millis(500) && took < secs(9.0), "took {took:?}");
}

#[test]
fn stream_route_limits() {
    let s = Server::start(&[]);
    let big = "a".repeat(4097);
    let r = get(s.addr, &format!("/stream?delay_ms=0&text={big}"));
    assert_eq!(r.status, 400, "4097-byte text");
    let r = get(s.addr, "/stream?text=x&delay_ms=10001");
    assert_eq!(r.status, 400, "delay 10001");
    // exactly 4096 bytes is allowed (ASCII keeps the request head under 8 KiB)
    let text = "a".repeat(4096);
    let (r, _) = stream_body(s.addr, &format!("?delay_ms=0&text={text}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), frames_for(&text));
}

#[test]
fn full_server_503_while_streams_and_publish_keep_working() {
    let s = Server::start(&["--max-clients", "2"]);
    let mut a = SseStream::open(s.addr, "/events");
    let mut b = SseStream::open(s.addr, "/events");
    let mut third = SseStream::connect_as_curl(s.addr, "/events").unwrap();
    assert_eq!(third.head.status, 503);
    assert!(third.head.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("retry-after")), "{:?}", third.head.headers);
    assert!(third.ends_within(secs(5.0)), "503 response should end");
    // An EventSource (Accept: text/event-stream) would give up for good on a 503: it gets a 200
    // stream that only says when to come back (a random delay in [retry, 2 x retry)), then ends.
    for _ in 0..20 {
        let mut es = SseStream::connect(s.addr, "/events").unwrap();
        assert_eq!(es.head.status, 200);
        assert!(
            es.head
                .headers
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.contains("text/event-stream"))
        );
        let f = es.next_frame(T).unwrap().expect("a retry line");
        let retry: u64 = f.retry.expect("retry: N").parse().unwrap();
        assert!((3000..6000).contains(&retry), "{retry}");
        assert!(es.next_frame(T).unwrap().is_none(), "then the stream ends");
    }
    assert!(stat(s.addr, "rejected_full") >= 21.0);
    // reserve slots: publishes and /stats still work, several at once
    let mut conns: Vec<_> = (0..4).map(|_| Conn::open(s.addr)).collect();
    for c in conns.iter_mut() {
        assert_eq!(c.roundtrip(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n").status, 200);
    }
    assert!(stat(s.addr, "rejected_full") >= 1.0);
    let id = publish(s.addr, "still here");
    for st in [&mut a, &mut b] {
        let f = st.event();
        assert_eq!((f.id.as_deref(), f.data_str().as_str()), (Some(id.as_str()), "still here"));
    }
    // a freed slot can be reused
    drop(a);
    let deadline = Instant::now() + secs(5.0);
    loop {
        let st = SseStream::connect(s.addr, "/events").unwrap();
        if st.head.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot not freed after a disconnect");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stream_timeout_ends_streams() {
    let s = Server::start(&["--stream-timeout", "1"]);
    let mut st = SseStream::open(s.addr, "/events");
    assert!(st.ends_within(secs(6.0)), "stream still open well after --stream-timeout 1");
}

#[test]
fn head_timeout_closes_idle_connections() {
    let s = Server::start(&["--head-timeout", "1"]);
    let mut c = Conn::open(s.addr);
    c.send(b"GET /stats HTTP/1.1\r\n"); // head never finished
    // the server may answer 408 first; either way the connection must end
    let deadline = Instant::now() + secs(6.0);
    let mut closed = false;
    while Instant::now() < deadline {
        if c.closed_within(secs(1.0)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "connection with an unfinished head still open after --head-timeout 1");
}
