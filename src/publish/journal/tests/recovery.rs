//! What the journal makes of damaged files: torn tails at every offset, flipped bytes, corrupt
//! segments, sequence breaks, files that are not journals, and random mutations.

use super::*;

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
