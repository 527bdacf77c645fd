//! What one instance keeps beside the link: per connection slot, the publish waiting for
//! Redis's answer and the claim state of its stream; and the tokens that name them.

use super::{Link, LinkConfig, RedisUrl};
use crate::config::Config;
use mio::Token;

/// The link's two sockets. Server tokens sit at the top slot indices (`mem::slab`), which no
/// connection key ever uses; these two are matched before any other token.
pub(crate) const REDIS_CMD: Token = Token(usize::MAX - 16);
pub(crate) const REDIS_READ: Token = Token((usize::MAX - 16) ^ (1 << 24));

/// The token of a publish nobody waits for (`Publisher`, stdin, `Server::publish`), and of
/// claims and presence chores.
pub(crate) const NOBODY: u64 = u64::MAX;
/// The token of a stream's claim: its failure ends nothing (the stream goes on locally).
pub(crate) const CLAIM: u64 = u64::MAX - 1;

/// Where a waiting publish keeps its `Origin` in the output part of its buffer: the answer
/// (at most a few hundred bytes) is written in front of it.
pub(crate) const ORIGIN_AT: usize = 2048;

/// The CORS headers a waiting publish will be answered with.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum CorsKind {
    Any,
    Denied,
    /// The request's origin, this long, at `ORIGIN_AT` in the buffer's output part.
    Origin(u16),
}

/// A publish over HTTP whose answer waits for Redis.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Waiter {
    pub generation: u32,
    pub keep_alive: bool,
    pub cors: CorsKind,
}

/// Publishes of one connection that may wait for Redis at once: a pipelining publisher's next
/// ones go to Redis behind the first instead of one round trip each. Their answers gather in the
/// output part in front of `ORIGIN_AT` (at most about 300 bytes each).
pub(crate) const MAX_IN_FLIGHT: usize = 6;

/// Cluster state of one connection slot.
#[derive(Clone, Debug, Default)]
pub(crate) struct SlotState {
    /// Its publishes waiting for Redis, oldest first (answers come back in order).
    pub waiting: heapless::Deque<Waiter, MAX_IN_FLIGHT>,
    /// Its stream's own claim has been read back: any later claim of its client id replaces it.
    pub confirmed: bool,
    /// Its stream holds its client id in this instance's presence set: release it at the end
    /// (false once a newer stream here took the id over).
    pub holds: bool,
}

/// A token naming a connection slot at one generation, so that a reused slot never gets a
/// stale answer.
pub(crate) fn slot_token(slot: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(slot)
}

/// The slot and generation of `slot_token`.
pub(crate) fn split_token(token: u64) -> (u32, u32) {
    (token as u32, (token >> 32) as u32)
}

pub(crate) struct Node {
    pub link: Link,
    pub slots: Vec<SlotState>,
    /// Publishes from sources nobody waits for that Redis did not take, since the last warning.
    pub unsent: u64,
    /// When such a failure was last logged (ms, loop time; at most one line a minute).
    pub unsent_warned: Option<u64>,
    /// Slots whose stream a claim from another instance ended while the link ran: their ids
    /// leave the presence set after it (capacity: every slot, so pushing never allocates).
    pub releases: Vec<u32>,
}

impl Node {
    pub fn new(url: &RedisUrl, config: &Config, slots: usize) -> Node {
        let cfg = LinkConfig {
            stream: config.redis_stream.clone(),
            maxlen: config.redis_maxlen,
            history: config.history,
            max_event_bytes: config.max_event_bytes,
            ..LinkConfig::new(url.clone(), instance_id())
        };
        Node {
            link: Link::new(cfg, REDIS_CMD, REDIS_READ),
            slots: vec![SlotState::default(); slots],
            unsent: 0,
            unsent_warned: None,
            releases: Vec::with_capacity(slots),
        }
    }

    /// A publish nobody waits for was not taken: counted, and said at most once a minute.
    pub fn unsent(&mut self, what: &str, why: super::PublishError, count: u64, now: u64) {
        self.unsent += count;
        if self.unsent_warned.is_some_and(|at| now < at.saturating_add(60_000)) {
            return;
        }
        log::warn!("{what}: event not published ({why}; {} so since the last warning)", self.unsent);
        self.unsent = 0;
        self.unsent_warned = Some(now);
    }
}

/// An instance id unique per run: the clock's microseconds mixed with the process id.
fn instance_id() -> u64 {
    let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    micros ^ (u64::from(std::process::id()) << 40)
}
