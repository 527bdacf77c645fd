//! Opening a journal: locking it, checking every segment, cutting a torn tail, and replaying the
//! newest unbroken run of records.

use super::scan::{Defect, Found, Next, Reader, scan};
use super::*;

pub(super) fn io_error(path: &Path, op: &'static str, e: &io::Error) -> OpenError {
    OpenError { path: path.to_path_buf(), kind: OpenErrorKind::Io(op, Errno::of(e)) }
}

/// `path` with `suffix` appended to its file name.
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// The path of rotated segment `key`, built in `buf` so that rotating allocates nothing.
pub(super) fn segment_path<'b>(buf: &'b mut Vec<u8>, path: &Path, key: u64) -> &'b Path {
    buf.clear();
    buf.extend_from_slice(path.as_os_str().as_bytes());
    buf.push(b'.');
    let mut digits = [b'0'; 20];
    let mut n = key;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&digits);
    Path::new(OsStr::from_bytes(buf))
}

/// Rotated segments beside `path`, oldest first.
pub(super) fn list_segments(dir: &Path, path: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let name = path.file_name().map_or(&b""[..], |n| n.as_bytes());
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(rest) = file_name.as_bytes().strip_prefix(name).and_then(|r| r.strip_prefix(b".")) else {
            continue;
        };
        if rest.len() != 20 || !rest.iter().all(u8::is_ascii_digit) {
            continue;
        }
        // Twenty digits above u64::MAX are not a name this journal writes.
        let Some(key) = rest.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add((d - b'0') as u64)) else {
            continue;
        };
        found.push((key, segment_path(&mut Vec::new(), path, key).to_path_buf()));
    }
    found.sort_unstable_by_key(|&(key, _)| key);
    Ok(found)
}

/// Checks the header and every record of `file`; reports what is valid.
impl Journal {
    /// Locks the journal, hands every record of its newest unbroken run to `each` (oldest first),
    /// cuts a torn or corrupt tail off PATH, deletes segments before a sequence break or over
    /// budget, and opens PATH for appending. The next record appended should continue after
    /// `Loaded::last_seq`.
    pub fn open(opts: Options, mut each: impl FnMut(Record<'_>)) -> Result<(Journal, Loaded), OpenError> {
        let path = opts.path.clone();
        if path.file_name().is_none() || opts.budget_bytes < MIN_BUDGET || opts.max_data > MAX_DATA {
            return Err(OpenError { path, kind: OpenErrorKind::BadOptions });
        }
        let dir_path = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let lock_path = with_suffix(&path, ".lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| io_error(&lock_path, "open the lock file", &e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(OpenError { path: lock_path, kind: OpenErrorKind::Locked });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_error(&lock_path, "lock", &e)),
        }
        let dir = File::open(&dir_path).map_err(|e| io_error(&dir_path, "open the directory", &e))?;

        // Look at everything before changing anything, so a foreign file stops us with nothing
        // touched.
        let mut body = Vec::new();
        let mut segs = Vec::new();
        for (key, seg_path) in list_segments(&dir_path, &path).map_err(|e| io_error(&dir_path, "list", &e))? {
            let file = File::open(&seg_path).map_err(|e| io_error(&seg_path, "open", &e))?;
            segs.push(scan(&file, &seg_path, key, &mut body)?);
        }
        let active = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => {
                segs.push(scan(&file, &path, u64::MAX, &mut body)?);
                Some(file)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                segs.push(Found::missing(&path));
                None
            }
            Err(e) => return Err(io_error(&path, "open", &e)),
        };
        let rotated = segs.len() - 1;

        // Where the newest unbroken run starts: segment index and byte offset.
        let mut start = (0, HEADER_LEN as u64);
        let mut prev: Option<u64> = None;
        for (i, s) in segs.iter().enumerate() {
            let Some(first) = s.first_seq else { continue };
            if let Some((at, _)) = s.break_at {
                start = (i, at);
            } else if prev.is_some_and(|p| p.checked_add(1) != Some(first)) {
                start = (i, HEADER_LEN as u64);
            }
            prev = s.last_seq;
        }
        for s in &segs {
            if let Some((at, defect)) = s.defect {
                let bytes = s.size.unwrap_or(0) - at;
                if s.key != u64::MAX {
                    log::warn!(
                        "history file {}: {defect} at byte {at}; the {bytes} bytes from there on are not loaded",
                        s.path.display()
                    );
                }
            }
        }
        // Valid records before the run start.
        let skipped = |segs: &[Found], start: (usize, u64)| {
            segs[..start.0].iter().map(|s| s.records).sum::<u64>()
                + if start.1 == HEADER_LEN as u64 { 0 } else { segs[start.0].break_at.map_or(0, |(_, n)| n) }
        };
        if start != (0, HEADER_LEN as u64) {
            log::warn!(
                "history file {}: sequence breaks at byte {}; the {} older records are not replayed",
                segs[start.0].path.display(),
                start.1,
                skipped(&segs, start)
            );
        }

        let segment_bytes = segment_bytes(opts.budget_bytes);
        let allowed = opts.budget_bytes.saturating_sub(segment_bytes);
        let mut loaded = Loaded::default();
        let mut changed = false;
        // Oldest first: segments wholly before the run, then while over budget (never the newest
        // rotated one).
        let mut kept_bytes: u64 = segs[start.0.min(rotated)..rotated].iter().filter_map(|s| s.size).sum();
        let mut first_kept = 0;
        while first_kept < rotated && (first_kept < start.0 || (kept_bytes > allowed && rotated - first_kept > 1)) {
            let s = &segs[first_kept];
            if first_kept >= start.0 {
                kept_bytes -= s.size.unwrap_or(0);
                log::info!("history file {}: deleted, over the byte budget", s.path.display());
                start = (first_kept + 1, HEADER_LEN as u64);
            } else {
                log::warn!("history file {}: deleted, it lies before a sequence break", s.path.display());
            }
            match fs::remove_file(&s.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&s.path, "delete", &e)),
            }
            loaded.removed_segments += 1;
            changed = true;
            first_kept += 1;
        }
        loaded.skipped = skipped(&segs, start);

        let new_path = with_suffix(&path, ".new");
        match fs::remove_file(&new_path) {
            Ok(()) => changed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&new_path, "delete", &e)),
        }

        let act = &segs[rotated];
        let file = match active {
            Some(file) => file,
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| io_error(&path, "create", &e))?,
        };
        let size = act.size.unwrap_or(0);
        if !act.header {
            if size > 0 {
                log::warn!("history file {}: torn header ({size} bytes); starting it empty", path.display());
            }
            file.set_len(0).map_err(|e| io_error(&path, "truncate", &e))?;
            file.write_all_at(&HEADER, 0).map_err(|e| io_error(&path, "write", &e))?;
            loaded.cut_bytes = size;
            changed = true;
        } else if act.valid_end < size {
            let (at, defect) = act.defect.unwrap_or((act.valid_end, Defect::Incomplete));
            log::warn!(
                "history file {}: {defect} at byte {at}; cut {} bytes there",
                path.display(),
                size - act.valid_end
            );
            file.set_len(act.valid_end).map_err(|e| io_error(&path, "truncate", &e))?;
            loaded.cut_bytes = size - act.valid_end;
            changed = true;
        }
        if changed && opts.fsync != Fsync::Never {
            file.sync_data().map_err(|e| io_error(&path, "sync", &e))?;
            dir.sync_all().map_err(|e| io_error(&dir_path, "sync", &e))?;
        }

        // Replay.
        let mut prev: Option<u64> = None;
        for (i, s) in segs.iter().enumerate().skip(start.0) {
            if s.records == 0 {
                continue;
            }
            let opened;
            let f = if i == rotated {
                &file
            } else {
                opened = File::open(&s.path).map_err(|e| io_error(&s.path, "open", &e))?;
                &opened
            };
            let from = if i == start.0 { start.1 } else { HEADER_LEN as u64 };
            let mut reader = Reader::new(f, from, s.valid_end, std::mem::take(&mut body))
                .map_err(|e| io_error(&s.path, "read", &e))?;
            loop {
                match reader.next() {
                    Err(e) => return Err(io_error(&s.path, "read", &e)),
                    Ok(Next::End) => break,
                    Ok(Next::Record(r)) if prev.is_none_or(|p| p.checked_add(1) == Some(r.seq)) => {
                        prev = Some(r.seq);
                        loaded.first_seq = loaded.first_seq.or(Some(r.seq));
                        loaded.last_seq = Some(r.seq);
                        loaded.records += 1;
                        each(r);
                    }
                    // What the first pass validated changed under us.
                    Ok(_) => {
                        return Err(io_error(
                            &s.path,
                            "read (it changed while loading)",
                            &io::Error::from_raw_os_error(EIO),
                        ));
                    }
                }
            }
            body = reader.body;
        }

        let segments: VecDeque<(u64, u64)> = {
            let mut v = VecDeque::with_capacity(rotated + (opts.budget_bytes / segment_bytes) as usize + 2);
            v.extend(segs[first_kept..rotated].iter().map(|s| (s.key, s.size.unwrap_or(0))));
            v
        };
        let batch_bytes = batch_bytes(segment_bytes, opts.max_data);
        let journal = Journal {
            name: Vec::with_capacity(path.as_os_str().len() + 21),
            new_path,
            file,
            dir,
            _lock: lock,
            fsync: opts.fsync,
            batch: vec![0u8; batch_bytes].into_boxed_slice(),
            batch_len: 0,
            max_data: opts.max_data,
            len: if act.header { act.valid_end } else { HEADER_LEN as u64 },
            active_first: if act.header { act.first_seq } else { None },
            rotated_bytes: segments.iter().map(|&(_, size)| size).sum(),
            segments,
            budget: opts.budget_bytes,
            segment_bytes,
            unsynced: false,
            sync_due: u64::MAX,
            failing: false,
            retry_at: 0,
            rotate_failing: false,
            rotate_retry_at: 0,
            syncs: 0,
            path,
        };
        Ok((journal, loaded))
    }
}
