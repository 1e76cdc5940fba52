// driver.js: the official Socket.IO client, driven line by line for the Go
// tests of package server.
//
//   node driver.js
//
// It reads one JSON command per line on stdin and writes one JSON report per
// line on stdout. Binary values travel in both directions as {"$bin": base64};
// {"$str": n} in a command stands for a string of n "x" (big payloads without
// big commands).
//
// Commands (every one names a client by "id"):
//   {"op":"connect","id":"a","url":"http://h/nsp","opts":{...}}
//       io(url, opts) with forceNew and no reconnection unless opts say
//       otherwise; "manager":"b" opens the namespace on client b's Manager
//       (one connection, several namespaces) instead.
//   {"op":"emit","id":"a","event":"e","args":[...],"ack":7,"timeout":ms}
//       with "ack", waits for the server's ack and reports {"type":"ack","ack":7}.
//   {"op":"ack","id":"a","n":3,"args":[...]}    answers server ack request 3
//   {"op":"disconnect","id":"a"}                socket.disconnect()
//   {"op":"close","id":"a"}                     closes the Engine.IO connection
//   {"op":"state","id":"a","seq":1}             reports transport and connected
//   {"op":"exit"}
//
// Reports: {"id","type":"connect","sid","transport","recovered"}, {"type":"connect_error",
// "message","data"}, {"type":"disconnect","reason"}, {"type":"upgrade",
// "transport"}, {"type":"event","event","args","n"} (n set when the server
// asked for an ack), {"type":"ack","ack","args"|"error"}, {"type":"state",...},
// {"type":"error","error"} for a bad command.
"use strict";

const { io } = require("socket.io-client");
const readline = require("readline");

const clients = new Map();
const pendingAcks = new Map(); // id -> Map(n -> callback)
let ackCounter = 0;

function out(o) {
  process.stdout.write(JSON.stringify(o) + "\n");
}

function enc(v) {
  if (Buffer.isBuffer(v)) return { $bin: v.toString("base64") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("base64") };
  if (ArrayBuffer.isView(v)) {
    return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") };
  }
  if (Array.isArray(v)) return v.map(enc);
  if (v !== null && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = enc(x);
    return o;
  }
  return v;
}

function dec(v) {
  if (Array.isArray(v)) return v.map(dec);
  if (v !== null && typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === "$bin") return Buffer.from(v.$bin, "base64");
    if (keys.length === 1 && keys[0] === "$str") return "x".repeat(v.$str);
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = dec(x);
    return o;
  }
  return v;
}

function transportOf(socket) {
  const engine = socket.io.engine;
  return engine && engine.transport ? engine.transport.name : null;
}

function watch(id, socket) {
  socket.on("connect", () => {
    out({ id, type: "connect", sid: socket.id, transport: transportOf(socket), recovered: socket.recovered });
  });
  socket.on("connect_error", (err) => {
    out({ id, type: "connect_error", message: err.message, data: enc(err.data === undefined ? null : err.data) });
  });
  socket.on("disconnect", (reason) => {
    out({ id, type: "disconnect", reason });
  });
  socket.onAny((event, ...args) => {
    let n = null;
    if (args.length > 0 && typeof args[args.length - 1] === "function") {
      n = ++ackCounter;
      pendingAcks.get(id).set(n, args.pop());
    }
    out({ id, type: "event", event, args: enc(args), n });
  });
}

function watchEngine(id, manager) {
  const hook = () => {
    const engine = manager.engine;
    if (!engine || engine.__watched) return;
    engine.__watched = true;
    engine.on("upgrade", (t) => out({ id, type: "upgrade", transport: t.name }));
  };
  manager.on("open", hook);
  hook();
}

function handle(cmd) {
  const c = clients.get(cmd.id);
  switch (cmd.op) {
    case "connect": {
      let socket;
      const opts = dec(cmd.opts || {});
      if (cmd.manager) {
        const m = clients.get(cmd.manager);
        socket = m.io.socket(new URL(cmd.url).pathname, opts);
      } else {
        socket = io(cmd.url, Object.assign({ forceNew: true, reconnection: false }, opts));
        watchEngine(cmd.id, socket.io);
      }
      clients.set(cmd.id, socket);
      pendingAcks.set(cmd.id, new Map());
      watch(cmd.id, socket);
      // Manager.socket connects at once when the Manager auto-connects;
      // a second connect() would send a second CONNECT for the namespace.
      if (cmd.manager && !socket.active) socket.connect();
      return;
    }
    case "emit": {
      const args = dec(cmd.args || []);
      if (cmd.ack == null) {
        c.emit(cmd.event, ...args);
        return;
      }
      const target = cmd.timeout ? c.timeout(cmd.timeout) : c;
      target.emit(cmd.event, ...args, (...res) => {
        if (cmd.timeout) {
          const err = res.shift();
          if (err) {
            out({ id: cmd.id, type: "ack", ack: cmd.ack, error: err.message });
            return;
          }
        }
        out({ id: cmd.id, type: "ack", ack: cmd.ack, args: enc(res) });
      });
      return;
    }
    case "ack": {
      const fn = pendingAcks.get(cmd.id).get(cmd.n);
      pendingAcks.get(cmd.id).delete(cmd.n);
      fn(...dec(cmd.args || []));
      return;
    }
    case "disconnect":
      c.disconnect();
      return;
    case "close":
      c.io.engine.close();
      return;
    case "state":
      out({ id: cmd.id, type: "state", seq: cmd.seq, transport: transportOf(c), connected: c.connected });
      return;
    case "exit":
      for (const s of clients.values()) s.disconnect();
      process.exit(0);
      return;
    default:
      throw new Error("unknown op " + cmd.op);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  try {
    handle(JSON.parse(line));
  } catch (e) {
    out({ type: "error", error: String(e && e.stack ? e.stack : e) });
  }
});
rl.on("close", () => process.exit(0));
