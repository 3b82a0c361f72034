// Times the same operations as bindings/uniffi/examples/rust_timing.rs and
// bindings/uniffi/tests/timing.py: a 1:1 message (send to an account with one device, then
// that device receives it), a 1 KiB send and its receive apart, and a group message (3 accounts
// of one device, key already distributed: send, then one member receives it). After 500
// warm-up messages (so that the engine's optimizing tier compiled the hot code) each op runs in
// batches of 100 and the fastest batch counts. Results in microseconds per message.
import init, { createAccount } from "../pkg/ratchetry_wasm.js";

const BATCHES = Number(new URLSearchParams(location.search).get("batches") || 20);
const BATCH = 100;

function ready(out) { if (out.kind !== "ready") throw new Error(out.kind); return out.outbox; }

// The fastest of BATCHES batches of `op`, in microseconds per run.
function best(op) {
  let fastest = Infinity;
  for (let k = 0; k < BATCHES; k++) {
    const t = performance.now();
    for (let i = 0; i < BATCH; i++) op();
    fastest = Math.min(fastest, ((performance.now() - t) * 1000) / BATCH);
  }
  return fastest;
}

async function main() {
  await init();
  const now = Date.now();
  const [a, b, c] = [createAccount(now), createAccount(now), createAccount(now)];
  const all = [a, b, c];
  for (const x of all) for (const y of all) x.device.updateDeviceList(now, y.primary.accountKey(), y.primary.deviceList());
  for (const x of all) for (const y of all) if (x !== y) x.device.startSessions(now, [{ device: y.device.address(), bundle: y.device.prekeyBundle() }]);
  const body = new TextEncoder().encode("a message of about forty bytes, typical");
  const keyA = a.primary.accountKey();
  const keyB = b.primary.accountKey();
  for (let i = 0; i < 500; i++) {
    b.device.receive(now, ready(a.device.send(now, keyB, body)).envelopes[0].bytes);
    a.device.receive(now, ready(b.device.send(now, keyA, body)).envelopes[0].bytes);
  }
  const direct = best(() => b.device.receive(now, ready(a.device.send(now, keyB, body)).envelopes[0].bytes));

  const kib = new Uint8Array(1024).fill(0x41);
  let send1k = Infinity, receive1k = Infinity;
  for (let k = 0; k < BATCHES; k++) {
    let t = performance.now();
    const outs = [];
    for (let i = 0; i < BATCH; i++) outs.push(ready(a.device.send(now, keyB, kib)).envelopes[0].bytes);
    send1k = Math.min(send1k, ((performance.now() - t) * 1000) / BATCH);
    t = performance.now();
    for (const env of outs) b.device.receive(now, env);
    receive1k = Math.min(receive1k, ((performance.now() - t) * 1000) / BATCH);
  }

  const group = new Uint8Array(32).fill(9);
  const members = all.map((x) => x.primary.accountKey());
  for (const x of all) x.device.setGroupMembers(group, members);
  const first = ready(a.device.sendGroup(now, group, body));
  for (const e of first.envelopes) (e.to.device === 1 && hexEq(e.to.account, keyB) ? b : c).device.receive(now, e.bytes);
  b.device.receive(now, first.group.bytes);
  const groupUs = best(() => b.device.receive(now, ready(a.device.sendGroup(now, group, body)).group.bytes));
  const round = (x) => Math.round(x * 10) / 10;
  window.bench = { batches: BATCHES, direct_us: round(direct), send_1k_us: round(send1k), receive_1k_us: round(receive1k), group_us: round(groupUs) };
  document.getElementById("out").textContent = JSON.stringify(window.bench);
}

function hexEq(x, y) { return x.length === y.length && x.every((v, i) => v === y[i]); }

main().catch((e) => { window.bench = { error: `${e.code || ""} ${e.message}` }; });
