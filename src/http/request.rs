//! Request heads: parsing, framing and limits (RFC 9112).
//!
//! httparse tokenises; this module applies what httparse leaves to the server: message framing
//! (Content-Length, Transfer-Encoding), Host rules, and the headers tinysse acts on. Values are
//! returned as `Span`s into the caller's buffer, so nothing is copied or allocated.

use super::Status;

use crate::limits::MAX_HEADERS;

/// A byte range in the caller's buffer.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start: start as u32, end: end as u32 }
    }

    pub fn of(self, buf: &[u8]) -> &[u8] {
        &buf[self.start as usize..self.end as usize]
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    /// The span of `part`, which must be a sub-slice of `buf`.
    fn within(buf: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        Span::new(start, start + part.len())
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Options,
    Other,
}

/// How the body is framed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// No Content-Length and no Transfer-Encoding.
    None,
    Length(u32),
    Chunked,
}

/// The parts of a request head tinysse acts on.
#[derive(Copy, Clone, Debug)]
pub struct Head {
    pub method: Method,
    /// The method as sent (for log lines).
    pub method_token: Span,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub path: Span,
    /// After the `?`, without it; empty when absent.
    pub query: Span,
    /// Bytes of the head, including the blank line.
    pub len: usize,
    pub body: Body,
    pub keep_alive: bool,
    pub form: bool,
    pub expect_continue: bool,
    pub last_event_id: Option<Span>,
    /// `Accept` names `text/event-stream` (an EventSource sends exactly that).
    pub accepts_event_stream: bool,
    pub authorization: Option<Span>,
    pub cookie: Option<Span>,
    pub origin: Option<Span>,
}

#[derive(Copy, Clone, Debug)]
pub enum Parsed {
    Complete(Head),
    Partial,
}

/// Why a request is refused; each maps to one status and a short text.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    BadRequest(&'static str),
    Unauthorized,
    Forbidden(&'static str),
    NotFound(&'static str),
    MethodNotAllowed(&'static str),
    LengthRequired,
    PayloadTooLarge,
    UriTooLong,
    HeadersTooLarge,
    NotImplemented(&'static str),
    VersionNotSupported,
    Unavailable,
    /// A service the server depends on (cluster mode's Redis) cannot take the request now;
    /// 503 with `Retry-After`, and the reason.
    Upstream(&'static str),
}

impl HttpError {
    pub fn status(self) -> Status {
        match self {
            HttpError::BadRequest(_) => Status::BadRequest,
            HttpError::Unauthorized => Status::Unauthorized,
            HttpError::Forbidden(_) => Status::Forbidden,
            HttpError::NotFound(_) => Status::NotFound,
            HttpError::MethodNotAllowed(_) => Status::MethodNotAllowed,
            HttpError::LengthRequired => Status::LengthRequired,
            HttpError::PayloadTooLarge => Status::PayloadTooLarge,
            HttpError::UriTooLong => Status::UriTooLong,
            HttpError::HeadersTooLarge => Status::HeadersTooLarge,
            HttpError::NotImplemented(_) => Status::NotImplemented,
            HttpError::VersionNotSupported => Status::VersionNotSupported,
            HttpError::Unavailable | HttpError::Upstream(_) => Status::Unavailable,
        }
    }

    /// The response body (one line).
    pub fn message(self) -> &'static str {
        match self {
            HttpError::BadRequest(m)
            | HttpError::Forbidden(m)
            | HttpError::NotFound(m)
            | HttpError::NotImplemented(m)
            | HttpError::Upstream(m) => m,
            HttpError::Unauthorized => "unauthorized: a valid token is required",
            HttpError::MethodNotAllowed(_) => "method not allowed",
            HttpError::LengthRequired => "length required: send Content-Length or a chunked body",
            HttpError::PayloadTooLarge => "payload too large",
            HttpError::UriTooLong => "request target too long",
            HttpError::HeadersTooLarge => "request header fields too large",
            HttpError::VersionNotSupported => "HTTP version not supported",
            HttpError::Unavailable => "server full, retry later",
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status() as u16, self.message())
    }
}

impl std::error::Error for HttpError {}

/// Parses the head at the start of `buf`. `limit` is the most head bytes the caller can hold:
/// a head still incomplete at that size is refused (414 when even the request line is, else 431).
pub fn parse_head(buf: &[u8], limit: usize) -> Result<Parsed, HttpError> {
    // The HTTP/2 preface ("PRI * HTTP/2.0") would fail as an unknown version anyway; naming it
    // makes the log line useful.
    if buf.starts_with(b"PRI * HTTP/2") {
        return Err(HttpError::VersionNotSupported);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() < limit {
                return Ok(Parsed::Partial);
            }
            return Err(too_large(buf, limit));
        }
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadersTooLarge),
        Err(httparse::Error::HeaderName) => return Err(HttpError::BadRequest("malformed header name")),
        Err(httparse::Error::HeaderValue) => return Err(HttpError::BadRequest("malformed header value")),
        Err(httparse::Error::NewLine) => return Err(HttpError::BadRequest("malformed line ending")),
        Err(httparse::Error::Token) => return Err(HttpError::BadRequest("malformed request line")),
        Err(_) => return Err(HttpError::BadRequest("malformed request")),
    };
    if len > limit {
        return Err(too_large(buf, limit));
    }
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version) else {
        return Err(HttpError::BadRequest("malformed request line"));
    };
    let method_token = Span::within(buf, method.as_bytes());
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "OPTIONS" => Method::Options,
        _ => Method::Other,
    };

    let target_span = Span::within(buf, target.as_bytes());
    let (path, query) = split_target(buf, target_span, method)?;

    let mut head = Head {
        method,
        method_token,
        minor_version,
        path,
        query,
        len,
        body: Body::None,
        keep_alive: minor_version == 1,
        form: false,
        expect_continue: false,
        last_event_id: None,
        accepts_event_stream: false,
        authorization: None,
        cookie: None,
        origin: None,
    };
    let mut hosts = 0;
    let mut content_length: Option<u32> = None;
    let mut chunked = None;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim(h.value);
        let span = Span::within(buf, value);
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() {
                return Err(HttpError::BadRequest("duplicate Content-Length"));
            }
            content_length = Some(parse_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked.is_some() {
                return Err(HttpError::BadRequest("duplicate Transfer-Encoding"));
            }
            chunked = Some(parse_transfer_encoding(value)?);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && minor_version == 0 {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-type") {
            let mime = trim(value.split(|&b| b == b';').next().unwrap_or(b""));
            head.form = mime.eq_ignore_ascii_case(b"application/x-www-form-urlencoded");
        } else if name.eq_ignore_ascii_case(b"expect") {
            head.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"accept") {
            // EventSource sends exactly `text/event-stream`; other clients may list it too.
            head.accepts_event_stream |= value.split(|&b| b == b',').any(|t| {
                trim(t.split(|&b| b == b';').next().unwrap_or(b"")).eq_ignore_ascii_case(b"text/event-stream")
            });
        } else if name.eq_ignore_ascii_case(b"last-event-id") {
            head.last_event_id = Some(span);
        } else if name.eq_ignore_ascii_case(b"authorization") {
            head.authorization = Some(span);
        } else if name.eq_ignore_ascii_case(b"cookie") {
            head.cookie = Some(span);
        } else if name.eq_ignore_ascii_case(b"origin") {
            head.origin = Some(span);
        }
    }
    if minor_version == 1 && hosts == 0 {
        return Err(HttpError::BadRequest("missing Host header"));
    }
    if hosts > 1 {
        return Err(HttpError::BadRequest("duplicate Host header"));
    }
    if minor_version == 0 && chunked.is_some() {
        // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
        return Err(HttpError::BadRequest("Transfer-Encoding in an HTTP/1.0 request"));
    }
    head.body = match (content_length, chunked) {
        (Some(_), Some(_)) => return Err(HttpError::BadRequest("both Content-Length and Transfer-Encoding")),
        (Some(n), None) => Body::Length(n),
        (None, Some(())) => Body::Chunked,
        (None, None) => Body::None,
    };
    Ok(Parsed::Complete(head))
}

/// 414 when the request line alone passes the limit, else 431.
fn too_large(buf: &[u8], limit: usize) -> HttpError {
    match buf.iter().position(|&b| b == b'\n') {
        Some(end) if end < limit => HttpError::HeadersTooLarge,
        _ => HttpError::UriTooLong,
    }
}

/// 505 for a well-formed but unsupported version (HTTP/2.0, HTTP/3, HTTP/1.2), 400 otherwise.
/// The version is what follows the second space of the request line, as httparse reads it, so
/// the verdict is the same however much of the line has arrived.
fn version_error(buf: &[u8]) -> HttpError {
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let mut parts = buf[..line_end].splitn(3, |&b| b == b' ');
    match (parts.next(), parts.next(), parts.next()) {
        // httparse stops at the first byte that is not `HTTP/1.0` or `HTTP/1.1`; deciding on
        // `HTTP/<digit>` alone uses only bytes up to that point.
        (Some(_), Some(_), Some(version))
            if version.len() >= 6 && version.starts_with(b"HTTP/") && version[5].is_ascii_digit() =>
        {
            HttpError::VersionNotSupported
        }
        _ => HttpError::BadRequest("malformed request line"),
    }
}

fn split_target(buf: &[u8], target: Span, method: Method) -> Result<(Span, Span), HttpError> {
    let mut t = target.of(buf);
    let mut start = target.start as usize;
    if t == b"*" {
        return if method == Method::Options {
            Ok((target, Span::new(target.end as usize, target.end as usize)))
        } else {
            Err(HttpError::BadRequest("'*' target is only for OPTIONS"))
        };
    }
    // Absolute form (RFC 9112 3.2.2): keep only path and query.
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() > scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let after = &t[scheme.len()..];
            let slash = after.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(after.len());
            start += scheme.len() + slash;
            t = &after[slash..];
            if t.is_empty() || t[0] != b'/' {
                return Err(HttpError::BadRequest("malformed request target"));
            }
        }
    }
    if t.first() != Some(&b'/') {
        return Err(HttpError::BadRequest("malformed request target"));
    }
    let end = target.end as usize;
    Ok(match t.iter().position(|&b| b == b'?') {
        Some(q) => (Span::new(start, start + q), Span::new(start + q + 1, end)),
        None => (Span::new(start, end), Span::new(end, end)),
    })
}

/// Content-Length: digits only (no sign, no list, no spaces inside), at most u32.
fn parse_length(value: &[u8]) -> Result<u32, HttpError> {
    if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadRequest("malformed Content-Length"));
    }
    let n = value.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    u32::try_from(n).map_err(|_| HttpError::PayloadTooLarge)
}

/// Transfer-Encoding must end in `chunked`; other codings are not implemented.
fn parse_transfer_encoding(value: &[u8]) -> Result<(), HttpError> {
    let mut codings = value.split(|&b| b == b',').map(trim).peekable();
    let mut last_is_chunked = false;
    while let Some(coding) = codings.next() {
        if coding.is_empty() || !coding.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(HttpError::BadRequest("malformed Transfer-Encoding"));
        }
        let is_chunked = coding.eq_ignore_ascii_case(b"chunked");
        if is_chunked && codings.peek().is_some() {
            return Err(HttpError::BadRequest("chunked must be the final transfer coding"));
        }
        last_is_chunked = is_chunked;
    }
    if last_is_chunked && !value.contains(&b',') {
        Ok(())
    } else if last_is_chunked {
        Err(HttpError::NotImplemented("transfer coding not implemented"))
    } else {
        // Without a final chunked the body's length is unknown: RFC 9112 6.3 says refuse.
        Err(HttpError::NotImplemented("transfer coding not implemented"))
    }
}

/// Strips optional whitespace (SP, HTAB) from both ends.
pub fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests;
