//! Delivery to subscribers: each holds a cursor into the event log, and the fan-out pass writes
//! every subscriber that is behind, once per pass, so events published together reach each one
//! in a single writev. The pass owns the publishers' pace (`pace`).

pub(crate) mod pace;
pub(crate) mod writev;

pub(crate) use pace::{Admit, Pace};
pub(crate) use writev::{Sink, WriteError, write};

use crate::publish::EventLog;
use std::time::Instant;

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
/// It owns the publishers' `Pace`: how fast events come decides how long each waits before it
/// reaches every subscriber.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Pass {
    /// `log.next_seq()` when the last (or current) pass began.
    began_at: u64,
    /// The slot the current pass resumes at, if one is under way.
    resume_at: Option<usize>,
    /// A subscriber that owes events can be written again: a pass is due even without news.
    sweep: bool,
    /// When publishes are taken.
    pub pace: Pace,
}

impl Pass {
    pub fn new(log: &EventLog) -> Pass {
        Pass { began_at: log.next_seq(), resume_at: None, sweep: false, pace: Pace::new() }
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
    /// carries, and sets the pace for `subscribers`.
    pub fn start(&mut self, log: &EventLog, subscribers: usize) -> Option<usize> {
        match self.resume_at {
            Some(at) => Some(at),
            None if !self.is_due(log) => None,
            None => {
                self.sweep = false;
                self.began_at = log.next_seq();
                self.pace.set_subscribers(subscribers);
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

    /// Whether the publish at the front of a connection's buffer is taken now: as the `Pace`
    /// says, except that while a pass is under way and half the ring ahead of it nothing is
    /// taken until it ends: a subscriber the pass has yet to reach holds events from before the
    /// previous pass began, and more could overrun it. Publishers feel it as TCP backpressure;
    /// no subscriber is dropped for it.
    pub fn admits_publish(&mut self, log: &EventLog, now: Instant) -> Admit {
        if self.resume_at.is_some() && (log.next_seq() - self.began_at) as usize >= log.capacity() / 2 {
            return self.pace.hold_for_pass();
        }
        self.pace.admit(now)
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

    #[test]
    fn at_half_the_ring_nothing_is_taken_until_the_pass_ends() {
        let mut log = EventLog::new(256, 1 << 20, 1, RunTag::random());
        let mut pass = Pass::new(&log);
        publish(&mut log, 1);
        assert_eq!(pass.start(&log, 1000), Some(0));
        pass.pause(10);
        let t0 = Instant::now();
        pass.pace.begin_turn();
        assert_eq!(pass.admits_publish(&log, t0), Admit::Released, "a publish after a quiet spell");
        let half = log.capacity() / 2;
        publish(&mut log, half);
        pass.pace.end_turn();
        pass.pace.begin_turn();
        let much_later = t0 + std::time::Duration::from_secs(1);
        assert_eq!(pass.admits_publish(&log, much_later), Admit::Held);
        assert!(pass.pace.hold_is_over(much_later), "the loop looks again at once");
        pass.finish();
        assert_eq!(pass.admits_publish(&log, much_later), Admit::Released);
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
