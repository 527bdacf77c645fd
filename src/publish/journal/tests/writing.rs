//! What the journal writes: every field back, budgets, the lock, file modes, the fsync policies
//! in fake time, write failures, limits, and no allocation per append.

use super::*;

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
