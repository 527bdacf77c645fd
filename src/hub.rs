//! The state requests act on, apart from connections and their buffers: configuration, the event
//! log, subscriber filters and counters. Every source of events (HTTP, ticks, stdin, host
//! programs) publishes through `Hub::publish`, so validation and routing rules live in one place.

use crate::config::Config;
use crate::conn::{Conn, State};
use crate::event_log::{self, EventLog, Publish, PushError};
use crate::filter::{Filters, valid_client_id};
use crate::slab::Slab;
use crate::sse::has_line_break_or_nul;
use crate::time::Millis;

/// Counters reported by /stats.
#[derive(Copy, Clone, Debug, Default)]
pub struct Stats {
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
    /// Data over `max_event_bytes`.
    TooLarge,
    /// CR, LF or NUL in `event`, `id` or `topic`.
    LineBreak(&'static str),
    /// A field over its length limit.
    TooLong(&'static str),
    /// `client` is not a valid client id.
    BadClient,
    /// `client` names no connected stream; nothing was stored.
    ClientNotConnected,
}

impl PublishError {
    pub fn message(self) -> &'static str {
        match self {
            PublishError::TooLarge => "event data too large",
            PublishError::LineBreak(m) | PublishError::TooLong(m) => m,
            PublishError::BadClient => "client id must be 1-64 of A-Z a-z 0-9 . _ ~ -",
            PublishError::ClientNotConnected => "client not connected",
        }
    }
}

pub struct Hub {
    pub config: Config,
    pub log: EventLog,
    pub filters: Filters,
    pub stats: Stats,
    /// Connections in the `Stream` state.
    pub subscribers: usize,
    /// The `retry:` line every event stream starts with; built once.
    pub retry_line: Vec<u8>,
    /// Request-scoped stream routes registered by the host program.
    pub stream_routes: Vec<crate::routes::StreamRoute>,
}

impl Hub {
    pub fn new(config: Config, slots: usize, first_seq: u64) -> Hub {
        let budget = (config.history + event_log::SLACK_ENTRIES) * (config.max_event_bytes.min(64 * 1024) + 256);
        // The largest possible frame (every data byte a line break) must fit too.
        let largest = 7 * config.max_event_bytes + 2 * event_log::MAX_ID + 64;
        let log = EventLog::new(config.history, budget.max(2 * largest), first_seq);
        let retry_line = format!("retry: {}\n\n", config.retry_ms).into_bytes();
        Hub {
            filters: Filters::new(slots),
            log,
            stats: Stats::default(),
            subscribers: 0,
            retry_line,
            stream_routes: Vec::new(),
            config,
        }
    }

    /// Validates and appends an event; targeted events need their client connected.
    pub fn publish(&mut self, p: &Publish, conns: &Slab<Conn>) -> Result<u64, PublishError> {
        if p.data.len() > self.config.max_event_bytes {
            return Err(PublishError::TooLarge);
        }
        // (value, its limit, the refusal for a line break, the refusal for length)
        let fields = [
            (
                p.event,
                event_log::MAX_EVENT_NAME,
                "event must not contain CR, LF or NUL",
                "event name longer than 128 bytes",
            ),
            (p.id, event_log::MAX_ID, "id must not contain CR, LF or NUL", "id longer than 128 bytes"),
            (p.topic, event_log::MAX_TOPIC, "topic must not contain CR, LF or NUL", "topic longer than 64 bytes"),
        ];
        for (value, limit, line_break, too_long) in fields {
            if has_line_break_or_nul(value) {
                return Err(PublishError::LineBreak(line_break));
            }
            if value.len() > limit {
                return Err(PublishError::TooLong(too_long));
            }
        }
        if !p.client.is_empty() {
            if !valid_client_id(p.client) {
                return Err(PublishError::BadClient);
            }
            if self.find_client(p.client, conns).is_none() {
                self.stats.targeted_missing += 1;
                return Err(PublishError::ClientNotConnected);
            }
        }
        let seq = self.log.push(p).map_err(|e| match e {
            PushError::TooLarge => PublishError::TooLarge,
            PushError::FieldTooLong => PublishError::TooLong("field too long"),
        })?;
        self.stats.published += 1;
        Ok(seq)
    }

    /// The stream connected under client id `client`.
    pub fn find_client(&self, client: &[u8], conns: &Slab<Conn>) -> Option<crate::slab::Key> {
        conns
            .iter()
            .find(|(key, c)| c.state() == State::Stream && c.filtered && self.filters.client(key.index) == client)
            .map(|(key, _)| key)
    }

    /// The /metrics body, in the Prometheus text format. `buffers` is (in use, capacity).
    pub fn metrics(
        &self,
        w: &mut crate::sse::Writer,
        conns: &Slab<Conn>,
        buffers: (usize, usize),
        now: Millis,
    ) -> Option<()> {
        let mut by_state = [0u64; 6];
        for (_, c) in conns.iter() {
            by_state[c.state() as usize] += 1;
        }
        let s = &self.stats;
        let metric = |w: &mut crate::sse::Writer, name: &str, kind: &str, help: &str| -> Option<()> {
            w.put(b"# HELP tinysse_")?;
            w.put(name.as_bytes())?;
            w.put(b" ")?;
            w.put(help.as_bytes())?;
            w.put(b"\n# TYPE tinysse_")?;
            w.put(name.as_bytes())?;
            w.put(b" ")?;
            w.put(kind.as_bytes())?;
            w.put(b"\n")
        };
        let sample = |w: &mut crate::sse::Writer, name: &str, labels: &str, value: u64| -> Option<()> {
            w.put(b"tinysse_")?;
            w.put(name.as_bytes())?;
            w.put(labels.as_bytes())?;
            w.put(b" ")?;
            w.put_u64(value)?;
            w.put(b"\n")
        };
        let simple: [(&str, &str, &str, u64); 12] = [
            ("connections_accepted_total", "counter", "Connections accepted.", s.accepted),
            ("subscribers", "gauge", "Subscriber streams open.", self.subscribers as u64),
            ("events_published_total", "counter", "Events published (all sources).", s.published),
            ("events_delivered_total", "counter", "Complete events written to subscribers.", s.delivered),
            (
                "bytes_written_total",
                "counter",
                "Bytes of events, heads and heartbeats written to streams.",
                s.bytes_written,
            ),
            (
                "rejected_full_total",
                "counter",
                "Connections or streams refused with 503 for lack of room.",
                s.rejected_full,
            ),
            ("slab_capacity", "gauge", "Connection slots (max-clients plus the reserve).", conns.capacity() as u64),
            ("slab_used", "gauge", "Connection slots in use.", conns.len() as u64),
            ("request_buffers_capacity", "gauge", "Request buffers in the pool.", buffers.1 as u64),
            ("request_buffers_used", "gauge", "Request buffers lent out.", buffers.0 as u64),
            ("history_events", "gauge", "Events Last-Event-ID replay can reach now.", self.log.replayable() as u64),
            ("uptime_seconds", "gauge", "Seconds since start.", now.0 / 1000),
        ];
        for (name, kind, help, value) in simple {
            metric(w, name, kind, help)?;
            sample(w, name, "", value)?;
        }
        metric(w, "connections", "gauge", "Open connections by state.")?;
        let states = [
            "{state=\"waiting\"}",
            "{state=\"idle\"}",
            "{state=\"request\"}",
            "{state=\"stream\"}",
            "{state=\"text\"}",
            "{state=\"linger\"}",
        ];
        for (labels, count) in states.iter().zip(by_state) {
            sample(w, "connections", labels, count)?;
        }
        metric(
            w,
            "dropped_total",
            "counter",
            "Subscribers dropped as too slow; targeted events refused, client not connected.",
        )?;
        sample(w, "dropped_total", "{reason=\"slow_subscriber\"}", s.dropped_slow)?;
        sample(w, "dropped_total", "{reason=\"targeted_missing\"}", s.targeted_missing)
    }

    /// The /stats body.
    pub fn stats_json(&self, w: &mut crate::sse::Writer, clients: usize, now: Millis) -> Option<()> {
        let s = &self.stats;
        let fields: [(&str, u64); 12] = [
            ("clients", clients as u64),
            ("accepted", s.accepted),
            ("subscribers", self.subscribers as u64),
            ("published", s.published),
            ("delivered", s.delivered),
            ("dropped_slow", s.dropped_slow),
            ("rejected_full", s.rejected_full),
            ("targeted_missing", s.targeted_missing),
            ("bytes_written", s.bytes_written),
            ("history", self.log.replayable() as u64),
            ("max_clients", self.config.max_clients as u64),
            ("uptime_secs", now.0 / 1000),
        ];
        w.put(b"{")?;
        for (i, (name, value)) in fields.iter().enumerate() {
            if i > 0 {
                w.put(b", ")?;
            }
            w.put(b"\"")?;
            w.put(name.as_bytes())?;
            w.put(b"\": ")?;
            w.put_u64(*value)?;
        }
        w.put(b"}\n")
    }
}
