// The SSE parser of src/assets/tinysse.js against the WHATWG rules, run in Node: every input is
// fed whole, one byte at a time and split at every position, through TextDecoderStream as the
// leader does. Usage: node parser.mjs. Prints one JSON line per check; exits 0 only when all pass.
import { parser } from '../../src/assets/tinysse.js';

const log = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
let failed = false;
const check = (name, ok, detail) => { log({ check: name, ok: !!ok, detail }); if (!ok) failed = true; };

// Parses `bytes` delivered in the given chunks; returns what was dispatched and retry values.
async function parse(bytes, cuts, lastId = '') {
  const out = [];
  const feed = parser(lastId, (ev, last) => out.push(ev ? { ...ev, last } : { idOnly: last }), (ms) => out.push({ retry: ms }));
  const chunks = [];
  let at = 0;
  for (const c of [...cuts, bytes.length]) { chunks.push(bytes.slice(at, c)); at = c; }
  const source = new ReadableStream({ start(c) { for (const x of chunks) c.enqueue(x); c.close(); } });
  const reader = source.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    feed(value);
  }
  return out;
}

// The same result whole, byte by byte, and cut in two at each position.
async function same(name, input, want, lastId) {
  const bytes = typeof input === 'string' ? new TextEncoder().encode(input) : input;
  const ways = [[], [...Array(bytes.length).keys()].slice(1)];
  for (let i = 1; i < bytes.length; i++) ways.push([i]);
  for (const cuts of ways) {
    const got = await parse(bytes, cuts, lastId);
    if (JSON.stringify(got) !== JSON.stringify(want)) return check(name, false, { cuts, got, want });
  }
  check(name, true, want.length + ' dispatched');
}

const ev = (data, event = 'message', id = '', last = id) => ({ id, event, data, last });

await same('unnamed event', 'data: hello\n\n', [ev('hello')]);
await same('named event with id', 'id: 7\nevent: reading\ndata: 21.5\n\n', [ev('21.5', 'reading', '7')]);
await same('data lines join with LF', 'data: a\ndata: b\ndata:\n\n', [ev('a\nb\n')]);
await same('CRLF line ends', 'id: 1\r\ndata: x\r\n\r\ndata: y\r\n\r\n', [ev('x', 'message', '1'), ev('y', 'message', '', '1')]);
await same('CR line ends', 'data: x\r\rdata: y\r\r', [ev('x'), ev('y')]);
await same('mixed line ends', 'data: a\r\ndata: b\rdata: c\n\r\n', [ev('a\nb\nc')]);
await same('one space after the colon is dropped, no more', 'data:x\n\ndata:  y\n\n', [ev('x'), ev(' y')]);
await same('a field without colon has an empty value', 'data\n\ndata\ndata\n\n', [ev(''), ev('\n')]);
await same('comments are ignored', ': heartbeat\n:\ndata: z\n: between\n\n', [ev('z')]);
await same('retry: digits only', 'retry: 1500\n\nretry: 15x\nretry: -1\nretry:\n\nretry: 20\n\n', [{ retry: 1500 }, { retry: 20 }]);
await same('unknown fields are ignored', 'foo: bar\nDATA: no\ndata: yes\n\n', [ev('yes')]);
await same('event name without data dispatches nothing, and resets', 'event: x\n\ndata: y\n\n', [ev('y')]);
await same('an id-only block moves the last id', 'id: 9\n\ndata: after\n\n', [{ idOnly: '9' }, ev('after', 'message', '', '9')]);
await same('an empty id clears it', 'id: 3\ndata: a\n\nid\ndata: b\n\n', [ev('a', 'message', '3'), ev('b', 'message', '', '')]);
await same('an id with NUL is ignored', 'id: 5\ndata: a\n\nid: x\0y\ndata: b\n\n', [ev('a', 'message', '5'), ev('b', 'message', '', '5')]);
await same('the last id starts where the connection resumed', 'data: a\n\n', [ev('a', 'message', '', '42')], '42');
await same('an event without its blank line is not dispatched', 'data: a\n\ndata: cut off\n', [ev('a')]);
await same('a leading BOM is dropped', new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('data: b\n\n')]), [ev('b')]);
await same('UTF-8 split across chunks', 'event: é\ndata: 21 °C ✓ 🌡\n\n', [ev('21 °C ✓ 🌡', 'é')]);
await same("tinysse's own stream", 'retry: 3000\n\nevent: gap\ndata: {"last_event_id": "1", "oldest": null}\n\n: \n\nid: 10\nevent: ping\ndata: {"time": 1}\n\n',
  [{ retry: 3000 }, ev('{"last_event_id": "1", "oldest": null}', 'gap'), ev('{"time": 1}', 'ping', '10')]);
process.exit(failed ? 1 : 0);
