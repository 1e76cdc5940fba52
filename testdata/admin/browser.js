// End-to-end test of the Socket.IO Admin UI (@socket.io/admin-ui's built
// bundle, ui/dist, served by the Go test from node_modules) against
// sockstream nodes, in headless Chromium (Debian's package, driven by
// playwright-core; no browser download).
// Usage: node browser.js UI_URL SERVER_URL USERNAME PASSWORD SOCKET_ID SERVER_IDS OUT_DIR
//   SERVER_IDS: comma-separated server ids the Servers page must list.
// Logs in through the UI's connection form, checks that the Servers page
// lists every server and the Sockets page the socket SOCKET_ID, then clicks
// that socket's disconnect button (the UI's _disconnect action).
// Prints JSON lines; writes OUT_DIR/failure.png on failure.
'use strict';
const { chromium } = require('playwright-core');
const [uiURL, serverURL, username, password, socketID, serverIDs, outDir] = process.argv.slice(2);
const out = (o) => console.log(JSON.stringify(o));

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => out({ pageerror: 'ui', error: String(e) }));
  // The page asks for web fonts and icons from CDNs: the test is offline.
  const local = [new URL(uiURL).origin, new URL(serverURL).origin];
  await page.route('**/*', (route) =>
    local.includes(new URL(route.request().url()).origin) ? route.continue() : route.abort());
  try {
    await page.goto(uiURL);
    // No server in localStorage: the connection form opens.
    await page.getByLabel('Server URL').fill(serverURL);
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.getByLabel('Server URL').waitFor({ state: 'hidden' });
    out({ step: 'connected' });

    await page.goto(uiURL + '#/servers');
    for (const id of serverIDs.split(',')) {
      await page.locator('tr', { hasText: id }).first().waitFor();
    }
    const servers = await page.locator('tbody tr').allTextContents();
    out({ step: 'servers', servers });

    await page.goto(uiURL + '#/sockets');
    const row = page.locator('tbody tr', { hasText: socketID }).first();
    await row.waitFor();
    out({ step: 'socket', row: await row.textContent() });
    await row.locator('button').click();
    // The click on the row opens the socket's page too: back to the list,
    // where the socket must be gone (socket_disconnected came back).
    await page.goto(uiURL + '#/sockets');
    await page.waitForFunction((id) => ![...document.querySelectorAll('tbody tr')].some((tr) => tr.textContent.includes(id)), socketID);
    out({ step: 'disconnected' });
    out({ done: true });
  } catch (e) {
    out({ error: String((e && e.stack) || e) });
    await page.screenshot({ path: outDir + '/failure.png' }).catch(() => {});
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
})();
