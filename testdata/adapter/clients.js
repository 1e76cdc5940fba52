// Drives socket.io-client instances for the Go tests of package adapter.
//
// Reads JSON commands, one per line, on stdin; writes JSON events, one per
// line, on stdout. Binary values travel as {"$bin": "<base64>"} both ways.
//
// Commands:
//   {"cmd":"connect","id":"c1","url":"http://127.0.0.1:1234/nsp",
//    "transports":["websocket"],"auth":{...},"query":{...},"ack":<any>}
//      -> {"type":"connect","id":"c1","sid":"..."} or
//         {"type":"connect_error","id":"c1","message":"..."}
//      "ack": the value the client acknowledges events with (events whose
//      last argument is an ack callback); default {"id": "c1"}; with
//      "noAck": true the client never acknowledges.
//   {"cmd":"emit","id":"c1","event":"x","args":[...],"seq":5,"withAck":true}
//      -> with withAck: {"type":"ack","id":"c1","seq":5,"args":[...]}
//   {"cmd":"disconnect","id":"c1"}
//   {"cmd":"exit"}
// Events:
//   {"type":"ready"} once started
//   {"type":"event","id":"c1","event":"x","args":[...]} for every event
//   {"type":"disconnect","id":"c1","reason":"..."}
"use strict";

const { io } = require("socket.io-client");
const readline = require("readline");

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
    transports: c.transports || ["websocket"],
    auth: c.auth || {},
    query: c.query || {},
    reconnection: false,
    forceNew: true,
  });
  const ackValue = "ack" in c ? c.ack : { id: c.id };
  sockets.set(c.id, socket);
  socket.on("connect", () => out({ type: "connect", id: c.id, sid: socket.id }));
  socket.on("connect_error", (err) => out({ type: "connect_error", id: c.id, message: String(err && err.message) }));
  socket.on("disconnect", (reason) => out({ type: "disconnect", id: c.id, reason }));
  socket.onAny((event, ...args) => {
    let cb = null;
    if (args.length && typeof args[args.length - 1] === "function") cb = args.pop();
    out({ type: "event", id: c.id, event, args: encodeVal(args), withAck: cb !== null });
    if (cb && !c.noAck) { if (c.ackNoArgs) cb(); else if (c.ackMulti) cb(c.id, 2); else cb(decodeVal(ackValue)); }
  });
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
    case "emit": {
      const s = sockets.get(c.id);
      if (!s) return out({ type: "error", message: "no client " + c.id });
      const args = decodeVal(c.args || []);
      if (c.withAck) {
        s.emit(c.event, ...args, (...reply) => out({ type: "ack", id: c.id, seq: c.seq, args: encodeVal(reply) }));
      } else {
        s.emit(c.event, ...args);
      }
      break;
    }
    case "disconnect": {
      const s = sockets.get(c.id);
      if (s) s.disconnect();
      break;
    }
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
