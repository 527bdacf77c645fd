//! Event sources the loop polls besides sockets: the host program's queue (`Publisher`,
//! `ShutdownHandle`), the `--stdin` bridge, and `--tick` pings.

use super::stdin::{Input, StdinBridge};
use super::{STDIN, Server};
use crate::config::Config;
use crate::limits::{Fields, MAX_TOPIC};
use crate::mem::Writer;
use crate::publish::handle::Kind;
use crate::time::Millis;
use log::{info, warn};
use mio::unix::SourceFd;
use mio::{Interest, Poll};

/// `--tick`: when the next `ping` is due.
pub(super) struct Ticker {
    every: Millis,
    next: Millis,
}

impl Ticker {
    pub fn new(secs: u64) -> Ticker {
        let every = if secs == 0 { Millis::NEVER } else { Millis::from_secs(secs) };
        Ticker { every, next: every }
    }

    /// When the next ping is due (`NEVER` when off).
    pub fn next(&self) -> Millis {
        self.next
    }

    /// Moves past `now`, skipping ticks missed while the loop was busy rather than firing
    /// them in a burst.
    fn advance(&mut self, now: Millis) {
        while self.next <= now {
            self.next = self.next.after(self.every);
        }
    }
}

impl Server {
    /// Handles what `Publisher`s and `ShutdownHandle`s queued.
    pub(super) fn on_wake(&mut self, now: Millis) {
        if self.shared.stop_requested() {
            info!("shutdown requested");
            return self.shutdown();
        }
        let shared = self.shared.clone();
        shared.drain(|m| match m.kind {
            Kind::Publish => {
                if let Err(e) = self.hub.publish_from("publisher", &m.fields(), now) {
                    warn!("publisher: event refused: {e}");
                }
            }
            Kind::Frame => self.conns.host_message(m.stream, Some(m.fields().data), &mut self.hub, now),
            Kind::End => self.conns.host_message(m.stream, None, &mut self.hub, now),
        });
    }

    /// `--stdin`: publishes every complete line.
    pub(super) fn on_stdin(&mut self) {
        let now = self.clock.now();
        let Some(bridge) = &mut self.stdin else { return };
        let hub = &mut self.hub;
        let result = bridge.read(|line| {
            let p = Fields { data: line.data, topic: line.topic, ..Default::default() };
            if let Err(e) = hub.publish_from("stdin", &p, now) {
                warn!("stdin: line refused: {e}");
            }
        });
        match result {
            Ok(Input::Open) => {}
            Ok(Input::Eof) => {
                info!("stdin closed; still serving");
                self.forget_stdin();
            }
            Err(e) => {
                warn!("stdin: {e}; no longer reading it");
                self.forget_stdin();
            }
        }
    }

    fn forget_stdin(&mut self) {
        if let Some(bridge) = self.stdin.take() {
            let _ = self.poll.registry().deregister(&mut SourceFd(&bridge.raw_fd()));
        }
    }

    /// `--tick`: publishes `event: ping` with the time, the seed's custom event. In cluster
    /// mode too it stays local (each instance ticks for its own subscribers).
    pub(super) fn tick(&mut self, now: Millis) {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut data = [0u8; 40];
        let mut w = Writer::new(&mut data);
        let _ = w.put(b"{\"time\": ").and_then(|_| w.put_u64(secs)).and_then(|_| w.put(b"}"));
        let p = Fields { event: b"ping", data: w.written(), ..Default::default() };
        if let Err(e) = self.hub.publish(&p) {
            warn!("tick: {e}");
        }
        self.ticker.advance(now);
    }
}

/// Sets up `--stdin`, or says once why it cannot be (e.g. /dev/null under systemd cannot be
/// polled) and carries on without it.
pub(super) fn open_stdin(poll: &Poll, config: &Config) -> Option<StdinBridge> {
    let max_line = config.max_event_bytes + 1 + MAX_TOPIC;
    let bridge = match StdinBridge::new(config.stdin_format, max_line) {
        Ok(bridge) => bridge,
        Err(e) => {
            warn!("--stdin: cannot read stdin ({e}); ignoring it");
            return None;
        }
    };
    match poll.registry().register(&mut SourceFd(&bridge.raw_fd()), STDIN, Interest::READABLE) {
        Ok(()) => Some(bridge),
        Err(e) => {
            warn!("--stdin: stdin cannot be polled ({e}; a file or /dev/null?); ignoring it");
            None
        }
    }
}
