// session.js: the Node side of package recovery's interoperability tests.
// It runs the real @socket.io/redis-streams-adapter 0.3.1 (its own
// persistSession / restoreSession, hence its own @msgpack/msgpack encoding
// and its own Redis commands) inside a socket.io 4.8 server.
//
//   node session.js encode                 < session.json
//       prints {"value": base64}: what persistSession would store, computed
//       with the @msgpack/msgpack the package imports (no Redis).
//   node session.js persist <redis-url>    < session.json
//       adapter.persistSession(session) on namespace "/", waits until Redis
//       has applied the SET, prints {"ok": true}.
//   node session.js restore <redis-url> <pid>
//       appends an entry of another namespace to the stream "socket.io" to
//       have a valid offset, calls adapter.restoreSession(pid, offset) on
//       namespace "/", prints {"session": {...}} or {"error": "..."}.
//
// session.json is {"sid","pid","rooms","data"}; binary values travel as
// {"$bin": base64} and dates as {"$date": milliseconds}, both directions.
// The maximum disconnection duration is 60 s.
"use strict";

const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-streams-adapter");
const { encode } = require("@msgpack/msgpack");

function revive(v) {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    if (typeof v.$bin === "string") return Buffer.from(v.$bin, "base64");
    if (typeof v.$date === "number") return new Date(v.$date);
    const o = {};
    for (const k of Object.keys(v)) o[k] = revive(v[k]);
    return o;
  }
  return v;
}

function replace(v) {
  if (v instanceof Date) return { $date: v.getTime() };
  if (v instanceof Uint8Array) return { $bin: Buffer.from(v).toString("base64") };
  if (Array.isArray(v)) return v.map(replace);
  if (v && typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v)) o[k] = replace(v[k]);
    return o;
  }
  return v;
}

function out(o) {
  process.stdout.write(JSON.stringify(o) + "\n");
}

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return revive(JSON.parse(Buffer.concat(chunks).toString("utf8")));
}

async function withAdapter(url, fn) {
  const client = createClient({ url });
  client.on("error", () => {});
  await client.connect();
  const io = new Server({
    adapter: createAdapter(client),
    connectionStateRecovery: { maxDisconnectionDuration: 60000 },
  });
  try {
    await fn(io.of("/").adapter, client);
  } finally {
    // The adapter's readers block in XREAD for seconds: do not wait for them.
    process.exit(0);
  }
}

async function main() {
  const [op, url, pid] = process.argv.slice(2);
  switch (op) {
    case "encode": {
      const session = await readStdin();
      out({ value: Buffer.from(encode(session)).toString("base64") });
      return;
    }
    case "persist": {
      const session = await readStdin();
      await withAdapter(url, async (adapter, client) => {
        adapter.persistSession(session); // fire and forget, as socket.io calls it
        await client.ping(); // same connection, so the SET is applied
        out({ ok: true });
      });
      return;
    }
    case "restore":
      await withAdapter(url, async (adapter, client) => {
        const offset = await client.xAdd("socket.io", "*", {
          uid: "sessiontest",
          nsp: "/elsewhere",
          type: "2",
        });
        try {
          const session = await adapter.restoreSession(pid, offset);
          out({ session: replace(session) });
        } catch (e) {
          out({ error: String(e) });
        }
      });
      return;
    default:
      throw new Error("unknown op " + op);
  }
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
