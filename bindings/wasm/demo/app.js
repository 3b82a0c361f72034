// What the demo pages share: the untrusted relay (envelope queues, device lists, bundles) and a
// device as a page's app holds it. The wasm module does no I/O: these move the bytes and keep
// the state; the wasm decides.
import { PublishedPreKeys, ServedLists } from "../pkg/ratchetry_wasm.js";

export const text = new TextEncoder();
export const utf8 = new TextDecoder();
export const hex = (b) => Array.from(b.slice(0, 6), (x) => x.toString(16).padStart(2, "0")).join("") + "…";
export const addrKey = (a) => hex(a.account) + "#" + a.device;

/**
 * The untrusted server: envelope queues per device, device lists and prekey bundles. It runs
 * the library's relay helpers as a server would: every list is verified when published
 * (`ServedLists`), every batch passes the coverage check before it is queued (a sender that
 * holds an older list is told to fetch it), and a bundle fetch takes one one-time prekey of
 * each kind from the device's `PublishedPreKeys` while they last.
 */
export class Relay {
  constructor() {
    Object.assign(this, { queues: new Map(), served: new ServedLists(), accounts: new Map(), prekeys: new Map(), delivered: 0, checked: 0, oneTime: 0 });
  }
  queue(a) { const k = addrKey(a); if (!this.queues.has(k)) this.queues.set(k, []); return this.queues.get(k); }
  /** A device's upload: its base bundle and, if given, its first one-time prekeys (`upload`). */
  publishPrekeys(device, upload) {
    const keys = new PublishedPreKeys(Date.now(), device.address(), device.prekeyBundle(), this.served);
    if (upload) keys.add(upload.bytes);
    this.prekeys.set(addrKey(device.address()), keys);
  }
  /** A bundle fetch: each one-time key goes into one bundle only. */
  bundle(a) {
    const keys = this.prekeys.get(addrKey(a));
    if (keys.remaining().oneTime > 0) this.oneTime++;
    return keys.takeBundle();
  }
  publishList(primary) {
    this.served.publish(primary.accountKey(), primary.deviceList());
    this.accounts.set(hex(primary.accountKey()), primary.accountKey());
  }
  list(account) { return this.served.list(account); }
  /** What the relay holds, structured-cloneable (a real relay keeps it on its own disk). */
  snapshot() {
    return {
      queues: this.queues,
      lists: [...this.accounts.values()].map((account) => ({ account, list: this.served.list(account) })),
      prekeys: [...this.prekeys.values()].map((k) => ({ address: k.address(), base: k.base(), pooled: k.pooled(), accepted: k.accepted() })),
    };
  }
  /** The relay restarted from its snapshot: lists verified again, prekeys rebuilt from their parts. */
  static from(s) {
    const relay = new Relay();
    relay.queues = s.queues;
    for (const { account, list } of s.lists) {
      relay.served.publish(account, list);
      relay.accounts.set(hex(account), account);
    }
    for (const k of s.prekeys) relay.prekeys.set(addrKey(k.address), PublishedPreKeys.fromParts(Date.now(), k.address, k.base, k.pooled, k.accepted, relay.served));
    return relay;
  }
  /** Accepts a batch from `sender` if it covers the lists served, and queues its envelopes. */
  ship(sender, outbox) {
    this.served.checkCoverage(Date.now(), sender, outbox.recipients, outbox.coverage);
    this.checked++;
    for (const e of outbox.envelopes) this.queue(e.to).push(e.bytes);
    if (outbox.group) for (const to of outbox.group.recipients) this.queue(to).push(outbox.group.bytes);
    return outbox;
  }
}

/**
 * A device as the page's app holds it: the wasm Device, a name and its panel. `persist` writes
 * what the device changed (`takeChanges()`) where the app keeps it; the app awaits it before it
 * acts on an operation: before shipping an outbox, acknowledging an envelope, showing what it
 * read or answering a retry. Acting first and crashing before the write would leave the world
 * ahead of the stored device: a message shown but its keys not stored, a chain's message key
 * used again by the reloaded device.
 */
export class App {
  constructor(name, panel, device, relay, persist = async () => {}) {
    // `sent`: the bodies of sent messages by their send id, as an app stores them for retries.
    Object.assign(this, { name, panel, device, relay, persist, read: [], sent: new Map() });
  }
  /** Sends a 1:1 message and keeps its body under the outbox's send id. */
  async say(to, message) {
    const outbox = await this.send(() => this.device.send(Date.now(), to, text.encode(message)));
    this.sent.set(outbox.sendId, text.encode(message));
    return outbox;
  }
  show(kind, line) {
    const li = document.createElement("li");
    li.className = kind; li.textContent = line; li.dataset.kind = kind;
    document.getElementById(this.panel).appendChild(li);
    if (kind !== "system") this.read.push({ kind, text: line });
  }
  follow(account) { return this.device.updateDeviceList(Date.now(), account, this.relay.list(account)); }
  /** Runs a send, fetching lists and bundles as the device asks; persists, then ships. */
  async send(op) {
    for (let i = 0; i < 4; i++) {
      const out = op();
      if (out.kind === "ready") {
        await this.persist();
        return this.relay.ship(this.device.address(), out.outbox);
      }
      if (out.kind === "needBundles")
        this.device.startSessions(Date.now(), out.devices.map((d) => ({ device: d, bundle: this.relay.bundle(d) })));
      else for (const a of out.accounts) this.follow(a);
    }
    throw new Error("send did not become ready");
  }
  /**
   * Reads the queued envelopes, each persisted before it is acknowledged (taken off the
   * queue) and acted on; a group message that overtook its sender key waits.
   */
  async pump(names) {
    const q = this.relay.queue(this.device.address());
    const keep = [];
    while (q.length > 0) {
      const env = q[0];
      let r;
      try { r = this.device.receive(Date.now(), env); }
      catch (e) { if (e.code === "fanout.sender_key_missing") { keep.push(q.shift()); continue; } throw e; }
      await this.persist();
      q.shift();
      this.relay.delivered++;
      const who = names(r.sender);
      if (r.kind === "direct") this.show("direct", `${who}: ${utf8.decode(r.body)}`);
      else if (r.kind === "ownCopy") this.show("own", `me (${who}) → ${names({ account: r.sentTo })}: ${utf8.decode(r.body)}`);
      else if (r.kind === "group") this.show("group", `[group] ${who}: ${utf8.decode(r.body)}`);
      else if (r.kind === "historyOffer") this.historyOffer = r.offer;
      else if (r.kind === "retryRequest") {
        // Another device could not read a message from here: send it again, to it alone.
        await this.send(() => this.device.answerRetry(Date.now(), r.request, this.sent.get(r.sendId)));
        this.show("system", `resent message #${r.sendId} to ${who} (attempt ${r.request.attempt})`);
      }
    }
    q.push(...keep);
  }
}

/** Shows a page's failure in its status line; returns the text for the browser test. */
export function showFailure(e) {
  const status = document.getElementById("status");
  status.textContent = `failed: ${e.code || ""} ${e.message}`;
  status.className = "failed";
  return `${e.code || ""} ${e.message}`;
}
