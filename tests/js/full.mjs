// One EventSource against a server whose subscriber slots are all taken, for tests/field.rs: the
// npm `eventsource` client, or the one in headless Chromium (Debian's, via playwright-core).
// Usage: node full.mjs node|chromium BASE_URL TIMEOUT_MS
// Prints one JSON line per open, error (with readyState) and message. Exits 0 after the first
// message, 1 when the EventSource is CLOSED for good (readyState 2) or nothing came in time.
import { EventSource } from 'eventsource';
import { chromium } from 'playwright-core';

const [mode, base, timeoutMs] = [process.argv[2], process.argv[3], Number(process.argv[4] || 20000)];
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
let browser = null;
const finish = async (code) => {
  if (browser) await browser.close().catch(() => {});
  process.exit(code);
};
const report = (ev) => {
  out(ev);
  if (ev.type === 'message') finish(0);
  // Closed for good: the client will never reconnect by itself.
  if (ev.readyState === 2) finish(1);
};
setTimeout(() => { out({ type: 'timeout' }); finish(1); }, timeoutMs);

// The same listeners in both clients; `report` gets plain objects.
const attach = (es, report) => {
  es.onopen = () => report({ type: 'open', readyState: es.readyState });
  es.onerror = () => report({ type: 'error', readyState: es.readyState });
  es.onmessage = (e) => report({ type: 'message', data: e.data, readyState: es.readyState });
};

if (mode === 'node') {
  attach(new EventSource(base + '/events'), report);
} else if (mode === 'chromium') {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  await page.exposeFunction('report', report);
  // Same origin as the stream: a short, non-stream page the server always has room for.
  await page.goto(base + '/stats');
  await page.evaluate(`(${attach.toString()})(new EventSource('/events'), window.report)`);
} else {
  out({ type: 'usage', mode });
  finish(2);
}
