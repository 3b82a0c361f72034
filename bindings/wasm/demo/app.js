// What the demo pages share: the untrusted relay (envelope queues, device lists, bundles) and a
// device as a page's app holds it. The wasm module does no I/O: these move the bytes and keep
// the state; the wasm decides.
export const text = new TextEncoder();
export const utf8 = new TextDecoder();
export const hex = (b) => Array.from(b.slice(0, 6), (x) => x.toString(16).padStart(2, "0")).join("") + "…";
export const addrKey = (a) => hex(a.account) + "#" + a.device;

/** The untrusted server: envelope queues per device, device lists and prekey bundles. */
export class Relay {
  constructor() { this.queues = new Map(); this.bundles = new Map(); this.lists = new Map(); this.delivered = 0; }
  queue(a) { const k = addrKey(a); if (!this.queues.has(k)) this.queues.set(k, []); return this.queues.get(k); }
  publishBundle(device) { this.bundles.set(addrKey(device.address()), device.prekeyBundle()); }
  publishList(primary) { this.lists.set(hex(primary.accountKey()), { account: primary.accountKey(), list: primary.deviceList() }); }
  list(account) { return this.lists.get(hex(account)); }
  /** What the relay holds, structured-cloneable (a real relay keeps it on its own disk). */
  snapshot() { return { queues: this.queues, bundles: this.bundles, lists: this.lists }; }
  static from(s) { return Object.assign(new Relay(), { queues: s.queues, bundles: s.bundles, lists: s.lists }); }
  ship(outbox) {
    for (const e of outbox.envelopes) this.queue(e.to).push(e.bytes);
    if (outbox.group) for (const to of outbox.group.recipients) this.queue(to).push(outbox.group.bytes);
    return outbox;
  }
}

/** A device as the page's app holds it: the wasm Device, a name and its panel. */
export class App {
  constructor(name, panel, device, relay) {
    // `sent`: the bodies of sent messages by their send id, as an app stores them for retries.
    Object.assign(this, { name, panel, device, relay, read: [], sent: new Map() });
    relay.publishBundle(device);
  }
  /** Sends a 1:1 message and keeps its body under the outbox's send id. */
  say(to, message) {
    const outbox = this.send(() => this.device.send(Date.now(), to, text.encode(message)));
    this.sent.set(outbox.sendId, text.encode(message));
    return outbox;
  }
  show(kind, line) {
    const li = document.createElement("li");
    li.className = kind; li.textContent = line; li.dataset.kind = kind;
    document.getElementById(this.panel).appendChild(li);
    if (kind !== "system") this.read.push({ kind, text: line });
  }
  follow(account) { const { list } = this.relay.list(account); return this.device.updateDeviceList(Date.now(), account, list); }
  /** Runs a send, fetching lists and bundles as the device asks. */
  send(op) {
    for (let i = 0; i < 4; i++) {
      const out = op();
      if (out.kind === "ready") return this.relay.ship(out.outbox);
      if (out.kind === "needBundles")
        this.device.startSessions(Date.now(), out.devices.map((d) => ({ device: d, bundle: this.relay.bundles.get(addrKey(d)) })));
      else for (const a of out.accounts) this.follow(a);
    }
    throw new Error("send did not become ready");
  }
  /** Reads the queued envelopes; a group message that overtook its sender key waits. */
  pump(names) {
    const q = this.relay.queue(this.device.address());
    const keep = [];
    for (const env of q.splice(0)) {
      let r;
      try { r = this.device.receive(Date.now(), env); }
      catch (e) { if (e.code === "fanout.sender_key_missing") { keep.push(env); continue; } throw e; }
      this.relay.delivered++;
      const who = names(r.sender);
      if (r.kind === "direct") this.show("direct", `${who}: ${utf8.decode(r.body)}`);
      else if (r.kind === "ownCopy") this.show("own", `me (${who}) → ${names({ account: r.sentTo })}: ${utf8.decode(r.body)}`);
      else if (r.kind === "group") this.show("group", `[group] ${who}: ${utf8.decode(r.body)}`);
      else if (r.kind === "historyOffer") this.historyOffer = r.offer;
      else if (r.kind === "retryRequest") {
        // Another device could not read a message from here: send it again, to it alone.
        this.send(() => this.device.answerRetry(Date.now(), r.request, this.sent.get(r.sendId)));
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
