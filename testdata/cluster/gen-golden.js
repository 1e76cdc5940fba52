"use strict";
// Generates golden.json: what @socket.io/redis-streams-adapter 0.3.1 writes to
// Redis for each kind of cluster message, produced by the real package driven
// by a real socket.io 4.8 server (the Redis client is a recording stand-in).
//
//   cd testdata && node cluster/gen-golden.js > cluster/golden.json
//
// Each case is either an "entry" (stream key, XADD fields in order) or a
// "pubsub" message (channel, MessagePack payload in base64), plus "decoded":
// the message as the Node package decodes it again (binary as {"$bin":...}).
// Cases marked "constructed" are messages Node 0.3 never sends (heartbeats,
// adapter close), built as ClusterAdapter would and encoded the way the
// package encodes everything on pub/sub (@msgpack/msgpack encode).

const { makeRandomDeterministic, FakeRedis, toTagged } = require("./lib");
makeRandomDeterministic();

const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-streams-adapter");
const { encode, decode } = require("@msgpack/msgpack");

const tick = () => new Promise((r) => setImmediate(r));

async function main() {
  const redis = new FakeRedis();
  const shared = redis.shared;
  const io = new Server({ adapter: createAdapter(redis) });
  const orders = io.of("/orders-namespace");
  await tick();

  const root = io.of("/").adapter;
  const decodeEntry = root.constructor.decode; // RedisStreamsAdapter.decode
  const cases = [];
  let seen = { x: 0, p: 0 };

  // collect records what the last action wrote, under the given name.
  async function collect(name, action) {
    await action();
    await tick();
    await tick();
    const xadds = shared.xadds.slice(seen.x);
    const pubs = shared.publishes.slice(seen.p);
    seen = { x: shared.xadds.length, p: shared.publishes.length };
    if (xadds.length + pubs.length !== 1) {
      throw new Error(`${name}: expected one write, got ${xadds.length} XADD and ${pubs.length} PUBLISH`);
    }
    if (xadds.length === 1) {
      const x = xadds[0];
      const raw = Object.fromEntries(x.fields);
      cases.push({
        name,
        kind: "entry",
        stream: x.key,
        maxLen: x.opts.TRIM.threshold,
        fields: x.fields,
        decoded: toTagged(decodeEntry(raw)),
      });
    } else {
      const p = pubs[0];
      cases.push({
        name,
        kind: "pubsub",
        channel: p.channel,
        payload: p.payload.toString("base64"),
        decoded: toTagged(decode(p.payload)),
      });
    }
  }

  // A remote node sends us a message over pub/sub.
  const remoteUID = "0123456789abcdef";
  function inject(nsp, message) {
    const listener = shared.listeners.get(`socket.io#${nsp}#`);
    listener(Buffer.from(encode({ ...message, uid: remoteUID, nsp })));
  }

  // A fake local socket, so that fetchSockets and broadcast acks have someone
  // to answer for.
  const acks = new Map();
  const socket = {
    id: "sid-1",
    handshake: {
      headers: { host: "localhost:3000", "user-agent": "node" },
      time: "Tue Nov 14 2023 22:13:20 GMT+0000 (Coordinated Universal Time)",
      address: "::1",
      xdomain: false,
      secure: false,
      issued: 1700000000000,
      url: "/socket.io/?EIO=4&transport=websocket",
      query: { EIO: "4", transport: "websocket" },
      auth: { token: "abc" },
      sessionStore: "removed by the adapter",
    },
    rooms: new Set(["sid-1", "room1"]),
    data: { user: "bob", n: 42 },
    acks,
    client: { writeToEngine() {} },
    join() {},
    leave() {},
    disconnect() {},
  };
  io.of("/").sockets.set(socket.id, socket);
  root.addAll(socket.id, socket.rooms);

  // Stream entries (durable messages).
  await collect("broadcast_plain", () => io.emit("plain", "hello", { n: 1 }));
  await collect("broadcast_rooms_flags", () =>
    io.to("room1").to("room2").except("room3").volatile.compress(false).emit("ev", 1, 2.5, -3, null, true, [1, "a"], "é\u2028<>&\"\\\n")
  );
  await collect("broadcast_binary", () =>
    io.emit("bin", Buffer.from([1, 2, 3]), { nested: Buffer.from("hi"), n: 300, neg: -200, big: 4294967296, f: 0.5 })
  );
  await collect("broadcast_other_namespace", () => orders.emit("order", { id: 7 }));
  await collect("sockets_join", () => io.in("room1").socketsJoin(["a", "b"]));
  await collect("sockets_leave", () => io.except("x").socketsLeave("a"));
  await collect("disconnect_sockets", () => io.in("room1").disconnectSockets(true));
  await collect("disconnect_sockets_noclose", () => io.disconnectSockets());

  // Pub/sub (ephemeral messages).
  await collect("broadcast_with_ack", () => io.to("room1").timeout(1000).emit("ask", "q", () => {}));
  await collect("fetch_sockets", () => {
    io.in("room1").fetchSockets().catch(() => {});
  });
  await collect("server_side_emit", () => io.serverSideEmit("hello", "world", 1));
  await collect("server_side_emit_with_ack", () => {
    io.serverSideEmit("ping", "x", () => {});
  });
  await collect("server_side_emit_binary", () => io.serverSideEmit("blob", Buffer.from([0, 255])));

  // Responses, answering requests injected from a remote node.
  io.on("ping", (arg, cb) => cb("pong"));
  io.on("pingbin", (cb) => cb(Buffer.from([9, 8, 7])));
  const opts = { rooms: ["room1"], except: [], flags: {} };
  await collect("fetch_sockets_response", () =>
    inject("/", { type: 7, data: { opts, requestId: "aaaaaaaaaaaaaaaa" } })
  );
  await collect("server_side_emit_response", () =>
    inject("/", { type: 9, data: { requestId: "bbbbbbbbbbbbbbbb", packet: ["ping", "x"] } })
  );
  await collect("server_side_emit_response_binary", () =>
    inject("/", { type: 9, data: { requestId: "cccccccccccccccc", packet: ["pingbin"] } })
  );
  await collect("broadcast_client_count", () =>
    inject("/", {
      type: 3,
      data: { packet: { type: 2, data: ["ask"] }, requestId: "dddddddddddddddd", opts: { rooms: ["room1"], except: [], flags: { timeout: 1000 } } },
    })
  );
  await collect("broadcast_ack", () => {
    const ack = [...acks.values()].pop();
    ack({ ok: true });
  });

  // Messages Node 0.3 never sends; encoded as the package encodes pub/sub.
  for (const [name, type] of [["initial_heartbeat", 1], ["heartbeat", 2], ["adapter_close", 13]]) {
    const msg = { type, uid: "fedcba9876543210", nsp: "/" };
    const payload = Buffer.from(encode(msg));
    cases.push({ name, kind: "pubsub", constructed: true, channel: "socket.io#/#", payload: payload.toString("base64"), decoded: toTagged(decode(payload)) });
  }

  // Stream naming: hashCode and the stream a namespace goes to with
  // streamCount 3, as the package computes them.
  const { hashCode } = require("@socket.io/redis-streams-adapter/dist/util");
  const names = ["/", "/orders-namespace", "/chat", "/admin", "/a", "/é", "/日本語", "/emoji-😀", "/" + "x".repeat(200), ""];
  const hashes = names.map((nsp) => ({ nsp, hash: hashCode(nsp), index3: hashCode(nsp) % 3 }));

  process.stdout.write(JSON.stringify({ cases, hashes }, null, 1) + "\n");
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
