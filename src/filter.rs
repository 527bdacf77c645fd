//! Subscriber routing: which client id a stream has and which topics it asked for.
//!
//! Kept beside the connection slab rather than inside each connection: most subscribers have no
//! filter at all, and their part of this (lazily zeroed) table is never touched, so it costs them
//! no resident memory. A connection's `filtered` flag says whether its region is in use.

use crate::event_log::{MAX_CLIENT, MAX_TOPIC, View};

/// Most topic patterns one subscriber may give.
pub const MAX_TOPICS: usize = 8;

// Region layout: client length, topic count, topic lengths, client bytes, topic bytes.
const CLIENT_LEN: usize = 0;
const TOPIC_COUNT: usize = 1;
const TOPIC_LENS: usize = 2;
const CLIENT: usize = TOPIC_LENS + MAX_TOPICS;
const TOPICS: usize = CLIENT + MAX_CLIENT;
const REGION: usize = TOPICS + MAX_TOPICS * MAX_TOPIC;

/// Why a subscription's filter was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FilterError {
    TooManyTopics,
    TopicTooLong,
    BadTopic,
    BadClient,
}

pub struct Filters {
    mem: Vec<u8>,
}

impl Filters {
    pub fn new(slots: usize) -> Filters {
        Filters { mem: vec![0u8; slots * REGION] }
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
    ) -> Result<(), FilterError> {
        if !client.is_empty() && !valid_client_id(client) {
            return Err(FilterError::BadClient);
        }
        let r = &mut self.mem[slot as usize * REGION..(slot as usize + 1) * REGION];
        r[CLIENT_LEN] = client.len() as u8;
        r[CLIENT..CLIENT + client.len()].copy_from_slice(client);
        let mut count = 0;
        for topic in topics {
            if count == MAX_TOPICS {
                return Err(FilterError::TooManyTopics);
            }
            if topic.len() > MAX_TOPIC {
                return Err(FilterError::TopicTooLong);
            }
            if topic.is_empty() || crate::sse::has_line_break_or_nul(topic) {
                return Err(FilterError::BadTopic);
            }
            r[TOPIC_LENS + count] = topic.len() as u8;
            let at = TOPICS + count * MAX_TOPIC;
            r[at..at + topic.len()].copy_from_slice(topic);
            count += 1;
        }
        r[TOPIC_COUNT] = count as u8;
        Ok(())
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
pub fn topic_matches(pattern: &[u8], topic: &[u8]) -> bool {
    match pattern.split_last() {
        Some((b'*', prefix)) => topic.starts_with(prefix),
        _ => pattern == topic,
    }
}

/// Client ids are `[A-Za-z0-9._~-]{1,64}`: safe in URLs, logs and JSON without escaping.
pub fn valid_client_id(id: &[u8]) -> bool {
    (1..=MAX_CLIENT).contains(&id.len())
        && id.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(topic: &'a [u8], client: &'a [u8]) -> View<'a> {
        View { seq: 1, offset: 0, wire: b"", id: b"1", topic, client }
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
        assert_eq!(f.set(0, b"bad id", std::iter::empty()), Err(FilterError::BadClient));
        assert_eq!(f.set(0, b"", std::iter::repeat_n(&b"t"[..], 9)), Err(FilterError::TooManyTopics));
        assert_eq!(f.set(0, b"", std::iter::once(&[b't'; 65][..])), Err(FilterError::TopicTooLong));
        assert!(valid_client_id(b"A-z_0.9~"));
        assert!(!valid_client_id(&[b'a'; 65]));
    }
}
