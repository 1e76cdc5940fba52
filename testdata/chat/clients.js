// Drives the chat demo with official clients, as the page does, and prints
// what each one saw as JSON lines; the Go test judges them.
// Usage: node clients.js URL_A URL_B   (the same URL twice for one node)
'use strict';
const { io } = require('socket.io-client');
const [urlA, urlB] = process.argv.slice(2);
const out = (o) => console.log(JSON.stringify(o));
const opts = { ackTimeout: 5000, reconnection: false };
const a = io(urlA, { ...opts, transports: ['websocket'] });
const b = io(urlB, { ...opts, transports: ['polling'] });
const call = (s, ...args) => new Promise((res) => s.emit(...args, (err, r) => res(err ? { error: String(err) } : r)));
const seen = { a: [], b: [] };
for (const [name, s] of [['a', a], ['b', b]]) {
  for (const ev of ['message', 'presence', 'typing']) s.on(ev, (m) => seen[name].push({ ev, m }));
}
const wait = (cond) => new Promise((res) => { const t = setInterval(() => { if (cond()) { clearInterval(t); res(); } }, 20); });
(async () => {
  await Promise.all([a, b].map((s) => new Promise((res) => s.on('connect', res))));
  out({ step: 'badNick', r: await call(a, 'join', { nick: '<script>', room: 'lobby' }) });
  out({ step: 'badRoom', r: await call(a, 'join', { nick: 'ann', room: 'no spaces' }) });
  out({ step: 'noRoom', r: await call(a, 'message', 'hi') });
  out({ step: 'joinA', r: await call(a, 'join', { nick: 'ann', room: 'lobby' }) });
  out({ step: 'joinB', r: await call(b, 'join', { nick: 'bob', room: 'lobby' }) });
  out({ step: 'empty', r: await call(a, 'message', '   ') });
  out({ step: 'tooLong', r: await call(a, 'message', 'x'.repeat(2001)) });
  a.emit('typing', true);
  out({ step: 'send', r: await call(a, 'message', '<b>hello</b>') });
  await wait(() => seen.b.some((x) => x.ev === 'message') && seen.b.some((x) => x.ev === 'typing'));
  out({ step: 'rooms', r: await call(b, 'rooms') });
  out({ step: 'users', r: await call(a, 'users') });
  // A third client joining later gets the history, from either node.
  const c = io(urlB, { ...opts, transports: ['websocket'] });
  out({ step: 'joinC', r: await call(c, 'join', { nick: 'cid', room: 'lobby' }) });
  out({ step: 'leaveB', r: await call(b, 'leave') });
  await wait(() => seen.a.some((x) => x.ev === 'presence' && x.m.nick === 'bob' && !x.m.online));
  out({ seen });
  for (const s of [a, b, c]) s.close();
  out({ done: true });
  process.exit(0);
})();
setTimeout(() => { out({ error: 'timeout', seen }); process.exit(1); }, 15000);
