//! The journal against real files: torn tails at every offset, flipped bytes, budgets, locks,
//! modes, fake-time fsync deadlines, no allocation per append, and random mutations.

use super::*;
use crate::mem::counting::{ALLOCATIONS, COUNTING, Counting};
use std::cell::Cell;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory of its own under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tinysse-journal-{}-{name}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("history")
    }

    /// Every file in the directory, by name.
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    }

    /// Bytes of the segment files (not the lock).
    fn segment_bytes(&self) -> u64 {
        self.files().iter().filter(|(n, _)| n != "history.lock").map(|(_, b)| b.len() as u64).sum()
    }

    fn segment_names(&self) -> Vec<String> {
        self.files().into_iter().map(|(n, _)| n).filter(|n| n.starts_with("history.0")).collect()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Owned {
    seq: u64,
    id: Vec<u8>,
    event: Vec<u8>,
    topic: Vec<u8>,
    client: Vec<u8>,
    data: Vec<u8>,
}

impl Owned {
    fn of(r: Record<'_>) -> Owned {
        Owned {
            seq: r.seq,
            id: r.id.to_vec(),
            event: r.event.to_vec(),
            topic: r.topic.to_vec(),
            client: r.client.to_vec(),
            data: r.data.to_vec(),
        }
    }

    fn rec(&self) -> Record<'_> {
        Record {
            seq: self.seq,
            id: &self.id,
            event: &self.event,
            topic: &self.topic,
            client: &self.client,
            data: &self.data,
        }
    }
}

/// Event `seq` of a test run: fields of varying length, some empty, data with line breaks.
fn sample(seq: u64) -> Owned {
    Owned {
        seq,
        id: format!("{seq}-9f3a2c1b").into_bytes(),
        event: if seq.is_multiple_of(3) { b"ping".to_vec() } else { Vec::new() },
        topic: if seq.is_multiple_of(2) { b"sensors/t1".to_vec() } else { Vec::new() },
        client: if seq.is_multiple_of(5) { b"alice".to_vec() } else { Vec::new() },
        data: format!("{seq}:{}\r\nend", "x".repeat((seq as usize * 37) % 300)).into_bytes(),
    }
}

fn opts(path: &Path) -> Options {
    Options { path: path.to_path_buf(), budget_bytes: 1 << 20, fsync: Fsync::Never, max_data: 2048 }
}

fn load(o: &Options) -> (Vec<Owned>, Loaded) {
    let mut v = Vec::new();
    let (j, loaded) = Journal::open(o.clone(), |r| v.push(Owned::of(r))).unwrap();
    drop(j);
    assert_eq!(loaded.records, v.len() as u64);
    assert_eq!(loaded.first_seq, v.first().map(|r| r.seq));
    assert_eq!(loaded.last_seq, v.last().map(|r| r.seq));
    (v, loaded)
}

/// Appends `seqs` to the journal, one commit each.
fn write(o: &Options, seqs: impl IntoIterator<Item = u64>) {
    let (mut j, _) = Journal::open(o.clone(), |_| {}).unwrap();
    for s in seqs {
        j.append(&sample(s).rec()).unwrap();
        j.commit(0).unwrap();
    }
}

fn samples(seqs: impl IntoIterator<Item = u64>) -> Vec<Owned> {
    seqs.into_iter().map(sample).collect()
}

fn size(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

#[test]
fn crc32c_check_value() {
    assert_eq!(crc32c(&[b"123456789"]), 0xE306_9283);
    assert_eq!(crc32c(&[b"1234", b"56789"]), 0xE306_9283);
}

#[test]
fn round_trip_keeps_every_field() {
    let dir = TempDir::new("round-trip");
    let o = opts(&dir.file());
    let mut all = samples(1..=40);
    let full = Owned {
        seq: 41,
        id: vec![b'i'; MAX_ID],
        event: vec![b'e'; MAX_EVENT],
        topic: vec![b't'; MAX_TOPIC],
        client: vec![b'c'; MAX_CLIENT],
        data: (0..2048).map(|i| i as u8).collect(),
    };
    let empty = Owned { seq: 42, ..Owned::of(Record::default()) };
    all.push(full);
    all.push(empty);
    {
        let (mut j, loaded) = Journal::open(o.clone(), |_| panic!("empty journal")).unwrap();
        assert_eq!(loaded, Loaded::default());
        // Several records per commit, and some commits with nothing to write.
        for chunk in all.chunks(3) {
            for r in chunk {
                j.append(&r.rec()).unwrap();
            }
            j.commit(0).unwrap();
            j.commit(0).unwrap();
        }
    }
    let (got, loaded) = load(&o);
    assert_eq!(got, all);
    assert_eq!((loaded.cut_bytes, loaded.skipped, loaded.removed_segments), (0, 0, 0));
    assert_eq!(&fs::read(dir.file()).unwrap()[..HEADER_LEN], b"tinysse journal\n\x01\0\0\0");
}

#[test]
fn reopen_continues_after_the_last_record() {
    let dir = TempDir::new("reopen");
    let o = opts(&dir.file());
    write(&o, 1..=10);
    let (got, loaded) = load(&o);
    assert_eq!((got.len(), loaded.last_seq), (10, Some(10)));
    write(&o, 11..=20);
    assert_eq!(load(&o).0, samples(1..=20));
    // Records batched but never committed are written when the journal is dropped.
    let (mut j, _) = Journal::open(o.clone(), |_| {}).unwrap();
    j.append(&sample(21).rec()).unwrap();
    drop(j);
    assert_eq!(load(&o).0, samples(1..=21));
}

#[test]
fn a_torn_last_record_is_cut_at_every_offset() {
    let dir = TempDir::new("torn");
    let path = dir.file();
    let o = opts(&path);
    write(&o, 1..=4);
    let before = size(&path);
    write(&o, 5..=5);
    let whole = fs::read(&path).unwrap();
    assert!(whole.len() as u64 > before + PREFIX as u64);
    for cut in before..whole.len() as u64 {
        fs::write(&path, &whole[..cut as usize]).unwrap();
        let (got, loaded) = load(&o);
        assert_eq!(got, samples(1..=4), "cut at {cut}");
        assert_eq!(loaded.cut_bytes, cut - before, "cut at {cut}");
        assert_eq!(size(&path), before, "cut at {cut}");
    }
    // The cut tail is never replayed: a new record 5 takes its place.
    let mut other = sample(5);
    other.data = b"the new five".to_vec();
    let (mut j, _) = Journal::open(o.clone(), |_| {}).unwrap();
    j.append(&other.rec()).unwrap();
    drop(j);
    let mut want = samples(1..=4);
    want.push(other);
    assert_eq!(load(&o).0, want);
    // A file cut inside its header (a power loss just after creating it) is an empty journal.
    for cut in 0..HEADER_LEN {
        fs::write(&path, &HEADER[..cut]).unwrap();
        let (got, loaded) = load(&o);
        assert!(got.is_empty());
        assert_eq!(loaded.cut_bytes, cut as u64);
        assert_eq!(fs::read(&path).unwrap(), HEADER);
    }
}

#[test]
fn a_flipped_byte_in_the_middle_keeps_the_records_before_it() {
    let dir = TempDir::new("flip");
    let path = dir.file();
    let o = opts(&path);
    let mut ends = Vec::new();
    for s in 1..=10 {
        write(&o, s..=s);
        ends.push(size(&path));
    }
    let mut bytes = fs::read(&path).unwrap();
    // Record 6 spans ends[4]..ends[5]: flip a byte in its middle.
    let mid = ((ends[4] + ends[5]) / 2) as usize;
    bytes[mid] ^= 0x10;
    fs::write(&path, &bytes).unwrap();
    let (got, loaded) = load(&o);
    assert_eq!(got, samples(1..=5));
    assert_eq!(loaded.cut_bytes, ends[9] - ends[4]);
    assert_eq!(size(&path), ends[4]);
    // Appending continues after record 5.
    write(&o, 6..=7);
    assert_eq!(load(&o).0, samples(1..=7));
    // A flipped length field is caught too.
    let mut bytes = fs::read(&path).unwrap();
    bytes[ends[2] as usize + 1] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    assert_eq!(load(&o).0, samples(1..=3));
}

#[test]
fn a_corrupt_rotated_segment_replays_only_the_newer_run() {
    let dir = TempDir::new("corrupt-segment");
    let path = dir.file();
    let o = Options { budget_bytes: 256 << 10, ..opts(&path) };
    write(&o, 1..=800);
    let names = dir.segment_names();
    assert!(names.len() >= 3, "{names:?}");
    // Corrupt the second rotated segment in its middle.
    let victim = dir.0.join(&names[1]);
    let mut bytes = fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&victim, &bytes).unwrap();
    let next_first: u64 = names[2].trim_start_matches("history.").parse().unwrap();
    let (got, loaded) = load(&o);
    assert_eq!(got, samples(next_first..=800));
    assert_eq!(loaded.removed_segments, 2);
    assert!(loaded.skipped > 0);
    assert_eq!(dir.segment_names(), names[2..]);
}

#[test]
fn a_sequence_break_replays_only_the_newer_run() {
    let dir = TempDir::new("break");
    let o = opts(&dir.file());
    write(&o, 1..=5);
    write(&o, 10..=12);
    let (got, loaded) = load(&o);
    assert_eq!(got, samples(10..=12));
    assert_eq!(loaded.skipped, 5);
    // Stable: the next open says the same.
    assert_eq!(load(&o).0, samples(10..=12));
}

#[test]
fn a_file_that_is_not_a_journal_is_refused_and_left_untouched() {
    let dir = TempDir::new("foreign");
    let path = dir.file();
    let o = opts(&path);
    for content in [&b"ab"[..], b"hello, world\nthis is my thesis, do not truncate it\n", b"tinysse journal!\x01\0\0\0"]
    {
        fs::write(&path, content).unwrap();
        let err = Journal::open(o.clone(), |_| {}).err().unwrap();
        assert_eq!(err.kind, OpenErrorKind::NotAJournal);
        assert_eq!(err.path, path);
        let line = err.to_string();
        assert!(line.contains(&path.display().to_string()) && !line.contains('\n'), "{line}");
        assert_eq!(fs::read(&path).unwrap(), content);
    }
    let mut v2 = HEADER.to_vec();
    v2[16] = 2;
    fs::write(&path, &v2).unwrap();
    assert_eq!(Journal::open(o.clone(), |_| {}).err().unwrap().kind, OpenErrorKind::Version(2));
    // A rotated segment's name with foreign content: refused, naming it.
    fs::remove_file(&path).unwrap();
    let seg = dir.0.join("history.00000000000000000007");
    fs::write(&seg, b"not mine").unwrap();
    let err = Journal::open(o.clone(), |_| {}).err().unwrap();
    assert_eq!((err.kind, &err.path), (OpenErrorKind::NotAJournal, &seg));
    assert_eq!(fs::read(&seg).unwrap(), b"not mine");
    // Files that only look similar are not segments.
    fs::remove_file(&seg).unwrap();
    fs::write(dir.0.join("history.bak"), b"x").unwrap();
    fs::write(dir.0.join("history.99999999999999999999"), b"x").unwrap();
    assert!(load(&o).0.is_empty());
}

#[test]
fn the_byte_budget_holds_and_the_newest_records_stay() {
    let dir = TempDir::new("budget");
    let path = dir.file();
    let budget = 64 << 10;
    let o = Options { budget_bytes: budget, max_data: 1000, ..opts(&path) };
    let (mut j, _) = Journal::open(o.clone(), |_| {}).unwrap();
    let slack = j.batch.len() as u64;
    let mut max_seen = 0;
    for s in 1..=5000u64 {
        j.append(&sample(s).rec()).unwrap();
        if s % 7 == 0 {
            j.commit(s).unwrap();
            let on_disk = dir.segment_bytes();
            assert_eq!(on_disk, j.on_disk_bytes());
            max_seen = max_seen.max(on_disk);
            assert!(on_disk <= budget + slack, "{on_disk} bytes on disk after {s}");
        }
    }
    drop(j);
    assert!(max_seen > budget * 3 / 4, "only {max_seen} bytes used");
    let (got, loaded) = load(&o);
    assert_eq!(loaded.last_seq, Some(5000));
    let first = loaded.first_seq.unwrap();
    assert!(first > 4000, "oldest kept: {first}");
    assert_eq!(got, samples(first..=5000));
    // Segment names are the first seq in them, in order.
    let names = dir.segment_names();
    assert_eq!(names[0], format!("history.{first:020}"));
    assert!(names.len() >= 3, "{names:?}");
    // Lowering the budget deletes the oldest segments at open.
    let small = Options { budget_bytes: MIN_BUDGET, ..o.clone() };
    let (got, loaded) = load(&small);
    assert!(loaded.removed_segments > 0 && loaded.last_seq == Some(5000));
    assert_eq!(got.len() as u64, 5000 - loaded.first_seq.unwrap() + 1);
    assert_eq!(dir.segment_names().len(), 1);
}

#[test]
fn a_second_open_is_refused_while_the_first_holds_the_lock() {
    let dir = TempDir::new("lock");
    let o = opts(&dir.file());
    let (first, _) = Journal::open(o.clone(), |_| {}).unwrap();
    let err = Journal::open(o.clone(), |_| {}).err().unwrap();
    assert_eq!(err.kind, OpenErrorKind::Locked);
    let line = err.to_string();
    assert!(line.contains(&dir.file().display().to_string()) && line.contains("locked"), "{line}");
    drop(first);
    assert!(Journal::open(o, |_| {}).is_ok());
}

#[test]
fn files_are_created_0600() {
    let dir = TempDir::new("mode");
    let o = Options { budget_bytes: MIN_BUDGET, ..opts(&dir.file()) };
    write(&o, 1..=200);
    let files = dir.files();
    assert!(files.len() >= 3, "{files:?}");
    for (name, _) in files {
        let mode = fs::metadata(dir.0.join(&name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}

#[test]
fn fsync_policies_and_the_deadline() {
    let dir = TempDir::new("fsync");
    let o = Options { fsync: Fsync::Every { ms: 1000 }, ..opts(&dir.file()) };
    let (mut j, _) = Journal::open(o.clone(), |_| {}).unwrap();
    assert_eq!(j.deadline(), u64::MAX);
    j.commit(0).unwrap();
    assert_eq!(j.deadline(), u64::MAX, "nothing written, nothing due");
    j.append(&sample(1).rec()).unwrap();
    j.commit(100).unwrap();
    assert_eq!((j.deadline(), j.syncs), (1100, 0));
    // More writes before the deadline do not move it.
    j.append(&sample(2).rec()).unwrap();
    j.commit(900).unwrap();
    assert_eq!((j.deadline(), j.syncs), (1100, 0));
    j.commit(1099).unwrap();
    assert_eq!(j.syncs, 0);
    j.commit(1100).unwrap();
    assert_eq!((j.deadline(), j.syncs), (u64::MAX, 1));
    j.commit(5000).unwrap();
    assert_eq!(j.syncs, 1, "nothing written since");
    drop(j);

    let (mut j, _) = Journal::open(Options { fsync: Fsync::Always, ..o.clone() }, |_| {}).unwrap();
    for s in 3..=5 {
        j.append(&sample(s).rec()).unwrap();
        j.commit(0).unwrap();
        assert_eq!(j.deadline(), u64::MAX);
    }
    j.commit(0).unwrap();
    assert_eq!(j.syncs, 3);
    drop(j);

    let (mut j, _) = Journal::open(Options { fsync: Fsync::Never, ..o.clone() }, |_| {}).unwrap();
    j.append(&sample(6).rec()).unwrap();
    j.commit(0).unwrap();
    j.shutdown().unwrap();
    assert_eq!((j.deadline(), j.syncs), (u64::MAX, 0));

    assert_eq!(Fsync::parse("always"), Some(Fsync::Always));
    assert_eq!(Fsync::parse("never"), Some(Fsync::Never));
    assert_eq!(Fsync::parse("5"), Some(Fsync::Every { ms: 5000 }));
    for bad in ["0", "", "-1", "1.5", "86401", "sometimes"] {
        assert_eq!(Fsync::parse(bad), None, "{bad}");
    }
}

#[test]
fn a_failed_write_keeps_the_batch_and_retries_later() {
    let dir = TempDir::new("write-error");
    let path = dir.file();
    let o = opts(&path);
    let (mut j, _) = Journal::open(o.clone(), |_| {}).unwrap();
    j.append(&sample(1).rec()).unwrap();
    j.commit(0).unwrap();
    // A read-only descriptor stands in for a failing disk.
    let good = std::mem::replace(&mut j.file, File::open(&path).unwrap());
    j.append(&sample(2).rec()).unwrap();
    assert!(matches!(j.commit(10), Err(WriteError::Write(_))));
    assert_eq!(j.deadline(), 10 + RETRY_MS);
    j.append(&sample(3).rec()).unwrap();
    j.commit(20).unwrap(); // not retried yet
    // Fill the batch: with writes failing, records beyond it are dropped, not written early.
    let mut s = 4;
    let dropped = loop {
        match j.append(&sample(s).rec()) {
            Ok(()) => s += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(dropped, AppendError::Dropped);
    j.file = good;
    j.commit(10 + RETRY_MS).unwrap();
    drop(j);
    assert_eq!(load(&o).0, samples(1..s));
}

#[test]
fn appends_over_the_limits_are_refused() {
    let dir = TempDir::new("limits");
    let (mut j, _) = Journal::open(opts(&dir.file()), |_| {}).unwrap();
    let long = [b'x'; 129];
    for r in [
        Record { id: &long, ..Default::default() },
        Record { event: &long, ..Default::default() },
        Record { topic: &long[..65], ..Default::default() },
        Record { client: &long[..65], ..Default::default() },
    ] {
        assert_eq!(j.append(&r), Err(AppendError::FieldTooLong));
    }
    assert_eq!(j.append(&Record { data: &[0; 2049], ..Default::default() }), Err(AppendError::TooLarge));
    assert_eq!(j.batch_len, 0);
    let bad = Options { budget_bytes: MIN_BUDGET - 1, ..opts(&dir.0.join("other")) };
    assert_eq!(Journal::open(bad, |_| {}).err().unwrap().kind, OpenErrorKind::BadOptions);
}

// Counts only on a thread that switches counting on: the other tests are not affected.
#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn append_and_commit_do_not_allocate_even_when_rotating() {
    let dir = TempDir::new("alloc");
    let o = Options { budget_bytes: 64 << 10, fsync: Fsync::Every { ms: 10 }, max_data: 1000, ..opts(&dir.file()) };
    let events = samples(1..=3000);
    let (mut j, _) = Journal::open(o.clone(), |_| {}).unwrap();
    COUNTING.with(|c| c.set(true));
    // The counter counts.
    drop(std::hint::black_box(vec![0u8; 1]));
    assert_eq!(ALLOCATIONS.with(|n| n.replace(0)), 1);
    for (i, e) in events.iter().enumerate() {
        j.append(&e.rec()).unwrap();
        if i % 5 == 0 {
            j.commit(i as u64).unwrap();
        }
    }
    j.shutdown().unwrap();
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCATIONS.with(Cell::get), 0);
    assert!(j.syncs > 10);
    drop(j);
    assert!(dir.segment_names().len() >= 3, "it rotated");
    let (got, _) = load(&o);
    assert_eq!(got.last(), events.last());
}

/// xorshift64*: enough randomness for mutations, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let len = bytes.len();
    match rng.below(9) {
        0 => bytes.truncate(rng.below(len + 1)),
        1 if len > 0 => {
            let i = rng.below(len);
            bytes[i] ^= 1 << rng.below(8);
        }
        2 if len > 0 => {
            let i = rng.below(len);
            bytes[i] = rng.next() as u8;
        }
        3 => {
            let i = rng.below(len + 1);
            for _ in 0..rng.below(40) + 1 {
                bytes.insert(i, rng.next() as u8);
            }
        }
        4 if len > 0 => {
            // A zero-filled or erased (0xff) range, as flash leaves after a power loss.
            let i = rng.below(len);
            let fill = if rng.below(2) == 0 { 0 } else { 0xff };
            let end = (i + rng.below(600) + 1).min(len);
            bytes[i..end].fill(fill);
        }
        5 if len > 0 => {
            let i = rng.below(len);
            let end = (i + rng.below(300) + 1).min(len);
            bytes.drain(i..end);
        }
        6 if len > 0 => {
            let i = rng.below(len);
            let end = (i + rng.below(300) + 1).min(len);
            let copy = bytes[i..end].to_vec();
            let at = rng.below(len + 1);
            bytes.splice(at..at, copy);
        }
        7 => *bytes = (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
        _ => {
            // An impossible length right after the header.
            if len >= HEADER_LEN + 4 {
                bytes[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&(rng.next() as u32).to_le_bytes());
            }
        }
    }
}

#[test]
fn mutated_files_never_panic_and_never_replay_garbage() {
    let dir = TempDir::new("fuzz");
    let path = dir.file();
    let o = Options { budget_bytes: MIN_BUDGET * 2, max_data: 400, ..opts(&path) };
    write(&o, 1..=300);
    let original: Vec<(String, Vec<u8>)> = dir.files().into_iter().filter(|(n, _)| n != "history.lock").collect();
    assert!(original.len() >= 3, "{:?}", original.iter().map(|f| &f.0).collect::<Vec<_>>());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut opened, mut refused) = (0, 0);
    for round in 0..2000 {
        for (name, _) in dir.files() {
            fs::remove_file(dir.0.join(name)).unwrap();
        }
        let mut files = original.clone();
        for _ in 0..rng.below(3) + 1 {
            // Mostly PATH, the file a power loss tears.
            let f = if rng.below(2) == 0 { files.len() - 1 } else { rng.below(files.len()) };
            match rng.below(12) {
                0 => {
                    files.remove(f);
                    if files.is_empty() {
                        break;
                    }
                }
                _ => mutate(&mut rng, &mut files[f].1),
            }
        }
        for (name, bytes) in &files {
            fs::write(dir.0.join(name), bytes).unwrap();
        }
        let mut got = Vec::new();
        match Journal::open(o.clone(), |r| got.push(Owned::of(r))) {
            Ok((j, loaded)) => {
                opened += 1;
                drop(j);
                for w in got.windows(2) {
                    assert_eq!(w[0].seq + 1, w[1].seq, "round {round}: not contiguous");
                }
                for r in &got {
                    assert_eq!(*r, sample(r.seq), "round {round}: garbage replayed");
                }
                assert_eq!(loaded.records, got.len() as u64);
                // What the first open left is a clean journal: the same again, nothing cut.
                let (again, loaded) = load(&o);
                assert_eq!(again, got, "round {round}");
                assert_eq!((loaded.cut_bytes, loaded.removed_segments), (0, 0), "round {round}");
            }
            Err(e) => {
                refused += 1;
                assert!(matches!(e.kind, OpenErrorKind::NotAJournal | OpenErrorKind::Version(_)), "round {round}: {e}");
            }
        }
    }
    eprintln!("opened {opened}, refused {refused}");
    assert!(opened > 1000 && refused > 10, "opened {opened}, refused {refused}");
}
