//! A request-scoped stream fed from host code, the ChatGPT case: GET /generate?prompt=... answers
//! with one SSE frame per token as a worker "generates" them, then `[DONE]`, then the response
//! ends.
//!
//! Run:   cargo run --release --example token_stream
//! Watch: curl -N 'http://127.0.0.1:8080/generate?prompt=hello'

use std::sync::mpsc;
use std::time::Duration;
use tinysse::{Config, Server, StreamId};

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let mut server =
        Server::new(Config { listen: listen.parse().expect("LISTEN is an address"), ..Config::default() })?;
    server.handle_signals()?;

    // The handler runs on the server's thread and must not block: it hands the job to a worker.
    let (jobs, queue) = mpsc::channel::<(StreamId, String)>();
    server
        .stream_route("/generate", move |req| {
            let prompt = req.param("prompt").unwrap_or("hello").to_string();
            let _ = jobs.send((req.id, prompt));
        })
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;

    let publisher = server.publisher();
    std::thread::spawn(move || {
        for (stream, prompt) in queue {
            let publisher = publisher.clone();
            std::thread::spawn(move || {
                let answer = format!("You said \"{prompt}\". Here is a reply, streamed one token at a time.");
                for token in answer.split_inclusive(' ') {
                    loop {
                        match publisher.send_frame(stream, token) {
                            Ok(()) => break,
                            // The loop is busy: wait a little and retry the token.
                            Err(tinysse::SendError::Full(_)) => std::thread::sleep(Duration::from_millis(5)),
                            // The client went away (or the server stopped): stop generating.
                            Err(_) => return,
                        }
                    }
                    std::thread::sleep(Duration::from_millis(80));
                }
                let _ = publisher.send_frame(stream, "[DONE]");
                let _ = publisher.end(stream);
            });
        }
    });

    log::info!("listening on {}", server.local_addr());
    server.run()
}
