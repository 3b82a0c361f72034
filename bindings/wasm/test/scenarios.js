// Scenarios of the app-facing API beyond the demo, run in the browser by browser.test.mjs
// (test/page.html loads nothing; the test imports this module into it and calls one export
// per test). Each returns plain data for the test to assert on: what the wasm reported, and
// the codes of what it refused. Devices talk directly here (no relay): the envelopes an outbox
// names are handed to their recipients' devices.
import init, {
  createAccount, Call, CallKeyMessage, Device, LinkingCompanion, HistorySealer, RetryRequest,
  envelopeId,
} from "../pkg/ratchetry_wasm.js";

const now = () => Date.now();
export const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const same = (a, b) => hex(a) === hex(b);
const addrKey = (a) => `${hex(a.account)}#${a.device}`;

/** The code a call throws ("no error" if it does not), for the refusals checked. */
function code(f) {
  try { f(); return "no error"; } catch (e) { return e.code === undefined ? `untyped ${e}` : e.code; }
}

/** Devices by address, for bundles and deliveries. */
class World {
  constructor() { this.devices = new Map(); }
  add(device) { this.devices.set(addrKey(device.address()), device); return device; }
  device(a) { return this.devices.get(addrKey(a)); }
  /** Runs a send until it is ready, with each device's own bundle (no one-time prekey). */
  ready(device, op, bundle = (d) => this.device(d).prekeyBundle()) {
    for (let i = 0; i < 4; i++) {
      const out = op();
      if (out.kind === "ready") return out.outbox;
      if (out.kind === "needBundles") device.startSessions(now(), out.devices.map((d) => ({ device: d, bundle: bundle(d) })));
      else throw new Error(`${out.kind}: follow the lists first`);
    }
    throw new Error("send did not become ready");
  }
  /** The envelope an outbox has for `to`. */
  static envelope(outbox, to) {
    const e = outbox.envelopes.find((e) => addrKey(e.to) === addrKey(to));
    if (!e) throw new Error(`no envelope for ${to.device}`);
    return e.bytes;
  }
}

/** Two accounts that follow each other's lists. */
function twoAccounts(world, aliceOptions, bobOptions) {
  const alice = createAccount(now(), aliceOptions);
  const bob = createAccount(now(), bobOptions);
  for (const x of [alice, bob]) {
    world.add(x.device);
    for (const y of [alice, bob]) x.device.updateDeviceList(now(), y.primary.accountKey(), y.primary.deviceList());
  }
  return { alice, bob };
}

// ---- No secret in any string form or inspection ----

/** What console.log shows of a value: its own data properties, recursively, typed arrays' bytes. */
function inspect(x, depth = 0, seen = new Set()) {
  if (x === null || (typeof x !== "object" && typeof x !== "function")) return String(x);
  if (seen.has(x) || depth > 8) return "…";
  seen.add(x);
  if (ArrayBuffer.isView(x)) return `${x.constructor.name}(${Array.from(x).join(",")}) ${hex(x)} ${btoa(String.fromCharCode(...x))}`;
  const parts = [x.constructor?.name ?? "Object"];
  for (const k of Reflect.ownKeys(x)) {
    const d = Object.getOwnPropertyDescriptor(x, k);
    if (d && "value" in d) parts.push(`${String(k)}: ${inspect(d.value, depth + 1, seen)}`);
  }
  return parts.join(" ");
}

/** How a secret could show: hex, decimal bytes, base64 at each alignment; whole and its first 8 bytes. */
function needles(secret) {
  const list = [];
  for (const s of [secret, secret.slice(0, 8)]) {
    list.push(hex(s), hex(s).toUpperCase(), Array.from(s).join(","), Array.from(s).join(", "));
  }
  // JSON.stringify of a Uint8Array: {"0":188,"1":94,...}
  list.push(Array.from(secret.slice(0, 8), (x, i) => `"${i}":${x}`).join(","));
  for (let i = 0; i < 3; i++) list.push(btoa(String.fromCharCode(...secret.slice(i, i + 12))));
  return list;
}

/**
 * Every string form of every object (String, JSON.stringify, the inspection console.log
 * shows), each logged too so the test can check the console's own rendering; returns what
 * leaked (empty when nothing did) and the needles for the console check.
 */
export function secretsShown(objects, secrets) {
  const all = secrets.flatMap(needles);
  const leaked = [];
  for (const [name, x] of Object.entries(objects)) {
    const forms = { string: String(x), json: JSON.stringify(x) ?? "", inspect: inspect(x) };
    for (const [form, text] of Object.entries(forms)) {
      for (const n of all) if (text.includes(n)) leaked.push(`${name} ${form}`);
    }
    console.log(`secrets check ${name}:`, x);
  }
  return { leaked, needles: all };
}

// ---- Calls ----

export async function calls() {
  await init();
  const world = new World();
  const { alice, bob } = twoAccounts(world);
  const carol = createAccount(now());
  world.add(carol.device);
  for (const d of [alice.device, bob.device, carol.device])
    for (const p of [alice.primary, bob.primary, carol.primary]) d.updateDeviceList(now(), p.accountKey(), p.deviceList());
  const [a, b, c] = [alice.device.address(), bob.device.address(), carol.device.address()];
  const others = (call) => call.participants.filter((p) => addrKey(p) !== addrKey(a));
  const keysOf = (call, who) => { const k = call.srtpKeys(who); return hex(k.masterKey()) + "/" + hex(k.masterSalt()); };

  // Alice calls Bob; the relay corrupts the key message, so Bob asks for it again.
  const call = Call.start("oneToOne", a, [b]);
  const first = World.envelope(world.ready(alice.device, () => alice.device.sendCallKey(now(), others(call), call.keyMessage())), b);
  const damaged = first.slice();
  damaged[damaged.length - 1] ^= 1;
  const unreadable = code(() => bob.device.receive(now(), damaged));
  const request = bob.device.requestRetry(now(), damaged, 2);
  const asked = alice.device.receive(now(), request.bytes);
  // Answered with another call: refused, and nothing changed (the right answer follows).
  const wrongCall = code(() => alice.device.answerCallKeyRetry(now(), asked.request, Call.start("oneToOne", a, [c])));
  const answer = World.envelope(world.ready(alice.device, () => alice.device.answerCallKeyRetry(now(), asked.request, call)), b);
  const got = bob.device.receive(now(), answer);
  const bobsCall = Call.fromKeyMessage(b, got.sender, got.message);
  const oneToOne = {
    unreadable, askedKind: asked.kind, askedReason: asked.reason, kind: got.kind,
    messageIsClass: got.message instanceof CallKeyMessage, messageKind: got.message.kind,
    messageEpoch: got.message.epoch, sameCall: same(got.message.call, call.id),
    manager: got.message.manager.device === a.device && same(got.message.manager.account, a.account),
    sameKeysAlice: keysOf(call, a) === keysOf(bobsCall, a), sameKeysBob: keysOf(call, b) === keysOf(bobsCall, b),
    ownKeysDiffer: keysOf(call, a) !== keysOf(call, b),
    keyLength: call.srtpKeys(a).masterKey().length, saltLength: call.srtpKeys(a).masterSalt().length,
    participants: bobsCall.participants.length,
  };

  // A group call: Alice adds Carol (epoch 1), removes her (2), adds her back (3); Bob misses
  // epoch 2's message and catches up; Carol never learns epoch 2.
  const group = Call.start("group", a, [b]);
  const deliver = (msg, to) => {
    const out = world.ready(alice.device, () => alice.device.sendCallKey(now(), to, msg));
    return to.map((d) => world.device(d).receive(now(), World.envelope(out, d)));
  };
  const [bobFirst] = deliver(group.keyMessage(), [b]);
  const bobsGroup = Call.fromKeyMessage(b, bobFirst.sender, bobFirst.message);
  const [bobJoin, carolJoin] = deliver(group.join(c), [b, c]);
  bobsGroup.apply(bobJoin.sender, bobJoin.message);
  const carolsGroup = Call.fromKeyMessage(c, carolJoin.sender, carolJoin.message, { maxGroupParticipants: 3 });
  const afterJoin = [keysOf(group, c), keysOf(bobsGroup, c), keysOf(carolsGroup, c)];
  group.remove(c); // epoch 2: never delivered here
  const [bobBack] = deliver(group.join(c), [b]);
  const ahead = code(() => bobsGroup.apply(bobBack.sender, bobBack.message));
  bobsGroup.catchUp(bobBack.sender, bobBack.message);
  const stale = code(() => bobsGroup.catchUp(bobBack.sender, bobBack.message));
  const notManager = code(() => bobsGroup.join(c));
  // State bytes: a restored call derives the same keys; a stale snapshot is detected.
  const saved = bobsGroup.toBytes();
  const restored = Call.restore(saved, bobsGroup.epoch);
  const staleRestore = Call.restore(saved, bobsGroup.epoch + 2);
  const groupCall = {
    epochs: [group.epoch, bobsGroup.epoch, carolsGroup.epoch],
    joinKeysAgree: afterJoin.every((k) => k === afterJoin[0]),
    caughtUp: keysOf(group, a) === keysOf(bobsGroup, a),
    ahead, stale, notManager,
    carolAtJoin: keysOf(carolsGroup, a) !== keysOf(group, a),
    restoredSame: keysOf(restored.call, a) === keysOf(bobsGroup, a), restoredFromBackup: restored.fromBackup,
    staleFromBackup: staleRestore.fromBackup,
    roundTrip: same(CallKeyMessage.fromBytes(group.keyMessage().toBytes()).toBytes(), group.keyMessage().toBytes()),
  };

  // Refusals: typed errors, never a trap.
  const refused = {
    badKind: code(() => Call.start("video", a, [b])),
    badAddress: code(() => Call.start("group", { account: new Uint8Array(3), device: 1 }, [b])),
    notAnArray: code(() => Call.start("group", a, b)),
    badConfig: code(() => Call.start("group", a, [b], { maxGroupParticipant: 3 })),
    full: code(() => Call.start("group", a, [b, c], { maxGroupParticipants: 2 })),
    notInCall: code(() => group.srtpKeys({ account: new Uint8Array(32).fill(9), device: 7 })),
    garbage: code(() => CallKeyMessage.fromBytes(new Uint8Array([1, 2, 3]))),
    badState: code(() => Call.restore(new Uint8Array(5), 0)),
    wrongCall,
    answeredTwice: code(() => alice.device.answerCallKeyRetry(now(), asked.request, call)),
  };

  // No secret in any string form: the received object, the key message, the call, the keys.
  const srtp = call.srtpKeys(a);
  const secret = (m) => m.toBytes().slice(23, 55); // version, kind, call id, call kind, epoch: 23 bytes
  const check = secretsShown(
    { received: got, message: got.message, call, srtp, restored, joined: group.keyMessage() },
    [srtp.masterKey(), srtp.masterSalt(), secret(call.keyMessage()), secret(group.keyMessage()), bobsCall.srtpKeys(b).masterKey()],
  );
  // The control: a secret in a plain object is caught by every form, so the check can fail.
  const control = secretsShown({ control: { key: srtp.masterKey() } }, [srtp.masterKey()]);
  return { oneToOne, groupCall, refused, leaked: check.leaked, needles: check.needles, control: control.leaked };
}

// ---- One-time prekeys and configs ----

export async function prekeys() {
  await init();
  const world = new World();
  const { alice, bob } = twoAccounts(world, undefined, { oneTimePrekeys: 5 });
  const carol = createAccount(now());
  world.add(carol.device);
  for (const p of [bob.primary, carol.primary]) carol.device.updateDeviceList(now(), p.accountKey(), p.deviceList());
  bob.device.updateDeviceList(now(), carol.primary.accountKey(), carol.primary.deviceList());
  const counts = (d) => [d.oneTimePrekeysRemaining(), d.oneTimeKemPrekeysRemaining(), d.lastResortUses()];
  const upload = bob.upload;
  const atStart = counts(bob.device);
  const more = bob.device.generateOneTimePrekeys(now(), 3);
  const afterMore = counts(bob.device);
  // Alice starts her session from a bundle carrying one key of each kind: Bob uses both.
  const b = bob.device.address();
  const withKeys = bob.device.prekeyBundle(upload.prekeyIds[0], upload.kemPrekeyIds[0]);
  const out = world.ready(alice.device, () => alice.device.send(now(), bob.primary.accountKey(), new Uint8Array([1])), () => withKeys);
  const read = bob.device.receive(now(), World.envelope(out, b));
  const afterOneTime = counts(bob.device);
  // Carol starts from a bundle without one: Bob's last-resort ML-KEM prekey starts it.
  const out2 = world.ready(carol.device, () => carol.device.send(now(), bob.primary.accountKey(), new Uint8Array([2])));
  bob.device.receive(now(), World.envelope(out2, b));
  const afterLastResort = counts(bob.device);
  // Restart from records: the counts persist.
  const rebuilt = Device.fromRecords(bob.device.takeChanges().records);

  // A non-default config: caps of 4 and 2 keep 4 and 2 of the 10 asked for.
  const capped = createAccount(now(), { oneTimePrekeys: 10, config: { prekeys: { maxOneTimePrekeys: 4, maxOneTimeKemPrekeys: 2 } } });
  const uncapped = createAccount(now(), { oneTimePrekeys: 10 });
  return {
    upload: { prekeys: upload.prekeyIds.length, kem: upload.kemPrekeyIds.length, bytes: upload.bytes.length },
    more: { prekeys: more.prekeyIds.length, kem: more.kemPrekeyIds.length, after: more.prekeyIds[0] > upload.prekeyIds[4] },
    atStart, afterMore, afterOneTime, afterLastResort, rebuilt: counts(rebuilt), read: read.kind,
    bundleLonger: withKeys.length > bob.device.prekeyBundle().length,
    capped: { upload: [capped.upload.prekeyIds.length, capped.upload.kemPrekeyIds.length], counts: counts(capped.device) },
    uncapped: counts(uncapped.device),
    refused: {
      badCount: code(() => createAccount(now(), { oneTimePrekeys: 1.5 })),
      negative: code(() => createAccount(now(), { config: { prekeys: { maxOneTimePrekeys: -1 } } })),
      typo: code(() => createAccount(now(), { config: { sesion: {} } })),
      notObject: code(() => createAccount(now(), { config: 3 })),
      zeroSigned: code(() => createAccount(now(), { config: { prekeys: { maxSignedPrekeys: 0 } } })),
    },
  };
}

export async function policies() {
  await init();
  const t = now();
  // A primary whose policy allows one companion, with invitations valid for one second.
  const alice = createAccount(t, { policy: { account: { maxCompanions: 1 }, linkInvitationValidityMs: 1000 } });
  const link = (primary, at, options) => {
    const linking = new LinkingCompanion(primary.invite(at));
    const linked = linking.complete(at, primary.approve(at, linking.request()), options);
    primary.confirm(linked.confirmation);
    return linked;
  };
  const web = link(alice.primary, t, { oneTimePrekeys: 2 });
  const confirmed = alice.primary.isConfirmed(web.device.address().device);
  const second = code(() => link(alice.primary, t));
  const defaults = createAccount(t);
  link(defaults.primary, t);
  const secondByDefault = code(() => link(defaults.primary, t));
  const late = code(() => {
    const linking = new LinkingCompanion(defaults.primary.invite(t));
    alice.primary.approve(t, linking.request());
  });
  const approvedOnly = new LinkingCompanion(defaults.primary.invite(t));
  const unconfirmedId = approvedOnly.complete(t, defaults.primary.approve(t, approvedOnly.request())).device.address().device;
  const unconfirmed = defaults.primary.isConfirmed(unconfirmedId);
  const invitation = alice.primary.invite(t);
  const expired = code(() => alice.primary.approve(t + 2000, new LinkingCompanion(invitation).request()));
  // A device whose ceiling is 2 companions refuses a list signed with the default policy (4).
  const strict = createAccount(t, { config: { lists: { maxCompanions: 2 } } });
  const ceiling = code(() => strict.device.updateDeviceList(t, defaults.primary.accountKey(), defaults.primary.deviceList()));
  const lenient = code(() => alice.device.updateDeviceList(t, defaults.primary.accountKey(), defaults.primary.deviceList()));

  // History offers say which groups they installed.
  alice.device.updateDeviceList(t, alice.primary.accountKey(), alice.primary.deviceList());
  const group = new Uint8Array(32).fill(7);
  alice.device.setGroupMembers(group, [alice.primary.accountKey(), defaults.primary.accountKey()]);
  const sealer = new HistorySealer();
  const sealed = sealer.finish();
  const webAddr = web.device.address();
  const world = new World();
  world.add(alice.device); world.add(web.device);
  const out = world.ready(alice.device, () => alice.device.sendHistoryOffer(t, webAddr.device, sealed.offer));
  const offer = web.device.receive(t, World.envelope(out, webAddr));
  return {
    web: { prekeys: web.upload.prekeyIds.length, kem: web.upload.kemPrekeyIds.length, counts: [web.device.oneTimePrekeysRemaining(), web.device.oneTimeKemPrekeysRemaining()] },
    second, secondByDefault, late, expired, ceiling, lenient, confirmed, unconfirmed,
    offer: { kind: offer.kind, groups: offer.groups.map(hex), group: hex(group), webGroups: web.device.groups().map(hex) },
    refused: {
      badPolicy: code(() => createAccount(t, { policy: { account: { maxCompanions: "2" } } })),
      badOptions: code(() => createAccount(t, { polcy: {} })),
      badCompanion: code(() => new LinkingCompanion(alice.primary.invite(t)).complete(t, new Uint8Array(4), { config: { retryWindowMs: -5 } })),
    },
  };
}

// ---- Message ids, resends, outbox coverage, groups and accounts ----

export async function messages() {
  await init();
  const world = new World();
  const { alice, bob } = twoAccounts(world);
  const [a, b] = [alice.device.address(), bob.device.address()];
  const [ak, bk] = [alice.primary.accountKey(), bob.primary.accountKey()];
  const text = new TextEncoder();

  // A 1:1 message: the outbox names its id and coverage; Bob reads the same id.
  const out = world.ready(alice.device, () => alice.device.send(now(), bk, text.encode("hello")));
  const got = bob.device.receive(now(), World.envelope(out, b));
  // Change tracking, and restores for an app whose store came back from a backup.
  const changed = [alice.device.hasChanges()];
  const first = alice.device.takeChanges();
  changed.push(alice.device.hasChanges());
  const backups = {
    changed, replacesAll: first.replacesAll,
    fromRecords: Device.fromRecords(first.records).awaitingOwnList(),
    fromBackupRecords: Device.fromBackupRecords(first.records, now()).awaitingOwnList(),
    restoreFromBackup: Device.restoreFromBackup(alice.device.toBytes(), now()).awaitingOwnList(),
    badTime: code(() => Device.restoreFromBackup(alice.device.toBytes(), NaN)),
    badBytes: code(() => Device.restoreFromBackup(new Uint8Array(2), now())),
  };
  const direct = {
    idLength: out.messageId.length, sameId: same(got.id, out.messageId), resent: got.resent,
    coverage: out.coverage.map((c) => ({ own: same(c.account, ak), bob: same(c.account, bk), version: c.version, digest: c.digest.length })),
  };

  // A corrupted message, asked for again: the resend has the message's id and names the
  // envelope it replaces. The request is kept as bytes across the sender's "restart".
  const out2 = world.ready(alice.device, () => alice.device.send(now(), bk, text.encode("again")));
  const sent = new Map([[out2.sendId, text.encode("again")]]);
  const damaged = World.envelope(out2, b).slice();
  damaged[damaged.length - 1] ^= 1;
  code(() => bob.device.receive(now(), damaged));
  const request = bob.device.requestRetry(now(), damaged, 2);
  const asked = alice.device.receive(now(), request.bytes);
  const kept = RetryRequest.fromBytes(asked.request.toBytes());
  const answer = world.ready(alice.device, () => alice.device.answerRetry(now(), kept, sent.get(kept.sendId)));
  const resend = bob.device.receive(now(), World.envelope(answer, b));
  const resent = {
    kind: resend.kind, body: new TextDecoder().decode(resend.body),
    sameId: same(resend.id, out2.messageId), replaces: resend.resent !== null && same(resend.resent, envelopeId(damaged)),
    askedReason: asked.reason, requestReason: kept.reason, keptSendId: kept.sendId === out2.sendId,
  };

  // Groups: ids, withholding, a refused delivery that makes the next send rotate, leaving.
  const group = new Uint8Array(32).fill(0x42);
  for (const d of [alice.device, bob.device]) d.setGroupMembers(group, [ak, bk]);
  const g1 = world.ready(alice.device, () => alice.device.sendGroup(now(), group, text.encode("g1")));
  const key1 = bob.device.receive(now(), World.envelope(g1, b));
  const msg1 = bob.device.receive(now(), g1.group.bytes);
  alice.device.notDelivered(g1.sendId, [b]);
  const g2 = world.ready(alice.device, () => alice.device.sendGroup(now(), group, text.encode("g2")));
  const key2 = bob.device.receive(now(), World.envelope(g2, b));
  const msg2 = bob.device.receive(now(), g2.group.bytes);
  const withheld = alice.device.receive(now(), World.envelope(world.ready(bob.device, () => bob.device.withholdGroupKey(now(), a, group, 1)), a));
  const groups = {
    groupId: same(msg1.id, g1.messageId), groupResent: msg1.resent, key1: key1.kind, msg2: msg2.kind,
    rotated: key2.kind === "senderKey" && key2.keyId !== key1.keyId,
    withheld: { kind: withheld.kind, reason: withheld.reason, group: same(withheld.group, group) },
    groups: alice.device.groups().map(hex), members: alice.device.groupMembers(group).map((m) => same(m, bk)),
  };
  alice.device.forgetGroup(group);
  groups.afterForget = { groups: alice.device.groups().length, members: alice.device.groupMembers(group) };
  groups.sendAfterForget = code(() => alice.device.sendGroup(now(), group, text.encode("g3")));

  // Accounts and sessions.
  const accounts = {
    before: alice.device.accounts().map((x) => (same(x, ak) ? "alice" : same(x, bk) ? "bob" : "?")).sort(),
    session: alice.device.hasSession(b), classical: alice.device.classicalSessions().length,
  };
  alice.device.forgetAccount(bk);
  accounts.after = alice.device.accounts().length;
  accounts.sessionAfter = alice.device.hasSession(b);
  const refused = {
    unknownSend: code(() => alice.device.notDelivered(987654, [])),
    badSendId: code(() => alice.device.notDelivered(-1, [])),
    badGroup: code(() => alice.device.forgetGroup(new Uint8Array(5))),
    badAccount: code(() => alice.device.forgetAccount(new Uint8Array(31))),
    badAddress: code(() => alice.device.hasSession({ account: ak, device: -3 })),
    badRequest: code(() => RetryRequest.fromBytes(new Uint8Array([0, 1]))),
  };
  return { direct, backups, resent, groups, accounts, refused };
}
