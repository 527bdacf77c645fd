//! Scratch crate for tinysse's cluster mode: the Redis Streams link (`link`) and the part of
//! RESP2 it speaks (`resp`). Both files move to `src/cluster/` in the server.

pub mod link;
pub mod resp;
