// tinysse.js: one event stream shared by every tab of an origin (the tinysse client module).
//
// A browser opens at most 6 HTTP/1.1 connections per origin, so a 7th EventSource (a 7th tab of
// a dashboard) hangs. With this module one tab, the leader, holds the stream and hands each event
// to the other tabs over a BroadcastChannel. When the leader closes, another tab becomes leader and
// resumes from the last event id it received (sent as Last-Event-ID): nothing is lost or repeated.
// The leader is elected with the Web Locks API; where it is missing (plain http:// to anything but
// localhost is not a secure context), the tabs elect one over the channel instead.
// The stream is read with fetch() and a WHATWG SSE parser, so every event arrives with its name.
//
//   import { subscribe } from '/tinysse.js';
//   const sub = subscribe({
//     url: '/events',         // default '/events'
//     topics: ['sensors/*'],  // one topic= parameter each; a trailing * matches a prefix
//     clientId: 'alice',      // a named stream: client= (clientId= when url ends in /sse)
//     token: 'T',             // token= (tinysse --subscribe-token)
//     last: 10,               // last=N on a first connection; a tab joining later gets up to N
//                             //   of the events its leader kept
//     onEvent(ev) {},         // ev = { id, event, data }: every event, unnamed ones as 'message';
//                             //   id is '' when the event carried no id: line
//     onStatus(s) {},         // s = { role, state, opens, error }
//   });
//   sub.close();              // this tab leaves; another one takes over the stream if it led
//
// role: 'leader' (this tab holds the stream), 'follower', or 'closed' after sub.close().
// state: 'connecting', 'open', 'reconnecting' (waiting the server's retry: delay), or 'failed':
//   like EventSource, a 4xx answer (401 bad token, 403, 404, 400) or a non-event-stream 200 is
//   final; network errors and 5xx are retried, backing off up to 30 s while they repeat.
// opens: connections opened for this stream so far, by any leader. error: the last error, or null.
// Tabs share a stream when url, topics, clientId and token are the same; different ones are
// different streams (each its own connection).

const KEEP_IDS = 512; // ids remembered per tab, to drop a repeat during a change of leader
const MAX_LAST = 256;

export function subscribe(opts = {}) {
  const onEvent = opts.onEvent || (() => {});
  const onStatus = opts.onStatus || (() => {});
  const stream = streamUrl(opts);
  const name = 'tinysse ' + stream.href;
  const me = Math.random().toString(36).slice(2) + Date.now().toString(36);
  const keep = Math.min(Math.max(opts.last | 0, 0), MAX_LAST);
  const channel = new BroadcastChannel(name);
  const seen = new Map(); // event id -> the leader it came from
  const recent = [];
  let lastId = null; // the last event id this tab received (null: none yet)
  let received = false;
  let status = { role: 'follower', state: 'connecting', opens: 0, error: null };
  let leading = false;
  let closed = false;
  let stop = () => {}; // ends the leader's current connection or wait
  let release = () => {}; // gives the lock back
  const quit = new AbortController();

  const setStatus = (change) => {
    status = { ...status, ...change };
    if (leading) channel.postMessage({ t: 'status', status, from: me });
    onStatus(status);
  };

  // Every event goes through here, from this tab's stream or a leader's. One leader never
  // repeats an event (it resumes by Last-Event-ID), so only an id already delivered by another
  // leader is a repeat: the old leader's last messages overlapping the new one's replay. A
  // publisher that reuses an id (tinysse keeps publisher ids verbatim) still gets every event.
  const deliver = (ev, last, source) => {
    if (ev && ev.id) {
      const first = seen.get(ev.id);
      if (first !== undefined && first !== source) return;
      seen.delete(ev.id);
      seen.set(ev.id, source);
      if (seen.size > KEEP_IDS) seen.delete(seen.keys().next().value);
    }
    lastId = last;
    if (!ev) return;
    received = true;
    if (keep) {
      recent.push({ ev, last });
      if (recent.length > keep) recent.shift();
    }
    onEvent(ev);
  };

  let leaderSeen = 0; // when a leader last spoke (the election without Web Locks)
  channel.onmessage = ({ data: m }) => {
    if (closed) return;
    if (m.t === 'hello') {
      // A tab joined: tell it where the stream is, and give it what it asked to replay.
      if (leading) {
        const n = Math.min(m.last | 0, recent.length);
        channel.postMessage({ t: 'welcome', to: m.from, from: me, lastId, status, recent: n ? recent.slice(-n) : [] });
      }
      return;
    }
    if (m.t === 'bye') return leaderGone();
    leaderSeen = Date.now();
    if (leading) {
      // Two leaders (only without Web Locks, after a tie): the later one in id order steps down.
      if (m.from < me) stepDown();
      else return;
    }
    if (m.t === 'ev') deliver(m.ev, m.last, m.from);
    else if (m.t === 'status') setStatus({ ...m.status, role: 'follower' });
    else if (m.t === 'welcome' && m.to === me) {
      // Only a tab that has seen nothing takes the welcome's replay and position; one that
      // already has live events would show the replay out of order.
      if (!received) {
        if (lastId === null) lastId = m.lastId;
        for (const r of m.recent) deliver(r.ev, r.last, m.from);
      }
      setStatus({ ...m.status, role: 'follower' });
    }
  };

  async function lead() {
    leading = true;
    setStatus({ role: 'leader' });
    let retry = 3000;
    let failures = 0;
    while (leading && !closed) {
      const ctrl = new AbortController();
      stop = () => ctrl.abort();
      setStatus({ state: status.opens ? 'reconnecting' : 'connecting' });
      try {
        const res = await fetch(...request(stream, lastId, opts.last, ctrl.signal));
        const type = res.headers.get('content-type') || '';
        if (res.status !== 200 || !type.startsWith('text/event-stream')) {
          const body = (await res.text().catch(() => '')).trim().slice(0, 200);
          const error = res.status + ' ' + (body || res.statusText);
          const final = res.status === 200 || (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429);
          if (final) return setStatus({ state: 'failed', error });
          throw new Error(error);
        }
        failures = 0;
        setStatus({ state: 'open', opens: status.opens + 1, error: null });
        const feed = parser(lastId, (ev, last) => {
          channel.postMessage({ t: 'ev', ev, last, from: me });
          deliver(ev, last, me);
        }, (ms) => { retry = ms; });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          feed(value);
        }
        // The stream ended cleanly (e.g. --stream-timeout): come back after retry:.
      } catch (e) {
        if (!leading || closed) break;
        failures += 1;
        setStatus({ error: String((e && e.message) || e) });
      }
      if (!leading || closed) break;
      setStatus({ state: 'reconnecting' });
      const wait = Math.min(retry * 2 ** Math.max(failures - 1, 0), Math.max(retry, 30000));
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, wait * (1 + Math.random() * 0.2));
        stop = () => { clearTimeout(timer); resolve(); };
      });
    }
  }

  function stepDown() {
    leading = false;
    stop();
    release();
    setStatus({ role: 'follower', state: 'connecting' });
  }

  // With Web Locks: the lock is held for as long as this subscription lives (the browser frees
  // it when the tab goes), and the next tab in the lock's queue becomes leader.
  const withLock = (lock) => {
    if (!lock || closed) return false;
    return new Promise((resolve) => {
      release = () => resolve(true);
      lead();
    });
  };
  if (navigator.locks) {
    navigator.locks.request(name, { ifAvailable: true }, withLock).then((got) => {
      if (got || closed) return;
      channel.postMessage({ t: 'hello', from: me, last: keep });
      return navigator.locks.request(name, { signal: quit.signal }, withLock);
    }).catch(() => {});
  }

  // Without Web Locks: a tab that hears no leader for a while (or hears it leave) asks once more
  // and, still unanswered, leads; a tie resolves itself in onmessage.
  let claiming = false;
  async function leaderGone() {
    if (leading || closed || claiming) return;
    claiming = true;
    await sleep(Math.random() * 300);
    const asked = Date.now();
    channel.postMessage({ t: 'hello', from: me, last: keep });
    await sleep(400);
    claiming = false;
    if (!closed && !leading && leaderSeen < asked) lead();
  }
  let timer = 0;
  if (!navigator.locks) {
    leaderGone();
    timer = setInterval(() => {
      if (leading) channel.postMessage({ t: 'status', status, from: me }); // a heartbeat
      else if (Date.now() - leaderSeen > 3000) leaderGone();
    }, 1000);
    addEventListener('pagehide', () => { if (leading) channel.postMessage({ t: 'bye' }); });
  }

  return {
    get status() { return status; },
    get lastId() { return lastId; },
    close() {
      if (closed) return;
      const led = leading;
      leading = false;
      stop();
      if (led && !navigator.locks) channel.postMessage({ t: 'bye' });
      closed = true;
      clearInterval(timer);
      release();
      quit.abort();
      channel.close();
      status = { ...status, role: 'closed', state: 'closed' };
      onStatus(status);
    },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function streamUrl({ url = '/events', topics = [], clientId, token }) {
  const u = new URL(url, location.href);
  for (const t of [].concat(topics)) if (t) u.searchParams.append('topic', t);
  if (clientId) u.searchParams.set(/\/sse$/.test(u.pathname) ? 'clientId' : 'client', clientId);
  if (token) u.searchParams.set('token', token);
  return u;
}

// fetch() arguments for one connection: resume after lastId, or ask for the last N events.
function request(stream, lastId, last, signal) {
  const u = new URL(stream);
  const headers = { Accept: 'text/event-stream' };
  if (lastId) {
    // A header value must be a byte string; other ids go in the query (tinysse reads both).
    if (/^[\x20-\x7e]*$/.test(lastId)) headers['Last-Event-ID'] = lastId;
    else u.searchParams.set('lastEventId', lastId);
  } else if (last > 0) {
    u.searchParams.set('last', String(last | 0));
  }
  return [u, { headers, cache: 'no-store', signal }];
}

// An SSE parser after the WHATWG rules. Feed it decoded text (TextDecoderStream drops a leading
// BOM); it calls dispatch(ev, lastEventId) per event (ev null when a block only set the id) and
// retry(ms) for a valid retry: field. Lines end at CRLF, LF or CR, also when split across chunks.
export function parser(lastEventId, dispatch, retry = () => {}) {
  let buf = '';
  let afterCR = false;
  let data = '';
  let type = '';
  let id = lastEventId || '';
  let ownId = null;
  const line = (l) => {
    if (l === '') {
      const ev = data ? { id: ownId || '', event: type || 'message', data: data.slice(0, -1) } : null;
      if (ev || ownId !== null) dispatch(ev, id);
      data = '';
      type = '';
      ownId = null;
      return;
    }
    if (l[0] === ':') return; // a comment: tinysse's heartbeat
    const colon = l.indexOf(':');
    const field = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') data += value + '\n';
    else if (field === 'event') type = value;
    else if (field === 'id' && !value.includes('\0')) id = ownId = value;
    else if (field === 'retry' && /^[0-9]+$/.test(value)) retry(Number(value));
  };
  return (chunk) => {
    buf += chunk;
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i];
      if (c === '\n' && afterCR && i === start) {
        start = i + 1; // the LF of a CRLF whose CR ended the previous line
      } else if (c === '\r' || c === '\n') {
        line(buf.slice(start, i));
        start = i + 1;
      }
      afterCR = c === '\r';
    }
    buf = buf.slice(start);
  };
}
