//! The RESP2 reader and writer against hand-made bytes: whole and split values, malformed
//! input, stream entries, and skipping values fed a byte at a time.

use super::*;

#[test]
fn commands_are_arrays_of_bulk_strings() {
    let args: [&[u8]; 3] = [b"SET", b"k", b""];
    let mut out = [0u8; 64];
    let n = write_command(&mut out, &args).unwrap();
    assert_eq!(&out[..n], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    assert_eq!(n, command_len(&args));
    assert_eq!(write_command(&mut out[..n - 1], &args), None);
    let mut digits = [0u8; 20];
    assert_eq!(format_u64(0, &mut digits), b"0");
    assert_eq!(format_u64(u64::MAX, &mut digits), b"18446744073709551615");
}

#[test]
fn values_wait_for_their_last_byte() {
    let wire = b"+OK\r\n-ERR no\r\n:-42\r\n$5\r\nab\r\nc\r\n$-1\r\n*-1\r\n*2\r\n$0\r\n\r\n";
    let want = [
        Value::Simple(b"OK"),
        Value::Error(b"ERR no"),
        Value::Int(-42),
        Value::Bulk(b"ab\r\nc"),
        Value::Nil,
        Value::Nil,
        Value::Array(2),
        Value::Bulk(b""),
    ];
    let mut at = 0;
    for w in want {
        // Every proper prefix is incomplete, never an error.
        let rest = &wire[at..];
        let (v, used) = value(rest).unwrap().unwrap();
        for cut in 0..used {
            assert_eq!(value(&rest[..cut]), Ok(None), "{w:?} cut at {cut}");
        }
        assert_eq!(v, w);
        at += used;
    }
    assert_eq!(at, wire.len());
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let cases: [(&[u8], RespError); 7] = [
        (b"?x\r\n", RespError::BadType),
        (b"\r\n", RespError::BadType),
        (b":12a\r\n", RespError::BadNumber),
        (b"$-2\r\n", RespError::BadNumber),
        (b":99999999999999999999\r\n", RespError::BadNumber),
        (b"$1\r\nabc", RespError::BadTerminator),
        (&[b'+'; MAX_LINE], RespError::LineTooLong),
    ];
    for (wire, want) in cases {
        assert_eq!(value(wire), Err(want), "{:?}", String::from_utf8_lossy(wire));
    }
    // A huge length is only incomplete: the caller's buffer limit decides what to do.
    assert_eq!(value(b"$9223372036854775807\r\n"), Ok(None));
}

const ENTRY: &[u8] = b"*2\r\n$15\r\n1700000000000-0\r\n*4\r\n$4\r\ndata\r\n$2\r\nhi\r\n$2\r\nid\r\n$0\r\n\r\n";

#[test]
fn entries_read_whole_with_their_pairs() {
    for cut in 0..ENTRY.len() {
        assert!(entry(&ENTRY[..cut]).unwrap().is_none(), "cut at {cut}");
    }
    let (e, used) = entry(ENTRY).unwrap().unwrap();
    assert_eq!(used, ENTRY.len());
    assert_eq!(e.id, b"1700000000000-0");
    let pairs: Vec<_> = e.pairs().collect();
    assert_eq!(pairs, [(&b"data"[..], &b"hi"[..]), (&b"id"[..], &b""[..])]);
    assert_eq!(entry(b"*3\r\n"), Err(RespError::Unexpected));
    assert_eq!(entry(b"*2\r\n$1\r\n1\r\n*3\r\n"), Err(RespError::Unexpected));
    assert_eq!(entry(b"*2\r\n$1\r\n1\r\n*2\r\n:1\r\n"), Err(RespError::Unexpected));
}

#[test]
fn skip_passes_any_value_fed_byte_by_byte() {
    // An XREAD reply: [[key, [entry, entry]]], then a value that must stay.
    let mut wire = b"*1\r\n*2\r\n$3\r\nkey\r\n*2\r\n".to_vec();
    wire.extend_from_slice(ENTRY);
    wire.extend_from_slice(ENTRY);
    let whole = wire.len();
    wire.extend_from_slice(b"+NEXT\r\n");
    let mut skip = Skip::one();
    let mut at = 0;
    let mut done = false;
    let mut fed = 0;
    while !done {
        fed = (fed + 1).min(wire.len());
        let (used, over) = skip.feed(&wire[at..fed]).unwrap();
        at += used;
        done = over;
    }
    assert_eq!(at, whole);
    assert_eq!(value(&wire[at..]).unwrap().unwrap().0, Value::Simple(b"NEXT"));
    let mut deep = Skip::one();
    assert_eq!(deep.feed(&b"*1\r\n".repeat(9)), Err(RespError::TooDeep));
}
