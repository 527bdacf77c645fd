//! Socket I/O for connections: reading requests into their buffer, writing a buffer's output,
//! draining input nobody will read, and the answer to a connection that got no slot.

use super::Close;
use crate::http::response;
use crate::mem::{BufId, Pool, Writer};
use crate::retry::RetryDelays;
use mio::net::TcpStream;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

/// Writes the buffer's pending output, then its static body; `Ok(true)` when all is written.
pub(super) fn write_out(sock: &mut TcpStream, pool: &mut Pool, id: BufId) -> io::Result<bool> {
    loop {
        let body = pool.state(id).body_left();
        let pending = pool.pending_out(id);
        if pending.is_empty() && body.is_empty() {
            let state = pool.state(id);
            state.out_pos = 0;
            state.out_len = 0;
            state.body = &[];
            state.body_pos = 0;
            return Ok(true);
        }
        let pending_len = pending.len();
        match sock.write_vectored(&[IoSlice::new(pending), IoSlice::new(body)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let state = pool.state(id);
                state.out_pos += n.min(pending_len) as u32;
                state.body_pos += n.saturating_sub(pending_len) as u32;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads into the buffer's input part until WouldBlock, EOF or full.
pub(super) fn read_input(sock: &mut TcpStream, pool: &mut Pool, id: BufId) -> Result<(), Close> {
    let (state, input, _) = pool.parts(id);
    while !state.eof && (state.in_len as usize) < input.len() {
        match sock.read(&mut input[state.in_len as usize..]) {
            Ok(0) => state.eof = true,
            Ok(n) => state.in_len += n as u32,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Close::ReadFailed),
        }
    }
    Ok(())
}

/// Reads and drops input until WouldBlock, returning how much; `Err` when the peer closed or
/// failed.
pub(super) fn discard_input(sock: &mut TcpStream) -> Result<usize, Close> {
    let mut scratch = [0u8; 512];
    let mut dropped = 0;
    loop {
        match sock.read(&mut scratch) {
            Ok(0) => return Err(Close::PeerClosed),
            Ok(n) => dropped += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(dropped),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Close::ReadFailed),
        }
    }
}

/// Answers a connection that got no slot, without ever holding one: 503, or for an
/// EventSource (whose request already arrived and asks for `text/event-stream`) a 200 stream
/// that only says when to retry, since any other status would end it for good.
pub(super) fn reject_full(sock: &mut TcpStream, retry: &mut RetryDelays) {
    // Read what already arrived, so closing sends FIN, not a reset that could eat the answer.
    let mut scratch = [0u8; 2048];
    let mut seen = 0;
    loop {
        match sock.read(&mut scratch[seen..]) {
            Ok(n) if n > 0 && seen + n < scratch.len() => seen += n,
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = discard_input(sock);
    if asks_for_event_stream(&scratch[..seen]) {
        let mut out = [0u8; 256];
        let mut w = Writer::new(&mut out);
        let _ = w
            .put(response::STREAM_HEAD)
            .and_then(|_| w.put(b"Connection: close\r\nAccess-Control-Allow-Origin: *\r\n\r\n"))
            .and_then(|_| retry.put_line(&mut w));
        let _ = sock.write(w.written());
    } else {
        let _ = sock.write(response::FULL);
    }
    let _ = sock.shutdown(Shutdown::Write);
}

/// Whether the start of a request is a GET whose `Accept` names `text/event-stream`.
fn asks_for_event_stream(bytes: &[u8]) -> bool {
    let lower = |b: &u8| b.to_ascii_lowercase();
    let needle = b"text/event-stream";
    bytes.starts_with(b"GET ") && bytes.windows(needle.len()).any(|w| w.iter().map(lower).eq(needle.iter().copied()))
}

/// 127.0.0.0/8, ::1, and IPv4-mapped loopback (a dual-stack listener's view of 127.0.0.1).
pub(super) fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_loopback_peers_count_as_local() {
        for local in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(local.parse().unwrap()), "{local}");
        }
        for remote in ["10.0.0.2", "192.168.1.20", "0.0.0.0", "::ffff:10.0.0.2", "fe80::1", "2001:db8::1"] {
            assert!(!is_loopback(remote.parse().unwrap()), "{remote}");
        }
    }
}
