"use strict";
// A Node node instrumented for the Admin UI, for the mixed-cluster test of
// sockstream's admin support: socket.io 4.8.1 with
// @socket.io/redis-streams-adapter 0.3.1 and @socket.io/admin-ui 0.5.1's
// instrument(), basic auth.
//
// Configuration: one JSON object in argv[2]:
//   {"redisUrl": "redis://127.0.0.1:1234", "serverId": "node-js",
//    "username": "admin", "passwordHash": "$2a$...", "namespace": "/admin"}
// Prints {"type":"listening","port":1234} once ready, then
// {"type":"connection","nsp":"/","id":"<sid>"} for every socket of "/" and
// {"type":"rooms","id":"<sid>","rooms":[...]} whenever one of them joins a
// room. Exits on {"cmd":"exit"} or at the end of stdin.

const http = require("http");
const readline = require("readline");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-streams-adapter");
const { instrument } = require("@socket.io/admin-ui");
const { createClient } = require("redis");

const config = JSON.parse(process.argv[2]);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

async function main() {
  const redis = createClient({ url: config.redisUrl });
  redis.on("error", (err) => process.stderr.write("redis error: " + err.message + "\n"));
  await redis.connect();

  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: createAdapter(redis) });
  io.on("connection", (socket) => out({ type: "connection", nsp: "/", id: socket.id }));
  io.of("/").adapter.on("join-room", (room, id) => out({ type: "rooms", id, room }));
  instrument(io, {
    auth: { type: "basic", username: config.username, password: config.passwordHash },
    serverId: config.serverId,
    namespaceName: config.namespace || "/admin",
    mode: "development",
  });
  httpServer.listen(0, "127.0.0.1", () => out({ type: "listening", port: httpServer.address().port }));
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  try {
    if (JSON.parse(line).cmd === "exit") process.exit(0);
  } catch (e) {
    out({ type: "error", message: String(e && e.message) });
  }
});
rl.on("close", () => process.exit(0));

main().catch((e) => {
  process.stderr.write(String((e && e.stack) || e) + "\n");
  process.exit(1);
});
