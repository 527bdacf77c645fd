//! The journal's bytes: the segment header, the record layout and its CRC-32C.

/// Longest event id, in bytes.
pub const MAX_ID: usize = 128;
/// Longest event name, in bytes.
pub const MAX_EVENT: usize = 128;
/// Longest topic, in bytes.
pub const MAX_TOPIC: usize = 64;
/// Longest target client id, in bytes.
pub const MAX_CLIENT: usize = 64;
/// Largest data a record can hold (the largest `--max-event-bytes`).
pub const MAX_DATA: usize = 1 << 20;

pub(super) const MAGIC: &[u8; 16] = b"tinysse journal\n";
pub(super) const VERSION: u32 = 1;
pub(super) const HEADER_LEN: usize = 20;
pub(super) const HEADER: [u8; HEADER_LEN] = {
    let mut h = [0u8; HEADER_LEN];
    let mut i = 0;
    while i < MAGIC.len() {
        h[i] = MAGIC[i];
        i += 1;
    }
    let v = VERSION.to_le_bytes();
    h[16] = v[0];
    h[17] = v[1];
    h[18] = v[2];
    h[19] = v[3];
    h
};
/// The length and checksum fields before each record's body.
pub(super) const PREFIX: usize = 8;
/// Kind, seq, four field lengths and the data length.
pub(super) const FIXED: usize = 17;
pub(super) const KIND_EVENT: u8 = 1;
pub(super) const MAX_BODY: usize = FIXED + MAX_ID + MAX_EVENT + MAX_TOPIC + MAX_CLIENT + MAX_DATA;

/// One event as the journal stores it: all the event log needs to rebuild it exactly.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Record<'a> {
    pub seq: u64,
    /// The id as sent on the wire.
    pub id: &'a [u8],
    /// Empty: no `event:` line.
    pub event: &'a [u8],
    /// Empty: for every topic.
    pub topic: &'a [u8],
    /// Empty: for everyone; else the only client that may see it.
    pub client: &'a [u8],
    pub data: &'a [u8],
}

impl Record<'_> {
    /// Bytes the record takes in a segment.
    pub fn encoded_len(&self) -> usize {
        PREFIX + FIXED + self.id.len() + self.event.len() + self.topic.len() + self.client.len() + self.data.len()
    }

    pub(super) fn fields_fit(&self) -> bool {
        self.id.len() <= MAX_ID
            && self.event.len() <= MAX_EVENT
            && self.topic.len() <= MAX_TOPIC
            && self.client.len() <= MAX_CLIENT
    }

    /// Writes the record into the front of `out`, which holds at least `encoded_len()` bytes.
    pub(super) fn encode(&self, out: &mut [u8]) -> usize {
        let len = self.encoded_len();
        let out = &mut out[..len];
        out[0..4].copy_from_slice(&((len - PREFIX) as u32).to_le_bytes());
        out[8] = KIND_EVENT;
        out[9..17].copy_from_slice(&self.seq.to_le_bytes());
        out[17] = self.id.len() as u8;
        out[18] = self.event.len() as u8;
        out[19] = self.topic.len() as u8;
        out[20] = self.client.len() as u8;
        out[21..25].copy_from_slice(&(self.data.len() as u32).to_le_bytes());
        let mut at = PREFIX + FIXED;
        for field in [self.id, self.event, self.topic, self.client, self.data] {
            out[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        }
        let crc = crc32c(&[&out[0..4], &out[PREFIX..]]);
        out[4..8].copy_from_slice(&crc.to_le_bytes());
        len
    }
}

/// A record's body (what follows the crc field), if it is well formed.
pub(super) fn decode(body: &[u8]) -> Option<Record<'_>> {
    let fixed = body.get(..FIXED)?;
    if fixed[0] != KIND_EVENT {
        return None;
    }
    let seq = u64::from_le_bytes(fixed[1..9].try_into().ok()?);
    let (id, event, topic, client) = (fixed[9] as usize, fixed[10] as usize, fixed[11] as usize, fixed[12] as usize);
    let data = u32::from_le_bytes(fixed[13..17].try_into().ok()?) as usize;
    if id > MAX_ID
        || event > MAX_EVENT
        || topic > MAX_TOPIC
        || client > MAX_CLIENT
        || data > MAX_DATA
        || FIXED + id + event + topic + client + data != body.len()
    {
        return None;
    }
    let mut rest = &body[FIXED..];
    Some(Record {
        seq,
        id: take(&mut rest, id),
        event: take(&mut rest, event),
        topic: take(&mut rest, topic),
        client: take(&mut rest, client),
        data: take(&mut rest, data),
    })
}

pub(super) fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    head
}

pub(super) const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            // 0x82F63B78: the Castagnoli polynomial, reflected.
            c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32C of the concatenation of `parts`.
pub(super) fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for part in parts {
        for &b in *part {
            crc = CRC_TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
        }
    }
    !crc
}
