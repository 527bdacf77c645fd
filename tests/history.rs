//! New pages that ask for history (`?last=N`) and ids that cannot be mistaken: an id this
//! server did not give in its current history (another run, another instance, made up) always
//! gets `gap`, never a silent resume at a wrong place.

mod util;

use util::*;

fn ids(s: &mut SseStream, n: usize) -> Vec<String> {
    (0..n).map(|_| s.next_event(T).id.unwrap_or_default()).collect()
}

fn subscribe(addr: std::net::SocketAddr, path: &str, last_event_id: Option<&str>) -> SseStream {
    let header = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{header}\r\n");
    let mut s = SseStream::connect_raw(addr, req.as_bytes()).unwrap();
    assert_eq!(s.head.status, 200);
    assert!(s.next_frame(T).unwrap().unwrap().retry.is_some());
    s
}

#[test]
fn last_n_gives_the_newest_events_this_subscriber_may_see_then_live_without_gap() {
    let server = Server::start(&["--history", "50"]);
    let a = server.addr;
    let mut all = Vec::new();
    for i in 0..10 {
        let topic = if i % 2 == 0 { "even" } else { "odd" };
        all.push(publish_ok(a, &[("data", &format!("e{i}")), ("topic", topic)]));
    }
    // Unfiltered: the last 3, oldest first, then live; no gap event.
    let mut s = subscribe(a, "/events?last=3", None);
    let live = publish(a, "live");
    let first = s.next_event(T);
    assert_ne!(first.event.as_deref(), Some("gap"));
    let got: Vec<String> = std::iter::once(first.id.unwrap()).chain(ids(&mut s, 3)).collect();
    assert_eq!(got, [all[7].clone(), all[8].clone(), all[9].clone(), live.clone()]);
    // Filtered: the last 3 it may see: its topic, and events for every topic ("live").
    let mut odd = subscribe(a, "/events?topic=odd&last=3", None);
    assert_eq!(ids(&mut odd, 3), [all[7].clone(), all[9].clone(), live.clone()]);
    // More than is kept: everything kept, still no gap.
    let mut many = subscribe(a, "/events?last=100000", None);
    let f = many.next_event(T);
    assert_ne!(f.event.as_deref(), Some("gap"));
    assert_eq!(f.id.as_deref(), Some(all[0].as_str()));
    // Last-Event-ID wins over ?last (a browser's reconnect sends the header).
    let mut resumed = subscribe(a, "/events?last=5", Some(&all[8]));
    assert_eq!(ids(&mut resumed, 2), [all[9].clone(), live]);
    // ?last=0 is live only; a malformed count is a 400.
    let mut zero = subscribe(a, "/events?last=0", None);
    let later = publish(a, "later");
    assert_eq!(ids(&mut zero, 1), [later]);
    assert_eq!(get(a, "/events?last=-1").status, 400);
}

#[test]
fn an_id_from_another_run_or_instance_gets_gap_even_where_sequence_numbers_overlap() {
    // Two instances started together: their sequence numbers overlap, their ids do not.
    let one = Server::start(&["--history", "1000"]);
    let two = Server::start(&["--history", "1000"]);
    let ids_one: Vec<String> = (0..20).map(|i| publish(one.addr, &format!("a{i}"))).collect();
    let ids_two: Vec<String> = (0..20).map(|i| publish(two.addr, &format!("b{i}"))).collect();
    assert!(ids_one.iter().all(|id| !ids_two.contains(id)), "{ids_one:?} vs {ids_two:?}");
    // Ids are decimal and strictly increase within a run.
    let nums: Vec<u64> = ids_one.iter().map(|id| id.parse().expect("decimal")).collect();
    assert!(nums.windows(2).all(|w| w[0] < w[1]), "{nums:?}");
    // A client moving from one to the other with its Last-Event-ID is told about the gap.
    let mut moved = subscribe(two.addr, "/events", Some(&ids_one[5]));
    let f = moved.next_event(T);
    assert_eq!(f.event.as_deref(), Some("gap"), "{:?}", f.raw);
    assert!(f.data_str().contains(&ids_one[5]));
    // A made-up id, too.
    let mut made_up = subscribe(one.addr, "/events", Some("12345"));
    assert_eq!(made_up.next_event(T).event.as_deref(), Some("gap"));
}

#[test]
fn without_a_history_file_a_restart_gives_gap_with_one_ids_continue_exactly() {
    let mut plain = Server::start(&[]);
    let before = publish(plain.addr, "before");
    plain.signal("TERM");
    plain.wait_exit(T);
    let plain2 = Server::start(&[]);
    let mut s = subscribe(plain2.addr, "/events", Some(&before));
    assert_eq!(s.next_event(T).event.as_deref(), Some("gap"), "no journal: the old id is unknown");

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("history");
    let file = file.to_str().unwrap();
    let mut first = Server::start(&["--history-file", file]);
    let old: Vec<String> = (0..3).map(|i| publish(first.addr, &format!("o{i}"))).collect();
    first.signal("TERM");
    first.wait_exit(T);
    let second = Server::start(&["--history-file", file]);
    let new = publish(second.addr, "n0");
    let (last_old, first_new): (u64, u64) = (old[2].parse().unwrap(), new.parse().unwrap());
    assert!(first_new > last_old, "ids keep increasing across the restart: {last_old} then {first_new}");
    let mut s = subscribe(second.addr, "/events", Some(&old[0]));
    assert_eq!(ids(&mut s, 3), [old[1].clone(), old[2].clone(), new]);
    let _ = std::fs::remove_dir_all(&dir);
}
