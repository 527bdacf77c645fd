//! Routes: what each path does with a complete request. A handler reads the request from its
//! buffer, acts on the hub, writes the response head (and small bodies) into the buffer's output
//! part, and says in its `Outcome` what the connection becomes.

mod auth;
mod publish;
mod status;
mod subscribe;
mod text;

pub(crate) use auth::{Cors, cors_for};
pub(crate) use status::{Census, write_error};

pub(crate) use text::DEMO_TEXT;
pub use text::{StreamRequest, StreamRouteError};

use crate::config::{Builtins, Config};
use crate::http::response::{self, Status};
use crate::http::{Head, HttpError, Method, Params, Span};
use crate::mem::Writer;
use crate::publish::Hub;
use crate::publish::handle::{Shared, StreamId};
use crate::retry::RetryDelays;
use crate::time::Millis;
use std::sync::Arc;
use text::StreamRoute;

/// What the connection does after a handler.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A complete response is in the output part, followed by `body` (a built-in file);
    /// close afterwards when `close`.
    Respond { close: bool, body: &'static [u8] },
    /// The connection is now a subscriber starting at event `cursor`; its filter (when
    /// `filtered`) is set in `Filters`.
    Subscribe { cursor: u64, filtered: bool },
    /// The connection is now the /stream demo: `text` (decoded in the input part; `None`:
    /// `DEMO_TEXT`) one character every `delay_ms`, then `[DONE]`.
    Demo { text: Option<Span>, delay_ms: u32 },
    /// The connection is now a host stream, fed by the host program, whose handler has been
    /// told its `StreamId`.
    Host,
    /// Cluster mode: the request is done and its answer waits for Redis (nothing written yet).
    #[cfg(feature = "cluster")]
    Await,
}

/// One complete request, borrowed from its buffer: what a handler reads, and where it writes.
pub(crate) struct Request<'a> {
    pub head: Head,
    /// The input part: head, then body at `body`.
    pub input: &'a mut [u8],
    pub body: Span,
    /// The output part, for the response head and small bodies.
    pub out: Writer<'a>,
    /// The connection's stream id (its slot and generation); the slot is its `Filters` region.
    pub stream: StreamId,
    pub now: Millis,
    /// The peer is on a loopback address (may publish without a token).
    pub peer_loopback: bool,
    /// Connection counts, for /stats and /metrics.
    pub census: Census,
}

/// The route table and what its handlers need from the configuration.
pub(crate) struct Routes {
    publish_token: Option<String>,
    subscribe_token: Option<String>,
    cors_origins: Vec<String>,
    max_clients: usize,
    /// The `retry:` line every event stream starts with; built once.
    retry_line: Vec<u8>,
    /// For an EventSource a full server turns away: it comes back after a random delay.
    retry: RetryDelays,
    builtins: Builtins,
    /// Request-scoped stream routes registered by the host program.
    host: Vec<StreamRoute>,
    /// Host streams are marked open here before their handler runs.
    shared: Arc<Shared>,
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
    Asset(&'static status::Asset),
    /// A host program's stream route, by index.
    Host(usize),
}

const ALLOW_EVENTS: &str = "GET, HEAD, POST, OPTIONS";
const ALLOW_GET: &str = "GET, HEAD, OPTIONS";
const ALLOW_POST: &str = "POST, OPTIONS";

impl Routes {
    pub fn new(config: &Config, shared: Arc<Shared>) -> Routes {
        Routes {
            publish_token: config.publish_token.clone(),
            subscribe_token: config.subscribe_token.clone(),
            cors_origins: config.cors_origins.clone(),
            max_clients: config.max_clients,
            retry_line: format!("retry: {}\n\n", config.retry_ms).into_bytes(),
            retry: RetryDelays::new(config.retry_ms),
            builtins: config.builtins,
            host: Vec::new(),
            shared,
        }
    }

    /// The built-in resource at `path`, if it is switched on.
    fn builtin(&self, path: &[u8]) -> Option<Target> {
        let b = &self.builtins;
        let target = match path {
            b"/events" => Target::Events,
            b"/sse" => Target::Sse,
            b"/sse/send" if b.sse_send => Target::SseSend,
            b"/stream" if b.stream_demo => Target::Stream,
            b"/stats" if b.status => Target::Stats,
            b"/metrics" if b.status => Target::Metrics,
            b"/" if b.page => Target::Asset(&status::PAGE),
            b"/tinysse.js" if b.page => Target::Asset(&status::SCRIPT),
            _ => return None,
        };
        Some(target)
    }

    /// Adds a host stream route; a path the server already serves is refused.
    pub fn add_stream_route(
        &mut self,
        path: &str,
        handler: Box<dyn FnMut(&StreamRequest) + Send>,
    ) -> Result<(), StreamRouteError> {
        if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
            return Err(StreamRouteError::BadPath);
        }
        if self.builtin(path.as_bytes()).is_some() || self.host.iter().any(|r| r.path == path) {
            return Err(StreamRouteError::PathTaken);
        }
        self.host.push(StreamRoute { path: path.to_string(), handler });
        Ok(())
    }

    /// Writes a `retry:` line with a random delay in `[retry, 2 x retry)`.
    pub fn retry_line(&mut self, w: &mut Writer) -> Option<()> {
        self.retry.put_line(w)
    }

    /// The CORS headers a response to a request with this `Origin` carries.
    pub fn cors<'b>(&self, origin: Option<&'b [u8]>) -> Cors<'b> {
        cors_for(&self.cors_origins, origin)
    }

    /// Runs the handler for `req`. A HEAD gets what a GET would, without the body (RFC 9110
    /// 9.3.2): for a stream route the head, then the close.
    pub fn route(&mut self, hub: &mut Hub, req: &mut Request) -> Result<Outcome, HttpError> {
        let head_only = req.head.method == Method::Head;
        let outcome = self.dispatch(hub, req, head_only)?;
        if !head_only {
            return Ok(outcome);
        }
        req.out.len = head_end(req.out.written());
        let close = match outcome {
            Outcome::Respond { close, .. } => close,
            _ => true,
        };
        Ok(Outcome::Respond { close, body: &[] })
    }

    fn dispatch(&mut self, hub: &mut Hub, req: &mut Request, head_only: bool) -> Result<Outcome, HttpError> {
        let method = if head_only { Method::Get } else { req.head.method };
        if method == Method::Options {
            return respond_preflight(self, req);
        }
        let path = req.head.path.of(req.input);
        let target = match self.builtin(path) {
            Some(target) => target,
            None => match self.host.iter().position(|r| r.path.as_bytes() == path) {
                Some(i) => Target::Host(i),
                None => return Err(HttpError::NotFound("not found")),
            },
        };
        let allow = match target {
            Target::Events if self.builtins.publish_http => ALLOW_EVENTS,
            Target::SseSend => ALLOW_POST,
            _ => ALLOW_GET,
        };
        let publishing =
            method == Method::Post && self.builtins.publish_http && matches!(target, Target::Events | Target::SseSend);
        let streaming =
            method == Method::Get && matches!(target, Target::Events | Target::Sse | Target::Stream | Target::Host(_));
        // Decoded once, in place: query parameters, and a publish's form body.
        let p = params(req, publishing)?;
        if publishing {
            auth::authorize_publish(self.publish_token.as_deref(), req)?;
        }
        if streaming {
            auth::authorize_subscribe(self.subscribe_token.as_deref(), req, &p)?;
        }
        match (target, method) {
            (Target::Events, Method::Get) => subscribe::subscribe(self, hub, req, &p, "client"),
            (Target::Sse, Method::Get) => subscribe::subscribe(self, hub, req, &p, "clientId"),
            (Target::Events, Method::Post) if publishing => publish::publish(self, hub, req, &p, ["data", "client"]),
            (Target::SseSend, Method::Post) if publishing => {
                publish::publish(self, hub, req, &p, ["message", "clientId"])
            }
            (Target::Stream, Method::Get) => text::demo(self, req, &p),
            // The host's handler would start producing for a client that wants no body.
            (Target::Host(_), Method::Get) if head_only => {
                stream_head(self, req)?;
                Ok(Outcome::Host)
            }
            (Target::Host(i), Method::Get) => text::host(self, i, req, &p),
            (Target::Stats, Method::Get) => status::stats(self, hub, req),
            (Target::Metrics, Method::Get) => status::metrics(self, hub, req),
            (Target::Asset(asset), Method::Get) => status::asset(self, asset, req),
            _ => Err(HttpError::MethodNotAllowed(allow)),
        }
    }
}

/// Where a response's head ends in `out` (the whole of it when no blank line is found).
pub(crate) fn head_end(out: &[u8]) -> usize {
    out.windows(4).position(|w| w == b"\r\n\r\n").map_or(out.len(), |i| i + 4)
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

/// Writes a complete response (CORS per request); keep-alive as the request asked.
fn respond(
    routes: &Routes,
    req: &mut Request,
    status: Status,
    content_type: &str,
    body: &[u8],
    extra: &[&[u8]],
) -> Result<Outcome, HttpError> {
    let keep_alive = req.head.keep_alive;
    let cors = routes.cors(req.head.origin.map(|o| o.of(req.input)));
    response::simple(&mut req.out, status, content_type, body, keep_alive, cors, extra).ok_or(TOO_LARGE)?;
    Ok(Outcome::Respond { close: !keep_alive, body: &[] })
}

/// A response head or body did not fit the output part (a bug, not a client's fault).
const TOO_LARGE: HttpError = HttpError::BadRequest("response too large");

fn respond_preflight(routes: &Routes, req: &mut Request) -> Result<Outcome, HttpError> {
    respond(
        routes,
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

/// Writes a stream's response head (CORS per request) into the output part.
fn stream_head(routes: &Routes, req: &mut Request) -> Result<(), HttpError> {
    let cors = routes.cors(req.head.origin.map(|o| o.of(req.input)));
    let w = &mut req.out;
    w.put(response::STREAM_HEAD)
        .and_then(|_| w.put(b"Connection: close\r\n"))
        .and_then(|_| cors.put(w))
        .and_then(|_| w.put(b"\r\n"))
        .ok_or(TOO_LARGE)
}
