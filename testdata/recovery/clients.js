// clients.js: socket.io-client instances for the Go tests of package
// recovery (connection state recovery with the official client).
//
// Reads JSON commands, one per line, on stdin; writes JSON events, one per
// line, on stdout.
//
//   {"cmd":"connect","id":"c1","url":"http://127.0.0.1:1234/","query":{...}}
//       -> {"type":"connect","id":"c1","sid":"...","recovered":false}
//   {"cmd":"drop","id":"c1"}
//       closes the client's transport (socket.io.engine.close(), as when the
//       network drops)
//       -> {"type":"disconnect","id":"c1","reason":"transport close"}
//   {"cmd":"reconnect","id":"c1","url":"http://other-node/"}
//       reconnects, to url when given (another node). The client sends its
//       pid and last offset, as socket.io-client does on any reconnection.
//       -> {"type":"connect",...,"recovered":true|false}
//   {"cmd":"exit"}
// Events: {"type":"ready"} once started;
//   {"type":"event","id":"c1","event":"x","args":[...]} for every event
//   (the offset, when the server attached one, is the last argument).
"use strict";

const { io } = require("socket.io-client");
const readline = require("readline");

const sockets = new Map();

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function connect(c) {
  const socket = io(c.url, {
    transports: ["websocket"],
    query: c.query || {},
    reconnection: false,
    forceNew: true,
  });
  sockets.set(c.id, socket);
  socket.on("connect", () => out({ type: "connect", id: c.id, sid: socket.id, recovered: socket.recovered }));
  socket.on("connect_error", (err) => out({ type: "connect_error", id: c.id, message: String(err && err.message) }));
  socket.on("disconnect", (reason) => out({ type: "disconnect", id: c.id, reason }));
  socket.onAny((event, ...args) => out({ type: "event", id: c.id, event, args }));
}

function drop(c) {
  const socket = sockets.get(c.id);
  if (!socket) return out({ type: "error", message: "no client " + c.id });
  socket.io.engine.close();
}

function reconnect(c) {
  const socket = sockets.get(c.id);
  if (!socket) return out({ type: "error", message: "no client " + c.id });
  if (c.url) {
    // The Manager opens its next Engine.IO connection on this.uri.
    socket.io.uri = c.url;
  }
  socket.connect();
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  let c;
  try {
    c = JSON.parse(line);
  } catch (e) {
    out({ type: "error", message: "bad command: " + e.message });
    return;
  }
  switch (c.cmd) {
    case "connect":
      connect(c);
      break;
    case "drop":
      drop(c);
      break;
    case "reconnect":
      reconnect(c);
      break;
    case "exit":
      for (const s of sockets.values()) s.disconnect();
      process.exit(0);
  }
});
rl.on("close", () => {
  for (const s of sockets.values()) s.disconnect();
  process.exit(0);
});
out({ type: "ready" });
