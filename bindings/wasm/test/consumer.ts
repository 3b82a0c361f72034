// Type-checked (never run) against the packed npm package, as an app imports it: CI packs
// bindings/wasm/pkg, installs the tarball here and runs `tsc -p tsconfig.json`. A declaration
// that drifts from what an app writes (a renamed method, a union that lost a case, a wrong
// field type) fails the check.
import init, {
  createAccount, Call, CallKeyMessage, ChangedRecord, Device, HistoryOffer, HistoryOpener,
  HistorySealer, LinkingCompanion, Primary, PublishedPreKeys, Receiving, RetryRequest, ServedLists,
  OpenedState, SrtpKeys, askAgain, envelopeId, envelopeIds, openState, sealState,
  type AccountOptions, type Address, type BundleFor, type CallConfig, type CallKind, type Changes,
  type CompanionOptions, type DeviceConfig, type Inbound, type ListCoverage, type ListLimits, type Outgoing,
  type Outbox, type PoolCounts, type PrekeyUpload, type PrimaryPolicy, type Received,
  type KeptCall, type ReceiveStep, type RestoredCall, type RestoredPrimary, type SealedHistory, type StoredRecord,
  type RatchetryError, type WithheldDevice,
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
      return `retry ${r.sendId} attempt ${r.request.attempt} reason ${r.reason}`;
    case "callKey":
      return `call epoch ${r.message.epoch} (${r.message.kind})`;
    case "withheld":
      return `withheld, reason ${r.reason}`;
    case "historyOffer":
      return `history with ${r.groups.length} group(s)`;
    default:
      return r.kind;
  }
}

/**
 * Receives one envelope, stepped: fetches and applies each list a step names (the relay may
 * have none), and says what the app does with the envelope. `stored` asks the app's message
 * store about an id: the envelope's message is stored if it is under any of `envelopeIds`.
 */
async function receiveStepped(
  device: Device,
  envelope: Uint8Array,
  fetchList: (account: Uint8Array) => Promise<Uint8Array | undefined>,
  stored: (envelopeId: Uint8Array) => boolean,
): Promise<string> {
  const receiving = new Receiving();
  const known = envelopeIds(envelope).some(stored);
  for (;;) {
    const step: ReceiveStep = receiving.step(device, Date.now(), envelope, known);
    if (step.kind === "needDeviceList") {
      const list = await fetchList(step.account);
      if (list !== undefined) device.updateDeviceList(Date.now(), step.account, list);
      continue;
    }
    const inbound: Inbound = step.inbound;
    switch (inbound.kind) {
      case "read":
        return describe(inbound.message);
      case "duplicate":
        return `ack ${inbound.envelopeId.length}`;
      case "hold": {
        // Once the sender key never came: ask, unless the store holds the message.
        const asked: Inbound = askAgain(device, Date.now(), envelope, 3, known);
        return `hold for ${inbound.from.device}, then ${asked.kind}`;
      }
      case "askAgain":
        return `ask ${inbound.to.device} with ${inbound.request.length} bytes`;
      case "askLater":
        return `keep until ${inbound.at}, then receive again`;
      case "awaitList":
        return `await ${inbound.account.length}`;
      case "awaitMembers":
        return `await members of ${inbound.group.length}`;
      case "dropped":
        return `dropped ${inbound.code}: ${inbound.message}${inbound.code === "fanout.identity_mismatch" && inbound.device ? ` (warn: device ${inbound.device.device})` : ""}`;
      case "other":
        return "ack";
      default: {
        const unreachable: never = inbound;
        throw new Error(`unknown inbound ${String(unreachable)}`);
      }
    }
  }
}

/** The message id an app keys its conversation on, and whether it replaces one it could not read. */
function messageKey(r: Received): [Uint8Array, Uint8Array | null] | null {
  switch (r.kind) {
    case "direct":
    case "ownCopy":
    case "group":
      return [r.id, r.resent];
    default:
      return null;
  }
}

/** Calls: a callee's side, and the caller's answer to a retry for a key message. */
function callee(device: Device, r: Received, held: Call | undefined, config: CallConfig, kept?: KeptCall): Call | undefined {
  if (r.kind !== "callKey") return held;
  const message: CallKeyMessage = r.message;
  // A call the app kept (manager and epoch) but holds no state of: learned from that manager only.
  if (held === undefined) return Call.fromKeyMessage(device.address(), r.sender, message, config, kept);
  try {
    held.apply(r.sender, message);
  } catch (e) {
    if ((e as RatchetryError).code === "sync.call_key_ahead") held.catchUp(r.sender, message);
    else throw e;
  }
  return held;
}

function caller(device: Device, to: Address[], calls: Map<number, Call>): Outbox | undefined {
  const kind: CallKind = "group";
  const call = Call.start(kind, device.address(), to, { maxGroupParticipants: 8 });
  const out = device.sendCallKey(Date.now(), call.participants, call.keyMessage());
  if (out.kind !== "ready") return undefined;
  if (out.outbox.sendId !== undefined) calls.set(out.outbox.sendId, call);
  const joined: CallKeyMessage = call.join(to[0]!);
  const removed: CallKeyMessage = call.remove(to[0]!);
  const keys: SrtpKeys = call.srtpKeys(device.address());
  const media: [Uint8Array, Uint8Array] = [keys.masterKey(), keys.masterSalt()];
  const saved: Uint8Array = call.toBytes();
  const restored: RestoredCall = Call.restore(saved, call.epoch, { maxRoomParticipants: 10 });
  const again: CallKeyMessage = CallKeyMessage.fromBytes(joined.toBytes());
  const id: Uint8Array = restored.call.id;
  const epochs: number[] = [again.epoch, removed.epoch, media[0].length, id.length];
  const manager: Address = call.manager;
  void epochs; void manager; void restored.fromBackup;
  return out.outbox;
}

function answerCall(device: Device, r: Received, calls: Map<number, Call>): Outgoing | undefined {
  if (r.kind !== "retryRequest") return undefined;
  const call = calls.get(r.sendId);
  const kept: RetryRequest = RetryRequest.fromBytes(r.request.toBytes());
  return call ? device.answerCallKeyRetry(Date.now(), kept, call) : undefined;
}

/** One-time prekeys: publish the upload, hand out bundles, replenish when low. */
function prekeys(device: Device, upload: PrekeyUpload): Uint8Array[] {
  const bundles: Uint8Array[] = upload.prekeyIds.map((id, i) => device.prekeyBundle(id, upload.kemPrekeyIds[i]));
  bundles.push(device.prekeyBundle());
  if (device.oneTimePrekeysRemaining() < 10 || device.oneTimeKemPrekeysRemaining() < 10) {
    const more: PrekeyUpload = device.generateOneTimePrekeys(Date.now(), 50);
    bundles.push(more.bytes);
  }
  // Half the default budgets (every account's sessions share them), or weekly.
  const week = 7 * 24 * 60 * 60 * 1000;
  if (device.lastResortUses() > 5000 || device.signedPrekeySessions() > 50_000 || Date.now() - device.signedPrekeyCreatedAt() > week) {
    device.rotateSignedPrekey(Date.now());
  }
  return bundles;
}

/** Groups, accounts and delivery failures. */
function housekeeping(device: Device, outbox: Outbox, group: Uint8Array, gone: Uint8Array): number {
  const coverage: ListCoverage[] = outbox.coverage;
  const messageId: Uint8Array | undefined = outbox.messageId;
  if (outbox.sendId !== undefined) device.notDelivered(outbox.sendId, outbox.envelopes.map((e) => e.to));
  const members: Uint8Array[] | undefined = device.groupMembers(group);
  const groups: Uint8Array[] = device.groups();
  const accounts: Uint8Array[] = device.accounts();
  const classical: Address[] = device.classicalSessions();
  const withholding: WithheldDevice[] = [{ device: device.address(), reason: 1 }, { device: device.address() }];
  const withheld: Outgoing = device.sendGroupWithholding(Date.now(), group, new Uint8Array(0), withholding);
  const session: boolean = device.hasSession(device.address());
  device.forgetGroup(group);
  device.forgetAccount(gone);
  const id: Uint8Array = envelopeId(outbox.envelopes[0]?.bytes ?? new Uint8Array());
  return coverage.length + (messageId?.length ?? 0) + (members?.length ?? 0) + groups.length +
    accounts.length + classical.length + (withheld.kind === "ready" ? 1 : 0) + Number(session) + id.length;
}

/** Writes one operation's records (the app's storage, here a Map). */
function apply(store: Map<string, Uint8Array>, changes: Changes): void {
  // A unit without a base replaces all (a new or restored state); any other starts from the
  // epoch and tag stored, if any.
  const base: number | null = changes.baseEpoch;
  const baseTag: Uint8Array | null = changes.baseTag;
  const tag: Uint8Array = changes.tag;
  if ((base === null && !changes.replacesAll) || (base === null) !== (baseTag === null) || tag.length !== 16) {
    throw new Error("a unit without a base replaces all, and every unit carries a 16-byte tag");
  }
  if (changes.replacesAll) store.clear();
  const changed: ChangedRecord[] = changes.records;
  const records: StoredRecord[] = changed;
  for (const { key, value } of records) {
    const k = Array.from(key).join(",");
    if (value === null) store.delete(k);
    else store.set(k, value);
  }
}

/** A relay in JavaScript: lists verified when published, each batch checked, bundles from pools. */
class Relay {
  readonly lists: ServedLists;
  readonly prekeys = new Map<string, PublishedPreKeys>();
  constructor(limits?: ListLimits) {
    this.lists = new ServedLists(limits);
  }
  publish(primary: Primary): number {
    return this.lists.publish(primary.accountKey(), primary.deviceList());
  }
  upload(device: Device, upload: PrekeyUpload): PoolCounts {
    const keys = new PublishedPreKeys(Date.now(), device.address(), device.prekeyBundle(), this.lists);
    keys.add(upload.bytes);
    this.prekeys.set(String(device.address().device), keys);
    return keys.remaining();
  }
  bundle(device: Address): Uint8Array {
    const keys = this.prekeys.get(String(device.device));
    if (keys === undefined) throw new Error("no prekeys published");
    const stored: [Address, Uint8Array, Uint8Array, Uint8Array[]] = [keys.address(), keys.base(), keys.pooled(), keys.accepted()];
    const rebuilt: PublishedPreKeys = PublishedPreKeys.fromParts(Date.now(), ...stored, this.lists);
    rebuilt.replaceBase(Date.now(), stored[1], this.lists);
    return keys.takeBundle();
  }
  list(account: Uint8Array): Uint8Array {
    const list: Uint8Array | undefined = this.lists.list(account);
    if (list === undefined) throw new Error("no list served");
    return list;
  }
  /** Accepts a batch if it covers the lists served (throws `server.*` otherwise). */
  accept(sender: Address, outbox: Outbox): Outbox {
    const recipients: Address[] = outbox.recipients;
    const coverage: ListCoverage[] = outbox.coverage;
    this.lists.checkCoverage(Date.now(), sender, recipients, coverage);
    return outbox;
  }
}

/** History sync on the companion's side: the offer is a class, kept as bytes if need be. */
function openHistory(r: Received, chunks: Uint8Array[]): Uint8Array[] {
  if (r.kind !== "historyOffer") return [];
  const offer: HistoryOffer = r.offer;
  const kept: Uint8Array = offer.toBytes();
  const opener = new HistoryOpener(HistoryOffer.fromBytes(kept));
  const opened = chunks.map((c) => opener.push(c));
  const done: boolean = opener.chunksOpened === offer.chunks;
  if (done) opener.finish();
  const appData: Uint8Array = offer.appData();
  const progress: number = offer.chunks + offer.totalLength + appData.length;
  void progress;
  return opened;
}

/** The primary's records, written per operation and read back after a restart. */
function restartPrimary(primary: Primary, store: Map<string, Uint8Array>): Primary {
  const changes: Changes = primary.takeChanges();
  const role: "device" | "primary" = changes.role;
  if (role !== "primary") throw new Error("a primary's unit goes to the primary's store");
  apply(store, changes);
  const loaded: StoredRecord[] = Array.from(store, ([k, value]) => ({ key: new Uint8Array(k.split(",").map(Number)), value }));
  const restored: RestoredPrimary = Primary.fromRecords(loaded, changes.epoch);
  if (restored.stale) restored.primary.resync(Date.now(), primary.deviceList());
  return restored.primary;
}

export async function app(): Promise<string[]> {
  await init();
  const config: DeviceConfig = {
    session: { maxSkippedKeys: 500 },
    prekeys: { maxOneTimePrekeys: 200, maxOneTimeKemPrekeys: 50 },
    retryWindowMs: 24 * 3600 * 1000,
  };
  const policy: PrimaryPolicy = { account: { maxCompanions: 2 }, linkInvitationValidityMs: 60_000 };
  const options: AccountOptions = { config, policy, oneTimePrekeys: 30 };
  const { primary, device, upload } = createAccount(Date.now(), options);
  const invitation: Uint8Array = primary.invite(Date.now());
  const companion = new LinkingCompanion(invitation);
  const companionOptions: CompanionOptions = { config: { lists: { maxCompanions: 4 } } };
  const linked = companion.complete(Date.now(), primary.approve(Date.now(), companion.request()), companionOptions);
  const published: Uint8Array[] = [...prekeys(device, upload), ...prekeys(linked.device, linked.upload)];
  const id: number = primary.confirm(linked.confirmation);
  const relay = new Relay({ maxCompanions: 8 });
  relay.publish(restartPrimary(primary, new Map()));
  const pool: PoolCounts = relay.upload(linked.device, linked.upload);
  const sealer = new HistorySealer();
  const sealed: SealedHistory = sealer.finish();
  const withData: HistoryOffer = sealed.offer.withAppData(new Uint8Array([1, 2, 3]));
  const offerOut = device.sendHistoryOffer(Date.now(), id, withData);
  if (offerOut.kind === "ready") relay.accept(device.address(), offerOut.outbox);
  const restored: Primary = Primary.restore(primary.toBytes(), primary.stateEpoch());
  const primaryBackup: Primary = Primary.restoreFromBackup(primary.toBytes());
  void primaryBackup;
  device.rotateSignedPrekey(Date.now());
  const stale: Address[] = device.sessionsWithoutPqRatchet();
  const epochs: (number | undefined)[] = stale.map((d) => device.pqRatchetEpoch(d));
  const store = new Map<string, Uint8Array>();
  apply(store, linked.device.takeChanges());
  const outbox = relay.accept(device.address(), sendAll(
    device,
    () => device.send(Date.now(), restored.accountKey(), new Uint8Array([1])),
    (d) => relay.bundle(d),
    (a) => relay.list(a),
  ));
  const shown: string[] = [];
  const calls = new Map<number, Call>();
  let held: Call | undefined;
  const callOutbox = caller(device, [linked.device.address()], calls);
  for (const e of outbox.envelopes) {
    try {
      const r = linked.device.receive(Date.now(), e.bytes);
      held = callee(linked.device, r, held, { maxGroupParticipants: 8 });
      const key = messageKey(r);
      if (key) shown.push(`${key[0].length} ${key[1] === null ? "" : "(resent)"}`);
      const answer = answerCall(device, r, calls);
      if (answer) shown.push(answer.kind);
      shown.push(describe(r), String(openHistory(r, sealed.chunks).length));
    } catch (err) {
      const e2 = err as RatchetryError;
      shown.push(`${e2.code} (device ${id})`);
      // What the error names, acted on by its code (the guide's table).
      if (e2.code === "fanout.unknown_account" && e2.account) shown.push(`fetch ${e2.account.length}`);
      if (e2.code === "fanout.identity_mismatch" && e2.device) shown.push(`warn ${e2.device.device}`);
      if (e2.code === "fanout.group_unconfirmed" && e2.group) shown.push(`set ${e2.group.length}`);
      if (e2.code === "fanout.duplicate" && e2.envelopeId) shown.push(`ack ${e2.envelopeId.length}`);
      if (e2.number !== undefined) shown.push(`number ${e2.number.toFixed(0)}`);
    }
  }
  const fromBackup: Device[] = [
    Device.restoreFromBackup(device.toBytes(), Date.now()),
    Device.fromBackupRecords(linked.device.takeChanges().records, Date.now()),
  ];
  const flags: boolean[] = [device.hasChanges(), primary.hasChanges(), primary.isConfirmed(id), ...fromBackup.map((d) => d.awaitingOwnList())];
  shown.push(flags.join());
  const rebuilt: Device = Device.fromRecords(
    Array.from(store, ([k, value]) => ({ key: new Uint8Array(k.split(",").map(Number)), value })),
  );
  shown.push(String(rebuilt.stateEpoch()), ...epochs.map(String), String(published.length));
  shown.push(String(housekeeping(device, outbox, new Uint8Array(32), restored.accountKey())));
  shown.push(String(callOutbox?.envelopes.length), String(held?.epoch), String(pool.oneTime + pool.kem));
  const envelope = outbox.envelopes[0]?.bytes ?? new Uint8Array();
  shown.push(await receiveStepped(linked.device, envelope, async (a) => relay.lists.list(a), (id) => store.has(id.join(","))));
  // State at rest under the page's storage key, bound to its slot and its epoch.
  const storageKey: Uint8Array = crypto.getRandomValues(new Uint8Array(32));
  const slot = new TextEncoder().encode("device");
  const atRest: Uint8Array = sealState(storageKey, slot, device.stateEpoch(), device.toBytes());
  const opened: OpenedState = openState(storageKey, atRest, slot, device.stateEpoch());
  const applied: PrimaryPolicy = primary.policy();
  shown.push(String(opened.state().length), String(opened.sequence), String(applied.account?.maxCompanions));
  return shown;
}
