//! SSE framing: how one event becomes bytes on the wire.
//!
//! An event is encoded once, when it is published, and the same bytes go to every subscriber.
//! Data is split at LF, CRLF and CR into one `data:` line each, so an EventSource reassembles the
//! lines joined by LF; a trailing line break gives a final empty `data:` line, which keeps it.

use crate::mem::Writer;

/// A heartbeat: a comment line and the blank line that ends it.
pub(crate) const HEARTBEAT: &[u8] = b":\n\n";

/// The fields of one event. Empty `id` or `event` means the field is left out.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct Frame<'a> {
    pub id: &'a [u8],
    pub event: &'a [u8],
    pub data: &'a [u8],
}

/// Lines of `data`, split at LF, CRLF or CR. Always at least one (possibly empty) line.
pub(crate) fn lines(data: &[u8]) -> Lines<'_> {
    Lines { rest: Some(data) }
}

pub(crate) struct Lines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            None => {
                self.rest = None;
                Some(rest)
            }
            Some(i) => {
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                self.rest = Some(&rest[i + skip..]);
                Some(&rest[..i])
            }
        }
    }
}

impl Frame<'_> {
    /// Exact number of bytes `encode` writes.
    pub fn encoded_len(&self) -> usize {
        let mut n = 1; // the blank line that dispatches the event
        if !self.id.is_empty() {
            n += b"id: ".len() + self.id.len() + 1;
        }
        if !self.event.is_empty() {
            n += b"event: ".len() + self.event.len() + 1;
        }
        n + lines(self.data).map(|l| b"data: ".len() + l.len() + 1).sum::<usize>()
    }

    /// Writes the event into the front of `out`, which must hold `encoded_len()` bytes, and
    /// returns the length written; `None` (and nothing meaningful written) when `out` is short.
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let mut w = Writer { out, len: 0 };
        if !self.id.is_empty() {
            w.put(b"id: ")?;
            w.put(self.id)?;
            w.put(b"\n")?;
        }
        if !self.event.is_empty() {
            w.put(b"event: ")?;
            w.put(self.event)?;
            w.put(b"\n")?;
        }
        for line in lines(self.data) {
            w.put(b"data: ")?;
            w.put(line)?;
            w.put(b"\n")?;
        }
        w.put(b"\n")?;
        Some(w.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(id: &str, event: &str, data: &str) -> String {
        let f = Frame { id: id.as_bytes(), event: event.as_bytes(), data: data.as_bytes() };
        let mut out = vec![0u8; f.encoded_len()];
        let n = f.encode(&mut out).unwrap();
        assert_eq!(n, out.len());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_in_order() {
        assert_eq!(wire("7", "ping", "hi"), "id: 7\nevent: ping\ndata: hi\n\n");
        assert_eq!(wire("", "", "hi"), "data: hi\n\n");
    }

    #[test]
    fn every_line_break_splits_data() {
        assert_eq!(wire("1", "", "a\nb\r\nc\rd"), "id: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
        assert_eq!(wire("1", "", "tail\n"), "id: 1\ndata: tail\ndata: \n\n");
        assert_eq!(wire("1", "", "x\r\n\r\n"), "id: 1\ndata: x\ndata: \ndata: \n\n");
        assert_eq!(wire("1", "", ""), "id: 1\ndata: \n\n");
        assert_eq!(wire("1", "", "\r"), "id: 1\ndata: \ndata: \n\n");
    }

    #[test]
    fn short_buffer_fails() {
        let f = Frame { id: b"1", event: b"", data: b"hello" };
        let mut out = [0u8; 8];
        assert_eq!(f.encode(&mut out), None);
    }
}
