"use strict";
// A Node reference node for the mixed-cluster tests of package cluster: a
// socket.io 4.8.1 server with @socket.io/redis-streams-adapter 0.3.1 on a
// `redis` 4.7.1 client, driven by JSON lines on stdin, answering JSON lines
// on stdout. Binary values travel as {"$bin": "<base64>"} both ways; a
// command may also give a Date as {"$date": "<ISO string>"}.
//
// Configuration: one JSON object in argv[2] (or the NODE_PEER_CONFIG
// environment variable), every field optional but redisUrl:
//   {"name": "node1", "port": 0, "redisUrl": "redis://127.0.0.1:1234",
//    "streamCount": 1, "heartbeatInterval": 5000, "heartbeatTimeout": 10000,
//    "namespaces": ["/"], "recovery": false, "parser": "default"}
// "recovery" turns connection state recovery on (60 s, middlewares skipped).
// "parser" is the Socket.IO parser the clients must speak: "default"
// (socket.io-parser, also when absent) or "msgpack"
// (socket.io-msgpack-parser). It only changes what goes to the clients:
// the adapter encodes its stream entries the same way either way.
// The heartbeat settings are passed to createAdapter as given; 0.3.1 extends
// the plain ClusterAdapter and does not use them.
// Every namespace listed is created at start (so that its adapter listens
// before the test publishes). A socket joins the comma separated rooms of its
// "rooms" query parameter and gets {"user": <query user>, "node": <name>} as
// data before it is connected, like the Go node of the tests.
//
// Commands (every reply carries the command's "seq"):
//   {"cmd":"broadcast","seq":1,"nsp":"/","rooms":[],"except":[],"event":"e","args":[...]}
//      -> {"type":"done","seq":1}
//   {"cmd":"broadcastWithAck","seq":1,"nsp":"/","rooms":[],"except":[],"event":"e","args":[...],"timeout":3000}
//      -> {"type":"acks","seq":1,"responses":[...]} (one per client) or
//         {"type":"error","seq":1,"message":"...","responses":[...]}
//   {"cmd":"fetchSockets","seq":2,"nsp":"/","rooms":[],"except":[],"local":false}
//      -> {"type":"sockets","seq":2,"sockets":[{"id","rooms","handshake","data"}]}
//         or {"type":"error","seq":2,"message":"..."}
//   {"cmd":"serverSideEmit","seq":3,"nsp":"/","event":"e","args":[...],"ack":true}
//      -> with ack: {"type":"acks","seq":3,"responses":[...]} or, after the
//         adapter's 5 s request timeout, {"type":"error","seq":3,"message":
//         "...","responses":[...]}; without: {"type":"done","seq":3}
//   {"cmd":"listen","seq":4,"nsp":"/","event":"e","ack":<value>}
//      registers a server-side listener of e: every call is reported as
//      {"type":"sse","nsp":"/","event":"e","args":[...],"withAck":bool} and,
//      when the sender waits for acks, acknowledged with <value> (default
//      {"node": <name>, "args": <the arguments>}). -> {"type":"done","seq":4}
//   {"cmd":"serverCount","seq":5,"nsp":"/"} -> {"type":"serverCount","seq":5,"count":2}
//   {"cmd":"socketsJoin","seq":6,"nsp":"/","rooms":[],"except":[],"join":["r"]}
//   {"cmd":"socketsLeave","seq":7,"nsp":"/","rooms":[],"except":[],"leave":["r"]}
//   {"cmd":"disconnectSockets","seq":8,"nsp":"/","rooms":[],"except":[],"close":false}
//      -> {"type":"done","seq":...}
//   {"cmd":"localRooms","seq":9,"nsp":"/"}
//      -> {"type":"rooms","seq":9,"sockets":{"<sid>":["<sid>","r1"]}}: the
//         local sockets and their rooms, read from the in-memory adapter.
//   {"cmd":"exit"}
// Events:
//   {"type":"listening","port":1234,"uids":{"/":"<adapter uid>"}} once ready
//   {"type":"connection","nsp":"/","id":"<sid>","recovered":bool} for every
//      socket; recovered says its session was restored

const http = require("http");
const readline = require("readline");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-streams-adapter");
const { createClient } = require("redis");
const { encodeVal, decodeVal } = require("../siotest/binjson");

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const config = JSON.parse(process.argv[2] || process.env.NODE_PEER_CONFIG || "{}");
if (!config.redisUrl) {
  process.stderr.write("node-peer: redisUrl is required\n");
  process.exit(2);
}
const name = config.name || "node";

// The parsers a config may name; an unknown one is a test's mistake, not a
// reason to fall back silently to the default.
const parsers = {
  default: undefined,
  msgpack: () => require("socket.io-msgpack-parser"),
};
if (config.parser !== undefined && !Object.hasOwn(parsers, config.parser)) {
  process.stderr.write("node-peer: unknown parser " + JSON.stringify(config.parser) + "\n");
  process.exit(2);
}
const parser = config.parser && parsers[config.parser] ? parsers[config.parser]() : undefined;

function firstQuery(q, k) {
  const v = q[k];
  return Array.isArray(v) ? v[0] : v;
}

// operator applies the room selection of a command to a namespace.
function operator(c) {
  let op = io.of(c.nsp || "/");
  if (c.rooms && c.rooms.length) op = op.in(c.rooms);
  if (c.except && c.except.length) op = op.except(c.except);
  if (c.local) op = op.local;
  return op;
}

let io;

async function main() {
  const redis = createClient({ url: config.redisUrl });
  redis.on("error", (err) => process.stderr.write("redis error: " + err.message + "\n"));
  await redis.connect();

  const httpServer = http.createServer();
  io = new Server(httpServer, {
    ...(parser ? { parser } : {}),
    connectionStateRecovery: config.recovery ? { maxDisconnectionDuration: 60000, skipMiddlewares: true } : undefined,
    adapter: createAdapter(redis, {
      streamCount: config.streamCount || 1,
      heartbeatInterval: config.heartbeatInterval || 5000,
      heartbeatTimeout: config.heartbeatTimeout || 10000,
    }),
  });

  const uids = {};
  for (const nspName of config.namespaces || ["/"]) {
    const nsp = io.of(nspName);
    uids[nspName] = nsp.adapter.uid;
    nsp.use((socket, next) => {
      const q = socket.handshake.query;
      const rooms = firstQuery(q, "rooms");
      if (rooms) for (const r of String(rooms).split(",")) socket.join(r);
      socket.data = { user: firstQuery(q, "user") || "", node: name };
      next();
    });
    nsp.on("connection", (socket) => out({ type: "connection", nsp: nspName, id: socket.id, recovered: socket.recovered }));
  }

  // The adapter subscribes and starts reading its streams in the background,
  // with no event telling when: wait until the private channel of every
  // namespace adapter (unique to it, unlike the public one) has its
  // subscriber before announcing readiness. The stream readers have no such
  // witness; the tests sync with a retried broadcast.
  const deadline = Date.now() + 10000;
  for (const [nspName, uid] of Object.entries(uids)) {
    for (;;) {
      const reply = await redis.sendCommand(["PUBSUB", "NUMSUB", `socket.io#${nspName}#${uid}#`]);
      if (Number(reply[1]) >= 1) break;
      if (Date.now() > deadline) throw new Error("no subscription to the channel of " + nspName);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  httpServer.listen(config.port || 0, "127.0.0.1", () => {
    out({ type: "listening", port: httpServer.address().port, uids });
  });
}

async function handle(c) {
  const seq = c.seq;
  switch (c.cmd) {
    case "broadcast":
      operator(c).emit(c.event, ...decodeVal(c.args || []));
      return out({ type: "done", seq });
    case "broadcastWithAck": {
      const op = operator(c).timeout(c.timeout || 3000);
      op.emit(c.event, ...decodeVal(c.args || []), (err, responses) => {
        if (err) out({ type: "error", seq, message: String(err.message || err), responses: encodeVal(responses || []) });
        else out({ type: "acks", seq, responses: encodeVal(responses) });
      });
      return;
    }
    case "fetchSockets": {
      const sockets = await operator(c).fetchSockets();
      return out({
        type: "sockets",
        seq,
        sockets: sockets.map((s) => ({
          id: s.id,
          rooms: Array.from(s.rooms),
          handshake: encodeVal(s.handshake),
          data: encodeVal(s.data),
        })),
      });
    }
    case "serverSideEmit": {
      const nsp = io.of(c.nsp || "/");
      const args = decodeVal(c.args || []);
      if (!c.ack) {
        nsp.serverSideEmit(c.event, ...args);
        return out({ type: "done", seq });
      }
      // The adapter's own request timeout (5 s) bounds the wait.
      nsp.serverSideEmit(c.event, ...args, (err, responses) => {
        if (err) out({ type: "error", seq, message: String(err.message || err), responses: encodeVal(responses || []) });
        else out({ type: "acks", seq, responses: encodeVal(responses) });
      });
      return;
    }
    case "listen": {
      const hasAck = "ack" in c;
      io.of(c.nsp || "/").on(c.event, (...args) => {
        let cb = null;
        if (args.length && typeof args[args.length - 1] === "function") cb = args.pop();
        out({ type: "sse", nsp: c.nsp || "/", event: c.event, args: encodeVal(args), withAck: cb !== null });
        if (cb) cb(hasAck ? decodeVal(c.ack) : { node: name, args });
      });
      return out({ type: "done", seq });
    }
    case "serverCount": {
      const count = await io.of(c.nsp || "/").adapter.serverCount();
      return out({ type: "serverCount", seq, count: Number(count) });
    }
    case "socketsJoin":
      operator(c).socketsJoin(c.join);
      return out({ type: "done", seq });
    case "socketsLeave":
      operator(c).socketsLeave(c.leave);
      return out({ type: "done", seq });
    case "disconnectSockets":
      operator(c).disconnectSockets(!!c.close);
      return out({ type: "done", seq });
    case "localRooms": {
      const sockets = {};
      for (const [id, s] of io.of(c.nsp || "/").sockets) sockets[id] = Array.from(s.rooms);
      return out({ type: "rooms", seq, sockets });
    }
    case "exit":
      io.close(() => process.exit(0));
      // close() waits for the HTTP server; do not let a stuck client keep
      // the process alive past the test.
      setTimeout(() => process.exit(0), 2000).unref();
      return;
    default:
      return out({ type: "error", seq, message: "unknown command " + c.cmd });
  }
}

main().then(
  () => {
    const rl = readline.createInterface({ input: process.stdin });
    rl.on("line", (line) => {
      if (!line.trim()) return;
      let c;
      try {
        c = JSON.parse(line);
      } catch (e) {
        return out({ type: "error", message: "bad command: " + e.message });
      }
      handle(c).catch((e) => out({ type: "error", seq: c.seq, message: String((e && e.message) || e) }));
    });
    rl.on("close", () => process.exit(0));
  },
  (e) => {
    process.stderr.write("node-peer: " + ((e && e.stack) || e) + "\n");
    process.exit(1);
  },
);
