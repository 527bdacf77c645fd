//! Delivery to subscribers: each holds a cursor into the event log, and the fan-out pass writes
//! every subscriber that is behind, once per pass, so events published together reach each one
//! in a single writev.

pub(crate) mod writev;

pub(crate) use writev::{Sink, WriteError, write};

use crate::publish::EventLog;
use std::time::{Duration, Instant};

/// How often, per subscriber, publishes are taken while events flow: one release
/// of every waiting connection per `HOLD_PER_SUBSCRIBER` times the subscribers (0.35 ms at
/// 1,000), `MAX_HOLD` at most. Sooner, and a publisher that waits for each answer fills the
/// subscribers' socket buffers faster than they read them, so each event waits behind hundreds
/// of others. Measured (BENCHMARKS.md, 1,000 subscribers, one waiting publisher): 250 ns gave
/// 2.9 M deliveries/s at a delivery p99 of 21 ms, 350 ns 2.2 M/s at 10.4 ms, 400 ns 1.8-1.9 M/s
/// at 9.1-9.3 ms, 500 ns 1.5-1.6 M/s at 9.1-9.3 ms; no pacing 7.7 M/s at 160-180 ms. 350 ns
/// keeps three times axum's deliveries/s (0.58-0.66 M/s) with a margin on this noisy machine.
pub(crate) const HOLD_PER_SUBSCRIBER: Duration = Duration::from_nanos(350);

/// The longest a publish waits for the next release: a publisher that waits for each answer
/// is answered within about a millisecond however many subscribers.
pub(crate) const MAX_HOLD: Duration = Duration::from_millis(1);

/// What the fan-out says to the publish at the front of a connection's buffer
/// (`Pass::admits_publish`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Taken at once: nothing to pace.
    Now,
    /// A release: the requests the connection has sent by now are taken; the next one it
    /// sends waits for the next release.
    Released,
    /// It waits for the next release; the connection's turn is over.
    Held,
}

/// Where a subscriber stands in the event log, and what else it owes the wire.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Sequence number of the next event to consider.
    pub seq: u64,
    /// Bytes of that event already sent.
    pub off: u32,
    /// Bytes of a heartbeat still to send.
    pub heartbeat_left: u8,
    /// Has a client id or topics in `Filters`.
    pub filtered: bool,
    /// Its time is up (stream timeout, shutdown): end it at the next event boundary.
    pub ending: bool,
}

impl Cursor {
    /// A subscriber about to be sent events from `seq` on.
    pub fn at(seq: u64, filtered: bool) -> Cursor {
        Cursor { seq, filtered, ..Cursor::default() }
    }

    /// Between two events: nothing of an event or heartbeat is half-written.
    pub fn at_boundary(&self) -> bool {
        self.off == 0 && self.heartbeat_left == 0
    }
}

/// The fan-out pass: which events it carries and where it resumes. A pass covers the events
/// published before it began; it runs in chunks between which the loop reads and answers
/// requests, and later chunks carry events published meanwhile in the same writev.
///
/// It also paces publishers (`admits_publish`), since how fast events come is what decides how
/// long each waits before it reaches every subscriber.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Pass {
    /// `log.next_seq()` when the last (or current) pass began.
    began_at: u64,
    /// The slot the current pass resumes at, if one is under way.
    resume_at: Option<usize>,
    /// A subscriber that owes events can be written again: a pass is due even without news.
    sweep: bool,
    /// The time between two releases of waiting publishers, for the subscribers there are.
    hold: Duration,
    /// When the last release began, and whether this loop turn is it.
    released_at: Option<Instant>,
    releasing: bool,
    /// A publish waits for the next release.
    holding: bool,
}

impl Pass {
    pub fn new(log: &EventLog) -> Pass {
        Pass {
            began_at: log.next_seq(),
            resume_at: None,
            sweep: false,
            hold: Duration::ZERO,
            released_at: None,
            releasing: false,
            holding: false,
        }
    }

    /// Work is waiting: a pass under way, events published since the last one began, or a
    /// subscriber that came writable.
    pub fn is_due(&self, log: &EventLog) -> bool {
        self.resume_at.is_some() || log.next_seq() != self.began_at || self.sweep
    }

    /// A subscriber that owes events can be written again (its socket drained): the pass
    /// under way, or the next one, writes it with the others, so the loop turn that saw it
    /// writable stays short however many came writable at once.
    pub fn sweep(&mut self) {
        self.sweep = true;
    }

    /// The slot to start (or resume) at, if a pass is due; starting one records what it
    /// carries, and the release interval for `subscribers`.
    pub fn start(&mut self, log: &EventLog, subscribers: usize) -> Option<usize> {
        match self.resume_at {
            Some(at) => Some(at),
            None if !self.is_due(log) => None,
            None => {
                self.sweep = false;
                self.began_at = log.next_seq();
                self.hold = (HOLD_PER_SUBSCRIBER * subscribers.min(u32::MAX as usize) as u32).min(MAX_HOLD);
                Some(0)
            }
        }
    }

    /// The pass stopped before `slot` to let the loop run; it resumes there.
    pub fn pause(&mut self, slot: usize) {
        self.resume_at = Some(slot);
    }

    /// Every subscriber was visited.
    pub fn finish(&mut self) {
        self.resume_at = None;
    }

    /// Whether the publish at the front of a connection's buffer is taken now.
    ///
    /// Publishes are taken in releases, at most one per `hold` (`HOLD_PER_SUBSCRIBER` times the
    /// subscribers, `MAX_HOLD` at most): in a release every connection waiting gets its turn
    /// with the requests it has sent by then (`Admit::Released`), and a publish that comes
    /// sooner after one waits for the next (`end_turn` closes a release). So a publisher that
    /// waits for each answer adds an event at most once per hold, K of them K events, a
    /// pipelining one its whole window; one that publishes now and then is taken at once.
    /// The queue then stays in the publishers' sockets instead of in the subscribers'
    /// (hundreds of kilobytes each, seconds of delay). While a pass is under way and half
    /// the ring ahead of it, nothing is taken until it ends: a subscriber the pass has yet
    /// to reach holds events from before the previous pass began, and more could overrun it.
    /// Publishers feel all this as TCP backpressure; no subscriber is dropped for it.
    pub fn admits_publish(&mut self, log: &EventLog, now: Instant) -> Admit {
        if self.resume_at.is_some() && (log.next_seq() - self.began_at) as usize >= log.capacity() / 2 {
            self.holding = true;
            return Admit::Held;
        }
        if self.hold.is_zero() {
            return Admit::Now;
        }
        if !self.releasing && self.released_at.is_none_or(|at| now.duration_since(at) >= self.hold) {
            self.released_at = Some(now);
            self.releasing = true;
        }
        if self.releasing {
            return Admit::Released;
        }
        self.holding = true;
        Admit::Held
    }

    /// How long until the next release, if a publish waits for one (the loop sleeps no longer
    /// than this, and stops a pass for it).
    pub fn hold_left(&self, now: Instant) -> Option<Duration> {
        if !self.holding {
            return None;
        }
        Some(self.released_at.map_or(Duration::ZERO, |at| self.hold.saturating_sub(now.duration_since(at))))
    }

    /// A publish waiting for the next release may be taken now.
    pub fn hold_is_over(&self, now: Instant) -> bool {
        self.hold_left(now) == Some(Duration::ZERO)
    }

    /// A loop turn begins: the connections held get their turn in it (and say again if they
    /// are still held).
    pub fn begin_turn(&mut self) {
        self.holding = false;
    }

    /// Every connection had its turn: a release ends, and the publishes held wait for the next.
    pub fn end_turn(&mut self) {
        self.releasing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Fields;
    use crate::publish::event_log::RunTag;

    fn publish(log: &mut EventLog, n: usize) {
        for _ in 0..n {
            log.push(&Fields { data: b"x", ..Default::default() }).unwrap();
        }
    }

    /// A log of 256 events (and its slack), and a pass under way over 1,000 subscribers that
    /// began at the log's head; the interval between releases, and half the ring.
    fn under_way() -> (EventLog, Pass, Duration, usize) {
        let mut log = EventLog::new(256, 1 << 20, 1, RunTag::random());
        let mut pass = Pass::new(&log);
        publish(&mut log, 1);
        assert_eq!(pass.start(&log, 1000), Some(0));
        pass.pause(10);
        let half = log.capacity() / 2;
        (log, pass, HOLD_PER_SUBSCRIBER * 1000, half)
    }

    #[test]
    fn with_no_subscribers_yet_every_publish_is_taken() {
        let mut log = EventLog::new(256, 1 << 20, 1, RunTag::random());
        let mut pass = Pass::new(&log);
        publish(&mut log, 200);
        assert_eq!(pass.admits_publish(&log, Instant::now()), Admit::Now);
        assert_eq!(pass.hold_left(Instant::now()), None);
    }

    #[test]
    fn the_hold_grows_with_the_subscribers_up_to_max_hold() {
        let log = EventLog::new(256, 1 << 20, 1, RunTag::random());
        let mut pass = Pass::new(&log);
        pass.sweep();
        pass.start(&log, 10);
        assert_eq!(pass.hold, HOLD_PER_SUBSCRIBER * 10);
        pass.finish();
        pass.sweep();
        pass.start(&log, 1_000_000);
        assert_eq!(pass.hold, MAX_HOLD);
    }

    #[test]
    fn publishes_are_taken_in_releases_one_per_hold() {
        let (mut log, mut pass, hold, _) = under_way();
        let t0 = Instant::now();
        // A publish after a quiet spell starts a release at once; every connection waiting
        // gets its turn in it.
        pass.begin_turn();
        for _ in 0..4 {
            assert_eq!(pass.admits_publish(&log, t0), Admit::Released);
            publish(&mut log, 1);
        }
        assert_eq!(pass.hold_left(t0), None, "nobody waits");
        pass.end_turn();
        // The next publish, sooner than the hold, waits for the next release.
        pass.begin_turn();
        let t1 = t0 + hold / 4;
        assert_eq!(pass.admits_publish(&log, t1), Admit::Held);
        assert_eq!(pass.hold_left(t1), Some(hold - hold / 4));
        assert!(!pass.hold_is_over(t1));
        assert!(pass.hold_is_over(t0 + hold));
        pass.end_turn();
        pass.begin_turn();
        assert_eq!(pass.admits_publish(&log, t0 + hold), Admit::Released);
        pass.end_turn();
        // Between passes too: the pace holds while events flow.
        pass.finish();
        pass.begin_turn();
        assert_eq!(pass.admits_publish(&log, t0 + hold + hold / 2), Admit::Held);
        assert_eq!(pass.admits_publish(&log, t0 + hold * 2), Admit::Released);
    }

    #[test]
    fn at_half_the_ring_nothing_is_taken_until_the_pass_ends() {
        let (mut log, mut pass, hold, half) = under_way();
        let t0 = Instant::now();
        publish(&mut log, half);
        pass.begin_turn();
        assert_eq!(pass.admits_publish(&log, t0), Admit::Held);
        assert_eq!(pass.admits_publish(&log, t0 + hold * 100), Admit::Held);
        pass.finish();
        assert_eq!(pass.admits_publish(&log, t0 + hold * 100), Admit::Released);
    }

    #[test]
    fn a_writable_subscriber_makes_a_pass_due_without_news() {
        let log = EventLog::new(256, 1 << 20, 1, RunTag::random());
        let mut pass = Pass::new(&log);
        assert!(!pass.is_due(&log));
        assert_eq!(pass.start(&log, 10), None);
        pass.sweep();
        assert!(pass.is_due(&log));
        assert_eq!(pass.start(&log, 10), Some(0));
        pass.finish();
        assert!(!pass.is_due(&log), "one sweep, one pass");
    }
}
