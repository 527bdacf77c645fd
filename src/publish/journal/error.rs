//! What can go wrong opening, appending to and writing the journal; each error names its cause.

use super::*;

/// An errno, shown as the system describes it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub(super) fn of(e: &io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(EIO))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        io::Error::from_raw_os_error(self.0).fmt(f)
    }
}

/// Why `Journal::open` failed. Its `Display` is the one line the binary prints before exiting 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenError {
    /// The file concerned: PATH, a rotated segment, or the lock file.
    pub path: PathBuf,
    pub kind: OpenErrorKind,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OpenErrorKind {
    /// Another process holds the lock: another server on the same journal.
    Locked,
    /// The file does not start with a journal header; it was left untouched.
    NotAJournal,
    /// A journal of another format version; left untouched.
    Version(u32),
    /// A budget under `MIN_BUDGET`, `max_data` over `MAX_DATA`, or a path without a file name.
    BadOptions,
    /// A file operation failed: what was being done, and the error.
    Io(&'static str, Errno),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match self.kind {
            OpenErrorKind::Locked => {
                write!(f, "{path}: locked by another process (is another tinysse using this history file?)")
            }
            OpenErrorKind::NotAJournal => write!(
                f,
                "{path}: not a tinysse history file (no journal header); left untouched: move it away or \
                 choose another --history-file"
            ),
            OpenErrorKind::Version(v) => {
                write!(f, "{path}: history file format version {v}; this tinysse reads version {VERSION}")
            }
            OpenErrorKind::BadOptions => write!(
                f,
                "{path}: unusable history file options (a file name, a budget of at least {MIN_BUDGET} bytes, \
                 events of at most {MAX_DATA} bytes)"
            ),
            OpenErrorKind::Io(op, errno) => write!(f, "{path}: cannot {op}: {errno}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Why a commit (or the write `append` does early) failed. The journal stays usable: the batch is
/// kept and written again later.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WriteError {
    Write(Errno),
    Sync(Errno),
    /// Starting a new segment failed; the current one keeps growing until a retry succeeds.
    Rotate(Errno),
    /// Deleting the oldest segment failed; the budget is exceeded until a later rotation.
    Remove(Errno),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Write(e) => write!(f, "cannot write to the history file: {e}"),
            WriteError::Sync(e) => write!(f, "cannot sync the history file: {e}"),
            WriteError::Rotate(e) => write!(f, "cannot start a new history segment: {e}"),
            WriteError::Remove(e) => write!(f, "cannot delete the oldest history segment: {e}"),
        }
    }
}

impl std::error::Error for WriteError {}

/// Why a record was not appended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The id, event, topic or client is over its limit.
    FieldTooLong,
    /// The data is over `Options::max_data`.
    TooLarge,
    /// The batch was full and writing it early failed: this record is not in the journal.
    Write(WriteError),
    /// The batch is full and writes are failing (retried by `commit`): this record is not in the
    /// journal.
    Dropped,
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendError::FieldTooLong => f.write_str("an event field is over its limit"),
            AppendError::TooLarge => f.write_str("event data larger than the journal takes"),
            AppendError::Write(e) => write!(f, "{e}; the event is not in the history file"),
            AppendError::Dropped => f.write_str("history file writes are failing; the event is not in it"),
        }
    }
}

impl std::error::Error for AppendError {}
