// clients.js: official socket.io-client instances driven by the Go tests
// through internal/siotest (packages adapter, recovery and cluster).
//
// Reads JSON commands, one per line, on stdin; writes JSON events, one per
// line, on stdout. Binary values travel as {"$bin": "<base64>"} both ways.
//
// Commands:
//   {"cmd":"connect","id":"c1","url":"http://127.0.0.1:1234/nsp",
//    "transports":["websocket"],"auth":{...},"query":{...},"ack":<any>,
//    "recoverFrom":"c0","parser":"msgpack"}
//      -> {"type":"connect","id":"c1","sid":"...","recovered":false} or
//         {"type":"connect_error","id":"c1","message":"..."}
//      An event whose last argument is an ack callback is acknowledged with
//      "ack" (default {"id": "c1"}); with "ackNoArgs" with no value, with
//      "ackMulti" with ("c1", 2), with "noAck" never.
//      With "recoverFrom", the new client asks to recover the session of
//      client c0 (dropped), as c0 reconnecting to another node would.
//      With "parser":"msgpack", the client uses socket.io-msgpack-parser
//      (default: socket.io-client's own parser).
//   {"cmd":"emit","id":"c1","event":"x","args":[...],"seq":5,"withAck":true}
//      -> with withAck: {"type":"ack","id":"c1","seq":5,"args":[...]}
//   {"cmd":"drop","id":"c1"}
//      closes the client's transport, as when the network drops (an abnormal
//      disconnection after which the session may be recovered)
//      -> {"type":"disconnect","id":"c1","reason":"transport close"}
//   {"cmd":"reconnect","id":"c1","url":"http://other-node/"}
//      connects again, to url when given (another node); the client sends
//      its pid and last offset, as socket.io-client does on any reconnection
//      -> {"type":"connect",...,"recovered":true|false}
//   {"cmd":"disconnect","id":"c1"}
//   {"cmd":"exit"}
// Events:
//   {"type":"ready"} once started
//   {"type":"event","id":"c1","event":"x","args":[...],"withAck":bool}
//   {"type":"disconnect","id":"c1","reason":"..."}
//   {"type":"error","message":"..."} for a command it cannot run
"use strict";

const { io } = require("socket.io-client");
const readline = require("readline");
const { encodeVal, decodeVal } = require("./binjson");

const sockets = new Map();

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function connect(c) {
  const socket = io(c.url, {
    transports: c.transports || ["websocket"],
    auth: c.auth || {},
    query: c.query || {},
    reconnection: false,
    forceNew: true,
    autoConnect: false,
    ...(c.parser === "msgpack" ? { parser: require("socket.io-msgpack-parser") } : {}),
  });
  const from = c.recoverFrom && sockets.get(c.recoverFrom);
  if (from) {
    // What the client would send reconnecting to another node behind a
    // load balancer: the private session id and last offset of the
    // dropped socket (private fields of socket.io-client 4.x).
    socket._pid = from._pid;
    socket._lastOffset = from._lastOffset;
  }
  const ackValue = "ack" in c ? c.ack : { id: c.id };
  sockets.set(c.id, socket);
  socket.on("connect", () => out({ type: "connect", id: c.id, sid: socket.id, recovered: socket.recovered }));
  socket.on("connect_error", (err) => out({ type: "connect_error", id: c.id, message: String(err && err.message) }));
  socket.on("disconnect", (reason) => out({ type: "disconnect", id: c.id, reason }));
  socket.onAny((event, ...args) => {
    let cb = null;
    if (args.length && typeof args[args.length - 1] === "function") cb = args.pop();
    out({ type: "event", id: c.id, event, args: encodeVal(args), withAck: cb !== null });
    if (!cb || c.noAck) return;
    if (c.ackNoArgs) cb();
    else if (c.ackMulti) cb(c.id, 2);
    else cb(decodeVal(ackValue));
  });
  socket.connect();
}

function socketOf(c) {
  const s = sockets.get(c.id);
  if (!s) out({ type: "error", message: "no client " + c.id });
  return s;
}

function exit() {
  for (const s of sockets.values()) s.disconnect();
  process.exit(0);
}

function run(c) {
  switch (c.cmd) {
    case "connect":
      return connect(c);
    case "emit": {
      const s = socketOf(c);
      if (!s) return;
      const args = decodeVal(c.args || []);
      if (c.withAck) {
        s.emit(c.event, ...args, (...reply) => out({ type: "ack", id: c.id, seq: c.seq, args: encodeVal(reply) }));
      } else {
        s.emit(c.event, ...args);
      }
      return;
    }
    case "drop": {
      const s = socketOf(c);
      if (s) s.io.engine.close();
      return;
    }
    case "reconnect": {
      const s = socketOf(c);
      if (!s) return;
      // The Manager opens its next Engine.IO connection on this.uri.
      if (c.url) s.io.uri = c.url;
      s.connect();
      return;
    }
    case "disconnect": {
      const s = socketOf(c);
      if (s) s.disconnect();
      return;
    }
    case "exit":
      return exit();
    default:
      return out({ type: "error", message: "unknown command " + c.cmd });
  }
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
  run(c);
});
rl.on("close", exit);
out({ type: "ready" });
