//! tinysse: a small, fast Server-Sent Events server for small machines, usable as a binary or
//! embedded in a host program.
//!
//! Build a [`Server`] from a [`Config`], then either let it own the thread with
//! [`Server::run`], or step it from your own loop with [`Server::poll`]. Publish from any thread
//! with a [`Publisher`] (`Clone + Send`, never blocks, never allocates; a full queue gives the
//! event back), and stop it with a [`ShutdownHandle`].
//!
//! ```no_run
//! use tinysse::{Config, Event, Server};
//!
//! let mut server = Server::new(Config { listen: "0.0.0.0:8080".parse().unwrap(), ..Config::default() })?;
//! let publisher = server.publisher();
//! std::thread::spawn(move || {
//!     // e.g. a sensor thread
//!     let _ = publisher.publish(Event::new("{\"celsius\": 21.5}").event("reading").topic("sensors/t1"));
//! });
//! server.handle_signals()?; // SIGINT/SIGTERM end the streams and make run() return
//! server.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Stepping it from a host loop, publishing on the same thread:
//!
//! ```
//! use std::time::Duration;
//! use tinysse::{Config, Event, Server};
//!
//! let mut server = Server::new(Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() })?;
//! let stop = server.shutdown_handle();
//! for step in 0..3 {
//!     server.poll(Some(Duration::from_millis(10)))?; // handle network events, timers, flushes
//!     server.publish(Event::new("tick")).expect("valid event");
//! }
//! stop.shutdown();
//! server.poll(Some(Duration::from_millis(10)))?;
//! assert!(server.is_stopped());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A request-scoped stream (the ChatGPT case): the route's handler gets a [`StreamId`] and the
//! host feeds it over time, then ends it.
//!
//! ```
//! use tinysse::{Config, Server};
//!
//! let mut server = Server::new(Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() })?;
//! let publisher = server.publisher();
//! server.stream_route("/generate", move |req| {
//!     // Runs on the server's thread: hand the work to another thread; here we answer at once.
//!     let _ = publisher.send_frame(req.id, req.param("prompt").unwrap_or("hello"));
//!     let _ = publisher.send_frame(req.id, "[DONE]");
//!     let _ = publisher.end(req.id);
//! });
//! # Ok::<(), std::io::Error>(())
//! ```
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
//! - [`stdin`]: the `--stdin` bridge (lines, or `TOPIC PAYLOAD` from mosquitto_sub).
//! - [`config`], [`time`]: configuration and loop time.

pub mod config;
pub mod conn;
pub mod event_log;
pub mod filter;
pub mod http;
pub mod hub;
pub mod pool;
pub mod publisher;
pub mod routes;
pub mod server;
pub mod slab;
pub mod sse;
pub mod stdin;
pub mod stream;
pub mod time;

pub use config::{Config, ConfigError};
pub use publisher::{Event, Publisher, SendError, ShutdownHandle, StreamId};
pub use routes::StreamRequest;
pub use server::Server;
