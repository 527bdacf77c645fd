//! One connection's state machine.
//!
//! ```text
//!  accept ─► Waiting ─(buffer free)─► Request ─┬─(GET /events)──► Stream ─┐
//!               ▲                              ├─(GET /stream)──► Text ───┤
//!               └──(bytes)── Idle ◄─(answered)─┤                          │
//!                                              └─(close/error)──► Linger ◄┘ ─► closed
//! ```
//! Only `Request` and `Text` hold a request buffer (a `Stream` holds one until its response head
//! is written).
//! `Conn` holds only what every connection needs (about 64 bytes); request bytes live in a pool
//! buffer while a request is in flight, subscriber routing in `Filters`, events in the event log.

use crate::pool::BufId;
use crate::time::Millis;
use mio::net::TcpStream;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Accepted, or sent bytes while idle; waiting for a request buffer.
    Waiting,
    /// Keep-alive: a response was sent and no byte of the next request has arrived.
    Idle,
    /// Reading a request or writing its response.
    Request,
    /// An SSE subscriber, written from the event log.
    Stream,
    /// A request-scoped stream (/stream): frames produced over time from its buffer.
    Text,
    /// Response done and write side shut; reading to EOF so the peer gets our last bytes
    /// rather than a reset, then closing.
    Linger,
}

/// How long a lingering close waits for the peer's EOF.
pub const LINGER: Millis = Millis(2000);

pub struct Conn {
    pub sock: TcpStream,
    state: State,
    /// The request buffer lent to this connection, if any.
    pub buf: Option<BufId>,
    /// Stream: sequence number of the next event to consider, and bytes of it already sent.
    pub cursor: u64,
    pub cursor_off: u32,
    /// Stream: bytes of a heartbeat still to send.
    pub heartbeat_left: u8,
    /// Stream: has a client id or topics in `Filters`.
    pub filtered: bool,
    /// Stream: the stream timeout passed; end it at the next event boundary.
    pub ending: bool,
    /// The last write hit WouldBlock; wait for a writable event.
    pub write_blocked: bool,
    /// The peer's address is loopback (it may publish without a token).
    pub loopback: bool,
    /// In the server's queue of connections whose turn ended with requests left.
    pub queued: bool,
    /// When the current state (or request) began.
    pub since: Millis,
    /// When bytes were last written (heartbeat timing), or, for Text, when the next frame is due.
    pub last_write: Millis,
}

/// Timeouts a connection's deadline depends on.
#[derive(Copy, Clone, Debug)]
pub struct Timeouts {
    pub head: Millis,
    pub keepalive: Millis,
    /// `NEVER` when heartbeats are off.
    pub heartbeat: Millis,
    /// `NEVER` when streams never time out.
    pub stream: Millis,
}

impl Conn {
    pub fn new(sock: TcpStream, now: Millis) -> Conn {
        Conn {
            sock,
            state: State::Waiting,
            buf: None,
            cursor: 0,
            cursor_off: 0,
            heartbeat_left: 0,
            filtered: false,
            ending: false,
            write_blocked: false,
            loopback: false,
            queued: false,
            since: now,
            last_write: now,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The one place a connection changes state; restarts the state's clock.
    pub fn set_state(&mut self, state: State, now: Millis) {
        log::trace!("conn {:?} -> {:?}", self.state, state);
        self.state = state;
        self.since = now;
        self.last_write = now;
    }

    /// When the loop must next look at this connection, from its state and timeouts.
    pub fn deadline(&self, t: &Timeouts) -> Millis {
        match self.state {
            State::Waiting | State::Request => self.since.after(t.head),
            State::Idle => self.since.after(t.keepalive),
            State::Stream if self.ending => Millis::NEVER,
            State::Stream => {
                // A blocked stream is not silent, just slow: no heartbeat until it drains.
                let heartbeat = if self.write_blocked { Millis::NEVER } else { t.heartbeat };
                self.last_write.after(heartbeat).ceil_to_second().min(self.since.after(t.stream))
            }
            State::Text if self.write_blocked => Millis::NEVER,
            State::Text => self.last_write,
            State::Linger => self.since.after(LINGER),
        }
    }

    /// The stream is between two events: nothing of an event or heartbeat is half-written.
    pub fn at_boundary(&self) -> bool {
        self.cursor_off == 0 && self.heartbeat_left == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected socket for a `Conn`; the deadlines under test never touch it.
    fn conn(now: Millis) -> (Conn, std::net::TcpListener) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (Conn::new(TcpStream::from_std(sock), now), listener)
    }

    const T: Timeouts =
        Timeouts { head: Millis(20_000), keepalive: Millis(30_000), heartbeat: Millis(15_000), stream: Millis::NEVER };

    #[test]
    fn small_enough_for_ten_thousand_subscribers() {
        assert!(std::mem::size_of::<Conn>() <= 64, "{}", std::mem::size_of::<Conn>());
    }

    #[test]
    fn deadlines_follow_state_with_fake_time() {
        let (mut c, _l) = conn(Millis(1_000));
        assert_eq!(c.deadline(&T), Millis(21_000));
        c.set_state(State::Idle, Millis(5_000));
        assert_eq!(c.deadline(&T), Millis(35_000));
        c.set_state(State::Stream, Millis(5_500));
        // Heartbeats round up to whole seconds so that many streams share one wakeup.
        assert_eq!(c.deadline(&T), Millis(21_000));
        c.last_write = Millis(7_200);
        assert_eq!(c.deadline(&T), Millis(23_000));
        let t = Timeouts { stream: Millis(10_000), ..T };
        assert_eq!(c.deadline(&t), Millis(15_500));
        c.ending = true;
        assert_eq!(c.deadline(&t), Millis::NEVER);
        c.set_state(State::Linger, Millis(9_000));
        assert_eq!(c.deadline(&T), Millis(9_000).after(LINGER));
        let off = Timeouts { heartbeat: Millis::NEVER, ..T };
        c.set_state(State::Stream, Millis(1));
        assert_eq!(c.deadline(&off), Millis::NEVER);
    }
}
