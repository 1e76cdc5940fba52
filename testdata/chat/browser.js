// End-to-end test of the chat page in headless Chromium (Debian's package,
// driven by playwright-core; no browser download). Two pages, possibly on two
// nodes, join a room, see each other's presence and typing, exchange
// messages; then page A's connection is cut and restored while B keeps
// talking, and the missed messages must appear on A exactly once.
// Usage: node browser.js URL_A URL_B OUT_DIR
// Prints JSON lines; writes OUT_DIR/chat.png (and OUT_DIR/failure.png on failure).
'use strict';
const { chromium } = require('playwright-core');
const [urlA, urlB, outDir] = process.argv.slice(2);
const out = (o) => console.log(JSON.stringify(o));

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const ctx = await browser.newContext({ viewport: { width: 960, height: 640 } });
  const a = await ctx.newPage();
  const b = await ctx.newPage();
  const pages = { a, b };
  for (const [name, p] of Object.entries(pages)) {
    p.on('pageerror', (e) => out({ pageerror: name, error: String(e) }));
  }
  try {
    await a.goto(urlA);
    await b.goto(urlB);
    for (const p of [a, b]) await p.waitForSelector('#status.up');

    const join = async (p, nick) => {
      await p.fill('#nick', nick);
      await p.fill('#room', 'demo');
      await p.click('#join-btn');
      await p.waitForSelector('#text:not([disabled])');
    };
    await join(a, 'alice');
    await join(b, 'bob');
    await a.waitForSelector('#users li:has-text("bob")');
    await b.waitForSelector('#users li:has-text("alice")');
    await a.waitForSelector('#log .info:has-text("bob joined")');
    out({ step: 'presence' });

    const send = async (p, text) => {
      await p.fill('#text', text);
      await p.click('#send-btn');
    };
    // Typing: A types, B sees it.
    await a.type('#text', 'hel');
    await b.waitForSelector('#typing:has-text("alice is typing")');
    out({ step: 'typing' });
    await a.fill('#text', '');
    await send(a, '<img src=x onerror=alert(1)> hello bob');
    await a.waitForSelector('#log .msg .state:text-is("delivered")');
    await b.waitForSelector('#log .msg:has-text("hello bob")');
    const rendered = await b.$eval('#log .msg:last-child .text', (e) => ({ text: e.textContent, html: e.innerHTML, imgs: document.querySelectorAll('#log img').length }));
    out({ step: 'escaped', rendered });
    await send(b, 'hi alice');
    await a.waitForSelector('#log .msg:has-text("hi alice")');
    await a.waitForSelector('#rooms button:has-text("demo (2)")');
    out({ step: 'exchange' });

    // Cut A's connection; B talks meanwhile; A comes back recovered.
    await a.evaluate(() => {
      const m = window.chatSocket.io;
      m.reconnectionDelay(2000);
      m.reconnectionDelayMax(2000);
      m.randomizationFactor(0);
      window.chatSocket.io.engine.close();
    });
    await a.waitForSelector('#banner:has-text("Connection lost")');
    const missed = ['missed 1', 'missed 2', 'missed 3'];
    for (const t of missed) {
      await send(b, t);
      await b.waitForSelector(`#log .msg:has-text("${t}") .state:text-is("delivered")`);
    }
    await a.waitForSelector('#status.up');
    const banner = await a.textContent('#banner');
    const recovered = await a.evaluate(() => window.chatSocket.recovered);
    await a.waitForSelector('#log .msg:has-text("missed 3")', { timeout: 5000 }).catch(() => {});
    const texts = await a.$$eval('#log .msg .text', (es) => es.map((e) => e.textContent));
    out({ step: 'recovered', banner, recovered, texts });
    await a.screenshot({ path: outDir + '/chat.png' });
    out({ done: true });
  } catch (e) {
    out({ error: String(e && e.stack || e) });
    for (const [name, p] of Object.entries(pages)) {
      await p.screenshot({ path: `${outDir}/failure-${name}.png` }).catch(() => {});
    }
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
})();
