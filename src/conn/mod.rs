//! Connections: each one's state machine (this file), the table that owns them all and makes
//! every transition (`table`), their socket I/O (`io`), and what each state does: reading and
//! answering requests (`request`), streaming events (`subscriber`), streaming text (`text`).
//!
//! ```text
//!  accept ─► Waiting ─(buffer free)─► Request ─┬─(GET /events)──► Subscriber ─┐
//!               ▲                              ├─(GET /stream, host)──► Text ─┤
//!               └──(bytes)── Idle ◄─(answered)─┤                              │
//!                                              └─(close/error)──► Linger ◄────┘ ─► closed
//! ```
//! Only `Request` and `Text` hold a request buffer (a `Subscriber` holds one until its response
//! head is written). `Conn` holds only what every connection needs (56 bytes); request bytes
//! live in a pool buffer while a request is in flight, subscriber routing in `Filters`, events in
//! the event log.

#[cfg(feature = "cluster")]
mod cluster;
mod io;
mod lobby;
mod request;
mod subscriber;
mod table;
mod text;

#[cfg(feature = "cluster")]
pub(crate) use cluster::Answer;
pub(crate) use lobby::Lobby;
pub(crate) use table::{Conns, Ctx};

use crate::deliver::Cursor;
use crate::mem::{BufId, Key};
use crate::time::Millis;
use mio::net::TcpStream;

/// What a connection is doing.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Accepted, or sent bytes while idle; waiting for a request buffer.
    Waiting,
    /// Keep-alive: a response was sent and no byte of the next request has arrived.
    Idle,
    /// Reading a request or writing its response.
    Request,
    /// A subscriber stream: events written from the event log.
    Subscriber,
    /// A text stream: the /stream demo, or a host stream fed by the host program; frames are
    /// produced over time into its buffer.
    Text,
    /// Response done and write side shut; reading to EOF so the peer gets our last bytes
    /// rather than a reset, then closing.
    Linger,
}

/// How long a lingering close waits for the peer's EOF.
pub(crate) const LINGER: Millis = Millis(2000);

/// Why a connection was closed (logged at debug level).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Close {
    /// Its response was sent and nothing more was unread.
    Done,
    PeerClosed,
    ClosedMidRequest,
    ReadFailed,
    WriteFailed,
    HeadTimeout,
    KeepAliveTimeout,
    LingerDone,
    /// A subscriber fell more than the event log behind.
    TooSlow,
    /// A text stream's client read too slowly for its output buffer.
    OutputFull,
    ServerStopping,
    /// Idle, closed to make room for a new connection on a full server.
    Evicted,
    /// Could not be registered with the poller.
    NotRegistered,
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Close::Done => "done",
            Close::PeerClosed => "closed by peer",
            Close::ClosedMidRequest => "closed mid-request",
            Close::ReadFailed => "read failed",
            Close::WriteFailed => "write failed",
            Close::HeadTimeout => "head timeout",
            Close::KeepAliveTimeout => "keep-alive timeout",
            Close::LingerDone => "linger done",
            Close::TooSlow => "too slow",
            Close::OutputFull => "stream output full",
            Close::ServerStopping => "server stopping",
            Close::Evicted => "idle, closed to make room",
            Close::NotRegistered => "cannot register",
        })
    }
}

/// One connection.
pub(crate) struct Conn {
    sock: TcpStream,
    state: State,
    /// The request buffer lent to this connection, if any.
    buf: Option<BufId>,
    /// Subscriber: where it stands in the event log.
    cursor: Cursor,
    /// The last write hit WouldBlock; wait for a writable event.
    write_blocked: bool,
    /// The peer's address is loopback (it may publish without a token).
    loopback: bool,
    /// Which of the table's queues holds it, if one does (each holds a connection at most once).
    queued: Queued,
    /// No request has been answered yet: silence is a head timeout, not a keep-alive one.
    fresh: bool,
    /// When the current state (or request) began.
    since: Millis,
    /// Subscriber: when bytes were last written (heartbeats are due after silence).
    last_write: Millis,
    /// Text: when the next /stream frame is due (`NEVER` for host streams, fed by the host).
    next_frame: Millis,
}

/// The table's queues a connection can wait in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Queued {
    No,
    /// Its turn ended with requests left (`Conns::ready`).
    Ready,
    /// Its answer waits for the turn's write to the history file (`Conns::after_journal`).
    Journal,
    /// Cluster mode: its answer waits for Redis (in no queue: the link's outcome finds it by
    /// slot and generation).
    #[cfg(feature = "cluster")]
    Redis,
}

/// Timeouts a connection's deadline depends on.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Timeouts {
    pub head: Millis,
    pub keepalive: Millis,
    /// `NEVER` when heartbeats are off.
    pub heartbeat: Millis,
    /// `NEVER` when streams never time out.
    pub stream: Millis,
}

impl Conn {
    fn new(sock: TcpStream, loopback: bool, now: Millis) -> Conn {
        Conn {
            sock,
            state: State::Waiting,
            buf: None,
            cursor: Cursor::default(),
            write_blocked: false,
            loopback,
            queued: Queued::No,
            fresh: true,
            since: now,
            last_write: now,
            next_frame: Millis::NEVER,
        }
    }

    /// The one place a connection changes state; its clock (head, keep-alive and stream
    /// timeouts) runs from `since`. Called only by `Conns::set_state`, which also keeps the
    /// counts by state.
    fn set_state(&mut self, state: State, since: Millis) {
        log::trace!("conn {:?} -> {:?}", self.state, state);
        self.state = state;
        self.since = since;
        self.last_write = since;
    }

    /// When the loop must next look at this connection, from its state and timeouts.
    fn deadline(&self, t: &Timeouts) -> Millis {
        match self.state {
            State::Waiting | State::Request => self.since.after(t.head),
            State::Idle if self.fresh => self.since.after(t.head),
            State::Idle => self.since.after(t.keepalive),
            State::Subscriber if self.cursor.ending => Millis::NEVER,
            State::Subscriber => {
                // A blocked stream is not silent, just slow: no heartbeat until it drains.
                let heartbeat = if self.write_blocked { Millis::NEVER } else { t.heartbeat };
                self.last_write.after(heartbeat).ceil_to_second().min(self.since.after(t.stream))
            }
            State::Text if self.write_blocked => Millis::NEVER,
            State::Text => self.next_frame,
            State::Linger => self.since.after(LINGER),
        }
    }

    /// Idle in the sense of eviction: silent since accept, or between keep-alive requests.
    fn is_idle(&self) -> bool {
        self.state == State::Idle
    }
}

/// Names a connection in log lines: its slot, and its peer while the socket still knows it.
struct Peer<'a>(&'a Conn, Key);

impl std::fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.sock.peer_addr() {
            Ok(addr) => write!(f, "#{} {addr}", self.1.index),
            Err(_) => write!(f, "#{}", self.1.index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected socket for a `Conn`; the deadlines under test never touch it.
    fn conn(now: Millis) -> (Conn, std::net::TcpListener) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (Conn::new(TcpStream::from_std(sock), true, now), listener)
    }

    const T: Timeouts =
        Timeouts { head: Millis(20_000), keepalive: Millis(30_000), heartbeat: Millis(15_000), stream: Millis::NEVER };

    #[test]
    fn small_enough_for_ten_thousand_subscribers() {
        // Debug builds of mio add a selector id to each socket; count the descriptor alone.
        let sock_extra = std::mem::size_of::<TcpStream>() - std::mem::size_of::<std::os::fd::RawFd>();
        let size = std::mem::size_of::<Conn>() - sock_extra;
        assert!(size <= 64, "{size}");
    }

    #[test]
    fn deadlines_follow_state_with_fake_time() {
        let (mut c, _l) = conn(Millis(1_000));
        assert_eq!(c.deadline(&T), Millis(21_000));
        c.set_state(State::Idle, Millis(1_000));
        assert_eq!(c.deadline(&T), Millis(21_000), "silent since accept: the head timeout");
        c.fresh = false;
        c.set_state(State::Idle, Millis(5_000));
        assert_eq!(c.deadline(&T), Millis(35_000));
        c.set_state(State::Subscriber, Millis(5_500));
        // Heartbeats round up to whole seconds so that many streams share one wakeup.
        assert_eq!(c.deadline(&T), Millis(21_000));
        c.last_write = Millis(7_200);
        assert_eq!(c.deadline(&T), Millis(23_000));
        let t = Timeouts { stream: Millis(10_000), ..T };
        assert_eq!(c.deadline(&t), Millis(15_500));
        c.cursor.ending = true;
        assert_eq!(c.deadline(&t), Millis::NEVER);
        c.set_state(State::Linger, Millis(9_000));
        assert_eq!(c.deadline(&T), Millis(9_000).after(LINGER));
        let off = Timeouts { heartbeat: Millis::NEVER, ..T };
        c.cursor.ending = false;
        c.set_state(State::Subscriber, Millis(1));
        assert_eq!(c.deadline(&off), Millis::NEVER);
        c.set_state(State::Text, Millis(2));
        c.next_frame = Millis(2_100);
        assert_eq!(c.deadline(&T), Millis(2_100));
    }
}
