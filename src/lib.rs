//! tinysse: a small, fast Server-Sent Events server for small machines, usable as a binary or
//! embedded in a host program.
//!
//! Module map (one job each):
//! - [`server`]: the mio event loop: accepting, readiness, timers, the flush pass.
//! - [`conn`]: one connection's state machine.
//! - [`http`]: the HTTP/1.1 request layer (heads, framing, limits, decoding, responses).
//! - [`routes`]: what each route does with a complete request.
//! - [`hub`]: state requests act on: publishing, counters.
//! - [`event_log`]: the ring of encoded events shared by all subscribers (history, replay).
//! - [`stream`]: writing a subscriber its pending events with writev.
//! - [`sse`]: SSE framing.
//! - [`filter`]: subscriber topics and client ids.
//! - [`pool`], [`slab`]: the fixed-size request buffers and connection slots.
//! - [`config`], [`time`]: configuration and loop time.

pub mod config;
pub mod conn;
pub mod event_log;
pub mod filter;
pub mod http;
pub mod hub;
pub mod pool;
pub mod routes;
pub mod server;
pub mod slab;
pub mod sse;
pub mod stream;
pub mod time;

pub use config::{Config, ConfigError};
pub use server::Server;
