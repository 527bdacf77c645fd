// HTTP/2 in front (docs/nginx-http2.conf): one page in headless Chromium opens 10 EventSources
// through nginx over TLS and all 10 receive an event; straight to tinysse (HTTP/1.1) only 6 of
// them get a connection, the limit the proxy removes.
// Usage: node h2.mjs HTTPS_PROXY_URL SERVER_URL. Prints one JSON line per check; exits 0 only
// when every check passed.
import { chromium } from 'playwright-core';

const [proxy, server] = process.argv.slice(2);
const log = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let failed = false;
const check = (name, ok, detail) => { log({ check: name, ok: !!ok, detail }); if (!ok) failed = true; };
const publish = async (data) => {
  const res = await fetch(server + '/events', { method: 'POST', body: new URLSearchParams({ data }) });
  if (!res.ok) throw new Error('publish ' + res.status);
  return (await res.text()).trim();
};
const subscribers = async () => (await (await fetch(server + '/stats')).json()).subscribers;
const waitSubscribers = async (want) => {
  const until = Date.now() + 10000;
  let n = await subscribers();
  while (n !== want && Date.now() < until) { await sleep(50); n = await subscribers(); }
  return n;
};

// Opens n EventSources to `url` in the page; window.got[i] collects the data stream i received.
const open = (page, url, n) => page.evaluate(([url, n]) => {
  window.streams = [];
  window.got = [];
  for (let i = 0; i < n; i++) {
    const es = new EventSource(url);
    window.got.push([]);
    es.onmessage = (e) => window.got[i].push(e.data);
    window.streams.push(es);
  }
}, [url, n]);
const states = (page) => page.evaluate(() => window.streams.map((es) => es.readyState));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--ignore-certificate-errors'],
});
try {
  // Straight to tinysse over HTTP/1.1: the 7th stream waits for a connection that never frees.
  const direct = await browser.newPage();
  direct.setDefaultTimeout(15000);
  // A page of the origin that holds no stream of its own (the built-in page would).
  await direct.goto(server + '/stats');
  await open(direct, server + '/events', 10);
  await direct.waitForFunction(() => window.streams.filter((es) => es.readyState === 1).length >= 6);
  await sleep(1500);
  const hung = await direct.evaluate(async () => {
    const ctrl = new AbortController();
    setTimeout(() => ctrl.abort(), 1500);
    return fetch('/stats', { signal: ctrl.signal }).then(() => false, () => true);
  });
  const s = await states(direct);
  check('HTTP/1.1: only 6 of 10 EventSources connect, the rest stay in readyState 0',
    s.filter((x) => x === 1).length === 6 && s.filter((x) => x === 0).length === 4, s);
  check('HTTP/1.1: a fetch from the same page hangs too', hung, hung ? 'aborted after 1.5 s' : 'answered');
  await direct.close();
  check('the 6 direct streams are gone', (await waitSubscribers(0)) === 0, await subscribers());

  // Through nginx over HTTP/2: one TLS connection carries all 10.
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(proxy + '/stats');
  const protocol = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  check('the page came over HTTP/2', protocol === 'h2', protocol);
  await open(page, proxy + '/events', 10);
  await page.waitForFunction(() => window.streams.every((es) => es.readyState === 1));
  check('HTTP/2: all 10 EventSources open', true, await states(page));
  check('tinysse has the 10 subscribers', (await waitSubscribers(10)) === 10, await subscribers());
  const id = await publish('over HTTP/2');
  await page.waitForFunction(() => window.got.every((g) => g.includes('over HTTP/2')));
  const got = await page.evaluate(() => window.got);
  check('HTTP/2: all 10 receive a published event', got.every((g) => g.length === 1 && g[0] === 'over HTTP/2'), { id, got });

  // The built-in page (tinysse.js, fetch-based) behind the same proxy.
  const dash = await browser.newPage();
  dash.setDefaultTimeout(15000);
  await dash.goto(proxy + '/');
  await dash.waitForFunction(() => document.getElementById('status').textContent === 'open');
  const id2 = await publish('to the dashboard over HTTP/2');
  await dash.waitForSelector(`#events li[data-id="${id2}"]`, { state: 'attached' });
  check('HTTP/2: the built-in page streams through the proxy', (await dash.textContent(`#events li[data-id="${id2}"] .data`)) === 'to the dashboard over HTTP/2', id2);
} catch (e) {
  check('exception', false, String((e && e.stack) || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
