//! Handles for other threads: `Publisher` (events, and frames for request-scoped streams) and
//! `ShutdownHandle`, over a fixed queue the loop drains.
//!
//! A handle never blocks and never allocates. The queue is `QUEUE_LEN` message slots allocated
//! at start-up, each big enough for the configured `max_event_bytes`; their indices travel
//! through two lock-free queues (free, ready), so a slot has one owner at a time and its mutex
//! is never contended. When no slot is free the caller gets its message back, like heapless'
//! `push`, and decides: retry, drop, or slow down.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::limits::{Fields, MAX_CLIENT, MAX_EVENT_NAME, MAX_ID, MAX_TOPIC, QUEUE_LEN};

const FIELD_BYTES: usize = MAX_EVENT_NAME + MAX_ID + MAX_TOPIC + MAX_CLIENT;

/// An event to publish. Empty fields are left out; an empty `id` gets a server id.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Event<'a> {
    /// The data; each line becomes one `data:` line.
    pub data: &'a str,
    /// The event name (`event:` line); empty for the default `message`.
    pub event: &'a str,
    /// The event id; empty to let the server give one.
    pub id: &'a str,
    /// The topic; empty for every subscriber.
    pub topic: &'a str,
    /// The only client id that may receive it; empty for everyone.
    pub client: &'a str,
}

impl<'a> Event<'a> {
    /// An event with this data and nothing else set.
    pub fn new(data: &'a str) -> Event<'a> {
        Event { data, ..Default::default() }
    }
    /// The event name (`event:` line; an EventSource listener for it fires).
    pub fn event(self, name: &'a str) -> Event<'a> {
        Event { event: name, ..self }
    }
    /// The event id, kept verbatim (a client's Last-Event-ID then names it).
    pub fn id(self, id: &'a str) -> Event<'a> {
        Event { id, ..self }
    }
    /// Only subscribers of this topic (and those without a topic filter) receive it.
    pub fn topic(self, topic: &'a str) -> Event<'a> {
        Event { topic, ..self }
    }
    /// Only the stream connected with this client id receives it.
    pub fn client(self, client: &'a str) -> Event<'a> {
        Event { client, ..self }
    }

    pub(crate) fn fields(&self) -> Fields<'a> {
        Fields {
            id: self.id.as_bytes(),
            event: self.event.as_bytes(),
            data: self.data.as_bytes(),
            topic: self.topic.as_bytes(),
            client: self.client.as_bytes(),
        }
    }
}

/// An event's id as subscribers see it on its `id:` line (returned by `Server::publish`).
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct EventId {
    bytes: [u8; MAX_ID],
    len: u8,
}

impl EventId {
    pub(crate) fn new(id: &[u8]) -> EventId {
        let mut bytes = [0u8; MAX_ID];
        let len = id.len().min(MAX_ID);
        bytes[..len].copy_from_slice(&id[..len]);
        EventId { bytes, len: len as u8 }
    }

    /// The id (ids are UTF-8: the server's own are ASCII, a publisher's are checked).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventId({:?})", self.as_str())
    }
}

/// Identifies a request-scoped stream (see `Server::stream_route`): its connection slot and
/// the generation of that slot, so the id of a stream that has ended never names a newer one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// Why a message was not queued; the message comes back inside.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SendError<T> {
    /// The queue is full: the loop has not caught up yet. Retry later.
    Full(T),
    /// Data over `Config::max_event_bytes`.
    TooLarge(T),
    /// A field is malformed (the text says which).
    Invalid(T, &'static str),
    /// The stream has ended: its client went away, or it was ended. Stop producing for it.
    Closed(T),
    /// The server has stopped.
    Stopped(T),
}

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Full(t)
            | SendError::TooLarge(t)
            | SendError::Invalid(t, _)
            | SendError::Closed(t)
            | SendError::Stopped(t) => t,
        }
    }

    fn map<U>(self, item: U) -> SendError<U> {
        match self {
            SendError::Full(_) => SendError::Full(item),
            SendError::TooLarge(_) => SendError::TooLarge(item),
            SendError::Invalid(_, why) => SendError::Invalid(item, why),
            SendError::Closed(_) => SendError::Closed(item),
            SendError::Stopped(_) => SendError::Stopped(item),
        }
    }
}

impl<T> std::fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("publish queue full"),
            SendError::TooLarge(_) => f.write_str("data too large"),
            SendError::Invalid(_, why) => f.write_str(why),
            SendError::Closed(_) => f.write_str("stream closed"),
            SendError::Stopped(_) => f.write_str("server stopped"),
        }
    }
}

impl<T: std::fmt::Debug> std::error::Error for SendError<T> {}

/// What a queued message asks the loop to do.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Publish,
    Frame,
    End,
}

/// One queue slot: a message with its fields and data packed into preallocated bytes.
pub(crate) struct Message {
    pub kind: Kind,
    pub stream: StreamId,
    lens: [u8; 4],
    len: usize,
    bytes: Box<[u8]>,
}

impl Message {
    fn pack(&mut self, kind: Kind, stream: StreamId, fields: [&[u8]; 4], data: &[u8]) {
        self.kind = kind;
        self.stream = stream;
        let mut at = 0;
        for (i, f) in fields.iter().enumerate() {
            self.lens[i] = f.len() as u8;
            self.bytes[at..at + f.len()].copy_from_slice(f);
            at += f.len();
        }
        self.bytes[at..at + data.len()].copy_from_slice(data);
        self.len = at + data.len();
    }

    /// The event to publish, as packed.
    pub fn fields(&self) -> Fields<'_> {
        let mut at = 0;
        let mut out = [&b""[..]; 4];
        for (i, &len) in self.lens.iter().enumerate() {
            out[i] = &self.bytes[at..at + len as usize];
            at += len as usize;
        }
        let [event, id, topic, client] = out;
        Fields { id, event, topic, client, data: &self.bytes[at..self.len] }
    }
}

/// What the loop and its handles share.
pub(crate) struct Shared {
    slots: Box<[Mutex<Message>]>,
    /// Indices of slots no one holds, and of slots holding a message for the loop. Each index
    /// is in at most one of them, so neither can overflow.
    free: heapless::mpmc::Queue<u8, QUEUE_LEN>,
    ready: heapless::mpmc::Queue<u8, QUEUE_LEN>,
    waker: mio::Waker,
    /// A wake is on its way; saves a syscall per message while the loop has not run yet.
    wake_pending: AtomicBool,
    /// Per connection slot: 1 + the generation of the host stream open there, 0 when none.
    live: Box<[AtomicU64]>,
    max_data: usize,
    stop: AtomicBool,
    stopped: AtomicBool,
}

impl Shared {
    /// Queue slots for events of at most `max_data` bytes, for a server of `conn_slots`.
    pub fn new(waker: mio::Waker, max_data: usize, conn_slots: usize) -> Arc<Shared> {
        let message = || Message {
            kind: Kind::Publish,
            stream: StreamId { slot: 0, generation: 0 },
            lens: [0; 4],
            len: 0,
            // Zeroed, so slots never used stay non-resident.
            bytes: vec![0u8; FIELD_BYTES + max_data].into_boxed_slice(),
        };
        // Deprecated upstream because a producer pre-empted mid-enqueue can make others see the
        // queue as full for a moment; here that is a `Full` the caller retries.
        #[allow(deprecated)]
        let (free, ready) = (heapless::mpmc::Queue::new(), heapless::mpmc::Queue::new());
        for i in 0..QUEUE_LEN as u8 {
            let _ = free.enqueue(i);
        }
        Arc::new(Shared {
            slots: (0..QUEUE_LEN).map(|_| Mutex::new(message())).collect(),
            free,
            ready,
            waker,
            wake_pending: AtomicBool::new(false),
            live: (0..conn_slots).map(|_| AtomicU64::new(0)).collect(),
            max_data,
            stop: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        })
    }

    fn send(&self, kind: Kind, stream: StreamId, fields: [&[u8]; 4], data: &[u8]) -> Result<(), SendError<()>> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(SendError::Stopped(()));
        }
        let Some(i) = self.free.dequeue() else { return Err(SendError::Full(())) };
        lock(&self.slots[i as usize]).pack(kind, stream, fields, data);
        let _ = self.ready.enqueue(i);
        self.wake();
        Ok(())
    }

    fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Hands every queued message to `handle`, oldest first. Clears the pending wake first, so
    /// messages queued from then on wake the loop again.
    pub fn drain(&self, mut handle: impl FnMut(&Message)) {
        self.wake_pending.store(false, Ordering::Release);
        while let Some(i) = self.ready.dequeue() {
            handle(&lock(&self.slots[i as usize]));
            let _ = self.free.enqueue(i);
        }
    }

    /// Whether a `ShutdownHandle` asked the loop to stop.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// From now on handles get `SendError::Stopped`.
    pub fn set_stopped(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// A host stream now streams on `id`: frames for it are taken.
    pub fn open_stream(&self, id: StreamId) {
        self.live[id.slot as usize].store(u64::from(id.generation) + 1, Ordering::Release);
    }

    /// The host stream on `id` has ended: frames for it get `SendError::Closed`.
    pub fn close_stream(&self, id: StreamId) {
        let _ = self.live[id.slot as usize].compare_exchange(
            u64::from(id.generation) + 1,
            0,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    fn is_open(&self, id: StreamId) -> bool {
        self.live.get(id.slot as usize).is_some_and(|g| g.load(Ordering::Acquire) == u64::from(id.generation) + 1)
    }
}

/// A slot's lock: never contended (one owner at a time), never poisoned in a way that matters
/// (a message is plain bytes).
fn lock(slot: &Mutex<Message>) -> std::sync::MutexGuard<'_, Message> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// Publishes from any thread: `Clone + Send`, never blocks, never allocates.
#[derive(Clone)]
pub struct Publisher {
    pub(crate) shared: Arc<Shared>,
}

impl Publisher {
    /// Queues `event` for publishing, under the same rules and limits as every other source;
    /// the loop checks routing (that a targeted client is connected) and logs what it refuses.
    pub fn publish<'a>(&self, event: Event<'a>) -> Result<(), SendError<Event<'a>>> {
        let f = event.fields();
        match f.check(self.shared.max_data) {
            Ok(()) => {}
            Err(crate::limits::FieldError::DataTooLarge) => return Err(SendError::TooLarge(event)),
            Err(e) => return Err(SendError::Invalid(event, e.message())),
        }
        let none = StreamId { slot: 0, generation: 0 };
        self.shared.send(Kind::Publish, none, [f.event, f.id, f.topic, f.client], f.data).map_err(|e| e.map(event))
    }

    /// Sends one frame (`data:` lines) on a request-scoped stream. Once the stream's client has
    /// gone (seen by the loop), or the stream was ended, this returns `SendError::Closed`.
    pub fn send_frame<'a>(&self, stream: StreamId, data: &'a str) -> Result<(), SendError<&'a str>> {
        if data.len() > self.shared.max_data {
            return Err(SendError::TooLarge(data));
        }
        if !self.shared.is_open(stream) {
            return Err(SendError::Closed(data));
        }
        self.shared.send(Kind::Frame, stream, [b""; 4], data.as_bytes()).map_err(|e| e.map(data))
    }

    /// Ends a request-scoped stream once everything sent before is written.
    pub fn end(&self, stream: StreamId) -> Result<(), SendError<StreamId>> {
        if !self.shared.is_open(stream) {
            return Err(SendError::Closed(stream));
        }
        self.shared.send(Kind::End, stream, [b""; 4], b"").map_err(|e| e.map(stream))
    }
}

/// Stops a running server from any thread: `run()` returns after streams are ended.
#[derive(Clone)]
pub struct ShutdownHandle {
    pub(crate) shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Asks the loop to stop; returns at once.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.shared.waker.wake();
    }
}
