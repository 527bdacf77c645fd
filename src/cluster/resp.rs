//! RESP2, the part the Redis link speaks: commands go out as arrays of bulk strings written into
//! a caller-owned buffer; replies come in one header or value at a time, read from a
//! caller-owned buffer as borrowed slices, never copied and never allocated.
//!
//! Every reader returns `Ok(None)` while its value is incomplete, so the caller reads more and
//! asks again from the same place; nothing is consumed until a whole piece is there.

/// Longest line (a header, a simple string or an error) accepted; Redis's own are far shorter.
pub const MAX_LINE: usize = 1024;

/// Deepest nesting a skipped value may have (an XREAD reply nests four deep).
const MAX_DEPTH: usize = 8;

/// Why bytes from Redis are not RESP2 as the link expects it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RespError {
    /// A value starts with a byte that is no RESP2 type.
    BadType,
    /// A length or integer is not a number, or is out of range.
    BadNumber,
    /// No CRLF within `MAX_LINE` bytes.
    LineTooLong,
    /// A bulk string is not followed by CRLF.
    BadTerminator,
    /// A value of another type or shape than the command's reply has.
    Unexpected,
    /// Arrays nested deeper than any reply the link asks for.
    TooDeep,
}

impl RespError {
    /// The one-line reason, for logs.
    pub fn message(self) -> &'static str {
        match self {
            RespError::BadType => "unknown RESP type byte",
            RespError::BadNumber => "bad RESP length or integer",
            RespError::LineTooLong => "RESP line too long",
            RespError::BadTerminator => "bulk string without CRLF",
            RespError::Unexpected => "reply of an unexpected shape",
            RespError::TooDeep => "reply nested too deep",
        }
    }
}

impl std::fmt::Display for RespError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for RespError {}

/// The start of one value: all of it but a bulk string's body.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Head<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Int(i64),
    /// A bulk string of this many bytes follows, then CRLF.
    Bulk(usize),
    /// An array of this many values follows.
    Array(usize),
    /// `$-1` or `*-1`.
    Nil,
}

/// One whole value, except that an array is only its header (its items are read after it).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Int(i64),
    Bulk(&'a [u8]),
    Array(usize),
    Nil,
}

/// Reads the header at the start of `buf`: the value's head and the bytes it took.
pub fn head(buf: &[u8]) -> Result<Option<(Head<'_>, usize)>, RespError> {
    let window = &buf[..buf.len().min(MAX_LINE)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= MAX_LINE { Err(RespError::LineTooLong) } else { Ok(None) };
    };
    let (&kind, rest) = window[..end].split_first().ok_or(RespError::BadType)?;
    let head = match kind {
        b'+' => Head::Simple(rest),
        b'-' => Head::Error(rest),
        b':' => Head::Int(int(rest)?),
        b'$' | b'*' => match int(rest)? {
            -1 => Head::Nil,
            n => {
                let n = usize::try_from(n).map_err(|_| RespError::BadNumber)?;
                if kind == b'$' { Head::Bulk(n) } else { Head::Array(n) }
            }
        },
        _ => return Err(RespError::BadType),
    };
    Ok(Some((head, end + 2)))
}

/// Reads one value at the start of `buf` (a bulk string with its body) and the bytes it took.
pub fn value(buf: &[u8]) -> Result<Option<(Value<'_>, usize)>, RespError> {
    let Some((head, used)) = head(buf)? else { return Ok(None) };
    let value = match head {
        Head::Simple(s) => Value::Simple(s),
        Head::Error(s) => Value::Error(s),
        Head::Int(n) => Value::Int(n),
        Head::Array(n) => Value::Array(n),
        Head::Nil => Value::Nil,
        Head::Bulk(n) => {
            let end = used.checked_add(n).filter(|e| e.checked_add(2).is_some()).ok_or(RespError::BadNumber)?;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(RespError::BadTerminator);
            }
            return Ok(Some((Value::Bulk(&buf[used..end]), end + 2)));
        }
    };
    Ok(Some((value, used)))
}

fn int(digits: &[u8]) -> Result<i64, RespError> {
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(RespError::BadNumber);
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(RespError::BadNumber);
        }
        n = n.checked_mul(10).and_then(|n| n.checked_add(i64::from(d - b'0'))).ok_or(RespError::BadNumber)?;
    }
    Ok(if negative { -n } else { n })
}

/// Writes `n` in decimal into `digits`, returning the digits.
pub fn format_u64(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[at..];
        }
    }
}

/// Bytes `args` take as one command.
pub fn command_len(args: &[&[u8]]) -> usize {
    let mut digits = [0u8; 20];
    let mut len = 1 + format_u64(args.len() as u64, &mut digits).len() + 2;
    for arg in args {
        len += 1 + format_u64(arg.len() as u64, &mut digits).len() + 2 + arg.len() + 2;
    }
    len
}

/// Writes `args` as one command at the start of `out` and returns its length, or `None` (and
/// nothing written that counts) when it does not fit.
pub fn write_command(out: &mut [u8], args: &[&[u8]]) -> Option<usize> {
    let len = command_len(args);
    if len > out.len() {
        return None;
    }
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    let mut digits = [0u8; 20];
    put(b"*");
    put(format_u64(args.len() as u64, &mut digits));
    put(b"\r\n");
    for arg in args {
        put(b"$");
        put(format_u64(arg.len() as u64, &mut digits));
        put(b"\r\n");
        put(arg);
        put(b"\r\n");
    }
    Some(len)
}

/// A stream entry, `[id, [field, value, ...]]`, read whole from the buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RawEntry<'a> {
    pub id: &'a [u8],
    pairs: &'a [u8],
    count: usize,
}

impl<'a> RawEntry<'a> {
    /// Its (field, value) pairs, in the order Redis stored them.
    pub fn pairs(&self) -> Pairs<'a> {
        Pairs { buf: self.pairs, left: self.count }
    }
}

/// The (field, value) pairs of a `RawEntry`, read again from bytes already checked.
pub struct Pairs<'a> {
    buf: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let Ok(Some((Value::Bulk(field), a))) = value(self.buf) else { return None };
        let Ok(Some((Value::Bulk(val), b))) = value(&self.buf[a..]) else { return None };
        self.buf = &self.buf[a + b..];
        Some((field, val))
    }
}

/// Reads a whole stream entry at the start of `buf`, and the bytes it took.
pub fn entry(buf: &[u8]) -> Result<Option<(RawEntry<'_>, usize)>, RespError> {
    let Some((id, mut at)) = entry_id(buf)? else { return Ok(None) };
    let count = match head(&buf[at..])? {
        None => return Ok(None),
        Some((Head::Array(n), used)) if n % 2 == 0 => {
            at += used;
            n / 2
        }
        // An entry without fields; Redis never stores one, but the shape is legal.
        Some((Head::Nil, used)) => {
            at += used;
            0
        }
        Some(_) => return Err(RespError::Unexpected),
    };
    let start = at;
    for _ in 0..count * 2 {
        match value(&buf[at..])? {
            None => return Ok(None),
            Some((Value::Bulk(_), used)) => at += used,
            Some(_) => return Err(RespError::Unexpected),
        }
    }
    Ok(Some((RawEntry { id, pairs: &buf[start..at], count }, at)))
}

/// Reads the start of a stream entry (`*2`, then its id), for an entry skipped rather than read.
pub fn entry_id(buf: &[u8]) -> Result<Option<(&[u8], usize)>, RespError> {
    let at = match head(buf)? {
        None => return Ok(None),
        Some((Head::Array(2), used)) => used,
        Some(_) => return Err(RespError::Unexpected),
    };
    match value(&buf[at..])? {
        None => Ok(None),
        Some((Value::Bulk(id), used)) => Ok(Some((id, at + used))),
        Some(_) => Err(RespError::Unexpected),
    }
}

/// Skips one value of any shape without holding it, fed buffer after buffer: it keeps only
/// counts, so a value larger than any buffer (or one not worth reading) passes through.
#[derive(Copy, Clone, Debug)]
pub struct Skip {
    /// Values still to start at each open nesting level.
    left: [u32; MAX_DEPTH],
    depth: usize,
    /// Body bytes of a bulk string (with its CRLF) still to drop.
    bulk: usize,
}

impl Skip {
    /// Skips the next value.
    pub fn one() -> Skip {
        let mut left = [0; MAX_DEPTH];
        left[0] = 1;
        Skip { left, depth: 1, bulk: 0 }
    }

    /// Drops what it can from the start of `buf`: returns the bytes taken and whether the value
    /// is over.
    pub fn feed(&mut self, buf: &[u8]) -> Result<(usize, bool), RespError> {
        let mut at = 0;
        loop {
            if self.bulk > 0 {
                let n = self.bulk.min(buf.len() - at);
                at += n;
                self.bulk -= n;
                if self.bulk > 0 {
                    return Ok((at, false));
                }
            }
            while self.depth > 0 && self.left[self.depth - 1] == 0 {
                self.depth -= 1;
            }
            if self.depth == 0 {
                return Ok((at, true));
            }
            let Some((head, used)) = head(&buf[at..])? else { return Ok((at, false)) };
            at += used;
            self.left[self.depth - 1] -= 1;
            match head {
                Head::Bulk(n) => self.bulk = n.checked_add(2).ok_or(RespError::BadNumber)?,
                Head::Array(n) if n > 0 => {
                    if self.depth == MAX_DEPTH {
                        return Err(RespError::TooDeep);
                    }
                    self.left[self.depth] = u32::try_from(n).map_err(|_| RespError::BadNumber)?;
                    self.depth += 1;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
