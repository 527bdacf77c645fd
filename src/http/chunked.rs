//! Chunked request bodies (RFC 9112 section 7.1), decoded in place once complete.
//!
//! Strict: chunk sizes are 1 to 8 hex digits, every line ends in CRLF (checked after each chunk's
//! data too), chunk extensions are skipped, trailer fields are read and ignored. The whole body
//! must fit in the request buffer, like a Content-Length body.

use super::HttpError;

/// A complete chunked body: `raw` bytes on the wire, `data` bytes once decoded.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Chunked {
    pub raw: usize,
    pub data: usize,
}

/// Scans `buf` (the bytes after the head) for a complete chunked body without changing it.
/// `Ok(None)` means more bytes are needed; a chunk that could never fit in `room` bytes is
/// refused at once (413) instead of waiting for bytes that cannot be held.
pub fn scan(buf: &[u8], room: usize) -> Result<Option<Chunked>, HttpError> {
    let mut pos = 0;
    let mut data = 0usize;
    loop {
        let Some(line_end) = find_crlf(buf, pos)? else { return Ok(None) };
        let size = chunk_size(&buf[pos..line_end])?;
        pos = line_end + 2;
        if pos.saturating_add(size).saturating_add(2) > room {
            return Err(HttpError::PayloadTooLarge);
        }
        if size == 0 {
            // Trailer fields, then the blank line.
            loop {
                let Some(end) = find_crlf(buf, pos)? else { return Ok(None) };
                let blank = end == pos;
                pos = end + 2;
                if blank {
                    return Ok(Some(Chunked { raw: pos, data }));
                }
            }
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(HttpError::BadRequest("chunk data not followed by CRLF"));
        }
        data += size;
        pos += size + 2;
    }
}

/// Decodes a body that `scan` found complete into the front of `buf`; returns its length.
pub fn decode_in_place(buf: &mut [u8]) -> usize {
    let (mut read, mut write) = (0, 0);
    while let Ok(Some(line_end)) = find_crlf(buf, read) {
        let Ok(size) = chunk_size(&buf[read..line_end]) else { break };
        read = line_end + 2;
        if size == 0 {
            break;
        }
        buf.copy_within(read..read + size, write);
        write += size;
        read += size + 2;
    }
    write
}

/// Index of the CRLF ending the line at `from`; a bare CR or LF is an error.
fn find_crlf(buf: &[u8], from: usize) -> Result<Option<usize>, HttpError> {
    for i in from..buf.len() {
        match buf[i] {
            b'\r' => {
                return match buf.get(i + 1) {
                    Some(b'\n') => Ok(Some(i)),
                    Some(_) => Err(HttpError::BadRequest("bare CR in chunked body")),
                    None => Ok(None),
                };
            }
            b'\n' => return Err(HttpError::BadRequest("bare LF in chunked body")),
            _ => {}
        }
    }
    Ok(None)
}

/// The size in a chunk line (`1a`, `1a;name=value`).
fn chunk_size(line: &[u8]) -> Result<usize, HttpError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or(b"");
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(HttpError::BadRequest("malformed chunk size"));
    }
    Ok(digits.iter().fold(0usize, |n, &d| n * 16 + (d as char).to_digit(16).unwrap_or(0) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_body_decodes() {
        let raw = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nTrailer: t\r\n\r\nNEXT";
        for cut in 0..raw.len() - 4 {
            assert_eq!(scan(&raw[..cut], 1024), Ok(None), "cut {cut}");
        }
        assert_eq!(scan(raw, 1024), Ok(Some(Chunked { raw: raw.len() - 4, data: 11 })));
        let mut buf = raw.to_vec();
        let n = decode_in_place(&mut buf);
        assert_eq!(&buf[..n], b"hello world");
    }

    #[test]
    fn strict_errors() {
        for raw in [
            &b"x\r\n"[..],
            b"\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"123456789\r\n",
            b"5\r\nhello\r\n0\r\n\rX",
        ] {
            assert!(scan(raw, 1024).is_err(), "{:?}", String::from_utf8_lossy(raw));
        }
    }
}
