//! One connection to Redis: its socket, its state, and its input and output buffers, allocated
//! once.

use super::driver::Reason;
use super::resp;
use mio::Token;
use mio::net::TcpStream;
use std::io::{self, Write};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum State {
    Down,
    Connecting,
    Handshake,
    Ready,
}

/// Bytes with a start and an end, allocated once.
pub(super) struct Buf {
    pub(super) data: Vec<u8>,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Buf {
    pub(super) fn new(len: usize) -> Buf {
        // Zeroed: comes straight from the OS and stays non-resident until used.
        Buf { data: vec![0; len], start: 0, end: 0 }
    }

    pub(super) fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub(super) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Room at the end, after moving what is pending to the front when that makes more.
    pub(super) fn space(&mut self) -> &mut [u8] {
        if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.data[self.end..]
    }

    /// Appends a command; false when it does not fit even after compacting.
    pub(super) fn push_command(&mut self, args: &[&[u8]]) -> bool {
        if self.end + resp::command_len(args) > self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        match resp::write_command(&mut self.data[self.end..], args) {
            Some(n) => {
                self.end += n;
                true
            }
            None => false,
        }
    }

    pub(super) fn fits(&self, len: usize) -> bool {
        self.end - self.start + len <= self.data.len()
    }
}

pub(super) struct Conn {
    pub(super) token: Token,
    pub(super) sock: Option<TcpStream>,
    pub(super) state: State,
    /// Down: when to connect again. Connecting: when to give up. Reader: when it counts as
    /// dead without a byte. (The command connection's reply deadline is its oldest command's.)
    pub(super) deadline: u64,
    /// Failed attempts since it was last ready: the backoff's exponent.
    pub(super) attempts: u32,
    pub(super) inb: Buf,
    pub(super) outb: Buf,
    /// A write said WouldBlock: wait for the writable event.
    pub(super) write_blocked: bool,
    /// Reading stopped before WouldBlock: go on at the next `tick`.
    pub(super) read_more: bool,
    pub(super) ever_up: bool,
    /// This outage was warned about: say so when it ends.
    pub(super) warned: bool,
}

impl Conn {
    pub(super) fn new(token: Token, in_bytes: usize, out_bytes: usize) -> Conn {
        Conn {
            token,
            sock: None,
            state: State::Down,
            deadline: 0,
            attempts: 0,
            inb: Buf::new(in_bytes),
            outb: Buf::new(out_bytes),
            write_blocked: false,
            read_more: false,
            ever_up: false,
            warned: false,
        }
    }

    /// Whether a connect in progress has completed; `Err` when it failed.
    pub(super) fn established(&mut self) -> Result<bool, Reason> {
        let Some(sock) = self.sock.as_mut() else { return Ok(false) };
        match sock.take_error() {
            Ok(Some(e)) | Err(e) => return Err(Reason::Connect(e.kind())),
            Ok(None) => {}
        }
        match sock.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(Reason::Connect(e.kind())),
        }
    }

    pub(super) fn flush(&mut self) -> Result<(), Reason> {
        let Some(sock) = self.sock.as_mut() else { return Ok(()) };
        while self.outb.start < self.outb.end {
            match sock.write(self.outb.pending()) {
                Ok(0) => return Err(Reason::Closed),
                Ok(n) => self.outb.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.write_blocked = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Reason::Io(e.kind())),
            }
        }
        Ok(())
    }
}
