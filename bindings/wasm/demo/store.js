// A device's records in IndexedDB, as a web app keeps them: each `Changes` a device yields
// (`takeChanges()`) is written in one transaction, so a reload or a closed tab finds either
// all of an operation's records or none; `Device.fromRecords(await store.load(name))` rebuilds
// the device. Keys are the records' own bytes (IndexedDB orders binary keys as the library
// does). One object store per device, plus `meta` for what is not a device's record, and
// the epoch and tag of each device's last `Changes` written (`head/<name>`): changes that do
// not start from them are refused (`StaleCopyError`), since a second tab's copy of the device,
// or a copy that went on after a failed write, would leave records that never existed
// together.
//
// The demo stores the records' values as they are. They are secret (keys, chains): an app
// seals each value before it writes it (`sealState`, under a key kept apart from IndexedDB,
// as `sealState`'s documentation says).

/** Resolves when `request` succeeds. */
const done = (request) => new Promise((ok, fail) => {
  request.onsuccess = () => ok(request.result);
  request.onerror = () => fail(request.error);
});

/** Resolves when `tx` commits (rejects if it aborts: then nothing of it was written). */
const committed = (tx) => new Promise((ok, fail) => {
  tx.oncomplete = () => ok();
  tx.onabort = () => fail(tx.error || new Error("transaction aborted"));
  tx.onerror = () => fail(tx.error);
});

/** Two byte arrays (or nulls) hold the same bytes. */
const sameBytes = (a, b) =>
  a === b || (a != null && b != null && a.length === b.length && a.every((x, i) => x === b[i]));

/**
 * Changes that do not start from the stored state: another copy of the state (a second tab)
 * wrote since this one loaded, or a write of this copy failed and it went on. Nothing was
 * written; load the state again and redo.
 */
export class StaleCopyError extends Error {
  constructor(name, head, changes) {
    super(`${name}: the changes start at epoch ${changes.baseEpoch}, the store holds epoch ` +
      `${head.epoch}${head.epoch === changes.baseEpoch ? " of another copy" : ""}: load it again`);
    this.name = "StaleCopyError";
  }
}

export class RecordStore {
  constructor(db) { this.db = db; }

  /**
   * Opens (or creates) database `name` with one object store per device name (and the
   * primary's), and `meta`. Version 2 added the primary's store; an upgrade adds what is
   * missing.
   */
  static async open(name, devices) {
    const request = indexedDB.open(name, 2);
    request.onupgradeneeded = () => {
      for (const store of [...devices, "meta"]) {
        if (!request.result.objectStoreNames.contains(store)) request.result.createObjectStore(store);
      }
    };
    return new RecordStore(await done(request));
  }

  /**
   * Writes one `Changes` of device (or primary) `name` in one transaction, with its epoch and
   * tag as the head the next changes must start from; throws `StaleCopyError`, writing
   * nothing, if these do not start from the stored head. Changes without a base (a new or
   * restored state) replace whatever is stored; changes that replace all with a base (a
   * state loaded from bytes) are checked like any other where a head is stored.
   */
  async apply(name, changes) {
    // A device's unit and a primary's go to their own stores: the other's would replace it.
    if ((name === "primary") !== (changes.role === "primary")) throw new Error(`a ${changes.role} unit is not ${name}'s`);
    const tx = this.db.transaction([name, "meta"], "readwrite");
    const store = tx.objectStore(name);
    const meta = tx.objectStore("meta");
    const key = `head/${name}`;
    const head = await done(meta.get(key));
    // PROTOCOL.md 19: changes with a base start from the stored head; changes that replace
    // all may also go where nothing is stored (a device loaded from bytes, stored anew).
    const fits = head === undefined
      ? changes.replacesAll
      : head.epoch === changes.baseEpoch && sameBytes(head.tag, changes.baseTag);
    if (changes.baseEpoch !== null && !fits) {
      tx.abort();
      await committed(tx).catch(() => {});
      throw new StaleCopyError(name, head, changes);
    }
    if (changes.replacesAll) store.clear();
    for (const { key, value } of changes.records) {
      if (value === null) store.delete(key); else store.put(value, key);
    }
    meta.put({ epoch: changes.epoch, tag: changes.tag }, key);
    await committed(tx);
  }

  /** Every record of `name`, as `Device.fromRecords` and `Primary.fromRecords` take them. */
  async load(name) {
    const tx = this.db.transaction(name, "readonly");
    const store = tx.objectStore(name);
    const [keys, values] = await Promise.all([done(store.getAllKeys()), done(store.getAll())]);
    return keys.map((key, i) => ({ key: new Uint8Array(key), value: values[i] }));
  }

  /** A value of `meta` (structured-cloneable), or undefined. */
  async get(key) { return done(this.db.transaction("meta", "readonly").objectStore("meta").get(key)); }

  /** Writes values of `meta` in one transaction. */
  async put(entries) {
    const tx = this.db.transaction("meta", "readwrite");
    for (const [key, value] of Object.entries(entries)) tx.objectStore("meta").put(value, key);
    await committed(tx);
  }
}
