// Drives official socket.io-client instances for the end-to-end tests of
// the Redis Streams transport (cluster/e2e_test.go).
//
// Reads JSON commands on stdin, one per line; writes JSON events on stdout,
// one per line.
//
// Commands:
//   {"cmd":"connect","id":"c1","url":"http://127.0.0.1:1234/","query":{...}}
//      -> {"type":"connect","id":"c1","sid":"..."} or
//         {"type":"connect_error","id":"c1","message":"..."}
//      Every event the client then receives is printed; an event whose last
//      argument is an ack callback is acknowledged with {"id": "c1"}.
//   {"cmd":"exit"}
// Events:
//   {"type":"ready"} once started
//   {"type":"event","id":"c1","event":"x","args":[...],"withAck":bool}
//   {"type":"disconnect","id":"c1","reason":"..."}
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
  socket.on("connect", () => out({ type: "connect", id: c.id, sid: socket.id }));
  socket.on("connect_error", (err) => out({ type: "connect_error", id: c.id, message: String(err && err.message) }));
  socket.on("disconnect", (reason) => out({ type: "disconnect", id: c.id, reason }));
  socket.onAny((event, ...args) => {
    let cb = null;
    if (args.length && typeof args[args.length - 1] === "function") cb = args.pop();
    out({ type: "event", id: c.id, event, args, withAck: cb !== null });
    if (cb) cb({ id: c.id });
  });
}

function exit() {
  for (const s of sockets.values()) s.disconnect();
  process.exit(0);
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
    case "exit":
      exit();
      break;
    default:
      out({ type: "error", message: "unknown command " + c.cmd });
  }
});
rl.on("close", exit);
out({ type: "ready" });
