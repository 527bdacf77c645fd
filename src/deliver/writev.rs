//! Writing one subscriber its pending bytes from the event log, batched into writev calls.
//!
//! One call writes, in one `writev` per batch: the rest of the response head (if its buffer is
//! still held), a heartbeat, then every event from the cursor on that the subscriber may see.
//! Events adjacent in the ring merge into one iovec, so a subscriber that fell behind by a
//! hundred events usually costs one syscall.

use super::Cursor;
use crate::mem::{BufId, Pool};
use crate::publish::sse::HEARTBEAT;
use crate::publish::{EventLog, Filters};
use mio::net::TcpStream;
use std::io::{self, IoSlice, Write};

/// iovecs per writev. Adjacent events merge into one range, so an unfiltered subscriber needs
/// one or two whatever its backlog; 16 keep filtered ones efficient too, and the arrays set up
/// on each call stay small (64 cost about 430 instructions per call in callgrind).
const MAX_IOV: usize = 16;
/// Events accounted for per writev.
const MAX_EVENTS: usize = 256;

/// Why a stream cannot go on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// The ring overwrote events this subscriber had not received: it is too slow.
    Overrun,
    /// The socket failed (peer reset, broken pipe).
    Io,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteError::Overrun => "fell more than the event log behind",
            WriteError::Io => "write failed",
        })
    }
}

impl std::error::Error for WriteError {}

/// What a write pass did.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct Written {
    pub bytes: u64,
    pub events: u64,
    /// The response head is fully written and the buffer can be given back.
    pub head_done: bool,
}

/// Where a subscriber's bytes go, and what else it may still have to send first.
pub(crate) struct Sink<'a> {
    pub sock: &'a mut TcpStream,
    /// The buffer holding the rest of its response head, if not yet written.
    pub head: Option<BufId>,
    /// Set when the socket would block.
    pub blocked: &'a mut bool,
    /// Its slot (its region in `Filters`).
    pub slot: u32,
}

/// Writes what the subscriber has pending until done or the socket would block.
pub(crate) fn write(
    sink: Sink,
    cur: &mut Cursor,
    log: &EventLog,
    filters: &Filters,
    pool: &mut Pool,
) -> Result<Written, WriteError> {
    let slot = sink.slot;
    let mut done = Written::default();
    loop {
        if cur.seq < log.first_seq() {
            return Err(WriteError::Overrun);
        }
        let out: &[u8] = match sink.head {
            Some(id) => pool.pending_out(id),
            None => &[],
        };
        let heartbeat = &HEARTBEAT[HEARTBEAT.len() - cur.heartbeat_left as usize..];

        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let mut n_iov = 0;
        for part in [out, heartbeat] {
            if !part.is_empty() {
                iov[n_iov] = IoSlice::new(part);
                n_iov += 1;
            }
        }
        // Event parts in the batch: sequence number, offset already sent, bytes in the batch.
        let mut parts: heapless::Vec<(u64, u32, u32), MAX_EVENTS> = heapless::Vec::new();
        // Ring ranges to send; an event adjacent to the previous one extends its range, so a
        // subscriber behind by many events usually needs one or two.
        let mut ranges = [(0usize, 0usize); MAX_IOV];
        let mut n_ranges: usize = 0;
        let room = MAX_IOV - n_iov;
        let mut seq = cur.seq;
        let mut skip = cur.off as usize;
        while seq < log.next_seq() && !parts.is_full() {
            let Some((offset, len, targeted)) = log.span(seq) else { break };
            // Without a filter only targeted events are skipped; the full view (topic, client)
            // is read only for subscribers that filter.
            let visible = if cur.filtered { log.get(seq).is_some_and(|v| filters.admits(slot, &v)) } else { !targeted };
            if visible {
                let start = offset + skip;
                let end = offset + len;
                match n_ranges.checked_sub(1) {
                    Some(last) if ranges[last].1 == start => ranges[last].1 = end,
                    _ if n_ranges == room => break,
                    _ => {
                        ranges[n_ranges] = (start, end);
                        n_ranges += 1;
                    }
                }
                let _ = parts.push((seq, skip as u32, (end - start) as u32));
            }
            skip = 0;
            seq += 1;
        }
        for &(start, end) in &ranges[..n_ranges] {
            iov[n_iov] = IoSlice::new(log.bytes(start, end));
            n_iov += 1;
        }
        let scanned_to = seq;
        let total: usize = iov[..n_iov].iter().map(|s| s.len()).sum();
        if total == 0 {
            // Only events this subscriber may not see: step over them.
            if cur.off == 0 {
                cur.seq = scanned_to;
            }
            return Ok(done);
        }

        let n = match sink.sock.write_vectored(&iov[..n_iov]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *sink.blocked = true;
                return Ok(done);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(WriteError::Io),
        };
        done.bytes += n as u64;

        let mut left = n;
        let out_sent = left.min(out.len());
        left -= out_sent;
        if let Some(id) = sink.head {
            let state = pool.state(id);
            state.out_pos += out_sent as u32;
            done.head_done = !state.out_pending();
        }
        let hb_sent = left.min(cur.heartbeat_left as usize);
        left -= hb_sent;
        cur.heartbeat_left -= hb_sent as u8;
        if n == total {
            // Everything offered was taken (the usual case): no per-event accounting needed.
            cur.seq = scanned_to;
            cur.off = 0;
            done.events += parts.len() as u64;
            if scanned_to == log.next_seq() {
                return Ok(done);
            }
            continue;
        }
        for &(seq, off, len) in &parts {
            if left >= len as usize {
                left -= len as usize;
                cur.seq = seq + 1;
                cur.off = 0;
                done.events += 1;
            } else {
                cur.seq = seq;
                cur.off = off + left as u32;
                break;
            }
        }
        // The socket took less than offered: it is full. One more try confirms WouldBlock
        // (edge-triggered readiness needs it) unless the peer is draining fast.
    }
}
