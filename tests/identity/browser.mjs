// A person logs in through a real browser (Debian's Chromium, driven by
// playwright-core): the gateway's /auth/login, the provider's own login and
// consent pages, back through /auth/callback to /docs/; then, from the page,
// what a frontend does with the session cookie: /auth/session, a read, a
// write without X-CSRF (refused) and with it, and an EventSource on
// /v1/events receiving the change that write made. Started by
// tests/api/identity.rs; prints one JSON line with what it saw.
//
//   GATEWAY_URL=http://127.0.0.1:PORT WHO=bob node tests/identity/browser.mjs
import { chromium } from 'playwright-core';

const base = process.env.GATEWAY_URL;
const who = process.env.WHO ?? 'bob';

const seen = {};
let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
      '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run',
    ],
  });
  const page = await browser.newPage();
  await page.goto(`${base}/auth/login?return_to=/docs/`);
  // The provider's login form (devInteractions: any password), then consent.
  await page.fill('input[name="login"]', who);
  await page.fill('input[name="password"]', 'any');
  await page.click('button[type="submit"]');
  await page.waitForLoadState();
  if (!page.url().startsWith(`${base}/docs/`)) {
    await page.click('button[type="submit"]');
  }
  await page.waitForURL(`${base}/docs/**`, { timeout: 15000 });
  seen.landed = new URL(page.url()).pathname;
  const cookies = await page.context().cookies(base);
  seen.cookie = cookies
    .filter((c) => c.name === '__Host-gateway-session')
    .map((c) => ({ httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite, path: c.path }))[0] ?? null;

  Object.assign(seen, await page.evaluate(async () => {
    const out = {};
    out.session = await (await fetch('/auth/session')).json();
    out.read = (await fetch('/v1/account')).status;
    const patch = (headers) => fetch('/v1/account', {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ city: 'Lund' }),
    });
    out.write_without_csrf = (await patch({})).status;
    const events = new EventSource('/v1/events');
    const event = new Promise((resolve, reject) => {
      events.addEventListener('account.updated', (e) => resolve(JSON.parse(e.data)));
      setTimeout(() => reject(new Error('no account.updated event within 15 s')), 15000);
    });
    await new Promise((resolve) => { events.onopen = resolve; });
    out.write = (await patch({ 'X-CSRF': '1' })).status;
    out.event = await event;
    events.close();
    return out;
  }));
} catch (error) {
  seen.error = String(error);
} finally {
  await browser?.close();
}
console.log(JSON.stringify(seen));
