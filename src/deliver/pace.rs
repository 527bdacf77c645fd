//! The publishers' pace: while events flow, publishes are taken in releases, so publishers
//! that outrun what the subscribers read wait in their own sockets, not in every subscriber's.

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

/// What the pace says to the publish at the front of a connection's buffer
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

/// When publishes are taken: in releases, at most one per `hold` (`HOLD_PER_SUBSCRIBER` times
/// the subscribers, `MAX_HOLD` at most). In a release every connection waiting gets its turn
/// with the requests it has sent by then (`Admit::Released`); a publish that comes sooner after
/// one waits for the next (`end_turn` closes a release). So a publisher that waits for each
/// answer adds an event at most once per hold, K of them K events, a pipelining one its whole
/// window; one that publishes now and then is taken at once. The queue then stays in the
/// publishers' sockets instead of in the subscribers' (hundreds of kilobytes each, a queue of
/// seconds). Time is passed in, so tests set it by hand.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Pace {
    /// The time between two releases, for the subscribers there are.
    hold: Duration,
    /// When the last release began, and whether this loop turn is it.
    released_at: Option<Instant>,
    releasing: bool,
    /// A publish waits for the next release.
    holding: bool,
}

impl Pace {
    pub fn new() -> Pace {
        Pace { hold: Duration::ZERO, released_at: None, releasing: false, holding: false }
    }

    /// Events now go to `subscribers`: the hold follows.
    pub fn set_subscribers(&mut self, subscribers: usize) {
        self.hold = (HOLD_PER_SUBSCRIBER * subscribers.min(u32::MAX as usize) as u32).min(MAX_HOLD);
    }

    /// Whether a publish is taken at `now`.
    pub fn admit(&mut self, now: Instant) -> Admit {
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

    /// A publish waits for something other than the pace (the pass): it counts as held, and
    /// the loop looks again at the next release.
    pub fn hold_for_pass(&mut self) -> Admit {
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

    /// A pace for 1,000 subscribers and its hold.
    fn for_a_thousand() -> (Pace, Duration) {
        let mut pace = Pace::new();
        pace.set_subscribers(1000);
        (pace, HOLD_PER_SUBSCRIBER * 1000)
    }

    #[test]
    fn with_no_subscribers_every_publish_is_taken() {
        let mut pace = Pace::new();
        assert_eq!(pace.admit(Instant::now()), Admit::Now);
        pace.set_subscribers(0);
        assert_eq!(pace.admit(Instant::now()), Admit::Now);
        assert_eq!(pace.hold_left(Instant::now()), None);
    }

    #[test]
    fn the_hold_grows_with_the_subscribers_up_to_max_hold() {
        let mut pace = Pace::new();
        pace.set_subscribers(10);
        assert_eq!(pace.hold, HOLD_PER_SUBSCRIBER * 10);
        pace.set_subscribers(1_000_000);
        assert_eq!(pace.hold, MAX_HOLD);
    }

    #[test]
    fn publishes_are_taken_in_releases_one_per_hold() {
        let (mut pace, hold) = for_a_thousand();
        let t0 = Instant::now();
        // A publish after a quiet spell starts a release at once; every connection waiting
        // gets its turn in it.
        pace.begin_turn();
        for _ in 0..4 {
            assert_eq!(pace.admit(t0), Admit::Released);
        }
        assert_eq!(pace.hold_left(t0), None, "nobody waits");
        pace.end_turn();
        // The next publish, sooner than the hold, waits for the next release.
        pace.begin_turn();
        let t1 = t0 + hold / 4;
        assert_eq!(pace.admit(t1), Admit::Held);
        assert_eq!(pace.hold_left(t1), Some(hold - hold / 4));
        assert!(!pace.hold_is_over(t1));
        assert!(pace.hold_is_over(t0 + hold));
        pace.end_turn();
        pace.begin_turn();
        assert_eq!(pace.admit(t0 + hold), Admit::Released);
        pace.end_turn();
        pace.begin_turn();
        assert_eq!(pace.admit(t0 + hold + hold / 2), Admit::Held);
        assert_eq!(pace.admit(t0 + hold * 2), Admit::Released, "once the hold is over");
    }

    #[test]
    fn a_turn_without_holds_clears_the_wait() {
        let (mut pace, hold) = for_a_thousand();
        let t0 = Instant::now();
        pace.begin_turn();
        assert_eq!(pace.admit(t0), Admit::Released);
        pace.end_turn();
        pace.begin_turn();
        assert_eq!(pace.admit(t0), Admit::Held);
        assert!(pace.hold_left(t0).is_some());
        pace.begin_turn();
        assert_eq!(pace.hold_left(t0 + hold), None, "nobody said it still waits");
    }
}
