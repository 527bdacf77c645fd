//! Publishing over HTTP: `POST /events` (data in the body, or a form) and the seed's
//! `POST /sse/send` (message and clientId, from a form or the query string).

use super::{Outcome, Request, Routes, respond};
use crate::http::{Body, HttpError, Params, Status};
use crate::limits::{Fields, MAX_ID};
use crate::publish::{Hub, PublishError};

pub(super) fn publish(
    routes: &Routes,
    hub: &mut Hub,
    req: &mut Request,
    p: &Params,
    [data_name, client_name]: [&str; 2],
) -> Result<Outcome, HttpError> {
    // The seed's /sse/send takes `message` from a form or the query string, so it needs no body.
    let from_query = data_name == "message" && !req.head.form && req.body.is_empty();
    if req.head.body == Body::None && !from_query {
        return Err(HttpError::LengthRequired);
    }
    let missing =
        HttpError::BadRequest(if data_name == "data" { "missing field: data" } else { "missing field: message" });
    let data = if req.head.form || from_query {
        p.span(req.input, data_name).ok_or(missing)?
    } else {
        if std::str::from_utf8(req.body.of(req.input)).is_err() {
            return Err(HttpError::BadRequest("body is not valid UTF-8"));
        }
        req.body
    };
    let input: &[u8] = req.input;
    let client = p.get(input, client_name).unwrap_or(b"");
    if client_name == "clientId" && client.is_empty() {
        return Err(HttpError::BadRequest("missing field: clientId"));
    }
    let event = Fields {
        id: p.get(input, "id").unwrap_or(b""),
        event: p.get(input, "event").unwrap_or(b""),
        data: data.of(input),
        topic: p.get(input, "topic").unwrap_or(b""),
        client,
    };
    #[cfg(feature = "cluster")]
    if hub.cluster.is_some() {
        return publish_to_cluster(routes, hub, &req.head, req.stream, input, &mut req.out, &event);
    }
    let seq = hub.publish(&event).map_err(refusal)?;
    let mut body = [0u8; MAX_ID + 1];
    let id = hub.log.get(seq).map_or(&b""[..], |v| v.id);
    body[..id.len()].copy_from_slice(id);
    body[id.len()] = b'\n';
    respond(routes, req, Status::Ok, "text/plain; charset=utf-8", &body[..id.len() + 1], &[])
}

/// Cluster mode: the event goes to Redis first; the connection waits for its answer (200 with
/// the event's id once Redis took it, 404 when no instance holds its client, 503 when Redis is
/// unavailable), which `conn` writes when the link reports the outcome.
#[cfg(feature = "cluster")]
fn publish_to_cluster(
    routes: &Routes,
    hub: &mut Hub,
    head: &crate::http::Head,
    stream: crate::publish::handle::StreamId,
    input: &[u8],
    out: &mut crate::mem::Writer,
    event: &Fields,
) -> Result<Outcome, HttpError> {
    use crate::cluster::PublishError as LinkError;
    use crate::cluster::node::{CorsKind, ORIGIN_AT, Waiter, slot_token};
    use crate::routes::Cors;
    hub.check(event).map_err(refusal)?;
    let Some(node) = hub.cluster.as_mut() else { return Err(HttpError::Upstream("redis unavailable")) };
    // The request driver routes a publish only while its connection has room to wait.
    if node.slots.get(stream.slot as usize).is_none_or(|s| s.waiting.is_full()) {
        return Err(HttpError::Upstream("too many publishes waiting on this connection"));
    }
    let token = slot_token(stream.slot, stream.generation);
    node.link.publish(event, token).map_err(|e| match e {
        LinkError::TooLarge => HttpError::PayloadTooLarge,
        e => HttpError::Upstream(e.message()),
    })?;
    let cors = match routes.cors(head.origin.map(|o| o.of(input))) {
        Cors::Any => CorsKind::Any,
        Cors::Denied => CorsKind::Denied,
        Cors::Origin(origin) => match out.out.get_mut(ORIGIN_AT..ORIGIN_AT + origin.len()) {
            Some(room) => {
                room.copy_from_slice(origin);
                CorsKind::Origin(origin.len() as u16)
            }
            None => CorsKind::Denied,
        },
    };
    let waiter = Waiter { generation: stream.generation, keep_alive: head.keep_alive, cors };
    if let Some(slot) = node.slots.get_mut(stream.slot as usize) {
        let _ = slot.waiting.push_back(waiter); // room checked above
    }
    Ok(Outcome::Await)
}

/// The HTTP answer to an event the hub refused.
fn refusal(e: PublishError) -> HttpError {
    match e {
        PublishError::TooLarge => HttpError::PayloadTooLarge,
        PublishError::ClientNotConnected => HttpError::NotFound(e.message()),
        PublishError::Invalid(why) => HttpError::BadRequest(why),
        #[cfg(feature = "cluster")]
        PublishError::Clustered => HttpError::Upstream(e.message()),
    }
}
