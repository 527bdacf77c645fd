//! The request driver: reads a connection's bytes into its buffer, frames requests with the
//! HTTP layer, hands complete ones to the routes, and applies what they decide.

use super::Peer;
use super::io::{read_input, write_out};
use super::table::{Conns, Ctx};
use super::{Close, Queued, State};
use crate::deliver::Admit;
use crate::http::{self, Framing, Head, HttpError, Method};
use crate::mem::pool::OUT_BYTES;
use crate::mem::{BufId, Key, Writer};
use crate::publish::Hub;
use crate::publish::handle::StreamId;
use crate::routes::{Outcome, Request, head_end, write_error};
use crate::time::Millis;
use log::{debug, warn};
use std::time::Instant;

/// Room an answer may need in a buffer's output part: the largest is /metrics (a 3 KiB body).
const MAX_ANSWER: usize = 4096;

/// Requests one connection may have answered per loop turn; a pipelining publisher then waits
/// for the next turn, so the fan-out pass (and everyone else) runs in between.
const REQUESTS_PER_TURN: usize = 16;

/// What handling the request at the front of a buffer did.
enum Step {
    /// Not complete yet.
    NeedMore,
    /// A response (or `100 Continue`) is in the output part.
    Responded,
    /// The connection became a stream.
    Upgraded,
    /// Cluster mode: the request is done, its answer waits for Redis (`conn::cluster`).
    #[cfg(feature = "cluster")]
    Awaiting,
}

impl Conns {
    /// Writes pending output, reads input and answers complete requests, in order, until the
    /// connection waits for the network or changes state.
    ///
    /// While events of this turn are not yet in the history file, answers are not written:
    /// they gather in the buffer (a pipelining publisher's sixteen answers, one write later)
    /// and the connection waits in `after_journal` for the turn's one write to the file.
    pub(super) fn drive_request(&mut self, key: Key, ctx: &mut Ctx, now: Millis) {
        let (mut answered, mut released) = (0, false);
        loop {
            #[cfg(feature = "cluster")]
            if self.slab.get(key).is_some_and(|c| c.queued == Queued::Redis) && !self.may_pipeline(key, ctx) {
                return; // its answers wait for Redis (`answer_publish`)
            }
            let id = if ctx.hub.journal_pending() && self.has_output(key) {
                match self.room_for_answer(key) {
                    Some(id) => id,
                    None => return self.wait_for_journal(key),
                }
            } else {
                let Some(id) = self.write_pending(key, State::Request, ctx.hub, now) else { return };
                id
            };
            if answered == REQUESTS_PER_TURN {
                return self.end_turn(key, ctx);
            }
            // Once a release of the pace took this connection's requests, it is not read again
            // in this call: what it had sent is taken; a waiting publisher's next publish, sent
            // on this answer, waits for the next release.
            if !released {
                let Some(conn) = self.slab.get_mut(key) else { return };
                if let Err(why) = read_input(&mut conn.sock, &mut self.pool, id) {
                    return self.close(key, why, ctx.hub);
                }
            }
            // Publishes are paced (`Pass::admits_publish`); other requests, and closes, are not.
            if self.publish_next(id) {
                match ctx.pass.admits_publish(&ctx.hub.log, Instant::now()) {
                    Admit::Held => return self.end_turn(key, ctx),
                    Admit::Released => released = true,
                    Admit::Now => {}
                }
            }
            match self.handle_request(key, id, ctx, now) {
                Step::Responded => {
                    answered += 1;
                    let Some(conn) = self.slab.get_mut(key) else { return };
                    conn.since = now;
                    conn.fresh = false;
                }
                Step::Upgraded => return,
                #[cfg(feature = "cluster")]
                Step::Awaiting => {
                    // Nothing is read meanwhile; a connection is in one queue at most. Driven by
                    // its own readiness while it still waited in `ready` for its next turn, it
                    // leaves that queue: that turn would find it without a request, take it for
                    // idle, and the answer Redis gives would find no one waiting.
                    if let Some(conn) = self.slab.get_mut(key)
                        && std::mem::replace(&mut conn.queued, Queued::Redis) == Queued::Ready
                    {
                        self.ready.retain(|&k| k != key);
                    }
                    // A pipelining publisher's next publish may go to Redis behind this one.
                }
                Step::NeedMore => {
                    if ctx.hub.journal_pending() && self.has_output(key) {
                        return self.wait_for_journal(key); // answers first, then the rest
                    }
                    let state = *self.pool.state(id);
                    if state.eof {
                        let why = if state.in_len == 0 { Close::PeerClosed } else { Close::ClosedMidRequest };
                        return self.close(key, why, ctx.hub);
                    }
                    if state.in_len == 0 {
                        // Nothing of a request yet: no buffer needed until bytes arrive. A new
                        // connection keeps its head clock from accept.
                        self.release_buffer(key);
                        let since = self.slab.get(key).map_or(now, |c| if c.fresh { c.since } else { now });
                        self.set_state(key, State::Idle, since);
                    }
                    return;
                }
            }
        }
    }

    /// The connection's turn is over with requests left: it waits in `ready` (or, with answers
    /// written into its buffer this turn, for the history file's write).
    fn end_turn(&mut self, key: Key, ctx: &mut Ctx) {
        if ctx.hub.journal_pending() && self.has_output(key) {
            return self.wait_for_journal(key);
        }
        let Some(conn) = self.slab.get_mut(key) else { return };
        // Each connection is queued at most once, so the queue, sized for every slot, never
        // grows.
        if conn.queued == Queued::No {
            conn.queued = Queued::Ready;
            self.ready.push_back(key);
        }
    }

    /// The next request in the buffer is a publish (a POST; the routes decide the rest).
    fn publish_next(&mut self, id: BufId) -> bool {
        let (state, input, _) = self.pool.parts(id);
        input[..state.in_len as usize].starts_with(b"POST ")
    }

    /// Cluster mode, a connection whose publishes wait for Redis: whether the next request may
    /// go to Redis behind them. Only a complete publish (POST to /events or /sse/send) with a
    /// Content-Length body and no `Origin` (its answer then needs no per-request CORS), while
    /// fewer than `MAX_IN_FLIGHT` wait: anything else waits for their answers, so answers leave
    /// in the order of the requests.
    #[cfg(feature = "cluster")]
    fn may_pipeline(&mut self, key: Key, ctx: &mut Ctx) -> bool {
        let Some(node) = ctx.hub.cluster.as_ref() else { return false };
        if node.slots.get(key.index as usize).is_none_or(|s| s.waiting.is_full()) {
            return false;
        }
        let Some(conn) = self.slab.get_mut(key) else { return false };
        let Some(id) = conn.buf else { return false };
        if read_input(&mut conn.sock, &mut self.pool, id).is_err() {
            return false; // the close is seen once the answers are written
        }
        let (state, input, _) = self.pool.parts(id);
        let Ok(http::Parsed::Complete(head)) =
            http::request::parse_head(&input[..state.in_len as usize], crate::limits::MAX_HEAD_BYTES)
        else {
            return false;
        };
        let path = head.path.of(input);
        head.method == Method::Post
            && matches!(head.body, http::Body::Length(_))
            && head.origin.is_none()
            && head.keep_alive
            && (path == b"/events" || path == b"/sse/send")
    }

    /// The connection's buffer holds output not yet written.
    fn has_output(&mut self, key: Key) -> bool {
        let Some(id) = self.slab.get(key).and_then(|c| c.buf) else { return false };
        self.pool.state(id).out_pending()
    }

    /// The buffer, if another answer may be gathered behind the ones waiting in it: none asked
    /// for the close or carries a built-in file, and the largest answer still fits.
    fn room_for_answer(&mut self, key: Key) -> Option<BufId> {
        let id = self.slab.get(key).filter(|c| c.state == State::Request).and_then(|c| c.buf)?;
        let state = self.pool.state(id);
        let room = OUT_BYTES - state.out_len as usize;
        (!state.close_after && state.body.is_empty() && room >= MAX_ANSWER).then_some(id)
    }

    /// Queues the connection until the turn's write to the history file (`after_journal`).
    fn wait_for_journal(&mut self, key: Key) {
        let Some(conn) = self.slab.get_mut(key) else { return };
        match conn.queued {
            // In `ready`, it is driven at the start of the next turn, after this turn's write.
            Queued::Journal | Queued::Ready => {}
            // Waiting for Redis's answer (cluster mode has no history file).
            #[cfg(feature = "cluster")]
            Queued::Redis => {}
            Queued::No => {
                conn.queued = Queued::Journal;
                self.after_journal.push_back(key);
            }
        }
    }

    /// Writes the pending output of a connection in `state` that holds a buffer. `Some(buffer)`
    /// when all of it is written and the connection goes on; `None` when it waits for the
    /// socket, or has been closed or put to linger (its response asked for the close).
    pub(super) fn write_pending(&mut self, key: Key, state: State, hub: &mut Hub, now: Millis) -> Option<BufId> {
        let conn = self.slab.get_mut(key)?;
        let id = conn.buf.filter(|_| conn.state == state)?;
        match write_out(&mut conn.sock, &mut self.pool, id) {
            Ok(true) => {}
            Ok(false) => {
                conn.write_blocked = true;
                return None;
            }
            Err(_) => {
                self.close(key, Close::WriteFailed, hub);
                return None;
            }
        }
        if self.pool.state(id).close_after {
            self.linger(key, hub, now);
            return None;
        }
        Some(id)
    }

    /// Answers the request at the front of the buffer, if it is complete.
    fn handle_request(&mut self, key: Key, id: BufId, ctx: &mut Ctx, now: Millis) -> Step {
        let census = self.census();
        let peer_loopback = self.slab.get(key).is_some_and(|c| c.loopback);
        let (state, input, out) = self.pool.parts(id);
        let in_len = state.in_len as usize;
        if in_len == 0 {
            return Step::NeedMore;
        }
        // A new answer goes behind those still waiting to be written (`drive_request`).
        let base = state.out_len as usize;
        let (head, body, consumed) = match http::frame_request(input, in_len) {
            Err(e) => return self.refuse(key, id, e, None, ctx),
            Ok(Framing::Partial) => return Step::NeedMore,
            Ok(Framing::AwaitingBody(head)) => {
                if head.expect_continue && !state.continued {
                    state.continued = true;
                    let line = b"HTTP/1.1 100 Continue\r\n\r\n";
                    out[base..base + line.len()].copy_from_slice(line);
                    state.out_len = (base + line.len()) as u32;
                    return Step::Responded;
                }
                return Step::NeedMore;
            }
            Ok(Framing::Complete { head, body, consumed }) => (head, body, consumed),
        };
        let stream = StreamId { slot: key.index, generation: key.generation() };
        let out = Writer::new(&mut out[base..]);
        let mut req = Request { head, input: &mut input[..], body, out, stream, now, peer_loopback, census };
        let outcome = ctx.routes.route(ctx.hub, &mut req);
        let written = req.out.len;
        let out_len = (base + written) as u32;
        if let Ok(outcome) = outcome {
            let body_len = match outcome {
                Outcome::Respond { body, .. } => body.len(),
                _ => 0,
            };
            self.access_line(key, &head, id, base, written + body_len);
        }
        let state = self.pool.state(id);
        match outcome {
            Err(e) => return self.refuse(key, id, e, Some(head), ctx),
            #[cfg(feature = "cluster")]
            Ok(Outcome::Await) => {
                // Answers of earlier publishes of this connection may wait in the output part.
                self.pool.consume_input(id, consumed);
                return Step::Awaiting;
            }
            Ok(Outcome::Respond { close, body }) => {
                state.out_len = out_len;
                state.close_after = close;
                state.body = body;
                state.body_pos = 0;
                self.pool.consume_input(id, consumed);
                return Step::Responded;
            }
            Ok(_) => {
                state.out_len = out_len;
            }
        }
        match outcome {
            Ok(Outcome::Subscribe { cursor, filtered }) => self.become_subscriber(key, cursor, filtered, ctx.hub, now),
            Ok(Outcome::Demo { text, delay_ms }) => self.become_demo(key, id, text, delay_ms, ctx.hub, now),
            Ok(Outcome::Host) => self.become_host(key, id, ctx.hub, now),
            _ => {}
        }
        Step::Upgraded
    }

    /// At debug level, one line per request answered: method, path (never the query: tokens
    /// travel there), status, bytes of the response (streams: of their head).
    fn access_line(&mut self, key: Key, head: &Head, id: BufId, at: usize, bytes: usize) {
        if !log::log_enabled!(log::Level::Debug) {
            return;
        }
        let Some(conn) = self.slab.get(key) else { return };
        let (_, input, out) = self.pool.parts(id);
        let status = out.get(at + 9..at + 12).and_then(|s| std::str::from_utf8(s).ok()).unwrap_or("?");
        let (method, path) = (lossy(head.method_token.of(input)), lossy(head.path.of(input)));
        debug!("{}: {method} {path} {status} {bytes}", Peer(conn, key));
    }

    /// Writes an error response; the connection closes once it is sent. The warning names the
    /// method and path when the request line could be read.
    fn refuse(&mut self, key: Key, id: BufId, e: HttpError, head: Option<Head>, ctx: &mut Ctx) -> Step {
        let (state, input, out) = self.pool.parts(id);
        let cors = ctx.routes.cors(head.and_then(|h| h.origin).map(|o| o.of(input)));
        // Behind the answers still waiting to be written, like every answer.
        let base = state.out_len as usize;
        let mut w = Writer::new(&mut out[base..]);
        write_error(&mut w, e, cors);
        if head.is_some_and(|h| h.method == Method::Head) {
            w.len = head_end(w.written());
        }
        if let Some(conn) = self.slab.get(key) {
            let peer = Peer(conn, key);
            let (status, why, bytes) = (e.status() as u16, e.message(), w.len);
            match head {
                Some(h) => {
                    let (method, path) = (lossy(h.method_token.of(input)), lossy(h.path.of(input)));
                    // Browsers ask for an icon on their own; a missing one is not the operator's
                    // problem, so it gets only the access line.
                    // Nor is a dependency that is down, which its own rate-limited line reports.
                    let quiet = (path == "/favicon.ico" && status == 404) || matches!(e, HttpError::Upstream(_));
                    if !quiet {
                        warn!("{peer}: {method} {path}: {status} {why}");
                    }
                    debug!("{peer}: {method} {path} {status} {bytes}");
                }
                None => warn!("{peer}: {status} {why}"),
            }
        }
        state.out_len = (base + w.len) as u32;
        state.close_after = true;
        // Whatever follows a refused request cannot be trusted to be a request.
        state.in_len = 0;
        Step::Responded
    }
}

/// Bytes from a request for a log line; invalid UTF-8 shows as U+FFFD, control bytes cannot
/// occur (the request layer refused them).
fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}
