// Echo check with the official engine.io-client, run by TestNodeClient:
//   NODE_PATH=…/testdata/node_modules node echo-client.js URL MODE
// MODE: "websocket" (WebSocket only), "polling" (polling only) or "upgrade"
// (polling, then the upgrade). Sends a text and a binary message (after the
// upgrade in "upgrade" mode), expects both echoed, prints "ok <transport>".
const { Socket } = require("engine.io-client");

const [url, mode] = process.argv.slice(2);
const opts = { path: new URL(url).pathname };
if (mode === "websocket") opts.transports = ["websocket"];
if (mode === "polling") opts.transports = ["polling"];
if (mode === "upgrade") { opts.transports = ["polling", "websocket"]; opts.upgrade = true; }

const socket = new Socket(new URL(url).origin, opts);
const fail = (why) => { console.error("fail: " + why); process.exit(1); };
setTimeout(() => fail("timeout"), 15000).unref();

const want = ["text:héllo", "binary:1,2,3,255"];
const got = [];
let started = false;

function start() {
  if (started) return;
  started = true;
  socket.send("héllo");
  socket.send(new Uint8Array([1, 2, 3, 255]));
}

socket.on("open", () => {
  if (mode !== "upgrade") start();
});
socket.on("upgrade", () => start());
socket.on("message", (data) => {
  if (typeof data === "string") got.push("text:" + data);
  else got.push("binary:" + Array.from(new Uint8Array(data)).join(","));
  if (got.length === want.length) {
    if (JSON.stringify(got) !== JSON.stringify(want)) fail(JSON.stringify(got));
    console.log("ok " + socket.transport.name);
    socket.close();
    process.exit(0);
  }
});
socket.on("error", (e) => fail("error " + e));
socket.on("close", (reason) => { if (got.length < want.length) fail("closed: " + reason); });
