//! Fuzzes the HTTP request layer the server runs on every byte a peer sends: head parsing,
//! framing (Content-Length, chunked), and query/form decoding, fed in two arbitrary pieces as
//! the network would deliver them. Any panic is a bug; so is a verdict that depends on the split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinysse::request_layer::Params;
use tinysse::request_layer::{Framing, HttpError, frame_request};

/// What the layer decides about `bytes` arriving in pieces split at `cut`.
fn verdict(bytes: &[u8], cut: usize, capacity: usize) -> Result<Option<(usize, Vec<u8>)>, HttpError> {
    let mut buf = vec![0u8; capacity];
    let n = bytes.len().min(capacity);
    let cut = cut.min(n);
    buf[..cut].copy_from_slice(&bytes[..cut]);
    // The first piece alone: an error here must be the final verdict too.
    if let Err(e) = frame_request(&mut buf, cut) {
        return Err(e);
    }
    buf[..n].copy_from_slice(&bytes[..n]);
    match frame_request(&mut buf, n)? {
        Framing::Partial | Framing::AwaitingBody(_) => Ok(None),
        Framing::Complete { head, body, consumed } => {
            assert!(consumed <= n && body.end as usize <= consumed);
            let mut params = Params::default();
            params.parse(&mut buf, head.query)?;
            if head.form {
                params.parse(&mut buf, body)?;
            }
            Ok(Some((consumed, body.of(&buf).to_vec())))
        }
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let cut = input[0] as usize * 64 + input[1] as usize;
    let bytes = &input[2..];
    let capacity = 4096;
    let whole = verdict(bytes, bytes.len(), capacity);
    let split = verdict(bytes, cut, capacity);
    // A complete request is judged the same however it arrived; an error found early is the
    // same error (the layer never reads past a request it refused).
    match (&whole, &split) {
        (Ok(Some(a)), Ok(Some(b))) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Ok(Some(_)), Err(_)) | (Err(_), Ok(Some(_))) => panic!("verdict depends on the split: {whole:?} vs {split:?}"),
        _ => {}
    }
});
