// A real EventSource client (npm eventsource@4) for the Rust integration tests.
// Usage: node collect.mjs URL COUNT TIMEOUT_MS
// Prints one JSON line per 'open' and per message, then exits after COUNT messages (status 0)
// or after TIMEOUT_MS (status 1).
import { EventSource } from 'eventsource';

const [url, count, timeoutMs] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] || 20000)];
const es = new EventSource(url);
let received = 0;
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

es.onopen = () => out({ type: 'open' });
es.onerror = () => out({ type: 'error', readyState: es.readyState });
es.onmessage = (e) => {
  out({ type: 'message', id: e.lastEventId, data: e.data });
  received += 1;
  if (received >= count) {
    es.close();
    process.exit(0);
  }
};
setTimeout(() => {
  out({ type: 'timeout', received });
  es.close();
  process.exit(1);
}, timeoutMs);
