//! Text streams: the /stream demo, which sends a text one character per delay from its own
//! timer, and host streams, fed frame by frame through `Publisher::send_frame`. Both write SSE
//! frames into their buffer's output and end with a clean close.

use super::Close;
use super::Peer;
use super::State;
use super::table::Conns;
use crate::http::Span;
use crate::mem::{BufId, Key, Pool};
use crate::publish::Hub;
use crate::publish::handle::StreamId;
use crate::publish::sse::Frame;
use crate::routes::DEMO_TEXT;
use crate::time::Millis;
use log::warn;

/// Where a text stream's frames come from.
#[derive(Copy, Clone, Debug, Default)]
pub(super) enum Feed {
    /// The /stream demo: the text still to send (in the input part, where it was decoded, or
    /// in `DEMO_TEXT` when `builtin`) and the delay.
    Demo { text: Span, builtin: bool, delay_ms: u32 },
    /// The host program, through `Publisher::send_frame`.
    #[default]
    Host,
}

/// The feed of each text stream, by the buffer it holds.
pub(super) struct Feeds {
    by_buffer: Vec<Feed>,
}

impl Feeds {
    pub fn new(buffers: usize) -> Feeds {
        Feeds { by_buffer: vec![Feed::Host; buffers] }
    }
}

impl Conns {
    pub(super) fn become_demo(
        &mut self,
        key: Key,
        id: BufId,
        text: Option<Span>,
        delay_ms: u32,
        hub: &mut Hub,
        now: Millis,
    ) {
        let (text, builtin) = match text {
            Some(span) => (span, false),
            None => (Span::new(0, DEMO_TEXT.len()), true),
        };
        self.feeds.by_buffer[id as usize] = Feed::Demo { text, builtin, delay_ms };
        self.set_state(key, State::Text, now);
        if let Some(conn) = self.slab.get_mut(key) {
            conn.next_frame = now;
        }
        self.drive_text(key, hub, now);
    }

    pub(super) fn become_host(&mut self, key: Key, id: BufId, hub: &mut Hub, now: Millis) {
        self.feeds.by_buffer[id as usize] = Feed::Host;
        self.pool.use_whole_for_output(id);
        self.set_state(key, State::Text, now);
        if let Some(conn) = self.slab.get_mut(key) {
            conn.next_frame = Millis::NEVER; // fed by the host, not by a timer
        }
        self.drive_text(key, hub, now);
    }

    /// Writes what is pending; the demo then adds the frames that are due (then `[DONE]`, then
    /// closes), a host stream waits for its next frame.
    pub(super) fn drive_text(&mut self, key: Key, hub: &mut Hub, now: Millis) {
        loop {
            let Some(id) = self.write_pending(key, State::Text, hub, now) else { return };
            let Some(conn) = self.slab.get_mut(key) else { return };
            let Feed::Demo { text, builtin, delay_ms } = self.feeds.by_buffer[id as usize] else { return };
            if conn.next_frame > now {
                return; // the demo's next character is not due yet
            }
            let (_, input, _) = self.pool.parts(id);
            let rest = text.of(if builtin { DEMO_TEXT } else { input });
            let used = next_char(rest);
            let mut frame = [0u8; 4];
            frame[..used].copy_from_slice(&rest[..used]);
            let done = used == 0;
            let data: &[u8] = if done { b"[DONE]" } else { &frame[..used] };
            if !append_frame(&mut self.pool, id, data) {
                return; // output full: written out first, then the loop comes back here
            }
            let rest = Span { start: text.start + used as u32, end: text.end };
            self.feeds.by_buffer[id as usize] = Feed::Demo { text: rest, builtin, delay_ms };
            self.pool.state(id).close_after = done;
            conn.next_frame = if delay_ms == 0 { now } else { now.after(Millis(u64::from(delay_ms))) };
        }
    }

    /// A host program's frame for stream `id`, or its end (`data` is `None`).
    pub fn host_message(&mut self, id: StreamId, data: Option<&[u8]>, hub: &mut Hub, now: Millis) {
        let Some(key) = self.key_of(id) else { return };
        let Some(buf) = self.slab.get(key).filter(|c| c.state == State::Text).and_then(|c| c.buf) else {
            return; // the stream has ended; its id is stale
        };
        match data {
            None => self.pool.state(buf).close_after = true,
            Some(data) if !append_frame(&mut self.pool, buf, data) => {
                if let Some(conn) = self.slab.get(key) {
                    warn!("{}: stream client too slow, output buffer full; closing", Peer(conn, key));
                }
                return self.close(key, Close::OutputFull, hub);
            }
            Some(_) => {}
        }
        self.drive_text(key, hub, now);
        self.rearm(key);
    }
}

/// Appends one frame (`data:` lines of `data`) to a stream's output; false when it does not fit.
fn append_frame(pool: &mut Pool, id: BufId, data: &[u8]) -> bool {
    let (state, area) = pool.out_area(id);
    if state.out_pos == state.out_len {
        state.out_pos = 0;
        state.out_len = 0;
    }
    let frame = Frame { id: b"", event: b"", data };
    let needed = frame.encoded_len();
    if state.out_len as usize + needed > area.len() && state.out_pos > 0 {
        area.copy_within(state.out_pos as usize..state.out_len as usize, 0);
        state.out_len -= state.out_pos;
        state.out_pos = 0;
    }
    match frame.encode(&mut area[state.out_len as usize..]) {
        Some(n) => {
            state.out_len += n as u32;
            true
        }
        None => false,
    }
}

/// Bytes of the first Unicode scalar value of `text` (valid UTF-8), 0 when empty.
fn next_char(text: &[u8]) -> usize {
    let len = match text.first() {
        None => return 0,
        Some(0x00..=0x7f) => 1,
        Some(0xc0..=0xdf) => 2,
        Some(0xe0..=0xef) => 3,
        Some(_) => 4,
    };
    len.min(text.len())
}

#[cfg(test)]
mod tests {
    use super::next_char;

    #[test]
    fn characters() {
        assert_eq!(next_char("é!".as_bytes()), 2);
        assert_eq!(next_char("€".as_bytes()), 3);
        assert_eq!(next_char(b""), 0);
    }
}
