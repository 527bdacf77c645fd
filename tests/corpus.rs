//! A deterministic corpus of hostile requests fed to the request layer the server uses
//! (`http::frame_request`, then query/form decoding), each whole and split at random points as
//! the network may deliver it. Every input has one expected verdict, whatever the split.

use tinysse::request_layer::Params;
use tinysse::request_layer::{Framing, HttpError, frame_request};

/// What the layer decides: a complete request (its body after decoding), more bytes needed, or
/// a status code.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Complete(Vec<u8>),
    Incomplete,
    Status(u16),
}

use Verdict::*;

/// Feeds `bytes` in the pieces `cuts` delimit, calling the layer after each, like the server.
fn feed(bytes: &[u8], cuts: &[usize], capacity: usize) -> Verdict {
    let mut buf = vec![0u8; capacity];
    let mut len = 0;
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let end = end.min(capacity);
        if end <= len {
            continue;
        }
        buf[len..end].copy_from_slice(&bytes[len..end]);
        len = end;
        match frame_request(&mut buf, len) {
            Err(e) => return Status(e.status() as u16),
            Ok(Framing::Partial | Framing::AwaitingBody(_)) => {}
            Ok(Framing::Complete { head, body, .. }) => {
                let decoded = decode(&mut buf, head, body);
                return match decoded {
                    Ok(()) => Complete(body.of(&buf).to_vec()),
                    Err(e) => Status(e.status() as u16),
                };
            }
        }
    }
    Incomplete
}

fn decode(
    buf: &mut [u8],
    head: tinysse::request_layer::Head,
    body: tinysse::request_layer::Span,
) -> Result<(), HttpError> {
    let mut params = Params::default();
    params.parse(buf, head.query)?;
    if head.form {
        params.parse(buf, body)?;
    }
    Ok(())
}

/// xorshift64*: deterministic split points without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1) as u64) as usize
    }
}

fn corpus() -> Vec<(&'static str, Vec<u8>, Verdict)> {
    let h = |s: &str| s.as_bytes().to_vec();
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000)).into_bytes();
    let big_header = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(9000)).into_bytes();
    let many_headers = format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", "A: b\r\n".repeat(60)).into_bytes();
    let body_too_big = format!("POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", 1 << 20).into_bytes();
    let chunk_too_big = h("POST /events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffff\r\n");
    vec![
        ("plain GET", h("GET /events HTTP/1.1\r\nHost: x\r\n\r\n"), Complete(vec![])),
        ("netcat bare LF", h("GET /events HTTP/1.1\nHost: x\n\n"), Complete(vec![])),
        ("HTTP/1.0 without Host", h("GET /stats HTTP/1.0\r\n\r\n"), Complete(vec![])),
        ("leading empty line", h("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), Complete(vec![])),
        (
            "body by length",
            h("POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
            Complete(h("hello")),
        ),
        (
            "chunked body",
            h(
                "POST /events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\n\r\n",
            ),
            Complete(h("hello")),
        ),
        ("incomplete head", h("GET /events HTTP/1.1\r\nHost: x\r\n"), Incomplete),
        ("incomplete body", h("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf"), Incomplete),
        (
            "CL and TE",
            h("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Status(400),
        ),
        (
            "TE then CL",
            h("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
            Status(400),
        ),
        ("CL with plus", h("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello"), Status(400)),
        ("CL with inner space", h("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 0\r\n\r\n"), Status(400)),
        ("CL list", h("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 10\r\n\r\n"), Status(400)),
        (
            "CL duplicated",
            h("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
            Status(400),
        ),
        ("CL negative", h("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), Status(400)),
        ("CL hex", h("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n"), Status(400)),
        ("CL empty", h("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n"), Status(400)),
        ("CL over 32 bits", h("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4294967296\r\n\r\n"), Status(413)),
        ("CL over capacity", body_too_big, Status(413)),
        ("TE unknown", h("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"), Status(501)),
        (
            "TE chunked not last",
            h("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Status(400),
        ),
        (
            "TE gzip then chunked",
            h("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Status(501),
        ),
        ("TE empty element", h("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,chunked\r\n\r\n"), Status(400)),
        (
            "TE duplicated",
            h("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Status(400),
        ),
        (
            "chunk size not hex",
            h("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Status(400),
        ),
        (
            "chunk size signed",
            h("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n"),
            Status(400),
        ),
        (
            "chunk size empty",
            h("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n"),
            Status(400),
        ),
        (
            "chunk size too long",
            h("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n000000001\r\nx\r\n"),
            Status(400),
        ),
        (
            "chunk data without CRLF",
            h("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
            Status(400),
        ),
        (
            "chunk line bare LF",
            h("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"),
            Status(400),
        ),
        ("chunk larger than capacity", chunk_too_big, Status(413)),
        ("obs-fold", h("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"), Status(400)),
        ("bare CR in header", h("GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n"), Status(400)),
        ("bare CR in request line", h("GET /\r HTTP/1.1\r\nHost: x\r\n\r\n"), Status(400)),
        ("NUL in header value", h("GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n"), Status(400)),
        ("control byte in header value", h("GET / HTTP/1.1\r\nHost: x\x01y\r\n\r\n"), Status(400)),
        ("DEL in header value", h("GET / HTTP/1.1\r\nHost: x\x7fy\r\n\r\n"), Status(400)),
        ("NUL in target", h("GET /ev\0ents HTTP/1.1\r\nHost: x\r\n\r\n"), Status(400)),
        ("space before colon", h("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), Status(400)),
        ("tab before colon", h("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n"), Status(400)),
        ("empty header name", h("GET / HTTP/1.1\r\nHost: x\r\n: y\r\n\r\n"), Status(400)),
        ("bad header name char", h("GET / HTTP/1.1\r\nHost: x\r\nX(y): z\r\n\r\n"), Status(400)),
        ("double space in request line", h("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), Status(400)),
        ("tab in request line", h("GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n"), Status(400)),
        ("missing Host", h("GET / HTTP/1.1\r\n\r\n"), Status(400)),
        ("duplicate Host", h("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), Status(400)),
        ("target not origin-form", h("GET events HTTP/1.1\r\nHost: x\r\n\r\n"), Status(400)),
        ("target too long", long_target, Status(414)),
        ("header too large", big_header, Status(431)),
        ("too many headers", many_headers, Status(431)),
        ("HTTP/2 preface", h("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Status(505)),
        ("HTTP/3 version", h("GET / HTTP/3.0\r\nHost: x\r\n\r\n"), Status(505)),
        ("HTTP/1.2 version", h("GET / HTTP/1.2\r\nHost: x\r\n\r\n"), Status(505)),
        ("no version", h("GET /\r\n\r\n"), Status(400)),
        // Found by the fuzzer: the verdict depended on how much of the line had arrived.
        ("extra token before version", h("POST PRI *eeee HTTP/2/1.1\r\nHost: x\r\n\r\n"), Status(400)),
        ("version that is not a number", h("GEPRI * HTTP/ts?topic=a HTTP/2.1\r\nHost: x\r\n\r\n"), Status(400)),
        (
            "TLS client hello",
            vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, b'\r', b'\n'],
            Status(400),
        ),
        ("binary garbage", vec![0xff, 0xfe, 0x00, 0x13, b'\n', b'\n'], Status(400)),
        ("bad percent in query", h("GET /events?topic=%zz HTTP/1.1\r\nHost: x\r\n\r\n"), Status(400)),
        ("invalid UTF-8 in query", h("GET /events?topic=%C3%28 HTTP/1.1\r\nHost: x\r\n\r\n"), Status(400)),
        (
            "bad percent in form",
            h(
                "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 8\r\n\r\ndata=%4",
            ),
            Incomplete,
        ),
        (
            "truncated escape in form",
            h(
                "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\ndata=%4",
            ),
            Status(400),
        ),
        (
            "too many params",
            format!("GET /events?{} HTTP/1.1\r\nHost: x\r\n\r\n", "a=1&".repeat(40)).into_bytes(),
            Status(400),
        ),
    ]
}

#[test]
fn every_hostile_input_gets_its_verdict_however_it_is_split() {
    let capacity = 8192 + 3 * 8192 + 1024; // the server's request buffer with default flags
    let corpus = corpus();
    assert!(corpus.len() >= 40, "{} cases", corpus.len());
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for (name, bytes, want) in &corpus {
        assert_eq!(&feed(bytes, &[], capacity), want, "{name}: whole");
        // Every single split point for short inputs, random multi-way splits for all.
        if bytes.len() < 200 {
            for cut in 0..bytes.len() {
                assert_eq!(&feed(bytes, &[cut], capacity), want, "{name}: split at {cut}");
            }
        }
        for _ in 0..50 {
            let mut cuts: Vec<usize> = (0..rng.below(6) + 1).map(|_| rng.below(bytes.len() + 1)).collect();
            cuts.sort();
            assert_eq!(&feed(bytes, &cuts, capacity), want, "{name}: split at {cuts:?}");
        }
    }
}
