// The demo: a phone (primary, simulated in the page) links a web companion, and both exchange
// 1:1 and group messages with Bob through an in-page relay. Each device's panel shows what it
// decrypted. The wasm module does no I/O: this page moves the bytes, keeps the state and passes
// Date.now(). Results are also left in `window.demo` for the browser test.
import init, { createAccount, LinkingCompanion, HistorySealer, HistoryOpener, Device, safetyNumber } from "../pkg/ratchetry_wasm.js";
import { App, Relay, hex, showFailure, text, utf8 } from "./app.js";


async function main() {
  await init();
  const relay = new Relay();
  const now = Date.now();

  // Alice's phone: the primary, with the account key. Bob: another account.
  const alice = createAccount(now);
  const bob = createAccount(now);
  relay.publishList(alice.primary); relay.publishList(bob.primary);
  const phone = new App("alice#1", "phone", alice.device, relay);
  const bobApp = new App("bob#1", "bob", bob.device, relay);
  // Each device uploads its bundle and its first one-time prekeys.
  relay.publishPrekeys(alice.device, alice.upload); relay.publishPrekeys(bob.device, bob.upload);
  const names = (a) => {
    const h = hex(a.account);
    const who = h === hex(alice.primary.accountKey()) ? "alice" : h === hex(bob.primary.accountKey()) ? "bob" : h;
    return a.device === undefined ? who : `${who}#${a.device}`;
  };

  // Linking: the phone shows an invitation (a QR code); the web page scans it and answers.
  const invitation = alice.primary.invite(Date.now());
  const linking = new LinkingCompanion(invitation);
  const approval = alice.primary.approve(Date.now(), linking.request());
  const linked = linking.complete(Date.now(), approval);
  const webId = alice.primary.confirm(linked.confirmation);
  relay.publishList(alice.primary);
  let web = new App("alice#" + webId, "web", linked.device, relay);
  relay.publishPrekeys(linked.device, linked.upload);
  phone.follow(alice.primary.accountKey());
  for (const app of [phone, web, bobApp]) for (const acct of [alice.primary.accountKey(), bob.primary.accountKey()]) app.follow(acct);
  web.show("system", `linked as device #${webId}; list v${alice.primary.deviceListVersion()}`);

  // History sync: the phone seals its history and offers it to the new companion.
  const history = JSON.stringify([{ from: "bob", text: "(earlier) See you Friday?" }]);
  const sealer = new HistorySealer();
  const chunks = sealer.push(text.encode(history));
  const sealed = sealer.finish();
  chunks.push(...sealed.chunks);
  await phone.send(() => phone.device.sendHistoryOffer(Date.now(), webId, sealed.offer));
  await web.pump(names);
  const opener = new HistoryOpener(web.historyOffer);
  const restoredHistory = utf8.decode(new Uint8Array(chunks.flatMap((c) => Array.from(opener.push(c)))));
  opener.finish();
  for (const m of JSON.parse(restoredHistory)) web.show("direct", `${m.from}: ${m.text}`);
  web.show("system", `history sync: ${chunks.length} chunk(s) opened`);

  // 1:1: Bob writes to Alice (both her devices read it), the web companion answers (Bob reads
  // it, Alice's phone shows the own copy).
  await bobApp.say(alice.primary.accountKey(), "Hi Alice! Lunch?");
  for (const a of [phone, web]) await a.pump(names);
  await web.send(() => web.device.send(Date.now(), bob.primary.accountKey(), text.encode("Sure, from my browser")));
  for (const a of [phone, bobApp]) await a.pump(names);

  // The web companion persists its state as bytes and restarts (a page reload).
  const saved = web.device.toBytes();
  const epoch = web.device.stateEpoch();
  web.device.free();
  const restored = Device.restore(saved, epoch, Date.now());
  web.device = restored.device;
  web.show("system", `restarted from ${saved.length} bytes of state (stale: ${restored.fromBackup})`);

  // A group of Alice and Bob: the phone, the restored web companion and Bob each post.
  const group = new Uint8Array(32).fill(0x42);
  const members = [alice.primary.accountKey(), bob.primary.accountKey()];
  for (const a of [phone, web, bobApp]) a.device.setGroupMembers(group, members);
  await phone.send(() => phone.device.sendGroup(Date.now(), group, text.encode("Group: table for two?")));
  for (const a of [web, bobApp]) await a.pump(names);
  await web.send(() => web.device.sendGroup(Date.now(), group, text.encode("Group: booked, from the web")));
  await bobApp.send(() => bob.device.sendGroup(Date.now(), group, text.encode("Group: great, see you")));
  for (const a of [phone, web, bobApp]) await a.pump(names);
  await bobApp.say(alice.primary.accountKey(), "After your restart: still reading?");
  for (const a of [phone, web]) await a.pump(names);

  // An error arrives as a RatchetryError with a stable code: a replayed envelope.
  let replay = null;
  const out = await bobApp.send(() => bob.device.send(Date.now(), alice.primary.accountKey(), text.encode("once")));
  const env = out.envelopes.find((e) => e.to.device === webId).bytes;
  web.device.receive(Date.now(), env);
  relay.queue(web.device.address()).length = 0;
  try { web.device.receive(Date.now(), env); } catch (e) { replay = { name: e.name, code: e.code, message: e.message }; }
  web.show("system", `replayed envelope refused: ${replay && replay.code}`);

  // The relay corrupts Bob's next envelope for the web companion: it cannot read it, asks Bob's
  // device for the message again, and reads the resent copy.
  await bobApp.say(alice.primary.accountKey(), "Resent after a corrupted delivery");
  await phone.pump(names);
  const damaged = relay.queue(web.device.address()).pop();
  damaged[damaged.length - 1] ^= 1;
  let unreadable = null;
  try { web.device.receive(Date.now(), damaged); } catch (e) { unreadable = e.code; }
  web.show("system", `could not read an envelope (${unreadable}): asking again`);
  const request = web.device.requestRetry(Date.now(), damaged, 2);
  relay.queue(request.to).push(request.bytes);
  await bobApp.pump(names);
  await web.pump(names);

  for (const [id, app] of [["meta-phone", phone], ["meta-web", web], ["meta-bob", bobApp]])
    document.getElementById(id).textContent = `${names(app.device.address())} · identity ${hex(app.device.identityKey())}`;
  const sn = safetyNumber(alice.primary.accountKey(), bob.primary.accountKey());
  document.getElementById("log").textContent = `safety number alice/bob:\n${sn}\n${relay.delivered} envelopes delivered`;

  window.demo = {
    phone: phone.read, web: web.read, bob: bobApp.read, replay, unreadable, webId, restoredFromBackup: restored.fromBackup,
    relay: { checked: relay.checked, oneTime: relay.oneTime },
  };
  const status = document.getElementById("status");
  status.textContent = `done: ${relay.delivered} envelopes delivered and decrypted`;
  status.className = "ok";
}

main().catch((e) => { window.demo = { error: showFailure(e) }; });
