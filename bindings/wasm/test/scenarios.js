// Scenarios of the app-facing API beyond the demo, run in the browser by browser.test.mjs
// (test/page.html loads nothing; the test imports this module into it and calls one export
// per test). Each returns plain data for the test to assert on: what the wasm reported, and
// the codes of what it refused. The envelopes go through a small relay (`World`) that runs the
// library's relay helpers as a server would: the lists it serves are verified when published
// (`ServedLists`), every batch passes the coverage check before it is delivered, and bundles
// come from each device's `PublishedPreKeys`, with one-time prekeys while its pools last.
import init, {
  createAccount, Call, CallKeyMessage, ChangedRecord, Device, HistoryOffer, HistoryOpener,
  HistorySealer, LinkingCompanion, Primary, PublishedPreKeys, Receiving, RetryRequest,
  ServedLists, envelopeId,
} from "../pkg/ratchetry_wasm.js";

const now = () => Date.now();
export const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const same = (a, b) => hex(a) === hex(b);
const addrKey = (a) => `${hex(a.account)}#${a.device}`;

/** The code a call throws ("no error" if it does not), for the refusals checked. */
function code(f) {
  try { f(); return "no error"; } catch (e) { return e.code === undefined ? `untyped ${e}` : e.code; }
}

/**
 * The relay: devices by address, the lists it serves, each device's published prekeys, and
 * what it did (`checked` batches passed the coverage check, `oneTime` bundles it served
 * carried a one-time prekey).
 */
class World {
  constructor() {
    Object.assign(this, { devices: new Map(), served: new ServedLists(), published: new Map(), checked: 0, oneTime: 0 });
  }
  /** Serves an account's current list (verified: its signature, no rollback). */
  publish(primary) { this.served.publish(primary.accountKey(), primary.deviceList()); }
  /** A new account (`createAccount`'s result): its list served, its device and upload added. */
  account(x) { this.publish(x.primary); this.add(x.device, x.upload); return x; }
  /** A device whose account's list is served: its base bundle and one-time prekeys published. */
  add(device, upload) {
    const keys = new PublishedPreKeys(now(), device.address(), device.prekeyBundle(), this.served);
    if (upload) keys.add(upload.bytes);
    this.published.set(addrKey(device.address()), keys);
    this.devices.set(addrKey(device.address()), device);
    return device;
  }
  device(a) { return this.devices.get(addrKey(a)); }
  /** What a bundle fetch returns: one carrying one-time prekeys while the device's pools last. */
  bundle(a) {
    const keys = this.published.get(addrKey(a));
    if (keys.remaining().oneTime > 0) this.oneTime++;
    return keys.takeBundle();
  }
  /** Runs a send until it is ready and the relay accepts its batch (the coverage check). */
  ready(device, op, bundle = (d) => this.bundle(d)) {
    for (let i = 0; i < 4; i++) {
      const out = op();
      if (out.kind === "ready") {
        this.served.checkCoverage(now(), device.address(), out.outbox.recipients, out.outbox.coverage);
        this.checked++;
        return out.outbox;
      }
      if (out.kind === "needBundles") device.startSessions(now(), out.devices.map((d) => ({ device: d, bundle: bundle(d) })));
      else throw new Error(`${out.kind}: follow the lists first`);
    }
    throw new Error("send did not become ready");
  }
  /** What the relay did, for the test to check that every scenario went through it. */
  get stats() { return { checked: this.checked, oneTime: this.oneTime }; }
  /** The envelope an outbox has for `to`. */
  static envelope(outbox, to) {
    const e = outbox.envelopes.find((e) => addrKey(e.to) === addrKey(to));
    if (!e) throw new Error(`no envelope for ${to.device}`);
    return e.bytes;
  }
}

/** Two accounts that follow each other's lists. */
function twoAccounts(world, aliceOptions, bobOptions) {
  const alice = world.account(createAccount(now(), aliceOptions));
  const bob = world.account(createAccount(now(), bobOptions));
  for (const x of [alice, bob]) {
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
  const carol = world.account(createAccount(now()));
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
    // A call the app kept at epoch 1 (restored from an older backup): epoch 0 is a replay;
    // kept under another manager, the message is not the kept call's.
    belowKeptEpoch: code(() => Call.fromKeyMessage(b, bobFirst.sender, bobFirst.message, undefined, { manager: a, epoch: 1 })),
    otherKeptManager: code(() => Call.fromKeyMessage(b, bobFirst.sender, bobFirst.message, undefined, { manager: c, epoch: 0 })),
    badKept: code(() => Call.fromKeyMessage(b, bobFirst.sender, bobFirst.message, undefined, { manager: a, epoch: -1 })),
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
  return { oneToOne, groupCall, refused, leaked: check.leaked, needles: check.needles, control: control.leaked, relay: world.stats };
}

// ---- One-time prekeys and configs ----

export async function prekeys() {
  await init();
  const world = new World();
  const { alice, bob } = twoAccounts(world, undefined, { oneTimePrekeys: 5 });
  const carol = world.account(createAccount(now()));
  for (const p of [bob.primary, carol.primary]) carol.device.updateDeviceList(now(), p.accountKey(), p.deviceList());
  bob.device.updateDeviceList(now(), carol.primary.accountKey(), carol.primary.deviceList());
  const counts = (d) => [d.oneTimePrekeysRemaining(), d.oneTimeKemPrekeysRemaining(), d.lastResortUses()];
  const upload = bob.upload;
  const atStart = counts(bob.device);
  const more = bob.device.generateOneTimePrekeys(now(), 3);
  const afterMore = counts(bob.device);
  // Alice starts her session from the relay's bundle, which carries one key of each kind of
  // Bob's upload (the lowest ids): the bundle Bob's device makes for those ids. Bob uses both.
  const b = bob.device.address();
  const pool = world.published.get(addrKey(b));
  const relayBefore = pool.remaining();
  const deviceBundle = bob.device.prekeyBundle(upload.prekeyIds[0], upload.kemPrekeyIds[0]);
  let withKeys;
  const out = world.ready(alice.device, () => alice.device.send(now(), bob.primary.accountKey(), new Uint8Array([1])), (d) => (withKeys = world.bundle(d)));
  const read = bob.device.receive(now(), World.envelope(out, b));
  const afterOneTime = counts(bob.device);
  const relayAfter = pool.remaining();
  // Carol starts from a bundle without one (the device's own, not the relay's): Bob's
  // last-resort ML-KEM prekey starts it.
  const out2 = world.ready(carol.device, () => carol.device.send(now(), bob.primary.accountKey(), new Uint8Array([2])), () => bob.device.prekeyBundle());
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
    sameAsDevice: same(withKeys, deviceBundle),
    relay: { before: relayBefore, after: relayAfter, ...world.stats },
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
  const history = new TextEncoder().encode("the history, sealed");
  const chunks = sealer.push(history);
  const sealed = sealer.finish();
  chunks.push(...sealed.chunks);
  // What the companion needs at once rides in the offer as app data.
  const tooLong = code(() => sealed.offer.withAppData(new Uint8Array(64 * 1024 + 1)));
  sealed.offer = sealed.offer.withAppData(new TextEncoder().encode("drafts and pins"));
  const webAddr = web.device.address();
  const webCounts = [web.device.oneTimePrekeysRemaining(), web.device.oneTimeKemPrekeysRemaining()];
  // Through the relay: the session to the companion starts from a bundle with its one-time keys.
  const world = new World();
  world.publish(alice.primary);
  world.add(alice.device, alice.upload); world.add(web.device, web.upload);
  const out = world.ready(alice.device, () => alice.device.sendHistoryOffer(t, webAddr.device, sealed.offer));
  const offer = web.device.receive(t, World.envelope(out, webAddr));
  // The offer is a class: opened as it came, or kept as bytes and loaded back.
  const opener = new HistoryOpener(HistoryOffer.fromBytes(offer.offer.toBytes()));
  const opened = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => Array.from(opener.push(c)))));
  const chunksOpened = opener.chunksOpened;
  opener.finish();
  return {
    web: { prekeys: web.upload.prekeyIds.length, kem: web.upload.kemPrekeyIds.length, counts: webCounts },
    afterOffer: [web.device.oneTimePrekeysRemaining(), web.device.oneTimeKemPrekeysRemaining()],
    relay: world.stats,
    second, secondByDefault, late, expired, ceiling, lenient, confirmed, unconfirmed,
    offer: {
      kind: offer.kind, groups: offer.groups.map(hex), group: hex(group), webGroups: web.device.groups().map(hex),
      isClass: offer.offer instanceof HistoryOffer, sealedIsClass: sealed.offer instanceof HistoryOffer,
      chunks: [offer.offer.chunks, chunks.length, chunksOpened], totalLength: offer.offer.totalLength, opened,
      appData: new TextDecoder().decode(offer.offer.appData()), tooLong,
    },
    refused: {
      badPolicy: code(() => createAccount(t, { policy: { account: { maxCompanions: "2" } } })),
      badOptions: code(() => createAccount(t, { polcy: {} })),
      badCompanion: code(() => new LinkingCompanion(alice.primary.invite(t)).complete(t, new Uint8Array(4), { config: { retryWindowMs: -5 } })),
      badOffer: code(() => HistoryOffer.fromBytes(new Uint8Array([1, 2, 3]))),
      offerTruncated: code(() => HistoryOffer.fromBytes(offer.offer.toBytes().slice(0, 40))),
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
  // Bob writes to the group withholding his key from Alice's device: she is told why, and
  // cannot read the group envelope that still reaches her.
  const g3 = world.ready(bob.device, () => bob.device.sendGroupWithholding(now(), group, text.encode("g3"), [{ device: a, reason: 1 }]));
  const withheld = alice.device.receive(now(), World.envelope(g3, a));
  const withheldMessage = code(() => alice.device.receive(now(), g3.group.bytes));
  const badReason = code(() => bob.device.sendGroupWithholding(now(), group, text.encode("x"), [{ device: a, reason: 1.5 }]));
  const groups = {
    groupId: same(msg1.id, g1.messageId), groupResent: msg1.resent, key1: key1.kind, msg2: msg2.kind,
    rotated: key2.kind === "senderKey" && key2.keyId !== key1.keyId,
    withheld: {
      kind: withheld.kind, reason: withheld.reason, group: same(withheld.group, group),
      keyId: Number.isInteger(withheld.keyId), message: withheldMessage, badReason,
    },
    groups: alice.device.groups().map(hex), members: alice.device.groupMembers(group).map((m) => same(m, bk)),
  };
  // Restored from a backup, Bob's groups wait for his app to set their members again.
  const restored = Device.restoreFromBackup(bob.device.toBytes(), now());
  groups.restored = {
    unconfirmed: restored.unconfirmedGroups().map(hex), live: bob.device.unconfirmedGroups().length,
    send: code(() => restored.sendGroup(now(), group, text.encode("x"))),
  };
  restored.setGroupMembers(group, [ak, bk]);
  groups.restored.afterSet = restored.unconfirmedGroups().length;
  restored.free();
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
  return { direct, backups, resent, groups, accounts, refused, relay: world.stats };
}

// ---- A receive stepped by the app ----

export async function receiving() {
  await init();
  const world = new World();
  const alice = world.account(createAccount(now()));
  const bob = world.account(createAccount(now()));
  const [a, b] = [alice.device.address(), bob.device.address()];
  const [ak, bk] = [alice.primary.accountKey(), bob.primary.accountKey()];
  const text = new TextEncoder();
  // Alice follows both accounts; Bob only his own: he does not know Alice yet.
  for (const p of [alice.primary, bob.primary]) alice.device.updateDeviceList(now(), p.accountKey(), p.deviceList());
  bob.device.updateDeviceList(now(), bk, bob.primary.deviceList());
  const out = world.ready(alice.device, () => alice.device.send(now(), bk, text.encode("hello")));
  const envelope = World.envelope(out, b);
  /** Steps a receive until it is done, applying the lists `relay` serves; the steps' kinds. */
  const drive = (relay, bytes, stored = false) => {
    const r = new Receiving();
    const kinds = [];
    for (let i = 0; i < 4; i++) {
      const step = r.step(bob.device, now(), bytes, stored);
      kinds.push(step.kind);
      if (step.kind === "done") return { kinds, inbound: step.inbound };
      kinds.push(same(step.account, ak) ? "alice" : "?");
      const list = relay.list(step.account);
      if (list !== undefined) bob.device.updateDeviceList(now(), step.account, list);
    }
    throw new Error(`not done: ${kinds}`);
  };

  // A relay with no list for Alice: the app applies nothing, and the next step drops it.
  const unknown = drive(new ServedLists(), envelope);
  // The relay serves it: applied, the next step reads the message.
  const read = drive(world.served, envelope);
  // A new receive of the same envelope is a duplicate at once.
  const duplicate = drive(world.served, envelope);
  // Garbage is dropped with a decoding code.
  const garbage = drive(world.served, new Uint8Array([1, 2, 3]));
  // A corrupted envelope from Alice: dropped if the app stores its message, else asked again.
  const out2 = world.ready(alice.device, () => alice.device.send(now(), bk, text.encode("again")));
  const damaged = World.envelope(out2, b).slice();
  damaged[damaged.length - 1] ^= 1;
  const stored = drive(world.served, damaged, true);
  const ask = drive(world.served, damaged, false);
  const asked = alice.device.receive(now(), ask.inbound.request);
  // A group message ahead of its sender key is held.
  const group = new Uint8Array(32).fill(0x24);
  for (const d of [alice.device, bob.device]) d.setGroupMembers(group, [ak, bk]);
  const g = world.ready(alice.device, () => alice.device.sendGroup(now(), group, text.encode("g")));
  const held = drive(world.served, g.group.bytes);

  const inbound = (x) => x.inbound;
  return {
    unknown: { kinds: unknown.kinds, kind: unknown.inbound.kind, code: unknown.inbound.code, message: typeof unknown.inbound.message },
    read: {
      kinds: read.kinds, kind: read.inbound.kind, message: read.inbound.message.kind,
      body: new TextDecoder().decode(read.inbound.message.body), sameId: same(read.inbound.message.id, out.messageId),
    },
    duplicate: { kinds: duplicate.kinds, kind: inbound(duplicate).kind, sameId: same(inbound(duplicate).envelopeId, envelopeId(envelope)) },
    garbage: { kind: inbound(garbage).kind, code: inbound(garbage).code },
    stored: { kind: inbound(stored).kind, sameId: same(inbound(stored).envelopeId, envelopeId(damaged)) },
    ask: { kind: inbound(ask).kind, to: addrKey(inbound(ask).to) === addrKey(a), asked: asked.kind, reason: asked.reason },
    held: { kind: inbound(held).kind, from: addrKey(inbound(held).from) === addrKey(a) },
    refused: {
      badTime: code(() => new Receiving().step(bob.device, NaN, envelope, false)),
      notADevice: code(() => new Receiving().step(alice.primary, now(), envelope, false)),
    },
    relay: world.stats,
  };
}

// ---- The relay's helpers: served lists, the coverage check, published prekeys ----

export async function relay() {
  await init();
  const world = new World();
  const { alice, bob } = twoAccounts(world);
  const served = world.served;
  const [ak, bk] = [alice.primary.accountKey(), bob.primary.accountKey()];
  const b = bob.device.address();
  const text = new TextEncoder();
  const stranger = createAccount(now());

  // ServedLists: it serves what was published; nothing for an account it does not know.
  const v1 = alice.primary.deviceList();
  const lists = { served: same(served.list(ak), v1), unknown: served.list(stranger.primary.accountKey()) === undefined };

  // Bob writes to Alice's one device; then Alice links a companion and the relay serves the
  // new list while Bob still holds the old one: his next batch is refused as stale, and goes
  // through once he follows the list.
  const send = () => bob.device.send(now(), ak, text.encode("to every device of Alice's"));
  world.ready(bob.device, send);
  const linking = new LinkingCompanion(alice.primary.invite(now()));
  const linked = linking.complete(now(), alice.primary.approve(now(), linking.request()));
  const webId = alice.primary.confirm(linked.confirmation);
  const v2 = alice.primary.deviceList();
  lists.version = served.publish(ak, v2);
  world.add(linked.device, linked.upload);
  for (const d of [alice.device, linked.device]) d.updateDeviceList(now(), ak, v2);
  const staleOut = send().outbox;
  const stale = code(() => served.checkCoverage(now(), b, staleOut.recipients, staleOut.coverage));
  bob.device.updateDeviceList(now(), ak, served.list(ak));
  bob.device.notDelivered(staleOut.sendId, staleOut.recipients);
  const fresh = world.ready(bob.device, send);
  linked.device.updateDeviceList(now(), bk, served.list(bk));
  const webRead = linked.device.receive(now(), World.envelope(fresh, linked.device.address()));
  const coverage = {
    stale, recipients: fresh.recipients.map((a) => a.device).sort(), staleRecipients: staleOut.recipients.length,
    webRead: webRead.kind, version: fresh.coverage.find((c) => same(c.account, ak)).version,
  };

  // The refusals of a list: nothing served changes.
  lists.refused = {
    rollback: code(() => served.publish(ak, v1)),
    wrongAccount: code(() => served.publish(bk, v2)),
    garbage: code(() => served.publish(ak, new Uint8Array([1, 2, 3]))),
    badAccount: code(() => served.publish(new Uint8Array(31), v2)),
    ceiling: code(() => new ServedLists({ maxCompanions: 2 }).publish(ak, v2)),
    badLimits: code(() => new ServedLists({ maxCompanion: 2 })),
  };
  lists.afterRefusals = same(served.list(ak), v2);
  lists.lenient = code(() => new ServedLists({ maxCompanions: 4 }).publish(ak, v2));

  // The refusals of a batch (Bob's accepted one, altered).
  const check = (over) => code(() => served.checkCoverage(over.now ?? now(), over.sender ?? b, over.recipients ?? fresh.recipients, over.coverage ?? fresh.coverage));
  const leftOut = fresh.recipients.filter((a) => a.device !== webId);
  coverage.refused = {
    leftOut: check({ recipients: leftOut }),
    notListed: check({ recipients: [...fresh.recipients, { account: ak, device: 77 }] }),
    uncovered: check({ recipients: [...fresh.recipients, stranger.device.address()] }),
    oldVersion: check({ coverage: fresh.coverage.map((c) => ({ ...c, version: c.version - 1 })) }),
    coveredTwice: check({ coverage: [...fresh.coverage, fresh.coverage[0]] }),
    badDigest: check({ coverage: fresh.coverage.map((c) => ({ ...c, digest: c.digest.slice(1) })) }),
    badVersion: check({ coverage: fresh.coverage.map((c) => ({ ...c, version: -1 })) }),
    notAnArray: check({ coverage: "all" }),
    badTime: check({ now: NaN }),
    badSender: check({ sender: { account: bk, device: -1 } }),
  };
  coverage.accepted = check({});

  // PublishedPreKeys: Bob's pool, as the relay keeps it.
  const pool = world.published.get(addrKey(b));
  const counts = () => { const r = pool.remaining(); return [r.oneTime, r.kem]; };
  const prekeys = { address: same(pool.address().account, bk) && pool.address().device === b.device, start: counts() };
  const kept = { pooled: pool.pooled(), base: pool.base() };
  const unchanged = () => same(pool.pooled(), kept.pooled) && same(pool.base(), kept.base);
  prekeys.refused = {
    duplicate: code(() => pool.add(bob.upload.bytes)),
    othersUpload: code(() => pool.add(alice.device.generateOneTimePrekeys(now(), 1).bytes)),
    garbage: code(() => pool.add(new Uint8Array([1, 2, 3]))),
    othersBase: code(() => pool.replaceBase(now(), alice.device.prekeyBundle(), served)),
    badBase: code(() => pool.replaceBase(now(), new Uint8Array(8), served)),
    badTime: code(() => pool.replaceBase(-5, bob.device.prekeyBundle(), served)),
    notABase: code(() => new PublishedPreKeys(now(), b, bob.device.prekeyBundle(bob.upload.prekeyIds[19], bob.upload.kemPrekeyIds[19]), served)),
    wrongIdentity: code(() => new PublishedPreKeys(now(), alice.device.address(), bob.device.prekeyBundle(), served)),
    unknownAccount: code(() => new PublishedPreKeys(now(), stranger.device.address(), stranger.device.prekeyBundle(), served)),
    notInList: code(() => new PublishedPreKeys(now(), { account: bk, device: 9 }, bob.device.prekeyBundle(), served)),
    badAddress: code(() => new PublishedPreKeys(now(), { account: bk }, bob.device.prekeyBundle(), served)),
    badParts: code(() => PublishedPreKeys.fromParts(now(), b, kept.base, new Uint8Array(4), pool.accepted(), served)),
    badAccepted: code(() => PublishedPreKeys.fromParts(now(), b, kept.base, kept.pooled, [new Uint8Array(15)], served)),
    emptyAccepted: code(() => PublishedPreKeys.fromParts(now(), b, kept.base, kept.pooled, [new Uint8Array(16)], served)),
    noAccepted: code(() => PublishedPreKeys.fromParts(now(), b, kept.base, kept.pooled, undefined, served)),
  };
  prekeys.unchanged = unchanged() && counts().join() === prekeys.start.join();
  // Stored and rebuilt: the same pools, the same next bundle.
  const accepted = pool.accepted();
  const rebuilt = PublishedPreKeys.fromParts(now(), b, pool.base(), pool.pooled(), accepted, served);
  prekeys.rebuilt = same(rebuilt.pooled(), pool.pooled()) && same(rebuilt.takeBundle(), pool.takeBundle());
  // Bob's first upload sent again (its answer lost): refused by the rebuilt pools too.
  prekeys.accepted = [accepted.length > 0 && accepted.every((d) => d.length === 16), code(() => rebuilt.add(bob.upload.bytes))];
  prekeys.afterOne = counts();
  // More keys from the device; a rotated base replaces the old one and the pools stay.
  pool.add(bob.device.generateOneTimePrekeys(now(), 3).bytes);
  prekeys.afterAdd = counts();
  bob.device.rotateSignedPrekey(now());
  pool.replaceBase(now(), bob.device.prekeyBundle(), served);
  prekeys.replaced = !same(pool.base(), kept.base) && counts().join() === prekeys.afterAdd.join();
  // A new contact starts from a bundle of the rotated base with a one-time key: Bob reads it.
  const carol = world.account(createAccount(now()));
  for (const p of [alice.primary, bob.primary, carol.primary]) carol.device.updateDeviceList(now(), p.accountKey(), p.deviceList());
  bob.device.updateDeviceList(now(), carol.primary.accountKey(), carol.primary.deviceList());
  const fromCarol = world.ready(carol.device, () => carol.device.send(now(), bk, text.encode("hi")));
  prekeys.carolRead = bob.device.receive(now(), World.envelope(fromCarol, b)).kind;
  prekeys.afterCarol = counts();
  // Drained: the base alone, with the last-resort ML-KEM prekey.
  const withKey = pool.takeBundle();
  while (pool.remaining().oneTime > 0 || pool.remaining().kem > 0) pool.takeBundle();
  prekeys.drained = pool.takeBundle().length < withKey.length;
  return { lists, coverage, prekeys, relay: world.stats };
}

// ---- A primary's change records ----

export async function primaryRecords() {
  await init();
  // The app's store: records by key, each unit written whole.
  const store = new Map();
  const write = (changes) => {
    if (changes.replacesAll) store.clear();
    for (const { key, value } of changes.records) {
      if (value === null) store.delete(hex(key)); else store.set(hex(key), { key, value });
    }
    return changes;
  };
  const records = () => [...store.values()];
  const alice = createAccount(now());
  const ak = alice.primary.accountKey();
  const pending = [alice.primary.hasChanges()];
  const first = write(alice.primary.takeChanges());
  pending.push(alice.primary.hasChanges());
  const nothing = alice.primary.takeChanges();
  const units = {
    roles: [first.role, createAccount(now()).device.takeChanges().role],
    first: { replacesAll: first.replacesAll, baseEpoch: first.baseEpoch, records: first.records.length },
    nothing: nothing.records.length,
    // An empty unit starts and ends where the one before it ended.
    emptyBase: nothing.baseEpoch === first.epoch && nothing.epoch === first.epoch,
    // And at its tag: the first unit drew one, the empty one draws none.
    tags: first.baseTag === null && first.tag.length === 16 && same(nothing.baseTag, first.tag) && same(nothing.tag, first.tag),
  };

  // Linking a companion, each step's unit written; a snapshot of the store is kept midway.
  const linking = new LinkingCompanion(alice.primary.invite(now()));
  pending.push(alice.primary.hasChanges());
  const invited = write(alice.primary.takeChanges());
  units.pending = pending.concat(alice.primary.hasChanges());
  const midway = records();
  const linked = linking.complete(now(), alice.primary.approve(now(), linking.request()));
  const approved = write(alice.primary.takeChanges());
  const webId = alice.primary.confirm(linked.confirmation);
  const last = write(alice.primary.takeChanges());
  alice.device.updateDeviceList(now(), ak, alice.primary.deviceList());
  units.epochs = last.epoch > first.epoch;
  // Each unit starts where the one before it ended.
  units.chain = [invited.baseEpoch === nothing.epoch, approved.baseEpoch === invited.epoch, last.baseEpoch === approved.epoch];
  units.tagChain = [same(invited.baseTag, nothing.tag), same(approved.baseTag, invited.tag), same(last.baseTag, approved.tag), !same(last.tag, approved.tag)];

  // The app restarts: the primary is rebuilt from its records and signs on.
  const { primary, stale } = Primary.fromRecords(records(), last.epoch);
  const restarted = {
    stale, needsResync: primary.needsResync(), account: same(primary.accountKey(), ak),
    list: same(primary.deviceList(), alice.primary.deviceList()), epoch: primary.stateEpoch() === alice.primary.stateEpoch(),
    confirmed: primary.isConfirmed(webId), bytes: same(primary.toBytes(), alice.primary.toBytes()),
  };
  const unlinked = primary.unlink(now(), webId);
  const next = write(primary.takeChanges());
  restarted.next = {
    replacesAll: next.replacesAll, records: next.records.length > 0, epoch: next.epoch > last.epoch,
    // Loaded from records, its first unit starts at the epoch and tag loaded.
    base: next.baseEpoch === last.epoch && same(next.baseTag, last.tag),
  };
  const events = alice.device.updateDeviceList(now(), ak, unlinked);
  restarted.events = events.map((e) => e.kind);
  // Again from the records written since: the unlink is there.
  const again = Primary.fromRecords(records(), next.epoch).primary;
  restarted.again = same(again.deviceList(), unlinked) && !again.isConfirmed(webId);
  // From bytes, the first unit replaces all, starting where the bytes were taken (at the tag
  // of the unit `again` was loaded at); restored from stale bytes, it starts from nothing.
  const whole = Primary.restore(again.toBytes(), again.stateEpoch()).takeChanges();
  restarted.fromBytes = whole.replacesAll && whole.baseEpoch === again.stateEpoch() &&
    same(whole.baseTag, next.tag);
  const staleWhole = Primary.restore(again.toBytes(), again.stateEpoch() + 1).takeChanges();
  restarted.fromStaleBytes = staleWhole.replacesAll && staleWhole.baseEpoch === null && staleWhole.baseTag === null;

  // A store older than the last unit written: stale; the primary must resync before it signs.
  const old = Primary.fromRecords(midway, next.epoch);
  const staleStore = { stale: old.stale, needsResync: old.primary.needsResync(), renew: code(() => old.primary.renew(now())) };
  const resynced = old.primary.resync(now(), unlinked);
  staleStore.resynced = !old.primary.needsResync() && resynced.length > 0;
  staleStore.version = old.primary.deviceListVersion() > again.deviceListVersion();

  // Bytes or records whose last epoch the app does not know (a backup): restored as from a
  // backup, the primary signs nothing until it resyncs. From bytes, its first unit replaces
  // all, from nothing; from records (a store restored from a backup), it starts where the
  // records end (the unit `midway` was taken after).
  const restored = (p, base) => {
    const r = { needsResync: p.needsResync(), renew: code(() => p.renew(now())) };
    const c = p.takeChanges();
    const from = base ? c.baseEpoch === base.epoch && same(c.baseTag, base.tag) : c.baseEpoch === null && c.baseTag === null;
    return { ...r, replacesAll: c.replacesAll, base: from };
  };
  const backups = [restored(Primary.restoreFromBackup(again.toBytes()), null), restored(Primary.fromBackupRecords(midway), invited)];

  // Refusals: typed errors; the store and the primaries are as they were.
  const before = { store: records().map((r) => hex(r.key) + hex(r.value)).join(), primary: hex(again.toBytes()) };
  const corrupted = records().map((r) => ({ key: r.key, value: r.value.slice(0, 3) }));
  const refused = {
    empty: code(() => Primary.fromRecords([], 0)),
    notAnArray: code(() => Primary.fromRecords("records", 0)),
    notBytes: code(() => Primary.fromRecords([{ key: new Uint8Array(2), value: 5 }], 0)),
    notARecord: code(() => Primary.fromRecords([7], 0)),
    badEpoch: code(() => Primary.fromRecords(records(), NaN)),
    negativeEpoch: code(() => Primary.fromRecords(records(), -1)),
    corrupted: code(() => Primary.fromRecords(corrupted, 0)),
    deviceRecords: code(() => Primary.fromRecords(alice.device.takeChanges().records, 0)),
    primaryAsDevice: code(() => Device.fromRecords(records())),
    // A sparse array claiming 2^32 - 1 records: refused at its first hole, not an abort.
    sparse: code(() => Primary.fromRecords(new Array(2 ** 32 - 1), 0)),
    sparseBackup: code(() => Primary.fromBackupRecords(new Array(2 ** 32 - 1))),
    sparseDevice: code(() => Device.fromRecords(new Array(2 ** 32 - 1))),
    // Integer arguments out of range are refused, where wasm-bindgen's own would wrap.
    wrappedId: code(() => again.isConfirmed(2 ** 32 + webId)),
    fractionId: code(() => again.unlink(now(), webId + 0.5)),
    missingId: code(() => again.unlink(now(), undefined)),
    reason: code(() => alice.device.requestRetry(now(), new Uint8Array(8), 256 + 4)),
    negativeCount: code(() => alice.device.generateOneTimePrekeys(now(), -1)),
    prekeyId: code(() => alice.device.prekeyBundle(2 ** 32)),
    callEpoch: code(() => Call.restore(new Uint8Array(5), NaN)),
  };
  const after = { store: records().map((r) => hex(r.key) + hex(r.value)).join(), primary: hex(again.toBytes()) };
  return { units, restarted, staleStore, backups, refused, unchanged: before.store === after.store && before.primary === after.primary };
}

// ---- No secret in the string forms of what history sync, records and the relay return ----

/**
 * The first 32 bytes of `b` that look like key material (at least 24 distinct values) and
 * share no 8 bytes with the public byte strings `shown` (a record also holds public keys,
 * which the objects checked may show), or null.
 */
function keyLike(b, shown = []) {
  const grams = new Set(shown.flatMap((p) => Array.from({ length: Math.max(0, p.length - 7) }, (_, i) => hex(p.slice(i, i + 8)))));
  const clear = (w) => Array.from({ length: 25 }, (_, i) => hex(w.slice(i, i + 8))).every((g) => !grams.has(g));
  for (let i = 0; i + 32 <= b.length; i++) {
    const w = b.slice(i, i + 32);
    if (new Set(w).size >= 24 && clear(w)) return w;
  }
  return null;
}

export async function secrets() {
  await init();
  const world = new World();
  const { alice, bob } = twoAccounts(world);
  const ak = alice.primary.accountKey();
  const linking = new LinkingCompanion(alice.primary.invite(now()));
  const linked = linking.complete(now(), alice.primary.approve(now(), linking.request()));
  const webId = alice.primary.confirm(linked.confirmation);
  world.publish(alice.primary);
  world.add(linked.device, linked.upload);
  for (const d of [alice.device, linked.device, bob.device]) d.updateDeviceList(now(), ak, alice.primary.deviceList());
  linked.device.updateDeviceList(now(), bob.primary.accountKey(), bob.primary.deviceList());

  const sealer = new HistorySealer();
  sealer.push(new TextEncoder().encode("history"));
  const sealed = sealer.finish();
  const out = world.ready(alice.device, () => alice.device.sendHistoryOffer(now(), webId, sealed.offer));
  const received = linked.device.receive(now(), World.envelope(out, linked.device.address()));
  const deviceChanges = linked.device.takeChanges();
  const primaryChanges = alice.primary.takeChanges();
  const restored = Primary.fromRecords(primaryChanges.records, primaryChanges.epoch);
  // The public keys among what is shown: the accounts and devices named.
  const shown = [alice, bob].flatMap((x) => [x.primary.accountKey(), x.device.identityKey()]).concat([linked.device.identityKey()]);
  const secretOf = (r) => (r.value === null ? null : keyLike(r.value, shown));
  const withValue = (c) => c.records.find((r) => secretOf(r) !== null);
  const objects = {
    received, offer: received.offer, sealed, sealedOffer: sealed.offer, opener: new HistoryOpener(received.offer),
    deviceChanges, primaryChanges, deviceRecord: withValue(deviceChanges), primaryRecord: withValue(primaryChanges),
    restored, served: world.served, published: world.published.get(addrKey(linked.device.address())), primary: alice.primary,
  };
  const secretList = [
    keyLike(received.offer.toBytes()), keyLike(sealed.offer.toBytes()),
    ...[...deviceChanges.records, ...primaryChanges.records].map(secretOf),
  ].filter((s) => s !== null);
  const classes = {
    offer: received.offer instanceof HistoryOffer, sealed: sealed.offer instanceof HistoryOffer,
    records: [...deviceChanges.records, ...primaryChanges.records].every((r) => r instanceof ChangedRecord),
  };
  const check = secretsShown(objects, secretList);
  const control = secretsShown({ control: { offer: received.offer.toBytes() } }, [keyLike(received.offer.toBytes())]);
  return {
    classes, secrets: secretList.length, found: [Boolean(objects.deviceRecord), Boolean(objects.primaryRecord)], records: [deviceChanges.records.length, primaryChanges.records.length],
    logged: Object.keys(objects).length, leaked: check.leaked, needles: check.needles, control: control.leaked, relay: world.stats,
  };
}
