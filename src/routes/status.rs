//! What the server says about itself and the files built into it: `/stats` (JSON), `/metrics`
//! (Prometheus text), the built-in page and `/tinysse.js`, and error responses.

use super::{Cors, Outcome, Request, Routes, TOO_LARGE, respond};
use crate::http::response;
use crate::http::{HttpError, Status};
use crate::mem::Writer;
use crate::publish::Hub;

/// Connection counts the connection table keeps for status pages, copied into each request.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct Census {
    /// Open connections by state, in the order of `STATE_NAMES`.
    pub by_state: [u32; 6],
    pub slots: usize,
    pub buffers_used: usize,
    pub buffers: usize,
}

/// Connection states as /metrics labels them.
pub(crate) const STATE_NAMES: [&str; 6] = ["waiting", "idle", "request", "stream", "text", "linger"];

impl Census {
    fn open(&self) -> u64 {
        self.by_state.iter().map(|&n| u64::from(n)).sum()
    }
}

/// A file built into the binary, served as it is.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Asset {
    content_type: &'static str,
    body: &'static [u8],
}

/// The built-in page: live events, a publish form, the /stream demo (no external resources).
pub(super) static PAGE: Asset =
    Asset { content_type: "text/html; charset=utf-8", body: include_bytes!("../assets/page.html") };
/// The client module a dashboard imports: all tabs of an origin share one stream.
pub(super) static SCRIPT: Asset =
    Asset { content_type: "text/javascript; charset=utf-8", body: include_bytes!("../assets/tinysse.js") };

pub(super) fn asset(routes: &Routes, asset: &'static Asset, req: &mut Request) -> Result<Outcome, HttpError> {
    let keep_alive = req.head.keep_alive;
    let cors = routes.cors(req.head.origin.map(|o| o.of(req.input)));
    let extra: [&[u8]; 1] = [b"Cache-Control: no-cache\r\n"];
    response::head(&mut req.out, Status::Ok, asset.content_type, asset.body.len(), keep_alive, cors, &extra)
        .ok_or(TOO_LARGE)?;
    Ok(Outcome::Respond { close: !keep_alive, body: asset.body })
}

pub(super) fn stats(routes: &Routes, hub: &Hub, req: &mut Request) -> Result<Outcome, HttpError> {
    let mut body = [0u8; 1024];
    let mut w = Writer::new(&mut body);
    stats_json(&mut w, routes, hub, &req.census, req.now.0 / 1000).ok_or(TOO_LARGE)?;
    #[cfg(feature = "cluster")]
    cluster_json(&mut w, hub).ok_or(TOO_LARGE)?;
    let len = w.len;
    respond(routes, req, Status::Ok, "application/json", &body[..len], &[b"Cache-Control: no-store\r\n"])
}

pub(super) fn metrics(routes: &Routes, hub: &Hub, req: &mut Request) -> Result<Outcome, HttpError> {
    let mut body = [0u8; 4096];
    let mut w = Writer::new(&mut body);
    metrics_text(&mut w, hub, &req.census, req.now.0 / 1000).ok_or(TOO_LARGE)?;
    #[cfg(feature = "cluster")]
    cluster_metrics(&mut w, hub).ok_or(TOO_LARGE)?;
    let len = w.len;
    respond(routes, req, Status::Ok, "text/plain; version=0.0.4; charset=utf-8", &body[..len], &[])
}

fn stats_json(w: &mut Writer, routes: &Routes, hub: &Hub, census: &Census, uptime: u64) -> Option<()> {
    let s = &hub.stats;
    let fields: [(&str, u64); 12] = [
        ("clients", census.open()),
        ("accepted", s.accepted),
        ("subscribers", hub.subscribers as u64),
        ("published", s.published),
        ("delivered", s.delivered),
        ("dropped_slow", s.dropped_slow),
        ("rejected_full", s.rejected_full),
        ("targeted_missing", s.targeted_missing),
        ("bytes_written", s.bytes_written),
        ("history", hub.log.replayable() as u64),
        ("max_clients", routes.max_clients as u64),
        ("uptime_secs", uptime),
    ];
    w.put(b"{")?;
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            w.put(b", ")?;
        }
        w.put(b"\"")?;
        w.put(name.as_bytes())?;
        w.put(b"\": ")?;
        w.put_u64(*value)?;
    }
    w.put(b"}\n")
}

/// Unix time in ms, for the link's lag (Redis ids carry Redis's clock).
#[cfg(feature = "cluster")]
fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Cluster mode: the link, as one more JSON object in /stats (`"cluster": {...}`), written over
/// the closing brace.
#[cfg(feature = "cluster")]
fn cluster_json(w: &mut Writer, hub: &Hub) -> Option<()> {
    let Some(node) = hub.cluster.as_ref() else { return Some(()) };
    let s = node.link.stats();
    w.len = w.len.checked_sub(2)?; // "}\n"
    w.put(b", \"cluster\": {\"connected\": ")?;
    w.put(if s.connected { b"true" } else { b"false" })?;
    w.put(b", \"last_id\": \"")?;
    w.put(node.link.last_id())?;
    w.put(b"\"")?;
    let fields: [(&str, u64); 6] = [
        ("lag_ms", if s.read > 0 { s.lag_ms(wall_ms()) } else { 0 }),
        ("read", s.read),
        ("reconnects", s.reconnects),
        ("publish_failures", s.publish_failures),
        ("skipped", s.skipped),
        ("pending", s.pending as u64),
    ];
    for (name, value) in fields {
        w.put(b", \"")?;
        w.put(name.as_bytes())?;
        w.put(b"\": ")?;
        w.put_u64(value)?;
    }
    w.put(b"}}\n")
}

/// Cluster mode: the link's gauges and counters in /metrics.
#[cfg(feature = "cluster")]
fn cluster_metrics(w: &mut Writer, hub: &Hub) -> Option<()> {
    let Some(node) = hub.cluster.as_ref() else { return Some(()) };
    let s = node.link.stats();
    let lines: [(&str, &str, &str, u64); 7] = [
        ("cluster_connected", "gauge", "1 when both Redis connections are up.", u64::from(s.connected)),
        (
            "cluster_lag_ms",
            "gauge",
            "Age of the last stream entry read, ms.",
            if s.read > 0 { s.lag_ms(wall_ms()) } else { 0 },
        ),
        ("cluster_read_total", "counter", "Stream entries read (events and claims).", s.read),
        ("cluster_reconnects_total", "counter", "Redis connections made again after a loss.", s.reconnects),
        (
            "cluster_publish_failures_total",
            "counter",
            "Publishes Redis did not take (or not in time).",
            s.publish_failures,
        ),
        ("cluster_skipped_total", "counter", "Stream entries too large to read, passed over.", s.skipped),
        ("cluster_pending", "gauge", "Redis commands awaiting their reply.", s.pending as u64),
    ];
    for (name, kind, help, value) in lines {
        for part in [
            &b"# HELP tinysse_"[..],
            name.as_bytes(),
            b" ",
            help.as_bytes(),
            b"\n# TYPE tinysse_",
            name.as_bytes(),
            b" ",
            kind.as_bytes(),
            b"\n",
        ] {
            w.put(part)?;
        }
        w.put(b"tinysse_")?;
        w.put(name.as_bytes())?;
        w.put(b" ")?;
        w.put_u64(value)?;
        w.put(b"\n")?;
    }
    w.put(b"# HELP tinysse_cluster_last_id Last Redis stream entry id read.\n# TYPE tinysse_cluster_last_id gauge\ntinysse_cluster_last_id{id=\"")?;
    w.put(node.link.last_id())?;
    w.put(b"\"} 1\n")
}

fn metrics_text(w: &mut Writer, hub: &Hub, census: &Census, uptime: u64) -> Option<()> {
    let s = &hub.stats;
    let metric = |w: &mut Writer, name: &str, kind: &str, help: &str| -> Option<()> {
        w.put(b"# HELP tinysse_")?;
        w.put(name.as_bytes())?;
        w.put(b" ")?;
        w.put(help.as_bytes())?;
        w.put(b"\n# TYPE tinysse_")?;
        w.put(name.as_bytes())?;
        w.put(b" ")?;
        w.put(kind.as_bytes())?;
        w.put(b"\n")
    };
    let sample = |w: &mut Writer, name: &str, labels: &[&str], value: u64| -> Option<()> {
        w.put(b"tinysse_")?;
        w.put(name.as_bytes())?;
        for part in labels {
            w.put(part.as_bytes())?;
        }
        w.put(b" ")?;
        w.put_u64(value)?;
        w.put(b"\n")
    };
    let simple: [(&str, &str, &str, u64); 12] = [
        ("connections_accepted_total", "counter", "Connections accepted.", s.accepted),
        ("subscribers", "gauge", "Subscriber streams open.", hub.subscribers as u64),
        ("events_published_total", "counter", "Events published (all sources).", s.published),
        ("events_delivered_total", "counter", "Complete events written to subscribers.", s.delivered),
        (
            "bytes_written_total",
            "counter",
            "Bytes of events, heads and heartbeats written to streams.",
            s.bytes_written,
        ),
        (
            "rejected_full_total",
            "counter",
            "Connections or streams refused with 503 for lack of room.",
            s.rejected_full,
        ),
        ("slab_capacity", "gauge", "Connection slots (max-clients plus the reserve).", census.slots as u64),
        ("slab_used", "gauge", "Connection slots in use.", census.open()),
        ("request_buffers_capacity", "gauge", "Request buffers in the pool.", census.buffers as u64),
        ("request_buffers_used", "gauge", "Request buffers lent out.", census.buffers_used as u64),
        ("history_events", "gauge", "Events Last-Event-ID replay can reach now.", hub.log.replayable() as u64),
        ("uptime_seconds", "gauge", "Seconds since start.", uptime),
    ];
    for (name, kind, help, value) in simple {
        metric(w, name, kind, help)?;
        sample(w, name, &[], value)?;
    }
    metric(w, "connections", "gauge", "Open connections by state.")?;
    for (state, count) in STATE_NAMES.iter().zip(census.by_state) {
        sample(w, "connections", &["{state=\"", state, "\"}"], u64::from(count))?;
    }
    metric(
        w,
        "dropped_total",
        "counter",
        "Subscribers dropped as too slow; targeted events refused, client not connected.",
    )?;
    sample(w, "dropped_total", &["{reason=\"slow_subscriber\"}"], s.dropped_slow)?;
    sample(w, "dropped_total", &["{reason=\"targeted_missing\"}"], s.targeted_missing)
}

/// Writes an error response (the connection closes once it is sent).
pub(crate) fn write_error(w: &mut Writer, e: HttpError, cors: Cors) {
    let mut body = [0u8; 128];
    let msg = e.message().as_bytes();
    let n = msg.len().min(body.len() - 1);
    body[..n].copy_from_slice(&msg[..n]);
    body[n] = b'\n';
    let mut allow = [0u8; 64];
    let mut extra: heapless::Vec<&[u8], 2> = heapless::Vec::new();
    if let HttpError::MethodNotAllowed(methods) = e {
        let mut a = Writer::new(&mut allow);
        let _ = a.put(b"Allow: ").and_then(|_| a.put(methods.as_bytes())).and_then(|_| a.put(b"\r\n"));
        let len = a.len;
        let _ = extra.push(&allow[..len]);
    }
    match e.status() {
        Status::Unavailable => {
            let _ = extra.push(b"Retry-After: 1\r\n");
        }
        Status::Unauthorized => {
            let _ = extra.push(b"WWW-Authenticate: Bearer realm=\"tinysse\"\r\n");
        }
        _ => {}
    }
    let _ = response::simple(w, e.status(), "text/plain; charset=utf-8", &body[..n + 1], false, cors, &extra);
}
