//! Proves the link allocates nothing once started: a counting global allocator counts the
//! allocations made on the loop's thread while two links publish (broadcast and targeted),
//! claim and release client ids, refresh presence, read everything back, and lose both
//! connections to a CLIENT KILL and reconnect. The count is the assertion.

mod common;

use common::{RedisServer, config};
use mio::{Events, Poll, Token};
use redis_link::link::{Ack, Claim, Entry, Fields, Link, PublishError, Sink};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts only: a sink that allocates would hide the link's allocations among its own.
#[derive(Default)]
struct Tally {
    entries: u64,
    claims: u64,
    acks: u64,
    fails: u64,
    bytes: u64,
}

impl Sink for Tally {
    fn entry(&mut self, e: &Entry<'_>) {
        self.entries += 1;
        self.bytes += (e.fields.data.len() + e.event_id().len()) as u64;
    }
    fn claim(&mut self, _: &Claim<'_>) {
        self.claims += 1;
    }
    fn acked(&mut self, _: u64, ack: &Ack<'_>) {
        self.acks += 1;
        self.bytes += ack.event_id.len() as u64;
    }
    fn failed(&mut self, _: u64, _: PublishError) {
        self.fails += 1;
    }
}

struct Loop {
    poll: Poll,
    events: Events,
    links: [Link; 2],
    sinks: [Tally; 2],
    start: Instant,
}

impl Loop {
    fn turn(&mut self) {
        let now = self.start.elapsed().as_millis() as u64;
        let next = self.links.iter().map(Link::deadline).min().unwrap_or(u64::MAX);
        let wait = Duration::from_millis(next.saturating_sub(now).min(5));
        self.poll.poll(&mut self.events, Some(wait)).unwrap();
        let now = self.start.elapsed().as_millis() as u64;
        let registry = self.poll.registry();
        for ev in self.events.iter() {
            let i = ev.token().0 / 2;
            self.links[i].on_ready(ev.token(), now, registry, &mut self.sinks[i]);
        }
        for (link, sink) in self.links.iter_mut().zip(self.sinks.iter_mut()) {
            link.tick(now, registry, sink);
        }
    }

    fn run_until(&mut self, timeout: Duration, done: impl Fn(&Loop) -> bool) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until && !done(self) {
            self.turn();
        }
        done(self)
    }
}

#[test]
fn the_link_does_not_allocate_per_event() {
    let redis = RedisServer::start(&[]);
    let mk = |inst| {
        let mut cfg = config(redis.url(), inst);
        cfg.presence_ttl_ms = 300;
        cfg.history = 0;
        cfg
    };
    let mut l = Loop {
        poll: Poll::new().unwrap(),
        events: Events::with_capacity(64),
        links: [Link::new(mk(1), Token(0), Token(1)), Link::new(mk(2), Token(2), Token(3))],
        sinks: [Tally::default(), Tally::default()],
        start: Instant::now(),
    };
    assert!(l.run_until(Duration::from_secs(5), |l| l.links.iter().all(|k| k.stats().connected)));
    let mut ids = [[0u8; 16]; 8];
    let mut publish = |l: &mut Loop, n: u64| {
        let id = &mut ids[(n % 8) as usize];
        id[..6].copy_from_slice(b"pub-00");
        id[4] = b'0' + (n / 10 % 10) as u8;
        id[5] = b'0' + (n % 10) as u8;
        let fields = match n % 4 {
            0 => Fields { id: &id[..6], event: b"tick", data: b"0123456789abcdef", topic: b"t/1", client: b"" },
            1 => Fields { data: b"to the held client", client: b"held", ..Default::default() },
            _ => Fields { data: b"plain", ..Default::default() },
        };
        match l.links[(n % 2) as usize].publish(&fields, n) {
            Ok(()) | Err(PublishError::Full) | Err(PublishError::Down) => {}
            Err(e) => panic!("publish: {e}"),
        }
    };
    // Warm-up: every path once (scripts, claims, targeted publishes, refreshes).
    l.links[0].claim(b"held", 1, 1000).unwrap();
    assert!(l.run_until(Duration::from_secs(5), |l| l.sinks[1].claims == 1));
    for n in 0..40 {
        publish(&mut l, n);
        l.turn();
    }
    assert!(l.run_until(Duration::from_secs(5), |l| l.sinks[1].entries == 40));

    let (kill, go) = redis_killer(redis.port);
    COUNTING.with(|c| c.set(true));
    for n in 40..2040 {
        publish(&mut l, n);
        if n % 3 == 0 {
            l.turn();
        }
        if n % 500 == 0 {
            l.links[1].claim(b"other", n, 2000 + n).unwrap_or(());
            l.links[1].release(b"other").unwrap_or(());
        }
    }
    let read = l.run_until(Duration::from_secs(10), |l| l.sinks.iter().all(|s| s.entries >= 2040));
    // Both connections of both links dropped by Redis, then made again.
    go.store(true, Ordering::Release);
    let reconnected = l.run_until(Duration::from_secs(10), |l| {
        kill.is_finished() && l.links.iter().all(|k| k.stats().connected && k.stats().reconnects >= 2)
    });
    for n in 2040..2140 {
        publish(&mut l, n);
        l.turn();
    }
    let after = l.run_until(Duration::from_secs(10), |l| l.sinks.iter().all(|s| s.entries >= 2100));
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.with(Cell::get);

    assert!(read && reconnected && after, "read {read}, reconnected {reconnected}, after {after}");
    assert!(l.sinks[0].acks + l.sinks[1].acks >= 2000, "{}", l.sinks[0].acks + l.sinks[1].acks);
    assert!(l.links[0].stats().reconnects >= 2);
    assert_eq!(allocations, 0, "allocations on the loop's thread after start-up");
}

/// CLIENT KILL of every normal client, from another thread started beforehand (spawning a
/// thread or a process allocates), once told to.
fn redis_killer(port: u16) -> (std::thread::JoinHandle<()>, Arc<AtomicBool>) {
    let go = Arc::new(AtomicBool::new(false));
    let told = go.clone();
    let thread = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(30);
        while !told.load(Ordering::Acquire) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "CLIENT", "KILL", "TYPE", "normal"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().is_ok_and(|n| n >= 4));
    });
    (thread, go)
}
