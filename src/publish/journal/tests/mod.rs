//! The journal against real files: what it writes (`writing`: fields, budgets, locks, modes,
//! fake-time fsync deadlines, no allocation per append) and what it makes of damaged files
//! (`recovery`: torn tails at every offset, flipped bytes, breaks, random mutations). The
//! helpers they share are here.

mod recovery;
mod temp_dir;
mod writing;

use super::*;
use crate::mem::counting::{ALLOCATIONS, COUNTING, Counting};
use std::cell::Cell;
use std::os::unix::fs::PermissionsExt;
use temp_dir::TempDir;

// The journal's view of a test's directory.
impl TempDir {
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
