//! Time as the event loop sees it.
//!
//! Every function that acts on deadlines takes the current time as a value, so the loop reads the
//! clock once per iteration and tests can drive time by hand (as smoltcp does with `Instant`).

use std::time::Duration;

/// Milliseconds since the server started. `Millis::NEVER` is a deadline that never fires.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Default, Hash)]
pub(crate) struct Millis(pub u64);

impl Millis {
    pub const ZERO: Millis = Millis(0);
    pub const NEVER: Millis = Millis(u64::MAX);

    pub fn from_secs(secs: u64) -> Millis {
        Millis(secs.saturating_mul(1000))
    }

    pub fn from_duration(d: Duration) -> Millis {
        Millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// `self + d`, saturating at `NEVER` so "never + anything" stays never.
    pub fn after(self, d: Millis) -> Millis {
        Millis(self.0.saturating_add(d.0))
    }

    /// Time left until `self` from `now`, zero when already due.
    pub fn until(self, now: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(now.0))
    }

    pub fn is_never(self) -> bool {
        self == Millis::NEVER
    }

    /// Rounds up to the next whole second, so that deadlines of many connections that fall
    /// within the same second fire in one wakeup instead of many.
    pub fn ceil_to_second(self) -> Millis {
        if self.is_never() {
            return self;
        }
        Millis(self.0.div_ceil(1000).saturating_mul(1000))
    }
}

/// Where the loop's time comes from: the monotonic clock, or (in tests) a value set by hand,
/// so that timers can be driven without sleeping.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Clock {
    Real(std::time::Instant),
    #[cfg(test)]
    Fake(Millis),
}

impl Clock {
    pub fn start() -> Clock {
        Clock::Real(std::time::Instant::now())
    }

    /// Milliseconds since the clock started.
    pub fn now(&self) -> Millis {
        match self {
            Clock::Real(start) => Millis::from_duration(start.elapsed()),
            #[cfg(test)]
            Clock::Fake(now) => *now,
        }
    }
}
