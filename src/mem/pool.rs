//! Request buffers: a bounded pool, allocated once, lent to connections while they send a
//! request and get its response.
//!
//! Each buffer has an input part (request head, then body and any pipelined requests; its head
//! part is the head-size limit) and an output part (the response head, or for /stream the frames
//! being sent). A subscriber gives its buffer back as soon as its response head is written, so a
//! few dozen buffers serve thousands of streams.

/// A buffer's index in the pool.
pub(crate) type BufId = u16;

/// Size of the output part: room for the largest answer (the /metrics body) behind answers to
/// pipelined requests that wait for the history file's write (see `conn::request`).
pub(crate) const OUT_BYTES: usize = 8192;

/// What a lent buffer holds besides its bytes.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct BufState {
    /// Bytes read into the input part.
    pub in_len: u32,
    /// Output bytes `out_pos..out_len` are still to be written.
    pub out_pos: u32,
    pub out_len: u32,
    /// A `100 Continue` was already sent for the request at the front.
    pub continued: bool,
    /// Close the connection once the output is written.
    pub close_after: bool,
    /// The peer shut its write side; no more input will come.
    pub eof: bool,
    /// Where the output part starts in the buffer: after the input part while requests are
    /// read, at 0 for a host-fed stream, which needs no input and room for large frames.
    pub out_base: u32,
    /// A static body (the built-in page) written after the output part.
    pub body: &'static [u8],
    pub body_pos: u32,
}

impl BufState {
    pub fn out_pending(&self) -> bool {
        self.out_pos < self.out_len || (self.body_pos as usize) < self.body.len()
    }

    /// The rest of the static body.
    pub fn body_left(&self) -> &'static [u8] {
        &self.body[(self.body_pos as usize).min(self.body.len())..]
    }
}

pub(crate) struct Pool {
    mem: Vec<u8>,
    states: Vec<BufState>,
    free: Vec<BufId>,
    in_bytes: usize,
}

impl Pool {
    /// `count` buffers with an input part of `in_bytes`.
    pub fn new(count: usize, in_bytes: usize) -> Pool {
        let count = count.clamp(1, BufId::MAX as usize);
        Pool {
            // Zeroed, so pages of buffers never lent stay non-resident.
            mem: vec![0u8; count * (in_bytes + OUT_BYTES)],
            states: vec![BufState::default(); count],
            free: (0..count as BufId).rev().collect(),
            in_bytes,
        }
    }

    pub fn capacity(&self) -> usize {
        self.states.len()
    }

    pub fn in_use(&self) -> usize {
        self.states.len() - self.free.len()
    }

    pub fn take(&mut self) -> Option<BufId> {
        let id = self.free.pop()?;
        self.states[id as usize] = BufState { out_base: self.in_bytes as u32, ..BufState::default() };
        Some(id)
    }

    pub fn give_back(&mut self, id: BufId) {
        debug_assert!(!self.free.contains(&id));
        self.free.push(id);
    }

    pub fn state(&mut self, id: BufId) -> &mut BufState {
        &mut self.states[id as usize]
    }

    /// The state, input part and output part of buffer `id`, borrowed together.
    pub fn parts(&mut self, id: BufId) -> (&mut BufState, &mut [u8], &mut [u8]) {
        let size = self.in_bytes + OUT_BYTES;
        let region = &mut self.mem[id as usize * size..(id as usize + 1) * size];
        let (input, out) = region.split_at_mut(self.in_bytes);
        (&mut self.states[id as usize], input, out)
    }

    /// Output bytes not yet written (not counting a static body).
    pub fn pending_out(&self, id: BufId) -> &[u8] {
        let s = &self.states[id as usize];
        let base = id as usize * (self.in_bytes + OUT_BYTES) + s.out_base as usize;
        &self.mem[base + s.out_pos as usize..base + s.out_len as usize]
    }

    /// The state and the output area (from `out_base` to the end of the buffer).
    pub fn out_area(&mut self, id: BufId) -> (&mut BufState, &mut [u8]) {
        let size = self.in_bytes + OUT_BYTES;
        let state = &mut self.states[id as usize];
        let start = id as usize * size + state.out_base as usize;
        (state, &mut self.mem[start..(id as usize + 1) * size])
    }

    /// Turns the buffer into a host-fed stream's output: the whole buffer, with the pending
    /// output (the response head) moved to its front.
    pub fn use_whole_for_output(&mut self, id: BufId) {
        let size = self.in_bytes + OUT_BYTES;
        let base = id as usize * size;
        let state = &mut self.states[id as usize];
        let (from, to) =
            (base + (state.out_base + state.out_pos) as usize, base + (state.out_base + state.out_len) as usize);
        self.mem.copy_within(from..to, base);
        state.out_len -= state.out_pos;
        state.out_pos = 0;
        state.out_base = 0;
        state.in_len = 0;
    }

    /// Drops the first `n` bytes of the input part (a request that has been handled), keeping
    /// what was pipelined after it.
    pub fn consume_input(&mut self, id: BufId, n: usize) {
        let (state, input, _) = self.parts(id);
        let len = state.in_len as usize;
        input.copy_within(n..len, 0);
        state.in_len = (len - n) as u32;
        state.continued = false;
    }
}
