//! Hostile input and faults against the running binary: SSE injection, auth, CORS, slowloris,
//! idle keep-alive, connect/abort storms, descriptor exhaustion, floods past the slab, and
//! error handling that never reads past a request in doubt.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use util::*;

fn raw_to_end(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn crlf_in_any_field_cannot_inject_sse_lines() {
    let server = Server::start(&[]);
    let a = server.addr;
    let mut s = SseStream::open(a, "/events");
    for field in ["event", "id", "topic", "client"] {
        let r = post_form_raw(a, "/events", &format!("data=x&{field}=a%0D%0Adata:%20injected"));
        assert_eq!(r.status, 400, "{field}: {}", r.text());
        let r = publish_raw(a, &format!("{field}=a%0D%0Aevent:%20evil"), Some("text/plain"), b"x");
        assert_eq!(r.status, 400, "{field} in query");
        let r = publish_raw(a, &format!("{field}=a%00b"), Some("text/plain"), b"x");
        assert_eq!(r.status, 400, "NUL in {field}");
    }
    // In data, line breaks become separate data: lines: no new field can start.
    publish_ok(a, &[("data", "a\r\nevent: evil\rid: 666\ndata: x")]);
    let f = s.next_event(T);
    assert_eq!(f.event, None);
    assert_ne!(f.id.as_deref(), Some("666"));
    assert_eq!(f.data, ["a", "event: evil", "id: 666", "data: x"]);
    assert_eq!(get(a, "/events?client=a%0D%0Ab").status, 400);
    assert_eq!(get(a, "/events?topic=a%0Ab").status, 400);
}

#[test]
fn publish_token_is_required_and_checked() {
    let server = Server::start(&["--publish-token", "s3cret"]);
    let a = server.addr;
    let body = "data=x";
    let post = |auth: &str| {
        raw(
            a,
            format!(
                "POST /events HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let r = post("");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{:?}", r.headers);
    assert_eq!(post("Authorization: Bearer wrong\r\n").status, 401);
    assert_eq!(post("Authorization: Bearer s3cre\r\n").status, 401);
    assert_eq!(post("Authorization: Basic czNjcmV0\r\n").status, 401);
    assert_eq!(post("Authorization: Bearer s3cret\r\n").status, 200);
    assert_eq!(post("Authorization: bearer s3cret\r\n").status, 200);
    assert!(!server.log_text().contains("s3cret"), "the token must never be logged");
}

#[test]
fn subscribe_token_by_header_query_or_cookie_on_every_stream_route() {
    let server = Server::start(&["--subscribe-token", "t0k"]);
    let a = server.addr;
    for path in ["/events", "/sse?clientId=c1", "/stream?text=a&delay_ms=0"] {
        let r = SseStream::connect(a, path).unwrap();
        assert_eq!(r.head.status, 401, "{path} without token");
        let sep = if path.contains('?') { '&' } else { '?' };
        assert_eq!(SseStream::connect(a, &format!("{path}{sep}token=nope")).unwrap().head.status, 401);
        assert_eq!(SseStream::connect(a, &format!("{path}{sep}token=t0k")).unwrap().head.status, 200, "{path}");
        for header in ["Authorization: Bearer t0k", "Cookie: theme=dark; tinysse_token=t0k"] {
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n");
            assert_eq!(SseStream::connect_raw(a, req.as_bytes()).unwrap().head.status, 200, "{path} {header}");
        }
    }
    // Publishing and /stats are not stream routes.
    assert_eq!(publish_form(a, &[("data", "x")]).status, 200);
    assert_eq!(get(a, "/stats").status, 200);
}

#[test]
fn cors_allow_list_echoes_only_listed_origins() {
    let server = Server::start(&["--cors-origin", "https://dash.example", "--cors-origin", "http://pi.local:8080"]);
    let a = server.addr;
    let with_origin = |origin: &str, path: &str| {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\n\r\n");
        SseStream::connect_raw(a, req.as_bytes()).unwrap().head
    };
    let h = with_origin("https://dash.example", "/events");
    let header = |h: &Head, n: &str| h.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    assert_eq!(header(&h, "access-control-allow-origin").as_deref(), Some("https://dash.example"));
    assert_eq!(header(&h, "access-control-allow-credentials").as_deref(), Some("true"));
    assert_eq!(header(&h, "vary").as_deref(), Some("Origin"));
    let h = with_origin("https://evil.example", "/events");
    assert_eq!(header(&h, "access-control-allow-origin"), None);
    // Preflight for a listed origin.
    let r = raw(a, b"OPTIONS /events HTTP/1.1\r\nHost: x\r\nOrigin: http://pi.local:8080\r\nAccess-Control-Request-Method: GET\r\n\r\n");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("http://pi.local:8080"));
    // Without an allow-list, any origin, without credentials.
    let open = Server::start(&[]);
    let req = "GET /stats HTTP/1.1\r\nHost: x\r\nOrigin: https://anything.example\r\n\r\n";
    let r = raw(open.addr, req.as_bytes());
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
}

#[test]
fn slowloris_and_idle_keepalive_are_closed_in_time() {
    let server = Server::start(&["--head-timeout", "1", "--keepalive-timeout", "1"]);
    let a = server.addr;
    let mut slow = Conn::open(a);
    slow.send(b"GET /events HTTP/1.1\r\nHost: x\r\n");
    let start = Instant::now();
    let mut drip = slow.w.try_clone().unwrap();
    let dripper = std::thread::spawn(move || {
        for _ in 0..20 {
            if drip.write_all(b"X-A: b\r\n").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    assert!(slow.closed_within(secs(5.0)), "slowloris connection still open");
    assert!(start.elapsed() < secs(4.0), "closed after {:?}", start.elapsed());
    dripper.join().unwrap();
    assert!(server.wait_logs(T, |l| l.iter().any(|l| l.contains("request head not complete"))));

    let mut idle = Conn::open(a);
    assert_eq!(idle.roundtrip(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n").status, 200);
    assert!(idle.closed_within(secs(4.0)), "idle keep-alive connection still open");
    assert_eq!(stat(a, "clients"), 1.0, "only the /stats request itself");
}

#[test]
fn expect_continue_is_answered_at_once() {
    let server = Server::start(&[]);
    let mut c = Conn::open(server.addr);
    c.send(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read_response().unwrap();
    assert_eq!(interim.status, 100);
    c.send(b"hello");
    assert_eq!(c.read_response().unwrap().status, 200);
}

#[test]
fn after_an_error_the_server_responds_then_closes_without_reading_on() {
    let server = Server::start(&[]);
    // A smuggling attempt: the second "request" hides in a body whose length is in doubt.
    let out = raw_to_end(
        server.addr,
        b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /stats HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert_eq!(out.matches("HTTP/1.1").count(), 1, "nothing after the refused request is answered: {out}");
    assert!(out.contains("Connection: close"));
}

/// SO_LINGER 0: closing sends a reset instead of a FIN.
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket descriptor and a correctly sized `linger` for SO_LINGER.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_thousand_connect_abort_cycles_leak_nothing() {
    let server = Server::start_env(&["--max-clients", "64"], &[("RUST_LOG", "info")]);
    let a = server.addr;
    let mut keeper = SseStream::open(a, "/events");
    let baseline_clients = stat(a, "clients");
    let rss_before = rss_kib(server.pid());
    let started = Instant::now();
    for i in 0..1000 {
        let mut s = TcpStream::connect(a).unwrap();
        match i % 5 {
            0 => drop(s),
            1 => {
                let _ = s.write_all(b"GET /events HTTP/1.1\r\nHo");
                drop(s);
            }
            2 => {
                let _ = s.write_all(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial");
                reset(s);
            }
            3 => {
                let _ = s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
                let mut buf = [0u8; 64];
                s.set_read_timeout(Some(T)).unwrap();
                let _ = s.read(&mut buf); // subscribed; now vanish
                reset(s);
            }
            _ => {
                let _ = s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
                drop(s);
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    // The stream that stayed is unharmed.
    let id = publish(a, "still here");
    assert_eq!(keeper.next_event(T).id.as_deref(), Some(id.as_str()));
    let deadline = Instant::now() + T;
    while stat(a, "clients") > baseline_clients && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(stat(a, "clients"), baseline_clients, "slots leaked");
    assert_eq!(stat(a, "subscribers"), 1.0);
    let rss_after = rss_kib(server.pid());
    assert!(rss_after < rss_before + 1024, "RSS grew from {rss_before} to {rss_after} KiB");
}

#[test]
fn flood_past_max_clients_gets_503_while_streams_keep_receiving() {
    let server = Server::start(&["--max-clients", "4"]);
    let a = server.addr;
    let mut streams: Vec<SseStream> = (0..4).map(|_| SseStream::open(a, "/events")).collect();
    let mut refused = 0;
    let mut held = Vec::new();
    for _ in 0..40 {
        let s = SseStream::connect_as_curl(a, "/events").unwrap();
        if s.head.status == 503 {
            assert!(s.head.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("retry-after")));
            refused += 1;
        }
        held.push(s);
    }
    assert_eq!(refused, 40);
    let id = publish(a, "to the four");
    for s in &mut streams {
        assert_eq!(s.next_event(T).id.as_deref(), Some(id.as_str()));
    }
    assert!(stat(a, "rejected_full") >= 40.0);
}

#[test]
fn descriptor_exhaustion_is_survived_without_spinning() {
    let server = Server::start(&["--max-clients", "512"]);
    let a = server.addr;
    let pid = server.pid();
    // Leave the server a handful of descriptors beyond what it has open.
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let limit = open_fds + 5;
    // Only the soft limit, so it can be raised again afterwards.
    let status = std::process::Command::new("prlimit")
        .args([format!("--pid={pid}"), format!("--nofile={limit}:")])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success());
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let mut held: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(a).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let cpu_before = cpu(pid);
    std::thread::sleep(Duration::from_secs(2));
    let cpu_spent = cpu(pid) - cpu_before;
    assert!(cpu_spent < 50, "server spun while out of descriptors: {cpu_spent} ticks in 2 s");
    assert!(server.wait_logs(T, |l| l.iter().any(|l| l.contains("accept failed"))));
    // Give the descriptors back: the queued connections are served, new ones too.
    held.clear();
    let status = std::process::Command::new("prlimit").args([format!("--pid={pid}"), "--nofile=1024:".into()]).status();
    assert!(status.unwrap().success());
    assert_eq!(get(a, "/stats").status, 200);
    let warnings = server.logs().iter().filter(|l| l.contains("accept failed")).count();
    assert!(warnings < 10, "accept errors are rate-limited, got {warnings} lines");
}
