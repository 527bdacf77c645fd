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
    let seq = hub.publish(&event).map_err(|e| match e {
        PublishError::TooLarge => HttpError::PayloadTooLarge,
        PublishError::ClientNotConnected => HttpError::NotFound(e.message()),
        PublishError::Invalid(why) => HttpError::BadRequest(why),
    })?;
    let mut body = [0u8; MAX_ID + 1];
    let id = hub.log.get(seq).map_or(&b""[..], |v| v.id);
    body[..id.len()].copy_from_slice(id);
    body[id.len()] = b'\n';
    respond(routes, req, Status::Ok, "text/plain; charset=utf-8", &body[..id.len() + 1], &[])
}
