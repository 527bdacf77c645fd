//! Responses: status lines and headers written into caller-owned buffers.

use crate::mem::Writer;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Status {
    Continue = 100,
    Ok = 200,
    NoContent = 204,
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    MethodNotAllowed = 405,
    LengthRequired = 411,
    PayloadTooLarge = 413,
    UriTooLong = 414,
    HeadersTooLarge = 431,
    Internal = 500,
    NotImplemented = 501,
    Unavailable = 503,
    VersionNotSupported = 505,
}

impl Status {
    pub fn line(self) -> &'static [u8] {
        match self {
            Status::Continue => b"HTTP/1.1 100 Continue\r\n",
            Status::Ok => b"HTTP/1.1 200 OK\r\n",
            Status::NoContent => b"HTTP/1.1 204 No Content\r\n",
            Status::BadRequest => b"HTTP/1.1 400 Bad Request\r\n",
            Status::Unauthorized => b"HTTP/1.1 401 Unauthorized\r\n",
            Status::Forbidden => b"HTTP/1.1 403 Forbidden\r\n",
            Status::NotFound => b"HTTP/1.1 404 Not Found\r\n",
            Status::MethodNotAllowed => b"HTTP/1.1 405 Method Not Allowed\r\n",
            Status::LengthRequired => b"HTTP/1.1 411 Length Required\r\n",
            Status::PayloadTooLarge => b"HTTP/1.1 413 Content Too Large\r\n",
            Status::UriTooLong => b"HTTP/1.1 414 URI Too Long\r\n",
            Status::HeadersTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            Status::Internal => b"HTTP/1.1 500 Internal Server Error\r\n",
            Status::NotImplemented => b"HTTP/1.1 501 Not Implemented\r\n",
            Status::Unavailable => b"HTTP/1.1 503 Service Unavailable\r\n",
            Status::VersionNotSupported => b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
        }
    }
}

/// The head of an event stream, up to (not including) the blank line; CORS and `Connection`
/// follow from the caller.
pub const STREAM_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";

/// Which CORS headers a response carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Cors<'a> {
    /// No allow-list: `Access-Control-Allow-Origin: *`, without credentials.
    Any,
    /// The request's Origin is on the allow-list: echoed, with credentials.
    Origin(&'a [u8]),
    /// An allow-list exists and the request's Origin is not on it: nothing is allowed.
    Denied,
}

impl Cors<'_> {
    pub fn put(self, w: &mut Writer) -> Option<()> {
        match self {
            Cors::Any => w.put(b"Access-Control-Allow-Origin: *\r\n"),
            Cors::Origin(origin) => {
                w.put(b"Access-Control-Allow-Origin: ")?;
                w.put(origin)?;
                w.put(b"\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n")
            }
            Cors::Denied => w.put(b"Vary: Origin\r\n"),
        }
    }
}

/// Writes a complete response with a body of `content_type`. `extra` holds whole header lines
/// (each ending in CRLF). Returns `None` when `w` is too small.
pub fn simple(
    w: &mut Writer,
    status: Status,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    cors: Cors,
    extra: &[&[u8]],
) -> Option<()> {
    head(w, status, content_type, body.len(), keep_alive, cors, extra)?;
    w.put(body)
}

/// Writes a response head for a body of `content_length` bytes sent separately.
pub fn head(
    w: &mut Writer,
    status: Status,
    content_type: &str,
    content_length: usize,
    keep_alive: bool,
    cors: Cors,
    extra: &[&[u8]],
) -> Option<()> {
    w.put(status.line())?;
    if status != Status::NoContent {
        w.put(b"Content-Type: ")?;
        w.put(content_type.as_bytes())?;
        w.put(b"\r\nContent-Length: ")?;
        w.put_u64(content_length as u64)?;
        w.put(b"\r\n")?;
    }
    w.put(if keep_alive { b"Connection: keep-alive\r\n" } else { b"Connection: close\r\n" })?;
    cors.put(w)?;
    for line in extra {
        w.put(line)?;
    }
    w.put(b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_response() {
        let mut buf = [0u8; 256];
        let mut w = Writer { out: &mut buf, len: 0 };
        simple(&mut w, Status::NotFound, "text/plain", b"no\n", false, Cors::Any, &[b"Allow: GET\r\n"]).unwrap();
        let n = w.len;
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Content-Length: 3\r\nConnection: close\r\n"));
        assert!(text.ends_with("Allow: GET\r\n\r\nno\n"));
    }
}
