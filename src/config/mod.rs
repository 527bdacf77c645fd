//! Configuration: the `Config` value a `Server` is built from (this file), and its
//! command-line and environment parser (`flags`).
//!
//! Every flag `--some-name` can also be given as the environment variable `TINYSSE_SOME_NAME`;
//! the command line wins over the environment. Repeatable flags take a comma-separated list in
//! the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

/// When written records are forced to stable storage (`--fsync always|never|SECS`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// fdatasync after every write of the history file.
    Always,
    /// Leave it to the kernel's writeback.
    Never,
    /// fdatasync at most every `ms`, when something was written since the last one.
    Every {
        /// The longest time between two fdatasyncs.
        ms: u64,
    },
}

impl Default for Fsync {
    fn default() -> Fsync {
        Fsync::Every { ms: 1000 }
    }
}

impl Fsync {
    /// Parses a flag value: `always`, `never`, or whole seconds from 1 to 86400.
    pub fn parse(value: &str) -> Option<Fsync> {
        match value {
            "always" => Some(Fsync::Always),
            "never" => Some(Fsync::Never),
            _ if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => match value.parse::<u64>() {
                Ok(secs @ 1..=86_400) => Some(Fsync::Every { ms: secs * 1000 }),
                _ => None,
            },
            _ => None,
        }
    }
}

/// How a `--stdin` line maps to an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StdinFormat {
    /// The whole line is the data.
    Lines,
    /// `TOPIC PAYLOAD` (as `mosquitto_sub -v` prints it): the first word is the topic, the rest
    /// the data.
    Topic,
}

/// The built-in routes a host program may switch off (each `true` by default). A route that is
/// off is answered 404 (405 for publishing on `/events`), and its path is free for
/// `Server::stream_route`. `GET /events` and `GET /sse` are always on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Builtins {
    /// `GET /` (the page) and `GET /tinysse.js`.
    pub page: bool,
    /// `GET /stream`, the demo text stream.
    pub stream_demo: bool,
    /// `POST /sse/send`.
    pub sse_send: bool,
    /// Publishing over HTTP at all (`POST /events`, and `POST /sse/send` with it).
    pub publish_http: bool,
    /// `GET /stats` and `GET /metrics`.
    pub status: bool,
}

impl Default for Builtins {
    fn default() -> Self {
        Builtins { page: true, stream_demo: true, sse_send: true, publish_http: true, status: true }
    }
}

/// Everything a `Server` needs to know. Build one with `Config::default()` and change fields, or
/// parse one from flags with [`Config::from_args`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Subscriber streams served at once; 8 more slots exist for short requests.
    pub max_clients: usize,
    /// Seconds of silence on a stream before a `:` comment is sent; 0 turns heartbeats off.
    pub heartbeat_secs: u64,
    /// Reconnection delay sent to clients in the `retry:` line, in milliseconds.
    pub retry_ms: u64,
    /// Largest event data accepted by a publish, in bytes.
    pub max_event_bytes: usize,
    /// Events kept for Last-Event-ID replay.
    pub history: usize,
    /// Seconds after which a stream is ended cleanly between two events; 0 = never.
    pub stream_timeout_secs: u64,
    /// Seconds a client may take to send a complete request head.
    pub head_timeout_secs: u64,
    /// Seconds an idle keep-alive connection (between requests) stays open.
    pub keepalive_timeout_secs: u64,
    /// Request buffers (each holds one request head, body and response head); a connection
    /// needs one only while it sends a request, a subscriber none once it streams.
    pub request_buffers: usize,
    /// Seconds between `ping` events carrying the time; 0 = off.
    pub tick_secs: u64,
    /// When set, publishing needs `Authorization: Bearer <token>`; when not, only loopback
    /// peers may publish.
    pub publish_token: Option<String>,
    /// When set, stream routes need the token (Bearer header, `?token=` or cookie
    /// `tinysse_token`).
    pub subscribe_token: Option<String>,
    /// Origins allowed to read responses with credentials; empty = any origin, without.
    pub cors_origins: Vec<String>,
    /// Publish each line of standard input as an event.
    pub stdin: bool,
    /// How a stdin line maps to an event.
    pub stdin_format: StdinFormat,
    /// Built-in routes that are on.
    pub builtins: Builtins,
    /// `--history-file`: keep history in a journal on disk, so it survives restarts and power
    /// loss; `None` keeps it in memory only.
    pub history_file: Option<PathBuf>,
    /// Bytes the journal's files may take on disk together.
    pub history_file_bytes: u64,
    /// When journal writes are forced to stable storage.
    pub fsync: Fsync,
    /// `--redis`: cluster mode, every event goes through this Redis's stream (docs/cluster.md).
    #[cfg(feature = "cluster")]
    pub redis: Option<crate::config::redis_url::RedisUrl>,
    /// `--redis-stream`: the stream key (other keys derive from it); used in cluster mode only.
    pub redis_stream: String,
    /// `--redis-maxlen`: entries the stream keeps, about (`XADD MAXLEN ~`); cluster mode only.
    pub redis_maxlen: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_clients: 1024,
            heartbeat_secs: 15,
            retry_ms: 3000,
            max_event_bytes: 8192,
            history: 256,
            stream_timeout_secs: 0,
            head_timeout_secs: 20,
            keepalive_timeout_secs: 30,
            request_buffers: 64,
            tick_secs: 0,
            publish_token: None,
            subscribe_token: None,
            cors_origins: Vec::new(),
            stdin: false,
            stdin_format: StdinFormat::Lines,
            builtins: Builtins::default(),
            history_file: None,
            history_file_bytes: 8 << 20, // 8 MiB
            fsync: Fsync::default(),
            #[cfg(feature = "cluster")]
            redis: None,
            redis_stream: DEFAULT_STREAM.to_string(),
            redis_maxlen: DEFAULT_MAXLEN,
        }
    }
}

/// Why `Config::from_args` did not produce a config.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `--help` was asked for; the text to print (to stdout, exit 0).
    Help(String),
    /// `--version` was asked for.
    Version,
    /// A bad flag or value; the one-line message to print (to stderr, exit 2).
    Invalid(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Help(_) => f.write_str("help requested"),
            ConfigError::Version => f.write_str("version requested"),
            ConfigError::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ConfigError {}

mod flags;

/// `--redis-stream` when not given.
pub(crate) const DEFAULT_STREAM: &str = "tinysse";
/// `--redis-maxlen` when not given: XADD keeps about this many entries (`MAXLEN ~`).
pub(crate) const DEFAULT_MAXLEN: u64 = 100_000;
#[cfg(feature = "cluster")]
pub mod redis_url;
