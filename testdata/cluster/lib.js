"use strict";
// Shared helpers of the cluster codec's Node scripts: a recording stand-in for
// a `redis` v4 client, a deterministic crypto.randomBytes, and a JSON form of
// decoded values that keeps Buffers and Dates recognizable.

const crypto = require("crypto");

// Deterministic ids: randomBytes(n) returns n bytes of a counter, so the uids
// and requestIds of the golden files are the same on every run.
function makeRandomDeterministic() {
  let counter = 0;
  crypto.randomBytes = (n, cb) => {
    const b = Buffer.alloc(n);
    counter++;
    for (let i = 0; i < n; i++) b[i] = (counter * 17 + i) & 0xff;
    if (cb) return cb(null, b);
    return b;
  };
}

// A stand-in for a `redis` v4 client: it records XADD and PUBLISH calls, hands
// out stream ids, answers PUBSUB NUMSUB with `numSub`, and keeps the
// subscription listeners so that a script can inject incoming messages.
class FakeRedis {
  constructor(shared) {
    this.shared = shared || { xadds: [], publishes: [], listeners: new Map(), numSub: 2, seq: 0 };
  }
  duplicate() {
    return new FakeRedis(this.shared);
  }
  on() {}
  async connect() {}
  disconnect() {}
  sSubscribe() {}
  subscribe(channels, listener) {
    for (const c of [].concat(channels)) this.shared.listeners.set(c, listener);
  }
  xRead() {
    return new Promise(() => {}); // never answers: nothing to poll
  }
  async xAdd(key, id, payload, opts) {
    const entryId = `1700000000000-${this.shared.seq++}`;
    this.shared.xadds.push({ key, id, fields: Object.entries(payload), opts, entryId });
    return entryId;
  }
  async publish(channel, payload) {
    this.shared.publishes.push({ channel, payload: Buffer.from(payload) });
    return 1;
  }
  async sPublish(channel, payload) {
    return this.publish(channel, payload);
  }
  async sendCommand(args) {
    if (args[0] === "PUBSUB") return [args[2], this.shared.numSub];
    throw new Error("unexpected command " + args.join(" "));
  }
}

// toTagged turns a decoded value into plain JSON: binary becomes
// {"$bin": base64} and dates {"$date": ISO string}; undefined members vanish.
function toTagged(v) {
  if (v instanceof Uint8Array) return { $bin: Buffer.from(v).toString("base64") };
  if (v instanceof Date) return { $date: v.toISOString() };
  if (Array.isArray(v)) return v.map((x) => (x === undefined ? null : toTagged(x)));
  if (v && typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) {
      if (x !== undefined) out[k] = toTagged(x);
    }
    return out;
  }
  return v;
}

module.exports = { makeRandomDeterministic, FakeRedis, toTagged };
