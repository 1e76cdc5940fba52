// binjson.js: binary values in JSON lines, as {"$bin": "<base64>"}, for the
// Node scripts the Go tests drive (JSON has no bytes; base64 keeps a
// payload byte-exact both ways).
"use strict";

// encodeVal replaces every Buffer, ArrayBuffer or typed array in v by
// {"$bin": base64}, and undefined by null.
function encodeVal(v) {
  if (Buffer.isBuffer(v)) return { $bin: v.toString("base64") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("base64") };
  if (ArrayBuffer.isView(v)) return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") };
  if (Array.isArray(v)) return v.map(encodeVal);
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = encodeVal(x);
    return o;
  }
  return v === undefined ? null : v;
}

// decodeVal turns every {"$bin": base64} object in v back into a Buffer.
function decodeVal(v) {
  if (Array.isArray(v)) return v.map(decodeVal);
  if (v && typeof v === "object") {
    if (typeof v.$bin === "string" && Object.keys(v).length === 1) return Buffer.from(v.$bin, "base64");
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = decodeVal(x);
    return o;
  }
  return v;
}

module.exports = { encodeVal, decodeVal };
