// The package in Node (the same V8 as Chromium, without a browser): the objects a message
// yields own their bytes. They are built in JavaScript from views of wasm memory
// (src/convert.rs), which the next call reuses; a view kept by mistake would change under the
// app. Run by .ci/bindings.sh after the package is built: node --test node.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..", "pkg");
const { initSync, createAccount } = await import(join(pkg, "ratchetry_wasm.js"));
initSync({ module: readFileSync(join(pkg, "ratchetry_wasm_bg.wasm")) });

const now = 1_790_000_000_000;

function pair() {
  const [a, b] = [createAccount(now), createAccount(now)];
  for (const x of [a, b]) for (const y of [a, b]) x.device.updateDeviceList(now, y.primary.accountKey(), y.primary.deviceList());
  a.device.startSessions(now, [{ device: b.device.address(), bundle: b.device.prekeyBundle() }]);
  return [a, b];
}

function outbox(out) {
  assert.equal(out.kind, "ready");
  return out.outbox;
}

test("envelopes, addresses, coverage and received messages keep their bytes across later calls", () => {
  const [a, b] = pair();
  const first = outbox(a.device.send(now, b.primary.accountKey(), new Uint8Array(64).fill(1)));
  const copy = (o) => structuredClone(o);
  const firstCopy = copy(first);
  const received = b.device.receive(now, first.envelopes[0].bytes);
  const receivedCopy = copy(received);
  // Many more calls of every kind, each reusing wasm memory.
  for (let i = 0; i < 50; i++) {
    const out = outbox(a.device.send(now, b.primary.accountKey(), new Uint8Array(64).fill(2 + i)));
    b.device.receive(now, out.envelopes[0].bytes);
    b.device.address();
  }
  assert.deepEqual(first, firstCopy);
  assert.deepEqual(received, receivedCopy);
  assert.equal(received.kind, "direct");
  assert.deepEqual(received.body, new Uint8Array(64).fill(1));
  assert.deepEqual(received.sender, a.device.address());
  assert.equal(received.resent, null);
  assert.deepEqual(first.envelopes[0].to, b.device.address());
  // Coverage names both accounts: the recipient's and the sender's own (for its other devices).
  const covered = first.coverage.map((c) => Buffer.from(c.account).toString("hex")).sort();
  const accounts = [a, b].map((x) => Buffer.from(x.primary.accountKey()).toString("hex")).sort();
  assert.deepEqual(covered, accounts);
  assert.equal(first.coverage[0].digest.length, 32);
  assert.equal(typeof first.coverage[0].version, "number");
  assert.equal(first.messageId.length, 16);
  assert.equal(first.group, undefined);
  // Each byte field is an array of its own, not a view over the module's memory.
  for (const bytes of [first.envelopes[0].bytes, first.envelopes[0].to.account, first.messageId, received.body, received.id, received.sender.account]) {
    assert.ok(bytes instanceof Uint8Array);
    assert.equal(bytes.byteOffset, 0);
    assert.equal(bytes.buffer.byteLength, bytes.length);
  }
});
