//! The event loop: one thread, one `mio::Poll`, edge-triggered.
//!
//! Each iteration waits for readiness or the earliest deadline, handles every ready connection
//! (reading until WouldBlock, answering complete requests), runs due timers, and then makes one
//! flush pass: every subscriber with events it has not received is written once, so events
//! published in the same iteration reach each subscriber in a single `writev`.

use crate::config::{Config, RESERVE_SLOTS};
use crate::conn::{Conn, State, Timeouts};
use crate::event_log;
use crate::http::response::{self, Cors, Status};
use crate::http::{self, Framing, HttpError, MAX_HEAD_BYTES, Span};
use crate::hub::Hub;
use crate::hub::PublishError;
use crate::pool::{BufId, Pool};
use crate::publisher::{Event, Kind, Publisher, Shared, ShutdownHandle, StreamId};
use crate::routes::{self, Outcome, Request, StreamRequest};
use crate::slab::{Key, Slab};
use crate::sse::Writer;
use crate::stdin::{self, StdinBridge};
use crate::stream::{self, WriteError};
use crate::time::Millis;
use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const STDIN: Token = Token(usize::MAX - 3);

/// Readiness events taken per poll.
const EVENTS: usize = 1024;

/// Requests one connection may have answered per loop turn; a pipelining publisher then waits
/// for the next turn, so the flush pass (and everyone else) runs in between.
const REQUESTS_PER_TURN: usize = 16;

/// Subscribers written per loop turn during a flush pass. Between two chunks the loop reads
/// and answers new publishes, and later chunks carry those events in the same writev.
const FLUSH_CHUNK: usize = 512;

/// Pending connections the kernel may queue (capped by net.core.somaxconn); mio's 128 is too
/// few for thousands of subscribers connecting at once.
const BACKLOG: i32 = 4096;

/// First delay before accepting again after an accept error such as EMFILE; doubles up to
/// `ACCEPT_RETRY_MAX` while the error persists.
const ACCEPT_RETRY_MIN: Millis = Millis(50);
const ACCEPT_RETRY_MAX: Millis = Millis(1000);

/// A tinysse server: build it from a `Config`, then `run()` it or call `poll()` from your own
/// loop.
pub struct Server {
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    conns: Slab<Conn>,
    pool: Pool,
    /// Connections waiting for a request buffer, oldest first.
    waiting: VecDeque<Key>,
    hub: Hub,
    timeouts: Timeouts,
    clock: Instant,
    /// No connection has a deadline before this.
    next_timer: Millis,
    /// `log.next_seq()` when the last (or current) flush pass began.
    flushed_seq: u64,
    /// The slot the current flush pass resumes at, if one is under way.
    flush_at: Option<usize>,
    /// Connections with requests left over from their turn (see `REQUESTS_PER_TURN`).
    ready: VecDeque<Key>,
    accept: AcceptState,
    /// Queue and waker shared with `Publisher` and `ShutdownHandle`.
    shared: Arc<Shared>,
    /// `--stdin`: the bridge, while stdin is open and pollable.
    stdin: Option<StdinBridge>,
    /// `--tick`: when the next `ping` event is due (`NEVER` when off).
    next_tick: Millis,
    stopping: bool,
}

struct AcceptState {
    /// Accepting is paused after an error until then (`NEVER` when not paused).
    retry_at: Millis,
    backoff: Millis,
    /// Errors not logged since the last warning (rate limiting).
    suppressed: u64,
    last_warn: Option<Millis>,
}

impl Server {
    /// Binds the listening socket and allocates everything the server will ever use.
    pub fn new(config: Config) -> io::Result<Server> {
        let slots = config.max_clients + RESERVE_SLOTS;
        if slots > crate::slab::MAX_CAPACITY {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "max-clients too large"));
        }
        let poll = Poll::new()?;
        let shared = Shared::new(mio::Waker::new(poll.registry(), WAKER)?);
        let mut listener = TcpListener::bind(config.listen)?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let local_addr = listener.local_addr()?;
        // SAFETY: listen(2) on a socket we own, already listening: it only raises the backlog.
        if unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), BACKLOG) } != 0 {
            warn!("cannot raise the listen backlog: {}", io::Error::last_os_error());
        }
        let body_bytes = 3 * config.max_event_bytes + 1024;
        let pool = Pool::new(config.request_buffers.min(slots), MAX_HEAD_BYTES + body_bytes);
        let first_seq =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_micros() as u64);
        let timeouts = Timeouts {
            head: Millis::from_secs(config.head_timeout_secs),
            keepalive: Millis::from_secs(config.keepalive_timeout_secs),
            heartbeat: if config.heartbeat_secs == 0 {
                Millis::NEVER
            } else {
                Millis::from_secs(config.heartbeat_secs)
            },
            stream: if config.stream_timeout_secs == 0 {
                Millis::NEVER
            } else {
                Millis::from_secs(config.stream_timeout_secs)
            },
        };
        let tick_secs = config.tick_secs;
        let stdin = if config.stdin { open_stdin(&poll, &config) } else { None };
        let hub = Hub::new(config, slots, first_seq);
        Ok(Server {
            poll,
            events: Events::with_capacity(EVENTS),
            listener: Some(listener),
            local_addr,
            signals: None,
            conns: Slab::with_capacity(slots),
            pool,
            waiting: VecDeque::with_capacity(slots),
            ready: VecDeque::with_capacity(slots),
            flush_at: None,
            flushed_seq: hub.log.next_seq(),
            hub,
            timeouts,
            clock: Instant::now(),
            next_timer: Millis::NEVER,
            accept: AcceptState { retry_at: Millis::NEVER, backoff: ACCEPT_RETRY_MIN, suppressed: 0, last_warn: None },
            shared,
            stdin,
            next_tick: if tick_secs == 0 { Millis::NEVER } else { Millis::from_secs(tick_secs) },
            stopping: false,
        })
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that publishes from any thread (see `Publisher`).
    pub fn publisher(&self) -> Publisher {
        Publisher { shared: self.shared.clone() }
    }

    /// A handle that stops the server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { shared: self.shared.clone() }
    }

    /// Publishes from the loop's own thread (e.g. between two `poll` calls) and returns the
    /// event's sequence number.
    pub fn publish(&mut self, event: Event) -> Result<u64, PublishError> {
        let p = event_log::Publish {
            id: event.id.as_bytes(),
            event: event.event.as_bytes(),
            data: event.data.as_bytes(),
            topic: event.topic.as_bytes(),
            client: event.client.as_bytes(),
        };
        self.hub.publish(&p, &self.conns)
    }

    /// Registers a request-scoped stream: a GET on `path` calls `handler` (on the loop's
    /// thread; it must not block) with the stream's id, which the host then feeds with
    /// `Publisher::send_frame` and ends with `Publisher::end`. Call before `run`.
    pub fn stream_route(&mut self, path: &str, handler: impl FnMut(&StreamRequest) + Send + 'static) {
        self.hub.stream_routes.push(routes::StreamRoute { path: path.to_string(), handler: Box::new(handler) });
    }

    /// Stops the server on SIGINT or SIGTERM: streams are ended and `run` returns.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM])?;
        self.poll.registry().register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Serves until `shutdown` (or a signal, with `handle_signals`).
    pub fn run(&mut self) -> io::Result<()> {
        while !self.stopping {
            self.poll(None)?;
        }
        Ok(())
    }

    /// Whether `shutdown` has run.
    pub fn is_stopped(&self) -> bool {
        self.stopping
    }

    /// Stops accepting, ends every stream (subscribers see the end of the response) and closes
    /// every connection.
    pub fn shutdown(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.shared.stopped.store(true, std::sync::atomic::Ordering::Release);
        self.listener = None;
        let now = self.now();
        for index in 0..self.conns.capacity() {
            let Some(key) = self.conns.key_at(index) else { continue };
            if self.conns.get(key).is_some_and(|c| c.state() == State::Stream) {
                self.write_stream(key, now);
            }
            if let Some(conn) = self.conns.get(key) {
                let _ = conn.sock.shutdown(Shutdown::Write);
            }
            self.close(key, "server stopping");
        }
        info!("stopped");
    }

    fn now(&self) -> Millis {
        Millis::from_duration(self.clock.elapsed())
    }

    /// Waits for readiness (at most `timeout`, or until the next deadline) and handles it.
    pub fn poll(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let now = self.now();
        // Work left from the last turn: connections with requests waiting, a flush pass under
        // way, or events published since the last pass began (during it, or by the host).
        let busy = !self.ready.is_empty() || self.flush_at.is_some() || self.hub.log.next_seq() != self.flushed_seq;
        let next = if busy { now } else { self.next_timer.min(self.accept.retry_at).min(self.next_tick) };
        let wait = match (timeout, next.is_never()) {
            (t, true) => t,
            (None, false) => Some(next.until(now)),
            (Some(t), false) => Some(t.min(next.until(now))),
        };
        // Taken out so handlers can borrow `self`; `with_capacity(0)` does not allocate.
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let result = self.poll.poll(&mut events, wait);
        if let Err(e) = result {
            self.events = events;
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        let now = self.now();
        for event in events.iter() {
            let readable = event.is_readable() || event.is_read_closed() || event.is_error();
            let writable = event.is_writable() || event.is_write_closed();
            match event.token() {
                LISTENER => self.accept_ready(now),
                SIGNALS => self.on_signal(),
                WAKER => self.on_wake(now),
                STDIN => self.on_stdin(),
                token => {
                    let Some(key) = Key::from_token(token) else { continue };
                    if writable {
                        self.on_writable(key, now);
                    }
                    if readable {
                        self.on_readable(key, now);
                    }
                    self.rearm(key);
                }
            }
        }
        self.events = events;
        if self.stopping {
            return Ok(());
        }
        self.serve_waiting(now);
        self.serve_ready(now);
        if self.accept.retry_at <= now {
            self.accept.retry_at = Millis::NEVER;
            self.accept_ready(now);
        }
        if self.next_timer <= now {
            self.run_timers(now);
        }
        if self.next_tick <= now {
            self.tick(now);
        }
        self.flush_streams(now);
        self.serve_waiting(now);
        Ok(())
    }

    fn on_signal(&mut self) {
        let mut got = false;
        if let Some(signals) = &mut self.signals {
            got = signals.pending().next().is_some();
        }
        if got {
            info!("signal received, stopping");
            self.shutdown();
        }
    }

    /// Handles what `Publisher`s and `ShutdownHandle`s queued.
    fn on_wake(&mut self, now: Millis) {
        use std::sync::atomic::Ordering;
        if self.shared.stop.load(Ordering::Acquire) {
            info!("shutdown requested");
            return self.shutdown();
        }
        self.shared.woken();
        while let Some(m) = self.shared.take() {
            let ([event, id, topic, client], data) = m.fields();
            match m.kind {
                Kind::Publish => {
                    let p = event_log::Publish { id, event, data, topic, client };
                    if let Err(e) = self.hub.publish(&p, &self.conns) {
                        warn!("publisher: event refused: {}", e.message());
                    }
                }
                Kind::Frame | Kind::End => {
                    let Some(key) = Key::from_token(Token(m.stream)) else { continue };
                    let Some(id) = self.conns.get(key).filter(|c| c.state() == State::Text).and_then(|c| c.buf) else {
                        continue; // the stream has ended; its id is stale
                    };
                    if m.kind == Kind::End {
                        self.pool.state(id).close_after = true;
                    } else if !append_frame(&mut self.pool, id, data) {
                        if let Some(conn) = self.conns.get(key) {
                            warn!("{}: stream client too slow, output buffer full; closing", Peer(conn, key));
                        }
                        self.close(key, "stream output full");
                        continue;
                    }
                    self.drive_text(key, now);
                    self.rearm(key);
                }
            }
        }
    }

    /// `--stdin`: publishes every complete line.
    fn on_stdin(&mut self) {
        let Some(bridge) = &mut self.stdin else { return };
        let (hub, conns) = (&mut self.hub, &self.conns);
        let result = bridge.read(|line| {
            let p = event_log::Publish { data: line.data, topic: line.topic, ..Default::default() };
            if let Err(e) = hub.publish(&p, conns) {
                warn!("stdin: line refused: {}", e.message());
            }
        });
        match result {
            Ok(stdin::Status::Open) => {}
            Ok(stdin::Status::Eof) => {
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

    /// `--tick`: publishes `event: ping` with the time, the seed's custom event.
    fn tick(&mut self, now: Millis) {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut data = [0u8; 40];
        let mut w = Writer { out: &mut data, len: 0 };
        let _ = w.put(b"{\"time\": ").and_then(|_| w.put_u64(secs)).and_then(|_| w.put(b"}"));
        let len = w.len;
        let p = event_log::Publish { event: b"ping", data: &data[..len], ..Default::default() };
        if let Err(e) = self.hub.publish(&p, &self.conns) {
            warn!("tick: {}", e.message());
        }
        let every = Millis::from_secs(self.hub.config.tick_secs);
        // Skip ticks missed while the loop was busy rather than firing them in a burst.
        while self.next_tick <= now {
            self.next_tick = self.next_tick.after(every);
        }
    }

    /// Lowers `next_timer` to the deadline of `key`, if earlier.
    fn rearm(&mut self, key: Key) {
        if let Some(conn) = self.conns.get(key) {
            self.next_timer = self.next_timer.min(conn.deadline(&self.timeouts));
        }
    }

    // ---- accepting ----

    fn accept_ready(&mut self, now: Millis) {
        while now >= self.accept.retry_at || self.accept.retry_at.is_never() {
            let Some(listener) = &self.listener else { return };
            match listener.accept() {
                Ok((sock, peer)) => {
                    self.accept.backoff = ACCEPT_RETRY_MIN;
                    self.hub.stats.accepted += 1;
                    self.admit(sock, peer, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: the queue stays in the kernel; try again
                    // on a timer and whenever a connection closes.
                    self.accept_error(&e, now);
                    self.accept.retry_at = now.after(self.accept.backoff);
                    self.accept.backoff = Millis(self.accept.backoff.0 * 2).min(ACCEPT_RETRY_MAX);
                    return;
                }
            }
        }
    }

    fn accept_error(&mut self, e: &io::Error, now: Millis) {
        let quiet = self.accept.last_warn.is_some_and(|t| now < t.after(Millis(1000)));
        if quiet {
            self.accept.suppressed += 1;
            return;
        }
        if self.accept.suppressed > 0 {
            warn!("accept failed: {e} ({} more since the last warning); retrying", self.accept.suppressed);
        } else {
            warn!("accept failed: {e}; retrying");
        }
        self.accept.suppressed = 0;
        self.accept.last_warn = Some(now);
    }

    fn admit(&mut self, mut sock: TcpStream, peer: SocketAddr, now: Millis) {
        if self.conns.is_full() {
            reject_full(&mut sock);
            self.hub.stats.rejected_full += 1;
            warn!("{peer}: 503, all {} connection slots in use", self.conns.capacity());
            return;
        }
        let _ = sock.set_nodelay(true);
        let mut conn = Conn::new(sock, now);
        conn.loopback = is_loopback(peer.ip());
        let key = match self.conns.insert(conn) {
            Ok(key) => key,
            Err(_) => return,
        };
        let registered = match self.conns.get_mut(key) {
            Some(conn) => {
                self.poll.registry().register(&mut conn.sock, key.token(), Interest::READABLE | Interest::WRITABLE)
            }
            None => return,
        };
        if let Err(e) = registered {
            warn!("{peer}: cannot register connection: {e}");
            self.conns.remove(key);
            return;
        }
        debug!("#{} {peer}: accepted", key.index);
        self.want_buffer(key, now);
        self.rearm(key);
    }

    // ---- request buffers ----

    /// Lends `key` a request buffer and starts reading, or queues it until one is free.
    fn want_buffer(&mut self, key: Key, now: Millis) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        match self.pool.take() {
            Some(id) => {
                conn.buf = Some(id);
                conn.set_state(State::Request, now);
                self.drive_request(key, now);
            }
            None => {
                conn.set_state(State::Waiting, now);
                if self.waiting.len() == self.waiting.capacity() {
                    // Drop keys of connections that have closed since they queued.
                    let conns = &self.conns;
                    self.waiting.retain(|&k| conns.get(k).is_some_and(|c| c.state() == State::Waiting));
                }
                self.waiting.push_back(key);
            }
        }
    }

    fn release_buffer(&mut self, key: Key) {
        if let Some(id) = self.conns.get_mut(key).and_then(|c| c.buf.take()) {
            self.pool.give_back(id);
        }
    }

    /// Gives each connection that used up its turn the next one.
    fn serve_ready(&mut self, now: Millis) {
        for _ in 0..self.ready.len() {
            let Some(key) = self.ready.pop_front() else { return };
            let Some(conn) = self.conns.get_mut(key) else { continue };
            conn.queued = false;
            self.drive_request(key, now);
            self.rearm(key);
        }
    }

    fn serve_waiting(&mut self, now: Millis) {
        while self.pool.in_use() < self.pool.capacity() {
            let Some(key) = self.waiting.pop_front() else { return };
            if self.conns.get(key).is_some_and(|c| c.state() == State::Waiting) {
                self.want_buffer(key, now);
                self.rearm(key);
            }
        }
    }

    // ---- readiness ----

    fn on_readable(&mut self, key: Key, now: Millis) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        match conn.state() {
            State::Waiting => {} // read once a buffer is lent (`serve_waiting`)
            State::Idle => self.want_buffer(key, now),
            State::Request => self.drive_request(key, now),
            State::Stream | State::Text | State::Linger => {
                // Nothing is expected from these peers; read only to notice their close.
                if let Err(why) = discard_input(&mut conn.sock) {
                    self.close(key, why);
                }
            }
        }
    }

    fn on_writable(&mut self, key: Key, now: Millis) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        conn.write_blocked = false;
        match conn.state() {
            State::Request => self.drive_request(key, now),
            State::Stream => self.write_stream(key, now),
            State::Text => self.drive_text(key, now),
            State::Waiting | State::Idle | State::Linger => {}
        }
    }

    // ---- requests ----

    /// Writes pending output, reads input and answers complete requests, in order, until the
    /// connection waits for the network or changes state.
    fn drive_request(&mut self, key: Key, now: Millis) {
        let mut answered = 0;
        loop {
            let Some(id) = self.flush_pending(key, State::Request, now) else { return };
            let Some(conn) = self.conns.get_mut(key) else { return };
            // While a flush pass is under way, accept at most an eighth of the ring's slots in
            // new events: the pass (not the subscribers) then sets the pace, no subscriber it has
            // yet to reach can be overrun, and the queue behind it stays short (measured: p99
            // 227 ms at 10,000 subscribers instead of 280-490 ms with a quarter, for 10% fewer
            // deliveries/s). The publisher feels it as TCP backpressure.
            let ahead = self.hub.log.next_seq() - self.flushed_seq;
            let pass_full = self.flush_at.is_some() && ahead as usize >= (self.hub.log.capacity() / 8).max(16);
            if answered == REQUESTS_PER_TURN || pass_full {
                // Its turn is over. Each connection is queued at most once, so the queue,
                // sized for every slot, never grows.
                if !conn.queued {
                    conn.queued = true;
                    self.ready.push_back(key);
                }
                return;
            }
            if let Err(why) = read_input(&mut conn.sock, &mut self.pool, id) {
                return self.close(key, why);
            }
            match self.handle_request(key, id, now) {
                Step::Responded => {
                    answered += 1;
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.since = now;
                    }
                }
                Step::Upgraded => return,
                Step::NeedMore => {
                    let state = *self.pool.state(id);
                    if state.eof {
                        return self
                            .close(key, if state.in_len == 0 { "closed by peer" } else { "closed mid-request" });
                    }
                    if state.in_len == 0 {
                        // Keep-alive between requests: no buffer needed until bytes arrive.
                        self.release_buffer(key);
                        if let Some(conn) = self.conns.get_mut(key) {
                            conn.set_state(State::Idle, now);
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Writes the pending output of a connection in `state` that holds a buffer. `Some(buffer)`
    /// when all of it is written and the connection goes on; `None` when it waits for the
    /// socket, or has been closed or put to linger (its response asked for the close).
    fn flush_pending(&mut self, key: Key, state: State, now: Millis) -> Option<BufId> {
        let conn = self.conns.get_mut(key)?;
        let id = conn.buf.filter(|_| conn.state() == state)?;
        match flush_out(&mut conn.sock, &mut self.pool, id) {
            Ok(true) => {}
            Ok(false) => {
                conn.write_blocked = true;
                return None;
            }
            Err(_) => {
                self.close(key, "write failed");
                return None;
            }
        }
        if self.pool.state(id).close_after {
            self.linger(key, now);
            return None;
        }
        Some(id)
    }

    /// Answers the request at the front of the buffer, if it is complete.
    fn handle_request(&mut self, key: Key, id: BufId, now: Millis) -> Step {
        let buffers = (self.pool.in_use(), self.pool.capacity());
        let peer_loopback = self.conns.get(key).is_some_and(|c| c.loopback);
        let (state, input, out) = self.pool.parts(id);
        let in_len = state.in_len as usize;
        if in_len == 0 {
            return Step::NeedMore;
        }
        let (head, body, consumed) = match http::frame_request(input, in_len) {
            Err(e) => return self.refuse(key, id, e),
            Ok(Framing::Partial) => return Step::NeedMore,
            Ok(Framing::AwaitingBody(head)) => {
                if head.expect_continue && !state.continued {
                    state.continued = true;
                    let line = b"HTTP/1.1 100 Continue\r\n\r\n";
                    out[..line.len()].copy_from_slice(line);
                    state.out_pos = 0;
                    state.out_len = line.len() as u32;
                    return Step::Responded;
                }
                return Step::NeedMore;
            }
            Ok(Framing::Complete { head, body, consumed }) => (head, body, consumed),
        };
        let mut req = Request {
            head,
            input: &mut input[..],
            body,
            out: Writer { out, len: 0 },
            slot: key.index,
            now,
            text: Span::default(),
            delay_ms: 0,
            stream_id: StreamId(key.token().0),
            static_body: &[],
            peer_loopback,
            cors: routes::CorsMode::Any,
        };
        let outcome = routes::route(&mut self.hub, &self.conns, buffers, &mut req);
        let (out_len, text, delay_ms, static_body) = (req.out.len as u32, req.text, req.delay_ms, req.static_body);
        match outcome {
            Err(e) => self.refuse(key, id, e),
            Ok(Outcome::Respond { close }) => {
                let state = self.pool.state(id);
                state.out_pos = 0;
                state.out_len = out_len;
                state.close_after = close;
                state.body = static_body;
                state.body_pos = 0;
                self.pool.consume_input(id, consumed);
                Step::Responded
            }
            Ok(Outcome::HostStream) => {
                let state = self.pool.state(id);
                state.out_pos = 0;
                state.out_len = out_len;
                state.host = true;
                self.pool.use_whole_for_output(id);
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.set_state(State::Text, now);
                    conn.last_write = Millis::NEVER; // fed by the host, not by a timer
                }
                self.drive_text(key, now);
                Step::Upgraded
            }
            Ok(Outcome::Subscribe { cursor, filtered }) => {
                let state = self.pool.state(id);
                state.out_pos = 0;
                state.out_len = out_len;
                self.become_stream(key, cursor, filtered, now);
                Step::Upgraded
            }
            Ok(Outcome::Text) => {
                let state = self.pool.state(id);
                state.out_pos = 0;
                state.out_len = out_len;
                state.text = text;
                state.delay_ms = delay_ms;
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.set_state(State::Text, now);
                }
                self.drive_text(key, now);
                Step::Upgraded
            }
        }
    }

    /// Writes an error response; the connection closes once it is sent.
    fn refuse(&mut self, key: Key, id: BufId, e: HttpError) -> Step {
        if let Some(conn) = self.conns.get(key) {
            warn!("{}: {} {}", Peer(conn, key), e.status() as u16, e.message());
        }
        let cors = if self.hub.config.cors_origins.is_empty() { Cors::Any } else { Cors::Denied };
        let (state, _, out) = self.pool.parts(id);
        let mut w = Writer { out, len: 0 };
        write_error(&mut w, e, cors);
        state.out_pos = 0;
        state.out_len = w.len as u32;
        state.close_after = true;
        // Whatever follows a refused request cannot be trusted to be a request.
        state.in_len = 0;
        Step::Responded
    }

    /// Shuts our side and waits (briefly) for the peer's EOF before closing, so the last
    /// response is not destroyed by a reset caused by unread input.
    fn linger(&mut self, key: Key, now: Millis) {
        let unread = self.conns.get(key).and_then(|c| c.buf).map_or(0, |id| self.pool.state(id).in_len);
        self.release_buffer(key);
        let Some(conn) = self.conns.get_mut(key) else { return };
        if conn.state() == State::Stream {
            self.hub.subscribers -= 1;
        }
        let _ = conn.sock.shutdown(Shutdown::Write);
        conn.set_state(State::Linger, now);
        match discard_input(&mut conn.sock) {
            Err(why) => self.close(key, why),
            // Nothing unread, nothing more coming in: closing now sends a FIN, not a reset, so
            // the slot need not wait for the peer.
            Ok(0) if unread == 0 => self.close(key, "done"),
            Ok(_) => self.rearm(key),
        }
    }

    fn close(&mut self, key: Key, why: &str) {
        let Some(conn) = self.conns.remove(key) else { return };
        if conn.state() == State::Stream {
            self.hub.subscribers -= 1;
        }
        if let Some(id) = conn.buf {
            self.pool.give_back(id);
        }
        debug!("{}: closed ({why})", Peer(&conn, key));
        if !self.accept.retry_at.is_never() {
            // Accepting was paused for lack of descriptors: one just came free.
            self.accept.retry_at = Millis::ZERO;
        }
    }

    // ---- streams ----

    fn become_stream(&mut self, key: Key, cursor: u64, filtered: bool, now: Millis) {
        // Looked up before this connection becomes a stream, so only an older one can match.
        let client = if filtered { self.hub.filters.client(key.index) } else { b"" };
        if let Some(older) = (!client.is_empty()).then(|| self.hub.find_client(client, &self.conns)).flatten() {
            info!("client {}: replaced by a new stream", String::from_utf8_lossy(client));
            self.end_stream(older, now);
        }
        let Some(conn) = self.conns.get_mut(key) else { return };
        conn.set_state(State::Stream, now);
        conn.cursor = cursor;
        conn.cursor_off = 0;
        conn.filtered = filtered;
        self.hub.subscribers += 1;
        self.write_stream(key, now);
    }

    fn write_stream(&mut self, key: Key, now: Millis) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let result = stream::write(conn, &self.hub.log, &self.hub.filters, &mut self.pool, key.index);
        match result {
            Ok(w) => {
                self.hub.stats.delivered += w.events;
                self.hub.stats.bytes_written += w.bytes;
                if w.bytes > 0 {
                    conn.last_write = now;
                }
                if w.head_done {
                    self.release_buffer(key);
                }
                if self.conns.get(key).is_some_and(|c| c.ending && c.at_boundary() && c.buf.is_none()) {
                    self.end_stream(key, now);
                }
            }
            Err(WriteError::Overrun) => {
                self.hub.stats.dropped_slow += 1;
                warn!("{}: dropped slow subscriber (fell more than the event log behind)", Peer(conn, key));
                self.close(key, "too slow");
            }
            Err(WriteError::Io) => self.close(key, "write failed"),
        }
    }

    /// Ends a stream cleanly (between two events): the client sees the response end.
    fn end_stream(&mut self, key: Key, now: Millis) {
        self.linger(key, now);
    }

    /// The flush pass: writes every subscriber that has events it has not received, once, in
    /// chunks of `FLUSH_CHUNK` per loop turn.
    fn flush_streams(&mut self, now: Millis) {
        let next = self.hub.log.next_seq();
        let start = match self.flush_at {
            Some(at) => at,
            None if next == self.flushed_seq => return,
            None => {
                self.flushed_seq = next;
                0
            }
        };
        let first = self.hub.log.first_seq();
        let mut written = 0;
        for index in start..self.conns.capacity() {
            if written == FLUSH_CHUNK {
                self.flush_at = Some(index);
                return;
            }
            let Some(key) = self.conns.key_at(index) else { continue };
            let Some(conn) = self.conns.get(key) else { continue };
            if conn.state() != State::Stream || conn.cursor >= next {
                continue;
            }
            if conn.write_blocked && conn.cursor >= first {
                continue;
            }
            // Blocked and overrun streams are dropped here, promptly, by write_stream.
            self.write_stream(key, now);
            written += 1;
        }
        self.flush_at = None;
    }

    /// /stream: sends the frames that are due, then `[DONE]`, then closes.
    fn drive_text(&mut self, key: Key, now: Millis) {
        loop {
            let Some(id) = self.flush_pending(key, State::Text, now) else { return };
            let Some(conn) = self.conns.get_mut(key) else { return };
            let (state, input, _) = self.pool.parts(id);
            if state.host || conn.last_write > now {
                return; // host streams wait for frames; /stream for its next deadline
            }
            // /stream: the next character (or all of them, without a delay), then [DONE].
            let mut frame = [0u8; 4];
            let text = state.text.of(input);
            let used = routes::next_char(text);
            frame[..used].copy_from_slice(&text[..used]);
            let (delay, done) = (state.delay_ms, used == 0);
            state.text.start += used as u32;
            let data: &[u8] = if done { b"[DONE]" } else { &frame[..used] };
            if !append_frame(&mut self.pool, id, data) {
                return; // output full: written out first, then the loop comes back here
            }
            let state = self.pool.state(id);
            state.close_after = done;
            conn.last_write = if delay == 0 { now } else { now.after(Millis(u64::from(delay))) };
        }
    }

    // ---- timers ----

    fn run_timers(&mut self, now: Millis) {
        let mut next = Millis::NEVER;
        for index in 0..self.conns.capacity() {
            let Some(key) = self.conns.key_at(index) else { continue };
            let due = self.conns.get(key).is_some_and(|c| c.deadline(&self.timeouts) <= now);
            if due {
                self.on_deadline(key, now);
            }
            if let Some(conn) = self.conns.get(key) {
                next = next.min(conn.deadline(&self.timeouts));
            }
        }
        self.next_timer = next;
    }

    fn on_deadline(&mut self, key: Key, now: Millis) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        match conn.state() {
            State::Waiting | State::Request => {
                warn!(
                    "{}: request head not complete after {} s, closing",
                    Peer(conn, key),
                    self.timeouts.head.0 / 1000
                );
                self.close(key, "head timeout");
            }
            State::Idle => self.close(key, "keep-alive timeout"),
            State::Linger => self.close(key, "linger done"),
            State::Text => self.drive_text(key, now),
            State::Stream => {
                if now >= conn.since.after(self.timeouts.stream) {
                    conn.ending = true;
                } else if conn.at_boundary() && !conn.write_blocked {
                    conn.heartbeat_left = crate::sse::HEARTBEAT.len() as u8;
                }
                self.write_stream(key, now);
                if let Some(conn) = self.conns.get_mut(key) {
                    // Whatever happened, this deadline is handled: never fire it again at once.
                    conn.last_write = conn.last_write.max(now);
                }
            }
        }
    }
}

/// Names a connection in log lines: its slot, and its peer while the socket still knows it.
struct Peer<'a>(&'a Conn, Key);

impl std::fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.sock.peer_addr() {
            Ok(addr) => write!(f, "#{} {addr}", self.1.index),
            Err(_) => write!(f, "#{}", self.1.index),
        }
    }
}

/// What handling the request at the front of a buffer did.
enum Step {
    /// Not complete yet.
    NeedMore,
    /// A response (or `100 Continue`) is in the output part.
    Responded,
    /// The connection became a stream.
    Upgraded,
}

/// Appends one frame (`data:` lines of `data`) to a stream's output; false when it does not fit.
fn append_frame(pool: &mut Pool, id: BufId, data: &[u8]) -> bool {
    let (state, area) = pool.out_area(id);
    if state.out_pos == state.out_len {
        state.out_pos = 0;
        state.out_len = 0;
    }
    let frame = crate::sse::Frame { id: b"", event: b"", data };
    let needed = frame.encoded_len();
    if state.out_len as usize + needed > area.len() && state.out_pos > 0 {
        area.copy_within(state.out_pos as usize..state.out_len as usize, 0);
        state.out_len -= state.out_pos;
        state.out_pos = 0;
    }
    match frame.encode(&mut area[state.out_len as usize..]) {
        Some(n) => {
            state.out_len += n as u32;
            true
        }
        None => false,
    }
}

fn write_error(w: &mut Writer, e: HttpError, cors: Cors) {
    let mut body = [0u8; 128];
    let msg = e.message().as_bytes();
    let n = msg.len().min(body.len() - 1);
    body[..n].copy_from_slice(&msg[..n]);
    body[n] = b'\n';
    let mut allow = [0u8; 64];
    let mut extra: heapless::Vec<&[u8], 2> = heapless::Vec::new();
    if let HttpError::MethodNotAllowed(methods) = e {
        let mut a = Writer { out: &mut allow, len: 0 };
        let _ = a.put(b"Allow: ").and_then(|_| a.put(methods.as_bytes())).and_then(|_| a.put(b"\r\n"));
        let len = a.len;
        let _ = extra.push(&allow[..len]);
    }
    match e.status() {
        Status::Unavailable => {
            let _ = extra.push(b"Retry-After: 1\r\n");
        }
        Status::Unauthorized => {
            let _ = extra.push(b"WWW-Authenticate: Bearer realm=\"tinysse\"\r\n");
        }
        _ => {}
    }
    let _ = response::simple(w, e.status(), "text/plain; charset=utf-8", &body[..n + 1], false, cors, &extra);
}

/// Writes the buffer's pending output, then its static body; `Ok(true)` when all is written.
fn flush_out(sock: &mut TcpStream, pool: &mut Pool, id: BufId) -> io::Result<bool> {
    loop {
        let body = pool.state(id).body_left();
        let pending = pool.pending_out(id);
        if pending.is_empty() && body.is_empty() {
            let state = pool.state(id);
            state.out_pos = 0;
            state.out_len = 0;
            state.body = &[];
            state.body_pos = 0;
            return Ok(true);
        }
        let pending_len = pending.len();
        match sock.write_vectored(&[IoSlice::new(pending), IoSlice::new(body)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let state = pool.state(id);
                state.out_pos += n.min(pending_len) as u32;
                state.body_pos += n.saturating_sub(pending_len) as u32;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads into the buffer's input part until WouldBlock, EOF or full.
fn read_input(sock: &mut TcpStream, pool: &mut Pool, id: BufId) -> Result<(), &'static str> {
    let (state, input, _) = pool.parts(id);
    while !state.eof && (state.in_len as usize) < input.len() {
        match sock.read(&mut input[state.in_len as usize..]) {
            Ok(0) => state.eof = true,
            Ok(n) => state.in_len += n as u32,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err("read failed"),
        }
    }
    Ok(())
}

/// Reads and drops input until WouldBlock, returning how much; `Err` when the peer closed or
/// failed.
fn discard_input(sock: &mut TcpStream) -> Result<usize, &'static str> {
    let mut scratch = [0u8; 512];
    let mut dropped = 0;
    loop {
        match sock.read(&mut scratch) {
            Ok(0) => return Err("closed by peer"),
            Ok(n) => dropped += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(dropped),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err("read failed"),
        }
    }
}

/// Sets up `--stdin`, or says once why it cannot be (e.g. /dev/null under systemd cannot be
/// polled) and carries on without it.
fn open_stdin(poll: &Poll, config: &Config) -> Option<StdinBridge> {
    let max_line = config.max_event_bytes + 1 + event_log::MAX_TOPIC;
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

/// 127.0.0.0/8, ::1, and IPv4-mapped loopback (a dual-stack listener's view of 127.0.0.1).
fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// Answers 503 to a connection that got no slot, without ever holding one.
fn reject_full(sock: &mut TcpStream) {
    // Read what already arrived so closing sends FIN, not a reset that could eat the answer.
    let _ = discard_input(sock);
    let _ = sock.write(response::FULL);
    let _ = sock.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_loopback_peers_count_as_local() {
        for local in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(local.parse().unwrap()), "{local}");
        }
        for remote in ["10.0.0.2", "192.168.1.20", "0.0.0.0", "::ffff:10.0.0.2", "fe80::1", "2001:db8::1"] {
            assert!(!is_loopback(remote.parse().unwrap()), "{remote}");
        }
    }
}
