//! The history journal behind `--history-file`: every event that enters history is appended to
//! checksummed segment files, so that a restart after SIGTERM, kill -9 or power loss rebuilds the
//! history exactly and a reconnecting subscriber's Last-Event-ID still finds its place.
//!
//! # Files
//!
//! - `PATH`: the active segment. It always holds the newest records, so whoever truncates "the
//!   file" cuts the newest events.
//! - `PATH.<20 digits>`: rotated segments, never written again once renamed. The number is the
//!   sequence number of their first record (or one more than the previous segment's number, should
//!   sequence numbers ever go backwards), so name order is age order.
//! - `PATH.lock`: held with `flock(LOCK_EX | LOCK_NB)` while a journal is open, so a second server
//!   on the same journal is refused ([`OpenErrorKind::Locked`]). PATH itself cannot carry the lock:
//!   rotation renames it. The lock file stays (removing it would race with a starting server).
//! - `PATH.new`: the next active segment, for the moment of a rotation; never holds records, and a
//!   stale one is removed at open.
//!
//! Files are created with mode 0600 (less the umask). `PATH.new` and `PATH.lock` are reserved.
//!
//! # Format
//!
//! A segment starts with a 20-byte header, `tinysse journal\n` and the format version (u32, now
//! 1). Records follow back to back; integers are little endian:
//!
//! ```text
//! u32 len        bytes after the crc field (17 + the five field lengths)
//! u32 crc        CRC-32C of the len field and of the len bytes after crc
//! u8  kind       1: an event
//! u64 seq        its sequence number in the event log
//! u8  id_len, u8 event_len, u8 topic_len, u8 client_len
//! u32 data_len
//! id, event, topic, client, data
//! ```
//!
//! The id is the one sent on the wire; empty topic and client mean "every topic" and "everyone".
//! A record is valid when its lengths add up, each is within its limit (id and event 128, topic
//! and client 64, data 1 MiB) and the checksum matches: 25 bytes of overhead per event. CRC-32C is
//! written out below (a table built at compile time) rather than taken from a crate: twenty lines
//! and no dependency. Opening a full 8 MiB journal (both passes, from the page cache) took 38 ms on
//! the x86 development machine; expect several times that on a small ARM board.
//!
//! # Loading ([`Journal::open`])
//!
//! The rotated segments are read in name order, then PATH, and the newest unbroken run of records
//! (each one's seq is the previous one's plus one) is handed to the caller, oldest first. The files
//! are read twice: once to check every record and find that run, once to replay it, so `each` never
//! sees a record that a later defect or break would have discarded.
//!
//! - A defect in PATH (a record that runs past the end of the file, a bad length or checksum):
//!   everything from the defect on is cut (PATH is truncated at the end of the last valid record)
//!   and logged as a warning with the path, the byte offset and the bytes cut. A torn write from a
//!   power loss is this case; so is a bit flip in the middle, where the valid records before it
//!   are kept and those after it are lost (a length-prefixed file cannot be resynchronised safely).
//!   Cut bytes are never replayed.
//! - A defect in a rotated segment: the file is not modified (segments are never rewritten); its
//!   records before the defect are valid, those after it are not loaded, which breaks the sequence
//!   unless nothing was lost. Warned with path and offset.
//! - A sequence break (records lost to a defect, a batch dropped on a write error, a journal
//!   written by runs whose sequence numbers did not continue): only the records after the last
//!   break are replayed, so the rebuilt history never has a hole in it; a subscriber whose
//!   Last-Event-ID falls in or before the hole gets the event log's `gap` event rather than a
//!   silently incomplete replay. Rotated segments wholly before the break are deleted (warned).
//! - A file at PATH or with a segment's name that does not start with the header (and is not a
//!   prefix of it): not a journal. Nothing is modified; open fails with
//!   [`OpenErrorKind::NotAJournal`] naming the file, and the binary prints that line and exits 2.
//!   A header of another format version: [`OpenErrorKind::Version`], likewise. Refusing is
//!   deliberate: a mistyped `--history-file` must never truncate or delete someone else's file.
//! - A PATH shorter than the header and equal to its beginning (power lost right after creating
//!   it), or empty, or missing: an empty journal; the header is (re)written.
//!
//! # Budget and rotation
//!
//! Nothing is rewritten in place (SD cards). When PATH reaches a segment's size, an eighth of the
//! byte budget (at least 8 KiB), it is renamed to `PATH.<first seq>` and a new PATH started; then
//! the oldest rotated segments are deleted whole while they add up to more than the budget less
//! one segment, except the newest one. So the files take at most the budget plus one batch buffer
//! when the budget is at least 64 KiB and four times the largest event (otherwise at most two
//! segments), and right after a rotation about three quarters of the budget still holds history.
//!
//! # Writes and fsync
//!
//! [`Journal::append`] copies a record into a preallocated batch buffer: no allocation, no system
//! call. [`Journal::commit`], called once per loop turn, writes the batch with one `pwrite(2)` and
//! syncs according to [`Fsync`]. Should a turn's records overflow the batch buffer, `append` writes
//! the full batch early (one more `pwrite`); the buffer holds at least one largest record and 64 KiB
//! (less for small budgets). Rotation adds a few calls once per segment. After a rotation, the
//! directory is synced too (unless `never`).
//!
//! What a power loss can take, beyond the records of the loop turn in progress (a torn tail is cut
//! at the next start, never replayed):
//! - [`Fsync::Always`]: nothing that a completed `commit` wrote (fdatasync after every commit that
//!   wrote). Costs one fdatasync per busy loop turn, which wears an SD card.
//! - [`Fsync::Every`] (`--fsync SECS`, default 1 s): up to that long of events: the first write
//!   after a sync sets a deadline ([`Journal::deadline`]), and the commit at or after it syncs.
//! - [`Fsync::Never`]: whatever the kernel had not written back yet (on Linux typically up to
//!   30 s).
//!
//! SIGTERM and kill -9 lose nothing that a commit wrote, whatever the policy (the kernel holds it);
//! kill -9 takes only a batch appended but not yet committed in the turn it lands in.
//!
//! # Errors
//!
//! A write or sync error (disk full, EIO) is returned, never a panic: the batch is kept and written
//! again at the same offset by a later commit (at most once per second), so a transient error
//! loses nothing. While it keeps failing and the batch is full, further records are dropped
//! ([`AppendError`]); the journal then has a sequence break, and a later start replays only what
//! came after it. Time is passed in (`now_ms`, milliseconds on any monotonic clock): nothing
//! here reads a clock.

mod error;
mod format;
mod load;
mod rotate;
mod scan;
#[cfg(test)]
mod tests;

use error::Errno;
pub(crate) use error::{AppendError, OpenError, OpenErrorKind, WriteError};
pub(crate) use format::Record;
use format::*;

pub(crate) use crate::config::Fsync;

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Smallest byte budget `open` accepts.
pub const MIN_BUDGET: u64 = 16 << 10;
const MIN_SEGMENT: u64 = 8 << 10;
const BATCH_BYTES: u64 = 64 << 10;
/// After a failed write, sync or rotation, the next attempt waits this long.
const RETRY_MS: u64 = 1000;
/// Stands in for errors that carry no errno (a short read of a file that shrank under us).
const EIO: i32 = 5;

/// How to open a journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The active segment; rotated ones, the lock and the next segment sit beside it.
    pub path: PathBuf,
    /// Bytes all segments may take together (see the module doc for the exact bound).
    pub budget_bytes: u64,
    pub fsync: Fsync,
    /// Largest data `append` must take (`--max-event-bytes`); sizes the batch buffer. Loading
    /// takes records up to `MAX_DATA` whatever this is, so lowering it keeps older records.
    pub max_data: usize,
}

/// What `open` found and did, for the caller's log line; the warnings are already logged.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Records handed to `each`.
    pub records: u64,
    pub first_seq: Option<u64>,
    /// The next record appended should have this plus one.
    pub last_seq: Option<u64>,
    /// Bytes cut from the end of PATH: a torn or corrupt tail, or a torn header.
    pub cut_bytes: u64,
    /// Valid records not replayed: before a sequence break, or in segments deleted over budget.
    pub skipped: u64,
    /// Rotated segments deleted: before a sequence break, or over budget.
    pub removed_segments: u64,
}

/// An open journal: the locked files, the active segment and the batch buffer.
pub struct Journal {
    path: PathBuf,
    new_path: PathBuf,
    file: File,
    dir: File,
    _lock: File,
    fsync: Fsync,
    batch: Box<[u8]>,
    batch_len: usize,
    max_data: usize,
    /// Bytes of PATH written: header and records. Writes go at this offset.
    len: u64,
    /// Sequence number of the first record in PATH (written or batched).
    active_first: Option<u64>,
    /// Rotated segments, oldest first: the number in the name and the size.
    segments: VecDeque<(u64, u64)>,
    rotated_bytes: u64,
    budget: u64,
    segment_bytes: u64,
    /// Written since the last fdatasync.
    unsynced: bool,
    /// When the next fdatasync is due; `u64::MAX`: none.
    sync_due: u64,
    /// The last write failed; `retry_at` is when `commit` tries again.
    failing: bool,
    retry_at: u64,
    rotate_failing: bool,
    rotate_retry_at: u64,
    /// Scratch for a segment's path, so rotating allocates nothing.
    name: Vec<u8>,
    syncs: u64,
}

impl Journal {
    /// Copies the record into the batch: no allocation, and no system call unless the batch is
    /// full, when it is written first (see the module doc). The caller appends records in
    /// sequence order, each one's seq the previous one's plus one; a jump is a sequence break.
    pub fn append(&mut self, r: &Record<'_>) -> Result<(), AppendError> {
        if !r.fields_fit() {
            return Err(AppendError::FieldTooLong);
        }
        if r.data.len() > self.max_data {
            return Err(AppendError::TooLarge);
        }
        let needed = r.encoded_len();
        if self.batch_len + needed > self.batch.len() {
            // While writes fail, only `commit` retries them, at its pace.
            if self.failing {
                return Err(AppendError::Dropped);
            }
            if let Err(e) = self.write_batch() {
                self.failing = true;
                self.retry_at = 0;
                return Err(AppendError::Write(e));
            }
            if self.len >= self.segment_bytes && !self.rotate_failing {
                // The turn may hold many batches: keep segments near their size.
                if let Err(e) = self.rotate() {
                    self.rotate_failing = true;
                    self.rotate_retry_at = 0;
                    log::warn!("history file {}: {e}", self.path.display());
                }
            }
        }
        self.batch_len += r.encode(&mut self.batch[self.batch_len..]);
        if self.active_first.is_none() {
            self.active_first = Some(r.seq);
        }
        Ok(())
    }

    /// Writes the batch with one `pwrite` (if anything is batched), runs a due fdatasync, and
    /// rotates and deletes segments as needed. Call it at the end of every loop turn, and also
    /// before writing a publish response: a turn can answer several publishes, and an answered
    /// event must be in the file for kill -9 to lose nothing (it costs nothing when the batch is
    /// empty).
    pub fn commit(&mut self, now_ms: u64) -> Result<(), WriteError> {
        if self.batch_len > 0 && !(self.failing && now_ms < self.retry_at) {
            if let Err(e) = self.write_batch() {
                self.failing = true;
                self.retry_at = now_ms.saturating_add(RETRY_MS);
                return Err(e);
            }
            self.failing = false;
        }
        if self.unsynced && self.sync_due == u64::MAX {
            match self.fsync {
                Fsync::Always => self.sync_due = now_ms,
                Fsync::Every { ms } => self.sync_due = now_ms.saturating_add(ms),
                Fsync::Never => self.unsynced = false,
            }
        }
        if now_ms >= self.sync_due
            && let Err(e) = self.sync()
        {
            self.sync_due = now_ms.saturating_add(RETRY_MS);
            return Err(e);
        }
        if self.batch_len == 0
            && self.len >= self.segment_bytes
            && !(self.rotate_failing && now_ms < self.rotate_retry_at)
        {
            match self.rotate() {
                Ok(()) => self.rotate_failing = false,
                Err(e @ WriteError::Remove(_)) => return Err(e),
                Err(e) => {
                    self.rotate_failing = true;
                    self.rotate_retry_at = now_ms.saturating_add(RETRY_MS);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Records are batched and not yet written.
    pub fn has_batch(&self) -> bool {
        self.batch_len > 0
    }

    /// The last write failed (disk full, EIO); it is retried at most once a second.
    pub fn is_failing(&self) -> bool {
        self.failing
    }

    /// When the loop must call `commit` again even if nothing else happens: a due fdatasync or a
    /// retry after a failure. `u64::MAX` when nothing is due.
    pub fn deadline(&self) -> u64 {
        let mut due = self.sync_due;
        if self.failing && self.batch_len > 0 {
            due = due.min(self.retry_at);
        }
        if self.rotate_failing && self.batch_len == 0 && self.len >= self.segment_bytes {
            due = due.min(self.rotate_retry_at);
        }
        due
    }

    /// Writes what is batched and, unless the policy is `never`, syncs it: for a clean shutdown.
    /// Dropping the journal does the same, logging a failure.
    pub fn shutdown(&mut self) -> Result<(), WriteError> {
        if self.batch_len > 0 {
            self.write_batch()?;
        }
        if self.unsynced && self.fsync != Fsync::Never {
            self.sync()?;
        }
        Ok(())
    }

    /// The active segment (PATH).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written to all segments.
    #[cfg(test)]
    pub fn on_disk_bytes(&self) -> u64 {
        self.rotated_bytes + self.len
    }

    /// The batch, written at the end of PATH as written so far. On failure the batch is kept and
    /// written again at the same offset, so a partial write is overwritten with the same bytes.
    fn write_batch(&mut self) -> Result<(), WriteError> {
        let mut done = 0;
        while done < self.batch_len {
            match self.file.write_at(&self.batch[done..self.batch_len], self.len + done as u64) {
                Ok(0) => return Err(WriteError::Write(Errno(EIO))),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(WriteError::Write(Errno::of(&e))),
            }
        }
        self.len += done as u64;
        self.batch_len = 0;
        self.unsynced = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), WriteError> {
        self.file.sync_data().map_err(|e| WriteError::Sync(Errno::of(&e)))?;
        self.unsynced = false;
        self.sync_due = u64::MAX;
        self.syncs += 1;
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::warn!("history file {}: {e}", self.path.display());
        }
    }
}

/// Size at which PATH is rotated: an eighth of the budget, at least `MIN_SEGMENT`.
fn segment_bytes(budget: u64) -> u64 {
    (budget / 8).max(MIN_SEGMENT).min(budget)
}

/// The batch holds one largest record, and up to 64 KiB (half a segment for small budgets).
fn batch_bytes(segment_bytes: u64, max_data: usize) -> usize {
    let largest = PREFIX + FIXED + MAX_ID + MAX_EVENT + MAX_TOPIC + MAX_CLIENT + max_data;
    largest.max(BATCH_BYTES.min(segment_bytes / 2) as usize)
}
