//! Test helpers: a real redis-server on a free loopback port (stopped by pid), and a small
//! event loop that drives links the way the server's loop will.

#![allow(dead_code)]

use mio::{Events, Poll, Token};
use redis_link::link::{Ack, Claim, Entry, Link, LinkConfig, PublishError, RedisUrl, Sink};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    pub dir: PathBuf,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn temp_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("redis-link-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl RedisServer {
    /// An in-memory redis-server (no RDB, no AOF) with `extra` arguments.
    pub fn start(extra: &[&str]) -> RedisServer {
        RedisServer::start_on(free_port(), extra)
    }

    pub fn start_on(port: u16, extra: &[&str]) -> RedisServer {
        let mut args: Vec<String> = ["--save", "", "--appendonly", "no"].iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = RedisServer { child: None, port, args, dir: temp_dir() };
        server.spawn();
        server
    }

    /// Persistent: every write fsynced to the AOF in its own directory, so a restart keeps it.
    pub fn start_persistent() -> RedisServer {
        let port = free_port();
        let mut args: Vec<String> =
            ["--save", "", "--appendonly", "yes", "--appendfsync", "always"].iter().map(|s| s.to_string()).collect();
        let dir = temp_dir();
        args.extend(["--dir".to_string(), dir.display().to_string()]);
        let mut server = RedisServer { child: None, port, args, dir };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--daemonize", "no"]);
        cmd.args(["--logfile", ""]).args(&self.args);
        if !self.args.iter().any(|a| a == "--dir") {
            cmd.args(["--dir", &self.dir.display().to_string()]);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("redis-server installed");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut reply = [0u8; 64];
                // Any answer (PONG, or NOAUTH with requirepass) means it serves; LOADING too
                // early is fine, the link retries.
                if s.write_all(b"PING\r\n").is_ok() && s.read(&mut reply).is_ok_and(|n| n > 0) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Kills it (SIGKILL, by pid) and waits for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn url(&self) -> RedisUrl {
        RedisUrl::parse(&format!("redis://127.0.0.1:{}", self.port)).unwrap()
    }

    /// Runs redis-cli against it (bounded by redis-cli's own timeouts) and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--no-auth-warning"])
            .args(args)
            .output()
            .expect("redis-cli installed");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn cli_stdin(&self, args: &[&str], input: &[u8]) -> String {
        let mut child = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-x"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Got {
    pub redis_id: String,
    pub event_id: String,
    pub id: String,
    pub event: String,
    pub data: Vec<u8>,
    pub topic: String,
    pub client: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GotClaim {
    pub redis_id: String,
    pub client: String,
    pub instance: u64,
    pub stream: u64,
    pub mine: bool,
}

/// Records everything the link hands over.
#[derive(Default, Debug)]
pub struct Rec {
    pub entries: Vec<Got>,
    pub claims: Vec<GotClaim>,
    /// (token, redis id, event id)
    pub acks: Vec<(u64, String, String)>,
    pub fails: Vec<(u64, PublishError)>,
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Sink for Rec {
    fn entry(&mut self, e: &Entry<'_>) {
        let f = e.fields;
        self.entries.push(Got {
            redis_id: s(e.redis_id),
            event_id: s(e.event_id()),
            id: s(f.id),
            event: s(f.event),
            data: f.data.to_vec(),
            topic: s(f.topic),
            client: s(f.client),
        });
    }
    fn claim(&mut self, c: &Claim<'_>) {
        self.claims.push(GotClaim {
            redis_id: s(c.redis_id),
            client: s(c.client),
            instance: c.instance,
            stream: c.stream,
            mine: c.mine,
        });
    }
    fn acked(&mut self, token: u64, ack: &Ack<'_>) {
        self.acks.push((token, s(ack.redis_id), s(ack.event_id)));
    }
    fn failed(&mut self, token: u64, error: PublishError) {
        self.fails.push((token, error));
    }
}

pub struct Node {
    pub link: Link,
    pub rec: Rec,
}

/// One mio loop driving several links, as several instances would (each link is independent;
/// they only share the poll).
pub struct Net {
    poll: Poll,
    events: Events,
    pub nodes: Vec<Option<Node>>,
    start: Instant,
}

impl Net {
    pub fn new() -> Net {
        Net { poll: Poll::new().unwrap(), events: Events::with_capacity(256), nodes: Vec::new(), start: Instant::now() }
    }

    pub fn add(&mut self, cfg: LinkConfig) -> usize {
        let i = self.nodes.len();
        let link = Link::new(cfg, Token(2 * i), Token(2 * i + 1));
        self.nodes.push(Some(Node { link, rec: Rec::default() }));
        i
    }

    pub fn node(&mut self, i: usize) -> &mut Node {
        self.nodes[i].as_mut().expect("node still running")
    }

    pub fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// One turn of the loop: wait for readiness (at most `max_wait`, or until the earliest
    /// deadline), hand events to their link, tick every link.
    pub fn turn(&mut self, max_wait: Duration) {
        let now = self.now();
        let next = self.nodes.iter().flatten().map(|n| n.link.deadline()).min().unwrap_or(u64::MAX);
        let wait = max_wait.min(Duration::from_millis(next.saturating_sub(now)));
        self.poll.poll(&mut self.events, Some(wait)).unwrap();
        let now = self.now();
        let registry = self.poll.registry();
        for ev in self.events.iter() {
            let i = ev.token().0 / 2;
            if let Some(Some(node)) = self.nodes.get_mut(i) {
                node.link.on_ready(ev.token(), now, registry, &mut node.rec);
            }
        }
        for node in self.nodes.iter_mut().flatten() {
            node.link.tick(now, registry, &mut node.rec);
        }
    }

    /// Turns until `done` holds or `timeout` passes; whether it held.
    pub fn run_until(&mut self, timeout: Duration, mut done: impl FnMut(&mut Net) -> bool) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if done(self) {
                return true;
            }
            self.turn(Duration::from_millis(20));
        }
        done(self)
    }

    pub fn run_for(&mut self, time: Duration) {
        let until = Instant::now() + time;
        while Instant::now() < until {
            self.turn(Duration::from_millis(20));
        }
    }

    pub fn all_connected(&mut self) -> bool {
        self.nodes.iter().flatten().all(|n| n.link.stats().connected)
    }

    /// Drops a node's link: its sockets close, as when the instance dies.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i] = None;
    }
}

/// A config for node `i` of a test: small timeouts so failures show quickly.
pub fn config(url: RedisUrl, instance: u64) -> LinkConfig {
    let mut cfg = LinkConfig::new(url, instance);
    cfg.block_ms = 1000;
    cfg.reply_timeout_ms = 2000;
    cfg.connect_timeout_ms = 1000;
    cfg
}
