//! Delivery to subscribers: each holds a cursor into the event log, and the fan-out pass writes
//! every subscriber that is behind, once per pass, so events published together reach each one
//! in a single writev.

pub(crate) mod writev;

pub(crate) use writev::{Sink, WriteError, write};

use crate::publish::EventLog;
use std::time::{Duration, Instant};

/// The longest one publish waits for a busy fan-out pass before it is taken anyway and rides
/// in the rest of that pass. A pass over 10,000 subscribers takes tens of milliseconds here; a
/// publisher that waits for each answer is then held about a millisecond, not the whole pass.
pub(crate) const MAX_HOLD: Duration = Duration::from_millis(1);

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
#[derive(Copy, Clone, Debug)]
pub(crate) struct Pass {
    /// `log.next_seq()` when the last (or current) pass began.
    began_at: u64,
    /// The slot the current pass resumes at, if one is under way.
    resume_at: Option<usize>,
    /// Since when a publish has been held back by the pass under way, if one is.
    held_since: Option<Instant>,
}

impl Pass {
    pub fn new(log: &EventLog) -> Pass {
        Pass { began_at: log.next_seq(), resume_at: None, held_since: None }
    }

    /// Work is waiting: a pass under way, or events published since the last one began.
    pub fn is_due(&self, log: &EventLog) -> bool {
        self.resume_at.is_some() || log.next_seq() != self.began_at
    }

    /// The slot to start (or resume) at, if a pass is due; starting one records what it carries.
    pub fn start(&mut self, log: &EventLog) -> Option<usize> {
        match self.resume_at {
            Some(at) => Some(at),
            None if log.next_seq() == self.began_at => None,
            None => {
                self.began_at = log.next_seq();
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
        self.held_since = None;
    }

    /// Whether a publisher may add another event now (`now`: read by the caller when asking).
    /// While a pass is under way, an eighth of the ring's slots in new events (16 at least) are
    /// taken at once: they ride in the rest of the pass, and the pass (not the subscribers)
    /// sets the pace. Beyond that a publish waits for the pass to end, but one publish per
    /// `MAX_HOLD` is taken anyway, so a publisher is answered promptly however long the pass
    /// (before: held for the whole pass, 40-70 ms at the p99 of the round trip at 10,000
    /// subscribers; now 6-8 ms). At half the ring nothing is taken until the pass ends: a
    /// subscriber the pass has yet to reach holds events from before the previous pass
    /// began, and taking more could overrun it. The publisher feels all this as TCP
    /// backpressure; no subscriber is dropped for it.
    pub fn admits_publish(&mut self, log: &EventLog, now: Instant) -> bool {
        if self.resume_at.is_none() {
            return true;
        }
        let ahead = (log.next_seq() - self.began_at) as usize;
        if ahead >= log.capacity() / 2 {
            return false;
        }
        if ahead < (log.capacity() / 8).max(16) {
            self.held_since = None;
            return true;
        }
        match self.held_since {
            Some(since) if now.duration_since(since) >= MAX_HOLD => {
                self.held_since = None;
                true
            }
            Some(_) => false,
            None => {
                self.held_since = Some(now);
                false
            }
        }
    }

    /// A publish held back by the pass may be taken now: the loop stops the pass to take it.
    pub fn hold_is_over(&self, now: Instant) -> bool {
        self.held_since.is_some_and(|since| now.duration_since(since) >= MAX_HOLD)
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

    /// A log of 256 events (and its slack) with a pass under way that began at its head; the
    /// events taken at once, and the half of the ring.
    fn under_way() -> (EventLog, Pass, usize, usize) {
        let mut log = EventLog::new(256, 1 << 20, 1, RunTag::random());
        let mut pass = Pass::new(&log);
        publish(&mut log, 1);
        assert_eq!(pass.start(&log), Some(0));
        pass.pause(10);
        let cap = log.capacity();
        (log, pass, (cap / 8).max(16), cap / 2)
    }

    #[test]
    fn without_a_pass_every_publish_is_taken() {
        let mut log = EventLog::new(256, 1 << 20, 1, RunTag::random());
        let mut pass = Pass::new(&log);
        publish(&mut log, 200);
        assert!(pass.admits_publish(&log, Instant::now()));
    }

    #[test]
    fn an_eighth_of_the_ring_rides_in_the_pass_under_way() {
        let (mut log, mut pass, pace, _) = under_way();
        let now = Instant::now();
        publish(&mut log, pace - 1);
        assert!(pass.admits_publish(&log, now));
        publish(&mut log, 1);
        assert!(!pass.admits_publish(&log, now), "one more waits");
        assert!(!pass.hold_is_over(now));
    }

    #[test]
    fn a_held_publish_is_taken_after_the_hold_one_at_a_time() {
        let (mut log, mut pass, pace, _) = under_way();
        let t0 = Instant::now();
        publish(&mut log, pace + 1);
        assert!(!pass.admits_publish(&log, t0));
        assert!(!pass.admits_publish(&log, t0 + MAX_HOLD / 2));
        assert!(pass.hold_is_over(t0 + MAX_HOLD));
        assert!(pass.admits_publish(&log, t0 + MAX_HOLD));
        publish(&mut log, 1);
        // The next one starts a hold of its own.
        assert!(!pass.admits_publish(&log, t0 + MAX_HOLD));
        assert!(pass.admits_publish(&log, t0 + MAX_HOLD * 2));
    }

    #[test]
    fn at_half_the_ring_nothing_is_taken_until_the_pass_ends() {
        let (mut log, mut pass, _, half) = under_way();
        let t0 = Instant::now();
        publish(&mut log, half);
        assert!(!pass.admits_publish(&log, t0));
        assert!(!pass.admits_publish(&log, t0 + MAX_HOLD * 100));
        pass.finish();
        assert!(pass.admits_publish(&log, t0));
        assert!(!pass.hold_is_over(t0 + MAX_HOLD * 100), "the end of the pass ends the hold");
    }
}
