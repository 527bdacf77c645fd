//! The flags: one table of names, values and help lines, parsed from the command line over the
//! environment (`TINYSSE_<NAME>`), with the defaults `--help` shows.

use super::{Config, ConfigError, Fsync, StdinFormat};
use std::net::SocketAddr;
use std::path::PathBuf;

/// One flag: its name (without `--`), value placeholder and help line.
struct Flag {
    name: &'static str,
    value: &'static str,
    help: &'static str,
}

const FLAGS: &[Flag] = &[
    Flag { name: "listen", value: "ADDR", help: "address to listen on" },
    Flag {
        name: "max-clients",
        value: "N",
        help: "subscriber streams served at once (plus 8 reserved slots for short requests)",
    },
    Flag { name: "heartbeat", value: "SECS", help: "send a ':' comment on a stream silent this long; 0 = off" },
    Flag { name: "retry", value: "MS", help: "reconnection delay sent to clients in the 'retry:' line" },
    Flag { name: "max-event-bytes", value: "N", help: "largest event data a publish may carry (bigger: 413)" },
    Flag { name: "history", value: "N", help: "events kept for Last-Event-ID replay" },
    Flag {
        name: "history-file",
        value: "PATH",
        help: "keep history in a journal at PATH (segments PATH.N beside it), so it survives restarts",
    },
    Flag { name: "history-file-bytes", value: "N", help: "bytes the journal's files may take on disk" },
    Flag {
        name: "fsync",
        value: "always|never|SECS",
        help: "force journal writes to disk after each loop turn, never, or at most every SECS",
    },
    Flag { name: "stream-timeout", value: "SECS", help: "end each stream cleanly after this long; 0 = never" },
    Flag {
        name: "head-timeout",
        value: "SECS",
        help: "close a connection whose request head is incomplete after this long",
    },
    Flag { name: "keepalive-timeout", value: "SECS", help: "close an idle keep-alive connection after this long" },
    Flag { name: "request-buffers", value: "N", help: "requests read at once (each buffer holds one request)" },
    Flag { name: "tick", value: "SECS", help: "publish 'event: ping' with the time every SECS; 0 = off" },
    Flag {
        name: "publish-token",
        value: "T",
        help: "require 'Authorization: Bearer T' to publish (without it: loopback peers only)",
    },
    Flag {
        name: "subscribe-token",
        value: "T",
        help: "require T (Bearer header, ?token=, or cookie tinysse_token) on stream routes",
    },
    Flag { name: "stdin", value: "", help: "publish each line of standard input as an event" },
    Flag {
        name: "stdin-format",
        value: "lines|topic",
        help: "'topic': a line 'TOPIC PAYLOAD' (as mosquitto_sub -v prints) publishes PAYLOAD to TOPIC",
    },
    Flag {
        name: "cors-origin",
        value: "ORIGIN",
        help: "allow this origin, with credentials (repeatable; env: comma-separated)",
    },
    Flag {
        name: "redis",
        value: "redis://[user:password@]host:port[/db]",
        help: "cluster mode (a build with --features cluster): share events with other instances through this Redis",
    },
    Flag { name: "redis-stream", value: "KEY", help: "cluster mode: the Redis stream key (others derive from it)" },
    Flag { name: "redis-maxlen", value: "N", help: "cluster mode: entries the Redis stream keeps (about)" },
];

/// What `--redis*` says in a binary built without cluster mode.
#[cfg(not(feature = "cluster"))]
const NO_CLUSTER: &str = "this binary was built without cluster mode (build with --features cluster)";

impl Config {
    /// Parses flags (without the program name) over the environment `env` (pairs of name and
    /// value, normally `std::env::vars()`), starting from the defaults.
    pub fn from_args<A, E>(args: A, env: E) -> Result<Config, ConfigError>
    where
        A: IntoIterator<Item = std::ffi::OsString>,
        E: IntoIterator<Item = (String, String)>,
    {
        let mut config = Config::default();
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("TINYSSE_") else { continue };
            let name = rest.to_ascii_lowercase().replace('_', "-");
            if let Some(flag) = FLAGS.iter().find(|f| f.name == name) {
                config.set(flag.name, &value).map_err(|e| ConfigError::Invalid(format!("{key}: {e}")))?;
            }
        }
        // A repeatable flag on the command line replaces the environment's list.
        let mut cors_from_args = false;
        let mut parser = lexopt::Parser::from_args(args);
        loop {
            let arg = parser.next().map_err(|e| ConfigError::Invalid(e.to_string()))?;
            match arg {
                None => break,
                Some(lexopt::Arg::Long("help")) | Some(lexopt::Arg::Short('h')) => {
                    return Err(ConfigError::Help(help_text()));
                }
                Some(lexopt::Arg::Long("version")) | Some(lexopt::Arg::Short('V')) => {
                    return Err(ConfigError::Version);
                }
                Some(lexopt::Arg::Long(name)) => {
                    let name = name.to_string();
                    let Some(flag) = FLAGS.iter().find(|f| f.name == name) else {
                        return Err(ConfigError::Invalid(format!("unknown flag --{name} (see --help)")));
                    };
                    // A switch (no value placeholder) takes no value.
                    let value = if flag.value.is_empty() {
                        String::new()
                    } else {
                        parser
                            .value()
                            .map_err(|e| ConfigError::Invalid(e.to_string()))?
                            .into_string()
                            .map_err(|_| ConfigError::Invalid(format!("--{name}: value is not valid UTF-8")))?
                    };
                    if flag.name == "cors-origin" && !cors_from_args {
                        cors_from_args = true;
                        config.cors_origins.clear();
                    }
                    config.set(flag.name, &value).map_err(|e| ConfigError::Invalid(format!("--{name}: {e}")))?;
                }
                Some(other) => return Err(ConfigError::Invalid(format!("{} (see --help)", other.unexpected()))),
            }
        }
        Ok(config)
    }

    /// The `TINYSSE_*` variables in `env` that name no setting (a typo in a systemd drop-in
    /// would otherwise be ignored without a word).
    pub fn unknown_env<E: IntoIterator<Item = (String, String)>>(env: E) -> Vec<String> {
        env.into_iter()
            .map(|(key, _)| key)
            .filter(|key| {
                key.strip_prefix("TINYSSE_")
                    .is_some_and(|rest| !FLAGS.iter().any(|f| f.name == rest.to_ascii_lowercase().replace('_', "-")))
            })
            .collect()
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        match name {
            "listen" => self.listen = listen_addr(value)?,
            "max-clients" => self.max_clients = number(value, 1, 1 << 19)?,
            "heartbeat" => self.heartbeat_secs = number(value, 0, 86_400)?,
            "retry" => self.retry_ms = number(value, 0, 86_400_000)?,
            "max-event-bytes" => self.max_event_bytes = number(value, 1, 1 << 20)?,
            "history" => self.history = number(value, 0, 1 << 20)?,
            "stream-timeout" => self.stream_timeout_secs = number(value, 0, 86_400 * 365)?,
            "head-timeout" => self.head_timeout_secs = number(value, 1, 3600)?,
            "keepalive-timeout" => self.keepalive_timeout_secs = number(value, 1, 86_400)?,
            "request-buffers" => self.request_buffers = number(value, 1, 1 << 16)?,
            "tick" => self.tick_secs = number(value, 0, 86_400)?,
            "history-file" => {
                if value.is_empty() {
                    return Err("a path is needed".into());
                }
                self.history_file = Some(PathBuf::from(value));
            }
            "history-file-bytes" => self.history_file_bytes = number(value, 65_536, 1 << 40)?,
            "fsync" => {
                self.fsync = Fsync::parse(value)
                    .ok_or_else(|| format!("'{value}' is not always, never or whole seconds from 1 to 86400"))?
            }
            "stdin" => {
                self.stdin = match value {
                    "" | "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" => false,
                    _ => return Err(format!("'{value}' is not true or false")),
                }
            }
            "stdin-format" => {
                self.stdin_format = match value {
                    "lines" => StdinFormat::Lines,
                    "topic" => StdinFormat::Topic,
                    _ => return Err(format!("'{value}' is not lines or topic")),
                }
            }
            "publish-token" => self.publish_token = Some(token(value)?),
            "subscribe-token" => self.subscribe_token = Some(token(value)?),
            "cors-origin" => {
                for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                    if !(origin.starts_with("http://") || origin.starts_with("https://"))
                        || origin.bytes().any(|b| b.is_ascii_control() || b == b' ')
                    {
                        return Err(format!("'{origin}' is not an origin like https://example.com"));
                    }
                    self.cors_origins.push(origin.trim_end_matches('/').to_string());
                }
            }
            #[cfg(feature = "cluster")]
            "redis" => {
                let url = super::redis_url::RedisUrl::parse(value).map_err(|e| e.message().to_string())?;
                self.redis = Some(url);
            }
            "redis-stream" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err("a stream key must be non-empty printable ASCII without spaces".into());
                }
                self.redis_stream = value.to_string();
            }
            "redis-maxlen" => self.redis_maxlen = number(value, 1, 1 << 40)?,
            #[cfg(not(feature = "cluster"))]
            "redis" => return Err(NO_CLUSTER.into()),
            _ => return Err(format!("unknown setting {name}")),
        }
        Ok(())
    }
}

/// `--listen`: an address like `0.0.0.0:8080` or `[::]:8080`, or the short forms people type:
/// `8080` and `:8080` (every IPv4 address), `localhost:8080` (IPv4 loopback).
fn listen_addr(value: &str) -> Result<SocketAddr, String> {
    let port = value.strip_prefix(':').or_else(|| value.strip_prefix("localhost:")).unwrap_or(value);
    let bad = || format!("'{value}' is not an address like 0.0.0.0:8080, :8080 or localhost:8080");
    if port.len() != value.len() || value.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = port.parse().map_err(|_| bad())?;
        let ip = if value.starts_with("localhost:") { [127, 0, 0, 1] } else { [0, 0, 0, 0] };
        return Ok(SocketAddr::from((ip, port)));
    }
    value.parse().map_err(|_| bad())
}

/// A token: printable ASCII without spaces, so it survives headers, queries and cookies.
fn token(value: &str) -> Result<String, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a token must be non-empty printable ASCII without spaces".into());
    }
    Ok(value.to_string())
}

/// Parses a decimal number within `min..=max`, digits only (no sign, no spaces).
fn number<T: TryFrom<u64>>(value: &str, min: u64, max: u64) -> Result<T, String> {
    let bad = || format!("'{value}' is not a whole number from {min} to {max}");
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = value.parse().map_err(|_| bad())?;
    if n < min || n > max {
        return Err(bad());
    }
    T::try_from(n).map_err(|_| bad())
}

fn help_text() -> String {
    let defaults = Config::default();
    let default_of = |name: &str| -> String {
        match name {
            "listen" => defaults.listen.to_string(),
            "max-clients" => defaults.max_clients.to_string(),
            "heartbeat" => defaults.heartbeat_secs.to_string(),
            "retry" => defaults.retry_ms.to_string(),
            "max-event-bytes" => defaults.max_event_bytes.to_string(),
            "history" => defaults.history.to_string(),
            "stream-timeout" => defaults.stream_timeout_secs.to_string(),
            "head-timeout" => defaults.head_timeout_secs.to_string(),
            "keepalive-timeout" => defaults.keepalive_timeout_secs.to_string(),
            "request-buffers" => defaults.request_buffers.to_string(),
            "tick" => defaults.tick_secs.to_string(),
            "history-file" => "none (history in memory only)".into(),
            "history-file-bytes" => defaults.history_file_bytes.to_string(),
            "fsync" => "1".into(),
            "publish-token" | "subscribe-token" => "none".into(),
            "stdin" => "off".into(),
            "stdin-format" => "lines".into(),
            "cors-origin" => "any origin, without credentials".into(),
            "redis" => "none".into(),
            "redis-stream" => super::DEFAULT_STREAM.into(),
            "redis-maxlen" => super::DEFAULT_MAXLEN.to_string(),
            _ => String::new(),
        }
    };
    let mut text = String::from(
        "tinysse: a small Server-Sent Events server\n\n\
         Usage: tinysse [FLAGS]\n\n\
         Every flag can also be set as TINYSSE_<NAME> in the environment (e.g. TINYSSE_MAX_CLIENTS=64).\n\
         Logging: RUST_LOG=debug|info|warn|error (default info).\n\nFlags:\n",
    );
    for f in FLAGS {
        let left = format!("--{} {}", f.name, f.value);
        text.push_str(&format!("  {left:<26} {} [default: {}]\n", f.help, default_of(f.name)));
    }
    text.push_str("  -h, --help                 print this help\n  -V, --version              print the version\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_args(args.iter().map(|a| a.into()), env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_without_flags() {
        assert_eq!(parse(&[], &[]), Ok(Config::default()));
    }

    #[test]
    fn flags_override_environment() {
        let c =
            parse(&["--max-clients", "10", "--heartbeat=0"], &[("TINYSSE_MAX_CLIENTS", "5"), ("TINYSSE_RETRY", "10")])
                .unwrap();
        assert_eq!((c.max_clients, c.heartbeat_secs, c.retry_ms), (10, 0, 10));
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        for args in [
            &["--max-clients", "abc"][..],
            &["--max-clients", "+5"],
            &["--listen", "nope"],
            &["--bogus"],
            &["--heartbeat"],
        ] {
            match parse(args, &[]) {
                Err(ConfigError::Invalid(msg)) => assert!(!msg.contains('\n'), "{msg}"),
                other => panic!("{args:?}: {other:?}"),
            }
        }
        assert!(matches!(parse(&[], &[("TINYSSE_HISTORY", "x")]), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn listen_takes_the_short_forms() {
        for (given, want) in [
            ("8080", "0.0.0.0:8080"),
            (":8080", "0.0.0.0:8080"),
            ("localhost:8080", "127.0.0.1:8080"),
            ("127.0.0.1:9", "127.0.0.1:9"),
            ("[::1]:80", "[::1]:80"),
        ] {
            assert_eq!(parse(&["--listen", given], &[]).map(|c| c.listen.to_string()), Ok(want.to_string()), "{given}");
        }
        for bad in ["", ":", "localhost", "99999", ":x", "host:80"] {
            assert!(matches!(parse(&["--listen", bad], &[]), Err(ConfigError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn errors_say_things_once_and_typos_in_the_environment_are_found() {
        let Err(ConfigError::Invalid(msg)) = parse(&["-x"], &[]) else { panic!() };
        assert_eq!(msg.matches("invalid option").count() + msg.matches("unexpected").count(), 1, "{msg}");
        let Err(ConfigError::Invalid(msg)) = parse(&["extra-positional"], &[]) else { panic!() };
        assert_eq!(msg.matches("unexpected argument").count(), 1, "{msg}");
        let env = [("TINYSSE_MAX_CLIENT", "5"), ("TINYSSE_HISTORY_FILE", "/x"), ("PATH", "/bin")];
        let unknown = Config::unknown_env(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(unknown, ["TINYSSE_MAX_CLIENT"]);
    }

    #[test]
    fn help_lists_every_flag_with_default() {
        let Err(ConfigError::Help(text)) = parse(&["--help"], &[]) else { panic!() };
        for f in FLAGS {
            assert!(text.contains(&format!("--{}", f.name)));
        }
        assert!(text.contains("[default: 0.0.0.0:8080]"));
    }
}
