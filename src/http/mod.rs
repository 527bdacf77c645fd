//! The HTTP/1.1 request layer: request heads (tokenised by httparse, checked here), bodies,
//! query/form decoding and responses. It owns no sockets and no buffers: callers pass the bytes
//! they have read and get back `Complete`/`Partial` or an error that names the status to send.

pub mod chunked;
pub mod decode;
pub mod request;
pub mod response;

pub use request::{Body, Head, HttpError, Method, Parsed, Span};
pub use response::Status;
