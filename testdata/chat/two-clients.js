// Two official clients join one room of the chat demo; one sends, both must
// receive. Prints JSON lines; exits 0 when done. Usage: node two-clients.js URL
const { io } = require('socket.io-client');
const url = process.argv[2];
const out = (o) => console.log(JSON.stringify(o));
const a = io(url, { transports: ['websocket'] });
const b = io(url, { transports: ['polling'] });
let got = 0;
for (const [name, s] of [['a', a], ['b', b]]) {
  s.on('message', (m) => {
    out({ client: name, message: m });
    if (++got === 2) { a.close(); b.close(); out({ done: true }); process.exit(0); }
  });
}
function join(s, nick) {
  return new Promise((res) => s.emit('join', { nick, room: 'lobby' }, res));
}
(async () => {
  out({ bad: await join(a, '<script>') });
  out({ joinA: await join(a, 'ann') });
  out({ joinB: await join(b, 'bob') });
  out({ sent: await new Promise((res) => a.emit('message', 'hello', res)) });
})();
setTimeout(() => { out({ error: 'timeout' }); process.exit(1); }, 10000);
