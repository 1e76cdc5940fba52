// The chat page. Everything from the wire goes into the page as text
// (textContent), never as HTML.
'use strict';
const $ = (id) => document.getElementById(id);
const log = $('log');

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function line(text, cls) {
  log.appendChild(el('div', cls || 'info', text));
  log.scrollTop = log.scrollHeight;
}
function banner(text, ok) {
  const b = $('banner');
  b.hidden = !text;
  b.textContent = text || '';
  b.className = ok ? 'banner ok' : 'banner';
}

if (typeof io === 'undefined') {
  line('socket.io.min.js is missing: start the demo with `make run`.', 'err');
} else {
  const socket = io({ ackTimeout: 5000 });
  window.chatSocket = socket; // for the browser test
  let me = null;               // { nick, room } once joined
  const seen = new Set();      // message ids on the page: each shown once
  const typers = new Map();    // nick -> timer

  function showMessage(m, state) {
    if (seen.has(m.id)) return null;
    seen.add(m.id);
    const d = el('div', 'msg');
    d.dataset.id = m.id;
    d.appendChild(el('span', 'nick', m.nick));
    d.appendChild(el('span', 'text', m.text));
    if (state) d.appendChild(el('span', 'state', state));
    log.appendChild(d);
    log.scrollTop = log.scrollHeight;
    return d;
  }
  function setUsers(users) {
    const ul = $('users');
    ul.replaceChildren(...(users || []).map((u) => el('li', 'user', u)));
  }
  function refreshRooms() {
    socket.emit('rooms', (err, r) => {
      if (err || !r || r.error) return;
      $('rooms').replaceChildren(...r.rooms.map((x) => {
        const li = el('li');
        const b = el('button', 'room', x.room + ' (' + x.members + ')');
        b.type = 'button';
        b.onclick = () => { $('room').value = x.room; join(); };
        li.appendChild(b);
        return li;
      }));
    });
  }
  function refreshUsers() {
    if (!me) return;
    socket.emit('users', (err, r) => { if (!err && r && r.users) setUsers(r.users); });
  }
  function joined(on) {
    $('text').disabled = !on; $('send-btn').disabled = !on; $('leave-btn').disabled = !on;
    $('room-name').textContent = on ? me.room : '–';
    if (!on) setUsers([]);
  }
  function join() {
    const req = { nick: $('nick').value, room: $('room').value };
    socket.emit('join', req, (err, r) => {
      if (err) return line('join: no answer from the server', 'err');
      if (r.error) return line(r.error, 'err');
      me = req;
      log.replaceChildren();
      seen.clear();
      line('you joined ' + req.room);
      for (const m of r.history || []) showMessage(m);
      setUsers(r.users);
      joined(true);
      refreshRooms();
    });
  }

  function showTransport() {
    $('status').textContent = 'connected (' + socket.io.engine.transport.name + ')';
    $('status').className = 'status up';
  }
  socket.io.on('open', () => socket.io.engine.on('upgrade', showTransport));
  socket.on('connect', () => {
    showTransport();
    if (socket.recovered) {
      banner('Reconnected: session recovered, missed messages restored.', true);
    } else if (me) {
      banner('Reconnected with a new session: joining ' + me.room + ' again.', true);
      join();
    }
    refreshRooms();
  });
  socket.on('disconnect', (reason) => {
    $('status').textContent = 'disconnected';
    $('status').className = 'status down';
    banner('Connection lost (' + reason + '): reconnecting…');
  });
  socket.on('message', (m) => showMessage(m));
  socket.on('presence', (p) => {
    // Our own departure, replayed after a recovery, is not news.
    if (!me || p.room !== me.room || p.nick === me.nick) return;
    line(p.nick + (p.online ? (p.recovered ? ' is back' : ' joined') : ' left'));
    refreshUsers();
    refreshRooms();
  });
  socket.on('typing', (t) => {
    clearTimeout(typers.get(t.nick));
    if (t.typing) typers.set(t.nick, setTimeout(() => { typers.delete(t.nick); showTyping(); }, 3000));
    else typers.delete(t.nick);
    showTyping();
  });
  function showTyping() {
    const names = [...typers.keys()];
    $('typing').textContent = names.length ? names.join(', ') + (names.length > 1 ? ' are' : ' is') + ' typing…' : '';
  }

  $('join').onsubmit = (e) => { e.preventDefault(); join(); };
  $('leave-btn').onclick = () => {
    socket.emit('leave', () => { line('you left ' + me.room); me = null; joined(false); refreshRooms(); });
  };
  let typingSent = false, typingTimer = null;
  $('text').oninput = () => {
    if (!typingSent) { socket.emit('typing', true); typingSent = true; }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => { socket.emit('typing', false); typingSent = false; }, 1500);
  };
  $('send').onsubmit = (e) => {
    e.preventDefault();
    const text = $('text').value;
    if (!text.trim()) return;
    $('text').value = '';
    const pending = el('div', 'msg');
    pending.appendChild(el('span', 'nick', me.nick));
    pending.appendChild(el('span', 'text', text));
    const state = el('span', 'state', 'sending…');
    pending.appendChild(state);
    log.appendChild(pending);
    log.scrollTop = log.scrollHeight;
    socket.emit('typing', false); typingSent = false;
    socket.emit('message', text, (err, r) => {
      if (err || !r || r.ok !== true) {
        // No answer, a refused message ({error}), or one the cluster did
        // not take ({ok: false, error: "not delivered: ..."}): the other
        // members may not have it.
        pending.classList.add('failed');
        const why = err ? 'no answer from the server' : (r && r.error) || 'refused';
        state.textContent = r && r.ok === false ? 'not delivered' : 'not delivered: ' + why;
        state.title = why;
        if (r && r.id) { seen.add(r.id); pending.dataset.id = r.id; }
        return;
      }
      seen.add(r.id);
      pending.dataset.id = r.id;
      state.textContent = 'delivered';
    });
  };
  setInterval(refreshRooms, 5000);
}
