// The web companion as a web app runs it: every device's state lives in IndexedDB (store.js),
// written after each operation from `takeChanges()` and before the page acts on it (ships an
// outbox, takes an envelope off the queue, shows a message), and the page survives a reload.
// The first visit links Alice's web companion, talks with Bob and leaves a message in flight; the visit
// after a reload rebuilds every device from its records (`Device.fromRecords`) and Alice's
// primary from its own (`Primary.fromRecords`), which renews her list; the companion reads the
// message that arrived meanwhile and talks on, 1:1 and in a group, every session running the
// post-quantum ratchet. The relay's lists and prekeys survive the reload too. `?reset` starts
// over.
// Results are left in `window.companion` for the browser test.
import init, { createAccount, LinkingCompanion, Device, Primary } from "../pkg/ratchetry_wasm.js";
import { App, Relay, hex, showFailure, text } from "./app.js";
import { RecordStore, StaleCopyError } from "./store.js";

const DEVICES = ["phone", "web", "bob"];
/** The object store of Alice's primary's records. */
const PRIMARY = "primary";
const GROUP = new Uint8Array(32).fill(0x24);

/** Writes what each app's device changed since its last write, each in one transaction. */
async function persist(db, apps) {
  for (const app of apps) await db.apply(app.panel, app.device.takeChanges());
}

/** An app whose device's changes go to its object store, written before it acts on them. */
function stored(db, name, panel, device, relay) {
  const app = new App(name, panel, device, relay);
  app.persist = () => persist(db, [app]);
  return app;
}

/**
 * Writes what Alice's primary changed, in one transaction, and keeps its epoch where a restore
 * of the record store would not reach (here, the world's meta record).
 */
async function persistPrimary(db, primary) {
  const changes = primary.takeChanges();
  await db.apply(PRIMARY, changes);
  return changes.epoch;
}

/**
 * Writes the rest of the world: Alice's primary's last epoch (its records are in their own
 * store), Bob's primary as bytes, the relay, the apps' own data.
 */
async function persistWorld(db, world, relay, apps) {
  await db.put({
    world: {
      ...world,
      alice: { epoch: world.alicePrimary.stateEpoch() },
      bob: { bytes: world.bobPrimary.toBytes(), epoch: world.bobPrimary.stateEpoch() },
      alicePrimary: undefined, bobPrimary: undefined,
    },
    relay: relay.snapshot(),
    sent: Object.fromEntries(apps.map((a) => [a.panel, a.sent])),
  });
}

async function firstVisit(db) {
  const relay = new Relay();
  const alice = createAccount(Date.now());
  const bob = createAccount(Date.now());
  relay.publishList(alice.primary); relay.publishList(bob.primary);
  const phone = stored(db, "alice#1", "phone", alice.device, relay);
  const bobApp = stored(db, "bob#1", "bob", bob.device, relay);
  relay.publishPrekeys(alice.device, alice.upload); relay.publishPrekeys(bob.device, bob.upload);
  const linking = new LinkingCompanion(alice.primary.invite(Date.now()));
  const linked = linking.complete(Date.now(), alice.primary.approve(Date.now(), linking.request()));
  const webId = alice.primary.confirm(linked.confirmation);
  // The primary's records are written before the list it signed is published.
  await persistPrimary(db, alice.primary);
  relay.publishList(alice.primary);
  const web = stored(db, "alice#" + webId, "web", linked.device, relay);
  relay.publishPrekeys(linked.device, linked.upload);
  const apps = [phone, web, bobApp];
  // Every session runs the post-quantum ratchet: devices mark their ML-KEM prekeys by default.
  const accounts = [alice.primary.accountKey(), bob.primary.accountKey()];
  for (const app of apps) for (const a of accounts) app.follow(a);
  for (const app of apps) app.device.setGroupMembers(GROUP, accounts);
  const names = namer(accounts);
  await persist(db, apps);

  await bobApp.say(accounts[0], "Hi Alice, before your reload");
  for (const app of [phone, web]) await app.pump(names);
  await web.say(accounts[1], "Hi Bob, from the browser");
  for (const app of [phone, bobApp]) await app.pump(names);
  // In flight while the page is closed: queued at the relay, read after the reload.
  await bobApp.say(accounts[0], "Sent while your page was closed");

  const world = { webId, accounts, alicePrimary: alice.primary, bobPrimary: bob.primary };
  await persistWorld(db, world, relay, apps);
  return { phase: 1, web: web.read, bob: bobApp.read, phone: phone.read, relay: { checked: relay.checked, oneTime: relay.oneTime } };
}

async function afterReload(db, saved) {
  const relay = Relay.from(await db.get("relay"));
  const sent = await db.get("sent");
  const records = {};
  const apps = [];
  for (const name of DEVICES) {
    records[name] = await db.load(name);
    const device = Device.fromRecords(records[name]);
    const app = stored(db, name === "web" ? "alice#" + saved.webId : name, name, device, relay);
    app.sent = sent[name];
    apps.push(app);
  }
  const [phone, web, bobApp] = apps;
  // Alice's primary is rebuilt from its records; the epoch kept says they are the latest. It
  // renews the list (its companions stay valid), and every device follows the new one.
  records[PRIMARY] = await db.load(PRIMARY);
  const { primary: alicePrimary, stale } = Primary.fromRecords(records[PRIMARY], saved.alice.epoch);
  if (hex(alicePrimary.accountKey()) !== hex(saved.accounts[0])) throw new Error("primary restored wrong");
  const versions = [alicePrimary.deviceListVersion()];
  alicePrimary.renew(Date.now());
  await persistPrimary(db, alicePrimary);
  relay.publishList(alicePrimary);
  versions.push(alicePrimary.deviceListVersion());
  for (const app of apps) { app.follow(saved.accounts[0]); await persist(db, [app]); }
  const names = namer(saved.accounts);

  await web.pump(names);
  await web.say(saved.accounts[1], "Back after a reload");
  for (const app of [phone, bobApp]) await app.pump(names);
  await bobApp.send(() => bobApp.device.sendGroup(Date.now(), GROUP, text.encode("Group: everyone still here?")));
  for (const app of [phone, web]) await app.pump(names);
  await web.send(() => web.device.sendGroup(Date.now(), GROUP, text.encode("Group: yes, reloaded")));
  for (const app of [phone, bobApp]) await app.pump(names);
  await persistWorld(db, { ...saved, alicePrimary, bobPrimary: Primary.restore(saved.bob.bytes, saved.bob.epoch) }, relay, apps);

  // A second tab: another copy of the web companion, loaded from the same records. The first
  // tab writes first; the copy's changes no longer start from the stored state and are
  // refused, nothing written. Loaded again, the copy is the first tab's device.
  const copy = Device.fromRecords(await db.load("web"));
  web.device.rotateSignedPrekey(Date.now());
  await persist(db, [web]);
  copy.rotateSignedPrekey(Date.now());
  let refused = false;
  try { await db.apply("web", copy.takeChanges()); } catch (e) { if (!(e instanceof StaleCopyError)) throw e; refused = true; }
  const again = Device.fromRecords(await db.load("web"));
  const secondTab = { refused, reloaded: hex(again.toBytes()) === hex(web.device.toBytes()) };
  return {
    secondTab,
    phase: 2,
    web: web.read, bob: bobApp.read, phone: phone.read,
    primary: { stale, versions, webConfirmed: alicePrimary.isConfirmed(saved.webId) },
    relay: { checked: relay.checked, pooled: relay.prekeys.size },
    // The ratchet's state came back from the records with the sessions.
    pq: {
      webWithBob: web.device.pqRatchetEpoch(bobApp.device.address()) ?? null,
      bobWithWeb: bobApp.device.pqRatchetEpoch(web.device.address()) ?? null,
      withoutIt: apps.map((a) => a.device.sessionsWithoutPqRatchet().length),
    },
    loaded: Object.fromEntries([...DEVICES, PRIMARY].map((n) => [n, records[n].length])),
  };
}

/** Names an address by its account for the panels. */
function namer([alice, bob]) {
  return (a) => {
    const h = hex(a.account);
    const who = h === hex(alice) ? "alice" : h === hex(bob) ? "bob" : h;
    return a.device === undefined ? who : `${who}#${a.device}`;
  };
}

async function main() {
  await init();
  const name = "ratchetry-companion-demo";
  if (new URLSearchParams(location.search).has("reset")) {
    await new Promise((ok, fail) => { const r = indexedDB.deleteDatabase(name); r.onsuccess = ok; r.onerror = () => fail(r.error); });
  }
  const db = await RecordStore.open(name, [...DEVICES, PRIMARY]);
  const saved = await db.get("world");
  const result = saved ? await afterReload(db, saved) : await firstVisit(db);
  window.companion = result;
  const status = document.getElementById("status");
  status.textContent = saved
    ? `reloaded: every device rebuilt from its IndexedDB records (${Object.values(result.loaded).join(", ")}); reload again to go on`
    : "first visit: state written to IndexedDB; reload the page";
  status.className = "ok";
}

main().catch((e) => { window.companion = { error: showFailure(e) }; });
