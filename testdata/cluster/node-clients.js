"use strict";
// Official socket.io-client instances for the mixed-cluster tests of package
// cluster, driven by JSON lines on stdin, reporting every event received as
// JSON lines on stdout. Binary values travel as {"$bin": "<base64>"}.
//
// Commands:
//   {"cmd":"connect","id":"c1","url":"http://127.0.0.1:1234/nsp",
//    "query":{"rooms":"r1,r2","user":"u1"},"auth":{...}}
//      -> {"type":"connect","id":"c1","sid":"...","recovered":false} or
//         {"type":"connect_error","id":"c1","message":"..."}
//      Events that expect an ack are acknowledged with {"id": "c1"}.
//      With "recoverFrom": "c0", the new client asks to recover the session
//      of client c0 (dropped), as c0 reconnecting to another node would.
//   {"cmd":"emit","id":"c1","event":"x","args":[...]}
//   {"cmd":"drop","id":"c1"}       closes the connection (abnormal disconnection)
//   {"cmd":"reconnect","id":"c1"}  connects again, asking to recover the session
//      -> {"type":"connect","id":"c1","sid":"...","recovered":true}
//   {"cmd":"disconnect","id":"c1"}
//   {"cmd":"exit"}
// Events:
//   {"type":"ready"} once started
//   {"type":"event","id":"c1","event":"x","args":[...],"withAck":false}
//   {"type":"disconnect","id":"c1","reason":"..."}

const readline = require("readline");
const { io } = require("socket.io-client");

const sockets = new Map();

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function encodeVal(v) {
  if (Buffer.isBuffer(v)) return { $bin: v.toString("base64") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("base64") };
  if (ArrayBuffer.isView(v)) return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") };
  if (Array.isArray(v)) return v.map(encodeVal);
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = encodeVal(x);
    return o;
  }
  return v === undefined ? null : v;
}

function decodeVal(v) {
  if (Array.isArray(v)) return v.map(decodeVal);
  if (v && typeof v === "object") {
    if (typeof v.$bin === "string" && Object.keys(v).length === 1) return Buffer.from(v.$bin, "base64");
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = decodeVal(x);
    return o;
  }
  return v;
}

function connect(c) {
  const socket = io(c.url, {
    transports: ["websocket"],
    auth: c.auth || {},
    query: c.query || {},
    reconnection: false,
    forceNew: true,
    autoConnect: false,
  });
  const from = c.recoverFrom && sockets.get(c.recoverFrom);
  if (from) {
    // What the client would send reconnecting to another node behind a
    // load balancer: the private session id and last offset of the
    // dropped socket (private fields of socket.io-client 4.x).
    socket._pid = from._pid;
    socket._lastOffset = from._lastOffset;
  }
  sockets.set(c.id, socket);
  socket.on("connect", () => out({ type: "connect", id: c.id, sid: socket.id, recovered: socket.recovered }));
  socket.on("connect_error", (err) => out({ type: "connect_error", id: c.id, message: String(err && err.message) }));
  socket.on("disconnect", (reason) => out({ type: "disconnect", id: c.id, reason }));
  socket.onAny((event, ...args) => {
    let cb = null;
    if (args.length && typeof args[args.length - 1] === "function") cb = args.pop();
    out({ type: "event", id: c.id, event, args: encodeVal(args), withAck: cb !== null });
    if (cb) cb({ id: c.id });
  });
  socket.connect();
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  let c;
  try {
    c = JSON.parse(line);
  } catch (e) {
    return out({ type: "error", message: "bad command: " + e.message });
  }
  switch (c.cmd) {
    case "connect":
      return connect(c);
    case "emit": {
      const s = sockets.get(c.id);
      if (!s) return out({ type: "error", message: "no client " + c.id });
      return s.emit(c.event, ...decodeVal(c.args || []));
    }
    case "drop": {
      // Closes the connection under the socket: an abnormal disconnection
      // for the server (transport close), after which the session may be
      // recovered.
      const s = sockets.get(c.id);
      if (s) s.io.engine.close();
      return;
    }
    case "reconnect": {
      // Connects again; the client sends its pid and last offset.
      const s = sockets.get(c.id);
      if (s) s.connect();
      return;
    }
    case "disconnect": {
      const s = sockets.get(c.id);
      if (s) s.disconnect();
      return;
    }
    case "exit":
      for (const s of sockets.values()) s.disconnect();
      return process.exit(0);
    default:
      return out({ type: "error", message: "unknown command " + c.cmd });
  }
});
rl.on("close", () => {
  for (const s of sockets.values()) s.disconnect();
  process.exit(0);
});
out({ type: "ready" });
