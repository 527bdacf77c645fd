//! Text streams, produced per request rather than from the event log: the `/stream` demo
//! (a text one character at a time, then `[DONE]`) and the host program's stream routes.

use super::{Outcome, Request, Routes, stream_head};
use crate::http::{HttpError, Params};
use crate::limits::{MAX_STREAM_DELAY_MS, MAX_STREAM_TEXT};
use crate::publish::handle::StreamId;

/// A host program's stream route (see `Server::stream_route`).
pub(super) struct StreamRoute {
    pub path: String,
    pub handler: Box<dyn FnMut(&StreamRequest) + Send>,
}

/// Why a stream route was not registered.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StreamRouteError {
    /// The server already serves this path (a built-in route that is switched on, or a stream
    /// route registered before).
    PathTaken,
    /// The path does not start with `/`, or holds `?`, `#` or a space.
    BadPath,
}

impl std::fmt::Display for StreamRouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamRouteError::PathTaken => "the server already serves this path",
            StreamRouteError::BadPath => "a route path starts with / and has no ?, # or space",
        })
    }
}

impl std::error::Error for StreamRouteError {}

/// What a stream route's handler learns about its request.
pub struct StreamRequest<'a> {
    /// Feed the stream with `Publisher::send_frame(id, ..)`, end it with `Publisher::end(id)`.
    pub id: StreamId,
    /// The route's path.
    pub path: &'a str,
    input: &'a [u8],
    params: &'a Params,
}

impl<'a> StreamRequest<'a> {
    /// The first query parameter `name`, percent-decoded.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params.get(self.input, name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// What `/stream` sends without `text=`.
pub(crate) const DEMO_TEXT: &[u8] = b"Hello World";

/// `/stream?text=..&delay_ms=..`.
pub(super) fn demo(routes: &Routes, req: &mut Request, p: &Params) -> Result<Outcome, HttpError> {
    let text = p.span(req.input, "text");
    if text.is_some_and(|t| t.len() > MAX_STREAM_TEXT) {
        return Err(HttpError::BadRequest("text longer than 4096 bytes"));
    }
    let delay_ms = match p.get(req.input, "delay_ms") {
        None => 100,
        Some(v) => parse_u32(v)
            .filter(|&d| d <= MAX_STREAM_DELAY_MS)
            .ok_or(HttpError::BadRequest("delay_ms must be 0 to 10000"))?,
    };
    stream_head(routes, req)?;
    Ok(Outcome::Demo { text, delay_ms })
}

/// A host stream route: the handler learns the stream's id and feeds it from elsewhere.
pub(super) fn host(routes: &mut Routes, route: usize, req: &mut Request, p: &Params) -> Result<Outcome, HttpError> {
    stream_head(routes, req)?;
    // Open before the handler runs: it may send its first frame at once.
    routes.shared.open_stream(req.stream);
    let r = &mut routes.host[route];
    let request = StreamRequest { id: req.stream, path: &r.path, input: req.input, params: p };
    (r.handler)(&request);
    Ok(Outcome::Host)
}

fn parse_u32(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"10000"), Some(10000));
        assert_eq!(parse_u32(b"+1"), None);
        assert_eq!(parse_u32(b""), None);
    }
}
