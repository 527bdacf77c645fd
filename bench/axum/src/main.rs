//! axum peer for the tinysse benchmark: tokio's multi-thread runtime (default worker count),
//! a `tokio::sync::broadcast` channel, and `axum::response::sse::Sse` for the streams.
//!
//! GET /events subscribes to every event; POST /events publishes its body (UTF-8) as one event
//! (`data: <body>\n\n`) and answers 200 at once. A subscriber that falls more than the
//! channel's capacity behind skips what it lagged (the loadgen counts it as missing).
//! Port: first argument, else $PORT, else 8080. Listens on 127.0.0.1 only.

use std::{convert::Infallible, sync::Arc};

use axum::{
    extract::State,
    http::StatusCode,
    response::sse::{Event, Sse},
    routing::get,
    serve::ListenerExt,
    Router,
};
use tokio::sync::broadcast;
use tokio_stream::{wrappers::BroadcastStream, Stream, StreamExt};

const CAPACITY: usize = 4096;

type Tx = broadcast::Sender<Arc<str>>;

async fn subscribe(State(tx): State<Tx>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream =
        BroadcastStream::new(tx.subscribe()).filter_map(|msg| msg.ok().map(|data| Ok(Event::default().data(&*data))));
    Sse::new(stream)
}

async fn publish(State(tx): State<Tx>, body: String) -> StatusCode {
    // No subscribers is not an error.
    let _ = tx.send(Arc::from(body));
    StatusCode::OK
}

#[tokio::main]
async fn main() {
    let port = std::env::args().nth(1).or_else(|| std::env::var("PORT").ok()).unwrap_or_else(|| "8080".into());
    let (tx, _) = broadcast::channel::<Arc<str>>(CAPACITY);
    let app = Router::new().route("/events", get(subscribe).post(publish)).with_state(tx);
    let addr = format!("127.0.0.1:{port}");
    // TCP_NODELAY on every stream, as Go, Node and tinysse do by default.
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind").tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    eprintln!("axum peer listening on {addr}");
    axum::serve(listener, app).await.expect("serve");
}
