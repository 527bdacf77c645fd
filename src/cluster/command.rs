//! The command side: XADD and the targeted-publish and claim scripts, presence bookkeeping,
//! and the replies matched in order to what is pending, each outcome told to the sink.

use super::conn::{Conn, State};
use super::driver::{Reason, Side};
use super::resp::{self, RespError, Value};
use super::{Ack, Fields, Link, PublishError, Sink, WARN_EVERY_MS};
use crate::limits::MAX_ID;
use log::{debug, warn};

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum Kind {
    /// AUTH, SELECT, PING: an error closes the connection.
    #[default]
    Handshake,
    /// XADD: the caller hears of it.
    Publish,
    /// The targeted-publish script: nil means no instance holds the client.
    Targeted,
    /// The claim script: the caller hears of it.
    Claim,
    /// PEXPIRE of this instance's presence set: 0 means Redis lost it.
    Refresh,
    /// Presence bookkeeping nobody waits for.
    Chore,
}

impl Kind {
    /// Whether the caller awaits its outcome.
    pub(super) fn is_publish(self) -> bool {
        matches!(self, Kind::Publish | Kind::Targeted | Kind::Claim)
    }
}

#[derive(Copy, Clone, Default)]
pub(super) struct Pending {
    pub(super) kind: Kind,
    pub(super) token: u64,
    pub(super) sent_at: u64,
    pub(super) id_len: u8,
}

/// Commands awaiting their reply on the command connection, oldest first; each keeps the
/// publisher's id so the acknowledgement can carry the id subscribers will see.
pub(super) struct Ring {
    items: Vec<Pending>,
    ids: Vec<u8>,
    head: usize,
    pub(super) len: usize,
    /// Of them, publishes and claims (the ones `max_pending` bounds).
    pub(super) publishes: usize,
}

impl Ring {
    pub(super) fn new(cap: usize) -> Ring {
        Ring { items: vec![Pending::default(); cap], ids: vec![0; cap * MAX_ID], head: 0, len: 0, publishes: 0 }
    }

    pub(super) fn is_full(&self) -> bool {
        self.len == self.items.len()
    }

    pub(super) fn push(&mut self, p: Pending, id: &[u8]) {
        let slot = (self.head + self.len) % self.items.len();
        self.items[slot] = Pending { id_len: id.len() as u8, ..p };
        self.ids[slot * MAX_ID..slot * MAX_ID + id.len()].copy_from_slice(id);
        self.len += 1;
        self.publishes += usize::from(p.kind.is_publish());
    }

    pub(super) fn front(&self) -> Option<(Pending, &[u8])> {
        if self.len == 0 {
            return None;
        }
        let p = self.items[self.head];
        Some((p, &self.ids[self.head * MAX_ID..self.head * MAX_ID + p.id_len as usize]))
    }

    pub(super) fn pop(&mut self) -> Option<Pending> {
        if self.len == 0 {
            return None;
        }
        let p = self.items[self.head];
        self.head = (self.head + 1) % self.items.len();
        self.len -= 1;
        self.publishes -= usize::from(p.kind.is_publish());
        Some(p)
    }
}

/// The keys the link uses, built once.
pub(super) struct Keys {
    pub(super) stream: Vec<u8>,
    /// Set of the instance ids that have a presence set.
    pub(super) instances: Vec<u8>,
    /// `<stream>:clients:`, then an instance id: that instance's presence set.
    pub(super) clients_prefix: Vec<u8>,
    pub(super) mine: Vec<u8>,
    pub(super) instance_hex: [u8; 16],
}

/// Publishes an event targeted at a client only when some live instance's presence set holds
/// the client (pruning dead instances on the way); else returns nil and stores nothing.
/// KEYS: stream, instances. ARGV: presence-set prefix, client, maxlen, field pairs...
pub(super) const TARGETED: &[u8] = b"for _, i in ipairs(redis.call('smembers', KEYS[2])) do \
local k = ARGV[1] .. i \
if redis.call('sismember', k, ARGV[2]) == 1 then \
return redis.call('xadd', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4)) end \
if redis.call('exists', k) == 0 then redis.call('srem', KEYS[2], i) end end \
return false";

/// Adds a client to this instance's presence set (registering the instance, renewing the set's
/// expiry) and, with ARGV[4] and ARGV[5], appends the claim entry.
/// KEYS: stream, instances, this instance's set. ARGV: instance, client, ttl, [maxlen, holder].
pub(super) const CLAIM: &[u8] = b"redis.call('sadd', KEYS[2], ARGV[1]) \
redis.call('sadd', KEYS[3], ARGV[2]) \
redis.call('pexpire', KEYS[3], ARGV[3]) \
if ARGV[5] then \
return redis.call('xadd', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'claim', ARGV[2], 'by', ARGV[5]) end \
return 1";

/// A command's arguments, gathered on the stack.
pub(super) struct Args<'a> {
    items: [&'a [u8]; 20],
    pub(super) len: usize,
}

impl<'a> Args<'a> {
    pub(super) fn push(&mut self, arg: &'a [u8]) {
        self.items[self.len] = arg;
        self.len += 1;
    }
}

/// Queues a command on the command connection, awaiting its reply in order.
#[allow(clippy::too_many_arguments)]
pub(super) fn queue(
    cmd: &mut Conn,
    pending: &mut Ring,
    max_pending: usize,
    now: u64,
    kind: Kind,
    token: u64,
    id: &[u8],
    args: &[&[u8]],
) -> Result<(), PublishError> {
    if cmd.state != State::Ready {
        return Err(PublishError::Down);
    }
    let len = resp::command_len(args);
    if len > cmd.outb.data.len() {
        return Err(PublishError::TooLarge);
    }
    // Publishes and claims stop at `max_pending`; the ring's slack is for handshakes and chores.
    let over = kind.is_publish() && pending.publishes >= max_pending;
    if over || pending.is_full() || !cmd.outb.fits(len) || !cmd.outb.push_command(args) {
        return Err(PublishError::Full);
    }
    pending.push(Pending { kind, token, sent_at: now, id_len: 0 }, id);
    Ok(())
}

/// `<instance as 16 hex digits>.<stream number>`.
pub(super) fn parse_holder(holder: &[u8]) -> Option<(u64, u64)> {
    let (hex, stream) = (holder.get(..16)?, holder.get(17..)?);
    if holder[16] != b'.' || stream.is_empty() || !stream.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let instance = u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    Some((instance, std::str::from_utf8(stream).ok()?.parse().ok()?))
}

impl Link {
    /// Queues an event for XADD (a targeted one through the presence check). The outcome comes
    /// to the sink with `token`, once Redis answered; written at the next `tick`.
    pub fn publish(&mut self, fields: &Fields, token: u64) -> Result<(), PublishError> {
        let r = self.queue_publish(fields, token);
        if r.is_err() {
            self.stats.publish_failures += 1;
        }
        r
    }

    pub(super) fn queue_publish(&mut self, f: &Fields, token: u64) -> Result<(), PublishError> {
        if f.id.len() > MAX_ID {
            return Err(PublishError::TooLarge);
        }
        let mut digits = [0u8; 20];
        let maxlen = resp::format_u64(self.cfg.maxlen, &mut digits);
        let mut args = Args { items: [b""; 20], len: 0 };
        let mut put = |a| args.push(a);
        let kind = if f.client.is_empty() {
            for a in [&b"XADD"[..], &self.keys.stream[..], b"MAXLEN", b"~", maxlen, b"*"] {
                put(a);
            }
            Kind::Publish
        } else {
            for a in [&b"EVAL"[..], TARGETED, b"2", &self.keys.stream[..], &self.keys.instances[..]] {
                put(a);
            }
            for a in [&self.keys.clients_prefix[..], f.client, maxlen] {
                put(a);
            }
            Kind::Targeted
        };
        for (name, value) in [(&b"id"[..], f.id), (b"event", f.event), (b"data", f.data), (b"topic", f.topic)] {
            // Data always: an entry needs a field; the others only when given.
            if !value.is_empty() || name == b"data" {
                put(name);
                put(value);
            }
        }
        if !f.client.is_empty() {
            put(b"client");
            put(f.client);
        }
        queue(
            &mut self.cmd,
            &mut self.pending,
            self.cfg.max_pending,
            self.now,
            kind,
            token,
            f.id,
            &args.items[..args.len],
        )
    }

    /// Marks stream `stream` (the caller's number for it, unique in this run) as holding client
    /// id `client`: adds it to this instance's presence set and appends a claim entry. The claim
    /// is acknowledged (or failed) to the sink with `token`, like a publish.
    ///
    /// Every instance reads claims in stream order. A stream whose own claim has been read back
    /// is closed by any later claim of its client id; one whose claim has not been read back yet
    /// is left alone (every claim read before its own is older).
    pub fn claim(&mut self, client: &[u8], stream: u64, token: u64) -> Result<(), PublishError> {
        let mut holder = [0u8; 40];
        let holder = self.holder(stream, &mut holder);
        let mut ttl = [0u8; 20];
        let ttl = resp::format_u64(self.cfg.presence_ttl_ms, &mut ttl);
        let mut maxlen = [0u8; 20];
        let maxlen = resp::format_u64(self.cfg.maxlen, &mut maxlen);
        let k = &self.keys;
        let args: [&[u8]; 11] =
            [b"EVAL", CLAIM, b"3", &k.stream, &k.instances, &k.mine, &k.instance_hex, client, ttl, maxlen, holder];
        queue(&mut self.cmd, &mut self.pending, self.cfg.max_pending, self.now, Kind::Claim, token, b"", &args)
    }

    /// Adds a client this instance already holds to its presence set again, without a claim
    /// entry: after `take_resync` said Redis lost the set.
    pub fn readd(&mut self, client: &[u8]) -> Result<(), PublishError> {
        let mut ttl = [0u8; 20];
        let ttl = resp::format_u64(self.cfg.presence_ttl_ms, &mut ttl);
        let k = &self.keys;
        let args: [&[u8]; 9] = [b"EVAL", CLAIM, b"3", &k.stream, &k.instances, &k.mine, &k.instance_hex, client, ttl];
        queue(&mut self.cmd, &mut self.pending, self.cfg.max_pending, self.now, Kind::Chore, 0, b"", &args)
    }

    /// Removes a client from this instance's presence set (its stream ended, and no newer stream
    /// here holds the id).
    pub fn release(&mut self, client: &[u8]) -> Result<(), PublishError> {
        let args: [&[u8]; 3] = [b"SREM", &self.keys.mine, client];
        queue(&mut self.cmd, &mut self.pending, self.cfg.max_pending, self.now, Kind::Chore, 0, b"", &args)
    }

    pub(super) fn holder<'b>(&self, stream: u64, out: &'b mut [u8; 40]) -> &'b [u8] {
        out[..16].copy_from_slice(&self.keys.instance_hex);
        out[16] = b'.';
        let mut digits = [0u8; 20];
        let d = resp::format_u64(stream, &mut digits);
        out[17..17 + d.len()].copy_from_slice(d);
        &out[..17 + d.len()]
    }

    pub(super) fn refresh(&mut self, now: u64) {
        let mut ttl = [0u8; 20];
        let ttl = resp::format_u64(self.cfg.presence_ttl_ms, &mut ttl);
        let args: [&[u8]; 3] = [b"PEXPIRE", &self.keys.mine, ttl];
        // Full: try again at the next tick.
        if queue(&mut self.cmd, &mut self.pending, self.cfg.max_pending, now, Kind::Refresh, 0, b"", &args).is_ok() {
            self.refresh_at = now + (self.cfg.presence_ttl_ms / 3).max(1);
        }
    }

    pub(super) fn process_replies(&mut self, sink: &mut impl Sink) -> Result<(), Reason> {
        loop {
            let buf = &self.cmd.inb.data[self.cmd.inb.start..self.cmd.inb.end];
            let Some((value, used)) = resp::value(buf).map_err(Reason::Protocol)? else { return Ok(()) };
            let Some((p, id)) = self.pending.front() else { return Err(Reason::Protocol(RespError::Unexpected)) };
            let mut up = false;
            match (p.kind, value) {
                (Kind::Handshake, Value::Simple(_)) => {
                    self.cmd_handshake -= 1;
                    up = self.cmd_handshake == 0;
                }
                (Kind::Handshake, Value::Error(text)) => {
                    self.error_text.set(text);
                    return Err(Reason::Refused);
                }
                (Kind::Publish | Kind::Targeted | Kind::Claim, Value::Bulk(redis_id)) => {
                    let event_id = if id.is_empty() { redis_id } else { id };
                    self.stats.acked += 1;
                    sink.acked(p.token, &Ack { redis_id, event_id });
                }
                (Kind::Targeted, Value::Nil) => {
                    self.stats.publish_failures += 1;
                    sink.failed(p.token, PublishError::ClientNotConnected);
                }
                (Kind::Publish | Kind::Targeted | Kind::Claim, Value::Error(text)) => {
                    self.error_text.set(text);
                    self.stats.publish_failures += 1;
                    if self.now >= self.warn_at {
                        self.warn_at = self.now + WARN_EVERY_MS;
                        warn!("redis refused a publish: {}", self.error_text.as_str());
                    }
                    sink.failed(p.token, PublishError::Refused);
                }
                (Kind::Refresh, Value::Int(0)) => self.resync = true,
                (Kind::Refresh | Kind::Chore, Value::Error(text)) => {
                    self.error_text.set(text);
                    debug!("redis refused a presence update: {}", self.error_text.as_str());
                }
                (Kind::Refresh | Kind::Chore, Value::Int(_) | Value::Simple(_) | Value::Bulk(_)) => {}
                _ => return Err(Reason::Protocol(RespError::Unexpected)),
            }
            self.pending.pop();
            self.cmd.inb.consume(used);
            if up {
                self.up(Side::Command);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LinkConfig, RedisUrl};
    use super::*;
    use mio::Token;

    #[test]
    fn holders_round_trip() {
        let link = Link::new(LinkConfig::new(RedisUrl::parse("redis://h").unwrap(), 0xabc), Token(1), Token(2));
        let mut buf = [0u8; 40];
        let h = link.holder(42, &mut buf);
        assert_eq!(h, b"0000000000000abc.42");
        assert_eq!(parse_holder(h), Some((0xabc, 42)));
        assert_eq!(parse_holder(b"0000000000000abc-42"), None);
        assert_eq!(parse_holder(b"0000000000000abc."), None);
    }
    #[test]
    fn publishing_while_down_fails_fast() {
        let mut link = Link::new(LinkConfig::new(RedisUrl::parse("redis://h").unwrap(), 1), Token(1), Token(2));
        assert_eq!(link.publish(&Fields { data: b"x", ..Default::default() }, 1), Err(PublishError::Down));
        assert_eq!(link.stats().publish_failures, 1);
        assert_eq!(link.deadline(), 0, "a new link connects at once");
    }
}
