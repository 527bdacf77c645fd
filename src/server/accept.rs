//! Accepting connections: the listening socket, and backing off while accept fails for lack of
//! descriptors or memory (the queue stays in the kernel meanwhile), with rate-limited warnings.

use crate::time::Millis;
use log::warn;
use mio::net::{TcpListener, TcpStream};
use std::io;
use std::net::SocketAddr;

/// First delay before accepting again after an accept error such as EMFILE; doubles up to
/// `RETRY_MAX` while the error persists.
const RETRY_MIN: Millis = Millis(50);
const RETRY_MAX: Millis = Millis(1000);

pub(super) struct Acceptor {
    /// `None` once the server stops accepting.
    pub listener: Option<TcpListener>,
    /// Accepting is paused after an error until then (`NEVER` when not paused).
    retry_at: Millis,
    backoff: Millis,
    /// Errors not logged since the last warning (rate limiting).
    suppressed: u64,
    last_warn: Option<Millis>,
}

impl Acceptor {
    pub fn new(listener: TcpListener) -> Acceptor {
        Acceptor {
            listener: Some(listener),
            retry_at: Millis::NEVER,
            backoff: RETRY_MIN,
            suppressed: 0,
            last_warn: None,
        }
    }

    /// When accepting resumes after an error (`NEVER` when it is not paused).
    pub fn retry_at(&self) -> Millis {
        self.retry_at
    }

    /// A descriptor came free: if accepting was paused, try again at once.
    pub fn resume_now(&mut self) {
        if !self.retry_at.is_never() {
            self.retry_at = Millis::ZERO;
        }
    }

    /// The next pending connection, or `None` when there is none, accepting is paused, or it
    /// just failed (then it pauses).
    pub fn next(&mut self, now: Millis) -> Option<(TcpStream, SocketAddr)> {
        if now < self.retry_at && !self.retry_at.is_never() {
            return None;
        }
        self.retry_at = Millis::NEVER;
        loop {
            match self.listener.as_ref()?.accept() {
                Ok(accepted) => {
                    self.backoff = RETRY_MIN;
                    return Some(accepted);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: try again on a timer, and whenever a
                    // connection closes.
                    self.failed(&e, now);
                    return None;
                }
            }
        }
    }

    fn failed(&mut self, e: &io::Error, now: Millis) {
        self.retry_at = now.after(self.backoff);
        self.backoff = Millis(self.backoff.0 * 2).min(RETRY_MAX);
        let quiet = self.last_warn.is_some_and(|t| now < t.after(Millis(1000)));
        if quiet {
            self.suppressed += 1;
            return;
        }
        if self.suppressed > 0 {
            warn!("accept failed: {e} ({} more since the last warning); retrying", self.suppressed);
        } else {
            warn!("accept failed: {e}; retrying");
        }
        self.suppressed = 0;
        self.last_warn = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acceptor() -> Acceptor {
        Acceptor::new(TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap())
    }

    #[test]
    fn backoff_doubles_to_a_second_and_resets_on_success_with_fake_time() {
        let mut a = acceptor();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let mut now = Millis(10_000);
        let mut delays = Vec::new();
        let mut suppressed = 0;
        for _ in 0..7 {
            a.failed(&emfile, now);
            suppressed = suppressed.max(a.suppressed);
            delays.push(a.retry_at().0 - now.0);
            assert!(a.next(now).is_none(), "paused until retry_at");
            now = a.retry_at();
        }
        assert_eq!(delays, [50, 100, 200, 400, 800, 1000, 1000]);
        // Paused, then a descriptor comes free: accepting resumes at once.
        a.failed(&emfile, now);
        a.resume_now();
        assert_eq!(a.retry_at(), Millis::ZERO);
        assert!(a.next(now).is_none(), "nothing pending");
        assert_eq!(a.retry_at(), Millis::NEVER);
        // Warnings are rate-limited: the four failures within the first second are counted, not
        // logged.
        assert_eq!(suppressed, 4);
    }

    #[test]
    fn accepts_what_is_pending() {
        let mut a = acceptor();
        let addr = a.listener.as_ref().unwrap().local_addr().unwrap();
        let _c = std::net::TcpStream::connect(addr).unwrap();
        let mut got = None;
        for _ in 0..1000 {
            got = a.next(Millis(0));
            if got.is_some() {
                break;
            }
            std::thread::yield_now();
        }
        assert!(got.is_some());
    }
}
