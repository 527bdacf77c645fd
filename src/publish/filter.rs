//! Subscriber routing: which client id a stream has and which topics it asked for.
//!
//! Kept beside the connection slab rather than inside each connection: most subscribers have no
//! filter at all, and their part of this (lazily zeroed) table is never touched, so it costs them
//! no resident memory. A connection's `filtered` flag says whether its region is in use; a
//! compact byte per slot says whether a subscriber with a client id holds it, so looking up a
//! client scans that, not the regions.

use super::event_log::View;
use crate::limits::{FieldError, MAX_CLIENT, MAX_TOPIC, MAX_TOPICS, check_topic_pattern, valid_client_id};

// Region layout: client length, topic count, topic lengths, client bytes, topic bytes.
const CLIENT_LEN: usize = 0;
const TOPIC_COUNT: usize = 1;
const TOPIC_LENS: usize = 2;
const CLIENT: usize = TOPIC_LENS + MAX_TOPICS;
const TOPICS: usize = CLIENT + MAX_CLIENT;
const REGION: usize = TOPICS + MAX_TOPICS * MAX_TOPIC;

pub(crate) struct Filters {
    mem: Vec<u8>,
    /// Slots whose subscriber has a client id (see `claim_client`).
    clients: Vec<bool>,
}

impl Filters {
    pub fn new(slots: usize) -> Filters {
        Filters { mem: vec![0u8; slots * REGION], clients: vec![false; slots] }
    }

    fn region(&self, slot: u32) -> &[u8] {
        &self.mem[slot as usize * REGION..(slot as usize + 1) * REGION]
    }

    /// Records the client id (may be empty) and topic patterns of the stream in `slot`.
    pub fn set<'a>(
        &mut self,
        slot: u32,
        client: &[u8],
        topics: impl Iterator<Item = &'a [u8]>,
    ) -> Result<(), FieldError> {
        if !client.is_empty() && !valid_client_id(client) {
            return Err(FieldError::BadClient);
        }
        let r = &mut self.mem[slot as usize * REGION..(slot as usize + 1) * REGION];
        r[CLIENT_LEN] = client.len() as u8;
        r[CLIENT..CLIENT + client.len()].copy_from_slice(client);
        let mut count = 0;
        for topic in topics {
            if count == MAX_TOPICS {
                return Err(FieldError::TooManyTopics);
            }
            check_topic_pattern(topic)?;
            r[TOPIC_LENS + count] = topic.len() as u8;
            let at = TOPICS + count * MAX_TOPIC;
            r[at..at + topic.len()].copy_from_slice(topic);
            count += 1;
        }
        r[TOPIC_COUNT] = count as u8;
        Ok(())
    }

    /// The subscriber in `slot` now streams under its client id: `find_client` sees it.
    pub fn claim_client(&mut self, slot: u32) {
        self.clients[slot as usize] = !self.client(slot).is_empty();
    }

    /// The subscriber in `slot` has gone.
    pub fn release(&mut self, slot: u32) {
        self.clients[slot as usize] = false;
    }

    /// The slot of the subscriber streaming under client id `client`.
    pub fn find_client(&self, client: &[u8]) -> Option<u32> {
        (0..self.clients.len() as u32).find(|&slot| self.clients[slot as usize] && self.client(slot) == client)
    }

    pub fn client(&self, slot: u32) -> &[u8] {
        let r = self.region(slot);
        &r[CLIENT..CLIENT + r[CLIENT_LEN] as usize]
    }

    /// Whether the stream in `slot` (whose region is in use) may see `event`.
    pub fn admits(&self, slot: u32, event: &View) -> bool {
        let r = self.region(slot);
        if !event.client.is_empty() && event.client != &r[CLIENT..CLIENT + r[CLIENT_LEN] as usize] {
            return false;
        }
        let count = r[TOPIC_COUNT] as usize;
        if count == 0 || event.topic.is_empty() {
            return true;
        }
        (0..count).any(|i| {
            let at = TOPICS + i * MAX_TOPIC;
            topic_matches(&r[at..at + r[TOPIC_LENS + i] as usize], event.topic)
        })
    }
}

/// A pattern matches its exact topic, or with a trailing `*` every topic that starts with the
/// rest (`sensors/*` matches `sensors/temp`).
pub(crate) fn topic_matches(pattern: &[u8], topic: &[u8]) -> bool {
    match pattern.split_last() {
        Some((b'*', prefix)) => topic.starts_with(prefix),
        _ => pattern == topic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(topic: &'a [u8], client: &'a [u8]) -> View<'a> {
        View { wire: b"", id: b"1", topic, client }
    }

    #[test]
    fn patterns() {
        assert!(topic_matches(b"a", b"a"));
        assert!(!topic_matches(b"a", b"ab"));
        assert!(topic_matches(b"sensors/*", b"sensors/temp"));
        assert!(!topic_matches(b"sensors/*", b"sensor"));
        assert!(topic_matches(b"*", b"anything"));
    }

    #[test]
    fn routing() {
        let mut f = Filters::new(2);
        f.set(0, b"me", [&b"a"[..], b"s/*"].into_iter()).unwrap();
        assert!(f.admits(0, &view(b"", b"")));
        assert!(f.admits(0, &view(b"a", b"")));
        assert!(f.admits(0, &view(b"s/x", b"me")));
        assert!(!f.admits(0, &view(b"b", b"")));
        assert!(!f.admits(0, &view(b"", b"you")));
        f.set(1, b"", std::iter::empty()).unwrap();
        assert!(f.admits(1, &view(b"b", b"")));
        assert!(!f.admits(1, &view(b"", b"me")));
    }

    #[test]
    fn bounds() {
        let mut f = Filters::new(1);
        assert_eq!(f.set(0, b"bad id", std::iter::empty()), Err(FieldError::BadClient));
        assert_eq!(f.set(0, b"", std::iter::repeat_n(&b"t"[..], 9)), Err(FieldError::TooManyTopics));
        assert_eq!(
            f.set(0, b"", std::iter::once(&[b't'; 65][..])),
            Err(FieldError::TooLong(crate::limits::Field::Topic))
        );
        f.set(0, b"me", std::iter::empty()).unwrap();
        assert_eq!(f.find_client(b"me"), None, "not streaming yet");
        f.claim_client(0);
        assert_eq!(f.find_client(b"me"), Some(0));
        f.release(0);
        assert_eq!(f.find_client(b"me"), None);
    }
}
