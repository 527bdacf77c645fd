//! Cluster mode's part of the connection table: answering a publish once the link reported
//! Redis's outcome, and ending a stream whose client id a newer stream claimed on any instance.

use super::table::Conns;
use super::{Queued, State};
use crate::cluster::node::{CorsKind, ORIGIN_AT, SlotState, split_token};
use crate::http::Status;
use crate::http::response;
use crate::limits::MAX_ID;
use crate::mem::{Key, Writer};
use crate::publish::Hub;
use crate::routes::Cors;
use crate::time::Millis;
use log::info;

/// What Redis made of a publish.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Answer<'a> {
    /// Taken; subscribers see this id.
    Taken(&'a [u8]),
    /// Targeted at a client id that no instance holds.
    NoClient,
    /// Not taken (or unknown): the reason, for a 503.
    Unavailable(&'static str),
}

impl Conns {
    /// The key of the connection `token` names, if it is still that connection.
    fn key_of_token(&self, token: u64) -> Option<Key> {
        let (slot, generation) = split_token(token);
        self.slab.key_at(slot as usize).filter(|k| k.generation() == generation)
    }

    /// Writes the answer to the publish waiting under `token` and hands the connection back to
    /// the request driver (next `serve_ready`). A stale token (the connection closed, its slot
    /// reused) is ignored.
    pub fn answer_publish(&mut self, token: u64, answer: Answer, slots: &mut [SlotState], now: Millis) {
        let Some(key) = self.key_of_token(token) else { return };
        let Some(slot) = slots.get_mut(key.index as usize) else { return };
        let Some(waiter) = slot.waiting.pop_front() else { return };
        let more = !slot.waiting.is_empty();
        let Some(conn) = self.slab.get_mut(key) else { return };
        if conn.queued != Queued::Redis || conn.state != State::Request || waiter.generation != key.generation() {
            return;
        }
        let Some(id) = conn.buf else { return };
        conn.since = now;
        conn.fresh = false;
        let (state, _, out) = self.pool.parts(id);
        let (front, origin) = out.split_at_mut(ORIGIN_AT);
        // Behind the answers to earlier publishes of this connection, which wait with it.
        let base = (state.out_len as usize).min(front.len());
        let front = &mut front[base..];
        let cors = match waiter.cors {
            CorsKind::Any => Cors::Any,
            CorsKind::Denied => Cors::Denied,
            CorsKind::Origin(n) => Cors::Origin(&origin[..n as usize]),
        };
        let mut body = [0u8; MAX_ID + 32];
        let (status, text, extra): (Status, &[u8], &[&[u8]]) = match answer {
            Answer::Taken(id) => (Status::Ok, id, &[]),
            Answer::NoClient => (Status::NotFound, b"client not connected", &[]),
            Answer::Unavailable(why) => (Status::Unavailable, why.as_bytes(), &[b"Retry-After: 1\r\n"]),
        };
        let n = text.len().min(body.len() - 1);
        body[..n].copy_from_slice(&text[..n]);
        body[n] = b'\n';
        let ctype = "text/plain; charset=utf-8";
        let mut w = Writer::new(front);
        let keep_alive = waiter.keep_alive && status != Status::Unavailable;
        if response::simple(&mut w, status, ctype, &body[..n + 1], keep_alive, cors, extra).is_none() {
            w.len = 0;
        }
        state.out_len = (base + w.len) as u32;
        state.close_after |= !keep_alive;
        if !more {
            // Every answer is in: the request driver writes them and reads on (next turn).
            conn.queued = Queued::Ready;
            self.ready.push_back(key);
        }
    }

    /// A claim read from the stream: the newest stream with `client` is `stream` of instance
    /// `mine ? this : another`. The local stream with that id is confirmed when the claim is its
    /// own; a confirmed one is ended by any later claim (a newer stream, here or elsewhere); an
    /// unconfirmed one waits for its own (every claim read before it is older).
    /// A stream ended here is put in `releases`, for the caller to take its id out of this
    /// instance's presence set once the link is free.
    #[allow(clippy::too_many_arguments)]
    pub fn on_claim(
        &mut self,
        client: &[u8],
        stream: u64,
        mine: bool,
        slots: &mut [SlotState],
        releases: &mut Vec<u32>,
        hub: &mut Hub,
        now: Millis,
    ) {
        let Some(slot) = hub.filters.find_client(client) else { return };
        let Some(key) = self.slab.key_at(slot as usize) else { return };
        let Some(state) = slots.get_mut(slot as usize) else { return };
        let own = mine && crate::cluster::node::slot_token(key.index, key.generation()) == stream;
        if own {
            state.confirmed = true;
        } else if state.confirmed {
            info!("client {}: replaced by a newer stream on another instance", String::from_utf8_lossy(client));
            if std::mem::take(&mut state.holds) && releases.len() < releases.capacity() {
                releases.push(slot);
            }
            state.confirmed = false;
            self.end_subscriber(key, hub, now);
        }
    }
}

impl Conns {
    /// A subscriber ends: its client id leaves this instance's presence set, unless a newer
    /// stream here took it over. (While the link runs, `on_claim` does this itself.)
    pub(super) fn cluster_leave(&mut self, key: Key, hub: &mut Hub) {
        let Some(node) = hub.cluster.as_mut() else { return };
        let Some(state) = node.slots.get_mut(key.index as usize) else { return };
        state.confirmed = false;
        if std::mem::take(&mut state.holds) {
            let client = hub.filters.client(key.index);
            if !client.is_empty() {
                let _ = node.link.release(client);
            }
        }
    }
}
