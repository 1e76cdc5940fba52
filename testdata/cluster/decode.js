"use strict";
// Decodes, with the Node package's own logic, what a Go test hands it on
// stdin: a JSON array of {name, kind: "entry", fields: [[k, v], ...]} (stream
// entries, decoded by RedisStreamsAdapter.decode) or {name, kind: "pubsub",
// payload: base64} (decoded by @msgpack/msgpack as the package does). Prints
// [{name, decoded}] or [{name, error}], binary as {"$bin": base64}.

const { FakeRedis, toTagged } = require("./lib");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-streams-adapter");
const { decode } = require("@msgpack/msgpack");

let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const io = new Server({ adapter: createAdapter(new FakeRedis()) });
  const decodeEntry = io.of("/").adapter.constructor.decode;
  const out = JSON.parse(input).map((c) => {
    try {
      if (c.kind === "entry") {
        return { name: c.name, decoded: toTagged(decodeEntry(Object.fromEntries(c.fields))) };
      }
      return { name: c.name, decoded: toTagged(decode(Buffer.from(c.payload, "base64"))) };
    } catch (e) {
      return { name: c.name, error: String(e && e.message) };
    }
  });
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);
});
