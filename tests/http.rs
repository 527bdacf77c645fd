//! Plain HTTP behaviour: publish answers and validation, errors, CORS,
//! /stats, keep-alive, pipelining, HTTP/1.0, limits.
mod util;
use util::*;

fn assert_error(r: &Response, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: got {} {:?} {:?}", r.status, r.headers, r.text());
    assert!(r.header_has("content-type", "text/plain"), "{what}: content-type {:?}", r.header("content-type"));
    assert!(r.header_has("connection", "close"), "{what}: expected Connection: close, headers {:?}", r.headers);
    assert!(!r.body.is_empty() && r.body.len() < 1024, "{what}: expected a short body, got {:?}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{what}: CORS header");
}

#[test]
fn publish_answers_id_and_server_ids_increase() {
    let s = Server::start(&[]);
    let mut prev: Option<u64> = None;
    for i in 0..5 {
        let r = publish_form(s.addr, &[("data", &format!("x{i}"))]);
        assert_eq!(r.status, 200, "{:?}", r.text());
        let id: u64 = id_of(&r).parse().unwrap_or_else(|_| panic!("server id not decimal: {:?}", r.text()));
        if let Some(p) = prev {
            assert!(id > p, "ids not strictly increasing: {p} then {id}");
        }
        prev = Some(id);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }
}

#[test]
fn publisher_id_is_returned_verbatim() {
    let s = Server::start(&[]);
    let r = publish_form(s.addr, &[("data", "x"), ("id", "order-42.a_b~")]);
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_eq!(r.text(), "order-42.a_b~\n");
    // raw body: id from the query string
    let r = publish_raw(s.addr, "id=q-7", Some("text/plain"), b"x");
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_eq!(r.text(), "q-7\n");
}

#[test]
fn publish_missing_data_is_400() {
    let s = Server::start(&[]);
    let r = post_form_raw(s.addr, "/events", "event=x&id=1");
    assert_error(&r, 400, "form without data");
    let r = post_form_raw(s.addr, "/events", "");
    assert_error(&r, 400, "empty form");
}

#[test]
fn publish_bad_percent_escape_or_utf8_is_400() {
    let s = Server::start(&[]);
    for body in ["data=%ZZ", "data=abc%4", "data=%", "data=%FF", "data=%C3", "data=ok&event=%G1", "data=%ED%A0%80"] {
        let r = post_form_raw(s.addr, "/events", body);
        assert_error(&r, 400, body);
    }
    // raw body that is not UTF-8
    let r = publish_raw(s.addr, "", Some("text/plain"), b"\xff\xfe");
    assert_eq!(r.status, 400, "raw non-UTF-8 body: {} {:?}", r.status, r.text());
    // bad escape in the query string of a raw publish
    let r = publish_raw(s.addr, "event=%ZZ", Some("text/plain"), b"x");
    assert_eq!(r.status, 400, "bad escape in query: {} {:?}", r.status, r.text());
}

#[test]
fn publish_crlf_or_nul_in_event_id_topic_is_400() {
    let s = Server::start(&[]);
    for field in ["event", "id", "topic"] {
        for bad in ["%0D%0A", "a%0Db", "a%0Ab", "a%00b"] {
            let body = format!("data=x&{field}={bad}");
            let r = post_form_raw(s.addr, "/events", &body);
            assert_error(&r, 400, &body);
        }
        // same through the query string of a raw publish
        let q = format!("{field}=a%0D%0Ab");
        let r = publish_raw(s.addr, &q, Some("text/plain"), b"x");
        assert_eq!(r.status, 400, "raw publish ?{q}: {} {:?}", r.status, r.text());
    }
}

#[test]
fn publish_too_large_is_413_and_limit_is_inclusive() {
    let s = Server::start(&[]);
    let ok = vec![b'a'; 8192];
    let r = publish_raw(s.addr, "", Some("text/plain"), &ok);
    assert_eq!(r.status, 200, "8192 bytes should fit the default limit: {:?}", r.text());
    let big = vec![b'a'; 8193];
    let r = publish_raw(s.addr, "", Some("text/plain"), &big);
    assert_error(&r, 413, "8193-byte raw body");
    let r = publish_form(s.addr, &[("data", &"b".repeat(9000))]);
    assert_error(&r, 413, "9000-byte form data");
}

#[test]
fn max_event_bytes_flag() {
    let s = Server::start(&["--max-event-bytes", "16"]);
    let r = publish_raw(s.addr, "", None, &[b'x'; 16]);
    assert_eq!(r.status, 200, "{:?}", r.text());
    let r = publish_raw(s.addr, "", None, &[b'x'; 17]);
    assert_error(&r, 413, "17 bytes with --max-event-bytes 16");
}

#[test]
fn targeted_publish_to_absent_client_is_404() {
    let s = Server::start(&[]);
    let r = publish_form(s.addr, &[("data", "x"), ("client", "nobody")]);
    assert_eq!(r.status, 404, "{} {:?}", r.status, r.text());
    let r = post_form(s.addr, "/sse/send", &[("clientId", "nobody"), ("message", "x")]);
    assert_eq!(r.status, 404, "{} {:?}", r.status, r.text());
    assert!(r.text().contains("client not connected"), "{:?}", r.text());
}

#[test]
fn malformed_client_id_on_subscribe_is_400() {
    let s = Server::start(&[]);
    let long = "a".repeat(65);
    assert_error(&get(s.addr, "/events?client=bad!id"), 400, "client=bad!id");
    for q in ["client=a%20b", "client=%C3%A9", &format!("client={long}"), "client="] {
        // connect as a stream so a wrongly accepted subscription fails fast
        let st = SseStream::connect(s.addr, &format!("/events?{q}")).unwrap();
        assert_eq!(st.head.status, 400, "GET /events?{q}");
    }
    let ok = "A-z.0_~".to_string() + &"b".repeat(57); // 64 chars
    let st = SseStream::open(s.addr, &format!("/events?client={ok}"));
    drop(st);
}

#[test]
fn error_statuses() {
    let s = Server::start(&[]);
    let a = s.addr;
    assert_error(&raw(a, b"BLAH\r\n\r\n"), 400, "garbage request line");
    assert_error(&raw(a, b"GET\r\n\r\n"), 400, "request line without target");
    assert_error(&get(a, "/nope"), 404, "unknown path");
    assert_error(&get(a, "/events/extra"), 404, "unknown sub-path");

    let r = raw(a, b"DELETE /events HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_error(&r, 405, "DELETE /events");
    let allow = r.header("allow").expect("405 needs Allow").to_ascii_uppercase();
    assert!(allow.contains("GET") && allow.contains("POST"), "Allow for /events: {allow}");

    let r = request(a, "POST", "/stats", Some(FORM), b"data=x");
    assert_error(&r, 405, "POST /stats");
    let allow = r.header("allow").expect("405 needs Allow").to_ascii_uppercase();
    assert!(allow.contains("GET") && !allow.contains("POST"), "Allow for /stats: {allow}");

    let r = raw(a, b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n");
    assert_error(&r, 411, "POST without Content-Length");

    assert_error(&raw(a, b"GET /stats HTTP/2.0\r\nHost: x\r\n\r\n"), 505, "HTTP/2.0");
    assert_error(&raw(a, b"GET /stats HTTP/3.0\r\nHost: x\r\n\r\n"), 505, "HTTP/3.0");
}

#[test]
fn error_response_closes_connection() {
    let s = Server::start(&[]);
    let mut c = Conn::open(s.addr);
    let r = c.roundtrip(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 404);
    assert!(c.closed_within(secs(5.0)), "server should close after a Connection: close error");
}

#[test]
fn header_block_over_8k_is_431() {
    let s = Server::start(&[]);
    let big = "a".repeat(9000);
    let req = format!("GET /stats HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    assert_error(&raw(s.addr, req.as_bytes()), 431, "9000-byte header");
    // many small headers adding up to > 8 KiB
    let mut req = String::from("GET /stats HTTP/1.1\r\nHost: x\r\n");
    for i in 0..200 {
        req += &format!("X-H{i}: {}\r\n", "v".repeat(40));
    }
    req += "\r\n";
    assert_error(&raw(s.addr, req.as_bytes()), 431, "200 headers");
    // a large-but-legal head still works
    let req = format!("GET /stats HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(6000));
    assert_eq!(raw(s.addr, req.as_bytes()).status, 200, "6000-byte header should be accepted");
}

#[test]
fn chunked_publish_is_accepted() {
    let s = Server::start(&[]);
    let mut sub = SseStream::open(s.addr, "/events");
    let r = raw(
        s.addr,
        b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_eq!(sub.event().data, vec!["hello world"]);
}

#[test]
fn options_preflight_on_any_path() {
    let s = Server::start(&[]);
    for path in ["/events", "/stats", "/sse/send", "/whatever"] {
        let r = raw(
            s.addr,
            format!(
                "OPTIONS {path} HTTP/1.1\r\nHost: x\r\nOrigin: http://example.test\r\n\
                 Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 204, "OPTIONS {path}: {:?}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "OPTIONS {path}");
        let m = r.header("access-control-allow-methods").unwrap_or_else(|| panic!("OPTIONS {path}: no -Methods"));
        assert!(m.contains("GET") && m.contains("POST"), "OPTIONS {path}: methods {m}");
        assert!(r.header("access-control-allow-headers").is_some(), "OPTIONS {path}: no -Headers");
        assert!(r.body.is_empty());
    }
}

#[test]
fn every_response_has_cors_origin() {
    let s = Server::start(&[]);
    let a = s.addr;
    let rs = [
        get(a, "/stats"),
        publish_form(a, &[("data", "x")]),
        get(a, "/nope"),
        raw(a, b"DELETE /events HTTP/1.1\r\nHost: x\r\n\r\n"),
        raw(a, b"BLAH\r\n\r\n"),
        get(a, "/stream?delay_ms=0&text=ab"),
        get(a, "/events?client=bad!"),
    ];
    for r in &rs {
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{} {:?}", r.status, r.headers);
    }
    let st = SseStream::connect(a, "/events").unwrap();
    assert_eq!(st.head.status, 200);
    assert!(st.head.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("access-control-allow-origin") && v == "*"));
}

#[test]
fn stats_has_numeric_keys() {
    let s = Server::start(&[]);
    let r = get(s.addr, "/stats");
    assert_eq!(r.status, 200);
    assert!(r.header_has("content-type", "json"), "content-type {:?}", r.header("content-type"));
    let body = r.text();
    assert!(body.trim_start().starts_with('{') && body.trim_end().ends_with('}'), "{body}");
    for k in ["clients", "subscribers", "published", "dropped_slow", "rejected_full", "uptime_secs"] {
        assert!(json_num(&body, k).is_some(), "key {k} missing or not a number in {body}");
    }
}

#[test]
fn stats_counts_subscribers_and_published() {
    let s = Server::start(&[]);
    assert_eq!(stat(s.addr, "subscribers"), 0.0);
    let p0 = stat(s.addr, "published");
    let a = SseStream::open(s.addr, "/events");
    let b = SseStream::open(s.addr, "/events?client=bob");
    assert_eq!(stat(s.addr, "subscribers"), 2.0);
    publish(s.addr, "one");
    publish(s.addr, "two");
    assert_eq!(stat(s.addr, "published"), p0 + 2.0);
    drop(a);
    assert_eq!(wait_stat(s.addr, "subscribers", 1.0, secs(5.0)), 1.0, "after one disconnect");
    b.close();
    assert_eq!(wait_stat(s.addr, "subscribers", 0.0, secs(5.0)), 0.0, "after both disconnect");
}

#[test]
fn keep_alive_two_requests_one_socket() {
    let s = Server::start(&[]);
    let mut c = Conn::open(s.addr);
    let r1 = c.roundtrip(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r1.status, 200);
    let body = form(&[("data", "ka")]);
    let r2 = c.roundtrip(
        format!(
            "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(r2.status, 200, "{:?}", r2.text());
    let r3 = c.roundtrip(b"OPTIONS /events HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r3.status, 204);
    let r4 = c.roundtrip(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r4.status, 200);
    assert!(json_num(&r4.text(), "subscribers").is_some());
}

#[test]
fn pipelined_requests_answered_in_order() {
    let s = Server::start(&[]);
    let mut c = Conn::open(s.addr);
    let mut all = String::new();
    for i in 0..4 {
        let body = format!("data=p{i}");
        all += &format!(
            "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        all += "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n";
    }
    c.send(all.as_bytes());
    let mut prev = 0u64;
    for i in 0..4 {
        let p = c.read_response().unwrap_or_else(|e| panic!("response {}: {e}", 2 * i));
        assert_eq!(p.status, 200, "publish {i}: {:?}", p.text());
        let id: u64 = id_of(&p).parse().expect("decimal id");
        assert!(id > prev, "ids out of order: {prev} then {id}");
        prev = id;
        let st = c.read_response().unwrap_or_else(|e| panic!("response {}: {e}", 2 * i + 1));
        assert_eq!(st.status, 200);
        assert!(json_num(&st.text(), "uptime_secs").is_some(), "expected /stats JSON, got {:?}", st.text());
    }
}

#[test]
fn http10_requests_work() {
    let s = Server::start(&[]);
    let r = raw(s.addr, b"GET /stats HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(json_num(&r.text(), "subscribers").is_some(), "{:?}", r.text());
    let mut sub = SseStream::connect_raw(s.addr, b"GET /events HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(sub.head.status, 200);
    assert!(
        !sub.head.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding")),
        "no chunked encoding for an HTTP/1.0 client: {:?}",
        sub.head.headers
    );
    let f = sub.next_frame(T).unwrap().expect("retry preamble");
    assert!(f.retry.is_some(), "{:?}", f.raw);
    let r = raw(s.addr, b"POST /events HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nv1.0");
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_eq!(sub.event().data, vec!["v1.0"]);
}
