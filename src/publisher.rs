//! Handles for other threads: `Publisher` (events, and frames for request-scoped streams) and
//! `ShutdownHandle`.
//!
//! A handle never blocks and never allocates: it copies the message into a fixed-capacity
//! lock-free queue (heapless) and wakes the loop through a `mio::Waker`. When the queue is full
//! the caller gets its message back in the error, like heapless' `push`, and decides: retry,
//! drop, or slow down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::event_log::{MAX_CLIENT, MAX_EVENT_NAME, MAX_ID, MAX_TOPIC};
use crate::filter::valid_client_id;
use crate::sse::has_line_break_or_nul;

/// Messages the queue holds; more wait in the caller's hands (see `SendError::Full`).
pub const QUEUE_LEN: usize = 32;
/// Largest event data a `Publisher` carries (the queue's slots are this big).
pub const MAX_DATA: usize = 8192;
const FIELD_BYTES: usize = MAX_EVENT_NAME + MAX_ID + MAX_TOPIC + MAX_CLIENT;

/// An event to publish. Empty fields are left out; an empty `id` gets a server id.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Event<'a> {
    pub data: &'a str,
    pub event: &'a str,
    pub id: &'a str,
    pub topic: &'a str,
    pub client: &'a str,
}

impl<'a> Event<'a> {
    pub fn new(data: &'a str) -> Event<'a> {
        Event { data, ..Default::default() }
    }
    /// The event name (`event:` line; an EventSource listener for it fires).
    pub fn event(self, name: &'a str) -> Event<'a> {
        Event { event: name, ..self }
    }
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

    /// Why this event cannot be published, if it cannot.
    fn invalid(&self) -> Option<&'static str> {
        if [self.event, self.id, self.topic].iter().any(|f| has_line_break_or_nul(f.as_bytes())) {
            return Some("CR, LF or NUL in event, id or topic");
        }
        if self.event.len() > MAX_EVENT_NAME || self.id.len() > MAX_ID || self.topic.len() > MAX_TOPIC {
            return Some("event name, id or topic too long");
        }
        if !self.client.is_empty() && !valid_client_id(self.client.as_bytes()) {
            return Some("client id must be 1-64 of A-Z a-z 0-9 . _ ~ -");
        }
        None
    }
}

/// Identifies a request-scoped stream (see `Server::stream_route`). Stale ids, of streams that
/// have ended, are ignored.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamId(pub(crate) usize);

/// Why a message was not queued; the message comes back inside.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SendError<T> {
    /// The queue is full: the loop has not caught up yet. Retry later.
    Full(T),
    /// Data over `publisher::MAX_DATA` bytes.
    TooLarge(T),
    /// A field is malformed (the text says which).
    Invalid(T, &'static str),
    /// The server has stopped.
    Stopped(T),
}

impl<T> SendError<T> {
    pub fn into_inner(self) -> T {
        match self {
            SendError::Full(t) | SendError::TooLarge(t) | SendError::Invalid(t, _) | SendError::Stopped(t) => t,
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("publish queue full"),
            SendError::TooLarge(_) => f.write_str("data too large"),
            SendError::Invalid(_, why) => f.write_str(why),
            SendError::Stopped(_) => f.write_str("server stopped"),
        }
    }
}

impl<T: std::fmt::Debug> std::error::Error for SendError<T> {}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Publish,
    Frame,
    End,
}

/// One queued message; fields and data packed into one fixed buffer.
pub(crate) struct Message {
    pub kind: Kind,
    pub stream: usize,
    lens: [u8; 4],
    bytes: heapless::Vec<u8, { FIELD_BYTES + MAX_DATA }>,
}

impl Message {
    fn new(kind: Kind, stream: usize) -> Message {
        Message { kind, stream, lens: [0; 4], bytes: heapless::Vec::new() }
    }

    fn pack(&mut self, fields: [&str; 4], data: &str) {
        for (i, f) in fields.iter().enumerate() {
            self.lens[i] = f.len() as u8;
            let _ = self.bytes.extend_from_slice(f.as_bytes());
        }
        let _ = self.bytes.extend_from_slice(data.as_bytes());
    }

    /// `(event, id, topic, client, data)` as packed.
    pub fn fields(&self) -> ([&[u8]; 4], &[u8]) {
        let mut at = 0;
        let mut out = [&b""[..]; 4];
        for (i, &len) in self.lens.iter().enumerate() {
            out[i] = &self.bytes[at..at + len as usize];
            at += len as usize;
        }
        (out, &self.bytes[at..])
    }
}

/// What the loop and its handles share.
pub(crate) struct Shared {
    queue: heapless::mpmc::Queue<Message, QUEUE_LEN>,
    waker: mio::Waker,
    /// A wake is on its way; saves a syscall per message while the loop has not run yet.
    wake_pending: AtomicBool,
    pub stop: AtomicBool,
    pub stopped: AtomicBool,
}

impl Shared {
    pub fn new(waker: mio::Waker) -> Arc<Shared> {
        Arc::new(Shared {
            // Deprecated upstream because a producer pre-empted mid-enqueue can make others see
            // the queue as full for a moment; here that is a `Full` the caller retries, and the
            // stalled producer's own wake makes the loop drain it.
            #[allow(deprecated)]
            queue: heapless::mpmc::Queue::new(),
            waker,
            wake_pending: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        })
    }

    /// Queues `message`; false when the queue is full (the message is dropped: callers keep
    /// their own copy of what they sent, so nothing big travels back).
    fn send(&self, message: Message) -> bool {
        if self.queue.enqueue(message).is_err() {
            return false;
        }
        self.wake();
        true
    }

    pub fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Called by the loop before draining, so messages queued from now on wake it again.
    pub fn take(&self) -> Option<Message> {
        self.queue.dequeue()
    }

    pub fn woken(&self) {
        self.wake_pending.store(false, Ordering::Release);
    }
}

/// Publishes from any thread: `Clone + Send`, never blocks, never allocates.
#[derive(Clone)]
pub struct Publisher {
    pub(crate) shared: Arc<Shared>,
}

impl Publisher {
    /// Queues `event` for publishing; the loop validates routing (e.g. that a targeted client is
    /// connected) and logs what it refuses.
    pub fn publish<'a>(&self, event: Event<'a>) -> Result<(), SendError<Event<'a>>> {
        if event.data.len() > MAX_DATA {
            return Err(SendError::TooLarge(event));
        }
        if let Some(why) = event.invalid() {
            return Err(SendError::Invalid(event, why));
        }
        let mut m = Message::new(Kind::Publish, 0);
        m.pack([event.event, event.id, event.topic, event.client], event.data);
        self.send(m).map_err(|e| e.map(event))
    }

    /// Sends one frame (`data:` lines) on a request-scoped stream.
    pub fn send_frame<'a>(&self, stream: StreamId, data: &'a str) -> Result<(), SendError<&'a str>> {
        if data.len() > MAX_DATA {
            return Err(SendError::TooLarge(data));
        }
        let mut m = Message::new(Kind::Frame, stream.0);
        m.pack(["", "", "", ""], data);
        self.send(m).map_err(|e| e.map(data))
    }

    /// Ends a request-scoped stream once everything sent before is written.
    pub fn end(&self, stream: StreamId) -> Result<(), SendError<StreamId>> {
        self.send(Message::new(Kind::End, stream.0)).map_err(|e| e.map(stream))
    }

    fn send(&self, m: Message) -> Result<(), SendError<()>> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(SendError::Stopped(()));
        }
        if self.shared.send(m) { Ok(()) } else { Err(SendError::Full(())) }
    }
}

impl SendError<()> {
    fn map<T>(self, item: T) -> SendError<T> {
        match self {
            SendError::Full(()) => SendError::Full(item),
            SendError::TooLarge(()) => SendError::TooLarge(item),
            SendError::Invalid((), why) => SendError::Invalid(item, why),
            SendError::Stopped(()) => SendError::Stopped(item),
        }
    }
}

/// Stops a running server from any thread: `run()` returns after streams are ended.
#[derive(Clone)]
pub struct ShutdownHandle {
    pub(crate) shared: Arc<Shared>,
}

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.shared.waker.wake();
    }
}
