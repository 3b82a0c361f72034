// Drives the demo page in headless Chromium: the page links a web companion to a simulated
// phone and exchanges messages with another account; this test checks what each device
// decrypted, saves a screenshot (test/screenshot.png), and with RATCHETRY_BENCH=1 also runs
// demo/bench.html and prints the per-message times.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = normalize(join(here, ".."));
const types = { ".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".wasm": "application/wasm", ".ts": "text/plain" };
let server, browser, base;

before(async () => {
  // A static server on the loopback interface for demo/ and pkg/ (ES modules and wasm need http).
  server = createServer(async (req, res) => {
    const path = normalize(join(root, decodeURIComponent(new URL(req.url, "http://x").pathname)));
    if (!path.startsWith(root)) { res.writeHead(403).end(); return; }
    try {
      const body = await readFile(path);
      res.writeHead(200, { "content-type": types[extname(path)] || "application/octet-stream" }).end(body);
    } catch { res.writeHead(404).end(); }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"],
  });
});

after(async () => {
  await browser?.close();
  server?.close();
});

test("the demo page links a web companion and every device decrypts its messages", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(`${base}/demo/index.html`);
  await page.waitForFunction(() => window.demo !== undefined, null, { timeout: 60_000 });
  await page.screenshot({ path: join(here, "screenshot.png"), fullPage: true });
  const demo = await page.evaluate(() => window.demo);
  assert.equal(demo.error, undefined, `the page failed: ${demo.error}`);
  assert.deepEqual(errors, []);
  const texts = (list) => list.map((m) => m.text);

  // The web companion: history from the phone, Bob's 1:1 messages, the group.
  assert.deepEqual(texts(demo.web), [
    "bob: (earlier) See you Friday?",
    "bob#1: Hi Alice! Lunch?",
    "[group] alice#1: Group: table for two?",
    "[group] bob#1: Group: great, see you",
    "bob#1: After your restart: still reading?",
    "bob#1: Resent after a corrupted delivery",
  ]);
  // The phone: Bob's message, the own copy of the companion's answer, the group.
  assert.deepEqual(texts(demo.phone), [
    "bob#1: Hi Alice! Lunch?",
    `me (alice#${demo.webId}) → bob: Sure, from my browser`,
    `[group] alice#${demo.webId}: Group: booked, from the web`,
    "[group] bob#1: Group: great, see you",
    "bob#1: After your restart: still reading?",
    "bob#1: once",
    "bob#1: Resent after a corrupted delivery",
  ]);
  // Bob: the companion's 1:1 answer and both of Alice's group messages.
  assert.deepEqual(texts(demo.bob), [
    `alice#${demo.webId}: Sure, from my browser`,
    "[group] alice#1: Group: table for two?",
    `[group] alice#${demo.webId}: Group: booked, from the web`,
  ]);
  assert.equal(demo.restoredFromBackup, false);
  // The relay checked the coverage of every batch it queued, and its bundles carried one-time
  // prekeys (the phone's to the companion, Bob's to both of Alice's devices).
  assert.ok(demo.relay.checked >= 10, JSON.stringify(demo.relay));
  assert.equal(demo.relay.oneTime, 3);
  // Errors are RatchetryErrors with a stable code and a readable message.
  assert.equal(demo.replay.name, "RatchetryError");
  assert.equal(demo.replay.code, "fanout.duplicate");
  assert.match(demo.replay.message, /already|duplicate|read/i);
  // A corrupted envelope is unreadable; the retry brought the message (checked above).
  assert.equal(demo.unreadable, "ratchet.authentication_failed");
  // Bad input from JavaScript is refused with binding codes, before the library is called.
  const refused = await page.evaluate(async () => {
    const m = await import("/pkg/ratchetry_wasm.js");
    const codes = [];
    const attempt = (f) => { try { f(); codes.push("no error"); } catch (e) { codes.push(`${e.name} ${e.code}`); } };
    attempt(() => m.createAccount(NaN));
    attempt(() => m.createAccount(-1));
    attempt(() => m.safetyNumber(new Uint8Array(3), new Uint8Array(32)));
    attempt(() => new m.LinkingCompanion(new Uint8Array([1, 2, 3])));
    attempt(() => m.Device.restore(new Uint8Array(10), 0, 0));
    return codes;
  });
  assert.deepEqual(refused.slice(0, 3), [
    "RatchetryError binding.bad_time",
    "RatchetryError binding.bad_time",
    "RatchetryError binding.bad_length",
  ]);
  for (const c of refused.slice(3)) assert.match(c, /^RatchetryError decode\./);
  // And the page shows it.
  assert.match(await page.textContent("#status"), /^done:/);
  assert.equal(await page.locator("#web li.group").count(), 2);
  await page.close();
});

test("the web companion keeps every record in IndexedDB and survives a page reload", async () => {
  // A fresh context: an empty IndexedDB for the page's origin.
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  const settled = (phase) => page.waitForFunction(
    (p) => window.companion !== undefined && (window.companion.phase === p || window.companion.error),
    phase, { timeout: 60_000 });
  const texts = (list) => list.map((m) => m.text);

  await page.goto(`${base}/demo/companion.html`);
  await settled(1);
  const first = await page.evaluate(() => window.companion);
  assert.equal(first.error, undefined, `the first visit failed: ${first.error}`);
  assert.deepEqual(texts(first.web), ["bob#1: Hi Alice, before your reload"]);
  assert.deepEqual(texts(first.bob), [`alice#2: Hi Bob, from the browser`]);
  assert.ok(first.relay.checked > 0 && first.relay.oneTime > 0, JSON.stringify(first.relay));

  await page.reload();
  await settled(2);
  const second = await page.evaluate(() => window.companion);
  assert.equal(second.error, undefined, `the visit after the reload failed: ${second.error}`);
  // A second tab's copy of the companion is refused by the store, and loads the first tab's.
  assert.deepEqual(second.secondTab, { refused: true, reloaded: true });
  // Every device and Alice's primary were rebuilt from their own records, nothing from memory;
  // the primary, current (not stale), renewed the list, which every device followed; the relay
  // came back from its snapshot (its lists and each device's prekeys) and checked each batch.
  for (const n of ["phone", "web", "bob", "primary"]) assert.ok(second.loaded[n] > 0, `${n} had no records`);
  assert.deepEqual(second.primary, { stale: false, versions: [2, 3], webConfirmed: true });
  assert.ok(second.relay.checked > 0, JSON.stringify(second.relay));
  assert.equal(second.relay.pooled, 3);
  // The message sent while the page was closed, then a conversation on the rebuilt sessions
  // and sender keys.
  assert.deepEqual(texts(second.web), [
    "bob#1: Sent while your page was closed",
    "[group] bob#1: Group: everyone still here?",
  ]);
  assert.deepEqual(texts(second.bob), [
    "alice#2: Back after a reload",
    "[group] alice#2: Group: yes, reloaded",
  ]);
  assert.deepEqual(texts(second.phone), [
    "bob#1: Sent while your page was closed",
    "me (alice#2) → bob: Back after a reload",
    "[group] bob#1: Group: everyone still here?",
    "[group] alice#2: Group: yes, reloaded",
  ]);
  // Every session runs the post-quantum ratchet, its state rebuilt from the records too.
  assert.ok(second.pq.webWithBob !== null && second.pq.bobWithWeb !== null, JSON.stringify(second.pq));
  assert.deepEqual(second.pq.withoutIt, [0, 0, 0]);
  assert.deepEqual(errors, []);
  await context.close();
});

/**
 * The console's own rendering of every object a scenario's `secretsShown` logged shows no
 * secret (`needles`), and the control's does: `count` objects were logged besides it.
 */
function assertConsoleShowsNoSecret(shown, needles, count) {
  const checked = shown.filter((t) => t.startsWith("secrets check"));
  assert.equal(checked.filter((t) => !t.startsWith("secrets check control")).length, count, "every object was logged");
  assert.ok(checked.some((t) => t.startsWith("secrets check control")), "the control was logged");
  for (const text of checked) {
    const showsSecret = needles.some((n) => text.includes(n));
    assert.equal(showsSecret, text.startsWith("secrets check control"), `console rendering: ${text.slice(0, 200)}`);
  }
}

/** Every scenario's batches went through the relay's coverage check; bundles carried one-time prekeys. */
function assertThroughRelay(relay) {
  assert.ok(relay.checked > 0 && relay.oneTime > 0, `the relay: ${JSON.stringify(relay)}`);
}

/** Runs one export of test/scenarios.js in a fresh page; returns its result and the console. */
async function scenario(name) {
  const page = await browser.newPage();
  const errors = [], logs = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); else logs.push(m); });
  await page.goto(`${base}/test/page.html`);
  const result = await page.evaluate(async (n) => {
    const m = await import("/test/scenarios.js");
    try { return await m[n](); } catch (e) { return { error: `${e.code ?? ""} ${e.stack ?? e}` }; }
  }, name);
  assert.equal(result.error, undefined, result.error);
  assert.deepEqual(errors, []);
  // The console's own rendering of each logged object, expanded as far as the page can.
  // Typed arrays come back as {"0":..,"1":..}: shown as "a,b,..." like the page's own forms.
  const bytes = (k, v) => v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length > 0 &&
    Object.keys(v).every((i) => /^\d+$/.test(i)) ? Object.values(v).join(",") : v;
  const rendered = [];
  for (const m of logs) {
    let text = m.text();
    for (const arg of m.args()) text += " " + JSON.stringify(await arg.jsonValue().catch(() => null), bytes);
    rendered.push(text);
  }
  await page.close();
  return { result, console: rendered };
}

test("calls: a call key sent by one device yields the same SRTP keys at another; join, remove, catch up, retry", async () => {
  const { result: r, console: shown } = await scenario("calls");
  // 1:1: the key message was corrupted, asked for again (reason 2) and answered from the call.
  assert.equal(r.oneToOne.unreadable, "ratchet.authentication_failed");
  assert.equal(r.oneToOne.askedKind, "retryRequest");
  assert.equal(r.oneToOne.askedReason, 2);
  assert.equal(r.oneToOne.kind, "callKey");
  assert.equal(r.oneToOne.messageIsClass, true);
  assert.equal(r.oneToOne.messageKind, "oneToOne");
  assert.equal(r.oneToOne.messageEpoch, 0);
  assert.ok(r.oneToOne.sameCall && r.oneToOne.manager);
  assert.ok(r.oneToOne.sameKeysAlice, "Bob derives Alice's sending keys");
  assert.ok(r.oneToOne.sameKeysBob, "Alice derives Bob's sending keys");
  assert.ok(r.oneToOne.ownKeysDiffer);
  assert.deepEqual([r.oneToOne.keyLength, r.oneToOne.saltLength, r.oneToOne.participants], [32, 12, 2]);
  // Group call: join (1), remove (2, missed by Bob), join again (3).
  assert.deepEqual(r.groupCall.epochs, [3, 3, 1]);
  assert.ok(r.groupCall.joinKeysAgree, "all three derive Carol's keys at the join");
  assert.equal(r.groupCall.ahead, "sync.call_key_ahead");
  assert.ok(r.groupCall.caughtUp, "after catchUp Bob derives Alice's keys of epoch 3");
  assert.equal(r.groupCall.stale, "sync.stale_call_key");
  assert.equal(r.groupCall.notManager, "sync.not_call_manager");
  assert.ok(r.groupCall.carolAtJoin, "Carol, removed, is left at epoch 1");
  assert.ok(r.groupCall.restoredSame);
  assert.equal(r.groupCall.restoredFromBackup, false);
  assert.equal(r.groupCall.staleFromBackup, true);
  assert.ok(r.groupCall.roundTrip);
  assert.deepEqual(r.refused, {
    badKind: "binding.bad_input",
    badAddress: "binding.bad_length",
    notAnArray: "binding.bad_input",
    badConfig: "binding.bad_input",
    full: "sync.call_full",
    notInCall: "sync.not_in_call",
    garbage: "decode.unknown_version",
    badState: "decode.unknown_version",
    wrongCall: "fanout.body_mismatch",
    answeredTwice: "fanout.duplicate",
    belowKeptEpoch: "sync.stale_call_key",
    otherKeptManager: "sync.not_call_manager",
    badKept: "binding.bad_input",
  });
  // No secret (SRTP keys, epoch secrets) in String(x), JSON.stringify(x), the inspection, or
  // the console's rendering of any call object or received call key.
  assert.deepEqual(r.leaked, []);
  // The control: a key in a plain object shows in JSON and in the inspection (String gives
  // "[object Object]"), so the check can fail.
  assert.deepEqual([...new Set(r.control)], ["control json", "control inspect"]);
  assertConsoleShowsNoSecret(shown, r.needles, 6);
  assertThroughRelay(r.relay);
});

test("one-time prekeys: a bundle carrying them consumes one of each; counts, last-resort uses, caps from the config", async () => {
  const { result: r } = await scenario("prekeys");
  assert.deepEqual([r.upload.prekeys, r.upload.kem], [5, 5]);
  assert.ok(r.upload.bytes > 5 * 1568, "the upload carries the ML-KEM keys");
  assert.deepEqual([r.more.prekeys, r.more.kem, r.more.after], [3, 3, true]);
  assert.deepEqual(r.atStart, [5, 5, 0]);
  assert.deepEqual(r.afterMore, [8, 8, 0]);
  assert.equal(r.read, "direct");
  assert.ok(r.bundleLonger);
  assert.deepEqual(r.afterOneTime, [7, 7, 0], "one of each kind used, the last-resort key not");
  assert.deepEqual(r.afterLastResort, [7, 7, 1], "a bundle without them uses the last-resort key");
  assert.deepEqual(r.rebuilt, [7, 7, 1]);
  // The relay's bundle took the lowest ids of Bob's upload from his pool: the very bundle his
  // device makes for them.
  assert.ok(r.sameAsDevice);
  assert.deepEqual([r.relay.before, r.relay.after], [{ oneTime: 5, kem: 5 }, { oneTime: 4, kem: 4 }]);
  assertThroughRelay(r.relay);
  // config.prekeys caps what a device makes (default: what it was asked for).
  assert.deepEqual(r.capped, { upload: [4, 2], counts: [4, 2, 0] });
  assert.deepEqual(r.uncapped, [10, 10, 0]);
  assert.deepEqual(r.refused, {
    badCount: "binding.bad_input",
    negative: "binding.bad_input",
    typo: "binding.bad_input",
    notObject: "binding.bad_input",
    zeroSigned: "binding.bad_input",
  });
});

test("policies and configs change what a primary and a device accept; history offers name their groups", async () => {
  const { result: r } = await scenario("policies");
  assert.deepEqual(r.web, { prekeys: 2, kem: 2, counts: [2, 2] });
  assert.deepEqual(r.afterOffer, [1, 1], "the relay's bundle for the companion carried one of each");
  assertThroughRelay(r.relay);
  assert.equal(r.second, "device.too_many_companions", "policy.account.maxCompanions = 1");
  assert.equal(r.secondByDefault, "no error", "the default allows more");
  assert.match(r.late, /^device\./);
  assert.equal(r.expired, "device.unknown_invitation", "linkInvitationValidityMs = 1000");
  assert.equal(r.ceiling, "device.policy_above_ceiling", "config.lists.maxCompanions = 2");
  assert.equal(r.lenient, "no error");
  assert.deepEqual([r.confirmed, r.unconfirmed], [true, false], "isConfirmed: confirmed, approved only");
  assert.equal(r.offer.kind, "historyOffer");
  assert.deepEqual(r.offer.groups, [r.offer.group]);
  assert.deepEqual(r.offer.webGroups, [r.offer.group]);
  // The offer is a HistoryOffer (received and sealed), kept as bytes and loaded back to open.
  assert.ok(r.offer.isClass && r.offer.sealedIsClass);
  assert.deepEqual([r.offer.chunks, r.offer.totalLength, r.offer.opened], [[1, 1, 1], 19, "the history, sealed"]);
  // The app data attached to the sealed offer arrives with it; over 64 KiB is refused.
  assert.deepEqual([r.offer.appData, r.offer.tooLong], ["drafts and pins", "sync.app_data_too_long"]);
  assert.deepEqual(r.refused, {
    badPolicy: "binding.bad_input",
    badOptions: "binding.bad_input",
    badCompanion: "binding.bad_input",
    badOffer: "decode.unknown_version",
    offerTruncated: "decode.truncated",
  });
});

test("message ids, resends, outbox coverage, groups and accounts", async () => {
  const { result: r } = await scenario("messages");
  assert.equal(r.direct.idLength, 16);
  assert.ok(r.direct.sameId, "the reader's id is the outbox's messageId");
  assert.equal(r.direct.resent, null);
  assert.deepEqual(r.backups, {
    changed: [true, false], replacesAll: true,
    fromRecords: false, fromBackupRecords: true, restoreFromBackup: true,
    badTime: "binding.bad_time", badBytes: "decode.unknown_version",
  });
  assert.deepEqual(r.direct.coverage.map((c) => [c.own || c.bob, c.version, c.digest]), [[true, 1, 32], [true, 1, 32]]);
  assert.equal(r.direct.coverage.filter((c) => c.bob).length, 1);
  assert.equal(r.resent.kind, "direct");
  assert.equal(r.resent.body, "again");
  assert.ok(r.resent.sameId, "a resend keeps the message's id");
  assert.ok(r.resent.replaces, "resent names the envelope it replaces");
  assert.deepEqual([r.resent.askedReason, r.resent.requestReason, r.resent.keptSendId], [2, 2, true]);
  assert.ok(r.groups.groupId);
  assert.equal(r.groups.groupResent, null);
  assert.deepEqual([r.groups.key1, r.groups.msg2], ["senderKey", "group"]);
  assert.ok(r.groups.rotated, "notDelivered made the next group send rotate its key");
  assert.deepEqual(r.groups.withheld, {
    kind: "withheld", reason: 1, group: true, keyId: true, message: "fanout.withheld", badReason: "binding.bad_input",
  });
  assert.deepEqual(r.groups.members, [true]);
  assert.equal(r.groups.groups.length, 1);
  assert.deepEqual(r.groups.afterForget, { groups: 0, members: undefined });
  assert.deepEqual(r.groups.restored, {
    unconfirmed: r.groups.groups, live: 0, send: "fanout.group_unconfirmed", afterSet: 0,
  });
  assert.equal(r.groups.sendAfterForget, "fanout.unknown_group");
  assert.deepEqual(r.accounts, { before: ["alice", "bob"], session: true, classical: 0, after: 1, sessionAfter: false });
  assert.deepEqual(r.refused, {
    unknownSend: "fanout.unknown_message",
    badSendId: "binding.bad_input",
    badGroup: "binding.bad_length",
    badAccount: "binding.bad_length",
    badAddress: "binding.bad_input",
    badRequest: "decode.unknown_version",
  });
  assertThroughRelay(r.relay);
});

test("a stepped receive names the sender's list, then reads; duplicates, unknown accounts, garbage, unreadable and held envelopes", async () => {
  const { result: r } = await scenario("receiving");
  assert.deepEqual(r.unknown, { kinds: ["needDeviceList", "alice", "done"], kind: "dropped", code: "fanout.unknown_account", message: "string" });
  assert.deepEqual(r.read, { kinds: ["needDeviceList", "alice", "done"], kind: "read", message: "direct", body: "hello", sameId: true });
  assert.deepEqual(r.duplicate, { kinds: ["done"], kind: "duplicate", sameId: true });
  assert.equal(r.garbage.kind, "dropped");
  assert.match(r.garbage.code, /^decode\./);
  // Its message stored: an old replay, a duplicate under the id found (not asked for).
  assert.deepEqual(r.stored, { kind: "duplicate", sameId: true });
  assert.deepEqual(r.ask, { kind: "askAgain", to: true, asked: "retryRequest", reason: 2 });
  assert.deepEqual(r.held, { kind: "hold", from: true });
  assert.equal(r.refused.badTime, "binding.bad_time");
  assert.match(r.refused.notADevice, /^untyped /);
  assertThroughRelay(r.relay);
});

test("the relay's helpers: served lists, the coverage check of each batch, published prekeys", async () => {
  const { result: r } = await scenario("relay");
  // Lists: served as published; a newer one replaces it; refusals leave it served.
  assert.deepEqual([r.lists.served, r.lists.unknown, r.lists.version, r.lists.afterRefusals, r.lists.lenient], [true, true, 2, true, "no error"]);
  assert.deepEqual(r.lists.refused, {
    rollback: "device.rollback",
    wrongAccount: "device.wrong_account",
    garbage: "decode.unknown_version",
    badAccount: "binding.bad_length",
    ceiling: "device.policy_above_ceiling",
    badLimits: "binding.bad_input",
  });
  // A batch made under the old list is refused as stale; after following the list, it
  // reaches both of Alice's devices and the companion reads it.
  assert.equal(r.coverage.stale, "server.stale_list");
  assert.equal(r.coverage.staleRecipients, 1);
  assert.deepEqual(r.coverage.recipients, [1, 2]);
  assert.deepEqual([r.coverage.version, r.coverage.webRead, r.coverage.accepted], [2, "direct", "no error"]);
  assert.deepEqual(r.coverage.refused, {
    leftOut: "server.device_left_out",
    notListed: "server.not_listed",
    uncovered: "server.uncovered",
    oldVersion: "server.stale_list",
    coveredTwice: "server.covered_twice",
    badDigest: "binding.bad_length",
    badVersion: "binding.bad_input",
    notAnArray: "binding.bad_input",
    badTime: "binding.bad_time",
    badSender: "binding.bad_input",
  });
  // Prekeys: one key of each kind per bundle; refusals change neither pools nor base.
  const p = r.prekeys;
  assert.ok(p.address);
  assert.deepEqual(p.start, [20, 20]);
  assert.deepEqual(p.refused, {
    duplicate: "server.duplicate_prekey_id",
    othersUpload: "x3dh.bad_kem_prekey_signature",
    garbage: "decode.unknown_version",
    othersBase: "server.identity_mismatch",
    badBase: "decode.unknown_version",
    badTime: "binding.bad_time",
    notABase: "server.not_a_base_bundle",
    wrongIdentity: "server.identity_mismatch",
    unknownAccount: "server.unknown_account",
    notInList: "device.not_in_list",
    badAddress: "binding.bad_input",
    badParts: "decode.unknown_version",
    badAccepted: "decode.truncated",
    emptyAccepted: "decode.invalid_value",
    noAccepted: "binding.bad_input",
  });
  assert.ok(p.unchanged, "the refusals changed the pools or the base");
  // The pools remember the uploads they accepted (16 bytes each), rebuilt with them.
  assert.deepEqual(p.accepted, [true, "server.duplicate_prekey_id"]);
  assert.ok(p.rebuilt, "fromParts rebuilds the same pools and serves the same next bundle");
  assert.deepEqual([p.afterOne, p.afterAdd, p.afterCarol], [[19, 19], [22, 22], [21, 21]]);
  assert.ok(p.replaced, "replaceBase took the rotated base and kept the pools");
  assert.equal(p.carolRead, "direct", "a bundle of the rotated base opens at Bob");
  assert.ok(p.drained, "a drained pool serves the base alone");
  assertThroughRelay(r.relay);
});

test("a primary's change records: written per operation, rebuilt after a restart, a stale store detected", async () => {
  const { result: r } = await scenario("primaryRecords");
  // hasChanges: the new account's records, none once written, the invitation's, none again.
  assert.deepEqual(r.units, {
    roles: ["primary", "device"],
    first: { replacesAll: true, baseEpoch: null, records: 4 }, nothing: 0, emptyBase: true, tags: true, epochs: true,
    pending: [true, false, true, false], chain: [true, true, true], tagChain: [true, true, true, true],
  });
  // Rebuilt from its records it is the same primary, and signs on (the unlink reaches the phone).
  assert.deepEqual(r.restarted, {
    stale: false, needsResync: false, account: true, list: true, epoch: true, confirmed: true, bytes: true,
    next: { replacesAll: false, records: true, epoch: true, base: true }, events: ["deviceRemoved"], again: true,
    fromBytes: true, fromStaleBytes: true,
  });
  // An older store than the last unit written: stale, refuses to sign until it resyncs.
  assert.deepEqual(r.staleStore, { stale: true, needsResync: true, renew: "device.resync_required", resynced: true, version: true });
  // Restored from a backup, from bytes and from records: both wait for a resync; from bytes
  // the first unit replaces all, from records it goes on from them.
  const backup = { needsResync: true, renew: "device.resync_required", base: true };
  assert.deepEqual(r.backups, [{ ...backup, replacesAll: true }, { ...backup, replacesAll: false }]);
  assert.deepEqual(r.refused, {
    empty: "decode.missing_record",
    notAnArray: "binding.bad_input",
    notBytes: "binding.bad_input",
    notARecord: "binding.bad_input",
    badEpoch: "binding.bad_input",
    negativeEpoch: "binding.bad_input",
    corrupted: "decode.truncated",
    deviceRecords: "decode.unknown_type",
    primaryAsDevice: "decode.unknown_type",
    sparse: "binding.bad_input",
    sparseBackup: "binding.bad_input",
    sparseDevice: "binding.bad_input",
    wrappedId: "binding.bad_input",
    fractionId: "binding.bad_input",
    missingId: "binding.bad_input",
    reason: "binding.bad_input",
    negativeCount: "binding.bad_input",
    prekeyId: "binding.bad_input",
    callEpoch: "binding.bad_input",
  });
  assert.ok(r.unchanged, "a refusal changed the store or the primary");
});

test("no secret in any string form of history offers, change records, restored primaries or the relay's helpers", async () => {
  const { result: r, console: shown } = await scenario("secrets");
  // The offers and records are classes; what they hold comes only from their methods.
  assert.deepEqual(r.classes, { offer: true, sealed: true, records: true });
  assert.deepEqual(r.found, [true, true], "a device record and a primary record with key material");
  assert.ok(r.secrets > 10, `${r.secrets} secrets checked`);
  // No offer key nor record value in String(x), JSON.stringify(x), the inspection, or the
  // console's rendering of any of them.
  assert.deepEqual(r.leaked, []);
  assert.deepEqual([...new Set(r.control)], ["control json", "control inspect"]);
  assertConsoleShowsNoSecret(shown, r.needles, r.logged);
  assertThroughRelay(r.relay);
});

test("timing in the browser (RATCHETRY_BENCH=1)", { skip: !process.env.RATCHETRY_BENCH }, async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/demo/bench.html`);
  await page.waitForFunction(() => window.bench !== undefined, null, { timeout: 300_000 });
  const bench = await page.evaluate(() => window.bench);
  assert.equal(bench.error, undefined, bench.error);
  console.log(`browser: ${JSON.stringify(bench)}`);
  await page.close();
});
