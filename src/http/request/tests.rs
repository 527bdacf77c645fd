//! The request layer on its own: heads split at every byte, framing errors, the headers it acts on.

use super::*;

fn parse(raw: &[u8]) -> Result<Parsed, HttpError> {
    parse_head(raw, 8192)
}

fn complete(raw: &[u8]) -> Head {
    match parse(raw) {
        Ok(Parsed::Complete(h)) => h,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
    }
}

const POST: &[u8] = b"POST /events?topic=a HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: 10\r\nLast-Event-ID: 42\r\n\r\ndata=hello";

#[test]
fn head_split_at_every_byte_is_partial_then_complete() {
    let head_len = POST.len() - 10;
    for cut in 0..head_len {
        assert!(matches!(parse(&POST[..cut]), Ok(Parsed::Partial)), "cut at {cut}");
    }
    for cut in head_len..=POST.len() {
        let h = complete(&POST[..cut]);
        assert_eq!(h.len, head_len);
        assert_eq!(h.path.of(POST), b"/events");
        assert_eq!(h.query.of(POST), b"topic=a");
        assert_eq!(h.body, Body::Length(10));
        assert!(h.form && h.keep_alive);
        assert_eq!(h.last_event_id.unwrap().of(POST), b"42");
    }
}

#[test]
fn bare_lf_and_http10() {
    let h = complete(b"GET /stats HTTP/1.0\n\n");
    assert_eq!((h.method, h.minor_version, h.keep_alive), (Method::Get, 0, false));
    let h = complete(b"GET /events HTTP/1.1\nHost: pi\n\n");
    assert!(h.keep_alive);
    let h = complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(h.keep_alive);
    let h = complete(b"HEAD /events HTTP/1.1\nHost: pi\nAccept: text/html, text/event-stream;q=0.9\n\n");
    assert!(h.accepts_event_stream && h.method == Method::Head);
    assert!(!complete(b"GET /events HTTP/1.1\nHost: pi\nAccept: */*\n\n").accepts_event_stream);
}

#[test]
fn framing_errors() {
    let bad = |raw: &[u8]| parse(raw).err().map(|e| e.status() as u16);
    assert_eq!(bad(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n"), Some(400));
    assert_eq!(bad(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 0\r\n\r\n"), Some(400));
    assert_eq!(bad(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 10\r\n\r\n"), Some(400));
    assert_eq!(bad(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), Some(400));
    assert_eq!(
        bad(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Some(400)
    );
    assert_eq!(bad(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"), Some(501));
    assert_eq!(bad(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), Some(400));
    assert_eq!(bad(b"GET / HTTP/1.1\r\n\r\n"), Some(400));
    assert_eq!(bad(b"POST /events HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), Some(400));
    assert_eq!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), Some(400));
    assert_eq!(bad(b"GET / HTTP/2.0\r\n\r\n"), Some(505));
    assert_eq!(bad(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Some(505));
    assert_eq!(bad(b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), Some(400));
    assert_eq!(bad(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"), Some(400));
    assert_eq!(bad(b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"), Some(400));
    assert_eq!(bad(b"GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n"), Some(400));
    assert_eq!(bad(b"GET / HTTP/1.1\rHost: x\r\n\r\n"), Some(400));
    assert_eq!(bad(b"GET nope HTTP/1.1\r\nHost: x\r\n\r\n"), Some(400));
    assert_eq!(complete(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").body, Body::Chunked);
}

#[test]
fn limits() {
    let mut long = b"GET /".to_vec();
    long.resize(100, b'a');
    assert_eq!(parse_head(&long, 100).err(), Some(HttpError::UriTooLong));
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
    big.resize(100, b'a');
    assert_eq!(parse_head(&big, 100).err(), Some(HttpError::HeadersTooLarge));
    let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for _ in 0..MAX_HEADERS {
        many.extend_from_slice(b"A: b\r\n");
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(parse(&many).err(), Some(HttpError::HeadersTooLarge));
}

#[test]
fn absolute_form_target() {
    let raw = b"GET http://pi:8080/events?x=1 HTTP/1.1\r\nHost: pi\r\n\r\n";
    let h = complete(raw);
    assert_eq!((h.path.of(raw), h.query.of(raw)), (&b"/events"[..], &b"x=1"[..]));
}
