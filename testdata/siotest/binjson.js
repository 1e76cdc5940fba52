// binjson.js: values JSON lacks, in JSON lines, for the Node scripts the Go
// tests drive: bytes as {"$bin": "<base64>"} (byte-exact both ways), dates
// as ISO strings out and {"$date": "<ISO>"} in, functions (ack callbacks)
// as {"$fn": true} out.
"use strict";

// encodeVal replaces every Buffer, ArrayBuffer or typed array in v by
// {"$bin": base64}, a Date by its ISO string, a function by {"$fn": true},
// and undefined by null (object keys holding undefined are left out, as
// JSON.stringify would).
function encodeVal(v) {
  if (Buffer.isBuffer(v)) return { $bin: v.toString("base64") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("base64") };
  if (ArrayBuffer.isView(v)) return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") };
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(encodeVal);
  if (typeof v === "function") return { $fn: true };
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = encodeVal(x);
    return o;
  }
  return v === undefined ? null : v;
}

// decodeVal turns every {"$bin": base64} object in v back into a Buffer
// and every {"$date": ISO} into a Date.
function decodeVal(v) {
  if (Array.isArray(v)) return v.map(decodeVal);
  if (v && typeof v === "object") {
    if (typeof v.$bin === "string" && Object.keys(v).length === 1) return Buffer.from(v.$bin, "base64");
    if (typeof v.$date === "string" && Object.keys(v).length === 1) return new Date(v.$date);
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = decodeVal(x);
    return o;
  }
  return v;
}

module.exports = { encodeVal, decodeVal };
