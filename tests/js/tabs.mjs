// Many tabs of the built-in page in headless Chromium (Debian's, driven by playwright-core): one
// shared connection, a change of leader without loss or repeat, and the page's tokens.
// Usage: node tabs.mjs SERVER_URL SCENARIO [ARG] [SCREENSHOT_DIR]
//   share            8 tabs, one connection; the leader closes; a tab's topic filter
//   insecure         the same on an origin that is not a secure context (no Web Locks)
//   subscribe-token T   the page opened as /?token=T streams; without it, it says why not
//   publish-token P     the form publishes with P typed in its token field; 401 and 403 explained
// Prints one JSON line per check; exits 0 only when every check passed.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const [server, scenario, arg, shots] = process.argv.slice(2);
const log = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let failed = false;
const check = (name, ok, detail) => { log({ check: name, ok: !!ok, detail }); if (!ok) failed = true; };

const publish = async (fields, token) => {
  const headers = token ? { Authorization: 'Bearer ' + token } : {};
  const res = await fetch(server + '/events', { method: 'POST', body: new URLSearchParams(fields), headers });
  if (!res.ok) throw new Error('publish ' + res.status + ' ' + (await res.text()));
  return (await res.text()).trim();
};
const subscribers = async () => (await (await fetch(server + '/stats')).json()).subscribers;
// Polls /stats until `want` subscribers (bounded); returns the last count.
const waitSubscribers = async (want, ms = 10000) => {
  const until = Date.now() + ms;
  let n = await subscribers();
  while (n !== want && Date.now() < until) { await sleep(50); n = await subscribers(); }
  return n;
};

const status = (page) => page.textContent('#status');
const role = (page) => page.getAttribute('#role', 'data-role');
const waitOpen = (page) => page.waitForFunction(() => document.getElementById('status').textContent === 'open');
const shownIds = (page) => page.evaluate(() => [...document.querySelectorAll('#events li[data-id]')].map((li) => li.dataset.id));
const waitShown = (page, id) => page.waitForSelector(`#events li[data-id="${id}"]`, { state: 'attached' });
const dataOf = (page, id) => page.textContent(`#events li[data-id="${id}"] .data`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync',
         // `insecure`: the page's origin is a name, not 127.0.0.1, so it is not a secure context.
         '--host-resolver-rules=MAP tinysse.test 127.0.0.1'],
});
const shot = async (page, name) => {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
};

// 8 tabs (or fewer) of the page in one browser context: one connection, every tab sees every
// event; then the leader closes and the others carry on from where they were.
async function share(origin, tabs, tag) {
  const context = await browser.newContext();
  context.setDefaultTimeout(15000);
  const pages = [];
  for (let i = 0; i < tabs; i++) {
    const page = await context.newPage();
    await page.goto(origin + '/');
    await waitOpen(page);
    pages.push(page);
  }
  const secure = await pages[0].evaluate(() => [window.isSecureContext, !!navigator.locks]);
  log({ info: tag + 'secure context, Web Locks', detail: secure });
  check(tag + 'one connection for all tabs', (await waitSubscribers(1)) === 1, { tabs, subscribers: await subscribers() });
  const roles = await Promise.all(pages.map(role));
  check(tag + 'one leader, the rest followers', roles.filter((r) => r === 'leader').length === 1 &&
    roles.filter((r) => r === 'follower').length === tabs - 1, roles);

  const id = await publish({ data: 'hello, every tab' });
  await Promise.all(pages.map((p) => waitShown(p, id)));
  const data = await Promise.all(pages.map((p) => dataOf(p, id)));
  check(tag + 'every tab shows a published event', data.every((d) => d === 'hello, every tab'), { id, data });
  check(tag + 'still one connection', (await subscribers()) === 1, await subscribers());

  // A publisher may reuse an id (tinysse keeps it verbatim): both events are shown, not deduped.
  await publish({ data: 'reused id, first', id: 'sensor-1' });
  await publish({ data: 'reused id, second', id: 'sensor-1' });
  await Promise.all(pages.map((p) => p.waitForFunction(() =>
    [...document.querySelectorAll('#events li .data')].some((d) => d.textContent === 'reused id, second'))));
  const reused = await Promise.all(pages.map((p) => p.evaluate(() =>
    [...document.querySelectorAll('#events li[data-id="sensor-1"] .data')].map((d) => d.textContent))));
  check(tag + 'events that reuse an id all show', reused.every((r) => r.join() === 'reused id, first,reused id, second'), reused);

  // The leader goes; events published right away (before a new leader is connected) must
  // still reach every remaining tab once, in order.
  const leader = pages[roles.indexOf('leader')];
  const rest = pages.filter((p) => p !== leader);
  await leader.close();
  const ids = [];
  for (let i = 0; i < 20; i++) ids.push(await publish({ data: 'after the leader left ' + i }));
  await Promise.all(rest.map((p) => waitShown(p, ids[19])));
  const seen = await Promise.all(rest.map(async (p) => (await shownIds(p)).filter((i) => ids.includes(i))));
  const bad = seen.map((s, tab) => ({ tab, s })).filter(({ s }) => s.join() !== ids.join());
  check(tag + 'after the leader closed, every tab shows all 20 once, in order', bad.length === 0,
    { tabs: rest.length, published: ids.length, wrong: bad });
  const roles2 = await Promise.all(rest.map(role));
  check(tag + 'a new leader took over', roles2.filter((r) => r === 'leader').length === 1, roles2);
  check(tag + 'one connection again', (await waitSubscribers(1)) === 1, await subscribers());
  check(tag + 'status open in every tab', (await Promise.all(rest.map(status))).every((s) => s === 'open'),
    await Promise.all(rest.map(status)));
  return { context, pages: rest };
}

// A tab's topic filter: its own subscription, only its topics (and events without a topic).
async function filter(page) {
  await page.fill('#filter input[name=topics]', 'sensors/*');
  await page.click('#filter button');
  await page.waitForFunction(() => document.getElementById('topics-shown').textContent === 'sensors/*');
  await waitOpen(page);
  check('filtered tab has its own stream', (await waitSubscribers(2)) === 2, await subscribers());
  const other = await publish({ data: 'not for sensors', topic: 'alerts/door' });
  const mine = await publish({ data: '21.5', event: 'reading', topic: 'sensors/t1' });
  await waitShown(page, mine);
  // One stream delivers in order: the other topic would have arrived before `mine`.
  const ids = await shownIds(page);
  check('topic filter shows only its topics', !ids.includes(other) &&
    (await page.textContent(`#events li[data-id="${mine}"] .name`)) === 'reading', { other, mine });
  await page.fill('#publish input[name=data]', 'to alerts');
  await page.fill('#publish input[name=topic]', 'alerts/door');
  await page.click('#publish button');
  await page.waitForFunction(() => document.getElementById('publish-result').textContent.startsWith('published #'));
  const result = await page.textContent('#publish-result');
  check('publish result says when this tab will not show the event', result.includes('not shown below'), result);
}

async function subscribeToken(token) {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(server + '/?token=' + encodeURIComponent(token));
  await waitOpen(page);
  const id = await publish({ data: 'for token holders', event: 'reading' });
  await waitShown(page, id);
  check('page with ?token= receives events', (await dataOf(page, id)) === 'for token holders', id);
  await page.fill('#stream input[name=text]', 'abc');
  await page.fill('#stream input[name=delay_ms]', '10');
  await page.click('#stream button');
  await page.waitForFunction(() => document.getElementById('stream-state').textContent !== 'streaming');
  check('xhr demo passes the token on', (await page.textContent('#stream-out')) === 'abc', await page.textContent('#stream-state'));

  const bare = await browser.newPage();
  bare.setDefaultTimeout(15000);
  await bare.goto(server + '/');
  await bare.waitForFunction(() => document.getElementById('status').textContent === 'failed');
  const why = await bare.textContent('#stream-error');
  check('page without the token says how to pass it', why.includes('401') && why.includes('?token='), why);
  await shot(bare, 'no-token');
}

async function publishToken(token) {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(server + '/');
  await waitOpen(page);
  const result = () => page.textContent('#publish-result');
  const submit = async (data, typed) => {
    await page.fill('#publish input[name=data]', data);
    await page.fill('#publish input[name=token]', typed);
    const before = await result();
    await page.click('#publish button');
    await page.waitForFunction((b) => document.getElementById('publish-result').textContent !== b, before);
    return result();
  };
  const missing = await submit('no token', '');
  check('publish without the token explains 401', missing.startsWith('401') && missing.includes('publish token field'), missing);
  const wrong = await submit('wrong token', 'not-' + token);
  check('publish with a wrong token explains 401', wrong.startsWith('401') && wrong.includes('not it'), wrong);
  await page.fill('#publish input[name=event]', 'note');
  const ok = await submit('with the typed token', token);
  const id = ok.match(/^published #(\S+?),/)?.[1];
  check('form publishes with the typed token', !!id, ok);
  if (id) {
    await waitShown(page, id);
    check('its event shows with its name', (await dataOf(page, id)) === 'with the typed token' &&
      (await page.textContent(`#events li[data-id="${id}"] .name`)) === 'note', id);
  }
  // The event name stays for the next publish, and the result line says so.
  const again = await submit('second', token);
  check('result line names the event of a later publish', again.includes('as event "note"'), again);

  // 403 comes only to a peer that is not loopback, which this test cannot be: the server's
  // exact answer is played back to see what the page makes of it.
  await page.route('**/events', (route) => route.request().method() === 'POST'
    ? route.fulfill({ status: 403, contentType: 'text/plain', body: 'publishing is allowed from loopback only (set --publish-token)\n' })
    : route.continue());
  const forbidden = await submit('from afar', '');
  check('403 loopback-only says what to do', forbidden.startsWith('403') && forbidden.includes('--publish-token') &&
    forbidden.includes('own machine'), forbidden);
  await shot(page, 'publish-403');
}

try {
  if (scenario === 'share') {
    const { pages } = await share(server, 8, '');
    const roles = await Promise.all(pages.map(role));
    await shot(pages[roles.indexOf('follower')], 'follower');
    await filter(pages[1]);
  } else if (scenario === 'insecure') {
    const origin = server.replace('127.0.0.1', 'tinysse.test');
    const { pages } = await share(origin, 4, 'no Web Locks: ');
    const secure = await pages[0].evaluate(() => window.isSecureContext);
    check('origin is not a secure context (the fallback election ran)', secure === false, secure);
  } else if (scenario === 'subscribe-token') {
    await subscribeToken(arg);
  } else if (scenario === 'publish-token') {
    await publishToken(arg);
  } else {
    check('scenario', false, 'unknown scenario ' + scenario);
  }
} catch (e) {
  check('exception', false, String((e && e.stack) || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
