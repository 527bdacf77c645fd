//! The lobby: where a connection waits, briefly and without a slot, when every slot is taken
//! and none is idle. Its request head decides the answer: an EventSource (`Accept:
//! text/event-stream`) gets a 200 stream that only says when to retry (any other status ends
//! an EventSource for good), anyone else 503 with `Retry-After`; CORS as for every response.

use super::io::discard_input;
use crate::http::HttpError;
use crate::mem::Writer;
use crate::routes::{Routes, write_error};
use crate::time::Millis;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::Write;
use std::net::Shutdown;

/// Connections the lobby holds at once; more are answered at once, from what they sent so far.
pub(crate) const LOBBY: usize = 12;

/// How long the lobby waits for a request head.
const WAIT: Millis = Millis(1000);

/// The first lobby token; the others follow downwards. Slot keys never reach these indices
/// (see `mem::slab::MAX_CAPACITY`).
const FIRST_TOKEN: usize = usize::MAX - 4;

pub(crate) struct Lobby {
    seats: [Option<(TcpStream, Millis)>; LOBBY],
}

impl Lobby {
    pub fn new() -> Lobby {
        Lobby { seats: std::array::from_fn(|_| None) }
    }

    /// The lobby seat a token names, if it is a lobby token.
    pub fn seat_of(token: Token) -> Option<usize> {
        let seat = FIRST_TOKEN.checked_sub(token.0)?;
        (seat < LOBBY).then_some(seat)
    }

    /// Seats `sock` to wait for its head; answers it at once when the lobby is full.
    pub fn enter(&mut self, mut sock: TcpStream, registry: &Registry, routes: &mut Routes, now: Millis) {
        let Some(seat) = self.seats.iter().position(Option::is_none) else {
            return answer(&mut sock, routes);
        };
        if registry.register(&mut sock, Token(FIRST_TOKEN - seat), Interest::READABLE).is_err() {
            return answer(&mut sock, routes);
        }
        self.seats[seat] = Some((sock, now.after(WAIT)));
        // Its head may have arrived with the connection.
        self.on_readable(seat, registry, routes, now);
    }

    /// Bytes arrived: answer once the head is complete (or the peek buffer full).
    pub fn on_readable(&mut self, seat: usize, registry: &Registry, routes: &mut Routes, now: Millis) {
        let Some((sock, due)) = &mut self.seats[seat] else { return };
        let mut head = [0u8; 2048];
        let n = sock.peek(&mut head).unwrap_or(0);
        let complete = n == head.len()
            || head[..n].windows(4).any(|w| w == b"\r\n\r\n")
            || head[..n].windows(2).any(|w| w == b"\n\n");
        if complete || now >= *due {
            self.leave(seat, registry, routes);
        }
    }

    /// Answers whoever waited past their time.
    pub fn run_timers(&mut self, registry: &Registry, routes: &mut Routes, now: Millis) {
        for seat in 0..LOBBY {
            if self.seats[seat].as_ref().is_some_and(|(_, due)| *due <= now) {
                self.leave(seat, registry, routes);
            }
        }
    }

    /// The earliest time someone's wait is over.
    pub fn next_deadline(&self) -> Millis {
        self.seats.iter().flatten().map(|(_, due)| *due).min().unwrap_or(Millis::NEVER)
    }

    fn leave(&mut self, seat: usize, registry: &Registry, routes: &mut Routes) {
        if let Some((mut sock, _)) = self.seats[seat].take() {
            let _ = registry.deregister(&mut sock);
            answer(&mut sock, routes);
        }
    }
}

/// Answers a connection that got no slot, from the head it sent so far, and shuts it.
pub(super) fn answer(sock: &mut TcpStream, routes: &mut Routes) {
    let mut head = [0u8; 2048];
    let n = sock.peek(&mut head).unwrap_or(0);
    let head = &head[..n];
    let origin = header(head, b"origin");
    let cors = routes.cors(origin);
    let mut out = [0u8; 1024];
    let mut w = Writer::new(&mut out);
    let event_source =
        head.starts_with(b"GET ") && header(head, b"accept").is_some_and(|a| contains_ci(a, b"text/event-stream"));
    if event_source {
        let _ = w
            .put(crate::http::response::STREAM_HEAD)
            .and_then(|_| w.put(b"Connection: close\r\n"))
            .and_then(|_| cors.put(&mut w))
            .and_then(|_| w.put(b"\r\n"))
            .and_then(|_| routes.retry_line(&mut w));
    } else {
        write_error(&mut w, HttpError::Unavailable, cors);
    }
    // Read what arrived, so closing sends FIN, not a reset that could eat the answer.
    let _ = discard_input(sock);
    let _ = sock.write(w.written());
    let _ = sock.shutdown(Shutdown::Write);
}

/// The value of header `name` in a (possibly partial) head, if its line is complete.
fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon].eq_ignore_ascii_case(name).then(|| crate::http::request::trim(&line[colon + 1..]))
    })
}

fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_a_partial_head() {
        let head = b"GET /events HTTP/1.1\r\nAccept: text/event-stream\r\nOrigin: http://a.example\r\nX-Half";
        assert_eq!(header(head, b"accept"), Some(&b"text/event-stream"[..]));
        assert_eq!(header(head, b"origin"), Some(&b"http://a.example"[..]));
        assert_eq!(header(head, b"cookie"), None);
        assert!(contains_ci(b"Text/Event-Stream", b"text/event-stream"));
        assert_eq!(Lobby::seat_of(Token(FIRST_TOKEN)), Some(0));
        assert_eq!(Lobby::seat_of(Token(FIRST_TOKEN - LOBBY)), None);
        assert!(crate::mem::Key::from_token(Token(FIRST_TOKEN - LOBBY + 1)).is_none(), "never a slot key");
    }
}
