//! Subscriber streams: becoming one, writing it what it is owed from the event log, heartbeats
//! and the stream timeout, and the fan-out pass over every subscriber.

use super::Close;
use super::Peer;
use super::State;
use super::table::Conns;
use crate::deliver::{self, Cursor, Pass, Sink, WriteError};
use crate::mem::{Key, Writer};
use crate::publish::Hub;
use crate::publish::sse::HEARTBEAT;
use crate::time::Millis;
use log::{info, warn};
use std::time::{Duration, Instant};

impl Conns {
    pub(super) fn become_subscriber(&mut self, key: Key, cursor: u64, filtered: bool, hub: &mut Hub, now: Millis) {
        // Looked up before this connection becomes a subscriber, so only an older one matches.
        let client = if filtered { hub.filters.client(key.index) } else { b"" };
        let older = (!client.is_empty()).then(|| hub.filters.find_client(client)).flatten();
        if let Some(older) = older.and_then(|slot| self.slab.key_at(slot as usize)) {
            info!("client {}: replaced by a new stream", String::from_utf8_lossy(client));
            self.end_subscriber(older, hub, now);
        }
        self.set_state(key, State::Subscriber, now);
        let Some(conn) = self.slab.get_mut(key) else { return };
        conn.cursor = Cursor::at(cursor, filtered);
        hub.subscribers += 1;
        if filtered {
            hub.filters.claim_client(key.index);
        }
        self.write_subscriber(key, hub, now);
    }

    /// Writes the subscriber what it is owed, until done or the socket would block.
    pub(super) fn write_subscriber(&mut self, key: Key, hub: &mut Hub, now: Millis) {
        let Some(conn) = self.slab.get_mut(key) else { return };
        let sink = Sink { sock: &mut conn.sock, head: conn.buf, blocked: &mut conn.write_blocked, slot: key.index };
        match deliver::write(sink, &mut conn.cursor, &hub.log, &hub.filters, &mut self.pool) {
            Ok(w) => {
                hub.stats.delivered += w.events;
                hub.stats.bytes_written += w.bytes;
                if w.bytes > 0 {
                    conn.last_write = now;
                }
                if w.head_done {
                    self.release_buffer(key);
                }
                if self.slab.get(key).is_some_and(|c| c.cursor.ending && c.cursor.at_boundary() && c.buf.is_none()) {
                    self.end_subscriber(key, hub, now);
                }
            }
            Err(WriteError::Overrun) => {
                hub.stats.dropped_slow += 1;
                warn!("{}: dropped slow subscriber ({})", Peer(conn, key), WriteError::Overrun);
                self.close(key, Close::TooSlow, hub);
            }
            Err(WriteError::Io) => self.close(key, Close::WriteFailed, hub),
        }
    }

    /// A subscriber's deadline: its stream timeout (end at the next event boundary) or a
    /// heartbeat after silence.
    pub(super) fn subscriber_deadline(&mut self, key: Key, hub: &mut Hub, now: Millis) {
        let stream_timeout = self.timeouts.stream;
        let Some(conn) = self.slab.get_mut(key) else { return };
        if now >= conn.since.after(stream_timeout) {
            conn.cursor.ending = true;
        } else if conn.cursor.at_boundary() && !conn.write_blocked {
            conn.cursor.heartbeat_left = HEARTBEAT.len() as u8;
        }
        self.write_subscriber(key, hub, now);
        if let Some(conn) = self.slab.get_mut(key) {
            // Whatever happened, this deadline is handled: never fire it again at once.
            conn.last_write = conn.last_write.max(now);
        }
    }

    /// Ends a subscriber cleanly (between two events): it is told a random reconnection
    /// delay, then sees the response end.
    pub(super) fn end_subscriber(&mut self, key: Key, hub: &mut Hub, now: Millis) {
        self.say_retry(key);
        self.linger(key, hub, now);
    }

    /// Tells a subscriber at an event boundary when to come back (`retry:`), so the clients of
    /// a restart or of many stream timeouts return spread out. Best effort: a socket that
    /// will not take the line now leaves the client with the delay it already has.
    pub(super) fn say_retry(&mut self, key: Key) {
        let Some(conn) = self.slab.get_mut(key) else { return };
        if conn.state != State::Subscriber || !conn.cursor.at_boundary() || conn.buf.is_some() {
            return;
        }
        let mut line = [0u8; 32];
        let mut w = Writer::new(&mut line);
        if self.retry.put_line(&mut w).is_some() {
            let _ = std::io::Write::write(&mut conn.sock, w.written());
        }
    }

    /// The fan-out pass: writes every subscriber that has events it has not received, once.
    /// Writes for about `budget` of time per call (the clock is read every 16 writes) and says
    /// whether the pass is done; between two calls the loop decides whether to go on or to
    /// yield to waiting peers first. Time, not a count: a writev costs 2 µs to one loopback
    /// socket here and several times that to a slow peer.
    pub fn fan_out(&mut self, hub: &mut Hub, pass: &mut Pass, now: Millis, budget: Duration) -> bool {
        let Some(start) = pass.start(&hub.log, hub.subscribers) else { return true };
        let began = Instant::now();
        let (first, next) = (hub.log.first_seq(), hub.log.next_seq());
        let mut written = 0;
        for index in start..self.slab.capacity() {
            if written > 0 && written % 16 == 0 && began.elapsed() >= budget {
                pass.pause(index);
                return false;
            }
            let Some(key) = self.slab.key_at(index) else { continue };
            let Some(conn) = self.slab.get(key) else { continue };
            if conn.state != State::Subscriber || conn.cursor.seq >= next {
                continue;
            }
            if conn.write_blocked && conn.cursor.seq >= first {
                continue;
            }
            // Blocked and overrun streams are dropped here, promptly, by write_subscriber.
            self.write_subscriber(key, hub, now);
            written += 1;
        }
        pass.finish();
        true
    }
}
