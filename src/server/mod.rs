//! The server: one thread, one `mio::Poll`, edge-triggered. It owns everything and runs the
//! turn: wait for readiness or the earliest deadline, accept, hand ready connections to the
//! connection table, drain the host's queue and stdin, run timers and ticks, then the fan-out
//! pass, so events published in the same turn reach each subscriber in a single writev.

mod accept;
#[cfg(feature = "cluster")]
mod cluster;
mod sources;
mod stdin;

use crate::config::Config;
use crate::conn::{Conns, Ctx, Lobby, Timeouts};
use crate::deliver::Pass;
use crate::limits::{MAX_HEAD_BYTES, RESERVE_SLOTS};
use crate::mem::Key;
use crate::mem::slab::MAX_CAPACITY;
use crate::publish::handle::{Event, Publisher, Shared, ShutdownHandle};
use crate::publish::{Hub, PublishError};
use crate::routes::{Routes, StreamRequest, StreamRouteError};
use crate::time::{Clock, Millis};
use accept::Acceptor;
use log::{info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::publish::handle::EventId;

const LISTENER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const STDIN: Token = Token(usize::MAX - 3);

/// Readiness events taken per poll.
const EVENTS: usize = 1024;

/// How long a fan-out pass writes between two looks at the poller (a zero-timeout poll, about
/// a microsecond): a waiting publisher's request is seen within this, however many subscribers
/// the pass has left.
const PASS_SLICE: Duration = Duration::from_micros(100);

/// Pending connections the kernel may queue (capped by net.core.somaxconn); mio's 128 is too
/// few for thousands of subscribers connecting at once.
const BACKLOG: i32 = 4096;

/// Why a server could not start.
#[derive(Debug)]
pub enum StartError {
    /// The address cannot be listened on (in use, not an address of this machine, a port
    /// below 1024 without the right).
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        source: io::Error,
    },
    /// `max_clients` is over what the connection slab can index.
    TooManyClients,
    /// The history file cannot be used: another server holds it, it is not a journal, or it
    /// cannot be read or written; the text names the file.
    HistoryFile(String),
    /// Setting up the poller failed.
    Io(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Listen { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::TooManyClients => write!(f, "max-clients too large (at most {})", MAX_CAPACITY - RESERVE_SLOTS),
            StartError::HistoryFile(why) => write!(f, "history file: {why}"),
            StartError::Io(e) => write!(f, "cannot start: {e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Listen { source, .. } | StartError::Io(source) => Some(source),
            _ => None,
        }
    }
}

/// So that `?` works in a host's `fn main() -> std::io::Result<()>`.
impl From<StartError> for io::Error {
    fn from(e: StartError) -> io::Error {
        let kind = match &e {
            StartError::Listen { source, .. } | StartError::Io(source) => source.kind(),
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e.to_string())
    }
}

/// A tinysse server: build it from a `Config`, then `run()` it or call `poll()` from your own
/// loop.
pub struct Server {
    poll: Poll,
    events: Events,
    accept: Acceptor,
    local_addr: SocketAddr,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    conns: Conns,
    hub: Hub,
    routes: Routes,
    pass: Pass,
    /// Queue and waker shared with `Publisher` and `ShutdownHandle`.
    shared: Arc<Shared>,
    /// `--stdin`: the bridge, while stdin is open and pollable.
    stdin: Option<stdin::StdinBridge>,
    ticker: sources::Ticker,
    clock: Clock,
    /// `events` holds readiness a fan-out pass found ready and yielded to; the next turn
    /// handles it without polling again.
    events_pending: bool,
    stopping: bool,
}

impl Server {
    /// Binds the listening socket, loads the history file (if any) and allocates everything
    /// the server will ever use.
    pub fn new(config: Config) -> Result<Server, StartError> {
        let slots = config.max_clients + RESERVE_SLOTS;
        if slots > MAX_CAPACITY {
            return Err(StartError::TooManyClients);
        }
        let poll = Poll::new().map_err(StartError::Io)?;
        let waker = mio::Waker::new(poll.registry(), WAKER).map_err(StartError::Io)?;
        let shared = Shared::new(waker, config.max_event_bytes, slots);
        let listen = config.listen;
        let mut listener = TcpListener::bind(listen).map_err(|source| StartError::Listen { addr: listen, source })?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE).map_err(StartError::Io)?;
        let local_addr = listener.local_addr().map_err(StartError::Io)?;
        // SAFETY: listen(2) on a socket we own, already listening: it only raises the backlog.
        if unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), BACKLOG) } != 0 {
            warn!("cannot raise the listen backlog: {}", io::Error::last_os_error());
        }
        let secs_or_never = |secs: u64| if secs == 0 { Millis::NEVER } else { Millis::from_secs(secs) };
        let timeouts = Timeouts {
            head: Millis::from_secs(config.head_timeout_secs),
            keepalive: Millis::from_secs(config.keepalive_timeout_secs),
            heartbeat: secs_or_never(config.heartbeat_secs),
            stream: secs_or_never(config.stream_timeout_secs),
        };
        let in_bytes = MAX_HEAD_BYTES + 3 * config.max_event_bytes + 1024;
        let conns = Conns::new(slots, config.request_buffers, in_bytes, timeouts, config.retry_ms, shared.clone());
        #[cfg(feature = "cluster")]
        if let Some(url) = config.redis.as_ref().filter(|_| config.history_file.is_some()) {
            let _ = url;
            return Err(StartError::HistoryFile("cannot be used with --redis: the Redis stream is the history".into()));
        }
        let hub = Hub::new(&config, slots).map_err(|e| StartError::HistoryFile(e.to_string()))?;
        let stdin = if config.stdin { sources::open_stdin(&poll, &config) } else { None };
        Ok(Server {
            poll,
            events: Events::with_capacity(EVENTS),
            accept: Acceptor::new(listener),
            local_addr,
            signals: None,
            conns,
            pass: Pass::new(&hub.log),
            hub,
            routes: Routes::new(&config, shared.clone()),
            shared,
            stdin,
            ticker: sources::Ticker::new(config.tick_secs),
            clock: Clock::start(),
            events_pending: false,
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
    /// event's id, as subscribers see it.
    ///
    /// In cluster mode (`--redis`) this returns `PublishError::Clustered`: the id is Redis's to
    /// give, later; publish with a `Publisher` instead (or over HTTP, answered with the id).
    pub fn publish(&mut self, event: Event) -> Result<EventId, PublishError> {
        #[cfg(feature = "cluster")]
        if self.hub.cluster.is_some() {
            return Err(PublishError::Clustered);
        }
        let seq = self.hub.publish(&event.fields())?;
        Ok(EventId::new(self.hub.log.get(seq).map_or(&b""[..], |v| v.id)))
    }

    /// Registers a request-scoped stream: a GET on `path` calls `handler` (on the loop's
    /// thread; it must not block) with the stream's id, which the host then feeds with
    /// `Publisher::send_frame` and ends with `Publisher::end`. A path the server already serves
    /// is refused (switch the built-in route off in `Config::builtins` to take its path).
    pub fn stream_route(
        &mut self,
        path: &str,
        handler: impl FnMut(&StreamRequest) + Send + 'static,
    ) -> Result<(), StreamRouteError> {
        self.routes.add_stream_route(path, Box::new(handler))
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
        self.shared.set_stopped();
        self.accept.listener = None;
        let now = self.clock.now();
        self.conns.shutdown(&mut self.hub, now);
        info!("stopped");
    }

    /// Waits for readiness (at most `timeout`, or until the next deadline) and handles it.
    pub fn poll(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let now = self.clock.now();
        // Work left from the last turn: connections with requests waiting, or a fan-out pass
        // due (under way, or events published since the last one began, by anyone).
        // Publishes held by the pace (`deliver::pace`) wait out their hold; the clock is read
        // only when someone waits.
        let hold = if self.conns.has_ready() { self.pass.pace.hold_left(Instant::now()) } else { None };
        let ready = self.conns.has_ready() && hold.is_none_or(|left| left.is_zero());
        let busy = ready || self.pass.is_due(&self.hub.log) || self.hub.journal_pending();
        let timers = self.conns.next_deadline().min(self.hub.journal_deadline()).min(self.conns.lobby.next_deadline());
        let next = if busy { now } else { timers.min(self.accept.retry_at()).min(self.ticker.next()) };
        #[cfg(feature = "cluster")]
        let next = next.min(self.cluster_deadline());
        let wait = match (timeout, next.is_never()) {
            (t, true) => t,
            (None, false) => Some(next.until(now)),
            (Some(t), false) => Some(t.min(next.until(now))),
        };
        let wait = match hold {
            Some(left) => Some(wait.map_or(left, |w| w.min(left))),
            None => wait,
        };
        // Taken out so handlers can borrow `self`; `with_capacity(0)` does not allocate.
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let pending = std::mem::take(&mut self.events_pending);
        if let Err(e) = if pending { Ok(()) } else { self.poll.poll(&mut events, wait) } {
            self.events = events;
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        let now = self.clock.now();
        self.pass.pace.begin_turn();
        // Connections that waited since an earlier turn (held by the pace, or out of their turn)
        // go before those that became ready now: requests and closes are taken in order.
        let mut ctx = Ctx { hub: &mut self.hub, routes: &mut self.routes, pass: &mut self.pass };
        self.conns.serve_ready(&mut ctx, now);
        for event in events.iter() {
            match event.token() {
                LISTENER => self.accept_ready(now),
                SIGNALS => self.on_signal(),
                WAKER => self.on_wake(now),
                STDIN => self.on_stdin(),
                #[cfg(feature = "cluster")]
                token if self.cluster_owns(token) => self.cluster_run(Some(token), now),
                token => {
                    if let Some(seat) = Lobby::seat_of(token) {
                        self.conns.lobby.on_readable(seat, self.poll.registry(), &mut self.routes, now);
                        continue;
                    }
                    let Some(key) = Key::from_token(token) else { continue };
                    let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                    let writable = event.is_writable() || event.is_write_closed();
                    let mut ctx = Ctx { hub: &mut self.hub, routes: &mut self.routes, pass: &mut self.pass };
                    self.conns.on_ready(key, readable, writable, &mut ctx, now);
                }
            }
        }
        self.events = events;
        if self.stopping {
            return Ok(());
        }
        let mut ctx = Ctx { hub: &mut self.hub, routes: &mut self.routes, pass: &mut self.pass };
        self.conns.serve_waiting(&mut ctx, now);
        self.conns.run_timers(&mut ctx, now);
        self.conns.lobby.run_timers(self.poll.registry(), &mut self.routes, now);
        if self.accept.retry_at() <= now {
            self.accept_ready(now);
        }
        if self.ticker.next() <= now {
            self.tick(now);
        }
        #[cfg(feature = "cluster")]
        {
            // Publishes queued this turn go out; entries read come in, and publishes Redis
            // answered are served at once.
            self.cluster_run(None, now);
            let mut ctx = Ctx { hub: &mut self.hub, routes: &mut self.routes, pass: &mut self.pass };
            self.conns.serve_ready(&mut ctx, now);
        }
        // Every connection had its turn: a release of held publishers ends here, before the
        // answers below, whose connections' next requests wait for the next release.
        self.pass.pace.end_turn();
        // The turn's one write to the history file, then the answers to the publishes it holds.
        self.hub.write_journal(now);
        let mut ctx = Ctx { hub: &mut self.hub, routes: &mut self.routes, pass: &mut self.pass };
        self.conns.serve_after_journal(&mut ctx, now);
        // The fan-out pass, in slices of time. Between two, a zero-timeout poll asks whether anyone is
        // waiting (a publisher for its answer, a new subscriber); if so the pass yields and
        // resumes next turn, so a publish is answered within a slice whatever the fan-out, and
        // the events it brings ride in the rest of the same pass. A publish the pass held back
        // (`Pass::admits_publish`) is taken at the next release.
        while !self.conns.fan_out(&mut self.hub, &mut self.pass, now, PASS_SLICE) {
            if self.conns.has_ready() && self.pass.pace.hold_is_over(Instant::now()) {
                break;
            }
            if self.conns.awaits_journal() {
                break; // answers wait for the next turn's write to the history file
            }
            if self.poll.poll(&mut self.events, Some(Duration::ZERO)).is_ok() && !self.events.is_empty() {
                self.events_pending = true;
                break;
            }
        }
        let mut ctx = Ctx { hub: &mut self.hub, routes: &mut self.routes, pass: &mut self.pass };
        self.conns.serve_waiting(&mut ctx, now);
        if self.conns.take_freed() {
            // Accepting may have been paused for lack of descriptors: one just came free.
            self.accept.resume_now();
        }
        Ok(())
    }

    /// Runs the loop on a clock set by hand from now on (tests of timers, without sleeping).
    #[cfg(test)]
    fn set_fake_time(&mut self, now: Millis) {
        self.clock = Clock::Fake(now);
    }

    fn accept_ready(&mut self, now: Millis) {
        while let Some((sock, peer)) = self.accept.next(now) {
            self.hub.stats.accepted += 1;
            let mut ctx = Ctx { hub: &mut self.hub, routes: &mut self.routes, pass: &mut self.pass };
            self.conns.admit(sock, peer, self.poll.registry(), &mut ctx, now);
        }
    }

    fn on_signal(&mut self) {
        let got = self.signals.as_mut().is_some_and(|s| s.pending().next().is_some());
        if got {
            info!("signal received, stopping");
            self.shutdown();
        }
    }
}

#[cfg(test)]
mod tests;
