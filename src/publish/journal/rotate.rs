//! Rotation: PATH becomes the segment `PATH.<first seq>`, a new PATH starts, and the oldest
//! segments over the budget are deleted whole (nothing is rewritten in place).

use super::error::{Errno, WriteError};
use super::format::{HEADER, HEADER_LEN};
use super::load::segment_path;
use super::{Fsync, Journal};

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

impl Journal {
    /// Renames PATH to `PATH.<first seq>` and starts a new PATH (created first, as `PATH.new`, so
    /// that running out of files or space changes nothing), then deletes the oldest segments
    /// over budget. Called with the batch written.
    pub(super) fn rotate(&mut self) -> Result<(), WriteError> {
        // A rotated segment is never written again: make it whole on disk first.
        if self.unsynced && self.fsync != Fsync::Never {
            self.sync()?;
        }
        let next_key = self.segments.back().map_or(0, |&(key, _)| key.saturating_add(1));
        let key = self.active_first.unwrap_or(next_key).max(next_key);
        let rotate = |e: io::Error| WriteError::Rotate(Errno::of(&e));
        let new = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.new_path)
            .map_err(rotate)?;
        if let Err(e) = new.write_all_at(&HEADER, 0) {
            let _ = fs::remove_file(&self.new_path);
            return Err(rotate(e));
        }
        let old = segment_path(&mut self.name, &self.path, key);
        if let Err(e) = fs::rename(&self.path, old) {
            let _ = fs::remove_file(&self.new_path);
            return Err(rotate(e));
        }
        if let Err(e) = fs::rename(&self.new_path, &self.path) {
            // Put the segment back, so that PATH keeps the newest records.
            let _ = fs::rename(old, &self.path);
            let _ = fs::remove_file(&self.new_path);
            return Err(rotate(e));
        }
        log::debug!("history file {}: rotated to {}", self.path.display(), old.display());
        self.file = new;
        self.segments.push_back((key, self.len));
        self.rotated_bytes += self.len;
        self.len = HEADER_LEN as u64;
        self.active_first = None;
        self.unsynced = false;
        self.sync_due = u64::MAX;
        let mut result = Ok(());
        // Oldest first, whole, never the one just rotated: the newest events stay on disk.
        while self.rotated_bytes > self.budget.saturating_sub(self.segment_bytes) && self.segments.len() > 1 {
            let (key, size) = self.segments[0];
            match fs::remove_file(segment_path(&mut self.name, &self.path, key)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    result = Err(WriteError::Remove(Errno::of(&e)));
                    break;
                }
            }
            self.segments.pop_front();
            self.rotated_bytes -= size;
        }
        if self.fsync != Fsync::Never {
            // The renames and deletions, so that a power loss cannot undo them out of order.
            self.dir.sync_all().map_err(|e| WriteError::Sync(Errno::of(&e)))?;
        }
        result
    }
}
