//! The connection table: every connection in a fixed slab, the request buffers they borrow,
//! and every state transition, made here through one `set_state`.

use super::Lobby;
use super::io::{discard_input, is_loopback};
use super::text::Feeds;
use super::{Close, Conn, Peer, Queued, State, Timeouts};
use crate::deliver::Pass;
use crate::mem::{Key, Pool, Slab};
use crate::publish::Hub;
use crate::publish::handle::{Shared, StreamId};
use crate::retry::RetryDelays;
use crate::routes::{Census, Routes};
use crate::time::Millis;
use log::{debug, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry};
use std::collections::VecDeque;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

/// What connections act on besides themselves, lent for one call.
pub(crate) struct Ctx<'a> {
    pub hub: &'a mut Hub,
    pub routes: &'a mut Routes,
    pub pass: &'a mut Pass,
}

pub(crate) struct Conns {
    pub(super) slab: Slab<Conn>,
    pub(super) pool: Pool,
    /// Text streams' feeds, by buffer (every text stream holds one).
    pub(super) feeds: Feeds,
    /// Connections waiting for a request buffer, oldest first.
    waiting: VecDeque<Key>,
    /// Connections with requests left over from their turn (see `request::REQUESTS_PER_TURN`).
    pub(super) ready: VecDeque<Key>,
    /// Connections whose answer waits for the turn's write to the history file.
    pub(super) after_journal: VecDeque<Key>,
    pub(super) timeouts: Timeouts,
    /// No connection has a deadline before this.
    next_timer: Millis,
    /// Open connections by state (`State as usize`).
    by_state: [u32; 6],
    /// A slot came free since `take_freed`.
    freed: bool,
    /// Each stream the server ends is told a random reconnection delay.
    pub(super) retry: RetryDelays,
    /// Connections refused for lack of a slot, waiting for the head that decides the answer.
    pub lobby: Lobby,
    /// Host streams are marked closed here, so their `Publisher` learns it.
    pub(super) shared: Arc<Shared>,
}

impl Conns {
    /// `slots` connections, and `buffers` request buffers with an input part of `in_bytes`.
    pub fn new(
        slots: usize,
        buffers: usize,
        in_bytes: usize,
        timeouts: Timeouts,
        retry_ms: u64,
        shared: Arc<Shared>,
    ) -> Conns {
        let pool = Pool::new(buffers.min(slots), in_bytes);
        Conns {
            slab: Slab::with_capacity(slots),
            feeds: Feeds::new(pool.capacity()),
            pool,
            waiting: VecDeque::with_capacity(slots),
            ready: VecDeque::with_capacity(slots),
            after_journal: VecDeque::with_capacity(slots),
            timeouts,
            next_timer: Millis::NEVER,
            by_state: [0; 6],
            freed: false,
            retry: RetryDelays::new(retry_ms),
            lobby: Lobby::new(),
            shared,
        }
    }

    /// Counts for /stats and /metrics.
    pub fn census(&self) -> Census {
        Census {
            by_state: self.by_state,
            slots: self.slab.capacity(),
            buffers_used: self.pool.in_use(),
            buffers: self.pool.capacity(),
        }
    }

    /// The earliest connection deadline.
    pub fn next_deadline(&self) -> Millis {
        self.next_timer
    }

    /// Connections have requests left from their last turn, or answers waiting for the
    /// history file's write.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.after_journal.is_empty()
    }

    /// Answers wait for the turn's write to the history file.
    pub fn awaits_journal(&self) -> bool {
        !self.after_journal.is_empty()
    }

    /// Whether a slot came free since the last call (accepting may resume after EMFILE).
    pub fn take_freed(&mut self) -> bool {
        std::mem::take(&mut self.freed)
    }

    /// The one place a connection changes state; its clock runs from `since`.
    pub(super) fn set_state(&mut self, key: Key, state: State, since: Millis) {
        let Some(conn) = self.slab.get_mut(key) else { return };
        self.by_state[conn.state as usize] -= 1;
        self.by_state[state as usize] += 1;
        conn.set_state(state, since);
    }

    /// The key of the connection whose stream id this is, if it is still that connection.
    pub(super) fn key_of(&self, id: StreamId) -> Option<Key> {
        self.slab.key_at(id.slot as usize).filter(|k| k.generation() == id.generation)
    }

    /// Takes in a new connection, or answers 503 when every slot is busy.
    pub fn admit(&mut self, sock: TcpStream, peer: SocketAddr, registry: &Registry, ctx: &mut Ctx, now: Millis) {
        if self.slab.is_full() && !self.evict_idlest(ctx.hub) {
            // It waits in the lobby, without a slot, for the head that decides its answer.
            ctx.hub.stats.rejected_full += 1;
            warn!(
                "{peer}: all {} connection slots in use; refused (503, or retry for an EventSource)",
                self.slab.capacity()
            );
            self.lobby.enter(sock, registry, ctx.routes, now);
            return;
        }
        let _ = sock.set_nodelay(true);
        let Ok(key) = self.slab.insert(Conn::new(sock, is_loopback(peer.ip()), now)) else { return };
        self.by_state[State::Waiting as usize] += 1;
        let registered = match self.slab.get_mut(key) {
            Some(conn) => registry.register(&mut conn.sock, key.token(), Interest::READABLE | Interest::WRITABLE),
            None => return,
        };
        if let Err(e) = registered {
            warn!("{peer}: cannot register connection: {e}");
            self.close(key, Close::NotRegistered, ctx.hub);
            return;
        }
        debug!("#{} {peer}: accepted", key.index);
        self.want_buffer(key, ctx, now);
        self.rearm(key);
    }

    /// On a full table, closes the connection that has been idle longest (silent since accept,
    /// or between keep-alive requests) to make room; false when none is idle. Subscribers, text
    /// streams and requests in progress are never closed for this.
    fn evict_idlest(&mut self, hub: &mut Hub) -> bool {
        let idlest = (0..self.slab.capacity())
            .filter_map(|i| self.slab.key_at(i))
            .filter_map(|k| self.slab.get(k).filter(|c| c.is_idle()).map(|c| (c.since, k)))
            .min_by_key(|&(since, _)| since);
        let Some((_, key)) = idlest else { return false };
        if let Some(conn) = self.slab.get(key) {
            debug!("{}: closed to make room for a new connection", Peer(conn, key));
        }
        self.close(key, Close::Evicted, hub);
        true
    }

    /// Lends `key` a request buffer and starts reading, or queues it until one is free.
    pub(super) fn want_buffer(&mut self, key: Key, ctx: &mut Ctx, now: Millis) {
        match self.pool.take() {
            Some(id) => {
                let Some(conn) = self.slab.get_mut(key) else {
                    self.pool.give_back(id);
                    return;
                };
                conn.buf = Some(id);
                // The head timeout runs from accept (or from the first byte after idling), not
                // from when a buffer came free.
                let since = conn.since;
                self.set_state(key, State::Request, since);
                self.drive_request(key, ctx, now);
            }
            None => {
                if let Some(since) = self.slab.get(key).filter(|c| c.state == State::Idle).map(|c| c.since) {
                    self.set_state(key, State::Waiting, since);
                }
                if self.waiting.len() == self.waiting.capacity() {
                    // Drop keys of connections that have closed since they queued.
                    let slab = &self.slab;
                    self.waiting.retain(|&k| slab.get(k).is_some_and(|c| c.state == State::Waiting));
                }
                self.waiting.push_back(key);
            }
        }
    }

    pub(super) fn release_buffer(&mut self, key: Key) {
        if let Some(id) = self.slab.get_mut(key).and_then(|c| c.buf.take()) {
            self.pool.give_back(id);
        }
    }

    /// Lends free buffers to connections waiting for one, oldest first.
    pub fn serve_waiting(&mut self, ctx: &mut Ctx, now: Millis) {
        while self.pool.in_use() < self.pool.capacity() {
            let Some(key) = self.waiting.pop_front() else { return };
            if self.slab.get(key).is_some_and(|c| c.state == State::Waiting) {
                self.want_buffer(key, ctx, now);
                self.rearm(key);
            }
        }
    }

    /// Gives each connection that used up its turn the next one.
    pub fn serve_ready(&mut self, ctx: &mut Ctx, now: Millis) {
        self.serve_queue(Queued::Ready, ctx, now);
    }

    /// Answers the connections whose publishes the history file now holds, and reads on.
    pub fn serve_after_journal(&mut self, ctx: &mut Ctx, now: Millis) {
        self.serve_queue(Queued::Journal, ctx, now);
    }

    /// Drives every connection that was in the queue when this began (those it queues again
    /// wait for the next turn).
    fn serve_queue(&mut self, which: Queued, ctx: &mut Ctx, now: Millis) {
        fn queue(conns: &mut Conns, which: Queued) -> &mut VecDeque<Key> {
            if which == Queued::Ready { &mut conns.ready } else { &mut conns.after_journal }
        }
        for _ in 0..queue(self, which).len() {
            let Some(key) = queue(self, which).pop_front() else { return };
            let Some(conn) = self.slab.get_mut(key) else { continue };
            conn.queued = Queued::No;
            self.drive_request(key, ctx, now);
            self.rearm(key);
        }
    }

    /// Handles readiness of the connection behind `key` (stale keys are ignored).
    pub fn on_ready(&mut self, key: Key, readable: bool, writable: bool, ctx: &mut Ctx, now: Millis) {
        if writable {
            self.on_writable(key, ctx, now);
        }
        if readable {
            self.on_readable(key, ctx, now);
        }
        self.rearm(key);
    }

    fn on_readable(&mut self, key: Key, ctx: &mut Ctx, now: Millis) {
        let Some(conn) = self.slab.get_mut(key) else { return };
        match conn.state {
            State::Waiting => {} // read once a buffer is lent (`serve_waiting`)
            State::Idle => {
                conn.since = now; // the next request's head timeout starts with its first byte
                self.want_buffer(key, ctx, now)
            }
            State::Request => self.drive_request(key, ctx, now),
            State::Subscriber | State::Text | State::Linger => {
                // Nothing is expected from these peers; read only to notice their close.
                if let Err(why) = discard_input(&mut conn.sock) {
                    self.close(key, why, ctx.hub);
                }
            }
        }
    }

    fn on_writable(&mut self, key: Key, ctx: &mut Ctx, now: Millis) {
        let Some(conn) = self.slab.get_mut(key) else { return };
        conn.write_blocked = false;
        match conn.state {
            State::Request => self.drive_request(key, ctx, now),
            // Events it owes go with the fan-out pass; a heartbeat or the response head at once.
            State::Subscriber if conn.buf.is_none() && conn.cursor.seq < ctx.hub.log.next_seq() => ctx.pass.sweep(),
            State::Subscriber => self.write_subscriber(key, ctx.hub, now),
            State::Text => self.drive_text(key, ctx.hub, now),
            State::Waiting | State::Idle | State::Linger => {}
        }
    }

    /// Lowers the table's next deadline to that of `key`, if earlier.
    pub(super) fn rearm(&mut self, key: Key) {
        if let Some(conn) = self.slab.get(key) {
            self.next_timer = self.next_timer.min(conn.deadline(&self.timeouts));
        }
    }

    /// Handles every connection whose deadline has come.
    pub fn run_timers(&mut self, ctx: &mut Ctx, now: Millis) {
        if self.next_timer > now {
            return;
        }
        let mut next = Millis::NEVER;
        for index in 0..self.slab.capacity() {
            let Some(key) = self.slab.key_at(index) else { continue };
            if self.slab.get(key).is_some_and(|c| c.deadline(&self.timeouts) <= now) {
                self.on_deadline(key, ctx, now);
            }
            if let Some(conn) = self.slab.get(key) {
                next = next.min(conn.deadline(&self.timeouts));
            }
        }
        self.next_timer = next;
    }

    fn on_deadline(&mut self, key: Key, ctx: &mut Ctx, now: Millis) {
        let Some(conn) = self.slab.get_mut(key) else { return };
        match conn.state {
            State::Waiting | State::Request => {
                let secs = self.timeouts.head.0 / 1000;
                warn!("{}: request head not complete after {secs} s, closing", Peer(conn, key));
                self.close(key, Close::HeadTimeout, ctx.hub);
            }
            State::Idle if conn.fresh => {
                let secs = self.timeouts.head.0 / 1000;
                warn!("{}: no request after {secs} s, closing", Peer(conn, key));
                self.close(key, Close::HeadTimeout, ctx.hub);
            }
            State::Idle => self.close(key, Close::KeepAliveTimeout, ctx.hub),
            State::Linger => self.close(key, Close::LingerDone, ctx.hub),
            State::Text => self.drive_text(key, ctx.hub, now),
            State::Subscriber => self.subscriber_deadline(key, ctx.hub, now),
        }
    }

    /// Shuts our side and waits (briefly) for the peer's EOF before closing, so the last
    /// response is not destroyed by a reset caused by unread input.
    pub(super) fn linger(&mut self, key: Key, hub: &mut Hub, now: Millis) {
        let unread = self.slab.get(key).and_then(|c| c.buf).map_or(0, |id| self.pool.state(id).in_len);
        self.leave_stream(key, hub);
        self.release_buffer(key);
        self.set_state(key, State::Linger, now);
        let Some(conn) = self.slab.get_mut(key) else { return };
        let _ = conn.sock.shutdown(Shutdown::Write);
        match discard_input(&mut conn.sock) {
            Err(why) => self.close(key, why, hub),
            // Nothing unread, nothing more coming in: closing now sends a FIN, not a reset, so
            // the slot need not wait for the peer.
            Ok(0) if unread == 0 => self.close(key, Close::Done, hub),
            Ok(_) => self.rearm(key),
        }
    }

    /// What ends with a subscriber or text stream, whether it lingers or closes.
    fn leave_stream(&mut self, key: Key, hub: &mut Hub) {
        let Some(conn) = self.slab.get(key) else { return };
        match conn.state {
            State::Subscriber => {
                #[cfg(feature = "cluster")]
                self.cluster_leave(key, hub);
                hub.subscribers -= 1;
                hub.filters.release(key.index);
            }
            State::Text => {
                self.shared.close_stream(StreamId { slot: key.index, generation: key.generation() });
            }
            _ => {}
        }
    }

    pub(super) fn close(&mut self, key: Key, why: Close, hub: &mut Hub) {
        self.leave_stream(key, hub);
        let Some(conn) = self.slab.remove(key) else { return };
        self.by_state[conn.state as usize] -= 1;
        if let Some(id) = conn.buf {
            self.pool.give_back(id);
        }
        debug!("{}: closed ({why})", Peer(&conn, key));
        self.freed = true;
    }

    /// Ends every stream (subscribers get what they are owed, up to the next event boundary
    /// that the socket takes now) and closes every connection.
    pub fn shutdown(&mut self, hub: &mut Hub, now: Millis) {
        for index in 0..self.slab.capacity() {
            let Some(key) = self.slab.key_at(index) else { continue };
            if self.slab.get(key).is_some_and(|c| c.state == State::Subscriber) {
                self.write_subscriber(key, hub, now);
                self.say_retry(key);
            }
            if let Some(conn) = self.slab.get(key) {
                let _ = conn.sock.shutdown(Shutdown::Write);
            }
            self.close(key, Close::ServerStopping, hub);
        }
    }
}
