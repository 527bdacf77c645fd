//! The hub: where every source of events (HTTP, `Publisher`, `Server::publish`, ticks, stdin)
//! publishes. It checks the field rules, routes targeted events to a connected client, appends
//! to the event log and counts; delivery to subscribers happens later, in the fan-out pass.

use super::event_log::{EventLog, PushError, SLACK_ENTRIES};
use super::filter::Filters;
use crate::limits::{FieldError, Fields, MAX_ID};

/// Counters reported by /stats and /metrics.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct Stats {
    pub accepted: u64,
    pub published: u64,
    /// Complete events written to subscribers.
    pub delivered: u64,
    pub bytes_written: u64,
    pub dropped_slow: u64,
    pub rejected_full: u64,
    /// Targeted publishes refused because the client was not connected.
    pub targeted_missing: u64,
}

/// Why an event was not published.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// Its data is over `Config::max_event_bytes`.
    TooLarge,
    /// A field breaks a rule; the text says which.
    Invalid(&'static str),
    /// It is addressed to a client id that no stream is connected under; nothing was stored.
    ClientNotConnected,
}

impl PublishError {
    /// The one-line reason, as HTTP publishers see it too.
    pub fn message(self) -> &'static str {
        match self {
            PublishError::TooLarge => FieldError::DataTooLarge.message(),
            PublishError::Invalid(why) => why,
            PublishError::ClientNotConnected => "client not connected",
        }
    }
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for PublishError {}

impl From<FieldError> for PublishError {
    fn from(e: FieldError) -> PublishError {
        match e {
            FieldError::DataTooLarge => PublishError::TooLarge,
            other => PublishError::Invalid(other.message()),
        }
    }
}

pub(crate) struct Hub {
    pub log: EventLog,
    pub filters: Filters,
    pub stats: Stats,
    /// Connections streaming events (subscribers).
    pub subscribers: usize,
    max_event_bytes: usize,
}

impl Hub {
    /// A hub for `slots` connections, keeping `history` events of at most `max_event_bytes`.
    pub fn new(history: usize, max_event_bytes: usize, slots: usize, first_seq: u64) -> Hub {
        let budget = (history + SLACK_ENTRIES) * (max_event_bytes.min(64 * 1024) + 256);
        // The largest possible frame (every data byte a line break) must fit too.
        let largest = 7 * max_event_bytes + 2 * MAX_ID + 64;
        Hub {
            log: EventLog::new(history, budget.max(2 * largest), first_seq),
            filters: Filters::new(slots),
            stats: Stats::default(),
            subscribers: 0,
            max_event_bytes,
        }
    }

    /// Checks and appends an event, returning its sequence number; a targeted event needs its
    /// client connected.
    pub fn publish(&mut self, p: &Fields) -> Result<u64, PublishError> {
        p.check(self.max_event_bytes)?;
        if !p.client.is_empty() && self.filters.find_client(p.client).is_none() {
            self.stats.targeted_missing += 1;
            return Err(PublishError::ClientNotConnected);
        }
        let seq = self.log.push(p).map_err(|e| match e {
            PushError::TooLarge => PublishError::TooLarge,
            PushError::FieldTooLong => PublishError::Invalid("field too long"),
        })?;
        self.stats.published += 1;
        Ok(seq)
    }
}
