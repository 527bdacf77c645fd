//! What the link is built from: the server's cluster flags, with the link's own defaults.

use super::{DEFAULT_MAXLEN, DEFAULT_STREAM, RedisUrl};

/// What the link is built from (the server's flags).
#[derive(Clone, Debug)]
pub struct LinkConfig {
    pub url: RedisUrl,
    /// The stream's key (`--redis-stream`); also the prefix of the presence keys.
    pub stream: String,
    /// `--redis-maxlen`: each XADD trims the stream to about this many entries.
    pub maxlen: u64,
    /// Entries replayed from the stream at start (the server's `--history`).
    pub history: usize,
    /// Largest event data (the server's `--max-event-bytes`); sizes the buffers.
    pub max_event_bytes: usize,
    /// Entries one XREAD asks for.
    pub read_count: usize,
    /// How long one XREAD waits for entries, ms.
    pub block_ms: u64,
    /// Commands awaiting their reply at most; more publishes are refused with `Full`.
    pub max_pending: usize,
    /// How long a reply may be late before the connection counts as dead, ms.
    pub reply_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// How long this instance's presence set outlives its last refresh, ms (refreshed every
    /// third of it).
    pub presence_ttl_ms: u64,
    /// Tells this run of this instance apart from every other (e.g. from the clock and pid).
    pub instance: u64,
}

impl LinkConfig {
    pub fn new(url: RedisUrl, instance: u64) -> LinkConfig {
        LinkConfig {
            url,
            stream: DEFAULT_STREAM.to_string(),
            maxlen: DEFAULT_MAXLEN,
            history: 256,
            max_event_bytes: 8192,
            read_count: 64,
            block_ms: 5_000,
            max_pending: 1024,
            reply_timeout_ms: 5_000,
            connect_timeout_ms: 3_000,
            presence_ttl_ms: 30_000,
            instance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Link;
    use super::*;
    use crate::config::redis_url::UrlError;
    use mio::Token;

    #[test]
    fn urls_parse_with_defaults() {
        let u = RedisUrl::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.db, u.user.as_str(), u.has_password()),
            ("127.0.0.1", 6380, 2, "", false)
        );
        let u = RedisUrl::parse("redis://redis").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("redis", 6379, 0));
        let u = RedisUrl::parse("redis://[::1]:7000/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("::1", 7000, 0));
        assert_eq!(u.to_string(), "redis://[::1]:7000/0");
        let u = RedisUrl::parse("redis://:s3cr%40t@h:1").unwrap();
        assert_eq!((u.user.as_str(), u.password.as_str()), ("", "s3cr@t"));
        let u = RedisUrl::parse("redis://alice:p@ss/w:rd@h:1/3").unwrap();
        assert_eq!((u.user.as_str(), u.password.as_str(), u.host.as_str(), u.db), ("alice", "p@ss/w:rd", "h", 3));
    }
    #[test]
    fn bad_urls_say_why() {
        let cases = [
            ("http://h:1", UrlError::Scheme),
            ("h:6379", UrlError::Scheme),
            ("rediss://h:1", UrlError::Tls),
            ("redis://", UrlError::Host),
            ("redis://:1", UrlError::Host),
            ("redis://u:p@/0", UrlError::Host),
            ("redis://[::1", UrlError::Host),
            ("redis://h:0", UrlError::Port),
            ("redis://h:65536", UrlError::Port),
            ("redis://h:x", UrlError::Port),
            ("redis://h:", UrlError::Port),
            ("redis://[::1]x", UrlError::Port),
            ("redis://h:1/x", UrlError::Db),
            ("redis://h:1/1/2", UrlError::Db),
            ("redis://h:1/99999999999", UrlError::Db),
            ("redis://alice@h:1", UrlError::UserInfo),
            ("redis://:%zz@h:1", UrlError::UserInfo),
            ("redis://h:1/0?timeout=1", UrlError::Extra),
        ];
        for (url, want) in cases {
            assert_eq!(RedisUrl::parse(url), Err(want), "{url}");
            assert!(!want.message().is_empty());
        }
    }
    #[test]
    fn the_password_is_never_shown() {
        let u = RedisUrl::parse("redis://alice:hunter2@h:1/0").unwrap();
        let cfg = LinkConfig::new(u.clone(), 7);
        let link = Link::new(cfg.clone(), Token(1), Token(2));
        for text in [format!("{u}"), format!("{u:?}"), format!("{cfg:?}"), format!("{link:?}")] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("alice"), "{text}");
        }
        assert_eq!(u.to_string(), "redis://alice:***@h:1/0");
    }
}
