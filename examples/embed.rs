//! A device's host program embedding tinysse: a sensor thread publishes readings through a
//! `Publisher`, one topic per sensor, while the server runs on the main thread.
//!
//! Run:   cargo run --release --example embed
//! Watch: curl -N 'http://127.0.0.1:8080/events?topic=sensors/*'
//!        curl -N 'http://127.0.0.1:8080/events?topic=sensors/temperature'

use std::time::Duration;
use tinysse::{Config, Event, SendError, Server};

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let config =
        Config { listen: listen.parse().expect("LISTEN is an address"), heartbeat_secs: 15, ..Config::default() };
    let mut server = Server::new(config)?;
    server.handle_signals()?;
    log::info!("listening on {}", server.local_addr());

    let publisher = server.publisher();
    std::thread::spawn(move || {
        // A stand-in for real sensors: two slowly changing readings.
        let mut data = String::with_capacity(64);
        for step in 0u64.. {
            let t = 20.0 + (step as f64 / 10.0).sin() * 2.5;
            let h = 45.0 + (step as f64 / 7.0).cos() * 5.0;
            for (topic, value) in [("sensors/temperature", t), ("sensors/humidity", h)] {
                data.clear();
                use std::fmt::Write;
                let _ = write!(data, "{{\"sensor\": \"{topic}\", \"value\": {value:.2}}}");
                match publisher.publish(Event::new(&data).event("reading").topic(topic)) {
                    Ok(()) => {}
                    // The queue is full only if the loop is far behind: skip this reading.
                    Err(SendError::Full(_)) => log::warn!("publish queue full; reading dropped"),
                    Err(SendError::Stopped(_)) => return,
                    Err(e) => log::warn!("reading refused: {e}"),
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });

    server.run()
}
