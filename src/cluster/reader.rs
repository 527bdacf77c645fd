//! The reader side: the history reply (XREVRANGE) that finds where replay starts, then XREAD
//! after XREAD, each reply parsed in place into entries and claims for the sink.

use super::command::parse_holder;
use super::driver::{Reason, Side};
use super::resp::{self, Head, RawEntry, RespError, Skip, Value};
use super::{Claim, Entry, Fields, Link, MAX_REDIS_ID, Sink, WARN_EVERY_MS};
use log::{debug, warn};

/// A Redis entry id, or the exclusive start an XREAD reads after.
#[derive(Copy, Clone)]
pub(super) struct Id {
    bytes: [u8; MAX_REDIS_ID],
    len: u8,
}

impl Id {
    pub(super) const ZERO: Id = Id::from_parts(0, 0);

    pub(super) const fn from_parts(ms: u64, seq: u64) -> Id {
        let mut id = Id { bytes: [0; MAX_REDIS_ID], len: 0 };
        id = id.push_u64(ms);
        id.bytes[id.len as usize] = b'-';
        id.len += 1;
        id.push_u64(seq)
    }

    pub(super) const fn push_u64(mut self, n: u64) -> Id {
        let mut digits = [0u8; 20];
        let mut len = 0;
        let mut n = n;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while len > 0 {
            len -= 1;
            self.bytes[self.len as usize] = digits[len];
            self.len += 1;
        }
        self
    }

    pub(super) fn parse(id: &[u8]) -> Option<(u64, u64)> {
        let dash = id.iter().position(|&b| b == b'-')?;
        let num = |s: &[u8]| {
            if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(s).ok()?.parse::<u64>().ok()
        };
        Some((num(&id[..dash])?, num(&id[dash + 1..])?))
    }

    /// The id just before `id`, so that reading after it starts at `id` itself.
    pub(super) fn before(id: &[u8]) -> Option<Id> {
        let (ms, seq) = Id::parse(id)?;
        Some(match (ms, seq) {
            (0, 0) => Id::ZERO,
            (ms, 0) => Id::from_parts(ms - 1, u64::MAX),
            (ms, seq) => Id::from_parts(ms, seq - 1),
        })
    }

    pub(super) fn of(id: &[u8]) -> Option<Id> {
        Id::parse(id)?;
        let mut out = Id { bytes: [0; MAX_REDIS_ID], len: id.len() as u8 };
        out.bytes[..id.len()].copy_from_slice(id);
        Some(out)
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Where the reader is in the replies it awaits.
#[derive(Copy, Clone, Debug)]
pub(super) enum Reading {
    Idle,
    /// XREVRANGE: the array header, then per entry its id and its fields (skipped: only the
    /// ids matter, to find where the replay starts).
    HistTop,
    HistEntry {
        left: usize,
    },
    HistFields {
        left: usize,
        skip: Skip,
    },
    HistDone,
    /// XREAD: nil on timeout, else `[[key, [entry...]]]`.
    TailTop,
    TailStream,
    TailKey,
    TailCount,
    TailEntry {
        left: usize,
    },
    /// An entry larger than the whole input buffer, passed over after its id.
    TailSkip {
        left: usize,
        skip: Skip,
    },
    TailDone,
}

/// Hands one entry read to the sink: a claim, or an event.
pub(super) fn deliver(raw: &RawEntry<'_>, instance: u64, sink: &mut impl Sink) {
    let mut fields = Fields::default();
    let (mut claim, mut by) = (None, None);
    for (name, value) in raw.pairs() {
        match name {
            b"id" => fields.id = value,
            b"event" => fields.event = value,
            b"data" => fields.data = value,
            b"topic" => fields.topic = value,
            b"client" => fields.client = value,
            b"claim" => claim = Some(value),
            b"by" => by = Some(value),
            _ => {}
        }
    }
    match (claim, by.and_then(parse_holder)) {
        (Some(client), Some((inst, stream))) => {
            sink.claim(&Claim { redis_id: raw.id, client, instance: inst, stream, mine: inst == instance })
        }
        (Some(_), None) => debug!("claim entry {} without a valid holder", String::from_utf8_lossy(raw.id)),
        (None, _) => sink.entry(&Entry { redis_id: raw.id, fields }),
    }
}

impl Link {
    pub(super) fn send_history(&mut self) -> Result<(), Reason> {
        let mut count = [0u8; 20];
        let count = resp::format_u64(self.cfg.history.max(1) as u64, &mut count);
        let args: [&[u8]; 6] = [b"XREVRANGE", &self.keys.stream, b"+", b"-", b"COUNT", count];
        if !self.reader.outb.push_command(&args) {
            return Err(Reason::Overflow);
        }
        self.hist_seen = 0;
        self.reading = Reading::HistTop;
        Ok(())
    }

    pub(super) fn send_xread(&mut self) -> Result<(), Reason> {
        let mut count = [0u8; 20];
        let count = resp::format_u64(self.cfg.read_count.max(1) as u64, &mut count);
        let mut block = [0u8; 20];
        let block = resp::format_u64(self.cfg.block_ms, &mut block);
        let args: [&[u8]; 8] =
            [b"XREAD", b"COUNT", count, b"BLOCK", block, b"STREAMS", &self.keys.stream, self.cursor.as_bytes()];
        if !self.reader.outb.push_command(&args) {
            return Err(Reason::Overflow);
        }
        self.reader.deadline = self.now + self.cfg.block_ms + self.cfg.reply_timeout_ms;
        self.reading = Reading::TailTop;
        Ok(())
    }

    pub(super) fn process_stream(&mut self, sink: &mut impl Sink) -> Result<(), Reason> {
        loop {
            let inb = &self.reader.inb;
            let buf = &inb.data[inb.start..inb.end];
            let full = buf.len() == inb.data.len();
            let proto = Reason::Protocol;
            if self.reader_handshake > 0 {
                let Some((value, used)) = resp::value(buf).map_err(proto)? else { return Ok(()) };
                match value {
                    Value::Simple(_) => self.reader_handshake -= 1,
                    Value::Error(text) => {
                        self.error_text.set(text);
                        return Err(Reason::Refused);
                    }
                    _ => return Err(proto(RespError::Unexpected)),
                }
                self.reader.inb.consume(used);
                if self.reader_handshake == 0 {
                    self.up(Side::Reader);
                }
                continue;
            }
            let (used, next) = match self.reading {
                Reading::Idle | Reading::HistDone | Reading::TailDone => return Ok(()),
                Reading::HistTop | Reading::TailTop | Reading::TailStream | Reading::TailCount => {
                    let Some((head, used)) = resp::head(buf).map_err(proto)? else { return Ok(()) };
                    let next = match (self.reading, head) {
                        (_, Head::Error(text)) => {
                            self.error_text.set(text);
                            return Err(Reason::Refused);
                        }
                        (Reading::HistTop, Head::Array(0)) => Reading::HistDone,
                        (Reading::HistTop, Head::Array(n)) => Reading::HistEntry { left: n },
                        (Reading::TailTop, Head::Nil) => Reading::TailDone,
                        (Reading::TailTop, Head::Array(1)) => Reading::TailStream,
                        (Reading::TailStream, Head::Array(2)) => Reading::TailKey,
                        (Reading::TailCount, Head::Array(0)) => Reading::TailDone,
                        (Reading::TailCount, Head::Array(n)) => Reading::TailEntry { left: n },
                        _ => return Err(proto(RespError::Unexpected)),
                    };
                    (used, next)
                }
                Reading::TailKey => match resp::value(buf).map_err(proto)? {
                    None => return Ok(()),
                    Some((Value::Bulk(_), used)) => (used, Reading::TailCount),
                    Some(_) => return Err(proto(RespError::Unexpected)),
                },
                Reading::HistEntry { left } => {
                    let Some((id, used)) = resp::entry_id(buf).map_err(proto)? else { return Ok(()) };
                    let id = Id::of(id).ok_or(proto(RespError::Unexpected))?;
                    if self.hist_seen == 0 {
                        self.hist_newest = id;
                    }
                    self.hist_oldest = id;
                    self.hist_seen += 1;
                    (used, Reading::HistFields { left, skip: Skip::one() })
                }
                Reading::HistFields { left, mut skip } | Reading::TailSkip { left, mut skip } => {
                    let (used, over) = skip.feed(buf).map_err(proto)?;
                    let hist = matches!(self.reading, Reading::HistFields { .. });
                    let next = match (over, hist, left) {
                        (false, true, _) => Reading::HistFields { left, skip },
                        (false, false, _) => Reading::TailSkip { left, skip },
                        (true, true, 1) => Reading::HistDone,
                        (true, true, _) => Reading::HistEntry { left: left - 1 },
                        (true, false, 1) => Reading::TailDone,
                        (true, false, _) => Reading::TailEntry { left: left - 1 },
                    };
                    if !over {
                        self.reader.inb.consume(used);
                        self.reading = next;
                        return Ok(());
                    }
                    (used, next)
                }
                Reading::TailEntry { left } => {
                    let next = if left == 1 { Reading::TailDone } else { Reading::TailEntry { left: left - 1 } };
                    match resp::entry(buf).map_err(proto)? {
                        Some((raw, used)) => {
                            self.cursor = Id::of(raw.id).ok_or(proto(RespError::Unexpected))?;
                            self.stats.read += 1;
                            self.stats.last_id_ms = Id::parse(raw.id).map_or(0, |(ms, _)| ms);
                            deliver(&raw, self.cfg.instance, sink);
                            (used, next)
                        }
                        None if full => {
                            // Larger than the whole buffer (written by something other than
                            // tinysse): pass over it, and never read it again.
                            let Some((id, used)) = resp::entry_id(buf).map_err(proto)? else {
                                return Err(Reason::Overflow);
                            };
                            self.cursor = Id::of(id).ok_or(proto(RespError::Unexpected))?;
                            self.stats.skipped += 1;
                            if self.now >= self.warn_at {
                                self.warn_at = self.now + WARN_EVERY_MS;
                                warn!(
                                    "redis stream entry {} is larger than the read buffer; skipped",
                                    String::from_utf8_lossy(id)
                                );
                            }
                            (used, Reading::TailSkip { left, skip: Skip::one() })
                        }
                        None => return Ok(()),
                    }
                }
            };
            self.reader.inb.consume(used);
            self.reading = next;
            match next {
                Reading::HistDone => {
                    self.cursor = self.replay_start();
                    self.have_cursor = true;
                    self.send_xread()?;
                }
                Reading::TailDone => self.send_xread()?,
                _ => {}
            }
        }
    }

    /// Where reading starts after the history reply: just before the oldest of the last
    /// `history` entries, so that they are read (and delivered) first; with no history, after
    /// the newest; with fewer entries than asked, from the beginning.
    pub(super) fn replay_start(&self) -> Id {
        if self.hist_seen == 0 {
            Id::ZERO
        } else if self.cfg.history == 0 {
            self.hist_newest
        } else if self.hist_seen < self.cfg.history {
            Id::ZERO
        } else {
            Id::before(self.hist_oldest.as_bytes()).unwrap_or(Id::ZERO)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_step_back_by_one() {
        let before = |id: &[u8]| Id::before(id).map(|i| String::from_utf8(i.as_bytes().to_vec()).unwrap());
        assert_eq!(before(b"1700000000000-5").as_deref(), Some("1700000000000-4"));
        assert_eq!(before(b"1700000000000-0").as_deref(), Some("1699999999999-18446744073709551615"));
        assert_eq!(before(b"0-0").as_deref(), Some("0-0"));
        assert_eq!(before(b"12"), None);
        assert_eq!(before(b"-1"), None);
        assert_eq!(Id::from_parts(u64::MAX, u64::MAX).as_bytes().len(), MAX_REDIS_ID);
    }
}
