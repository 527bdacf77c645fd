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
//!
//! Here: what the link hands out (entries, claims, acknowledgements, errors, stats) and the
//! link's entry points. `config` holds its settings, `conn` one connection and its buffers,
//! `driver` the connections' states (connect, handshake, read, close, back off), `command`
//! XADD, the scripts and presence with their replies, `reader` the history and XREAD replies
//! parsed into entries, `resp` the protocol, `node` the server's side of cluster mode.

mod command;
mod config;
mod conn;
mod driver;
pub(crate) mod node;
mod reader;
mod resp;

pub(crate) use crate::limits::Fields;
use command::{Keys, Ring};
pub use config::LinkConfig;
use conn::{Conn, State};
use driver::{ErrorText, Reason, Side};
use mio::{Registry, Token};
use reader::{Id, Reading};
use std::fmt;

pub use crate::config::redis_url::RedisUrl;
pub(crate) use crate::config::{DEFAULT_MAXLEN, DEFAULT_STREAM};

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
}
