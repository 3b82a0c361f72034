// Type-checked (never run) against the packed npm package, as an app imports it: CI packs
// bindings/wasm/pkg, installs the tarball here and runs `tsc -p tsconfig.json`. A declaration
// that drifts from what an app writes (a renamed method, a union that lost a case, a wrong
// field type) fails the check.
import init, {
  createAccount, Device, LinkingCompanion, Primary,
  type Address, type BundleFor, type Changes, type Outgoing, type Outbox, type Received,
  type StoredRecord, type RatchetryError,
} from "ratchetry-wasm";

/** Runs a send to completion, fetching what it asks for (the app's relay calls are stubs). */
function sendAll(
  device: Device,
  op: () => Outgoing,
  bundle: (d: Address) => Uint8Array,
  list: (account: Uint8Array) => Uint8Array,
): Outbox {
  for (;;) {
    const out = op();
    switch (out.kind) {
      case "ready":
        return out.outbox;
      case "needBundles": {
        const bundles: BundleFor[] = out.devices.map((d) => ({ device: d, bundle: bundle(d) }));
        device.startSessions(Date.now(), bundles);
        break;
      }
      case "needDeviceLists":
        for (const a of out.accounts) device.updateDeviceList(Date.now(), a, list(a));
        break;
      default: {
        const unreachable: never = out;
        throw new Error(`unknown outcome ${String(unreachable)}`);
      }
    }
  }
}

/** What an app shows for a received envelope. */
function describe(r: Received): string {
  switch (r.kind) {
    case "direct":
    case "group":
      return `${r.sender.device}: ${new TextDecoder().decode(r.body)}`;
    case "ownCopy":
      return `me → ${r.sentTo.length}`;
    case "retryRequest":
      return `retry ${r.sendId} attempt ${r.request.attempt}`;
    default:
      return r.kind;
  }
}

/** Writes one operation's records (the app's storage, here a Map). */
function apply(store: Map<string, Uint8Array>, changes: Changes): void {
  if (changes.replacesAll) store.clear();
  const records: StoredRecord[] = changes.records;
  for (const { key, value } of records) {
    const k = Array.from(key).join(",");
    if (value === null) store.delete(k);
    else store.set(k, value);
  }
}

export async function app(): Promise<string[]> {
  await init();
  const { primary, device } = createAccount(Date.now());
  const invitation: Uint8Array = primary.invite(Date.now());
  const companion = new LinkingCompanion(invitation);
  const linked = companion.complete(Date.now(), primary.approve(Date.now(), companion.request()));
  const id: number = primary.confirm(linked.confirmation);
  const restored: Primary = Primary.restore(primary.toBytes(), primary.stateEpoch());
  device.enablePqRatchet(Date.now());
  device.rotateSignedPrekey(Date.now());
  const stale: Address[] = device.sessionsWithoutPqRatchet();
  const epochs: (number | undefined)[] = stale.map((d) => device.pqRatchetEpoch(d));
  const store = new Map<string, Uint8Array>();
  apply(store, linked.device.takeChanges());
  const outbox = sendAll(
    device,
    () => device.send(Date.now(), restored.accountKey(), new Uint8Array([1])),
    () => device.prekeyBundle(),
    () => primary.deviceList(),
  );
  const shown: string[] = [];
  for (const e of outbox.envelopes) {
    try {
      shown.push(describe(linked.device.receive(Date.now(), e.bytes)));
    } catch (err) {
      const e2 = err as RatchetryError;
      shown.push(`${e2.code} (device ${id})`);
    }
  }
  const rebuilt: Device = Device.fromRecords(
    Array.from(store, ([k, value]) => ({ key: new Uint8Array(k.split(",").map(Number)), value })),
  );
  shown.push(String(rebuilt.stateEpoch()), ...epochs.map(String));
  return shown;
}
