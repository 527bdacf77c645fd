//! Memory allocated once at start-up: the connection slab, the request-buffer pool, and the
//! writer that appends into caller-owned bytes without growing them.

#[cfg(test)]
pub(crate) mod counting;
pub(crate) mod pool;
pub(crate) mod slab;
pub(crate) mod writer;

pub(crate) use pool::{BufId, Pool};
pub(crate) use slab::{Key, Slab};
pub(crate) use writer::Writer;
