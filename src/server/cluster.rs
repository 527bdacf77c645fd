//! Cluster mode in the loop: the link's sockets and deadline, and its `Sink`, which publishes
//! what the link reads into the hub (with the entry's id), answers waiting publishes, and ends
//! streams whose client id a newer stream claimed.

use super::Server;
use crate::cluster::node::{CLAIM, NOBODY, SlotState};
use crate::cluster::{Ack, Claim, Entry, PublishError};
use crate::conn::{Answer, Conns};
use crate::limits::Fields;
use crate::publish::Hub;
use crate::time::Millis;
use log::debug;
use mio::Token;

struct Sink<'a> {
    hub: &'a mut Hub,
    conns: &'a mut Conns,
    slots: &'a mut [SlotState],
    releases: &'a mut Vec<u32>,
    /// Publishes nobody waits for that failed, and the last reason.
    unsent: (u64, Option<PublishError>),
    now: Millis,
}

impl crate::cluster::Sink for Sink<'_> {
    fn entry(&mut self, e: &Entry<'_>) {
        let fields = Fields { id: e.event_id(), ..e.fields };
        if let Err(why) = self.hub.publish_replicated(&fields) {
            debug!("redis entry {} not kept: {why}", String::from_utf8_lossy(e.redis_id));
        }
    }

    fn claim(&mut self, c: &Claim<'_>) {
        self.conns.on_claim(c.client, c.stream, c.mine, self.slots, self.releases, self.hub, self.now);
    }

    fn acked(&mut self, token: u64, ack: &Ack<'_>) {
        if token != NOBODY && token != CLAIM {
            self.conns.answer_publish(token, Answer::Taken(ack.event_id), self.slots, self.now);
        }
    }

    fn failed(&mut self, token: u64, error: PublishError) {
        match token {
            NOBODY => self.unsent = (self.unsent.0 + 1, Some(error)),
            CLAIM => debug!("a stream's claim was not taken ({error}); it goes on here"),
            token => {
                let answer = match error {
                    PublishError::ClientNotConnected => {
                        self.hub.stats.targeted_missing += 1;
                        Answer::NoClient
                    }
                    e => Answer::Unavailable(e.message()),
                };
                self.conns.answer_publish(token, answer, self.slots, self.now);
            }
        }
    }
}

impl Server {
    /// When the link needs the loop next (`NEVER` outside cluster mode).
    pub(super) fn cluster_deadline(&self) -> Millis {
        self.hub.cluster.as_ref().map_or(Millis::NEVER, |node| Millis(node.link.deadline()))
    }

    /// Whether `token` is one of the link's sockets.
    pub(super) fn cluster_owns(&self, token: Token) -> bool {
        self.hub.cluster.as_ref().is_some_and(|node| node.link.owns(token))
    }

    /// Readiness of one of the link's sockets (`Some`), or the turn's tick (`None`): after the
    /// turn's publishes were queued and before the fan-out pass, so that entries read now go
    /// out in this turn's pass.
    pub(super) fn cluster_run(&mut self, token: Option<Token>, now: Millis) {
        let Some(mut node) = self.hub.cluster.take() else { return };
        let node_ref = &mut *node;
        let mut sink = Sink {
            hub: &mut self.hub,
            conns: &mut self.conns,
            slots: &mut node_ref.slots,
            releases: &mut node_ref.releases,
            unsent: (0, None),
            now,
        };
        let registry = self.poll.registry();
        match token {
            Some(token) => node_ref.link.on_ready(token, now.0, registry, &mut sink),
            None => node_ref.link.tick(now.0, registry, &mut sink),
        }
        if let (count, Some(why)) = sink.unsent {
            node_ref.unsent("publisher", why, count, now.0);
        }
        for slot in node_ref.releases.drain(..) {
            let client = self.hub.filters.client(slot);
            if !client.is_empty() {
                let _ = node_ref.link.release(client);
            }
        }
        if node_ref.link.take_resync() {
            // Redis lost this instance's presence set (restarted without its data): every
            // client streaming here is put back.
            for (slot, state) in node_ref.slots.iter().enumerate() {
                let client = self.hub.filters.client(slot as u32);
                if state.holds && !client.is_empty() {
                    let _ = node_ref.link.readd(client);
                }
            }
        }
        self.hub.cluster = Some(node);
    }
}
