//! The Redis Streams link of cluster mode: several tinysse instances share one Redis stream;
//! each publishes with XADD and delivers what it reads back with XREAD, so every subscriber
//! everywhere sees the same events, with the same ids, in the same order.
//!
//! Two connections, both owned by the `Link` and registered on the caller's `mio::Registry`
//! under tokens the caller chose: the command connection (AUTH, SELECT, XADD, presence) and the
//! reader connection, which a blocking XREAD occupies. Each is a state machine
//! (down, connecting, handshake, ready) with its deadline as a value; the caller passes the time
//! in, calls `on_ready` for the link's tokens, `tick` every turn, and waits no longer than
//! `deadline()`. Replies arrive in order: each publish is answered to the `Sink` with the
//! caller's token once Redis took it (or failed), and each entry read is handed to the `Sink`
//! as slices borrowed from the input buffer. Buffers are allocated once in `new`; nothing is
//! allocated per event.
//!
//! Presence (is a client id streaming on any instance, and which stream is the newest) lives in
//! Redis too: every instance keeps a set of its clients' ids that expires unless refreshed, and
//! a new stream with a client id writes a claim entry into the stream, which every instance reads
//! in the same order as the events (see `claim`).

pub(crate) mod node;
mod resp;

pub(crate) use crate::limits::Fields;
use log::{Level, debug, log, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use resp::{Head, RawEntry, RespError, Skip, Value};
use std::fmt;
use std::io::{self, Read, Write};

pub use crate::config::redis_url::RedisUrl;
pub(crate) use crate::config::{DEFAULT_MAXLEN, DEFAULT_STREAM};

use crate::limits::MAX_ID;
/// Longest Redis entry id: two u64 and a dash.
const MAX_REDIS_ID: usize = 41;
/// Longest Redis error text kept for the log line.
const MAX_ERROR_TEXT: usize = 120;
/// Reads per connection per call before yielding to the rest of the loop (the rest waits for
/// the next `tick`, which `deadline` makes immediate).
const READS_PER_CALL: usize = 16;
/// Reconnect backoff: doubles from the first to the last.
const BACKOFF_FIRST_MS: u64 = 100;
const BACKOFF_MAX_MS: u64 = 5_000;
/// At most one warning per this long, whatever fails.
const WARN_EVERY_MS: u64 = 60_000;
/// Bytes of one stream entry beyond its data: field names, the other fields at their limits,
/// RESP headers.
const ENTRY_OVERHEAD: usize = 1024;

/// Never: a deadline that does not fire.
pub const NEVER: u64 = u64::MAX;

/// What the link is built from (the server's flags).
#[derive(Clone, Debug)]
pub struct LinkConfig {
    pub url: RedisUrl,
    /// The stream's key (`--redis-stream`); also the prefix of the presence keys.
    pub stream: String,
    /// `--redis-maxlen`: each XADD trims the stream to about this many entries.
    pub maxlen: u64,
    /// Entries replayed from the stream at start (the server's `--history`).
    pub history: usize,
    /// Largest event data (the server's `--max-event-bytes`); sizes the buffers.
    pub max_event_bytes: usize,
    /// Entries one XREAD asks for.
    pub read_count: usize,
    /// How long one XREAD waits for entries, ms.
    pub block_ms: u64,
    /// Commands awaiting their reply at most; more publishes are refused with `Full`.
    pub max_pending: usize,
    /// How long a reply may be late before the connection counts as dead, ms.
    pub reply_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// How long this instance's presence set outlives its last refresh, ms (refreshed every
    /// third of it).
    pub presence_ttl_ms: u64,
    /// Tells this run of this instance apart from every other (e.g. from the clock and pid).
    pub instance: u64,
}

impl LinkConfig {
    pub fn new(url: RedisUrl, instance: u64) -> LinkConfig {
        LinkConfig {
            url,
            stream: DEFAULT_STREAM.to_string(),
            maxlen: DEFAULT_MAXLEN,
            history: 256,
            max_event_bytes: 8192,
            read_count: 64,
            block_ms: 5_000,
            max_pending: 1024,
            reply_timeout_ms: 5_000,
            connect_timeout_ms: 3_000,
            presence_ttl_ms: 30_000,
            instance,
        }
    }
}

/// An event read from the stream.
#[derive(Copy, Clone, Debug)]
pub struct Entry<'a> {
    /// Its Redis entry id, e.g. `1700000000000-0`.
    pub redis_id: &'a [u8],
    pub fields: Fields<'a>,
}

impl<'a> Entry<'a> {
    /// The id subscribers see: the publisher's, else the Redis entry id.
    pub fn event_id(&self) -> &'a [u8] {
        if self.fields.id.is_empty() { self.redis_id } else { self.fields.id }
    }
}

/// A claim read from the stream: the stream `stream` of instance `instance` now holds client
/// id `client`. In stream order, so every instance sees the same newest holder.
#[derive(Copy, Clone, Debug)]
pub struct Claim<'a> {
    #[allow(dead_code)] // for log lines and tests
    pub redis_id: &'a [u8],
    pub client: &'a [u8],
    #[allow(dead_code)] // for log lines and tests
    pub instance: u64,
    pub stream: u64,
    /// Made by this instance.
    pub mine: bool,
}

/// A publish (or claim) Redis took.
#[derive(Copy, Clone, Debug)]
pub struct Ack<'a> {
    #[allow(dead_code)] // for log lines and tests
    pub redis_id: &'a [u8],
    /// The id subscribers will see: the publisher's, else the Redis entry id.
    pub event_id: &'a [u8],
}

/// Where the link hands what it reads and the outcome of each publish.
pub trait Sink {
    /// An event read from the stream, in stream order.
    fn entry(&mut self, entry: &Entry<'_>);
    /// A claim read from the stream, in stream order with the events.
    fn claim(&mut self, claim: &Claim<'_>);
    /// Redis took the publish (or claim) queued with `token`.
    fn acked(&mut self, token: u64, ack: &Ack<'_>);
    /// The publish (or claim) queued with `token` was not taken, or its outcome is unknown
    /// because the connection was lost first (`Down`).
    fn failed(&mut self, token: u64, error: PublishError);
}

/// Why a publish was not (or may not have been) taken.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// The command connection is not up, or was lost before the reply.
    Down,
    /// Too many publishes in flight, or the output buffer is full: try again shortly.
    Full,
    /// Larger than the link's output buffer, or an id over 128 bytes.
    TooLarge,
    /// Redis answered with an error (e.g. out of memory).
    Refused,
    /// Targeted at a client id that no instance holds; nothing was stored.
    ClientNotConnected,
}

impl PublishError {
    pub fn message(self) -> &'static str {
        match self {
            PublishError::Down => "redis unavailable",
            PublishError::Full => "redis link busy",
            PublishError::TooLarge => "event too large for the redis link",
            PublishError::Refused => "redis refused the event",
            PublishError::ClientNotConnected => "client not connected",
        }
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for PublishError {}

/// Counters for /stats and /metrics.
#[derive(Copy, Clone, Debug, Default)]
pub struct LinkStats {
    /// Both connections ready.
    pub connected: bool,
    /// Entries read from the stream and handed to the sink (events and claims).
    pub read: u64,
    /// Publishes (and claims) Redis took.
    pub acked: u64,
    /// Publishes refused or lost (every `Sink::failed`, and every `Err` from `publish`).
    pub publish_failures: u64,
    /// Connections made again after having been up (an outage counts once per connection).
    pub reconnects: u64,
    /// Entries too large for the read buffer, passed over unread.
    pub skipped: u64,
    /// Milliseconds part of the last entry id read (Redis's clock), for `lag_ms`.
    pub last_id_ms: u64,
    /// Commands awaiting their reply.
    pub pending: usize,
}

impl LinkStats {
    /// Age of the last entry read at `wall_now_ms` (Unix ms): now minus the ms in its id, which
    /// Redis's clock set. While events flow, how far reading lags behind publishing; while the
    /// stream is idle it just grows.
    pub fn lag_ms(&self, wall_now_ms: u64) -> u64 {
        wall_now_ms.saturating_sub(self.last_id_ms)
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    Down,
    Connecting,
    Handshake,
    Ready,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Side {
    Command,
    Reader,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Command => "command",
            Side::Reader => "reader",
        })
    }
}

/// Why a connection was closed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Reason {
    Resolve(io::ErrorKind),
    Connect(io::ErrorKind),
    Closed,
    Io(io::ErrorKind),
    Timeout,
    Protocol(RespError),
    /// Redis answered an error the link cannot go on after; its text is in `Link::error_text`.
    Refused,
    /// A reply the link cannot hold or skip.
    Overflow,
}

/// Bytes with a start and an end, allocated once.
struct Buf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buf {
    fn new(len: usize) -> Buf {
        // Zeroed: comes straight from the OS and stays non-resident until used.
        Buf { data: vec![0; len], start: 0, end: 0 }
    }

    fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Room at the end, after moving what is pending to the front when that makes more.
    fn space(&mut self) -> &mut [u8] {
        if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.data[self.end..]
    }

    /// Appends a command; false when it does not fit even after compacting.
    fn push_command(&mut self, args: &[&[u8]]) -> bool {
        if self.end + resp::command_len(args) > self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        match resp::write_command(&mut self.data[self.end..], args) {
            Some(n) => {
                self.end += n;
                true
            }
            None => false,
        }
    }

    fn fits(&self, len: usize) -> bool {
        self.end - self.start + len <= self.data.len()
    }
}

struct Conn {
    token: Token,
    sock: Option<TcpStream>,
    state: State,
    /// Down: when to connect again. Connecting: when to give up. Reader: when it counts as
    /// dead without a byte. (The command connection's reply deadline is its oldest command's.)
    deadline: u64,
    /// Failed attempts since it was last ready: the backoff's exponent.
    attempts: u32,
    inb: Buf,
    outb: Buf,
    /// A write said WouldBlock: wait for the writable event.
    write_blocked: bool,
    /// Reading stopped before WouldBlock: go on at the next `tick`.
    read_more: bool,
    ever_up: bool,
    /// This outage was warned about: say so when it ends.
    warned: bool,
}

impl Conn {
    fn new(token: Token, in_bytes: usize, out_bytes: usize) -> Conn {
        Conn {
            token,
            sock: None,
            state: State::Down,
            deadline: 0,
            attempts: 0,
            inb: Buf::new(in_bytes),
            outb: Buf::new(out_bytes),
            write_blocked: false,
            read_more: false,
            ever_up: false,
            warned: false,
        }
    }

    /// Whether a connect in progress has completed; `Err` when it failed.
    fn established(&mut self) -> Result<bool, Reason> {
        let Some(sock) = self.sock.as_mut() else { return Ok(false) };
        match sock.take_error() {
            Ok(Some(e)) | Err(e) => return Err(Reason::Connect(e.kind())),
            Ok(None) => {}
        }
        match sock.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(Reason::Connect(e.kind())),
        }
    }

    fn flush(&mut self) -> Result<(), Reason> {
        let Some(sock) = self.sock.as_mut() else { return Ok(()) };
        while self.outb.start < self.outb.end {
            match sock.write(self.outb.pending()) {
                Ok(0) => return Err(Reason::Closed),
                Ok(n) => self.outb.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.write_blocked = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Reason::Io(e.kind())),
            }
        }
        Ok(())
    }
}

/// A Redis entry id, or the exclusive start an XREAD reads after.
#[derive(Copy, Clone)]
struct Id {
    bytes: [u8; MAX_REDIS_ID],
    len: u8,
}

impl Id {
    const ZERO: Id = Id::from_parts(0, 0);

    const fn from_parts(ms: u64, seq: u64) -> Id {
        let mut id = Id { bytes: [0; MAX_REDIS_ID], len: 0 };
        id = id.push_u64(ms);
        id.bytes[id.len as usize] = b'-';
        id.len += 1;
        id.push_u64(seq)
    }

    const fn push_u64(mut self, n: u64) -> Id {
        let mut digits = [0u8; 20];
        let mut len = 0;
        let mut n = n;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while len > 0 {
            len -= 1;
            self.bytes[self.len as usize] = digits[len];
            self.len += 1;
        }
        self
    }

    fn parse(id: &[u8]) -> Option<(u64, u64)> {
        let dash = id.iter().position(|&b| b == b'-')?;
        let num = |s: &[u8]| {
            if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(s).ok()?.parse::<u64>().ok()
        };
        Some((num(&id[..dash])?, num(&id[dash + 1..])?))
    }

    /// The id just before `id`, so that reading after it starts at `id` itself.
    fn before(id: &[u8]) -> Option<Id> {
        let (ms, seq) = Id::parse(id)?;
        Some(match (ms, seq) {
            (0, 0) => Id::ZERO,
            (ms, 0) => Id::from_parts(ms - 1, u64::MAX),
            (ms, seq) => Id::from_parts(ms, seq - 1),
        })
    }

    fn of(id: &[u8]) -> Option<Id> {
        Id::parse(id)?;
        let mut out = Id { bytes: [0; MAX_REDIS_ID], len: id.len() as u8 };
        out.bytes[..id.len()].copy_from_slice(id);
        Some(out)
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Where the reader is in the replies it awaits.
#[derive(Copy, Clone, Debug)]
enum Reading {
    Idle,
    /// XREVRANGE: the array header, then per entry its id and its fields (skipped: only the
    /// ids matter, to find where the replay starts).
    HistTop,
    HistEntry {
        left: usize,
    },
    HistFields {
        left: usize,
        skip: Skip,
    },
    HistDone,
    /// XREAD: nil on timeout, else `[[key, [entry...]]]`.
    TailTop,
    TailStream,
    TailKey,
    TailCount,
    TailEntry {
        left: usize,
    },
    /// An entry larger than the whole input buffer, passed over after its id.
    TailSkip {
        left: usize,
        skip: Skip,
    },
    TailDone,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
enum Kind {
    /// AUTH, SELECT, PING: an error closes the connection.
    #[default]
    Handshake,
    /// XADD: the caller hears of it.
    Publish,
    /// The targeted-publish script: nil means no instance holds the client.
    Targeted,
    /// The claim script: the caller hears of it.
    Claim,
    /// PEXPIRE of this instance's presence set: 0 means Redis lost it.
    Refresh,
    /// Presence bookkeeping nobody waits for.
    Chore,
}

impl Kind {
    /// Whether the caller awaits its outcome.
    fn is_publish(self) -> bool {
        matches!(self, Kind::Publish | Kind::Targeted | Kind::Claim)
    }
}

#[derive(Copy, Clone, Default)]
struct Pending {
    kind: Kind,
    token: u64,
    sent_at: u64,
    id_len: u8,
}

/// Commands awaiting their reply on the command connection, oldest first; each keeps the
/// publisher's id so the acknowledgement can carry the id subscribers will see.
struct Ring {
    items: Vec<Pending>,
    ids: Vec<u8>,
    head: usize,
    len: usize,
    /// Of them, publishes and claims (the ones `max_pending` bounds).
    publishes: usize,
}

impl Ring {
    fn new(cap: usize) -> Ring {
        Ring { items: vec![Pending::default(); cap], ids: vec![0; cap * MAX_ID], head: 0, len: 0, publishes: 0 }
    }

    fn is_full(&self) -> bool {
        self.len == self.items.len()
    }

    fn push(&mut self, p: Pending, id: &[u8]) {
        let slot = (self.head + self.len) % self.items.len();
        self.items[slot] = Pending { id_len: id.len() as u8, ..p };
        self.ids[slot * MAX_ID..slot * MAX_ID + id.len()].copy_from_slice(id);
        self.len += 1;
        self.publishes += usize::from(p.kind.is_publish());
    }

    fn front(&self) -> Option<(Pending, &[u8])> {
        if self.len == 0 {
            return None;
        }
        let p = self.items[self.head];
        Some((p, &self.ids[self.head * MAX_ID..self.head * MAX_ID + p.id_len as usize]))
    }

    fn pop(&mut self) -> Option<Pending> {
        if self.len == 0 {
            return None;
        }
        let p = self.items[self.head];
        self.head = (self.head + 1) % self.items.len();
        self.len -= 1;
        self.publishes -= usize::from(p.kind.is_publish());
        Some(p)
    }
}

/// The Redis error text behind the last `Reason::Refused`, printable.
struct ErrorText {
    bytes: [u8; MAX_ERROR_TEXT],
    len: usize,
}

impl ErrorText {
    fn set(&mut self, text: &[u8]) {
        self.len = text.len().min(MAX_ERROR_TEXT);
        for (to, &from) in self.bytes.iter_mut().zip(text) {
            *to = if from.is_ascii_graphic() || from == b' ' { from } else { b'?' };
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

/// The keys the link uses, built once.
struct Keys {
    stream: Vec<u8>,
    /// Set of the instance ids that have a presence set.
    instances: Vec<u8>,
    /// `<stream>:clients:`, then an instance id: that instance's presence set.
    clients_prefix: Vec<u8>,
    mine: Vec<u8>,
    instance_hex: [u8; 16],
}

/// Publishes an event targeted at a client only when some live instance's presence set holds
/// the client (pruning dead instances on the way); else returns nil and stores nothing.
/// KEYS: stream, instances. ARGV: presence-set prefix, client, maxlen, field pairs...
const TARGETED: &[u8] = b"for _, i in ipairs(redis.call('smembers', KEYS[2])) do \
local k = ARGV[1] .. i \
if redis.call('sismember', k, ARGV[2]) == 1 then \
return redis.call('xadd', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4)) end \
if redis.call('exists', k) == 0 then redis.call('srem', KEYS[2], i) end end \
return false";

/// Adds a client to this instance's presence set (registering the instance, renewing the set's
/// expiry) and, with ARGV[4] and ARGV[5], appends the claim entry.
/// KEYS: stream, instances, this instance's set. ARGV: instance, client, ttl, [maxlen, holder].
const CLAIM: &[u8] = b"redis.call('sadd', KEYS[2], ARGV[1]) \
redis.call('sadd', KEYS[3], ARGV[2]) \
redis.call('pexpire', KEYS[3], ARGV[3]) \
if ARGV[5] then \
return redis.call('xadd', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'claim', ARGV[2], 'by', ARGV[5]) end \
return 1";

/// The Redis Streams link. See the module documentation.
pub struct Link {
    cfg: LinkConfig,
    keys: Keys,
    cmd: Conn,
    reader: Conn,
    pending: Ring,
    /// Handshake replies still due on each connection.
    cmd_handshake: usize,
    reader_handshake: usize,
    reading: Reading,
    /// The last entry id delivered, or where reading starts; valid once `have_cursor`.
    cursor: Id,
    have_cursor: bool,
    hist_seen: usize,
    hist_newest: Id,
    hist_oldest: Id,
    refresh_at: u64,
    resync: bool,
    stats: LinkStats,
    /// The time of the last call that passed it in (stamps commands queued between calls).
    now: u64,
    warn_at: u64,
    error_text: ErrorText,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("url", &self.cfg.url)
            .field("stream", &self.cfg.stream)
            .field("command", &self.cmd.state)
            .field("reader", &self.reader.state)
            .field("last_id", &String::from_utf8_lossy(self.last_id()))
            .field("stats", &self.stats)
            .finish()
    }
}

impl Link {
    /// A link that is down and connects at the first `tick`. Allocates every buffer it uses.
    pub fn new(cfg: LinkConfig, command: Token, reader: Token) -> Link {
        let entry = cfg.max_event_bytes + ENTRY_OVERHEAD;
        let credentials = cfg.url.user.len() + cfg.url.password.len();
        let small = 4096 + credentials + 4 * cfg.stream.len();
        let in_bytes = (cfg.read_count.max(1) * entry).clamp(2 * entry, (4 << 20).max(2 * entry)) + small;
        let out_bytes = 16 * entry + 64 * 1024 + small;
        let mut instance_hex = [0u8; 16];
        for (i, b) in instance_hex.iter_mut().enumerate() {
            *b = b"0123456789abcdef"[(cfg.instance >> (60 - 4 * i) & 0xf) as usize];
        }
        let stream = cfg.stream.as_bytes().to_vec();
        let clients_prefix = [&stream[..], b":clients:"].concat();
        let keys = Keys {
            instances: [&stream[..], b":instances"].concat(),
            mine: [&clients_prefix[..], &instance_hex[..]].concat(),
            clients_prefix,
            stream,
            instance_hex,
        };
        Link {
            pending: Ring::new(cfg.max_pending.max(1) + 8),
            cmd: Conn::new(command, 8192 + MAX_ERROR_TEXT, out_bytes),
            reader: Conn::new(reader, in_bytes, small),
            cfg,
            keys,
            cmd_handshake: 0,
            reader_handshake: 0,
            reading: Reading::Idle,
            cursor: Id::ZERO,
            have_cursor: false,
            hist_seen: 0,
            hist_newest: Id::ZERO,
            hist_oldest: Id::ZERO,
            refresh_at: NEVER,
            resync: false,
            stats: LinkStats::default(),
            now: 0,
            warn_at: 0,
            error_text: ErrorText { bytes: [0; MAX_ERROR_TEXT], len: 0 },
        }
    }

    /// Whether `token` is one of the link's.
    pub fn owns(&self, token: Token) -> bool {
        token == self.cmd.token || token == self.reader.token
    }

    /// Handles readiness of one of the link's sockets.
    pub fn on_ready(&mut self, token: Token, now: u64, registry: &Registry, sink: &mut impl Sink) {
        self.now = now;
        let side = if token == self.cmd.token { Side::Command } else { Side::Reader };
        let conn = self.conn(side);
        conn.write_blocked = false;
        self.drive(side, now, registry, sink);
    }

    /// Runs what is due: connecting, timeouts, presence refresh, writing what was queued since
    /// the last call, reading on. Call it every turn of the loop, after the turn's publishes.
    pub fn tick(&mut self, now: u64, registry: &Registry, sink: &mut impl Sink) {
        self.now = now;
        for side in [Side::Command, Side::Reader] {
            let (state, deadline) = (self.conn(side).state, self.conn(side).deadline);
            match state {
                State::Down if now >= deadline => self.connect(side, now, registry),
                State::Connecting if now >= deadline => self.close(side, Reason::Timeout, now, registry, sink),
                State::Handshake | State::Ready if now >= self.reply_deadline(side) => {
                    self.close(side, Reason::Timeout, now, registry, sink)
                }
                State::Handshake | State::Ready => {
                    if side == Side::Command && self.cmd.state == State::Ready && now >= self.refresh_at {
                        self.refresh(now);
                    }
                    let conn = self.conn(side);
                    if conn.read_more || (!conn.write_blocked && conn.outb.start < conn.outb.end) {
                        self.drive(side, now, registry, sink);
                    }
                }
                _ => {}
            }
        }
    }

    /// When `tick` must run next (ms, in the caller's time; `NEVER` for never).
    pub fn deadline(&self) -> u64 {
        let mut at = NEVER;
        for side in [Side::Command, Side::Reader] {
            let conn = match side {
                Side::Command => &self.cmd,
                Side::Reader => &self.reader,
            };
            at = at.min(match conn.state {
                State::Down | State::Connecting => conn.deadline,
                State::Handshake | State::Ready => {
                    let busy = conn.read_more || (!conn.write_blocked && conn.outb.start < conn.outb.end);
                    if busy { 0 } else { self.reply_deadline(side) }
                }
            });
        }
        if self.cmd.state == State::Ready { at.min(self.refresh_at) } else { at }
    }

    /// Queues an event for XADD (a targeted one through the presence check). The outcome comes
    /// to the sink with `token`, once Redis answered; written at the next `tick`.
    pub fn publish(&mut self, fields: &Fields, token: u64) -> Result<(), PublishError> {
        let r = self.queue_publish(fields, token);
        if r.is_err() {
            self.stats.publish_failures += 1;
        }
        r
    }

    fn queue_publish(&mut self, f: &Fields, token: u64) -> Result<(), PublishError> {
        if f.id.len() > MAX_ID {
            return Err(PublishError::TooLarge);
        }
        let mut digits = [0u8; 20];
        let maxlen = resp::format_u64(self.cfg.maxlen, &mut digits);
        let mut args = Args { items: [b""; 20], len: 0 };
        let mut put = |a| args.push(a);
        let kind = if f.client.is_empty() {
            for a in [&b"XADD"[..], &self.keys.stream[..], b"MAXLEN", b"~", maxlen, b"*"] {
                put(a);
            }
            Kind::Publish
        } else {
            for a in [&b"EVAL"[..], TARGETED, b"2", &self.keys.stream[..], &self.keys.instances[..]] {
                put(a);
            }
            for a in [&self.keys.clients_prefix[..], f.client, maxlen] {
                put(a);
            }
            Kind::Targeted
        };
        for (name, value) in [(&b"id"[..], f.id), (b"event", f.event), (b"data", f.data), (b"topic", f.topic)] {
            // Data always: an entry needs a field; the others only when given.
            if !value.is_empty() || name == b"data" {
                put(name);
                put(value);
            }
        }
        if !f.client.is_empty() {
            put(b"client");
            put(f.client);
        }
        queue(
            &mut self.cmd,
            &mut self.pending,
            self.cfg.max_pending,
            self.now,
            kind,
            token,
            f.id,
            &args.items[..args.len],
        )
    }

    /// Marks stream `stream` (the caller's number for it, unique in this run) as holding client
    /// id `client`: adds it to this instance's presence set and appends a claim entry. The claim
    /// is acknowledged (or failed) to the sink with `token`, like a publish.
    ///
    /// Every instance reads claims in stream order. A stream whose own claim has been read back
    /// is closed by any later claim of its client id; one whose claim has not been read back yet
    /// is left alone (every claim read before its own is older).
    pub fn claim(&mut self, client: &[u8], stream: u64, token: u64) -> Result<(), PublishError> {
        let mut holder = [0u8; 40];
        let holder = self.holder(stream, &mut holder);
        let mut ttl = [0u8; 20];
        let ttl = resp::format_u64(self.cfg.presence_ttl_ms, &mut ttl);
        let mut maxlen = [0u8; 20];
        let maxlen = resp::format_u64(self.cfg.maxlen, &mut maxlen);
        let k = &self.keys;
        let args: [&[u8]; 11] =
            [b"EVAL", CLAIM, b"3", &k.stream, &k.instances, &k.mine, &k.instance_hex, client, ttl, maxlen, holder];
        queue(&mut self.cmd, &mut self.pending, self.cfg.max_pending, self.now, Kind::Claim, token, b"", &args)
    }

    /// Adds a client this instance already holds to its presence set again, without a claim
    /// entry: after `take_resync` said Redis lost the set.
    pub fn readd(&mut self, client: &[u8]) -> Result<(), PublishError> {
        let mut ttl = [0u8; 20];
        let ttl = resp::format_u64(self.cfg.presence_ttl_ms, &mut ttl);
        let k = &self.keys;
        let args: [&[u8]; 9] = [b"EVAL", CLAIM, b"3", &k.stream, &k.instances, &k.mine, &k.instance_hex, client, ttl];
        queue(&mut self.cmd, &mut self.pending, self.cfg.max_pending, self.now, Kind::Chore, 0, b"", &args)
    }

    /// Removes a client from this instance's presence set (its stream ended, and no newer stream
    /// here holds the id).
    pub fn release(&mut self, client: &[u8]) -> Result<(), PublishError> {
        let args: [&[u8]; 3] = [b"SREM", &self.keys.mine, client];
        queue(&mut self.cmd, &mut self.pending, self.cfg.max_pending, self.now, Kind::Chore, 0, b"", &args)
    }

    /// True once after Redis was found without this instance's presence set (restarted without
    /// its data, or the set expired): the caller then `readd`s every client it holds.
    pub fn take_resync(&mut self) -> bool {
        std::mem::take(&mut self.resync)
    }

    pub fn stats(&self) -> LinkStats {
        LinkStats {
            connected: self.cmd.state == State::Ready && self.reader.state == State::Ready,
            pending: self.pending.len,
            ..self.stats
        }
    }

    /// The last entry id read from the stream (empty before the first).
    pub fn last_id(&self) -> &[u8] {
        if self.stats.read > 0 { self.cursor.as_bytes() } else { b"" }
    }

    /// Whether publishes are accepted now.
    #[allow(dead_code)] // for tests
    pub fn is_up(&self) -> bool {
        self.cmd.state == State::Ready
    }

    fn holder<'b>(&self, stream: u64, out: &'b mut [u8; 40]) -> &'b [u8] {
        out[..16].copy_from_slice(&self.keys.instance_hex);
        out[16] = b'.';
        let mut digits = [0u8; 20];
        let d = resp::format_u64(stream, &mut digits);
        out[17..17 + d.len()].copy_from_slice(d);
        &out[..17 + d.len()]
    }

    fn refresh(&mut self, now: u64) {
        let mut ttl = [0u8; 20];
        let ttl = resp::format_u64(self.cfg.presence_ttl_ms, &mut ttl);
        let args: [&[u8]; 3] = [b"PEXPIRE", &self.keys.mine, ttl];
        // Full: try again at the next tick.
        if queue(&mut self.cmd, &mut self.pending, self.cfg.max_pending, now, Kind::Refresh, 0, b"", &args).is_ok() {
            self.refresh_at = now + (self.cfg.presence_ttl_ms / 3).max(1);
        }
    }

    fn conn(&mut self, side: Side) -> &mut Conn {
        match side {
            Side::Command => &mut self.cmd,
            Side::Reader => &mut self.reader,
        }
    }

    fn reply_deadline(&self, side: Side) -> u64 {
        match side {
            Side::Command => {
                self.pending.front().map_or(NEVER, |(p, _)| p.sent_at.saturating_add(self.cfg.reply_timeout_ms))
            }
            Side::Reader => self.reader.deadline,
        }
    }

    fn connect(&mut self, side: Side, now: u64, registry: &Registry) {
        let result = self.cfg.url.resolve().map_err(|e| Reason::Resolve(e.kind())).and_then(|addr| {
            let mut sock = TcpStream::connect(addr).map_err(|e| Reason::Connect(e.kind()))?;
            let token = self.conn(side).token;
            registry
                .register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| Reason::Connect(e.kind()))?;
            Ok(sock)
        });
        match result {
            Ok(sock) => {
                let timeout = self.cfg.connect_timeout_ms;
                let conn = self.conn(side);
                conn.sock = Some(sock);
                conn.state = State::Connecting;
                conn.deadline = now + timeout;
            }
            Err(reason) => self.schedule_retry(side, reason, now),
        }
    }

    fn drive(&mut self, side: Side, now: u64, registry: &Registry, sink: &mut impl Sink) {
        if let Err(reason) = self.try_drive(side, now, sink) {
            self.close(side, reason, now, registry, sink);
        }
    }

    fn try_drive(&mut self, side: Side, now: u64, sink: &mut impl Sink) -> Result<(), Reason> {
        match self.conn(side).state {
            State::Down => return Ok(()),
            State::Connecting => {
                if !self.conn(side).established()? {
                    return Ok(());
                }
                self.start(side, now)?;
            }
            State::Handshake | State::Ready => {}
        }
        self.conn(side).flush()?;
        self.read(side, now, sink)?;
        self.conn(side).flush()
    }

    /// The connection is up: queue the handshake (and, on the reader, the first stream command).
    fn start(&mut self, side: Side, now: u64) -> Result<(), Reason> {
        let url = &self.cfg.url;
        let conn = match side {
            Side::Command => &mut self.cmd,
            Side::Reader => &mut self.reader,
        };
        if let Some(sock) = conn.sock.as_ref() {
            // Commands are small and replies awaited: Nagle would only delay them.
            let _ = sock.set_nodelay(true);
        }
        conn.state = State::Handshake;
        let mut db = [0u8; 20];
        let db = resp::format_u64(u64::from(url.db), &mut db);
        let mut sent = 0;
        let mut ok = true;
        if url.has_password() {
            ok &= if url.user.is_empty() {
                conn.outb.push_command(&[&b"AUTH"[..], url.password.as_bytes()])
            } else {
                conn.outb.push_command(&[&b"AUTH"[..], url.user.as_bytes(), url.password.as_bytes()])
            };
            sent += 1;
        }
        if url.db != 0 {
            ok &= conn.outb.push_command(&[&b"SELECT"[..], db]);
            sent += 1;
        }
        // Ready only after a round trip, so a refused AUTH (or none where one is needed) shows.
        ok &= conn.outb.push_command(&[&b"PING"[..]]);
        sent += 1;
        if !ok {
            return Err(Reason::Overflow);
        }
        match side {
            Side::Command => {
                for _ in 0..sent {
                    self.pending.push(Pending { kind: Kind::Handshake, token: 0, sent_at: now, id_len: 0 }, b"");
                }
                self.cmd_handshake = sent;
            }
            Side::Reader => {
                self.reader_handshake = sent;
                self.reader.deadline = now + self.cfg.reply_timeout_ms;
                if self.have_cursor {
                    self.send_xread()?;
                } else {
                    self.send_history()?;
                }
            }
        }
        Ok(())
    }

    fn send_history(&mut self) -> Result<(), Reason> {
        let mut count = [0u8; 20];
        let count = resp::format_u64(self.cfg.history.max(1) as u64, &mut count);
        let args: [&[u8]; 6] = [b"XREVRANGE", &self.keys.stream, b"+", b"-", b"COUNT", count];
        if !self.reader.outb.push_command(&args) {
            return Err(Reason::Overflow);
        }
        self.hist_seen = 0;
        self.reading = Reading::HistTop;
        Ok(())
    }

    fn send_xread(&mut self) -> Result<(), Reason> {
        let mut count = [0u8; 20];
        let count = resp::format_u64(self.cfg.read_count.max(1) as u64, &mut count);
        let mut block = [0u8; 20];
        let block = resp::format_u64(self.cfg.block_ms, &mut block);
        let args: [&[u8]; 8] =
            [b"XREAD", b"COUNT", count, b"BLOCK", block, b"STREAMS", &self.keys.stream, self.cursor.as_bytes()];
        if !self.reader.outb.push_command(&args) {
            return Err(Reason::Overflow);
        }
        self.reader.deadline = self.now + self.cfg.block_ms + self.cfg.reply_timeout_ms;
        self.reading = Reading::TailTop;
        Ok(())
    }

    fn read(&mut self, side: Side, now: u64, sink: &mut impl Sink) -> Result<(), Reason> {
        self.process(side, sink)?;
        for _ in 0..READS_PER_CALL {
            let block_ms = self.cfg.block_ms + self.cfg.reply_timeout_ms;
            let conn = self.conn(side);
            let Some(sock) = conn.sock.as_mut() else { return Ok(()) };
            let space = conn.inb.space();
            if space.is_empty() {
                // `process` takes whatever fits; a full buffer it cannot take is a reply of no
                // shape the link asked for.
                return Err(Reason::Overflow);
            }
            match sock.read(space) {
                Ok(0) => return Err(Reason::Closed),
                Ok(n) => {
                    conn.inb.end += n;
                    if side == Side::Reader {
                        conn.deadline = now + block_ms;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.read_more = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Reason::Io(e.kind())),
            }
            self.process(side, sink)?;
        }
        self.conn(side).read_more = true;
        Ok(())
    }

    fn process(&mut self, side: Side, sink: &mut impl Sink) -> Result<(), Reason> {
        match side {
            Side::Command => self.process_replies(sink),
            Side::Reader => self.process_stream(sink),
        }
    }

    fn process_replies(&mut self, sink: &mut impl Sink) -> Result<(), Reason> {
        loop {
            let buf = &self.cmd.inb.data[self.cmd.inb.start..self.cmd.inb.end];
            let Some((value, used)) = resp::value(buf).map_err(Reason::Protocol)? else { return Ok(()) };
            let Some((p, id)) = self.pending.front() else { return Err(Reason::Protocol(RespError::Unexpected)) };
            let mut up = false;
            match (p.kind, value) {
                (Kind::Handshake, Value::Simple(_)) => {
                    self.cmd_handshake -= 1;
                    up = self.cmd_handshake == 0;
                }
                (Kind::Handshake, Value::Error(text)) => {
                    self.error_text.set(text);
                    return Err(Reason::Refused);
                }
                (Kind::Publish | Kind::Targeted | Kind::Claim, Value::Bulk(redis_id)) => {
                    let event_id = if id.is_empty() { redis_id } else { id };
                    self.stats.acked += 1;
                    sink.acked(p.token, &Ack { redis_id, event_id });
                }
                (Kind::Targeted, Value::Nil) => {
                    self.stats.publish_failures += 1;
                    sink.failed(p.token, PublishError::ClientNotConnected);
                }
                (Kind::Publish | Kind::Targeted | Kind::Claim, Value::Error(text)) => {
                    self.error_text.set(text);
                    self.stats.publish_failures += 1;
                    if self.now >= self.warn_at {
                        self.warn_at = self.now + WARN_EVERY_MS;
                        warn!("redis refused a publish: {}", self.error_text.as_str());
                    }
                    sink.failed(p.token, PublishError::Refused);
                }
                (Kind::Refresh, Value::Int(0)) => self.resync = true,
                (Kind::Refresh | Kind::Chore, Value::Error(text)) => {
                    self.error_text.set(text);
                    debug!("redis refused a presence update: {}", self.error_text.as_str());
                }
                (Kind::Refresh | Kind::Chore, Value::Int(_) | Value::Simple(_) | Value::Bulk(_)) => {}
                _ => return Err(Reason::Protocol(RespError::Unexpected)),
            }
            self.pending.pop();
            self.cmd.inb.consume(used);
            if up {
                self.up(Side::Command);
            }
        }
    }

    fn process_stream(&mut self, sink: &mut impl Sink) -> Result<(), Reason> {
        loop {
            let inb = &self.reader.inb;
            let buf = &inb.data[inb.start..inb.end];
            let full = buf.len() == inb.data.len();
            let proto = Reason::Protocol;
            if self.reader_handshake > 0 {
                let Some((value, used)) = resp::value(buf).map_err(proto)? else { return Ok(()) };
                match value {
                    Value::Simple(_) => self.reader_handshake -= 1,
                    Value::Error(text) => {
                        self.error_text.set(text);
                        return Err(Reason::Refused);
                    }
                    _ => return Err(proto(RespError::Unexpected)),
                }
                self.reader.inb.consume(used);
                if self.reader_handshake == 0 {
                    self.up(Side::Reader);
                }
                continue;
            }
            let (used, next) = match self.reading {
                Reading::Idle | Reading::HistDone | Reading::TailDone => return Ok(()),
                Reading::HistTop | Reading::TailTop | Reading::TailStream | Reading::TailCount => {
                    let Some((head, used)) = resp::head(buf).map_err(proto)? else { return Ok(()) };
                    let next = match (self.reading, head) {
                        (_, Head::Error(text)) => {
                            self.error_text.set(text);
                            return Err(Reason::Refused);
                        }
                        (Reading::HistTop, Head::Array(0)) => Reading::HistDone,
                        (Reading::HistTop, Head::Array(n)) => Reading::HistEntry { left: n },
                        (Reading::TailTop, Head::Nil) => Reading::TailDone,
                        (Reading::TailTop, Head::Array(1)) => Reading::TailStream,
                        (Reading::TailStream, Head::Array(2)) => Reading::TailKey,
                        (Reading::TailCount, Head::Array(0)) => Reading::TailDone,
                        (Reading::TailCount, Head::Array(n)) => Reading::TailEntry { left: n },
                        _ => return Err(proto(RespError::Unexpected)),
                    };
                    (used, next)
                }
                Reading::TailKey => match resp::value(buf).map_err(proto)? {
                    None => return Ok(()),
                    Some((Value::Bulk(_), used)) => (used, Reading::TailCount),
                    Some(_) => return Err(proto(RespError::Unexpected)),
                },
                Reading::HistEntry { left } => {
                    let Some((id, used)) = resp::entry_id(buf).map_err(proto)? else { return Ok(()) };
                    let id = Id::of(id).ok_or(proto(RespError::Unexpected))?;
                    if self.hist_seen == 0 {
                        self.hist_newest = id;
                    }
                    self.hist_oldest = id;
                    self.hist_seen += 1;
                    (used, Reading::HistFields { left, skip: Skip::one() })
                }
                Reading::HistFields { left, mut skip } | Reading::TailSkip { left, mut skip } => {
                    let (used, over) = skip.feed(buf).map_err(proto)?;
                    let hist = matches!(self.reading, Reading::HistFields { .. });
                    let next = match (over, hist, left) {
                        (false, true, _) => Reading::HistFields { left, skip },
                        (false, false, _) => Reading::TailSkip { left, skip },
                        (true, true, 1) => Reading::HistDone,
                        (true, true, _) => Reading::HistEntry { left: left - 1 },
                        (true, false, 1) => Reading::TailDone,
                        (true, false, _) => Reading::TailEntry { left: left - 1 },
                    };
                    if !over {
                        self.reader.inb.consume(used);
                        self.reading = next;
                        return Ok(());
                    }
                    (used, next)
                }
                Reading::TailEntry { left } => {
                    let next = if left == 1 { Reading::TailDone } else { Reading::TailEntry { left: left - 1 } };
                    match resp::entry(buf).map_err(proto)? {
                        Some((raw, used)) => {
                            self.cursor = Id::of(raw.id).ok_or(proto(RespError::Unexpected))?;
                            self.stats.read += 1;
                            self.stats.last_id_ms = Id::parse(raw.id).map_or(0, |(ms, _)| ms);
                            deliver(&raw, self.cfg.instance, sink);
                            (used, next)
                        }
                        None if full => {
                            // Larger than the whole buffer (written by something other than
                            // tinysse): pass over it, and never read it again.
                            let Some((id, used)) = resp::entry_id(buf).map_err(proto)? else {
                                return Err(Reason::Overflow);
                            };
                            self.cursor = Id::of(id).ok_or(proto(RespError::Unexpected))?;
                            self.stats.skipped += 1;
                            if self.now >= self.warn_at {
                                self.warn_at = self.now + WARN_EVERY_MS;
                                warn!(
                                    "redis stream entry {} is larger than the read buffer; skipped",
                                    String::from_utf8_lossy(id)
                                );
                            }
                            (used, Reading::TailSkip { left, skip: Skip::one() })
                        }
                        None => return Ok(()),
                    }
                }
            };
            self.reader.inb.consume(used);
            self.reading = next;
            match next {
                Reading::HistDone => {
                    self.cursor = self.replay_start();
                    self.have_cursor = true;
                    self.send_xread()?;
                }
                Reading::TailDone => self.send_xread()?,
                _ => {}
            }
        }
    }

    /// Where reading starts after the history reply: just before the oldest of the last
    /// `history` entries, so that they are read (and delivered) first; with no history, after
    /// the newest; with fewer entries than asked, from the beginning.
    fn replay_start(&self) -> Id {
        if self.hist_seen == 0 {
            Id::ZERO
        } else if self.cfg.history == 0 {
            self.hist_newest
        } else if self.hist_seen < self.cfg.history {
            Id::ZERO
        } else {
            Id::before(self.hist_oldest.as_bytes()).unwrap_or(Id::ZERO)
        }
    }

    fn up(&mut self, side: Side) {
        let now = self.now;
        let conn = self.conn(side);
        conn.state = State::Ready;
        conn.attempts = 0;
        let again = conn.ever_up;
        conn.ever_up = true;
        let warned = std::mem::take(&mut conn.warned);
        if again {
            self.stats.reconnects += 1;
        }
        // Said aloud only when the outage was: a flapping link logs at most its warnings' rate.
        let level = if warned { Level::Info } else { Level::Debug };
        log!(level, "redis {}: {} connection up", self.cfg.url, side);
        if side == Side::Command {
            // At once: a Redis that restarted empty shows here, and the caller re-adds.
            self.refresh_at = now;
        }
    }

    fn close(&mut self, side: Side, reason: Reason, now: u64, registry: &Registry, sink: &mut impl Sink) {
        let conn = self.conn(side);
        if let Some(mut sock) = conn.sock.take() {
            let _ = registry.deregister(&mut sock);
        }
        conn.inb.clear();
        conn.outb.clear();
        conn.write_blocked = false;
        conn.read_more = false;
        match side {
            Side::Command => {
                self.cmd_handshake = 0;
                // Sent or not, Redis may or may not have taken these: never report them taken.
                while let Some(p) = self.pending.pop() {
                    if p.kind.is_publish() {
                        self.stats.publish_failures += 1;
                        sink.failed(p.token, PublishError::Down);
                    }
                }
            }
            Side::Reader => {
                self.reader_handshake = 0;
                self.reading = Reading::Idle;
            }
        }
        self.schedule_retry(side, reason, now);
    }

    fn schedule_retry(&mut self, side: Side, reason: Reason, now: u64) {
        let jitter = self.cfg.instance.rotate_left(self.conn(side).attempts) % 64;
        let conn = self.conn(side);
        let was = conn.state;
        conn.state = State::Down;
        let backoff = (BACKOFF_FIRST_MS << conn.attempts.min(16)).min(BACKOFF_MAX_MS);
        conn.deadline = now + backoff + jitter;
        conn.attempts = conn.attempts.saturating_add(1);
        let what = if was == State::Ready { "lost" } else { "failed" };
        let level = if now >= self.warn_at {
            self.warn_at = now + WARN_EVERY_MS;
            self.conn(side).warned = true;
            Level::Warn
        } else {
            Level::Debug
        };
        log!(
            level,
            "redis {}: {} connection {}: {}; retrying, publishes fail until it is back",
            self.cfg.url,
            side,
            what,
            ReasonText(reason, &self.error_text)
        );
    }
}

/// A command's arguments, gathered on the stack.
struct Args<'a> {
    items: [&'a [u8]; 20],
    len: usize,
}

impl<'a> Args<'a> {
    fn push(&mut self, arg: &'a [u8]) {
        self.items[self.len] = arg;
        self.len += 1;
    }
}

/// Queues a command on the command connection, awaiting its reply in order.
#[allow(clippy::too_many_arguments)]
fn queue(
    cmd: &mut Conn,
    pending: &mut Ring,
    max_pending: usize,
    now: u64,
    kind: Kind,
    token: u64,
    id: &[u8],
    args: &[&[u8]],
) -> Result<(), PublishError> {
    if cmd.state != State::Ready {
        return Err(PublishError::Down);
    }
    let len = resp::command_len(args);
    if len > cmd.outb.data.len() {
        return Err(PublishError::TooLarge);
    }
    // Publishes and claims stop at `max_pending`; the ring's slack is for handshakes and chores.
    let over = kind.is_publish() && pending.publishes >= max_pending;
    if over || pending.is_full() || !cmd.outb.fits(len) || !cmd.outb.push_command(args) {
        return Err(PublishError::Full);
    }
    pending.push(Pending { kind, token, sent_at: now, id_len: 0 }, id);
    Ok(())
}

/// Hands one entry read to the sink: a claim, or an event.
fn deliver(raw: &RawEntry<'_>, instance: u64, sink: &mut impl Sink) {
    let mut fields = Fields::default();
    let (mut claim, mut by) = (None, None);
    for (name, value) in raw.pairs() {
        match name {
            b"id" => fields.id = value,
            b"event" => fields.event = value,
            b"data" => fields.data = value,
            b"topic" => fields.topic = value,
            b"client" => fields.client = value,
            b"claim" => claim = Some(value),
            b"by" => by = Some(value),
            _ => {}
        }
    }
    match (claim, by.and_then(parse_holder)) {
        (Some(client), Some((inst, stream))) => {
            sink.claim(&Claim { redis_id: raw.id, client, instance: inst, stream, mine: inst == instance })
        }
        (Some(_), None) => debug!("claim entry {} without a valid holder", String::from_utf8_lossy(raw.id)),
        (None, _) => sink.entry(&Entry { redis_id: raw.id, fields }),
    }
}

/// `<instance as 16 hex digits>.<stream number>`.
fn parse_holder(holder: &[u8]) -> Option<(u64, u64)> {
    let (hex, stream) = (holder.get(..16)?, holder.get(17..)?);
    if holder[16] != b'.' || stream.is_empty() || !stream.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let instance = u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    Some((instance, std::str::from_utf8(stream).ok()?.parse().ok()?))
}

struct ReasonText<'a>(Reason, &'a ErrorText);

impl fmt::Display for ReasonText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Reason::Resolve(kind) => write!(f, "cannot resolve host ({kind})"),
            Reason::Connect(kind) => write!(f, "cannot connect ({kind})"),
            Reason::Closed => f.write_str("closed by redis"),
            Reason::Io(kind) => write!(f, "{kind}"),
            Reason::Timeout => f.write_str("no answer in time"),
            Reason::Protocol(e) => write!(f, "{e}"),
            Reason::Refused => write!(f, "refused: {}", self.1.as_str()),
            Reason::Overflow => f.write_str("reply larger than the buffer"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::redis_url::UrlError;

    #[test]
    fn urls_parse_with_defaults() {
        let u = RedisUrl::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.db, u.user.as_str(), u.has_password()),
            ("127.0.0.1", 6380, 2, "", false)
        );
        let u = RedisUrl::parse("redis://redis").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("redis", 6379, 0));
        let u = RedisUrl::parse("redis://[::1]:7000/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("::1", 7000, 0));
        assert_eq!(u.to_string(), "redis://[::1]:7000/0");
        let u = RedisUrl::parse("redis://:s3cr%40t@h:1").unwrap();
        assert_eq!((u.user.as_str(), u.password.as_str()), ("", "s3cr@t"));
        let u = RedisUrl::parse("redis://alice:p@ss/w:rd@h:1/3").unwrap();
        assert_eq!((u.user.as_str(), u.password.as_str(), u.host.as_str(), u.db), ("alice", "p@ss/w:rd", "h", 3));
    }

    #[test]
    fn bad_urls_say_why() {
        let cases = [
            ("http://h:1", UrlError::Scheme),
            ("h:6379", UrlError::Scheme),
            ("rediss://h:1", UrlError::Tls),
            ("redis://", UrlError::Host),
            ("redis://:1", UrlError::Host),
            ("redis://u:p@/0", UrlError::Host),
            ("redis://[::1", UrlError::Host),
            ("redis://h:0", UrlError::Port),
            ("redis://h:65536", UrlError::Port),
            ("redis://h:x", UrlError::Port),
            ("redis://h:", UrlError::Port),
            ("redis://[::1]x", UrlError::Port),
            ("redis://h:1/x", UrlError::Db),
            ("redis://h:1/1/2", UrlError::Db),
            ("redis://h:1/99999999999", UrlError::Db),
            ("redis://alice@h:1", UrlError::UserInfo),
            ("redis://:%zz@h:1", UrlError::UserInfo),
            ("redis://h:1/0?timeout=1", UrlError::Extra),
        ];
        for (url, want) in cases {
            assert_eq!(RedisUrl::parse(url), Err(want), "{url}");
            assert!(!want.message().is_empty());
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let u = RedisUrl::parse("redis://alice:hunter2@h:1/0").unwrap();
        let cfg = LinkConfig::new(u.clone(), 7);
        let link = Link::new(cfg.clone(), Token(1), Token(2));
        for text in [format!("{u}"), format!("{u:?}"), format!("{cfg:?}"), format!("{link:?}")] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("alice"), "{text}");
        }
        assert_eq!(u.to_string(), "redis://alice:***@h:1/0");
    }

    #[test]
    fn ids_step_back_by_one() {
        let before = |id: &[u8]| Id::before(id).map(|i| String::from_utf8(i.as_bytes().to_vec()).unwrap());
        assert_eq!(before(b"1700000000000-5").as_deref(), Some("1700000000000-4"));
        assert_eq!(before(b"1700000000000-0").as_deref(), Some("1699999999999-18446744073709551615"));
        assert_eq!(before(b"0-0").as_deref(), Some("0-0"));
        assert_eq!(before(b"12"), None);
        assert_eq!(before(b"-1"), None);
        assert_eq!(Id::from_parts(u64::MAX, u64::MAX).as_bytes().len(), MAX_REDIS_ID);
    }

    #[test]
    fn holders_round_trip() {
        let link = Link::new(LinkConfig::new(RedisUrl::parse("redis://h").unwrap(), 0xabc), Token(1), Token(2));
        let mut buf = [0u8; 40];
        let h = link.holder(42, &mut buf);
        assert_eq!(h, b"0000000000000abc.42");
        assert_eq!(parse_holder(h), Some((0xabc, 42)));
        assert_eq!(parse_holder(b"0000000000000abc-42"), None);
        assert_eq!(parse_holder(b"0000000000000abc."), None);
    }

    #[test]
    fn publishing_while_down_fails_fast() {
        let mut link = Link::new(LinkConfig::new(RedisUrl::parse("redis://h").unwrap(), 1), Token(1), Token(2));
        assert_eq!(link.publish(&Fields { data: b"x", ..Default::default() }, 1), Err(PublishError::Down));
        assert_eq!(link.stats().publish_failures, 1);
        assert_eq!(link.deadline(), 0, "a new link connects at once");
    }
}
