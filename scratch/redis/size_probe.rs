// For size_probe.sh only (appended to a copy of the server's main.rs): calls every link API so
// that fat LTO keeps all of the link. Not part of the link; never built in this crate.

#[allow(dead_code)]
struct ProbeSink<'s>(&'s mut Server, u64);

impl cluster::link::Sink for ProbeSink<'_> {
    fn entry(&mut self, e: &cluster::link::Entry<'_>) {
        self.1 += (e.event_id().len() + e.fields.data.len() + e.fields.topic.len()) as u64;
    }
    fn claim(&mut self, c: &cluster::link::Claim<'_>) {
        self.1 += c.stream + u64::from(c.mine) + c.instance + c.client.len() as u64;
    }
    fn acked(&mut self, token: u64, ack: &cluster::link::Ack<'_>) {
        self.1 += token + ack.event_id.len() as u64;
    }
    fn failed(&mut self, token: u64, e: cluster::link::PublishError) {
        log::warn!("{token}: {e}");
    }
}

fn probe(url: &str, server: &mut Server) {
    use cluster::link::*;
    let url = match RedisUrl::parse(url) {
        Ok(u) => u,
        Err(e) => return fatal(&e.to_string()),
    };
    let mut link = Link::new(LinkConfig::new(url, 7), mio::Token(1), mio::Token(2));
    let mut poll = mio::Poll::new().unwrap();
    let mut events = mio::Events::with_capacity(8);
    let mut sink = ProbeSink(server, 0);
    let start = std::time::Instant::now();
    for n in 0..1000u64 {
        let now = start.elapsed().as_millis() as u64;
        let _ = poll.poll(&mut events, Some(std::time::Duration::from_millis(link.deadline().saturating_sub(now))));
        for ev in events.iter() {
            link.on_ready(ev.token(), now, poll.registry(), &mut sink);
        }
        link.tick(now, poll.registry(), &mut sink);
        let _ = link.publish(&Fields { data: b"x", client: if n % 2 == 0 { b"" } else { b"c" }, ..Default::default() }, n);
        let _ = link.claim(b"c", n, n);
        if link.take_resync() {
            let _ = link.readd(b"c");
        }
        let _ = link.release(b"c");
        let st = link.stats();
        sink.1 += st.lag_ms(now) + st.reconnects + link.last_id().len() as u64;
    }
}
