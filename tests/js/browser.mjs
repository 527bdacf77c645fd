// Loads tinysse's built-in page in headless Chromium (Debian's, driven by playwright-core) and
// checks what a person would see. Usage: node browser.mjs BASE_URL SCREENSHOT_PATH
// The server must run with --tick 1 and a short --stream-timeout. Prints one JSON line per
// check; exits 0 only when every check passed.
import { chromium } from 'playwright-core';

const [base, screenshot] = [process.argv[2], process.argv[3]];
const log = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const publish = async (data) => {
  const res = await fetch(base + '/events', { method: 'POST', body: new URLSearchParams({ data }) });
  if (!res.ok) throw new Error('publish ' + res.status);
  return (await res.text()).trim();
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
let failed = false;
const check = (name, ok, detail) => { log({ check: name, ok, detail }); if (!ok) failed = true; };
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(base + '/');
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('open'));
  check('connected', true, await page.textContent('#status'));

  // An event published over HTTP appears in the list.
  const id = await publish('hello from curl');
  await page.waitForSelector(`#events li[data-id="${id}"]`);
  check('published event appears', (await page.textContent(`#events li[data-id="${id}"] .data`)) === 'hello from curl', id);

  // The custom `ping` listener fires (server runs --tick 1).
  await page.waitForFunction(() => document.getElementById('ping').textContent.includes('time'));
  check('ping listener fired', true, await page.textContent('#ping'));

  // The publish form works from the page itself.
  await page.fill('#publish input[name=data]', 'typed in the page');
  await page.click('#publish button');
  await page.waitForFunction(() => [...document.querySelectorAll('#events li .data')].some((e) => e.textContent === 'typed in the page'));
  check('publish form', true, await page.textContent('#publish-result'));

  // XHR demo: partial text is visible before the stream ends (readyState 3).
  await page.fill('#stream input[name=text]', 'abcdefghij');
  await page.fill('#stream input[name=delay_ms]', '150');
  await page.click('#stream button');
  let partial = null;
  const until = Date.now() + 10000;
  while (Date.now() < until) {
    const [out, state] = await page.evaluate(() => [document.getElementById('stream-out').textContent, document.getElementById('stream-state').textContent]);
    if (state === 'streaming' && out.length > 0 && out.length < 10) { partial = out; break; }
    await sleep(20);
  }
  check('xhr shows partial text while streaming', partial !== null && 'abcdefghij'.startsWith(partial), partial);
  await page.waitForFunction(() => document.getElementById('stream-state').textContent === 'done');
  check('xhr stream completes', (await page.textContent('#stream-out')) === 'abcdefghij', await page.textContent('#stream-out'));

  // After --stream-timeout the page reconnects (Last-Event-ID) and shows every event published
  // in between, each once.
  const opensBefore = Number(await page.textContent('#opens'));
  const ids = [];
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    ids.push(await publish('burst ' + ids.length));
    await sleep(100);
    const opens = Number(await page.textContent('#opens'));
    if (opens >= opensBefore + 1 && ids.length >= 30) break;
  }
  const last = ids[ids.length - 1];
  await page.waitForSelector(`#events li[data-id="${last}"]`);
  const shown = await page.evaluate(() => [...document.querySelectorAll('#events li')].map((li) => li.dataset.id));
  const missing = ids.filter((i) => !shown.includes(i));
  const dupes = ids.filter((i) => shown.filter((s) => s === i).length !== 1);
  const opensAfter = Number(await page.textContent('#opens'));
  check('reconnected after stream timeout', opensAfter > opensBefore, { opensBefore, opensAfter, status: await page.textContent('#status') });
  check('every event shown exactly once across reconnects', missing.length === 0 && dupes.length === 0, { published: ids.length, missing, dupes });

  await page.screenshot({ path: screenshot, fullPage: true });
  check('screenshot', true, screenshot);
} catch (e) {
  check('exception', false, String(e && e.stack || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
