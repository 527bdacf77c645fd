//! Command line: --help, bad values, TINYSSE_* environment, signals, logging.
mod util;
use util::*;

#[test]
fn help_lists_flags_with_defaults_and_exits_0() {
    let mut c = Server::command(&[]);
    c.arg("--help");
    let (st, out, err) = run_bounded(c, T);
    assert_eq!(st.code(), Some(0), "stderr: {err}");
    let text = format!("{out}{err}");
    for (flag, default) in [
        ("--listen", "0.0.0.0:8080"),
        ("--max-clients", "1024"),
        ("--heartbeat", "15"),
        ("--retry", "3000"),
        ("--max-event-bytes", "8192"),
        ("--history", "256"),
        ("--stream-timeout", "0"),
        ("--head-timeout", "20"),
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(flag) && !l.contains(&format!("{flag}-")))
            .unwrap_or_else(|| panic!("{flag} not in help:\n{text}"));
        // the default is on the flag's line or the one(s) right after it
        let idx = text.lines().position(|l| l == line).unwrap();
        let near: String = text.lines().skip(idx).take(3).collect::<Vec<_>>().join(" ");
        assert!(near.contains(default), "default {default} for {flag} not shown:\n{text}");
    }
}

fn assert_usage_error(args: &[&str], env: &[(&str, &str)]) {
    let mut c = Server::command(env);
    c.args(args);
    let (st, out, err) = run_bounded(c, T);
    assert_eq!(st.code(), Some(2), "{args:?} {env:?}: status {st}, stdout {out:?}, stderr {err:?}");
    let lines: Vec<_> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?} {env:?}: want a one-line error on stderr, got {err:?}");
}

#[test]
fn bad_values_and_unknown_flags_exit_2() {
    let l = ["--listen", "127.0.0.1:0"];
    for bad in [
        &["--max-clients", "abc"][..],
        &["--bogus"],
        &["--retry"],
        &["--heartbeat", "1.5x"],
        &["--history", "-1"],
        &["--max-event-bytes", ""],
        &["--head-timeout", "soon"],
        &["--listen", "not-an-address"],
        &["extra-positional"],
    ] {
        let args: Vec<&str> = l.iter().chain(bad.iter()).copied().collect();
        let args = if bad[0] == "--listen" { bad.to_vec() } else { args };
        assert_usage_error(&args, &[]);
    }
}

#[test]
fn bad_env_value_exits_2() {
    assert_usage_error(&["--listen", "127.0.0.1:0"], &[("TINYSSE_MAX_CLIENTS", "abc")]);
    assert_usage_error(&["--listen", "127.0.0.1:0"], &[("TINYSSE_HEARTBEAT", "often")]);
}

#[test]
fn env_listen_and_retry() {
    let s = Server::spawn(Server::command(&[("TINYSSE_LISTEN", "127.0.0.1:0"), ("TINYSSE_RETRY", "1234")]));
    assert!(s.addr.ip().is_loopback());
    let mut st = SseStream::connect(s.addr, "/events").unwrap();
    assert_eq!(st.next_frame(T).unwrap().unwrap().raw, "retry: 1234\n\n");
}

#[test]
fn env_with_dashes_max_event_bytes_and_max_clients() {
    let s = Server::start_env(&[], &[("TINYSSE_MAX_EVENT_BYTES", "10"), ("TINYSSE_MAX_CLIENTS", "1")]);
    assert_eq!(publish_raw(s.addr, "", None, b"0123456789").status, 200);
    assert_eq!(publish_raw(s.addr, "", None, b"0123456789A").status, 413);
    let _a = SseStream::open(s.addr, "/events");
    let b = SseStream::connect_as_curl(s.addr, "/events").unwrap();
    assert_eq!(b.head.status, 503, "TINYSSE_MAX_CLIENTS=1 not applied");
}

#[test]
fn env_heartbeat() {
    let s = Server::start_env(&[], &[("TINYSSE_HEARTBEAT", "1")]);
    let mut st = SseStream::open(s.addr, "/events");
    let f = st.next_frame(secs(5.0)).expect("heartbeat within 5 s").unwrap();
    assert!(f.is_comment_only(), "{:?}", f.raw);
}

fn signal_stops_cleanly(sig: &str) {
    let mut s = Server::start(&[]);
    let mut a = SseStream::open(s.addr, "/events");
    let mut b = SseStream::open(s.addr, "/sse?clientId=x");
    s.signal(sig);
    assert!(a.ends_within(secs(5.0)), "SIG{sig}: stream not ended");
    assert!(b.ends_within(secs(5.0)), "SIG{sig}: stream not ended");
    let st = s.wait_exit(secs(5.0)).unwrap_or_else(|| panic!("SIG{sig}: still running after 5 s"));
    assert_eq!(st.code(), Some(0), "SIG{sig}: exit status {st}\n{}", s.log_text());
}

#[test]
fn sigterm_ends_streams_and_exits_0() {
    signal_stops_cleanly("TERM");
}

#[test]
fn sigint_ends_streams_and_exits_0() {
    signal_stops_cleanly("INT");
}

#[test]
fn sigterm_idle_server_exits_0() {
    let mut s = Server::start(&[]);
    s.signal("TERM");
    let st = s.wait_exit(secs(5.0)).expect("still running 5 s after SIGTERM");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn debug_log_has_line_per_connection_accepted_and_closed() {
    let s = Server::start(&[]);
    let before = s.logs().len();
    let mut ports = Vec::new();
    for _ in 0..3 {
        let mut c = Conn::open(s.addr);
        ports.push(c.w.local_addr().unwrap().port());
        assert_eq!(c.roundtrip(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status, 200);
        assert!(c.closed_within(secs(5.0)), "Connection: close request not closed by the server");
    }
    let ok = s.wait_logs(secs(5.0), |logs| {
        let new = &logs[before.min(logs.len())..];
        let closes = new.iter().filter(|l| l.to_ascii_lowercase().contains("close")).count();
        ports.iter().all(|p| new.iter().any(|l| l.contains(&format!(":{p}")))) && closes >= 3
    });
    assert!(
        ok,
        "expected an accept line naming each peer port {ports:?} and >= 3 close lines; new log:\n{}",
        s.logs()[before..].join("\n")
    );
}

#[test]
fn under_systemd_log_lines_carry_journald_priorities() {
    let server = Server::start_env(&[], &[("JOURNAL_STREAM", "8:12345"), ("RUST_LOG", "info")]);
    // A bad request is one warn line; the start is an info line.
    assert_eq!(raw(server.addr, b"GARBAGE\r\n\r\n").status, 400);
    assert!(server.wait_logs(T, |l| l.iter().any(|l| l.starts_with("<4>"))), "{}", server.log_text());
    assert!(server.logs().iter().any(|l| l.starts_with("<6>listening on")), "{}", server.log_text());
}

#[test]
#[cfg(not(feature = "cluster"))]
fn redis_without_cluster_mode_is_a_one_line_error_exiting_2() {
    let mut cmd = Server::command(&[]);
    cmd.args(["--redis", "redis://127.0.0.1:6379"]);
    let (st, _out, err) = run_bounded(cmd, T);
    assert_eq!(st.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("built without cluster mode"), "{err}");
}
