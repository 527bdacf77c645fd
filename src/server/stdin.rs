//! The stdin bridge (`--stdin`): each line on standard input becomes one event, read by the same
//! mio loop, non-blocking.
//!
//! With `--stdin-format topic`, a line `TOPIC PAYLOAD` (as `mosquitto_sub -v` prints it)
//! publishes PAYLOAD to TOPIC. A line longer than the buffer is dropped whole, with one log line,
//! and the next line is read cleanly. EOF stops the bridge, not the server.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};

use crate::config::StdinFormat as Format;

/// One line read, split as `Format` says.
pub(super) struct Line<'a> {
    pub topic: &'a [u8],
    pub data: &'a [u8],
}

/// Whether stdin stays open after a read pass.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Input {
    /// More may come: wait for readiness.
    Open,
    /// End of input: deregister and forget stdin.
    Eof,
}

pub(super) struct StdinBridge {
    file: File,
    format: Format,
    buf: Vec<u8>,
    len: usize,
    /// Dropping the rest of a line that did not fit.
    skipping: bool,
}

impl StdinBridge {
    /// Takes a duplicate of standard input and makes it non-blocking. `max_line` bounds a line
    /// (topic, space and data).
    pub fn new(format: Format, max_line: usize) -> io::Result<StdinBridge> {
        let fd = io::stdin().as_fd().try_clone_to_owned()?;
        // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take and return plain ints.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(StdinBridge { file: File::from(fd), format, buf: vec![0u8; max_line + 1], len: 0, skipping: false })
    }

    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    /// Reads until WouldBlock or EOF, calling `publish` for each complete line.
    pub fn read(&mut self, mut publish: impl FnMut(Line)) -> io::Result<Input> {
        loop {
            if self.len == self.buf.len() {
                // A line longer than the buffer: drop it whole, then resynchronise at its end.
                log::warn!("stdin: line longer than {} bytes dropped", self.buf.len() - 1);
                self.skipping = true;
                self.len = 0;
            }
            let n = match self.file.read(&mut self.buf[self.len..]) {
                Ok(0) => {
                    if self.len > 0 && !self.skipping {
                        // The last line had no newline: it is still a line.
                        let len = self.len;
                        self.len = 0;
                        emit(self.format, &self.buf[..len], &mut publish);
                    }
                    return Ok(Input::Eof);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Input::Open),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let end = self.len + n;
            let mut start = 0;
            let mut scan = self.len;
            while let Some(i) = self.buf[scan..end].iter().position(|&b| b == b'\n') {
                let line_end = scan + i;
                if self.skipping {
                    self.skipping = false;
                } else {
                    emit(self.format, &self.buf[start..line_end], &mut publish);
                }
                start = line_end + 1;
                scan = start;
            }
            if self.skipping {
                self.len = 0; // still inside the long line: nothing worth keeping
            } else {
                self.buf.copy_within(start..end, 0);
                self.len = end - start;
            }
        }
    }
}

fn emit(format: Format, line: &[u8], publish: &mut impl FnMut(Line)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match format {
        Format::Lines => publish(Line { topic: b"", data: line }),
        Format::Topic => {
            let (topic, data) = match line.iter().position(|&b| b == b' ') {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => (line, &b""[..]),
            };
            publish(Line { topic, data });
        }
    }
}
