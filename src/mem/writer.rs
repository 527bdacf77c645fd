//! Appending to a caller-owned slice: fails instead of growing, so responses and frames are
//! built in preallocated buffers.

/// Appends to a caller-owned slice, failing instead of growing.
pub(crate) struct Writer<'a> {
    pub out: &'a mut [u8],
    pub len: usize,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut [u8]) -> Writer<'a> {
        Writer { out, len: 0 }
    }

    pub fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len.checked_add(bytes.len())?;
        self.out.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }

    /// Appends `n` in decimal.
    pub fn put_u64(&mut self, n: u64) -> Option<()> {
        let mut digits = [0u8; 20];
        self.put(format_u64(n, &mut digits))
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        &self.out[..self.len]
    }
}

/// Formats `n` in decimal into `buf`, returning the digits.
pub(crate) fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal() {
        let mut b = [0; 20];
        assert_eq!(format_u64(0, &mut b), b"0");
        assert_eq!(format_u64(u64::MAX, &mut b), b"18446744073709551615");
    }

    #[test]
    fn refuses_to_grow() {
        let mut buf = [0u8; 4];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.put(b"abc"), Some(()));
        assert_eq!(w.put(b"de"), None);
        assert_eq!(w.written(), b"abc");
    }
}
