//! The event log: every published event, encoded once into SSE wire bytes, in one preallocated
//! ring shared by all subscribers.
//!
//! Subscribers do not own queues; each holds a cursor (a sequence number and a byte offset into
//! that event) and is written straight from the ring. The log keeps the newest events for
//! Last-Event-ID replay, with their routing (topic, target client), and evicts the oldest when
//! either its entry slots or its byte budget run out. A subscriber whose cursor falls behind the
//! oldest retained event has been overrun and must be dropped; nothing here ever grows.
//!
//! Placement prefers the front of the byte ring whenever it is free, so the live window stays
//! packed near the start and the untouched rest of the (lazily zeroed) allocation never becomes
//! resident: memory in use follows the events actually retained, not the budget.

use super::sse::Frame;
use crate::limits::{Fields, MAX_CLIENT, MAX_EVENT_NAME, MAX_ID, MAX_TOPIC};
use crate::mem::writer::format_u64;

/// Marks the ids one run of the server gives: a number below `RUN_TAGS` drawn at random at
/// start. An id is the decimal number `seq × RUN_TAGS + tag`, so ids stay plain decimal and
/// strictly increase with `seq` (within a run, and across restarts with a history file, where
/// `seq` continues), while an id from another run or another instance (another tag) is never
/// found in this history, even where sequence numbers overlap: it gets `gap`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct RunTag(u64);

/// Run tags there are (the last six digits of an id).
const RUN_TAGS: u64 = 1_000_000;

impl RunTag {
    pub fn random() -> RunTag {
        use std::hash::{BuildHasher, Hasher};
        let r = std::collections::hash_map::RandomState::new().build_hasher().finish();
        RunTag(r % RUN_TAGS)
    }
}

/// Routing bytes kept per entry: topic, then target client.
const ROUTE_BYTES: usize = MAX_TOPIC + MAX_CLIENT;

/// Entry slots beyond `--history`: they keep the replay window whole when the byte budget forces
/// an extra eviction, and give subscribers slack for bursts published within one loop iteration
/// even with a tiny `--history`.
pub(crate) const SLACK_ENTRIES: usize = 256;

#[derive(Copy, Clone, Default, Debug)]
struct Entry {
    start: u32,
    len: u32,
    id_len: u8,
    topic_len: u8,
    client_len: u8,
}

/// One retained event as subscribers see it.
#[derive(Copy, Clone, Debug)]
pub(crate) struct View<'a> {
    /// The complete SSE frame (the write loop takes it from `span` instead).
    #[cfg_attr(not(test), allow(dead_code))]
    pub wire: &'a [u8],
    pub id: &'a [u8],
    /// Empty when the event is for every topic.
    pub topic: &'a [u8],
    /// Empty when the event is for everyone; else the only client that may see it.
    pub client: &'a [u8],
}

/// Why an event was not appended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// Its wire form is larger than the whole byte ring.
    TooLarge,
    /// A routing field or id is over its limit.
    FieldTooLong,
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PushError::TooLarge => "event larger than the event log",
            PushError::FieldTooLong => "field too long",
        })
    }
}

impl std::error::Error for PushError {}

/// Where a Last-Event-ID leads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// The id was found: continue at this sequence number.
    After(u64),
    /// The id is not (or no longer) retained: start at the oldest replayable event, after
    /// telling the client about the gap.
    Gap { from: u64 },
}

pub(crate) struct EventLog {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    routing: Vec<u8>,
    /// Index in `entries` of the oldest retained event.
    oldest: usize,
    /// Retained events.
    len: usize,
    /// Sequence number of the oldest retained event (or of the next one, when empty).
    first_seq: u64,
    /// This run's id tag.
    tag: RunTag,
    /// How many of the newest events Last-Event-ID can find (`--history`).
    replay: usize,
}

impl EventLog {
    /// `history` events are replayable; `byte_budget` bounds their wire bytes. `first_seq` is the
    /// first id handed out: taking it from the clock keeps ids of different runs apart.
    pub fn new(history: usize, byte_budget: usize, first_seq: u64, tag: RunTag) -> EventLog {
        let slots = history + SLACK_ENTRIES;
        EventLog {
            // Zeroed allocations come straight from the OS and stay non-resident until written.
            bytes: vec![0u8; byte_budget.min(u32::MAX as usize)],
            entries: vec![Entry::default(); slots],
            routing: vec![0u8; slots * ROUTE_BYTES],
            oldest: 0,
            len: 0,
            first_seq,
            tag,
            replay: history,
        }
    }

    /// Sequence number the next published event gets.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.len as u64
    }

    /// Sequence number of the oldest retained event (equal to `next_seq` when empty).
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entry slots: events the ring can hold, replayable or not.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of wire data retained.
    #[cfg(test)]
    pub fn retained_bytes(&self) -> usize {
        (0..self.len).map(|i| self.entries[(self.oldest + i) % self.entries.len()].len as usize).sum()
    }

    /// Appends an event, evicting the oldest ones as needed, and returns its sequence number.
    pub fn push(&mut self, p: &Fields) -> Result<u64, PushError> {
        if p.id.len() > MAX_ID
            || p.topic.len() > MAX_TOPIC
            || p.client.len() > MAX_CLIENT
            || p.event.len() > MAX_EVENT_NAME
        {
            return Err(PushError::FieldTooLong);
        }
        let seq = self.next_seq();
        let mut own = [0u8; 20];
        let id = if p.id.is_empty() { self.own_id(seq, &mut own) } else { p.id };
        let frame = Frame { id, event: p.event, data: p.data };
        let needed = frame.encoded_len();
        if needed > self.bytes.len() {
            return Err(PushError::TooLarge);
        }
        if self.len == self.entries.len() {
            self.evict_oldest();
        }
        let start = loop {
            match self.place(needed) {
                Some(start) => break start,
                None => self.evict_oldest(),
            }
        };
        let written = frame.encode(&mut self.bytes[start..start + needed]);
        debug_assert_eq!(written, Some(needed));
        let slot = (self.oldest + self.len) % self.entries.len();
        self.entries[slot] = Entry {
            start: start as u32,
            len: needed as u32,
            id_len: id.len() as u8,
            topic_len: p.topic.len() as u8,
            client_len: p.client.len() as u8,
        };
        let route = &mut self.routing[slot * ROUTE_BYTES..(slot + 1) * ROUTE_BYTES];
        route[..p.topic.len()].copy_from_slice(p.topic);
        route[MAX_TOPIC..MAX_TOPIC + p.client.len()].copy_from_slice(p.client);
        self.len += 1;
        Ok(seq)
    }

    /// The id the server gives event `seq` (see `RunTag`). Fits a u64 up to 1.8 × 10^13 events.
    fn own_id<'b>(&self, seq: u64, buf: &'b mut [u8; 20]) -> &'b [u8] {
        format_u64(seq.saturating_mul(RUN_TAGS).saturating_add(self.tag.0), buf)
    }

    /// Where `needed` bytes fit without evicting, if anywhere.
    fn place(&self, needed: usize) -> Option<usize> {
        if self.len == 0 {
            return Some(0);
        }
        let cap = self.entries.len();
        let oldest = self.entries[self.oldest].start as usize;
        let newest = self.entries[(self.oldest + self.len - 1) % cap];
        let end = (newest.start + newest.len) as usize;
        if newest.start as usize >= oldest {
            // Live bytes are one run [oldest, end): use the free front first.
            if needed <= oldest {
                Some(0)
            } else if end + needed <= self.bytes.len() {
                Some(end)
            } else {
                None
            }
        } else if end + needed <= oldest {
            // Live bytes wrapped: [oldest, ..) then [0, end); the gap lies between.
            Some(end)
        } else {
            None
        }
    }

    fn evict_oldest(&mut self) {
        if self.len > 0 {
            self.oldest = (self.oldest + 1) % self.entries.len();
            self.len -= 1;
            self.first_seq += 1;
        }
    }

    /// Where the frame of retained event `seq` lies in the ring (`offset`, `len`) and whether it
    /// is addressed to one client: all the write loop needs for a subscriber without a filter.
    pub fn span(&self, seq: u64) -> Option<(usize, usize, bool)> {
        let e = self.entries[self.slot(seq)?];
        Some((e.start as usize, e.len as usize, e.client_len > 0))
    }

    /// The entry slot of `seq`, if retained. Compare and subtract instead of `%`: this runs once
    /// per event per subscriber.
    fn slot(&self, seq: u64) -> Option<usize> {
        if seq < self.first_seq || seq >= self.next_seq() {
            return None;
        }
        let slot = self.oldest + (seq - self.first_seq) as usize;
        Some(if slot >= self.entries.len() { slot - self.entries.len() } else { slot })
    }

    /// The retained event with sequence number `seq`.
    pub fn get(&self, seq: u64) -> Option<View<'_>> {
        let slot = self.slot(seq)?;
        let e = self.entries[slot];
        let wire = &self.bytes[e.start as usize..(e.start + e.len) as usize];
        let route = &self.routing[slot * ROUTE_BYTES..(slot + 1) * ROUTE_BYTES];
        Some(View {
            wire,
            id: &wire[b"id: ".len()..b"id: ".len() + e.id_len as usize],
            topic: &route[..e.topic_len as usize],
            client: &route[MAX_TOPIC..MAX_TOPIC + e.client_len as usize],
        })
    }

    /// Ring bytes `start..end`, e.g. several adjacent events' frames at once.
    pub fn bytes(&self, start: usize, end: usize) -> &[u8] {
        &self.bytes[start..end]
    }

    /// Events Last-Event-ID replay can reach now.
    pub fn replayable(&self) -> usize {
        (self.next_seq() - self.first_replayable()) as usize
    }

    /// Oldest event Last-Event-ID replay may reach.
    pub fn first_replayable(&self) -> u64 {
        self.next_seq().saturating_sub(self.replay as u64).max(self.first_seq)
    }

    /// Where a new subscriber asking for its last `n` events starts: the newest `n` replayable
    /// events it may see (`visible`), oldest first.
    pub fn last(&self, n: usize, visible: impl Fn(&View) -> bool) -> u64 {
        let from = self.first_replayable();
        let mut start = self.next_seq();
        let mut found = 0;
        while found < n && start > from {
            start -= 1;
            if self.get(start).is_some_and(|v| visible(&v)) {
                found += 1;
            }
        }
        start
    }

    /// Where a subscriber that last saw `last_id` continues.
    pub fn resume(&self, last_id: &[u8]) -> Resume {
        let from = self.first_replayable();
        // Newest first: a publisher may reuse ids, and the latest use is the one the client saw.
        for seq in (from..self.next_seq()).rev() {
            if self.get(seq).is_some_and(|v| v.id == last_id) {
                return Resume::After(seq + 1);
            }
        }
        Resume::Gap { from }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: RunTag = RunTag(4242);

    fn log(history: usize, bytes: usize, first_seq: u64) -> EventLog {
        EventLog::new(history, bytes, first_seq, TAG)
    }

    fn push(log: &mut EventLog, data: &str) -> u64 {
        log.push(&Fields { data: data.as_bytes(), ..Default::default() }).unwrap()
    }

    #[test]
    fn ids_are_sequence_numbers_with_the_run_tag_unless_given() {
        let mut log = log(4, 1024, 100);
        assert_eq!(push(&mut log, "a"), 100);
        let seq = log.push(&Fields { id: b"x7", data: b"b", topic: b"t", client: b"c", ..Default::default() }).unwrap();
        assert_eq!(seq, 101);
        let v = log.get(100).unwrap();
        assert_eq!((v.wire, v.id), (&b"id: 100004242\ndata: a\n\n"[..], &b"100004242"[..]));
        let v = log.get(101).unwrap();
        assert_eq!((v.id, v.topic, v.client), (&b"x7"[..], &b"t"[..], &b"c"[..]));
    }

    #[test]
    fn evicts_by_count_and_resumes() {
        let mut log = log(2, 4096, 1);
        for i in 0..100 {
            push(&mut log, &format!("e{i}"));
        }
        assert_eq!(log.next_seq(), 101);
        assert!(log.first_seq() <= 99);
        assert_eq!(log.first_replayable(), 99);
        assert_eq!(log.resume(b"99004242"), Resume::After(100));
        assert_eq!(log.resume(b"100004242"), Resume::After(101));
        assert_eq!(log.resume(b"98004242"), Resume::Gap { from: 99 });
        assert_eq!(log.resume(b"nope"), Resume::Gap { from: 99 });
        // The same sequence number from another run (or instance) is not this event.
        assert_eq!(log.resume(b"99004243"), Resume::Gap { from: 99 });
        assert_eq!(log.resume(b"99"), Resume::Gap { from: 99 });
    }

    #[test]
    fn evicts_by_bytes_and_never_corrupts() {
        let mut log = log(1000, 400, 1);
        for i in 0..5000u64 {
            let data = "x".repeat((i as usize * 7) % 90);
            let seq = push(&mut log, &data);
            // Every retained event still reads back exactly as it was encoded.
            for s in log.first_seq()..log.next_seq() {
                let v = log.get(s).unwrap();
                let text = std::str::from_utf8(v.wire).unwrap();
                assert!(text.starts_with(&format!("id: {s}004242\ndata: ")), "{text:?}");
                assert!(text.ends_with("\n\n"));
                assert_eq!(text.len(), 19 + s.to_string().len() + ((s - 1) as usize * 7) % 90);
            }
            assert!(log.get(seq).is_some());
        }
        assert!(log.retained_bytes() <= 400);
    }

    #[test]
    fn live_window_stays_at_the_front() {
        let mut log = log(4, 1 << 20, 1);
        for _ in 0..10_000 {
            push(&mut log, "0123456789");
        }
        let highest = (log.first_seq()..log.next_seq())
            .map(|s| {
                let v = log.get(s).unwrap();
                v.wire.as_ptr() as usize + v.wire.len() - log.bytes.as_ptr() as usize
            })
            .max()
            .unwrap();
        assert!(highest < 4 * (4 + SLACK_ENTRIES) * 40, "ring wandered to byte {highest}");
    }

    #[test]
    fn too_large_and_too_long_fields_are_refused() {
        let mut log = log(4, 64, 1);
        assert_eq!(log.push(&Fields { data: &[b'x'; 100], ..Default::default() }), Err(PushError::TooLarge));
        assert_eq!(log.push(&Fields { topic: &[b't'; 65], ..Default::default() }), Err(PushError::FieldTooLong));
        assert!(log.is_empty());
    }
}
