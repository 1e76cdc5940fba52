"use strict";
// The application sockstream-bench measures on the Node side: the same as
// cmd/benchapp on the Go side, on socket.io 4.8.1 with
// @socket.io/redis-streams-adapter 0.3.1 (from testdata/node_modules).
//
//   node testdata/bench/app.js [--port 3000] [--redis redis://127.0.0.1:6379]
//                              [--recovery] [--max-len 10000]
//
// - a client joins the room named by the "room" query parameter of its
//   handshake ("bench" when absent);
// - "bcast" broadcasts its arguments to that room, cluster-wide, as "m";
// - "echo" acknowledges with its arguments.
// Without --redis the server uses the in-memory adapter. Once listening it
// prints {"listening": <port>} on stdout; SIGTERM closes it.

const http = require("http");
const { Server } = require("socket.io");

function parseArgs(argv) {
  const o = { port: 3000, redis: "", recovery: false, maxLen: 10000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case "--port": o.port = Number(next()); break;
      case "--redis": o.redis = next(); break;
      case "--recovery": o.recovery = true; break;
      case "--max-len": o.maxLen = Number(next()); break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error(`--port: ${o.port} is not a port`);
  if (!Number.isInteger(o.maxLen) || o.maxLen < 1) throw new Error(`--max-len: ${o.maxLen} is not a positive integer`);
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const opts = {};
  if (o.recovery) {
    opts.connectionStateRecovery = { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true };
  }
  let redis = null;
  if (o.redis) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-streams-adapter");
    redis = createClient({ url: o.redis });
    redis.on("error", (err) => console.error("redis:", err.message));
    await redis.connect();
    opts.adapter = createAdapter(redis, { maxLen: o.maxLen });
  }
  const httpServer = http.createServer();
  const io = new Server(httpServer, opts);
  io.on("connection", (socket) => {
    const room = String(socket.handshake.query.room || "bench");
    socket.join(room);
    socket.on("bcast", (...args) => {
      io.to(room).emit("m", ...args);
    });
    socket.on("echo", (...args) => {
      const ack = args.pop();
      if (typeof ack === "function") ack(...args);
    });
  });
  httpServer.listen(o.port, "127.0.0.1", () => {
    process.stdout.write(JSON.stringify({ listening: httpServer.address().port }) + "\n");
  });
  const stop = () => {
    io.close(() => {
      const done = () => process.exit(0);
      if (redis) redis.quit().then(done, done);
      else done();
    });
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(2);
});
