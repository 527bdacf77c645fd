//! The history file (`--history-file`), black box: after a kill -9, a SIGTERM or a torn write, a
//! restarted server replays to a reconnecting subscriber exactly the events it missed; the byte
//! budget holds; the files are private; a second server on the same file, or a file that is not a
//! journal, is refused with one line and exit status 2.
//!
//! Ids are opaque: taken from publish answers and `id:` lines, never built.

mod util;

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};
use util::*;

// What these tests look at in a test's directory.
impl TempDir {
    /// Every file in the directory.
    fn paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(&self.0).unwrap().map(|e| e.unwrap().path()).collect();
        v.sort();
        v
    }

    /// Bytes of the history files, lock files aside.
    fn history_bytes(&self) -> u64 {
        self.paths()
            .iter()
            .filter(|p| p.extension().is_none_or(|e| e != "lock"))
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

fn start(file: &Path, extra: &[&str]) -> Server {
    let file = file.to_str().unwrap();
    let mut args = vec!["--history-file", file];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn kill_9(server: &mut Server) {
    let st = Command::new("kill").arg("-9").arg(server.pid().to_string()).status().expect("run kill");
    assert!(st.success(), "kill -9 failed");
    assert!(server.wait_exit(T).is_some(), "still running after kill -9");
}

fn terminate(server: &mut Server) {
    server.signal("TERM");
    let st = server.wait_exit(T).expect("still running after SIGTERM");
    assert!(st.success(), "exit after SIGTERM: {st}");
}

fn size(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

/// Polls `f` until it holds (bounded).
fn wait_until(timeout: Duration, f: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}

/// A published event as a subscriber should see it again.
#[derive(Clone, Debug, PartialEq)]
struct Ev {
    id: String,
    event: Option<String>,
    data: String,
}

/// Publishes `data` with the given extra fields and returns it as subscribers will see it.
fn publish_ev(addr: SocketAddr, data: &str, event: Option<&str>, extra: &[(&str, &str)]) -> Ev {
    let mut fields = vec![("data", data)];
    if let Some(e) = event {
        fields.push(("event", e));
    }
    fields.extend_from_slice(extra);
    Ev { id: publish_ok(addr, &fields), event: event.map(String::from), data: data.to_string() }
}

/// Events `range` of a test: every third has an event name and topic `sensors/t1`, the others
/// topic `other`; data has a line break.
fn publish_some(addr: SocketAddr, range: std::ops::Range<usize>) -> Vec<Ev> {
    range
        .map(|i| {
            let data = format!("e{i}\nsecond line");
            if i % 3 == 0 {
                publish_ev(addr, &data, Some("reading"), &[("topic", "sensors/t1")])
            } else {
                publish_ev(addr, &data, None, &[("topic", "other")])
            }
        })
        .collect()
}

/// Subscribes to `path` with a `Last-Event-ID` header.
fn open_after(addr: SocketAddr, path: &str, last_id: &str) -> SseStream {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {last_id}\r\n\r\n");
    let mut s = SseStream::connect_raw(addr, req.as_bytes()).unwrap();
    assert_eq!(s.head.status, 200);
    let f = s.next_frame(T).unwrap().unwrap();
    assert!(f.retry.is_some(), "{:?}", f.raw);
    s
}

fn as_ev(f: &Frame) -> Ev {
    Ev { id: f.id.clone().unwrap_or_default(), event: f.event.clone(), data: f.data_str() }
}

/// Reads events up to `live` (at most `max` of them).
fn until(s: &mut SseStream, live: &Ev, max: usize) -> Vec<Ev> {
    let mut got = Vec::new();
    while got.len() < max {
        got.push(as_ev(&s.next_event(T)));
        if got.last() == Some(live) {
            break;
        }
    }
    got
}

/// Publishes a live event, then checks that the stream holds exactly `want` and then it: no gap
/// event, nothing missing, nothing twice, nothing from beyond `want`. Returns the live event.
fn expect_exactly(addr: SocketAddr, s: &mut SseStream, want: &[Ev]) -> Ev {
    let live = publish_ev(addr, "live", None, &[]);
    let mut expected = want.to_vec();
    expected.push(live.clone());
    assert_eq!(until(s, &live, want.len() + 2), expected);
    live
}

fn all_distinct(evs: &[Ev]) -> bool {
    let mut ids: Vec<&str> = evs.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids.windows(2).all(|w| w[0] != w[1])
}

#[test]
fn after_kill_9_a_reconnecting_subscriber_gets_exactly_what_it_missed() {
    for fsync in ["always", "never", "1"] {
        let dir = TempDir::new("kill9");
        let file = dir.file();
        let mut server = start(&file, &["--fsync", fsync]);
        // Acknowledged means written: kill -9 right after the last answer loses nothing.
        let published = publish_some(server.addr, 0..20);
        kill_9(&mut server);

        let server = start(&file, &["--fsync", fsync]);
        let a = server.addr;
        let mut s = open_after(a, "/events", &published[7].id);
        let mut topic = open_after(a, "/events?topic=sensors/*", &published[7].id);
        let mut newest = open_after(a, "/events", &published[19].id);
        let live = expect_exactly(a, &mut s, &published[8..]);
        let mut sensors: Vec<Ev> = published[8..].iter().filter(|e| e.event.is_some()).cloned().collect();
        sensors.push(live.clone());
        assert_eq!(until(&mut topic, &live, 14), sensors, "--fsync {fsync}: topics survive the restart");
        assert_eq!(until(&mut newest, &live, 2), [live], "--fsync {fsync}: the one that missed nothing");
    }
}

#[test]
fn after_sigterm_and_restarts_ids_continue_and_replay_is_exact() {
    let dir = TempDir::new("sigterm");
    let file = dir.file();
    let mut server = start(&file, &[]);
    let a = server.addr;
    let mut alice = SseStream::open(a, "/events?client=alice");
    let mut published = publish_some(a, 0..10);
    let to_alice = publish_ev(a, "for alice only", None, &[("client", "alice")]);
    assert_eq!(as_ev(&alice.event()).id, published[0].id);
    drop(alice);
    terminate(&mut server);

    let mut server = start(&file, &[]);
    published.extend(publish_some(server.addr, 10..20));
    terminate(&mut server);

    let server = start(&file, &[]);
    let a = server.addr;
    assert!(all_distinct(&published) && !published.iter().any(|e| e.id == to_alice.id), "ids repeat");
    let mut s = open_after(a, "/events", &published[3].id);
    expect_exactly(a, &mut s, &published[4..]);
    // The targeted event comes back for alice, in its place, and for nobody else.
    let mut alice = open_after(a, "/events?client=alice", &published[9].id);
    assert_eq!(as_ev(&alice.event()), to_alice);
    assert_eq!(as_ev(&alice.event()), published[10]);
}

#[test]
fn a_torn_last_record_is_cut_at_every_offset_and_never_replayed() {
    let dir = TempDir::new("torn");
    let file = dir.file();
    let mut server = start(&file, &[]);
    let mut sizes = vec![size(&file)];
    let mut published = Vec::new();
    for i in 0..4 {
        published.push(publish_ev(server.addr, &format!("torn{i}"), Some("t"), &[("topic", "x")]));
        let last = *sizes.last().unwrap();
        assert!(wait_until(T, || size(&file) > last), "event {i} never reached the file");
        sizes.push(size(&file));
    }
    terminate(&mut server);
    let bytes = fs::read(&file).unwrap();
    let (before, after) = (sizes[3] as usize, sizes[4] as usize);
    assert_eq!(bytes.len(), after, "written after the last event");
    let path = file.display().to_string();
    for cut in before..after {
        fs::write(&file, &bytes[..cut]).unwrap();
        let server = start(&file, &[]);
        if cut > before {
            assert!(
                server.logs().iter().any(|l| l.contains("WARN") && l.contains(&path)),
                "cut at {cut} of {before}..{after}: no warning naming {path}:\n{}",
                server.log_text()
            );
        }
        let mut s = open_after(server.addr, "/events", &published[0].id);
        expect_exactly(server.addr, &mut s, &published[1..3]);
    }
}

#[test]
fn a_flipped_byte_is_reported_and_the_events_before_it_kept() {
    let dir = TempDir::new("flip");
    let file = dir.file();
    let mut server = start(&file, &[]);
    let mut sizes = vec![size(&file)];
    let mut published = Vec::new();
    for i in 0..10 {
        published.push(publish_ev(server.addr, &format!("flip{i}-{}", "x".repeat(200)), None, &[]));
        let last = *sizes.last().unwrap();
        assert!(wait_until(T, || size(&file) > last), "event {i} never reached the file");
        sizes.push(size(&file));
    }
    terminate(&mut server);
    // Event 5 lies in sizes[5]..sizes[6].
    let mut bytes = fs::read(&file).unwrap();
    let mid = ((sizes[5] + sizes[6]) / 2) as usize;
    bytes[mid] ^= 0x20;
    fs::write(&file, &bytes).unwrap();

    let server = start(&file, &[]);
    let path = file.display().to_string();
    assert!(
        server.logs().iter().any(|l| l.contains("WARN") && l.contains(&path)),
        "no warning naming {path}:\n{}",
        server.log_text()
    );
    let mut s = open_after(server.addr, "/events", &published[0].id);
    expect_exactly(server.addr, &mut s, &published[1..5]);
}

#[test]
fn at_its_byte_budget_the_journal_keeps_taking_events_and_drops_the_oldest() {
    let dir = TempDir::new("budget");
    let file = dir.file();
    let budget: u64 = 64 << 10;
    let budget_arg = budget.to_string();
    // One segment of slack (a quarter of the budget) and one event's worth of batching.
    let bound = budget + budget / 4 + (16 << 10);
    let mut server = start(&file, &["--history-file-bytes", &budget_arg]);
    let data = "d".repeat(1000);
    let mut published = Vec::new();
    for i in 0..300 {
        published.push(publish_ev(server.addr, &format!("{i}:{data}"), None, &[]));
        let on_disk = dir.history_bytes();
        assert!(on_disk <= bound, "{on_disk} bytes on disk after {i} events of 1 KB, budget {budget}");
    }
    assert!(wait_until(T, || dir.history_bytes() > budget / 2), "only {} bytes kept", dir.history_bytes());
    kill_9(&mut server);

    let server = start(&file, &["--history-file-bytes", &budget_arg]);
    let a = server.addr;
    // The oldest are gone: a subscriber that saw only the first one is told about the gap...
    let mut recent = open_after(a, "/events", &published[294].id);
    let mut s = open_after(a, "/events", &published[0].id);
    let gap = s.event();
    assert_eq!(gap.event.as_deref(), Some("gap"), "{:?}", gap.raw);
    // ...and then gets an unbroken run of the newest, up to the last one published.
    let first = as_ev(&s.event());
    let k = published.iter().position(|e| *e == first).expect("replayed an event never published");
    assert!(k > 0 && 300 - k >= 20, "replayed {} of 300 events of 1 KB from a {budget}-byte budget", 300 - k);
    expect_exactly(a, &mut s, &published[k + 1..]);
    let got: Vec<Ev> = (0..5).map(|_| as_ev(&recent.event())).collect();
    assert_eq!(got, published[295..]);
}

#[test]
fn history_files_are_private() {
    let dir = TempDir::new("mode");
    let file = dir.file();
    let server = start(&file, &["--history-file-bytes", "65536"]);
    let data = "m".repeat(1000);
    for _ in 0..100 {
        publish(server.addr, &data);
    }
    assert!(wait_until(T, || dir.paths().len() >= 3), "no rotated segment: {:?}", dir.paths());
    for p in dir.paths() {
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
}

/// Runs the binary on `file` to completion and returns its exit code and standard error.
fn run_on(file: &Path) -> (Option<i32>, String) {
    let mut cmd = Server::command(&[("RUST_LOG", "off")]);
    cmd.arg("--listen").arg("127.0.0.1:0").arg("--history-file").arg(file);
    let (st, _, err) = run_bounded(cmd, T);
    (st.code(), err)
}

#[test]
fn a_second_server_on_the_same_file_exits_2_naming_it() {
    let dir = TempDir::new("lock");
    let file = dir.file();
    let first = start(&file, &[]);
    let (code, err) = run_on(&file);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    // The first one is unharmed.
    let ev = publish_ev(first.addr, "still here", None, &[]);
    let mut s = open_after(first.addr, "/events", "unknown");
    assert_eq!(s.event().event.as_deref(), Some("gap"));
    assert_eq!(as_ev(&s.event()), ev);
}

#[test]
fn a_file_that_is_not_a_journal_is_refused_and_left_alone() {
    let dir = TempDir::new("foreign");
    let file = dir.file();
    let content = b"my thesis, chapter 1\nplease do not truncate\n";
    fs::write(&file, content).unwrap();
    let (code, err) = run_on(&file);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(fs::read(&file).unwrap(), content);
}

#[test]
fn bad_journal_flags_exit_2() {
    let dir = TempDir::new("flags");
    let file = dir.file();
    for args in [&["--fsync", "sometimes"][..], &["--history-file-bytes", "lots"]] {
        let mut cmd = Server::command(&[("RUST_LOG", "off")]);
        cmd.arg("--listen").arg("127.0.0.1:0").arg("--history-file").arg(&file).args(args);
        let (st, _, err) = run_bounded(cmd, T);
        assert_eq!(st.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}
