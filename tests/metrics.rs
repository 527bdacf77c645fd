//! GET /metrics: Prometheus text format with the counters an operator graphs.

mod util;

use util::*;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_follow_what_happens() {
    let server = Server::start(&["--max-clients", "16"]);
    let a = server.addr;
    let mut s1 = SseStream::open(a, "/events");
    let mut s2 = SseStream::open(a, "/events?client=c1");
    for i in 0..3 {
        publish(a, &format!("e{i}"));
    }
    for _ in 0..3 {
        s1.next_event(T);
        s2.next_event(T);
    }
    assert_eq!(publish_form(a, &[("data", "x"), ("client", "nobody")]).status, 404);
    let r = get(a, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header_has("content-type", "text/plain"));
    let text = r.text();
    // Every sample line is `name[{labels}] value`, every metric has HELP and TYPE.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut parts = line.split_whitespace();
        let (name, value) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(name.starts_with("tinysse_") && parts.next().is_none(), "{line}");
        value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
        let base = name.split('{').next().unwrap();
        assert!(text.contains(&format!("# TYPE {base} ")), "no TYPE for {base}");
    }
    assert_eq!(metric(&text, "tinysse_subscribers"), 2.0);
    assert_eq!(metric(&text, "tinysse_events_published_total"), 3.0);
    assert_eq!(metric(&text, "tinysse_events_delivered_total"), 6.0);
    assert_eq!(metric(&text, "tinysse_connections{state=\"stream\"}"), 2.0);
    assert_eq!(metric(&text, "tinysse_dropped_total{reason=\"targeted_missing\"}"), 1.0);
    assert_eq!(metric(&text, "tinysse_slab_capacity"), 24.0);
    assert!(metric(&text, "tinysse_bytes_written_total") > 0.0);
    assert_eq!(metric(&text, "tinysse_history_events"), 3.0);
}
