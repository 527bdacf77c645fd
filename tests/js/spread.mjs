// Many EventSources (npm `eventsource`) in one process, for tests/field.rs's restart test.
// Usage: node spread.mjs URL COUNT TIMEOUT_MS
// Prints {"type":"ready"} once every client is open, then {"type":"reopen","i":..,"t":<epoch ms>}
// the first time each client opens again, then {"type":"done"}, and keeps the clients open (for
// the test to count them) until it is killed or TIMEOUT_MS passes (exit 0 if done, else 1). A
// client CLOSED for good (readyState 2) exits 1 at once.
import { EventSource } from 'eventsource';

const [url, count, timeoutMs] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] || 30000)];
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const opens = new Array(count).fill(0);
let ready = 0;
let reopened = 0;
const all = [];
for (let i = 0; i < count; i++) {
  const es = new EventSource(url);
  all.push(es);
  es.onopen = () => {
    opens[i] += 1;
    if (opens[i] === 1 && ++ready === count) out({ type: 'ready' });
    if (opens[i] === 2) {
      out({ type: 'reopen', i, t: Date.now() });
      if (++reopened === count) {
        out({ type: 'done' });
      }
    }
  };
  es.onerror = () => {
    if (es.readyState === 2) {
      out({ type: 'closed', i });
      process.exit(1);
    }
  };
}
setTimeout(() => {
  out({ type: 'timeout', ready, reopened });
  all.forEach((e) => e.close());
  process.exit(reopened === count ? 0 : 1);
}, timeoutMs);
