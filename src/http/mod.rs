//! The HTTP/1.1 request layer: request heads (tokenised by httparse, checked here), bodies,
//! query/form decoding and responses. It owns no sockets and no buffers: callers pass the bytes
//! they have read and get back `Complete`/`Partial` or an error that names the status to send.

pub(crate) mod chunked;
pub(crate) mod decode;
pub(crate) mod request;
pub(crate) mod response;

pub use decode::Params;
pub(crate) use request::Parsed;
pub use request::{Body, Head, HttpError, Method, Span};
pub(crate) use response::Status;

use crate::limits::MAX_HEAD_BYTES;

/// How much of the request at the front of a buffer has arrived.
#[derive(Copy, Clone, Debug)]
pub enum Framing {
    /// The head is incomplete.
    Partial,
    /// The head is complete, its body is not yet.
    AwaitingBody(Head),
    /// Head and body are complete: the body (decoded, if it was chunked) is at `body`, and the
    /// request takes `consumed` bytes of the buffer; what follows is the next request.
    Complete { head: Head, body: Span, consumed: usize },
}

/// Parses and frames the request at the front of `buf[..len]`. `buf.len()` is the most a
/// request may take (head, body and chunk framing): one that cannot fit is refused with 413,
/// a head over `MAX_HEAD_BYTES` with 431 (or 414). A complete chunked body is decoded in place.
pub fn frame_request(buf: &mut [u8], len: usize) -> Result<Framing, HttpError> {
    let capacity = buf.len();
    let head = match request::parse_head(&buf[..len], MAX_HEAD_BYTES.min(capacity))? {
        Parsed::Partial => return Ok(Framing::Partial),
        Parsed::Complete(head) => head,
    };
    let (body_len, consumed) = match head.body {
        Body::None => (0, head.len),
        Body::Length(n) => (n as usize, head.len + n as usize),
        Body::Chunked => match chunked::scan(&buf[head.len..len], capacity - head.len)? {
            Some(c) => (chunked::decode_in_place(&mut buf[head.len..len]), head.len + c.raw),
            None if len == capacity => return Err(HttpError::PayloadTooLarge),
            None => return Ok(Framing::AwaitingBody(head)),
        },
    };
    if consumed > capacity {
        return Err(HttpError::PayloadTooLarge);
    }
    if len < consumed {
        return Ok(Framing::AwaitingBody(head));
    }
    Ok(Framing::Complete { head, body: Span::new(head.len, head.len + body_len), consumed })
}
