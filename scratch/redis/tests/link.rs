//! The Redis link against a real redis-server: acknowledgements and ids, one order across
//! instances, history replay, a Redis restart in the middle of publishing, AUTH, SELECT,
//! presence, oversized foreign entries, and a Redis that is not there at start.

mod common;

use common::{Net, RedisServer, config};
use redis_link::link::{Fields, LinkConfig, PublishError, RedisUrl};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, Once};
use std::time::Duration;

const SECS: fn(u64) -> Duration = Duration::from_secs;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {}", record.level(), record.args());
        LINES.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

/// Captures every log line of every test in this binary (debug and up).
fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Debug);
    });
}

fn logs_matching(needle: &str) -> Vec<String> {
    LINES.lock().unwrap().iter().filter(|l| l.contains(needle)).cloned().collect()
}

fn data(d: &[u8]) -> Fields<'_> {
    Fields { data: d, ..Default::default() }
}

fn is_redis_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(ms, seq)| ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok())
}

fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap();
    (ms.parse().unwrap(), seq.parse().unwrap())
}

#[test]
fn publishes_are_acked_with_ids_and_read_back_in_order() {
    capture_logs();
    let redis = RedisServer::start(&[]);
    let mut net = Net::new();
    let mut cfg = config(redis.url(), 1);
    cfg.max_pending = 4;
    let a = net.add(cfg);
    assert!(net.run_until(SECS(5), |n| n.all_connected()), "never connected");
    let link = &mut net.node(a).link;
    let first = Fields { id: b"my-7", event: b"greet", data: b"hello", topic: b"news/eu", client: b"" };
    link.publish(&first, 1).unwrap();
    link.publish(&data(b"line one\r\nline two"), 2).unwrap();
    link.publish(&Fields { event: b"e", data: b"", ..Default::default() }, 3).unwrap();
    // The fourth fits; the fifth finds every pending slot taken (nothing was answered yet).
    link.publish(&data(b"four"), 4).unwrap();
    let mut full = 0;
    for t in 5..20 {
        if link.publish(&data(b"more"), t) == Err(PublishError::Full) {
            full += 1;
        }
    }
    assert_eq!(full, 15, "max_pending (4) bounds publishes awaiting their reply");
    let accepted = 19 - full;
    assert!(net.run_until(SECS(5), |n| n.node(a).rec.acks.len() == accepted as usize
        && n.node(a).rec.entries.len() == accepted as usize));
    let rec = &net.node(a).rec;
    assert!(rec.fails.is_empty(), "{:?}", rec.fails);
    let tokens: Vec<u64> = rec.acks.iter().map(|a| a.0).collect();
    assert_eq!(&tokens[..4], &[1, 2, 3, 4], "acks come in publish order");
    // The publisher's id is kept verbatim; otherwise the Redis entry id is the event id.
    assert_eq!(rec.acks[0].2, "my-7");
    for (_, redis_id, event_id) in &rec.acks[1..] {
        assert!(is_redis_id(redis_id), "{redis_id}");
        assert_eq!(event_id, redis_id);
    }
    let ids: Vec<String> = rec.acks.iter().map(|a| a.1.clone()).collect();
    assert!(ids.windows(2).all(|w| id_key(&w[0]) < id_key(&w[1])), "ids increase: {ids:?}");
    // Read back: the same entries, the same ids, in the same order, fields intact.
    let read: Vec<String> = rec.entries.iter().map(|e| e.redis_id.clone()).collect();
    assert_eq!(read, ids);
    let e = &rec.entries[0];
    assert_eq!((e.event_id.as_str(), e.id.as_str(), e.event.as_str()), ("my-7", "my-7", "greet"));
    assert_eq!((e.data.as_slice(), e.topic.as_str(), e.client.as_str()), (&b"hello"[..], "news/eu", ""));
    assert_eq!(rec.entries[1].data, b"line one\r\nline two");
    assert_eq!(rec.entries[1].event_id, rec.entries[1].redis_id);
    assert_eq!((rec.entries[2].event.as_str(), rec.entries[2].data.len()), ("e", 0));
    assert_eq!(redis.cli(&["XLEN", "tinysse"]), accepted.to_string());
    let stats = net.node(a).link.stats();
    assert_eq!((stats.acked, stats.read, stats.publish_failures), (accepted, accepted, full));
    assert_eq!(net.node(a).link.last_id(), ids.last().unwrap().as_bytes());
    // MAXLEN ~ was on every XADD: the stream is trimmable (approximate: nothing to trim yet).
    assert!(redis.cli(&["XINFO", "STREAM", "tinysse"]).contains("length"));
}

#[test]
fn two_instances_publishing_at_once_read_one_sequence() {
    capture_logs();
    let redis = RedisServer::start(&[]);
    let mut net = Net::new();
    let (a, b) = (net.add(config(redis.url(), 0xa)), net.add(config(redis.url(), 0xb)));
    assert!(net.run_until(SECS(5), |n| n.all_connected()));
    let rounds = 150u64;
    let mut sent = [0u64; 2];
    let mut turns = 0;
    // Both publish in the same turns, so their XADDs race at Redis; bounded in turns.
    while (sent[0] < rounds || sent[1] < rounds) && turns < 5000 {
        for (k, node) in [a, b].into_iter().enumerate() {
            for _ in 0..3 {
                if sent[k] == rounds {
                    break;
                }
                let body = format!("{}{}", ["a", "b"][k], sent[k]);
                match net.node(node).link.publish(&data(body.as_bytes()), sent[k]) {
                    Ok(()) => sent[k] += 1,
                    Err(PublishError::Full) => break,
                    Err(e) => panic!("publish: {e}"),
                }
            }
        }
        net.turn(Duration::from_millis(1));
        turns += 1;
    }
    let total = 2 * rounds as usize;
    assert!(net.run_until(SECS(10), |n| n.node(a).rec.entries.len() == total && n.node(b).rec.entries.len() == total));
    let seq =
        |n: &mut Net, i| n.node(i).rec.entries.iter().map(|e| (e.redis_id.clone(), e.data.clone())).collect::<Vec<_>>();
    let (sa, sb) = (seq(&mut net, a), seq(&mut net, b));
    assert_eq!(sa, sb, "both instances read the same sequence");
    // Interleaved, not one publisher's block after the other's: the race really happened.
    let switches = sa.windows(2).filter(|w| w[0].1[0] != w[1].1[0]).count();
    assert!(switches > 2, "no interleaving ({switches})");
    // Each publisher's own events are in its publish order, and each ack names its entry.
    for (k, node) in [a, b].into_iter().enumerate() {
        let mine: Vec<String> =
            sa.iter().filter(|e| e.1[0] == b"ab"[k]).map(|e| String::from_utf8_lossy(&e.1).into()).collect();
        let want: Vec<String> = (0..rounds).map(|i| format!("{}{i}", ["a", "b"][k])).collect();
        assert_eq!(mine, want);
        let acked: Vec<String> = net.node(node).rec.acks.iter().map(|a| a.1.clone()).collect();
        let read: Vec<String> = sa.iter().filter(|e| e.1[0] == b"ab"[k]).map(|e| e.0.clone()).collect();
        assert_eq!(acked, read);
    }
}

#[test]
fn history_is_replayed_at_start_then_reading_goes_on() {
    capture_logs();
    let redis = RedisServer::start(&[]);
    let mut net = Net::new();
    let p = net.add(config(redis.url(), 1));
    assert!(net.run_until(SECS(5), |n| n.all_connected()));
    for i in 0..30u64 {
        net.node(p).link.publish(&data(format!("e{i}").as_bytes()), i).unwrap();
    }
    assert!(net.run_until(SECS(5), |n| n.node(p).rec.acks.len() == 30));
    let mk = |history| {
        let mut cfg = config(redis.url(), 100 + history as u64);
        cfg.history = history;
        cfg.read_count = 4; // several XREADs to page through the replay
        cfg
    };
    let (last10, none, all) = (net.add(mk(10)), net.add(mk(0)), net.add(mk(100)));
    assert!(net.run_until(SECS(5), |n| n.all_connected()
        && n.node(last10).rec.entries.len() == 10
        && n.node(all).rec.entries.len() == 30));
    net.run_for(Duration::from_millis(200));
    assert_eq!(net.node(none).rec.entries.len(), 0, "history 0 replays nothing");
    for i in 30..35u64 {
        net.node(p).link.publish(&data(format!("e{i}").as_bytes()), i).unwrap();
    }
    assert!(net.run_until(SECS(5), |n| [last10, none, all].iter().all(|&i| n.node(i).rec.entries.len() >= 5)
        && n.node(last10).rec.entries.len() == 15
        && n.node(all).rec.entries.len() == 35));
    let datas = |n: &mut Net, i| {
        n.node(i).rec.entries.iter().map(|e| String::from_utf8(e.data.clone()).unwrap()).collect::<Vec<_>>()
    };
    let want = |r: std::ops::Range<u64>| r.map(|i| format!("e{i}")).collect::<Vec<_>>();
    assert_eq!(datas(&mut net, last10), want(20..35));
    assert_eq!(datas(&mut net, none), want(30..35));
    assert_eq!(datas(&mut net, all), want(0..35));
    // The replayed entries carry the ids the publisher was acknowledged with.
    let acked: Vec<String> = net.node(p).rec.acks.iter().map(|a| a.1.clone()).collect();
    let read: Vec<String> = net.node(all).rec.entries.iter().map(|e| e.redis_id.clone()).collect();
    assert_eq!(acked, read);
}

#[test]
fn redis_restart_while_publishing_skips_and_repeats_nothing() {
    capture_logs();
    let mut redis = RedisServer::start_persistent();
    let mut net = Net::new();
    let (p, r) = (net.add(config(redis.url(), 0x51)), net.add(config(redis.url(), 0x52)));
    assert!(net.run_until(SECS(5), |n| n.all_connected()));
    let mut refused_at_once = HashSet::new();
    let mut n = 0u64;
    let mut publish_for = |net: &mut Net, time: Duration, refused: &mut HashSet<u64>| {
        let until = std::time::Instant::now() + time;
        while std::time::Instant::now() < until {
            let body = format!("m{n}");
            match net.node(p).link.publish(&data(body.as_bytes()), n) {
                Ok(()) => {}
                Err(PublishError::Down) => {
                    refused.insert(n);
                }
                Err(e) => panic!("publish: {e}"),
            }
            n += 1;
            for _ in 0..2 {
                net.turn(Duration::from_millis(5));
            }
        }
    };
    publish_for(&mut net, Duration::from_millis(800), &mut refused_at_once);
    assert!(refused_at_once.is_empty());
    redis.stop();
    publish_for(&mut net, Duration::from_millis(2500), &mut refused_at_once);
    assert!(refused_at_once.len() > 10, "publishes did not fail while Redis was down");
    assert!(!net.node(p).link.stats().connected && !net.node(p).link.is_up());
    redis.restart();
    // Back within the longest backoff, then publish some more.
    assert!(net.run_until(SECS(10), |n| n.all_connected()), "never reconnected");
    publish_for(&mut net, Duration::from_millis(800), &mut refused_at_once);
    let published = n;
    let xlen: usize = {
        // Settle: every reply in, both readers caught up with the whole stream.
        assert!(net.run_until(SECS(5), |n| n.node(p).link.stats().pending == 0));
        redis.cli(&["XLEN", "tinysse"]).parse().unwrap()
    };
    assert!(net.run_until(SECS(10), |n| n.node(r).rec.entries.len() >= xlen && n.node(p).rec.entries.len() >= xlen));
    net.run_for(Duration::from_millis(300));
    let rec_p = &net.nodes[p].as_ref().unwrap().rec;
    let rec_r = &net.nodes[r].as_ref().unwrap().rec;
    // Nothing repeated: ids strictly increase; nothing skipped: as many as the stream holds.
    assert_eq!(rec_r.entries.len(), xlen, "reader has exactly the stream");
    assert!(rec_r.entries.windows(2).all(|w| id_key(&w[0].redis_id) < id_key(&w[1].redis_id)));
    let read: Vec<(String, Vec<u8>)> = rec_r.entries.iter().map(|e| (e.redis_id.clone(), e.data.clone())).collect();
    let read_p: Vec<(String, Vec<u8>)> = rec_p.entries.iter().map(|e| (e.redis_id.clone(), e.data.clone())).collect();
    assert_eq!(read, read_p, "both instances read the same sequence across the restart");
    let by_data: HashMap<Vec<u8>, usize> = read.iter().fold(HashMap::new(), |mut m, e| {
        *m.entry(e.1.clone()).or_default() += 1;
        m
    });
    assert!(by_data.values().all(|&c| c == 1), "an event was stored twice");
    // Every acknowledged publish is in the stream with its acknowledged id; every publish
    // refused at once is not; a failed one (in flight at the kill) may or may not be.
    let ids: HashSet<&String> = read.iter().map(|e| &e.0).collect();
    let acked: HashSet<u64> = rec_p.acks.iter().map(|a| a.0).collect();
    for (token, redis_id, _) in &rec_p.acks {
        assert!(ids.contains(redis_id), "acked {token} ({redis_id}) missing after the restart");
    }
    for t in &refused_at_once {
        assert!(!by_data.contains_key(format!("m{t}").as_bytes()), "refused {t} was stored");
        assert!(!acked.contains(t));
    }
    let failed: HashSet<u64> = rec_p.fails.iter().map(|f| f.0).collect();
    eprintln!(
        "restart: {published} published, {} acked, {} failed in flight, {} refused at once, {xlen} in the stream",
        acked.len(),
        failed.len(),
        refused_at_once.len()
    );
    assert!(rec_p.fails.iter().all(|f| f.1 == PublishError::Down), "{:?}", rec_p.fails);
    assert_eq!(acked.len() + failed.len() + refused_at_once.len(), published as usize, "every publish answered once");
    assert!(acked.is_disjoint(&failed));
    for node in [p, r] {
        assert!(net.node(node).link.stats().reconnects >= 2, "{:?}", net.node(node).link.stats());
    }
    let warned = logs_matching(&format!("127.0.0.1:{}", redis.port));
    assert!(warned.iter().any(|l| l.starts_with("WARN")), "{warned:?}");
    assert!(warned.iter().filter(|l| l.starts_with("WARN")).count() <= 4, "warnings not rate-limited: {warned:#?}");
}

#[test]
fn auth_with_a_password_and_the_password_never_shows() {
    capture_logs();
    let redis = RedisServer::start(&["--requirepass", "s3cret-pw"]);
    let port = redis.port;
    let url = |s: &str| RedisUrl::parse(&format!("redis://{s}@127.0.0.1:{port}/0")).unwrap();
    let mut net = Net::new();
    let good = net.add(config(url(":s3cret-pw"), 1));
    let user = net.add(config(url("default:s3cret-pw"), 2));
    let bad = net.add(config(url(":wr0ng-pw"), 3));
    let none = net.add(config(redis.url(), 4));
    assert!(net.run_until(SECS(5), |n| n.node(good).link.stats().connected && n.node(user).link.stats().connected));
    net.run_for(Duration::from_millis(500));
    for i in [bad, none] {
        assert!(!net.node(i).link.stats().connected);
        assert_eq!(net.node(i).link.publish(&data(b"x"), 1), Err(PublishError::Down));
    }
    net.node(good).link.publish(&data(b"with auth"), 9).unwrap();
    net.node(user).link.publish(&data(b"with acl user"), 10).unwrap();
    assert!(net.run_until(SECS(5), |n| n.node(good).rec.entries.len() == 2 && n.node(user).rec.acks.len() == 1));
    let refused = logs_matching(&format!("127.0.0.1:{port}"));
    assert!(refused.iter().any(|l| l.contains("WRONGPASS")), "{refused:#?}");
    assert!(refused.iter().any(|l| l.contains("NOAUTH")), "{refused:#?}");
    for i in [good, user, bad, none] {
        let debug = format!("{:?}", net.node(i).link);
        assert!(!debug.contains("s3cret") && !debug.contains("wr0ng"), "{debug}");
    }
    let all = LINES.lock().unwrap().join("\n");
    assert!(!all.contains("s3cret") && !all.contains("wr0ng"), "a password reached the log");
}

#[test]
fn select_picks_the_database() {
    capture_logs();
    let redis = RedisServer::start(&[]);
    let mut net = Net::new();
    let url = RedisUrl::parse(&format!("redis://127.0.0.1:{}/3", redis.port)).unwrap();
    let a = net.add(config(url, 1));
    assert!(net.run_until(SECS(5), |n| n.all_connected()));
    net.node(a).link.publish(&data(b"in db 3"), 1).unwrap();
    assert!(net.run_until(SECS(5), |n| n.node(a).rec.entries.len() == 1));
    assert_eq!(redis.cli(&["-n", "3", "XLEN", "tinysse"]), "1");
    assert_eq!(redis.cli(&["-n", "0", "XLEN", "tinysse"]), "0");
    // A database Redis does not have: refused at SELECT, so never up.
    let url = RedisUrl::parse(&format!("redis://127.0.0.1:{}/99", redis.port)).unwrap();
    let b = net.add(config(url, 2));
    net.run_for(Duration::from_millis(400));
    assert!(!net.node(b).link.stats().connected);
}

#[test]
fn presence_targets_only_held_clients_and_claims_are_ordered() {
    capture_logs();
    let redis = RedisServer::start(&[]);
    let mut net = Net::new();
    let cfg = |inst| {
        let mut c = config(redis.url(), inst);
        c.presence_ttl_ms = 900;
        c
    };
    let (a, b) = (net.add(cfg(0xa1)), net.add(cfg(0xb2)));
    assert!(net.run_until(SECS(5), |n| n.all_connected()));
    let to = |client: &'static [u8]| Fields { data: b"for you", client, ..Default::default() };
    // Nobody holds alice: refused, nothing stored.
    net.node(a).link.publish(&to(b"alice"), 1).unwrap();
    assert!(net.run_until(SECS(5), |n| !n.node(a).rec.fails.is_empty()));
    assert_eq!(net.node(a).rec.fails, [(1, PublishError::ClientNotConnected)]);
    assert_eq!(redis.cli(&["XLEN", "tinysse"]), "0");
    // A's stream 5 claims alice: acknowledged, and both instances read the claim.
    net.node(a).link.claim(b"alice", 5, 100).unwrap();
    // (The claim may be read back before its acknowledgement: two connections.)
    assert!(net.run_until(SECS(5), |n| n.node(a).rec.claims.len() == 1
        && n.node(b).rec.claims.len() == 1
        && n.node(a).rec.acks.len() == 1));
    let (ca, cb) = (net.node(a).rec.claims[0].clone(), net.node(b).rec.claims[0].clone());
    assert_eq!((ca.client.as_str(), ca.instance, ca.stream, ca.mine), ("alice", 0xa1, 5, true));
    assert_eq!((cb.redis_id.as_str(), cb.mine), (ca.redis_id.as_str(), false));
    assert_eq!(net.node(a).rec.acks[0].1, ca.redis_id);
    // Now B can target alice (held on A).
    net.node(b).link.publish(&to(b"alice"), 2).unwrap();
    assert!(net.run_until(SECS(5), |n| n.node(a).rec.entries.len() == 1 && n.node(b).rec.acks.len() == 1));
    assert_eq!(net.node(a).rec.entries[0].client, "alice");
    // B's stream 9 takes alice over: its claim comes after A's, everywhere.
    net.node(b).link.claim(b"alice", 9, 200).unwrap();
    assert!(net.run_until(SECS(5), |n| n.node(a).rec.claims.len() == 2 && n.node(b).rec.claims.len() == 2));
    let c2 = net.node(a).rec.claims[1].clone();
    assert_eq!((c2.instance, c2.stream, c2.mine), (0xb2, 9, false));
    assert!(net.node(b).rec.claims[1].mine);
    // A's old stream ends: A releases, B still holds, so alice stays reachable.
    net.node(a).link.release(b"alice").unwrap();
    net.node(a).link.publish(&to(b"alice"), 3).unwrap();
    assert!(net.run_until(SECS(5), |n| n.node(a).rec.acks.len() == 2));
    net.node(b).link.release(b"alice").unwrap();
    assert!(net.run_until(SECS(5), |n| n.node(b).link.stats().pending == 0));
    net.node(a).link.publish(&to(b"alice"), 4).unwrap();
    assert!(net.run_until(SECS(5), |n| n.node(a).rec.fails.len() == 2));
    assert_eq!(net.node(a).rec.fails[1], (4, PublishError::ClientNotConnected));
    // Redis loses B's presence set: B's refresh finds out and asks for a resync.
    net.node(b).link.claim(b"bob", 10, 300).unwrap();
    assert!(net.run_until(SECS(5), |n| n.node(b).rec.acks.len() == 3));
    while net.node(b).link.take_resync() {}
    assert_eq!(redis.cli(&["DEL", "tinysse:clients:00000000000000b2"]), "1");
    assert!(net.run_until(SECS(3), |n| n.node(b).link.take_resync()), "no resync after the set was lost");
    net.node(b).link.readd(b"bob").unwrap();
    // Its own connection: let its reply come back before A's publish races it.
    assert!(net.run_until(SECS(5), |n| n.node(b).link.stats().pending == 0));
    net.node(a).link.publish(&to(b"bob"), 5).unwrap();
    assert!(net.run_until(SECS(5), |n| n.node(a).rec.acks.len() == 3), "{:?}", net.node(a).rec);
    // B dies: its set expires after the TTL and bob is gone cluster-wide.
    net.kill(b);
    net.run_for(Duration::from_millis(1200));
    net.node(a).link.publish(&to(b"bob"), 6).unwrap();
    assert!(net.run_until(SECS(5), |n| n.node(a).rec.fails.len() == 3));
    assert_eq!(net.node(a).rec.fails[2], (6, PublishError::ClientNotConnected));
    // The dead instance was pruned from the registry on the way (A's set is empty, so gone too).
    assert!(!redis.cli(&["SMEMBERS", "tinysse:instances"]).contains("b2"));
}

#[test]
fn an_entry_too_large_to_hold_is_passed_over() {
    capture_logs();
    let redis = RedisServer::start(&[]);
    let mut net = Net::new();
    let small = |inst| {
        let mut c: LinkConfig = config(redis.url(), inst);
        c.max_event_bytes = 1000;
        c.read_count = 1;
        c.history = 10;
        c
    };
    let a = net.add(small(1));
    assert!(net.run_until(SECS(5), |n| n.all_connected()));
    net.node(a).link.publish(&data(b"before"), 1).unwrap();
    assert!(net.run_until(SECS(5), |n| n.node(a).rec.entries.len() == 1));
    // Written by something else, far over what tinysse would write or the buffer holds.
    let big = vec![b'x'; 200_000];
    let id = redis.cli_stdin(&["XADD", "tinysse", "*", "data"], &big);
    assert!(id.contains('-'), "{id}");
    net.node(a).link.publish(&data(b"after"), 2).unwrap();
    assert!(net.run_until(SECS(5), |n| n.node(a).rec.entries.len() == 2));
    let datas: Vec<Vec<u8>> = net.node(a).rec.entries.iter().map(|e| e.data.clone()).collect();
    assert_eq!(datas, [b"before".to_vec(), b"after".to_vec()]);
    assert_eq!(net.node(a).link.stats().skipped, 1);
    // A new instance passes over it too, both in the history reply and when reading it.
    let b = net.add(small(2));
    assert!(net.run_until(SECS(5), |n| n.node(b).rec.entries.len() == 2));
    assert_eq!(net.node(b).link.stats().skipped, 1);
    assert!(net.node(b).link.stats().connected);
    assert!(!logs_matching(&id).is_empty(), "the skipped entry is logged by id");
}

#[test]
fn starting_with_redis_down_keeps_trying_and_warns_once() {
    capture_logs();
    let port = common::free_port();
    let mut net = Net::new();
    let url = RedisUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap();
    let a = net.add(config(url, 1));
    net.run_for(Duration::from_millis(1500));
    assert!(!net.node(a).link.stats().connected);
    assert_eq!(net.node(a).link.publish(&data(b"x"), 1), Err(PublishError::Down));
    let lines = logs_matching(&format!("127.0.0.1:{port}"));
    let warns = lines.iter().filter(|l| l.starts_with("WARN")).count();
    // Two connections, each tried several times in 1.5 s: one warning line in all.
    assert_eq!(warns, 1, "{lines:#?}");
    assert!(lines.len() >= 4, "did not keep trying: {lines:#?}");
    let _redis = RedisServer::start_on(port, &[]);
    assert!(net.run_until(SECS(10), |n| n.all_connected()), "never connected once Redis came");
    net.node(a).link.publish(&data(b"late"), 2).unwrap();
    assert!(net.run_until(SECS(5), |n| n.node(a).rec.entries.len() == 1));
    assert!(
        logs_matching(&format!("127.0.0.1:{port}")).iter().any(|l| l.starts_with("INFO")),
        "no line says it is back"
    );
}
