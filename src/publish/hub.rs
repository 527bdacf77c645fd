//! The hub: where every source of events (HTTP, `Publisher`, `Server::publish`, ticks, stdin)
//! publishes. It checks the field rules, routes targeted events to a connected client, appends
//! to the event log (and its journal on disk, with `--history-file`) and counts; delivery to
//! subscribers happens later, in the fan-out pass.

use super::event_log::{EventLog, PushError, RunTag, SLACK_ENTRIES};
use super::filter::Filters;
use super::journal::{Journal, OpenError, Options, Record};
use crate::config::Config;
use crate::limits::{FieldError, Fields, MAX_ID};
use crate::time::Millis;
use log::{info, warn};

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
    /// Cluster mode: `Server::publish` cannot return the id, which only Redis gives; publish
    /// with a `Publisher` (or over HTTP, answered once Redis took the event).
    #[cfg(feature = "cluster")]
    Clustered,
}

impl PublishError {
    /// The one-line reason, as HTTP publishers see it too.
    pub fn message(self) -> &'static str {
        match self {
            PublishError::TooLarge => FieldError::DataTooLarge.message(),
            PublishError::Invalid(why) => why,
            PublishError::ClientNotConnected => "client not connected",
            #[cfg(feature = "cluster")]
            PublishError::Clustered => "cluster mode: publish with a Publisher; the id comes from Redis",
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
    /// `--history-file`: every event of history is also appended here.
    journal: Option<Journal>,
    /// Events the history file could not take since the last warning.
    journal_dropped: u64,
    /// When a history-file error was last logged (rate limiting: once a second).
    journal_warned: Option<Millis>,
    /// Cluster mode (`--redis`): the link to the shared stream, and what waits on it. Taken out
    /// while the link runs, so that what it reads can be published here.
    #[cfg(feature = "cluster")]
    pub cluster: Option<Box<crate::cluster::node::Node>>,
}

impl Hub {
    /// A hub for `slots` connections, keeping `config.history` events; with a history file,
    /// the history is loaded from it and ids continue after its last event.
    pub fn new(config: &Config, slots: usize) -> Result<Hub, OpenError> {
        let (history, max_event_bytes) = (config.history, config.max_event_bytes);
        let budget = (history + SLACK_ENTRIES) * (max_event_bytes.min(64 * 1024) + 256);
        // The largest possible frame (every data byte a line break) must fit too.
        let bytes = budget.max(2 * (7 * max_event_bytes + 2 * MAX_ID + 64));
        let tag = RunTag::random();
        let mut log = EventLog::new(history, bytes, 1, tag);
        let journal = match &config.history_file {
            None => None,
            Some(path) => {
                let options = Options {
                    path: path.clone(),
                    budget_bytes: config.history_file_bytes,
                    fsync: config.fsync,
                    max_data: max_event_bytes,
                };
                let (journal, loaded) = Journal::open(options, |r| {
                    // Records come in one unbroken run; should one not fit (a smaller
                    // --max-event-bytes than when it was written), start again after it.
                    if log.next_seq() != r.seq {
                        log = EventLog::new(history, bytes, r.seq, tag);
                    }
                    let f = Fields { id: r.id, event: r.event, data: r.data, topic: r.topic, client: r.client };
                    if log.push(&f).is_err() {
                        log = EventLog::new(history, bytes, r.seq + 1, tag);
                    }
                })?;
                if let Some(last) = loaded.last_seq.filter(|&last| log.next_seq() != last + 1) {
                    log = EventLog::new(history, bytes, last + 1, tag);
                }
                info!(
                    "history file {}: {} events loaded ({} replayable), next id {}",
                    path.display(),
                    loaded.records,
                    log.replayable(),
                    log.next_seq()
                );
                Some(journal)
            }
        };
        Ok(Hub {
            log,
            filters: Filters::new(slots),
            stats: Stats::default(),
            subscribers: 0,
            max_event_bytes,
            journal,
            journal_dropped: 0,
            journal_warned: None,
            #[cfg(feature = "cluster")]
            cluster: config.redis.as_ref().map(|url| Box::new(crate::cluster::node::Node::new(url, config, slots))),
        })
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
        if let (Some(journal), Some(v)) = (&mut self.journal, self.log.get(seq)) {
            let r = Record { seq, id: v.id, event: p.event, topic: p.topic, client: p.client, data: p.data };
            if journal.append(&r).is_err() {
                // Only while writes keep failing; `write_journal` reports it.
                self.journal_dropped += 1;
            }
        }
        Ok(seq)
    }

    /// Checks an event's fields as `publish` does, without publishing it.
    #[cfg(feature = "cluster")]
    pub fn check(&self, p: &Fields) -> Result<(), PublishError> {
        Ok(p.check(self.max_event_bytes)?)
    }

    /// Cluster mode: appends an event read from the shared stream, with its id. A targeted
    /// event is kept even when its client streams elsewhere, so that every instance holds the
    /// same history with the same ids (the filters keep it from everyone else).
    #[cfg(feature = "cluster")]
    pub fn publish_replicated(&mut self, p: &Fields) -> Result<u64, PublishError> {
        p.check(self.max_event_bytes)?;
        let seq = self.log.push(p).map_err(|e| match e {
            PushError::TooLarge => PublishError::TooLarge,
            PushError::FieldTooLong => PublishError::Invalid("field too long"),
        })?;
        self.stats.published += 1;
        Ok(seq)
    }

    /// Publishes for a source nobody waits on (`Publisher`, `--stdin`); in cluster mode the
    /// event goes to Redis first and comes back through the link like every other.
    pub fn publish_from(&mut self, what: &'static str, p: &Fields, now: Millis) -> Result<(), PublishError> {
        #[cfg(feature = "cluster")]
        return self.publish_shared(what, p, now.0);
        #[cfg(not(feature = "cluster"))]
        {
            let _ = (what, now);
            self.publish(p).map(|_| ())
        }
    }

    /// Events are published but not yet written to the history file: answers to their
    /// publishers wait until `write_journal`, so an acknowledged event survives kill -9.
    /// While writes to the file fail, nothing waits for it: answers go out (the warning says
    /// the events are not on disk) rather than hang.
    pub fn journal_pending(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.has_batch() && !j.is_failing())
    }

    /// The loop turn's one write to the history file (and fdatasync, as `--fsync` says).
    pub fn write_journal(&mut self, now: Millis) {
        let Some(journal) = &mut self.journal else { return };
        let Err(e) = journal.commit(now.0) else { return };
        if self.journal_warned.is_some_and(|at| now < at.after(Millis(1000))) {
            return;
        }
        let dropped = std::mem::take(&mut self.journal_dropped);
        warn!(
            "history file {}: {e} ({dropped} events not written since the last warning); still serving from memory",
            journal.path().display()
        );
        self.journal_warned = Some(now);
    }

    /// When the history file needs the loop again (a due fdatasync, a retry).
    pub fn journal_deadline(&self) -> Millis {
        self.journal.as_ref().map_or(Millis::NEVER, |j| Millis(j.deadline()))
    }
}

#[cfg(feature = "cluster")]
impl Hub {
    /// Publishes for a source nobody waits on (`Publisher`, stdin): in cluster mode the event
    /// goes to Redis (checked first; a failure later is counted and logged, rate-limited).
    pub fn publish_shared(&mut self, what: &'static str, p: &Fields, now: u64) -> Result<(), PublishError> {
        if self.cluster.is_none() {
            return self.publish(p).map(|_| ());
        }
        self.check(p)?;
        if let Some(node) = self.cluster.as_mut()
            && let Err(e) = node.link.publish(p, crate::cluster::node::NOBODY)
        {
            node.unsent(what, e, 1, now);
        }
        Ok(())
    }
}
