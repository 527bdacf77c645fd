//! Reading one segment: its header, then record by record until the end or the first defect,
//! and what was found (valid end, records, sequence numbers).

use super::load::io_error;
use super::*;

/// A segment file as found at open.
pub(super) struct Found {
    pub(super) path: PathBuf,
    /// The number in a rotated segment's name; `u64::MAX` for PATH.
    pub(super) key: u64,
    /// None: missing (PATH only).
    pub(super) size: Option<u64>,
    /// Starts with the whole header.
    pub(super) header: bool,
    /// End of the last valid record.
    pub(super) valid_end: u64,
    pub(super) records: u64,
    pub(super) first_seq: Option<u64>,
    pub(super) last_seq: Option<u64>,
    /// Where the last run inside the file starts, when its sequence breaks: the byte offset and
    /// the records before it.
    pub(super) break_at: Option<(u64, u64)>,
    /// The first invalid record: its offset and what is wrong.
    pub(super) defect: Option<(u64, Defect)>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Defect {
    /// Runs past the end of the file: a torn write.
    Incomplete,
    BadLength,
    BadChecksum,
    Malformed,
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Defect::Incomplete => "incomplete record (torn write)",
            Defect::BadLength => "record with an impossible length",
            Defect::BadChecksum => "record with a bad checksum",
            Defect::Malformed => "malformed record",
        })
    }
}

pub(super) enum Header {
    Whole,
    /// Empty, or the beginning of a header: a file created just before a power loss.
    Torn,
    Foreign,
    Version(u32),
}

pub(super) fn classify(head: &[u8]) -> Header {
    if head.len() < HEADER_LEN {
        return if HEADER.starts_with(head) { Header::Torn } else { Header::Foreign };
    }
    if head[..MAGIC.len()] != MAGIC[..] {
        return Header::Foreign;
    }
    match u32::from_le_bytes([head[16], head[17], head[18], head[19]]) {
        VERSION => Header::Whole,
        v => Header::Version(v),
    }
}

/// Reads records one after another between two offsets of a file.
pub(super) struct Reader<'f> {
    pub(super) r: BufReader<&'f File>,
    pub(super) pos: u64,
    pub(super) end: u64,
    pub(super) body: Vec<u8>,
}

pub(super) enum Next<'a> {
    Record(Record<'a>),
    End,
    Bad(Defect),
}

impl<'f> Reader<'f> {
    pub(super) fn new(file: &'f File, pos: u64, end: u64, body: Vec<u8>) -> io::Result<Reader<'f>> {
        let mut r = BufReader::with_capacity(64 << 10, file);
        r.seek(SeekFrom::Start(pos))?;
        Ok(Reader { r, pos, end, body })
    }

    pub(super) fn next(&mut self) -> io::Result<Next<'_>> {
        let left = self.end.saturating_sub(self.pos);
        if left == 0 {
            return Ok(Next::End);
        }
        if left < PREFIX as u64 {
            return Ok(Next::Bad(Defect::Incomplete));
        }
        let mut prefix = [0u8; PREFIX];
        self.r.read_exact(&mut prefix)?;
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
        if !(FIXED..=MAX_BODY).contains(&len) {
            return Ok(Next::Bad(Defect::BadLength));
        }
        if (PREFIX + len) as u64 > left {
            return Ok(Next::Bad(Defect::Incomplete));
        }
        // Grows to the largest record seen, at open only.
        self.body.resize(len, 0);
        self.r.read_exact(&mut self.body)?;
        if crc32c(&[&prefix[..4], &self.body]) != crc {
            return Ok(Next::Bad(Defect::BadChecksum));
        }
        self.pos += (PREFIX + len) as u64;
        Ok(decode(&self.body).map_or(Next::Bad(Defect::Malformed), Next::Record))
    }
}

pub(super) fn scan(file: &File, path: &Path, key: u64, body: &mut Vec<u8>) -> Result<Found, OpenError> {
    let size = file.metadata().map_err(|e| io_error(path, "read", &e))?.len();
    let mut found = Found { key, size: Some(size), ..Found::missing(path) };
    let mut head = [0u8; HEADER_LEN];
    let n = size.min(HEADER_LEN as u64) as usize;
    file.read_exact_at(&mut head[..n], 0).map_err(|e| io_error(path, "read", &e))?;
    match classify(&head[..n]) {
        Header::Whole => {}
        Header::Torn => return Ok(found),
        Header::Foreign => return Err(OpenError { path: path.to_path_buf(), kind: OpenErrorKind::NotAJournal }),
        Header::Version(v) => return Err(OpenError { path: path.to_path_buf(), kind: OpenErrorKind::Version(v) }),
    }
    found.header = true;
    let mut reader =
        Reader::new(file, HEADER_LEN as u64, size, std::mem::take(body)).map_err(|e| io_error(path, "read", &e))?;
    let result = loop {
        let at = reader.pos;
        match reader.next() {
            Err(e) => break Err(io_error(path, "read", &e)),
            Ok(Next::End) => break Ok(()),
            Ok(Next::Bad(defect)) => {
                found.defect = Some((at, defect));
                break Ok(());
            }
            Ok(Next::Record(r)) => {
                match found.last_seq {
                    None => found.first_seq = Some(r.seq),
                    Some(last) if last.checked_add(1) != Some(r.seq) => found.break_at = Some((at, found.records)),
                    Some(_) => {}
                }
                found.last_seq = Some(r.seq);
                found.records += 1;
            }
        }
    };
    found.valid_end = reader.pos;
    *body = reader.body;
    result.map(|()| found)
}

impl Found {
    pub(super) fn missing(path: &Path) -> Found {
        Found {
            path: path.to_path_buf(),
            key: u64::MAX,
            size: None,
            header: false,
            valid_end: 0,
            records: 0,
            first_seq: None,
            last_seq: None,
            break_at: None,
            defect: None,
        }
    }
}
