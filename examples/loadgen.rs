//! loadgen: a load generator for tinysse and any other SSE server with the same two routes
//! (`GET /events` subscribes, `POST /events` with a raw body publishes that body as the data).
//!
//! ```text
//! ulimit -n 65536
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080 --subscribers 1000 \
//!     --events 2000 --size 64 --pid "$(pidof tinysse)" [--json]
//! ```
//!
//! Flags: `--url URL` (http://127.0.0.1:8080; the host must be a literal in 127.0.0.0/8, `[::1]` or
//! `localhost`, anything else is refused), `--sub-path P` and `--pub-path P` (/events, or the URL's
//! path when it has one), `--subscribers N` (1000), `--events E` (2000), `--size S` (64 data bytes per
//! event), `--threads T` (2 reader threads), `--window W` (16 pipelined publishes in flight per connection; a
//! waiting publisher has 1, and any other `--window` is refused with it),
//! `--connect-window C` (100 connects in progress at once), `--rate EPS` (0: publish as fast as
//! the window allows; otherwise publishes are paced to EPS per second, over all publishers),
//! `--publish-mode pipelined|wait` (pipelined: up to W requests in flight on the connection;
//! wait: one request in flight, the next POST written only once the previous answer has been read
//! completely, as most real publishers do), `--publishers K` (1 publisher connection; with K > 1
//! each runs the chosen mode at once on its own keep-alive connection and thread),
//! `--pid PID` (server process sampled from /proc), `--idle-secs SECS` (5), `--timeout SECS` (60, per
//! phase), `--json` (one final JSON line on stdout).
//!
//! Phases, each bounded in time:
//! 1. connect: N subscriber connections are opened without blocking (at most `--connect-window`,
//!    100, connects in progress at once over all threads: above the server's listen backlog,
//!    often 128, dropped SYNs would cost 1 s retries and measure the kernel, not the server),
//!    spread over T reader threads that each own a `mio::Poll`; each sends its GET and waits for a
//!    `200` response head. `connect_secs` runs from the first `connect()` to the last 200 head.
//!    Subscribers that fail (refused, non-200 such as 503, timeout) are reported and left out.
//! 2. idle: sleeps `--idle-secs` while the readers keep reading (heartbeats are parsed and
//!    skipped). With `--pid`: CPU time and wakeups (the sum over /proc/PID/task/*/status of
//!    voluntary + nonvoluntary context switches) are sampled at both ends of the window, RSS (VmRSS)
//!    at its end.
//! 3. busy: K keep-alive HTTP/1.1 connections (one thread each, TCP_NODELAY) POST E bodies in all,
//!    of exactly S bytes, `"<seq> <send_nanos> "` padded with `x` (send_nanos = nanoseconds since the
//!    loadgen started), `Content-Type: text/plain`. Publisher k of K sends seqs k, k+K, k+2K, ...
//!    below E, in order, so every event names its publisher (`seq % K`). Pipelined: up to W
//!    requests in flight per connection; wait: one, and the next POST is written as soon as the
//!    previous answer has been read completely (in the same pass of the publisher's loop, no
//!    think time). Responses are parsed as they arrive and any answer outside 2xx (nchan's
//!    201/202 count as success), or a request left unanswered when the server closes the
//!    connection, is a publish error (the publisher reconnects up to 3 times and carries on with
//!    its next seq). With `--rate` the publishes are paced. The phase ends when every connected
//!    subscriber has all E events, when every subscriber still short of E has been disconnected,
//!    on `--timeout`, or when every publisher has finished and nothing was delivered for 5 s;
//!    publishes not yet sent or answered then are `publish_abandoned`, not errors. RSS and CPU are sampled again. The
//!    readers all stop reading before any of them closes its subscriber connections.
//!
//! Subscribers parse the response incrementally with no allocation per event: per-connection state
//! machines for the HTTP head (a buffer allocated at connect and freed once the head is parsed),
//! chunked transfer decoding (when the head says `Transfer-Encoding: chunked`) and SSE lines (LF,
//! CR or CRLF endings; `retry:`, `id:`, `event:`, other fields and `:` comments are skipped; `data:
//! v` and `data:v` both carry `v`; a blank line dispatches). Payloads are parsed on the fly, never
//! copied. Counters and the latency histogram are per thread and merged at the end.
//!
//! Definitions (per connected subscriber; every count below is summed over subscribers):
//! - delivered: a seq in 0..E received for the first time. `deliveries` counts these.
//! - duplicate: an event whose seq was already delivered to that subscriber.
//! - reordered: a delivered event whose seq is lower than a seq of the same publisher delivered
//!   to that subscriber before it (it arrived after a later one). It is delivered, so it is not
//!   missing. Events of different publishers have no order of their own, so none is checked.
//! - missing: E minus the distinct seqs delivered when the busy phase ends (a bitset of E bits per
//!   subscriber makes this exact).
//! - malformed: an event whose data is not exactly one `data` line of S bytes of the form above,
//!   or whose seq is not below E.
//! - dropped: subscriber streams that ended (closed, reset, chunked terminator) before the end.
//! - latency: receive time (taken once per `read()`) minus send_nanos, for delivered events only,
//!   in a preallocated log-linear histogram of microseconds (exact below 64 us, then 32 buckets per
//!   power of two, under 3.2 % error); p50/p99 are bucket midpoints, max is exact.
//! - arrival latency: the same, but ended at the kernel's receive stamp (`SO_TIMESTAMPNS`) of
//!   the newest segment in that read instead of at the read: what is left once the load
//!   generator's own reader threads, which share this machine's CPUs with the server, are taken
//!   out. An upper bound: events of older segments in the same read arrived earlier.
//! - deliveries_per_sec: deliveries / (last delivery - first publish).
//! - answers: publishes answered 2xx. answers_per_sec: answers / (last answer - first publish),
//!   over all K publishers (publish round trips per second).
//! - publish round trip (rtt): from the moment a request is queued for writing (the same clock
//!   reading as its send_nanos) to the moment its whole response has been read, per answered
//!   request, in the same kind of histogram (one per publisher, merged). In pipelined mode it
//!   includes the wait behind the requests ahead of it in the window. rtt to arrival: the same,
//!   ended at the kernel's receive stamp of the answer instead (the publisher thread's wait for
//!   a CPU taken out).
//!
//! `--json` keys: subscribers, connected, events, size, connect_secs, deliveries,
//! deliveries_per_sec, p50_ms, p99_ms, max_ms, missing, duplicate, reordered, malformed, dropped,
//! publish_errors, publish_abandoned, rss_idle_kib, rss_busy_kib, rss_peak_kib (VmHWM),
//! cpu_idle_secs, cpu_busy_secs, idle_wakeups, idle_secs, loadgen_cpu_busy_secs, timed_out,
//! publish_mode ("pipelined" or "wait"), publishers, window (1 in wait mode), answers,
//! answers_per_sec, rtt_p50_ms, rtt_p99_ms, rtt_max_ms, rtt_mean_ms, busy_secs (the busy phase's
//! wall time), and from /proc over the busy phase: runq_wait_busy_secs (time the server's threads
//! waited on a run queue, schedstat), ctx_busy and nvctx_busy (context switches, all and
//! involuntary), syscr_busy and syscw_busy (read-like and write-like syscalls, /proc/PID/io),
//! arrival_p50_ms, arrival_p99_ms, rtt_arrival_p99_ms, rtt_arrival_mean_ms; the /proc values are
//! null without `--pid`, latency and rate values null with no deliveries (rtt and
//! answers_per_sec: with no answer), the arrival values null where the kernel gave no stamps.
//!
//! Exit status: 0 when all went well; 1 for a usage or set-up error (bad flag, too few file
//! descriptors, nothing could connect); 3 when the run completed with missing, duplicate,
//! reordered or malformed events, publish errors, dropped or failed subscribers.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Largest response head a subscriber accepts.
const HEAD_MAX: usize = 8192;
/// Each reader thread's read buffer.
const READ_BUF: usize = 64 * 1024;
/// Busy phase: end after the publisher has finished and nothing was delivered for this long.
const QUIET: Duration = Duration::from_secs(5);
/// Publisher reconnects after the server closed its connection.
const MAX_RECONNECTS: u32 = 3;
/// Clock ticks per second for /proc/PID/stat (`getconf CLK_TCK`, 100 on Linux).
const CLK_TCK: f64 = 100.0;

const PHASE_CONNECT: u8 = 0;
const PHASE_RUN: u8 = 1;
const PHASE_STOP: u8 = 2;

// ---------------------------------------------------------------------------------------------
// Flags

struct Cfg {
    addr: SocketAddr,
    url: String,
    authority: String,
    sub_path: String,
    pub_path: String,
    subscribers: usize,
    events: u64,
    size: usize,
    threads: usize,
    window: usize,
    connect_window: usize,
    rate: f64,
    /// `--publish-mode wait`: one request in flight per publisher (`window` is then 1).
    wait: bool,
    publishers: usize,
    pid: Option<u32>,
    idle: Duration,
    timeout: Duration,
    json: bool,
}

const HELP: &str = "\
loadgen: subscribers, publishes and measurements against a local SSE server

usage: cargo run --release --example loadgen -- [flags]

  --url URL           server (http://127.0.0.1:8080); loopback only: 127.0.0.0/8, [::1], localhost
  --sub-path PATH     GET path of the stream (/events, or the URL's path)
  --pub-path PATH     POST path to publish (/events, or the URL's path)
  --subscribers N     subscriber connections (1000)
  --events E          events to publish (2000)
  --size S            data bytes per event (64)
  --threads T         reader threads (2)
  --window W          pipelined publishes in flight per connection (16; wait mode: 1)
  --connect-window C  subscriber connects in progress at once, over all threads (100; keep it
                      under the server's listen backlog, or dropped SYNs cost 1 s retries)
  --rate EPS          publishes per second over all publishers, paced (0: as fast as the
                      window allows; default 0)
  --publish-mode M    pipelined (default: up to W requests in flight per connection) or wait
                      (one in flight: the next POST once the previous answer is read)
  --publishers K      publisher connections at once, one thread each (1); publisher k sends
                      seqs k, k+K, k+2K, ...
  --pid PID           server process to sample from /proc (optional)
  --idle-secs SECS    idle observation window (5)
  --timeout SECS      bound of the connect and busy phases (60)
  --json              print one final JSON line
";

fn parse_args() -> Result<Cfg, String> {
    use lexopt::prelude::*;
    let mut url = String::from("http://127.0.0.1:8080");
    let (mut sub_path, mut pub_path) = (None, None);
    let (mut subscribers, mut events, mut size, mut threads) = (1000usize, 2000u64, 64usize, 2usize);
    let mut window: Option<usize> = None;
    let mut connect_window = 100usize;
    let (mut wait, mut publishers) = (false, 1usize);
    let mut rate = 0.0f64;
    let (mut pid, mut idle, mut timeout, mut json) = (None, 5.0f64, 60.0f64, false);
    let mut p = lexopt::Parser::from_env();
    fn num<T: std::str::FromStr>(p: &mut lexopt::Parser, name: &str) -> Result<T, String> {
        let v = p.value().map_err(|e| e.to_string())?;
        let s = v.to_str().ok_or_else(|| format!("--{name}: not UTF-8"))?;
        s.parse().map_err(|_| format!("--{name}: bad value {s:?}"))
    }
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("url") => url = num(&mut p, "url")?,
            Long("sub-path") => sub_path = Some(num::<String>(&mut p, "sub-path")?),
            Long("pub-path") => pub_path = Some(num::<String>(&mut p, "pub-path")?),
            Long("subscribers") => subscribers = num(&mut p, "subscribers")?,
            Long("events") => events = num(&mut p, "events")?,
            Long("size") => size = num(&mut p, "size")?,
            Long("threads") => threads = num(&mut p, "threads")?,
            Long("window") => window = Some(num(&mut p, "window")?),
            Long("connect-window") => connect_window = num(&mut p, "connect-window")?,
            Long("rate") => rate = num(&mut p, "rate")?,
            Long("publish-mode") => {
                wait = match num::<String>(&mut p, "publish-mode")?.as_str() {
                    "pipelined" => false,
                    "wait" => true,
                    m => return Err(format!("--publish-mode: pipelined or wait, not {m:?}")),
                }
            }
            Long("publishers") => publishers = num(&mut p, "publishers")?,
            Long("pid") => pid = Some(num(&mut p, "pid")?),
            Long("idle-secs") => idle = num(&mut p, "idle-secs")?,
            Long("timeout") => timeout = num(&mut p, "timeout")?,
            Long("json") => json = true,
            Short('h') | Long("help") => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    let (addr, authority, path) = parse_url(&url)?;
    let path = path.unwrap_or_else(|| "/events".into());
    let sub_path = sub_path.unwrap_or_else(|| path.clone());
    let pub_path = pub_path.unwrap_or(path);
    for p in [&sub_path, &pub_path] {
        if !p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!("bad path {p:?}"));
        }
    }
    if wait && window.is_some_and(|w| w != 1) {
        return Err("--window: a waiting publisher (--publish-mode wait) has exactly one request in flight".into());
    }
    let window = if wait { 1 } else { window.unwrap_or(16) };
    if subscribers == 0 || events == 0 || threads == 0 || window == 0 || connect_window == 0 || publishers == 0 {
        return Err(
            "--subscribers, --events, --threads, --window, --connect-window and --publishers must be at least 1".into(),
        );
    }
    if publishers as u64 > events || publishers > 1024 {
        return Err("--publishers: at most --events, and at most 1024".into());
    }
    if events > u32::MAX as u64 {
        return Err("--events: at most 4294967295".into());
    }
    // "<seq> <nanos> ": nanoseconds since start take at most 15 digits for a run under 11 days.
    let prefix = digits(events - 1) + 1 + 15 + 1;
    if size < prefix {
        return Err(format!("--size must be at least {prefix} for {events} events (\"<seq> <send_nanos> \")"));
    }
    if size > 1 << 20 {
        return Err("--size: at most 1048576".into());
    }
    let bitset_bytes = subscribers as u64 * events.div_ceil(64) * 8;
    if bitset_bytes > 2 << 30 {
        return Err(format!("--subscribers x --events needs {} MiB of seq bitsets; at most 2048", bitset_bytes >> 20));
    }
    for (name, v) in [("idle-secs", idle), ("timeout", timeout)] {
        if !(0.0..=86400.0).contains(&v) {
            return Err(format!("--{name}: between 0 and 86400"));
        }
    }
    if !(0.0..=1e9).contains(&rate) {
        return Err("--rate: between 0 and 1e9".into());
    }
    Ok(Cfg {
        addr,
        url,
        authority,
        sub_path,
        pub_path,
        subscribers,
        events,
        size,
        threads: threads.min(subscribers),
        window,
        connect_window,
        rate,
        wait,
        publishers,
        pid,
        idle: Duration::from_secs_f64(idle),
        timeout: Duration::from_secs_f64(timeout),
        json,
    })
}

fn digits(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// `http://host[:port][/path]` with a loopback host -> (address, authority for Host, path).
fn parse_url(url: &str) -> Result<(SocketAddr, String, Option<String>), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("--url {url:?}: only http:// is supported"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let bad = || format!("--url {url:?}: cannot parse host and port");
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let end = r.find(']').ok_or_else(bad)?;
        let port = match &r[end + 1..] {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (&r[..end], port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port: u16 = match port {
        None => 80,
        Some(p) => p.parse().map_err(|_| bad())?,
    };
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().map_err(|_| format!("--url {url:?}: the host must be an IP literal (or localhost)"))?
    };
    let loopback = match ip {
        IpAddr::V4(a) => a.octets()[0] == 127,
        IpAddr::V6(a) => a == Ipv6Addr::LOCALHOST,
    };
    if !loopback {
        return Err(format!("--url {url:?}: refusing a non-loopback host (127.0.0.0/8 or ::1 only)"));
    }
    let path = match path {
        None | Some("/") => None,
        Some(p) if p.starts_with('?') => Some(format!("/events{p}")),
        Some(p) => Some(p.to_string()),
    };
    Ok((SocketAddr::new(ip, port), authority.to_string(), path))
}

// ---------------------------------------------------------------------------------------------
// Incremental parsers

/// Chunked transfer decoding, one byte or one run of chunk data at a time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CSt {
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
    Done,
    Bad,
}

#[derive(Clone, Copy)]
struct Chunked {
    st: CSt,
    rem: u64,
    hex: u8,
    line_empty: bool,
}

impl Chunked {
    fn new() -> Self {
        Chunked { st: CSt::Size, rem: 0, hex: 0, line_empty: true }
    }

    /// Decodes `d`, handing chunk data to `out`. Returns the bytes consumed, which is less than
    /// `d.len()` only once the body has ended (`Done`, the bytes after it are not its own) or is
    /// malformed (`Bad`).
    fn feed(&mut self, d: &[u8], out: &mut impl FnMut(&[u8])) -> usize {
        let mut i = 0;
        while i < d.len() {
            match self.st {
                CSt::Done | CSt::Bad => return i,
                CSt::Data => {
                    let n = (d.len() - i).min(self.rem.min(usize::MAX as u64) as usize);
                    out(&d[i..i + n]);
                    i += n;
                    self.rem -= n as u64;
                    if self.rem == 0 {
                        self.st = CSt::DataCr;
                    }
                }
                _ => {
                    self.byte(d[i]);
                    i += 1;
                }
            }
        }
        i
    }

    fn byte(&mut self, b: u8) {
        self.st = match self.st {
            CSt::Size => match (b as char).to_digit(16) {
                Some(v) if self.hex < 15 => {
                    self.rem = self.rem * 16 + v as u64;
                    self.hex += 1;
                    CSt::Size
                }
                Some(_) => CSt::Bad,
                None if self.hex == 0 => CSt::Bad,
                None => match b {
                    b';' | b' ' | b'\t' => CSt::Ext,
                    b'\r' => CSt::SizeLf,
                    b'\n' => self.size_done(),
                    _ => CSt::Bad,
                },
            },
            CSt::Ext if b == b'\n' => self.size_done(),
            CSt::Ext => CSt::Ext,
            CSt::SizeLf if b == b'\n' => self.size_done(),
            CSt::DataCr if b == b'\r' => CSt::DataLf,
            CSt::DataCr | CSt::DataLf if b == b'\n' => {
                self.rem = 0;
                self.hex = 0;
                CSt::Size
            }
            CSt::Trailer => match b {
                b'\n' if self.line_empty => CSt::Done,
                b'\n' => {
                    self.line_empty = true;
                    CSt::Trailer
                }
                b'\r' => CSt::Trailer,
                _ => {
                    self.line_empty = false;
                    CSt::Trailer
                }
            },
            _ => CSt::Bad,
        }
    }

    fn size_done(&mut self) -> CSt {
        self.hex = 0;
        if self.rem == 0 {
            self.line_empty = true;
            CSt::Trailer
        } else {
            CSt::Data
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Line {
    Start,
    Name,
    ValueStart,
    Value,
    Skip,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Val {
    Seq,
    Nanos,
    Pad,
    Bad,
}

/// One SSE stream's line and event state. Only `data` values are looked at, and only as far as
/// the payload format needs: `<seq> <nanos> ` then `x` padding, and the value's length.
#[derive(Clone, Copy)]
struct Sse {
    line: Line,
    after_cr: bool,
    name_len: u8,
    name_ok: bool,
    data_lines: u8,
    val: Val,
    ndigits: u8,
    seq: u64,
    nanos: u64,
    vlen: usize,
}

/// A dispatched event: `Some((seq, send_nanos))`, or `None` when its data is malformed.
type Parsed = Option<(u64, u64)>;

fn is_eol(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// Length of the run of `x` at the start of `d`; 16 bytes at a time where it can.
fn run_of_x(d: &[u8]) -> usize {
    let mut i = 0;
    while i + 16 <= d.len() && d[i..i + 16].iter().fold(true, |a, &b| a & (b == b'x')) {
        i += 16;
    }
    while i < d.len() && d[i] == b'x' {
        i += 1;
    }
    i
}

impl Sse {
    fn new() -> Self {
        Sse {
            line: Line::Start,
            after_cr: false,
            name_len: 0,
            name_ok: true,
            data_lines: 0,
            val: Val::Bad,
            ndigits: 0,
            seq: 0,
            nanos: 0,
            vlen: 0,
        }
    }

    fn feed(&mut self, d: &[u8], size: usize, out: &mut impl FnMut(Parsed)) {
        let mut i = 0;
        while i < d.len() {
            let b = d[i];
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    i += 1;
                    continue;
                }
            }
            match self.line {
                Line::Start => {
                    if is_eol(b) {
                        self.after_cr = b == b'\r';
                        if self.data_lines > 0 {
                            let ok = self.data_lines == 1 && self.val == Val::Pad && self.vlen == size;
                            self.data_lines = 0;
                            out(if ok { Some((self.seq, self.nanos)) } else { None });
                        }
                        i += 1;
                    } else if b == b':' {
                        self.line = Line::Skip;
                        i += 1;
                    } else {
                        self.line = Line::Name;
                        self.name_len = 0;
                        self.name_ok = true;
                    }
                }
                Line::Name => {
                    i += 1;
                    let data = self.name_ok && self.name_len == 4;
                    if b == b':' {
                        if data {
                            self.begin_data();
                            self.line = Line::ValueStart;
                        } else {
                            self.line = Line::Skip;
                        }
                    } else if is_eol(b) {
                        if data {
                            self.begin_data(); // "data" alone: an empty value, malformed here
                        }
                        self.end_line(b);
                    } else {
                        self.name_ok &= self.name_len < 4 && b"data"[self.name_len as usize] == b;
                        self.name_len = self.name_len.saturating_add(1);
                    }
                }
                Line::ValueStart => {
                    self.line = Line::Value;
                    if b == b' ' {
                        i += 1;
                    }
                }
                Line::Value => {
                    if self.val == Val::Pad {
                        let n = run_of_x(&d[i..]);
                        self.vlen += n;
                        i += n;
                        if i == d.len() {
                            break;
                        }
                    } else if self.val == Val::Bad {
                        match d[i..].iter().position(|&c| is_eol(c)) {
                            Some(k) => i += k,
                            None => break,
                        }
                    }
                    let b = d[i];
                    i += 1;
                    if is_eol(b) {
                        self.end_line(b);
                        continue;
                    }
                    self.vlen += 1;
                    self.val = match (self.val, b) {
                        (Val::Seq | Val::Nanos, b'0'..=b'9') if self.ndigits < 19 => {
                            let v = (b - b'0') as u64;
                            if self.val == Val::Seq {
                                self.seq = self.seq * 10 + v;
                            } else {
                                self.nanos = self.nanos * 10 + v;
                            }
                            self.ndigits += 1;
                            self.val
                        }
                        (Val::Seq, b' ') if self.ndigits > 0 => {
                            self.ndigits = 0;
                            Val::Nanos
                        }
                        (Val::Nanos, b' ') if self.ndigits > 0 => Val::Pad,
                        _ => Val::Bad,
                    };
                }
                Line::Skip => match d[i..].iter().position(|&c| is_eol(c)) {
                    Some(k) => {
                        self.end_line(d[i + k]);
                        i += k + 1;
                    }
                    None => break,
                },
            }
        }
    }

    fn begin_data(&mut self) {
        self.data_lines = self.data_lines.saturating_add(1);
        self.val = if self.data_lines == 1 { Val::Seq } else { Val::Bad };
        self.ndigits = 0;
        self.seq = 0;
        self.nanos = 0;
        self.vlen = 0;
    }

    fn end_line(&mut self, b: u8) {
        self.line = Line::Start;
        self.after_cr = b == b'\r';
    }
}

/// The seq bookkeeping of one subscriber (its bitset and its next expected seq per publisher
/// live in the thread's shared vectors).
#[derive(Clone, Copy, Default)]
struct Track {
    distinct: u64,
    dup: u64,
    reordered: u64,
    malformed: u64,
    complete: bool,
}

impl Track {
    /// Records one event; returns its send time when it is a first delivery. `next[k]` is one past
    /// the highest seq of publisher k (of `next.len()`) delivered so far.
    fn record(&mut self, bits: &mut [u64], next: &mut [u64], ev: Parsed, events: u64) -> Option<u64> {
        let Some((seq, nanos)) = ev.filter(|&(seq, _)| seq < events) else {
            self.malformed += 1;
            return None;
        };
        let (w, m) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if bits[w] & m != 0 {
            self.dup += 1;
            return None;
        }
        bits[w] |= m;
        self.distinct += 1;
        let next = &mut next[(seq % next.len() as u64) as usize];
        if seq < *next {
            self.reordered += 1;
        } else {
            *next = seq + 1;
        }
        Some(nanos)
    }
}

// ---------------------------------------------------------------------------------------------
// Latency histogram: microseconds, exact below 64, then 32 buckets per power of two.

const HIST_BUCKETS: usize = 64 + 58 * 32;

struct Hist {
    counts: Box<[u64]>,
    n: u64,
    max_ns: u64,
    sum_ns: u128,
}

impl Default for Hist {
    fn default() -> Self {
        Hist::new()
    }
}

impl Hist {
    fn new() -> Self {
        Hist { counts: vec![0; HIST_BUCKETS].into_boxed_slice(), n: 0, max_ns: 0, sum_ns: 0 }
    }

    fn bucket(us: u64) -> usize {
        if us < 64 {
            us as usize
        } else {
            let e = 63 - us.leading_zeros() as u64; // 6..=63
            (64 + (e - 6) * 32 + ((us >> (e - 5)) & 31)) as usize
        }
    }

    fn low(i: usize) -> u64 {
        if i < 64 {
            i as u64
        } else {
            let (e, m) = ((i - 64) / 32 + 6, (i - 64) % 32);
            (1u64 << e) + ((m as u64) << (e - 5))
        }
    }

    fn add(&mut self, ns: u64) {
        self.counts[Self::bucket(ns / 1000)] += 1;
        self.n += 1;
        self.max_ns = self.max_ns.max(ns);
        self.sum_ns += u128::from(ns);
    }

    fn merge(&mut self, o: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += b;
        }
        self.n += o.n;
        self.max_ns = self.max_ns.max(o.max_ns);
        self.sum_ns += o.sum_ns;
    }

    fn mean_ms(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum_ns as f64 / self.n as f64 / 1e6)
    }

    /// The q-quantile in milliseconds (bucket midpoint, never above the max).
    fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = (Self::low(i), if i + 1 < HIST_BUCKETS { Self::low(i + 1) } else { u64::MAX });
                let mid_us = if i < 64 { lo as f64 + 0.5 } else { (lo as f64 + hi as f64) / 2.0 };
                return Some((mid_us / 1000.0).min(self.max_ns as f64 / 1e6));
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel receive stamps: when the bytes reached the socket, as opposed to when a thread of this
// load generator, sharing the CPUs with the server, got round to reading them.

/// CLOCK_REALTIME in nanoseconds (the clock of `SO_TIMESTAMPNS`).
fn realtime_ns() -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// Asks the kernel to stamp every segment this socket receives. Best effort: without it reads
/// carry no stamp and the arrival figures stay null.
fn enable_stamps(fd: RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: `on` outlives the call and its size is passed alongside.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// `read(2)` through `recvmsg(2)`: the byte count and, when the socket stamps, the kernel's
/// receive time of the last segment read, on the load generator's clock (ns since `t0`, whose
/// CLOCK_REALTIME reading is `real0`). For several events in one read that is the arrival of
/// the newest, so an earlier event's arrival latency is overstated, never understated.
fn read_stamped(fd: RawFd, buf: &mut [u8], real0: i128) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid (no name, no iovecs, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (over `buf`) and `control`, all alive and writable for the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the CMSG_* walk stays within `msg.msg_control`/`msg_controllen` as the kernel set
    // them; a SCM_TIMESTAMPNS payload is one timespec, read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                let real = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
                stamp = u64::try_from(real - real0).ok();
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp))
}

// ---------------------------------------------------------------------------------------------
// Shared state between main, readers and publisher (touched once per connection or per read,
// never per event).

#[repr(align(128))]
struct Padded(AtomicU64);

struct Shared {
    t0: Instant,
    /// CLOCK_REALTIME at `t0`, to put kernel receive stamps on the `t0` clock.
    real0: i128,
    phase: AtomicU8,
    heads_ok: AtomicUsize,
    failed: AtomicUsize,
    complete: AtomicUsize,
    ended_short: AtomicUsize,
    emfile: AtomicBool,
    first_connect_ns: AtomicU64,
    last_head_ns: AtomicU64,
    last_delivery_ns: Vec<Padded>,
    first_failure: Mutex<Option<String>>,
    /// Every reader waits here after it stops reading and before its sockets close: a reader that
    /// closed its subscribers early would wake the server, which could then write events to
    /// the subscribers of a reader still running its last poll, counted after the phase ended.
    readers_stopped: Barrier,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    fn note_failure(&self, what: String) {
        let mut f = self.first_failure.lock().unwrap();
        if f.is_none() {
            *f = Some(what);
        }
    }
}

fn is_emfile(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24)) // ENFILE, EMFILE
}

// ---------------------------------------------------------------------------------------------
// Reader threads

enum State {
    NotStarted,
    Connecting,
    Sending(usize),
    Head(Vec<u8>),
    Body,
    Closed,
}

struct Sub {
    stream: Option<TcpStream>,
    state: State,
    chunked: bool,
    dechunk: Chunked,
    sse: Sse,
    track: Track,
}

#[derive(Default)]
struct ReaderOut {
    connected: usize,
    deliveries: u64,
    missing: u64,
    dup: u64,
    reordered: u64,
    malformed: u64,
    dropped: u64,
    protocol_errors: u64,
    last_delivery_ns: u64,
}

struct Reader {
    id: usize,
    cfg: Arc<Cfg>,
    shared: Arc<Shared>,
    poll: Poll,
    subs: Vec<Sub>,
    words: usize,
    bits: Vec<u64>,
    /// Per subscriber, `publishers` entries: one past the highest seq of each publisher seen.
    nexts: Vec<u64>,
    buf: Box<[u8]>,
    hist: Hist,
    /// Latency to the kernel's receive stamp (`read_stamped`) instead of to the read.
    arrival: Hist,
    request: Vec<u8>,
    pending: usize,
    started: usize,
    out: ReaderOut,
}

enum Step {
    Again,
    Wait,
    Fail(String),
    End,
}

impl Reader {
    fn run(mut self) -> (ReaderOut, Hist, Hist) {
        let mut events = Events::with_capacity(1024);
        let window = self.cfg.connect_window.div_ceil(self.cfg.threads);
        let mut aborted = false;
        loop {
            let phase = self.shared.phase.load(Relaxed);
            if phase == PHASE_STOP {
                break;
            }
            if phase == PHASE_CONNECT {
                while self.pending < window && self.started < self.subs.len() {
                    self.start(self.started);
                    self.started += 1;
                }
            } else if !aborted {
                aborted = true;
                for i in 0..self.subs.len() {
                    if !matches!(self.subs[i].state, State::Body | State::Closed) {
                        self.fail(i, "no response head before the connect timeout".into());
                    }
                }
            }
            if let Err(e) = self.poll.poll(&mut events, Some(Duration::from_millis(20)))
                && e.kind() != io::ErrorKind::Interrupted
            {
                eprintln!("loadgen: poll: {e}");
                break;
            }
            for ev in events.iter() {
                self.drive(ev.token().0);
            }
        }
        self.shared.readers_stopped.wait();
        for sub in &self.subs {
            let t = sub.track;
            self.out.deliveries += t.distinct;
            self.out.dup += t.dup;
            self.out.reordered += t.reordered;
            self.out.malformed += t.malformed;
        }
        let o = &mut self.out;
        o.missing = o.connected as u64 * self.cfg.events - o.deliveries;
        (std::mem::take(&mut self.out), self.hist, self.arrival)
    }

    fn start(&mut self, i: usize) {
        let now = self.shared.now_ns();
        self.shared.first_connect_ns.fetch_min(now, Relaxed);
        match TcpStream::connect(self.cfg.addr) {
            Ok(mut s) => {
                if let Err(e) = self.poll.registry().register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                {
                    self.subs[i].state = State::Closed;
                    self.count_failure(format!("register: {e}"));
                    return;
                }
                enable_stamps(s.as_raw_fd());
                self.subs[i].stream = Some(s);
                self.subs[i].state = State::Connecting;
                self.pending += 1;
            }
            Err(e) => {
                if is_emfile(&e) {
                    self.shared.emfile.store(true, Relaxed);
                }
                self.subs[i].state = State::Closed;
                self.count_failure(format!("connect: {e}"));
            }
        }
    }

    fn count_failure(&mut self, why: String) {
        self.shared.failed.fetch_add(1, Relaxed);
        self.shared.note_failure(why);
    }

    /// A subscriber that never got its 200 head.
    fn fail(&mut self, i: usize, why: String) {
        let sub = &mut self.subs[i];
        if let Some(mut s) = sub.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        if !matches!(sub.state, State::NotStarted) {
            self.pending -= 1;
        }
        sub.state = State::Closed;
        self.count_failure(why);
    }

    /// A subscriber whose stream ended after its head.
    fn end(&mut self, i: usize, protocol_error: Option<String>) {
        let sub = &mut self.subs[i];
        if let Some(mut s) = sub.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        sub.state = State::Closed;
        self.out.dropped += 1;
        if !sub.track.complete {
            self.shared.ended_short.fetch_add(1, Relaxed);
        }
        if let Some(why) = protocol_error {
            self.out.protocol_errors += 1;
            self.shared.note_failure(why);
        }
    }

    fn drive(&mut self, i: usize) {
        if i >= self.subs.len() {
            return;
        }
        loop {
            let step = match self.subs[i].state {
                State::NotStarted | State::Closed => Step::Wait,
                State::Connecting => self.connecting(i),
                State::Sending(off) => self.sending(i, off),
                State::Head(_) => self.head(i),
                State::Body => self.body(i),
            };
            match step {
                Step::Again => continue,
                Step::Wait => return,
                Step::Fail(why) => return self.fail(i, why),
                Step::End => return,
            }
        }
    }

    fn connecting(&mut self, i: usize) -> Step {
        let s = self.subs[i].stream.as_ref().unwrap();
        match s.take_error() {
            Ok(Some(e)) | Err(e) => {
                if is_emfile(&e) {
                    self.shared.emfile.store(true, Relaxed);
                }
                return Step::Fail(format!("connect: {e}"));
            }
            Ok(None) => {}
        }
        match s.peer_addr() {
            Ok(_) => {
                self.subs[i].state = State::Sending(0);
                Step::Again
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Step::Wait,
            Err(e) => Step::Fail(format!("connect: {e}")),
        }
    }

    fn sending(&mut self, i: usize, off: usize) -> Step {
        let s = self.subs[i].stream.as_mut().unwrap();
        match s.write(&self.request[off..]) {
            Ok(n) if off + n == self.request.len() => {
                self.subs[i].state = State::Head(Vec::with_capacity(HEAD_MAX));
                Step::Again
            }
            Ok(n) => {
                self.subs[i].state = State::Sending(off + n);
                Step::Again
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Wait,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Step::Again,
            Err(e) => Step::Fail(format!("sending the request: {e}")),
        }
    }

    fn head(&mut self, i: usize) -> Step {
        let sub = &mut self.subs[i];
        let State::Head(head) = &mut sub.state else { unreachable!() };
        let room = HEAD_MAX - head.len();
        if room == 0 {
            return Step::Fail(format!("response head over {HEAD_MAX} bytes"));
        }
        let fd = sub.stream.as_ref().unwrap().as_raw_fd();
        let (n, arrived) = match read_stamped(fd, &mut self.buf[..room], self.shared.real0) {
            Ok((0, _)) => return Step::Fail("connection closed before the response head".into()),
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Step::Again,
            Err(e) => return Step::Fail(format!("reading the response head: {e}")),
        };
        head.extend_from_slice(&self.buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(head) {
            Ok(httparse::Status::Partial) => return Step::Again,
            Ok(httparse::Status::Complete(len)) => len,
            Err(e) => return Step::Fail(format!("bad response head: {e}")),
        };
        if resp.code != Some(200) {
            let code = resp.code.unwrap_or(0);
            let reason = resp.reason.unwrap_or("").to_string();
            return Step::Fail(format!("subscribe answered {code} {reason}"));
        }
        sub.chunked = resp.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("transfer-encoding")
                && std::str::from_utf8(h.value).is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
        });
        let State::Head(head) = std::mem::replace(&mut sub.state, State::Body) else { unreachable!() };
        self.pending -= 1;
        self.out.connected += 1;
        self.shared.heads_ok.fetch_add(1, Relaxed);
        self.shared.last_head_ns.fetch_max(self.shared.now_ns(), Relaxed);
        if len < head.len() {
            let now = self.shared.now_ns();
            if let Some(end) = self.consume(i, &head[len..], now, arrived) {
                self.end(i, end);
                return Step::End;
            }
        }
        Step::Again
    }

    fn body(&mut self, i: usize) -> Step {
        let fd = self.subs[i].stream.as_ref().unwrap().as_raw_fd();
        let (n, arrived) = match read_stamped(fd, &mut self.buf, self.shared.real0) {
            Ok((0, _)) => {
                self.end(i, None);
                return Step::End;
            }
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Step::Again,
            Err(_) => {
                self.end(i, None);
                return Step::End;
            }
        };
        let now = self.shared.now_ns();
        let buf = std::mem::take(&mut self.buf);
        let r = self.consume(i, &buf[..n], now, arrived);
        self.buf = buf;
        match r {
            Some(end) => {
                self.end(i, end);
                Step::End
            }
            None => Step::Again,
        }
    }

    /// Feeds body bytes read at `now` (received by the kernel at `arrived`) to subscriber `i`.
    /// `Some(..)` when its stream has ended (with a protocol error, or `None` for a clean
    /// chunked end).
    fn consume(&mut self, i: usize, data: &[u8], now: u64, arrived: Option<u64>) -> Option<Option<String>> {
        let (events, size, words, k) = (self.cfg.events, self.cfg.size, self.words, self.cfg.publishers);
        let Sub { chunked, dechunk, sse, track, .. } = &mut self.subs[i];
        let bits = &mut self.bits[i * words..(i + 1) * words];
        let nexts = &mut self.nexts[i * k..(i + 1) * k];
        let (hist, arrival) = (&mut self.hist, &mut self.arrival);
        let mut delivered = false;
        let mut on_event = |ev: Parsed| {
            if let Some(sent) = track.record(bits, nexts, ev, events) {
                hist.add(now.saturating_sub(sent));
                if let Some(a) = arrived {
                    arrival.add(a.saturating_sub(sent));
                }
                delivered = true;
            }
        };
        let mut ended = None;
        if *chunked {
            dechunk.feed(data, &mut |p: &[u8]| sse.feed(p, size, &mut on_event));
            match dechunk.st {
                CSt::Done => ended = Some(None),
                CSt::Bad => ended = Some(Some("bad chunked framing in a subscriber stream".to_string())),
                _ => {}
            }
        } else {
            sse.feed(data, size, &mut on_event);
        }
        if delivered {
            self.out.last_delivery_ns = now;
            self.shared.last_delivery_ns[self.id].0.store(now, Relaxed);
            if !track.complete && track.distinct == events {
                track.complete = true;
                self.shared.complete.fetch_add(1, Relaxed);
            }
        }
        ended
    }
}

fn spawn_reader(
    id: usize,
    count: usize,
    cfg: Arc<Cfg>,
    shared: Arc<Shared>,
) -> io::Result<thread::JoinHandle<(ReaderOut, Hist, Hist)>> {
    let poll = Poll::new()?;
    let words = cfg.events.div_ceil(64) as usize;
    let request =
        format!("GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n", cfg.sub_path, cfg.authority)
            .into_bytes();
    let subs = (0..count)
        .map(|_| Sub {
            stream: None,
            state: State::NotStarted,
            chunked: false,
            dechunk: Chunked::new(),
            sse: Sse::new(),
            track: Track::default(),
        })
        .collect();
    let reader = Reader {
        id,
        bits: vec![0; words * count],
        nexts: vec![0; cfg.publishers * count],
        words,
        cfg,
        shared,
        poll,
        subs,
        buf: vec![0; READ_BUF].into_boxed_slice(),
        hist: Hist::new(),
        arrival: Hist::new(),
        request,
        pending: 0,
        started: 0,
        out: ReaderOut::default(),
    };
    thread::Builder::new().name(format!("reader-{id}")).spawn(move || reader.run())
}

// ---------------------------------------------------------------------------------------------
// Publisher

#[derive(Default)]
struct PubOut {
    ok: u64,
    errors: u64,
    /// Not sent or not answered yet when the busy phase ended (not counted as errors).
    abandoned: u64,
    first_send_ns: Option<u64>,
    /// When the last response (2xx or not) was read completely.
    last_answer_ns: u64,
    reconnects: u32,
    first_error: Option<String>,
    /// Publish round trips of answered requests.
    rtt: Hist,
    /// The same, ended at the kernel's receive stamp of the answer's last segment.
    rtt_arrival: Hist,
}

impl PubOut {
    fn merge(&mut self, o: PubOut) {
        self.ok += o.ok;
        self.errors += o.errors;
        self.abandoned += o.abandoned;
        self.first_send_ns = match (self.first_send_ns, o.first_send_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_answer_ns = self.last_answer_ns.max(o.last_answer_ns);
        self.reconnects += o.reconnects;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.rtt.merge(&o.rtt);
        self.rtt_arrival.merge(&o.rtt_arrival);
    }

    /// 2xx answers per second, from the first request queued to the last answer read.
    fn answers_per_sec(&self) -> Option<f64> {
        let first = self.first_send_ns?;
        (self.ok > 0 && self.last_answer_ns > first)
            .then(|| self.ok as f64 / ((self.last_answer_ns - first) as f64 / 1e9))
    }
}

enum RespBody {
    Head,
    Len(u64),
    Chunked(Chunked),
}

struct Publisher {
    cfg: Arc<Cfg>,
    shared: Arc<Shared>,
    /// Requests in flight at once: `cfg.window` (pipelined) or 1 (wait).
    window: usize,
    /// This publisher's seqs are `next_seq`, `next_seq + stride`, ... below `cfg.events`.
    stride: u64,
    /// How many events this publisher sends, and how many it has queued so far.
    count: u64,
    sent: u64,
    /// Queue time of each request in flight, oldest first (answers come back in order); its
    /// capacity is the window, so it never grows.
    sent_at: VecDeque<u64>,
    poll: Poll,
    stream: Option<TcpStream>,
    connected: bool,
    head: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    rbuf: Box<[u8]>,
    rlen: usize,
    body: RespBody,
    status: u16,
    next_seq: u64,
    inflight: usize,
    pace_start: Option<Instant>,
    res: PubOut,
}

impl Publisher {
    fn error(&mut self, n: u64, why: String) {
        self.res.errors += n;
        if self.res.first_error.is_none() {
            self.res.first_error = Some(why);
        }
    }

    fn connect(&mut self) -> io::Result<()> {
        let mut s = TcpStream::connect(self.cfg.addr)?;
        enable_stamps(s.as_raw_fd());
        self.poll.registry().register(&mut s, Token(0), Interest::READABLE | Interest::WRITABLE)?;
        self.stream = Some(s);
        self.connected = false;
        self.out.clear();
        self.out_pos = 0;
        self.rlen = 0;
        self.body = RespBody::Head;
        Ok(())
    }

    /// The connection is gone: requests in flight are errors; reconnect or give up.
    fn lost(&mut self, why: String) -> bool {
        if let Some(mut s) = self.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        let n = self.inflight as u64;
        self.inflight = 0;
        self.sent_at.clear();
        self.error(n, why);
        if self.res.reconnects >= MAX_RECONNECTS || self.sent == self.count {
            return false;
        }
        self.res.reconnects += 1;
        match self.connect() {
            Ok(()) => true,
            Err(e) => {
                self.error(0, format!("publisher reconnect: {e}"));
                false
            }
        }
    }

    fn append_request(&mut self) {
        let now = self.shared.now_ns();
        self.res.first_send_ns.get_or_insert(now);
        self.out.extend_from_slice(&self.head);
        let start = self.out.len();
        let _ = write!(self.out, "{} {} ", self.next_seq, now);
        let pad = self.cfg.size - (self.out.len() - start);
        self.out.resize(self.out.len() + pad, b'x');
        self.next_seq += self.stride;
        self.sent += 1;
        self.inflight += 1;
        self.sent_at.push_back(now);
    }

    /// Parses whatever responses are complete in `rbuf`, read at `now` (received by the kernel
    /// at `arrived`). `Err` on a malformed response.
    fn responses(&mut self, now: u64, arrived: Option<u64>) -> Result<(), String> {
        let mut pos = 0;
        loop {
            match &mut self.body {
                RespBody::Head => {
                    let mut headers = [httparse::EMPTY_HEADER; 64];
                    let mut resp = httparse::Response::new(&mut headers);
                    let len = match resp.parse(&self.rbuf[pos..self.rlen]) {
                        Ok(httparse::Status::Complete(len)) => len,
                        Ok(httparse::Status::Partial) => break,
                        Err(e) => return Err(format!("bad publish response: {e}")),
                    };
                    pos += len;
                    let code = resp.code.unwrap_or(0);
                    if (100..200).contains(&code) {
                        continue;
                    }
                    let mut chunked = false;
                    let mut length = 0u64;
                    for h in resp.headers.iter() {
                        let v = std::str::from_utf8(h.value).unwrap_or("");
                        if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked |= v.to_ascii_lowercase().contains("chunked");
                        } else if h.name.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().map_err(|_| format!("bad Content-Length {v:?}"))?;
                        }
                    }
                    self.status = code;
                    self.body = if chunked { RespBody::Chunked(Chunked::new()) } else { RespBody::Len(length) };
                }
                RespBody::Len(n) => {
                    let k = (*n).min((self.rlen - pos) as u64);
                    pos += k as usize;
                    *n -= k;
                    if *n > 0 {
                        break;
                    }
                    self.done_response(now, arrived);
                }
                RespBody::Chunked(c) => {
                    pos += c.feed(&self.rbuf[pos..self.rlen], &mut |_| {});
                    match c.st {
                        CSt::Done => self.done_response(now, arrived),
                        CSt::Bad => return Err("bad chunked framing in a publish response".into()),
                        _ => break,
                    }
                }
            }
        }
        self.rbuf.copy_within(pos..self.rlen, 0);
        self.rlen -= pos;
        Ok(())
    }

    fn done_response(&mut self, now: u64, arrived: Option<u64>) {
        self.body = RespBody::Head;
        self.inflight = self.inflight.saturating_sub(1);
        self.res.last_answer_ns = now;
        if let Some(sent) = self.sent_at.pop_front() {
            self.res.rtt.add(now.saturating_sub(sent));
            if let Some(a) = arrived {
                self.res.rtt_arrival.add(a.saturating_sub(sent));
            }
        }
        // Any 2xx is an accepted publish (nchan answers 201 Created, 202 Accepted).
        if (200..300).contains(&self.status) {
            self.res.ok += 1;
        } else {
            self.res.errors += 1;
            if self.res.first_error.is_none() {
                self.res.first_error = Some(format!("publish answered {}", self.status));
            }
        }
    }

    /// With `--rate`: how long until the next publish is due (`None`: it is due, or no pacing).
    fn not_due(&mut self) -> Option<Duration> {
        if self.cfg.rate <= 0.0 {
            return None;
        }
        let now = Instant::now();
        let start = *self.pace_start.get_or_insert(now);
        let rate = self.cfg.rate / self.cfg.publishers as f64;
        let due = start + Duration::from_secs_f64(self.sent as f64 / rate);
        due.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Fills the window, writes, reads; until nothing moves. `Err` when the connection is gone.
    fn pump(&mut self) -> Result<(), String> {
        loop {
            let mut progress = false;
            if self.out_pos > 0 {
                self.out.drain(..self.out_pos);
                self.out_pos = 0;
            }
            while self.inflight < self.window && self.sent < self.count && self.not_due().is_none() {
                self.append_request();
            }
            while self.out_pos < self.out.len() {
                match self.stream.as_mut().unwrap().write(&self.out[self.out_pos..]) {
                    Ok(0) => return Err("publisher: write returned 0".into()),
                    Ok(n) => {
                        self.out_pos += n;
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("publisher write: {e}")),
                }
            }
            if self.out_pos == self.out.len() {
                self.out.clear();
                self.out_pos = 0;
            }
            loop {
                if self.rlen == self.rbuf.len() {
                    return Err("publish response too large".into());
                }
                let fd = self.stream.as_ref().unwrap().as_raw_fd();
                match read_stamped(fd, &mut self.rbuf[self.rlen..], self.shared.real0) {
                    Ok((0, _)) => {
                        return Err(format!(
                            "publisher connection closed by the server with {} requests unanswered",
                            self.inflight
                        ));
                    }
                    Ok((n, arrived)) => {
                        self.rlen += n;
                        progress = true;
                        let now = self.shared.now_ns();
                        self.responses(now, arrived)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("publisher read: {e}")),
                }
            }
            if !progress {
                return Ok(());
            }
        }
    }

    fn run(mut self) -> PubOut {
        let events_total = self.count;
        let deadline = Instant::now() + self.cfg.timeout;
        let mut events = Events::with_capacity(16);
        if let Err(e) = self.connect() {
            self.error(events_total, format!("publisher connect: {e}"));
            return self.res;
        }
        while self.res.ok + self.res.errors < events_total {
            let now = Instant::now();
            if now >= deadline || self.shared.phase.load(Relaxed) == PHASE_STOP {
                self.res.abandoned = events_total - self.res.ok - self.res.errors;
                break;
            }
            let mut timeout = (deadline - now).min(Duration::from_millis(100));
            if self.connected && self.inflight < self.window && self.sent < events_total {
                timeout = timeout.min(self.not_due().unwrap_or(Duration::ZERO));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                let n = events_total - self.res.ok - self.res.errors;
                self.error(n, format!("publisher poll: {e}"));
                break;
            }
            let Some(s) = self.stream.as_ref() else { break };
            if !self.connected {
                match s.take_error() {
                    Ok(None) => {}
                    Ok(Some(e)) | Err(e) => {
                        if !self.lost(format!("publisher connect: {e}")) {
                            break;
                        }
                        continue;
                    }
                }
                match s.peer_addr() {
                    Ok(_) => self.connected = true,
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                    Err(e) => {
                        if !self.lost(format!("publisher connect: {e}")) {
                            break;
                        }
                        continue;
                    }
                }
                let _ = s.set_nodelay(true);
            }
            if let Err(why) = self.pump()
                && !self.lost(why)
            {
                break;
            }
        }
        // Never sent (given up after reconnects).
        let unsent = events_total - self.res.ok - self.res.errors - self.res.abandoned;
        if unsent > 0 {
            self.error(unsent, "publishes never sent".into());
        }
        self.res
    }
}

/// Starts publisher `index` of `cfg.publishers`.
fn spawn_publisher(index: usize, cfg: Arc<Cfg>, shared: Arc<Shared>) -> io::Result<thread::JoinHandle<PubOut>> {
    let stride = cfg.publishers as u64;
    let count = (cfg.events - index as u64).div_ceil(stride);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        cfg.pub_path, cfg.authority, cfg.size
    )
    .into_bytes();
    let p = Publisher {
        window: cfg.window,
        stride,
        count,
        sent: 0,
        sent_at: VecDeque::with_capacity(cfg.window),
        poll: Poll::new()?,
        stream: None,
        connected: false,
        out: Vec::with_capacity((head.len() + cfg.size) * (cfg.window + 1)),
        head,
        out_pos: 0,
        rbuf: vec![0; 256 * 1024].into_boxed_slice(),
        rlen: 0,
        body: RespBody::Head,
        status: 0,
        next_seq: index as u64,
        inflight: 0,
        pace_start: None,
        res: PubOut::default(),
        cfg,
        shared,
    };
    thread::Builder::new().name(format!("publisher-{index}")).spawn(move || p.run())
}

// ---------------------------------------------------------------------------------------------
// /proc sampling

#[derive(Clone, Copy)]
struct ProcSample {
    rss_kib: u64,
    hwm_kib: u64,
    cpu_secs: f64,
    ctx: u64,
    /// Involuntary context switches (preemptions), summed over the threads.
    nvctx: u64,
    /// Nanoseconds the threads spent waiting on a run queue (/proc/PID/task/*/schedstat).
    runq_ns: u64,
    /// Read-like and write-like syscalls (/proc/PID/io `syscr`, `syscw`), when readable.
    syscr: Option<u64>,
    syscw: Option<u64>,
}

fn status_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key)?.trim().trim_end_matches("kB").trim().parse().ok())
}

fn cpu_secs(pid: &str) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok((tick(11) + tick(12)) as f64 / CLK_TCK)
}

fn sample(pid: u32) -> io::Result<ProcSample> {
    let pid = pid.to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let (mut ctx, mut nvctx, mut runq_ns) = (0, 0, 0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(task) = task else { continue };
        let Ok(s) = std::fs::read_to_string(task.path().join("status")) else { continue };
        let nv = status_field(&s, "nonvoluntary_ctxt_switches:").unwrap_or(0);
        ctx += status_field(&s, "voluntary_ctxt_switches:").unwrap_or(0) + nv;
        nvctx += nv;
        if let Ok(st) = std::fs::read_to_string(task.path().join("schedstat")) {
            runq_ns += st.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let io_field = |key: &str| io.lines().find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok());
    Ok(ProcSample {
        rss_kib: status_field(&status, "VmRSS:").unwrap_or(0),
        hwm_kib: status_field(&status, "VmHWM:").unwrap_or(0),
        cpu_secs: cpu_secs(&pid)?,
        ctx,
        nvctx,
        runq_ns,
        syscr: io_field("syscr:"),
        syscw: io_field("syscw:"),
    })
}

fn sample_opt(pid: Option<u32>) -> Option<ProcSample> {
    let pid = pid?;
    match sample(pid) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("loadgen: cannot sample /proc/{pid}: {e}");
            None
        }
    }
}

/// Soft limit on open files, from /proc/self/limits (`None`: unlimited or unknown).
fn nofile_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Main

fn emfile_exit(needed: usize) -> ! {
    eprintln!(
        "loadgen: out of file descriptors (EMFILE) opening {needed} subscriber connections: \
         raise the limit in this shell first, e.g. `ulimit -n 65536` (the server needs it too)"
    );
    std::process::exit(1);
}

fn mode_name(cfg: &Cfg) -> &'static str {
    if cfg.wait { "wait" } else { "pipelined" }
}

fn opt_f(v: Option<f64>, prec: usize) -> String {
    v.map_or("null".into(), |v| format!("{v:.prec$}"))
}

fn opt_u(v: Option<u64>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

fn main() {
    let t0 = Instant::now();
    let real0 = realtime_ns();
    let cfg = match parse_args() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("loadgen: {e}\n(--help lists the flags)");
            std::process::exit(1);
        }
    };
    let needed = cfg.subscribers + cfg.threads + 32;
    if let Some(limit) = nofile_limit()
        && (limit as usize) < needed
    {
        eprintln!(
            "loadgen: {} subscribers need about {needed} file descriptors but the limit is {limit}: \
                 run `ulimit -n 65536` in this shell first (the server needs it too)",
            cfg.subscribers
        );
        std::process::exit(1);
    }
    let shared = Arc::new(Shared {
        t0,
        real0,
        phase: AtomicU8::new(PHASE_CONNECT),
        heads_ok: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        complete: AtomicUsize::new(0),
        ended_short: AtomicUsize::new(0),
        emfile: AtomicBool::new(false),
        first_connect_ns: AtomicU64::new(u64::MAX),
        last_head_ns: AtomicU64::new(0),
        last_delivery_ns: (0..cfg.threads).map(|_| Padded(AtomicU64::new(0))).collect(),
        first_failure: Mutex::new(None),
        readers_stopped: Barrier::new(cfg.threads),
    });
    let say = |s: String| {
        if !cfg.json {
            eprintln!("{s}");
        }
    };
    say(format!(
        "loadgen: {} subscribers, {} events x {} B, {} reader threads, {} x {} publisher{} (window {}), {}",
        cfg.subscribers,
        cfg.events,
        cfg.size,
        cfg.threads,
        cfg.publishers,
        mode_name(&cfg),
        if cfg.publishers == 1 { "" } else { "s" },
        cfg.window,
        cfg.url
    ));

    // Phase 1: connect.
    let n = cfg.subscribers;
    let mut readers = Vec::new();
    for id in 0..cfg.threads {
        let count = n / cfg.threads + usize::from(id < n % cfg.threads);
        match spawn_reader(id, count, cfg.clone(), shared.clone()) {
            Ok(h) => readers.push(h),
            Err(e) => {
                if is_emfile(&e) {
                    emfile_exit(n);
                }
                eprintln!("loadgen: cannot start a reader thread: {e}");
                std::process::exit(1);
            }
        }
    }
    let deadline = Instant::now() + cfg.timeout;
    while shared.heads_ok.load(Relaxed) + shared.failed.load(Relaxed) < n && Instant::now() < deadline {
        if shared.emfile.load(Relaxed) {
            emfile_exit(n);
        }
        thread::sleep(Duration::from_millis(5));
    }
    if shared.emfile.load(Relaxed) {
        emfile_exit(n);
    }
    shared.phase.store(PHASE_RUN, Relaxed);
    thread::sleep(Duration::from_millis(50)); // the readers count the ones that timed out
    let connected = shared.heads_ok.load(Relaxed);
    let connect_failed = n - connected;
    let first_connect = shared.first_connect_ns.load(Relaxed);
    let connect_secs = shared.last_head_ns.load(Relaxed).saturating_sub(first_connect) as f64 / 1e9;
    let first_failure = shared.first_failure.lock().unwrap().clone();
    say(format!("connect: {connected}/{n} subscribers streaming after {connect_secs:.3} s"));
    if connect_failed > 0 {
        eprintln!(
            "loadgen: {connect_failed} subscribers failed to connect (first: {})",
            first_failure.as_deref().unwrap_or("?")
        );
    }
    if connected == 0 {
        eprintln!("loadgen: no subscriber connected; is the server running at {}?", cfg.url);
        shared.phase.store(PHASE_STOP, Relaxed);
        std::process::exit(1);
    }

    // Phase 2: idle.
    say(format!("idle: observing for {:.1} s", cfg.idle.as_secs_f64()));
    let idle_start = sample_opt(cfg.pid);
    let idle_t = Instant::now();
    thread::sleep(cfg.idle);
    let idle_end = sample_opt(cfg.pid);
    let idle_secs = idle_t.elapsed().as_secs_f64();
    let dropped_idle = shared.ended_short.load(Relaxed);

    // Phase 3: busy.
    say("busy: publishing".into());
    let busy_start = sample_opt(cfg.pid);
    let self_cpu_start = cpu_secs("self").ok();
    let busy_t = Instant::now();
    let mut publishers = Vec::with_capacity(cfg.publishers);
    for index in 0..cfg.publishers {
        match spawn_publisher(index, cfg.clone(), shared.clone()) {
            Ok(h) => publishers.push(h),
            Err(e) => {
                eprintln!("loadgen: cannot start publisher {index}: {e}");
                std::process::exit(1);
            }
        }
    }
    let busy_deadline = busy_t + cfg.timeout;
    let mut pub_done_at: Option<Instant> = None;
    let mut timed_out = false;
    loop {
        let done = shared.complete.load(Relaxed) + shared.ended_short.load(Relaxed);
        if done >= connected {
            break;
        }
        let now = Instant::now();
        if now >= busy_deadline {
            timed_out = true;
            break;
        }
        if pub_done_at.is_none() && publishers.iter().all(|p| p.is_finished()) {
            pub_done_at = Some(now);
        }
        if let Some(at) = pub_done_at {
            let last = shared.last_delivery_ns.iter().map(|p| p.0.load(Relaxed)).max().unwrap_or(0);
            let last = t0 + Duration::from_nanos(last);
            if now.duration_since(last.max(at)) >= QUIET {
                break;
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    let busy_wall = busy_t.elapsed().as_secs_f64();
    let busy_end = sample_opt(cfg.pid);
    let self_cpu_end = cpu_secs("self").ok();
    shared.phase.store(PHASE_STOP, Relaxed);
    let mut pubr = PubOut::default();
    let mut per_pub = Vec::with_capacity(cfg.publishers);
    for p in publishers {
        let r = p.join().expect("publisher thread");
        per_pub.push(r.answers_per_sec());
        pubr.merge(r);
    }
    let answers_per_sec = pubr.answers_per_sec();
    let (rtt50, rtt99) = (pubr.rtt.quantile_ms(0.50), pubr.rtt.quantile_ms(0.99));
    let rtt_max = (pubr.rtt.n > 0).then(|| pubr.rtt.max_ns as f64 / 1e6);
    let rtt_mean = pubr.rtt.mean_ms();
    let (rtt_arr99, rtt_arr_mean) = (pubr.rtt_arrival.quantile_ms(0.99), pubr.rtt_arrival.mean_ms());
    let mut hist = Hist::new();
    let mut arrival = Hist::new();
    let mut tot = ReaderOut::default();
    for r in readers {
        let (o, h, a) = r.join().expect("reader thread");
        hist.merge(&h);
        arrival.merge(&a);
        tot.connected += o.connected;
        tot.deliveries += o.deliveries;
        tot.missing += o.missing;
        tot.dup += o.dup;
        tot.reordered += o.reordered;
        tot.malformed += o.malformed;
        tot.dropped += o.dropped;
        tot.protocol_errors += o.protocol_errors;
        tot.last_delivery_ns = tot.last_delivery_ns.max(o.last_delivery_ns);
    }
    let span = match pubr.first_send_ns {
        Some(first) if tot.last_delivery_ns > first => Some((tot.last_delivery_ns - first) as f64 / 1e9),
        _ => None,
    };
    let per_sec = span.map(|s| tot.deliveries as f64 / s);
    let (p50, p99) = (hist.quantile_ms(0.50), hist.quantile_ms(0.99));
    let max_ms = (hist.n > 0).then(|| hist.max_ns as f64 / 1e6);
    let (arr50, arr99) = (arrival.quantile_ms(0.50), arrival.quantile_ms(0.99));
    let both = |a: Option<ProcSample>, b: Option<ProcSample>| a.zip(b);
    let cpu_idle = both(idle_start, idle_end).map(|(a, b)| b.cpu_secs - a.cpu_secs);
    let wakeups = both(idle_start, idle_end).map(|(a, b)| b.ctx.saturating_sub(a.ctx));
    let cpu_busy = both(busy_start, busy_end).map(|(a, b)| b.cpu_secs - a.cpu_secs);
    let busy_diff = |f: fn(&ProcSample) -> Option<u64>| {
        both(busy_start, busy_end).and_then(|(a, b)| Some(f(&b)?.saturating_sub(f(&a)?)))
    };
    let ctx_busy = busy_diff(|s| Some(s.ctx));
    let nvctx_busy = busy_diff(|s| Some(s.nvctx));
    let runq_busy = busy_diff(|s| Some(s.runq_ns)).map(|ns| ns as f64 / 1e9);
    let (syscr_busy, syscw_busy) = (busy_diff(|s| s.syscr), busy_diff(|s| s.syscw));
    let self_cpu = self_cpu_start.zip(self_cpu_end).map(|(a, b)| b - a);
    let rss_idle = idle_end.map(|s| s.rss_kib);
    let rss_busy = busy_end.map(|s| s.rss_kib);
    let hwm = busy_end.map(|s| s.hwm_kib);

    // Human summary on stderr (stdout is kept for the JSON line when --json).
    let mut h = String::new();
    let mut line = |k: &str, v: String| h.push_str(&format!("{k:<20} {v}\n"));
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3} ms"));
    let kib = |v: Option<u64>| v.map_or("-".into(), |v| format!("{v} KiB"));
    let secs = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3} s"));
    line("subscribers", format!("{connected} streaming of {n} ({connect_failed} failed to connect)"));
    line("events", format!("{} x {} B data", cfg.events, cfg.size));
    line("publishers", format!("{} x {} (window {} per connection)", cfg.publishers, mode_name(&cfg), cfg.window));
    line("connect", format!("{connect_secs:.3} s"));
    line(
        "published",
        format!(
            "{} ok, {} errors, {} abandoned at the end of the phase, {} reconnects",
            pubr.ok, pubr.errors, pubr.abandoned, pubr.reconnects
        ),
    );
    line("answers/s", answers_per_sec.map_or("-".into(), |v| format!("{v:.0}")));
    if cfg.publishers > 1 {
        let each: Vec<String> = per_pub.iter().map(|v| v.map_or("-".into(), |v| format!("{v:.0}"))).collect();
        line("answers/s each", each.join(" "));
    }
    line("publish rtt p50", ms(rtt50));
    line("publish rtt p99", ms(rtt99));
    line("publish rtt max", ms(rtt_max));
    line("publish rtt mean", ms(rtt_mean));
    line("rtt p99 to arrival", ms(rtt_arr99));
    line("deliveries", format!("{} of {} expected", tot.deliveries, connected as u64 * cfg.events));
    line("deliveries/s", per_sec.map_or("-".into(), |v| format!("{v:.0}")));
    line("busy phase", format!("{busy_wall:.3} s{}", if timed_out { " (timed out)" } else { "" }));
    line("latency p50", ms(p50));
    line("latency p99", ms(p99));
    line("latency max", ms(max_ms));
    line("arrival p50", ms(arr50));
    line("arrival p99", ms(arr99));
    line("missing", tot.missing.to_string());
    line("duplicate", tot.dup.to_string());
    line("reordered", tot.reordered.to_string());
    line("malformed", tot.malformed.to_string());
    line("dropped", format!("{} ({} during idle)", tot.dropped, dropped_idle));
    line("protocol errors", tot.protocol_errors.to_string());
    line("server rss idle", kib(rss_idle));
    line("server rss busy", kib(rss_busy));
    line("server rss peak", kib(hwm));
    line("server cpu idle", secs(cpu_idle));
    line("server cpu busy", secs(cpu_busy));
    line(
        "server busy sched",
        format!(
            "{} run-queue wait, {} context switches ({} involuntary)",
            secs(runq_busy),
            opt_u(ctx_busy),
            opt_u(nvctx_busy)
        ),
    );
    line("server busy syscalls", format!("{} read-like, {} write-like", opt_u(syscr_busy), opt_u(syscw_busy)));
    line("idle wakeups", format!("{} in {idle_secs:.1} s", wakeups.map_or("-".into(), |w| w.to_string())));
    line("loadgen cpu busy", secs(self_cpu));
    if let Some(e) = &pubr.first_error {
        line("first publish error", e.clone());
    }
    if let Some(e) = shared.first_failure.lock().unwrap().as_ref() {
        line("first stream error", e.clone());
    }
    if !cfg.json {
        print!("{h}");
    } else {
        eprint!("{h}");
        println!(
            "{{\"subscribers\":{n},\"connected\":{connected},\"events\":{},\"size\":{},\"connect_secs\":{connect_secs:.6},\
             \"deliveries\":{},\"deliveries_per_sec\":{},\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{},\
             \"missing\":{},\"duplicate\":{},\"reordered\":{},\"malformed\":{},\"dropped\":{},\
             \"publish_errors\":{},\"publish_abandoned\":{},\"rss_idle_kib\":{},\"rss_busy_kib\":{},\"rss_peak_kib\":{},\
             \"cpu_idle_secs\":{},\"cpu_busy_secs\":{},\"idle_wakeups\":{},\"idle_secs\":{idle_secs:.3},\
             \"loadgen_cpu_busy_secs\":{},\"timed_out\":{timed_out},\
             \"publish_mode\":\"{}\",\"publishers\":{},\"window\":{},\"answers\":{},\"answers_per_sec\":{},\
             \"rtt_p50_ms\":{},\"rtt_p99_ms\":{},\"rtt_max_ms\":{},\"rtt_mean_ms\":{},\
             \"busy_secs\":{busy_wall:.3},\"runq_wait_busy_secs\":{},\"ctx_busy\":{},\"nvctx_busy\":{},\
             \"syscr_busy\":{},\"syscw_busy\":{},\"arrival_p50_ms\":{},\"arrival_p99_ms\":{},\
             \"rtt_arrival_p99_ms\":{},\"rtt_arrival_mean_ms\":{}}}",
            cfg.events,
            cfg.size,
            tot.deliveries,
            opt_f(per_sec, 1),
            opt_f(p50, 4),
            opt_f(p99, 4),
            opt_f(max_ms, 4),
            tot.missing,
            tot.dup,
            tot.reordered,
            tot.malformed,
            tot.dropped,
            pubr.errors,
            pubr.abandoned,
            opt_u(rss_idle),
            opt_u(rss_busy),
            opt_u(hwm),
            opt_f(cpu_idle, 2),
            opt_f(cpu_busy, 2),
            opt_u(wakeups),
            opt_f(self_cpu, 2),
            mode_name(&cfg),
            cfg.publishers,
            cfg.window,
            pubr.ok,
            opt_f(answers_per_sec, 1),
            opt_f(rtt50, 4),
            opt_f(rtt99, 4),
            opt_f(rtt_max, 4),
            opt_f(rtt_mean, 4),
            opt_f(runq_busy, 3),
            opt_u(ctx_busy),
            opt_u(nvctx_busy),
            opt_u(syscr_busy),
            opt_u(syscw_busy),
            opt_f(arr50, 4),
            opt_f(arr99, 4),
            opt_f(rtt_arr99, 4),
            opt_f(rtt_arr_mean, 4),
        );
    }
    let bad = tot.missing + tot.dup + tot.reordered + tot.malformed + tot.dropped + tot.protocol_errors + pubr.errors;
    std::process::exit(if bad > 0 || connect_failed > 0 { 3 } else { 0 });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(seq: u64, nanos: u64, size: usize) -> String {
        let mut s = format!("{seq} {nanos} ");
        while s.len() < size {
            s.push('x');
        }
        s
    }

    /// Feeds `wire` in pieces of `step` bytes, returns the parsed events.
    fn parse(wire: &[u8], step: usize, size: usize, chunked: bool) -> (Vec<Parsed>, CSt) {
        let mut sse = Sse::new();
        let mut dc = Chunked::new();
        let mut got = Vec::new();
        for piece in wire.chunks(step) {
            let mut on = |ev: Parsed| got.push(ev);
            if chunked {
                dc.feed(piece, &mut |p: &[u8]| sse.feed(p, size, &mut on));
            } else {
                sse.feed(piece, size, &mut on);
            }
        }
        (got, dc.st)
    }

    fn stream(size: usize, eol: &str) -> String {
        let mut s = format!("retry: 3000{eol}{eol}:{eol}{eol}");
        s += &format!("id: 7{eol}event: x{eol}data: {}{eol}{eol}", payload(0, 123, size));
        s += &format!("data:{}{eol}{eol}", payload(1, 456, size));
        s += &format!(": comment{eol}data: {}{eol}id: 9{eol}{eol}", payload(2, 789, size));
        s += &format!("data: {}{eol}{eol}", payload(3, 1, size - 1)); // short: malformed
        s += &format!("data: {}{eol}data: more{eol}{eol}", payload(4, 1, size)); // two lines
        s += &format!("data{eol}{eol}");
        s += &format!("dataa: {}{eol}{eol}", payload(5, 1, size)); // other field: no event
        s
    }

    #[test]
    fn sse_any_split_any_line_ending() {
        for eol in ["\n", "\r\n", "\r"] {
            let wire = stream(64, eol);
            for step in [1, 2, 3, 7, 64, 1000] {
                let (got, _) = parse(wire.as_bytes(), step, 64, false);
                assert_eq!(
                    got,
                    vec![Some((0, 123)), Some((1, 456)), Some((2, 789)), None, None, None],
                    "eol {eol:?} step {step}"
                );
            }
        }
    }

    #[test]
    fn chunked_any_split() {
        let body = stream(80, "\n");
        let mut wire = String::new();
        let mut rest = body.as_str();
        let mut k = 1;
        while !rest.is_empty() {
            let n = k.min(rest.len());
            wire += &format!("{n:x}\r\n{}\r\n", &rest[..n]);
            rest = &rest[n..];
            k = k * 3 % 97 + 1;
        }
        wire += "0\r\n\r\n";
        for step in [1, 2, 5, 13, 4096] {
            let (got, st) = parse(wire.as_bytes(), step, 80, true);
            assert_eq!(got, vec![Some((0, 123)), Some((1, 456)), Some((2, 789)), None, None, None], "step {step}");
            assert_eq!(st, CSt::Done);
        }
        let (_, st) = parse(b"zz\r\n", 1, 80, true);
        assert_eq!(st, CSt::Bad);
    }

    #[test]
    fn track_counts() {
        let (mut t, mut bits, mut next) = (Track::default(), [0u64; 1], [0u64; 1]);
        for seq in [0, 1, 3, 2, 2, 5, 9] {
            t.record(&mut bits, &mut next, Some((seq, 0)), 8);
        }
        assert_eq!((t.distinct, t.dup, t.reordered, t.malformed), (5, 1, 1, 1));
        // Two publishers (even and odd seqs): their events interleave freely, but each one's
        // own order is checked.
        let (mut t, mut bits, mut next) = (Track::default(), [0u64; 1], [0u64; 2]);
        for seq in [1, 0, 3, 2, 6, 5, 4, 7] {
            t.record(&mut bits, &mut next, Some((seq, 0)), 8);
        }
        assert_eq!((t.distinct, t.dup, t.reordered, t.malformed), (8, 0, 1, 0));
    }

    #[test]
    fn histogram() {
        for us in [0u64, 1, 63, 64, 65, 100, 1000, 123_456, 1 << 40, u64::MAX / 1000] {
            let b = Hist::bucket(us);
            assert!(Hist::low(b) <= us && (b + 1 == HIST_BUCKETS || us < Hist::low(b + 1)), "{us}");
        }
        let mut h = Hist::new();
        for i in 1..=1000u64 {
            h.add(i * 1000);
        }
        let p50 = h.quantile_ms(0.5).unwrap();
        assert!((p50 - 0.5).abs() < 0.02, "{p50}");
        assert_eq!(h.quantile_ms(1.0).unwrap(), 1.0);
    }

    #[test]
    fn urls() {
        assert!(parse_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_url("http://127.1.2.3:1/x").is_ok());
        assert!(parse_url("http://[::1]:8080/events").is_ok());
        assert!(parse_url("http://localhost:8080").is_ok());
        assert!(parse_url("http://10.0.0.1:8080").is_err());
        assert!(parse_url("http://example.com").is_err());
        assert!(parse_url("https://127.0.0.1").is_err());
        assert!(parse_url("http://[::ffff:127.0.0.1]:80").is_err());
    }
}
