//! The link's two connections through their states: connecting, the handshake, reading and
//! writing on readiness, closing on failure and backing off before the next attempt.

use super::command::{Kind, Pending};
use super::conn::{Conn, State};
use super::reader::Reading;
use super::resp::RespError;
use super::{BACKOFF_FIRST_MS, BACKOFF_MAX_MS, Link, MAX_ERROR_TEXT, NEVER, PublishError, READS_PER_CALL, Sink};
use super::{WARN_EVERY_MS, resp};
use log::{Level, log};
use mio::net::TcpStream;
use mio::{Interest, Registry};
use std::fmt;
use std::io::{self, Read};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Side {
    Command,
    Reader,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Command => "command",
            Side::Reader => "reader",
        })
    }
}

/// Why a connection was closed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Reason {
    Resolve(io::ErrorKind),
    Connect(io::ErrorKind),
    Closed,
    Io(io::ErrorKind),
    Timeout,
    Protocol(RespError),
    /// Redis answered an error the link cannot go on after; its text is in `Link::error_text`.
    Refused,
    /// A reply the link cannot hold or skip.
    Overflow,
}

/// The Redis error text behind the last `Reason::Refused`, printable.
pub(super) struct ErrorText {
    pub(super) bytes: [u8; MAX_ERROR_TEXT],
    pub(super) len: usize,
}

impl ErrorText {
    pub(super) fn set(&mut self, text: &[u8]) {
        self.len = text.len().min(MAX_ERROR_TEXT);
        for (to, &from) in self.bytes.iter_mut().zip(text) {
            *to = if from.is_ascii_graphic() || from == b' ' { from } else { b'?' };
        }
    }

    pub(super) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

pub(super) struct ReasonText<'a>(Reason, &'a ErrorText);

impl fmt::Display for ReasonText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Reason::Resolve(kind) => write!(f, "cannot resolve host ({kind})"),
            Reason::Connect(kind) => write!(f, "cannot connect ({kind})"),
            Reason::Closed => f.write_str("closed by redis"),
            Reason::Io(kind) => write!(f, "{kind}"),
            Reason::Timeout => f.write_str("no answer in time"),
            Reason::Protocol(e) => write!(f, "{e}"),
            Reason::Refused => write!(f, "refused: {}", self.1.as_str()),
            Reason::Overflow => f.write_str("reply larger than the buffer"),
        }
    }
}

impl Link {
    pub(super) fn conn(&mut self, side: Side) -> &mut Conn {
        match side {
            Side::Command => &mut self.cmd,
            Side::Reader => &mut self.reader,
        }
    }

    pub(super) fn reply_deadline(&self, side: Side) -> u64 {
        match side {
            Side::Command => {
                self.pending.front().map_or(NEVER, |(p, _)| p.sent_at.saturating_add(self.cfg.reply_timeout_ms))
            }
            Side::Reader => self.reader.deadline,
        }
    }

    pub(super) fn connect(&mut self, side: Side, now: u64, registry: &Registry) {
        let result = self.cfg.url.resolve().map_err(|e| Reason::Resolve(e.kind())).and_then(|addr| {
            let mut sock = TcpStream::connect(addr).map_err(|e| Reason::Connect(e.kind()))?;
            let token = self.conn(side).token;
            registry
                .register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| Reason::Connect(e.kind()))?;
            Ok(sock)
        });
        match result {
            Ok(sock) => {
                let timeout = self.cfg.connect_timeout_ms;
                let conn = self.conn(side);
                conn.sock = Some(sock);
                conn.state = State::Connecting;
                conn.deadline = now + timeout;
            }
            Err(reason) => self.schedule_retry(side, reason, now),
        }
    }

    pub(super) fn drive(&mut self, side: Side, now: u64, registry: &Registry, sink: &mut impl Sink) {
        if let Err(reason) = self.try_drive(side, now, sink) {
            self.close(side, reason, now, registry, sink);
        }
    }

    pub(super) fn try_drive(&mut self, side: Side, now: u64, sink: &mut impl Sink) -> Result<(), Reason> {
        match self.conn(side).state {
            State::Down => return Ok(()),
            State::Connecting => {
                if !self.conn(side).established()? {
                    return Ok(());
                }
                self.start(side, now)?;
            }
            State::Handshake | State::Ready => {}
        }
        self.conn(side).flush()?;
        self.read(side, now, sink)?;
        self.conn(side).flush()
    }

    /// The connection is up: queue the handshake (and, on the reader, the first stream command).
    pub(super) fn start(&mut self, side: Side, now: u64) -> Result<(), Reason> {
        let url = &self.cfg.url;
        let conn = match side {
            Side::Command => &mut self.cmd,
            Side::Reader => &mut self.reader,
        };
        if let Some(sock) = conn.sock.as_ref() {
            // Commands are small and replies awaited: Nagle would only delay them.
            let _ = sock.set_nodelay(true);
        }
        conn.state = State::Handshake;
        let mut db = [0u8; 20];
        let db = resp::format_u64(u64::from(url.db), &mut db);
        let mut sent = 0;
        let mut ok = true;
        if url.has_password() {
            ok &= if url.user.is_empty() {
                conn.outb.push_command(&[&b"AUTH"[..], url.password.as_bytes()])
            } else {
                conn.outb.push_command(&[&b"AUTH"[..], url.user.as_bytes(), url.password.as_bytes()])
            };
            sent += 1;
        }
        if url.db != 0 {
            ok &= conn.outb.push_command(&[&b"SELECT"[..], db]);
            sent += 1;
        }
        // Ready only after a round trip, so a refused AUTH (or none where one is needed) shows.
        ok &= conn.outb.push_command(&[&b"PING"[..]]);
        sent += 1;
        if !ok {
            return Err(Reason::Overflow);
        }
        match side {
            Side::Command => {
                for _ in 0..sent {
                    self.pending.push(Pending { kind: Kind::Handshake, token: 0, sent_at: now, id_len: 0 }, b"");
                }
                self.cmd_handshake = sent;
            }
            Side::Reader => {
                self.reader_handshake = sent;
                self.reader.deadline = now + self.cfg.reply_timeout_ms;
                if self.have_cursor {
                    self.send_xread()?;
                } else {
                    self.send_history()?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn read(&mut self, side: Side, now: u64, sink: &mut impl Sink) -> Result<(), Reason> {
        self.process(side, sink)?;
        for _ in 0..READS_PER_CALL {
            let block_ms = self.cfg.block_ms + self.cfg.reply_timeout_ms;
            let conn = self.conn(side);
            let Some(sock) = conn.sock.as_mut() else { return Ok(()) };
            let space = conn.inb.space();
            if space.is_empty() {
                // `process` takes whatever fits; a full buffer it cannot take is a reply of no
                // shape the link asked for.
                return Err(Reason::Overflow);
            }
            match sock.read(space) {
                Ok(0) => return Err(Reason::Closed),
                Ok(n) => {
                    conn.inb.end += n;
                    if side == Side::Reader {
                        conn.deadline = now + block_ms;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.read_more = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Reason::Io(e.kind())),
            }
            self.process(side, sink)?;
        }
        self.conn(side).read_more = true;
        Ok(())
    }

    pub(super) fn process(&mut self, side: Side, sink: &mut impl Sink) -> Result<(), Reason> {
        match side {
            Side::Command => self.process_replies(sink),
            Side::Reader => self.process_stream(sink),
        }
    }

    pub(super) fn up(&mut self, side: Side) {
        let now = self.now;
        let conn = self.conn(side);
        conn.state = State::Ready;
        conn.attempts = 0;
        let again = conn.ever_up;
        conn.ever_up = true;
        let warned = std::mem::take(&mut conn.warned);
        if again {
            self.stats.reconnects += 1;
        }
        // Said aloud only when the outage was: a flapping link logs at most its warnings' rate.
        let level = if warned { Level::Info } else { Level::Debug };
        log!(level, "redis {}: {} connection up", self.cfg.url, side);
        if side == Side::Command {
            // At once: a Redis that restarted empty shows here, and the caller re-adds.
            self.refresh_at = now;
        }
    }

    pub(super) fn close(&mut self, side: Side, reason: Reason, now: u64, registry: &Registry, sink: &mut impl Sink) {
        let conn = self.conn(side);
        if let Some(mut sock) = conn.sock.take() {
            let _ = registry.deregister(&mut sock);
        }
        conn.inb.clear();
        conn.outb.clear();
        conn.write_blocked = false;
        conn.read_more = false;
        match side {
            Side::Command => {
                self.cmd_handshake = 0;
                // Sent or not, Redis may or may not have taken these: never report them taken.
                while let Some(p) = self.pending.pop() {
                    if p.kind.is_publish() {
                        self.stats.publish_failures += 1;
                        sink.failed(p.token, PublishError::Down);
                    }
                }
            }
            Side::Reader => {
                self.reader_handshake = 0;
                self.reading = Reading::Idle;
            }
        }
        self.schedule_retry(side, reason, now);
    }

    pub(super) fn schedule_retry(&mut self, side: Side, reason: Reason, now: u64) {
        let jitter = self.cfg.instance.rotate_left(self.conn(side).attempts) % 64;
        let conn = self.conn(side);
        let was = conn.state;
        conn.state = State::Down;
        let backoff = (BACKOFF_FIRST_MS << conn.attempts.min(16)).min(BACKOFF_MAX_MS);
        conn.deadline = now + backoff + jitter;
        conn.attempts = conn.attempts.saturating_add(1);
        let what = if was == State::Ready { "lost" } else { "failed" };
        let level = if now >= self.warn_at {
            self.warn_at = now + WARN_EVERY_MS;
            self.conn(side).warned = true;
            Level::Warn
        } else {
            Level::Debug
        };
        log!(
            level,
            "redis {}: {} connection {}: {}; retrying, publishes fail until it is back",
            self.cfg.url,
            side,
            what,
            ReasonText(reason, &self.error_text)
        );
    }
}
