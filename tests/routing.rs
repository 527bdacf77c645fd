//! Topic routing as a client sees it: `topic` on publish (form or query), `?topic=` on
//! subscribe, prefix patterns. tests/delivery.rs covers the bounds and client routing.
mod util;
use util::*;

#[test]
fn topic_subscription_filters_events() {
    let s = Server::start(&[]);
    let mut a = SseStream::open(s.addr, "/events?topic=a");
    let mut all = SseStream::open(s.addr, "/events");
    publish_ok(s.addr, &[("data", "for b"), ("topic", "b")]);
    let ida = publish_ok(s.addr, &[("data", "for a"), ("topic", "a")]);
    let idn = publish(s.addr, "for everyone");
    // `a` gets topic a and untopiced events, never topic b (ordering proves it)
    let f = a.event();
    assert_eq!(
        (f.id.as_deref(), f.data_str().as_str()),
        (Some(ida.as_str()), "for a"),
        "topic=a subscriber got {:?}",
        f.raw
    );
    assert_eq!(a.event().id.as_deref(), Some(idn.as_str()));
    // a subscriber without topic gets everything
    let got: Vec<_> = (0..3).map(|_| all.event().data_str()).collect();
    assert_eq!(got, ["for b", "for a", "for everyone"]);
}

#[test]
fn topic_prefix_wildcard() {
    let s = Server::start(&[]);
    let mut sensors = SseStream::open(s.addr, "/events?topic=sensors/*");
    let mut sensors_enc = SseStream::open(s.addr, "/events?topic=sensors%2F%2A");
    publish_ok(s.addr, &[("data", "other"), ("topic", "other/x")]);
    publish_ok(s.addr, &[("data", "almost"), ("topic", "sensorsX")]);
    publish_ok(s.addr, &[("data", "t"), ("topic", "sensors/temp")]);
    publish_ok(s.addr, &[("data", "h"), ("topic", "sensors/room1/humidity")]);
    for st in [&mut sensors, &mut sensors_enc] {
        assert_eq!(st.event().data_str(), "t");
        assert_eq!(st.event().data_str(), "h");
    }
}

#[test]
fn topic_and_client_raw_publish_query() {
    let s = Server::start(&[]);
    let mut a = SseStream::open(s.addr, "/events?topic=a");
    let r = publish_raw(s.addr, "topic=b", Some("text/plain"), b"nope");
    assert_eq!(r.status, 200);
    let r = publish_raw(s.addr, "topic=a&event=e", Some("text/plain"), b"yes");
    assert_eq!(r.status, 200);
    let f = a.event();
    assert_eq!((f.event.as_deref(), f.data_str().as_str()), (Some("e"), "yes"));
}
