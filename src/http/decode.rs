//! Query strings and form bodies (application/x-www-form-urlencoded), decoded in place.
//!
//! Percent-decoding never makes a value longer, so each key and value is decoded inside the
//! request buffer it arrived in; `Params` only records where the decoded bytes now are. An invalid
//! escape or invalid UTF-8 after decoding is an error (400), never passed through.

use super::{HttpError, Span};

/// Most parameters in one query or form.
pub(crate) use crate::limits::MAX_PARAMS;

/// Decoded parameters: key and value spans into the buffer they were decoded in.
#[derive(Default)]
pub struct Params {
    items: heapless::Vec<(Span, Span), MAX_PARAMS>,
}

impl Params {
    /// Decodes every `key=value` pair of `buf[span]` in place and appends them.
    pub fn parse(&mut self, buf: &mut [u8], span: Span) -> Result<(), HttpError> {
        let mut pos = span.start as usize;
        let end = span.end as usize;
        while pos < end {
            let pair_end = buf[pos..end].iter().position(|&b| b == b'&').map_or(end, |i| pos + i);
            if pair_end > pos {
                let eq = buf[pos..pair_end].iter().position(|&b| b == b'=').map_or(pair_end, |i| pos + i);
                let key = decode_in_place(buf, pos, eq)?;
                let value =
                    if eq < pair_end { decode_in_place(buf, eq + 1, pair_end)? } else { Span::new(pair_end, pair_end) };
                self.items.push((key, value)).map_err(|_| HttpError::BadRequest("too many parameters"))?;
            }
            pos = pair_end + 1;
        }
        Ok(())
    }

    /// The first value of `key`.
    pub fn get<'b>(&self, buf: &'b [u8], key: &str) -> Option<&'b [u8]> {
        self.all(buf, key).next()
    }

    /// Every value of `key`, in order.
    pub fn all<'a, 'b: 'a>(&'a self, buf: &'b [u8], key: &'a str) -> impl Iterator<Item = &'b [u8]> + 'a {
        self.items.iter().filter(move |(k, _)| k.of(buf) == key.as_bytes()).map(move |(_, v)| v.of(buf))
    }

    /// The span of the first value of `key`.
    pub fn span(&self, buf: &[u8], key: &str) -> Option<Span> {
        self.items.iter().find(|(k, _)| k.of(buf) == key.as_bytes()).map(|&(_, v)| v)
    }
}

/// Decodes `buf[start..end]` (`+` is a space, `%XX` a byte) into its own front and returns the
/// span of the result, which must be valid UTF-8.
pub fn decode_in_place(buf: &mut [u8], start: usize, end: usize) -> Result<Span, HttpError> {
    let mut read = start;
    let mut write = start;
    while read < end {
        let b = buf[read];
        let out = match b {
            b'+' => b' ',
            b'%' => {
                let hi = buf.get(read + 1).filter(|_| read + 1 < end).and_then(|&c| hex(c));
                let lo = buf.get(read + 2).filter(|_| read + 2 < end).and_then(|&c| hex(c));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(HttpError::BadRequest("invalid percent escape"));
                };
                read += 2;
                hi << 4 | lo
            }
            _ => b,
        };
        buf[write] = out;
        write += 1;
        read += 1;
    }
    if std::str::from_utf8(&buf[start..write]).is_err() {
        return Err(HttpError::BadRequest("invalid UTF-8 after decoding"));
    }
    Ok(Span::new(start, write))
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str) -> Result<Vec<(String, String)>, HttpError> {
        let mut buf = s.as_bytes().to_vec();
        let mut p = Params::default();
        p.parse(&mut buf, Span::new(0, s.len()))?;
        Ok(p.items
            .iter()
            .map(|(k, v)| {
                (String::from_utf8(k.of(&buf).to_vec()).unwrap(), String::from_utf8(v.of(&buf).to_vec()).unwrap())
            })
            .collect())
    }

    #[test]
    fn pairs_are_decoded() {
        let got = decode("data=a+b%20c&event=x%0Ay&flag&&empty=&caf%C3%A9=%E2%9C%93").unwrap();
        let want = [("data", "a b c"), ("event", "x\ny"), ("flag", ""), ("empty", ""), ("café", "✓")];
        assert_eq!(got, want.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    #[test]
    fn bad_escapes_and_utf8_are_errors() {
        for s in ["a=%", "a=%4", "a=%zz", "a=%C3", "a=%FF", "%G0=1", "a=%4&b=1"] {
            assert!(decode(s).is_err(), "{s}");
        }
    }

    #[test]
    fn too_many_params() {
        let s = vec!["a=1"; MAX_PARAMS + 1].join("&");
        assert!(decode(&s).is_err());
    }
}
