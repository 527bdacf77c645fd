//! Every limit a peer or a host program can run into, and the field rules with their messages,
//! in one table: HTTP publishing, `Publisher`, `Server::publish`, ticks and stdin all check
//! events here, so a limit and its message are written once.

/// Longest event name (`event:`), in bytes.
pub(crate) const MAX_EVENT_NAME: usize = 128;
/// Longest event id, in bytes (also the longest Last-Event-ID accepted).
pub(crate) const MAX_ID: usize = 128;
/// Longest topic (publish) or topic pattern (subscribe), in bytes.
pub(crate) const MAX_TOPIC: usize = 64;
/// Longest client id, in bytes.
pub(crate) const MAX_CLIENT: usize = 64;
/// Most topic patterns one subscriber may give.
pub(crate) const MAX_TOPICS: usize = 8;
/// Longest request head (request line and headers), in bytes.
pub(crate) const MAX_HEAD_BYTES: usize = 8192;
/// Most header lines in one request head.
pub(crate) const MAX_HEADERS: usize = 48;
/// Most query and form parameters in one request.
pub(crate) const MAX_PARAMS: usize = 32;
/// Longest /stream text, in bytes.
pub(crate) const MAX_STREAM_TEXT: usize = 4096;
/// Longest /stream delay between frames, in milliseconds.
pub(crate) const MAX_STREAM_DELAY_MS: u32 = 10_000;
/// Extra connection slots beyond `max_clients`, kept for publishes, /stats and other short
/// requests so that a server full of subscribers can still be fed and inspected.
pub(crate) const RESERVE_SLOTS: usize = 8;
/// Messages a `Publisher` queue holds; more wait in the caller's hands (`SendError::Full`).
pub const QUEUE_LEN: usize = 32;

/// The rule client ids follow, as every refusal states it.
pub(crate) const CLIENT_ID_RULE: &str = "client id must be 1-64 of A-Z a-z 0-9 . _ ~ -";

/// A field of an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Event,
    Id,
    Topic,
}

/// Why an event's fields, or a subscription's, break a rule.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum FieldError {
    /// Data over the configured `max_event_bytes`.
    DataTooLarge,
    /// CR, LF or NUL in a field that is one line on the wire.
    LineBreak(Field),
    /// A field over its length limit.
    TooLong(Field),
    /// Not a valid client id.
    BadClient,
    /// More than `MAX_TOPICS` topic patterns.
    TooManyTopics,
    /// An empty topic pattern, or one with CR, LF or NUL.
    BadTopic,
}

impl FieldError {
    /// The one-line message a client or host sees.
    pub fn message(self) -> &'static str {
        match self {
            FieldError::DataTooLarge => "event data too large",
            FieldError::LineBreak(Field::Event) => "event must not contain CR, LF or NUL",
            FieldError::LineBreak(Field::Id) => "id must not contain CR, LF or NUL",
            FieldError::LineBreak(Field::Topic) => "topic must not contain CR, LF or NUL",
            FieldError::TooLong(Field::Event) => "event name longer than 128 bytes",
            FieldError::TooLong(Field::Id) => "id longer than 128 bytes",
            FieldError::TooLong(Field::Topic) => "topic longer than 64 bytes",
            FieldError::BadClient => CLIENT_ID_RULE,
            FieldError::TooManyTopics => "at most 8 topics per subscriber",
            FieldError::BadTopic => "topic must be non-empty without CR, LF or NUL",
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for FieldError {}

/// The fields of an event to publish, as bytes. Empty `id` means the server gives one; empty
/// `client` means everyone may see it.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct Fields<'a> {
    pub id: &'a [u8],
    pub event: &'a [u8],
    pub data: &'a [u8],
    pub topic: &'a [u8],
    pub client: &'a [u8],
}

impl Fields<'_> {
    /// Checks every rule an event must meet, with data of at most `max_data` bytes.
    pub fn check(&self, max_data: usize) -> Result<(), FieldError> {
        if self.data.len() > max_data {
            return Err(FieldError::DataTooLarge);
        }
        let lines = [
            (self.event, Field::Event, MAX_EVENT_NAME),
            (self.id, Field::Id, MAX_ID),
            (self.topic, Field::Topic, MAX_TOPIC),
        ];
        for (value, field, limit) in lines {
            if has_line_break_or_nul(value) {
                return Err(FieldError::LineBreak(field));
            }
            if value.len() > limit {
                return Err(FieldError::TooLong(field));
            }
        }
        if !self.client.is_empty() && !valid_client_id(self.client) {
            return Err(FieldError::BadClient);
        }
        Ok(())
    }
}

/// A subscriber's topic pattern: non-empty, one line, at most `MAX_TOPIC` bytes.
pub(crate) fn check_topic_pattern(pattern: &[u8]) -> Result<(), FieldError> {
    if pattern.len() > MAX_TOPIC {
        return Err(FieldError::TooLong(Field::Topic));
    }
    if pattern.is_empty() || has_line_break_or_nul(pattern) {
        return Err(FieldError::BadTopic);
    }
    Ok(())
}

/// Client ids are `[A-Za-z0-9._~-]{1,64}`: safe in URLs, logs and JSON without escaping.
pub(crate) fn valid_client_id(id: &[u8]) -> bool {
    (1..=MAX_CLIENT).contains(&id.len())
        && id.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

/// True when a field value could break out of its line (CR, LF) or is unsafe to carry (NUL).
pub(crate) fn has_line_break_or_nul(value: &[u8]) -> bool {
    value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_its_message() {
        let ok = Fields { data: b"x", ..Default::default() };
        assert_eq!(ok.check(1), Ok(()));
        assert_eq!(ok.check(0), Err(FieldError::DataTooLarge));
        let cases: [(Fields, FieldError); 5] = [
            (Fields { event: b"a\nb", ..ok }, FieldError::LineBreak(Field::Event)),
            (Fields { id: &[b'i'; 129], ..ok }, FieldError::TooLong(Field::Id)),
            (Fields { topic: b"t\0", ..ok }, FieldError::LineBreak(Field::Topic)),
            (Fields { client: b"no spaces", ..ok }, FieldError::BadClient),
            (Fields { event: &[b'e'; 129], ..ok }, FieldError::TooLong(Field::Event)),
        ];
        for (fields, want) in cases {
            assert_eq!(fields.check(10), Err(want));
            assert!(!want.message().is_empty());
        }
        assert_eq!(check_topic_pattern(b""), Err(FieldError::BadTopic));
        assert_eq!(check_topic_pattern(&[b't'; 65]), Err(FieldError::TooLong(Field::Topic)));
        assert!(valid_client_id(b"A-z_0.9~"));
        assert!(!valid_client_id(&[b'a'; 65]));
    }
}
