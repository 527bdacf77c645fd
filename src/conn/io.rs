//! Socket I/O for connections: reading requests into their buffer, writing a buffer's output,
//! draining input nobody will read, and the answer to a connection that got no slot.

use super::Close;
use crate::mem::{BufId, Pool};
use mio::net::TcpStream;
use std::io::{self, IoSlice, Read, Write};

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
