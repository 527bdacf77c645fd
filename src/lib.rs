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
//! let listen = std::net::SocketAddr::from(([0, 0, 0, 0], 8080));
//! let mut server = Server::new(Config { listen, ..Config::default() })?;
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
//!     server.poll(Some(Duration::from_millis(10)))?; // network events, timers, the fan-out pass
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
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The host program sets up logging: tinysse logs through the `log` facade, so nothing is
//! printed until a logger (for example `env_logger::init()`) is installed.
//!
//! The data path reads down the module tree: `server` accepts and runs the loop;
//! `conn` owns each connection's state machine; `http` is the request layer; `routes` decide
//! what a request does; `publish` puts events into the event log; `deliver` writes them to
//! subscribers; `mem` holds what is allocated once at start-up; `limits` is the one table of
//! limits and field rules.

#![warn(missing_docs)]

#[cfg(feature = "cluster")]
mod cluster;
mod config;
mod conn;
mod deliver;
// The request layer's types reach the public API only through the hidden `request_layer`.
#[allow(missing_docs)]
mod http;
mod limits;
mod mem;
mod publish;
mod retry;
mod routes;
mod server;
mod time;

#[cfg(feature = "cluster")]
pub use cluster::RedisUrl;
pub use config::{Builtins, Config, ConfigError, Fsync, StdinFormat};
pub use limits::QUEUE_LEN;
pub use publish::PublishError;
pub use publish::handle::{Event, EventId, Publisher, SendError, ShutdownHandle, StreamId};
pub use routes::{StreamRequest, StreamRouteError};
pub use server::{Server, StartError};

/// The README's code blocks, compiled as doc-tests so that its snippets keep working.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The HTTP request layer, for the fuzz target and the corpus test only; not a stable API.
#[doc(hidden)]
pub mod request_layer {
    pub use crate::http::{Body, Framing, Head, HttpError, Method, Params, Span, frame_request};
}
