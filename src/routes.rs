//! What each route does with a complete request: publish, subscribe, /stream, /stats, CORS
//! preflight. Handlers read the request from its buffer and write the response head (and small
//! bodies) into the buffer's output part; the server then drives the connection accordingly.

use crate::conn::Conn;
use crate::event_log::{MAX_ID, Publish, Resume};
use crate::filter::{FilterError, valid_client_id};
use crate::http::decode::Params;
use crate::http::response::{self, Cors, Status};
use crate::http::{Body, Head, HttpError, Method, Span};
use crate::hub::{Hub, PublishError};
use crate::publisher::StreamId;
use crate::slab::Slab;
use crate::sse::Writer;
use crate::time::Millis;

/// Longest /stream text, in bytes.
pub const MAX_STREAM_TEXT: usize = 4096;
/// Longest /stream delay between frames.
pub const MAX_STREAM_DELAY_MS: u32 = 10_000;

/// What the server does after a handler.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A complete response is in the output part (followed by `Request::static_body`, if
    /// any); close afterwards when `close`.
    Respond { close: bool },
    /// The connection is now a subscriber starting at event `cursor`; its filter (when
    /// `filtered`) is set in `Filters`.
    Subscribe { cursor: u64, filtered: bool },
    /// The connection is now a /stream: text and delay are in the buffer state.
    Text,
    /// The connection is now a request-scoped stream fed by the host program, whose handler
    /// has been told its `StreamId`.
    HostStream,
}

/// A host program's stream route (see `Server::stream_route`).
pub struct StreamRoute {
    pub path: String,
    pub handler: Box<dyn FnMut(&StreamRequest) + Send>,
}

/// What a stream route's handler learns about its request.
pub struct StreamRequest<'a> {
    /// Feed the stream with `Publisher::send_frame(id, ..)`, end it with `Publisher::end(id)`.
    pub id: StreamId,
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

/// One complete request, borrowed from its buffer.
pub struct Request<'a> {
    pub head: Head,
    /// The input part: head, then body at `body`.
    pub input: &'a mut [u8],
    pub body: Span,
    pub out: Writer<'a>,
    /// Slab index of the connection (its `Filters` region).
    pub slot: u32,
    pub now: Millis,
    /// /stream text and delay, set by `Outcome::Text`.
    pub text: Span,
    pub delay_ms: u32,
    /// The id a host stream route's handler gets.
    pub stream_id: StreamId,
    /// A static body to send after the output part (the built-in page).
    pub static_body: &'static [u8],
    /// The peer is on a loopback address (may publish without a token).
    pub peer_loopback: bool,
    /// Set by `route`.
    pub cors: CorsMode,
}

const ALLOW_EVENTS: &[u8] = b"GET, POST, OPTIONS";
const ALLOW_GET: &[u8] = b"GET, OPTIONS";
const ALLOW_POST: &[u8] = b"POST, OPTIONS";

pub fn route(
    hub: &mut Hub,
    conns: &Slab<Conn>,
    buffers: (usize, usize),
    req: &mut Request,
) -> Result<Outcome, HttpError> {
    req.cors = cors_mode(hub, req);
    let method = req.head.method;
    if method == Method::Options {
        return preflight(req);
    }
    let path = req.head.path.of(req.input);
    let target = match path {
        b"/events" => Target::Events,
        b"/sse" => Target::Sse,
        b"/sse/send" => Target::SseSend,
        b"/stream" => Target::Stream,
        b"/stats" => Target::Stats,
        b"/metrics" => Target::Metrics,
        b"/" => Target::Asset(&PAGE),
        b"/tinysse.js" => Target::Asset(&SCRIPT),
        _ => match hub.stream_routes.iter().position(|r| r.path.as_bytes() == path) {
            Some(i) => Target::Host(i),
            None => return Err(HttpError::NotFound("not found")),
        },
    };
    let allow = match target {
        Target::Events => ALLOW_EVENTS,
        Target::SseSend => ALLOW_POST,
        _ => ALLOW_GET,
    };
    let publishing = method == Method::Post && matches!(target, Target::Events | Target::SseSend);
    let streaming =
        method == Method::Get && matches!(target, Target::Events | Target::Sse | Target::Stream | Target::Host(_));
    // Decoded once, in place: query parameters, and a publish's form body.
    let p = params(req, publishing)?;
    if publishing {
        authorize_publish(hub, req)?;
    }
    if streaming {
        authorize_subscribe(hub, req, &p)?;
    }
    match (target, method) {
        (Target::Events, Method::Get) => subscribe(hub, conns, req, &p, "client"),
        (Target::Sse, Method::Get) => subscribe(hub, conns, req, &p, "clientId"),
        (Target::Events, Method::Post) => publish(hub, conns, req, &p, ["data", "client"]),
        (Target::SseSend, Method::Post) => publish(hub, conns, req, &p, ["message", "clientId"]),
        (Target::Stream, Method::Get) => text_stream(req, &p),
        (Target::Host(i), Method::Get) => host_stream(hub, i, req, &p),
        (Target::Stats, Method::Get) => {
            let mut body = [0u8; 512];
            let mut w = Writer { out: &mut body, len: 0 };
            hub.stats_json(&mut w, conns.len(), req.now).ok_or(HttpError::BadRequest("stats too large"))?;
            let len = w.len;
            respond(req, Status::Ok, "application/json", &body[..len], &[b"Cache-Control: no-store\r\n"])
        }
        (Target::Metrics, Method::Get) => {
            let mut body = [0u8; 3072];
            let mut w = Writer { out: &mut body, len: 0 };
            hub.metrics(&mut w, conns, buffers, req.now).ok_or(HttpError::BadRequest("metrics too large"))?;
            let len = w.len;
            respond(req, Status::Ok, "text/plain; version=0.0.4; charset=utf-8", &body[..len], &[])
        }
        (Target::Asset(asset), Method::Get) => {
            let keep_alive = req.head.keep_alive;
            let cors = cors_of(req.cors, &req.head, req.input);
            response::head(
                &mut req.out,
                Status::Ok,
                asset.content_type,
                asset.body.len(),
                keep_alive,
                cors,
                &[b"Cache-Control: no-cache\r\n"],
            )
            .ok_or(HttpError::BadRequest("response too large"))?;
            req.static_body = asset.body;
            Ok(Outcome::Respond { close: !keep_alive })
        }
        _ => Err(HttpError::MethodNotAllowed(std::str::from_utf8(allow).unwrap_or("GET"))),
    }
}

/// The resource a request names.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Target {
    Events,
    Sse,
    SseSend,
    Stream,
    Stats,
    Metrics,
    /// A file built into the binary.
    Asset(&'static Asset),
    /// A host program's stream route, by index.
    Host(usize),
}

/// What CORS a response to this request may carry (the `Origin` itself stays in the buffer).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CorsMode {
    Any,
    Echo,
    Denied,
}

fn cors_mode(hub: &Hub, req: &Request) -> CorsMode {
    let allowed = &hub.config.cors_origins;
    if allowed.is_empty() {
        return CorsMode::Any;
    }
    match req.head.origin {
        Some(origin) if allowed.iter().any(|a| a.as_bytes() == origin.of(req.input)) => CorsMode::Echo,
        _ => CorsMode::Denied,
    }
}

fn cors_of<'b>(mode: CorsMode, head: &Head, input: &'b [u8]) -> Cors<'b> {
    match (mode, head.origin) {
        (CorsMode::Any, _) => Cors::Any,
        (CorsMode::Echo, Some(origin)) => Cors::Origin(origin.of(input)),
        _ => Cors::Denied,
    }
}

/// With `--publish-token`, a Bearer token; without, a loopback peer.
fn authorize_publish(hub: &Hub, req: &Request) -> Result<(), HttpError> {
    match &hub.config.publish_token {
        Some(token) => {
            let given = req.head.authorization.map(|a| a.of(req.input)).and_then(bearer);
            if given.is_some_and(|g| constant_time_eq(g, token.as_bytes())) {
                Ok(())
            } else {
                Err(HttpError::Unauthorized)
            }
        }
        None if req.peer_loopback => Ok(()),
        None => Err(HttpError::Forbidden("publishing is allowed from loopback only (set --publish-token)")),
    }
}

/// With `--subscribe-token`: a Bearer header, `?token=`, or the cookie `tinysse_token`
/// (EventSource cannot set headers).
fn authorize_subscribe(hub: &Hub, req: &Request, p: &Params) -> Result<(), HttpError> {
    let Some(token) = &hub.config.subscribe_token else { return Ok(()) };
    let token = token.as_bytes();
    let header = req.head.authorization.map(|a| a.of(req.input)).and_then(bearer);
    let query = p.get(req.input, "token");
    let cookie = req.head.cookie.map(|c| c.of(req.input)).and_then(|c| cookie(c, b"tinysse_token"));
    // Every candidate is compared, so timing does not tell which one was tried.
    let ok = [header, query, cookie].iter().fold(false, |ok, c| ok | c.is_some_and(|c| constant_time_eq(c, token)));
    if ok { Ok(()) } else { Err(HttpError::Unauthorized) }
}

/// The credentials of `Authorization: Bearer <token>`.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| crate::http::request::trim(rest))
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie<'b>(header: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = crate::http::request::trim(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        (&pair[..eq] == name).then(|| &pair[eq + 1..])
    })
}

/// Compares in time that depends only on the lengths, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Writes a stream's response head (CORS per request) into the output part.
fn stream_head(req: &mut Request) -> Result<(), HttpError> {
    let cors = cors_of(req.cors, &req.head, req.input);
    let w = &mut req.out;
    w.put(crate::http::response::STREAM_HEAD)
        .and_then(|_| w.put(b"Connection: close\r\n"))
        .and_then(|_| cors.put(w))
        .and_then(|_| w.put(b"\r\n"))
        .ok_or(HttpError::BadRequest("response too large"))
}

/// A file built into the binary, served as it is.
#[derive(Debug, PartialEq, Eq)]
struct Asset {
    content_type: &'static str,
    body: &'static [u8],
}

/// The built-in page: live events, a publish form, the /stream demo (no external resources).
static PAGE: Asset = Asset { content_type: "text/html; charset=utf-8", body: include_bytes!("assets/page.html") };
/// The client module a dashboard imports: all tabs of an origin share one stream.
static SCRIPT: Asset =
    Asset { content_type: "text/javascript; charset=utf-8", body: include_bytes!("assets/tinysse.js") };

fn respond(
    req: &mut Request,
    status: Status,
    content_type: &str,
    body: &[u8],
    extra: &[&[u8]],
) -> Result<Outcome, HttpError> {
    let keep_alive = req.head.keep_alive;
    let cors = cors_of(req.cors, &req.head, req.input);
    response::simple(&mut req.out, status, content_type, body, keep_alive, cors, extra)
        .ok_or(HttpError::BadRequest("response too large"))?;
    Ok(Outcome::Respond { close: !keep_alive })
}

fn preflight(req: &mut Request) -> Result<Outcome, HttpError> {
    respond(
        req,
        Status::NoContent,
        "",
        b"",
        &[
            b"Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n",
            b"Access-Control-Allow-Headers: Content-Type, Last-Event-ID, Authorization, Cache-Control\r\n",
            b"Access-Control-Max-Age: 86400\r\n",
        ],
    )
}

/// Query parameters, then (for forms) body fields, decoded in place.
fn params(req: &mut Request, form_body: bool) -> Result<Params, HttpError> {
    let mut params = Params::default();
    if form_body && req.head.form {
        params.parse(req.input, req.body)?;
    }
    params.parse(req.input, req.head.query)?;
    Ok(params)
}

fn publish(
    hub: &mut Hub,
    conns: &Slab<Conn>,
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
    let event = Publish {
        id: p.get(input, "id").unwrap_or(b""),
        event: p.get(input, "event").unwrap_or(b""),
        data: data.of(input),
        topic: p.get(input, "topic").unwrap_or(b""),
        client,
    };
    let seq = hub.publish(&event, conns).map_err(|e| match e {
        PublishError::TooLarge => HttpError::PayloadTooLarge,
        PublishError::ClientNotConnected => HttpError::NotFound(e.message()),
        _ => HttpError::BadRequest(e.message()),
    })?;
    let mut body = [0u8; MAX_ID + 1];
    let id = hub.log.get(seq).map_or(&b""[..], |v| v.id);
    body[..id.len()].copy_from_slice(id);
    body[id.len()] = b'\n';
    respond(req, Status::Ok, "text/plain; charset=utf-8", &body[..id.len() + 1], &[])
}

fn subscribe(
    hub: &mut Hub,
    conns: &Slab<Conn>,
    req: &mut Request,
    p: &Params,
    client_name: &str,
) -> Result<Outcome, HttpError> {
    // Written first (the input stays borrowed below); a refusal later overwrites it.
    stream_head(req)?;
    let input: &[u8] = req.input;
    let client = p.get(input, client_name);
    if client_name == "clientId" && client.is_none() {
        return Err(HttpError::BadRequest("missing parameter: clientId"));
    }
    // Present means valid: `?client=` is a malformed id, not an anonymous stream.
    if client.is_some_and(|c| !valid_client_id(c)) {
        return Err(HttpError::BadRequest("client id must be 1-64 of A-Z a-z 0-9 . _ ~ -"));
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
    let replacing = !client.is_empty() && hub.find_client(client, conns).is_some();
    if hub.subscribers >= hub.config.max_clients && !replacing {
        hub.stats.rejected_full += 1;
        return Err(HttpError::Unavailable);
    }
    // An empty `topic=` (a form left blank) asks for nothing in particular.
    let topics = || p.all(input, "topic").filter(|t| !t.is_empty());
    let filtered = !client.is_empty() || topics().next().is_some();
    if filtered {
        hub.filters.set(req.slot, client, topics()).map_err(|e| {
            HttpError::BadRequest(match e {
                FilterError::TooManyTopics => "at most 8 topics per subscriber",
                FilterError::TopicTooLong => "topic longer than 64 bytes",
                FilterError::BadTopic => "topic must be non-empty without CR, LF or NUL",
                FilterError::BadClient => "client id must be 1-64 of A-Z a-z 0-9 . _ ~ -",
            })
        })?;
    }
    let (cursor, gap) = if last_id.is_empty() {
        (hub.log.next_seq(), false)
    } else {
        match hub.log.resume(last_id) {
            Resume::After(seq) => (seq, false),
            Resume::Gap { from } => (from, true),
        }
    };
    let w = &mut req.out;
    let full = || HttpError::BadRequest("response too large");
    w.put(&hub.retry_line).ok_or_else(full)?;
    if gap {
        let oldest = hub.log.get(cursor).map_or(&b""[..], |v| v.id);
        w.put(b"event: gap\ndata: {\"last_event_id\": ").ok_or_else(full)?;
        json_string(w, last_id).ok_or_else(full)?;
        w.put(b", \"oldest\": ").ok_or_else(full)?;
        if oldest.is_empty() { w.put(b"null") } else { json_string(w, oldest) }.ok_or_else(full)?;
        w.put(b"}\n\n").ok_or_else(full)?;
    }
    Ok(Outcome::Subscribe { cursor, filtered })
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

fn text_stream(req: &mut Request, p: &Params) -> Result<Outcome, HttpError> {
    let input: &[u8] = req.input;
    let text = match p.span(input, "text") {
        Some(span) => span,
        None => {
            // The default text goes where the request line was: the head is no longer needed.
            const DEFAULT: &[u8] = b"Hello World";
            req.input[..DEFAULT.len()].copy_from_slice(DEFAULT);
            Span::new(0, DEFAULT.len())
        }
    };
    if text.len() > MAX_STREAM_TEXT {
        return Err(HttpError::BadRequest("text longer than 4096 bytes"));
    }
    let delay = match p.get(req.input, "delay_ms") {
        None => 100,
        Some(v) => parse_u32(v)
            .filter(|&d| d <= MAX_STREAM_DELAY_MS)
            .ok_or(HttpError::BadRequest("delay_ms must be 0 to 10000"))?,
    };
    stream_head(req)?;
    req.text = text;
    req.delay_ms = delay;
    Ok(Outcome::Text)
}

fn host_stream(hub: &mut Hub, route: usize, req: &mut Request, p: &Params) -> Result<Outcome, HttpError> {
    stream_head(req)?;
    let r = &mut hub.stream_routes[route];
    let request = StreamRequest { id: req.stream_id, path: &r.path, input: req.input, params: p };
    (r.handler)(&request);
    Ok(Outcome::HostStream)
}

fn parse_u32(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')))
}

/// Bytes of the first Unicode scalar value of `text` (valid UTF-8), 0 when empty.
pub fn next_char(text: &[u8]) -> usize {
    let len = match text.first() {
        None => return 0,
        Some(0x00..=0x7f) => 1,
        Some(0xc0..=0xdf) => 2,
        Some(0xe0..=0xef) => 3,
        Some(_) => 4,
    };
    len.min(text.len())
}
