//! Subscribing: `GET /events` and the seed's `GET /sse?clientId=`, with topics, a client id,
//! and Last-Event-ID replay (or a `gap` event when the id is no longer kept).

use super::{Outcome, Request, Routes, TOO_LARGE, stream_head};
use crate::http::{HttpError, Params};
use crate::limits::{CLIENT_ID_RULE, MAX_ID, valid_client_id};
use crate::mem::Writer;
use crate::publish::event_log::View;
use crate::publish::{Hub, Resume};

pub(super) fn subscribe(
    routes: &mut Routes,
    hub: &mut Hub,
    req: &mut Request,
    p: &Params,
    client_name: &str,
) -> Result<Outcome, HttpError> {
    // Written first (the input stays borrowed below); a refusal later overwrites it.
    stream_head(routes, req)?;
    let input: &[u8] = req.input;
    let client = p.get(input, client_name);
    if client_name == "clientId" && client.is_none() {
        return Err(HttpError::BadRequest("missing parameter: clientId"));
    }
    // Present means valid: `?client=` is a malformed id, not an anonymous stream.
    if client.is_some_and(|c| !valid_client_id(c)) {
        return Err(HttpError::BadRequest(CLIENT_ID_RULE));
    }
    let client = client.unwrap_or(b"");
    // The header wins over the query parameters (for clients that cannot set headers).
    let last_id = match req.head.last_event_id {
        Some(span) => span.of(input),
        None => p.get(input, "lastEventId").or_else(|| p.get(input, "last_event_id")).unwrap_or(b""),
    };
    if last_id.len() > MAX_ID {
        return Err(HttpError::BadRequest("Last-Event-ID longer than 128 bytes"));
    }
    let replacing = !client.is_empty() && hub.filters.find_client(client).is_some();
    if hub.subscribers >= routes.max_clients && !replacing {
        hub.stats.rejected_full += 1;
        if !req.head.accepts_event_stream {
            return Err(HttpError::Unavailable);
        }
        // Any status but 200 ends an EventSource for good (WHATWG): it gets a stream that
        // only says when to come back, then ends, and it reconnects by itself.
        log::warn!("stream refused: all {} subscriber slots in use; told the EventSource to retry", routes.max_clients);
        routes.retry.put_line(&mut req.out).ok_or(TOO_LARGE)?;
        return Ok(Outcome::Respond { close: true, body: &[] });
    }
    // An empty `topic=` (a form left blank) asks for nothing in particular.
    let topics = || p.all(input, "topic").filter(|t| !t.is_empty());
    let filtered = !client.is_empty() || topics().next().is_some();
    if filtered {
        hub.filters.set(req.stream.slot, client, topics()).map_err(|e| HttpError::BadRequest(e.message()))?;
    }
    let last_n = match p.get(input, "last") {
        None => None,
        Some(v) => Some(parse_count(v).ok_or(HttpError::BadRequest("last must be a whole number of events"))?),
    };
    let (cursor, gap) = if !last_id.is_empty() {
        match hub.log.resume(last_id) {
            Resume::After(seq) => (seq, false),
            Resume::Gap { from } => (from, true),
        }
    } else if let Some(n) = last_n {
        // A new page asking for recent history: the last n events this subscriber may see.
        let (filters, slot) = (&hub.filters, req.stream.slot);
        let visible = |v: &View| if filtered { filters.admits(slot, v) } else { v.client.is_empty() };
        (hub.log.last(n, visible), false)
    } else {
        (hub.log.next_seq(), false)
    };
    let w = &mut req.out;
    w.put(&routes.retry_line).ok_or(TOO_LARGE)?;
    if gap {
        let oldest = hub.log.get(cursor).map_or(&b""[..], |v| v.id);
        gap_event(w, last_id, oldest).ok_or(TOO_LARGE)?;
    }
    #[cfg(feature = "cluster")]
    claim(hub, req.stream, client);
    Ok(Outcome::Subscribe { cursor, filtered })
}

/// Cluster mode: a stream with a client id claims it (presence, and a claim entry every
/// instance reads, so that the newest stream wins wherever it is); a local older stream with
/// the id hands its presence over. Redis down: the stream still opens, here only.
#[cfg(feature = "cluster")]
fn claim(hub: &mut Hub, stream: crate::publish::handle::StreamId, client: &[u8]) {
    use crate::cluster::node::{CLAIM, slot_token};
    let Some(node) = hub.cluster.as_mut().filter(|_| !client.is_empty()) else { return };
    if let Some(older) = hub.filters.find_client(client).and_then(|s| node.slots.get_mut(s as usize)) {
        older.holds = false;
    }
    if let Some(state) = node.slots.get_mut(stream.slot as usize) {
        state.confirmed = false;
        state.holds = true;
    }
    if let Err(e) = node.link.claim(client, slot_token(stream.slot, stream.generation), CLAIM) {
        log::debug!("client {}: stream opens without its claim ({e})", String::from_utf8_lossy(client));
    }
}

/// A count of events: digits only, capped (history never holds more than 2^20 anyway).
fn parse_count(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 7 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0usize, |n, &d| n * 10 + usize::from(d - b'0')))
}

/// `event: gap`: the events after `last_id` are no longer kept; replay starts at `oldest`
/// (`null` when nothing is kept).
fn gap_event(w: &mut Writer, last_id: &[u8], oldest: &[u8]) -> Option<()> {
    w.put(b"event: gap\ndata: {\"last_event_id\": ")?;
    json_string(w, last_id)?;
    w.put(b", \"oldest\": ")?;
    if oldest.is_empty() { w.put(b"null") } else { json_string(w, oldest) }?;
    w.put(b"}\n\n")
}

/// Writes `s` as a JSON string literal.
fn json_string(w: &mut Writer, s: &[u8]) -> Option<()> {
    w.put(b"\"")?;
    for &b in s {
        match b {
            b'"' => w.put(b"\\\"")?,
            b'\\' => w.put(b"\\\\")?,
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                w.put(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]])?
            }
            _ => w.put(&[b])?,
        }
    }
    w.put(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_is_json() {
        let mut buf = [0u8; 128];
        let mut w = Writer::new(&mut buf);
        gap_event(&mut w, b"a\"b\x01", b"").unwrap();
        assert_eq!(
            std::str::from_utf8(w.written()).unwrap(),
            "event: gap\ndata: {\"last_event_id\": \"a\\\"b\\u0001\", \"oldest\": null}\n\n"
        );
    }
}
