//! Who may do what: publish and subscribe tokens, loopback-only publishing, and which CORS
//! headers a response carries (decided here once, for every response and error).

use super::Request;
use crate::http::request::trim;
pub(crate) use crate::http::response::Cors;
use crate::http::{HttpError, Params};

/// With a publish token, a Bearer token; without, a loopback peer.
pub(super) fn authorize_publish(token: Option<&str>, req: &Request) -> Result<(), HttpError> {
    match token {
        Some(token) => {
            let given = req.head.authorization.map(|a| a.of(req.input)).and_then(bearer);
            if given.is_some_and(|g| constant_time_eq(g, token.as_bytes())) {
                Ok(())
            } else {
                Err(HttpError::Unauthorized)
            }
        }
        None if req.peer_loopback => Ok(()),
        None => Err(HttpError::Forbidden("publishing is allowed from loopback only (set --publish-token)")),
    }
}

/// With a subscribe token: a Bearer header, `?token=`, or the cookie `tinysse_token`
/// (EventSource cannot set headers).
pub(super) fn authorize_subscribe(token: Option<&str>, req: &Request, p: &Params) -> Result<(), HttpError> {
    let Some(token) = token else { return Ok(()) };
    let token = token.as_bytes();
    let header = req.head.authorization.map(|a| a.of(req.input)).and_then(bearer);
    let query = p.get(req.input, "token");
    let cookie = req.head.cookie.map(|c| c.of(req.input)).and_then(|c| cookie(c, b"tinysse_token"));
    // Every candidate is compared, so timing does not tell which one was tried.
    let ok = [header, query, cookie].iter().fold(false, |ok, c| ok | c.is_some_and(|c| constant_time_eq(c, token)));
    if ok { Ok(()) } else { Err(HttpError::Unauthorized) }
}

/// The CORS headers for a request from `origin`: without an allow-list any origin may read
/// (without credentials); with one, a listed origin is echoed with credentials, others get none.
pub(crate) fn cors_for<'b>(allowed: &[String], origin: Option<&'b [u8]>) -> Cors<'b> {
    if allowed.is_empty() {
        return Cors::Any;
    }
    match origin {
        Some(origin) if allowed.iter().any(|a| a.as_bytes() == origin) => Cors::Origin(origin),
        _ => Cors::Denied,
    }
}

/// The credentials of `Authorization: Bearer <token>`.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| trim(rest))
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie<'b>(header: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        (&pair[..eq] == name).then(|| &pair[eq + 1..])
    })
}

/// Compares in time that depends only on the lengths, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_cookies() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(cookie(b"a=1; tinysse_token=t; b=2", b"tinysse_token"), Some(&b"t"[..]));
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sane"));
        assert!(!constant_time_eq(b"short", b"longer"));
    }

    #[test]
    fn cors_is_decided_once() {
        let list = vec!["https://a.example".to_string()];
        assert_eq!(cors_for(&[], Some(b"https://x")), Cors::Any);
        assert_eq!(cors_for(&list, Some(b"https://a.example")), Cors::Origin(b"https://a.example"));
        assert_eq!(cors_for(&list, Some(b"https://x")), Cors::Denied);
        assert_eq!(cors_for(&list, None), Cors::Denied);
    }
}
