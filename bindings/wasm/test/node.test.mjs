// The package in Node (the same V8 as Chromium, without a browser): state sealed at rest, a
// primary's policy, and that the objects a message yields own their bytes. They are built in JavaScript from views of wasm memory
// (src/convert.rs), which the next call reuses; a view kept by mistake would change under the
// app. Run by .ci/bindings.sh after the package is built: node --test node.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { inspect } from "node:util";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..", "pkg");
const { initSync, createAccount, sealState, openState, envelopeId, envelopeIds, askAgain, Receiving, LinkingCompanion } = await import(join(pkg, "ratchetry_wasm.js"));
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

function code(f) {
  try { f(); } catch (e) { return e.code; }
  return "no error";
}

test("state sealed at rest opens only in its slot, from its sequence on, and shows no bytes", () => {
  const key = new Uint8Array(32).fill(7);
  const state = new Uint8Array(100).fill(0x5a);
  const slot = new TextEncoder().encode("device");
  const sealed = sealState(key, slot, 5, state);
  const opened = openState(key, sealed, slot, 5);
  assert.deepEqual(opened.state(), state);
  assert.equal(opened.sequence, 5);
  for (const text of [String(opened), JSON.stringify(opened), inspect(opened)]) {
    assert.ok(!text.includes("90,90") && !text.includes("5a5a"), text);
  }
  assert.equal(code(() => openState(key, sealed, new TextEncoder().encode("other"), 0)), "crypto.authentication_failed");
  assert.equal(code(() => openState(new Uint8Array(32), sealed, slot, 0)), "crypto.authentication_failed");
  assert.equal(code(() => openState(key, sealed, slot, 6)), "state.rollback");
  assert.equal(code(() => openState(key, sealed.slice(0, 10), slot, 0)).split(".")[0], "decode");
  assert.equal(code(() => sealState(key.slice(1), slot, 0, state)), "binding.bad_length");
  assert.equal(code(() => sealState(key, slot, -1, state)), "binding.bad_input");
  assert.equal(code(() => sealState(key, slot, 1.5, state)), "binding.bad_input");
  assert.equal(code(() => openState(key, sealed, slot, NaN)), "binding.bad_input");
});

test("a primary reports the policy it was made with, every field present", () => {
  const policy = { account: { maxCompanions: 2, companionValidityMs: 86_400_000 }, linkInvitationValidityMs: 60_000 };
  const { primary } = createAccount(now, { policy });
  assert.deepEqual(primary.policy(), policy);
  const defaults = createAccount(now).primary.policy();
  assert.deepEqual(Object.keys(defaults).sort(), ["account", "linkInvitationValidityMs"]);
  assert.equal(defaults.account.maxCompanions, 4);
});

function thrown(f) {
  try { f(); } catch (e) { return e; }
  throw new Error("no error");
}

test("a thrown error names what the app acts on, and nothing else", () => {
  const [a, b] = [createAccount(now), createAccount(now)];
  const [aKey, bKey] = [a.primary.accountKey(), b.primary.accountKey()];
  a.device.updateDeviceList(now, bKey, b.primary.deviceList());
  a.device.startSessions(now, [{ device: b.device.address(), bundle: b.device.prekeyBundle() }]);
  const env = outbox(a.device.send(now, bKey, new Uint8Array([1]))).envelopes[0].bytes;
  // Bob does not follow Alice: fetch her list.
  let e = thrown(() => b.device.receive(now, env));
  assert.equal(e.name, "RatchetryError");
  assert.equal(e.code, "fanout.unknown_account");
  assert.deepEqual(e.account, aKey);
  for (const name of ["device", "group", "envelopeId", "number"]) assert.equal(e[name], undefined, name);
  b.device.updateDeviceList(now, aKey, a.primary.deviceList());
  b.device.receive(now, env);
  // Read already: acknowledge it again, by its envelope id.
  e = thrown(() => b.device.receive(now, env));
  assert.equal(e.code, "fanout.duplicate");
  assert.deepEqual(e.envelopeId, envelopeId(env));
  assert.equal(e.account, undefined);
  // A group it does not have; a binding-level refusal names nothing.
  const group = new Uint8Array(32).fill(7);
  e = thrown(() => a.device.sendGroup(now, group, new Uint8Array([1])));
  assert.equal(e.code, "fanout.unknown_group");
  assert.deepEqual(e.group, group);
  e = thrown(() => a.device.send(now, new Uint8Array(3), new Uint8Array([1])));
  assert.equal(e.code, "binding.bad_length");
  for (const name of ["account", "device", "group", "envelopeId", "number"]) assert.equal(e[name], undefined, name);
});

test("a held group message is asked for with askAgain unless its message is stored", () => {
  const [a, b] = pair();
  const group = new Uint8Array(32).fill(9);
  for (const x of [a, b]) x.device.setGroupMembers(group, [a.primary.accountKey(), b.primary.accountKey()]);
  // The relay withholds the distribution: only the group envelope reaches Bob.
  const held = outbox(a.device.sendGroup(now, group, new Uint8Array([1, 2, 3]))).group.bytes;
  const step = new Receiving().step(b.device, now, held, false);
  assert.equal(step.inbound.kind, "hold");
  assert.deepEqual(step.inbound.from, a.device.address());
  const ids = envelopeIds(held);
  assert.equal(ids.length, 2);
  assert.ok(ids.some((id) => Buffer.from(id).equals(Buffer.from(envelopeId(held)))));
  assert.deepEqual(envelopeIds(new Uint8Array(10)), [envelopeId(new Uint8Array(10))]);
  // Stored under one of them: a replay, nothing asked, nothing changed.
  const before = b.device.toBytes();
  const replay = askAgain(b.device, now, held, 3, true);
  assert.equal(replay.kind, "duplicate");
  assert.ok(ids.some((id) => Buffer.from(id).equals(Buffer.from(replay.envelopeId))));
  assert.deepEqual(b.device.toBytes(), before);
  const ask = askAgain(b.device, now, held, 3, false);
  assert.equal(ask.kind, "askAgain");
  assert.deepEqual(ask.to, a.device.address());
  assert.ok(ask.request.length > 0);
});

test("asks beyond an account's share are askLater until a place frees", () => {
  const [a, b] = pair();
  const share = 64; // ratchetry::fanout::MAX_WAITING_RETRIES_PER_ACCOUNT
  const broken = [];
  for (let i = 0; i <= share; i++) {
    const env = outbox(a.device.send(now, b.primary.accountKey(), new Uint8Array([i]))).envelopes[0].bytes.slice();
    env[env.length - 1] ^= 1;
    broken.push(env);
  }
  for (const env of broken.slice(0, share)) assert.equal(new Receiving().step(b.device, now, env, false).inbound.kind, "askAgain");
  const at = now + 24 * 60 * 60 * 1000; // the first ask's time + PENDING_RETRY_HOLD_MS
  const before = b.device.toBytes();
  assert.deepEqual(new Receiving().step(b.device, now, broken[share], false).inbound, { kind: "askLater", at });
  assert.deepEqual(askAgain(b.device, now, broken[share], 2, false), { kind: "askLater", at });
  assert.deepEqual(b.device.toBytes(), before);
  const ask = new Receiving().step(b.device, at, broken[share], false).inbound;
  assert.equal(ask.kind, "askAgain");
  assert.deepEqual(ask.to, a.device.address());
});

test("the signed prekey's sessions are counted, and a rotation starts afresh, dated then", () => {
  const [a, b] = pair();
  assert.equal(b.device.signedPrekeySessions(), 0);
  assert.ok(b.device.signedPrekeyCreatedAt() <= now);
  const env = outbox(a.device.send(now, b.primary.accountKey(), new Uint8Array([1]))).envelopes[0].bytes;
  b.device.receive(now, env);
  assert.equal(b.device.signedPrekeySessions(), 1);
  b.device.rotateSignedPrekey(now + 1);
  assert.equal(b.device.signedPrekeySessions(), 0);
  assert.equal(b.device.signedPrekeyCreatedAt(), now + 1);
});

test("an expired companion is told so, refuses with fanout.this_device_expired, and sends once renewed", () => {
  const day = 24 * 60 * 60 * 1000;
  const [alice, bob] = [createAccount(now), createAccount(now)];
  const [ak, bk] = [alice.primary.accountKey(), bob.primary.accountKey()];
  const link = () => {
    const linking = new LinkingCompanion(alice.primary.invite(now));
    const linked = linking.complete(now, alice.primary.approve(now, linking.request()));
    alice.primary.confirm(linked.confirmation);
    return linked.device;
  };
  const laptop = link();
  const tablet = link();
  alice.primary.unlink(now, tablet.address().device);
  const unlinked = alice.primary.deviceList();
  alice.primary.renew(now + 13 * day);
  // Sixteen days on, past the laptop's validity (fifteen days): the relay served it the
  // unlink's list, not the renewal.
  const later = now + 16 * day;
  laptop.updateDeviceList(now, bk, bob.primary.deviceList());
  const events = laptop.updateDeviceList(later, ak, unlinked);
  assert.ok(events.some((e) => e.kind === "thisDeviceExpired"), JSON.stringify(events));
  assert.ok(!events.some((e) => e.kind === "thisDeviceRemoved"));
  assert.equal(code(() => laptop.send(later, bk, new Uint8Array([1]))), "fanout.this_device_expired");
  // The renewal, signed before it expired, is served: it sends again, and Bob reads it.
  const renewed = laptop.updateDeviceList(later, ak, alice.primary.deviceList());
  assert.ok(!renewed.some((e) => e.kind === "thisDeviceExpired"));
  const bundles = { [Buffer.from(bk).toString("hex")]: bob.device, [Buffer.from(ak).toString("hex")]: alice.device };
  const body = new Uint8Array([7, 7, 7]);
  let out = laptop.send(later, bk, body);
  if (out.kind === "needBundles") {
    laptop.startSessions(later, out.devices.map((d) => ({ device: d, bundle: bundles[Buffer.from(d.account).toString("hex")].prekeyBundle() })));
    out = laptop.send(later, bk, body);
  }
  const sent = outbox(out);
  bob.device.updateDeviceList(later, ak, alice.primary.deviceList());
  const toBob = sent.envelopes.find((e) => Buffer.from(e.to.account).equals(Buffer.from(bk)));
  const read = bob.device.receive(later, toBob.bytes);
  assert.equal(read.kind, "direct");
  assert.deepEqual(read.body, body);
  assert.deepEqual(read.sender, laptop.address());
});
